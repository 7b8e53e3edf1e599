"""SessionManager: the API an application talks to.

It ties together one local identity, a :class:`~signalish.Store`, the
handshake and the ratchet.  Every public method is one store transaction:
read state, compute, write state, commit.  If anything raises, the store is
as it was before the call (the transaction rolls back), so callers can
simply retry or drop the input.

Trust (like libsignal's IdentityKeyStore.isTrustedIdentity): the decision
``trust(address, stored, received, direction)`` is asked on every use of a
peer's identity key, not only when a session is built: before a session is
created from a bundle or an initial message, before every encryption
(:attr:`Direction.SENDING`) and before a message is decrypted in a session
(:attr:`Direction.RECEIVING`, with that session's identity: a session the
decision refuses never decrypts).  The default, :func:`trust_on_first_use`,
accepts a first key and the same key again, and refuses a changed one with
:class:`~signalish.UntrustedIdentity`; after the user has verified a new
key, :meth:`SessionManager.trust_identity` records it.  A session whose
identity is no longer the trusted one can then neither send nor receive
until the application trusts that identity again or starts a new session.

Restores and rollbacks: a session whose state may be older than what it
already sent must not send again (its next message key could be one already
used).  :func:`~signalish.backup.restore_backup` and :meth:`SessionManager.mark_restored`
make every session receive-only; encrypting then raises
:class:`~signalish.errors.StaleSession` until the peer's next DH ratchet step or a
new session (:meth:`SessionManager.initiate`).

Prekeys: the store owns them.  :meth:`SessionManager.prekeys` opens the ring
inside a transaction and writes it back when the block ends; the ring object
it yields refuses changes after that, so no stale copy can put used one-time
prekeys back.

Speed: the manager keeps up to ``cache_size`` parsed session records (and
the prekey ring and the trusted identities) between calls, so a message
costs the ratchet's work plus writing the rows it changed (docs/formats.md,
"Store rows"), not parsing the record again.  The cache is trusted only
while the store's ``generation`` is the one the manager's own last commit
left: another manager, process or connection that writes the store makes it
start over; a call that fails after changing a cached record drops that
record; a call made inside a transaction already open (the application's,
which may still roll back, or another manager's call, from a callback)
trusts nothing cached, since writes made in that transaction are not yet in
the generation, and leaves nothing trusted.  A call inside which another
manager's call ran on the same store (from ``deliver`` or a trust decision)
writes nothing more: what it holds may be behind what that call wrote, so
it raises :class:`~signalish.errors.InvalidArgument` instead, as does any
call of that manager nested in it that would write.  A manager serves one
thread at a time; threads that share a store each use their own manager.
"""

from __future__ import annotations

import enum
from types import TracebackType
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final

from ._bundle import PreKeyBundle
from ._devices import Address, DeviceMessages, ProtocolAddress, address_keys
from ._errors import (
    AuthenticationError,
    CorruptState,
    DecodeError,
    InvalidArgument,
    MessageKeyEvicted,
    MessageKeyExpired,
    NoSession,
    PreKeyError,
    PolicyViolation,
    SignalishError,
    StoreError,
    UnsupportedByProfile,
    UnknownPreKey,
    UntrustedIdentity,
)
from ._keys import IdentityKey, IdentityKeyPair
from ._prekeys import PreKeyIds, PreKeyRing, Upload, UpkeepPolicy
from ._primitives import RandomSource, SystemRandom, ct_equal
from ._profile import NATIVE, Profile
from ._ratchet import Received
from ._recovery import DecryptionErrorMessage, parse_plaintext_content, plaintext_content
from ._padding import pad, unpad
from ._session import BundlePolicy, Session, SessionOptions, SessionRecord
from ._storage import (
    Rows,
    forget_own_sender_keys,
    load_record,
    load_ring,
    record_bytes,
    save_record,
    save_ring,
)
from ._stores import RESERVED_PREFIX, Store, save_reserved_local
from ._wires import wire_format
from ._wire import InitialMessage
from ._wire_v4 import ServiceAddress, addresses_field

__all__ = ["SessionManager", "TrustDecision", "Direction", "trust_on_first_use", "Outcome",
           "Recovery", "RecoveryPolicy"]


class Direction(enum.Enum):
    """Which way a message goes when trust is asked (libsignal's Direction)."""

    SENDING = "sending"
    RECEIVING = "receiving"


#: ``trust(address, stored, received, direction) -> bool``: whether to use
#: ``received`` as the identity of ``address``, given the key the store holds
#: as trusted (``stored``, None if none yet).  The name is the peer's
#: address string, or for a :class:`ProtocolAddress` its user's name: trust
#: is decided per user, for every device of an account at once.
TrustDecision = Callable[[str, IdentityKey | None, IdentityKey, Direction], bool]


#: Where the manager keeps each device's registration id (local data, under
#: the session key), when the store keeps local data.
_REGISTRATION: Final = RESERVED_PREFIX + "registration:"


def trust_on_first_use(address: str, stored: IdentityKey | None, received: IdentityKey,
                       direction: Direction) -> bool:
    """Trust a peer's first identity key, and later only that same key, in
    both directions."""
    return stored is None or stored == received


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one message of :meth:`SessionManager.decrypt_batch`:
    the plaintext, or the error that message alone raised."""

    address: Address
    plaintext: bytes | None = field(repr=False)  # a message: never in a log line
    error: SignalishError | None

    @property
    def ok(self) -> bool:
        return self.error is None


#: The managers inside a call on each store (by id), outermost first, so that
#: a manager whose transaction another manager's call ran inside (from a
#: ``deliver`` callback, say) knows that its cached records may be behind.
#: A store that stands for another (AsyncSessionManager's bridge to an
#: asyncio store) names it as ``_shared_store``: managers on one asyncio
#: store see each other's calls although each has its own bridge.
_OPEN: dict[int, list[SessionManager]] = {}


class _Call:
    """One manager call's store transaction (see
    :meth:`SessionManager._transaction`); a class, not a generator, because
    every call enters one."""

    __slots__ = ("_manager", "_touched", "_inner", "_nested", "_own", "_key")

    def __init__(self, manager: SessionManager, touched: set[str]) -> None:
        self._manager, self._touched = manager, touched
        # Whether this call runs inside a call of the same manager (from one
        # of its callbacks) with no other manager's call since: then it
        # shares that call's transaction and its cache, and that call, not
        # this one, decides at its end what the cache is worth.
        self._own = False

    def __enter__(self) -> None:
        manager = self._manager
        store = manager.store
        manager._ring_changed = False
        # Inside the application's own transaction, this call's writes commit
        # (or not) when that one ends: nothing cached may be trusted after it.
        self._nested = bool(getattr(store, "in_transaction", False))
        inner = self._inner = store.transaction()
        inner.__enter__()
        # The store's transaction is held from here, so no other thread
        # touches this store's entry until it ends.
        key = self._key = id(getattr(store, "_shared_store", store))
        stack = _OPEN.get(key)
        # Inside a transaction already open, writes made in it are not yet
        # in the generation: the cache may miss them, unless this is a call
        # of this manager nested in its own, with no other manager's since.
        stale = self._nested
        if stack is None:
            _OPEN[key] = [manager]
            manager._foreign = False
            manager._own_wrote = False
        else:  # nested in a call on this store: this one's or another manager's
            own = manager in stack
            if not own:
                manager._foreign = False
            stale = not own or manager._foreign
            self._own = not stale
            for other in stack:
                if other is not manager:
                    other._foreign = True  # it may have cached what this call changes
            stack.append(manager)
        try:
            generation = store.generation
            if stale or generation != manager._cache_generation:
                manager._cache.clear()  # someone else wrote: start over
                manager._identities.clear()
                manager._ring = None
                # What is cached from here on was read in this transaction:
                # calls of this manager nested in this one may trust it (this
                # call's end decides what it is worth afterwards).
                manager._cache_generation = generation
        except BaseException as error:
            self._leave()
            inner.__exit__(type(error), error, error.__traceback__)
            raise

    def _leave(self) -> None:
        manager = self._manager
        key = self._key
        stack = _OPEN.get(key)
        if stack is None:
            return
        if len(stack) == 1:
            del _OPEN[key]
            return
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is manager:
                del stack[i]
                break

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        manager = self._manager
        store = manager.store
        key = self._key
        stack = _OPEN.get(key)
        if stack is not None and len(stack) == 1:
            del _OPEN[key]  # the outermost call (the common case)
        else:
            self._leave()
        try:
            self._inner.__exit__(kind, error, trace)  # commits, or rolls back
        except BaseException:
            self._failed()
            raise
        if kind is not None:
            self._failed()
            return
        if self._own:
            # Its writes are in the enclosing call's transaction, which may
            # still fail: that call then drops everything (see _failed).
            # Until then the cache, this call's changes included, is what
            # that transaction holds, so nothing is trimmed or distrusted.
            manager._own_wrote = True
            return
        if len(manager._cache) > manager._cache_size or not manager._cache_size:
            manager._trim()
        # Another manager's call ran inside this one: what it wrote is in
        # this commit's generation, and not in this manager's cache.
        trusted = not (self._nested or manager._foreign)
        manager._cache_generation = store.generation if trusted else None

    def _failed(self) -> None:
        manager = self._manager
        manager._identities.clear()
        if not self._own and manager._own_wrote:
            # A call of this manager nested in this one changed records or
            # the ring, and this transaction rolled that back too.
            manager._cache.clear()
            manager._ring = None
        for address in self._touched:
            manager._cache.pop(address, None)
        if manager._ring_changed:
            manager._ring = None
        if self._nested and not self._own:
            # Read inside the application's transaction, which may yet roll
            # back what this call read: trust nothing cached.
            manager._cache_generation = None
        if not self._own:
            manager._trim()


class SessionManager:
    """Encrypts to and decrypts from peers named by an application-chosen
    address string, keeping all state in ``store``.

    ``local_address`` and ``service_address`` (libsignal_v4 only): this
    party's Signal service address, and a function from a peer's address
    string to its service address (None if it has none).  When both give
    one, a session with SPQR writes them into its PreKeyMessages (field 6,
    as libsignal 0.92 and later do), and a received PreKeyMessage that
    carries addresses must name the peer as sender and this party as
    recipient, or it is refused as :class:`~signalish.errors.AuthenticationError`
    (libsignal refuses it the same way); one that carries none is accepted,
    as libsignal accepts it.  Without ``local_address`` received addresses
    are not checked."""

    def __init__(self, identity: IdentityKeyPair, store: Store, profile: Profile = NATIVE, *,
                 rng: RandomSource | None = None, options: SessionOptions = SessionOptions(),
                 policy: BundlePolicy = BundlePolicy(),
                 trust: TrustDecision = trust_on_first_use, cache_size: int = 256,
                 local_address: ServiceAddress | None = None,
                 service_address: Callable[[str], ServiceAddress | None] | None = None
                 ) -> None:
        if not 0 <= cache_size <= 1_000_000:
            raise InvalidArgument("cache_size must be 0..1,000,000 records")
        # Parsed records and the rows they were read from or last written as.
        self._cache: OrderedDict[str, tuple[SessionRecord, Rows]] = OrderedDict()
        # Whether another manager's call ran inside this manager's running
        # call (see _OPEN): then nothing cached is trusted afterwards.
        self._foreign = False
        # Whether a call of this manager nested in its running call (from a
        # callback) completed: if the running call fails, that call's
        # changes to the cache are rolled back with it.
        self._own_wrote = False
        self._cache_size = cache_size
        self._cache_generation: int | None = None
        # The parsed prekey ring and its rows, kept like the records; None
        # when not loaded.  ``_ring_changed`` marks a ring changed inside the
        # running transaction (dropped if that transaction fails).
        self._ring: tuple[PreKeyRing, Rows] | None = None
        self._ring_changed = False
        # While a prekeys() block is open, its ring is the one that will be
        # written: nothing else may consume prekeys meanwhile.
        self._prekeys_open = False
        # Peers' identity keys as the store holds them (None: none stored),
        # kept like the records: trusted only while the generation is the
        # one this manager's last commit left; dropped when a call fails.
        self._identities: dict[str, IdentityKey | None] = {}
        self.wire = wire_format(profile)
        if options.header_encryption and not self.wire.header_encryption:
            raise UnsupportedByProfile(f"profile {profile.name} has no header encryption")
        self.identity = identity
        self.store = store
        self.profile = profile
        self.rng: RandomSource = rng if rng is not None else SystemRandom()
        self.options = options
        self.policy = policy
        self.trust = trust
        #: libsignal_v4's addresses field: this party's service address, and
        #: the service address of a peer's address string (or None).  With
        #: both, PreKeyMessages of sessions with SPQR carry them and received
        #: ones must carry the right ones (see :meth:`decrypt`).
        self.local_address = local_address
        self.service_address = service_address

    # --- helpers ----------------------------------------------------------------

    def _transaction(self, touched: set[str]) -> _Call:
        """A store transaction.  ``touched`` collects the addresses whose
        cached record was changed; if the transaction fails they are dropped
        from the cache (the store rolled back, the objects did not)."""
        return _Call(self, touched)

    def _trim(self) -> None:
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        if not self._cache_size:
            self._identities.clear()
            self._ring = None

    def _entry(self, address: str) -> tuple[SessionRecord, Rows] | None:
        entry = self._cache.get(address)
        if entry is not None:
            self._cache.move_to_end(address)
            return entry
        entry = load_record(self.store, address)
        if entry is not None:
            self._cache[address] = entry
        return entry

    def _record(self, address: str) -> SessionRecord | None:
        entry = self._cache.get(address)  # _entry, written out: every call
        if entry is not None:
            self._cache.move_to_end(address)
            return entry[0]
        entry = self._entry(address)
        return None if entry is None else entry[0]

    def _refuse_foreign(self) -> None:
        """Raise: another manager's call ran inside this manager's open call
        on the same store (from a callback), so what this call holds may be
        older than what that one wrote, and writing it could put a sending
        chain or the prekey ring back.  Called before every write."""
        raise InvalidArgument("another SessionManager was called on this store inside this "
                              "call; it writes nothing, and is rolled back")

    def _save(self, address: str, record: SessionRecord) -> None:
        """Write the rows of ``record`` that changed (all of them for a new
        record).  The cache keeps it, trimmed to ``cache_size`` when the
        transaction ends.  A record left without any session (archiving with
        ``max_archived=0``) is deleted: there is nothing to keep."""
        if self._foreign:
            self._refuse_foreign()
        if not record.sessions:
            self._cache.pop(address, None)
            self.store.delete_session(address)
            self._forget_registration(address)
            return
        cache = self._cache
        entry = cache.get(address)
        if entry is not None and entry[0] is record:
            rows = save_record(self.store, address, record, entry[1])
            if rows is not entry[1]:  # the rows dict is updated in place as a rule
                cache[address] = (record, rows)
        else:
            if entry is not None:
                # A call nested in this one (from a callback) saved another
                # record for this address since this one was read: writing
                # this one would drop what that call wrote.
                raise InvalidArgument(f"a SessionManager call made inside this one changed the "
                                      f"sessions with {address!r}; this call writes nothing")
            cache[address] = (record, save_record(self.store, address, record,
                                                  self._stored_rows(address)))
        cache.move_to_end(address)

    def _save_moved(self, address: str, record: SessionRecord, session: Session) -> None:
        """:meth:`_save` after a message that left ``record``'s sessions and
        their order as they were and changed only ``session``: when only its
        counters row can differ (the next message of a chain, without
        SPQR), that row alone is written; otherwise the record is saved."""
        if self._foreign:
            self._refuse_foreign()
        cache = self._cache
        entry = cache.get(address)
        if entry is not None and entry[0] is record:
            rows = entry[1]
            update = session.counters_update(rows)
            if update is not None:
                part, row = update
                if rows.get(part) is not row:
                    self.store.save_session(address, row, part)
                    rows[part] = row
                cache.move_to_end(address)
                return
        self._save(address, record)

    def _stored_rows(self, address: str) -> Rows:
        """The rows the store holds for ``address`` (for a record the cache
        did not load: the manager replaces them)."""
        loaded = load_record(self.store, address)
        return {} if loaded is None else loaded[1]

    def _load_ring(self) -> tuple[PreKeyRing, Rows] | None:
        if self._ring is None:
            self._ring = load_ring(self.store, self.identity)
        return self._ring

    def _identity_of(self, user: str) -> IdentityKey | None:
        """The identity key trusted for ``user`` (an address's identity key
        name, see :func:`address_keys`), or None."""
        identities = self._identities
        if user in identities:
            return identities[user]
        key = identities[user] = self.store.get_identity(user)
        if len(identities) > 4 * max(self._cache_size, 1):
            identities.clear()
            identities[user] = key
        return key

    def _save_identity(self, user: str, key: IdentityKey) -> None:
        if self._foreign:
            self._refuse_foreign()
        self.store.save_identity(user, key)
        self._identities[user] = key

    def _remember_registration(self, address: str, registration_id: int | None) -> None:
        """Keep the registration id of the device at ``address`` (from the
        bundle a session started from, or a PreKeySignalMessage that
        started one), if the store keeps local data."""
        if registration_id is None:
            return
        save_reserved_local(self.store, _REGISTRATION + address, registration_id.to_bytes(4, "big"))

    def _forget_registration(self, address: str) -> None:
        delete = getattr(self.store, "delete_local", None)
        if delete is not None:
            delete(_REGISTRATION + address)

    def registration_id(self, address: Address) -> int | None:
        """The registration id last learned for the device at ``address``:
        from the bundle a session was started from, or (libsignal profiles)
        from the PreKeySignalMessage with which the device started one.
        None if none was ever learned (only sessions the peer started under
        the native profile, whose PreKeyMessages carry no registration id),
        after :meth:`delete_sessions`, or with a store that keeps no local
        data.  It belongs to the device's installation, not to a session: a
        device that registered again and wrote first under the native
        profile still shows its old id, until the server's answer that it
        is stale brings a new bundle (:meth:`update_devices`).  A server
        compares it to tell a stale device from a current one, and sealed
        sender v2 carries it."""
        load = getattr(self.store, "load_local", None)
        data = None if load is None else load(_REGISTRATION + address_keys(address)[0])
        if data is None or len(data) != 4:
            return None
        return int.from_bytes(data, "big")

    def _check_trust(self, user: str, key: IdentityKey, direction: Direction, *,
                     record_new: bool) -> IdentityKey | None:
        """Ask the trust decision; raise :class:`UntrustedIdentity` if it
        refuses.  Returns the key to record as ``user``'s identity once the
        operation has succeeded, or None: ``record_new`` means a session is
        being built with ``key``, which then becomes the stored identity;
        otherwise only a first key is recorded (an existing session never
        overwrites the trusted key).  Recording waits for success so that a
        refused message changes nothing, even inside a batch."""
        identities = self._identities
        stored = identities[user] if user in identities else self._identity_of(user)
        if stored is key:
            # The key already decided on (the cache holds the very object
            # the session carries): trust-on-first-use would say yes
            # without being asked, so it is not.
            if self.trust is trust_on_first_use:
                return None
        elif stored is not None and self.trust is trust_on_first_use:
            if stored != key:
                raise UntrustedIdentity(user, stored, key)
            identities[user] = key  # the same key: next time ``is`` answers
            return None
        if not self.trust(user, stored, key, direction):
            raise UntrustedIdentity(user, stored, key)
        return key if stored is None or (record_new and stored != key) else None

    def _trust(self, user: str, key: IdentityKey, direction: Direction, *,
               record_new: bool) -> None:
        """:meth:`_check_trust`, recording at once (for calls whose whole
        transaction fails with them)."""
        learned = self._check_trust(user, key, direction, record_new=record_new)
        if learned is not None:
            self._save_identity(user, learned)

    # --- public API ----------------------------------------------------------------

    def message_type(self, message: bytes) -> int:
        """The type code an envelope should carry: libsignal's 2 (SignalMessage)
        or 3 (PreKeySignalMessage) under ``libsignal_v3``; the type tag (0x40,
        0x41, 0x42) under ``native``."""
        return self.wire.message_type(message)

    def has_session(self, address: Address, *, current: bool = False) -> bool:
        """Whether any session (current or archived) with ``address`` is
        stored; with ``current=True``, whether there is a current one, which
        :meth:`encrypt` needs (after :meth:`archive_session` there is none)."""
        address = address_keys(address)[0]
        if not current:
            return self.store.load_session(address, b"") is not None
        with self._transaction(set()):
            record = self._record(address)
            return record is not None and record.current is not None

    def archive_session(self, address: Address) -> bool:
        """Archive the current session with ``address``: :meth:`encrypt` then
        raises :class:`~signalish.NoSession` until :meth:`initiate` starts a
        new session (or the peer starts one, or a late message that
        decrypts in an archived session makes it current again, as libsignal
        does).  Messages still in flight on the archived session decrypt.
        Returns False, changing nothing, if there was no current session.
        The record keeps at most ``SessionOptions.max_archived`` archived
        sessions; the oldest is dropped."""
        address = address_keys(address)[0]
        touched: set[str] = set()
        with self._transaction(touched):
            record = self._record(address)
            if record is None or record.current is None:
                return False
            touched.add(address)
            record.archive_current()
            self._save(address, record)
            return True

    def delete_sessions(self, address: Address) -> bool:
        """Forget every session with ``address``, current and archived (its
        messages in flight can then no longer be decrypted).  The trusted
        identity of ``address`` is kept: :meth:`trust_identity` changes it.
        Returns False if there was none."""
        address = address_keys(address)[0]
        touched = {address}
        with self._transaction(touched):
            self._cache.pop(address, None)
            if self.store.load_session(address, b"") is None:
                return False
            self.store.delete_session(address)
            self._forget_registration(address)
            return True

    def decryption_error(self, message: bytes, *, timestamp: int, device_id: int) -> bytes:
        """What to send back to the sender of ``message``, a message that
        could not be decrypted (any :class:`~signalish.MessageRejected`,
        :class:`~signalish.errors.AuthenticationError` or
        :class:`~signalish.NoSession`): a DecryptionErrorMessage naming the
        message's ratchet key, ``timestamp`` (the envelope's, as the
        application knows it) and ``device_id`` (the sender's device).
        Under the libsignal profiles it is wrapped in a PlaintextContent, as
        libsignal sends it (envelope type 8,
        ``CiphertextMessageType.Plaintext``); under the native profile it
        is the 0x43 frame.  Changes nothing: see docs/howto.rst, "Recover a
        broken session", for when to send one.  Raises a
        :class:`~signalish.errors.DecodeError` if ``message`` does not parse."""
        kind = self.wire.message_type(message)
        error = DecryptionErrorMessage.for_original(message, kind, timestamp, device_id,
                                                    self.profile)
        if self.profile.wire == "native":
            return error.to_native_bytes()
        return plaintext_content(error)

    def process_decryption_error(self, address: Address, data: bytes) -> bool:
        """Act on a decryption error message from ``address`` (``data`` as
        :meth:`decryption_error` makes it): if it names the ratchet key the
        current session with ``address`` sends on now, the peer cannot
        decrypt that session, so it is archived and True is returned: start
        a new one (:meth:`initiate` with a fresh bundle) and resend what the
        peer missed.  Otherwise (an older ratchet key, which the session has
        since moved past; no ratchet key; no current session) nothing
        changes and False is returned.

        Such a message is unauthenticated (anyone on the path can forge it,
        the server included), so this is the only thing it may cause: the
        worst a forger gets is a new session per forgery with a ratchet key
        it saw on the wire.  Rate-limit these per sender.  Raises a
        :class:`~signalish.errors.DecodeError` for malformed bytes."""
        if self.profile.wire == "native":
            error = DecryptionErrorMessage.from_native_bytes(data)
        else:
            error = parse_plaintext_content(data)
        address = address_keys(address)[0]
        touched: set[str] = set()
        with self._transaction(touched):
            record = self._record(address)
            current = None if record is None else record.current
            if (current is None or error.ratchet_key is None
                    or not ct_equal(current.sending_ratchet_key, error.ratchet_key)):
                return False
            assert record is not None
            touched.add(address)
            record.archive_current()
            self._save(address, record)
            return True

    def export_session(self, address: Address) -> bytes | None:
        """The stored record of ``address`` (every session with it), in the
        whole-record format that test vectors and backups carry
        (docs/formats.md), or None if there is none.  For inspection and
        comparison: the store keeps it as rows, and nothing reads this back."""
        with self._transaction(set()):
            return record_bytes(self.store, address_keys(address)[0])

    def trust_identity(self, address: Address, key: IdentityKey) -> None:
        """Record ``key`` as the trusted identity of ``address`` (of its user,
        for a :class:`ProtocolAddress`: every device of an account has the
        account's identity key).  From then on, sessions with any other
        identity key can neither send nor receive (with the default trust
        decision)."""
        with self._transaction(set()):
            self._save_identity(address_keys(address)[1], key)

    def mark_restored(self, *, now: int, next_ids: PreKeyIds | None = None) -> Upload:
        """Make the stored state safe to use after the store was restored from
        an older copy (a file copied back, a file-system or VM snapshot, a
        :class:`~signalish.errors.StoreRolledBack` error), in one transaction,
        and return the new prekeys to upload.

        Sending on such state could reuse message keys already used, and its
        prekeys may have been used since, so:

        * every stored session becomes receive-only: encrypting raises
          :class:`~signalish.errors.StaleSession` until the peer's next DH
          ratchet step (a session with SPQR: for good, since its SPQR state
          went back too), or until :meth:`initiate` starts a new session;
        * the prekey ring, if the store has one, is restarted
          (:meth:`PreKeyRing.restart <signalish.PreKeyRing.restart>`, at
          ``now``): its one-time prekeys are dropped and its signed and
          last-resort KEM prekeys replaced, so no one-time prekey builds a
          second session and no initial message accepted since the copy
          can be replayed.  The returned :class:`~signalish.Upload` holds the
          new signed and last-resort prekeys; upload them, then top up the
          one-time prekeys (:meth:`upkeep`).  ``next_ids``: the id counters
          the newest ring had (see :meth:`PreKeyRing.restart
          <signalish.PreKeyRing.restart>`);
        * our own sender keys (group messaging, in a store that keeps them)
          went back too, and their next iterations were sent already: they
          are deleted, so :meth:`GroupCipher.encrypt
          <signalish.groups.GroupCipher.encrypt>` raises
          :class:`~signalish.NoSession` until
          :meth:`~signalish.groups.GroupCipher.distribution_message` makes a
          new one, to be sent to the group's members.  Other members' sender
          keys are kept (receiving on old state reuses nothing).  A store
          that keeps sender keys but cannot list or delete them raises
          :class:`~signalish.errors.InvalidArgument`, and nothing changes
          (:func:`~signalish.groups.forget_own_sender_keys`).

        :func:`~signalish.backup.restore_backup` does all of this itself.
        Inside a :meth:`prekeys` block it raises
        :class:`~signalish.errors.InvalidArgument` (that block's ring would
        be written back over the new one).
        """
        if self._prekeys_open:
            raise InvalidArgument("mark_restored cannot run inside a prekeys() block of the "
                                  "same manager: end the block first")
        touched: set[str] = set()
        with self._transaction(touched):
            for address in self.store.session_addresses():
                record = self._record(address)
                if record is not None:
                    touched.add(address)
                    record.block_sending()
                    self._save(address, record)
            forget_own_sender_keys(self.store)
            loaded = load_ring(self.store, self.identity)
            if loaded is None:
                return Upload()
            ring, old = loaded
            self._ring_changed = True
            self._ring = None
            upload = ring.restart(self.rng, now=now, next_ids=next_ids)
            if self._foreign:
                self._refuse_foreign()
            self._ring = (ring, save_ring(self.store, ring, old))
            return upload

    @contextmanager
    def prekeys(self, *, now: int) -> Iterator[PreKeyRing]:
        """The store's :class:`~signalish.PreKeyRing`, open for changes for
        the duration of a ``with`` block, inside one store transaction::

            with manager.prekeys(now=now) as ring:
                uploads = ring.generate_one_time_prekeys(100, rng)
                bundle = ring.issue_bundle()

        A ring is created (with this manager's profile and registration id)
        if the store has none.  When the block ends the ring is written back
        and closed: the object refuses further changes, so no stale copy can
        ever be saved over one from which initial messages consumed
        one-time prekeys.  If the block raises, nothing is written.

        Only one block of a manager may be open: opening another inside it
        (or calling :meth:`upkeep` or :meth:`mark_restored` there) raises
        :class:`~signalish.errors.InvalidArgument`, since the outer block
        would then write its own ring over what the inner one wrote; use the
        ring at hand (``ring.upkeep(...)``).
        """
        if self._prekeys_open:
            raise InvalidArgument("a prekeys() block of this manager is already open: use its "
                                  "ring (ring.upkeep(...) for upkeep) instead of opening another")
        with self._transaction(set()):
            loaded = load_ring(self.store, self.identity)
            if loaded is None:
                ring = PreKeyRing.create(self.identity, self.profile, self.rng, now=now,
                                         registration_id=self.options.registration_id,
                                         device_id=self.options.device_id)
                old: Rows = {}
            else:
                ring, old = loaded
            self._ring = None  # the cached ring is re-read after this block
            self._prekeys_open = True
            try:
                yield ring
            finally:
                ring.close()
                self._prekeys_open = False
            if self._foreign:
                self._refuse_foreign()
            save_ring(self.store, ring, old)

    def upkeep(self, *, now: int, policy: UpkeepPolicy = UpkeepPolicy(),
               server_one_time: int | None = None,
               server_kem: int | None = None) -> Upload:
        """Keep the prekeys stocked and fresh, in one transaction: top up the
        one-time EC and KEM prekeys, rotate the signed and last-resort KEM
        prekeys once ``policy`` says they are due, and return what to upload
        (:class:`~signalish.Upload`, false when nothing is new).  Pass the
        counts the server reports as ``server_one_time`` and ``server_kem``
        when it has them; without them the ring counts the keys its
        ``issue_bundle`` has not handed out.  Call it on start and whenever
        the server says the keys run low; :meth:`PreKeyRing.upkeep_due`
        (inside :meth:`prekeys`) says what is due without changing anything.
        Inside a :meth:`prekeys` block, call ``ring.upkeep(...)`` on that
        block's ring: this method raises
        :class:`~signalish.errors.InvalidArgument` there.
        """
        with self.prekeys(now=now) as ring:
            return ring.upkeep(self.rng, now=now, policy=policy,
                               server_one_time=server_one_time, server_kem=server_kem)

    def initiate(self, address: Address, bundle: PreKeyBundle, *,
                 kem_encapsulation: tuple[bytes, bytes] | None = None) -> None:
        """Start a session from ``bundle`` (X3DH/PQXDH as initiator).  The new
        session becomes current; messages to ``address`` carry the initial
        header until the peer answers.

        Raises :class:`~signalish.errors.InvalidSignature` (before any DH) if a
        bundle signature fails, :class:`~signalish.errors.PolicyViolation` if the
        manager's :class:`~signalish.BundlePolicy` refuses the bundle,
        :class:`~signalish.errors.UnsupportedByProfile` for a KEM prekey under a
        profile without PQXDH, :class:`~signalish.errors.InvalidKey` if a DH
        output is all zeros, and :class:`~signalish.UntrustedIdentity`.
        ``kem_encapsulation`` (ciphertext, shared secret) is for reproducible
        test vectors only: it is trusted to match the bundle's KEM key.
        """
        address, user = address_keys(address)
        touched = {address}
        with self._transaction(touched):
            self._initiate_one(address, user, bundle, kem_encapsulation)

    def _initiate_one(self, address: str, user: str, bundle: PreKeyBundle,
                      kem_encapsulation: tuple[bytes, bytes] | None) -> None:
        """:meth:`initiate` inside the caller's transaction."""
        self._trust(user, bundle.identity_key, Direction.SENDING, record_new=True)
        session = Session.initiate(self.identity, bundle, self.profile, self.options,
                                   self.rng, policy=self.policy,
                                   kem_encapsulation=kem_encapsulation)
        record = self._record(address) or SessionRecord(self.profile, self.options.max_archived)
        record.start(session)
        self._save(address, record)
        self._remember_registration(address, bundle.registration_id)

    def encrypt(self, address: Address, plaintext: bytes) -> bytes:
        """Encrypt with the current session.

        Raises :class:`~signalish.NoSession` if there is no session with
        ``address``, a :class:`~signalish.CannotSend` if there is one that
        cannot send now (:class:`~signalish.errors.StaleSession`: restored
        state, wait for the peer or start a new session;
        :class:`~signalish.errors.ChainExhausted`: start a new session;
        :class:`~signalish.errors.AwaitingFirstMessage`), and
        :class:`~signalish.UntrustedIdentity` if the session's identity is
        not trusted for sending.  Nothing changes on error."""
        if type(address) is str:
            user = address
        else:
            address, user = address_keys(address)
        touched: set[str] = set()
        with _Call(self, touched):
            return self._encrypt_one(address, user, plaintext, touched)

    def _encrypt_one(self, address: str, user: str, plaintext: bytes, touched: set[str]) -> bytes:
        """:meth:`encrypt` inside the caller's transaction."""
        record = self._record(address)
        session = None if record is None else record.current
        if session is None:
            raise NoSession(f"no session with {address!r}")
        key = session.remote_identity
        # The trust decision, unless it is trust-on-first-use and the key is
        # the very one already trusted (see _check_trust): every message.
        if self._identities.get(user) is not key or self.trust is not trust_on_first_use:
            self._trust(user, key, Direction.SENDING, record_new=False)
        options = self.options
        if options.padding:
            plaintext = pad(plaintext, options.padding)
        touched.add(address)  # dropped from the cache if anything from here fails
        message = session.encrypt(plaintext, options.registration_id, self.rng,
                                  None if self.local_address is None
                                  else self._addresses(address, sending=True))
        assert record is not None
        self._save_moved(address, record, session)  # encrypting changes one session
        return message

    # --- many devices -------------------------------------------------------------

    def devices(self, user: str) -> list[int]:
        """The device ids of ``user`` with a current session (the sessions
        stored under ``ProtocolAddress(user, device)``), ascending: the
        device list this manager will encrypt to.  A store with
        ``session_addresses_from(prefix)`` (the built-in ones) lists only
        this user's; another lists every address once."""
        ProtocolAddress(user, 1)  # checks the name
        prefix = user + "."
        lister = getattr(self.store, "session_addresses_from", None)
        with self._transaction(set()):
            found = []
            addresses = self.store.session_addresses() if lister is None else lister(prefix)
            for address in addresses:
                suffix = address[len(prefix):]
                if not address.startswith(prefix) or not suffix.isdigit() \
                        or suffix != str(int(suffix)) or not 1 <= int(suffix) <= 127:
                    continue
                record = self._record(address)
                if record is not None and record.current is not None:
                    found.append(int(suffix))
            return sorted(found)

    def encrypt_to_devices(self, user: str, plaintext: bytes,
                           device_ids: Iterable[int] | None = None, *,
                           exclude: int | None = None) -> DeviceMessages:
        """Encrypt ``plaintext`` to each device of ``user`` (``device_ids``,
        or :meth:`devices` if None), but not to ``exclude`` (this device,
        when ``user`` is our own account), in one store transaction.

        Returns a :class:`DeviceMessages`: a message per device, and for
        each device that got none the error its session raised
        (:class:`~signalish.NoSession`, :class:`~signalish.CannotSend`,
        :class:`~signalish.UntrustedIdentity`); those changed nothing.  A
        store error fails the whole call, and then no message may be sent.
        Hand the messages to the server; if it answers that the device list
        is stale, :meth:`update_devices` and call this again (docs/howto.rst,
        "Talk to every device of a user")."""
        ids = self.devices(user) if device_ids is None else sorted(set(device_ids))
        addresses = [ProtocolAddress(user, d) for d in ids if d != exclude]
        messages: dict[int, bytes] = {}
        failed: dict[int, SignalishError] = {}
        touched: set[str] = set()
        with self._transaction(touched):
            for address in addresses:
                try:
                    messages[address.device_id] = self._encrypt_one(
                        str(address), user, plaintext, touched)
                except StoreError:
                    raise
                except SignalishError as error:
                    failed[address.device_id] = error
            registrations = {d: r for d in messages
                             if (r := self.registration_id(ProtocolAddress(user, d))) is not None}
        return DeviceMessages(user, messages, failed, registrations)

    def update_devices(self, user: str, *, missing: Mapping[int, PreKeyBundle] = {},
                       extra: Iterable[int] = (), stale: Iterable[int] = ()) -> None:
        """Bring ``user``'s device list up to what the server says, in one
        transaction: archive the current session of each ``extra`` device
        (removed from the account) and each ``stale`` device (re-registered:
        its old session is dead), then start a session with each ``missing``
        device from its bundle (a new device, or a stale one's new bundle).

        The sessions of removed devices stay archived, so their messages in
        flight still decrypt.  Every bundle must carry the account's
        identity key: trust is decided per user, so a device the server
        adds with another identity key is refused with
        :class:`~signalish.UntrustedIdentity` (under the default trust
        decision), and then nothing changed.  A bundle whose device id is
        not the one it is given for raises
        :class:`~signalish.errors.InvalidArgument`."""
        gone = sorted({*extra, *stale})
        for device_id, bundle in missing.items():
            ProtocolAddress(user, device_id)
            if bundle.device_id != device_id:
                raise InvalidArgument(f"the bundle given for device {device_id} is for "
                                      f"device {bundle.device_id}")
        touched: set[str] = set()
        with self._transaction(touched):
            for device_id in gone:
                address = str(ProtocolAddress(user, device_id))
                record = self._record(address)
                if record is not None and record.current is not None:
                    touched.add(address)
                    record.archive_current()
                    self._save(address, record)
            for device_id in sorted(missing):
                address = str(ProtocolAddress(user, device_id))
                touched.add(address)
                self._initiate_one(address, user, missing[device_id], None)

    def decrypt(self, address: Address, message: bytes, *, now: int,
                deliver: Callable[[bytes], None] | None = None) -> bytes:
        """Decrypt a message from ``address``; a PreKeyMessage from an unknown
        session builds one (X3DH/PQXDH as responder) and consumes the
        one-time prekeys it used.

        ``deliver``, if given, is called with the plaintext inside the store
        transaction, before it commits: an application that saves the
        plaintext there (for example in the same SQLite file) gets the
        plaintext and the new state committed together.  If ``deliver``
        raises, nothing is committed and the message can be decrypted again.

        Raises a :class:`~signalish.errors.DecodeError` for malformed bytes,
        :class:`~signalish.errors.AuthenticationError` for anything forged or
        undecryptable, a :class:`~signalish.errors.MessageRejected` subclass for
        duplicates and messages outside the window, a
        :class:`~signalish.errors.PreKeyError` for a PreKeyMessage whose prekeys are
        gone or that replays an earlier one, :class:`~signalish.UntrustedIdentity`
        if the session the message belongs to has an identity not trusted for
        receiving (it is not decrypted), or :class:`~signalish.NoSession`.
        Whatever it raises, no state changed.
        """
        frame = self.wire.parse(message, self.options.limits.max_message_size)
        touched: set[str] = set()
        with _Call(self, touched):
            plaintext = self._decrypt_one(address, frame, now, touched)
            if deliver is not None:
                deliver(plaintext)
        return plaintext

    def decrypt_batch(self, messages: Sequence[tuple[Address, bytes]], *, now: int,
                      deliver: Callable[[Address, bytes], None] | None = None
                      ) -> list[Outcome]:
        """Decrypt a backlog (an application coming online to queued
        messages) in one store transaction: one commit for all of them.

        Returns one :class:`Outcome` per message, in order: its plaintext, or
        the :class:`~signalish.SignalishError` that message alone raised (a
        refused message changes nothing, and the others go on).
        ``deliver(address, plaintext)`` is called inside the transaction for
        each message that decrypted.  A record that fails its integrity check
        (:class:`~signalish.errors.CorruptState`) is that message's outcome; if
        ``deliver`` raises, or the store fails otherwise, the whole batch is
        rolled back and the error propagates: nothing of it was committed and
        every message can be decrypted again.
        """
        outcomes: list[Outcome] = []
        touched: set[str] = set()
        unsaved: dict[str, SessionRecord] = {}
        limit = self.options.limits.max_message_size
        with self._transaction(touched):
            for address, message in messages:
                try:
                    plaintext = self._decrypt_one(address, self.wire.parse(message, limit), now,
                                                  touched, unsaved)
                except CorruptState as error:
                    # Only this address's record is damaged: the rest of the
                    # backlog goes on.
                    outcomes.append(Outcome(address, None, error))
                    continue
                except StoreError:
                    raise
                except SignalishError as error:
                    outcomes.append(Outcome(address, None, error))
                    continue
                if deliver is not None:
                    deliver(address, plaintext)
                outcomes.append(Outcome(address, plaintext, None))
            # If another manager's call (from ``deliver``) ran, it may have
            # changed these very records: _save refuses, and nothing of the
            # batch is committed.
            for address, record in unsaved.items():
                self._save(address, record)
        return outcomes

    def _decrypt_one(self, peer: Address, frame: Received | InitialMessage, now: int,
                     touched: set[str],
                     unsaved: dict[str, SessionRecord] | None = None) -> bytes:
        """Decrypt one message inside the caller's transaction and save its
        record, or, with ``unsaved``, leave it there for the caller to save
        once (a batch writes each record once, not once per message)."""
        if type(peer) is str:
            address = user = peer
        else:
            address, user = address_keys(peer)
        record = None if unsaved is None else unsaved.get(address)
        if record is None:
            record = self._record(address)

        learned: list[IdentityKey] = []
        identities = self._identities
        session: Session | None = None  # the session that took the message,
        current: Session | None = None  # if it was the current one before

        def trusted(session: Session) -> None:
            # As in _encrypt_one: the very key already trusted needs no asking.
            if identities.get(user) is session.remote_identity \
                    and self.trust is trust_on_first_use:
                return
            key = self._check_trust(user, session.remote_identity, Direction.RECEIVING,
                                    record_new=False)
            if key is not None:
                learned.append(key)

        if isinstance(frame, InitialMessage):
            self._check_addresses(address, frame)
            record = record or SessionRecord(self.profile, self.options.max_archived)
            plaintext = self._decrypt_prekey(address, user, record, frame, now, trusted,
                                             learned)
        else:
            if record is None:
                raise NoSession(f"no session with {address!r}")
            current = record.current
            # A refused message changes nothing (malformed stored keys are
            # refused before any change), so the record stays cached.
            plaintext, session = record.decrypt(frame, now=now, rng=self.rng, check=trusted)
        touched.add(address)  # changed: dropped from the cache if the call fails from here
        for key in learned[-1:]:  # the key of the session that took the message
            self._save_identity(user, key)
        if self.options.padding:
            plaintext = unpad(plaintext)
        if unsaved is not None:
            unsaved[address] = record
        elif session is not None and session is current:
            # The current session took it and stays current: the sessions
            # and their order are as they were.
            self._save_moved(address, record, session)
        else:
            self._save(address, record)
        return plaintext

    def _addresses(self, address: str, *, sending: bool) -> bytes | None:
        """Field 6 for messages to (or from) ``address``, or None."""
        if self.local_address is None or self.service_address is None:
            return None
        peer = self.service_address(address)
        if peer is None:
            return None
        if sending:
            return addresses_field(self.local_address, peer)
        return addresses_field(peer, self.local_address)

    def _check_addresses(self, address: str, frame: InitialMessage) -> None:
        """Refuse a PreKeyMessage whose addresses field names another sender
        or recipient (libsignal 0.92's check); nothing to check without
        ``local_address`` or without the field."""
        received = getattr(frame.inner, "addresses", None)
        if received is None or self.local_address is None:
            return
        expected = self._addresses(address, sending=False)
        if expected is None or not ct_equal(expected, received):
            raise AuthenticationError("decryption failed")

    def _decrypt_prekey(self, address: str, user: str, record: SessionRecord,
                        frame: InitialMessage,
                        now: int, trusted: Callable[[Session], None],
                        learned: list[IdentityKey]) -> bytes:
        header = frame.header
        session = record.find(header.base_key.public_bytes_raw())
        if session is not None:
            if not session.matches_initial(header):
                raise AuthenticationError("decryption failed")
            trusted(session)
            plaintext = session.decrypt(frame.inner, now=now, rng=self.rng)
            record.install(session)
            return plaintext
        he = frame.inner.header is None
        if self.options.header_encryption and not he:
            raise PolicyViolation("session without header encryption refused by options")
        key = self._check_trust(user, header.identity_key, Direction.RECEIVING,
                                record_new=True)
        if self._prekeys_open:
            raise InvalidArgument("an initial message that needs the prekeys cannot be "
                                  "decrypted inside a SessionManager.prekeys() block")
        loaded = self._load_ring()
        if loaded is None:
            raise UnknownPreKey("an initial message, and no prekeys in the store")
        ring, ring_rows = loaded
        session = Session.respond(ring, header, self.profile, self.options, he, now=now,
                                  policy=self.policy)
        plaintext = session.decrypt(frame.inner, now=now, rng=self.rng)
        if self._foreign:
            self._refuse_foreign()
        self._ring_changed = True
        ring.consume(header, now=now)
        self._ring = (ring, save_ring(self.store, ring, ring_rows))
        self._remember_registration(address, frame.registration_id)
        record.install(session)
        if key is not None:
            learned.append(key)
        return plaintext


@dataclass(frozen=True, slots=True)
class RecoveryPolicy:
    """When :class:`Recovery` answers a failed message with a decryption
    error message, and how often it acts on one.

    ``confirm``: authentication failures from one address, with no message
    from it decrypting in between, before the failure is reported (a forged
    or damaged message fails alone, and the next genuine message decrypts;
    a lost session fails every message).  ``interval``: the fewest seconds
    between two error messages sent to one address, and between two
    sessions archived on error messages from one address."""

    confirm: int = 2
    interval: int = 60

    def __post_init__(self) -> None:
        for name, value, top in (("confirm", self.confirm, 1000),
                                 ("interval", self.interval, 1 << 32)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise InvalidArgument(f"{name} must be an integer in 1..{top}")


class Recovery:
    """The recovery flow of docs/howto.rst ("Recover a broken session"): which
    failed messages to answer with a decryption error message, and what an
    incoming one may change.

    * :meth:`failed` after :meth:`SessionManager.decrypt` raised: returns the
      bytes to send back to the sender (see
      :meth:`SessionManager.decryption_error`), or None.  It answers
      :class:`~signalish.NoSession`, a :class:`~signalish.errors.PreKeyError`
      and an evicted or expired message key at once; an
      :class:`~signalish.errors.AuthenticationError` only once ``confirm``
      of them came in a row from that address (one alone is what a forged
      or damaged message looks like, and it changed nothing); never a
      duplicate, a message too far ahead (hold it until the gap fills), a
      malformed one or a refused identity.  At most one per ``interval``
      per address.
    * :meth:`succeeded` after a message from ``address`` decrypted.
    * :meth:`received` with an error message from ``address``: archives the
      current session if the message names its ratchet key
      (:meth:`SessionManager.process_decryption_error`), at most once per
      ``interval``; True means: start a new session and resend.

    Its counters live in memory (after a restart it starts afresh, which at
    worst sends one more error message).  ``now`` is in seconds.
    """

    def __init__(self, manager: SessionManager, policy: RecoveryPolicy = RecoveryPolicy()
                 ) -> None:
        self.manager = manager
        self.policy = policy
        self._failures: dict[str, int] = {}
        self._sent: dict[str, int] = {}
        self._archived: dict[str, int] = {}

    @staticmethod
    def _due(last: dict[str, int], address: str, now: int, interval: int) -> bool:
        then = last.get(address)
        return then is None or not 0 <= now - then < interval

    def failed(self, address: str, message: bytes, error: SignalishError, *, timestamp: int,
               device_id: int, now: int) -> bytes | None:
        """What to send ``address`` about ``message``, which failed with
        ``error``; None if nothing.  ``timestamp`` and ``device_id`` are the
        envelope's (see :meth:`SessionManager.decryption_error`)."""
        if isinstance(error, AuthenticationError):
            count = self._failures[address] = self._failures.get(address, 0) + 1
            if count < self.policy.confirm:
                return None
        elif not isinstance(error, (NoSession, PreKeyError, MessageKeyEvicted,
                                    MessageKeyExpired)):
            return None
        if not self._due(self._sent, address, now, self.policy.interval):
            return None
        try:
            answer = self.manager.decryption_error(message, timestamp=timestamp,
                                                   device_id=device_id)
        except (DecodeError, InvalidArgument):
            return None
        self._sent[address] = now
        self._failures.pop(address, None)
        return answer

    def succeeded(self, address: str) -> None:
        """A message from ``address`` decrypted: its failures were not a lost
        session."""
        self._failures.pop(address, None)

    def received(self, address: str, data: bytes, *, now: int) -> bool:
        """Act on a decryption error message from ``address``; True if the
        current session was archived (start a new one and resend).  Raises a
        :class:`~signalish.errors.DecodeError` for malformed bytes."""
        if not self._due(self._archived, address, now, self.policy.interval):
            return False
        if not self.manager.process_decryption_error(address, data):
            return False
        self._archived[address] = now
        return True
