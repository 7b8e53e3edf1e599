"""Sealed sender's envelopes: the content a sealed message carries (USMC),
the v1 envelope to one recipient, the v2 envelope to many (as sent, and as
each recipient receives it), and unsealing either with its checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from .._errors import (
    AuthenticationError,
    DecodeError,
    InvalidArgument,
    InvalidEncoding,
    InvalidKey,
    InvalidLength,
    SealedSenderSelfSend,
    TruncatedInput,
    UnknownVersion,
)
from .._keys import IdentityKey, IdentityKeyPair
from .._primitives import (
    PrivateKey,
    PublicKey,
    RandomSource,
    aes256_ctr,
    aes256_gcm_siv_decrypt,
    aes256_gcm_siv_encrypt,
    ct_equal,
    hkdf,
    hmac_sha256,
)
from .._recovery import PLAINTEXT_CONTENT, SENDER_KEY_MESSAGE
from .._wire_v3 import (
    PREKEY_SIGNAL_MESSAGE,
    SIGNAL_MESSAGE,
    _bytes_field,
    _uint_field,
    _varint,
)
from .certificates import (
    _KEY33,
    _MAX_CERTIFICATE,
    _MAX_DEVICE_ID,
    SenderCertificate,
    ServiceId,
    _check_int,
    _decode_key,
    _encode_key,
    _Reader,
)

__all__ = ["ContentHint", "UnidentifiedSenderMessageContent", "Device", "Recipient", "SentMessage",
           "seal_v1", "seal_v2", "unseal", "unseal_and_validate", "V1_VERSION",
           "V2_RECEIVED_VERSION", "V2_SENT_VERSION", "MAX_MESSAGE_SIZE"]


V1_VERSION: Final = 0x11
V2_RECEIVED_VERSION: Final = 0x22
V2_SENT_VERSION: Final = 0x23
#: The largest sealed message (v1 or v2) and USMC this module parses.
MAX_MESSAGE_SIZE: Final = 1 << 20
_MAX_GROUP_ID: Final = 256
_MAC_SIZE: Final = 10
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

# CiphertextMessageType (the API's numbering) <-> a USMC's field 1.
_TYPE_TO_WIRE: Final = {SIGNAL_MESSAGE: 2, PREKEY_SIGNAL_MESSAGE: 1,
                        SENDER_KEY_MESSAGE: 7, PLAINTEXT_CONTENT: 8}
_WIRE_TO_TYPE: Final = {wire: api for api, wire in _TYPE_TO_WIRE.items()}


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
    bytes).  Raises InvalidArgument if the certificate is not ``sender``'s, or
    if the message would exceed :data:`MAX_MESSAGE_SIZE` (no recipient could
    open it).
    """
    _check_sender(usmc, sender)
    ephemeral = PrivateKey.generate(rng)
    e_pub, r_pub = b"\x05" + ephemeral.public.public_bytes_raw(), _encode_key(recipient)
    chain, cipher_key, mac_key = _v1_keys(ephemeral.exchange(recipient.public_key),
                                          _V1_SALT_PREFIX + r_pub + e_pub)
    static = _v1_encrypt(cipher_key, mac_key, _encode_key(sender.public))
    _, cipher_key, mac_key = _v1_keys(sender.agree(recipient.public_key), chain + static)
    body = _v1_encrypt(cipher_key, mac_key, usmc.to_bytes())
    message = (bytes((V1_VERSION,)) + _bytes_field(1, e_pub) + _bytes_field(2, static)
               + _bytes_field(3, body))
    if len(message) > MAX_MESSAGE_SIZE:
        raise InvalidArgument(f"the sealed message would be {len(message)} bytes, over "
                              f"MAX_MESSAGE_SIZE ({MAX_MESSAGE_SIZE}), which unseal refuses")
    return message


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
    repeated service id, a certificate that is not ``sender``'s, or a
    ``usmc`` whose ReceivedMessage would exceed :data:`MAX_MESSAGE_SIZE` (no
    recipient could open it).
    """
    _check_sender(usmc, sender)
    ids = [r.service_id for r in recipients] + list(excluded)
    if not recipients or len(set(ids)) != len(ids):
        raise InvalidArgument("recipients: at least one; no service id twice")
    content = usmc.to_bytes()
    received = 1 + 48 + 32 + len(content) + _TAG
    if received > MAX_MESSAGE_SIZE:
        raise InvalidArgument(f"each recipient's message would be {received} bytes, over "
                              f"MAX_MESSAGE_SIZE ({MAX_MESSAGE_SIZE}), which unseal refuses")
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
    out.append(e_pub[1:] + aes256_gcm_siv_encrypt(k, bytes(12), content, b""))
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
        1..127 distinct per recipient, the reserved bit 0x4000 clear, a body
        (E and the ciphertext) of 48 bytes or more whose ReceivedMessage (49
        bytes more) fits :data:`MAX_MESSAGE_SIZE`.  Time and memory are linear
        in ``data``.  Raises a DecodeError."""
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
        seen: set[ServiceId] = set()  # a set: a list made this quadratic (found by review)
        for _ in range(r.varint(len(data))):
            service_id = ServiceId.from_fixed_width(r.raw(17))
            if service_id in seen:
                raise InvalidEncoding("SentMessage: a service id appears twice")
            seen.add(service_id)
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
        if 1 + 48 + len(shared) > MAX_MESSAGE_SIZE:
            raise InvalidLength("SentMessage: body too long (each ReceivedMessage would "
                                "exceed MAX_MESSAGE_SIZE)")
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
    try:
        # Parsed before AT is checked (AT names the sender, whom only the
        # USMC names): an envelope that does not parse is not known to be
        # authentic, so it fails as a forgery does, whatever its plaintext.
        usmc = UnidentifiedSenderMessageContent.from_bytes(plaintext)
    except (DecodeError, InvalidKey):
        raise AuthenticationError(_FAILED) from None
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
