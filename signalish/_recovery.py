"""Decryption error messages: libsignal's DecryptionErrorMessage and PlaintextContent.

When a message cannot be decrypted, Signal's applications tell its sender so
with a *DecryptionErrorMessage* ("I could not decrypt your message sent at
timestamp T, on the ratchet key K"), sent unencrypted inside a
*PlaintextContent*.  This module writes and reads both, byte for byte as
libsignal-client does (0.72.1 and 0.90.0 agree on every byte).  It is the
wire part only: nothing here touches a session.

Layouts (protobuf fields by number; all facts observed through
libsignal-client's public API, see Sources)::

    DecryptionErrorMessage   protobuf {1 ratchet_key (bytes, 33: 0x05 || u)?,
                                       2 timestamp (uint64),
                                       3 device_id (uint32)}
    PlaintextContent         0xC0 || Content || 0x80
    Content                  protobuf {8 decryptionErrorMessage (bytes)}

``ratchet_key`` is the sender's ratchet public key of the message that
failed: present when that message was a SignalMessage (type 2) or a
PreKeySignalMessage (type 3, the ratchet key of the SignalMessage inside),
absent for a SenderKeyMessage (type 7).  ``timestamp`` is the failed
message's timestamp (the envelope's, milliseconds since the epoch) and
``device_id`` the device of the original message's *sender*, both as the
application knows them: they are not in the message's bytes.  libsignal
writes fields 2 and 3 even when zero.  A PlaintextContent's first byte is
0xC0; its body is a Content protobuf (Signal's SignalService.proto, field 8
``decryptionErrorMessage``) followed by the padding terminator 0x80 and no
zero bytes.  A PlaintextContent travels as CiphertextMessageType.Plaintext
(:data:`PLAINTEXT_CONTENT`, 8), unencrypted, normally inside sealed sender.

Parsing is canonical, in the style of :mod:`signalish._wire_v3`: fields in
ascending order exactly as libsignal writes them, each at most once, minimal
varints, no unknown fields, fields 2 and 3 required, a ratchet key of 33
bytes starting 0x05, a PlaintextContent of exactly 0xC0, one field 8 and
0x80.  So each message has one encoding.  libsignal's own parser is laxer
(it takes any field order, unknown fields, duplicates, long varints, a
missing device id as 0, and trailing bytes after 0xC0 in a PlaintextContent
until the body is read); everything libsignal *writes* parses here.
Malformed input raises a :class:`~signalish.errors.DecodeError` subclass and
nothing else.  The ratchet key's 32 bytes are taken as they come (libsignal
takes any 32 bytes after 0x05 too): they are only compared with keys the
recipient already has.

What the recipient of a DecryptionErrorMessage should do.  It is
unauthenticated: anyone who can put bytes on the wire (the server included)
can forge one, with any timestamp and ratchet key.  So it may only *prompt*
an action the recipient could have taken anyway, never change state by
itself.  What Signal's applications do with one from address A, device D:

* if they still have the message sent to A.D at ``timestamp``, resend it
  (encrypted afresh on the current session; the failed ciphertext is never
  sent again);
* if ``ratchet_key`` equals the ratchet key of their *current* session with
  A.D (the session it failed on is the one they would keep using), archive
  that session and start a new one from a fresh bundle (or send an empty
  message to show the peer the new session), since the peer evidently
  cannot decrypt on it; a ratchet key that matches no current session (an
  old or forged one) changes nothing;
* rate-limit all of it per sender, because every action costs a message and
  a forged stream of them must not become a flood of resends or sessions.

The native profile has its own frame for the same three fields (libsignal's
protobuf is not a native format; tag 0x43, beside the native message tags)::

    0x43 0x01 | flags (1: bit 0, a ratchet key follows) | [ratchet key (32)]
              | timestamp (8, big-endian) | device id (4, big-endian)

It travels as it is (no PlaintextContent around it), with its tag (0x43) as
its type.  Its ``ratchet_key`` is the
one in a 0x40 message's header, or in the 0x40 message inside a 0x42
PreKeyMessage; a message with an encrypted header (0x41, or a 0x42 around
one) shows none to the party that could not decrypt it, so its error
message has none.

Sources: libsignal-client 0.72.1 (``@signalapp/libsignal-client``) and 0.90.0
(npm), used as a black box through their public TypeScript API:
``DecryptionErrorMessage.forOriginal(bytes, type, timestamp,
originalSenderDeviceId)``, ``.deserialize``, ``.serialize``,
``.timestamp()``, ``.deviceId()``, ``.ratchetKey()``,
``.extractFromSerializedBody``; ``PlaintextContent.from(dem)``,
``.deserialize``, ``.serialize``, ``.body()``, ``.asCiphertextMessage()``;
``CiphertextMessageType.Plaintext = 8`` (index.d.ts).  The layouts were read
off their output and checked both ways by tests/interop/test_recovery_interop.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ._errors import (
    InvalidArgument,
    InvalidEncoding,
    TrailingBytes,
    TruncatedInput,
    UnexpectedType,
    UnknownVersion,
    UnsupportedByProfile,
)
from ._encoding import Reader, Tag, Writer
from ._message import MESSAGE, MESSAGE_HE, PREKEY_MESSAGE, PlainFrame, PreKeyFrame
from ._message import message_type as native_message_type
from ._message import parse as parse_native
from ._profile import Profile
from ._wire_v3 import (
    PREKEY_SIGNAL_MESSAGE,
    SIGNAL_MESSAGE,
    V3Frame,
    _bytes_field,
    _key33,
    _ProtoReader,
    _uint_field,
    message_type_v3,
    parse_v3,
)

__all__ = [
    "DecryptionErrorMessage",
    "plaintext_content",
    "parse_plaintext_content",
    "PLAINTEXT_CONTENT",
    "SENDER_KEY_MESSAGE",
    "PLAINTEXT_CONTENT_VERSION",
    "MAX_SIZE",
    "NATIVE_DECRYPTION_ERROR",
]

#: The native DecryptionErrorMessage's tag, and its type.
NATIVE_DECRYPTION_ERROR: Final = Tag.DECRYPTION_ERROR
_NATIVE_VERSION: Final = 1
_NATIVE_HAS_KEY: Final = 0x01

#: libsignal's CiphertextMessageType.Plaintext: a PlaintextContent's type.
PLAINTEXT_CONTENT: Final = 8
#: libsignal's CiphertextMessageType.SenderKey (group messages; a
#: DecryptionErrorMessage for one carries no ratchet key).
SENDER_KEY_MESSAGE: Final = 7
#: The first byte of every PlaintextContent.
PLAINTEXT_CONTENT_VERSION: Final = 0xC0
#: The padding terminator after the Content protobuf.
_PADDING_TERMINATOR: Final = 0x80
#: Content's field ``decryptionErrorMessage``.
_CONTENT_FIELD: Final = 8
_MAX_TIMESTAMP: Final = (1 << 64) - 1
_MAX_DEVICE_ID: Final = (1 << 32) - 1
#: The longest DecryptionErrorMessage: key (2 + 33), timestamp (1 + 10),
#: device id (1 + 5).
MAX_SIZE: Final = 35 + 11 + 6


class _Reader(_ProtoReader):
    """:class:`~signalish._wire_v3._ProtoReader` plus uint64 fields."""

    __slots__ = ()

    def uint64(self, tag: int) -> int:
        self._field(tag, 0, optional=False)
        return self._read_varint(_MAX_TIMESTAMP, max_shift=63)

    def rest(self) -> bytes:
        """The bytes not read yet."""
        return self._data[self._pos:]


@dataclass(frozen=True, slots=True)
class DecryptionErrorMessage:
    """"Your message sent at ``timestamp`` from device ``device_id`` (on
    ratchet key ``ratchet_key``) could not be decrypted."  Unauthenticated:
    see the module docstring for what a recipient may do with one.

    ``ratchet_key`` is the raw 32-byte X25519 public key (written as 0x05 ||
    key), None when the original message had none.  ``timestamp`` is a
    uint64 (milliseconds), ``device_id`` a uint32; out-of-range values raise
    :class:`~signalish.errors.InvalidArgument`.
    """

    ratchet_key: bytes | None
    timestamp: int
    device_id: int

    def __post_init__(self) -> None:
        key = self.ratchet_key
        if key is not None and (not isinstance(key, bytes) or len(key) != 32):
            raise InvalidArgument("ratchet_key is 32 bytes or None")
        for name, value, top in (("timestamp", self.timestamp, _MAX_TIMESTAMP),
                                 ("device_id", self.device_id, _MAX_DEVICE_ID)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise InvalidArgument(f"{name} must be an integer in 0..{top}")

    @classmethod
    def for_original(cls, message: bytes, message_type: int, timestamp: int, device_id: int,
                     profile: Profile) -> DecryptionErrorMessage:
        """The DecryptionErrorMessage for ``message``, one that could not be
        decrypted: what libsignal's ``DecryptionErrorMessage.forOriginal``
        makes from the same arguments.

        ``message_type`` is libsignal's CiphertextMessageType: 2
        (SignalMessage) or 3 (PreKeySignalMessage), whose ratchet key is read
        out of ``message`` (parsed strictly under ``profile``, libsignal_v3 or
        libsignal_v4), or 7 (SenderKeyMessage: not read, no ratchet key).
        Under the native profile it is the message's tag (0x40, 0x41 or
        0x42, what :meth:`SessionManager.message_type` returns).
        ``timestamp`` and ``device_id`` are the original message's timestamp
        and its sender's device id.

        Raises :class:`~signalish.errors.InvalidArgument` for another type
        (8, PlaintextContent, is not encrypted) or an
        out-of-range timestamp or device id, and a
        :class:`~signalish.errors.DecodeError` (:class:`UnexpectedType` when
        the bytes are of the other type) or
        :class:`~signalish.errors.InvalidKey` when ``message`` does not parse.
        """
        if profile.wire == "native":
            return cls._for_native(message, message_type, timestamp, device_id)
        if message_type == SENDER_KEY_MESSAGE:
            return cls(None, timestamp, device_id)
        if message_type == PLAINTEXT_CONTENT:
            raise InvalidArgument("a PlaintextContent is not encrypted: nothing to report")
        if message_type not in (SIGNAL_MESSAGE, PREKEY_SIGNAL_MESSAGE):
            raise InvalidArgument(f"unknown message type {message_type!r}")
        if profile.wire == "libsignal_v3":
            protocol = 3
        elif profile.wire == "libsignal_v4":
            protocol = 4
        else:
            raise UnsupportedByProfile(
                f"profile {profile.name} has no libsignal DecryptionErrorMessage")
        # Check the arguments before spending a parse on the message.
        cls(None, timestamp, device_id)
        if message_type_v3(message, protocol) != message_type:
            raise UnexpectedType(f"the message is not of type {message_type}")
        frame = parse_v3(message, len(message), protocol)
        inner = frame if isinstance(frame, V3Frame) else frame.inner
        assert isinstance(inner, V3Frame)
        return cls(inner.ratchet_key, timestamp, device_id)

    @classmethod
    def _for_native(cls, message: bytes, message_type: int, timestamp: int,
                    device_id: int) -> DecryptionErrorMessage:
        if message_type not in (MESSAGE, MESSAGE_HE, PREKEY_MESSAGE):
            raise InvalidArgument(f"unknown native message type {message_type!r}")
        cls(None, timestamp, device_id)
        if native_message_type(message) != message_type:
            raise UnexpectedType(f"the message is not of type 0x{message_type:02x}")
        frame = parse_native(message, len(message))
        inner = frame.inner if isinstance(frame, PreKeyFrame) else frame
        key = inner.ratchet_key if isinstance(inner, PlainFrame) else None
        return cls(key, timestamp, device_id)

    def to_native_bytes(self) -> bytes:
        """The native profile's frame (tag 0x43, see the module docstring)."""
        w = Writer(NATIVE_DECRYPTION_ERROR, _NATIVE_VERSION)
        if self.ratchet_key is None:
            w.u8(0)
        else:
            w.u8(_NATIVE_HAS_KEY).fixed(self.ratchet_key)
        return w.u64(self.timestamp).u32(self.device_id).getvalue()

    @classmethod
    def from_native_bytes(cls, data: bytes) -> DecryptionErrorMessage:
        """Parse the native frame strictly; raises a
        :class:`~signalish.errors.DecodeError`."""
        if not isinstance(data, bytes):
            raise InvalidArgument("data must be bytes")
        r = Reader(data, NATIVE_DECRYPTION_ERROR, "DecryptionErrorMessage",
                   frozenset({_NATIVE_VERSION}))
        flags = r.u8("flags")
        if flags & ~_NATIVE_HAS_KEY:
            raise InvalidEncoding("DecryptionErrorMessage: unknown flag bits")
        key = r.fixed(32, "ratchet key") if flags else None
        timestamp = r.u64("timestamp")
        device_id = r.u32("device id")
        r.finish()
        return cls(key, timestamp, device_id)

    def to_bytes(self) -> bytes:
        """The protobuf, as libsignal's ``serialize()`` writes it."""
        out = b"" if self.ratchet_key is None else _bytes_field(1, b"\x05" + self.ratchet_key)
        return out + _uint_field(2, self.timestamp) + _uint_field(3, self.device_id)

    @classmethod
    def from_bytes(cls, data: bytes) -> DecryptionErrorMessage:
        """Parse a serialized DecryptionErrorMessage strictly (see the module
        docstring); raises a :class:`~signalish.errors.DecodeError`."""
        if not isinstance(data, bytes):
            raise InvalidArgument("data must be bytes")
        r = _Reader(data, "DecryptionErrorMessage")
        encoded = r.bytes_(1, 33, optional=True)
        key = None if encoded is None else _key33(encoded, "DecryptionErrorMessage")
        timestamp = r.uint64(2)
        device_id = r.uint32(3)
        r.finish()
        assert device_id is not None
        return cls(key, timestamp, device_id)


def plaintext_content(message: DecryptionErrorMessage) -> bytes:
    """``message`` wrapped in a PlaintextContent, as libsignal's
    ``PlaintextContent.from(dem).serialize()`` writes it; send it with
    message type :data:`PLAINTEXT_CONTENT` (8)."""
    body = _bytes_field(_CONTENT_FIELD, message.to_bytes())
    return bytes((PLAINTEXT_CONTENT_VERSION,)) + body + bytes((_PADDING_TERMINATOR,))


def parse_plaintext_content(data: bytes) -> DecryptionErrorMessage:
    """The DecryptionErrorMessage inside a PlaintextContent, parsed strictly
    (exactly 0xC0, Content field 8, 0x80); raises a
    :class:`~signalish.errors.DecodeError` (:class:`UnknownVersion` for a
    first byte other than 0xC0)."""
    if not isinstance(data, bytes):
        raise InvalidArgument("data must be bytes")
    if not data:
        raise TruncatedInput("PlaintextContent: empty")
    if data[0] != PLAINTEXT_CONTENT_VERSION:
        raise UnknownVersion(f"PlaintextContent: first byte 0x{data[0]:02x} is not 0xc0")
    r = _Reader(data[1:], "PlaintextContent")
    inner = r.bytes_(_CONTENT_FIELD, MAX_SIZE)
    assert inner is not None
    rest = r.rest()
    if not rest:
        raise TruncatedInput("PlaintextContent: input ends before the padding terminator")
    if rest[0] != _PADDING_TERMINATOR:
        raise InvalidEncoding("PlaintextContent: the Content is not followed by 0x80")
    if len(rest) > 1:
        raise TrailingBytes("PlaintextContent: bytes after the padding terminator")
    return DecryptionErrorMessage.from_bytes(inner)
