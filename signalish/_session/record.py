""":class:`SessionRecord`: every session with one peer, and the three rules
that decide which one is current (see the package docstring).
"""

from __future__ import annotations

from collections.abc import Callable

from .._encoding import Reader, Tag, Writer, add_digest, check_digest
from .._errors import (
    AuthenticationError,
    CorruptState,
    InvalidEncoding,
    MessageRejected,
    NoSession,
    SignalishError,
    TooFarAhead,
)
from .._primitives import RandomSource
from .._profile import PROFILES, Profile
from .._ratchet import Located, Received
from .formats import (
    _BASE_KEY,
    _NO_CURRENT,
    _SESSION_LAYOUT_PQ,
    HEAD_VERSIONS,
    MAX_ARCHIVED_LIMIT,
    RECORD_FLAGS_VERSION,
    RECORD_PQ_VERSION,
    RECORD_VERSION,
    ROWS_FLAGS_VERSION,
    ROWS_VERSION,
)
from .session import Session

__all__ = ["SessionRecord"]


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
