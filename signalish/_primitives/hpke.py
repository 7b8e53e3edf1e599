"""HPKE (RFC 9180) single-shot base mode, for sealed boxes.

Two suites: DHKEM(X25519, HKDF-SHA256) with AES-256-GCM, and the hybrid
ML-KEM-768 + X25519 (X-Wing) with ChaCha20-Poly1305.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

from cryptography.exceptions import InvalidTag as _PycaInvalidTag
from cryptography.hazmat.primitives import hpke as _hpke
from cryptography.hazmat.primitives.asymmetric import mlkem as _mlkem
from cryptography.hazmat.primitives.asymmetric import x25519 as _x25519

from .._errors import AuthenticationError, InvalidArgument, InvalidKey
from .x25519 import PublicKey

__all__ = ["HpkeSuiteName", "HPKE_PUBLIC_SIZE", "HPKE_ENC_SIZE", "HpkePublic", "HpkePrivate"]

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

    __slots__ = ("suite", "_raw", "_key")

    def __init__(self, suite: HpkeSuiteName, raw: bytes,
                 key: _x25519.X25519PublicKey | _hpke.MLKEM768X25519PublicKey) -> None:
        self.suite, self._raw, self._key = suite, raw, key

    @classmethod
    def from_public_bytes(cls, suite: HpkeSuiteName, raw: bytes) -> HpkePublic:
        if len(raw) != HPKE_PUBLIC_SIZE[suite]:
            raise InvalidKey(f"a {suite} HPKE public key is {HPKE_PUBLIC_SIZE[suite]} bytes")
        raw = bytes(raw)
        x25519_raw = raw[-32:]
        PublicKey.from_public_bytes(x25519_raw)  # canonical, not low order
        x_key = _x25519.X25519PublicKey.from_public_bytes(x25519_raw)
        if suite == "x25519":
            return cls(suite, raw, x_key)
        try:
            m_key = _mlkem.MLKEM768PublicKey.from_public_bytes(raw[:_MLKEM768_PUBLIC_SIZE])
        except ValueError:
            raise InvalidKey("ML-KEM-768 public key fails the modulus check") from None
        return cls(suite, raw, _hpke.MLKEM768X25519PublicKey(m_key, x_key))

    def public_bytes_raw(self) -> bytes:
        return self._raw

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
        return f"HpkePrivate({self.suite}, public={self.public.public_bytes_raw()[:8].hex()}...)"
