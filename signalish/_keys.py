"""Identity keys.

An identity key pair is held as a 32-byte Ed25519 seed (RFC 8032 section
5.1.5).  Its X25519 private scalar is clamp(SHA-512(seed)[:32]), the same
scalar Ed25519 signs with, so the X25519 public key is the Montgomery form
of the Ed25519 public key (RFC 7748 section 4.1).  A plain Ed25519 signature
is then an XEdDSA signature (XEdDSA spec section 3) under the X25519 public
key, provided the Edwards sign bit is 0: the spec forces it to 0, and
libsignal carries it in the top bit of signature byte 63.  signalish only
creates and accepts seeds whose sign bit is 0, so every signature it makes
verifies in both forms.  This keeps all scalar arithmetic inside OpenSSL.

Public identity keys imported from elsewhere (the raw 32 bytes with
:meth:`IdentityKey.from_public_bytes`, or a profile's encoding, 33 bytes with
libsignal's 0x05 prefix, with :meth:`IdentityKey.decode`) can verify and agree
but cannot sign.
"""

from __future__ import annotations

from typing import Final

from ._encoding import Reader, Tag, Writer, add_digest, check_digest
from ._errors import InvalidArgument, InvalidEncoding
from ._primitives import (
    Ed25519Signer,
    PrivateKey,
    PublicKey,
    RandomSource,
    XEdDSAVerifier,
)
from ._profile import Profile

__all__ = ["IdentityKey", "IdentityKeyPair"]

_MAX_SEED_TRIES: Final = 256


class IdentityKey:
    """A public identity key: an X25519 public key that also verifies XEdDSA.

    Compare with ``==`` (public data, so ordinary comparison is fine).
    """

    __slots__ = ("_dh", "_verifier")

    def __init__(self, dh: PublicKey) -> None:
        self._dh = dh
        self._verifier: XEdDSAVerifier | None = None

    @classmethod
    def from_public_bytes(cls, data: bytes) -> IdentityKey:
        """Import the raw 32-byte u-coordinate, the inverse of
        :meth:`public_bytes_raw`.  For a profile's encoding (libsignal's
        33-byte ``0x05 || u``) use :meth:`decode`.

        Raises :class:`~signalish.errors.InvalidKey` for any other length, a
        non-canonical u, or a low-order point.
        """
        return cls(PublicKey.from_public_bytes(data))

    @classmethod
    def decode(cls, data: bytes, profile: Profile) -> IdentityKey:
        """Import Encode(IK) under ``profile`` (X3DH section 2.5), the inverse
        of :meth:`encode`: 32 bytes under NATIVE, ``0x05 || u`` under
        LIBSIGNAL_V3.

        Raises :class:`~signalish.errors.InvalidKey` for a wrong length or
        prefix, a non-canonical u, or a low-order point.
        """
        return cls(PublicKey.from_public_bytes(profile.decode_ec(data)))

    @property
    def public_key(self) -> PublicKey:
        """The X25519 public key used in Diffie-Hellman."""
        return self._dh

    def public_bytes_raw(self) -> bytes:
        """The raw 32-byte u-coordinate, as :meth:`from_public_bytes` takes it."""
        return self._dh.public_bytes_raw()

    def encode(self, profile: Profile) -> bytes:
        """Encode(IK) under ``profile`` (X3DH section 2.5); :meth:`decode` reverses it."""
        return profile.encode_ec(self._dh.public_bytes_raw())

    def verify_signature(self, message: bytes, signature: bytes, profile: Profile) -> bool:
        """XEdDSA verification in the profile's form (XEdDSA section 3.3)."""
        if self._verifier is None:
            self._verifier = XEdDSAVerifier(self._dh.public_bytes_raw())
        return self._verifier.verify(message, signature, profile.xeddsa_form)

    def to_bytes(self) -> bytes:
        """Versioned serialization: tag 0x02, version 1, u (32 bytes)."""
        return Writer(Tag.IDENTITY_KEY).fixed(self._dh.public_bytes_raw()).getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> IdentityKey:
        """Inverse of :meth:`to_bytes`; strict (see :mod:`signalish`)."""
        r = Reader(data, Tag.IDENTITY_KEY, "IdentityKey")
        key = cls(PublicKey.from_public_bytes(r.fixed(32, "u")))
        r.finish()
        return key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdentityKey) and self._dh == other._dh

    def __hash__(self) -> int:
        return hash(self._dh)

    def __repr__(self) -> str:
        return f"IdentityKey({self._dh.public_bytes_raw().hex()})"


class IdentityKeyPair:
    """A long-term identity: X25519 agreement and XEdDSA-compatible signing.

    Create with :meth:`generate` or :meth:`from_seed`; persist with
    :meth:`to_bytes` (secret!).  ``repr`` shows only the public key.
    """

    __slots__ = ("_signer", "_dh", "_public")

    def __init__(self, signer: Ed25519Signer) -> None:
        if signer.public_bytes_raw()[31] & 0x80:
            raise InvalidArgument(
                "this seed's Ed25519 public key has sign bit 1; XEdDSA needs 0 "
                "(IdentityKeyPair.generate picks a suitable seed)"
            )
        self._signer = signer
        self._dh = PrivateKey.from_private_bytes(signer.x25519_scalar())
        self._public = IdentityKey(self._dh.public)

    @classmethod
    def from_seed(cls, seed: bytes) -> IdentityKeyPair:
        """Load a 32-byte Ed25519 seed whose public key has Edwards sign bit 0.

        Raises :class:`~signalish.errors.InvalidArgument` for a wrong length or a
        seed with sign bit 1.
        """
        return cls(Ed25519Signer(seed))

    @classmethod
    def generate(cls, rng: RandomSource) -> IdentityKeyPair:
        """Draw seeds from ``rng`` until one has sign bit 0 (half of them do)."""
        for _ in range(_MAX_SEED_TRIES):
            signer = Ed25519Signer(rng.random_bytes(32))
            if not signer.public_bytes_raw()[31] & 0x80:
                return cls(signer)
        raise InvalidArgument("random source produced no usable seed in 256 tries")

    @property
    def public(self) -> IdentityKey:
        return self._public

    def seed(self) -> bytes:
        """The 32-byte secret seed."""
        return self._signer.seed()

    def sign(self, message: bytes) -> bytes:
        """A 64-byte signature valid as XEdDSA in the spec's form and
        libsignal's (its sign bit is 0 in both readings)."""
        return self._signer.sign(message)

    @property
    def dh_private(self) -> PrivateKey:
        """The X25519 private key (secret), for the agreement layers."""
        return self._dh

    def agree(self, peer: PublicKey) -> bytes:
        """X25519 with the identity's private scalar; refuses zero output."""
        return self._dh.exchange(peer)

    def to_bytes(self) -> bytes:
        """Versioned serialization (secret): tag 0x01, version 1, seed (32),
        then a 16-byte SHA-256 digest so that a damaged copy is an error
        (:class:`~signalish.errors.CorruptState`) rather than another identity."""
        return add_digest(Writer(Tag.IDENTITY_KEY_PAIR).fixed(self.seed()).getvalue())

    @classmethod
    def from_bytes(cls, data: bytes) -> IdentityKeyPair:
        r = Reader(check_digest(data, "IdentityKeyPair"), Tag.IDENTITY_KEY_PAIR, "IdentityKeyPair")
        seed = r.fixed(32, "seed")
        r.finish()
        try:
            return cls.from_seed(seed)
        except InvalidArgument:
            raise InvalidEncoding("IdentityKeyPair: seed has Edwards sign bit 1") from None

    def __repr__(self) -> str:
        return f"IdentityKeyPair(public={self._public.public_bytes_raw().hex()})"
