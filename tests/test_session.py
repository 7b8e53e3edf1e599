"""Sessions through SessionManager: the initial-message rule, replays,
simultaneous initiation, identity changes, policy, and failure atomicity."""

from __future__ import annotations

import pytest

from signalish import NoSession, SessionOptions, SignalishError, UntrustedIdentity
from signalish import MemoryStore, SessionManager
from signalish._session import SessionRecord
from signalish._storage import load_record, record_bytes
from helpers import session_rows, snapshot
from signalish.errors import (
    AuthenticationError,
    CorruptState,
    DecodeError,
    InvalidEncoding,
    DuplicateMessage,
    PolicyViolation,
    PreKeyAlreadyUsed,
)
from signalish._message import MESSAGE, MESSAGE_HE, PREKEY_MESSAGE
from sessions import make_party


@pytest.mark.parametrize("he", [False, True])
def test_prekey_messages_until_first_reply(he: bool) -> None:
    alice = make_party("alice", b"1", SessionOptions(header_encryption=he))
    bob = make_party("bob", b"1")
    alice.manager.initiate("bob", bob.bundle())
    first = [alice.manager.encrypt("bob", b"m%d" % i) for i in range(3)]
    assert all(m[0] == PREKEY_MESSAGE for m in first)
    # Bob builds the session from whichever arrives first; the others reuse it.
    assert bob.manager.decrypt("alice", first[1], now=5) == b"m1"
    assert bob.manager.decrypt("alice", first[0], now=5) == b"m0"
    reply = bob.manager.encrypt("alice", b"hi")
    assert reply[0] == (MESSAGE_HE if he else MESSAGE)
    assert alice.manager.decrypt("bob", reply, now=6) == b"hi"
    after = alice.manager.encrypt("bob", b"plain now")
    assert after[0] == (MESSAGE_HE if he else MESSAGE)
    assert bob.manager.decrypt("alice", after, now=7) == b"plain now"
    assert bob.manager.decrypt("alice", first[2], now=8) == b"m2"


def test_replayed_initial_message() -> None:
    alice = make_party("alice", b"2")
    bob = make_party("bob", b"2", SessionOptions(max_archived=0))
    alice.manager.initiate("bob", bob.bundle())
    initial = alice.manager.encrypt("bob", b"hello")
    bob.manager.decrypt("alice", initial, now=1)
    before = bob.snapshot()
    with pytest.raises(DuplicateMessage):  # the session still exists
        bob.manager.decrypt("alice", initial, now=2)
    assert bob.snapshot() == before
    # Once that session is gone, the one-time prekey it used is gone too.
    alice.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"second session"), now=3)
    with pytest.raises(PreKeyAlreadyUsed):
        bob.manager.decrypt("alice", initial, now=4)


@pytest.mark.parametrize("order", ["alice-first", "bob-first", "interleaved"])
@pytest.mark.parametrize("he", [False, True])
def test_simultaneous_initiation_converges(order: str, he: bool) -> None:
    options = SessionOptions(header_encryption=he)
    alice = make_party("alice", b"3" + order.encode(), options)
    bob = make_party("bob", b"3" + order.encode(), options)
    alice.manager.initiate("bob", bob.bundle())
    bob.manager.initiate("alice", alice.bundle())
    from_alice = alice.manager.encrypt("bob", b"hi bob")
    from_bob = bob.manager.encrypt("alice", b"hi alice")
    if order == "alice-first":
        assert bob.manager.decrypt("alice", from_alice, now=1) == b"hi bob"
        assert alice.manager.decrypt("bob", from_bob, now=1) == b"hi alice"
    else:
        assert alice.manager.decrypt("bob", from_bob, now=1) == b"hi alice"
        assert bob.manager.decrypt("alice", from_alice, now=1) == b"hi bob"
    # Both now hold the same two sessions and picked the same one as current.
    current = {p.name: load_record(p.store, other)[0].current.base_key
               for p, other in ((alice, "bob"), (bob, "alice"))}
    assert current["alice"] == current["bob"]
    # And the conversation works both ways, several rounds.
    for i in range(3):
        m = alice.manager.encrypt("bob", b"a%d" % i)
        assert bob.manager.decrypt("alice", m, now=2) == b"a%d" % i
        m = bob.manager.encrypt("alice", b"b%d" % i)
        assert alice.manager.decrypt("bob", m, now=2) == b"b%d" % i


def test_identity_change_needs_a_trust_decision() -> None:
    alice = make_party("alice", b"4")
    bob = make_party("bob", b"4")
    alice.manager.initiate("bob", bob.bundle())
    new_bob = make_party("bob", b"4-reinstalled")
    before = alice.snapshot()
    with pytest.raises(UntrustedIdentity) as caught:
        alice.manager.initiate("bob", new_bob.bundle())
    assert caught.value.received == new_bob.identity.public
    assert caught.value.stored == bob.identity.public
    assert alice.snapshot() == before
    alice.manager.trust_identity("bob", new_bob.identity.public)
    alice.manager.initiate("bob", new_bob.bundle())
    message = alice.manager.encrypt("bob", b"hello again")
    assert new_bob.manager.decrypt("alice", message, now=1) == b"hello again"


def test_identity_change_on_the_responder_side() -> None:
    alice = make_party("alice", b"5")
    bob = make_party("bob", b"5")
    alice.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"1"), now=1)
    impostor = make_party("alice", b"5-other")
    impostor.manager.initiate("bob", bob.bundle())
    before = bob.snapshot()
    with pytest.raises(UntrustedIdentity):
        bob.manager.decrypt("alice", impostor.manager.encrypt("bob", b"trust me"), now=2)
    assert bob.snapshot() == before


def test_header_encryption_required_by_responder() -> None:
    alice = make_party("alice", b"6")
    bob = make_party("bob", b"6", SessionOptions(header_encryption=True))
    alice.manager.initiate("bob", bob.bundle())
    with pytest.raises(PolicyViolation):
        bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"x"), now=1)


def test_failures_change_nothing_in_the_store() -> None:
    alice = make_party("alice", b"7")
    bob = make_party("bob", b"7")
    alice.manager.initiate("bob", bob.bundle())
    message = alice.manager.encrypt("bob", b"x")
    before = bob.snapshot()
    for bad in (b"", b"\x40", message[:-1], message + b"\x00", bytes(len(message)),
                message[:-1] + bytes((message[-1] ^ 1,))):
        with pytest.raises(SignalishError):
            bob.manager.decrypt("alice", bad, now=1)
        assert bob.snapshot() == before
    with pytest.raises(NoSession):
        bob.manager.encrypt("alice", b"no session yet")


def test_record_serialization_is_checked() -> None:
    alice = make_party("alice", b"8")
    bob = make_party("bob", b"8")
    alice.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"x"), now=1)
    data = record_bytes(bob.store, "alice")
    assert data is not None
    assert SessionRecord.from_bytes(data).to_bytes() == data
    for i in range(0, len(data)):
        with pytest.raises(CorruptState):
            SessionRecord.from_bytes(data[:i])
        flipped = data[:i] + bytes((data[i] ^ 0x10,)) + data[i + 1:]
        with pytest.raises(CorruptState):
            SessionRecord.from_bytes(flipped)
    with pytest.raises(CorruptState):
        SessionRecord.from_bytes(data + b"\x00")


def test_record_rows_are_checked() -> None:
    """The same for the rows the store keeps: each row of the record (head,
    session, counters, stored keys) truncated, with a bit flipped or extended, and
    each session or key row missing, fails to load with CorruptState."""
    alice = make_party("alice", b"8-rows")
    bob = make_party("bob", b"8-rows")
    alice.manager.initiate("bob", bob.bundle())
    skipped = [alice.manager.encrypt("bob", b"s%d" % i) for i in range(3)]
    bob.manager.decrypt("alice", skipped[-1], now=1)  # two keys stored
    rows = session_rows(bob.store)["alice"]
    loaded = load_record(bob.store, "alice")
    assert loaded is not None and loaded[1] == rows
    assert {part[:1] for part in rows} == {b"", b"s", b"c", b"k"}

    def load(changed: dict[bytes, bytes]) -> object:
        store = MemoryStore()
        for part, row in changed.items():
            store.save_session("alice", row, part)
        return load_record(store, "alice")

    for part, data in sorted(rows.items()):
        for i in range(0, len(data), 7 if part else 1):
            with pytest.raises(CorruptState):
                load({**rows, part: data[:i]})
            flipped = data[:i] + bytes((data[i] ^ 0x10,)) + data[i + 1:]
            with pytest.raises(CorruptState):
                load({**rows, part: flipped})
        with pytest.raises(CorruptState):
            load({**rows, part: data + b"\x00"})
        if part:
            with pytest.raises(CorruptState):
                load({p: d for p, d in rows.items() if p != part})


def test_unknown_session_message_is_refused() -> None:
    alice = make_party("alice", b"9")
    bob = make_party("bob", b"9")
    alice.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"x"), now=1)
    reply = bob.manager.encrypt("alice", b"r")
    stranger = make_party("mallory", b"9")
    with pytest.raises(NoSession):
        stranger.manager.decrypt("bob", reply, now=1)
    other = make_party("alice", b"9-b")
    other.manager.initiate("bob", make_party("bob", b"9-b").bundle())
    with pytest.raises(AuthenticationError):
        other.manager.decrypt("bob", reply, now=1)


def test_late_message_decrypts_in_an_archived_session_and_promotes_it() -> None:
    alice = make_party("alice", b"archive")
    bob = make_party("bob", b"archive")
    alice.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"s1"), now=1)
    alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"ok"), now=2)
    late = alice.manager.encrypt("bob", b"late, on the first session")
    first_base = load_record(bob.store, "alice")[0].current.base_key
    alice.manager.initiate("bob", bob.bundle())             # a second session
    assert bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"s2"), now=3) == b"s2"
    record = load_record(bob.store, "alice")[0]
    assert record.current.base_key != first_base and len(record.sessions) == 2
    # The current session cannot open it; the archived one can, and is promoted (rule 2).
    assert bob.manager.decrypt("alice", late, now=4) == b"late, on the first session"
    record = load_record(bob.store, "alice")[0]
    assert record.current.base_key == first_base


def test_a_direct_state_change_is_written_only_after_touch() -> None:
    """Rows are cached per session; tools that edit ``state`` directly must
    call ``touch()`` (the benchmarks' adversary does), and then the change
    reaches the store row."""
    alice, bob = make_party("alice", b"touch"), make_party("bob", b"touch")
    alice.manager.initiate("bob", bob.bundle())
    loaded = load_record(alice.store, "bob")
    assert loaded is not None
    record, rows = loaded
    session = record.sessions[0]
    s_part, c_part = b"s" + session.base_key, b"c" + session.base_key
    session.state.ns += 7   # in the counters row
    session.state.pn += 3   # in the session row
    assert record.rows()[s_part] is rows[s_part]
    assert record.rows()[c_part] is rows[c_part]
    session.touch()
    changed = record.rows()
    assert changed[s_part] != rows[s_part] and changed[c_part] != rows[c_part]
    reread = SessionRecord.from_rows(changed.get)
    assert reread is not None
    assert reread[0].sessions[0].state.ns == session.state.ns
    assert reread[0].sessions[0].state.pn == session.state.pn
    # The new counters row belongs with the new session row only.
    with pytest.raises(InvalidEncoding, match="another session row"):
        SessionRecord.from_rows({**changed, s_part: rows[s_part]}.get)
    with pytest.raises(InvalidEncoding, match="another session row"):
        SessionRecord.from_rows({**changed, c_part: rows[c_part]}.get)


def test_stored_keys_are_parsed_when_first_used_and_checked_then() -> None:
    """Loading a record from rows parses sessions, not stored keys: a chain's
    key row is checked against its session (digest, id, count, length) at
    load and its keys parsed at first use; malformed keys are refused there,
    before any use, and the call that hit them changes nothing."""
    from signalish._encoding import add_digest
    alice, bob = make_party("alice", b"lazy"), make_party("bob", b"lazy")
    alice.manager.initiate("bob", bob.bundle())
    sent = [alice.manager.encrypt("bob", b"%d" % i) for i in range(4)]
    bob.manager.decrypt("alice", sent[3], now=1)  # keys 0..2 stored
    loaded = load_record(bob.store, "alice")
    assert loaded is not None
    chain = loaded[0].sessions[0].state.window.chains[-1]
    assert chain._pending is not None and chain.key_count == 3  # not parsed yet
    assert sorted(chain.keys) == [0, 1, 2] and chain._pending is None
    # A key row whose digest is right but whose keys are out of order.
    rows = loaded[1]
    part = next(p for p in rows if p.startswith(b"k"))
    body = rows[part][:-16]
    keys = [body[38 + 44 * i:38 + 44 * (i + 1)] for i in range(3)]
    swapped = add_digest(body[:38] + keys[1] + keys[0] + keys[2])
    with bob.store.transaction():
        bob.store.save_session("alice", swapped, part)
    fresh = SessionManager(bob.identity, bob.store, rng=bob.rng)
    before = snapshot(bob.store)
    with pytest.raises(DecodeError):
        fresh.decrypt("alice", sent[0], now=2)
    assert snapshot(bob.store) == before
    # A message in order needs none of the stored keys, yet is refused just
    # the same, before the ratchet moves: neither the store nor the cached
    # record advances (a batch commits, so the cache is what would leak).
    later = alice.manager.encrypt("bob", b"in order")
    outcomes = fresh.decrypt_batch([("alice", later)], now=3)
    assert isinstance(outcomes[0].error, DecodeError)
    assert snapshot(bob.store) == before
    cached = fresh._cache["alice"][0].sessions[0].state
    assert cached.nr == load_record(bob.store, "alice")[0].sessions[0].state.nr


def test_a_message_in_a_chain_rewrites_only_the_counters_row() -> None:
    """A message that only moves a chain on (encrypt; decrypt of the next
    message in order with no stored keys) writes the 70-odd-byte counters
    row and nothing else; a DH ratchet step or a skipped key rewrites the
    session row (and the new counters row with it); every row that a
    later load needs is there after each step."""
    writes: list[bytes] = []

    class Spy(MemoryStore):
        def save_session(self, address: str, record: bytes, part: bytes = b"") -> None:
            writes.append(part[:1])
            super().save_session(address, record, part)

    alice, bob = make_party("alice", b"counters"), make_party("bob", b"counters")
    alice.manager.store = Spy()  # type: ignore[misc]
    bob.manager.store = Spy()  # type: ignore[misc]
    alice.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"first"), now=1)
    alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"step"), now=1)
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"new chain"), now=1)
    for i in range(3):
        del writes[:]
        message = alice.manager.encrypt("bob", b"m%d" % i)
        assert writes == [b"c"]
        del writes[:]
        bob.manager.decrypt("alice", message, now=1)
        assert writes == [b"c"]
    skipped = alice.manager.encrypt("bob", b"skipped")
    after = alice.manager.encrypt("bob", b"after a gap")
    del writes[:]
    bob.manager.decrypt("alice", after, now=1)
    assert sorted(writes) == [b"c", b"k", b"s"]  # a key stored: the window changed
    del writes[:]
    bob.manager.decrypt("alice", skipped, now=1)
    assert b"s" in writes
    del writes[:]
    reply = bob.manager.encrypt("alice", b"reply")
    assert writes == [b"c"]
    del writes[:]
    alice.manager.decrypt("bob", reply, now=1)  # a DH ratchet step
    assert sorted(writes) == [b"c", b"s"]
    for party, peer in ((alice, "bob"), (bob, "alice")):
        fresh = SessionManager(party.manager.identity, party.manager.store)
        loaded = load_record(fresh.store, peer)
        assert loaded is not None
        cached = party.manager._record(peer)
        assert cached is not None and loaded[0].to_bytes() == cached.to_bytes()
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"still talking"), now=1)
