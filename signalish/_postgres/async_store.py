""":class:`AsyncPostgresStore`: the PostgreSQL store for asyncio (psycopg's
``AsyncConnection``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .._async_store import FLOW
from .._errors import InvalidArgument, StoreError
from .._keys import IdentityKey
from .base import T, _check_process, _connect_timeout, _psycopg, _Result, _Steps
from .core import _Core

if TYPE_CHECKING:
    import psycopg

__all__ = ["AsyncPostgresStore"]


class AsyncPostgresStore:
    """:class:`PostgresStore` for asyncio (psycopg's ``AsyncConnection``): the
    same tables, locks, checks and errors, every method a coroutine; it
    implements :class:`~signalish.AsyncStore`.  Create it with
    ``await AsyncPostgresStore.connect(conninfo, ...)`` (or construct it
    and ``await store.open()``); close it with :meth:`close`.  The
    arguments are :class:`PostgresStore`'s.

    One store is one connection and serves one flow of calls at a time (an
    :class:`~signalish.AsyncSessionManager` makes one call at a time): a
    transaction opened by one task is the transaction of every call of that
    task on the store until it ends, and a transaction another task opens
    meanwhile raises :class:`~signalish.errors.InvalidArgument` (it would
    otherwise be mixed into the open one).  For work in parallel, give each
    task its own store.
    """

    def __init__(self, conninfo: str, *, lock_timeout: float = 5.0, schema: str = "signalish",
                 idle_timeout: float | None = 60.0, connect_timeout: float = 10.0) -> None:
        self._flow: object | None = None  # the flow of the open transaction (FLOW)
        self._core = _Core("AsyncPostgresStore", schema, lock_timeout, idle_timeout)
        self._conninfo, self._connect_timeout = conninfo, _connect_timeout(connect_timeout)
        self._pg = _psycopg()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._cursor: psycopg.AsyncCursor[Any] | None = None
        self._pid: int | None = None  # the process that connected

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
        _check_process(self._pid, "AsyncPostgresStore")
        if self._cursor is not None and self._conn is not None and not self._conn.closed:
            return self._cursor
        await self._drop()
        try:
            conn = await self._pg.AsyncConnection.connect(
                self._conninfo, autocommit=True, connect_timeout=self._connect_timeout)
        except self._pg.Error as error:
            raise self._core.connect_error(error) from error
        self._conn, self._cursor = conn, conn.cursor(binary=True)
        self._pid = os.getpid()
        try:
            await self._drive(self._core.open())
        except BaseException:
            await self._drop()
            raise
        return self._cursor

    async def _drop(self) -> None:
        conn, self._conn, self._cursor = self._conn, None, None
        if conn is not None and self._pid == os.getpid():  # never another process's
            try:
                await conn.close()
            except self._pg.Error:
                pass

    async def _drive(self, steps: _Steps[T]) -> T:
        _check_process(self._pid, "AsyncPostgresStore")
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
        flow = FLOW.get()
        if self._flow is not None:  # a transaction is open, or opening
            if flow is not self._flow:
                # Another task's: nesting in it would mix the two tasks'
                # writes (and their managers' caches) into one transaction,
                # and two BEGINs on one connection would race.
                raise InvalidArgument("this AsyncPostgresStore has a transaction open for "
                                      "another task; give each task its own store")
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
        token = None
        if flow is None:  # the application's own block: its task's calls carry this
            flow = object()
            token = FLOW.set(flow)
        self._flow = flow
        try:
            await self._begin()
            try:
                yield
                await self._drive(core.commit())
            except BaseException:
                await self._rollback()
                raise
            finally:
                core.end()
        finally:
            self._flow = None
            if token is not None:
                try:
                    FLOW.reset(token)
                except ValueError:
                    pass  # left from another task than it was entered from

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
