"""Sealed sender's certificates and what both envelope versions share: the
version bytes and limits, the canonical protobuf reader, service ids, and
the server and sender certificates with their checks.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal
from uuid import UUID

from .._errors import (
    CertificateExpired,
    InvalidArgument,
    InvalidCertificate,
    InvalidEncoding,
    InvalidLength,
    TruncatedInput,
)
from .._keys import IdentityKey, IdentityKeyPair
from .._primitives import xeddsa_verify
from .._wire_v3 import _bytes_field, _ProtoReader, _uint_field

__all__ = ["ServiceId", "ServerCertificate", "SenderCertificate"]


_MAX_CERTIFICATE: Final = 512
_KEY33: Final = 33
_SIGNATURE: Final = 64
_MAX_DEVICE_ID: Final = 127

_UUID_TEXT: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_E164_TEXT: Final = re.compile(r"\+[0-9]{1,15}")


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
