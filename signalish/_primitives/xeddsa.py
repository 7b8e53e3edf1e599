"""Ed25519 signing and XEdDSA verification for identity keys.

An identity key is an Ed25519 seed whose X25519 scalar is
clamp(SHA-512(seed)[:32]) (RFC 8032 section 5.1.5), so that a standard
Ed25519 signature verifies as an XEdDSA signature under the matching
Montgomery u (Signal's XEdDSA spec, section 3.3).  Everything here runs in
OpenSSL; only the birational map between the curves is computed in Python.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature as _PycaInvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519 as _ed25519

from .._errors import InvalidArgument, InvalidKey
from .x25519 import P25519

__all__ = [
    "ED25519_SIGNATURE_SIZE",
    "montgomery_u_from_edwards",
    "Ed25519Signer",
    "ed25519_verify",
    "XEdDSAVerifier",
    "xeddsa_verify",
]

ED25519_SIGNATURE_SIZE: Final = 64


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

    def public_bytes_raw(self) -> bytes:
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
