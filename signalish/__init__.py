"""signalish: sans-IO Signal-style protocol primitives.

The public surface is the names in ``__all__``; everything else lives in
private modules and may change.  Layers, from the bottom: primitives
(the only code that touches ``cryptography``), keys and bundles, X3DH and
PQXDH, the Double Ratchet, sessions, and stores.  No function here performs I/O, reads the clock or draws randomness
except from the :class:`RandomSource` it is given.

Serialized forms all start with a one-byte type tag and a one-byte format
version, and are parsed strictly: a wrong length, an unknown version or tag,
a presence byte other than 0 or 1, and trailing bytes each raise a named
:class:`DecodeError` subclass.
"""

from ._bundle import (
    KemPreKey,
    KemPreKeyPublic,
    OneTimePreKey,
    OneTimePreKeyPublic,
    PreKeyBundle,
    SignedPreKey,
    SignedPreKeyPublic,
)
from ._errors import (
    AuthenticationError,
    CorruptState,
    DecodeError,
    DuplicateMessage,
    InvalidArgument,
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
    SignalishError,
    StaleSession,
    ChainExhausted,
    StoreError,
    StoreBusy,
    StoreRolledBack,
    TooFarAhead,
    TrailingBytes,
    TruncatedInput,
    UnexpectedType,
    UnknownPreKey,
    UnknownVersion,
    UnsupportedByProfile,
    UntrustedIdentity,
)
from ._backup import (
    BackupCostExceeded,
    BackupDamaged,
    BackupError,
    BackupParams,
    WrongPassword,
    create_backup,
    restore_backup,
)
from ._fingerprint import FingerprintMatch, SafetyNumber, compare_scannable
from ._keys import IdentityKey, IdentityKeyPair
from ._prekeys import PreKeyRing
from ._primitives import (
    DeterministicRandom,
    KemPrivateKey,
    KemPublicKey,
    PrivateKey,
    PublicKey,
    RandomSource,
    SystemRandom,
)
from ._profile import LIBSIGNAL_V3, NATIVE, PreKeyKind, Profile
from ._manager import Direction, SessionManager, TrustDecision, trust_on_first_use
from ._sealed import SealedBoxPrivateKey, SealedBoxPublicKey, SealedBoxSuite
from ._session import Session, SessionOptions, SessionRecord
from ._stores import IdentityStore, MemoryStore, PreKeyStore, SessionStore, SQLiteStore, Store
from ._window import RatchetLimits
from ._initial import InitialHeader
from ._x3dh import AgreementResult, BundlePolicy, initiate, respond

__version__ = "0.1.0"

__all__ = [
    # profiles
    "Profile", "NATIVE", "LIBSIGNAL_V3", "PreKeyKind",
    # randomness
    "RandomSource", "SystemRandom", "DeterministicRandom",
    # keys
    "PrivateKey", "PublicKey", "KemPrivateKey", "KemPublicKey",
    "IdentityKey", "IdentityKeyPair",
    # safety numbers, sealed boxes, backups
    "SafetyNumber", "FingerprintMatch", "compare_scannable",
    "SealedBoxSuite", "SealedBoxPrivateKey", "SealedBoxPublicKey",
    "BackupParams", "create_backup", "restore_backup", "BackupError", "WrongPassword",
    "BackupDamaged", "BackupCostExceeded",
    # prekeys and bundles
    "SignedPreKey", "SignedPreKeyPublic", "OneTimePreKey", "OneTimePreKeyPublic",
    "KemPreKey", "KemPreKeyPublic", "PreKeyBundle", "PreKeyRing",
    # key agreement
    "BundlePolicy", "InitialHeader", "AgreementResult", "initiate", "respond",
    # sessions and the ratchet
    "SessionManager", "SessionOptions", "RatchetLimits", "Session", "SessionRecord",
    "TrustDecision", "Direction", "trust_on_first_use",
    # stores
    "Store", "IdentityStore", "PreKeyStore", "SessionStore", "MemoryStore", "SQLiteStore",
    # errors
    "SignalishError", "LocalError", "InvalidArgument", "UnsupportedByProfile",
    "RemoteError", "DecodeError", "TruncatedInput", "TrailingBytes", "UnknownVersion",
    "UnexpectedType", "InvalidLength", "InvalidEncoding", "InvalidKey", "InvalidSignature",
    "AuthenticationError", "PolicyViolation", "PreKeyError", "UnknownPreKey",
    "PreKeyAlreadyUsed", "PreKeyExpired", "MessageRejected", "DuplicateMessage",
    "MessageKeyEvicted", "MessageKeyExpired", "TooFarAhead", "UntrustedIdentity", "NoSession",
    "StaleSession", "ChainExhausted", "CorruptState", "PreKeyReplayed",
    "StoreError", "StoreBusy", "StoreRolledBack",
]
