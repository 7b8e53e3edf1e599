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
"""

from __future__ import annotations

import struct
from typing import Final

from ._encoding import FORMAT_VERSION, Reader
from ._errors import InvalidLength, TrailingBytes, TruncatedInput, UnexpectedType, UnknownVersion
from ._x3dh import InitialHeader

__all__ = [
    "MESSAGE", "MESSAGE_HE", "PREKEY_MESSAGE", "HEADER_SIZE", "ENCRYPTED_HEADER_SIZE",
    "PlainFrame", "EncryptedFrame", "PreKeyFrame", "parse", "message_type",
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

    __slots__ = ("ratchet_key", "pn", "n", "aad", "ciphertext")

    def __init__(self, ratchet_key: bytes, pn: int, n: int, aad: bytes,
                 ciphertext: bytes) -> None:
        self.ratchet_key = ratchet_key
        self.pn = pn
        self.n = n
        self.aad = aad
        self.ciphertext = ciphertext


class EncryptedFrame:
    """A parsed message with an encrypted header (Double Ratchet section 4)."""

    __slots__ = ("nonce", "encrypted_header", "aad", "ciphertext")

    def __init__(self, nonce: bytes, encrypted_header: bytes, aad: bytes,
                 ciphertext: bytes) -> None:
        self.nonce = nonce
        self.encrypted_header = encrypted_header
        self.aad = aad
        self.ciphertext = ciphertext


class PreKeyFrame:
    """A parsed PreKeyMessage: the X3DH/PQXDH header and the first message."""

    __slots__ = ("header", "inner")

    def __init__(self, header: InitialHeader, inner: PlainFrame | EncryptedFrame) -> None:
        self.header = header
        self.inner = inner


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
    kind = message_type(data)
    max_ciphertext = max_plaintext + GCM_TAG
    if kind == MESSAGE:
        if len(data) < _PLAIN_PREFIX.size:
            raise TruncatedInput("message: input ends inside the header")
        _, _, key, pn, n, length = _PLAIN_PREFIX.unpack_from(data)
        end = _PLAIN_PREFIX.size
        return PlainFrame(key, pn, n, data[:end],
                          _check_length(length, data, end, max_ciphertext))
    if kind == MESSAGE_HE:
        if len(data) < _ENCRYPTED_PREFIX.size:
            raise TruncatedInput("message: input ends inside the header")
        _, _, nonce, encrypted, length = _ENCRYPTED_PREFIX.unpack_from(data)
        end = _ENCRYPTED_PREFIX.size
        return EncryptedFrame(nonce, encrypted, data[:end],
                              _check_length(length, data, end, max_ciphertext))
    reader = Reader(data, PREKEY_MESSAGE, "PreKeyMessage")
    header = InitialHeader._read(reader)
    inner_bytes = reader.var("message", max_ciphertext + _ENCRYPTED_PREFIX.size)
    reader.finish()
    inner = parse(inner_bytes, max_plaintext)
    if isinstance(inner, PreKeyFrame):
        raise UnexpectedType("PreKeyMessage: nested PreKeyMessage")
    return PreKeyFrame(header, inner)


def prekey_message(header: InitialHeader, inner: bytes) -> bytes:
    body = header.to_bytes()[2:]
    return bytes((PREKEY_MESSAGE, FORMAT_VERSION)) + body + struct.pack(">I", len(inner)) + inner
