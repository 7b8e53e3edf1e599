"""The asyncio API: AsyncSessionManager runs the one synchronous core in a
worker thread, over an AsyncStore whose I/O happens on the loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from signalish import (
    LIBSIGNAL_V3,
    NATIVE,
    DeterministicRandom,
    IdentityKeyPair,
    MemoryStore,
    Profile,
    SessionManager,
    SQLiteStore,
)
from signalish._async import AsyncSessionManager, AsyncSQLiteStore, _LoopBridge
from signalish._async_store import AsyncStore
from signalish.errors import DuplicateMessage, InvalidArgument
from sessions import message_key_id

NOW = 1_700_000_000


class AsyncMemoryStore:
    """A MemoryStore behind coroutines: an AsyncStore that is not
    AsyncSQLiteStore, so AsyncSessionManager reaches it through its loop
    bridge (as it reaches PostgreSQL's asyncio store)."""

    def __init__(self) -> None:
        self.sync = MemoryStore()
        self.calls = 0

    def transaction(self) -> Any:
        store = self

        class Block:
            async def __aenter__(self) -> None:
                self.inner = store.sync.transaction()
                self.inner.__enter__()

            async def __aexit__(self, *exc: Any) -> None:
                self.inner.__exit__(*exc)

        return Block()

    async def generation(self) -> int:
        return self.sync.generation

    @property
    def in_transaction(self) -> bool:
        return self.sync.in_transaction

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.sync, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return method(*args, **kwargs)

        return call


# __getattr__ does not make the protocol's methods visible to isinstance or
# iscoroutinefunction: spell them out.
for _name in ("get_identity", "save_identity", "identity_addresses", "load_prekeys",
              "save_prekeys", "delete_prekeys", "prekey_parts", "load_session", "save_session",
              "delete_session", "session_addresses", "load_local", "save_local", "delete_local",
              "local_names", "load_sender_key", "save_sender_key", "delete_sender_key",
              "sender_key_ids", "_save_reserved"):
    def _make(name: str) -> Any:
        async def method(self: AsyncMemoryStore, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return getattr(self.sync, name)(*args, **kwargs)
        return method
    setattr(AsyncMemoryStore, _name, _make(_name))


def open_store(kind: str, path: Path) -> Any:
    return AsyncSQLiteStore(path) if kind == "sqlite" else AsyncMemoryStore()


async def close(store: Any) -> None:
    if isinstance(store, AsyncSQLiteStore):
        await store.close()


def bob_bundle(manager: SessionManager) -> Any:
    with manager.prekeys(now=NOW) as ring:
        ring.generate_one_time_prekeys(3, manager.rng)
        if manager.profile.kem_key_prefix is not None:
            ring.generate_kem_prekeys(3, manager.rng, now=NOW)
        return ring.issue_bundle()


def peer(seed: bytes, profile: Profile = NATIVE) -> SessionManager:
    rng = DeterministicRandom(seed)
    return SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), profile, rng=rng)


async def talking(store: Any, seed: bytes, bob: SessionManager) -> AsyncSessionManager:
    """Alice on ``store`` (asyncio API), with a session Bob has read a first
    message of."""
    alice = AsyncSessionManager(IdentityKeyPair.generate(DeterministicRandom(seed)), store,
                                rng=DeterministicRandom(seed + b" rng"))
    await alice.initiate("bob", bob_bundle(bob))
    bob.decrypt("alice", await alice.encrypt("bob", b"hi"), now=NOW)
    return alice


async def conversation(alice: Any, bob: SessionManager, asynchronous: bool) -> list[bytes]:
    """Alice (sync or async API) and Bob talk; returns every message's bytes."""
    async def call(name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(alice, name)(*args, **kwargs)
        return await result if asynchronous else result

    wire: list[bytes] = []
    await call("initiate", "bob", bob_bundle(bob))
    for i in range(5):
        message = await call("encrypt", "bob", b"a%d" % i)
        wire.append(message)
        assert bob.decrypt("alice", message, now=NOW) == b"a%d" % i
        reply = bob.encrypt("alice", b"b%d" % i)
        wire.append(reply)
        assert await call("decrypt", "bob", reply, now=NOW) == b"b%d" % i
    return wire


@pytest.mark.parametrize("kind", ["sqlite", "bridge"])
def test_the_async_api_sends_the_same_bytes_as_the_sync_one(kind: str, tmp_path: Path) -> None:
    """The same conversation, with the same randomness, through
    SessionManager + SQLiteStore and through AsyncSessionManager +
    AsyncSQLiteStore: every message byte-identical, and the same stored
    record.  (LIBSIGNAL_V3: X3DH, whose every random byte comes from the
    manager's source; an ML-KEM encapsulation takes OpenSSL's.)"""
    identity = IdentityKeyPair.generate(DeterministicRandom(b"alice"))
    sync_store = SQLiteStore(tmp_path / "sync.db")
    sync_alice = SessionManager(identity, sync_store, LIBSIGNAL_V3,
                                rng=DeterministicRandom(b"same"))
    sync_wire = asyncio.run(conversation(sync_alice, peer(b"bob", LIBSIGNAL_V3), False))

    async def run_async() -> tuple[list[bytes], bytes | None]:
        store = open_store(kind, tmp_path / "async.db")
        alice = AsyncSessionManager(identity, store, LIBSIGNAL_V3, rng=DeterministicRandom(b"same"))
        try:
            wire = await conversation(alice, peer(b"bob", LIBSIGNAL_V3), True)
            return wire, await alice.export_session("bob")
        finally:
            await close(store)

    async_wire, record = asyncio.run(run_async())
    assert async_wire == sync_wire
    assert record == sync_alice.export_session("bob")


@pytest.mark.parametrize("kind", ["sqlite", "bridge"])
def test_deliver_coroutines_share_the_transaction(kind: str, tmp_path: Path) -> None:
    """An async deliver callback runs on the loop inside the decrypt's
    transaction and may use the same store: its writes and the new state
    commit together; if it raises, neither does and the message decrypts
    again."""
    bob = peer(b"bob deliver")

    async def main() -> None:
        store = open_store(kind, tmp_path / "deliver.db")
        alice = await talking(store, b"a", bob)
        message = bob.encrypt("alice", b"keep me")
        seen: list[int] = []

        async def failing(plaintext: bytes) -> None:
            await store.save_local("inbox", plaintext)
            raise RuntimeError("the application failed")

        with pytest.raises(RuntimeError):
            await alice.decrypt("bob", message, now=NOW, deliver=failing)
        assert await store.load_local("inbox") is None

        async def saving(plaintext: bytes) -> None:
            seen.append(threading.get_ident())
            await store.save_local("inbox", plaintext)

        assert await alice.decrypt("bob", message, now=NOW, deliver=saving) == b"keep me"
        assert await store.load_local("inbox") == b"keep me"
        assert seen == [threading.get_ident()]  # on the loop's thread
        with pytest.raises(DuplicateMessage):
            await alice.decrypt("bob", message, now=NOW)
        if kind == "bridge":
            assert store.calls > 0  # the manager's rows went through the coroutines
        await close(store)

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["sqlite", "bridge"])
def test_the_loop_runs_while_a_call_works(kind: str, tmp_path: Path) -> None:
    """The protocol work happens in a worker thread: a task on the loop
    keeps running during a long decryption (900 skipped keys)."""
    bob = peer(b"bob busy")

    async def main() -> int:
        store = open_store(kind, tmp_path / "busy.db")
        alice = await talking(store, b"b", bob)
        for _ in range(900):
            bob.encrypt("alice", b"lost")
        late = bob.encrypt("alice", b"after the gap")
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        worker_threads: list[int] = []
        got = await alice.decrypt("bob", late, now=NOW,
                                  deliver=lambda _: worker_threads.append(threading.get_ident()))
        stop.set()
        await task
        assert got == b"after the gap"
        assert worker_threads and worker_threads[0] != threading.get_ident()
        await close(store)
        return ticks

    assert asyncio.run(main()) > 10


def test_calls_on_one_manager_take_turns_and_many_tasks_share_a_file(tmp_path: Path) -> None:
    """Ten tasks encrypt on one manager at once; two managers on two store
    connections to one file decrypt a shared queue: every message exactly
    once, and no key used twice."""
    bob = peer(b"bob many")
    path = tmp_path / "many.db"

    async def main() -> None:
        identity = IdentityKeyPair.generate(DeterministicRandom(b"c"))
        store_a, store_b = AsyncSQLiteStore(path), AsyncSQLiteStore(path)
        first = AsyncSessionManager(identity, store_a, rng=DeterministicRandom(b"c1"))
        second = AsyncSessionManager(identity, store_b, rng=DeterministicRandom(b"c2"))
        await first.initiate("bob", bob_bundle(bob))
        sent = await asyncio.gather(*(first.encrypt("bob", b"m%d" % i) for i in range(10)))
        assert len(set(sent)) == 10
        assert sorted(bob.decrypt("alice", m, now=NOW) for m in sent) == \
            sorted(b"m%d" % i for i in range(10))
        queue = [bob.encrypt("alice", b"r%d" % i) for i in range(20)]
        results = await asyncio.gather(*(
            (first if i % 2 else second).decrypt("bob", m, now=NOW)
            for i, m in enumerate(queue)))
        assert sorted(results) == sorted(b"r%d" % i for i in range(20))
        await store_a.close()
        await store_b.close()

    asyncio.run(main())


def test_the_bridge_is_not_for_the_loop_thread() -> None:
    async def main() -> None:
        store = AsyncSQLiteStore(":memory:")
        bridge = _LoopBridge(store)
        with pytest.raises(InvalidArgument):
            bridge.session_addresses()  # outside a manager call
        bridge.loop = asyncio.get_running_loop()
        with pytest.raises(InvalidArgument):
            bridge.session_addresses()  # on the loop's own thread: would deadlock
        await store.close()

    asyncio.run(main())
    assert isinstance(AsyncSQLiteStore(":memory:"), AsyncStore)
    with pytest.raises(InvalidArgument):
        AsyncSessionManager(IdentityKeyPair.generate(DeterministicRandom(b"x")),
                            MemoryStore())  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["sqlite", "bridge"])
def test_a_cancelled_call_finishes_before_the_next_and_no_key_is_reused(kind: str,
                                                                         tmp_path: Path) -> None:
    """Cancelling a call cannot stop its thread: the manager waits for it to
    end (it commits) before it lets the next call in, so the next call is not
    run inside the abandoned transaction, and no message key is used twice."""
    bob = peer(b"bob cancel")

    async def main() -> None:
        store = open_store(kind, tmp_path / "cancel.db")
        alice = await talking(store, b"c", bob)
        slow = bob.encrypt("alice", b"slow")
        started, finished = threading.Event(), threading.Event()

        def deliver(_: bytes) -> None:  # a synchronous callback, in the worker thread
            started.set()
            threading.Event().wait(0.2)
            finished.set()

        call = asyncio.create_task(alice.decrypt("bob", slow, now=NOW, deliver=deliver))
        while not started.is_set():
            await asyncio.sleep(0.005)
        call.cancel()
        first = await alice.encrypt("bob", b"after 0")
        assert finished.is_set()  # the next call waited for the cancelled one to end
        sent = [first] + [await alice.encrypt("bob", b"after %d" % i) for i in (1, 2)]
        with pytest.raises(asyncio.CancelledError):
            await call
        # The cancelled decrypt did commit (its message is now a duplicate).
        with pytest.raises(DuplicateMessage):
            await alice.decrypt("bob", slow, now=NOW)
        assert [bob.decrypt("alice", m, now=NOW) for m in sent] == [b"after 0", b"after 1",
                                                                      b"after 2"]
        assert len({message_key_id(m) for m in sent}) == 3
        later = await alice.encrypt("bob", b"later")
        assert bob.decrypt("alice", later, now=NOW) == b"later"
        await close(store)

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["sqlite", "bridge"])
def test_a_deliver_callback_cannot_call_its_own_manager(kind: str, tmp_path: Path) -> None:
    bob = peer(b"bob reentrant")

    async def main() -> None:
        store = open_store(kind, tmp_path / "re.db")
        alice = await talking(store, b"r", bob)
        message = bob.encrypt("alice", b"ping")

        async def reply(_: bytes) -> None:
            await alice.encrypt("bob", b"pong")

        with pytest.raises(InvalidArgument):
            await asyncio.wait_for(alice.decrypt("bob", message, now=NOW, deliver=reply), 10)
        assert await alice.decrypt("bob", message, now=NOW) == b"ping"  # nothing committed
        await close(store)

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["sqlite", "bridge"])
def test_a_task_a_deliver_started_may_call_the_manager_once_that_call_ended(
        kind: str, tmp_path: Path) -> None:
    """Found by review: a task started inside a deliver coroutine inherited
    its context, and with it the refusal meant for the deliver itself, for
    the rest of its life.  Once the call that delivered has ended, its
    calls are ordinary ones."""
    bob = peer(b"bob later " + kind.encode())

    async def main() -> bytes:
        store = open_store(kind, tmp_path / "later.db")
        alice = await talking(store, b"later", bob)
        message = bob.encrypt("alice", b"ping")
        started: list[asyncio.Task[bytes]] = []

        async def later() -> bytes:
            await asyncio.sleep(0.05)  # after the decrypt returned
            return await alice.encrypt("bob", b"pong, later")

        async def deliver(_: bytes) -> None:
            started.append(asyncio.ensure_future(later()))

        assert await alice.decrypt("bob", message, now=NOW, deliver=deliver) == b"ping"
        reply = await started[0]
        await close(store)
        return reply

    assert bob.decrypt("alice", asyncio.run(main()), now=NOW) == b"pong, later"


def test_store_calls_from_tasks_a_deliver_coroutine_started_are_never_stranded(
        tmp_path: Path) -> None:
    """A task that a deliver coroutine starts inherits its context; its store
    call, made while the delivery ends, must still run (in the transaction if
    the thread still serves it, otherwise after it)."""
    bob = peer(b"bob strand")

    async def main() -> None:
        store = AsyncSQLiteStore(tmp_path / "strand.db")
        alice = await talking(store, b"s", bob)
        for delay in range(6):
            for _ in range(10):
                tasks: list[asyncio.Task[Any]] = []

                async def later(delay: int = delay) -> None:
                    for _ in range(delay):
                        await asyncio.sleep(0)
                    await store.load_local("log")

                async def deliver(_: bytes) -> None:
                    tasks.append(asyncio.create_task(later()))

                await alice.decrypt("bob", bob.encrypt("alice", b"m"), now=NOW, deliver=deliver)
                await asyncio.wait_for(tasks[0], 5)
        await store.close()

    asyncio.run(main())


def test_another_manager_called_from_deliver_leaves_no_stale_cache(tmp_path: Path) -> None:
    """Two managers of one identity on one store; the first one's deliver
    sends a receipt through the second.  The first must not trust its cached
    record afterwards (its next message would reuse the receipt's key); in a
    batch, the whole batch is refused instead of saving over the second's
    write."""
    bob = peer(b"bob receipts")
    store = SQLiteStore(tmp_path / "two.db")
    identity = IdentityKeyPair.generate(DeterministicRandom(b"two"))
    first = SessionManager(identity, store, rng=DeterministicRandom(b"first"))
    second = SessionManager(identity, store, rng=DeterministicRandom(b"second"))
    first.initiate("bob", bob_bundle(bob))
    bob.decrypt("alice", first.encrypt("bob", b"hello"), now=NOW)
    receipts: list[bytes] = []
    first.decrypt("bob", bob.encrypt("alice", b"how are you"), now=NOW,
                  deliver=lambda _: receipts.append(second.encrypt("bob", b"read")))
    following = first.encrypt("bob", b"next")
    assert message_key_id(following) != message_key_id(receipts[0])
    assert bob.decrypt("alice", receipts[0], now=NOW) == b"read"
    assert bob.decrypt("alice", following, now=NOW) == b"next"
    queued = [("bob", bob.encrypt("alice", b"q%d" % i)) for i in range(2)]
    with pytest.raises(InvalidArgument):
        first.decrypt_batch(queued, now=NOW,
                            deliver=lambda *_: receipts.append(second.encrypt("bob", b"read")))
    assert [o.plaintext for o in first.decrypt_batch(queued, now=NOW)] == [b"q0", b"q1"]
    nxt = first.encrypt("bob", b"after the batch")
    assert bob.decrypt("alice", nxt, now=NOW) == b"after the batch"


@pytest.mark.parametrize("where", ["application transaction", "deliver of a batch"])
def test_two_async_managers_on_one_bridged_store_never_reuse_a_key(where: str) -> None:
    """Found by review: each AsyncSessionManager reached an asyncio store
    (not AsyncSQLiteStore) through a bridge of its own, so neither saw the
    other's calls, nor the application's transaction: inside one, the first
    manager trusted its cache and sent under the key the second had just
    used; from a batch's deliver, the batch saved its record over the
    second's write.  Now the bridge names the store it stands for and says
    whether that store has a transaction open."""
    bob = peer(b"bob bridged " + where.encode())

    async def run() -> list[bytes]:
        store = AsyncMemoryStore()
        identity = IdentityKeyPair.generate(DeterministicRandom(b"one identity"))
        first = AsyncSessionManager(identity, store, rng=DeterministicRandom(b"first"))
        second = AsyncSessionManager(identity, store, rng=DeterministicRandom(b"second"))
        await first.initiate("bob", bob_bundle(bob))
        bob.decrypt("alice", await first.encrypt("bob", b"hello"), now=NOW)
        first_reply = bob.encrypt("alice", b"hi")
        await first.decrypt("bob", first_reply, now=NOW)
        sent: list[bytes] = []
        if where == "application transaction":
            async with store.transaction():
                sent.append(await first.encrypt("bob", b"first a"))
                sent.append(await second.encrypt("bob", b"second"))
                sent.append(await first.encrypt("bob", b"first b"))
        else:
            queued = [("bob", bob.encrypt("alice", b"q%d" % i)) for i in range(2)]

            async def deliver(address: Any, plaintext: bytes) -> None:
                sent.append(await second.encrypt("bob", b"receipt"))

            with pytest.raises(InvalidArgument):
                await first.decrypt_batch(queued, now=NOW, deliver=deliver)
            sent.clear()  # rolled back with the batch: never released
            await first.decrypt_batch(queued, now=NOW)
        sent.append(await first.encrypt("bob", b"after"))
        sent.append(await second.encrypt("bob", b"after, second"))
        return sent

    sent = asyncio.run(run())
    assert len({message_key_id(m) for m in sent}) == len(sent), "two messages under one key"
    for message in sent:
        bob.decrypt("alice", message, now=NOW)
