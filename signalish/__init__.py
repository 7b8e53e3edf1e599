"""signalish: sans-IO Signal-style protocol primitives.

The public surface is the names in ``__all__``; everything else lives in
private modules and may change.  Layers, from the bottom: primitives
(the only code that touches ``cryptography``), keys and bundles, X3DH and
PQXDH, the Double Ratchet, sessions, and stores.  No function here performs I/O, reads the clock or draws randomness
except from the :class:`RandomSource` it is given.

Serialized forms all start with a one-byte type tag and a one-byte format
version, and are parsed strictly: a wrong length, an unknown version or tag,
a presence byte other than 0 or 1, and trailing bytes each raise a named
:class:`~signalish.errors.DecodeError` subclass.  Every exception class is in
:mod:`signalish.errors`; the roots and the few an application catches by
name in normal flow are also here.

Key bytes have one vocabulary, pyca/cryptography's: ``from_public_bytes`` and
``public_bytes_raw`` for raw public keys (:class:`PublicKey`,
:class:`IdentityKey`, :class:`KemPublicKey`); ``from_private_bytes`` and
``private_bytes_raw`` for a raw private key (:class:`PrivateKey`);
``from_seed`` and ``seed`` for private keys held as their seed
(:class:`IdentityKeyPair`, :class:`KemPrivateKey`); ``encode(profile)`` and
``IdentityKey.decode(data, profile)`` for a profile's encoding of a key
(libsignal's ``0x05`` prefix); and ``to_bytes`` and ``from_bytes`` only for
the tagged, versioned serialized forms.
"""

import importlib
import warnings
from typing import TYPE_CHECKING, Any, Final

from ._async import AsyncSessionManager, AsyncSQLiteStore
from ._async_store import AsyncStore
from ._bundle import (
    KemPreKey,
    KemPreKeyPublic,
    OneTimePreKey,
    OneTimePreKeyPublic,
    PreKeyBundle,
    SignedPreKey,
    SignedPreKeyPublic,
)
from ._devices import DeviceMessages, ProtocolAddress
from ._keys import IdentityKey, IdentityKeyPair
from ._manager import Direction, SessionManager, TrustDecision, trust_on_first_use
from ._prekeys import PreKeyIds, PreKeyRing, Upkeep, UpkeepPolicy, Upload
from ._primitives import (
    DeterministicRandom,
    KemPrivateKey,
    KemPublicKey,
    PrivateKey,
    PublicKey,
    RandomSource,
    SystemRandom,
)
from ._profile import LIBSIGNAL_V3, LIBSIGNAL_V4, NATIVE, PreKeyKind, Profile
from ._session import SessionOptions
from ._stores import (
    IdentityStore,
    LocalStore,
    MemoryStore,
    PreKeyStore,
    SessionStore,
    SQLiteStore,
    Store,
    load_identity_key_pair,
    save_identity_key_pair,
)
from ._window import RatchetLimits
from ._wire_v4 import ServiceAddress
from ._x3dh import BundlePolicy
from .errors import (
    CannotSend,
    LocalError,
    NoSession,
    RemoteError,
    SignalishError,
    StoreError,
    UntrustedIdentity,
    WrongPassword,
)

__version__ = "0.1.0"

__all__ = [
    # the manager, its options and trust
    "SessionManager", "SessionOptions", "RatchetLimits", "BundlePolicy",
    "TrustDecision", "Direction", "trust_on_first_use", "ServiceAddress",
    "ProtocolAddress", "DeviceMessages",
    # stores
    "Store", "IdentityStore", "PreKeyStore", "SessionStore", "LocalStore", "MemoryStore",
    "SQLiteStore", "load_identity_key_pair", "save_identity_key_pair",
    # asyncio
    "AsyncSessionManager", "AsyncStore", "AsyncSQLiteStore",
    # profiles and randomness
    "Profile", "NATIVE", "LIBSIGNAL_V3", "LIBSIGNAL_V4", "PreKeyKind",
    "RandomSource", "SystemRandom", "DeterministicRandom",
    # keys, prekeys and bundles
    "IdentityKeyPair", "IdentityKey", "PrivateKey", "PublicKey", "KemPrivateKey", "KemPublicKey",
    "SignedPreKey", "SignedPreKeyPublic", "OneTimePreKey", "OneTimePreKeyPublic",
    "KemPreKey", "KemPreKeyPublic", "PreKeyBundle", "PreKeyRing",
    "PreKeyIds", "UpkeepPolicy", "Upkeep", "Upload",
    # errors: the roots and those caught by name in normal flow (the rest: signalish.errors)
    "SignalishError", "LocalError", "RemoteError", "StoreError",
    "UntrustedIdentity", "NoSession", "CannotSend", "WrongPassword",
]

#: Names that moved to a module of their own: still importable from
#: ``signalish``, with a DeprecationWarning naming their new home.
_MOVED: Final = {
    **dict.fromkeys(("AttachmentKey", "AttachmentMetadata", "AttachmentEncryptor",
                     "AttachmentDecryptor", "PlaintextSink", "encrypt_attachment",
                     "decrypt_attachment", "attachment_padded_size", "attachment_blob_size"),
                    "signalish.attachments"),
    **dict.fromkeys(("SafetyNumber", "FingerprintMatch", "compare_scannable"),
                    "signalish.fingerprint"),
    **dict.fromkeys(("BackupParams", "create_backup", "restore_backup"), "signalish.backup"),
    **dict.fromkeys(("SealedBoxSuite", "SealedBoxPrivateKey", "SealedBoxPublicKey"),
                    "signalish.sealed_box"),
    **dict.fromkeys(("DecryptionErrorMessage", "plaintext_content", "parse_plaintext_content",
                     "Recovery", "RecoveryPolicy"), "signalish.recovery"),
}


if not TYPE_CHECKING:  # a type checker reports the old import, which is the point
    def __getattr__(name: str) -> Any:
        module = _MOVED.get(name)
        if module is None:
            raise AttributeError(f"module 'signalish' has no attribute {name!r}")
        warnings.warn(f"signalish.{name} moved to {module}.{name}; import it from there",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(module), name)
