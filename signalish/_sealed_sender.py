"""Sealed sender: libsignal's certificates and its v1 and v2 envelopes.

Sealed sender hides the sender of a message from the server.  The sender
wraps a *certificate* that the server issued to it (naming its UUID, device
and identity key, signed by the server, whose key a trust root signed) with
the message, and encrypts both to the recipient's identity key.  The
recipient decrypts, checks the certificate against its trust roots and
learns who sent the message.  Byte for byte as libsignal-client (0.72.1, 0.90.0, 0.103.0)
(docs/sealed_sender.md has the layouts, the cryptography and how each part
was confirmed black-box).

Layouts (protobuf fields by number)::

    ServerCertificate   {1 certificate = {1 key_id (uint32), 2 key (33)}, 2 signature (64)}
    SenderCertificate   {1 certificate = {1 e164 (string)?, 2 device_id, 3 expiration
                          (fixed64, ms), 4 identity_key (33), 5 signer (a whole
                          ServerCertificate), 6 uuid (string)}, 2 signature (64)}
    USMC                {1 type, 2 sender certificate, 3 contents, 4 content hint
                          (left out when 0), 5 group id?}
    v1 message          0x11 || {1 ephemeral (33), 2 encrypted static (43),
                                 3 encrypted USMC (len + 10)}
    v2 SentMessage      0x23 || varint count || count x recipient || E (32) || body
      recipient         service id (17) || (device_id varint || u16 BE: registration
                          id (14 bits), 0x4000 reserved, 0x8000 another device
                          follows)+ || C (32) || AT (16)
      excluded          service id (17) || 0x00
    v2 ReceivedMessage  0x22 || C (32) || AT (16) || E (32) || body

The trust root signs the server certificate's field 1 and the server key the
sender certificate's field 1, XEdDSA with the sign bit in byte 63 (libsignal's
form).  A USMC's type is libsignal's CiphertextMessageType in this API (2
SignalMessage, 3 PreKeySignalMessage, 7 SenderKeyMessage, 8 PlaintextContent)
and 2, 1, 7, 8 on the wire.

Parsing is canonical (fields in ascending order, each once, minimal varints,
no unknown fields, exact version bytes 0x11, 0x22 and 0x23): what libsignal
writes parses, and no two byte strings decode to one value.  Anything that
fails cryptographically raises :class:`~signalish.errors.AuthenticationError`
with one fixed message.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Literal
from uuid import UUID

from ._errors import (
    AuthenticationError,
    CertificateExpired,
    InvalidArgument,
    InvalidCertificate,
    InvalidEncoding,
    InvalidKey,
    InvalidLength,
    SealedSenderSelfSend,
    TruncatedInput,
    UnknownVersion,
)
from ._keys import IdentityKey, IdentityKeyPair
from ._primitives import (
    PrivateKey,
    PublicKey,
    RandomSource,
    aes256_ctr,
    aes256_gcm_siv_decrypt,
    aes256_gcm_siv_encrypt,
    ct_equal,
    hkdf,
    hmac_sha256,
    xeddsa_verify,
)
from ._recovery import PLAINTEXT_CONTENT, SENDER_KEY_MESSAGE
from ._wire_v3 import (
    PREKEY_SIGNAL_MESSAGE,
    SIGNAL_MESSAGE,
    _bytes_field,
    _ProtoReader,
    _uint_field,
    _varint,
)

__all__ = [
    "ServiceId", "ServerCertificate", "SenderCertificate", "ContentHint",
    "UnidentifiedSenderMessageContent", "Device", "Recipient", "SentMessage",
    "seal_v1", "seal_v2", "unseal", "unseal_and_validate",
    "V1_VERSION", "V2_RECEIVED_VERSION", "V2_SENT_VERSION", "MAX_MESSAGE_SIZE",
]


V1_VERSION: Final = 0x11
V2_RECEIVED_VERSION: Final = 0x22
V2_SENT_VERSION: Final = 0x23
#: The largest sealed message (v1 or v2) and USMC this module parses.
MAX_MESSAGE_SIZE: Final = 1 << 20
_MAX_CERTIFICATE: Final = 512
_MAX_GROUP_ID: Final = 256
_MAC_SIZE: Final = 10
_KEY33: Final = 33
_SIGNATURE: Final = 64
_MAX_DEVICE_ID: Final = 127
_MAX_REGISTRATION_ID: Final = 0x3FFF
_MORE_DEVICES: Final = 0x8000
_RESERVED_BIT: Final = 0x4000
_TAG: Final = 16
_FAILED: Final = "sealed sender message did not decrypt"

_LABEL_R: Final = b"Sealed Sender v2: r (2023-08)"
_LABEL_K: Final = b"Sealed Sender v2: K"
_LABEL_DH: Final = b"Sealed Sender v2: DH"
_LABEL_DH_SENDER: Final = b"Sealed Sender v2: DH-sender"
_V1_SALT_PREFIX: Final = b"UnidentifiedDelivery"

_UUID_TEXT: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_E164_TEXT: Final = re.compile(r"\+[0-9]{1,15}")

# CiphertextMessageType (the API's numbering) <-> a USMC's field 1.
_TYPE_TO_WIRE: Final = {SIGNAL_MESSAGE: 2, PREKEY_SIGNAL_MESSAGE: 1,
                        SENDER_KEY_MESSAGE: 7, PLAINTEXT_CONTENT: 8}
_WIRE_TO_TYPE: Final = {wire: api for api, wire in _TYPE_TO_WIRE.items()}


class _Reader(_ProtoReader):
    """:class:`~signalish._wire_v3._ProtoReader` plus fixed64 and ASCII strings."""

    __slots__ = ()

    def fixed64(self, tag: int) -> int:
        self._field(tag, 1, optional=False)
        end = self._pos + 8
        if end > len(self._data):
            raise TruncatedInput(f"{self._what}: input ends inside field {tag}")
        value = int.from_bytes(self._data[self._pos:end], "little")
        self._pos = end
        return value

    def varint(self, limit: int) -> int:
        return self._read_varint(limit)

    def raw(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise TruncatedInput(f"{self._what}: input ends early")
        value = self._data[self._pos:end]
        self._pos = end
        return value

    def rest(self) -> bytes:
        value = self._data[self._pos:]
        self._pos = len(self._data)
        return value

    def need(self, tag: int, max_len: int) -> bytes:
        value = self.bytes_(tag, max_len)
        assert value is not None
        return value

    def text(self, tag: int, pattern: re.Pattern[str], max_len: int,
             optional: bool = False) -> str | None:
        raw = self.bytes_(tag, max_len, optional)
        if raw is None:
            return None
        value = raw.decode("ascii", "replace")
        if not pattern.fullmatch(value):
            raise InvalidEncoding(f"{self._what}: field {tag} is not in its format")
        return value


def _fixed64_field(tag: int, value: int) -> bytes:
    return bytes((tag << 3 | 1,)) + value.to_bytes(8, "little")


def _decode_key(data: bytes, what: str) -> IdentityKey:
    if len(data) != _KEY33 or data[0] != 0x05:
        raise InvalidEncoding(f"{what}: a key is 33 bytes starting 0x05")
    return IdentityKey.from_public_bytes(data[1:])


def _encode_key(key: IdentityKey) -> bytes:
    return b"\x05" + key.public_bytes_raw()


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgument(f"{name} must be an integer in {low}..{high}")


def _canonical(data: bytes, value_bytes: bytes, what: str) -> None:
    if value_bytes != data:
        raise InvalidEncoding(f"{what}: not in canonical form")


# --- service ids -----------------------------------------------------------------


def _uuid(value: str | UUID) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value)
    except (TypeError, ValueError, AttributeError):
        raise InvalidArgument("not a UUID") from None


@dataclass(frozen=True, slots=True)
class ServiceId:
    """A Signal account's ACI or PNI.  ``str()`` is libsignal's service id
    string (``"<uuid>"`` for an ACI, ``"PNI:<uuid>"`` for a PNI)."""

    kind: Literal["aci", "pni"]
    uuid: UUID

    def __post_init__(self) -> None:
        if self.kind not in ("aci", "pni") or not isinstance(self.uuid, UUID):
            raise InvalidArgument("a ServiceId is ('aci' | 'pni', UUID)")

    @classmethod
    def aci(cls, value: str | UUID) -> ServiceId:
        return cls("aci", _uuid(value))

    @classmethod
    def pni(cls, value: str | UUID) -> ServiceId:
        return cls("pni", _uuid(value))

    def fixed_width(self) -> bytes:
        """17 bytes: 0x00 (ACI) or 0x01 (PNI), then the UUID."""
        return bytes((0 if self.kind == "aci" else 1,)) + self.uuid.bytes

    @classmethod
    def from_fixed_width(cls, data: bytes) -> ServiceId:
        """Inverse of :meth:`fixed_width`; raises a DecodeError."""
        if len(data) != 17:
            raise InvalidLength("ServiceId: 17 bytes")
        if data[0] > 1:
            raise InvalidEncoding(f"ServiceId: unknown kind byte 0x{data[0]:02x}")
        return cls("aci" if data[0] == 0 else "pni", UUID(bytes=bytes(data[1:])))

    def __str__(self) -> str:
        return str(self.uuid) if self.kind == "aci" else f"PNI:{self.uuid}"


# --- certificates ----------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _signed_by(u: bytes, data: bytes, signature: bytes) -> bool:
    """XEdDSA verification in libsignal's form, remembered: a recipient sees
    the same server certificate on every sealed message and the same sender
    certificate on every message of that sender until it expires, and each
    verification costs an Ed25519 verification (about 150 us here).  Only
    public values go in, and the answer depends on nothing else.  Expiry is
    checked on every call, outside this."""
    return xeddsa_verify(u, data, signature, "libsignal")


def _signed(data: bytes, what: str) -> tuple[bytes, bytes]:
    """A certificate's two fields: the signed bytes and the 64-byte signature."""
    r = _Reader(data, what)
    body, signature = r.need(1, _MAX_CERTIFICATE), r.need(2, _SIGNATURE)
    r.finish()
    if len(signature) != _SIGNATURE:
        raise InvalidLength(f"{what}: signature is 64 bytes")
    return body, signature


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    """The server's signing key (``key``, with its ``key_id``), signed by a
    trust root.  Create with :meth:`create`, parse with :meth:`from_bytes`."""

    key_id: int
    key: IdentityKey
    signature: bytes

    def __post_init__(self) -> None:
        _check_int("key_id", self.key_id, 0, 0xFFFFFFFF)
        if not isinstance(self.key, IdentityKey):
            raise InvalidArgument("key is an IdentityKey")
        if not isinstance(self.signature, bytes) or len(self.signature) != _SIGNATURE:
            raise InvalidArgument("signature is 64 bytes")

    @classmethod
    def create(cls, key_id: int, key: IdentityKey, trust_root: IdentityKeyPair) -> ServerCertificate:
        """Sign ``key`` with ``trust_root`` (what a service operator does once)."""
        _check_int("key_id", key_id, 0, 0xFFFFFFFF)
        return cls(key_id, key, trust_root.sign(_server_data(key_id, key)))

    def certificate_data(self) -> bytes:
        """The signed bytes (field 1)."""
        return _server_data(self.key_id, self.key)

    def verify(self, trust_root: IdentityKey) -> bool:
        """Whether ``trust_root`` signed this certificate."""
        return _signed_by(trust_root.public_bytes_raw(), self.certificate_data(), self.signature)

    def to_bytes(self) -> bytes:
        return _bytes_field(1, self.certificate_data()) + _bytes_field(2, self.signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> ServerCertificate:
        """Parse strictly; raises a DecodeError or InvalidKey.  Checks no signature."""
        body, signature = _signed(data, "ServerCertificate")
        b = _Reader(body, "ServerCertificate data")
        key_id = b.uint32(1)
        key = _decode_key(b.need(2, _KEY33), "ServerCertificate")
        b.finish()
        assert key_id is not None
        cert = cls(key_id, key, signature)
        _canonical(data, cert.to_bytes(), "ServerCertificate")
        return cert


def _server_data(key_id: int, key: IdentityKey) -> bytes:
    return _uint_field(1, key_id) + _bytes_field(2, _encode_key(key))


@dataclass(frozen=True, slots=True)
class SenderCertificate:
    """What the server says about a sender: its UUID (canonical lowercase
    text), optional E.164 number, device id (1..127), identity key and an
    expiration (ms since the epoch, valid up to and including it), signed by
    the key in ``signer``.  Create with :meth:`create`, parse with
    :meth:`from_bytes`, check with :meth:`validate`."""

    sender_uuid: str
    sender_e164: str | None
    sender_device_id: int
    identity_key: IdentityKey
    expiration: int
    signer: ServerCertificate
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.sender_uuid, str) or not _UUID_TEXT.fullmatch(self.sender_uuid):
            raise InvalidArgument("sender_uuid is a lowercase UUID string")
        if self.sender_e164 is not None and (
                not isinstance(self.sender_e164, str) or not _E164_TEXT.fullmatch(self.sender_e164)):
            raise InvalidArgument("sender_e164 is None or '+' and 1 to 15 digits")
        _check_int("sender_device_id", self.sender_device_id, 1, _MAX_DEVICE_ID)
        _check_int("expiration", self.expiration, 0, (1 << 64) - 1)
        if not isinstance(self.identity_key, IdentityKey) or not isinstance(self.signer,
                                                                            ServerCertificate):
            raise InvalidArgument("identity_key is an IdentityKey, signer a ServerCertificate")
        if not isinstance(self.signature, bytes) or len(self.signature) != _SIGNATURE:
            raise InvalidArgument("signature is 64 bytes")

    @classmethod
    def create(cls, *, sender_uuid: str, sender_e164: str | None, sender_device_id: int,
               identity_key: IdentityKey, expiration: int, signer: ServerCertificate,
               server_key: IdentityKeyPair) -> SenderCertificate:
        """Issue a certificate (the server's job); ``server_key`` must be the
        key that ``signer`` certifies.  Raises InvalidArgument."""
        if server_key.public != signer.key:
            raise InvalidArgument("server_key is not the key in signer")
        draft = cls(sender_uuid, sender_e164, sender_device_id, identity_key, expiration,
                    signer, bytes(_SIGNATURE))
        return cls(sender_uuid, sender_e164, sender_device_id, identity_key, expiration,
                   signer, server_key.sign(draft.certificate_data()))

    def certificate_data(self) -> bytes:
        """The signed bytes (field 1)."""
        e164 = b"" if self.sender_e164 is None else _bytes_field(1, self.sender_e164.encode())
        return (e164 + _uint_field(2, self.sender_device_id)
                + _fixed64_field(3, self.expiration)
                + _bytes_field(4, _encode_key(self.identity_key))
                + _bytes_field(5, self.signer.to_bytes())
                + _bytes_field(6, self.sender_uuid.encode()))

    def to_bytes(self) -> bytes:
        return _bytes_field(1, self.certificate_data()) + _bytes_field(2, self.signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> SenderCertificate:
        """Parse strictly; raises a DecodeError or InvalidKey.  Checks no
        signature: call :meth:`validate`."""
        body, signature = _signed(data, "SenderCertificate")
        b = _Reader(body, "SenderCertificate data")
        e164 = b.text(1, _E164_TEXT, 16, optional=True)
        device = b.uint32(2)
        assert device is not None
        if not 1 <= device <= _MAX_DEVICE_ID:
            raise InvalidEncoding("SenderCertificate: device id out of range")
        expiration = b.fixed64(3)
        key = _decode_key(b.need(4, _KEY33), "SenderCertificate")
        signer = ServerCertificate.from_bytes(b.need(5, _MAX_CERTIFICATE))
        sender_uuid = b.text(6, _UUID_TEXT, 36)
        b.finish()
        assert sender_uuid is not None
        cert = cls(sender_uuid, e164, device, key, expiration, signer, signature)
        _canonical(data, cert.to_bytes(), "SenderCertificate")
        return cert

    def validate(self, trust_roots: IdentityKey | Iterable[IdentityKey], now: int) -> None:
        """Check the chain and the time: one of ``trust_roots`` signed the
        server certificate, its key signed this one, and ``now`` (ms) is at
        most :attr:`expiration` (as libsignal: valid at ``now == expiration``).

        Raises :class:`InvalidCertificate`, or :class:`CertificateExpired` for
        an authentic certificate past its expiration."""
        roots = [trust_roots] if isinstance(trust_roots, IdentityKey) else list(trust_roots)
        # Every root is tried, as libsignal does, so the time taken does not
        # say which one matched.
        trusted = [self.signer.verify(root) for root in roots]
        if not any(trusted) or not _signed_by(self.signer.key.public_bytes_raw(),
                                              self.certificate_data(), self.signature):
            raise InvalidCertificate("sender certificate does not chain to a trusted root")
        if now > self.expiration:
            raise CertificateExpired("sender certificate has expired")


# --- UnidentifiedSenderMessageContent ------------------------------------------------


class ContentHint(IntEnum):
    """What a recipient should do if the contents do not decrypt (libsignal's
    ContentHint); other values pass through as plain ints."""

    DEFAULT = 0
    RESENDABLE = 1
    IMPLICIT = 2


@dataclass(frozen=True, slots=True)
class UnidentifiedSenderMessageContent:
    """The plaintext of a sealed message (USMC): a message of
    ``message_type`` (2, 3, 7 or 8, libsignal's CiphertextMessageType), the
    sender's certificate, a content hint (uint32) and an optional group id
    (1 to 256 bytes)."""

    message_type: int
    sender: SenderCertificate
    contents: bytes
    content_hint: int = ContentHint.DEFAULT
    group_id: bytes | None = None

    def __post_init__(self) -> None:
        if self.message_type not in _TYPE_TO_WIRE:
            raise InvalidArgument("message_type is 2, 3, 7 or 8 (CiphertextMessageType)")
        if not isinstance(self.sender, SenderCertificate) or not isinstance(self.contents, bytes):
            raise InvalidArgument("sender is a SenderCertificate, contents bytes")
        _check_int("content_hint", self.content_hint, 0, 0xFFFFFFFF)
        if self.group_id is not None and (not isinstance(self.group_id, bytes)
                                          or not 1 <= len(self.group_id) <= _MAX_GROUP_ID):
            raise InvalidArgument(f"group_id is None or 1..{_MAX_GROUP_ID} bytes")

    def to_bytes(self) -> bytes:
        out = (_uint_field(1, _TYPE_TO_WIRE[self.message_type])
               + _bytes_field(2, self.sender.to_bytes()) + _bytes_field(3, self.contents))
        if self.content_hint:
            out += _uint_field(4, self.content_hint)
        if self.group_id is not None:
            out += _bytes_field(5, self.group_id)
        return out

    @classmethod
    def from_bytes(cls, data: bytes) -> UnidentifiedSenderMessageContent:
        """Parse strictly; raises a DecodeError or InvalidKey."""
        if len(data) > MAX_MESSAGE_SIZE:
            raise InvalidLength("USMC: too long")
        r = _Reader(data, "USMC")
        wire_type = r.uint32(1)
        assert wire_type is not None
        if wire_type not in _WIRE_TO_TYPE:
            raise InvalidEncoding(f"USMC: unknown message type {wire_type}")
        sender = SenderCertificate.from_bytes(r.need(2, _MAX_CERTIFICATE))
        contents = r.need(3, MAX_MESSAGE_SIZE)
        hint = r.uint32(4, optional=True)
        group_id = r.bytes_(5, _MAX_GROUP_ID, optional=True)
        r.finish()
        if hint == 0 or group_id == b"":
            raise InvalidEncoding("USMC: not in canonical form")
        return cls(_WIRE_TO_TYPE[wire_type], sender, contents,
                   ContentHint.DEFAULT if hint is None else hint, group_id)


# --- sealed sender v1 ----------------------------------------------------------------


def _v1_keys(shared: bytes, salt: bytes) -> tuple[bytes, bytes, bytes]:
    okm = hkdf(shared, salt=salt, info=b"", length=96)
    return okm[:32], okm[32:64], okm[64:]


def _v1_encrypt(cipher_key: bytes, mac_key: bytes, data: bytes) -> bytes:
    ct = aes256_ctr(cipher_key, bytes(16), data)
    return ct + hmac_sha256(mac_key, ct)[:_MAC_SIZE]


def _v1_decrypt(cipher_key: bytes, mac_key: bytes, data: bytes) -> bytes:
    ct, mac = data[:-_MAC_SIZE], data[-_MAC_SIZE:]
    if len(data) < _MAC_SIZE or not ct_equal(hmac_sha256(mac_key, ct)[:_MAC_SIZE], mac):
        raise AuthenticationError(_FAILED)
    return aes256_ctr(cipher_key, bytes(16), ct)


def _check_sender(usmc: UnidentifiedSenderMessageContent, sender: IdentityKeyPair) -> None:
    if usmc.sender.identity_key != sender.public:
        raise InvalidArgument("the sender certificate names another identity key")


def seal_v1(usmc: UnidentifiedSenderMessageContent, recipient: IdentityKey,
            sender: IdentityKeyPair, rng: RandomSource) -> bytes:
    """Sealed sender v1 (0x11) of ``usmc`` to ``recipient``'s identity key.

    An ephemeral key e gives, with HKDF over X25519(e, recipient), a chain
    key and the keys that encrypt the sender's identity key; the sender's
    identity with the recipient's, salted by that chain key and ciphertext,
    gives the keys that encrypt ``usmc`` (AES-256-CTR, HMAC-SHA256 cut to 10
    bytes).  Raises InvalidArgument if the certificate is not ``sender``'s.
    """
    _check_sender(usmc, sender)
    ephemeral = PrivateKey.generate(rng)
    e_pub, r_pub = b"\x05" + ephemeral.public.public_bytes_raw(), _encode_key(recipient)
    chain, cipher_key, mac_key = _v1_keys(ephemeral.exchange(recipient.public_key),
                                          _V1_SALT_PREFIX + r_pub + e_pub)
    static = _v1_encrypt(cipher_key, mac_key, _encode_key(sender.public))
    _, cipher_key, mac_key = _v1_keys(sender.agree(recipient.public_key), chain + static)
    body = _v1_encrypt(cipher_key, mac_key, usmc.to_bytes())
    return (bytes((V1_VERSION,)) + _bytes_field(1, e_pub) + _bytes_field(2, static)
            + _bytes_field(3, body))


def _unseal_v1(message: bytes, recipient: IdentityKeyPair) -> UnidentifiedSenderMessageContent:
    r = _Reader(message[1:], "sealed sender v1")
    e_pub = r.need(1, _KEY33)
    static = r.need(2, _KEY33 + _MAC_SIZE)
    body = r.need(3, MAX_MESSAGE_SIZE)
    r.finish()
    if len(e_pub) != _KEY33 or len(static) != _KEY33 + _MAC_SIZE or len(body) < _MAC_SIZE:
        raise InvalidLength("sealed sender v1: field of the wrong length")
    if e_pub[0] != 0x05:
        raise InvalidEncoding("sealed sender v1: a key is 33 bytes starting 0x05")
    try:
        ephemeral = _decode_key(e_pub, "sealed sender v1")
        r_pub = _encode_key(recipient.public)
        chain, cipher_key, mac_key = _v1_keys(recipient.agree(ephemeral.public_key),
                                              _V1_SALT_PREFIX + r_pub + e_pub)
        sender = _decode_key(_v1_decrypt(cipher_key, mac_key, static), "sender")
        _, cipher_key, mac_key = _v1_keys(recipient.agree(sender.public_key), chain + static)
        plaintext = _v1_decrypt(cipher_key, mac_key, body)
    except (InvalidKey, InvalidEncoding):
        raise AuthenticationError(_FAILED) from None
    usmc = UnidentifiedSenderMessageContent.from_bytes(plaintext)
    if usmc.sender.identity_key != sender:
        raise AuthenticationError(_FAILED)
    return usmc


# --- sealed sender v2 ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Device:
    """One device of a v2 recipient: device id 1..127, registration id 0..0x3FFF
    (libsignal refuses larger ones)."""

    device_id: int
    registration_id: int

    def __post_init__(self) -> None:
        _check_int("device_id", self.device_id, 1, _MAX_DEVICE_ID)
        _check_int("registration_id", self.registration_id, 0, _MAX_REGISTRATION_ID)


@dataclass(frozen=True, slots=True)
class Recipient:
    """A v2 recipient: a service id, its identity key (shared by all its
    devices) and its devices, at least one, distinct ids."""

    service_id: ServiceId
    identity_key: IdentityKey
    devices: tuple[Device, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.service_id, ServiceId) or not isinstance(self.identity_key,
                                                                        IdentityKey):
            raise InvalidArgument("a Recipient is (ServiceId, IdentityKey, devices)")
        object.__setattr__(self, "devices", tuple(self.devices))
        ids = [d.device_id for d in self.devices if isinstance(d, Device)]
        if not ids or len(ids) != len(self.devices) or len(set(ids)) != len(ids):
            raise InvalidArgument("devices: one or more Device, distinct device ids")


def _derive_v2(m: bytes) -> tuple[PrivateKey, bytes]:
    """M -> (E, K).  E's private key is the first 32 bytes of r."""
    ephemeral = PrivateKey.from_private_bytes(hkdf(m, salt=None, info=_LABEL_R, length=64)[:32])
    return ephemeral, hkdf(m, salt=None, info=_LABEL_K, length=32)


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _v2_at(sender_dh: bytes, e_pub: bytes, c: bytes, s_pub: bytes, r_pub: bytes) -> bytes:
    return hkdf(sender_dh + e_pub + c + s_pub + r_pub, salt=None, info=_LABEL_DH_SENDER,
                length=16)


def seal_v2(usmc: UnidentifiedSenderMessageContent, recipients: Sequence[Recipient],
            sender: IdentityKeyPair, rng: RandomSource, *,
            excluded: Sequence[ServiceId] = ()) -> bytes:
    """Sealed sender v2: one SentMessage (0x23) for the server to split.

    M (32 random bytes) gives the ephemeral key E and the body key K; the body
    is AES-256-GCM-SIV(K, zero nonce, ``usmc``).  Each recipient R gets
    C = M xor HKDF(X25519(E, R) || E || R) and AT = HKDF(X25519(S, R) || E ||
    C || S || R) (S the sender, keys in their 33-byte form).  ``excluded``
    lists service ids deliberately left out.  Raises InvalidArgument for a
    repeated service id or a certificate that is not ``sender``'s.
    """
    _check_sender(usmc, sender)
    ids = [r.service_id for r in recipients] + list(excluded)
    if not recipients or len(set(ids)) != len(ids):
        raise InvalidArgument("recipients: at least one; no service id twice")
    m = rng.random_bytes(32)
    ephemeral, k = _derive_v2(m)
    e_pub = b"\x05" + ephemeral.public.public_bytes_raw()
    s_pub = _encode_key(sender.public)
    out = [bytes((V2_SENT_VERSION,)), _varint(len(ids))]
    for recipient in recipients:
        r_pub = _encode_key(recipient.identity_key)
        pad = hkdf(ephemeral.exchange(recipient.identity_key.public_key) + e_pub + r_pub,
                   salt=None, info=_LABEL_DH, length=32)
        c = _xor(m, pad)
        at = _v2_at(sender.agree(recipient.identity_key.public_key), e_pub, c, s_pub, r_pub)
        out.append(recipient.service_id.fixed_width())
        for i, device in enumerate(recipient.devices):
            more = _MORE_DEVICES if i + 1 < len(recipient.devices) else 0
            out.append(_varint(device.device_id)
                       + (device.registration_id | more).to_bytes(2, "big"))
        out.append(c + at)
    for service_id in excluded:
        out.append(service_id.fixed_width() + b"\x00")
    out.append(e_pub[1:] + aes256_gcm_siv_encrypt(k, bytes(12), usmc.to_bytes(), b""))
    return b"".join(out)


class SentMessage:
    """A parsed v2 SentMessage, as a server sees it: who gets it and the
    ReceivedMessage (0x22) for each.  Parse with :meth:`from_bytes`."""

    __slots__ = ("recipients", "excluded", "_keys", "_shared")

    def __init__(self, recipients: Mapping[ServiceId, tuple[Device, ...]],
                 excluded: tuple[ServiceId, ...], keys: Mapping[ServiceId, bytes],
                 shared: bytes) -> None:
        #: Each recipient's devices, in message order.
        self.recipients: Mapping[ServiceId, tuple[Device, ...]] = recipients
        #: Service ids the sender excluded on purpose (none of them is a recipient).
        self.excluded = excluded
        self._keys = keys
        self._shared = shared

    @classmethod
    def from_bytes(cls, data: bytes) -> SentMessage:
        """Parse strictly: version 0x23, a minimal count, each service id at
        most once, at least one recipient that is not excluded, device ids
        1..127 distinct per recipient, the reserved bit 0x4000 clear, a body of
        16 to :data:`MAX_MESSAGE_SIZE` bytes.  Raises a DecodeError."""
        if not isinstance(data, bytes):
            raise InvalidArgument("data must be bytes")
        if not data:
            raise TruncatedInput("SentMessage: empty")
        if data[0] != V2_SENT_VERSION:
            raise UnknownVersion(f"SentMessage: version byte 0x{data[0]:02x}")
        r = _Reader(data[1:], "SentMessage")
        recipients: dict[ServiceId, tuple[Device, ...]] = {}
        keys: dict[ServiceId, bytes] = {}
        excluded: list[ServiceId] = []
        for _ in range(r.varint(len(data))):
            service_id = ServiceId.from_fixed_width(r.raw(17))
            if service_id in recipients or service_id in excluded:
                raise InvalidEncoding("SentMessage: a service id appears twice")
            devices: list[Device] = []
            while True:
                device_id = r.varint(_MAX_DEVICE_ID)
                if device_id == 0 and not devices:
                    break
                if device_id == 0 or any(d.device_id == device_id for d in devices):
                    raise InvalidEncoding("SentMessage: device id 0 or repeated")
                value = int.from_bytes(r.raw(2), "big")
                if value & _RESERVED_BIT:
                    raise InvalidEncoding("SentMessage: reserved registration id bit set")
                devices.append(Device(device_id, value & _MAX_REGISTRATION_ID))
                if not value & _MORE_DEVICES:
                    break
            if devices:
                recipients[service_id] = tuple(devices)
                keys[service_id] = r.raw(48)
            else:
                excluded.append(service_id)
        if not recipients:
            raise InvalidEncoding("SentMessage: no recipients")
        shared = r.rest()
        if len(shared) < 32 + _TAG:
            raise TruncatedInput("SentMessage: input ends before the body")
        if len(shared) > 32 + MAX_MESSAGE_SIZE:
            raise InvalidLength("SentMessage: body too long")
        return cls(recipients, tuple(excluded), keys, shared)

    def received_message(self, service_id: ServiceId) -> bytes:
        """The ReceivedMessage (0x22) for ``service_id``, the same for all of
        its devices.  Raises InvalidArgument if it is not a recipient."""
        key = self._keys.get(service_id)
        if key is None:
            raise InvalidArgument(f"{service_id} is not a recipient of this message")
        return bytes((V2_RECEIVED_VERSION,)) + key + self._shared

    def __repr__(self) -> str:
        return (f"SentMessage(recipients={len(self.recipients)}, "
                f"excluded={len(self.excluded)}, body={len(self._shared) - 32})")


def _unseal_v2(message: bytes, recipient: IdentityKeyPair) -> UnidentifiedSenderMessageContent:
    if len(message) < 1 + 48 + 32 + _TAG:
        raise TruncatedInput("sealed sender v2: too short")
    c, at, e_raw, body = message[1:33], message[33:49], message[49:81], message[81:]
    e_pub, r_pub = b"\x05" + e_raw, _encode_key(recipient.public)
    try:
        claimed = PublicKey.from_public_bytes(e_raw)
        pad = hkdf(recipient.agree(claimed) + e_pub + r_pub, salt=None, info=_LABEL_DH,
                   length=32)
        ephemeral, k = _derive_v2(_xor(c, pad))
        if not ct_equal(ephemeral.public.public_bytes_raw(), e_raw):
            raise AuthenticationError(_FAILED)
        plaintext = aes256_gcm_siv_decrypt(k, bytes(12), body, b"")
    except InvalidKey:
        raise AuthenticationError(_FAILED) from None
    usmc = UnidentifiedSenderMessageContent.from_bytes(plaintext)
    sender = usmc.sender.identity_key
    try:
        expected = _v2_at(recipient.agree(sender.public_key), e_pub, c, _encode_key(sender), r_pub)
    except InvalidKey:
        raise AuthenticationError(_FAILED) from None
    if not ct_equal(expected, at):
        raise AuthenticationError(_FAILED)
    return usmc


# --- opening -------------------------------------------------------------------------


def unseal(message: bytes, recipient: IdentityKeyPair) -> UnidentifiedSenderMessageContent:
    """Decrypt a v1 message (0x11) or a v2 ReceivedMessage (0x22) and
    authenticate its sender's identity key against the one in its
    certificate.  The certificate itself is *not* validated (like
    libsignal's ``sealedSenderDecryptToUsmc``): use
    :func:`unseal_and_validate` unless you validate it yourself.

    Raises a DecodeError for bad framing (UnknownVersion for another first
    byte, including a SentMessage's 0x23) and
    :class:`~signalish.errors.AuthenticationError` for anything that does
    not decrypt or authenticate.
    """
    if not isinstance(message, bytes):
        raise InvalidArgument("message must be bytes")
    if not message:
        raise TruncatedInput("sealed sender message: empty")
    if len(message) > MAX_MESSAGE_SIZE:
        raise InvalidLength("sealed sender message: too long")
    if message[0] == V1_VERSION:
        return _unseal_v1(message, recipient)
    if message[0] == V2_RECEIVED_VERSION:
        return _unseal_v2(message, recipient)
    raise UnknownVersion(f"sealed sender message: version byte 0x{message[0]:02x}")


def unseal_and_validate(message: bytes, recipient: IdentityKeyPair, *,
                        trust_roots: IdentityKey | Iterable[IdentityKey], now: int,
                        local_uuid: str | None = None,
                        local_device_id: int | None = None) -> UnidentifiedSenderMessageContent:
    """:func:`unseal`, then the receiver's checks, in libsignal's order: the
    certificate chains to one of ``trust_roots`` and has not expired at
    ``now`` (ms), then it does not name this device (``local_uuid`` and
    ``local_device_id``, both or neither) as the sender.  The E.164 number
    plays no part, as in libsignal.

    Raises what :func:`unseal` raises, :class:`InvalidCertificate`,
    :class:`CertificateExpired` and :class:`SealedSenderSelfSend`.
    """
    if (local_uuid is None) != (local_device_id is None):
        raise InvalidArgument("give both local_uuid and local_device_id, or neither")
    usmc = unseal(message, recipient)
    usmc.sender.validate(trust_roots, now)
    if (local_uuid is not None and usmc.sender.sender_uuid == local_uuid.lower()
            and usmc.sender.sender_device_id == local_device_id):
        raise SealedSenderSelfSend("sealed sender message from this device")
    return usmc
