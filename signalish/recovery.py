"""Recovering a broken session, as Signal's applications do.

When a message cannot be decrypted, its receiver answers with a
:class:`DecryptionErrorMessage` (libsignal's, wrapped by
:func:`plaintext_content` as libsignal sends it;
:func:`parse_plaintext_content` reads one); the sender acts on it with
:meth:`SessionManager.process_decryption_error
<signalish.SessionManager.process_decryption_error>`.  :class:`Recovery`
decides when to send one and how often to act on one
(:class:`RecoveryPolicy`).  The flow: docs/howto.rst, "Recover a broken
session".
"""

from ._manager import Recovery, RecoveryPolicy
from ._recovery import DecryptionErrorMessage, parse_plaintext_content, plaintext_content

__all__ = ["DecryptionErrorMessage", "plaintext_content", "parse_plaintext_content",
           "Recovery", "RecoveryPolicy"]
