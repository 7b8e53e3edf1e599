"""The owner's prekey lifecycle (PreKeyRing)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signalish import LIBSIGNAL_V3, NATIVE, DeterministicRandom, IdentityKeyPair, PreKeyRing
from signalish._initial import InitialHeader
from signalish.errors import (
    CorruptState,
    DecodeError,
    InvalidArgument,
    PreKeyAlreadyUsed,
    PreKeyExpired,
    UnknownPreKey,
    UnsupportedByProfile,
)
from strategies import make_ring


def test_batch_has_fresh_ids_and_counts_remaining() -> None:
    _, ring, rng = make_ring(b"batch", one_time=0, kem=0)
    first = ring.generate_one_time_prekeys(5, rng)
    second = ring.generate_one_time_prekeys(3, rng)
    ids = [k.key_id for k in first + second]
    assert ids == list(range(1, 9))
    assert ring.one_time_prekeys_remaining == 8
    before = ring.to_bytes()
    assert ring.generate_one_time_prekeys(0, rng) == [] and ring.to_bytes() == before
    with pytest.raises(InvalidArgument):
        ring.generate_one_time_prekeys(-1, rng)


def test_take_exactly_once() -> None:
    _, ring, _ = make_ring(b"take", one_time=3)
    assert ring.take_one_time_prekey(2).key_id == 2
    assert ring.one_time_prekeys_remaining == 2
    with pytest.raises(PreKeyAlreadyUsed):
        ring.take_one_time_prekey(2)
    with pytest.raises(UnknownPreKey):
        ring.take_one_time_prekey(99)
    with pytest.raises(UnknownPreKey):
        ring.one_time_prekey(0)
    assert ring.one_time_prekeys_remaining == 2


def test_signed_prekey_rotation_with_grace() -> None:
    _, ring, rng = make_ring(b"rot")
    old = ring.current_signed_prekey.key_id
    new = ring.rotate_signed_prekey(rng, now=2_000, grace=500).key_id
    assert new == old + 1 and ring.current_signed_prekey.key_id == new
    assert ring.signed_prekey(old, now=2_499).key_id == old
    with pytest.raises(PreKeyExpired):
        ring.signed_prekey(old, now=2_500)
    ring.prune(2_500)
    with pytest.raises(PreKeyExpired):
        ring.signed_prekey(old, now=2_500)
    with pytest.raises(UnknownPreKey):
        ring.signed_prekey(new + 1, now=2_500)
    assert ring.issue_bundle().signed_prekey.key_id == new


def test_kem_one_time_then_last_resort() -> None:
    _, ring, _ = make_ring(b"kem", one_time=1, kem=2)
    kinds = []
    for _ in range(4):
        bundle = ring.issue_bundle()
        assert bundle.kem_prekey is not None
        kinds.append((bundle.kem_prekey.last_resort, bundle.one_time_prekey is not None))
    assert kinds == [(False, True), (False, False), (True, False), (True, False)]
    last_resort = ring.current_last_resort_kem_prekey
    assert last_resort is not None
    # The last-resort key survives being used.
    header_ids = last_resort.key_id
    assert ring.kem_prekey(header_ids, now=1_000) is last_resort


def test_last_resort_rotation() -> None:
    _, ring, rng = make_ring(b"lr", kem=0)
    old = ring.current_last_resort_kem_prekey
    assert old is not None
    new = ring.rotate_last_resort_kem_prekey(rng, now=5_000, grace=10)
    assert ring.issue_bundle().kem_prekey == new
    assert ring.kem_prekey(old.key_id, now=5_009) is old
    with pytest.raises(PreKeyExpired):
        ring.kem_prekey(old.key_id, now=5_010)


def test_kem_unavailable_under_libsignal() -> None:
    _, ring, rng = make_ring(b"x", LIBSIGNAL_V3)
    assert ring.issue_bundle().kem_prekey is None
    with pytest.raises(UnsupportedByProfile):
        ring.generate_kem_prekeys(1, rng, now=0)


def _header(ring: PreKeyRing, one_time: int | None, kem: int | None) -> InitialHeader:
    return InitialHeader(
        identity_key=ring.identity.public,
        base_key=ring.current_signed_prekey.private_key.public,
        signed_prekey_id=ring.current_signed_prekey.key_id,
        one_time_prekey_id=one_time,
        kem_prekey_id=kem,
        kem_ciphertext=None if kem is None else bytes(1568),
    )


def test_consume_is_all_or_nothing() -> None:
    _, ring, _ = make_ring(b"consume", one_time=2, kem=1)
    before = ring.to_bytes()
    with pytest.raises(UnknownPreKey):
        ring.consume(_header(ring, 1, 77), now=1_000)
    assert ring.to_bytes() == before
    kem_id = ring.issue_bundle().kem_prekey.key_id  # type: ignore[union-attr]
    ring.consume(_header(ring, 1, kem_id), now=1_000)
    assert ring.one_time_prekeys_remaining == 1 and ring.kem_prekeys_remaining == 0
    with pytest.raises(PreKeyAlreadyUsed):
        ring.consume(_header(ring, 1, None), now=1_000)


@given(st.binary(min_size=4, max_size=8), st.sampled_from([NATIVE, LIBSIGNAL_V3]),
       st.integers(0, 3), st.booleans())
def test_ring_round_trip(seed: bytes, profile: object, takes: int, rotate: bool) -> None:
    identity, ring, rng = make_ring(seed, profile, one_time=3, kem=2)  # type: ignore[arg-type]
    for key_id in range(1, takes + 1):
        ring.take_one_time_prekey(key_id)
    if rotate:
        ring.rotate_signed_prekey(rng, now=1_500, grace=100)
    ring.issue_bundle()
    data = ring.to_bytes()
    restored = PreKeyRing.from_bytes(data, identity)
    assert restored.to_bytes() == data
    assert restored.issue_bundle() == ring.issue_bundle()


def test_ring_strict_decoding() -> None:
    identity, ring, _ = make_ring(b"strict", one_time=1, kem=1)
    data = ring.to_bytes()
    for i in range(len(data)):
        with pytest.raises(CorruptState):
            PreKeyRing.from_bytes(data[:i], identity)
        with pytest.raises(CorruptState):
            PreKeyRing.from_bytes(data[:i] + bytes((data[i] ^ 0x40,)) + data[i + 1:], identity)
    with pytest.raises(CorruptState):
        PreKeyRing.from_bytes(data + b"\x00", identity)
    other = IdentityKeyPair.generate(DeterministicRandom(b"other"))
    with pytest.raises(InvalidArgument, match="different identity"):
        PreKeyRing.from_bytes(data, other)


def test_ring_refuses_out_of_order_ids() -> None:
    from signalish._encoding import add_digest
    identity, ring, rng = make_ring(b"order", one_time=2, kem=0)
    data = bytearray(ring.to_bytes()[:-16])
    # Find both one-time ids (1 and 2, 4 bytes each) and swap them.
    first = ring.one_time_prekey(1).private_key.private_bytes_raw()
    at = data.index(first) - 4
    data[at:at + 4] = (5).to_bytes(4, "big")
    with pytest.raises(DecodeError, match="order"):
        PreKeyRing.from_bytes(add_digest(bytes(data)), identity)
