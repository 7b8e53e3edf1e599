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
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol, runtime_checkable

from ._errors import CorruptState, InvalidArgument
from ._keys import IdentityKey

__all__ = ["IdentityStore", "PreKeyStore", "SessionStore", "Store", "MemoryStore", "SQLiteStore"]


@runtime_checkable
class IdentityStore(Protocol):
    """Peers' identity keys as last trusted (libsignal's IdentityKeyStore)."""

    def get_identity(self, address: str) -> IdentityKey | None: ...

    def save_identity(self, address: str, key: IdentityKey) -> None: ...

    def identity_addresses(self) -> list[str]: ...


@runtime_checkable
class PreKeyStore(Protocol):
    """The local :class:`~signalish.PreKeyRing`, serialized."""

    def load_prekeys(self) -> bytes | None: ...

    def save_prekeys(self, data: bytes) -> None: ...


@runtime_checkable
class SessionStore(Protocol):
    """One serialized :class:`~signalish.SessionRecord` per peer address."""

    def load_session(self, address: str) -> bytes | None: ...

    def save_session(self, address: str, data: bytes) -> None: ...

    def delete_session(self, address: str) -> None: ...

    def session_addresses(self) -> list[str]: ...


@runtime_checkable
class Store(IdentityStore, PreKeyStore, SessionStore, Protocol):
    """All three, plus a transaction that makes their writes atomic."""

    def transaction(self) -> AbstractContextManager[None]: ...


class MemoryStore:
    """Everything in dictionaries.  A transaction that raises is rolled back."""

    def __init__(self) -> None:
        self._identities: dict[str, IdentityKey] = {}
        self._prekeys: bytes | None = None
        self._sessions: dict[str, bytes] = {}

    @contextmanager
    def transaction(self) -> Iterator[None]:
        saved = (dict(self._identities), self._prekeys, dict(self._sessions))
        try:
            yield
        except BaseException:
            self._identities, self._prekeys, self._sessions = saved
            raise

    def get_identity(self, address: str) -> IdentityKey | None:
        return self._identities.get(address)

    def save_identity(self, address: str, key: IdentityKey) -> None:
        self._identities[address] = key

    def identity_addresses(self) -> list[str]:
        return sorted(self._identities)

    def load_prekeys(self) -> bytes | None:
        return self._prekeys

    def save_prekeys(self, data: bytes) -> None:
        self._prekeys = bytes(data)

    def load_session(self, address: str) -> bytes | None:
        return self._sessions.get(address)

    def save_session(self, address: str, data: bytes) -> None:
        self._sessions[address] = bytes(data)

    def delete_session(self, address: str) -> None:
        self._sessions.pop(address, None)

    def session_addresses(self) -> list[str]:
        return sorted(self._sessions)


_ROW_CHECK = 16


def _row_check(table: str, key: str, value: bytes) -> bytes:
    return hashlib.sha256(b"signalish row\x00" + table.encode() + b"\x00" + key.encode()
                          + b"\x00" + value).digest()[:_ROW_CHECK]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS identities (address TEXT PRIMARY KEY, key BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS prekeys (id INTEGER PRIMARY KEY CHECK (id = 1), data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (address TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS local (name TEXT PRIMARY KEY, data BLOB NOT NULL);
"""


class SQLiteStore:
    """A store in one SQLite file (standard library ``sqlite3``).

    Writes happen only inside :meth:`transaction` (``BEGIN IMMEDIATE`` ...
    ``COMMIT``), in WAL mode with ``synchronous=FULL``, so a committed
    transaction survives a crash and an uncommitted one leaves no trace.
    Every row carries a 16-byte SHA-256 check over its table, key and value:
    a damaged row, or a row moved to another address, reads as
    :class:`~signalish.CorruptState`, never as different data.
    One connection per store; not for use from several threads at once.
    """

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._in_transaction = False

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_transaction:
            raise InvalidArgument("SQLiteStore transactions do not nest")
        self._db.execute("BEGIN IMMEDIATE")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._in_transaction = False

    def _write(self, sql: str, key: str, value: bytes, table: str) -> None:
        if not self._in_transaction:
            raise InvalidArgument("SQLiteStore writes must happen inside transaction()")
        self._db.execute(sql, (key, value + _row_check(table, key, value)))

    def _read(self, sql: str, key: str, table: str) -> bytes | None:
        row = self._db.execute(sql, (key,)).fetchone()
        if row is None:
            return None
        data = bytes(row[0])
        value, check = data[:-_ROW_CHECK], data[-_ROW_CHECK:]
        if len(data) < _ROW_CHECK or not hmac.compare_digest(check, _row_check(table, key, value)):
            raise CorruptState(f"SQLiteStore: the {table} row for {key!r} failed its integrity check")
        return value

    def get_identity(self, address: str) -> IdentityKey | None:
        data = self._read("SELECT key FROM identities WHERE address = ?", address, "identities")
        return None if data is None else IdentityKey.from_bytes(data)

    def save_identity(self, address: str, key: IdentityKey) -> None:
        self._write("INSERT OR REPLACE INTO identities VALUES (?, ?)", address, key.to_bytes(),
                    "identities")

    def load_prekeys(self) -> bytes | None:
        return self._read("SELECT data FROM prekeys WHERE id = ?", "1", "prekeys")

    def save_prekeys(self, data: bytes) -> None:
        self._write("INSERT OR REPLACE INTO prekeys VALUES (?, ?)", "1", data, "prekeys")

    def load_session(self, address: str) -> bytes | None:
        return self._read("SELECT data FROM sessions WHERE address = ?", address, "sessions")

    def save_session(self, address: str, data: bytes) -> None:
        self._write("INSERT OR REPLACE INTO sessions VALUES (?, ?)", address, data, "sessions")

    def delete_session(self, address: str) -> None:
        if not self._in_transaction:
            raise InvalidArgument("SQLiteStore writes must happen inside transaction()")
        self._db.execute("DELETE FROM sessions WHERE address = ?", (address,))

    def session_addresses(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT address FROM sessions ORDER BY address")]

    def identity_addresses(self) -> list[str]:
        return [row[0] for row in
                self._db.execute("SELECT address FROM identities ORDER BY address")]

    def load_local(self, name: str) -> bytes | None:
        """Application data kept beside the protocol state (for example the
        serialized :class:`~signalish.IdentityKeyPair`)."""
        return self._read("SELECT data FROM local WHERE name = ?", name, "local")

    def save_local(self, name: str, data: bytes) -> None:
        self._write("INSERT OR REPLACE INTO local VALUES (?, ?)", name, data, "local")
