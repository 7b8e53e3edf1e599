"""Wire format of native messages (format version 1; docs/formats.md).

::

    Message          0x40 0x01 | ratchet key (32) | PN (4) | N (4) | length (4) | ciphertext
    EncryptedHeader  0x41 0x01 | nonce (12) | encrypted header (56) | length (4) | ciphertext
    PreKeyMessage    0x42 0x01 | InitialHeader body | length (4) | Message or EncryptedHeader

Parsed frames are plain slotted classes rather than frozen dataclasses: they
are built once per message on the hot path.  The ciphertext is AES-256-GCM output (tag included).  Its associated data is
the session's AD followed by every byte of the message before the
ciphertext, so the header, its type and its version are all authenticated
(Double Ratchet section 3.4: AD || header).  The length field must equal the
number of bytes that follow: the encoding is canonical.

Message keys (section 5.2 leaves ENCRYPT open): the AEAD key is
HMAC-SHA-256(mk, "signalish_MessageKey" || 0x01) and the nonce is all zero,
which is safe because each key encrypts exactly one message.  Header
encryption: AES-256-GCM under the header key, nonce
HMAC-SHA-256(mk, "signalish_HeaderNonce")[:12], unique per message because mk
is, and deterministic, so vectors need no extra randomness.
"""

from __future__ import annotations

import struct
from typing import Final

from ._encoding import FORMAT_VERSION, Reader
from ._errors import (
    AuthenticationError,
    InvalidLength,
    TrailingBytes,
    TruncatedInput,
    UnexpectedType,
    UnknownVersion,
)
from ._initial import InitialHeader
from ._primitives import aes256_gcm_decrypt, aes256_gcm_encrypt, hmac_sha256
from ._profile import NATIVE, Profile
from ._ratchet import Header, Sending
from ._wire import InitialMessage

__all__ = [
    "MESSAGE", "MESSAGE_HE", "PREKEY_MESSAGE", "HEADER_SIZE", "ENCRYPTED_HEADER_SIZE",
    "PlainFrame", "EncryptedFrame", "PreKeyFrame", "NativeWire", "NATIVE_WIRE", "parse",
    "message_type",
]

MESSAGE: Final = 0x40
MESSAGE_HE: Final = 0x41
PREKEY_MESSAGE: Final = 0x42
HEADER_SIZE: Final = 40  # ratchet key 32, PN 4, N 4
ENCRYPTED_HEADER_SIZE: Final = HEADER_SIZE + 16
HEADER_NONCE_SIZE: Final = 12
GCM_TAG: Final = 16

_PLAIN_PREFIX: Final = struct.Struct(">BB32sIII")  # tag, version, key, PN, N, length
_ENCRYPTED_PREFIX: Final = struct.Struct(f">BB{HEADER_NONCE_SIZE}s{ENCRYPTED_HEADER_SIZE}sI")
_HEADER: Final = struct.Struct(">32sII")
_ZERO_NONCE: Final = bytes(12)


def plain_prefix(ratchet_key: bytes, pn: int, n: int, length: int) -> bytes:
    return _PLAIN_PREFIX.pack(MESSAGE, FORMAT_VERSION, ratchet_key, pn, n, length)


def encrypted_prefix(nonce: bytes, encrypted_header: bytes, length: int) -> bytes:
    return _ENCRYPTED_PREFIX.pack(MESSAGE_HE, FORMAT_VERSION, nonce, encrypted_header, length)


def pack_header(ratchet_key: bytes, pn: int, n: int) -> bytes:
    return _HEADER.pack(ratchet_key, pn, n)


def unpack_header(data: bytes) -> tuple[bytes, int, int]:
    key, pn, n = _HEADER.unpack(data)
    return key, pn, n


class PlainFrame:
    """A parsed Message: the header in the clear."""

    __slots__ = ("ratchet_key", "pn", "n", "aad", "ciphertext", "_keys", "header")

    def __init__(self, ratchet_key: bytes, pn: int, n: int, aad: bytes,
                 ciphertext: bytes, keys: NativeWire) -> None:
        self.ratchet_key = ratchet_key
        self.pn = pn
        self.n = n
        self.aad = aad
        self.ciphertext = ciphertext
        self._keys = keys
        #: The header, made once: routing and the ratchet read it several times.
        self.header = Header(ratchet_key, pn, n)

    def open_header(self, header_key: bytes) -> Header | None:
        return None

    def open(self, message_key: bytes, ad: bytes) -> bytes:
        return aes256_gcm_decrypt(self._keys.aead_key(message_key), _ZERO_NONCE,
                                  self.ciphertext, ad + self.aad)


class EncryptedFrame:
    """A parsed message with an encrypted header (Double Ratchet section 4)."""

    __slots__ = ("nonce", "encrypted_header", "aad", "ciphertext", "_keys")

    def __init__(self, nonce: bytes, encrypted_header: bytes, aad: bytes,
                 ciphertext: bytes, keys: NativeWire) -> None:
        self.nonce = nonce
        self.encrypted_header = encrypted_header
        self.aad = aad
        self.ciphertext = ciphertext
        self._keys = keys

    @property
    def header(self) -> None:
        return None

    def open_header(self, header_key: bytes) -> Header | None:
        try:
            plain = aes256_gcm_decrypt(header_key, self.nonce, self.encrypted_header, b"")
        except AuthenticationError:
            return None
        return Header(*unpack_header(plain))

    def open(self, message_key: bytes, ad: bytes) -> bytes:
        return aes256_gcm_decrypt(self._keys.aead_key(message_key), _ZERO_NONCE,
                                  self.ciphertext, ad + self.aad)


class PreKeyFrame(InitialMessage):
    """A parsed PreKeyMessage: the X3DH/PQXDH header and the first message."""

    __slots__ = ()


def message_type(data: bytes) -> int:
    """The type tag of a message (0x40, 0x41 or 0x42); raises for others."""
    if len(data) < 2:
        raise TruncatedInput("message: shorter than its type and version")
    if data[0] not in (MESSAGE, MESSAGE_HE, PREKEY_MESSAGE):
        raise UnexpectedType(f"message: unknown type 0x{data[0]:02x}")
    if data[1] != FORMAT_VERSION:
        raise UnknownVersion(f"message: format version {data[1]} is not supported")
    return data[0]


def _check_length(declared: int, data: bytes, start: int, max_ciphertext: int) -> bytes:
    if declared > max_ciphertext:
        raise InvalidLength(f"message: ciphertext of {declared} bytes exceeds the limit")
    actual = len(data) - start
    if actual < declared:
        raise TruncatedInput("message: input ends inside the ciphertext")
    if actual > declared:
        raise TrailingBytes(f"message: {actual - declared} bytes after the end")
    if declared < GCM_TAG:
        raise InvalidLength("message: ciphertext shorter than its tag")
    return data[start:]


def parse(data: bytes, max_plaintext: int) -> PlainFrame | EncryptedFrame | PreKeyFrame:
    """Parse any native message strictly.  Bounds the ciphertext by
    ``max_plaintext`` before anything else is done with it."""
    return NATIVE_WIRE.parse(data, max_plaintext)


def _parse(wire: NativeWire, data: bytes,
           max_plaintext: int) -> PlainFrame | EncryptedFrame | PreKeyFrame:
    kind = message_type(data)
    max_ciphertext = max_plaintext + GCM_TAG
    if kind == MESSAGE:
        if len(data) < _PLAIN_PREFIX.size:
            raise TruncatedInput("message: input ends inside the header")
        _, _, key, pn, n, length = _PLAIN_PREFIX.unpack_from(data)
        end = _PLAIN_PREFIX.size
        return PlainFrame(key, pn, n, data[:end],
                          _check_length(length, data, end, max_ciphertext), wire)
    if kind == MESSAGE_HE:
        if len(data) < _ENCRYPTED_PREFIX.size:
            raise TruncatedInput("message: input ends inside the header")
        _, _, nonce, encrypted, length = _ENCRYPTED_PREFIX.unpack_from(data)
        end = _ENCRYPTED_PREFIX.size
        return EncryptedFrame(nonce, encrypted, data[:end],
                              _check_length(length, data, end, max_ciphertext), wire)
    reader = Reader(data, PREKEY_MESSAGE, "PreKeyMessage")
    header = InitialHeader._read(reader)
    inner_bytes = reader.var("message", max_ciphertext + _ENCRYPTED_PREFIX.size)
    reader.finish()
    inner = _parse(wire, inner_bytes, max_plaintext)
    if isinstance(inner, PreKeyFrame):
        raise UnexpectedType("PreKeyMessage: nested PreKeyMessage")
    return PreKeyFrame(header, inner)


def prekey_message(header: InitialHeader, inner: bytes) -> bytes:
    body = header.to_bytes()[2:]
    return bytes((PREKEY_MESSAGE, FORMAT_VERSION)) + body + struct.pack(">I", len(inner)) + inner


class NativeWire:
    """The native profile's wire format (see the module docstring)."""

    __slots__ = ("name", "header_encryption", "_message_key_info", "_header_nonce_info")

    def __init__(self, profile: Profile) -> None:
        self.name: str = profile.wire
        self.header_encryption: bool = True
        self._message_key_info = profile.message_key_info + b"\x01"
        self._header_nonce_info = profile.header_nonce_info

    def aead_key(self, message_key: bytes) -> bytes:
        """The AES-256-GCM key of a message (HKDF-Expand, one block)."""
        return hmac_sha256(message_key, self._message_key_info)

    def parse(self, data: bytes, max_plaintext: int) -> PlainFrame | EncryptedFrame | PreKeyFrame:
        return _parse(self, data, max_plaintext)

    def seal(self, sending: Sending, plaintext: bytes, ad: bytes) -> bytes:
        (ratchet_key, pn, n), mk, hk = sending
        length = len(plaintext) + GCM_TAG
        if hk is not None:
            nonce = hmac_sha256(mk, self._header_nonce_info)[:HEADER_NONCE_SIZE]
            header = aes256_gcm_encrypt(hk, nonce, pack_header(ratchet_key, pn, n), b"")
            prefix = encrypted_prefix(nonce, header, length)
        else:
            prefix = plain_prefix(ratchet_key, pn, n, length)
        return prefix + aes256_gcm_encrypt(self.aead_key(mk), _ZERO_NONCE, plaintext, ad + prefix)

    def initial_message(self, header: InitialHeader, registration_id: int,
                        message: bytes) -> bytes:
        return prekey_message(header, message)

    def message_type(self, data: bytes) -> int:
        return message_type(data)

    def associated_data(self, session_ad: bytes, local: bytes, remote: bytes,
                        sending: bool) -> bytes:
        return session_ad


NATIVE_WIRE: Final = NativeWire(NATIVE)
