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

The package: :mod:`.certificates` (certificates, service ids and what both
envelopes share) and :mod:`.envelopes` (the content and the v1 and v2
envelopes).
"""

from .certificates import SenderCertificate, ServerCertificate, ServiceId
from .envelopes import (
    MAX_MESSAGE_SIZE,
    V1_VERSION,
    V2_RECEIVED_VERSION,
    V2_SENT_VERSION,
    ContentHint,
    Device,
    Recipient,
    SentMessage,
    UnidentifiedSenderMessageContent,
    seal_v1,
    seal_v2,
    unseal,
    unseal_and_validate,
)

__all__ = [
    "ServiceId", "ServerCertificate", "SenderCertificate", "ContentHint",
    "UnidentifiedSenderMessageContent", "Device", "Recipient", "SentMessage",
    "seal_v1", "seal_v2", "unseal", "unseal_and_validate",
    "V1_VERSION", "V2_RECEIVED_VERSION", "V2_SENT_VERSION", "MAX_MESSAGE_SIZE",
]
