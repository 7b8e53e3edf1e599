""":class:`_Core`: the PostgreSQL stores without I/O.  Every store method is
a generator of queries (statements, lock keys, row checks, transaction
state); :class:`~signalish._postgres.sync.PostgresStore` and
:class:`~signalish._postgres.async_store.AsyncPostgresStore` carry them to
psycopg and back.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from .._errors import (
    CorruptState,
    InvalidArgument,
    SchemaTooNew,
    StoreBusy,
    StoreError,
    StoreUnavailable,
)
from .._keys import IdentityKey
from .._stores.protocols import _check_distribution_id, _check_local_name
from .._stores.rows import _ROW_CHECK, _row_check, _sender_key_key, _session_key
from .base import (
    _BUSY_STATES,
    _GONE_STATES,
    _SCHEMA_NAME,
    MIGRATIONS,
    _check_text,
    _milliseconds,
    _psycopg,
    _Query,
    _seconds,
    _Steps,
    _Tx,
)

__all__: list[str] = []



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
