"""SessionManager: the API an application talks to.

It ties together one local identity, a :class:`~signalish.Store`, the
handshake and the ratchet.  Every public method is one store transaction:
read state, compute, write state, commit.  If anything raises, the store is
as it was before the call (the transaction rolls back), so callers can
simply retry or drop the input.

Identity changes (like libsignal's IdentityKeyStore): before a session is
built with a peer's identity key, ``trust(address, stored, received)`` is
asked.  The default, :func:`trust_on_first_use`, accepts a first key and the
same key again, and refuses a changed one with
:class:`~signalish.UntrustedIdentity`; after the user has verified the new
key, :meth:`SessionManager.trust_identity` records it.
"""

from __future__ import annotations

from collections.abc import Callable

from ._bundle import PreKeyBundle
from ._errors import AuthenticationError, NoSession, PolicyViolation, UnsupportedByProfile, UntrustedIdentity
from ._keys import IdentityKey, IdentityKeyPair
from ._message import EncryptedFrame, PreKeyFrame, parse
from ._message import message_type as native_message_type
from ._prekeys import PreKeyRing
from ._primitives import RandomSource, SystemRandom
from ._profile import NATIVE, Profile
from ._ratchet import Frame, RatchetState, ratchet_decrypt
from ._session import Session, SessionOptions, SessionRecord
from ._stores import Store
from ._wire_v3 import V3PreKeyFrame, message_type_v3, parse_v3
from ._x3dh import BundlePolicy, initiate, respond

__all__ = ["SessionManager", "TrustDecision", "trust_on_first_use"]

TrustDecision = Callable[[str, IdentityKey | None, IdentityKey], bool]


def trust_on_first_use(address: str, stored: IdentityKey | None, received: IdentityKey) -> bool:
    """Trust a peer's first identity key, and later only that same key."""
    return stored is None or stored == received


class SessionManager:
    """Encrypts to and decrypts from peers named by an application-chosen
    address string, keeping all state in ``store``."""

    def __init__(self, identity: IdentityKeyPair, store: Store, profile: Profile = NATIVE, *,
                 rng: RandomSource | None = None, options: SessionOptions = SessionOptions(),
                 policy: BundlePolicy = BundlePolicy(),
                 trust: TrustDecision = trust_on_first_use) -> None:
        if options.header_encryption and profile.wire != "native":
            raise UnsupportedByProfile(f"profile {profile.name} has no header encryption")
        self.identity = identity
        self.store = store
        self.profile = profile
        self.rng: RandomSource = rng if rng is not None else SystemRandom()
        self.options = options
        self.policy = policy
        self.trust = trust

    # --- helpers ----------------------------------------------------------------

    def _record(self, address: str) -> SessionRecord | None:
        data = self.store.load_session(address)
        return None if data is None else SessionRecord.from_bytes(data)

    def _check_trust(self, address: str, key: IdentityKey) -> None:
        stored = self.store.get_identity(address)
        if not self.trust(address, stored, key):
            raise UntrustedIdentity(address, stored, key)
        if stored != key:
            self.store.save_identity(address, key)

    # --- public API ----------------------------------------------------------------

    def _parse(self, message: bytes) -> Frame | PreKeyFrame | V3PreKeyFrame:
        limit = self.options.limits.max_message_size
        return parse_v3(message, limit) if self.profile.wire == "libsignal_v3" \
            else parse(message, limit)

    def message_type(self, message: bytes) -> int:
        """The type code an envelope should carry: libsignal's 2 (SignalMessage)
        or 3 (PreKeySignalMessage) under ``libsignal_v3``; the type tag (0x40,
        0x41, 0x42) under ``native``."""
        if self.profile.wire == "libsignal_v3":
            return message_type_v3(message)
        return native_message_type(message)

    def has_session(self, address: str) -> bool:
        return self.store.load_session(address) is not None

    def trust_identity(self, address: str, key: IdentityKey) -> None:
        """Record ``key`` as the trusted identity of ``address``."""
        with self.store.transaction():
            self.store.save_identity(address, key)

    def initiate(self, address: str, bundle: PreKeyBundle, *,
                 kem_encapsulation: tuple[bytes, bytes] | None = None) -> None:
        """Start a session from ``bundle`` (X3DH/PQXDH as initiator).  The new
        session becomes current; messages to ``address`` carry the initial
        header until the peer answers.

        Raises what :func:`~signalish.initiate` raises, and
        :class:`~signalish.UntrustedIdentity`.  ``kem_encapsulation`` is for
        reproducible test vectors only (see :func:`~signalish.initiate`).
        """
        with self.store.transaction():
            self._check_trust(address, bundle.identity_key)
            agreement = initiate(self.identity, bundle, self.profile, policy=self.policy,
                                 rng=self.rng, kem_encapsulation=kem_encapsulation)
            he = self.options.header_encryption
            state = RatchetState.init_alice(self.profile, agreement.shared_secret,
                                            bundle.signed_prekey.public_key, self.rng, he)
            session = Session(
                remote_identity=bundle.identity_key, local_identity=self.identity.public,
                associated_data=agreement.associated_data, initial_header=agreement.header,
                initiated_by_us=True, pending=True, state=state, limits=self.options.limits)
            record = self._record(address) or SessionRecord(self.profile, self.options.max_archived)
            record.sessions.insert(0, session)
            del record.sessions[1 + record.max_archived:]
            self.store.save_session(address, record.to_bytes())

    def encrypt(self, address: str, plaintext: bytes) -> bytes:
        """Encrypt with the current session.  Raises :class:`~signalish.NoSession`."""
        with self.store.transaction():
            record = self._record(address)
            if record is None:
                raise NoSession(f"no session with {address!r}")
            message = record.encrypt(plaintext, self.options.registration_id)
            self.store.save_session(address, record.to_bytes())
        return message

    def decrypt(self, address: str, message: bytes, *, now: int,
                deliver: Callable[[bytes], None] | None = None) -> bytes:
        """Decrypt a message from ``address``; a PreKeyMessage from an unknown
        session builds one (X3DH/PQXDH as responder) and consumes the
        one-time prekeys it used.

        ``deliver``, if given, is called with the plaintext inside the store
        transaction, before it commits: an application that saves the
        plaintext there (for example in the same SQLite file) gets the
        plaintext and the new state committed together.  If ``deliver``
        raises, nothing is committed and the message can be decrypted again.

        Raises a :class:`~signalish.DecodeError` for malformed bytes,
        :class:`~signalish.AuthenticationError` for anything forged or
        undecryptable, a :class:`~signalish.MessageRejected` subclass for
        duplicates and messages outside the window, a
        :class:`~signalish.PreKeyError` for a PreKeyMessage whose prekeys are
        gone, :class:`~signalish.UntrustedIdentity`, or
        :class:`~signalish.NoSession`.  Whatever it raises, no state changed.
        """
        frame = self._parse(message)
        with self.store.transaction():
            record = self._record(address)
            if isinstance(frame, (PreKeyFrame, V3PreKeyFrame)):
                record = record or SessionRecord(self.profile, self.options.max_archived)
                plaintext = self._decrypt_prekey(address, record, frame, now)
            else:
                if record is None:
                    raise NoSession(f"no session with {address!r}")
                plaintext = record.decrypt(frame, now=now, rng=self.rng)
            self.store.save_session(address, record.to_bytes())
            if deliver is not None:
                deliver(plaintext)
        return plaintext

    def _decrypt_prekey(self, address: str, record: SessionRecord,
                        frame: PreKeyFrame | V3PreKeyFrame, now: int) -> bytes:
        header = frame.header
        session = record.find(header.base_key.raw)
        if session is not None:
            if not session.matches_initial(header):
                raise AuthenticationError("decryption failed")
            plaintext = session.decrypt(frame.inner, now=now, rng=self.rng)
            record.install(session)
            return plaintext
        he = isinstance(frame.inner, EncryptedFrame)
        if self.options.header_encryption and not he:
            raise PolicyViolation("session without header encryption refused by options")
        self._check_trust(address, header.identity_key)
        ring_bytes = self.store.load_prekeys()
        if ring_bytes is None:
            raise NoSession("no prekeys in the store")
        ring = PreKeyRing.from_bytes(ring_bytes, self.identity)
        agreement = respond(ring, header, now=now, policy=self.policy)
        spk = ring.signed_prekey(header.signed_prekey_id, now=now).private_key
        state = RatchetState.init_bob(self.profile, agreement.shared_secret, spk, he)
        session = Session(
            remote_identity=header.identity_key, local_identity=self.identity.public,
            associated_data=agreement.associated_data, initial_header=header,
            initiated_by_us=False, pending=False, state=state, limits=self.options.limits)
        plaintext = ratchet_decrypt(state, frame.inner, session._ad(False), now=now,
                                    rng=self.rng, limits=session.limits)
        ring.consume(header, now=now)
        self.store.save_prekeys(ring.to_bytes())
        record.install(session)
        return plaintext
