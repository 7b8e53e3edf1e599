"""Prekey bundles: verification and strict serialization."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signalish import (
    LIBSIGNAL_V3,
    NATIVE,
    KemPreKeyPublic,
    OneTimePreKeyPublic,
    PreKeyBundle,
    SignedPreKeyPublic,
)
from signalish.errors import (
    DecodeError,
    InvalidKey,
    InvalidSignature,
    TrailingBytes,
    TruncatedInput,
    UnsupportedByProfile,
)
from strategies import make_ring, seeds


def full_native_bundle(seed: bytes = b"bundle") -> PreKeyBundle:
    _, ring, _ = make_ring(seed)
    bundle = ring.issue_bundle()
    assert bundle.one_time_prekey is not None and bundle.kem_prekey is not None
    return bundle


def verify_outcome(data: bytes) -> str:
    """What happens to a (possibly modified) serialized native bundle."""
    try:
        bundle = PreKeyBundle.from_bytes(data)
    except (DecodeError, InvalidKey):
        return "rejected-on-decode"
    try:
        bundle.verify(NATIVE)
    except InvalidSignature:
        return "rejected-on-verify"
    return "accepted"


def test_every_single_bit_flip_fails_native() -> None:
    """Native profile: any one-bit change to any signature, key, id or flag of
    a bundle makes decoding or verify() fail.  Only the two installation ids
    (registration id, device id: bytes 2..9) are unsigned, by design."""
    data = full_native_bundle().to_bytes()
    assert verify_outcome(data) == "accepted"
    for i in range(10, len(data)):
        for b in range(8):
            flipped = data[:i] + bytes((data[i] ^ (1 << b),)) + data[i + 1:]
            assert verify_outcome(flipped) != "accepted", (i, b)


def test_libsignal_bundle_signature_covers_signed_prekey_only() -> None:
    _, ring, _ = make_ring(b"ls", LIBSIGNAL_V3)
    bundle = ring.issue_bundle()
    bundle.verify(LIBSIGNAL_V3)
    spk = bundle.signed_prekey
    raw = spk.public_key.public_bytes_raw()
    for i in range(32):
        for b in range(8):
            changed = raw[:i] + bytes((raw[i] ^ (1 << b),)) + raw[i + 1:]
            try:
                key = type(spk.public_key).from_public_bytes(changed)
            except InvalidKey:
                continue
            forged = PreKeyBundle(bundle.identity_key, SignedPreKeyPublic(spk.key_id, key, spk.signature))
            with pytest.raises(InvalidSignature):
                forged.verify(LIBSIGNAL_V3)
    # Under X3DH the one-time prekey and the ids are not signed (X3DH 3.2).
    assert bundle.one_time_prekey is not None and bundle.one_time_prekey.signature is None


def test_kem_prekey_refused_under_libsignal_v3() -> None:
    bundle = full_native_bundle()
    with pytest.raises(UnsupportedByProfile):
        bundle.verify(LIBSIGNAL_V3)


def test_native_bundle_needs_one_time_signature() -> None:
    bundle = full_native_bundle()
    assert bundle.one_time_prekey is not None
    unsigned = OneTimePreKeyPublic(bundle.one_time_prekey.key_id,
                                   bundle.one_time_prekey.public_key, None)
    with pytest.raises(InvalidSignature, match="one-time"):
        PreKeyBundle(bundle.identity_key, bundle.signed_prekey, unsigned).verify(NATIVE)


@given(seeds, st.booleans(), st.booleans(), st.sampled_from([NATIVE, LIBSIGNAL_V3]))
def test_bundle_round_trip_truncation_extension(seed: bytes, with_one_time: bool,
                                                with_kem: bool, profile: object) -> None:
    _, ring, _ = make_ring(seed, profile, one_time=1 if with_one_time else 0)  # type: ignore[arg-type]
    bundle = ring.issue_bundle()
    if not with_kem and bundle.kem_prekey is not None:
        bundle = PreKeyBundle(bundle.identity_key, bundle.signed_prekey, bundle.one_time_prekey,
                              None, 7, 9)
    data = bundle.to_bytes()
    assert PreKeyBundle.from_bytes(data) == bundle
    assert PreKeyBundle.from_bytes(data).to_bytes() == data
    for i in range(len(data)):
        with pytest.raises(TruncatedInput):
            PreKeyBundle.from_bytes(data[:i])
    for extra in (b"\x00", b"\x01\x02"):
        with pytest.raises(TrailingBytes):
            PreKeyBundle.from_bytes(data + extra)


def test_public_prekey_values_round_trip() -> None:
    bundle = full_native_bundle()
    for value, cls in ((bundle.signed_prekey, SignedPreKeyPublic),
                       (bundle.one_time_prekey, OneTimePreKeyPublic),
                       (bundle.kem_prekey, KemPreKeyPublic)):
        data = value.to_bytes()  # type: ignore[union-attr]
        assert cls.from_bytes(data) == value  # type: ignore[attr-defined]
        with pytest.raises(TruncatedInput):
            cls.from_bytes(data[:-1])  # type: ignore[attr-defined]
        with pytest.raises(TrailingBytes):
            cls.from_bytes(data + b"\x00")  # type: ignore[attr-defined]


def test_presence_byte_must_be_zero_or_one() -> None:
    data = full_native_bundle().to_bytes()
    flag_at = 2 + 4 + 4 + 32 + 4 + 32 + 64  # one-time prekey presence byte
    assert data[flag_at] == 1
    with pytest.raises(DecodeError, match="presence"):
        PreKeyBundle.from_bytes(data[:flag_at] + b"\x02" + data[flag_at + 1:])
