""":class:`SQLiteStore`: the store in one SQLite file (WAL, ``synchronous=FULL``,
one commit per transaction).
"""

from __future__ import annotations

import hmac
import math
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final
from uuid import UUID

from .._errors import CorruptState, InvalidArgument, StoreBusy, StoreError, StoreRolledBack
from .._keys import IdentityKey
from .protocols import _check_distribution_id, _check_local_name
from .rows import _ROW_CHECK, _prefix_bound, _row_check, _sender_key_key, _session_key

__all__ = ["SQLiteStore"]


_TABLES: Final = (
    "CREATE TABLE IF NOT EXISTS identities (address TEXT PRIMARY KEY, key BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS prekey_rows (part BLOB PRIMARY KEY, data BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS session_rows (address TEXT NOT NULL, part BLOB NOT NULL, "
    "data BLOB NOT NULL, PRIMARY KEY (address, part)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS local (name TEXT PRIMARY KEY, data BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sender_keys (sender TEXT NOT NULL, distribution BLOB NOT NULL, "
    "data BLOB NOT NULL, PRIMARY KEY (sender, distribution)) WITHOUT ROWID",
)
_TABLE_NAMES: Final = frozenset({"identities", "prekey_rows", "session_rows", "local", "meta",
                                 "sender_keys"})
#: Tables of files written before the row layout (one ring blob, one record
#: blob per address); opening such a file moves their rows to part b"".
_LEGACY_TABLES: Final = frozenset({"prekeys", "sessions"})
_GET_GENERATION: Final = "SELECT value FROM meta WHERE name = 'generation'"
_SET_GENERATION: Final = "INSERT OR REPLACE INTO meta (name, value) VALUES ('generation', ?)"
_MAX_GENERATION: Final = 2**63 - 1
# SQLITE_BUSY and SQLITE_LOCKED, without their extended-code bits.
_BUSY_CODES: Final = (5, 6)


def _generation_value(row: Any) -> int:
    """The generation from its ``meta`` row (0 without one), checked."""
    if row is None:
        return 0
    value = row[0]
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 0 <= value <= _MAX_GENERATION:
        raise CorruptState("SQLiteStore: the generation number is malformed")
    return value


def _legacy_value(table: str, key: str, data: bytes) -> bytes:
    """A row of a table from before the row layout, its check verified."""
    value, check = data[:-_ROW_CHECK], data[-_ROW_CHECK:]
    if len(data) < _ROW_CHECK or not hmac.compare_digest(check, _row_check(table, key, value)):
        raise CorruptState(f"SQLiteStore: a {table} row failed its integrity check")
    return value


def _is_busy(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _BUSY_CODES
    return str(error).startswith(("database is locked", "database table is locked"))


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


class SQLiteStore:
    """A store in one SQLite file (standard library ``sqlite3``).

    Writes happen only inside :meth:`transaction` (``BEGIN IMMEDIATE`` ...
    ``COMMIT``), in WAL mode with ``synchronous=FULL``, so a committed
    transaction survives a crash and an uncommitted one leaves no trace.
    Every row carries a 16-byte SHA-256 check over its table, key and value:
    a damaged row, or a row moved to another address, reads as
    :class:`~signalish.errors.CorruptState`, never as different data.
    Transactions nest (see :meth:`transaction`).  One connection per store, usable from any thread (``asyncio.to_thread``
    included): calls from several threads run one at a time, a transaction
    holding the store until it ends.
    Several stores (in several processes) may share one file: their
    transactions run one at a time.

    **Errors.**  ``timeout`` is how long, in seconds, a transaction waits
    for another connection's write transaction to end (``0`` waits not at
    all).  If the lock cannot be had, at ``BEGIN IMMEDIATE`` or at any
    statement or ``COMMIT`` after it, the transaction is rolled back and
    :class:`~signalish.errors.StoreBusy` is raised: nothing was written, and the
    same call can simply be retried later (a message that was being
    decrypted decrypts then).  Any other ``sqlite3`` error becomes
    :class:`~signalish.StoreError`, chained to the original (``from``);
    a transaction in which a statement failed is never committed, even if
    the error was caught inside it.  Error messages never contain stored data.

    **Generation.**  A ``meta`` table holds an integer, the *generation*,
    which every committed transaction that wrote anything increments, inside
    that same transaction (a transaction that only read leaves it alone).
    :attr:`generation` is the last generation this object read or committed.
    At the start of every transaction, right after ``BEGIN IMMEDIATE``, the
    file's generation is read; if it is lower than one this object has
    already seen, the transaction is rolled back and
    :class:`~signalish.errors.StoreRolledBack` is raised.  ``min_generation`` does
    the same at open: an application that records :attr:`generation` outside
    the database (after its transactions, somewhere an old copy of the file
    does not bring back, such as the OS keystore) and passes it here finds
    out when it is handed an older copy of the file (a record that lags
    behind, because the process died between a commit and the recording,
    is harmless: it is only a lower bound).  A file from before
    the ``meta`` table existed reads as generation 0 and gets the table on
    open.

    What this detects: while a store is open, the file rolled back through
    SQLite by someone else (an older copy written over it with SQLite's
    backup API, say, by a restore in another process): the next transaction
    raises :class:`~signalish.errors.StoreRolledBack`; while a store is open, the
    file at ``path`` replaced by another file (renamed over it) or moved
    away: the next transaction raises :class:`~signalish.StoreError`,
    because the connection would go on writing the old file (close the
    store and open it again with ``min_generation=store.generation``); at
    open, a file older than the generation the application recorded.  What
    it cannot detect: an old copy when nothing newer was recorded anywhere
    (the first open after a restore, without ``min_generation``), and an
    older file's bytes written in place over the file while a connection
    has it open: SQLite keeps serving the pages it cached and the commits
    in its write-ahead log, and its documentation lists this among the ways
    to corrupt a database.  Replace the file only while no store has it
    open, and together with its ``-wal`` and ``-shm`` files (an old database
    beside a newer ``-wal`` file is a corrupt database, not an old one).
    A rolled-back store may hold sessions that have already
    sent messages it does not know about: see docs/security.md.
    """

    def __init__(self, path: str | Path, *, timeout: float = 5.0,
                 min_generation: int = 0) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
                or not math.isfinite(timeout) or timeout < 0:
            raise InvalidArgument("SQLiteStore timeout must be a finite number of seconds >= 0")
        if isinstance(min_generation, bool) or not isinstance(min_generation, int) \
                or not 0 <= min_generation <= _MAX_GENERATION:
            raise InvalidArgument("SQLiteStore min_generation must be an integer 0..2**63-1")
        self._path = os.fspath(path)
        self._timeout = float(timeout)
        self._generation = 0
        self._in_transaction = False
        self._depth = 0
        self._dirty = False
        self._failure: StoreError | None = None
        self._file: tuple[int, int] | None = None
        # One connection, shared by every thread that uses this store: each
        # transaction holds the lock from begin to commit, and every other
        # call takes it too, so calls from several threads run one at a time.
        self._lock = threading.RLock()
        # Per thread: the generation its last transaction began at or
        # committed (what ``generation`` reports to it), and whether it holds
        # the open transaction.
        self._seen = threading.local()
        self._owner: int | None = None
        try:
            self._db = sqlite3.connect(self._path, isolation_level=None, timeout=self._timeout,
                                       check_same_thread=False)
        except sqlite3.Error as error:
            raise self._store_error("open", error) from error
        try:
            self._open(min_generation)
        except BaseException:
            self._db.close()
            raise

    def _open(self, min_generation: int) -> None:
        self._execute("open", "PRAGMA journal_mode=WAL")
        self._execute("open", "PRAGMA synchronous=FULL")
        tables = self._tables("open")
        if not _TABLE_NAMES <= tables or _LEGACY_TABLES & tables:
            # A new file, or one from before the meta table or the row layout.
            self._execute("open", "BEGIN IMMEDIATE")
            try:
                self._ensure_schema("open")
                self._execute("open", "COMMIT")
            except BaseException:
                self._rollback()
                raise
        self._file = _file_id(self._path)
        self._generation = self._read_generation("open")
        if self._generation < min_generation:
            raise StoreRolledBack(
                f"SQLiteStore: the file is at generation {self._generation}, older than "
                f"the generation {min_generation} the application recorded")

    def _tables(self, what: str) -> set[str]:
        return {row[0] for row in self._fetchall(
            what, "SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _ensure_schema(self, what: str) -> None:
        """Inside a write transaction: create what is missing, and move the
        rows of the tables from before the row layout (their checks
        verified) to part ``b""`` of the new ones.  The manager reads such a
        head as a whole record or ring and writes rows from then on."""
        for statement in _TABLES:
            self._execute(what, statement)
        self._execute(what, "INSERT OR IGNORE INTO meta (name, value) VALUES ('generation', 0)")
        tables = self._tables(what)
        if "sessions" in tables:
            for address, data in self._fetchall(what, "SELECT address, data FROM sessions"):
                value = _legacy_value("sessions", address, bytes(data))
                self._execute(what, "INSERT OR REPLACE INTO session_rows VALUES (?, ?, ?)",
                              (address, b"", value + _row_check(
                                  "session_rows", _session_key(address, b""), value)))
            self._execute(what, "DROP TABLE sessions")
        if "prekeys" in tables:
            for (data,) in self._fetchall(what, "SELECT data FROM prekeys"):
                value = _legacy_value("prekeys", "1", bytes(data))
                self._execute(what, "INSERT OR REPLACE INTO prekey_rows VALUES (?, ?)",
                              (b"", value + _row_check("prekey_rows", "", value)))
            self._execute(what, "DROP TABLE prekeys")

    @property
    def generation(self) -> int:
        """The generation the calling thread's last transaction began at or
        committed (before its first transaction: the one read at open).  Per
        thread, so a manager that reads it after its commit gets its own
        commit's value even if another thread has committed since."""
        return getattr(self._seen, "generation", self._generation)

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error as error:
                raise self._store_error("close", error) from error

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- error mapping -----------------------------------------------------------

    def _store_error(self, what: str, error: sqlite3.Error) -> StoreError:
        if _is_busy(error):
            return StoreBusy(f"SQLiteStore: {what}: the database is locked by another "
                             f"connection (waited {self._timeout:g} s)")
        name = getattr(error, "sqlite_errorname", None) or type(error).__name__
        return StoreError(f"SQLiteStore: {what} failed ({name})")

    def _fail(self, what: str, error: sqlite3.Error) -> StoreError:
        failure = self._store_error(what, error)
        if self._in_transaction and self._failure is None:
            self._failure = failure
        return failure

    def _execute(self, what: str, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._db.execute(sql, params)
            except sqlite3.Error as error:
                raise self._fail(what, error) from error

    def _fetchone(self, what: str, sql: str, params: tuple[object, ...] = ()) -> Any:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchone()
            except sqlite3.Error as error:
                raise self._fail(what, error) from error

    def _fetchall(self, what: str, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as error:
                raise self._fail(what, error) from error

    def _rollback(self) -> None:
        """Roll back if SQLite still has a transaction open.  Errors are
        dropped: the caller is already raising, and the next
        :meth:`transaction` rolls back whatever is left over."""
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    # --- transactions ------------------------------------------------------------

    def _read_generation(self, what: str) -> int:
        return _generation_value(self._fetchone(what, _GET_GENERATION))

    def _generation_at_begin(self) -> int | None:
        """The file's generation, or None if it has no ``meta`` table (one
        query: the table's absence is SQLite's "no such table")."""
        try:
            row = self._db.execute(_GET_GENERATION).fetchone()
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return None
            raise self._fail("begin", error) from error
        except sqlite3.Error as error:
            raise self._fail("begin", error) from error
        return _generation_value(row)

    def _begin(self) -> None:
        self._rollback()  # anything a failed ROLLBACK left behind
        self._execute("begin", "BEGIN IMMEDIATE")
        try:
            if self._file is not None and _file_id(self._path) != self._file:
                raise StoreError(
                    "SQLiteStore: the database file was replaced or moved while the store "
                    "was open; close the store and open the file again (with "
                    "min_generation=store.generation)")
            # Without the meta table the file was replaced by one from before it
            # (a replacement by rename is caught above; see the class docstring).
            generation = self._generation_at_begin()
            found = 0 if generation is None else generation
            if found < self._generation:
                raise StoreRolledBack(
                    f"SQLiteStore: the file is at generation {found}, older than the "
                    f"generation {self._generation} this store has seen: it was rolled back")
            if generation is None:
                self._ensure_schema("begin")
            self._generation = self._seen.generation = found
        except BaseException:
            self._rollback()
            raise

    def _commit(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise type(failure)(f"{failure} (earlier in this transaction; rolled back)") \
                from failure
        if not self._db.in_transaction:
            raise StoreError("SQLiteStore: SQLite rolled the transaction back on its own")
        generation = self._generation + 1 if self._dirty else self._generation
        if self._dirty:
            self._execute("commit", _SET_GENERATION, (generation,))
        self._execute("commit", "COMMIT")
        self._generation = self._seen.generation = generation

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the body as one write transaction: on a normal exit all its
        writes commit at once (raising :class:`~signalish.errors.StoreBusy` or
        :class:`~signalish.StoreError`, with nothing written, if they
        cannot); if the body raises, nothing it wrote is kept.  Raises
        :class:`~signalish.errors.StoreRolledBack` before the body runs if the file
        is older than this store has seen.

        Transactions nest (as SQLite savepoints): an inner block that raises
        undoes only its own writes, and nothing commits before the outermost
        block ends, so an application can wrap several manager calls (a
        message to every member of a group) and its own data in one commit.
        A message a call encrypted inside such a block may be sent only once
        the outermost block has committed."""
        with self._lock:  # another thread's transaction waits for this one
            if self._in_transaction:
                with self._savepoint():
                    yield
                return
            self._begin()
            self._in_transaction, self._dirty, self._failure = True, False, None
            self._owner = threading.get_ident()
            try:
                yield
                self._commit()
            except BaseException:
                self._rollback()
                raise
            finally:
                self._in_transaction, self._dirty, self._failure = False, False, None
                self._owner = None

    @property
    def in_transaction(self) -> bool:
        """Whether this thread has a transaction open (a new one would nest
        in it)."""
        return self._in_transaction and self._owner == threading.get_ident()

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        self._depth += 1
        name = f"signalish_{self._depth}"
        try:
            self._execute("savepoint", f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                try:
                    self._db.execute(f"ROLLBACK TO {name}")
                    self._db.execute(f"RELEASE {name}")
                except sqlite3.Error as error:  # then the outermost block cannot commit
                    self._fail("savepoint", error)
                raise
            self._execute("savepoint", f"RELEASE {name}")
        finally:
            self._depth -= 1

    # --- rows --------------------------------------------------------------------

    def _modify(self, what: str, sql: str, params: tuple[object, ...]) -> None:
        with self._lock:
            self._modify_locked(what, sql, params)

    def _modify_locked(self, what: str, sql: str, params: tuple[object, ...]) -> None:
        if not self._in_transaction:
            raise InvalidArgument("SQLiteStore writes must happen inside transaction()")
        if self._failure is not None or not self._db.in_transaction:
            raise StoreError(f"SQLiteStore: {what}: the transaction already failed")
        cursor = self._execute(what, sql, params)
        if cursor.rowcount != 0:
            self._dirty = True

    def _write(self, sql: str, params: tuple[object, ...], key: str, value: bytes,
               table: str) -> None:
        value = bytes(value)
        self._modify(f"writing {table}", sql, params + (value + _row_check(table, key, value),))

    def _read(self, sql: str, params: tuple[object, ...], key: str, table: str) -> bytes | None:
        row = self._fetchone(f"reading {table}", sql, params)
        if row is None:
            return None
        data = bytes(row[0])
        value, check = data[:-_ROW_CHECK], data[-_ROW_CHECK:]
        if len(data) < _ROW_CHECK or not hmac.compare_digest(check, _row_check(table, key, value)):
            raise CorruptState(f"SQLiteStore: a {table} row failed its integrity check")
        return value

    def get_identity(self, address: str) -> IdentityKey | None:
        data = self._read("SELECT key FROM identities WHERE address = ?", (address,), address,
                          "identities")
        return None if data is None else IdentityKey.from_bytes(data)

    def save_identity(self, address: str, key: IdentityKey) -> None:
        self._write("INSERT OR REPLACE INTO identities VALUES (?, ?)", (address,), address,
                    key.to_bytes(), "identities")

    def load_prekeys(self, part: bytes = b"") -> bytes | None:
        return self._read("SELECT data FROM prekey_rows WHERE part = ?", (bytes(part),),
                          part.hex(), "prekey_rows")

    def save_prekeys(self, data: bytes, part: bytes = b"") -> None:
        self._write("INSERT OR REPLACE INTO prekey_rows VALUES (?, ?)", (bytes(part),),
                    part.hex(), data, "prekey_rows")

    def delete_prekeys(self, part: bytes) -> None:
        self._modify("writing prekey_rows", "DELETE FROM prekey_rows WHERE part = ?",
                     (bytes(part),))

    def prekey_parts(self) -> list[bytes]:
        return [bytes(row[0]) for row in self._fetchall(
            "reading prekey_rows", "SELECT part FROM prekey_rows ORDER BY part")]

    def load_session(self, address: str, part: bytes = b"") -> bytes | None:
        return self._read("SELECT data FROM session_rows WHERE address = ? AND part = ?",
                          (address, bytes(part)), _session_key(address, part), "session_rows")

    def save_session(self, address: str, data: bytes, part: bytes = b"") -> None:
        self._write("INSERT OR REPLACE INTO session_rows VALUES (?, ?, ?)",
                    (address, bytes(part)), _session_key(address, part), data, "session_rows")

    def delete_session(self, address: str, part: bytes | None = None) -> None:
        if part is None:
            self._modify("writing session_rows", "DELETE FROM session_rows WHERE address = ?",
                         (address,))
        else:
            self._modify("writing session_rows",
                         "DELETE FROM session_rows WHERE address = ? AND part = ?",
                         (address, bytes(part)))

    def session_addresses(self) -> list[str]:
        return [row[0] for row in self._fetchall(
            "reading session_rows",
            "SELECT address FROM session_rows WHERE part = x'' ORDER BY address")]

    def session_addresses_from(self, prefix: str) -> list[str]:
        """The addresses with a record that start with ``prefix``, sorted: a
        range of the primary key, not a scan of every address."""
        upper = _prefix_bound(prefix)
        if upper is None:  # only U+10FFFF in the prefix: no range to ask for
            return [a for a in self.session_addresses() if a.startswith(prefix)]
        rows = self._fetchall(
            "reading session_rows", "SELECT address FROM session_rows WHERE part = x'' "
            "AND address >= ? AND address < ? ORDER BY address", (prefix, upper))
        return [row[0] for row in rows if row[0].startswith(prefix)]

    def identity_addresses(self) -> list[str]:
        return [row[0] for row in self._fetchall(
            "reading identities", "SELECT address FROM identities ORDER BY address")]

    def load_local(self, name: str) -> bytes | None:
        """Application data kept beside the protocol state (:class:`LocalStore`):
        saved in the same transactions."""
        return self._read("SELECT data FROM local WHERE name = ?", (name,), name, "local")

    def save_local(self, name: str, data: bytes) -> None:
        _check_local_name(name)
        self._write("INSERT OR REPLACE INTO local VALUES (?, ?)", (name,), name, data, "local")

    def _save_reserved(self, name: str, data: bytes) -> None:
        _check_local_name(name, reserved_ok=True)
        self._write("INSERT OR REPLACE INTO local VALUES (?, ?)", (name,), name, data, "local")

    def delete_local(self, name: str) -> None:
        self._modify("writing local", "DELETE FROM local WHERE name = ?", (name,))

    def local_names(self) -> list[str]:
        return [row[0] for row in self._fetchall(
            "reading local", "SELECT name FROM local ORDER BY name")]

    def load_sender_key(self, sender: str, distribution_id: UUID) -> bytes | None:
        distribution = _check_distribution_id(distribution_id)
        return self._read("SELECT data FROM sender_keys WHERE sender = ? AND distribution = ?",
                          (sender, distribution), _sender_key_key(sender, distribution),
                          "sender_keys")

    def save_sender_key(self, sender: str, distribution_id: UUID, record: bytes) -> None:
        distribution = _check_distribution_id(distribution_id)
        self._write("INSERT OR REPLACE INTO sender_keys VALUES (?, ?, ?)", (sender, distribution),
                    _sender_key_key(sender, distribution), record, "sender_keys")

    def delete_sender_key(self, sender: str, distribution_id: UUID) -> None:
        distribution = _check_distribution_id(distribution_id)
        self._modify("writing sender_keys",
                     "DELETE FROM sender_keys WHERE sender = ? AND distribution = ?",
                     (sender, distribution))

    def sender_key_ids(self) -> list[tuple[str, UUID]]:
        return [(row[0], UUID(bytes=bytes(row[1]))) for row in self._fetchall(
            "reading sender_keys",
            "SELECT sender, distribution FROM sender_keys ORDER BY sender, distribution")]
