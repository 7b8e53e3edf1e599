"""libsignal protocol version 4 messages, as libsignal-client 0.73 to 0.90
writes them for a session without SPQR.

The encodings are version 3's (``_wire_v3``: protobuf field by field, the
8-byte MAC over both 33-byte identities, the version byte and the protobuf,
"WhisperMessageKeys") with three differences::

    version byte          0x44 (written); any byte whose high nibble is 4 is read,
                          as libsignal reads only the message version
    PreKeySignalMessage   + 7 kyber_pre_key_id, 8 kyber_ciphertext (0x08 || 1568 bytes),
                          both required: a session of version 4 always uses a Kyber
                          prekey, and a version 3 PreKeySignalMessage is refused
    SignalMessage         + 5 pq_ratchet (optional): the SPQR message.  signalish
                          never writes it, and reads it only as bytes covered by the
                          MAC: a libsignal-client that offers SPQR (0.80 to 0.90) and
                          receives messages without it continues the session
                          without SPQR, with the message keys of version 3.

libsignal 0.91 and later add field 6 (the sender's and recipient's addresses)
and make SPQR mandatory; those are the next issue's, and a message with
field 6 is refused here as malformed (unknown field).
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
