"""Strict binary encoding shared by every serialized structure.

Layout of every top-level object (docs/formats.rst has the full tables)::

    type tag (1 byte) || format version (1 byte) || body

All integers are unsigned big-endian.  A body is a fixed sequence of fields;
variable-length fields carry a length prefix; optional fields carry a
presence byte that must be exactly 0 or 1.  Decoding is canonical: each
value has exactly one accepted encoding, and :meth:`Reader.finish` refuses
trailing bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import ClassVar, Final, Self

from ._errors import (
    CorruptState,
    InvalidEncoding,
    InvalidLength,
    TrailingBytes,
    TruncatedInput,
    UnexpectedType,
    UnknownVersion,
)

__all__ = ["Tag", "Writer", "Reader", "FORMAT_VERSION", "Codec", "add_digest", "check_digest"]

DIGEST_SIZE: Final = 16


def add_digest(body: bytes) -> bytes:
    """Append the first 16 bytes of SHA-256(body): stored state carries an
    integrity check, so corruption is an error, never a silently different key."""
    return body + hashlib.sha256(body).digest()[:DIGEST_SIZE]


def check_digest(data: bytes, what: str) -> bytes:
    """Inverse of :func:`add_digest`; raises :class:`CorruptState`."""
    data = bytes(data)
    body, digest = data[:-DIGEST_SIZE], data[-DIGEST_SIZE:]
    if len(data) < 2 + DIGEST_SIZE or not hmac.compare_digest(
            hashlib.sha256(body).digest()[:DIGEST_SIZE], digest):
        raise CorruptState(f"{what}: integrity check failed (truncated or altered)")
    return body

FORMAT_VERSION: Final = 1


class Tag:
    """Type tags of serialized structures (one byte each, never reused)."""

    IDENTITY_KEY_PAIR: Final = 0x01
    IDENTITY_KEY: Final = 0x02
    SIGNED_PREKEY: Final = 0x10
    ONE_TIME_PREKEY: Final = 0x11
    KEM_PREKEY: Final = 0x12
    PREKEY_BUNDLE: Final = 0x20
    PREKEY_RING: Final = 0x21
    INITIAL_HEADER: Final = 0x30
    #: The native DecryptionErrorMessage (beside the message tags 0x40-0x42,
    #: which live in signalish._message).
    DECRYPTION_ERROR: Final = 0x43
    SESSION_RECORD: Final = 0x50
    SESSION_ROW: Final = 0x51
    CHAIN_KEYS_ROW: Final = 0x52
    COUNTERS_ROW: Final = 0x53
    SEALED_BOX_PRIVATE: Final = 0x60
    SEALED_BOX_PUBLIC: Final = 0x61
    SEALED_BOX: Final = 0x62
    BACKUP: Final = 0x70
    BACKUP_CONTENTS: Final = 0x71
    #: Sender keys (signalish._sender_keys): the native distribution
    #: message and group message, and the record (every profile).
    SENDER_KEY_DISTRIBUTION: Final = 0x90
    SENDER_KEY_MESSAGE: Final = 0x91
    SENDER_KEY_RECORD: Final = 0x92
    #: Linking a device (signalish._provisioning): ProvisioningData and the
    #: provisioning envelope.
    PROVISIONING_DATA: Final = 0xA0
    PROVISIONING_ENVELOPE: Final = 0xA1


class Writer:
    """Accumulates fields of one structure."""

    __slots__ = ("_parts",)

    def __init__(self, tag: int, version: int = FORMAT_VERSION) -> None:
        self._parts: list[bytes] = [bytes((tag, version))]

    def u8(self, value: int) -> Writer:
        self._parts.append(value.to_bytes(1, "big"))
        return self

    def u32(self, value: int) -> Writer:
        self._parts.append(value.to_bytes(4, "big"))
        return self

    def u64(self, value: int) -> Writer:
        self._parts.append(value.to_bytes(8, "big"))
        return self

    def fixed(self, data: bytes) -> Writer:
        self._parts.append(data)
        return self

    def var(self, data: bytes) -> Writer:
        """A field of up to 2**32 - 1 bytes with a 4-byte length prefix."""
        self._parts.append(len(data).to_bytes(4, "big"))
        self._parts.append(data)
        return self

    def flag(self, present: bool) -> Writer:
        self._parts.append(b"\x01" if present else b"\x00")
        return self

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Reads the fields of one structure, naming it in every error."""

    __slots__ = ("_data", "_pos", "_what")

    def __init__(
        self, data: bytes, tag: int, what: str, versions: frozenset[int] = frozenset({1})
    ) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"{what}: expected bytes, got {type(data).__name__}")
        self._data = bytes(data)
        self._what = what
        self._pos = 0
        if len(self._data) < 2:
            raise TruncatedInput(f"{what}: input shorter than the 2-byte type and version")
        if self._data[0] != tag:
            raise UnexpectedType(
                f"{what}: type tag 0x{self._data[0]:02x} is not 0x{tag:02x}"
            )
        if self._data[1] not in versions:
            raise UnknownVersion(f"{what}: format version {self._data[1]} is not supported")
        self._pos = 2

    @property
    def version(self) -> int:
        return self._data[1]

    def _take(self, n: int, field: str) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise TruncatedInput(f"{self._what}: input ends inside field {field!r}")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u8(self, field: str) -> int:
        return self._take(1, field)[0]

    def u32(self, field: str) -> int:
        return int.from_bytes(self._take(4, field), "big")

    def u64(self, field: str) -> int:
        return int.from_bytes(self._take(8, field), "big")

    def fixed(self, n: int, field: str) -> bytes:
        return self._take(n, field)

    def var(self, field: str, max_len: int) -> bytes:
        length = self.u32(field + " length")
        if length > max_len:
            raise InvalidLength(
                f"{self._what}: field {field!r} claims {length} bytes, at most {max_len}"
            )
        return self._take(length, field)

    def flag(self, field: str) -> bool:
        value = self.u8(field)
        if value > 1:
            raise InvalidEncoding(f"{self._what}: presence byte of {field!r} is {value}, not 0 or 1")
        return value == 1

    def count(self, field: str, max_count: int) -> int:
        value = self.u32(field)
        if value > max_count:
            raise InvalidLength(
                f"{self._what}: {field!r} is {value}, at most {max_count}"
            )
        return value

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise TrailingBytes(
                f"{self._what}: {len(self._data) - self._pos} bytes after the end"
            )


class Codec:
    """Mixin for a value serialized as tag || version || body, where the
    class supplies ``_write`` (the body) and ``_read`` (its inverse)."""

    __slots__ = ()
    _TAG: ClassVar[int]

    def _write(self, w: Writer) -> None:
        raise NotImplementedError

    @classmethod
    def _read(cls, r: Reader) -> Self:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Tag, format version 1, then the body (docs/formats.md)."""
        w = Writer(self._TAG)
        self._write(w)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Strict inverse of :meth:`to_bytes`: raises a named
        :class:`~signalish.errors.DecodeError` subclass for any malformed input."""
        r = Reader(data, cls._TAG, cls.__name__)
        value = cls._read(r)
        r.finish()
        return value
