"""The paths applications walk through SessionManager, attacked.

Trust is asked on every use; counters end with a typed error; initial
messages cannot be replayed once their session is gone; prekeys cannot be
resurrected by a stale ring; a long gap cannot wedge a session; and a
forged message costs a bounded number of key derivations however many
sessions the record holds.
"""

from __future__ import annotations

import pytest

import signalish._ratchet as ratchet_module
from signalish import (
    LIBSIGNAL_V3,
    NATIVE,
    DeterministicRandom,
    IdentityKey,
    IdentityKeyPair,
    LocalError,
    MemoryStore,
    Profile,
    RemoteError,
    SessionManager,
    SessionOptions,
    UntrustedIdentity,
)
from signalish._session import SessionRecord
from signalish._storage import load_record, save_record
from signalish.errors import (
    AuthenticationError,
    CannotSend,
    ChainExhausted,
    NoSession,
    StaleSession,
    UnknownPreKey,
    InvalidArgument,
    MessageKeyEvicted,
    PreKeyAlreadyUsed,
    PreKeyReplayed,
    TooFarAhead,
)
from signalish._manager import Direction
from signalish._message import plain_prefix
from signalish._window import MAX_COUNTER
from sessions import Party, make_party

PROFILES = [pytest.param(NATIVE, id="native"), pytest.param(LIBSIGNAL_V3, id="libsignal_v3")]


def talking(seed: bytes, profile: Profile = NATIVE,
            options: SessionOptions | None = None, one_time: int = 5) -> tuple[Party, Party]:
    alice = make_party("alice", seed, options, profile=profile, one_time=one_time)
    bob = make_party("bob", seed, options, profile=profile, one_time=one_time)
    alice.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"hi"), now=1)
    alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"hello"), now=2)
    return alice, bob


def other_key(seed: bytes) -> IdentityKey:
    return IdentityKeyPair.generate(DeterministicRandom(seed)).public


# --- trust on every use ---------------------------------------------------------------


def test_distrusting_a_peer_stops_both_directions_until_trusted_again() -> None:
    alice, bob = talking(b"trust")
    alice.manager.trust_identity("bob", other_key(b"someone else"))
    before = alice.snapshot()
    with pytest.raises(UntrustedIdentity) as refused:
        alice.manager.encrypt("bob", b"must not go to the old key")
    assert refused.value.received == bob.identity.public
    assert alice.snapshot() == before
    incoming = bob.manager.encrypt("alice", b"from the old key")
    with pytest.raises(UntrustedIdentity):
        alice.manager.decrypt("bob", incoming, now=3)
    assert alice.snapshot() == before  # nothing advanced, nothing released
    alice.manager.trust_identity("bob", bob.identity.public)
    assert alice.manager.decrypt("bob", incoming, now=4) == b"from the old key"
    assert bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"ok"), now=5) == b"ok"


def test_a_new_identity_does_not_leave_the_old_session_usable() -> None:
    """Bob reinstalls (new identity); Alice verifies and trusts it.  The old
    session (say, a stolen device with the old key) can then neither deliver
    to Alice nor receive her next message."""
    alice, old_bob = talking(b"stolen")
    new_bob = make_party("bob", b"reinstalled")
    new_bob.manager.initiate("alice", alice.bundle())
    first = new_bob.manager.encrypt("alice", b"new phone")
    with pytest.raises(UntrustedIdentity):
        alice.manager.decrypt("bob", first, now=3)
    alice.manager.trust_identity("bob", new_bob.identity.public)
    assert alice.manager.decrypt("bob", first, now=4) == b"new phone"
    from_stolen = old_bob.manager.encrypt("alice", b"from the stolen device")
    before = alice.snapshot()
    with pytest.raises(UntrustedIdentity):
        alice.manager.decrypt("bob", from_stolen, now=5)
    assert alice.snapshot() == before  # the old session was not promoted
    reply = alice.manager.encrypt("bob", b"to the new phone only")
    assert new_bob.manager.decrypt("alice", reply, now=6) == b"to the new phone only"
    with pytest.raises(AuthenticationError):
        old_bob.manager.decrypt("alice", reply, now=6)


def test_the_trust_decision_is_asked_with_the_direction() -> None:
    asked: list[tuple[str, Direction]] = []

    def recording(address: str, stored: IdentityKey | None, received: IdentityKey,
                  direction: Direction) -> bool:
        asked.append((address, direction))
        return True

    alice, bob = talking(b"direction")
    alice.manager.trust = recording
    alice.manager.encrypt("bob", b"x")
    assert asked == [("bob", Direction.SENDING)]
    alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"y"), now=3)
    assert asked[-1] == ("bob", Direction.RECEIVING)
    asked.clear()
    carol = make_party("carol", b"direction")
    alice.manager.initiate("carol", carol.bundle())
    assert asked == [("carol", Direction.SENDING)]


# --- counters ----------------------------------------------------------------------------


def test_a_record_at_the_last_send_counter_refuses_with_a_typed_error() -> None:
    alice, _ = talking(b"counter")
    loaded = load_record(alice.store, "bob")
    assert loaded is not None
    record = SessionRecord.from_bytes(loaded[0].to_bytes())  # a copy, encoded afresh
    assert record.current is not None
    record.current.state.ns = MAX_COUNTER  # the last message number was sent
    with alice.store.transaction():
        save_record(alice.store, "bob", record, loaded[1])
    assert load_record(alice.store, "bob")[0].current.state.ns == MAX_COUNTER
    before = alice.snapshot()
    with pytest.raises(ChainExhausted) as refused:
        alice.manager.encrypt("bob", b"one too many")
    assert alice.snapshot() == before
    # A session that exists but cannot send: not a missing session.
    assert isinstance(refused.value, CannotSend) and not isinstance(refused.value, NoSession)


def test_each_reason_not_to_send_or_receive_has_its_own_error() -> None:
    """NoSession only when there is no session; a session that cannot send
    is a CannotSend; an initial message reaching a store without prekeys is
    UnknownPreKey (the message names prekeys this store does not have)."""
    alice, bob = talking(b"reasons")
    stranger = make_party("carol", b"reasons")
    with pytest.raises(NoSession) as missing:
        stranger.manager.encrypt("bob", b"x")
    assert not isinstance(missing.value, CannotSend)
    with pytest.raises(RemoteError) as unreadable:  # bad input from elsewhere, caught as such
        stranger.manager.decrypt("bob", bob.manager.encrypt("alice", b"not for carol"), now=3)
    assert isinstance(unreadable.value, NoSession) and isinstance(missing.value, LocalError)
    alice.manager.mark_restored(now=3)
    with pytest.raises(StaleSession) as stale:
        alice.manager.encrypt("bob", b"x")
    assert isinstance(stale.value, CannotSend) and not isinstance(stale.value, NoSession)
    empty = SessionManager(IdentityKeyPair.generate(DeterministicRandom(b"no ring")),
                           MemoryStore(), rng=DeterministicRandom(b"no ring rng"))
    dave = make_party("dave", b"reasons")
    dave.manager.initiate("empty", bob.bundle())
    with pytest.raises(UnknownPreKey):
        empty.decrypt("dave", dave.manager.encrypt("empty", b"hello?"), now=4)
    assert empty.store.session_addresses() == [] and empty.store.prekey_parts() == []


# --- replayed initial messages ---------------------------------------------------------


def first_message_whose_session_is_gone(alice: Party, bob: Party) -> bytes:
    """Alice's first message to Bob, decrypted; then a second session from
    Alice evicts the first from Bob's record (both use max_archived=0)."""
    alice.manager.initiate("bob", bob.bundle())
    first = alice.manager.encrypt("bob", b"first")
    assert bob.manager.decrypt("alice", first, now=1) == b"first"
    alice.manager.initiate("bob", bob.bundle())
    assert bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"again"), now=2) == b"again"
    return first


@pytest.mark.parametrize("profile", PROFILES)
def test_an_initial_message_without_one_time_prekey_cannot_be_replayed(profile: Profile) -> None:
    """Replayed once its session has left the record: refused, as libsignal
    does for last-resort Kyber prekeys, and the store is unchanged."""
    options = SessionOptions(max_archived=0)
    bob = make_party("bob", b"replay", options, profile=profile, one_time=0)
    first = first_message_whose_session_is_gone(
        make_party("alice", b"replay", options, profile=profile), bob)
    before = bob.snapshot()
    with pytest.raises(PreKeyReplayed):
        bob.manager.decrypt("alice", first, now=3)
    assert bob.snapshot() == before


def test_an_initial_message_with_a_one_time_prekey_cannot_be_replayed() -> None:
    options = SessionOptions(max_archived=0)
    bob = make_party("bob", b"replay-otk", options)
    first = first_message_whose_session_is_gone(make_party("alice", b"replay-otk", options), bob)
    with pytest.raises(PreKeyAlreadyUsed):
        bob.manager.decrypt("alice", first, now=3)


# --- prekeys belong to the store ----------------------------------------------------------


def test_a_ring_from_prekeys_cannot_be_changed_after_its_block() -> None:
    bob = make_party("bob", b"ring", one_time=3)
    with bob.manager.prekeys(now=0) as ring:
        first = ring.issue_bundle()
    for change in (lambda: ring.generate_one_time_prekeys(5, bob.rng), ring.issue_bundle,
                   lambda: ring.rotate_signed_prekey(bob.rng, now=1, grace=0),
                   lambda: ring.take_one_time_prekey(2), lambda: ring.prune(10)):
        with pytest.raises(InvalidArgument):
            change()
    with bob.manager.prekeys(now=0) as again:
        second = again.issue_bundle()
    assert first.one_time_prekey is not None and second.one_time_prekey is not None
    assert second.one_time_prekey.key_id == first.one_time_prekey.key_id + 1  # cursor kept


def test_consumed_prekeys_do_not_come_back() -> None:
    """The reproduction of the resurrection: an application that still holds
    a ring object writes it back after a first message consumed a one-time
    prekey.  The documented way cannot do it, and a replay stays refused."""
    options = SessionOptions(max_archived=0)
    bob = make_party("bob", b"resurrect", options, one_time=2)
    alice = make_party("alice", b"resurrect", options)
    with bob.manager.prekeys(now=0) as ring:
        bundle = ring.issue_bundle()
    alice.manager.initiate("bob", bundle)
    first = alice.manager.encrypt("bob", b"first")
    bob.manager.decrypt("alice", first, now=1)
    with pytest.raises(InvalidArgument):
        ring.generate_one_time_prekeys(1, bob.rng)   # the stale ring refuses
    with bob.manager.prekeys(now=2) as fresh:
        assert fresh.one_time_prekeys_remaining == 1
    alice.manager.initiate("bob", bob.bundle())  # evicts the first session
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"second session"), now=3)
    with pytest.raises(PreKeyAlreadyUsed):
        bob.manager.decrypt("alice", first, now=4)


def test_a_failed_block_writes_nothing() -> None:
    bob = make_party("bob", b"rollback", one_time=1)
    before = bob.snapshot()
    with pytest.raises(RuntimeError):
        with bob.manager.prekeys(now=0) as ring:
            ring.generate_one_time_prekeys(10, bob.rng)
            raise RuntimeError("the upload failed")
    assert bob.snapshot() == before


# --- long gaps ------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_losing_more_than_max_skip_at_the_end_of_a_chain_does_not_wedge(profile: Profile) -> None:
    """libsignal's limits (max_skip 25,000): 25,002 messages at the end of
    Alice's chain are lost, one more than the farthest a current chain may
    reach, then Alice takes a DH step.  Bob decrypts the new chain; the
    unreachable message is refused as evicted if it ever comes."""
    options = SessionOptions.libsignal(registration_id=7)
    alice, bob = talking(b"gap", profile, options)
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"a2-0"), now=3)
    lost = [alice.manager.encrypt("bob", b"lost") for _ in range(25_002)]
    alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"b2"), now=4)
    after = [alice.manager.encrypt("bob", b"a3-%d" % i) for i in range(3)]
    assert bob.manager.decrypt("alice", after[1], now=5) == b"a3-1"
    assert bob.manager.decrypt("alice", after[0], now=5) == b"a3-0"
    before = bob.snapshot()
    with pytest.raises(MessageKeyEvicted):
        bob.manager.decrypt("alice", lost[-1], now=6)
    assert bob.snapshot() == before
    assert bob.manager.decrypt("alice", lost[-2], now=6) == b"lost"  # newest kept keys
    assert bob.manager.decrypt("alice", after[2], now=6) == b"a3-2"
    assert alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"fine"), now=7) == b"fine"


# --- the cost of a forged message -----------------------------------------------------------


class StepCounter:
    """Counts KDF_CK steps: the ratchet derives every chain and message key
    through its one ``kdf_ck``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.steps = 0
        real = ratchet_module.kdf_ck

        def counting(ck: bytes) -> tuple[bytes, bytes]:
            self.steps += 1
            return real(ck)

        monkeypatch.setattr(ratchet_module, "kdf_ck", counting)


def full_record(options: SessionOptions, seed: bytes) -> Party:
    """Alice's record with 1 + max_archived sessions with Bob, each one that
    has received (so every session has a receiving chain to attack)."""
    alice = make_party("alice", seed, options)
    for i in range(1 + options.max_archived):
        bob = make_party("bob", seed + b"%d" % i, options, one_time=1)
        alice.manager.trust = lambda *_: True
        alice.manager.initiate("bob", bob.bundle())
        bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"hi"), now=1)
        alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"hello"), now=2)
    record = load_record(alice.store, "bob")[0]
    assert len(record.sessions) == 1 + options.max_archived
    return alice


@pytest.mark.parametrize("options", [
    pytest.param(SessionOptions(), id="defaults"),
    pytest.param(SessionOptions.libsignal(registration_id=1), id="libsignal-limits"),
])
def test_a_forged_message_costs_at_most_two_windows_of_derivations(
        options: SessionOptions, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = full_record(options, b"cost")
    max_skip = options.limits.max_skip
    new_key = other_key(b"forger").public_bytes_raw()
    record = load_record(alice.store, "bob")[0]
    assert record.current is not None
    current_key = record.current.state.dhr
    assert current_key is not None
    counter = StepCounter(monkeypatch)
    # The adversary's best messages: a DH step that asks for max_skip keys on
    # the chain it closes and max_skip on the new one (before, each session
    # of the record walked both), one with a huge PN, and one far ahead on
    # the current chain (before, it was also tried as a DH step everywhere).
    worst = [plain_prefix(new_key, max_skip, max_skip, 32) + bytes(32),
             plain_prefix(new_key, MAX_COUNTER, max_skip, 32) + bytes(32),
             plain_prefix(current_key, 0, max_skip, 32) + bytes(32)]
    for message in worst:
        before = alice.snapshot()
        counter.steps = 0
        with pytest.raises((AuthenticationError, TooFarAhead)):
            alice.manager.decrypt("bob", message, now=3)
        assert alice.snapshot() == before
        assert counter.steps <= 2 * (max_skip + 1), counter.steps


def test_no_initial_message_is_decrypted_inside_an_open_prekeys_block() -> None:
    """The ring a prekeys() block holds is the one its end writes: an
    initial message decrypted meanwhile would consume prekeys from another
    copy, and the block would then write a ring that counts them.  It is
    refused (and reads after the block), and the ring stays whole."""
    from signalish._storage import load_ring
    alice = make_party("alice", b"open ring")
    bob = make_party("bob", b"open ring")
    alice.manager.initiate("bob", bob.bundle())
    first = alice.manager.encrypt("bob", b"hi")
    with bob.manager.prekeys(now=0) as ring:
        ring.generate_one_time_prekeys(1, bob.rng)
        with pytest.raises(InvalidArgument):
            bob.manager.decrypt("alice", first, now=1)
    assert load_ring(bob.store, bob.identity) is not None  # loads: counts and rows agree
    assert bob.manager.decrypt("alice", first, now=2) == b"hi"
    assert load_ring(bob.store, bob.identity) is not None
