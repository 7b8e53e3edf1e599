"""Hypothesis strategies and small builders shared by the tests."""

from __future__ import annotations

from hypothesis import strategies as st

from signalish import (
    NATIVE,
    DeterministicRandom,
    IdentityKeyPair,
    PreKeyRing,
    Profile,
)

seeds = st.binary(min_size=8, max_size=16)


def make_ring(seed: bytes, profile: Profile = NATIVE, *, one_time: int = 2,
              kem: int = 2) -> tuple[IdentityKeyPair, PreKeyRing, DeterministicRandom]:
    rng = DeterministicRandom(b"ring" + seed)
    identity = IdentityKeyPair.generate(rng)
    ring = PreKeyRing.create(identity, profile, rng, now=1_000)
    if one_time:
        ring.generate_one_time_prekeys(one_time, rng)
    if kem and profile.kem_key_prefix is not None:
        ring.generate_kem_prekeys(kem, rng, now=1_000)
    return identity, ring, rng


def every_truncation_and_extension(data: bytes) -> list[bytes]:
    return [data[:i] for i in range(len(data))] + [data + b"\x00", data + b"\xff" * 3]
