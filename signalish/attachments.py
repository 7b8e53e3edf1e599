"""Attachments in Signal's format: AES-256-CBC with HMAC-SHA256, a SHA-256
digest of the blob, and Signal's size buckets, streaming in constant memory.

:func:`encrypt_attachment` and :func:`decrypt_attachment` take and return
whole files; :class:`AttachmentEncryptor` and :class:`AttachmentDecryptor`
stream them chunk by chunk (decryption writes to a :class:`PlaintextSink`
that commits only once every check passed).  The format, its sources and
its limits: :doc:`attachments`.
"""

from ._attachments import (
    AttachmentDecryptor,
    AttachmentEncryptor,
    AttachmentKey,
    AttachmentMetadata,
    PlaintextSink,
    attachment_blob_size,
    attachment_padded_size,
    decrypt_attachment,
    encrypt_attachment,
)

__all__ = [
    "AttachmentKey", "AttachmentMetadata", "AttachmentEncryptor", "AttachmentDecryptor",
    "PlaintextSink", "encrypt_attachment", "decrypt_attachment", "attachment_padded_size",
    "attachment_blob_size",
]
