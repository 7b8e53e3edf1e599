"""The exception hierarchy.

Like h11, errors are split by who is at fault:

* :class:`LocalError`: the caller used the API wrongly (a bad argument, a
  profile that cannot do what was asked, a session that cannot send, a
  wrong password).  Fix the calling code or ask the user again.
* :class:`RemoteError`: bytes or keys that came from elsewhere (a peer, a
  server, a backup blob) are malformed, forged or no longer valid.  Drop
  the input.
* :class:`StoreError`: the application's own storage failed or holds
  damaged state.  Neither the caller nor the peer is at fault; see
  docs/security.md.

Every exception signalish raises on purpose is a :class:`SignalishError`,
and every class is importable from :mod:`signalish.errors`, whose docstring
draws the whole tree (checked against these classes by tests/test_docs.py).
Messages never contain secret material.
"""

from __future__ import annotations

__all__ = [
    "SignalishError",
    "StoreUnavailable",
    "SchemaTooNew",
    "InvalidCertificate",
    "CertificateExpired",
    "SealedSenderSelfSend",
    "LocalError",
    "InvalidArgument",
    "UnsupportedByProfile",
    "RemoteError",
    "DecodeError",
    "TruncatedInput",
    "TrailingBytes",
    "UnknownVersion",
    "UnexpectedType",
    "InvalidLength",
    "InvalidEncoding",
    "InvalidKey",
    "InvalidSignature",
    "AuthenticationError",
    "PolicyViolation",
    "PreKeyError",
    "UnknownPreKey",
    "PreKeyAlreadyUsed",
    "PreKeyExpired",
    "MessageRejected",
    "DuplicateMessage",
    "MessageKeyEvicted",
    "MessageKeyExpired",
    "TooFarAhead",
    "UntrustedIdentity",
    "NoSession",
    "StaleSession",
    "ChainExhausted",
    "CorruptState",
    "PreKeyReplayed",
    "StoreError",
    "StoreBusy",
    "StoreRolledBack",
]


class SignalishError(Exception):
    """Base class of every error signalish raises on purpose."""


# --- the caller's fault -------------------------------------------------------


class LocalError(SignalishError):
    """The caller misused the API."""


class InvalidArgument(LocalError, ValueError):
    """An argument has the wrong type, length or range."""


class CannotSend(LocalError):
    """A session exists but cannot encrypt now; which subclass says why and
    what to do.  Nothing changed."""


class AwaitingFirstMessage(CannotSend):
    """The session has no sending chain yet: under the Double Ratchet a
    responder sends only after a message from the initiator arrived."""


class StaleSession(CannotSend):
    """The session may have sent messages that this copy of its state does
    not know about: it was restored from a backup, or the store was rolled
    back.  Encrypting on it could reuse a message key, so it only receives
    until the peer's next DH ratchet step gives it a fresh sending chain.
    Start a new session from a fresh bundle to send now."""


class ChainExhausted(CannotSend):
    """The sending chain has used all 2**32 - 1 message numbers; start a new
    session."""


class UnsupportedByProfile(LocalError):
    """The selected profile cannot perform the requested operation
    (for example PQXDH under ``libsignal_v3``)."""


# --- bad input from elsewhere -------------------------------------------------


class RemoteError(SignalishError):
    """Input that came from outside (peer, server, disk) is unacceptable."""


class NoSession(LocalError, RemoteError):
    """There is no session with that address: fetch a bundle and start one
    (on encrypt: the application's own state, a LocalError), or ask the
    sender to start over (on decrypt: a message no session here can read,
    so also a RemoteError, caught with the other bad input)."""


class DecodeError(RemoteError, ValueError):
    """Bytes do not parse as the expected structure.

    The message names the structure and the problem, never the secret bytes.
    """


class TruncatedInput(DecodeError):
    """The input ended before the structure was complete."""


class TrailingBytes(DecodeError):
    """Bytes follow a complete structure."""


class UnknownVersion(DecodeError):
    """The format version is not one this release reads."""


class UnexpectedType(DecodeError):
    """The type tag names a different structure than the one expected."""


class InvalidLength(DecodeError):
    """A length field or a fixed-size field has an impossible value."""


class InvalidEncoding(DecodeError):
    """A field's value is outside its domain (non-canonical, out of range)."""


class InvalidKey(RemoteError, ValueError):
    """A public key is not acceptable: wrong size, non-canonical encoding,
    a low-order point, or a Diffie-Hellman result of all zeros."""


class InvalidSignature(RemoteError):
    """A signature did not verify."""


class AuthenticationError(RemoteError):
    """Decryption failed.  Deliberately says nothing about which check failed."""


class PolicyViolation(RemoteError):
    """A bundle or initial message is well-formed and authentic, but the
    caller's :class:`~signalish.BundlePolicy` refuses it (for example it uses
    no KEM prekey and the policy requires PQXDH)."""


class InvalidCertificate(RemoteError):
    """A sender certificate does not chain to a trusted root: a signature
    failed or the signer is not trusted."""


class CertificateExpired(InvalidCertificate):
    """A sender certificate is authentic but its expiration is before ``now``."""


class SealedSenderSelfSend(RemoteError):
    """A sealed message names this very device (UUID and device id) as its sender."""


class PreKeyError(RemoteError):
    """A prekey named by an initial message cannot be used."""


class UnknownPreKey(PreKeyError):
    """No prekey with that id was ever issued by this owner."""


class PreKeyAlreadyUsed(PreKeyError):
    """The one-time prekey with that id was already taken."""


class PreKeyReplayed(PreKeyError):
    """An initial message that used no one-time prekey repeats an earlier
    one: the same base key was already accepted with that signed prekey."""


class PreKeyExpired(PreKeyError):
    """The signed prekey with that id was retired and its grace period is over."""


class MessageRejected(RemoteError):
    """A well-formed message that the skipped-key window refuses.  Nothing
    in the session changed."""


class DuplicateMessage(MessageRejected):
    """This message was already decrypted."""


class MessageKeyEvicted(MessageRejected):
    """The message is older than the window: its key (or its whole chain) was
    evicted to respect a storage limit."""


class MessageKeyExpired(MessageRejected):
    """The message is older than the window: its key (or its whole chain)
    expired by age or by ratchet steps."""


class TooFarAhead(MessageRejected):
    """The message would make the session skip more keys than ``max_skip``."""


class UntrustedIdentity(RemoteError):
    """The peer's identity key differs from the one stored and the trust
    decision refused it.  ``address``, ``stored`` and ``received`` say which."""

    def __init__(self, address: str, stored: object, received: object) -> None:
        super().__init__(f"identity key of {address!r} changed and is not trusted")
        self.address = address
        self.stored = stored
        self.received = received


# --- the storage -------------------------------------------------------------


class StoreError(SignalishError):
    """The application's own storage failed: it could not carry out a
    transaction (nothing was written), or it holds damaged state."""


class StoreBusy(StoreError):
    """Another connection (often another process) held the store's write
    lock for longer than the store's timeout.  Retry later."""


class StoreRolledBack(StoreError):
    """The store is older than one this process (or the application's own
    record of its generation) has already seen: it was rolled back.  See
    docs/security.md for what to do."""


class StoreUnavailable(StoreError):
    """The database cannot be reached, or the connection to it was lost:
    nothing was committed (except where the message says the outcome of a
    ``COMMIT`` is unknown), and the same call can be retried once it is back."""


class SchemaTooNew(StoreError):
    """The database schema is newer than this version of signalish knows:
    upgrade signalish here before using that database."""


class CorruptState(StoreError):
    """Stored state failed its integrity check (truncated or altered on
    disk): a serialized identity, prekey ring or session record, or an
    SQLiteStore row.  It came from our own storage, not from a peer, so it is
    a :class:`StoreError`, not a :class:`DecodeError`; restore the data from
    a backup or start the affected sessions again."""
