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


# --- ratchet helpers -------------------------------------------------------------

from signalish import RatchetLimits  # noqa: E402
from signalish._encoding import Writer  # noqa: E402
from signalish._message import NATIVE_WIRE, EncryptedFrame, PlainFrame, parse  # noqa: E402
from signalish._primitives import PrivateKey  # noqa: E402
from signalish._ratchet import RatchetState, ratchet_decrypt, ratchet_encrypt  # noqa: E402
from signalish._state_codec import write_state  # noqa: E402

AD = b"associated data of the session"


def ratchet_pair(seed: bytes, he: bool = False) -> tuple[RatchetState, RatchetState,
                                                          DeterministicRandom]:
    rng = DeterministicRandom(b"ratchet" + seed)
    sk = rng.random_bytes(32)
    bob_key = PrivateKey.generate(rng)
    alice = RatchetState.init_alice(NATIVE, sk, bob_key.public, rng, he)
    bob = RatchetState.init_bob(NATIVE, sk, bob_key, he)
    return alice, bob, rng


def snapshot(state: RatchetState) -> bytes:
    w = Writer(0x99)
    write_state(w, state)
    return w.getvalue()


def send(state: RatchetState, plaintext: bytes) -> bytes:
    return NATIVE_WIRE.seal(ratchet_encrypt(state), plaintext, AD)


def receive(state: RatchetState, message: bytes, rng: DeterministicRandom, *, now: int = 0,
            limits: RatchetLimits = RatchetLimits()) -> bytes:
    frame = parse(message, limits.max_message_size)
    assert isinstance(frame, (PlainFrame, EncryptedFrame))
    return ratchet_decrypt(state, frame, AD, now=now, rng=rng, limits=limits)
