"""Every exception signalish raises on purpose.

Errors are split by who is at fault: :class:`LocalError`, the caller (fix
the calling code, or ask the user again); :class:`RemoteError`, input from
elsewhere, a peer, a server or a backup blob (drop it); :class:`StoreError`,
the application's own storage (see :doc:`security`).  The roots,
:class:`StoreError` and the few errors an application catches by name in
normal flow (:class:`NoSession`, :class:`CannotSend`, :class:`UntrustedIdentity`,
:class:`WrongPassword`) are also importable from :mod:`signalish`; the
fine-grained classes live here.  The tree (``*`` marks a class with two
parents, drawn under both)::

    SignalishError
    +-- LocalError
    |   +-- InvalidArgument (also ValueError)
    |   +-- UnsupportedByProfile
    |   +-- NoSession *                 (LocalError, RemoteError)
    |   +-- CannotSend
    |   |   +-- AwaitingFirstMessage
    |   |   +-- StaleSession
    |   |   +-- ChainExhausted
    |   +-- WrongPassword *             (BackupError, LocalError)
    +-- RemoteError
    |   +-- NoSession *
    |   +-- DecodeError (also ValueError)
    |   |   +-- TruncatedInput
    |   |   +-- TrailingBytes
    |   |   +-- UnknownVersion
    |   |   +-- UnexpectedType
    |   |   +-- InvalidLength
    |   |   +-- InvalidEncoding
    |   +-- InvalidKey (also ValueError)
    |   +-- InvalidSignature
    |   +-- AuthenticationError
    |   +-- PolicyViolation
    |   +-- PreKeyError
    |   |   +-- UnknownPreKey
    |   |   +-- PreKeyAlreadyUsed
    |   |   +-- PreKeyReplayed
    |   |   +-- PreKeyExpired
    |   +-- MessageRejected
    |   |   +-- DuplicateMessage
    |   |   +-- MessageKeyEvicted
    |   |   +-- MessageKeyExpired
    |   |   +-- TooFarAhead
    |   +-- UntrustedIdentity
    |   +-- InvalidCertificate
    |   |   +-- CertificateExpired
    |   +-- SealedSenderSelfSend
    |   +-- BackupDamaged *             (BackupError, RemoteError)
    |   +-- BackupCostExceeded *        (BackupError, RemoteError)
    +-- StoreError
    |   +-- StoreBusy
    |   +-- StoreRolledBack
    |   +-- StoreUnavailable
    |   +-- SchemaTooNew
    |   +-- CorruptState
    +-- BackupError                     (the common base of the three
        +-- WrongPassword *              starred backup errors)
        +-- BackupDamaged *
        +-- BackupCostExceeded *
"""

from ._backup import BackupCostExceeded, BackupDamaged, BackupError, WrongPassword
from ._errors import (
    AuthenticationError,
    AwaitingFirstMessage,
    CannotSend,
    CertificateExpired,
    ChainExhausted,
    CorruptState,
    DecodeError,
    DuplicateMessage,
    InvalidArgument,
    InvalidCertificate,
    InvalidEncoding,
    InvalidKey,
    InvalidLength,
    InvalidSignature,
    LocalError,
    MessageKeyEvicted,
    MessageKeyExpired,
    MessageRejected,
    NoSession,
    PolicyViolation,
    PreKeyAlreadyUsed,
    PreKeyError,
    PreKeyExpired,
    PreKeyReplayed,
    RemoteError,
    SchemaTooNew,
    SealedSenderSelfSend,
    SignalishError,
    StaleSession,
    StoreBusy,
    StoreError,
    StoreRolledBack,
    StoreUnavailable,
    TooFarAhead,
    TrailingBytes,
    TruncatedInput,
    UnexpectedType,
    UnknownPreKey,
    UnknownVersion,
    UnsupportedByProfile,
    UntrustedIdentity,
)

__all__ = [
    "SignalishError",
    # the caller's fault
    "LocalError", "InvalidArgument", "UnsupportedByProfile",
    "NoSession", "CannotSend", "AwaitingFirstMessage", "StaleSession", "ChainExhausted",
    "WrongPassword",
    # bad input from elsewhere
    "RemoteError", "DecodeError", "TruncatedInput", "TrailingBytes", "UnknownVersion",
    "UnexpectedType", "InvalidLength", "InvalidEncoding", "InvalidKey", "InvalidSignature",
    "AuthenticationError", "PolicyViolation", "PreKeyError", "UnknownPreKey",
    "PreKeyAlreadyUsed", "PreKeyReplayed", "PreKeyExpired", "MessageRejected",
    "DuplicateMessage", "MessageKeyEvicted", "MessageKeyExpired", "TooFarAhead",
    "UntrustedIdentity", "InvalidCertificate", "CertificateExpired", "SealedSenderSelfSend",
    "BackupDamaged", "BackupCostExceeded",
    # the application's own storage
    "StoreError", "StoreBusy", "StoreRolledBack", "StoreUnavailable", "SchemaTooNew",
    "CorruptState",
    # the common base of the three backup errors
    "BackupError",
]
