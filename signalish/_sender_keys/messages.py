"""The sender-key wire formats: the limits and constants both formats use,
:class:`SenderKeyDistributionMessage` and :class:`SenderKeyMessage`, and
the sealing and opening of a message under one iteration's message key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Final

from .._encoding import Reader, Tag, Writer
from .._errors import (
    InvalidArgument,
    InvalidEncoding,
    InvalidKey,
    InvalidLength,
    TruncatedInput,
    UnknownVersion,
)
from .._keys import IdentityKeyPair
from .._primitives import (
    PublicKey,
    aes256_cbc_decrypt,
    aes256_cbc_encrypt,
    aes256_gcm_decrypt,
    aes256_gcm_encrypt,
    hkdf,
)
from .._profile import Profile
from .._wire_v3 import _bytes_field, _ProtoReader, _uint_field

__all__ = ["SenderKeyLimits", "SenderKeyDistributionMessage", "SenderKeyMessage",
           "TAG_DISTRIBUTION_MESSAGE", "TAG_SENDER_KEY_MESSAGE", "TAG_SENDER_KEY_RECORD"]


#: Native SenderKeyDistributionMessage.
TAG_DISTRIBUTION_MESSAGE: Final = Tag.SENDER_KEY_DISTRIBUTION
#: Native SenderKeyMessage.
TAG_SENDER_KEY_MESSAGE: Final = Tag.SENDER_KEY_MESSAGE
#: SenderKeyRecord, our storage format in every profile.
TAG_SENDER_KEY_RECORD: Final = Tag.SENDER_KEY_RECORD
RECORD_VERSION: Final = 1

#: libsignal's version byte: message version 3 in both nibbles.
LIBSIGNAL_VERSION: Final = 0x33
SIGNATURE_SIZE: Final = 64
MAX_ITERATION: Final = 0xFFFFFFFF
_LIBSIGNAL_INFO: Final = b"WhisperGroup"
_NATIVE_INFO: Final = b"signalish_SenderKeyMessage"
_GCM_TAG: Final = 16
# Sanity bounds of the record format, far above any sensible limit.
_MAX_RECORD_STATES: Final = 255
_MAX_RECORD_KEYS: Final = 1 << 20
_NATIVE_SKM_PREFIX: Final = 2 + 16 + 4 + 4 + 4


@dataclass(frozen=True, slots=True)
class SenderKeyLimits:
    """Bounds on what a sender key record keeps (libsignal's values by default).

    ``max_forward_jump``: a message may be at most this many iterations past
    the state's next one (libsignal: 25,000).
    ``max_message_keys``: message keys of skipped iterations kept per state;
    the lowest go first (libsignal: 2,000).
    ``max_states``: states kept per record, newest first (libsignal: 5).
    ``max_message_size``: the largest plaintext accepted, in bytes.
    """

    max_forward_jump: int = 25_000
    max_message_keys: int = 2_000
    max_states: int = 5
    max_message_size: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        for name, low, high in (("max_forward_jump", 0, MAX_ITERATION),
                                ("max_message_keys", 0, _MAX_RECORD_KEYS),
                                ("max_states", 1, _MAX_RECORD_STATES),
                                ("max_message_size", 1, MAX_ITERATION)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidArgument(f"SenderKeyLimits.{name} must be {low}..{high}, got {value!r}")


DEFAULT_LIMITS: Final = SenderKeyLimits()


def _as_bytes(data: object, what: str) -> bytes:
    """``data`` as bytes; anything but bytes-like is the caller's mistake."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidArgument(f"{what}: expected bytes, got {type(data).__name__}")
    return bytes(data)


def _check_u32(value: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ITERATION:
        raise InvalidArgument(f"{what} must be 0..2**32-1, got {value!r}")


def _signing_key(u: bytes, what: str) -> bytes:
    """Refuse a signing key that is not a canonical, non-low-order u."""
    try:
        PublicKey.from_public_bytes(u)
    except InvalidKey:
        raise InvalidKey(f"{what}: the signing key is not an acceptable X25519 point") from None
    return u


def _libsignal_version(data: bytes, what: str) -> None:
    """libsignal reads only the high nibble of the version byte."""
    if not data:
        raise TruncatedInput(f"{what}: empty")
    if data[0] >> 4 != 3:
        raise UnknownVersion(f"{what}: version byte 0x{data[0]:02x} is not message version 3")


def _proto_bytes(r: _ProtoReader, tag: int, size: int, what: str, exact: bool = True) -> bytes:
    """Field ``tag``: exactly ``size`` bytes, or at most ``size`` if not
    ``exact``.  The length is checked here, not by the reader, so that a
    wrong one is InvalidLength."""
    value = r.bytes_(tag, MAX_ITERATION)
    assert value is not None
    if len(value) > size or (exact and len(value) != size):
        raise InvalidLength(f"{what}: field {tag} is {len(value)} bytes, "
                            f"{'not' if exact else 'over'} {size}")
    return value


def _proto_uint(r: _ProtoReader, tag: int) -> int:
    value = r.uint32(tag)
    assert value is not None
    return value


# --- the two messages ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SenderKeyDistributionMessage:
    """A parsed SKDM: what a member needs to read one sender's messages.

    ``signing_key`` is the 32-byte Montgomery u of the sender's signing key;
    ``chain_key`` belongs to ``iteration`` (secret: not in repr).
    """

    distribution_id: uuid.UUID
    chain_id: int
    iteration: int
    chain_key: bytes = field(repr=False)
    signing_key: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.distribution_id, uuid.UUID):
            raise InvalidArgument("distribution_id must be a uuid.UUID")
        _check_u32(self.chain_id, "chain_id")
        _check_u32(self.iteration, "iteration")
        if len(self.chain_key) != 32 or len(self.signing_key) != 32:
            raise InvalidArgument("the chain key and the signing key are 32 bytes each")

    def to_bytes(self, profile: Profile) -> bytes:
        """The profile's encoding (docs/sender_keys.md)."""
        if profile.wire == "native":
            return (Writer(TAG_DISTRIBUTION_MESSAGE).fixed(self.distribution_id.bytes)
                    .u32(self.chain_id).u32(self.iteration).fixed(self.chain_key)
                    .fixed(self.signing_key).getvalue())
        return (bytes((LIBSIGNAL_VERSION,)) + _bytes_field(1, self.distribution_id.bytes)
                + _uint_field(2, self.chain_id) + _uint_field(3, self.iteration)
                + _bytes_field(4, self.chain_key) + _bytes_field(5, b"\x05" + self.signing_key))

    @classmethod
    def parse(cls, data: bytes, profile: Profile) -> SenderKeyDistributionMessage:
        """Strict inverse of :meth:`to_bytes`.  Raises a
        :class:`~signalish.errors.DecodeError` subclass for malformed bytes and
        :class:`~signalish.errors.InvalidKey` for an unacceptable signing key."""
        what = "SenderKeyDistributionMessage"
        data = _as_bytes(data, what)
        if profile.wire == "native":
            r = Reader(data, TAG_DISTRIBUTION_MESSAGE, what)
            dist, chain_id, iteration = r.fixed(16, "distribution id"), r.u32("chain id"), r.u32("iteration")
            chain_key, key = r.fixed(32, "chain key"), r.fixed(32, "signing key")
            r.finish()
        else:
            _libsignal_version(data, what)
            p = _ProtoReader(data[1:], what)
            dist = _proto_bytes(p, 1, 16, what)
            chain_id, iteration = _proto_uint(p, 2), _proto_uint(p, 3)
            chain_key, encoded = _proto_bytes(p, 4, 32, what), _proto_bytes(p, 5, 33, what)
            p.finish()
            if encoded[0] != 0x05:
                raise InvalidEncoding(f"{what}: the signing key does not start 0x05")
            key = encoded[1:]
        return cls(uuid.UUID(bytes=dist), chain_id, iteration, chain_key, _signing_key(key, what))


@dataclass(frozen=True, slots=True)
class SenderKeyMessage:
    """A parsed group message.  ``signed`` is every byte the signature covers."""

    distribution_id: uuid.UUID
    chain_id: int
    iteration: int
    ciphertext: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    signed: bytes = field(repr=False)

    @classmethod
    def parse(cls, data: bytes, profile: Profile,
              max_message_size: int = DEFAULT_LIMITS.max_message_size) -> SenderKeyMessage:
        """Parse strictly, bounding the ciphertext by ``max_message_size``
        first.  The distribution id says which record to load.  Raises a
        :class:`~signalish.errors.DecodeError` subclass."""
        what = "SenderKeyMessage"
        data = _as_bytes(data, what)
        if profile.wire == "native":
            r = Reader(data, TAG_SENDER_KEY_MESSAGE, what)
            dist, chain_id, iteration = r.fixed(16, "distribution id"), r.u32("chain id"), r.u32("iteration")
            length = r.u32("ciphertext length")
            if not _GCM_TAG <= length <= max_message_size + _GCM_TAG:
                raise InvalidLength(f"{what}: a ciphertext of {length} bytes is out of range")
            ciphertext, signature = r.fixed(length, "ciphertext"), r.fixed(SIGNATURE_SIZE, "signature")
            r.finish()
        else:
            _libsignal_version(data, what)
            if len(data) < 1 + SIGNATURE_SIZE:
                raise TruncatedInput(f"{what}: shorter than the version and the signature")
            p = _ProtoReader(data[1:-SIGNATURE_SIZE], what)
            dist = _proto_bytes(p, 1, 16, what)
            chain_id, iteration = _proto_uint(p, 2), _proto_uint(p, 3)
            ciphertext = _proto_bytes(p, 4, max_message_size + 16, what, exact=False)
            p.finish()
            if not ciphertext or len(ciphertext) % 16:
                raise InvalidLength(f"{what}: the ciphertext is not a whole number of AES blocks")
            signature = data[-SIGNATURE_SIZE:]
        return cls(uuid.UUID(bytes=dist), chain_id, iteration, ciphertext, signature,
                   data[:-SIGNATURE_SIZE])


def _seal(profile: Profile, seed: bytes, distribution_id: uuid.UUID, chain_id: int,
          iteration: int, plaintext: bytes, signer: IdentityKeyPair) -> bytes:
    if profile.wire == "native":
        okm = hkdf(seed, salt=None, info=_NATIVE_INFO, length=44)
        prefix = (Writer(TAG_SENDER_KEY_MESSAGE).fixed(distribution_id.bytes).u32(chain_id)
                  .u32(iteration).u32(len(plaintext) + _GCM_TAG).getvalue())
        signed = prefix + aes256_gcm_encrypt(okm[:32], okm[32:], plaintext, prefix)
    else:
        okm = hkdf(seed, salt=None, info=_LIBSIGNAL_INFO, length=48)
        signed = (bytes((LIBSIGNAL_VERSION,)) + _bytes_field(1, distribution_id.bytes)
                  + _uint_field(2, chain_id) + _uint_field(3, iteration)
                  + _bytes_field(4, aes256_cbc_encrypt(okm[16:], okm[:16], plaintext)))
    return signed + signer.sign(signed)


def _open(profile: Profile, seed: bytes, message: SenderKeyMessage) -> bytes:
    """Decrypt; any failure is :class:`AuthenticationError` and nothing else."""
    if profile.wire == "native":
        okm = hkdf(seed, salt=None, info=_NATIVE_INFO, length=44)
        return aes256_gcm_decrypt(okm[:32], okm[32:], message.ciphertext,
                                  message.signed[:_NATIVE_SKM_PREFIX])
    okm = hkdf(seed, salt=None, info=_LIBSIGNAL_INFO, length=48)
    return aes256_cbc_decrypt(okm[16:], okm[:16], message.ciphertext)


# --- state and record --------------------------------------------------------------
