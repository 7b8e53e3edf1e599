"""PostgreSQL stores: :class:`PostgresStore` (psycopg 3, synchronous) and
:class:`AsyncPostgresStore` (psycopg 3, asyncio), for a fleet of worker
processes on any number of machines sharing one database.

Theory of operation (docs/fleet.md argues each point at length):

* **Rows.**  The tables and the row format are SQLiteStore's: every value
  is followed by the same 16-byte SHA-256 check over its table, key and
  value (``signalish._stores.rows._row_check``), so a row that was damaged or
  moved to another key reads as :class:`~signalish.errors.CorruptState`,
  and rows can be copied between the two stores byte for byte.
* **Transactions.**  ``BEGIN ISOLATION LEVEL READ COMMITTED`` ...
  ``COMMIT``, with nested blocks as savepoints; the connection is in
  autocommit mode between transactions, so reads outside a transaction
  see the latest commit and writes outside one are refused.
* **Locks.**  Inside a transaction, the first statement that touches an
  address's session rows, the prekey ring or a (sender, distribution id)
  sender-key record first takes a transaction-level advisory lock on a
  64-bit hash of (schema, what, key), in a statement of its own: under
  READ COMMITTED every later statement then reads what the previous
  holder of the lock committed, and nobody else can change those rows
  until this transaction ends.  Trusted identities are not locked: a
  write is conditional on the row still holding what this transaction
  read, and raises :class:`~signalish.errors.StoreBusy` otherwise.
  Lock waits, deadlocks and serialization failures are StoreBusy.
* **Generation.**  A fresh number for every transaction: the store keeps
  no store-wide counter (it would be one row every commit in the fleet
  writes), so a :class:`~signalish.SessionManager` re-reads its records in
  every call.  Inside a transaction, rows of a locked address or of the
  locked ring are read once and kept until it ends, which no other
  writer can invalidate.

The SQL, the lock keys, the row checks and the transaction bookkeeping
live once, in :class:`_Core`, as generators of queries ("sans-IO"); the
two store classes only carry the queries to psycopg and back.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import threading
from collections.abc import AsyncIterator, Generator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeVar
from uuid import UUID

from ._errors import (
    CorruptState,
    InvalidArgument,
    SchemaTooNew,
    StoreBusy,
    StoreError,
    StoreUnavailable,
)
from ._keys import IdentityKey
from ._stores.protocols import _check_distribution_id, _check_local_name
from ._stores.rows import _ROW_CHECK, _row_check, _sender_key_key, _session_key

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore", "AsyncPostgresStore", "MIGRATIONS"]

T = TypeVar("T")

#: The schema's versioned migrations: step ``i`` (a tuple of statements,
#: ``{s}`` standing for the quoted schema name) takes a schema from version
#: ``i`` to ``i + 1``; the code's schema version is ``len(MIGRATIONS)``.  A
#: new version appends a step and never edits an old one.
MIGRATIONS: Final[list[tuple[str, ...]]] = [
    (  # version 1: SQLiteStore's tables
        'CREATE TABLE IF NOT EXISTS {s}.identities (address text COLLATE "C" PRIMARY KEY, '
        "key bytea NOT NULL)",
        "CREATE TABLE IF NOT EXISTS {s}.prekey_rows (part bytea PRIMARY KEY, "
        "data bytea NOT NULL)",
        # Rewritten in place by every message: leave room for HOT updates.
        'CREATE TABLE IF NOT EXISTS {s}.session_rows (address text COLLATE "C" NOT NULL, '
        "part bytea NOT NULL, data bytea NOT NULL, PRIMARY KEY (address, part)) "
        "WITH (fillfactor = 90)",
        'CREATE TABLE IF NOT EXISTS {s}.local (name text COLLATE "C" PRIMARY KEY, '
        "data bytea NOT NULL)",
        'CREATE TABLE IF NOT EXISTS {s}.sender_keys (sender text COLLATE "C" NOT NULL, '
        "distribution uuid NOT NULL, data bytea NOT NULL, PRIMARY KEY (sender, distribution))",
    ),
]

_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# SQLSTATEs that mean "someone else holds what this transaction needs: retry":
# serialization_failure, deadlock_detected, lock_not_available, query_canceled
# (a statement_timeout, which a lock wait can run into).
_BUSY_STATES: Final = frozenset({"40001", "40P01", "55P03", "57014"})
# The server went away or is not accepting connections right now.
_GONE_STATES: Final = frozenset({"57P01", "57P02", "57P03"})
_MAX_LOCK_TIMEOUT: Final = 2_147_483  # seconds: PostgreSQL's limit in milliseconds


class _Query(NamedTuple):
    what: str  # for error messages: never carries stored data
    sql: str
    params: tuple[object, ...] = ()


class _Result(NamedTuple):
    rows: list[tuple[Any, ...]]
    rowcount: int
    status: str | None


#: What every store method of :class:`_Core` is: a generator of queries,
#: sent each query's result, returning the method's value.
_Steps = Generator[_Query, _Result, T]


def _psycopg() -> Any:
    """psycopg 3, imported when a store is made (the ``postgres`` extra):
    the rest of signalish does not need it, and importing this module does
    not either."""
    try:
        import psycopg
    except ImportError as error:
        raise ImportError("PostgresStore and AsyncPostgresStore need psycopg 3: "
                          "pip install 'signalish[postgres]'") from error
    return psycopg


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} is a str")
    if "\x00" in value:
        raise InvalidArgument(f"{what} cannot contain NUL (PostgreSQL text refuses it)")
    return value


def _seconds(value: object, what: str, *, none_ok: bool = False) -> float | None:
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not 0 <= value <= _MAX_LOCK_TIMEOUT:
        raise InvalidArgument(f"a PostgreSQL store's {what} must be a finite number of "
                              "seconds >= 0")
    return float(value)


def _milliseconds(seconds: float | None) -> str:
    """A PostgreSQL duration; at least 1 ms, since 0 would mean "forever"."""
    return "0" if seconds is None else f"{max(1, round(seconds * 1000))}ms"


@dataclass(slots=True)
class _Tx:
    """One outermost transaction's bookkeeping."""

    locks: set[int] = field(default_factory=set)
    # Rows of locked addresses and of the locked ring, as read (complete).
    sessions: dict[str, dict[bytes, bytes]] = field(default_factory=dict)
    prekeys: dict[bytes, bytes] | None = None
    # Identity rows as this transaction read or wrote them (None: no row).
    identities: dict[str, bytes | None] = field(default_factory=dict)
    # Per open savepoint, what to restore if it is rolled back.
    savepoints: list[tuple[set[int], dict[str, bytes | None], StoreError | None]] = \
        field(default_factory=list)
    # The first error of a statement: the transaction will not commit (unless
    # a savepoint opened before it is rolled back, which undoes it).
    failure: StoreError | None = None


class _Core:
    """Everything but I/O: statements, lock keys, row checks, transaction
    state.  Each store method is a generator of :class:`_Query`."""

    def __init__(self, name: str, schema: str, lock_timeout: object,
                 idle_timeout: object) -> None:
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
            raise InvalidArgument(f"{name} schema must match {_SCHEMA_NAME.pattern}")
        self.name, self.schema = name, schema
        self.lock_timeout = _seconds(lock_timeout, "lock_timeout")
        self.idle_timeout = _seconds(idle_timeout, "idle_timeout", none_ok=True)
        self.tx: _Tx | None = None
        self.generation = 0
        s = f'"{schema}"'
        self.s = s
        self.ring_key = self.lock_key("prekeys", "")
        self.schema_key = self.lock_key("schema", "")
        self.sql_lock = "SELECT pg_advisory_xact_lock(%s::bigint)"
        self.sql_locks = "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k"

    # --- keys, rows and errors -------------------------------------------------

    def lock_key(self, kind: str, key: str) -> int:
        digest = hashlib.sha256(b"signalish lock\x00" + self.schema.encode() + b"\x00"
                                + kind.encode() + b"\x00" + key.encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def session_lock(self, address: str) -> int:
        return self.lock_key("session", address)

    def sender_key_lock(self, sender: str, distribution: bytes) -> int:
        return self.lock_key("sender key", _sender_key_key(sender, distribution))

    def value(self, table: str, key: str, stored: Any) -> bytes:
        data = bytes(stored)
        value, check = data[:-_ROW_CHECK], data[-_ROW_CHECK:]
        if len(data) < _ROW_CHECK or not hmac.compare_digest(check, _row_check(table, key, value)):
            raise CorruptState(f"{self.name}: a {table} row failed its integrity check")
        return value

    @staticmethod
    def row(table: str, key: str, value: bytes) -> bytes:
        value = bytes(value)
        return value + _row_check(table, key, value)

    def error(self, what: str, error: BaseException, broken: bool) -> StoreError:
        """The StoreError for a psycopg error (never with stored data in it);
        a failed transaction remembers it and will not commit."""
        state = getattr(error, "sqlstate", None)
        if state in _BUSY_STATES:
            failure: StoreError = StoreBusy(
                f"{self.name}: {what}: waited too long for a lock, or a deadlock or "
                f"serialization failure ({state}); nothing was written, retry")
        elif broken or state in _GONE_STATES or (state or "").startswith("08") \
                or (state is None and isinstance(error, _psycopg().OperationalError)):
            if what == "commit":
                failure = StoreUnavailable(
                    f"{self.name}: the connection to the database was lost during COMMIT: "
                    "the transaction may or may not have committed (send nothing it "
                    "encrypted; retry the call)")
            else:
                failure = StoreUnavailable(
                    f"{self.name}: {what}: the connection to the database was lost "
                    f"({state or type(error).__name__}); nothing was committed, retry")
        else:
            failure = StoreError(f"{self.name}: {what} failed ({state or type(error).__name__})")
        if self.tx is not None and self.tx.failure is None:
            self.tx.failure = failure
        return failure

    def connect_error(self, error: BaseException) -> StoreError:
        state = getattr(error, "sqlstate", None)
        return StoreUnavailable(f"{self.name}: cannot connect to the database "
                                f"({state or type(error).__name__}); is the server reachable?")

    def _writing(self) -> _Tx:
        tx = self.tx
        if tx is None:
            raise InvalidArgument(f"{self.name} writes must happen inside transaction()")
        if tx.failure is not None:
            raise StoreError(f"{self.name}: the transaction already failed")
        return tx

    def _lock(self, tx: _Tx, key: int) -> _Steps[None]:
        if key not in tx.locks:
            yield _Query("waiting for a lock", self.sql_lock, (key,))
            tx.locks.add(key)

    # --- connection set-up and the schema ---------------------------------------

    def open(self) -> _Steps[None]:
        """Session settings, then the schema: created or migrated (under a
        lock, in one transaction) unless it is at this code's version."""
        yield _Query("open", "SELECT set_config('lock_timeout', %s, false), "
                     "set_config('idle_in_transaction_session_timeout', %s, false)",
                     (_milliseconds(self.lock_timeout), _milliseconds(self.idle_timeout)))
        known = len(MIGRATIONS)
        result = yield _Query("open", "SELECT to_regclass(%s) IS NOT NULL", (f"{self.s}.meta",))
        if result.rows[0][0] and (yield from self._version()) == known:
            return
        yield _Query("open", "BEGIN ISOLATION LEVEL READ COMMITTED")
        yield _Query("open", self.sql_lock, (self.schema_key,))  # one migrator at a time
        result = yield _Query("open", "SELECT to_regnamespace(%s) IS NOT NULL", (self.s,))
        if not result.rows[0][0]:
            yield _Query("creating the schema", f"CREATE SCHEMA {self.s}")
        yield _Query("creating the schema", f"CREATE TABLE IF NOT EXISTS {self.s}.meta "
                     "(name text PRIMARY KEY, value bigint NOT NULL)")
        yield _Query("creating the schema", f"INSERT INTO {self.s}.meta VALUES "
                     "('schema_version', 0) ON CONFLICT (name) DO NOTHING")
        found = yield from self._version()
        for version in range(found, known):
            for statement in MIGRATIONS[version]:
                yield _Query(f"migrating to schema version {version + 1}",
                             statement.replace("{s}", self.s))
            yield _Query("migrating", f"UPDATE {self.s}.meta SET value = %s "
                         "WHERE name = 'schema_version'", (version + 1,))
        result = yield _Query("open", "COMMIT")
        if result.status != "COMMIT":
            raise StoreError(f"{self.name}: creating or migrating the schema was rolled back")

    def _version(self) -> _Steps[int]:
        result = yield _Query("reading the schema version", f"SELECT value FROM {self.s}.meta "
                              "WHERE name = 'schema_version'")
        value = result.rows[0][0] if result.rows else None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CorruptState(f"{self.name}: the schema version in {self.schema}.meta is "
                               "missing or malformed")
        if value > len(MIGRATIONS):
            raise SchemaTooNew(f"{self.name}: schema {self.schema!r} is at version {value}, "
                             f"newer than this signalish knows ({len(MIGRATIONS)}); "
                             "upgrade signalish on this machine")
        return value

    # --- transactions -------------------------------------------------------------

    def begin(self) -> _Steps[None]:
        yield _Query("begin", "BEGIN ISOLATION LEVEL READ COMMITTED")
        self.tx = _Tx()
        self.generation += 1

    def commit(self) -> _Steps[None]:
        tx = self.tx
        assert tx is not None
        if tx.failure is not None:
            raise type(tx.failure)(f"{tx.failure} (earlier in this transaction; rolled back)") \
                from tx.failure
        result = yield _Query("commit", "COMMIT")
        if result.status != "COMMIT":
            raise StoreError(f"{self.name}: a statement failed in this transaction (the "
                             "application's own, or one whose error was caught): rolled back")

    def end(self) -> None:
        self.tx = None
        self.generation += 1

    def savepoint(self) -> _Steps[None]:
        tx = self.tx
        assert tx is not None
        yield _Query("savepoint", f"SAVEPOINT signalish_{len(tx.savepoints) + 1}")
        tx.savepoints.append((set(tx.locks), dict(tx.identities), tx.failure))

    def release(self) -> _Steps[None]:
        tx = self.tx
        assert tx is not None
        yield _Query("savepoint", f"RELEASE SAVEPOINT signalish_{len(tx.savepoints)}")
        tx.savepoints.pop()

    def rollback_to(self) -> _Steps[None]:
        """Undo an inner block.  PostgreSQL releases the locks taken inside
        it, and its writes and failed statements are gone: forget them, and
        every row read (if this fails, the transaction cannot commit)."""
        tx = self.tx
        assert tx is not None
        name = f"signalish_{len(tx.savepoints)}"
        tx.locks, tx.identities, tx.failure = tx.savepoints.pop()
        tx.sessions.clear()
        tx.prekeys = None
        yield _Query("savepoint", f"ROLLBACK TO SAVEPOINT {name}")
        yield _Query("savepoint", f"RELEASE SAVEPOINT {name}")

    def lock(self, addresses: Iterable[str], prekeys: bool,
             sender_keys: Iterable[tuple[str, UUID]]) -> _Steps[None]:
        tx = self.tx
        if tx is None:
            raise InvalidArgument(f"{self.name}.lock needs a transaction")
        names = {_check_text(a, "an address") for a in addresses}
        records = {(_check_text(s, "a sender"), _check_distribution_id(d))
                   for s, d in sender_keys}
        keys = [self.session_lock(a) for a in sorted(names)]
        if prekeys:
            keys.append(self.ring_key)
        keys += [self.sender_key_lock(s, d) for s, d in sorted(records)]
        wanted = [k for k in dict.fromkeys(keys) if k not in tx.locks]
        if wanted:
            yield _Query("waiting for a lock", self.sql_locks, (wanted,))
            tx.locks.update(wanted)

    # --- identities ---------------------------------------------------------------

    def get_identity(self, address: str) -> _Steps[IdentityKey | None]:
        _check_text(address, "an address")
        result = yield _Query("reading identities",
                              f"SELECT key FROM {self.s}.identities WHERE address = %s", (address,))
        data = bytes(result.rows[0][0]) if result.rows else None
        if self.tx is not None:
            self.tx.identities[address] = data
        return None if data is None else \
            IdentityKey.from_bytes(self.value("identities", address, data))

    def save_identity(self, address: str, key: IdentityKey) -> _Steps[None]:
        tx = self._writing()
        _check_text(address, "an address")
        data = self.row("identities", address, key.to_bytes())
        table = f"{self.s}.identities"
        if address not in tx.identities:  # not read here: a deliberate replacement
            yield _Query("writing identities", f"INSERT INTO {table} VALUES (%s, %s) ON CONFLICT "
                         "(address) DO UPDATE SET key = EXCLUDED.key", (address, data))
        else:
            expected = tx.identities[address]
            if expected is None:
                result = yield _Query(
                    "writing identities", f"INSERT INTO {table} AS t VALUES (%s, %s) ON CONFLICT "
                    "(address) DO UPDATE SET key = EXCLUDED.key WHERE t.key = EXCLUDED.key",
                    (address, data))
            else:
                result = yield _Query(
                    "writing identities",
                    f"UPDATE {table} SET key = %s WHERE address = %s AND key = %s",
                    (data, address, expected))
            if result.rowcount != 1:
                tx.failure = StoreBusy(f"{self.name}: a trusted identity changed in another "
                                       "transaction after this one read it; nothing was "
                                       "written, retry")
                raise tx.failure
        tx.identities[address] = data

    def identity_addresses(self) -> _Steps[list[str]]:
        result = yield _Query("reading identities",
                              f"SELECT address FROM {self.s}.identities ORDER BY address")
        return [row[0] for row in result.rows]

    # --- prekeys ------------------------------------------------------------------

    def _ring(self, tx: _Tx) -> _Steps[dict[bytes, bytes]]:
        yield from self._lock(tx, self.ring_key)
        if tx.prekeys is None:
            result = yield _Query("reading prekey_rows",
                                  f"SELECT part, data FROM {self.s}.prekey_rows")
            tx.prekeys = {bytes(part): bytes(data) for part, data in result.rows}
        return tx.prekeys

    def load_prekeys(self, part: bytes) -> _Steps[bytes | None]:
        part = bytes(part)
        if self.tx is not None:
            data = (yield from self._ring(self.tx)).get(part)
        else:
            result = yield _Query("reading prekey_rows", f"SELECT data FROM {self.s}.prekey_rows "
                                  "WHERE part = %s", (part,))
            data = result.rows[0][0] if result.rows else None
        return None if data is None else self.value("prekey_rows", part.hex(), data)

    def save_prekeys(self, data: bytes, part: bytes) -> _Steps[None]:
        tx, part = self._writing(), bytes(part)
        yield from self._lock(tx, self.ring_key)
        row = self.row("prekey_rows", part.hex(), data)
        yield _Query("writing prekey_rows", f"INSERT INTO {self.s}.prekey_rows VALUES (%s, %s) "
                     "ON CONFLICT (part) DO UPDATE SET data = EXCLUDED.data", (part, row))
        if tx.prekeys is not None:
            tx.prekeys[part] = row

    def delete_prekeys(self, part: bytes) -> _Steps[None]:
        tx, part = self._writing(), bytes(part)
        yield from self._lock(tx, self.ring_key)
        yield _Query("writing prekey_rows", f"DELETE FROM {self.s}.prekey_rows WHERE part = %s",
                     (part,))
        if tx.prekeys is not None:
            tx.prekeys.pop(part, None)

    def prekey_parts(self) -> _Steps[list[bytes]]:
        if self.tx is not None:
            return sorted((yield from self._ring(self.tx)))
        result = yield _Query("reading prekey_rows",
                              f"SELECT part FROM {self.s}.prekey_rows ORDER BY part")
        return [bytes(row[0]) for row in result.rows]

    # --- sessions -----------------------------------------------------------------

    def _session_rows(self, tx: _Tx, address: str) -> _Steps[dict[bytes, bytes]]:
        yield from self._lock(tx, self.session_lock(address))
        rows = tx.sessions.get(address)
        if rows is None:
            result = yield _Query("reading session_rows", f"SELECT part, data FROM "
                                  f"{self.s}.session_rows WHERE address = %s", (address,))
            rows = tx.sessions[address] = {bytes(p): bytes(d) for p, d in result.rows}
        return rows

    def load_session(self, address: str, part: bytes) -> _Steps[bytes | None]:
        _check_text(address, "an address")
        part = bytes(part)
        if self.tx is not None:
            data = (yield from self._session_rows(self.tx, address)).get(part)
        else:
            result = yield _Query("reading session_rows", f"SELECT data FROM {self.s}.session_rows"
                                  " WHERE address = %s AND part = %s", (address, part))
            data = result.rows[0][0] if result.rows else None
        return None if data is None else \
            self.value("session_rows", _session_key(address, part), data)

    def save_session(self, address: str, data: bytes, part: bytes) -> _Steps[None]:
        tx, part = self._writing(), bytes(part)
        _check_text(address, "an address")
        yield from self._lock(tx, self.session_lock(address))
        row = self.row("session_rows", _session_key(address, part), data)
        yield _Query("writing session_rows", f"INSERT INTO {self.s}.session_rows VALUES "
                     "(%s, %s, %s) ON CONFLICT (address, part) DO UPDATE SET data = EXCLUDED.data",
                     (address, part, row))
        rows = tx.sessions.get(address)
        if rows is not None:
            rows[part] = row

    def delete_session(self, address: str, part: bytes | None) -> _Steps[None]:
        tx = self._writing()
        _check_text(address, "an address")
        yield from self._lock(tx, self.session_lock(address))
        table = f"{self.s}.session_rows"
        if part is None:
            yield _Query("writing session_rows", f"DELETE FROM {table} WHERE address = %s",
                         (address,))
            tx.sessions[address] = {}
            return
        part = bytes(part)
        yield _Query("writing session_rows", f"DELETE FROM {table} WHERE address = %s AND "
                     "part = %s", (address, part))
        tx.sessions.get(address, {}).pop(part, None)

    def session_addresses(self) -> _Steps[list[str]]:
        result = yield _Query("reading session_rows", f"SELECT address FROM {self.s}.session_rows "
                              "WHERE part = ''::bytea ORDER BY address")
        return [row[0] for row in result.rows]

    def session_addresses_from(self, prefix: str) -> _Steps[list[str]]:
        result = yield _Query("reading session_rows", f"SELECT address FROM {self.s}.session_rows "
                              "WHERE part = ''::bytea AND starts_with(address, %s) "
                              "ORDER BY address", (prefix,))
        return [row[0] for row in result.rows]

    # --- local data ---------------------------------------------------------------

    def load_local(self, name: str) -> _Steps[bytes | None]:
        _check_text(name, "a local-data name")
        result = yield _Query("reading local", f"SELECT data FROM {self.s}.local WHERE name = %s",
                              (name,))
        return self.value("local", name, result.rows[0][0]) if result.rows else None

    def save_local(self, name: str, data: bytes, reserved_ok: bool) -> _Steps[None]:
        _check_local_name(name, reserved_ok)
        _check_text(name, "a local-data name")
        self._writing()
        yield _Query("writing local", f"INSERT INTO {self.s}.local VALUES (%s, %s) ON CONFLICT "
                     "(name) DO UPDATE SET data = EXCLUDED.data",
                     (name, self.row("local", name, data)))

    def delete_local(self, name: str) -> _Steps[None]:
        _check_text(name, "a local-data name")
        self._writing()
        yield _Query("writing local", f"DELETE FROM {self.s}.local WHERE name = %s", (name,))

    def local_names(self) -> _Steps[list[str]]:
        result = yield _Query("reading local", f"SELECT name FROM {self.s}.local ORDER BY name")
        return [row[0] for row in result.rows]

    # --- sender keys --------------------------------------------------------------

    def load_sender_key(self, sender: str, distribution_id: UUID) -> _Steps[bytes | None]:
        distribution = _check_distribution_id(distribution_id)
        _check_text(sender, "a sender")
        if self.tx is not None:
            yield from self._lock(self.tx, self.sender_key_lock(sender, distribution))
        result = yield _Query("reading sender_keys", f"SELECT data FROM {self.s}.sender_keys "
                              "WHERE sender = %s AND distribution = %s", (sender, distribution_id))
        if not result.rows:
            return None
        return self.value("sender_keys", _sender_key_key(sender, distribution), result.rows[0][0])

    def save_sender_key(self, sender: str, distribution_id: UUID, record: bytes) -> _Steps[None]:
        distribution = _check_distribution_id(distribution_id)
        _check_text(sender, "a sender")
        tx = self._writing()
        yield from self._lock(tx, self.sender_key_lock(sender, distribution))
        row = self.row("sender_keys", _sender_key_key(sender, distribution), record)
        yield _Query("writing sender_keys", f"INSERT INTO {self.s}.sender_keys VALUES "
                     "(%s, %s, %s) ON CONFLICT (sender, distribution) DO UPDATE SET "
                     "data = EXCLUDED.data", (sender, distribution_id, row))

    def delete_sender_key(self, sender: str, distribution_id: UUID) -> _Steps[None]:
        distribution = _check_distribution_id(distribution_id)
        _check_text(sender, "a sender")
        tx = self._writing()
        yield from self._lock(tx, self.sender_key_lock(sender, distribution))
        yield _Query("writing sender_keys", f"DELETE FROM {self.s}.sender_keys WHERE sender = %s "
                     "AND distribution = %s", (sender, distribution_id))

    def sender_key_ids(self) -> _Steps[list[tuple[str, UUID]]]:
        result = yield _Query("reading sender_keys", f"SELECT sender, distribution FROM "
                              f"{self.s}.sender_keys ORDER BY sender, distribution")
        return [(row[0], row[1]) for row in result.rows]


def _connect_timeout(value: object) -> int:
    seconds = _seconds(value, "connect_timeout")
    assert seconds is not None
    return max(2, math.ceil(seconds))  # libpq: whole seconds, 1 counts as 2


class PostgresStore:
    """A :class:`~signalish.Store` (with :class:`~signalish.LocalStore` and
    :class:`~signalish.groups.SenderKeyStore`) in a PostgreSQL database,
    shared by any number of processes on any number of machines.

    ``conninfo``: a libpq connection string or URI.  ``schema``: where the
    tables live (created, or migrated to this code's version, on connect;
    a newer version is refused with :class:`~signalish.StoreError`).
    ``lock_timeout``: seconds a statement waits for a lock before the
    transaction fails with :class:`~signalish.errors.StoreBusy` (``0``: no
    wait).  ``idle_timeout``: seconds an open transaction may sit idle
    before the server ends the session and releases its locks (None: never),
    so that a worker that hangs cannot hold an address forever.
    ``connect_timeout``: seconds to wait for the server at connect.

    Writes happen only inside :meth:`transaction`; nested blocks are
    savepoints and one ``COMMIT`` ends the outermost.  Inside a transaction
    the rows of an address, the prekey ring and each sender-key record are
    locked from first use to the end (see docs/fleet.md for exactly what
    that guarantees).  :attr:`connection` is the psycopg connection, for the
    application's own statements inside the same transaction.

    Errors: a lock wait past ``lock_timeout``, a deadlock or a serialization
    failure is :class:`~signalish.errors.StoreBusy`; an unreachable server
    or a lost connection is :class:`~signalish.StoreError` (the next call
    connects again); a row that fails its check is
    :class:`~signalish.errors.CorruptState`.  In every case nothing of the
    transaction was committed (but see :meth:`transaction` on a connection
    lost during ``COMMIT``), so the call can be retried.  Messages never
    contain stored data.

    ``generation`` is new for every transaction (see docs/fleet.md), so a
    :class:`~signalish.SessionManager` on this store reads its records from
    the database in every call.  One connection per store, usable from any
    thread: transactions from several threads run one at a time.  Open
    stores after ``fork()``, never before.
    """

    def __init__(self, conninfo: str, *, lock_timeout: float = 5.0, schema: str = "signalish",
                 idle_timeout: float | None = 60.0, connect_timeout: float = 10.0) -> None:
        self._core = _Core("PostgresStore", schema, lock_timeout, idle_timeout)
        self._conninfo, self._connect_timeout = conninfo, _connect_timeout(connect_timeout)
        self._pg = _psycopg()
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._cursor: psycopg.Cursor[Any] | None = None
        self._connected()

    # --- the connection -----------------------------------------------------------

    def _connected(self) -> psycopg.Cursor[Any]:
        """The cursor, connecting first if there is no live connection
        (after a lost one, the first call outside a transaction connects)."""
        if self._cursor is not None and self._conn is not None and not self._conn.closed:
            return self._cursor
        self._drop()
        try:
            conn = self._pg.Connection.connect(self._conninfo, autocommit=True,
                                              connect_timeout=self._connect_timeout)
        except self._pg.Error as error:
            raise self._core.connect_error(error) from error
        self._conn, self._cursor = conn, conn.cursor(binary=True)
        try:
            self._drive(self._core.open())
        except BaseException:
            self._drop()
            raise
        return self._cursor

    def _drop(self) -> None:
        conn, self._conn, self._cursor = self._conn, None, None
        if conn is not None:
            try:
                conn.close()
            except self._pg.Error:
                pass

    def _drive(self, steps: _Steps[T]) -> T:
        cursor = self._cursor
        assert cursor is not None and self._conn is not None
        try:
            query = next(steps)
            while True:
                try:
                    cursor.execute(query.sql, query.params)
                    rows = cursor.fetchall() if cursor.description is not None else []
                except self._pg.Error as error:
                    broken = self._conn.broken or self._conn.closed
                    if broken and self._core.tx is None:
                        self._drop()
                    raise self._core.error(query.what, error, broken) from error
                query = steps.send(_Result(rows, cursor.rowcount, cursor.statusmessage))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            steps.close()

    def _run(self, steps: _Steps[T]) -> T:
        with self._lock:
            if self._core.tx is None:
                self._connected()
            return self._drive(steps)

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The psycopg connection (autocommit mode: between transactions
        each statement commits on its own).  Inside :meth:`transaction`, its
        statements join the store's transaction and commit or roll back with
        it; use it only from the thread that opened the transaction, and
        never call its ``commit``, ``rollback`` or ``transaction``."""
        with self._lock:
            if self._core.tx is None:
                self._connected()
            assert self._conn is not None
            return self._conn

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions -------------------------------------------------------------

    @property
    def generation(self) -> int:
        """A new number for every transaction (begun or ended): nothing may
        be cached across transactions (docs/fleet.md)."""
        return self._core.generation

    @property
    def in_transaction(self) -> bool:
        """Whether this thread has a transaction open (a new one would nest
        in it)."""
        return self._core.tx is not None and self._owner == threading.get_ident()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the body as one transaction: on a normal exit its writes
        commit at once; if the body raises, none is kept.  Nested blocks are
        savepoints (an inner block that raises undoes only its own writes,
        and a statement that failed inside it: the outer block may go on);
        nothing commits before the outermost block ends, and never after a
        statement failed outside such an undone block, even if its error
        was caught.

        Raises :class:`~signalish.errors.StoreBusy` when a lock cannot be had
        (nothing written; retry), :class:`~signalish.StoreError` when the
        database cannot be reached or the connection is lost.  A connection
        lost *during* ``COMMIT`` leaves the outcome unknown: the error says
        so; retrying is safe (a decrypt that did commit raises
        :class:`~signalish.errors.DuplicateMessage`, and its ``deliver`` ran
        in that transaction), but nothing the call encrypted may be sent."""
        with self._lock:
            core = self._core
            if core.tx is not None:
                self._drive(core.savepoint())
                try:
                    yield
                except BaseException:
                    try:
                        self._drive(core.rollback_to())
                    except StoreError:
                        pass  # recorded: the outermost block cannot commit
                    raise
                self._drive(core.release())
                return
            self._begin()
            self._owner = threading.get_ident()
            try:
                yield
                self._drive(core.commit())
            except BaseException:
                self._rollback()
                raise
            finally:
                self._owner = None
                core.end()

    def _begin(self) -> None:
        self._connected()
        try:
            self._drive(self._core.begin())
        except StoreError:
            if self._conn is not None:
                raise
            # The connection had died while idle (a server restart, say):
            # nothing was done yet, so connect again and begin once more.
            self._connected()
            self._drive(self._core.begin())

    def _rollback(self) -> None:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            self._drop()
            return
        try:
            conn.execute("ROLLBACK")
        except self._pg.Error:
            self._drop()  # the next call connects again

    def lock(self, addresses: Iterable[str] = (), *, prekeys: bool = False,
             sender_keys: Iterable[tuple[str, UUID]] = ()) -> None:
        """Inside a transaction, take now the locks its later calls would
        take one by one: the session rows of each of ``addresses`` (sorted),
        then the prekey ring, then each (sender, distribution id).  Two
        transactions that take every lock they need this way, in this
        order, cannot deadlock (see docs/fleet.md, "Batches")."""
        self._run(self._core.lock(addresses, prekeys, sender_keys))

    # --- the Store protocol -------------------------------------------------------

    def get_identity(self, address: str) -> IdentityKey | None:
        return self._run(self._core.get_identity(address))

    def save_identity(self, address: str, key: IdentityKey) -> None:
        self._run(self._core.save_identity(address, key))

    def identity_addresses(self) -> list[str]:
        return self._run(self._core.identity_addresses())

    def load_prekeys(self, part: bytes = b"") -> bytes | None:
        return self._run(self._core.load_prekeys(part))

    def save_prekeys(self, data: bytes, part: bytes = b"") -> None:
        self._run(self._core.save_prekeys(data, part))

    def delete_prekeys(self, part: bytes) -> None:
        self._run(self._core.delete_prekeys(part))

    def prekey_parts(self) -> list[bytes]:
        return self._run(self._core.prekey_parts())

    def load_session(self, address: str, part: bytes = b"") -> bytes | None:
        return self._run(self._core.load_session(address, part))

    def save_session(self, address: str, data: bytes, part: bytes = b"") -> None:
        self._run(self._core.save_session(address, data, part))

    def delete_session(self, address: str, part: bytes | None = None) -> None:
        self._run(self._core.delete_session(address, part))

    def session_addresses(self) -> list[str]:
        return self._run(self._core.session_addresses())

    def session_addresses_from(self, prefix: str) -> list[str]:
        """The addresses with a record that start with ``prefix``, sorted
        (the server filters them)."""
        return self._run(self._core.session_addresses_from(prefix))

    def load_local(self, name: str) -> bytes | None:
        """Application data kept beside the protocol state
        (:class:`~signalish.LocalStore`), saved in the same transactions."""
        return self._run(self._core.load_local(name))

    def save_local(self, name: str, data: bytes) -> None:
        self._run(self._core.save_local(name, data, False))

    def _save_reserved(self, name: str, data: bytes) -> None:
        self._run(self._core.save_local(name, data, True))

    def delete_local(self, name: str) -> None:
        self._run(self._core.delete_local(name))

    def local_names(self) -> list[str]:
        return self._run(self._core.local_names())

    def load_sender_key(self, sender: str, distribution_id: UUID) -> bytes | None:
        return self._run(self._core.load_sender_key(sender, distribution_id))

    def save_sender_key(self, sender: str, distribution_id: UUID, record: bytes) -> None:
        self._run(self._core.save_sender_key(sender, distribution_id, record))

    def delete_sender_key(self, sender: str, distribution_id: UUID) -> None:
        self._run(self._core.delete_sender_key(sender, distribution_id))

    def sender_key_ids(self) -> list[tuple[str, UUID]]:
        return self._run(self._core.sender_key_ids())


class AsyncPostgresStore:
    """:class:`PostgresStore` for asyncio (psycopg's ``AsyncConnection``): the
    same tables, locks, checks and errors, every method a coroutine; it
    implements :class:`~signalish.AsyncStore`.  Create it with
    ``await AsyncPostgresStore.connect(conninfo, ...)`` (or construct it
    and ``await store.open()``); close it with :meth:`close`.  The
    arguments are :class:`PostgresStore`'s.

    One store is one connection and serves one flow of calls at a time (an
    :class:`~signalish.AsyncSessionManager` makes one call at a time): a
    transaction opened by one task is the transaction of every call on the
    store until it ends.  For work in parallel, give each task its own
    store.
    """

    def __init__(self, conninfo: str, *, lock_timeout: float = 5.0, schema: str = "signalish",
                 idle_timeout: float | None = 60.0, connect_timeout: float = 10.0) -> None:
        self._core = _Core("AsyncPostgresStore", schema, lock_timeout, idle_timeout)
        self._conninfo, self._connect_timeout = conninfo, _connect_timeout(connect_timeout)
        self._pg = _psycopg()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._cursor: psycopg.AsyncCursor[Any] | None = None

    @classmethod
    async def connect(cls, conninfo: str, *, lock_timeout: float = 5.0,
                      schema: str = "signalish", idle_timeout: float | None = 60.0,
                      connect_timeout: float = 10.0) -> AsyncPostgresStore:
        """A connected store (the schema created or migrated)."""
        store = cls(conninfo, lock_timeout=lock_timeout, schema=schema,
                    idle_timeout=idle_timeout, connect_timeout=connect_timeout)
        await store.open()
        return store

    async def open(self) -> None:
        """Connect, if not connected (every call does this itself)."""
        await self._connected()

    async def _connected(self) -> psycopg.AsyncCursor[Any]:
        if self._cursor is not None and self._conn is not None and not self._conn.closed:
            return self._cursor
        await self._drop()
        try:
            conn = await self._pg.AsyncConnection.connect(
                self._conninfo, autocommit=True, connect_timeout=self._connect_timeout)
        except self._pg.Error as error:
            raise self._core.connect_error(error) from error
        self._conn, self._cursor = conn, conn.cursor(binary=True)
        try:
            await self._drive(self._core.open())
        except BaseException:
            await self._drop()
            raise
        return self._cursor

    async def _drop(self) -> None:
        conn, self._conn, self._cursor = self._conn, None, None
        if conn is not None:
            try:
                await conn.close()
            except self._pg.Error:
                pass

    async def _drive(self, steps: _Steps[T]) -> T:
        cursor = self._cursor
        assert cursor is not None and self._conn is not None
        try:
            query = next(steps)
            while True:
                try:
                    await cursor.execute(query.sql, query.params)
                    rows = await cursor.fetchall() if cursor.description is not None else []
                except self._pg.Error as error:
                    broken = self._conn.broken or self._conn.closed
                    if broken and self._core.tx is None:
                        await self._drop()
                    raise self._core.error(query.what, error, broken) from error
                query = steps.send(_Result(rows, cursor.rowcount, cursor.statusmessage))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            steps.close()

    async def _run(self, steps: _Steps[T]) -> T:
        if self._core.tx is None:
            await self._connected()
        return await self._drive(steps)

    @property
    def connection(self) -> psycopg.AsyncConnection[Any]:
        """The psycopg ``AsyncConnection`` (see :attr:`PostgresStore.connection`);
        :class:`~signalish.StoreError` before the store has connected."""
        if self._conn is None:
            raise StoreError("AsyncPostgresStore: not connected (await store.open() first)")
        return self._conn

    async def close(self) -> None:
        await self._drop()

    async def __aenter__(self) -> AsyncPostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (a new one would nest in it)."""
        return self._core.tx is not None

    async def generation(self) -> int:
        """As :attr:`PostgresStore.generation`: new for every transaction."""
        return self._core.generation

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        core = self._core
        if core.tx is not None:
            await self._drive(core.savepoint())
            try:
                yield
            except BaseException:
                try:
                    await self._drive(core.rollback_to())
                except StoreError:
                    pass  # recorded: the outermost block cannot commit
                raise
            await self._drive(core.release())
            return
        await self._begin()
        try:
            yield
            await self._drive(core.commit())
        except BaseException:
            await self._rollback()
            raise
        finally:
            core.end()

    def transaction(self) -> Any:
        """``async with store.transaction():`` as :meth:`PostgresStore.transaction`."""
        return self._transaction()

    async def _begin(self) -> None:
        await self._connected()
        try:
            await self._drive(self._core.begin())
        except StoreError:
            if self._conn is not None:
                raise
            await self._connected()  # as PostgresStore._begin
            await self._drive(self._core.begin())

    async def _rollback(self) -> None:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            await self._drop()
            return
        try:
            await conn.execute("ROLLBACK")
        except self._pg.Error:
            await self._drop()

    async def lock(self, addresses: Iterable[str] = (), *, prekeys: bool = False,
                   sender_keys: Iterable[tuple[str, UUID]] = ()) -> None:
        """As :meth:`PostgresStore.lock`."""
        await self._run(self._core.lock(addresses, prekeys, sender_keys))

    async def get_identity(self, address: str) -> IdentityKey | None:
        return await self._run(self._core.get_identity(address))

    async def save_identity(self, address: str, key: IdentityKey) -> None:
        await self._run(self._core.save_identity(address, key))

    async def identity_addresses(self) -> list[str]:
        return await self._run(self._core.identity_addresses())

    async def load_prekeys(self, part: bytes = b"") -> bytes | None:
        return await self._run(self._core.load_prekeys(part))

    async def save_prekeys(self, data: bytes, part: bytes = b"") -> None:
        await self._run(self._core.save_prekeys(data, part))

    async def delete_prekeys(self, part: bytes) -> None:
        await self._run(self._core.delete_prekeys(part))

    async def prekey_parts(self) -> list[bytes]:
        return await self._run(self._core.prekey_parts())

    async def load_session(self, address: str, part: bytes = b"") -> bytes | None:
        return await self._run(self._core.load_session(address, part))

    async def save_session(self, address: str, data: bytes, part: bytes = b"") -> None:
        await self._run(self._core.save_session(address, data, part))

    async def delete_session(self, address: str, part: bytes | None = None) -> None:
        await self._run(self._core.delete_session(address, part))

    async def session_addresses(self) -> list[str]:
        return await self._run(self._core.session_addresses())

    async def session_addresses_from(self, prefix: str) -> list[str]:
        return await self._run(self._core.session_addresses_from(prefix))

    async def load_local(self, name: str) -> bytes | None:
        return await self._run(self._core.load_local(name))

    async def save_local(self, name: str, data: bytes) -> None:
        await self._run(self._core.save_local(name, data, False))

    async def _save_reserved(self, name: str, data: bytes) -> None:
        await self._run(self._core.save_local(name, data, True))

    async def delete_local(self, name: str) -> None:
        await self._run(self._core.delete_local(name))

    async def local_names(self) -> list[str]:
        return await self._run(self._core.local_names())

    async def load_sender_key(self, sender: str, distribution_id: UUID) -> bytes | None:
        return await self._run(self._core.load_sender_key(sender, distribution_id))

    async def save_sender_key(self, sender: str, distribution_id: UUID, record: bytes) -> None:
        await self._run(self._core.save_sender_key(sender, distribution_id, record))

    async def delete_sender_key(self, sender: str, distribution_id: UUID) -> None:
        await self._run(self._core.delete_sender_key(sender, distribution_id))

    async def sender_key_ids(self) -> list[tuple[str, UUID]]:
        return await self._run(self._core.sender_key_ids())
