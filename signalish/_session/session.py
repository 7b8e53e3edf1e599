""":class:`Session`: one Double Ratchet session with one peer, made from an
X3DH/PQXDH agreement, with its stored forms (a whole-record entry, or a
session row beside counters and key rows).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from .._encoding import Reader, Tag, Writer, add_digest, check_digest
from .._errors import (
    AuthenticationError,
    CorruptState,
    InvalidArgument,
    InvalidEncoding,
    MessageRejected,
    StaleSession,
    UnsupportedByProfile,
)
from .._bundle import PreKeyBundle
from .._initial import InitialHeader
from .._keys import IdentityKey, IdentityKeyPair
from .._primitives import PublicKey, RandomSource, SystemRandom
from .._profile import Profile
from .._ratchet import (
    Header,
    Located,
    RatchetState,
    Received,
    decrypt_located,
    locate,
    ratchet_encrypt,
    refusal,
)
from .._spqr import Spqr
from .._wire_v3 import V3Frame
from .._wire_v4 import V4Wire
from .._state_codec import (
    counters_row,
    encode_state,
    keys_row,
    read_counters_row,
    read_limits,
    read_state,
    write_limits,
)
from .._window import RatchetLimits
from .._wires import wire_format
from .._prekeys import PreKeyRing
from .._x3dh import AgreementResult, BundlePolicy, initiate, respond
from .formats import (
    _ROW_PQ_TAG,
    _ROW_SPLIT_TAG,
    _SESSION_LAYOUT_PQ,
    RECORD_VERSION,
    SESSION_ROW_PQ_VERSION,
    SESSION_ROW_SPLIT_VERSION,
    SESSION_ROW_VERSION,
)
from .options import SessionOptions

__all__ = ["Session"]


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
