"""SessionManager's record cache and batch decryption.

The cache must never serve a record that differs from the store: not after
another manager (or process) wrote, not after a call that changed a record
and then failed, not after the store rolled a transaction back.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessions import Party, make_party, message_key_id
from signalish import (
    CannotSend,
    DeterministicRandom,
    Direction,
    IdentityKey,
    MemoryStore,
    SessionManager,
    SessionOptions,
    SQLiteStore,
    trust_on_first_use,
)
from signalish.errors import (
    AuthenticationError,
    CorruptState,
    DuplicateMessage,
    InvalidArgument,
    MessageRejected,
    PreKeyError,
)
from signalish._storage import record_bytes
from signalish._manager import Outcome
from helpers import prekey_rows, session_parts, session_rows
from sqlite_helpers import sqlite_bob


def talking(seed: bytes) -> tuple[Party, Party]:
    alice, bob = make_party("alice", seed), make_party("bob", seed)
    alice.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"hi"), now=1)
    alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"hello"), now=2)
    return alice, bob


def test_two_managers_on_one_store_never_reuse_a_key() -> None:
    """Each manager's cache is invalidated by the other's commits: if it
    were not, both would send from the same cached chain position."""
    alice, bob = talking(b"two managers")
    twin = SessionManager(bob.identity, bob.store, rng=DeterministicRandom(b"twin"))
    sent = []
    for i in range(6):
        manager = bob.manager if i % 2 else twin
        sent.append(manager.encrypt("alice", b"%d" % i))
    assert [alice.manager.decrypt("bob", m, now=3) for m in sent] == [b"%d" % i for i in range(6)]
    incoming = [alice.manager.encrypt("bob", b"to both %d" % i) for i in range(4)]
    assert bob.manager.decrypt("alice", incoming[0], now=4) == b"to both 0"
    with pytest.raises(DuplicateMessage):
        twin.decrypt("alice", incoming[0], now=4)
    assert twin.decrypt("alice", incoming[1], now=4) == b"to both 1"
    with pytest.raises(DuplicateMessage):
        bob.manager.decrypt("alice", incoming[1], now=4)


def test_a_failed_delivery_does_not_leave_an_advanced_record_in_the_cache() -> None:
    alice, bob = talking(b"deliver fails")
    message = alice.manager.encrypt("bob", b"must survive")
    before = bob.snapshot()

    def failing(plaintext: bytes) -> None:
        raise RuntimeError("the application's database is down")

    with pytest.raises(RuntimeError):
        bob.manager.decrypt("alice", message, now=3, deliver=failing)
    assert bob.snapshot() == before
    # Had the cache kept the advanced record, this would be a duplicate.
    assert bob.manager.decrypt("alice", message, now=3) == b"must survive"


def test_a_refused_message_keeps_the_record_cached_and_unchanged() -> None:
    alice, bob = talking(b"refused")
    forged = bytearray(alice.manager.encrypt("bob", b"x"))
    forged[-1] ^= 1
    before = bob.snapshot()
    with pytest.raises(AuthenticationError):
        bob.manager.decrypt("alice", bytes(forged), now=3)
    assert bob.snapshot() == before
    assert "alice" in bob.manager._cache
    assert bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"y"), now=3) == b"y"


def test_another_process_writing_the_file_invalidates_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "bob.db"
    alice, bob_identity, _ = sqlite_bob(path, b"cache file")
    with SQLiteStore(path) as first, SQLiteStore(path) as second:
        one = SessionManager(bob_identity, first, rng=DeterministicRandom(b"one"))
        two = SessionManager(bob_identity, second, rng=DeterministicRandom(b"two"))
        assert one.decrypt("alice", alice.encrypt("bob", b"a"), now=1) == b"a"
        replies = [one.encrypt("alice", b"from one"), two.encrypt("alice", b"from two"),
                   one.encrypt("alice", b"from one again")]
        assert [alice.decrypt("bob", r, now=2) for r in replies] == [
            b"from one", b"from two", b"from one again"]


@pytest.mark.parametrize("cache_size", [0, 1, 256])
def test_any_cache_size_gives_the_same_conversation(cache_size: int) -> None:
    alice = make_party("alice", b"sizes")
    bob = make_party("bob", b"sizes")
    carol = make_party("carol", b"sizes")
    alice.manager = SessionManager(alice.identity, alice.store, rng=alice.rng,
                                   cache_size=cache_size)
    alice.manager.initiate("bob", bob.bundle())
    alice.manager.initiate("carol", carol.bundle())
    for i in range(4):
        for peer in (bob, carol):
            message = alice.manager.encrypt(peer.name, b"%d" % i)
            assert peer.manager.decrypt("alice", message, now=i) == b"%d" % i
            reply = peer.manager.encrypt("alice", b"re %d" % i)
            assert alice.manager.decrypt(peer.name, reply, now=i) == b"re %d" % i
    assert len(alice.manager._cache) <= cache_size


def test_batch_decrypts_a_backlog_in_one_commit_with_an_outcome_each() -> None:
    alice, bob = talking(b"batch")
    backlog = [("alice", alice.manager.encrypt("bob", b"%d" % i)) for i in range(20)]
    backlog.insert(5, ("alice", b"garbage"))
    backlog.append(backlog[3])                           # a duplicate
    backlog.reverse()                                    # and out of order
    generation = bob.store.generation
    delivered: list[tuple[str, bytes]] = []
    outcomes = bob.manager.decrypt_batch(backlog, now=3,
                                         deliver=lambda a, p: delivered.append((a, p)))
    assert bob.store.generation == generation + 1        # one commit
    assert len(outcomes) == len(backlog)
    assert all(isinstance(o, Outcome) for o in outcomes)
    assert sorted(p for _, p in delivered) == sorted(b"%d" % i for i in range(20))
    failed = [o for o in outcomes if not o.ok]
    assert len(failed) == 2 and {type(o.error).__name__ for o in failed} == {
        "UnexpectedType", "DuplicateMessage"}
    # The record was written once, at the end, with every message's advance:
    # a manager that starts cold from the store sees all of them.
    cold = SessionManager(bob.identity, bob.store, rng=DeterministicRandom(b"cold"))
    for _, message in backlog[:3]:
        with pytest.raises(DuplicateMessage):
            cold.decrypt("alice", message, now=4)
    assert cold.decrypt("alice", alice.manager.encrypt("bob", b"next"), now=4) == b"next"


@pytest.mark.parametrize("row", [b"", b"s"], ids=["head", "session"])
def test_a_damaged_record_is_the_outcome_of_its_messages_only(row: bytes) -> None:
    """CorruptState is a StoreError, but one damaged record (its head row or
    a session row) must not hold up the rest of a backlog: it is the outcome
    of that address's messages."""
    alice, bob = talking(b"batch corrupt")
    carol = make_party("carol", b"batch corrupt")
    carol.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("carol", carol.manager.encrypt("bob", b"hi"), now=1)
    part = next(part for part in session_rows(bob.store)["carol"] if part[:1] == row)
    damaged = bytearray(bob.store.load_session("carol", part) or b"")
    damaged[-1] ^= 1
    with bob.store.transaction():
        bob.store.save_session("carol", bytes(damaged), part)
    backlog = [("carol", carol.manager.encrypt("bob", b"c")),
               ("alice", alice.manager.encrypt("bob", b"a"))]
    outcomes = bob.manager.decrypt_batch(backlog, now=3)
    assert type(outcomes[0].error) is CorruptState
    assert outcomes[1].plaintext == b"a"


def test_a_batch_whose_delivery_fails_commits_nothing() -> None:
    alice, bob = talking(b"batch fails")
    backlog = [("alice", alice.manager.encrypt("bob", b"%d" % i)) for i in range(5)]
    before = bob.snapshot()
    seen: list[bytes] = []

    def deliver(address: str, plaintext: bytes) -> None:
        seen.append(plaintext)
        if len(seen) == 3:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        bob.manager.decrypt_batch(backlog, now=3, deliver=deliver)
    assert bob.snapshot() == before
    outcomes = bob.manager.decrypt_batch(backlog, now=3)
    assert [o.plaintext for o in outcomes] == [b"%d" % i for i in range(5)]


def test_memory_store_transactions_nest_and_count_generations() -> None:
    store = MemoryStore()
    s1, s2, k1 = b"s" + bytes(32), b"s" + bytes([1]) * 32, b"k" + bytes(64)
    with store.transaction():
        store.save_session("a", b"1")
        store.save_session("a", b"a-s1", s1)
    assert store.generation == 1
    with store.transaction():
        store.save_session("a", b"2")
        store.save_session("a", b"a-k1", k1)
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.save_session("a", b"3")
                store.save_session("a", b"a-s1 changed", s1)
                store.save_session("a", b"a-s2", s2)
                store.delete_session("a", k1)
                store.save_session("b", b"new")
                store.save_session("b", b"b-s1", s1)
                raise RuntimeError
        # The inner block's writes are undone, the outer block's are kept.
        assert session_rows(store) == {"a": {b"": b"2", s1: b"a-s1", k1: b"a-k1"}}
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.delete_session("a")                   # every row of a
                assert session_rows(store) == {} and store.session_addresses() == []
                store.save_session("a", b"a-s2 alone", s2)  # a row without a head
                assert store.session_addresses() == []
                raise RuntimeError
        assert session_rows(store) == {"a": {b"": b"2", s1: b"a-s1", k1: b"a-k1"}}
        assert store.load_session("b") is None and store.load_session("b", s1) is None
    assert store.generation == 2
    with store.transaction():
        store.load_session("a")  # reading is not writing
        store.load_session("a", s1)
        store.delete_session("nobody")  # nor is deleting nothing
        store.delete_session("a", s2)
        store.delete_prekeys(b"o\x00\x00\x00\x01")
    assert store.generation == 2
    # An outer transaction that raises undoes what its committed inner ones wrote.
    with pytest.raises(RuntimeError):
        with store.transaction():
            with store.transaction():
                store.delete_session("a")
                store.save_session("c", b"c-s1", s1)
            store.save_session("a", b"new a")
            raise RuntimeError
    assert session_rows(store) == {"a": {b"": b"2", s1: b"a-s1", k1: b"a-k1"}}
    # Whoever read the generation after the inner block completed (a manager
    # call inside an application's block) must see that the store changed.
    assert store.session_addresses() == ["a"] and store.generation == 3
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.save_prekeys(b"ring")
            store.save_prekeys(b"one-time", b"o\x00\x00\x00\x01")
            raise RuntimeError
    assert store.load_prekeys() is None and store.prekey_parts() == []
    assert store.generation == 3  # nothing completed inside it: nobody saw those writes
    with store.transaction():
        store.save_prekeys(b"ring")
        store.save_prekeys(b"one-time", b"o\x00\x00\x00\x01")
    assert store.generation == 4
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.delete_prekeys(b"o\x00\x00\x00\x01")
            store.save_prekeys(b"ring 2")
            with store.transaction():
                store.delete_prekeys(b"")
            raise RuntimeError
    assert prekey_rows(store) == {b"": b"ring", b"o\x00\x00\x00\x01": b"one-time"}
    assert store.generation == 5
    # Writes outside any transaction change it too.
    store.save_session("d", b"d")
    assert store.generation > 5 and store.session_addresses() == ["a", "d"]


def test_a_refused_message_in_a_batch_records_no_identity() -> None:
    """A batch runs in one transaction, so a refused message must change
    nothing by itself: not even a first-use identity for its sender."""
    alice, bob = talking(b"batch identity")
    carol = make_party("carol", b"batch identity")
    carol.manager.initiate("bob", bob.bundle())
    first = carol.manager.encrypt("bob", b"hello")
    forged = bytearray(first)
    forged[-1] ^= 1                                      # same header, body forged
    outcomes = bob.manager.decrypt_batch([("carol", bytes(forged)),
                                          ("alice", alice.manager.encrypt("bob", b"ok"))], now=3)
    assert [type(o.error).__name__ if o.error else o.plaintext for o in outcomes] == [
        "AuthenticationError", b"ok"]
    assert bob.store.get_identity("carol") is None
    assert "carol" not in session_parts(bob.store)  # no row at all
    assert bob.manager.decrypt("carol", first, now=4) == b"hello"
    assert bob.store.get_identity("carol") == carol.identity.public


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_an_identity_changed_elsewhere_is_seen_by_the_next_call(kind: str,
                                                                tmp_path: Path) -> None:
    """The manager keeps the trusted identities it read, like its records:
    a key trusted by another manager (or process) on the same store is
    the one the next call checks, and a call that fails forgets what it
    learned, so a refused key never becomes the cached trusted one."""
    from signalish import IdentityKeyPair, UntrustedIdentity
    alice, bob = talking(b"identity cache " + kind.encode())
    store = alice.store
    if kind == "sqlite":
        store = SQLiteStore(tmp_path / "alice.db")
        with store.transaction():
            for row_part, row in session_rows(alice.store)["bob"].items():
                store.save_session("bob", row, row_part)
            key = alice.store.get_identity("bob")
            assert key is not None
            store.save_identity("bob", key)
    manager = SessionManager(alice.identity, store, rng=DeterministicRandom(b"cache"))
    other = SessionManager(alice.identity, store, rng=DeterministicRandom(b"other"))
    manager.encrypt("bob", b"reads and keeps bob's identity")
    stranger = IdentityKeyPair.generate(DeterministicRandom(b"stranger")).public
    other.trust_identity("bob", stranger)
    with pytest.raises(UntrustedIdentity):
        manager.encrypt("bob", b"bob is no longer the trusted key")
    other.trust_identity("bob", bob.identity.public)
    manager.encrypt("bob", b"trusted again")


def test_an_application_transaction_around_manager_calls_that_rolls_back() -> None:
    """The application may wrap manager calls in its own (outer) transaction
    to commit them with its data; if the outer block then fails, the store
    rolls everything back and the manager must not keep what its calls had
    cached: the message is decrypted again, not refused as a duplicate."""
    alice, bob = talking(b"outer rollback")
    message = alice.manager.encrypt("bob", b"kept only if the app commits")
    before = bob.snapshot()
    with pytest.raises(RuntimeError):
        with bob.store.transaction():
            assert bob.manager.decrypt("alice", message, now=3) == b"kept only if the app commits"
            raise RuntimeError("the application's own write failed")
    assert bob.snapshot() == before
    assert bob.manager.decrypt("alice", message, now=4) == b"kept only if the app commits"
    # The same for a send: the sending chain is not left ahead of the store.
    with pytest.raises(RuntimeError):
        with bob.store.transaction():
            lost = bob.manager.encrypt("alice", b"never sent")
            raise RuntimeError("the application's own write failed")
    sent = bob.manager.encrypt("alice", b"sent")
    assert alice.manager.decrypt("bob", sent, now=5) == b"sent"
    # The rolled-back send was not kept: the next message took its place in
    # the chain, which is why a message encrypted in a block that then fails
    # must never be sent (MemoryStore's docstring says so).
    with pytest.raises(DuplicateMessage):
        alice.manager.decrypt("bob", lost, now=5)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_fan_out_in_one_application_transaction(kind: str, tmp_path: Path) -> None:
    """Messages to several peers and the application's own data in one
    commit: an inner failure undoes only its part, the whole block commits
    once, and a block that fails leaves the store, and every later call, as
    if none of it had happened."""
    from helpers import copy_rows
    from signalish.errors import NoSession
    alice = make_party("alice", b"fan-out " + kind.encode())
    peers = [make_party(name, b"fan-out " + kind.encode()) for name in ("bob", "carol")]
    for peer in peers:
        alice.manager.initiate(peer.name, peer.bundle())
        peer.manager.decrypt("alice", alice.manager.encrypt(peer.name, b"hi"), now=1)
        alice.manager.decrypt(peer.name, peer.manager.encrypt("alice", b"hello"), now=2)
    store: MemoryStore | SQLiteStore = alice.store
    if kind == "sqlite":
        store = SQLiteStore(tmp_path / "alice.db")
        with store.transaction():
            copy_rows(alice.store, store)
            for peer in peers:
                key = alice.store.get_identity(peer.name)
                assert key is not None
                store.save_identity(peer.name, key)
    manager = SessionManager(alice.identity, store, rng=DeterministicRandom(b"fan"))
    generation = store.generation
    with store.transaction():
        sent = {peer.name: manager.encrypt(peer.name, b"to the group") for peer in peers}
        with pytest.raises(NoSession):
            with store.transaction():  # an inner block that fails undoes only itself
                manager.encrypt("nobody", b"x")
        if isinstance(store, SQLiteStore):
            store.save_local("outbox", b"two messages")
    assert store.generation == generation + 1  # one commit for the whole fan-out
    for peer in peers:
        assert peer.manager.decrypt("alice", sent[peer.name], now=3) == b"to the group"
    # A block that fails: nothing of it stays, and the manager's next calls
    # work from the store as it is, not from what the failed block cached.
    reply = peers[0].manager.encrypt("alice", b"reply")
    with pytest.raises(RuntimeError):
        with store.transaction():
            assert manager.decrypt("bob", reply, now=4) == b"reply"
            manager.encrypt("carol", b"never sent")
            raise RuntimeError("the application's own write failed")
    assert manager.decrypt("bob", reply, now=5) == b"reply"  # not a duplicate
    again = manager.encrypt("carol", b"sent")
    assert peers[1].manager.decrypt("alice", again, now=6) == b"sent"
    if isinstance(store, SQLiteStore):
        store.close()


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["send", "reply", "deliver", "late",
                                                 "restart", "reinitiate"]),
                                st.integers(0, 10_000)), min_size=1, max_size=40),
       max_archived=st.sampled_from([0, 1, 3]))
def test_after_every_call_the_store_holds_the_record_the_manager_keeps(
        steps: list[tuple[str, int]], max_archived: int) -> None:
    """A message that moves only its session's chain on writes one row (the
    counters row), without looking at the rest of the record.  Attack that
    shortcut: several sessions per record (new sessions started while old
    ones still have messages in flight, a late message on an archived one
    promoting it), messages in and out of order, and managers started again
    from the store.  After every call the rows in the store must load to
    exactly the record the manager holds, and every message decrypts once."""
    options = SessionOptions(max_archived=max_archived)
    alice, bob = make_party("alice", b"fast", options, one_time=20), \
        make_party("bob", b"fast", options, one_time=20)
    alice.manager.initiate("bob", bob.bundle())
    flight: list[tuple[str, bytes, bytes]] = []  # (receiver, message, plaintext)
    counter = 0
    restarted_sessions = False

    def check() -> None:
        for party, peer in ((alice, "bob"), (bob, "alice")):
            cached = party.manager._cache.get(peer)
            stored = record_bytes(party.store, peer)
            if cached is not None:
                assert stored == cached[0].to_bytes()

    for action, pick in steps:
        counter += 1
        if action in ("send", "reply"):
            sender, receiver = (alice, bob) if action == "send" else (bob, alice)
            peer = receiver.name
            if not sender.manager.has_session(peer, current=True):
                continue
            plaintext = b"%d" % counter
            try:
                message = sender.manager.encrypt(peer, plaintext)
            except CannotSend:
                continue
            flight.append((receiver.name, message, plaintext))
        elif action in ("deliver", "late") and flight:
            index = 0 if action == "deliver" else pick % len(flight)
            name, message, plaintext = flight.pop(index)
            receiver, sender = (alice, bob) if name == "alice" else (bob, alice)
            try:
                got = receiver.manager.decrypt(sender.name, message, now=counter)
            except (MessageRejected, AuthenticationError, PreKeyError):
                # Only a message whose session is gone (archive limit; a
                # PreKeyMessage then finds its one-time prekey used) may be
                # refused; it must then change nothing, which check() sees.
                got = None
            assert got in (None, plaintext)
            if not restarted_sessions:
                assert got == plaintext  # with one session per record, nothing is lost
        elif action == "restart":
            party = alice if pick % 2 else bob
            party.manager = SessionManager(party.identity, party.store, rng=party.rng,
                                           options=options)
        elif action == "reinitiate":
            initiator, responder = (alice, bob) if pick % 2 else (bob, alice)
            initiator.manager.initiate(responder.name, responder.bundle())
            restarted_sessions = True
        check()


def test_a_next_message_that_makes_an_archived_session_current_rewrites_the_head() -> None:
    """The next message in order on an archived session moves only its
    chain on, but makes the session current again (libsignal's rule): the
    record's head, which lists the sessions in order, must be written too,
    not just that session's counters row."""
    alice, bob = talking(b"promote")
    alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"one"), now=3)
    late = bob.manager.encrypt("alice", b"two")  # the next one on the same chain
    alice.manager.initiate("bob", bob.bundle())  # a new session; the old one archived
    before = alice.manager._cache["bob"][0].sessions[1]
    assert alice.manager.decrypt("bob", late, now=4) == b"two"
    record = alice.manager._cache["bob"][0]
    assert record.sessions[0] is before  # promoted
    assert record_bytes(alice.store, "bob") == record.to_bytes()
    restarted = SessionManager(alice.identity, alice.store, rng=alice.rng)
    assert restarted.decrypt("bob", bob.manager.encrypt("alice", b"three"), now=5) == b"three"


def test_a_session_row_computed_since_the_last_save_is_not_taken_for_unchanged() -> None:
    """counters_update answers "only the counters row differs" only while
    the session row in the store's rows is the very one the session holds:
    a row computed anew after a DH step (say by an export) is no proof."""
    alice, bob = talking(b"guard")
    rows = dict(alice.manager._cache["bob"][1])
    session = alice.manager._cache["bob"][0].sessions[0]
    assert session.counters_update(rows) is not None  # nothing changed yet
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"y"), now=3)
    alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"x"), now=3)  # a DH step
    assert alice.manager._cache["bob"][0].sessions[0] is session
    session.row()  # the new row, computed but not in ``rows``
    assert session.counters_update(rows) is None


def _distinct_keys(messages: list[bytes]) -> None:
    ids = [message_key_id(m) for m in messages]
    assert len(set(ids)) == len(ids), "two messages under one message key"


def test_two_managers_in_one_application_transaction_never_reuse_a_key() -> None:
    """Inside an application's transaction a manager's writes are not yet
    committed, so the generation does not tell another manager on the same
    store that its cached record is behind: each call nested in a
    transaction reads the store again."""
    alice, bob = talking(b"app transaction")
    twin = SessionManager(bob.identity, bob.store, rng=DeterministicRandom(b"twin"))
    sent = [twin.encrypt("alice", b"twin first")]  # twin's commit is the latest
    with bob.store.transaction():
        sent.append(bob.manager.encrypt("alice", b"bob in the block"))
        sent.append(twin.encrypt("alice", b"twin in the block"))
        sent.append(bob.manager.encrypt("alice", b"bob again"))
    _distinct_keys(sent)
    assert [alice.manager.decrypt("bob", m, now=3) for m in sent] == [
        b"twin first", b"bob in the block", b"twin in the block", b"bob again"]


@pytest.mark.parametrize("order", ["own first", "other first"])
def test_managers_called_inside_a_deliver_never_reuse_a_key(order: str) -> None:
    """bob's deliver callback sends with bob's manager and with another
    manager on the same store.  The other reads what bob wrote in the open
    transaction; bob, once another manager ran inside its call, writes
    nothing more in it (InvalidArgument), since what it holds may be behind."""
    alice, bob = talking(b"deliver " + order.encode())
    twin = SessionManager(bob.identity, bob.store, rng=DeterministicRandom(b"twin"))
    first = alice.manager.encrypt("bob", b"a1")
    incoming = alice.manager.encrypt("bob", b"a2")
    bob.manager.decrypt("alice", first, now=3)
    sent = [twin.encrypt("alice", b"twin before")]
    refused: list[Exception] = []

    def deliver(plaintext: bytes) -> None:
        managers = [bob.manager, twin] if order == "own first" else [twin, bob.manager]
        for manager in managers:
            try:
                sent.append(manager.encrypt("alice", b"from deliver"))
            except InvalidArgument as error:
                refused.append(error)

    assert bob.manager.decrypt("alice", incoming, now=4, deliver=deliver) == b"a2"
    assert len(refused) == (1 if order == "other first" else 0)
    sent.append(bob.manager.encrypt("alice", b"after"))
    sent.append(twin.encrypt("alice", b"after, twin"))
    _distinct_keys(sent)
    for message in sent:
        assert alice.manager.decrypt("bob", message, now=5).startswith((b"twin", b"from",
                                                                        b"after"))


def test_a_trust_decision_that_calls_another_manager_makes_the_call_refuse() -> None:
    """A trust decision (application code) that sends with another manager
    on the same store: the outer call would then send from a chain position
    the other already used, so it refuses and its transaction, the other's
    write included, is rolled back."""
    alice, bob = talking(b"trust re-entry")
    twin = SessionManager(bob.identity, bob.store, rng=DeterministicRandom(b"twin"))
    inside: list[bytes] = []

    def trust(address: str, stored: IdentityKey | None, received: IdentityKey,
              direction: Direction) -> bool:
        if not inside:
            inside.append(twin.encrypt("alice", b"inside the trust decision"))
        return stored is None or stored == received

    bob.manager.trust = trust
    before = bob.snapshot()
    with pytest.raises(InvalidArgument):
        bob.manager.encrypt("alice", b"outer")
    assert bob.snapshot() == before  # the twin's message was never committed
    bob.manager.trust = trust_on_first_use
    sent = [bob.manager.encrypt("alice", b"next"), twin.encrypt("alice", b"twin next")]
    _distinct_keys(sent)
    assert [alice.manager.decrypt("bob", m, now=3) for m in sent] == [b"next", b"twin next"]


def test_a_call_that_starts_a_session_inside_a_first_message_makes_it_refuse() -> None:
    """A trust decision that starts a session with the very peer whose first
    message is being decrypted: the two records would overwrite each other,
    so the decryption refuses, nothing is written, and it can be retried."""
    alice, bob = make_party("alice", b"re-entry"), make_party("bob", b"re-entry")
    alice_bundle = alice.bundle()

    def trust(address: str, stored: IdentityKey | None, received: IdentityKey,
              direction: Direction) -> bool:
        if direction is Direction.RECEIVING and stored is None:
            bob.manager.initiate("alice", alice_bundle)
        return stored is None or stored == received

    bob.manager.trust = trust
    alice.manager.initiate("bob", bob.bundle())
    message = alice.manager.encrypt("bob", b"hi")
    before = bob.snapshot()
    with pytest.raises(InvalidArgument):
        bob.manager.decrypt("alice", message, now=1)
    assert bob.snapshot() == before
    bob.manager.trust = trust_on_first_use
    assert bob.manager.decrypt("alice", message, now=1) == b"hi"


def test_a_batch_whose_deliver_replies_with_the_same_manager_commits() -> None:
    """Found by review: with two messages from one peer and a deliver that
    replies with the receiving manager, the second reply re-read the store
    (the first had left nothing trusted), diverged from the batch's record,
    and the whole batch was refused on every retry.  Now calls of a manager
    nested in its own call share that call's cache: the batch commits, the
    replies and the backlog decrypt, and the conversation goes on."""
    alice, bob = talking(b"batch replies")
    queued = [("alice", alice.manager.encrypt("bob", b"q%d" % i)) for i in range(3)]
    replies: list[bytes] = []

    def deliver(address: object, plaintext: bytes) -> None:
        replies.append(bob.manager.encrypt("alice", b"re " + plaintext))
        bob.manager.has_session("alice", current=True)  # a read, nested as well

    outcomes = bob.manager.decrypt_batch(queued, now=3, deliver=deliver)
    assert [o.plaintext for o in outcomes] == [b"q0", b"q1", b"q2"]
    _distinct_keys(replies)
    assert [alice.manager.decrypt("bob", m, now=4) for m in replies] == [
        b"re q0", b"re q1", b"re q2"]
    assert bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"next"), now=5) == b"next"
    assert record_bytes(bob.store, "alice") == bob.manager._cache["alice"][0].to_bytes()
    fresh = SessionManager(bob.identity, bob.store, rng=DeterministicRandom(b"fresh"))
    assert alice.manager.decrypt("bob", fresh.encrypt("alice", b"from the store"), now=6) == \
        b"from the store"


def test_a_trust_decision_that_reads_with_the_same_manager_in_a_batch() -> None:
    """The same through the trust decision: it asks the manager itself (a
    read) for every message of a batch whose first message starts a DH step."""
    alice, bob = talking(b"batch trust")
    calls = [0]

    def trust(address: str, stored: IdentityKey | None, received: IdentityKey,
              direction: Direction) -> bool:
        calls[0] += 1
        bob.manager.has_session("alice", current=True)
        return trust_on_first_use(address, stored, received, direction)

    bob.manager = SessionManager(bob.identity, bob.store, rng=bob.rng, trust=trust)
    queued = [("alice", alice.manager.encrypt("bob", b"t%d" % i)) for i in range(3)]
    outcomes = bob.manager.decrypt_batch(queued, now=3)
    assert [o.plaintext for o in outcomes] == [b"t0", b"t1", b"t2"] and calls[0] >= 2
    assert alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"ok"), now=4) == b"ok"


def test_a_call_that_fails_after_a_nested_call_of_its_manager_drops_the_cache() -> None:
    """A nested call's changes are in the enclosing call's transaction: when
    that fails, they are rolled back, and the cache must not keep them.  Here
    bob's deliver (for a message from alice) decrypts carol's reply, a DH
    step in another record, then fails: had the cache kept carol's record,
    bob's next message to her would write a counters row bound to a session
    row the store never got, and the record would no longer load."""
    alice, bob = talking(b"nested then fail")
    carol = make_party("carol", b"nested then fail")
    carol.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("carol", carol.manager.encrypt("bob", b"hi bob"), now=1)
    carol.manager.decrypt("bob", bob.manager.encrypt("carol", b"hi carol"), now=1)
    step = carol.manager.encrypt("bob", b"a DH step")  # carol's new ratchet key
    message = alice.manager.encrypt("bob", b"m")
    before = bob.snapshot()

    def deliver(plaintext: bytes) -> None:
        assert bob.manager.decrypt("carol", step, now=3) == b"a DH step"
        raise RuntimeError("the application fails after that")

    with pytest.raises(RuntimeError):
        bob.manager.decrypt("alice", message, now=3, deliver=deliver)
    assert bob.snapshot() == before
    for peer in ("alice", "carol"):
        cached = bob.manager._cache.get(peer)
        assert cached is None or cached[0].to_bytes() == record_bytes(bob.store, peer)
    sent = bob.manager.encrypt("carol", b"after the failure")
    fresh = SessionManager(bob.identity, bob.store, rng=DeterministicRandom(b"fresh"))
    assert fresh.has_session("carol", current=True)  # the record still loads
    assert carol.manager.decrypt("bob", sent, now=4) == b"after the failure"
    assert bob.manager.decrypt("carol", step, now=4) == b"a DH step"
    assert bob.manager.decrypt("alice", message, now=4) == b"m"
