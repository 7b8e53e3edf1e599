"""Linking a new device by QR code: the provisioning envelope.

Theory of operation (docs/linking.md has every byte, the flow drawn out, the
differences from Signal's applications and their sources):

1. The new device makes a :class:`LinkRequest`: a fresh X25519 key pair and a
   provisioning id (a UUID, which the application also uses as the address of
   a mailbox on its server).  It shows :meth:`LinkRequest.qr_text` as a QR
   code::

       signalish://linkdevice?uuid=<provisioning id>&pub_key=<key>&v=1

   ``pub_key`` is standard base64 (with padding) of ``0x05 || u``, with
   ``+``, ``/`` and ``=`` percent-encoded, as in Signal's ``sgnl://linkdevice``.
2. The existing device scans it, :func:`parse_link_qr` checks it strictly, and
   :func:`seal_provisioning` encrypts a :class:`ProvisioningData` (the account
   identity key pair, the account's identifiers, the provisioning code the
   server issued, ...) to it.  The application posts the envelope to the
   mailbox named by the provisioning id.
3. The new device opens it with :meth:`LinkRequest.open`, which works once:
   after a success the request forgets its private key.  The new device then
   registers with the provisioning code, publishes its own prekeys (signed by
   the account identity key it received) and starts its own sessions.

The envelope (tag 0xA1, version 1), Signal's ProvisionEnvelope re-cut with an
AEAD::

    0xA1 || 0x01 || ephemeral u (32) || length (4) || AES-256-GCM ciphertext

    shared      = X25519(ephemeral, request key)        (all zeros refused)
    key || nonce = HKDF-SHA256(salt = none, IKM = shared,
                               info = "signalish provisioning envelope v1", 44)
    aad         = 0xA1 || 0x01 || ephemeral u || request u (32) || provisioning id (16)

The ephemeral key is fresh for every envelope, so each envelope has its own
key and the nonce can be derived (HPKE's single-shot mode does the same).
The provisioning id in the associated data means that an envelope made for
one request does not open under another, even one with the same key.

:class:`ProvisioningData` (tag 0xA0, version 1) is the plaintext; it is not a
storage format (it carries no digest: the AEAD authenticates it).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from ._encoding import Reader, Tag, Writer
from ._errors import (
    InvalidArgument,
    InvalidEncoding,
    InvalidKey,
    InvalidLength,
    UnexpectedType,
    UnknownVersion,
)
from ._keys import IdentityKeyPair
from ._primitives import (
    PrivateKey,
    PublicKey,
    RandomSource,
    aes256_gcm_decrypt,
    aes256_gcm_encrypt,
    ct_equal,
    hkdf,
)

__all__ = [
    "PROVISIONING_DATA_TAG",
    "PROVISIONING_ENVELOPE_TAG",
    "PROVISIONING_VERSION",
    "MAX_EXTRA",
    "LinkRequest",
    "LinkTarget",
    "ProvisioningData",
    "parse_link_qr",
    "seal_provisioning",
]

PROVISIONING_DATA_TAG: Final = Tag.PROVISIONING_DATA
PROVISIONING_ENVELOPE_TAG: Final = Tag.PROVISIONING_ENVELOPE
#: The version of the QR string (its ``v``), of the envelope and of the data.
PROVISIONING_VERSION: Final = 1
#: The largest ``ProvisioningData.extra``, the application's own bytes.
MAX_EXTRA: Final = 64 * 1024
#: The longest account name (UTF-8 bytes) and provisioning code (characters).
MAX_TEXT: Final = 256
#: The longest QR string :func:`parse_link_qr` looks at.
MAX_QR_TEXT: Final = 512

_INFO: Final = b"signalish provisioning envelope v1"
_KEY_TYPE: Final = 0x05
_GCM_TAG: Final = 16
_SCHEME: Final = "signalish"
_PREFIX: Final = "signalish://linkdevice?"
_UUID_TEXT: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_VERSION_TEXT: Final = re.compile(r"[1-9][0-9]{0,3}")
_E164: Final = re.compile(r"\+[1-9][0-9]{1,14}")
_CODE: Final = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_TEXT)
# RFC 3986 unreserved characters, "/" and "=" (legal in a query), and
# percent-escapes.  A raw "+" is refused: form encoding reads it as a space.
_QUERY_VALUE: Final = re.compile(r"(?:[A-Za-z0-9\-._~/=]|%[0-9A-Fa-f]{2})+")
_MAX_NUMBER: Final = 16
_MAX_DATA: Final = (2 + 32 + 16 + 1 + 16 + 32 + 1 + 4 + _MAX_NUMBER + 1 + 4 + MAX_TEXT
                    + 4 + MAX_TEXT + 1 + 4 + 4 + MAX_EXTRA)


# --- the QR string --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """What the existing device learns from the QR code: where to send the
    envelope (``provisioning_id``) and the key to encrypt it to."""

    provisioning_id: UUID
    public_key: PublicKey

    def __post_init__(self) -> None:
        if not isinstance(self.provisioning_id, UUID) or not isinstance(self.public_key, PublicKey):
            raise InvalidArgument("a LinkTarget is (UUID, PublicKey)")

    def qr_text(self) -> str:
        """The string to render as a QR code; :func:`parse_link_qr` reverses it."""
        key = base64.b64encode(bytes((_KEY_TYPE,)) + self.public_key.public_bytes_raw()).decode()
        key = key.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        return f"{_PREFIX}uuid={self.provisioning_id}&pub_key={key}&v={PROVISIONING_VERSION}"


_ESCAPE: Final = re.compile(r"%([0-9A-Fa-f]{2})")


def _unescape(raw: str, name: str) -> str:
    """Percent-decoding of a query value already matched by _QUERY_VALUE
    (every ``%`` starts an escape); an escape of a non-ASCII byte is
    refused."""
    def byte(match: re.Match[str]) -> str:
        value = int(match.group(1), 16)
        if value > 0x7F:
            raise InvalidEncoding(f"link QR code: {name} escapes a non-ASCII byte")
        return chr(value)

    return _ESCAPE.sub(byte, raw)


def parse_link_qr(text: str) -> LinkTarget:
    """Read a QR string made by :meth:`LinkRequest.qr_text`, strictly.

    ``text`` must be ``signalish://linkdevice?`` followed by exactly the
    parameters ``uuid``, ``pub_key`` and ``v``, each once, in any order, and
    nothing else (no fragment).  Raises
    :class:`~signalish.errors.UnexpectedType` for another scheme (a Signal
    ``sgnl://`` code, say), :class:`~signalish.errors.UnknownVersion` for a
    ``v`` other than 1, another :class:`~signalish.errors.DecodeError` for
    anything else malformed (:class:`~signalish.errors.InvalidLength` for an
    over-long string), and :class:`~signalish.errors.InvalidKey` for a key
    that is not ``0x05`` and 32 acceptable bytes.  All are
    :class:`~signalish.errors.RemoteError`.  A ``text`` that is not a str is
    :class:`~signalish.errors.InvalidArgument`.
    """
    if not isinstance(text, str):
        raise InvalidArgument("a link QR code is a str")
    if len(text) > MAX_QR_TEXT:
        raise InvalidLength(f"link QR code: longer than {MAX_QR_TEXT} characters")
    scheme, sep, _ = text.partition("://")
    if not sep or scheme != _SCHEME:
        raise UnexpectedType("link QR code: not a signalish:// link")
    if not text.startswith(_PREFIX):
        raise InvalidEncoding("link QR code: expected signalish://linkdevice?")
    params: dict[str, str] = {}
    for part in text[len(_PREFIX):].split("&"):
        name, sep, raw = part.partition("=")
        if not sep or name not in ("uuid", "pub_key", "v") or name in params:
            raise InvalidEncoding("link QR code: parameters are uuid, pub_key and v, once each")
        if not _QUERY_VALUE.fullmatch(raw):
            raise InvalidEncoding(f"link QR code: {name} is empty or not percent-encoded")
        params[name] = _unescape(raw, name)
    if len(params) != 3:
        raise InvalidEncoding("link QR code: parameters are uuid, pub_key and v, once each")
    if not _VERSION_TEXT.fullmatch(params["v"]):
        raise InvalidEncoding("link QR code: v is not a number without leading zeros")
    if params["v"] != str(PROVISIONING_VERSION):
        raise UnknownVersion(f"link QR code: version {params['v']} is not supported")
    if not _UUID_TEXT.fullmatch(params["uuid"]):
        raise InvalidEncoding("link QR code: uuid is not a lowercase UUID")
    try:
        key = base64.b64decode(params["pub_key"], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEncoding("link QR code: pub_key is not base64") from None
    if base64.b64encode(key).decode() != params["pub_key"]:
        raise InvalidEncoding("link QR code: pub_key is not canonical padded base64")
    if len(key) != 33 or key[0] != _KEY_TYPE:
        raise InvalidKey("link QR code: pub_key is not 0x05 followed by 32 bytes")
    return LinkTarget(UUID(params["uuid"]), PublicKey.from_public_bytes(key[1:]))


# --- what the new device receives ----------------------------------------------


def _utf8(value: str, what: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} is not encodable as UTF-8") from None


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class ProvisioningData:
    """What the existing device gives the new one (secret).

    ``identity`` is the account's identity key pair, which every device of an
    account shares.  ``aci`` is the account's id, ``pni`` and
    ``pni_identity`` its phone-number identity (both or neither), ``number``
    its E.164 number, ``account_name`` a free-form name for applications that
    address accounts by name.  ``provisioning_code`` is the one-time code the
    server issued to the existing device for this link (printable ASCII);
    ``device_id`` the id the new device will have, if the application knows
    it (Signal's server assigns it when the new device registers).  ``extra``
    (at most :data:`MAX_EXTRA` bytes) is the application's own: a profile key,
    settings, whatever it would otherwise send by another channel.

    Raises :class:`~signalish.errors.InvalidArgument` for a value out of its
    domain.  ``==`` compares the serialized forms in constant time; ``repr``
    hides the keys, the code and ``extra``.
    """

    identity: IdentityKeyPair
    aci: UUID
    provisioning_code: str
    pni: UUID | None = None
    pni_identity: IdentityKeyPair | None = None
    number: str | None = None
    account_name: str | None = None
    device_id: int | None = None
    extra: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.identity, IdentityKeyPair) or not isinstance(self.aci, UUID):
            raise InvalidArgument("identity is an IdentityKeyPair and aci a UUID")
        if (self.pni is None) != (self.pni_identity is None):
            raise InvalidArgument("pni and pni_identity go together: both or neither")
        if self.pni is not None and not (isinstance(self.pni, UUID)
                                         and isinstance(self.pni_identity, IdentityKeyPair)):
            raise InvalidArgument("pni is a UUID and pni_identity an IdentityKeyPair")
        code = self.provisioning_code
        if not isinstance(code, str) or not _CODE.fullmatch(code):
            raise InvalidArgument(f"provisioning_code is 1 to {MAX_TEXT} printable ASCII")
        if self.number is not None and (not isinstance(self.number, str)
                                        or not _E164.fullmatch(self.number)):
            raise InvalidArgument("number is an E.164 number: + and 2 to 15 digits")
        if self.account_name is not None and (
                not isinstance(self.account_name, str)
                or not 1 <= len(_utf8(self.account_name, "account_name")) <= MAX_TEXT):
            raise InvalidArgument(f"account_name is 1 to {MAX_TEXT} bytes of UTF-8")
        if self.device_id is not None and (isinstance(self.device_id, bool)
                                           or not isinstance(self.device_id, int)
                                           or not 1 <= self.device_id <= 0xFFFFFFFF):
            raise InvalidArgument("device_id is 1 to 2**32 - 1")
        if (not isinstance(self.extra, (bytes, bytearray, memoryview))
                or len(self.extra) > MAX_EXTRA):
            raise InvalidArgument(f"extra is at most {MAX_EXTRA} bytes")
        object.__setattr__(self, "extra", bytes(self.extra))

    def to_bytes(self) -> bytes:
        """Tag 0xA0, version 1, then the fields (docs/linking.md).  Secret."""
        w = Writer(PROVISIONING_DATA_TAG, PROVISIONING_VERSION)
        w.fixed(self.identity.seed()).fixed(self.aci.bytes)
        w.flag(self.pni is not None)
        if self.pni is not None and self.pni_identity is not None:
            w.fixed(self.pni.bytes).fixed(self.pni_identity.seed())
        w.flag(self.number is not None)
        if self.number is not None:
            w.var(self.number.encode("ascii"))
        w.flag(self.account_name is not None)
        if self.account_name is not None:
            w.var(self.account_name.encode("utf-8"))
        w.var(self.provisioning_code.encode("ascii"))
        w.flag(self.device_id is not None)
        if self.device_id is not None:
            w.u32(self.device_id)
        return w.var(self.extra).getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ProvisioningData:
        """Strict inverse of :meth:`to_bytes`: a named
        :class:`~signalish.errors.DecodeError` for anything malformed."""
        r = Reader(data, PROVISIONING_DATA_TAG, "ProvisioningData")
        try:
            identity = _seed(r.fixed(32, "identity seed"))
            aci = UUID(bytes=r.fixed(16, "aci"))
            pni = pni_identity = None
            if r.flag("pni"):
                pni = UUID(bytes=r.fixed(16, "pni"))
                pni_identity = _seed(r.fixed(32, "pni identity seed"))
            number = r.var("number", _MAX_NUMBER).decode("ascii") if r.flag("number") else None
            name = (r.var("account name", MAX_TEXT).decode("utf-8")
                    if r.flag("account name") else None)
            code = r.var("provisioning code", MAX_TEXT).decode("ascii")
            device_id = r.u32("device id") if r.flag("device id") else None
            extra = r.var("extra", MAX_EXTRA)
            r.finish()
            return cls(identity, aci, code, pni, pni_identity, number, name, device_id, extra)
        except UnicodeDecodeError:
            raise InvalidEncoding("ProvisioningData: a text field is not valid text") from None
        except InvalidArgument as error:
            raise InvalidEncoding(f"ProvisioningData: {error}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProvisioningData):
            return NotImplemented
        return ct_equal(self.to_bytes(), other.to_bytes())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"ProvisioningData(identity={self.identity!r}, aci={self.aci}, pni={self.pni}, "
                f"number={self.number!r}, account_name={self.account_name!r}, "
                f"device_id={self.device_id}, provisioning_code=<secret>, "
                f"extra=<{len(self.extra)} bytes>)")


def _seed(seed: bytes) -> IdentityKeyPair:
    try:
        return IdentityKeyPair.from_seed(seed)
    except InvalidArgument:
        raise InvalidEncoding("ProvisioningData: an identity seed has Edwards sign bit 1") from None


# --- the envelope -----------------------------------------------------------------


def _cipher(shared: bytes, header: bytes, target: LinkTarget) -> tuple[bytes, bytes, bytes]:
    okm = hkdf(shared, salt=None, info=_INFO, length=44)
    aad = header + target.public_key.public_bytes_raw() + target.provisioning_id.bytes
    return okm[:32], okm[32:], aad


def seal_provisioning(target: LinkTarget, data: ProvisioningData, rng: RandomSource) -> bytes:
    """Encrypt ``data`` to the new device that showed ``target``; returns the
    envelope (tag 0xA1) for the application to deliver.  Draws 32 bytes from
    ``rng``: the ephemeral private key.  Raises
    :class:`~signalish.errors.InvalidArgument` for arguments of the wrong type."""
    if not isinstance(target, LinkTarget) or not isinstance(data, ProvisioningData):
        raise InvalidArgument("seal_provisioning takes a LinkTarget and a ProvisioningData")
    ephemeral = PrivateKey.generate(rng)
    header = (bytes((PROVISIONING_ENVELOPE_TAG, PROVISIONING_VERSION))
              + ephemeral.public.public_bytes_raw())
    key, nonce, aad = _cipher(ephemeral.exchange(target.public_key), header, target)
    ciphertext = aes256_gcm_encrypt(key, nonce, data.to_bytes(), aad)
    return header + len(ciphertext).to_bytes(4, "big") + ciphertext


class LinkRequest:
    """The new device's side: a one-time key pair and a provisioning id.

    Make one with :meth:`create`, show :meth:`qr_text`, and :meth:`open` the
    envelope that arrives.  It opens one envelope: after a success its private
    key is dropped and it refuses further use.  ``repr`` never shows the key.
    """

    __slots__ = ("_private", "_target")

    def __init__(self, private: PrivateKey, provisioning_id: UUID) -> None:
        if not isinstance(private, PrivateKey):
            raise InvalidArgument("a LinkRequest's key is a PrivateKey")
        self._private: PrivateKey | None = private
        self._target = LinkTarget(provisioning_id, private.public)

    @classmethod
    def create(cls, rng: RandomSource, *, provisioning_id: UUID | None = None) -> LinkRequest:
        """A fresh request: draws the private key (32 bytes) from ``rng``, then,
        unless the application passes the id its server issued, a random
        version-4 UUID (16 bytes)."""
        private = PrivateKey.generate(rng)
        if provisioning_id is None:
            provisioning_id = UUID(bytes=rng.random_bytes(16), version=4)
        return cls(private, provisioning_id)

    @property
    def target(self) -> LinkTarget:
        """The provisioning id and public key, as the QR code carries them."""
        return self._target

    @property
    def provisioning_id(self) -> UUID:
        return self._target.provisioning_id

    @property
    def used(self) -> bool:
        """True once :meth:`open` has succeeded."""
        return self._private is None

    def qr_text(self) -> str:
        """The string to render as a QR code (``self.target.qr_text()``)."""
        return self._target.qr_text()

    def open(self, envelope: bytes) -> ProvisioningData:
        """Decrypt the envelope sealed to this request, once.

        Raises a :class:`~signalish.errors.DecodeError` for malformed bytes,
        :class:`~signalish.errors.InvalidKey` for an unacceptable ephemeral
        key, :class:`~signalish.errors.AuthenticationError` for an envelope
        that does not decrypt under this request (another key, another
        provisioning id, any change), and
        :class:`~signalish.errors.InvalidArgument` if the request was already
        used.  A failure changes nothing.
        """
        if not isinstance(envelope, (bytes, bytearray, memoryview)):
            raise InvalidArgument("a provisioning envelope is bytes")
        private = self._private
        if private is None:
            raise InvalidArgument("this LinkRequest already opened its envelope; make a new one")
        r = Reader(envelope, PROVISIONING_ENVELOPE_TAG, "ProvisioningEnvelope")
        ephemeral = r.fixed(32, "ephemeral key")
        ciphertext = r.var("ciphertext", _MAX_DATA + _GCM_TAG)
        r.finish()
        if len(ciphertext) < _GCM_TAG:
            raise InvalidLength("ProvisioningEnvelope: ciphertext shorter than its tag")
        header = bytes((PROVISIONING_ENVELOPE_TAG, PROVISIONING_VERSION)) + ephemeral
        key, nonce, aad = _cipher(private.exchange(PublicKey.from_public_bytes(ephemeral)),
                                  header, self._target)
        data = ProvisioningData.from_bytes(aes256_gcm_decrypt(key, nonce, ciphertext, aad))
        self._private = None
        return data

    def __repr__(self) -> str:
        state = "used" if self._private is None else "open"
        return (f"LinkRequest(provisioning_id={self._target.provisioning_id}, "
                f"public={self._target.public_key.public_bytes_raw().hex()}, {state})")
