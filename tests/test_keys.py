"""Identity keys: construction from seeds, XEdDSA in both forms, encodings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import load_vectors
from signalish import LIBSIGNAL_V3, NATIVE, DeterministicRandom, IdentityKey, IdentityKeyPair
from signalish.errors import (
    CorruptState,
    InvalidArgument,
    InvalidEncoding,
    InvalidKey,
    TrailingBytes,
    TruncatedInput,
    UnexpectedType,
    UnknownVersion,
)
from signalish._primitives import Ed25519Signer, PrivateKey, montgomery_u_from_edwards

SIGNAL = load_vectors("third_party/signal_published.json")


def flips(data: bytes) -> list[bytes]:
    return [data[:i] + bytes((data[i] ^ (1 << b),)) + data[i + 1:]
            for i in range(len(data)) for b in range(8)]


def test_libsignal_published_xeddsa_signature() -> None:
    v = SIGNAL["xeddsa"]
    key = IdentityKey.decode(bytes.fromhex(v["identity_public"]), LIBSIGNAL_V3)
    message, signature = bytes.fromhex(v["message"]), bytes.fromhex(v["signature"])
    assert key.verify_signature(message, signature, LIBSIGNAL_V3)
    # The sign bit is 1 here, so the spec form (sign bit forced to 0) refuses it.
    assert signature[63] & 0x80
    assert not key.verify_signature(message, signature, NATIVE)
    for bad in flips(signature):
        assert not key.verify_signature(message, bad, LIBSIGNAL_V3)
    for bad in flips(message):
        assert not key.verify_signature(bad, signature, LIBSIGNAL_V3)


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=64))
def test_seed_signature_is_xeddsa_in_both_forms(seed: bytes, message: bytes) -> None:
    signer = Ed25519Signer(seed)
    if signer.public_bytes_raw()[31] & 0x80:
        with pytest.raises(InvalidArgument):
            IdentityKeyPair.from_seed(seed)
        return
    pair = IdentityKeyPair.from_seed(seed)
    # The X25519 public key is the Montgomery form of the Ed25519 key.
    assert pair.public.public_bytes_raw() == montgomery_u_from_edwards(signer.public_bytes_raw())
    signature = pair.sign(message)
    for form in (NATIVE, LIBSIGNAL_V3):
        assert pair.public.verify_signature(message, signature, form)
        assert not pair.public.verify_signature(message + b"!", signature, form)


def test_libsignal_form_reads_sign_bit_from_byte_63() -> None:
    """A seed with Edwards sign bit 1: a plain Ed25519 signature with that bit
    set into byte 63 verifies libsignal-style under the X25519 key."""
    rng = DeterministicRandom(b"sign-bit")
    while True:
        signer = Ed25519Signer(rng.random_bytes(32))
        if signer.public_bytes_raw()[31] & 0x80:
            break
    u = PrivateKey.from_private_bytes(signer.x25519_scalar()).public.public_bytes_raw()
    key = IdentityKey.from_public_bytes(u)
    signature = bytearray(signer.sign(b"msg"))
    assert not key.verify_signature(b"msg", bytes(signature), LIBSIGNAL_V3)
    signature[63] |= 0x80
    assert key.verify_signature(b"msg", bytes(signature), LIBSIGNAL_V3)
    assert not key.verify_signature(b"msg", bytes(signature), NATIVE)


def test_generate_yields_sign_bit_zero_and_agrees() -> None:
    rng = DeterministicRandom(b"gen")
    a, b = IdentityKeyPair.generate(rng), IdentityKeyPair.generate(rng)
    assert a.agree(b.public.public_key) == b.agree(a.public.public_key)
    assert "seed" not in repr(a) and a.seed().hex() not in repr(a)


def test_public_identity_import_forms() -> None:
    pair = IdentityKeyPair.generate(DeterministicRandom(b"imp"))
    raw = pair.public.public_bytes_raw()
    assert IdentityKey.from_public_bytes(raw) == pair.public
    assert IdentityKey.decode(b"\x05" + raw, LIBSIGNAL_V3) == pair.public
    assert IdentityKey.decode(raw, NATIVE) == pair.public
    assert pair.public.encode(LIBSIGNAL_V3) == b"\x05" + raw
    assert pair.public.encode(NATIVE) == raw
    for bad in (b"\x05" + raw, b"\x06" + raw, raw[:31], raw + b"\x00\x00"):
        with pytest.raises(InvalidKey):
            IdentityKey.from_public_bytes(bad)
    for bad in (b"\x06" + raw, raw, raw[:31], b"\x05" + raw + b"\x00"):
        with pytest.raises(InvalidKey):
            IdentityKey.decode(bad, LIBSIGNAL_V3)
    with pytest.raises(InvalidKey):
        IdentityKey.decode(b"\x05" + raw, NATIVE)
    with pytest.raises(InvalidKey):
        IdentityKey.from_public_bytes((2**255 - 1).to_bytes(32, "little"))


@given(st.binary(min_size=8, max_size=8))
def test_identity_pair_blob_is_integrity_checked(seed: bytes) -> None:
    pair = IdentityKeyPair.generate(DeterministicRandom(seed))
    data = pair.to_bytes()
    assert IdentityKeyPair.from_bytes(data).to_bytes() == data
    for i in range(len(data)):
        with pytest.raises(CorruptState):
            IdentityKeyPair.from_bytes(data[:i])
        for bit in (0, 5):
            with pytest.raises(CorruptState):
                IdentityKeyPair.from_bytes(data[:i] + bytes((data[i] ^ (1 << bit),)) + data[i + 1:])
    with pytest.raises(CorruptState):
        IdentityKeyPair.from_bytes(data + b"\x00")


@given(st.binary(min_size=8, max_size=8))
def test_identity_serialization_round_trip_and_strictness(seed: bytes) -> None:
    pair = IdentityKeyPair.generate(DeterministicRandom(seed))
    for obj, cls in ((pair.public, IdentityKey),):
        data = obj.to_bytes()
        restored = cls.from_bytes(data)  # type: ignore[attr-defined]
        assert restored.to_bytes() == data
        for i in range(len(data)):
            with pytest.raises(TruncatedInput):
                cls.from_bytes(data[:i])  # type: ignore[attr-defined]
        with pytest.raises(TrailingBytes):
            cls.from_bytes(data + b"\x00")  # type: ignore[attr-defined]
        with pytest.raises(UnknownVersion):
            cls.from_bytes(data[:1] + b"\x02" + data[2:])  # type: ignore[attr-defined]
        with pytest.raises(UnexpectedType):
            cls.from_bytes(b"\x7f" + data[1:])  # type: ignore[attr-defined]


def test_identity_pair_rejects_sign_bit_one_seed_on_load() -> None:
    rng = DeterministicRandom(b"bad-seed")
    while True:
        seed = rng.random_bytes(32)
        if Ed25519Signer(seed).public_bytes_raw()[31] & 0x80:
            break
    from signalish._encoding import add_digest
    with pytest.raises(InvalidEncoding):
        IdentityKeyPair.from_bytes(add_digest(b"\x01\x01" + seed))
