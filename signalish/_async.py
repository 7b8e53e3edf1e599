"""The asyncio API: :class:`AsyncSessionManager` over an
:class:`~signalish._async_store.AsyncStore`, and :class:`AsyncSQLiteStore`.

There is one protocol core, and it is synchronous: an
:class:`AsyncSessionManager` runs a :class:`~signalish.SessionManager` (the
same object, the same code) in a worker thread, so the event loop never
waits on a derivation, and the two APIs cannot drift apart.  Its store is
an :class:`AsyncStore`: every store call the synchronous manager makes is
handed back to the event loop (:class:`_LoopBridge`), so an asyncio driver
such as psycopg's ``AsyncConnection`` does the I/O on the loop, and a
``deliver`` coroutine can use the same store inside the same transaction.
A store that runs in a thread of its own anyway (:class:`AsyncSQLiteStore`)
has the manager run in that thread, over the synchronous store, so that a
call crosses threads once and not once per row; a ``deliver`` coroutine's
calls to that store are then run by the waiting thread, inside the
transaction.

One :class:`AsyncSessionManager` runs one call at a time (calls wait their
turn on an :class:`asyncio.Lock`), as one :class:`~signalish.SessionManager`
serves one thread at a time; for calls in parallel, give each task its own
manager and store connection (the stores' transactions and, for
PostgreSQL, its locks keep them from stepping on each other).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from uuid import UUID

from ._async_store import FLOW, AsyncStore
from ._bundle import PreKeyBundle
from ._devices import Address, DeviceMessages
from ._errors import InvalidArgument
from ._keys import IdentityKey, IdentityKeyPair
from ._manager import Outcome, SessionManager
from ._prekeys import PreKeyIds, PreKeyRing, Upload, UpkeepPolicy
from ._profile import NATIVE, Profile
from ._stores import SQLiteStore

__all__ = ["AsyncSessionManager", "AsyncSQLiteStore"]

T = TypeVar("T")

#: Set in a deliver coroutine's context to the AsyncSQLiteStore whose thread
#: is waiting for it: that store's calls from it are run by that thread.
_SERVED: contextvars.ContextVar[AsyncSQLiteStore | None] = contextvars.ContextVar(
    "signalish_served_store", default=None)
#: Set in a deliver coroutine's context to a token of the manager call that
#: waits for it: a call to that same manager from there, while that call
#: runs, would wait for itself.  (A task the coroutine starts inherits the
#: token; once that call has ended, its calls are ordinary ones.)
_DELIVERING: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "signalish_delivering", default=None)


class _LoopBridge:
    """A synchronous :class:`~signalish.Store` (with local data and sender
    keys) whose every call runs the :class:`AsyncStore`'s coroutine on the
    event loop and waits for it.  Used only from the manager's worker
    thread, never from the loop's own thread (that would deadlock, so it is
    refused)."""

    def __init__(self, store: AsyncStore) -> None:
        self.store = store
        self.loop: asyncio.AbstractEventLoop | None = None
        self._depth = 0

    @property
    def _shared_store(self) -> AsyncStore:
        """The store this one stands for: SessionManager keys its record of
        running calls by it, so that managers on one asyncio store, each
        with its own bridge, see each other's calls nested in their own."""
        return self.store

    def _run(self, coroutine: Coroutine[Any, Any, T],
             loop: asyncio.AbstractEventLoop | None = None) -> T:
        loop = loop or self.loop
        if loop is None:
            coroutine.close()
            raise InvalidArgument("the asyncio store is used outside an AsyncSessionManager call")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            coroutine.close()
            raise InvalidArgument("a synchronous store call on the event loop's own thread")
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    # transactions
    def transaction(self) -> AbstractContextManager[None]:
        return _BridgedTransaction(self)

    @property
    def in_transaction(self) -> bool:
        """Whether the asyncio store has a transaction open (the
        application's, or another manager's call's), or, for a store that
        does not say, whether this bridge has."""
        shared = getattr(self.store, "in_transaction", None)
        return shared if isinstance(shared, bool) else self._depth > 0

    @property
    def generation(self) -> int:
        return self._run(self.store.generation())

    # identities
    def get_identity(self, address: str) -> IdentityKey | None:
        return self._run(self.store.get_identity(address))

    def save_identity(self, address: str, key: IdentityKey) -> None:
        self._run(self.store.save_identity(address, key))

    def identity_addresses(self) -> list[str]:
        return self._run(self.store.identity_addresses())

    # prekeys
    def load_prekeys(self, part: bytes = b"") -> bytes | None:
        return self._run(self.store.load_prekeys(part))

    def save_prekeys(self, data: bytes, part: bytes = b"") -> None:
        self._run(self.store.save_prekeys(data, part))

    def delete_prekeys(self, part: bytes) -> None:
        self._run(self.store.delete_prekeys(part))

    def prekey_parts(self) -> list[bytes]:
        return self._run(self.store.prekey_parts())

    # sessions
    def load_session(self, address: str, part: bytes = b"") -> bytes | None:
        return self._run(self.store.load_session(address, part))

    def save_session(self, address: str, data: bytes, part: bytes = b"") -> None:
        self._run(self.store.save_session(address, data, part))

    def delete_session(self, address: str, part: bytes | None = None) -> None:
        self._run(self.store.delete_session(address, part))

    def session_addresses(self) -> list[str]:
        return self._run(self.store.session_addresses())

    def session_addresses_from(self, prefix: str) -> list[str]:
        lister = getattr(self.store, "session_addresses_from", None)
        if lister is None:
            return [a for a in self.session_addresses() if a.startswith(prefix)]
        found: list[str] = self._run(lister(prefix))
        return found

    # local data
    def load_local(self, name: str) -> bytes | None:
        return self._run(self.store.load_local(name))

    def save_local(self, name: str, data: bytes) -> None:
        self._run(self.store.save_local(name, data))

    def _save_reserved(self, name: str, data: bytes) -> None:
        """The library's own local data (names under ``signalish:``), which
        the built-in stores' ``save_local`` refuses from applications."""
        save = getattr(self.store, "_save_reserved", None)
        self._run(save(name, data) if save is not None else self.store.save_local(name, data))

    def delete_local(self, name: str) -> None:
        self._run(self.store.delete_local(name))

    def local_names(self) -> list[str]:
        return self._run(self.store.local_names())

    # sender keys
    def load_sender_key(self, sender: str, distribution_id: UUID) -> bytes | None:
        return self._run(self.store.load_sender_key(sender, distribution_id))

    def save_sender_key(self, sender: str, distribution_id: UUID, record: bytes) -> None:
        self._run(self.store.save_sender_key(sender, distribution_id, record))

    def delete_sender_key(self, sender: str, distribution_id: UUID) -> None:
        self._run(self.store.delete_sender_key(sender, distribution_id))

    def sender_key_ids(self) -> list[tuple[str, UUID]]:
        return self._run(self.store.sender_key_ids())


class _BridgedTransaction:
    """The AsyncStore's ``async with store.transaction()``, entered and left
    on the loop for the manager's thread."""

    __slots__ = ("_bridge", "_context", "_loop")

    def __init__(self, bridge: _LoopBridge) -> None:
        self._bridge = bridge

    def __enter__(self) -> None:
        # Left on the loop it was entered on, whatever happens meanwhile.
        self._loop = self._bridge.loop
        self._context = self._bridge.store.transaction()
        self._bridge._run(self._context.__aenter__(), self._loop)
        self._bridge._depth += 1

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._bridge._depth -= 1
        self._bridge._run(self._context.__aexit__(kind, error, trace), self._loop)


class AsyncSQLiteStore:
    """:class:`~signalish.SQLiteStore` for asyncio: the same file format and
    guarantees, every call run in one thread of its own (so the loop never
    waits on SQLite, and the store's transactions stay in the thread that
    opened them).  ``path``, ``timeout`` and ``min_generation`` are
    :class:`~signalish.SQLiteStore`'s.  Close it with :meth:`close`.

    It implements :class:`AsyncStore`."""

    def __init__(self, path: str | Path, *, timeout: float = 5.0,
                 min_generation: int = 0) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="signalish-sqlite")
        self.sync = self._executor.submit(
            SQLiteStore, path, timeout=timeout, min_generation=min_generation).result()
        # While the store's thread waits for a deliver coroutine: the calls
        # that coroutine makes, for the thread to run (None when it is not
        # waiting; set and cleared under the lock, so that no call is queued
        # after the thread stopped reading).
        self._serving: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]
                                         | None] | None = None
        self._serving_lock = threading.Lock()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in the store's thread (where ``fn`` may
        use :attr:`sync`, the :class:`~signalish.SQLiteStore`)."""
        call = functools.partial(fn, *args, **kwargs)
        if _SERVED.get() is self:
            done: concurrent.futures.Future[T] = concurrent.futures.Future()
            with self._serving_lock:
                inbox = self._serving
                if inbox is not None:
                    inbox.put((call, done))
            if inbox is not None:
                return await asyncio.wrap_future(done)
            # The deliver coroutine has ended: this call is no longer part
            # of its transaction, and waits its turn like any other.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, call)

    def _wait_serving(self, coroutine: Callable[[], Coroutine[Any, Any, None]],
                      loop: asyncio.AbstractEventLoop) -> None:
        """In the store's thread: run ``coroutine()`` on the loop and wait for
        it, running the calls it makes to this store meanwhile (they belong
        to the transaction this thread holds)."""
        inbox: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]
                                 | None] = queue.SimpleQueue()

        async def served() -> None:
            _SERVED.set(self)
            await coroutine()

        def finished(_: object) -> None:
            with self._serving_lock:
                self._serving = None
                inbox.put(None)

        with self._serving_lock:
            self._serving = inbox
        try:
            future = asyncio.run_coroutine_threadsafe(served(), loop)
            future.add_done_callback(finished)
            while (item := inbox.get()) is not None:
                call, done = item
                if done.set_running_or_notify_cancel():
                    try:
                        done.set_result(call())
                    except BaseException as error:
                        done.set_exception(error)
        finally:
            with self._serving_lock:
                self._serving = None
        future.result()

    async def close(self) -> None:
        await self.run(self.sync.close)
        self._executor.shutdown(wait=True)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        context = self.sync.transaction()
        await self.run(context.__enter__)
        try:
            yield
        except BaseException as error:
            if not await self.run(context.__exit__, type(error), error, error.__traceback__):
                raise
        else:
            await self.run(context.__exit__, None, None, None)

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """``async with store.transaction():`` as SQLiteStore's (nested
        blocks are savepoints), entered and left in the store's thread."""
        return self._transaction()

    async def generation(self) -> int:
        return await self.run(lambda: self.sync.generation)

    async def get_identity(self, address: str) -> IdentityKey | None:
        return await self.run(self.sync.get_identity, address)

    async def save_identity(self, address: str, key: IdentityKey) -> None:
        await self.run(self.sync.save_identity, address, key)

    async def identity_addresses(self) -> list[str]:
        return await self.run(self.sync.identity_addresses)

    async def load_prekeys(self, part: bytes = b"") -> bytes | None:
        return await self.run(self.sync.load_prekeys, part)

    async def save_prekeys(self, data: bytes, part: bytes = b"") -> None:
        await self.run(self.sync.save_prekeys, data, part)

    async def delete_prekeys(self, part: bytes) -> None:
        await self.run(self.sync.delete_prekeys, part)

    async def prekey_parts(self) -> list[bytes]:
        return await self.run(self.sync.prekey_parts)

    async def load_session(self, address: str, part: bytes = b"") -> bytes | None:
        return await self.run(self.sync.load_session, address, part)

    async def save_session(self, address: str, data: bytes, part: bytes = b"") -> None:
        await self.run(self.sync.save_session, address, data, part)

    async def delete_session(self, address: str, part: bytes | None = None) -> None:
        await self.run(self.sync.delete_session, address, part)

    async def session_addresses(self) -> list[str]:
        return await self.run(self.sync.session_addresses)

    async def session_addresses_from(self, prefix: str) -> list[str]:
        return await self.run(self.sync.session_addresses_from, prefix)

    async def load_local(self, name: str) -> bytes | None:
        return await self.run(self.sync.load_local, name)

    async def save_local(self, name: str, data: bytes) -> None:
        await self.run(self.sync.save_local, name, data)

    async def _save_reserved(self, name: str, data: bytes) -> None:
        await self.run(self.sync._save_reserved, name, data)

    async def delete_local(self, name: str) -> None:
        await self.run(self.sync.delete_local, name)

    async def local_names(self) -> list[str]:
        return await self.run(self.sync.local_names)

    async def load_sender_key(self, sender: str, distribution_id: UUID) -> bytes | None:
        return await self.run(self.sync.load_sender_key, sender, distribution_id)

    async def save_sender_key(self, sender: str, distribution_id: UUID, record: bytes) -> None:
        await self.run(self.sync.save_sender_key, sender, distribution_id, record)

    async def delete_sender_key(self, sender: str, distribution_id: UUID) -> None:
        await self.run(self.sync.delete_sender_key, sender, distribution_id)

    async def sender_key_ids(self) -> list[tuple[str, UUID]]:
        return await self.run(self.sync.sender_key_ids)


async def _finish(work: asyncio.Future[T]) -> T:
    """Await ``work`` (a call running in a thread) to its end, even if the
    awaiting task is cancelled meanwhile: the thread cannot be stopped, and
    the manager and its store stay taken until it is done (another call in
    the meantime would run inside its transaction, or race it).  A
    cancellation is re-raised once the call has ended; the call may have
    committed (a decrypt that was cancelled may have consumed its message:
    save plaintexts with ``deliver``)."""
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(work)
        except asyncio.CancelledError:
            if work.done():
                raise
            cancelled = True
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result


class AsyncSessionManager:
    """:class:`~signalish.SessionManager` for asyncio: the same methods, as
    coroutines, over an :class:`AsyncStore`.  Every argument but ``store``
    is :class:`~signalish.SessionManager`'s, and every method means what the
    synchronous one of the same name means (and raises what it raises).

    ``deliver`` callbacks may be coroutine functions; they run on the loop,
    inside the store transaction, before it commits.  :attr:`manager` is the
    synchronous manager inside (call it only through this object).
    """

    def __init__(self, identity: IdentityKeyPair, store: AsyncStore,
                 profile: Profile = NATIVE, **options: Any) -> None:
        if not isinstance(store, AsyncStore) or not all(
                asyncio.iscoroutinefunction(getattr(store, name))
                for name in ("generation", "load_session", "save_session", "get_identity")):
            raise InvalidArgument("AsyncSessionManager takes an AsyncStore (coroutine methods); "
                                  "a synchronous store goes to SessionManager")
        self.store = store
        self._lock = asyncio.Lock()
        # Tokens of this manager's calls now waiting for a deliver coroutine.
        self._delivering: set[object] = set()
        self._bridge: _LoopBridge | None = None
        if isinstance(store, AsyncSQLiteStore):
            self._direct: AsyncSQLiteStore | None = store
            sync_store: Any = store.sync
        else:
            self._direct = None
            self._bridge = sync_store = _LoopBridge(store)
        self.manager = SessionManager(identity, sync_store, profile, **options)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if _DELIVERING.get() in self._delivering:
            raise InvalidArgument("a deliver callback of an AsyncSessionManager call cannot call "
                                  "the same manager (it would wait for itself); use another "
                                  "manager, or act after the call returns")
        async with self._lock:
            # This call's flow (see FLOW), unless it runs inside one already
            # (the application's transaction, or a deliver callback's call).
            token = FLOW.set(object()) if FLOW.get() is None else None
            try:
                if self._direct is not None:
                    work = asyncio.ensure_future(self._direct.run(fn, *args, **kwargs))
                else:
                    assert self._bridge is not None
                    self._bridge.loop = asyncio.get_running_loop()
                    work = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
            finally:
                if token is not None:
                    FLOW.reset(token)  # the work took a copy of the context
            try:
                return await _finish(work)
            finally:
                if self._bridge is not None:
                    self._bridge.loop = None

    async def _delivering_call(self, fn: Callable[..., T], *args: Any,
                               deliver: Callable[..., Any] | None, **kwargs: Any) -> T:
        """:meth:`_call` of a method that takes ``deliver``: the coroutine
        runs on the loop, and while this call runs it may not call this
        manager (see _DELIVERING)."""
        token = object()
        self._delivering.add(token)
        try:
            return await self._call(fn, *args, deliver=self._on_loop(deliver, token), **kwargs)
        finally:
            self._delivering.discard(token)

    def _on_loop(self, callback: Callable[..., Any] | None,
                 token: object) -> Callable[..., None] | None:
        """A deliver callback for the worker thread: a coroutine function
        runs on the loop, and the thread waits for it; ``token`` names the
        call (see _DELIVERING)."""
        if callback is None or not asyncio.iscoroutinefunction(callback):
            return callback
        loop = asyncio.get_running_loop()
        direct = self._direct

        async def delivering(*args: Any) -> None:
            _DELIVERING.set(token)
            await callback(*args)

        def run(*args: Any) -> None:
            if direct is not None:
                direct._wait_serving(lambda: delivering(*args), loop)
            else:
                asyncio.run_coroutine_threadsafe(delivering(*args), loop).result()

        return run

    # --- the methods ----------------------------------------------------------

    def message_type(self, message: bytes) -> int:
        return self.manager.message_type(message)

    def decryption_error(self, message: bytes, *, timestamp: int, device_id: int) -> bytes:
        return self.manager.decryption_error(message, timestamp=timestamp, device_id=device_id)

    async def initiate(self, address: Address, bundle: PreKeyBundle, *,
                       kem_encapsulation: tuple[bytes, bytes] | None = None) -> None:
        await self._call(self.manager.initiate, address, bundle,
                         kem_encapsulation=kem_encapsulation)

    async def encrypt(self, address: Address, plaintext: bytes) -> bytes:
        return await self._call(self.manager.encrypt, address, plaintext)

    async def decrypt(self, address: Address, message: bytes, *, now: int,
                      deliver: Callable[[bytes], None | Awaitable[None]] | None = None) -> bytes:
        return await self._delivering_call(self.manager.decrypt, address, message, now=now,
                                           deliver=deliver)

    async def decrypt_batch(self, messages: Sequence[tuple[Address, bytes]], *, now: int,
                            deliver: Callable[[Address, bytes], None | Awaitable[None]]
                            | None = None) -> list[Outcome]:
        return await self._delivering_call(self.manager.decrypt_batch, messages, now=now,
                                           deliver=deliver)

    async def has_session(self, address: Address, *, current: bool = False) -> bool:
        return await self._call(self.manager.has_session, address, current=current)

    async def archive_session(self, address: Address) -> bool:
        return await self._call(self.manager.archive_session, address)

    async def delete_sessions(self, address: Address) -> bool:
        return await self._call(self.manager.delete_sessions, address)

    async def process_decryption_error(self, address: Address, data: bytes) -> bool:
        return await self._call(self.manager.process_decryption_error, address, data)

    async def export_session(self, address: Address) -> bytes | None:
        return await self._call(self.manager.export_session, address)

    async def trust_identity(self, address: Address, key: IdentityKey) -> None:
        await self._call(self.manager.trust_identity, address, key)

    async def mark_restored(self, *, now: int, next_ids: PreKeyIds | None = None) -> Upload:
        return await self._call(self.manager.mark_restored, now=now, next_ids=next_ids)

    async def upkeep(self, *, now: int, policy: UpkeepPolicy = UpkeepPolicy(),
                     server_one_time: int | None = None,
                     server_kem: int | None = None) -> Upload:
        return await self._call(self.manager.upkeep, now=now, policy=policy,
                                server_one_time=server_one_time, server_kem=server_kem)

    async def with_prekeys(self, now: int, change: Callable[[PreKeyRing], T]) -> T:
        """``change(ring)`` inside :meth:`SessionManager.prekeys
        <signalish.SessionManager.prekeys>` (one transaction, in the worker
        thread): the asyncio form of ``with manager.prekeys(now=now) as ring``.
        Returns what ``change`` returns."""
        def run() -> T:
            with self.manager.prekeys(now=now) as ring:
                return change(ring)

        return await self._call(run)

    async def devices(self, user: str) -> list[int]:
        return await self._call(self.manager.devices, user)

    async def encrypt_to_devices(self, user: str, plaintext: bytes,
                                 device_ids: Iterable[int] | None = None, *,
                                 exclude: int | None = None) -> DeviceMessages:
        return await self._call(self.manager.encrypt_to_devices, user, plaintext, device_ids,
                                exclude=exclude)

    async def update_devices(self, user: str, *, missing: Mapping[int, PreKeyBundle] = {},
                             extra: Iterable[int] = (), stale: Iterable[int] = ()) -> None:
        await self._call(self.manager.update_devices, user, missing=missing, extra=extra,
                         stale=stale)

    async def registration_id(self, address: Address) -> int | None:
        return await self._call(self.manager.registration_id, address)
