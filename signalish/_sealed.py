"""Sealed boxes: anonymous one-shot encryption to a public key (HPKE, RFC 9180).

No session, no sender identity: anyone holding the recipient's public key
can seal; only the recipient can open.  Two suites:

* ``SealedBoxSuite.X25519``: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
  AES-256-GCM (kem 0x0020, kdf 0x0001, aead 0x0002);
* ``SealedBoxSuite.MLKEM768_X25519``: the hybrid ML-KEM-768 + X25519 KEM
  (X-Wing, kem 0x647a), HKDF-SHA256, ChaCha20-Poly1305 (aead 0x0003): secure
  if either ML-KEM-768 or X25519 holds.

Box format (version 1)::

    0x62 0x01 | suite (1) | enc (32 or 1120) | length (4) | HPKE ciphertext

The HPKE ``info`` is ``"signalish sealed box v1" || suite || recipient public
key``, so a box is bound to its format, suite and recipient.  Keys serialize
as ``0x60 0x01 | suite | seed (32)`` (private, secret) and
``0x61 0x01 | suite | public key``.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Final

from ._encoding import Reader, Tag, Writer
from ._errors import InvalidEncoding, InvalidLength, UnexpectedType
from ._primitives import (
    HPKE_ENC_SIZE,
    HPKE_PUBLIC_SIZE,
    HpkePrivate,
    HpkePublic,
    HpkeSuiteName,
    RandomSource,
)

__all__ = ["SealedBoxSuite", "SealedBoxPrivateKey", "SealedBoxPublicKey"]

_INFO: Final = b"signalish sealed box v1"
MAX_PLAINTEXT: Final = 64 * 1024 * 1024


class SealedBoxSuite(IntEnum):
    """The HPKE suite of a sealed-box key."""

    X25519 = 1
    MLKEM768_X25519 = 2

    @property
    def hpke(self) -> HpkeSuiteName:
        return "x25519" if self is SealedBoxSuite.X25519 else "mlkem768-x25519"


def _suite(value: int, what: str) -> SealedBoxSuite:
    try:
        return SealedBoxSuite(value)
    except ValueError:
        raise InvalidEncoding(f"{what}: unknown suite {value}") from None


def _info(suite: SealedBoxSuite, public: bytes) -> bytes:
    return _INFO + bytes((suite,)) + public


class SealedBoxPublicKey:
    """A recipient's public key.  Compare with ``==``."""

    __slots__ = ("suite", "_public")

    def __init__(self, suite: SealedBoxSuite, public: HpkePublic) -> None:
        self.suite, self._public = suite, public

    def public_bytes_raw(self) -> bytes:
        """The suite's raw HPKE public key (without the suite byte that
        :meth:`to_bytes` adds)."""
        return self._public.public_bytes_raw()

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext`` (at most 64 MiB) to this key."""
        if len(plaintext) > MAX_PLAINTEXT:
            raise InvalidLength("sealed box plaintext exceeds 64 MiB")
        sealed = self._public.seal(plaintext, _info(self.suite, self._public.public_bytes_raw()))
        enc_size = HPKE_ENC_SIZE[self.suite.hpke]
        enc, ciphertext = sealed[:enc_size], sealed[enc_size:]
        return (bytes((Tag.SEALED_BOX, 1, self.suite)) + enc
                + struct.pack(">I", len(ciphertext)) + ciphertext)

    def to_bytes(self) -> bytes:
        return Writer(Tag.SEALED_BOX_PUBLIC).u8(self.suite).fixed(self._public.public_bytes_raw()).getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SealedBoxPublicKey:
        r = Reader(data, Tag.SEALED_BOX_PUBLIC, "SealedBoxPublicKey")
        suite = _suite(r.u8("suite"), "SealedBoxPublicKey")
        raw = r.fixed(HPKE_PUBLIC_SIZE[suite.hpke], "public key")
        r.finish()
        return cls(suite, HpkePublic.from_public_bytes(suite.hpke, raw))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SealedBoxPublicKey) and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self._public.public_bytes_raw())

    def __repr__(self) -> str:
        return f"SealedBoxPublicKey({self.suite.name}, {self._public.public_bytes_raw()[:8].hex()}...)"


class SealedBoxPrivateKey:
    """A recipient's key pair, held as a 32-byte seed.  ``repr`` hides it."""

    __slots__ = ("suite", "_private", "public_key")

    def __init__(self, suite: SealedBoxSuite, seed: bytes) -> None:
        self.suite = suite
        self._private = HpkePrivate(suite.hpke, seed)
        self.public_key = SealedBoxPublicKey(suite, self._private.public)

    @classmethod
    def generate(cls, suite: SealedBoxSuite, rng: RandomSource) -> SealedBoxPrivateKey:
        return cls(suite, rng.random_bytes(32))

    def open(self, box: bytes) -> bytes:
        """Decrypt a sealed box.  Raises a :class:`~signalish.errors.DecodeError` for
        malformed bytes, :class:`~signalish.errors.UnexpectedType` for a box of the
        other suite, and :class:`~signalish.errors.AuthenticationError` for anything
        that does not decrypt under this key."""
        r = Reader(box, Tag.SEALED_BOX, "SealedBox")
        suite = _suite(r.u8("suite"), "SealedBox")
        if suite is not self.suite:
            raise UnexpectedType(f"SealedBox: sealed for suite {suite.name}, key is {self.suite.name}")
        enc = r.fixed(HPKE_ENC_SIZE[suite.hpke], "enc")
        ciphertext = r.var("ciphertext", MAX_PLAINTEXT + 16)
        r.finish()
        return self._private.open(enc + ciphertext, _info(suite, self.public_key.public_bytes_raw()))

    def to_bytes(self) -> bytes:
        """Secret: suite and seed."""
        return Writer(Tag.SEALED_BOX_PRIVATE).u8(self.suite).fixed(self._private.seed()).getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SealedBoxPrivateKey:
        r = Reader(data, Tag.SEALED_BOX_PRIVATE, "SealedBoxPrivateKey")
        suite = _suite(r.u8("suite"), "SealedBoxPrivateKey")
        seed = r.fixed(32, "seed")
        r.finish()
        return cls(suite, seed)

    def __repr__(self) -> str:
        return f"SealedBoxPrivateKey({self.suite.name}, public={self.public_key!r})"
