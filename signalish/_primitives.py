"""Primitives layer: the only module that imports ``cryptography``.

Everything above this module sees bytes and a few opaque key objects.  The
rules enforced here:

* an all-zero X25519 output is an error (X3DH section 2.3 lets the check be
  made; RFC 7748 section 6.1 recommends it), never input to a KDF;
* public keys are checked on import: non-canonical u (u >= p) and the
  low-order points of Curve25519 are refused;
* secrets are compared only with :func:`hmac.compare_digest`;
* randomness comes from one injectable :class:`RandomSource`.

HKDF and HMAC use the standard library's OpenSSL-backed :mod:`hmac`, which
is the same code path as ``cryptography`` but without per-call object set-up.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Final, Literal, Protocol

from cryptography.exceptions import InvalidSignature as _PycaInvalidSignature
from cryptography.exceptions import InvalidTag as _PycaInvalidTag
from cryptography.hazmat.primitives import hpke as _hpke
from cryptography.hazmat.primitives import padding as _padding
from cryptography.hazmat.primitives.asymmetric import ed25519 as _ed25519
from cryptography.hazmat.primitives.asymmetric import mlkem as _mlkem
from cryptography.hazmat.primitives.asymmetric import x25519 as _x25519
from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher
from cryptography.hazmat.primitives.ciphers import algorithms as _algorithms
from cryptography.hazmat.primitives.ciphers import modes as _modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM as _AESGCM
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305 as _ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id as _Argon2id

from ._errors import AuthenticationError, InvalidArgument, InvalidKey

__all__ = [
    "P25519",
    "X25519_KEY_SIZE",
    "MLKEM1024_PUBLIC_KEY_SIZE",
    "MLKEM1024_CIPHERTEXT_SIZE",
    "MLKEM1024_SEED_SIZE",
    "RandomSource",
    "SystemRandom",
    "DeterministicRandom",
    "PrivateKey",
    "PublicKey",
    "Ed25519Signer",
    "ed25519_verify",
    "xeddsa_verify",
    "montgomery_u_from_edwards",
    "hkdf",
    "hkdf_expand",
    "hmac_sha256",
    "ct_equal",
    "aes256_gcm_encrypt",
    "aes256_gcm_decrypt",
    "aes256_cbc_encrypt",
    "aes256_cbc_decrypt",
    "KemPrivateKey",
    "KemPublicKey",
    "HpkeSuiteName",
    "HpkePrivate",
    "HpkePublic",
    "argon2id",
]

P25519: Final = 2**255 - 19
X25519_KEY_SIZE: Final = 32
ED25519_SIGNATURE_SIZE: Final = 64
MLKEM1024_PUBLIC_KEY_SIZE: Final = 1568
MLKEM1024_CIPHERTEXT_SIZE: Final = 1568
MLKEM1024_SEED_SIZE: Final = 64

HashName = Literal["sha256", "sha512"]
_HASH_SIZE: Final[dict[str, int]] = {"sha256": 32, "sha512": 64}

# u-coordinates of the points of order 1, 2, 4 and 8 on Curve25519
# (RFC 7748 section 7 and Bernstein's list of points to reject).  Any
# encoding of these makes X25519 output all zeros; refusing them at import
# gives a clearer error than the zero check alone.
_LOW_ORDER_U: Final = frozenset(
    {
        0,
        1,
        0x00B8495F16056286FDB1329CEB8D09DA6AC49FF1FAE35616AEB8413B7C7AEBE0,
        0x57119FD0DD4E22D8868E1C58C45C44045BEF839C55B1D0B1248C50A3BC959C5F,
        P25519 - 1,
    }
)


# --- randomness ---------------------------------------------------------------


class RandomSource(Protocol):
    """The one source of randomness.  Protocol code never calls os.urandom."""

    def random_bytes(self, n: int, /) -> bytes:
        """Return ``n`` uniformly random bytes."""
        ...


class SystemRandom:
    """The operating system's CSPRNG (``os.urandom``).  The default."""

    __slots__ = ()

    def random_bytes(self, n: int, /) -> bytes:
        return os.urandom(n)

    def __repr__(self) -> str:
        return "SystemRandom()"


class DeterministicRandom:
    """A reproducible stream (SHAKE-256 of a seed and a counter).

    For tests and test vectors only: anyone who knows the seed knows every
    key derived from it.
    """

    __slots__ = ("_seed", "_counter")

    def __init__(self, seed: bytes) -> None:
        self._seed = bytes(seed)
        self._counter = 0

    def random_bytes(self, n: int, /) -> bytes:
        block = hashlib.shake_256(
            b"signalish-test-drbg" + self._counter.to_bytes(8, "big") + self._seed
        ).digest(n)
        self._counter += 1
        return block

    def __repr__(self) -> str:
        return "DeterministicRandom(<seed hidden>)"


# --- comparison, MAC, KDF -----------------------------------------------------


def ct_equal(a: bytes, b: bytes) -> bool:
    """Constant-time equality of two byte strings."""
    return hmac.compare_digest(a, b)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104)."""
    return hmac.digest(key, data, "sha256")


def hkdf(
    ikm: bytes,
    *,
    salt: bytes | None,
    info: bytes,
    length: int,
    hash_name: HashName = "sha256",
) -> bytes:
    """HKDF extract-and-expand (RFC 5869).  ``salt=None`` means a string of
    zeros as long as the hash output (RFC 5869 section 2.2).

    Raises :class:`InvalidArgument` if ``length`` is not in 1..255*HashLen.
    """
    hash_len = _HASH_SIZE[hash_name]
    if not 0 < length <= 255 * hash_len:
        raise InvalidArgument(f"HKDF length must be 1..{255 * hash_len}, got {length}")
    prk = hmac.digest(salt if salt else bytes(hash_len), ikm, hash_name)
    return hkdf_expand(prk, info=info, length=length, hash_name=hash_name)


def hkdf_expand(prk: bytes, *, info: bytes, length: int,
                hash_name: HashName = "sha256") -> bytes:
    """HKDF-Expand alone (RFC 5869 section 2.3), for a key that is already
    pseudorandom (HPKE's LabeledExpand uses it this way)."""
    hash_len = _HASH_SIZE[hash_name]
    if not 0 < length <= 255 * hash_len:
        raise InvalidArgument(f"HKDF length must be 1..{255 * hash_len}, got {length}")
    blocks = []
    previous = b""
    for counter in range(1, -(-length // hash_len) + 1):
        previous = hmac.digest(prk, previous + info + bytes((counter,)), hash_name)
        blocks.append(previous)
    return b"".join(blocks)[:length]


# --- X25519 -------------------------------------------------------------------


class PublicKey:
    """An X25519 public key, checked on import (u < p, not low order)."""

    __slots__ = ("_raw", "_key")

    def __init__(self, raw: bytes, key: _x25519.X25519PublicKey) -> None:
        self._raw = raw
        self._key = key

    @classmethod
    def from_bytes(cls, raw: bytes) -> PublicKey:
        if len(raw) != X25519_KEY_SIZE:
            raise InvalidKey(f"an X25519 public key is 32 bytes, got {len(raw)}")
        u = int.from_bytes(raw, "little")
        if u >= P25519:
            raise InvalidKey("X25519 public key is not canonical (u >= p)")
        if u in _LOW_ORDER_U:
            raise InvalidKey("X25519 public key is a low-order point")
        raw = bytes(raw)
        return cls(raw, _x25519.X25519PublicKey.from_public_bytes(raw))

    @property
    def raw(self) -> bytes:
        return self._raw

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and self._raw == other._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"PublicKey({self._raw.hex()})"


class PrivateKey:
    """An X25519 private key.  Its repr never shows the scalar.

    Loading a key into OpenSSL costs a scalar multiplication (to derive its
    public key), so the key is held as its 32 bytes and loaded on first use:
    a prekey ring of a hundred keys loads without a hundred multiplications.
    """

    __slots__ = ("_raw", "_key", "_public")

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._key: _x25519.X25519PrivateKey | None = None
        self._public: PublicKey | None = None

    @classmethod
    def generate(cls, rng: RandomSource) -> PrivateKey:
        return cls.from_bytes(rng.random_bytes(X25519_KEY_SIZE))

    @classmethod
    def from_bytes(cls, raw: bytes) -> PrivateKey:
        """A 32-byte scalar; X25519 clamps it as RFC 7748 section 5 says."""
        if len(raw) != X25519_KEY_SIZE:
            raise InvalidArgument(f"an X25519 private key is 32 bytes, got {len(raw)}")
        return cls(bytes(raw))

    def _loaded(self) -> _x25519.X25519PrivateKey:
        if self._key is None:
            self._key = _x25519.X25519PrivateKey.from_private_bytes(self._raw)
        return self._key

    def private_bytes(self) -> bytes:
        """The 32-byte scalar as stored (secret)."""
        return self._raw

    @property
    def public(self) -> PublicKey:
        if self._public is None:
            public = self._loaded().public_key()
            self._public = PublicKey(public.public_bytes_raw(), public)
        return self._public

    def exchange(self, peer: PublicKey) -> bytes:
        """X25519(self, peer).  Raises :class:`InvalidKey` on an all-zero output."""
        try:
            shared = self._loaded().exchange(peer._key)
        except ValueError:
            # OpenSSL refuses all-zero outputs itself.
            raise InvalidKey("X25519 produced an all-zero shared secret") from None
        if hmac.compare_digest(shared, bytes(32)):
            raise InvalidKey("X25519 produced an all-zero shared secret")
        return shared

    def __repr__(self) -> str:
        return f"PrivateKey(public={self.public.raw.hex()})"


# --- Ed25519 and XEdDSA ---------------------------------------------------------


def montgomery_u_from_edwards(ed_public: bytes) -> bytes:
    """u = (1 + y) / (1 - y) mod p for a 32-byte Ed25519 public key
    (RFC 7748 section 4.1, the birational map)."""
    y = int.from_bytes(ed_public, "little") & ((1 << 255) - 1)
    denominator = (1 - y) % P25519
    if denominator == 0:
        raise InvalidKey("Edwards point has no Montgomery u-coordinate")
    u = (1 + y) * pow(denominator, -1, P25519) % P25519
    return u.to_bytes(32, "little")


class Ed25519Signer:
    """An Ed25519 private key held as its 32-byte seed (RFC 8032 section 5.1.5)."""

    __slots__ = ("_key", "_public")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise InvalidArgument(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
        self._key = _ed25519.Ed25519PrivateKey.from_private_bytes(bytes(seed))
        self._public = self._key.public_key().public_bytes_raw()

    @property
    def public_bytes(self) -> bytes:
        return self._public

    def seed(self) -> bytes:
        return self._key.private_bytes_raw()

    def x25519_scalar(self) -> bytes:
        """clamp(SHA-512(seed)[:32]): the X25519 scalar equal to this key's
        Ed25519 secret scalar (RFC 8032 section 5.1.5 steps 1-2)."""
        a = bytearray(hashlib.sha512(self.seed()).digest()[:32])
        a[0] &= 248
        a[31] &= 127
        a[31] |= 64
        return bytes(a)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"Ed25519Signer(public={self._public.hex()})"


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 Ed25519 verification (OpenSSL: rejects s >= L and
    non-canonical encodings of R and A)."""
    if len(public) != 32 or len(signature) != ED25519_SIGNATURE_SIZE:
        return False
    try:
        key = _ed25519.Ed25519PublicKey.from_public_bytes(public)
        key.verify(signature, message)
    except (_PycaInvalidSignature, ValueError):
        return False
    return True


class XEdDSAVerifier:
    """Verifies XEdDSA signatures under one Montgomery public key.

    XEdDSA (Signal's XEdDSA spec, section 3.3 "xeddsa_verify") converts u to
    the Edwards point with y = (u - 1) / (u + 1) and a sign bit, then runs
    EdDSA verification.  ``form`` says where the sign bit comes from:

    * ``"spec"``: the spec's form, sign bit 0 (and byte 63 top bit must be 0,
      which ``s < L`` already implies);
    * ``"libsignal"``: the top bit of signature byte 63, cleared before the
      EdDSA check (libsignal's curve25519 signature convention).

    The two Edwards public keys are computed once and cached: the modular
    inverse costs about as much as a hash of a kilobyte.
    """

    __slots__ = ("_u", "_edwards")

    def __init__(self, u: bytes) -> None:
        if len(u) != 32:
            raise InvalidKey(f"a Montgomery u-coordinate is 32 bytes, got {len(u)}")
        value = int.from_bytes(u, "little")
        if value >= P25519:
            raise InvalidKey("Montgomery u-coordinate is not canonical (u >= p)")
        denominator = (value + 1) % P25519
        self._u = u
        if denominator == 0:
            self._edwards: tuple[_ed25519.Ed25519PublicKey, _ed25519.Ed25519PublicKey] | None = None
            return
        y = (value - 1) * pow(denominator, -1, P25519) % P25519
        encoded = y.to_bytes(32, "little")
        with_sign = encoded[:31] + bytes((encoded[31] | 0x80,))
        try:
            self._edwards = (
                _ed25519.Ed25519PublicKey.from_public_bytes(encoded),
                _ed25519.Ed25519PublicKey.from_public_bytes(with_sign),
            )
        except ValueError:
            self._edwards = None

    def verify(
        self, message: bytes, signature: bytes, form: Literal["spec", "libsignal"]
    ) -> bool:
        if self._edwards is None or len(signature) != ED25519_SIGNATURE_SIZE:
            return False
        sign_bit = 0
        if form == "libsignal":
            sign_bit = signature[63] >> 7
            signature = signature[:63] + bytes((signature[63] & 0x7F,))
        try:
            self._edwards[sign_bit].verify(signature, message)
        except _PycaInvalidSignature:
            return False
        return True


def xeddsa_verify(
    u: bytes, message: bytes, signature: bytes, form: Literal["spec", "libsignal"]
) -> bool:
    """One-shot XEdDSA verification; see :class:`XEdDSAVerifier`."""
    try:
        verifier = XEdDSAVerifier(u)
    except InvalidKey:
        return False
    return verifier.verify(message, signature, form)


# --- AEADs and ciphers ----------------------------------------------------------


_GCM_ARGUMENTS: Final = "AES-256-GCM takes a 32-byte key and a 12-byte nonce"


def aes256_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM with a 96-bit nonce; returns ciphertext || 16-byte tag."""
    if len(key) != 32 or len(nonce) != 12:
        raise InvalidArgument(_GCM_ARGUMENTS)
    return _AESGCM(key).encrypt(nonce, plaintext, aad)


def aes256_gcm_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM decryption.  Raises :class:`AuthenticationError`."""
    if len(key) != 32 or len(nonce) != 12:
        raise InvalidArgument(_GCM_ARGUMENTS)
    try:
        return _AESGCM(key).decrypt(nonce, ciphertext, aad)
    except (_PycaInvalidTag, ValueError):
        raise AuthenticationError("decryption failed") from None


def chacha20_poly1305_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """ChaCha20-Poly1305 (RFC 8439); returns ciphertext || 16-byte tag."""
    if len(key) != 32 or len(nonce) != 12:
        raise InvalidArgument("ChaCha20-Poly1305 takes a 32-byte key and a 12-byte nonce")
    return _ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)


def chacha20_poly1305_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """ChaCha20-Poly1305 decryption.  Raises :class:`AuthenticationError`."""
    if len(key) != 32 or len(nonce) != 12:
        raise InvalidArgument("ChaCha20-Poly1305 takes a 32-byte key and a 12-byte nonce")
    try:
        return _ChaCha20Poly1305(key).decrypt(nonce, ciphertext, aad)
    except (_PycaInvalidTag, ValueError):
        raise AuthenticationError("decryption failed") from None


def aes256_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """AES-256-CBC with PKCS#7 padding (no authentication: pair it with a MAC)."""
    if len(key) != 32 or len(iv) != 16:
        raise InvalidArgument("AES-256-CBC takes a 32-byte key and a 16-byte IV")
    padder = _padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = _Cipher(_algorithms.AES(key), _modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def aes256_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """AES-256-CBC decryption.  Bad length or padding raises
    :class:`AuthenticationError`, the same error a failed MAC gives, so that
    callers cannot build a padding oracle by accident."""
    if len(key) != 32 or len(iv) != 16:
        raise InvalidArgument("AES-256-CBC takes a 32-byte key and a 16-byte IV")
    if not ciphertext or len(ciphertext) % 16:
        raise AuthenticationError("decryption failed")
    decryptor = _Cipher(_algorithms.AES(key), _modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = _padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise AuthenticationError("decryption failed") from None


# --- ML-KEM-1024 (FIPS 203) ---------------------------------------------------


class KemPublicKey:
    """An ML-KEM-1024 encapsulation key (1568 bytes, FIPS 203 checked)."""

    __slots__ = ("_raw", "_key")

    def __init__(self, raw: bytes, key: _mlkem.MLKEM1024PublicKey) -> None:
        self._raw = raw
        self._key = key

    @classmethod
    def from_bytes(cls, raw: bytes) -> KemPublicKey:
        if len(raw) != MLKEM1024_PUBLIC_KEY_SIZE:
            raise InvalidKey(f"an ML-KEM-1024 public key is 1568 bytes, got {len(raw)}")
        raw = bytes(raw)
        try:
            key = _mlkem.MLKEM1024PublicKey.from_public_bytes(raw)
        except ValueError:
            # FIPS 203 section 7.2 modulus check failed.
            raise InvalidKey("ML-KEM-1024 public key fails the modulus check") from None
        return cls(raw, key)

    @property
    def raw(self) -> bytes:
        return self._raw

    def encapsulate(self) -> tuple[bytes, bytes]:
        """Returns (ciphertext, shared secret).  Randomness comes from
        OpenSSL: ``cryptography`` offers no derandomized encapsulation."""
        shared, ciphertext = self._key.encapsulate()
        return ciphertext, shared

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KemPublicKey) and self._raw == other._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"KemPublicKey({self._raw[:8].hex()}...)"


class KemPrivateKey:
    """An ML-KEM-1024 decapsulation key, held as its 64-byte seed d || z and
    expanded (a key generation) only when first used."""

    __slots__ = ("_seed", "_key", "_public")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != MLKEM1024_SEED_SIZE:
            raise InvalidArgument(f"an ML-KEM seed is 64 bytes, got {len(seed)}")
        self._seed = bytes(seed)
        self._key: _mlkem.MLKEM1024PrivateKey | None = None
        self._public: KemPublicKey | None = None

    @classmethod
    def generate(cls, rng: RandomSource) -> KemPrivateKey:
        return cls(rng.random_bytes(MLKEM1024_SEED_SIZE))

    def _loaded(self) -> _mlkem.MLKEM1024PrivateKey:
        if self._key is None:
            self._key = _mlkem.MLKEM1024PrivateKey.from_seed_bytes(self._seed)
        return self._key

    def seed(self) -> bytes:
        return self._seed

    @property
    def public(self) -> KemPublicKey:
        if self._public is None:
            public = self._loaded().public_key()
            self._public = KemPublicKey(public.public_bytes_raw(), public)
        return self._public

    def decapsulate(self, ciphertext: bytes) -> bytes:
        """FIPS 203 ML-KEM.Decaps (implicit rejection: a wrong but
        well-sized ciphertext yields an unrelated secret, not an error)."""
        if len(ciphertext) != MLKEM1024_CIPHERTEXT_SIZE:
            raise InvalidKey(
                f"an ML-KEM-1024 ciphertext is 1568 bytes, got {len(ciphertext)}"
            )
        return self._loaded().decapsulate(ciphertext)

    def __repr__(self) -> str:
        return f"KemPrivateKey(public={self.public.raw[:8].hex()}...)"


# --- HPKE (RFC 9180) for sealed boxes ---------------------------------------------

HpkeSuiteName = Literal["x25519", "mlkem768-x25519"]
_HPKE_SUITES: Final = {
    # DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM (RFC 9180 section 7)
    "x25519": (_hpke.KEM.X25519, _hpke.KDF.HKDF_SHA256, _hpke.AEAD.AES_256_GCM),
    # ML-KEM-768 + X25519 (X-Wing), HKDF-SHA256, ChaCha20-Poly1305
    "mlkem768-x25519": (_hpke.KEM.MLKEM768_X25519, _hpke.KDF.HKDF_SHA256,
                        _hpke.AEAD.CHACHA20_POLY1305),
}
HPKE_PUBLIC_SIZE: Final = {"x25519": 32, "mlkem768-x25519": 1184 + 32}
HPKE_ENC_SIZE: Final = {"x25519": 32, "mlkem768-x25519": 1088 + 32}
_MLKEM768_PUBLIC_SIZE: Final = 1184


def _suite(name: HpkeSuiteName) -> _hpke.Suite:
    kem, kdf, aead = _HPKE_SUITES[name]
    return _hpke.Suite(kem, kdf, aead)


class HpkePublic:
    """An HPKE recipient public key of one of the two sealed-box suites."""

    __slots__ = ("suite", "raw", "_key")

    def __init__(self, suite: HpkeSuiteName, raw: bytes,
                 key: _x25519.X25519PublicKey | _hpke.MLKEM768X25519PublicKey) -> None:
        self.suite, self.raw, self._key = suite, raw, key

    @classmethod
    def from_bytes(cls, suite: HpkeSuiteName, raw: bytes) -> HpkePublic:
        if len(raw) != HPKE_PUBLIC_SIZE[suite]:
            raise InvalidKey(f"a {suite} HPKE public key is {HPKE_PUBLIC_SIZE[suite]} bytes")
        raw = bytes(raw)
        x25519_raw = raw[-32:]
        PublicKey.from_bytes(x25519_raw)  # canonical, not low order
        x_key = _x25519.X25519PublicKey.from_public_bytes(x25519_raw)
        if suite == "x25519":
            return cls(suite, raw, x_key)
        try:
            m_key = _mlkem.MLKEM768PublicKey.from_public_bytes(raw[:_MLKEM768_PUBLIC_SIZE])
        except ValueError:
            raise InvalidKey("ML-KEM-768 public key fails the modulus check") from None
        return cls(suite, raw, _hpke.MLKEM768X25519PublicKey(m_key, x_key))

    def seal(self, plaintext: bytes, info: bytes) -> bytes:
        """HPKE single-shot SealBase: enc || ciphertext.  The encapsulation's
        randomness comes from OpenSSL (cryptography has no derandomized form)."""
        return _suite(self.suite).encrypt(plaintext, self._key, info)


class HpkePrivate:
    """An HPKE recipient key pair derived from a 32-byte seed.

    ``x25519``: the seed is the X25519 private key.  ``mlkem768-x25519``: the
    seed expands as X-Wing's (draft-connolly-cfrg-xwing-kem):
    SHAKE256(seed, 96) = ML-KEM-768 seed d || z (64) || X25519 private key (32).
    """

    __slots__ = ("suite", "_seed", "_key", "public")

    def __init__(self, suite: HpkeSuiteName, seed: bytes) -> None:
        if len(seed) != 32:
            raise InvalidArgument("an HPKE seed is 32 bytes")
        self.suite, self._seed = suite, bytes(seed)
        if suite == "x25519":
            x_key = _x25519.X25519PrivateKey.from_private_bytes(self._seed)
            self._key: _x25519.X25519PrivateKey | _hpke.MLKEM768X25519PrivateKey = x_key
            self.public = HpkePublic(suite, x_key.public_key().public_bytes_raw(),
                                     x_key.public_key())
            return
        expanded = hashlib.shake_256(self._seed).digest(96)
        m_key = _mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
        x_key = _x25519.X25519PrivateKey.from_private_bytes(expanded[64:])
        self._key = _hpke.MLKEM768X25519PrivateKey(m_key, x_key)
        m_pub, x_pub = m_key.public_key(), x_key.public_key()
        self.public = HpkePublic(suite, m_pub.public_bytes_raw() + x_pub.public_bytes_raw(),
                                 _hpke.MLKEM768X25519PublicKey(m_pub, x_pub))

    def seed(self) -> bytes:
        return self._seed

    def open(self, sealed: bytes, info: bytes) -> bytes:
        """HPKE single-shot OpenBase.  Raises :class:`AuthenticationError`."""
        try:
            return _suite(self.suite).decrypt(sealed, self._key, info)
        except (_PycaInvalidTag, ValueError):
            raise AuthenticationError("decryption failed") from None

    def __repr__(self) -> str:
        return f"HpkePrivate({self.suite}, public={self.public.raw[:8].hex()}...)"


# --- Argon2id (RFC 9106) ---------------------------------------------------------


def argon2id(password: bytes, salt: bytes, *, length: int, iterations: int, lanes: int,
             memory_kib: int, secret: bytes | None = None, ad: bytes | None = None) -> bytes:
    """Argon2id (RFC 9106 section 3), with the optional secret K and associated
    data X.  Raises :class:`InvalidArgument` for parameters RFC 9106 does not allow."""
    try:
        return _Argon2id(salt=salt, length=length, iterations=iterations, lanes=lanes,
                         memory_cost=memory_kib, secret=secret, ad=ad).derive(password)
    except ValueError as error:
        raise InvalidArgument(f"Argon2id parameters: {error}") from None
