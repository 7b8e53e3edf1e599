"""Storage interfaces and two implementations: in memory and SQLite.

Stores hold bytes; they never parse them.  :class:`SessionManager` runs each
operation inside :meth:`Store.transaction`: it reads what it needs, works,
writes the new state, and the transaction commits all writes at once or
none.  A decrypt therefore either returns the plaintext *and* has its new
session state committed, or fails and leaves the stored state as it was:
a crash in between loses no message and never reuses a message key.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable
from uuid import UUID

from ._errors import (
    CorruptState,
    DecodeError,
    InvalidArgument,
    StoreBusy,
    StoreError,
    StoreRolledBack,
)
from ._keys import IdentityKey, IdentityKeyPair

__all__ = ["IdentityStore", "PreKeyStore", "SessionStore", "Store", "LocalStore",
           "SenderKeyStore", "MemoryStore",
           "SQLiteStore", "RESERVED_PREFIX", "IDENTITY_NAME", "load_identity_key_pair",
           "save_identity_key_pair"]

#: Local-data names that start with this belong to the library; the
#: application's own names must not (save_local refuses them).
RESERVED_PREFIX: Final = "signalish:"
#: Where :func:`save_identity_key_pair` keeps the local identity key pair.
IDENTITY_NAME: Final = RESERVED_PREFIX + "identity"


@runtime_checkable
class IdentityStore(Protocol):
    """Peers' identity keys as last trusted (libsignal's IdentityKeyStore)."""

    def get_identity(self, address: str) -> IdentityKey | None:
        """The identity key trusted for ``address``, or None if none was
        recorded yet."""
        ...

    def save_identity(self, address: str, key: IdentityKey) -> None:
        """Record ``key`` as the trusted identity of ``address``, replacing
        any earlier one.  Called inside a transaction."""
        ...

    def identity_addresses(self) -> list[str]:
        """Every address with a recorded identity, sorted."""
        ...


@runtime_checkable
class PreKeyStore(Protocol):
    """The local :class:`~signalish.PreKeyRing` (secret), as rows: a head
    row under part ``b""`` and one row per one-time prekey and per
    remembered base key, so that consuming a one-time prekey deletes one
    row (the layout of libsignal's PreKeyStore and KyberPreKeyStore).
    Parts are short byte strings the library chooses; stores keep them and
    the rows as opaque bytes.  Use :meth:`SessionManager.prekeys` rather
    than calling these yourself."""

    def load_prekeys(self, part: bytes = b"") -> bytes | None:
        """The row stored under ``part``, or None if there is none."""
        ...

    def save_prekeys(self, data: bytes, part: bytes = b"") -> None:
        """Store ``data`` under ``part``, replacing any row there.  Called
        inside a transaction."""
        ...

    def delete_prekeys(self, part: bytes) -> None:
        """Remove the row under ``part``; nothing happens if there is none.
        Called inside a transaction."""
        ...

    def prekey_parts(self) -> list[bytes]:
        """The parts of every stored prekey row, sorted (``b""`` first)."""
        ...


@runtime_checkable
class LocalStore(Protocol):
    """Application data kept beside the protocol state, under names the
    application chooses, written in the same transactions (so a message's
    plaintext and the state that decrypted it commit together), and carried
    by a backup made with ``include_local=True``.  Both built-in stores
    implement it.  Names starting with :data:`RESERVED_PREFIX` are the
    library's (the local identity key pair is kept under one)."""

    def load_local(self, name: str) -> bytes | None:
        """The data saved under ``name``, or None."""
        ...

    def save_local(self, name: str, data: bytes) -> None:
        """Save ``data`` under ``name``, replacing what was there.  Called
        inside a transaction.  The built-in stores refuse a reserved name
        with :class:`~signalish.errors.InvalidArgument`."""
        ...

    def delete_local(self, name: str) -> None:
        """Remove ``name``; nothing happens if there is none."""
        ...

    def local_names(self) -> list[str]:
        """Every saved name, sorted, the reserved ones included."""
        ...


@runtime_checkable
class SenderKeyStore(Protocol):
    """Sender-key records (secret) for group messaging, one per sender and
    distribution id, as libsignal's SenderKeyStore keeps them: ``sender``
    is the sending device's address string (ours, for our own sender key),
    ``distribution_id`` the group's distribution id.  Records are opaque
    bytes to the store.  Both built-in stores implement it, in the same
    transactions as everything else; a store of the application's own
    needs it only for group messaging.  Backups do not carry sender keys
    (a restored sending chain would reuse message keys): after a restore,
    create new sender keys and distribute them."""

    def load_sender_key(self, sender: str, distribution_id: UUID) -> bytes | None:
        """The record of ``sender`` for ``distribution_id``, or None."""
        ...

    def save_sender_key(self, sender: str, distribution_id: UUID, record: bytes) -> None:
        """Store ``record``, replacing any.  Called inside a transaction."""
        ...

    def delete_sender_key(self, sender: str, distribution_id: UUID) -> None:
        """Remove that record; nothing happens if there is none.  Called
        inside a transaction."""
        ...

    def sender_key_ids(self) -> list[tuple[str, UUID]]:
        """Every (sender, distribution id) with a record, sorted."""
        ...


def _check_distribution_id(distribution_id: UUID) -> bytes:
    if not isinstance(distribution_id, UUID):
        raise InvalidArgument("a distribution id is a uuid.UUID")
    return distribution_id.bytes


def _check_local_name(name: str, reserved_ok: bool = False) -> None:
    if not isinstance(name, str):
        raise InvalidArgument("a local-data name is a str")
    if name.startswith(RESERVED_PREFIX) and not reserved_ok:
        raise InvalidArgument(f"local-data names starting {RESERVED_PREFIX!r} are reserved")


def save_reserved_local(store: object, name: str, data: bytes) -> bool:
    """Save library data under a reserved local name (``signalish:...``),
    inside a transaction: the built-in stores refuse reserved names in
    ``save_local`` and take them through ``_save_reserved``; a store of the
    application's own takes them through ``save_local``.  False, saving
    nothing, for a store without local data."""
    save = getattr(store, "_save_reserved", getattr(store, "save_local", None))
    if save is None:
        return False
    save(name, data)
    return True


def save_identity_key_pair(store: LocalStore, identity: IdentityKeyPair) -> None:
    """Keep ``identity`` (secret) in ``store``, as libsignal's identity store
    keeps the local identity key pair; :func:`~signalish.backup.restore_backup`
    calls it.  Call it inside a transaction with whatever else should commit
    with it."""
    save_reserved_local(store, IDENTITY_NAME, identity.to_bytes())


def load_identity_key_pair(store: LocalStore) -> IdentityKeyPair | None:
    """The identity key pair kept in ``store``, or None.  Raises
    :class:`~signalish.errors.CorruptState` if it is damaged."""
    data = store.load_local(IDENTITY_NAME)
    if data is None:
        return None
    try:
        return IdentityKeyPair.from_bytes(data)
    except (DecodeError, InvalidArgument):
        raise CorruptState("the stored identity key pair is damaged") from None


@runtime_checkable
class SessionStore(Protocol):
    """Each peer address's :class:`~signalish._session.SessionRecord` (secret),
    as rows: a head row under part ``b""`` (which sessions, in which order),
    one row per session and one per chain of stored message keys, so that a
    message rewrites the one or two rows it changed, not the record.
    Parts are short byte strings the library chooses; stores hold them and
    the rows as opaque bytes and never parse them."""

    def load_session(self, address: str, part: bytes = b"") -> bytes | None:
        """The row for ``address`` under ``part``, or None if there is none.
        Whether the head (``part=b""``) exists says whether ``address`` has
        a record."""
        ...

    def save_session(self, address: str, data: bytes, part: bytes = b"") -> None:
        """Store ``data`` for ``address`` under ``part``, replacing any row
        there.  Called inside a transaction."""
        ...

    def delete_session(self, address: str, part: bytes | None = None) -> None:
        """Remove the row of ``address`` under ``part``, or, with ``part``
        None, every row of ``address`` (its whole record); nothing happens
        if there is none.  Called inside a transaction."""
        ...

    def session_addresses(self) -> list[str]:
        """Every address with a record (a head row), sorted."""
        ...


def _prefix_bound(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (in
    code point order), or None if there is none (no upper bound)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


@runtime_checkable
class Store(IdentityStore, PreKeyStore, SessionStore, Protocol):
    """All three, plus a transaction that makes their writes atomic, and a
    generation number.

    ``transaction()``: a context manager; every write inside it is committed
    when the block ends, or none is if the block raises.
    ``generation``: a number that changes whenever anything else (another
    connection, another process, another manager) may have changed the
    store since this object last committed; read inside a transaction, it
    is current as of the start of that transaction.  :class:`SessionManager`
    keeps parsed records between calls only while the generation is the one
    its own last commit left; a store without a meaningful one may return a
    new value each time (nothing is then cached)."""

    def transaction(self) -> AbstractContextManager[None]:
        """A context manager: the writes inside it commit together when the
        block ends, or none does if it raises (then the store is as before)."""
        ...

    @property
    def generation(self) -> int:
        """See the class docstring."""
        ...


_MISSING: Final = object()


class MemoryStore:
    """Everything in dictionaries.  A transaction that raises is rolled back.

    Transactions keep an undo log of the entries they change, so their cost
    is in what they write, not in the size of the store; they may nest (an
    inner block that raises undoes only its own writes), so an application
    can wrap several manager calls and its own data in one block that
    commits or fails as one (a message a call encrypted inside such a block
    may be sent only once the block has committed: if it fails, the store
    is as before and the next message reuses that key).  ``generation``
    changes when an outermost transaction that wrote anything commits, and
    when one rolls back writes that inner blocks had completed."""

    def __init__(self) -> None:
        self._identities: dict[str, IdentityKey] = {}
        self._prekeys: dict[bytes, bytes] = {}
        self._sessions: dict[str, dict[bytes, bytes]] = {}
        self._local: dict[str, bytes] = {}
        self._sender_keys: dict[tuple[str, UUID], bytes] = {}
        self._undo: list[list[tuple[dict[Any, Any], Any, Any]]] = []
        # Per open block: whether an inner block that wrote has completed in it.
        self._inner_done: list[bool] = []
        self._generation = 0
        self._transaction = _MemoryTransaction(self._undo, self)

    @property
    def generation(self) -> int:
        return self._generation

    def transaction(self) -> AbstractContextManager[None]:
        return self._transaction  # its state is the store's, so one object serves every block

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (a new one would nest in it)."""
        return bool(self._undo)

    def _set(self, target: dict[Any, Any], key: Any, value: Any) -> None:
        """``target[key] = value`` (deleting it for ``_MISSING``), logged."""
        old = target.get(key, _MISSING)
        if self._undo:
            self._undo[-1].append((target, key, old))
        else:
            self._generation += 1  # a write outside any transaction
        if value is _MISSING:
            target.pop(key, None)
        else:
            target[key] = value

    def get_identity(self, address: str) -> IdentityKey | None:
        return self._identities.get(address)

    def save_identity(self, address: str, key: IdentityKey) -> None:
        self._set(self._identities, address, key)

    def identity_addresses(self) -> list[str]:
        return sorted(self._identities)

    def load_prekeys(self, part: bytes = b"") -> bytes | None:
        return self._prekeys.get(bytes(part))

    def save_prekeys(self, data: bytes, part: bytes = b"") -> None:
        self._set(self._prekeys, bytes(part), bytes(data))

    def delete_prekeys(self, part: bytes) -> None:
        part = bytes(part)
        if part in self._prekeys:
            self._set(self._prekeys, part, _MISSING)

    def prekey_parts(self) -> list[bytes]:
        return sorted(self._prekeys)

    def load_session(self, address: str, part: bytes = b"") -> bytes | None:
        rows = self._sessions.get(address)
        return None if rows is None else rows.get(bytes(part))

    def save_session(self, address: str, data: bytes, part: bytes = b"") -> None:
        rows = self._sessions.get(address)
        if rows is None:
            rows = {}
            self._set(self._sessions, address, rows)
        # _set, written out: this runs on every message.
        if type(part) is not bytes:
            part = bytes(part)
        if type(data) is not bytes:
            data = bytes(data)
        undo = self._undo
        if undo:
            undo[-1].append((rows, part, rows.get(part, _MISSING)))
        else:
            self._generation += 1  # a write outside any transaction
        rows[part] = data

    def delete_session(self, address: str, part: bytes | None = None) -> None:
        rows = self._sessions.get(address)
        if rows is None:
            return
        if part is None:
            self._set(self._sessions, address, _MISSING)  # the undo log keeps the rows
        elif bytes(part) in rows:
            self._set(rows, bytes(part), _MISSING)

    def session_addresses(self) -> list[str]:
        return sorted(address for address, rows in self._sessions.items() if b"" in rows)

    def session_addresses_from(self, prefix: str) -> list[str]:
        """The addresses with a record that start with ``prefix``, sorted (an
        optional method: :meth:`SessionManager.devices
        <signalish.SessionManager.devices>` uses it when a store has it)."""
        return sorted(address for address, rows in self._sessions.items()
                      if b"" in rows and address.startswith(prefix))

    def load_local(self, name: str) -> bytes | None:
        """Application data kept beside the protocol state (:class:`LocalStore`):
        saved in the same transactions."""
        return self._local.get(name)

    def save_local(self, name: str, data: bytes) -> None:
        _check_local_name(name)
        self._set(self._local, name, bytes(data))

    def _save_reserved(self, name: str, data: bytes) -> None:
        _check_local_name(name, reserved_ok=True)
        self._set(self._local, name, bytes(data))

    def delete_local(self, name: str) -> None:
        if name in self._local:
            self._set(self._local, name, _MISSING)

    def local_names(self) -> list[str]:
        return sorted(self._local)

    def load_sender_key(self, sender: str, distribution_id: UUID) -> bytes | None:
        _check_distribution_id(distribution_id)
        return self._sender_keys.get((sender, distribution_id))

    def save_sender_key(self, sender: str, distribution_id: UUID, record: bytes) -> None:
        _check_distribution_id(distribution_id)
        self._set(self._sender_keys, (sender, distribution_id), bytes(record))

    def delete_sender_key(self, sender: str, distribution_id: UUID) -> None:
        if (sender, distribution_id) in self._sender_keys:
            self._set(self._sender_keys, (sender, distribution_id), _MISSING)

    def sender_key_ids(self) -> list[tuple[str, UUID]]:
        return sorted(self._sender_keys)


class _MemoryTransaction:
    """:meth:`MemoryStore.transaction` (a class, not a generator: it runs
    once per manager call)."""

    __slots__ = ("_undo", "_store")

    def __init__(self, undo: list[list[tuple[dict[Any, Any], Any, Any]]],
                 store: MemoryStore) -> None:
        self._undo, self._store = undo, store

    def __enter__(self) -> None:
        self._undo.append([])
        self._store._inner_done.append(False)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: object) -> None:
        store = self._store
        done = self._undo.pop()
        inner_done = store._inner_done.pop()
        if kind is not None:
            for target, key, old in reversed(done):
                if old is _MISSING:
                    target.pop(key, None)
                else:
                    target[key] = old
            if inner_done and not self._undo:
                # Writes of inner blocks that had completed are undone too:
                # whoever read the generation after them must see a change.
                store._generation += 1
        elif self._undo:
            self._undo[-1].extend(done)
            if done:
                store._inner_done[-1] = True
        elif done:
            store._generation += 1  # a commit that wrote


_ROW_CHECK = 16


def _row_check(table: str, key: str, value: bytes) -> bytes:
    return hashlib.sha256(b"signalish row\x00" + table.encode() + b"\x00" + key.encode()
                          + b"\x00" + value).digest()[:_ROW_CHECK]


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


def _sender_key_key(sender: str, distribution: bytes) -> str:
    """What a sender-key row's check binds it to."""
    return f"{sender}\x00{distribution.hex()}"


def _session_key(address: str, part: bytes) -> str:
    """What a session row's check binds it to: its address and its part."""
    return f"{address}\x00{bytes(part).hex()}"


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
