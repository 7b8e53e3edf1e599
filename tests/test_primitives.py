"""The primitives layer against RFC 7748, 5869, 8032 and Wycheproof.

Every value checked here comes from vectors/third_party (see its README): none
was produced by signalish.  How each Wycheproof ``acceptable`` verdict is
treated is stated beside the test that reads it.
"""

from __future__ import annotations

from typing import Any, Literal

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import case_id, load_vectors, wycheproof_cases
from signalish.errors import InvalidArgument, InvalidKey
from signalish._errors import AuthenticationError
from signalish._primitives import (
    Ed25519Signer,
    KemPrivateKey,
    KemPublicKey,
    PrivateKey,
    PublicKey,
    aes256_cbc_decrypt,
    aes256_cbc_encrypt,
    aes256_gcm_decrypt,
    aes256_gcm_encrypt,
    chacha20_poly1305_decrypt,
    chacha20_poly1305_encrypt,
    ct_equal,
    ed25519_verify,
    hkdf,
    hmac_sha256,
    montgomery_u_from_edwards,
)

h = bytes.fromhex

# --- X25519 -------------------------------------------------------------------

RFC7748 = load_vectors("third_party/rfc7748_x25519.json")


@pytest.mark.parametrize("vector", RFC7748["scalar_mult"], ids=["5.2-1", "5.2-2"])
def test_rfc7748_scalar_mult(vector: dict[str, str]) -> None:
    u = h(vector["u"])
    if u[31] & 0x80:
        # RFC 7748 decodeUCoordinate masks bit 255; signalish refuses such
        # encodings outright, so the test applies the RFC's masking itself.
        with pytest.raises(InvalidKey):
            PublicKey.from_public_bytes(u)
        u = u[:31] + bytes((u[31] & 0x7F,))
    out = PrivateKey.from_private_bytes(h(vector["scalar"])).exchange(PublicKey.from_public_bytes(u))
    assert out.hex() == vector["output"]


@pytest.mark.parametrize("vector", RFC7748["iterated"], ids=lambda v: f"iter{v['iterations']}")
def test_rfc7748_iterated(vector: dict[str, Any]) -> None:
    k = u = (9).to_bytes(32, "little")
    for _ in range(vector["iterations"]):
        k, u = PrivateKey.from_private_bytes(k).exchange(PublicKey.from_public_bytes(u)), k
    assert k.hex() == vector["output"]


def test_rfc7748_diffie_hellman() -> None:
    dh = RFC7748["diffie_hellman"]
    alice = PrivateKey.from_private_bytes(h(dh["alice_private"]))
    bob = PrivateKey.from_private_bytes(h(dh["bob_private"]))
    assert alice.public.public_bytes_raw().hex() == dh["alice_public"]
    assert bob.public.public_bytes_raw().hex() == dh["bob_public"]
    assert alice.exchange(bob.public).hex() == dh["shared"]
    assert bob.exchange(alice.public).hex() == dh["shared"]


@pytest.mark.parametrize("case", wycheproof_cases("x25519_test.json"), ids=case_id)
def test_wycheproof_x25519(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, t = case
    flags = set(t["flags"])
    private = PrivateKey.from_private_bytes(h(t["private"]))
    if "ZeroSharedSecret" in flags or "NonCanonicalPublic" in flags:
        # "acceptable" in Wycheproof; signalish's policy is to refuse both: an
        # all-zero output must never reach a KDF, and a public key has exactly
        # one accepted encoding.
        with pytest.raises(InvalidKey):
            private.exchange(PublicKey.from_public_bytes(h(t["public"])))
        return
    # Everything else (valid, and acceptable twist points) must agree exactly.
    assert t["result"] in ("valid", "acceptable")
    assert private.exchange(PublicKey.from_public_bytes(h(t["public"]))).hex() == t["shared"]


def test_low_order_points_refused_on_import() -> None:
    for u in (0, 1, 2**255 - 20):
        with pytest.raises(InvalidKey):
            PublicKey.from_public_bytes(u.to_bytes(32, "little"))


# --- HKDF and HMAC --------------------------------------------------------------


@pytest.mark.parametrize("vector", load_vectors("third_party/rfc5869_hkdf_sha256.json")["tests"],
                         ids=lambda v: v["name"])
def test_rfc5869(vector: dict[str, Any]) -> None:
    okm = hkdf(h(vector["ikm"]), salt=h(vector["salt"]) or None, info=h(vector["info"]),
               length=vector["length"])
    assert okm.hex() == vector["okm"]


@pytest.mark.parametrize("case", wycheproof_cases("hkdf_sha256_test.json"), ids=case_id)
def test_wycheproof_hkdf(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, t = case
    run = lambda: hkdf(h(t["ikm"]), salt=h(t["salt"]), info=h(t["info"]), length=t["size"])  # noqa: E731
    if t["result"] == "invalid":
        with pytest.raises(InvalidArgument):
            run()
    else:
        assert run().hex() == t["okm"]


@settings(max_examples=200)
@given(st.binary(max_size=80), st.one_of(st.none(), st.binary(min_size=1, max_size=80)),
       st.binary(max_size=40), st.integers(1, 600), st.sampled_from(["sha256", "sha512"]))
def test_hkdf_matches_pyca(ikm: bytes, salt: bytes | None, info: bytes, length: int,
                           hash_name: Literal["sha256", "sha512"]) -> None:
    """signalish's HKDF (stdlib hmac) against pyca's independent HKDF, for both
    hashes (no published HKDF-SHA-512 vectors are bundled here)."""
    algorithm = hashes.SHA256() if hash_name == "sha256" else hashes.SHA512()
    expected = HKDF(algorithm, length, salt, info).derive(ikm)
    assert hkdf(ikm, salt=salt, info=info, length=length, hash_name=hash_name) == expected


@pytest.mark.parametrize("case", wycheproof_cases("hmac_sha256_test.json"), ids=case_id)
def test_wycheproof_hmac(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    group, t = case
    tag = hmac_sha256(h(t["key"]), h(t["msg"]))[: group["tagSize"] // 8]
    assert ct_equal(tag, h(t["tag"])) is (t["result"] == "valid")


# --- Ed25519 ----------------------------------------------------------------------


@pytest.mark.parametrize("vector", load_vectors("third_party/rfc8032_ed25519.json")["tests"],
                         ids=lambda v: v["name"])
def test_rfc8032(vector: dict[str, str]) -> None:
    signer = Ed25519Signer(h(vector["seed"]))
    assert signer.public_bytes_raw().hex() == vector["public"]
    assert signer.sign(h(vector["message"])).hex() == vector["signature"]
    assert ed25519_verify(h(vector["public"]), h(vector["message"]), h(vector["signature"]))


@pytest.mark.parametrize("case", wycheproof_cases("ed25519_test.json"), ids=case_id)
def test_wycheproof_ed25519(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    group, t = case
    ok = ed25519_verify(h(group["publicKey"]["pk"]), h(t["msg"]), h(t["sig"]))
    assert ok is (t["result"] == "valid")


def test_birational_map_matches_x25519() -> None:
    """The identity-key construction relies on u = (1 + y) / (1 - y) giving
    the same point as X25519 of the clamped SHA-512 scalar (RFC 7748 4.1)."""
    for vector in load_vectors("third_party/rfc8032_ed25519.json")["tests"]:
        signer = Ed25519Signer(h(vector["seed"]))
        x25519_public = PrivateKey.from_private_bytes(signer.x25519_scalar()).public.public_bytes_raw()
        assert montgomery_u_from_edwards(signer.public_bytes_raw()) == x25519_public


# --- AEAD and CBC ---------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [c for c in wycheproof_cases("aes_gcm_test.json") if c[0]["keySize"] == 256],
    ids=case_id,
)
def test_wycheproof_aes256_gcm(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    # Only AES-256 groups apply: the wrapper is AES-256-GCM by construction.
    group, t = case
    key, iv, aad, msg = h(t["key"]), h(t["iv"]), h(t["aad"]), h(t["msg"])
    sealed = h(t["ct"]) + h(t["tag"])
    if group["ivSize"] != 96:
        # signalish only ever uses 96-bit nonces and refuses any other size.
        with pytest.raises(InvalidArgument):
            aes256_gcm_decrypt(key, iv, sealed, aad)
        return
    if t["result"] == "valid":
        assert aes256_gcm_encrypt(key, iv, msg, aad) == sealed
        assert aes256_gcm_decrypt(key, iv, sealed, aad) == msg
    else:
        with pytest.raises(AuthenticationError):
            aes256_gcm_decrypt(key, iv, sealed, aad)


@pytest.mark.parametrize("case", wycheproof_cases("chacha20_poly1305_test.json"), ids=case_id)
def test_wycheproof_chacha20_poly1305(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    group, t = case
    key, iv, aad, msg = h(t["key"]), h(t["iv"]), h(t["aad"]), h(t["msg"])
    sealed = h(t["ct"]) + h(t["tag"])
    if group["ivSize"] != 96 or group["keySize"] != 256:
        with pytest.raises(InvalidArgument):  # only RFC 8439's 96-bit nonce is offered
            chacha20_poly1305_decrypt(key, iv, sealed, aad)
        return
    if t["result"] == "valid":
        assert chacha20_poly1305_encrypt(key, iv, msg, aad) == sealed
        assert chacha20_poly1305_decrypt(key, iv, sealed, aad) == msg
    else:
        with pytest.raises(AuthenticationError):
            chacha20_poly1305_decrypt(key, iv, sealed, aad)


@pytest.mark.parametrize(
    "case",
    [c for c in wycheproof_cases("aes_cbc_pkcs5_test.json") if c[0]["keySize"] == 256],
    ids=case_id,
)
def test_wycheproof_aes256_cbc(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, t = case
    key, iv, msg, ct = h(t["key"]), h(t["iv"]), h(t["msg"]), h(t["ct"])
    if t["result"] == "valid":
        assert aes256_cbc_encrypt(key, iv, msg) == ct
        assert aes256_cbc_decrypt(key, iv, ct) == msg
    else:
        with pytest.raises(AuthenticationError):
            aes256_cbc_decrypt(key, iv, ct)


# --- ML-KEM-1024 --------------------------------------------------------------------


@pytest.mark.parametrize("case", wycheproof_cases("mlkem_1024_test.json"), ids=case_id)
def test_wycheproof_mlkem1024(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, t = case
    if t["result"] == "valid":
        private = KemPrivateKey.from_seed(h(t["seed"]))
        assert private.public.public_bytes_raw().hex() == t["ek"]
        assert private.decapsulate(h(t["c"])).hex() == t["K"]
    else:
        # Invalid cases carry a malformed seed or ciphertext; some step must refuse.
        with pytest.raises((InvalidArgument, InvalidKey)):
            private = KemPrivateKey.from_seed(h(t["seed"]))
            assert private.public.public_bytes_raw().hex() == t["ek"]
            private.decapsulate(h(t["c"]))


def test_mlkem_encapsulation_round_trip() -> None:
    private = KemPrivateKey.from_seed(bytes(range(64)))
    ciphertext, secret = KemPublicKey.from_public_bytes(private.public.public_bytes_raw()).encapsulate()
    assert private.decapsulate(ciphertext) == secret


def test_mlkem_public_key_modulus_check() -> None:
    with pytest.raises(InvalidKey):
        KemPublicKey.from_public_bytes(b"\xff" * 1568)
    with pytest.raises(InvalidKey):
        KemPublicKey.from_public_bytes(b"\x00" * 1567)


def test_rfc9106_argon2id() -> None:
    from signalish._primitives import argon2id
    v = load_vectors("third_party/rfc9106_argon2id.json")
    tag = argon2id(h(v["password"]), h(v["salt"]), length=v["length"], iterations=v["iterations"],
                   lanes=v["lanes"], memory_kib=v["memory_kib"], secret=h(v["secret"]),
                   ad=h(v["ad"]))
    assert tag.hex() == v["tag"]
