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
                          + 6 addresses (optional, 36 bytes): libsignal 0.92 and later
                          write the sender's and recipient's service ids and
                          devices into the SignalMessage inside a
                          PreKeySignalMessage.  Read (covered by the MAC), never
                          written, not checked.
"""

from __future__ import annotations

from typing import Final

from ._errors import UnsupportedByProfile
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

__all__ = ["V4Wire", "V4_WIRE"]


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
                pq_key: bytes) -> bytes:
        """:meth:`seal` for a session with SPQR: ``pq_ratchet`` is field 5,
        ``pq_key`` the SPQR message key (the salt of the message keys)."""
        (ratchet_key, pn, n), mk, hk = sending
        if hk is not None:
            raise UnsupportedByProfile("libsignal_v4 has no header encryption")
        return seal(mk, ratchet_key, pn, n, plaintext, ad, VERSION_4, pq_ratchet, pq_key)

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
