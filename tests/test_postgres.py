"""PostgresStore and AsyncPostgresStore against a real server (tests/pg.py).

Conformance to the store protocols (rows under parts, deletes, rollback,
savepoints, writes only in transactions, identities, local data, sender
keys, row checks), SessionManager conversations with the application's own
table in the same transaction, the schema and its migrations, the locks as
seen from a second connection, and the errors: unreachable server, lock
timeout, deadlock, lost connection, a statement that failed.

The asyncio store runs the same tests through :class:`Blocking`, which
drives it from a private event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from helpers import check_local_data, check_sender_key_records
from pg import Database, bob_on, dump, pg, pg_server  # noqa: F401
from sessions import make_party, message_key_id

from signalish import (
    AsyncSessionManager,
    AsyncStore,
    DeterministicRandom,
    IdentityKeyPair,
    IdentityStore,
    LocalStore,
    PreKeyStore,
    SQLiteStore,
    SessionManager,
    SessionStore,
    Store,
    StoreError,
    load_identity_key_pair,
    save_identity_key_pair,
)
from signalish import _postgres
from signalish._async_store import FLOW
from signalish._postgres import AsyncPostgresStore, PostgresStore
from signalish._stores import SenderKeyStore
from signalish.errors import (
    CorruptState,
    DuplicateMessage,
    InvalidArgument,
    SchemaTooNew,
    StoreBusy,
    StoreUnavailable,
)

S1, S2, K1 = b"s" + bytes(32), b"s" + bytes([1]) * 32, b"k" + bytes(64)
O1, O2 = b"o\x00\x00\x00\x01", b"o\x00\x00\x00\x02"


class Boom(Exception):
    pass


class Blocking:
    """An AsyncPostgresStore driven from a private event loop: the
    synchronous Store protocol over the asyncio store, so that every test
    below (and a SessionManager) runs on both."""

    def __init__(self, conninfo: str, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        # One flow of calls (signalish._async_store.FLOW), as one task's
        # would be, though each call below runs as a task of its own.
        self.context = contextvars.copy_context()
        self.context.run(FLOW.set, object())
        self.inner = self.run(AsyncPostgresStore.connect(conninfo, **options))

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(self.loop.create_task(coroutine,
                                                                  context=self.context))

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not asyncio.iscoroutinefunction(attribute):
            return attribute
        return lambda *args, **kwargs: self.run(attribute(*args, **kwargs))

    @property
    def generation(self) -> int:
        return int(self.run(self.inner.generation()))

    @property
    def in_transaction(self) -> bool:
        return bool(self.inner.in_transaction)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        context = self.inner.transaction()
        self.run(context.__aenter__())
        try:
            yield
        except BaseException as error:
            if not self.run(context.__aexit__(type(error), error, error.__traceback__)):
                raise
        else:
            self.run(context.__aexit__(None, None, None))

    def close(self) -> None:
        self.run(self.inner.close())
        self.loop.close()


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def open_store(pg: Database, kind: str, **options: Any) -> Any:
    if kind == "sync":
        return pg.store(**options)
    return Blocking(pg.conninfo, schema=pg.schema, **options)


@pytest.fixture
def store(pg: Database, kind: str) -> Iterator[Any]:
    opened = open_store(pg, kind)
    yield opened
    opened.close()


def raw(pg: Database, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run ``sql`` on the test's schema from a connection of its own."""
    with pg.connect() as conn:
        cursor = conn.execute(sql.replace("{s}", f'"{pg.schema}"'), params)
        return cursor.fetchall() if cursor.description else []


# --- the protocols ------------------------------------------------------------------


def test_stores_satisfy_the_protocols(pg: Database) -> None:
    with pg.store() as store:
        for protocol in (IdentityStore, PreKeyStore, SessionStore, Store, LocalStore,
                         SenderKeyStore):
            assert isinstance(store, protocol)
    blocking = Blocking(pg.conninfo, schema=pg.schema)
    assert isinstance(blocking.inner, AsyncStore)
    blocking.close()


def test_addresses_under_a_prefix(store: Any, pg: Database) -> None:
    """session_addresses_from: the server filters the addresses with a record
    (what SessionManager.devices reads), whatever the database's collation."""
    names = ["bob.1", "bob.10", "bob.2", "bob2.1", "bo", "bob", "Bob.1", "böb.1", "alice.1",
             "bob_1", "bob%1"]
    with store.transaction():
        for name in names:
            store.save_session(name, b"head")
        store.save_session("bob.3", b"no head", S1)
    for prefix in ("bob.", "bob", "b", "", "böb.", "bob_", "bob%", "q"):
        assert store.session_addresses_from(prefix) == \
            sorted((n for n in names if n.startswith(prefix)),
                   key=lambda n: store.session_addresses().index(n)), prefix


def test_rows_under_parts(store: Any, pg: Database) -> None:
    with store.transaction():
        store.save_session("alice", b"head", b"")
        store.save_session("alice", b"one", S1)
        store.save_session("alice", b"two", S2)
        store.save_session("alice", b"keys", K1)
        store.save_session("bob", b"bob head")
        store.save_session("carol", b"no head yet", S1)  # a row without a head
        store.save_prekeys(b"ring head")
        store.save_prekeys(b"otk 2", O2)
        store.save_prekeys(b"otk 1", O1)
        # Inside the transaction, its own writes read back (from the rows it keeps).
        assert store.load_session("alice", S2) == b"two"
        assert store.prekey_parts() == [b"", O1, O2]
    assert store.session_addresses() == ["alice", "bob"]
    assert store.load_session("alice") == store.load_session("alice", b"") == b"head"
    assert [store.load_session("alice", p) for p in (S1, S2, K1)] == [b"one", b"two", b"keys"]
    assert store.load_session("alice", b"s") is None and store.load_session("bob", S1) is None
    assert store.load_session("carol") is None and store.load_session("carol", S1) == b"no head yet"
    assert store.prekey_parts() == [b"", O1, O2]
    assert store.load_prekeys() == b"ring head" and store.load_prekeys(O1) == b"otk 1"
    assert store.load_prekeys(b"o\x00\x00\x00\x03") is None
    with store.transaction():
        assert store.load_session("alice", S1) == b"one"  # read (and kept) first
        store.save_session("alice", b"one again", S1)
        assert store.load_session("alice", S1) == b"one again"
        store.delete_session("alice", S2)
        assert store.load_session("alice", S2) is None
        store.delete_session("alice", b"s" + bytes([9]) * 32)  # no such row: nothing
        assert store.load_prekeys(O2) == b"otk 2"
        store.delete_prekeys(O2)
        assert store.load_prekeys(O2) is None and store.prekey_parts() == [b"", O1]
    assert [store.load_session("alice", p) for p in (b"", S1, S2, K1)] == [
        b"head", b"one again", None, b"keys"]
    with store.transaction():
        store.load_session("alice")
        store.delete_session("alice")                     # every row of alice
        assert store.load_session("alice", K1) is None
        store.delete_session("carol", b"")                # carol has no head: nothing
    assert store.session_addresses() == ["bob"]
    assert [row[:2] for row in dump(pg)["session_rows"]] == [("bob", b""), ("carol", S1)]
    with store.transaction():
        store.delete_prekeys(b"")
    assert store.prekey_parts() == [O1] and store.load_prekeys() is None


def test_a_failed_transaction_restores_every_row(store: Any, pg: Database) -> None:
    with store.transaction():
        store.save_session("alice", b"head")
        store.save_session("alice", b"one", S1)
        store.save_prekeys(b"ring head")
        store.save_prekeys(b"otk", O1)
        store.save_local("name", b"value")
        store.save_sender_key("alice.1", UUID(int=1), b"record")
    before = dump(pg)
    with pytest.raises(Boom):
        with store.transaction():
            store.save_session("alice", b"changed", S1)
            store.save_session("alice", b"two", S2)
            store.save_session("bob", b"new head")
            store.delete_prekeys(O1)
            store.save_prekeys(b"otk 2", O2)
            store.delete_session("alice")
            store.save_session("alice", b"other head")
            store.save_local("name", b"changed")
            store.delete_sender_key("alice.1", UUID(int=1))
            store.save_identity("alice", IdentityKeyPair.generate(DeterministicRandom(b"i")).public)
            raise Boom
    assert dump(pg) == before
    assert store.session_addresses() == ["alice"] and store.load_session("alice", S1) == b"one"


def test_nested_transactions_are_savepoints(store: Any, pg: Database) -> None:
    with store.transaction():
        store.save_session("alice", b"outer")
        with pytest.raises(Boom):
            with store.transaction():
                store.save_session("alice", b"inner", S1)
                store.save_local("inner", b"x")
                with store.transaction():
                    store.save_session("bob", b"innermost")
                raise Boom
        # The inner block's writes are gone, the outer block's are not, and
        # rows read again after the rollback are the database's.
        assert store.load_session("alice") == b"outer" and store.load_session("alice", S1) is None
        assert store.load_session("bob") is None and store.load_local("inner") is None
        with store.transaction():
            store.save_session("carol", b"kept")
        assert dump(pg)["session_rows"] == []  # nothing is committed before the outermost end
    assert store.session_addresses() == ["alice", "carol"]
    with pytest.raises(Boom):
        with store.transaction():
            with store.transaction():
                store.save_session("dave", b"completed inner block")
            raise Boom
    assert store.session_addresses() == ["alice", "carol"]


def test_writes_need_a_transaction(store: Any) -> None:
    one = UUID(int=1)
    key = IdentityKeyPair.generate(DeterministicRandom(b"w")).public
    for write in (lambda: store.save_session("a", b"x"),
                  lambda: store.save_session("a", b"x", S1),
                  lambda: store.delete_session("a"),
                  lambda: store.delete_session("a", S1),
                  lambda: store.save_prekeys(b"x"),
                  lambda: store.save_prekeys(b"x", O1),
                  lambda: store.delete_prekeys(O1),
                  lambda: store.save_identity("a", key),
                  lambda: store.save_local("a", b"x"),
                  lambda: store.delete_local("a"),
                  lambda: store.save_sender_key("a", one, b"x"),
                  lambda: store.delete_sender_key("a", one),
                  lambda: store.lock(["a"])):
        with pytest.raises(InvalidArgument):
            write()
    assert store.session_addresses() == [] and store.local_names() == []


def test_identities(store: Any, pg: Database) -> None:
    rng = DeterministicRandom(b"identities")
    first, second = (IdentityKeyPair.generate(rng).public for _ in range(2))
    assert store.get_identity("alice") is None and store.identity_addresses() == []
    with store.transaction():
        store.save_identity("bob", first)
        store.save_identity("alice", first)
    assert store.get_identity("alice") == first and store.identity_addresses() == ["alice", "bob"]
    with store.transaction():
        assert store.get_identity("alice") == first
        store.save_identity("alice", second)  # replaces
        assert store.get_identity("alice") == second
    assert store.get_identity("alice") == second


def test_local_data_names_delete_and_reserved_names(store: Any) -> None:
    check_local_data(store)
    # Names sort by code point, as Python sorts them (the columns are COLLATE "C").
    with store.transaction():
        for name in ("Z", "é", "a b", "ä"):
            store.save_local(name, b"")
    assert store.local_names() == sorted(["b", "signalish:identity", "Z", "é", "a b", "ä"])


def test_sender_key_records(store: Any) -> None:
    check_sender_key_records(store, stable_generation=False)


def test_invalid_arguments(pg: Database, store: Any) -> None:
    for schema in ("", "Upper", "1x", 'a"b', "a" * 64, None):
        with pytest.raises(InvalidArgument):
            PostgresStore(pg.conninfo, schema=schema)  # type: ignore[arg-type]
    for bad in (-1, float("nan"), float("inf"), "1", True):
        with pytest.raises(InvalidArgument):
            PostgresStore(pg.conninfo, schema=pg.schema, lock_timeout=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            AsyncPostgresStore(pg.conninfo, lock_timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        PostgresStore(pg.conninfo, schema=pg.schema, idle_timeout=-1)
    with store.transaction():
        for call in (lambda: store.save_session("a\x00b", b"x"),
                     lambda: store.load_session(b"alice"),
                     lambda: store.save_local("a\x00", b"x"),
                     lambda: store.save_sender_key("a\x00", UUID(int=1), b"x")):
            with pytest.raises(InvalidArgument):
                call()


# --- row checks ---------------------------------------------------------------------


def test_a_moved_or_damaged_row_is_corrupt_state(store: Any, pg: Database) -> None:
    """Every row's check binds it to its table and key: a row copied to
    another address, part, name or sender, a flipped bit and a cut-off row
    each read as CorruptState, inside a transaction and outside."""
    one, two = UUID(int=1), UUID(int=2)
    key = IdentityKeyPair.generate(DeterministicRandom(b"moved")).public
    with store.transaction():
        store.save_session("alice", b"alice head")
        store.save_session("alice", b"alice session", S1)
        store.save_prekeys(b"ring", O1)
        store.save_local("a", b"local a")
        store.save_identity("alice", key)
        store.save_sender_key("alice.1", one, b"record")
    raw(pg, "INSERT INTO {s}.session_rows SELECT 'mallory', part, data FROM {s}.session_rows "
        "WHERE address = 'alice' AND part = ''")
    raw(pg, "INSERT INTO {s}.session_rows SELECT address, %s, data FROM {s}.session_rows "
        "WHERE address = 'alice' AND part = ''", (S2,))
    raw(pg, "INSERT INTO {s}.prekey_rows SELECT %s, data FROM {s}.prekey_rows", (O2,))
    raw(pg, "INSERT INTO {s}.local SELECT 'b', data FROM {s}.local")
    raw(pg, "INSERT INTO {s}.identities SELECT 'mallory', key FROM {s}.identities")
    raw(pg, "INSERT INTO {s}.sender_keys SELECT sender, %s, data FROM {s}.sender_keys", (two,))
    raw(pg, "INSERT INTO {s}.local SELECT 'session', data FROM {s}.session_rows "
        "WHERE address = 'alice' AND part = ''")  # another table's row
    moved: list[Callable[[], object]] = [
        lambda: store.load_session("mallory"), lambda: store.load_session("alice", S2),
        lambda: store.load_prekeys(O2), lambda: store.load_local("b"),
        lambda: store.get_identity("mallory"), lambda: store.load_sender_key("alice.1", two),
        lambda: store.load_local("session")]
    for read in moved:
        with pytest.raises(CorruptState):
            read()
        with pytest.raises(CorruptState):
            with store.transaction():
                read()
    # The originals still read, and damage to them is caught too.
    assert store.load_session("alice", S1) == b"alice session"
    raw(pg, "UPDATE {s}.session_rows SET data = set_byte(data, 0, get_byte(data, 0) # 1) "
        "WHERE address = 'alice' AND part = %s", (S1,))
    raw(pg, "UPDATE {s}.sender_keys SET data = substring(data from 1 for 10)")
    raw(pg, "UPDATE {s}.local SET data = ''::bytea WHERE name = 'a'")
    for read in (lambda: store.load_session("alice", S1),
                 lambda: store.load_sender_key("alice.1", one),
                 lambda: store.load_local("a")):
        with pytest.raises(CorruptState) as caught:
            read()
        assert "alice" not in str(caught.value) and "record" not in str(caught.value)
    assert store.load_session("alice") == b"alice head"


def test_rows_are_sqlite_rows(pg: Database, tmp_path: Path) -> None:
    """The row format is SQLiteStore's: rows copied byte for byte from a
    SQLite file read back in PostgreSQL, checks and all."""
    import sqlite3

    alice, bob = make_party("alice", b"copy"), make_party("bob", b"copy")
    alice.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"hi"), now=1)
    with SQLiteStore(tmp_path / "bob.db") as lite, lite.transaction():
        for address in bob.store.session_addresses():
            for part, data in bob.store._sessions[address].items():
                lite.save_session(address, data, part)
        for part in bob.store.prekey_parts():
            lite.save_prekeys(bob.store.load_prekeys(part) or b"", part)
        save_identity_key_pair(lite, bob.identity)
    with pg.store():
        pass  # creates the schema
    db = sqlite3.connect(tmp_path / "bob.db")
    with pg.connect() as conn:
        for table, columns in (("session_rows", 3), ("prekey_rows", 2), ("local", 2)):
            for row in db.execute(f"SELECT * FROM {table}"):
                conn.execute(f'INSERT INTO "{pg.schema}".{table} VALUES '
                             f'({", ".join(["%s"] * columns)})', row)
    db.close()
    with pg.store() as store:
        identity = load_identity_key_pair(store)
        assert identity is not None and identity.seed() == bob.identity.seed()
        manager = SessionManager(identity, store, rng=DeterministicRandom(b"copied"))
        assert manager.decrypt("alice", alice.manager.encrypt("bob", b"on postgres"),
                               now=2) == b"on postgres"


# --- SessionManager -----------------------------------------------------------------


def test_conversation_with_the_applications_table_in_the_same_transaction(
        pg: Database, kind: str) -> None:
    """Bob on PostgreSQL: ``deliver`` writes the plaintext into the
    application's own table through the store's connection, in the store's
    transaction.  A failing deliver commits nothing (no session, no
    identity, no prekey consumed, no inbox row); the same message then
    decrypts, once."""
    store = open_store(pg, kind)
    app = f'"{pg.schema}_app"'
    raw(pg, f"CREATE SCHEMA {app}")
    raw(pg, f"CREATE TABLE {app}.inbox (id serial PRIMARY KEY, sender text, body bytea)")
    alice, bob, rng = bob_on(store, b"inbox")
    manager = SessionManager(bob, store, rng=rng)
    connection = store.connection

    def execute(sql: str, params: tuple[Any, ...]) -> None:
        if kind == "sync":
            connection.execute(sql, params)
        else:
            store.run(connection.execute(sql, params))

    def deliver(plaintext: bytes) -> None:
        execute(f"INSERT INTO {app}.inbox (sender, body) VALUES (%s, %s)", ("alice", plaintext))

    def failing(plaintext: bytes) -> None:
        deliver(plaintext)
        raise Boom

    first = alice.encrypt("bob", b"first")
    before = dump(pg)
    with pytest.raises(Boom):
        manager.decrypt("alice", first, now=1, deliver=failing)
    assert dump(pg) == before and raw(pg, f"SELECT * FROM {app}.inbox") == []
    assert manager.decrypt("alice", first, now=1, deliver=deliver) == b"first"
    with pytest.raises(DuplicateMessage):
        manager.decrypt("alice", first, now=1, deliver=deliver)
    for i in range(5):
        message = alice.encrypt("bob", b"m%d" % i)
        assert manager.decrypt("alice", message, now=2, deliver=deliver) == b"m%d" % i
        reply = manager.encrypt("alice", b"re m%d" % i)
        assert alice.decrypt("bob", reply, now=3) == b"re m%d" % i
    assert [row[0] for row in raw(pg, f"SELECT body FROM {app}.inbox ORDER BY id")] == [
        b"first"] + [b"m%d" % i for i in range(5)]
    assert store.get_identity("alice") == alice.identity.public
    store.close()
    # A second store (another worker) picks the conversation up.
    with pg.store() as other:
        again = SessionManager(bob, other)
        assert again.decrypt("alice", alice.encrypt("bob", b"later"), now=4) == b"later"
        assert alice.decrypt("bob", again.encrypt("alice", b"ok"), now=5) == b"ok"


def test_two_managers_on_two_stores_never_reuse_a_key(pg: Database) -> None:
    """Each transaction has a new generation, so a manager never trusts a
    record it cached: two managers (two stores, as two workers) encrypting
    in turn to the same peer use a new message key every time."""
    with pg.store() as setup:
        alice, bob, _ = bob_on(setup, b"generation")
    with pg.store() as one, pg.store() as two:
        first, second = SessionManager(bob, one), SessionManager(bob, two)
        first.decrypt("alice", alice.encrypt("bob", b"hi"), now=1)
        sent = [(first if i % 2 else second).encrypt("alice", b"%d" % i) for i in range(6)]
        before = one.generation
        with one.transaction():
            inside = one.generation
            assert one.generation == inside  # fixed within a transaction
        assert len({before, inside, one.generation}) == 3  # new for every transaction
    assert len({message_key_id(m) for m in sent}) == len(sent)
    assert [alice.decrypt("bob", m, now=2) for m in sent] == [b"%d" % i for i in range(6)]


def test_async_session_manager_on_the_async_store(pg: Database) -> None:
    with pg.store() as setup:
        alice, bob, _ = bob_on(setup, b"async manager")

    async def talk() -> list[bytes]:
        store = await AsyncPostgresStore.connect(pg.conninfo, schema=pg.schema)
        manager = AsyncSessionManager(bob, store)
        got: list[bytes] = []

        async def deliver(plaintext: bytes) -> None:
            await store.save_local("inbox", plaintext)
            got.append(plaintext)

        for i in range(3):
            await manager.decrypt("alice", alice.encrypt("bob", b"a%d" % i), now=1,
                                  deliver=deliver)
            reply = await manager.encrypt("alice", b"re %d" % i)
            assert alice.decrypt("bob", reply, now=2) == b"re %d" % i
        assert await store.load_local("inbox") == b"a2"
        await store.close()
        return got

    assert asyncio.run(talk()) == [b"a0", b"a1", b"a2"]



def test_two_async_managers_on_one_async_store_never_reuse_a_key(pg: Database) -> None:
    """Found by review: two AsyncSessionManagers of one identity on one
    AsyncPostgresStore, called one after the other inside the application's
    transaction, sent two messages under one key (each manager reached the
    store through a bridge of its own, which hid the other's calls and the
    open transaction); a batch whose deliver sent a receipt through the
    other manager saved its record over the receipt's.  The same as the
    synchronous store now: distinct keys, and the batch refused."""
    with pg.store() as setup:
        alice, bob, _ = bob_on(setup, b"two async managers")

    async def talk() -> list[bytes]:
        store = await AsyncPostgresStore.connect(pg.conninfo, schema=pg.schema)
        first = AsyncSessionManager(bob, store, rng=DeterministicRandom(b"first"))
        second = AsyncSessionManager(bob, store, rng=DeterministicRandom(b"second"))
        await first.decrypt("alice", alice.encrypt("bob", b"hi"), now=1)
        sent = []
        async with store.transaction():
            sent.append(await first.encrypt("alice", b"first a"))
            sent.append(await second.encrypt("alice", b"second"))
            sent.append(await first.encrypt("alice", b"first b"))
        queued = [("alice", alice.encrypt("bob", b"q%d" % i)) for i in range(2)]
        receipts: list[bytes] = []

        async def deliver(address: Any, plaintext: bytes) -> None:
            receipts.append(await second.encrypt("alice", b"receipt"))

        with pytest.raises(InvalidArgument):
            await first.decrypt_batch(queued, now=1, deliver=deliver)
        assert [o.plaintext for o in await first.decrypt_batch(queued, now=1)] == [b"q0", b"q1"]
        sent.append(await first.encrypt("alice", b"after"))
        sent.append(await second.encrypt("alice", b"after, second"))
        await store.close()
        return sent

    sent = asyncio.run(talk())
    assert len({message_key_id(m) for m in sent}) == len(sent), "two messages under one key"
    assert [alice.decrypt("bob", m, now=2) for m in sent] == [
        b"first a", b"second", b"first b", b"after", b"after, second"]



def test_two_tasks_sharing_one_async_store_are_refused_not_mixed(pg: Database) -> None:
    """Found by review: two tasks, each with its own AsyncSessionManager,
    sharing one AsyncPostgresStore (one connection; the docs say to give each
    task its own), had the second task's transaction silently nested in the
    first's: 8 of 27 returned messages reused a key.  A transaction of
    another task is refused now (InvalidArgument); every message returned
    has its own key and decrypts."""
    with pg.store() as setup:
        alice, bob, _ = bob_on(setup, b"two tasks")

    async def talk() -> tuple[list[bytes], list[BaseException]]:
        store = await AsyncPostgresStore.connect(pg.conninfo, schema=pg.schema)
        first = AsyncSessionManager(bob, store, rng=DeterministicRandom(b"first"))
        second = AsyncSessionManager(bob, store, rng=DeterministicRandom(b"second"))
        await first.decrypt("alice", alice.encrypt("bob", b"hi"), now=1)
        sent: list[bytes] = []
        errors: list[BaseException] = []

        async def worker(manager: AsyncSessionManager, tag: bytes) -> None:
            for i in range(20):
                try:
                    sent.append(await manager.encrypt("alice", tag + b"%d" % i))
                except InvalidArgument as error:
                    errors.append(error)

        await asyncio.gather(worker(first, b"x"), worker(second, b"y"))
        await store.close()
        return sent, errors

    sent, errors = asyncio.run(talk())
    assert errors, "the two tasks' transactions never overlapped: the test tested nothing"
    assert all("another task" in str(error) for error in errors)
    assert len({message_key_id(m) for m in sent}) == len(sent), "two messages under one key"
    plaintexts = [alice.decrypt("bob", m, now=2) for m in sent]
    assert len(set(plaintexts)) == len(sent) and all(p[:1] in (b"x", b"y") for p in plaintexts)



def test_a_store_is_refused_in_a_process_forked_after_it_connected(pg: Database) -> None:
    """Found by review: a PostgresStore opened before fork() served parent and
    child over one socket, their statements interleaved in one session (one
    run in five reused a message key).  The child is refused now, before any
    statement and without closing the parent's connection."""
    import os

    with pg.store() as store:
        store_in_parent = store
        with store.transaction():
            store.save_local("kept", b"parent")
        pid = os.fork()
        if pid == 0:  # the child: every use is refused, closing sends nothing
            code = 1
            try:
                try:
                    store_in_parent.load_local("kept")
                except InvalidArgument as error:
                    code = 0 if "another process" in str(error) else 2
                try:
                    with store_in_parent.transaction():
                        code = 3
                except InvalidArgument:
                    pass
                store_in_parent.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's connection is untouched.
        assert store.load_local("kept") == b"parent"
        with store.transaction():
            store.save_local("kept", b"still")
        assert store.load_local("kept") == b"still"


# --- the schema ---------------------------------------------------------------------


def test_the_schema_is_created_once_and_a_newer_version_refused(pg: Database, kind: str) -> None:
    store = open_store(pg, kind)
    version = len(_postgres.MIGRATIONS)
    assert raw(pg, "SELECT name, value FROM {s}.meta") == [("schema_version", version)]
    tables = {row[0] for row in raw(pg, "SELECT tablename FROM pg_tables WHERE schemaname = %s",
                                    (pg.schema,))}
    assert tables == {"meta", "identities", "prekey_rows", "session_rows", "local",
                      "sender_keys"}
    store.close()
    open_store(pg, kind).close()  # at this version: opened without a change
    raw(pg, "UPDATE {s}.meta SET value = %s", (version + 1,))
    with pytest.raises(SchemaTooNew, match="newer than this signalish knows") as caught:
        open_store(pg, kind)
    assert type(caught.value) is SchemaTooNew
    raw(pg, "UPDATE {s}.meta SET value = -1")
    with pytest.raises(CorruptState):
        open_store(pg, kind)
    raw(pg, "DELETE FROM {s}.meta")
    with pytest.raises(CorruptState):
        open_store(pg, kind)


def test_migrations_run_once_in_order(pg: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A schema at version 1 opened by code that knows a version 2 is
    migrated, in one transaction, by exactly one of the stores opening it
    at once; the data stays."""
    with pg.store() as store, store.transaction():
        store.save_local("kept", b"data")
    step = ("CREATE TABLE {s}.migrated (n serial PRIMARY KEY, at timestamptz DEFAULT now())",
            "INSERT INTO {s}.migrated DEFAULT VALUES")
    monkeypatch.setattr(_postgres.core, "MIGRATIONS", [*_postgres.core.MIGRATIONS, step])
    opened: list[Any] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            opened.append(pg.store())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(opened) == 4
    assert raw(pg, "SELECT count(*) FROM {s}.migrated") == [(1,)]
    assert raw(pg, "SELECT value FROM {s}.meta") == [(2,)]
    assert opened[0].load_local("kept") == b"data"
    for store in opened:
        store.close()
    # A failing step leaves the schema as it was: the whole migration is one transaction.
    monkeypatch.setattr(_postgres.core, "MIGRATIONS", [*_postgres.core.MIGRATIONS,
                                                       ("CREATE TABLE {s}.half (n int)",
                                                        "SELECT no_such_function()")])
    with pytest.raises(StoreError, match="migrating to schema version 3"):
        pg.store()
    assert raw(pg, "SELECT value FROM {s}.meta") == [(2,)]
    assert raw(pg, "SELECT to_regclass(%s)", (f'"{pg.schema}".half',)) == [(None,)]


def test_a_fresh_schema_in_an_empty_database(pg_server: Any) -> None:
    """A database of its own (not just a schema): the store creates its
    schema in it; the default schema name is "signalish"."""
    name = f"fresh_{int(time.time() * 1000) % 10**9}"
    with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    conninfo = pg_server.conninfo.replace("/postgres?", f"/{name}?")
    try:
        with PostgresStore(conninfo) as store:
            with store.transaction():
                store.save_local("x", b"1")
            assert store.connection.execute(
                "SELECT count(*) FROM signalish.local").fetchone() == (1,)
    finally:
        with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


# --- errors -------------------------------------------------------------------------


def test_an_unreachable_database_is_a_store_error(pg: Database, tmp_path: Path) -> None:
    for conninfo in (f"postgresql://postgres:hunter2@/postgres?host={tmp_path}",
                     "postgresql://postgres:hunter2@127.0.0.1:1/postgres",
                     pg.conninfo.replace("/postgres?", "/no_such_database?")):
        for opener in (lambda: PostgresStore(conninfo, schema=pg.schema, connect_timeout=2),
                       lambda: asyncio.run(AsyncPostgresStore.connect(
                           conninfo, schema=pg.schema, connect_timeout=2))):
            start = time.monotonic()
            with pytest.raises(StoreUnavailable, match="cannot connect to the database") as caught:
                opener()
            assert time.monotonic() - start < 5
            assert type(caught.value) is StoreUnavailable
            assert isinstance(caught.value.__cause__, psycopg.OperationalError)
            assert "hunter2" not in str(caught.value)


def test_a_lock_held_elsewhere_is_store_busy_and_writes_nothing(pg: Database,
                                                                  kind: str) -> None:
    """Another worker's open transaction on the same address: a call waits
    ``lock_timeout`` and raises StoreBusy with nothing written; other
    addresses are not held up; once the lock is free the call succeeds."""
    with pg.store() as setup:
        alice, bob, _ = bob_on(setup, b"busy")
    store = open_store(pg, kind, lock_timeout=0.2)
    manager = SessionManager(bob, store)
    assert manager.decrypt("alice", alice.encrypt("bob", b"first"), now=1) == b"first"
    message = alice.encrypt("bob", b"second")
    with pg.store() as holder, holder.transaction():
        holder.load_session("alice")  # takes alice's lock until this block ends
        before = dump(pg)
        start = time.monotonic()
        with pytest.raises(StoreBusy) as caught:
            manager.decrypt("alice", message, now=2)
        assert 0.18 <= time.monotonic() - start < 3
        assert "55P03" in str(caught.value) and "second" not in str(caught.value)
        with pytest.raises(StoreBusy):
            manager.encrypt("alice", b"reply")
        assert dump(pg) == before
        with store.transaction():  # another address is free
            store.save_session("carol", b"head")
    assert manager.decrypt("alice", message, now=2) == b"second"
    store.close()


def test_lock_timeout_zero_does_not_wait(pg: Database) -> None:
    with pg.store(lock_timeout=0) as store, pg.store() as holder, holder.transaction():
        holder.prekey_parts()  # the ring's lock
        start = time.monotonic()
        with pytest.raises(StoreBusy):
            with store.transaction():
                store.load_prekeys()
        assert time.monotonic() - start < 0.5


def test_a_deadlock_is_store_busy_and_lock_takes_locks_in_order(pg: Database) -> None:
    """Two batches touching two addresses in opposite orders deadlock:
    PostgreSQL breaks it by failing one (StoreBusy, retried); with
    ``store.lock`` first, both take the locks in the same order and both
    commit without an error."""
    one, two = pg.store(lock_timeout=10), pg.store(lock_timeout=10)
    for prelock in (False, True):
        barrier = threading.Barrier(2, timeout=10)
        results: list[list[Any]] = [[], []]

        def batch(store: PostgresStore, order: list[str], out: list[Any]) -> None:
            try:
                with store.transaction():
                    if prelock:
                        store.lock(order)  # sorted: both take "a" first
                    store.save_session(order[0], b"x")
                    if not prelock:
                        barrier.wait()  # both hold their first address
                    store.save_session(order[1], b"y")
                out.append("ok")
            except StoreBusy as error:
                out.append(error)

        threads = [threading.Thread(target=batch, args=(one, ["a", "b"], results[0])),
                   threading.Thread(target=batch, args=(two, ["b", "a"], results[1]))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        outcomes = results[0] + results[1]
        if prelock:
            assert outcomes == ["ok", "ok"]
        else:
            busy = [o for o in outcomes if isinstance(o, StoreBusy)]
            assert len(busy) == 1 and "40P01" in str(busy[0]) and "ok" in outcomes, outcomes
    one.close()
    two.close()


def test_an_identity_changed_by_another_transaction_is_store_busy(pg: Database) -> None:
    """Trust on first use across workers: a transaction that read "no
    identity" cannot record its key after another one recorded a different
    key meanwhile (StoreBusy, nothing written); the same key is fine."""
    rng = DeterministicRandom(b"tofu")
    mine, theirs = IdentityKeyPair.generate(rng).public, IdentityKeyPair.generate(rng).public
    with pg.store() as one, pg.store() as two:
        with pytest.raises(StoreBusy):
            with one.transaction():
                assert one.get_identity("alice") is None
                with two.transaction():
                    two.save_identity("alice", theirs)
                one.save_local("with it", b"x")
                one.save_identity("alice", mine)
        assert one.get_identity("alice") == theirs and one.load_local("with it") is None
        with pytest.raises(StoreBusy, match="earlier in this transaction"):
            with one.transaction():  # read, then the other changes it: refused too
                assert one.get_identity("alice") == theirs
                with two.transaction():
                    two.save_identity("alice", mine)
                with pytest.raises(StoreBusy):
                    one.save_identity("alice", theirs)
                # Caught inside the block: the transaction still does not commit.
        assert one.get_identity("alice") == mine
        with one.transaction():  # both saw nothing and record the same key: no conflict
            assert one.get_identity("bob") is None
            with two.transaction():
                two.save_identity("bob", mine)
            one.save_identity("bob", mine)
        assert one.get_identity("bob") == mine


def test_a_failed_statement_is_never_committed(pg: Database, kind: str) -> None:
    store = open_store(pg, kind)
    with store.transaction():
        store.save_local("a", b"1")
    connection = store.connection

    def bad_statement() -> None:
        if kind == "sync":
            connection.execute("SELECT 1/0")
        else:
            store.run(connection.execute("SELECT 1/0"))

    with pytest.raises(StoreError) as caught:
        with store.transaction():
            store.save_local("a", b"2")
            try:
                bad_statement()  # the application's own statement, its error swallowed
            except psycopg.Error:
                pass
    assert "rolled back" in str(caught.value)
    with pytest.raises(StoreError, match="earlier in this transaction"):
        with store.transaction():
            try:
                bad_statement()
            except psycopg.Error:
                pass
            with pytest.raises(StoreError):
                store.save_local("b", b"2")  # the transaction is aborted: refused
    assert store.load_local("a") == b"1" and store.load_local("b") is None
    store.close()


def test_a_failure_undone_by_a_savepoint_does_not_stop_the_commit(pg: Database,
                                                                    kind: str) -> None:
    """An inner block that raises takes its failed statement with it: a lock
    timeout or a failed statement of the application inside it, caught
    outside it, leaves the outer block free to commit."""
    store = open_store(pg, kind, lock_timeout=0.1)
    connection = store.connection
    with pg.store() as holder, holder.transaction():
        holder.load_session("busy")
        with store.transaction():
            store.save_local("a", b"1")
            with pytest.raises(StoreBusy):
                with store.transaction():
                    store.save_local("inner", b"x")
                    store.load_session("busy")  # held elsewhere: lock timeout
            with pytest.raises(psycopg.Error):
                with store.transaction():
                    sql = "SELECT 1/0"
                    if kind == "sync":
                        connection.execute(sql)
                    else:
                        store.run(connection.execute(sql))
            store.save_local("b", b"2")
    assert store.local_names() == ["a", "b"]
    store.close()


def test_a_lost_connection_is_a_store_error_and_the_store_reconnects(pg: Database,
                                                                      kind: str) -> None:
    store = open_store(pg, kind)

    def terminate() -> None:
        pid = store.connection.info.backend_pid
        raw(pg, "SELECT pg_terminate_backend(%s)", (pid,))

    with store.transaction():
        store.save_local("a", b"1")
    terminate()  # while idle: the next transaction connects again by itself
    with store.transaction():
        store.save_local("a", b"2")
    assert store.load_local("a") == b"2"
    with pytest.raises(StoreUnavailable, match="connection to the database was lost") as caught:
        with store.transaction():
            store.save_local("a", b"3")
            terminate()  # mid-transaction
            store.save_local("b", b"3")
    assert type(caught.value) is StoreUnavailable
    assert store.load_local("a") == b"2" and store.load_local("b") is None
    terminate()
    with pytest.raises(StoreError):
        store.load_local("a")  # a read outside a transaction fails once...
    assert store.load_local("a") == b"2"  # ...and the next call connects again
    store.close()


def test_the_server_restarted_under_an_open_store(pg: Database, kind: str) -> None:
    with pg.store() as setup:
        alice, bob, _ = bob_on(setup, b"restart")
    store = open_store(pg, kind)
    manager = SessionManager(bob, store)
    assert manager.decrypt("alice", alice.encrypt("bob", b"before"), now=1) == b"before"
    pg.server.restart()
    assert manager.decrypt("alice", alice.encrypt("bob", b"after"), now=2) == b"after"
    pg.server.stop()
    try:
        message = alice.encrypt("bob", b"while down")
        with pytest.raises(StoreUnavailable, match="cannot connect"):
            manager.decrypt("alice", message, now=3)
    finally:
        pg.server.start()
    assert manager.decrypt("alice", message, now=3) == b"while down"
    assert alice.decrypt("bob", manager.encrypt("alice", b"ok"), now=4) == b"ok"
    store.close()


# --- what the locks guarantee, seen from a second connection ---------------------------


def test_a_locked_read_sees_the_last_commit(pg: Database) -> None:
    """A transaction that touches an address waits for the one holding it,
    then reads what that one committed (not what was there when it
    began): the read-modify-write of a session row is never lost."""
    with pg.store() as setup, setup.transaction():
        setup.save_session("alice", b"v1")
        setup.save_prekeys(b"ring v1")
    with pg.store() as first, pg.store() as second:
        seen: dict[str, bytes | None] = {}
        started = threading.Event()

        def other() -> None:
            with second.transaction():
                started.set()
                seen["session"] = second.load_session("alice")  # waits for first
                seen["ring"] = second.load_prekeys()
                second.save_session("alice", (seen["session"] or b"") + b"+second")

        with first.transaction():
            assert first.load_session("alice") == b"v1"
            assert first.load_prekeys() == b"ring v1"
            thread = threading.Thread(target=other)
            thread.start()
            started.wait(5)
            time.sleep(0.3)  # the other transaction is now waiting for the lock
            first.save_session("alice", b"v1+first")
            first.save_prekeys(b"ring v2")
        thread.join(10)
        assert seen == {"session": b"v1+first", "ring": b"ring v2"}
        assert first.load_session("alice") == b"v1+first+second"


def test_locks_taken_in_a_rolled_back_savepoint_are_released(pg: Database) -> None:
    def advisory_locks(store: PostgresStore) -> int:
        rows = raw(pg, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s",
                   (store.connection.info.backend_pid,))
        return int(rows[0][0])

    with pg.store() as store, pg.store(lock_timeout=0.2) as other:
        with store.transaction():
            store.load_session("alice")
            with pytest.raises(Boom):
                with store.transaction():
                    store.load_session("bob")
                    store.load_prekeys()
                    assert advisory_locks(store) == 3
                    raise Boom
            assert advisory_locks(store) == 1
            with other.transaction():
                other.save_session("bob", b"free again")  # not held any more
            assert store.load_session("bob") == b"free again"  # taken again, read again
            assert advisory_locks(store) == 2
        assert advisory_locks(store) == 0


def test_lock_takes_every_lock_up_front(pg: Database) -> None:
    """``lock`` takes the locks that later calls would take (they then take
    nothing more), and another store cannot touch those rows meanwhile."""
    one = UUID(int=1)

    def advisory_locks(store: PostgresStore) -> int:
        return int(raw(pg, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                       "AND pid = %s", (store.connection.info.backend_pid,))[0][0])

    with pg.store() as store, pg.store(lock_timeout=0.1) as other:
        with store.transaction():
            store.lock(["b", "a", "a"], prekeys=True, sender_keys=[("s.1", one)])
            assert advisory_locks(store) == 4
            store.save_session("a", b"x")
            store.load_prekeys()
            store.load_sender_key("s.1", one)
            assert advisory_locks(store) == 4
            for touch in (lambda: other.load_session("b"), lambda: other.prekey_parts(),
                          lambda: other.delete_sender_key("s.1", one)):
                with pytest.raises(StoreBusy):
                    with other.transaction():
                        touch()
        with pytest.raises(InvalidArgument):
            with store.transaction():
                store.lock(["a"], sender_keys=[("s.1", "not a uuid")])  # type: ignore[list-item]


def test_one_store_used_from_several_threads(pg: Database) -> None:
    """A PostgresStore shared by threads runs their transactions one after
    the other: two managers (one per thread) decrypt a shared queue, every
    message exactly once."""
    with pg.store() as setup:
        alice, bob, _ = bob_on(setup, b"threads")
    messages = [alice.encrypt("bob", b"%d" % i) for i in range(30)]
    store = pg.store()
    SessionManager(bob, store).decrypt("alice", messages[0], now=1)
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def worker(indexes: range) -> None:
        manager = SessionManager(bob, store)
        for i in indexes:
            try:
                results[i] = manager.decrypt("alice", messages[i], now=2)
            except BaseException as error:  # asserted below
                errors.append(error)

    threads = [threading.Thread(target=worker, args=(range(1, 30, 2),)),
               threading.Thread(target=worker, args=(range(2, 30, 2),))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and results == {i: b"%d" % i for i in range(1, 30)}
    store.close()
