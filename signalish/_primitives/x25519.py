"""X25519 (RFC 7748): the Diffie-Hellman function of X3DH, PQXDH and the
Double Ratchet.

* Public keys are checked on import: non-canonical u (u >= p) and the
  low-order points of Curve25519 are refused.
* An all-zero X25519 output is an error (X3DH section 2.3 lets the check be
  made; RFC 7748 section 6.1 recommends it), never input to a KDF.
"""

from __future__ import annotations

import hmac
from typing import Final

from cryptography.hazmat.primitives.asymmetric import x25519 as _x25519

from .._errors import InvalidArgument, InvalidKey
from .randomness import RandomSource

__all__ = ["P25519", "X25519_KEY_SIZE", "PublicKey", "PrivateKey"]

P25519: Final = 2**255 - 19
X25519_KEY_SIZE: Final = 32

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


class PublicKey:
    """An X25519 public key, checked on import (u < p, not low order)."""

    __slots__ = ("_raw", "_key")

    def __init__(self, raw: bytes, key: _x25519.X25519PublicKey) -> None:
        self._raw = raw
        self._key = key

    @classmethod
    def from_public_bytes(cls, raw: bytes) -> PublicKey:
        """Import the 32-byte u-coordinate (RFC 7748 section 5).  Raises
        :class:`~signalish.errors.InvalidKey` for another length, u >= p, or a
        low-order point."""
        if len(raw) != X25519_KEY_SIZE:
            raise InvalidKey(f"an X25519 public key is 32 bytes, got {len(raw)}")
        u = int.from_bytes(raw, "little")
        if u >= P25519:
            raise InvalidKey("X25519 public key is not canonical (u >= p)")
        if u in _LOW_ORDER_U:
            raise InvalidKey("X25519 public key is a low-order point")
        raw = bytes(raw)
        return cls(raw, _x25519.X25519PublicKey.from_public_bytes(raw))

    def public_bytes_raw(self) -> bytes:
        """The 32-byte u-coordinate, as :meth:`from_public_bytes` takes it."""
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
        return cls.from_private_bytes(rng.random_bytes(X25519_KEY_SIZE))

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> PrivateKey:
        """A 32-byte scalar; X25519 clamps it as RFC 7748 section 5 says."""
        if len(raw) != X25519_KEY_SIZE:
            raise InvalidArgument(f"an X25519 private key is 32 bytes, got {len(raw)}")
        return cls(bytes(raw))

    def _loaded(self) -> _x25519.X25519PrivateKey:
        if self._key is None:
            self._key = _x25519.X25519PrivateKey.from_private_bytes(self._raw)
        return self._key

    def private_bytes_raw(self) -> bytes:
        """The 32-byte scalar as stored, as :meth:`from_private_bytes` takes it (secret)."""
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
        return f"PrivateKey(public={self.public.public_bytes_raw().hex()})"
