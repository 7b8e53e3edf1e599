"""Prekey upkeep: what to generate and upload, ids across a reinstall."""

from __future__ import annotations

import pytest

from signalish import (
    LIBSIGNAL_V3,
    NATIVE,
    DeterministicRandom,
    IdentityKeyPair,
    MemoryStore,
    PreKeyIds,
    SessionManager,
    Upkeep,
    UpkeepPolicy,
)
from signalish.errors import AuthenticationError, InvalidArgument, PreKeyError, PreKeyExpired
from signalish._storage import ring_bytes

DAY = 86_400


def manager(seed: bytes, profile=NATIVE) -> SessionManager:  # type: ignore[no-untyped-def]
    rng = DeterministicRandom(seed)
    return SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), profile, rng=rng)


def test_a_fresh_ring_is_stocked_and_nothing_more_is_due() -> None:
    bob = manager(b"upkeep")
    upload = bob.upkeep(now=0)
    assert len(upload.one_time) == 100 and len(upload.kem) == 100
    assert upload.signed is None and upload.last_resort is None  # made just now
    assert [k.key_id for k in upload.one_time] == list(range(1, 101))
    before = ring_bytes(bob.store, bob.identity)
    again = bob.upkeep(now=1)
    assert not again and ring_bytes(bob.store, bob.identity) == before
    with bob.prekeys(now=2) as ring:
        assert not ring.upkeep_due(now=2)


def test_top_up_when_low_counting_what_was_handed_out() -> None:
    bob = manager(b"low")
    bob.upkeep(now=0)
    with bob.prekeys(now=1) as ring:
        for _ in range(80):
            ring.issue_bundle()  # as a server would: 20 left to hand out
        assert ring.upkeep_due(now=1) == Upkeep(0, 0, False, False)
        ring.issue_bundle()  # 19 left: below the low mark of 20
        assert ring.upkeep_due(now=1) == Upkeep(81, 81, False, False)
        # The server's count wins when the application has it.
        assert ring.upkeep_due(now=1, server_one_time=50, server_kem=5) == Upkeep(0, 95, False, False)
    upload = bob.upkeep(now=1)
    assert [k.key_id for k in upload.one_time] == list(range(101, 182))  # ids never reused


def test_rotation_when_due_with_grace() -> None:
    bob = manager(b"rotate")
    bob.upkeep(now=0)
    with bob.prekeys(now=0) as ring:
        old_signed = ring.current_signed_prekey.key_id
    policy = UpkeepPolicy(signed_max_age=7 * DAY, last_resort_max_age=30 * DAY, grace=2 * DAY)
    upload = bob.upkeep(now=7 * DAY, policy=policy)
    assert upload.signed is not None and upload.signed.key_id == old_signed + 1
    assert upload.last_resort is None and not upload.one_time
    with bob.prekeys(now=8 * DAY) as ring:
        assert ring.signed_prekey(old_signed, now=8 * DAY).key_id == old_signed
        with pytest.raises(PreKeyExpired):
            ring.signed_prekey(old_signed, now=9 * DAY + 1)
    upload = bob.upkeep(now=30 * DAY, policy=policy)
    assert upload.last_resort is not None and upload.last_resort.last_resort
    assert upload.signed is not None  # due again: 23 days since the last rotation


def test_profiles_without_pqxdh_ask_for_no_kem_keys() -> None:
    bob = manager(b"v3", LIBSIGNAL_V3)
    upload = bob.upkeep(now=0)
    assert len(upload.one_time) == 100 and not upload.kem and upload.last_resort is None


def test_ids_continue_across_a_reinstall() -> None:
    """A first message in flight for a key of the old installation is a
    PreKeyError in the new one when the application kept next_ids; without
    them the new keys reuse the old ids and the message fails to
    authenticate, which looks like forgery."""
    from signalish import PreKeyRing
    from signalish._storage import save_ring
    old = manager(b"reinstall")
    old.upkeep(now=0)
    with old.prekeys(now=0) as ring:
        bundle = ring.issue_bundle()
        kept = ring.next_ids
    alice = manager(b"reinstall alice")
    alice.initiate("bob", bundle)
    in_flight = alice.encrypt("bob", b"sent before the reinstall")

    def reinstalled(first_ids: PreKeyIds) -> SessionManager:
        new = manager(b"reinstall")  # the same identity, an empty store
        ring = PreKeyRing.create(new.identity, NATIVE, DeterministicRandom(b"new keys"), now=1,
                                 first_ids=first_ids)
        with new.store.transaction():
            save_ring(new.store, ring, {})
        new.upkeep(now=1)
        return new

    with pytest.raises(AuthenticationError):
        reinstalled(PreKeyIds()).decrypt("alice", in_flight, now=2)
    new = reinstalled(kept)
    with pytest.raises(PreKeyError):
        new.decrypt("alice", in_flight, now=2)
    with new.prekeys(now=2) as fresh:
        assert fresh.next_ids.one_time > kept.one_time
        assert fresh.current_signed_prekey.key_id == kept.signed


def test_zero_keys_is_a_no_op_and_bad_policies_are_refused() -> None:
    bob = manager(b"zero")
    with bob.prekeys(now=0) as ring:
        assert ring.generate_one_time_prekeys(0, bob.rng) == []
        assert ring.generate_kem_prekeys(0, bob.rng, now=0) == []
        with pytest.raises(InvalidArgument):
            ring.generate_one_time_prekeys(-1, bob.rng)
    for bad in (dict(one_time_low=101), dict(kem=10_001), dict(grace=-1)):
        with pytest.raises(InvalidArgument):
            UpkeepPolicy(**bad)  # type: ignore[arg-type]
    for bad_ids in (dict(signed=0), dict(one_time=2**32)):
        with pytest.raises(InvalidArgument):
            PreKeyIds(**bad_ids)  # type: ignore[arg-type]
    with bob.prekeys(now=0) as ring:
        with pytest.raises(InvalidArgument):
            ring.upkeep_due(now=0, server_one_time=-1)


def test_upkeep_or_another_prekeys_block_inside_an_open_one_is_refused() -> None:
    """Found by review: manager.upkeep() called inside a prekeys() block (after
    ring.upkeep_due said it was due) wrote the new keys, then the outer block
    wrote its older ring over them: the store no longer loaded, and the
    inner block's end re-allowed initial messages inside the outer one.  Now
    a nested block, upkeep and mark_restored are refused there, and the
    outer block goes on with its own ring."""
    rng = DeterministicRandom(b"nested")
    bob = manager(b"nested")
    alice = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), rng=rng)
    with bob.prekeys(now=0) as ring:
        ring.generate_one_time_prekeys(5, rng)
        bundle = ring.issue_bundle()
    alice.initiate("bob", bundle)
    first = alice.encrypt("bob", b"hi")
    with bob.prekeys(now=0) as ring:
        assert ring.upkeep_due(now=0)
        for nested in (lambda: bob.upkeep(now=0), lambda: bob.mark_restored(now=0)):
            with pytest.raises(InvalidArgument, match="prekeys"):
                nested()
        with pytest.raises(InvalidArgument, match="already open"):
            with bob.prekeys(now=0):
                pass  # never reached
        with pytest.raises(InvalidArgument):  # still refused inside the outer block
            bob.decrypt("alice", first, now=0)
        upload = ring.upkeep(rng, now=0)  # the ring at hand does it
        later = ring.issue_bundle()
    assert len(upload.one_time) == 96 and later.one_time_prekey is not None
    with bob.prekeys(now=1) as ring:  # the store loads, with every key the block made
        assert ring.one_time_prekeys_remaining == 101
    assert bob.decrypt("alice", first, now=1) == b"hi"


def test_a_full_ring_still_rotates_and_a_crowded_signed_prekey_is_due(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: a server that kept reporting low counts filled the
    ring to its limit, after which upkeep refused everything, rotation of
    the signed prekey included; and a signed prekey whose remembered base
    keys had reached their limit (initial messages without a one-time
    prekey then refused) was never due.  Limits lowered to keep it short."""
    import signalish._prekeys.ring as ring_module

    monkeypatch.setattr(ring_module, "MAX_STORED", 150)
    monkeypatch.setattr(ring_module, "MAX_REMEMBERED", 10)
    bob = manager(b"full ring")
    bob.upkeep(now=0)  # 100 one-time keys
    upload = bob.upkeep(now=8 * DAY, server_one_time=0, server_kem=0)  # "none left"
    assert len(upload.one_time) == 50 and upload.signed is not None  # room for 50, rotated
    upload = bob.upkeep(now=16 * DAY, server_one_time=0, server_kem=0)
    assert not upload.one_time and upload.signed is not None  # full: rotation goes on
    rng = DeterministicRandom(b"initiators")
    with bob.prekeys(now=16 * DAY) as ring:  # hand out every one-time key
        bundle = ring.issue_bundle()
        while bundle.one_time_prekey is not None or not bundle.kem_prekey.last_resort:
            bundle = ring.issue_bundle()
    for i in range(9):  # initial messages without a one-time prekey, remembered
        alice = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), rng=rng)
        alice.initiate("bob", bundle)
        bob.decrypt("alice %d" % i, alice.encrypt("bob", b"hi"), now=16 * DAY)
    with bob.prekeys(now=16 * DAY) as ring:
        due = ring.upkeep_due(now=16 * DAY, server_one_time=100, server_kem=100)
    assert due.rotate_signed and not due.one_time
