"""libsignal protocol version 4 messages, as libsignal-client 0.73 and later
write them.

The encodings are version 3's (``_wire_v3``: protobuf field by field, the
8-byte MAC over both 33-byte identities, the version byte and the protobuf,
"WhisperMessageKeys") with three differences::

    version byte          0x44 (written); any byte whose high nibble is 4 is read,
                          as libsignal reads only the message version
    PreKeySignalMessage   + 7 kyber_pre_key_id, 8 kyber_ciphertext (0x08 || 1568 bytes),
                          both required: a session of version 4 always uses a Kyber
                          prekey, and a version 3 PreKeySignalMessage is refused
    SignalMessage         + 5 pq_ratchet (optional): the SPQR message
                          (signalish._spqr), written and read by a session with
                          SPQR (``SessionOptions(pq_ratchet=True)``), whose message
                          keys then take the SPQR key as HKDF salt.  A session
                          without SPQR never writes it and reads it only as bytes
                          covered by the MAC: a libsignal-client that offers SPQR
                          (0.80 to 0.90) and receives messages without it continues
                          the session without SPQR, with the message keys of
                          version 3.
                          + 6 addresses (optional, 36 bytes, :class:`ServiceAddress`):
                          libsignal 0.92 and later write the sender's and
                          recipient's service ids and devices into the
                          SignalMessage inside a PreKeySignalMessage, when both
                          are service ids, and check them on receipt.  A
                          SessionManager given service addresses does the same
                          (sessions with SPQR only, as libsignal's are).
"""

from __future__ import annotations

import uuid as _uuid
from dataclasses import dataclass
from typing import Final

from ._errors import InvalidArgument, UnsupportedByProfile
from ._initial import InitialHeader
from ._ratchet import Sending
from ._wire_v3 import (
    VERSION_4,
    V3Frame,
    V3PreKeyFrame,
    message_type_v3,
    parse_v3,
    prekey_message_v3,
    seal,
)

__all__ = ["V4Wire", "V4_WIRE", "ServiceAddress", "ACI", "PNI"]

#: The kinds of service id, as their first byte in the addresses field.
ACI: Final = 0
PNI: Final = 1


@dataclass(frozen=True, slots=True)
class ServiceAddress:
    """A Signal service address: a service id (an ACI or a PNI, a UUID) and a
    device id, as libsignal 0.92 and later write them into field 6 of the
    SignalMessage inside a PreKeySignalMessage::

        kind (1: 0 ACI, 1 PNI) || UUID (16) || device id (1)

    (observed on libsignal-client 0.103.0: its fixed-width service-id
    binary form, then the device).  ``device_id`` is 1..127, libsignal's
    range."""

    kind: int
    uuid: bytes
    device_id: int

    def __post_init__(self) -> None:
        if self.kind not in (ACI, PNI) or isinstance(self.kind, bool):
            raise InvalidArgument("a service id's kind is ACI (0) or PNI (1)")
        if not isinstance(self.uuid, bytes) or len(self.uuid) != 16:
            raise InvalidArgument("a service id's UUID is 16 bytes")
        if isinstance(self.device_id, bool) or not isinstance(self.device_id, int) \
                or not 1 <= self.device_id <= 127:
            raise InvalidArgument("a device id is an integer in 1..127")

    @classmethod
    def aci(cls, uuid: str, device_id: int) -> ServiceAddress:
        """From the UUID's text form, e.g. ``ServiceAddress.aci("a1a2...", 1)``."""
        return cls(ACI, _uuid.UUID(uuid).bytes, device_id)

    @classmethod
    def pni(cls, uuid: str, device_id: int) -> ServiceAddress:
        return cls(PNI, _uuid.UUID(uuid).bytes, device_id)

    def to_bytes(self) -> bytes:
        """The 18 bytes this address takes in the addresses field."""
        return bytes((self.kind,)) + self.uuid + bytes((self.device_id,))


def addresses_field(sender: ServiceAddress, recipient: ServiceAddress) -> bytes:
    """Field 6: the sender's address, then the recipient's (36 bytes)."""
    return sender.to_bytes() + recipient.to_bytes()


class V4Wire:
    """libsignal protocol version 4's wire format (see the module docstring)."""

    __slots__ = ()
    name = "libsignal_v4"
    header_encryption = False

    def parse(self, data: bytes, max_plaintext: int) -> V3Frame | V3PreKeyFrame:
        return parse_v3(data, max_plaintext, protocol=4)

    def seal(self, sending: Sending, plaintext: bytes, ad: bytes) -> bytes:
        (ratchet_key, pn, n), mk, hk = sending
        if hk is not None:
            raise UnsupportedByProfile("libsignal_v4 has no header encryption")
        return seal(mk, ratchet_key, pn, n, plaintext, ad, VERSION_4)

    def seal_pq(self, sending: Sending, plaintext: bytes, ad: bytes, pq_ratchet: bytes,
                pq_key: bytes, addresses: bytes | None = None) -> bytes:
        """:meth:`seal` for a session with SPQR: ``pq_ratchet`` is field 5,
        ``pq_key`` the SPQR message key (the salt of the message keys),
        ``addresses`` field 6 (:func:`addresses_field`) or None."""
        (ratchet_key, pn, n), mk, hk = sending
        if hk is not None:
            raise UnsupportedByProfile("libsignal_v4 has no header encryption")
        return seal(mk, ratchet_key, pn, n, plaintext, ad, VERSION_4, pq_ratchet, pq_key,
                    addresses)

    def initial_message(self, header: InitialHeader, registration_id: int,
                        message: bytes) -> bytes:
        if header.kem_prekey_id is None:
            raise UnsupportedByProfile("a version 4 PreKeySignalMessage needs a Kyber prekey")
        return prekey_message_v3(header, registration_id, message, VERSION_4)

    def message_type(self, data: bytes) -> int:
        return message_type_v3(data, protocol=4)

    def associated_data(self, session_ad: bytes, local: bytes, remote: bytes,
                        sending: bool) -> bytes:
        """The identities the MAC covers, sender first."""
        return local + remote if sending else remote + local


V4_WIRE: Final = V4Wire()
