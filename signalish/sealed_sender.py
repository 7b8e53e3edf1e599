"""Sealed sender: messages whose sender only the recipient learns.

A server issues a :class:`SenderCertificate` (signed by a
:class:`ServerCertificate`, itself signed by a trust root the clients
know); the sender seals an :class:`UnidentifiedSenderMessageContent` (a 1:1
or group message plus that certificate) to the recipient's identity key,
with :func:`seal_v1` for one recipient or :func:`seal_v2` for many
(one body, one 48-byte entry per recipient; a server splits the
:class:`SentMessage` into each recipient's message).  The recipient calls
:func:`unseal_and_validate`.  Every format is libsignal's (0.72.1, 0.90.0
and 0.103.0 open what signalish seals, and the reverse): :doc:`sealed_sender`.
"""

from ._errors import CertificateExpired, InvalidCertificate, SealedSenderSelfSend
from ._sealed_sender import (
    MAX_MESSAGE_SIZE,
    V1_VERSION,
    V2_RECEIVED_VERSION,
    V2_SENT_VERSION,
    ContentHint,
    Device,
    Recipient,
    SenderCertificate,
    SentMessage,
    ServerCertificate,
    ServiceId,
    UnidentifiedSenderMessageContent,
    seal_v1,
    seal_v2,
    unseal,
    unseal_and_validate,
)

__all__ = [
    "ServerCertificate", "SenderCertificate", "ContentHint",
    "UnidentifiedSenderMessageContent", "ServiceId", "Device", "Recipient", "SentMessage",
    "seal_v1", "seal_v2", "unseal", "unseal_and_validate",
    "InvalidCertificate", "CertificateExpired", "SealedSenderSelfSend",
    "V1_VERSION", "V2_RECEIVED_VERSION", "V2_SENT_VERSION", "MAX_MESSAGE_SIZE",
]
