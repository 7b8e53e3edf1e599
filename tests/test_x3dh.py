"""X3DH and PQXDH: agreement, published values, policy, determinism.

``reference_sk`` below recomputes SK from the X3DH/PQXDH specifications with
the standard library's HMAC and pyca's X25519 directly, sharing no code with
signalish's KDF or DH wrappers.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from hypothesis import given
from hypothesis import strategies as st

from helpers import load_vectors
from signalish import (
    LIBSIGNAL_V3,
    NATIVE,
    BundlePolicy,
    IdentityKey,
    IdentityKeyPair,
    PreKeyBundle,
    PrivateKey,
    Profile,
    PublicKey,
    SignedPreKeyPublic,
)
from signalish._initial import InitialHeader
from signalish._x3dh import _respond_with_keys, initiate, respond
from signalish.errors import (
    InvalidSignature,
    PolicyViolation,
    PreKeyAlreadyUsed,
    TrailingBytes,
    TruncatedInput,
    UnknownPreKey,
)
from strategies import make_ring, seeds

SIGNAL = load_vectors("third_party/signal_published.json")


def reference_sk(profile_info: bytes, length: int, dh_pairs: list[tuple[bytes, bytes]],
                 kem_secret: bytes | None) -> bytes:
    """SK per X3DH section 2.2 / PQXDH section 2.2, written out from the spec."""
    km = b"".join(x25519.X25519PrivateKey.from_private_bytes(priv).exchange(
        x25519.X25519PublicKey.from_public_bytes(pub)) for priv, pub in dh_pairs)
    ikm = b"\xff" * 32 + km + (kem_secret or b"")
    prk = hmac.new(b"\x00" * 32, ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + profile_info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def test_signal_published_x3dh_as_bob() -> None:
    v = SIGNAL["x3dh_as_bob"]
    alice_identity = IdentityKey.decode(bytes.fromhex(v["alice_identity_public"]), LIBSIGNAL_V3)
    base_key = PublicKey.from_public_bytes(bytes.fromhex(v["alice_base_key_public"])[1:])
    bob_identity = PrivateKey.from_private_bytes(bytes.fromhex(v["bob_identity_private"]))
    header = InitialHeader(alice_identity, base_key, signed_prekey_id=1)
    result = _respond_with_keys(
        LIBSIGNAL_V3, bob_identity, IdentityKey(bob_identity.public),
        PrivateKey.from_private_bytes(bytes.fromhex(v["bob_signed_prekey_private"])), None, None, header)
    # libsignal's 64-byte output is root key || chain key.
    assert result.shared_secret[32:].hex() == v["expected_chain_key"]


def _agree(seed: bytes, profile: Profile, one_time: bool, kem: bool):  # type: ignore[no-untyped-def]
    _, ring, rng = make_ring(seed, profile, one_time=1 if one_time else 0, kem=1)
    alice = IdentityKeyPair.generate(rng)
    bundle = ring.issue_bundle()
    if not kem and bundle.kem_prekey is not None:
        bundle = PreKeyBundle(bundle.identity_key, bundle.signed_prekey, bundle.one_time_prekey)
    ek = PrivateKey.generate(rng)
    sent = initiate(alice, bundle, profile, ephemeral_key=ek)
    header = InitialHeader.from_bytes(sent.header.to_bytes())
    received = respond(ring, header, now=1_000)
    return alice, ring, bundle, ek, sent, received


@given(seeds, st.booleans(), st.booleans())
def test_both_parties_agree_native(seed: bytes, one_time: bool, kem: bool) -> None:
    alice, ring, bundle, ek, sent, received = _agree(seed, NATIVE, one_time, kem)
    assert sent.shared_secret == received.shared_secret
    assert sent.associated_data == received.associated_data
    assert sent.associated_data == alice.public.public_bytes_raw() + ring.identity.public.public_bytes_raw()
    assert sent.protocol == ("PQXDH" if kem else "X3DH")
    if kem:
        # The KEM secret is only known through decapsulation by Bob.
        assert bundle.kem_prekey is not None and sent.header.kem_ciphertext is not None
        kem_secret = ring.kem_prekey(bundle.kem_prekey.key_id, now=1_000).private_key.decapsulate(
            sent.header.kem_ciphertext)
    pairs = [(alice.dh_private.private_bytes_raw(), bundle.signed_prekey.public_key.public_bytes_raw()),
             (ek.private_bytes_raw(), bundle.identity_key.public_bytes_raw()),
             (ek.private_bytes_raw(), bundle.signed_prekey.public_key.public_bytes_raw())]
    if one_time:
        assert bundle.one_time_prekey is not None
        pairs.append((ek.private_bytes_raw(), bundle.one_time_prekey.public_key.public_bytes_raw()))
    info = NATIVE.pqxdh_info if kem else NATIVE.x3dh_info
    assert info is not None
    assert sent.shared_secret == reference_sk(info, 32, pairs, kem_secret if kem else None)


@given(seeds, st.booleans())
def test_both_parties_agree_libsignal(seed: bytes, one_time: bool) -> None:
    alice, ring, bundle, ek, sent, received = _agree(seed, LIBSIGNAL_V3, one_time, False)
    assert sent.shared_secret == received.shared_secret and len(sent.shared_secret) == 64
    assert sent.associated_data == b"\x05" + alice.public.public_bytes_raw() + b"\x05" + \
        ring.identity.public.public_bytes_raw()


def test_signatures_checked_before_any_dh(monkeypatch: pytest.MonkeyPatch) -> None:
    _, ring, rng = make_ring(b"before-dh")
    alice = IdentityKeyPair.generate(rng)
    bundle = ring.issue_bundle()
    spk = bundle.signed_prekey
    bad_sig = spk.signature[:-1] + bytes((spk.signature[-1] ^ 1,))
    forged = PreKeyBundle(bundle.identity_key, SignedPreKeyPublic(spk.key_id, spk.public_key, bad_sig),
                          bundle.one_time_prekey, bundle.kem_prekey)
    calls: list[object] = []
    original = PrivateKey.exchange
    monkeypatch.setattr(PrivateKey, "exchange", lambda self, peer: calls.append(peer) or original(self, peer))
    with pytest.raises(InvalidSignature):
        initiate(alice, forged, NATIVE)
    assert calls == []


def test_responder_rejects_unknown_and_used_one_time_prekeys() -> None:
    _, ring, _, _, sent, _ = _agree(b"replay", NATIVE, True, True)
    ring.consume(sent.header, now=1_000)
    with pytest.raises(PreKeyAlreadyUsed):
        respond(ring, sent.header, now=1_000)
    header = sent.header
    unknown = InitialHeader(header.identity_key, header.base_key, header.signed_prekey_id, 500)
    with pytest.raises(UnknownPreKey):
        respond(ring, unknown, now=1_000)


def test_policy_on_both_sides() -> None:
    _, ring, rng = make_ring(b"policy", one_time=0, kem=0)
    alice = IdentityKeyPair.generate(rng)
    bundle = ring.issue_bundle()  # last-resort KEM only, no one-time EC prekey
    strict = BundlePolicy(require_one_time_prekey=True)
    with pytest.raises(PolicyViolation):
        initiate(alice, bundle, NATIVE, policy=strict)
    stripped = PreKeyBundle(bundle.identity_key, bundle.signed_prekey)
    pq_only = BundlePolicy(require_kem_prekey=True)
    with pytest.raises(PolicyViolation):
        initiate(alice, stripped, NATIVE, policy=pq_only)
    downgraded = initiate(alice, stripped, NATIVE)
    with pytest.raises(PolicyViolation):
        respond(ring, downgraded.header, now=1_000, policy=pq_only)
    assert respond(ring, downgraded.header, now=1_000).shared_secret == downgraded.shared_secret


def test_deterministic_given_ephemeral_inputs() -> None:
    _, ring, rng = make_ring(b"det")
    alice = IdentityKeyPair.generate(rng)
    bundle = ring.issue_bundle()
    assert bundle.kem_prekey is not None
    ek = PrivateKey.generate(rng)
    encapsulation = bundle.kem_prekey.public_key.encapsulate()
    first = initiate(alice, bundle, NATIVE, ephemeral_key=ek, kem_encapsulation=encapsulation)
    second = initiate(alice, bundle, NATIVE, ephemeral_key=ek, kem_encapsulation=encapsulation)
    assert first == second
    assert first.header.to_bytes() == second.header.to_bytes()
    other = initiate(alice, bundle, NATIVE, ephemeral_key=ek)
    assert other.shared_secret != first.shared_secret  # fresh KEM secret
    assert "shared_secret" not in repr(first)


@given(seeds, st.booleans(), st.booleans())
def test_initial_header_round_trip_and_strictness(seed: bytes, one_time: bool, kem: bool) -> None:
    *_, sent, _ = _agree(seed, NATIVE, one_time, kem)
    data = sent.header.to_bytes()
    assert InitialHeader.from_bytes(data) == sent.header
    for i in range(0, len(data)):
        with pytest.raises(TruncatedInput):
            InitialHeader.from_bytes(data[:i])
    with pytest.raises(TrailingBytes):
        InitialHeader.from_bytes(data + b"\x00")
