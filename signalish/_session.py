"""Sessions: a Double Ratchet plus what the X3DH/PQXDH handshake decided.

Theory of operation.  A :class:`Session` is one ratchet with one peer.  The
initiator's session carries the :class:`~signalish._initial.InitialHeader` and wraps
every message in a PreKeyMessage until the first message from the peer
arrives in that session (as libsignal does), so that the responder can
build the session from whichever of those messages it receives first.

A :class:`SessionRecord` holds all sessions with one peer: the current one,
which encrypts, and up to ``max_archived`` earlier ones, which decryption
also tries.  Which session is current follows three rules:

1. a PreKeyMessage (for a new or an archived session) makes its session
   current, unless the current session is one *we* initiated and the peer
   has not answered yet: then both parties started at once (simultaneous
   initiation) and the session whose initiator base key is smaller wins on
   both sides, since both compare the same two keys;
2. an ordinary message that decrypts in an archived session promotes it:
   the peer is using it, so we follow;
3. nothing else changes the order.

Rule 1 makes simultaneous initiation converge at once; rule 2 makes any
other disagreement (a peer that reset, crossing messages) converge as soon
as one message travels each way without crossing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from operator import attrgetter
from dataclasses import dataclass
from typing import Final

from ._encoding import Reader, Tag, Writer, add_digest, check_digest
from ._errors import (
    AuthenticationError,
    CorruptState,
    InvalidArgument,
    InvalidEncoding,
    MessageRejected,
    NoSession,
    SignalishError,
    StaleSession,
    TooFarAhead,
    UnsupportedByProfile,
)
from ._bundle import PreKeyBundle
from ._initial import InitialHeader
from ._keys import IdentityKey, IdentityKeyPair
from ._primitives import PublicKey, RandomSource, SystemRandom
from ._profile import PROFILES, Profile
from ._ratchet import (
    Header,
    Located,
    RatchetState,
    Received,
    decrypt_located,
    locate,
    ratchet_encrypt,
    refusal,
)
from ._spqr import Spqr
from ._wire_v3 import V3Frame
from ._wire_v4 import V4Wire
from ._state_codec import (
    counters_row,
    encode_state,
    keys_row,
    read_counters_row,
    read_limits,
    read_state,
    write_limits,
)
from ._window import RatchetLimits
from ._wires import wire_format
from ._prekeys import PreKeyRing
from ._x3dh import AgreementResult, BundlePolicy, initiate, respond

__all__ = ["Session", "SessionRecord", "SessionOptions", "BundlePolicy"]

MAX_ARCHIVED_LIMIT: Final = 64
#: Format version written.  Version 2 added the receive-only flag (session
#: flags bit 2) and given-up chain tails; version 1 is still read.
RECORD_VERSION: Final = 2
#: The head row of a record kept as store rows (SessionRecord.rows).
ROWS_VERSION: Final = 3
#: The same two formats with a flags byte after "max archived", written only
#: when a flag is set (bit 0: no current session, every session is archived),
#: so that a record with a current session keeps its earlier bytes.
RECORD_FLAGS_VERSION: Final = 4
ROWS_FLAGS_VERSION: Final = 5
_NO_CURRENT: Final = 0x01
#: A session's base key (the head row lists them in order).
_BASE_KEY: Final = attrgetter("base_key")
#: The first two bytes' second byte of a head row (as opposed to a whole
#: record stored as a head).
HEAD_VERSIONS: Final = frozenset({bytes((ROWS_VERSION,)), bytes((ROWS_FLAGS_VERSION,))})
SESSION_ROW_VERSION: Final = 1
_ROW_TAG: Final = bytes((Tag.SESSION_ROW, SESSION_ROW_VERSION))
#: A session row with SPQR state (session flags bit 3, the state after the
#: ratchet state); written only for such a session.
SESSION_ROW_PQ_VERSION: Final = 2
_ROW_PQ_TAG: Final = bytes((Tag.SESSION_ROW, SESSION_ROW_PQ_VERSION))
#: A session row without SPQR in the split layout: what a message in a
#: chain changes (CKs, CKr, Ns, Nr) is in its counters row (tag 0x53).
#: Written for every session without SPQR; version 1 is still read.
SESSION_ROW_SPLIT_VERSION: Final = 3
_ROW_SPLIT_TAG: Final = bytes((Tag.SESSION_ROW, SESSION_ROW_SPLIT_VERSION))
#: The whole-record format with a flags byte always present and sessions that
#: may hold SPQR state; written only when one does.
RECORD_PQ_VERSION: Final = 6
#: Session layouts, as Session._read takes them: 1 and 2 are the record
#: versions' own, 3 adds SPQR (flag bit 3).
_SESSION_LAYOUT_PQ: Final = 3


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """Choices a party makes for the sessions it creates.

    ``header_encryption``: encrypt ratchet headers (Double Ratchet section 4)
    in sessions we initiate, and refuse sessions a peer initiates without.
    ``max_archived``: earlier sessions kept per peer for late messages
    (libsignal keeps 40; signalish's default 5 bounds the work a forged
    message can cause, each archived session costing one DH on such a message).
    ``padding``: a block size; :class:`~signalish.SessionManager` then pads
    what it encrypts to one byte short of a multiple of it (0x80, then
    zeros), and strips that from what it decrypts, as Signal's applications
    do with 160 (``signalish._padding``).  0, the default, pads nothing.
    ``pq_ratchet``: run SPQR, the Sparse Post-Quantum Ratchet (the Triple
    Ratchet, ``signalish._spqr``), in new ``libsignal_v4`` sessions, as
    libsignal-client 0.92 and later require (the default).  False makes
    version 4 sessions without it, as libsignal 0.73 to 0.79 speak; sessions
    keep what they were created with.  Other profiles ignore it.
    """

    header_encryption: bool = False
    limits: RatchetLimits = RatchetLimits()
    max_archived: int = 5
    #: Our registration id, sent in libsignal PreKeySignalMessages.
    registration_id: int = 0
    padding: int = 0
    pq_ratchet: bool = True
    #: Our device id (1..127), which the bundles of a prekey ring that
    #: :meth:`~signalish.SessionManager.prekeys` creates carry.
    device_id: int = 1

    def __post_init__(self) -> None:
        if self.padding == 1 or not 0 <= self.padding <= 65536:
            raise InvalidArgument("padding must be 0 (none) or a block of 2..65536 bytes")
        if not 0 <= self.max_archived <= MAX_ARCHIVED_LIMIT:
            raise InvalidArgument(f"max_archived must be 0..{MAX_ARCHIVED_LIMIT}")
        if not 0 <= self.registration_id <= 0xFFFFFFFF:
            raise InvalidArgument("registration_id is 32-bit unsigned")
        if isinstance(self.device_id, bool) or not isinstance(self.device_id, int) \
                or not 1 <= self.device_id <= 127:
            raise InvalidArgument("device_id must be an integer in 1..127")

    @classmethod
    def libsignal(cls, registration_id: int) -> SessionOptions:
        """libsignal's own limits (MAX_FORWARD_JUMPS 25,000; 2,000 keys per
        receiving chain, here 10,000 per session for its 5 chains; 40 archived
        sessions) for use with the ``libsignal_v3`` profile."""
        return cls(limits=RatchetLimits(max_skip=25_000, max_stored_keys=10_000,
                                        max_receiving_chains=5, expire_after_steps=5),
                   max_archived=40, registration_id=registration_id)


class Session:
    """One Double Ratchet session with one peer."""

    __slots__ = ("remote_identity", "local_identity", "associated_data", "base_key",
                 "initial_digest", "initiated_by_us", "pending", "state", "limits",
                 "send_blocked", "spqr", "wire", "_ad_send", "_ad_receive", "_encoded",
                 "_row", "_crow", "_prefix", "_key_parts", "_known", "_part", "_cpart")

    def __init__(self, *, remote_identity: IdentityKey, local_identity: IdentityKey,
                 associated_data: bytes, initial_header: InitialHeader, initiated_by_us: bool,
                 pending: bool, state: RatchetState, limits: RatchetLimits,
                 spqr: Spqr | None = None) -> None:
        self.remote_identity = remote_identity
        self.local_identity = local_identity
        self.associated_data = associated_data
        #: The initiator's ephemeral key (EK_A): names this session on both sides.
        self.base_key = initial_header.base_key.public_bytes_raw()
        #: SHA-256 of the X3DH/PQXDH header that created this session.
        self.initial_digest = _digest(initial_header)
        self.initiated_by_us = initiated_by_us
        #: While we initiated and nothing arrived from the peer yet, our
        #: messages carry this header; None afterwards.
        self.pending: InitialHeader | None = initial_header if pending else None
        self.state = state
        self.limits = limits
        #: True after :meth:`block_sending`, until a DH ratchet step gives
        #: the session a sending chain no earlier copy of it can have used.
        self.send_blocked = False
        #: SPQR beside the Double Ratchet (libsignal_v4 with
        #: ``SessionOptions.pq_ratchet``), or None.
        self.spqr = spqr
        self._bind_wire()

    def _bind_wire(self) -> None:
        #: This session's serialized form, kept from the last time it was
        #: written until it changes: an unchanged (say, archived) session
        #: costs a copy, not a re-encoding, each time its record is saved.
        self._encoded: bytes | None = None
        #: The same for this session's store row (see :meth:`SessionRecord.rows`),
        #: and for its counters row (without SPQR), which alone changes
        #: when a message moves a chain on.
        self._row: bytes | None = None
        self._crow: bytes | None = None
        #: The parts of the key rows last computed for it (SessionRecord.changes).
        self._key_parts: tuple[bytes, ...] = ()
        #: The parts of its session row and counters row.
        self._part = b"s" + self.base_key
        self._cpart = b"c" + self.base_key
        #: The ids of every chain it remembers or forgot, until it changes
        #: (SessionRecord.decrypt finds a message's owner with it).
        self._known: frozenset[bytes] | None = None
        #: The fields that change only when ``pending`` does, serialized.
        self._prefix: bytes | None = None
        profile = self.state.profile
        self.wire = wire_format(profile)
        local = self.local_identity.encode(profile)
        remote = self.remote_identity.encode(profile)
        self._ad_send = self.wire.associated_data(self.associated_data, local, remote, True)
        self._ad_receive = self.wire.associated_data(self.associated_data, local, remote, False)

    @classmethod
    def as_initiator(cls, agreement: AgreementResult, bundle: PreKeyBundle,
                     local_identity: IdentityKey, profile: Profile, options: SessionOptions,
                     rng: RandomSource) -> Session:
        """Alice's session after X3DH/PQXDH (RatchetInitAlice, section 3.3):
        her messages carry the initial header until Bob answers."""
        _check_header_encryption(profile, options.header_encryption)
        state = RatchetState.init_alice(profile, agreement.shared_secret,
                                        bundle.signed_prekey.public_key, rng,
                                        options.header_encryption)
        return cls(remote_identity=bundle.identity_key, local_identity=local_identity,
                   associated_data=agreement.associated_data, initial_header=agreement.header,
                   initiated_by_us=True, pending=True, state=state, limits=options.limits,
                   spqr=_start_spqr(profile, options, agreement, initiator=True))

    @classmethod
    def as_responder(cls, agreement: AgreementResult, local_identity: IdentityKey,
                     profile: Profile, options: SessionOptions,
                     header_encryption: bool) -> Session:
        """Bob's session after X3DH/PQXDH (RatchetInitBob, section 3.3), with
        the signed prekey that :func:`~signalish._x3dh.respond` used as his first
        ratchet key pair."""
        if agreement.signed_prekey is None:
            raise InvalidArgument("a responder session needs respond()'s agreement")
        _check_header_encryption(profile, header_encryption)
        state = RatchetState.init_bob(profile, agreement.shared_secret,
                                      agreement.signed_prekey, header_encryption)
        return cls(remote_identity=agreement.header.identity_key, local_identity=local_identity,
                   associated_data=agreement.associated_data, initial_header=agreement.header,
                   initiated_by_us=False, pending=False, state=state, limits=options.limits,
                   spqr=_start_spqr(profile, options, agreement, initiator=False))

    @classmethod
    def initiate(cls, identity: IdentityKeyPair, bundle: PreKeyBundle, profile: Profile,
                 options: SessionOptions, rng: RandomSource, *,
                 policy: BundlePolicy = BundlePolicy(),
                 kem_encapsulation: tuple[bytes, bytes] | None = None) -> Session:
        """X3DH/PQXDH as initiator against ``bundle``, then :meth:`as_initiator`:
        the one way an application's new outgoing session is made (see
        :func:`~signalish._x3dh.initiate` for what it checks and raises)."""
        agreement = initiate(identity, bundle, profile, policy=policy, rng=rng,
                             kem_encapsulation=kem_encapsulation)
        return cls.as_initiator(agreement, bundle, identity.public, profile, options, rng)

    @classmethod
    def respond(cls, ring: PreKeyRing, header: InitialHeader, profile: Profile,
                options: SessionOptions, header_encryption: bool, *, now: int,
                policy: BundlePolicy = BundlePolicy()) -> Session:
        """X3DH/PQXDH as responder to ``header`` with the prekeys of ``ring``,
        then :meth:`as_responder`.  The ring is not changed: consume its
        prekeys (:meth:`PreKeyRing.consume`) once the first message under
        the new session has authenticated."""
        agreement = respond(ring, header, now=now, policy=policy)
        return cls.as_responder(agreement, ring.identity.public, profile, options,
                                header_encryption)

    def block_sending(self) -> None:
        """Make this session receive-only: its sending chain may already have
        been used by a copy of this state we no longer see (it came from a
        backup, or the store was rolled back), so sending on it could reuse
        a message key.  The sending chain key is erased; the peer's next DH
        ratchet step derives a fresh one, with a fresh ratchet key, and
        sending resumes then."""
        self.send_blocked = True
        self.state.cks = None
        self._encoded = self._row = self._crow = self._known = None

    def touch(self) -> None:
        """Forget this session's cached serialized forms (the whole-record
        encoding and the store row).  Every method that changes the session
        does this itself; call it after changing :attr:`state` directly
        (tools and tests do), or the change is not written."""
        self._encoded = self._row = self._crow = self._known = None

    def matches_initial(self, header: InitialHeader) -> bool:
        """Whether a received PreKeyMessage header is exactly the one that
        created this (responder) session: no field of it may differ.  (A
        libsignal v3 PreKeySignalMessage also carries the sender's registration
        id, which that protocol does not authenticate; it is not compared.)"""
        return not self.initiated_by_us and _digest(header) == self.initial_digest

    @property
    def sending_ratchet_key(self) -> bytes:
        """The ratchet public key (32 bytes) this session's messages carry
        now (the one a DecryptionErrorMessage names)."""
        return self.state.dhs_public

    @property
    def header_encryption(self) -> bool:
        return self.state.header_encryption

    def encrypt(self, plaintext: bytes, registration_id: int = 0,
                rng: RandomSource | None = None, addresses: bytes | None = None) -> bytes:
        """RatchetEncrypt, wrapped in a PreKeyMessage while ``pending``.
        A session with SPQR draws its randomness (a new ML-KEM key pair or
        encapsulation now and then) from ``rng``, the system's if None, and
        writes ``addresses`` (libsignal_v4's field 6) into its PreKeyMessages.

        Raises :class:`~signalish.errors.StaleSession` if sending is blocked,
        :class:`~signalish.errors.AwaitingFirstMessage` if the session cannot
        send yet, :class:`~signalish.errors.ChainExhausted` at the last
        message number (all three are :class:`~signalish.CannotSend`)."""
        if self.send_blocked:
            raise StaleSession("this session's sending state may be older than what it has "
                               "sent; it receives only until the peer's next ratchet step "
                               "(with SPQR, for good). Start a new session from a fresh "
                               "bundle to send now")
        if len(plaintext) > self.limits.max_message_size:
            raise InvalidArgument(
                f"plaintext of {len(plaintext)} bytes exceeds max_message_size")
        sending = ratchet_encrypt(self.state)
        if self.spqr is None:
            message = self.wire.seal(sending, plaintext, self._ad_send)
        else:
            pq_ratchet, pq_key = self.spqr.send(rng if rng is not None else SystemRandom())
            assert isinstance(self.wire, V4Wire)
            message = self.wire.seal_pq(sending, plaintext, self._ad_send, pq_ratchet, pq_key,
                                        addresses if self.pending is not None else None)
        if self.spqr is None:
            self._encoded = self._crow = None  # CKs and Ns only: the counters row
        else:
            self._encoded = self._row = self._crow = self._known = None
        if self.pending is None:
            return message
        return self.wire.initial_message(self.pending, registration_id, message)

    def _known_ids(self) -> frozenset[bytes]:
        """The ids of every receiving chain this session remembers or forgot
        (without header encryption, ratchet keys), kept until it changes."""
        window = self.state.window
        known = self._known = frozenset([chain.chain_id for chain in window.chains]
                                        + [chain_id for chain_id, _ in window.forgotten])
        return known

    def spqr_steps(self, frame: Received) -> int:
        """The SPQR chain steps decrypting ``frame`` here would take before
        its MAC can be checked (0 without SPQR)."""
        if self.spqr is None:
            return 0
        pq_ratchet = getattr(frame, "pq_ratchet", None)
        return 0 if pq_ratchet is None else self.spqr.steps(pq_ratchet)

    def locate(self, frame: Received) -> Located | None:
        """Where ``frame`` belongs in this session, from its header alone;
        None if it cannot belong here."""
        if (frame.header is None) != self.state.header_encryption:
            return None
        return locate(self.state, frame)

    def decrypt(self, frame: Received, *, now: int, rng: RandomSource,
                where: Located | None = None) -> bytes:
        """RatchetDecrypt.  On any error nothing changed."""
        if where is None:
            where = self.locate(frame)
            if where is None:
                raise AuthenticationError("decryption failed")
        self.state.window.parse_pending()  # malformed stored keys: refused before any change
        step = self.state.step
        # The next message of the current chain, with no stored key anywhere
        # to age out, moves only CKr and Nr (the counters row).
        in_order = (self.spqr is None and self.pending is None and where.is_current
                    and where.n == self.state.nr and not self.state.window.stored)
        spqr = None
        if self.spqr is not None:
            # SPQR moves before the MAC can be checked (the key depends on
            # it): on a copy, kept only if the message decrypts.  The Double
            # Ratchet's own verdicts (a duplicate, an evicted key...) come
            # first, as without SPQR.  Then SPQR's: on a chain this session
            # knows they stand (a late message whose SPQR epoch is gone is
            # expired, as the Double Ratchet would say of its chain); on a
            # new DH step they say no more than "decryption failed", since
            # such a message may be one for another session of the record
            # (which is tried next), or a forged one.
            refused = refusal(self.state, where, now=now, limits=self.limits)
            if refused is not None:
                raise refused
            pq_ratchet = getattr(frame, "pq_ratchet", None)
            if pq_ratchet is None:
                raise AuthenticationError("decryption failed")
            spqr = self.spqr.copy()
            try:
                pq_key = spqr.receive(pq_ratchet)
            except MessageRejected:
                if where.chain is not None:
                    raise
                raise AuthenticationError("decryption failed") from None
            if pq_key is not None:
                frame = _Salted(frame, pq_key)
        plaintext = decrypt_located(self.state, where, frame, self._ad_receive, now=now, rng=rng,
                                    limits=self.limits)
        if spqr is not None:
            self.spqr = spqr
        if in_order:
            self._encoded = self._crow = None
            return plaintext
        if self.pending is not None:
            self.pending = None
            self._prefix = None
        self._encoded = self._row = self._crow = self._known = None
        if self.state.step != step and self.send_blocked:
            if self.spqr is None:
                # A fresh sending chain from a fresh ratchet key.
                self.send_blocked = False
            else:
                # Not with SPQR: its state went back too, and sending on it
                # would repeat SPQR keys and Braid chunks the peer has (which
                # it refuses), so a restored session with SPQR only
                # receives, for good; a new session sends.
                self.state.cks = None
        return plaintext

    def _write(self, w: Writer) -> None:
        if self._encoded is None:
            self._encoded = self._encode(keys=True)
        w.fixed(self._encoded)

    def row(self) -> bytes:
        """This session's store row: tag 0x51, version 1, the session as in
        a record but with each chain's key count and not its keys (those
        are in :func:`~signalish._state_codec.keys_row` rows), then a 16-byte
        digest.  Kept until the session changes."""
        if self._row is None:
            if self.spqr is None:
                self._row = add_digest(_ROW_SPLIT_TAG + self._encode(keys=False, split=True))
            else:
                self._row = add_digest(_ROW_PQ_TAG + self._encode(keys=False))
        return self._row

    def counters_update(self, old: dict[bytes, bytes]) -> tuple[bytes, bytes] | None:
        """After a message that changed nothing in its record but this
        session's state: its counters row (part, bytes), when that is all
        of it that can differ from ``old`` (the record's rows as last read
        or written), because its session row is still the one there (the
        rule :meth:`SessionRecord.changes` goes by); None when more changed
        (a DH step, stored keys, SPQR), and then the record is saved whole."""
        row = self._row
        if self.spqr is not None or row is None or old.get(self._part) is not row:
            return None
        crow = self._crow
        if crow is None:  # counters_row(), written out: every message
            crow = self._crow = counters_row(self.state, row[-16:])
        return self._cpart, crow

    def counters_row(self) -> bytes:
        """This session's counters row (a session without SPQR; see
        :func:`~signalish._state_codec.counters_row`), bound to its
        :meth:`row`.  Kept until a message changes it."""
        crow = self._crow
        if crow is None:
            row = self._row
            crow = self._crow = counters_row(self.state, (row if row is not None
                                                          else self.row())[-16:])
        return crow

    def _key_rows(self) -> dict[bytes, bytes]:
        """The key rows of this session's chains that store keys; remembers
        their parts (for :meth:`SessionRecord.changes`)."""
        rows = {b"k" + self.base_key + chain.chain_id: keys_row(chain)
                for chain in self.state.window.chains if chain.key_count}
        self._key_parts = tuple(rows)
        return rows

    def _encode(self, *, keys: bool, split: bool = False) -> bytes:
        flags = (self.initiated_by_us | (self.pending is not None) << 1 | self.send_blocked << 2
                 | (self.spqr is not None) << 3)
        if self._prefix is None:
            prefix = Writer(0)
            prefix.fixed(self.local_identity.public_bytes_raw())
            prefix.fixed(self.remote_identity.public_bytes_raw()).var(self.associated_data)
            prefix.fixed(self.base_key).fixed(self.initial_digest)
            if self.pending is not None:
                prefix.var(self.pending.to_bytes())
            write_limits(prefix, self.limits)
            self._prefix = prefix.getvalue()[2:]
        parts = [bytes((flags,)), self._prefix, encode_state(self.state, keys=keys, split=split)]
        if self.spqr is not None:
            w = Writer(0)
            self.spqr.write(w)
            parts.append(w.getvalue()[2:])
        return b"".join(parts)

    @classmethod
    def from_row(cls, data: bytes, profile: Profile,
                 keys: Callable[[bytes], bytes | None],
                 counters: Callable[[], bytes | None] = lambda: None) -> Session:
        """Read a :meth:`row`; ``keys(chain_id)`` returns each chain's key
        row, ``counters()`` its :meth:`counters_row` (needed by version 3)."""
        r = Reader(check_digest(data, "SessionRecord session row"), Tag.SESSION_ROW,
                   "SessionRecord session row",
                   frozenset({SESSION_ROW_VERSION, SESSION_ROW_PQ_VERSION,
                              SESSION_ROW_SPLIT_VERSION}))
        layout = _SESSION_LAYOUT_PQ if r.version == SESSION_ROW_PQ_VERSION else RECORD_VERSION
        crow: bytes | None = None

        def read_counters(cks: bool, ckr: bool) -> tuple[int, int, bytes | None, bytes | None]:
            nonlocal crow
            crow = counters()
            if crow is None:
                raise CorruptState("SessionRecord: a session's counters row is missing")
            return read_counters_row(bytes(crow), data[-16:], cks, ckr)

        split = r.version == SESSION_ROW_SPLIT_VERSION
        session = cls._read(r, profile, layout, keys, read_counters if split else None)
        if (session.spqr is None) == (r.version == SESSION_ROW_PQ_VERSION):
            raise InvalidEncoding("SessionRecord: a session row's version does not fit its SPQR")
        r.finish()
        # What row() would write (a version 1 row is rewritten in the split
        # layout on the next save): an unchanged session is not rewritten.
        if type(data) is bytes and r.version != SESSION_ROW_VERSION:
            session._row = data
            if type(crow) is bytes:
                session._crow = crow
        return session

    @classmethod
    def _read(cls, r: Reader, profile: Profile, version: int,
              keys: Callable[[bytes], bytes | None] | None = None,
              counters: Callable[[bool, bool], tuple[int, int, bytes | None, bytes | None]]
              | None = None) -> Session:
        flags = r.u8("session flags")
        top = 15 if version >= _SESSION_LAYOUT_PQ else 7 if version >= 2 else 3
        if flags > top or flags & 3 == 2:
            raise InvalidEncoding("Session: unknown flag bits")
        if flags & 8 and profile.wire != "libsignal_v4":
            raise InvalidEncoding("Session: SPQR state under a profile without SPQR")
        local = IdentityKey(PublicKey.from_public_bytes(r.fixed(32, "local identity")))
        remote = IdentityKey(PublicKey.from_public_bytes(r.fixed(32, "remote identity")))
        ad = r.var("associated data", 66)
        if ad != local.encode(profile) + remote.encode(profile) and \
                ad != remote.encode(profile) + local.encode(profile):
            raise InvalidEncoding("Session: associated data does not match the identities")
        base_key, digest = r.fixed(32, "base key"), r.fixed(32, "initial header digest")
        pending = InitialHeader.from_bytes(r.var("pending header", 4096)) if flags & 2 else None
        if pending is not None and (pending.base_key.public_bytes_raw() != base_key or _digest(pending) != digest
                                    or pending.identity_key != local):
            raise InvalidEncoding("Session: pending header does not match the session")
        limits = read_limits(r)
        state = read_state(r, profile, limits, min(version, RECORD_VERSION), keys, counters)
        spqr = Spqr.read(r, limits) if flags & 8 else None
        send_blocked = bool(flags & 4)
        if send_blocked and state.cks is not None:
            raise InvalidEncoding("Session: a receive-only session keeps no sending chain")
        session = cls.__new__(cls)
        session.remote_identity, session.local_identity = remote, local
        session.associated_data, session.base_key, session.initial_digest = ad, base_key, digest
        session.initiated_by_us, session.pending = bool(flags & 1), pending
        session.state, session.limits, session.send_blocked = state, limits, send_blocked
        session.spqr = spqr
        session._bind_wire()
        return session


def _digest(header: InitialHeader) -> bytes:
    return hashlib.sha256(header.to_bytes()).digest()


def _check_header_encryption(profile: Profile, header_encryption: bool) -> None:
    """Refuse header encryption under a wire format without it, before
    anything is derived (encrypting would fail only after the chains moved)."""
    if header_encryption and not wire_format(profile).header_encryption:
        raise UnsupportedByProfile(f"profile {profile.name} has no header encryption")


def _start_spqr(profile: Profile, options: SessionOptions, agreement: AgreementResult, *,
                initiator: bool) -> Spqr | None:
    """A new session's SPQR: with ``pq_ratchet`` under libsignal_v4, seeded
    with the third 32-byte block of the PQXDH output."""
    if not options.pq_ratchet or profile.wire != "libsignal_v4":
        return None
    secret = agreement.shared_secret
    if len(secret) != 96:
        raise InvalidArgument("SPQR needs the 96-byte version 4 PQXDH output")
    return Spqr.start(secret[64:96], initiator, options.limits)


class _Salted:
    """A received message whose message keys take the SPQR key as salt."""

    __slots__ = ("_frame", "_salt")

    def __init__(self, frame: Received, salt: bytes) -> None:
        self._frame, self._salt = frame, salt

    @property
    def header(self) -> Header | None:
        return self._frame.header

    def open_header(self, header_key: bytes) -> Header | None:
        return None

    def open(self, message_key: bytes, ad: bytes) -> bytes:
        frame = self._frame
        assert isinstance(frame, V3Frame)
        return frame.open(message_key, ad, self._salt)


class SessionRecord:
    """Every session with one peer: the current one first, then archived ones,
    most recently current first.  After :meth:`archive_current` there is no
    current session (``current`` is None) until a new session is installed or
    an archived one is promoted by a message that decrypts in it."""

    __slots__ = ("profile", "sessions", "max_archived", "no_current", "_head")

    def __init__(self, profile: Profile, max_archived: int = 5) -> None:
        self.profile = profile
        self.sessions: list[Session] = []
        self.max_archived = max_archived
        #: True when every session in ``sessions`` is archived.
        self.no_current = False
        # The head row, the base keys it lists and the flag (see rows()).
        self._head: tuple[tuple[bytes, ...], bool, bytes] | None = None

    @property
    def current(self) -> Session | None:
        return self.sessions[0] if self.sessions and not self.no_current else None

    def archive_current(self) -> bool:
        """Archive the current session, leaving none current: encrypting then
        raises :class:`~signalish.NoSession`, and late messages still decrypt in
        the archived sessions (one that does becomes current again, as any
        archived session does).  Returns False if there was no current
        session.  The oldest archived session is dropped if the archive is
        full."""
        if self.current is None:
            return False
        self.no_current = True
        del self.sessions[self.max_archived:]
        return True

    def start(self, session: Session) -> None:
        """Make ``session`` (one this party initiated) current, archiving the
        current one; the oldest archived session is dropped if the archive
        is full."""
        self.sessions.insert(0, session)
        self.no_current = False
        del self.sessions[1 + self.max_archived:]

    def find(self, base_key: bytes) -> Session | None:
        for session in self.sessions:
            if session.base_key == base_key:
                return session
        return None

    def _promote(self, session: Session) -> None:
        self.sessions.remove(session)
        self.sessions.insert(0, session)
        self.no_current = False

    def install(self, session: Session) -> None:
        """Rule 1: a session the peer initiated becomes current, unless our own
        unanswered session wins the simultaneous-initiation tie-break."""
        if session not in self.sessions:
            self.sessions.append(session)
        current = self.current
        if (current is not None and current is not session and current.initiated_by_us
                and current.pending is not None and current.base_key < session.base_key):
            self.sessions.remove(session)
            self.sessions.insert(1, session)
        else:
            self._promote(session)
        del self.sessions[1 + self.max_archived:]

    def encrypt(self, plaintext: bytes, registration_id: int = 0,
                rng: RandomSource | None = None, addresses: bytes | None = None) -> bytes:
        current = self.current
        if current is None:
            raise NoSession("no current session with this peer" if self.sessions
                            else "no session with this peer")
        return current.encrypt(plaintext, registration_id, rng, addresses)

    def block_sending(self) -> None:
        """Make every session receive-only (see :meth:`Session.block_sending`)."""
        for session in self.sessions:
            session.block_sending()

    def decrypt(self, frame: Received, *, now: int, rng: RandomSource,
                check: Callable[[Session], None] | None = None) -> tuple[bytes, Session]:
        """Decrypt in the session the message belongs to; return the
        plaintext and that session (promoted by rule 2 if it was archived).

        Routing is decided from the header first, so a message costs at most
        one session's worth of chain derivations however many sessions the
        record holds:

        1. a session that recognizes the message's chain (a remembered or a
           forgotten receiving chain) owns it, and its verdict is final;
        2. otherwise the message starts a new DH ratchet step in some
           session, tried current first, then archived ones, newest first.
           All attempts together may walk at most ``2 * (max_skip + 1)``
           chain steps, the Double Ratchet's and SPQR's together (an attempt
           walks N + 1 steps to reach message N, so two attempts always fit,
           one at most ``max_skip + 1``); a session
           that the rest of this budget cannot reach is not tried, and if
           no attempt succeeded the message is refused with
           :class:`~signalish.errors.TooFarAhead`.

        ``check``, if given, is called with a session before the message is
        decrypted in it and may raise (the manager's trust decision): an
        owner that fails it ends the call with that error; a DH-step
        candidate that fails it is passed over, and its error is raised if no
        other session took the message.  So no plaintext is ever computed in
        a session the check refuses.

        Raises :class:`~signalish.errors.AuthenticationError`, a
        :class:`~signalish.errors.MessageRejected` subclass, what ``check`` raises,
        or :class:`~signalish.NoSession`.  Nothing changes on error.
        """
        if not self.sessions:
            raise NoSession("no session with this peer")
        header = frame.header
        if header is not None:  # the owner, if any, recognizes the ratchet key
            key = header.ratchet_key
            sessions = self.sessions
            if len(sessions) == 1 and not self.no_current:
                # One session, and current: the owner if any, as below, with
                # nothing to promote (the path of most messages).
                only = sessions[0]
                if key in (only._known if only._known is not None else only._known_ids()):
                    where = only.locate(frame)
                    if where is not None and where.known:
                        if check is not None:
                            check(only)
                        return only.decrypt(frame, now=now, rng=rng, where=where), only
            owners = [(s, where) for s in self.sessions
                      if key in (s._known if s._known is not None else s._known_ids())
                      and (where := s.locate(frame)) is not None and where.known]
            if owners:
                return self._decrypt_owned(owners, frame, now, rng, check)
        located = [(session, session.locate(frame)) for session in self.sessions]
        owners = [(s, where) for s, where in located if where is not None and where.known]
        if owners:
            return self._decrypt_owned(owners, frame, now, rng, check)
        budget = 2 * (max(s.limits.max_skip for s in self.sessions) + 1)
        too_far: TooFarAhead | None = None
        refused: SignalishError | None = None
        for session, where in located:
            if where is None:
                continue
            if check is not None:
                try:
                    check(session)
                except SignalishError as error:
                    refused = refused or error
                    continue
            cost = where.steps(session.state) + session.spqr_steps(frame)
            if cost > budget:
                too_far = too_far or TooFarAhead(
                    f"message {where.n}: trying it in more sessions would exceed the "
                    "per-message derivation budget")
                continue
            budget -= cost
            try:
                plaintext = session.decrypt(frame, now=now, rng=rng, where=where)
            except TooFarAhead as error:
                too_far = too_far or error
                continue
            except AuthenticationError:
                continue
            return plaintext, self._promote_if_archived(session)
        if refused is not None:
            raise refused
        if too_far is not None:
            raise too_far
        raise AuthenticationError("decryption failed")

    def _decrypt_owned(self, owners: list[tuple[Session, Located]], frame: Received, now: int,
                       rng: RandomSource,
                       check: Callable[[Session], None] | None) -> tuple[bytes, Session]:
        # Normally one owner; a peer that reused a ratchet key across two
        # sessions could make two, and then each gets its turn.
        error: MessageRejected | AuthenticationError | None = None
        for session, where in owners:
            if check is not None:
                check(session)
            try:
                plaintext = session.decrypt(frame, now=now, rng=rng, where=where)
            except (AuthenticationError, MessageRejected) as failure:
                error = error or failure
                continue
            if self.no_current or session is not self.sessions[0]:
                self._promote(session)
            return plaintext, session
        assert error is not None
        raise error

    def _promote_if_archived(self, session: Session) -> Session:
        if session is not self.current:
            self._promote(session)
        return session

    # --- serialization ------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Tag 0x50, version 2, then the sessions, then a 16-byte SHA-256
        digest of everything before it (version 4, with a flags byte, when
        there is no current session).  The digest is unkeyed: it catches
        accidents (truncation, bit rot), not edits by someone who can write
        the store, who can recompute it."""
        if any(session.spqr is not None for session in self.sessions):
            version = RECORD_PQ_VERSION
        else:
            version = RECORD_FLAGS_VERSION if self.no_current else RECORD_VERSION
        w = Writer(Tag.SESSION_RECORD, version)
        w.var(self.profile.name.encode()).u8(self.max_archived)
        if version != RECORD_VERSION:
            w.u8(_NO_CURRENT if self.no_current else 0)
        w.u32(len(self.sessions))
        for session in self.sessions:
            session._write(w)
        return add_digest(w.getvalue())

    @staticmethod
    def _read_header(r: Reader) -> tuple[Profile, int, bool]:
        """Profile, max archived and the no-current flag, and checks that a
        record without a current session has at least one session and fits
        the archive (the caller reads the count next and passes it to
        :meth:`_check_count`)."""
        profile = PROFILES.get(r.var("profile", 64).decode("ascii", "replace"))
        if profile is None:
            raise InvalidEncoding("SessionRecord: unknown profile")
        max_archived = r.u8("max archived")
        if max_archived > MAX_ARCHIVED_LIMIT:
            raise InvalidEncoding("SessionRecord: max archived out of range")
        no_current = False
        if r.version in (RECORD_FLAGS_VERSION, ROWS_FLAGS_VERSION):
            # Written only when a flag is set: so the one flag there is.
            if r.u8("flags") != _NO_CURRENT:
                raise InvalidEncoding("SessionRecord: unknown flags")
            no_current = True
        elif r.version == RECORD_PQ_VERSION:
            flags = r.u8("flags")
            if flags & ~_NO_CURRENT:
                raise InvalidEncoding("SessionRecord: unknown flags")
            no_current = bool(flags)
        return profile, max_archived, no_current

    @staticmethod
    def _count(r: Reader, max_archived: int, no_current: bool) -> int:
        if not no_current:
            return r.count("session count", 1 + max_archived)
        count = r.count("session count", max_archived)
        if not count:
            raise InvalidEncoding("SessionRecord: no current session and no archived one")
        return count

    def rows(self) -> dict[bytes, bytes]:
        """The record as store rows (part -> bytes), so that a message
        rewrites only what it changed:

        * ``b""``, the head: tag 0x50, version 3, profile, max archived, the
          session count and each session's base key (32 bytes) in order,
          then a 16-byte digest;
        * ``b"s" + base key``: each session (:meth:`Session.row`);
        * ``b"c" + base key``: each session's counters row, for a session
          without SPQR (:meth:`Session.counters_row`);
        * ``b"k" + base key + chain id``: the stored keys of each chain that
          has any (:func:`~signalish._state_codec.keys_row`).

        Unchanged sessions and chains return the same bytes objects as the
        last time (they are encoded once); the head is re-encoded (it is
        small)."""
        rows = {b"": self._head_row()}
        for session in self.sessions:
            rows[b"s" + session.base_key] = session.row()
            if session.spqr is None:
                rows[b"c" + session.base_key] = session.counters_row()
            rows.update(session._key_rows())
        return rows

    def _head_row(self) -> bytes:
        order = tuple(map(_BASE_KEY, self.sessions))
        no_current = self.no_current
        head = self._head
        if head is None or head[0] != order or head[1] is not no_current:
            w = Writer(Tag.SESSION_RECORD, ROWS_FLAGS_VERSION if no_current else ROWS_VERSION)
            w.var(self.profile.name.encode()).u8(self.max_archived)
            if no_current:
                w.u8(_NO_CURRENT)
            w.u32(len(order))
            for base_key in order:
                w.fixed(base_key)
            head = self._head = (order, no_current, add_digest(w.getvalue()))
        return head[2]

    def changes(self, old: dict[bytes, bytes]
                ) -> tuple[dict[bytes, bytes], list[tuple[bytes, bytes]], list[bytes]]:
        """What saving this record over ``old`` (its rows as last read or
        written) takes: the new rows, the rows to write, the parts to
        delete.  ``old`` may be updated in place and returned.  While the
        head is unchanged (the same sessions in the same order), only the
        sessions that changed since are looked at, so a message costs the
        rows it changed, not the record's size; otherwise every row is
        compared.  A session whose message moved only a chain on (see
        :meth:`Session.counters_row`) costs its counters row alone."""
        head = self._head_row()
        if old.get(b"") != head:
            rows = self.rows()
            return (rows, [(part, data) for part, data in rows.items() if old.get(part) != data],
                    [part for part in old if part not in rows])
        writes: list[tuple[bytes, bytes]] = []
        deletes: list[bytes] = []
        get = old.get
        for session in self.sessions:
            row = session._row
            part = session._part
            if row is not None and get(part) is row:
                if session.spqr is not None:
                    continue  # unchanged since its rows were read or written
                crow = session._crow
                if crow is not None and get(session._cpart) is crow:
                    continue
                crow = session.counters_row()
                writes.append((session._cpart, crow))
                old[session._cpart] = crow
                continue
            row = session.row()
            writes.append((part, row))
            old[part] = row
            if session.spqr is None:
                crow = session.counters_row()
                writes.append((session._cpart, crow))
                old[session._cpart] = crow
            elif old.pop(session._cpart, None) is not None:
                deletes.append(session._cpart)
            stale = session._key_parts
            fresh = session._key_rows()
            for key_part in stale:
                if key_part not in fresh:
                    deletes.append(key_part)
                    old.pop(key_part, None)
            for key_part, key_row in fresh.items():
                if old.get(key_part) is not key_row:
                    writes.append((key_part, key_row))
                    old[key_part] = key_row
        return old, writes, deletes

    @classmethod
    def from_rows(cls, load: Callable[[bytes], bytes | None]
                  ) -> tuple[SessionRecord, dict[bytes, bytes]] | None:
        """Load a record from store rows: ``load(part)`` returns a row or
        None.  Returns None if there is no head row; otherwise the record
        and the rows read.  A head that is a whole record (format 1 or 2,
        as :meth:`to_bytes` writes and stores held before the row layout)
        is read as one.  A missing or damaged row raises
        :class:`~signalish.errors.CorruptState`; malformed content a
        :class:`~signalish.errors.DecodeError`."""
        head = load(b"")
        if head is None:
            return None
        head = bytes(head)
        if head[1:2] not in HEAD_VERSIONS:
            return cls.from_bytes(head), {b"": head}
        r = Reader(check_digest(head, "SessionRecord head row"), Tag.SESSION_RECORD,
                   "SessionRecord head row", frozenset({ROWS_VERSION, ROWS_FLAGS_VERSION}))
        profile, max_archived, no_current = cls._read_header(r)
        base_keys = [r.fixed(32, "base key")
                     for _ in range(cls._count(r, max_archived, no_current))]
        r.finish()
        if len(set(base_keys)) != len(base_keys):
            raise InvalidEncoding("SessionRecord: two sessions with one base key")
        rows = {b"": head}
        record = cls(profile, max_archived)
        record.no_current = no_current
        record._head = (tuple(base_keys), no_current, head)
        for base_key in base_keys:
            part = b"s" + base_key
            data = load(part)
            if data is None:
                raise CorruptState("SessionRecord: a session row is missing")

            def keys(chain_id: bytes, base_key: bytes = base_key) -> bytes | None:
                key_part = b"k" + base_key + chain_id
                row = load(key_part)
                if row is not None:
                    rows[key_part] = row
                return row

            def counters(base_key: bytes = base_key) -> bytes | None:
                counters_part = b"c" + base_key
                row = load(counters_part)
                if row is not None:
                    rows[counters_part] = row
                return row

            session = Session.from_row(data, profile, keys, counters)
            if session.base_key != base_key:
                raise InvalidEncoding("SessionRecord: a session row under another base key")
            session._key_rows()  # notes which key rows it has, for changes()
            rows[part] = data
            record.sessions.append(session)
        return record, rows

    @classmethod
    def from_bytes(cls, data: bytes) -> SessionRecord:
        """Load a record; raises :class:`~signalish.errors.CorruptState` (a
        :class:`~signalish.StoreError`) if the integrity check fails, a
        :class:`~signalish.errors.DecodeError` if the content is malformed."""
        r = Reader(check_digest(data, "SessionRecord"), Tag.SESSION_RECORD, "SessionRecord",
                   frozenset({1, RECORD_VERSION, RECORD_FLAGS_VERSION, RECORD_PQ_VERSION}))
        profile, max_archived, no_current = cls._read_header(r)
        record = cls(profile, max_archived)
        record.no_current = no_current
        for _ in range(cls._count(r, max_archived, no_current)):
            layout = _SESSION_LAYOUT_PQ if r.version == RECORD_PQ_VERSION else \
                min(r.version, RECORD_VERSION)
            record.sessions.append(Session._read(r, profile, layout))
        r.finish()
        if len({s.base_key for s in record.sessions}) != len(record.sessions):
            raise InvalidEncoding("SessionRecord: two sessions with one base key")
        return record
