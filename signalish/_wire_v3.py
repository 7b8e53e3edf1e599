"""libsignal protocol version 3 messages (libsignal's wire.proto, public).

::

    SignalMessage       version || protobuf {1 ratchet_key, 2 counter, 3 previous_counter,
                                              4 ciphertext} || MAC (8)
    PreKeySignalMessage version || protobuf {1 pre_key_id?, 2 base_key, 3 identity_key,
                                              4 message, 5 registration_id, 6 signed_pre_key_id}

PreviousCounter on the wire is libsignal's: the index of the last message of
the previous sending chain, max(count, 1) - 1, where the Double Ratchet spec's
PN is the count.  This module converts at the boundary (count = wire value + 1
when reading), so the ratchet keeps the spec's meaning.  The one chain that
ends with no message is the step-0 chain of libsignal's ratchet start, which
nobody sends on; the ratchet reads its announced 0 as a count of 0.

The version byte is (message version << 4) | sender's current version;
signalish writes (3 << 4) | 4 = 0x34 as libsignal 0.72.1 does.  It accepts
0x30..0x3f, the same set for both message types and for the SignalMessage
inside a PreKeySignalMessage: what libsignal-client 0.72.1 decrypts, checked
byte value by byte value (tests/interop/test_version_bytes.py).  libsignal
reads only the high nibble: below 3 is "too old", 5 and up "unrecognized",
and 4 (protocol version 4) fails in a version 3 session (a PreKeySignalMessage
without the Kyber fields is refused as it is parsed, a SignalMessage when it
is decrypted); the low nibble is ignored.  MAC = HMAC-SHA256(mac key, sender
identity (33) || receiver identity (33) || version || protobuf)[:8], over the
version byte as received.  Message keys: HKDF-SHA256(salt none, IKM = message
key seed, info "WhisperMessageKeys", 80) -> AES-256-CBC key (32) || MAC key
(32) || IV (16).

Parsing is canonical: fields in ascending tag order exactly as libsignal
writes them, each at most once, minimal varints, no unknown fields, so no
two byte strings decode to the same message, except for the low nibble of
the version byte.  A SignalMessage's version byte is under its MAC; a
PreKeySignalMessage's outer one is not (like its registration id), so the 16
copies that differ only there all decrypt, to the same plaintext.
"""

from __future__ import annotations

import hmac
from typing import Final

from ._errors import (
    AuthenticationError,
    InvalidEncoding,
    InvalidLength,
    TrailingBytes,
    TruncatedInput,
    UnknownVersion,
    UnsupportedByProfile,
)
from ._keys import IdentityKey
from ._primitives import (
    PublicKey,
    aes256_cbc_decrypt,
    aes256_cbc_encrypt,
    hmac_sha256,
)
from ._initial import InitialHeader
from ._ratchet import Header, Sending
from ._spqr_kdf import message_keys
from ._wire import InitialMessage

__all__ = ["V3Frame", "V3PreKeyFrame", "V3Wire", "V3_WIRE", "seal", "parse_v3",
           "prekey_message_v3", "message_type_v3", "SIGNAL_MESSAGE", "PREKEY_SIGNAL_MESSAGE"]

VERSION: Final = 0x34
#: Protocol version 4 (libsignal 0.73 and later; ``_wire_v4``).
VERSION_4: Final = 0x44
#: The Kyber ciphertext of a version 4 PreKeySignalMessage: 0x08 || 1568 bytes.
KYBER_CIPHERTEXT_SIZE: Final = 1 + 1568
#: The largest SPQR message (SignalMessage field 5) a version 4 parser takes.
MAX_PQ_RATCHET: Final = 4096
#: Version 4's field 6: sender service id (17) || device (1) || recipient
#: service id (17) || device (1) (libsignal 0.92 and later).
ADDRESSES_SIZE: Final = 36
MAC_SIZE: Final = 8
SIGNAL_MESSAGE: Final = 2  # libsignal's CiphertextMessageType.Whisper
PREKEY_SIGNAL_MESSAGE: Final = 3  # CiphertextMessageType.PreKey


# --- a strict protobuf subset: varint (wire type 0) and bytes (wire type 2) ---


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _uint_field(tag: int, value: int) -> bytes:
    return bytes((tag << 3,)) + _varint(value)


def _bytes_field(tag: int, value: bytes) -> bytes:
    return bytes((tag << 3 | 2,)) + _varint(len(value)) + value


class _ProtoReader:
    """Reads the fields of one message in ascending tag order."""

    __slots__ = ("_data", "_pos", "_what", "_last")

    def __init__(self, data: bytes, what: str) -> None:
        self._data, self._pos, self._what, self._last = data, 0, what, 0

    def _read_varint(self, limit: int, max_shift: int = 35) -> int:
        """A minimal varint of at most ``max_shift // 7 + 1`` bytes, at most
        ``limit``."""
        value = shift = 0
        start = self._pos
        while True:
            if self._pos >= len(self._data):
                raise TruncatedInput(f"{self._what}: input ends inside a varint")
            byte = self._data[self._pos]
            self._pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
            if shift > max_shift:
                raise InvalidEncoding(f"{self._what}: varint too long")
        if self._pos - start > 1 and byte == 0:
            raise InvalidEncoding(f"{self._what}: varint not minimally encoded")
        if value > limit:
            raise InvalidEncoding(f"{self._what}: value out of range")
        return value

    def _field(self, tag: int, wire_type: int, optional: bool) -> bool:
        if self._pos >= len(self._data):
            if optional:
                return False
            raise TruncatedInput(f"{self._what}: field {tag} missing")
        key = self._data[self._pos]
        if key >> 3 != tag:
            if optional and key >> 3 > tag and key & 7 in (0, 2):
                return False
            raise InvalidEncoding(f"{self._what}: expected field {tag}, found key 0x{key:02x}")
        if key & 7 != wire_type:
            raise InvalidEncoding(f"{self._what}: field {tag} has wire type {key & 7}")
        self._pos += 1
        return True

    def uint32(self, tag: int, optional: bool = False) -> int | None:
        if not self._field(tag, 0, optional):
            return None
        return self._read_varint(0xFFFFFFFF)

    def bytes_(self, tag: int, max_len: int, optional: bool = False) -> bytes | None:
        if not self._field(tag, 2, optional):
            return None
        length = self._read_varint(max_len)
        end = self._pos + length
        if end > len(self._data):
            raise TruncatedInput(f"{self._what}: input ends inside field {tag}")
        value = self._data[self._pos:end]
        self._pos = end
        return value

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise TrailingBytes(f"{self._what}: unexpected bytes after the last field")


def _key33(data: bytes, what: str) -> bytes:
    if len(data) != 33 or data[0] != 0x05:
        raise InvalidEncoding(f"{what}: a key is 33 bytes starting 0x05")
    return data[1:]


# --- SignalMessage --------------------------------------------------------------


class V3Frame:
    """A parsed SignalMessage (of protocol version 3 or 4)."""

    __slots__ = ("ratchet_key", "pn", "n", "ciphertext", "mac", "signed", "pq_ratchet",
                 "addresses")

    def __init__(self, ratchet_key: bytes, pn: int, n: int, ciphertext: bytes, mac: bytes,
                 signed: bytes, pq_ratchet: bytes | None = None,
                 addresses: bytes | None = None) -> None:
        self.ratchet_key = ratchet_key
        self.pn = pn
        self.n = n
        self.ciphertext = ciphertext
        self.mac = mac
        #: version byte || protobuf: what the MAC covers after the identities.
        self.signed = signed
        #: Version 4's field 5, the SPQR message, as received (covered by the
        #: MAC; a session with SPQR reads it, signalish._spqr).
        self.pq_ratchet = pq_ratchet
        #: Version 4's field 6, the sender's and recipient's addresses (36
        #: bytes, covered by the MAC; read, not checked: signalish addresses
        #: are the application's strings, not service ids).
        self.addresses = addresses

    @property
    def header(self) -> Header:
        return Header(self.ratchet_key, self.pn, self.n)

    def open_header(self, header_key: bytes) -> Header | None:
        return None

    def open(self, mk: bytes, identities: bytes, salt: bytes | None = None) -> bytes:
        """Check the MAC (constant time) and decrypt.  ``identities`` is the
        sender's then the receiver's 33-byte identity key; ``salt`` the SPQR
        message key of a session with SPQR (the Triple Ratchet's
        KDF_HYBRID, signalish._spqr_kdf.message_keys)."""
        cipher_key, mac_key, iv = message_keys(mk, salt)
        expected = hmac_sha256(mac_key, identities + self.signed)[:MAC_SIZE]
        if not hmac.compare_digest(expected, self.mac):
            raise AuthenticationError("decryption failed")
        return aes256_cbc_decrypt(cipher_key, iv, self.ciphertext)


def seal(mk: bytes, ratchet_key: bytes, pn: int, n: int, plaintext: bytes,
         identities: bytes, version: int | None = None, pq_ratchet: bytes | None = None,
         salt: bytes | None = None, addresses: bytes | None = None) -> bytes:
    """A SignalMessage, byte for byte as libsignal writes it (version byte
    ``VERSION`` unless given); with SPQR, its message ``pq_ratchet`` (field
    5) and key (``salt``), and version 4's ``addresses`` (field 6)."""
    cipher_key, mac_key, iv = message_keys(mk, salt)
    signed = signal_message_body(ratchet_key, pn, n,
                                 aes256_cbc_encrypt(cipher_key, iv, plaintext), version,
                                 pq_ratchet, addresses)
    return signed + hmac_sha256(mac_key, identities + signed)[:MAC_SIZE]


def signal_message_body(ratchet_key: bytes, pn: int, n: int, ciphertext: bytes,
                        version: int | None = None, pq_ratchet: bytes | None = None,
                        addresses: bytes | None = None) -> bytes:
    """Version byte and protobuf of a SignalMessage (what the MAC covers after
    the identities); ``pn`` is the spec's count."""
    body = (bytes((VERSION if version is None else version,)) + _bytes_field(1, b"\x05" + ratchet_key)
            + _uint_field(2, n) + _uint_field(3, max(pn, 1) - 1) + _bytes_field(4, ciphertext))
    if pq_ratchet is not None:
        body += _bytes_field(5, pq_ratchet)
    if addresses is not None:
        body += _bytes_field(6, addresses)
    return body


def _check_version(data: bytes, what: str, protocol: int = 3) -> None:
    """libsignal reads only the high nibble, the message version."""
    if not data:
        raise TruncatedInput(f"{what}: empty")
    if data[0] >> 4 != protocol:
        raise UnknownVersion(
            f"{what}: version byte 0x{data[0]:02x} is not protocol version {protocol}")


def _bytes(r: _ProtoReader, tag: int, max_len: int) -> bytes:
    value = r.bytes_(tag, max_len)
    assert value is not None
    return value


def _parse_signal(data: bytes, max_ciphertext: int, protocol: int = 3) -> V3Frame:
    _check_version(data, "SignalMessage", protocol)
    if len(data) < 1 + MAC_SIZE:
        raise TruncatedInput("SignalMessage: shorter than version and MAC")
    body = data[1:-MAC_SIZE]
    r = _ProtoReader(body, "SignalMessage")
    key = _key33(_bytes(r, 1, 33), "SignalMessage")
    n, pn = r.uint32(2), r.uint32(3)
    ciphertext = _bytes(r, 4, max_ciphertext)
    pq_ratchet = addresses = None
    if protocol >= 4:
        pq_ratchet = r.bytes_(5, MAX_PQ_RATCHET, optional=True)
        addresses = r.bytes_(6, ADDRESSES_SIZE, optional=True)
        if addresses is not None and len(addresses) != ADDRESSES_SIZE:
            raise InvalidLength("SignalMessage: the addresses field is not 36 bytes")
    r.finish()
    assert n is not None and pn is not None
    if not ciphertext or len(ciphertext) % 16:
        raise InvalidLength("SignalMessage: ciphertext is not a whole number of AES blocks")
    return V3Frame(key, pn + 1, n, ciphertext, data[-MAC_SIZE:], data[:-MAC_SIZE], pq_ratchet,
                   addresses)


# --- PreKeySignalMessage -----------------------------------------------------------


class V3PreKeyFrame(InitialMessage):
    """A parsed PreKeySignalMessage (its registration id is not authenticated)."""

    __slots__ = ()


def prekey_message_v3(header: InitialHeader, registration_id: int, message: bytes,
                      version: int | None = None) -> bytes:
    """A PreKeySignalMessage (version byte ``VERSION`` unless given), with
    the Kyber prekey id and ciphertext (fields 7 and 8) when the header has
    a KEM part (protocol version 4 requires one; version 3 has none)."""
    version = VERSION if version is None else version
    body = b""
    if header.one_time_prekey_id is not None:
        body += _uint_field(1, header.one_time_prekey_id)
    body += _bytes_field(2, b"\x05" + header.base_key.public_bytes_raw())
    body += _bytes_field(3, b"\x05" + header.identity_key.public_bytes_raw())
    body += _bytes_field(4, message)
    body += _uint_field(5, registration_id) + _uint_field(6, header.signed_prekey_id)
    if header.kem_prekey_id is not None and header.kem_ciphertext is not None:
        body += _uint_field(7, header.kem_prekey_id)
        body += _bytes_field(8, b"\x08" + header.kem_ciphertext)
    return bytes((version,)) + body


def message_type_v3(data: bytes, protocol: int = 3) -> int:
    """2 for a SignalMessage, 3 for a PreKeySignalMessage (libsignal's
    CiphertextMessageType), read from the first protobuf key."""
    _check_version(data, "message", protocol)
    if len(data) < 2:
        raise TruncatedInput("message: no protobuf after the version byte")
    if data[1] == 0x0A:
        return SIGNAL_MESSAGE
    if data[1] in (0x08, 0x12):
        return PREKEY_SIGNAL_MESSAGE
    raise InvalidEncoding(f"message: unexpected first field key 0x{data[1]:02x}")


def parse_v3(data: bytes, max_plaintext: int, protocol: int = 3) -> V3Frame | V3PreKeyFrame:
    """Parse either message type of protocol version ``protocol`` (3 or 4),
    strictly."""
    max_ciphertext = max_plaintext + 16
    if message_type_v3(data, protocol) == SIGNAL_MESSAGE:
        return _parse_signal(data, max_ciphertext, protocol)
    r = _ProtoReader(data[1:], "PreKeySignalMessage")
    one_time = r.uint32(1, optional=True)
    base_key = PublicKey.from_public_bytes(_key33(_bytes(r, 2, 33), "PreKeySignalMessage"))
    identity = IdentityKey(PublicKey.from_public_bytes(
        _key33(_bytes(r, 3, 33), "PreKeySignalMessage")))
    inner_limit = max_ciphertext + 64 + (MAX_PQ_RATCHET + 8 + ADDRESSES_SIZE + 2 if protocol >= 4 else 0)
    inner = _parse_signal(_bytes(r, 4, inner_limit), max_ciphertext, protocol)
    registration_id, signed = r.uint32(5), r.uint32(6)
    kyber_id = kyber_ciphertext = None
    if protocol >= 4:
        kyber_id = r.uint32(7)
        kyber = _bytes(r, 8, KYBER_CIPHERTEXT_SIZE)
        if len(kyber) != KYBER_CIPHERTEXT_SIZE or kyber[0] != 0x08:
            raise InvalidEncoding("PreKeySignalMessage: the Kyber ciphertext is 0x08 || 1568 bytes")
        kyber_ciphertext = kyber[1:]
    r.finish()
    assert registration_id is not None and signed is not None
    header = InitialHeader(identity, base_key, signed, one_time, kyber_id, kyber_ciphertext)
    return V3PreKeyFrame(header, inner, registration_id)


class V3Wire:
    """libsignal protocol version 3's wire format (see the module docstring)."""

    __slots__ = ()
    name = "libsignal_v3"
    header_encryption = False

    def parse(self, data: bytes, max_plaintext: int) -> V3Frame | V3PreKeyFrame:
        return parse_v3(data, max_plaintext)

    def seal(self, sending: Sending, plaintext: bytes, ad: bytes) -> bytes:
        (ratchet_key, pn, n), mk, hk = sending
        if hk is not None:
            raise UnsupportedByProfile("libsignal_v3 has no header encryption")
        return seal(mk, ratchet_key, pn, n, plaintext, ad)

    def initial_message(self, header: InitialHeader, registration_id: int,
                        message: bytes) -> bytes:
        if header.kem_prekey_id is not None:
            raise UnsupportedByProfile("a version 3 PreKeySignalMessage has no Kyber prekey")
        return prekey_message_v3(header, registration_id, message)

    def message_type(self, data: bytes) -> int:
        return message_type_v3(data)

    def associated_data(self, session_ad: bytes, local: bytes, remote: bytes,
                        sending: bool) -> bytes:
        """The identities the MAC covers, sender first."""
        return local + remote if sending else remote + local


V3_WIRE: Final = V3Wire()
