"""Round-3 Kyber1024 (libsignal's key type 0x08) computed with ML-KEM-1024.

signalish/_primitives/kyber.py derives round-3 CRYSTALS-Kyber secrets from
ML-KEM-1024 (OpenSSL through ``cryptography``) plus one hash.  It is checked
here against two things that share no code with it:

* kyber-py 1.2.0 (``kyber_py.kyber``), a pure-Python implementation of the
  round-3 submission, as an oracle in both directions.  It is a test-time
  dependency only (the ``test`` extra) and signalish never imports it.
* the first entry (count = 0) of the round-3 NIST known-answer file for
  Kyber1024, PQCkemKAT_3168.rsp, from the CRYSTALS-Kyber round-3 submission
  package (as copied in the kyber-py repository, assets/).  Its shared secret
  is embedded as is; its 1568-byte public key, 3168-byte secret key and
  1568-byte ciphertext as SHA-256 digests.  The shared secret also appears,
  as "the first entry in the NIST KAT files", as KYBER1024R3_SECRET in
  s2n-tls's unit tests.  The KAT's randomness comes from NIST's AES-256
  CTR_DRBG, reimplemented below (from the KAT generator's rng.c) because
  kyber-py's own needs pycryptodome.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from kyber_py.kyber.default_parameters import DEFAULT_PARAMETERS  # type: ignore[import-untyped]
from kyber_py.kyber.kyber import Kyber  # type: ignore[import-untyped]
from kyber_py.ml_kem import ML_KEM_1024  # type: ignore[import-untyped]

from signalish._primitives import (
    KYBER1024_SHARED_SECRET_SIZE,
    KemPrivateKey,
    KemPublicKey,
    kyber1024_decapsulate,
    kyber1024_encapsulate,
    kyber1024_shared_secret,
)
from signalish.errors import InvalidArgument, InvalidKey
from vectorgen.kyber_encaps import kyber1024_encaps_derandomized

h = bytes.fromhex

# Kyber1024 round-3 KAT, count = 0 (PQCkemKAT_3168.rsp).
KAT_SEED = h(
    "061550234D158C5EC95595FE04EF7A25767F2E24CC2BC479D09D86DC9ABCFDE7"
    "056A8C266F9EF97ED08541DBD2E1FFA1"
)
KAT_PK_SHA256 = "81872183cd99e46b67a4cc20e82986f62a559085ecf1f322f781dee99ea4735f"
KAT_SK_SHA256 = "e2b8b42ad3ca6f21021272922b02ae028a5245b989ab62df54dd847584d0bcc6"
KAT_CT_SHA256 = "2770343f55787115b535c713545d7d736c8502a0ad0f5c1effdea2d9bcd0c7eb"
KAT_SS = h("B10F7394926AD3B49C5D62D5AEB531D5757538BCC0DA9E550D438F1B61BD7419")

# Hypothesis examples per direction; each costs ~30 ms of pure-Python Kyber.
EXAMPLES = 25


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class NistDrbg:
    """AES-256 CTR_DRBG without derivation function, as in the NIST PQC KAT
    generator's rng.c (randombytes_init with no personalization string,
    then randombytes)."""

    def __init__(self, entropy: bytes) -> None:
        assert len(entropy) == 48
        self._key, self._v = bytes(32), bytes(16)
        self._update(entropy)

    def _block(self) -> bytes:
        self._v = ((int.from_bytes(self._v, "big") + 1) % 2**128).to_bytes(16, "big")
        encryptor = Cipher(algorithms.AES(self._key), modes.ECB()).encryptor()
        return encryptor.update(self._v) + encryptor.finalize()

    def _update(self, provided: bytes | None) -> None:
        temp = b"".join(self._block() for _ in range(3))
        if provided is not None:
            temp = bytes(a ^ b for a, b in zip(temp, provided, strict=True))
        self._key, self._v = temp[:32], temp[32:]

    def random_bytes(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += self._block()
        self._update(None)
        return out[:n]


class ShakeStream:
    """Reproducible "randomness" for kyber-py, from a Hypothesis-drawn seed."""

    def __init__(self, seed: bytes) -> None:
        self._seed, self._counter = seed, 0

    def random_bytes(self, n: int) -> bytes:
        self._counter += 1
        return hashlib.shake_256(self._seed + self._counter.to_bytes(4, "big")).digest(n)


def round3(random_bytes: object) -> Kyber:
    """A kyber-py round-3 Kyber1024 instance drawing from ``random_bytes``
    (a fresh instance: kyber-py's ``Kyber1024`` is a shared module global)."""
    kyber = Kyber(DEFAULT_PARAMETERS["kyber_1024"])
    kyber.random_bytes = random_bytes
    return kyber


def round3_rejection(z: bytes, ciphertext: bytes) -> bytes:
    """Round-3 implicit rejection, KDF(z || H(c)) (v3.02 Algorithm 9)."""
    return hashlib.shake_256(z + hashlib.sha3_256(ciphertext).digest()).digest(32)


# --- the known answer ---------------------------------------------------------------


def test_round3_kat_first_entry() -> None:
    drbg = NistDrbg(KAT_SEED)
    # Round-3 key generation (kyber-py; seeds are not ML-KEM's) draws d, then z.
    pk, sk = round3(drbg.random_bytes).keygen()
    assert sha256(pk) == KAT_PK_SHA256
    assert sha256(sk) == KAT_SK_SHA256
    # Encapsulation draws 32 bytes: pure-Python ML-KEM Encaps_internal with
    # m = H(those bytes), then signalish's transform.
    ciphertext, secret = kyber1024_encaps_derandomized(pk, drbg.random_bytes(32))
    assert sha256(ciphertext) == KAT_CT_SHA256
    assert secret == KAT_SS
    # The round-3 secret key is an expanded ML-KEM decapsulation key byte for
    # byte: ML-KEM decapsulation (kyber-py's) + the transform gives the answer.
    assert kyber1024_shared_secret(ML_KEM_1024.decaps(sk, ciphertext), ciphertext) == KAT_SS
    assert round3(drbg.random_bytes).decaps(sk, ciphertext) == KAT_SS


# --- both directions against kyber-py --------------------------------------------------


@settings(max_examples=EXAMPLES, deadline=None)
@given(seed=st.binary(min_size=64, max_size=64), coins=st.binary(min_size=16, max_size=16))
def test_round3_encapsulation_to_our_key(seed: bytes, coins: bytes) -> None:
    """(a) A key generated by OpenSSL; kyber-py's round-3 Enc to its public
    key; our decapsulation yields kyber-py's secret, plain ML-KEM does not."""
    private = KemPrivateKey.from_seed(seed)
    theirs, ciphertext = round3(ShakeStream(coins).random_bytes).encaps(
        private.public.public_bytes_raw()
    )
    assert kyber1024_decapsulate(private, ciphertext) == theirs
    assert private.decapsulate(ciphertext) != theirs


@settings(max_examples=EXAMPLES, deadline=None)
@given(coins=st.binary(min_size=16, max_size=16))
def test_our_encapsulation_to_a_round3_key(coins: bytes) -> None:
    """(b) A key from kyber-py's round-3 key generation; our encapsulation to
    its 1568 bytes; kyber-py's round-3 Dec yields our secret."""
    kyber = round3(ShakeStream(coins).random_bytes)
    pk, sk = kyber.keygen()
    ciphertext, ours = kyber1024_encapsulate(KemPublicKey.from_public_bytes(pk))
    assert len(ciphertext) == 1568 and len(ours) == KYBER1024_SHARED_SECRET_SIZE
    assert kyber.decaps(sk, ciphertext) == ours


def test_our_encapsulation_to_our_key() -> None:
    private = KemPrivateKey.from_seed(bytes(range(64)))
    ciphertext, secret = kyber1024_encapsulate(private.public)
    assert kyber1024_decapsulate(private, ciphertext) == secret
    assert secret == kyber1024_shared_secret(private.decapsulate(ciphertext), ciphertext)


# --- implicit rejection --------------------------------------------------------------


def test_invalid_ciphertext_gives_transformed_mlkem_rejection() -> None:
    """(d) For a well-sized ciphertext that fails re-encryption our result is
    SHAKE-256(SHAKE-256(z || c)[:32] || SHA3-256(c))[:32]: ML-KEM's implicit
    rejection J(z || c), transformed.  Round 3 returns SHAKE-256(z ||
    SHA3-256(c))[:32] instead, for the very same key: the two differ."""
    seed = bytes(range(64, 128))
    z = seed[32:]
    private = KemPrivateKey.from_seed(seed)
    ciphertext, secret = kyber1024_encapsulate(private.public)
    bad = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]

    ours = kyber1024_decapsulate(private, bad)
    j = hashlib.shake_256(z + bad).digest(32)
    assert ours == hashlib.shake_256(j + hashlib.sha3_256(bad).digest()).digest(32)
    assert ours != secret
    # Deterministic: the same key (even reloaded from its seed) gives the same value.
    assert kyber1024_decapsulate(private, bad) == ours
    assert kyber1024_decapsulate(KemPrivateKey.from_seed(seed), bad) == ours

    # The same key, expanded (FIPS 203 dk = round 3's sk layout), in kyber-py's
    # round-3 Dec: it accepts the valid ciphertext and rejects the bad one its own way.
    _, dk = ML_KEM_1024.key_derive(seed)
    kyber = round3(ShakeStream(b"").random_bytes)
    assert kyber.decaps(dk, ciphertext) == secret
    theirs = kyber.decaps(dk, bad)
    assert theirs == round3_rejection(z, bad)
    assert ours != theirs


# --- what is refused, and what is not claimed --------------------------------------------


@pytest.mark.parametrize("size", [0, 1567, 1569, 3136])
def test_wrong_ciphertext_length_is_invalid_key(size: int) -> None:
    private = KemPrivateKey.from_seed(bytes(64))
    with pytest.raises(InvalidKey):
        kyber1024_decapsulate(private, bytes(size))
    with pytest.raises(InvalidKey):
        kyber1024_shared_secret(bytes(32), bytes(size))


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_wrong_mlkem_secret_length_is_invalid_argument(size: int) -> None:
    with pytest.raises(InvalidArgument):
        kyber1024_shared_secret(bytes(size), bytes(1568))


def test_wrong_public_key_is_refused() -> None:
    with pytest.raises(InvalidKey):
        KemPublicKey.from_public_bytes(bytes(1567))
    with pytest.raises(InvalidKey):  # coefficients >= q: FIPS 203 modulus check
        KemPublicKey.from_public_bytes(b"\xff" * 1568)
    raw = KemPrivateKey.from_seed(bytes(64)).public.public_bytes_raw()
    with pytest.raises(InvalidArgument):
        kyber1024_encapsulate(raw)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        kyber1024_decapsulate(raw, bytes(1568))  # type: ignore[arg-type]


def test_seeds_are_not_round3_seeds() -> None:
    """The 64-byte ML-KEM seed d || z gives another key than round-3 key
    generation drawing the same d and z: G(d || 4) versus G(d)."""
    seed = bytes(range(64))
    draws = iter((seed[:32], seed[32:]))
    pk_round3, sk_round3 = round3(lambda n: next(draws)).keygen()
    assert sk_round3[-32:] == seed[32:]  # the same z was used
    assert KemPrivateKey.from_seed(seed).public.public_bytes_raw() != pk_round3


def test_signalish_never_imports_kyber_py() -> None:
    package = Path(__file__).resolve().parent.parent / "signalish"
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "kyber_py" for n in names), path
