"""Sealed boxes: HPKE checked against RFC 9180 and the post-quantum HPKE vectors.

The chain of evidence: tests/reference_hpke.py (written from RFC 9180 and the
X-Wing draft) reproduces the published shared secrets, keys, nonces and
ciphertexts; then cryptography's HPKE, which signalish uses, must open
single-shot ciphertexts that the reference builds from those vectors' keys.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference_hpke as ref
from helpers import load_vectors
from signalish import DeterministicRandom
from signalish.sealed_box import SealedBoxPrivateKey, SealedBoxPublicKey, SealedBoxSuite
from signalish.errors import AuthenticationError, DecodeError, UnexpectedType
from signalish._primitives import HpkePrivate

RFC = load_vectors("third_party/hpke_rfc9180_x25519_aes256gcm.json")["vectors"][0]
PQ = load_vectors("third_party/hpke_pq_xwing_chacha20.json")["vectors"][0]
h = bytes.fromhex


@pytest.mark.parametrize("vector,decap,suite", [
    (RFC, ref.dhkem_x25519_decap, "x25519"),
    (PQ, ref.xwing_decap, "mlkem768-x25519"),
], ids=["rfc9180-x25519", "pq-xwing"])
def test_hpke_against_published_vectors(vector: dict[str, Any], decap: Any, suite: Any) -> None:
    enc, info = h(vector["enc"]), h(vector["info"])
    shared = decap(enc, h(vector["skRm"]))
    assert shared.hex() == vector["shared_secret"]
    key, base_nonce = ref.key_schedule(vector["kem_id"], vector["aead_id"], shared, info, 32)
    assert key.hex() == vector["key"] and base_nonce.hex() == vector["base_nonce"]
    for seq, item in enumerate(vector["encryptions"][:10]):
        opened = ref.aead(vector["aead_id"], key).decrypt(ref.nonce(base_nonce, seq),
                                                         h(item["ct"]), h(item["aad"]))
        assert opened.hex() == item["pt"]
    # signalish's HPKE (cryptography's) opens what the reference seals under
    # the vector's recipient key: same KEM, same key schedule, same AEAD.
    private = HpkePrivate(suite, h(vector["skRm"]))
    assert private.public.public_bytes_raw().hex() == vector["pkRm"]
    message = b"sealed under the published key"
    sealed = enc + ref.aead(vector["aead_id"], key).encrypt(base_nonce, message, b"")
    assert private.open(sealed, info) == message
    with pytest.raises(AuthenticationError):
        private.open(sealed, info + b"!")


@pytest.mark.parametrize("suite", list(SealedBoxSuite))
def test_round_trip_and_key_serialization(suite: SealedBoxSuite) -> None:
    rng = DeterministicRandom(b"box%d" % suite)
    recipient = SealedBoxPrivateKey.generate(suite, rng)
    public = SealedBoxPublicKey.from_bytes(recipient.public_key.to_bytes())
    assert public == recipient.public_key
    box = public.seal(b"for your eyes only")
    assert recipient.open(box) == b"for your eyes only"
    restored = SealedBoxPrivateKey.from_bytes(recipient.to_bytes())
    assert restored.open(box) == b"for your eyes only"
    assert recipient.to_bytes().hex()[6:] not in repr(recipient)
    other = SealedBoxPrivateKey.generate(suite, rng)
    with pytest.raises(AuthenticationError):
        other.open(box)


@given(st.binary(max_size=200), st.sampled_from(list(SealedBoxSuite)))
def test_any_change_to_a_box_is_refused(plaintext: bytes, suite: SealedBoxSuite) -> None:
    recipient = SealedBoxPrivateKey(suite, bytes(32))
    box = recipient.public_key.seal(plaintext)
    assert recipient.open(box) == plaintext
    for i in range(0, len(box), max(1, len(box) // 40)):
        with pytest.raises((DecodeError, AuthenticationError)):
            recipient.open(box[:i] + bytes((box[i] ^ 0x01,)) + box[i + 1:])
    for cut in (0, 1, 3, len(box) - 1):
        with pytest.raises(DecodeError):
            recipient.open(box[:cut])
    with pytest.raises(DecodeError):
        recipient.open(box + b"\x00")


def test_suite_mismatch_is_named() -> None:
    classical = SealedBoxPrivateKey(SealedBoxSuite.X25519, bytes(32))
    hybrid = SealedBoxPrivateKey(SealedBoxSuite.MLKEM768_X25519, bytes(32))
    with pytest.raises(UnexpectedType):
        classical.open(hybrid.public_key.seal(b"x"))
