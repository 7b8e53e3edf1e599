"""The owner's side of the prekey lifecycle (X3DH section 4.1 and 4.6,
PQXDH section 4.5).

A :class:`PreKeyRing` holds one identity's private prekeys:

* signed prekeys: one current, plus retired ones kept until a grace period
  the caller chose has passed, so initial messages that were already in
  flight at rotation still decrypt;
* one-time EC prekeys: each usable exactly once; ids are never reused;
* one-time ML-KEM-1024 prekeys, and last-resort ML-KEM-1024 prekeys that are
  handed out only when no one-time KEM prekey is left and are never consumed.

Ids come from per-kind counters that only grow, so a missing id below the
counter is known to have been used or retired (distinct errors) without
keeping a list of used ids.  Time is always a parameter (``now``, seconds).
Every method validates before it mutates: a call that raises changes nothing.

Replays: an initial message that consumed a one-time prekey cannot be
accepted twice (the key is gone).  One that used none (only the signed
prekey, and at most a last-resort KEM prekey) could be, once the session it
built has left the session record; so the ring remembers the base key of
every such message beside the signed prekey it used, for as long as that
signed prekey lives, and refuses a repeat with
:class:`~signalish.errors.PreKeyReplayed` (as libsignal does for last-resort Kyber
prekeys).

A ring obtained from :meth:`SessionManager.prekeys` is closed when its
``with`` block ends: every changing method then raises
:class:`~signalish.errors.InvalidArgument`, so a stale copy cannot be kept and
saved over the store's.

Its stored forms are in :mod:`.codec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, NoReturn

from .._bundle import (
    KemPreKey,
    KemPreKeyPublic,
    OneTimePreKey,
    OneTimePreKeyPublic,
    PreKeyBundle,
    SignedPreKey,
    SignedPreKeyPublic,
)
from .._errors import (
    InvalidArgument,
    PolicyViolation,
    PreKeyAlreadyUsed,
    PreKeyExpired,
    PreKeyReplayed,
    UnknownPreKey,
    UnsupportedByProfile,
)
from .._initial import InitialHeader
from .._keys import IdentityKeyPair
from .._primitives import RandomSource
from .._profile import Profile
from .codec import (
    _KEM_PART,
    _ONE_TIME_PART,
    _REMEMBERED_PART,
    _Retirable,
    ring_changes,
    ring_from_bytes,
    ring_from_rows,
    ring_to_bytes,
    ring_to_rows,
)
from .policy import (
    MAX_BATCH,
    MAX_REMEMBERED,
    MAX_STORED,
    PreKeyIds,
    Upkeep,
    UpkeepPolicy,
    Upload,
)

__all__ = ["PreKeyRing"]

_U64: Final = 2**64 - 1


class PreKeyRing:
    """One identity's private prekeys and their lifecycle.

    Create with :meth:`create`; persist with :meth:`to_bytes` (secret) and
    load with :meth:`from_bytes` together with the identity it belongs to,
    or as store rows with :meth:`to_rows` and :meth:`from_rows`.
    """

    __slots__ = (
        "_identity", "_profile", "registration_id", "device_id",
        "_next_signed", "_next_one_time", "_next_kem",
        "_one_time_cursor", "_kem_cursor",
        "_signed", "_one_time", "_kem_one_time", "_last_resort", "_closed",
        "_row_cache", "_touched",
    )

    def __init__(self, identity: IdentityKeyPair, profile: Profile,
                 registration_id: int, device_id: int) -> None:
        self._identity = identity
        self._profile = profile
        self.registration_id = registration_id
        self.device_id = device_id
        self._next_signed = 1
        self._next_one_time = 1
        self._next_kem = 1
        self._one_time_cursor = 1
        self._kem_cursor = 1
        self._signed: dict[int, _Retirable] = {}
        self._one_time: dict[int, OneTimePreKey] = {}
        self._kem_one_time: dict[int, KemPreKey] = {}
        self._last_resort: dict[int, _Retirable] = {}
        self._closed = False
        # Encoded rows (part key -> row bytes) of one-time keys and remembered
        # base keys, reused by to_rows: such a row never changes, because an
        # id is never reused and a remembered base key's row is its part key.
        # Replaced, never changed in place.
        self._row_cache: dict[bytes, bytes] = {}
        # The parts that may have changed since the rows were last read or
        # computed (to_rows, from_rows), for changes(); None when unknown.
        self._touched: set[bytes] | None = None

    def close(self) -> None:
        """Refuse every further change (see :meth:`SessionManager.prekeys`)."""
        self._closed = True

    def _note(self, *parts: bytes) -> None:
        if self._touched is not None:
            self._touched.update(parts)

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidArgument("this PreKeyRing was written back to its store and closed; "
                                  "open it again with SessionManager.prekeys()")

    @classmethod
    def create(cls, identity: IdentityKeyPair, profile: Profile, rng: RandomSource, *,
               now: int, registration_id: int = 0, device_id: int = 1,
               first_ids: PreKeyIds = PreKeyIds()) -> PreKeyRing:
        """A ring with a first signed prekey and, where the profile has
        PQXDH, a first last-resort KEM prekey.  No one-time prekeys yet.
        Ids start at ``first_ids`` (see :class:`PreKeyIds`; after a
        reinstall, pass the :attr:`next_ids` the old ring had)."""
        for name, value in (("registration_id", registration_id), ("device_id", device_id)):
            if not 0 <= value <= 0xFFFFFFFF:
                raise InvalidArgument(f"{name} is 32-bit unsigned, got {value}")
        ring = cls(identity, profile, registration_id, device_id)
        ring._next_signed, ring._next_one_time, ring._next_kem = (
            first_ids.signed, first_ids.one_time, first_ids.kem)
        ring._one_time_cursor, ring._kem_cursor = first_ids.one_time, first_ids.kem
        ring.rotate_signed_prekey(rng, now=now, grace=0)
        if profile.kem_key_prefix is not None:
            ring.rotate_last_resort_kem_prekey(rng, now=now, grace=0)
        return ring

    # --- properties -----------------------------------------------------------

    @property
    def identity(self) -> IdentityKeyPair:
        return self._identity

    @property
    def profile(self) -> Profile:
        return self._profile

    @property
    def next_ids(self) -> PreKeyIds:
        """The next id of each kind (keep it: see :class:`PreKeyIds`)."""
        return PreKeyIds(self._next_signed, self._next_one_time, self._next_kem)

    @property
    def one_time_prekeys_remaining(self) -> int:
        """One-time EC prekeys not yet used (replenish when this runs low)."""
        return len(self._one_time)

    @property
    def kem_prekeys_remaining(self) -> int:
        """One-time KEM prekeys not yet used."""
        return len(self._kem_one_time)

    @property
    def current_signed_prekey(self) -> SignedPreKey:
        record = self._signed[self._next_signed - 1].record
        assert isinstance(record, SignedPreKey)
        return record

    @property
    def current_last_resort_kem_prekey(self) -> KemPreKey | None:
        if not self._last_resort:
            return None
        record = self._last_resort[self._current_last_resort_id()].record
        assert isinstance(record, KemPreKey)
        return record

    def _current_last_resort_id(self) -> int:
        return max(i for i, e in self._last_resort.items() if e.retire_at is None)

    # --- generation and rotation ------------------------------------------------

    @staticmethod
    def _check_batch(count: int, stored: int) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_BATCH:
            raise InvalidArgument(f"batch size must be 0..{MAX_BATCH}, got {count}")
        if stored + count > MAX_STORED:
            raise InvalidArgument(f"a ring holds at most {MAX_STORED} keys of one kind")

    @staticmethod
    def _check_ids(next_id: int, count: int) -> None:
        if next_id + count - 1 > 0xFFFFFFFF:
            raise InvalidArgument("prekey id space exhausted; create a new identity ring")

    def generate_one_time_prekeys(self, count: int, rng: RandomSource) -> list[OneTimePreKeyPublic]:
        """Make ``count`` one-time EC prekeys with fresh ids; returns the
        public halves to upload."""
        self._check_open()
        self._check_batch(count, len(self._one_time))
        if not count:
            return []
        self._check_ids(self._next_one_time, count)
        self._touched = None
        first = self._next_one_time
        new = [OneTimePreKey.generate(self._identity, self._profile, first + i, rng)
               for i in range(count)]
        for record in new:
            self._one_time[record.key_id] = record
        self._next_one_time = first + count
        return [record.public() for record in new]

    def generate_kem_prekeys(self, count: int, rng: RandomSource, *, now: int) -> list[KemPreKeyPublic]:
        """Make ``count`` one-time ML-KEM-1024 prekeys with fresh ids."""
        self._check_open()
        self._require_kem()
        self._check_batch(count, len(self._kem_one_time))
        if not count:
            return []
        self._check_ids(self._next_kem, count)
        self._touched = None
        first = self._next_kem
        new = [KemPreKey.generate(self._identity, self._profile, first + i, now, rng,
                                  last_resort=False) for i in range(count)]
        for record in new:
            self._kem_one_time[record.key_id] = record
        self._next_kem = first + count
        return [record.public() for record in new]

    def rotate_signed_prekey(self, rng: RandomSource, *, now: int, grace: int) -> SignedPreKeyPublic:
        """Make a new current signed prekey.  The previous one stays usable
        for ``grace`` seconds after ``now``; keys whose grace has ended are
        dropped."""
        self._check_open()
        self._check_rotation(now, grace)
        self._check_ids(self._next_signed, 1)
        record = SignedPreKey.generate(self._identity, self._profile, self._next_signed, now, rng)
        self._retire(self._signed, now + grace)
        self._signed[record.key_id] = _Retirable(record, None)
        self._next_signed += 1
        self.prune(now)
        return record.public()

    def rotate_last_resort_kem_prekey(self, rng: RandomSource, *, now: int,
                                      grace: int) -> KemPreKeyPublic:
        """Make a new last-resort KEM prekey, retiring the previous one after
        ``grace`` seconds."""
        self._check_open()
        self._require_kem()
        self._check_rotation(now, grace)
        self._check_ids(self._next_kem, 1)
        record = KemPreKey.generate(self._identity, self._profile, self._next_kem, now, rng,
                                    last_resort=True)
        self._retire(self._last_resort, now + grace)
        self._last_resort[record.key_id] = _Retirable(record, None)
        self._next_kem += 1
        self.prune(now)
        return record.public()

    def prune(self, now: int) -> None:
        """Drop retired signed and last-resort prekeys whose grace has ended."""
        self._check_open()
        self._touched = None
        for table in (self._signed, self._last_resort):
            for key_id in [i for i, e in table.items()
                           if e.retire_at is not None and e.retire_at <= now]:
                del table[key_id]

    def restart(self, rng: RandomSource, *, now: int,
                next_ids: PreKeyIds | None = None) -> Upload:
        """Forget every prekey that may have been used since this copy of the
        ring was made (it came from a backup, or the store was rolled back):
        drop all one-time prekeys, replace the signed prekey and the
        last-resort KEM prekey with new ones (no grace for the old ones,
        whose replay memory may be stale), and return them to upload.

        The id counters are this copy's, raised to ``next_ids`` where that
        is higher: pass the counters the newest ring had (recorded beside
        the account, or the highest ids the server holds, plus one), and no
        id is issued twice.  Without them, ids handed out after this copy
        was made are handed out again with new keys; an initial message
        still in flight to one of the old keys then fails as an
        :class:`~signalish.errors.AuthenticationError`, not a
        :class:`~signalish.errors.PreKeyError` (it cannot decrypt either way)."""
        self._check_open()
        self._check_rotation(now, 0)
        ids = next_ids if next_ids is not None else self.next_ids
        counters = (max(self._next_signed, ids.signed), max(self._next_one_time, ids.one_time),
                    max(self._next_kem, ids.kem))
        self._check_ids(max(counters[0], counters[2]), 1)
        self._touched = None
        self._next_signed, self._next_one_time, self._next_kem = counters
        self._one_time.clear()
        self._kem_one_time.clear()
        self._signed.clear()
        self._last_resort.clear()
        self._one_time_cursor, self._kem_cursor = self._next_one_time, self._next_kem
        signed = self.rotate_signed_prekey(rng, now=now, grace=0)
        last_resort = None
        if self._profile.kem_key_prefix is not None:
            last_resort = self.rotate_last_resort_kem_prekey(rng, now=now, grace=0)
        return Upload(signed=signed, last_resort=last_resort)

    @staticmethod
    def _check_rotation(now: int, grace: int) -> None:
        if not 0 <= now <= _U64 or not 0 <= grace or now + grace > _U64:
            raise InvalidArgument("now and grace must be non-negative seconds")

    @staticmethod
    def _retire(table: dict[int, _Retirable], at: int) -> None:
        for entry in table.values():
            if entry.retire_at is None:
                entry.retire_at = at

    def _require_kem(self) -> None:
        if self._profile.kem_key_prefix is None:
            raise UnsupportedByProfile(f"profile {self._profile.name} has no post-quantum prekeys")

    # --- handing out --------------------------------------------------------------

    def issue_bundle(self) -> PreKeyBundle:
        """The bundle for the next initiator: the current signed prekey, the
        next one-time EC prekey not yet issued (if any), and the next one-time
        KEM prekey not yet issued, else the current last-resort KEM prekey.

        Issued keys stay usable until an initial message consumes them.
        """
        self._check_open()
        one_time = next((r for i, r in self._one_time.items() if i >= self._one_time_cursor), None)
        kem: KemPreKey | None = next(
            (r for i, r in self._kem_one_time.items() if i >= self._kem_cursor), None)
        if kem is None:
            kem = self.current_last_resort_kem_prekey
        if one_time is not None:
            self._one_time_cursor = one_time.key_id + 1
        if kem is not None and not kem.last_resort:
            self._kem_cursor = kem.key_id + 1
        return PreKeyBundle(
            identity_key=self._identity.public,
            signed_prekey=self.current_signed_prekey.public(),
            one_time_prekey=None if one_time is None else one_time.public(),
            kem_prekey=None if kem is None else kem.public(),
            registration_id=self.registration_id,
            device_id=self.device_id,
        )

    # --- upkeep ---------------------------------------------------------------------

    def _unissued(self, table: dict[int, OneTimePreKey] | dict[int, KemPreKey],
                  cursor: int) -> int:
        return sum(1 for key_id in table if key_id >= cursor)

    def upkeep_due(self, *, now: int, policy: UpkeepPolicy = UpkeepPolicy(),
                   server_one_time: int | None = None,
                   server_kem: int | None = None) -> Upkeep:
        """What :meth:`upkeep` would do now; changes nothing.  The available
        one-time keys are the ones the server still holds
        (``server_one_time``, ``server_kem``, as the server reports them) or,
        when not given, the ones :meth:`issue_bundle` has not handed out."""
        for name, value in (("server_one_time", server_one_time), ("server_kem", server_kem)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise InvalidArgument(f"{name} is a count >= 0")
        one_time = (server_one_time if server_one_time is not None
                    else self._unissued(self._one_time, self._one_time_cursor))
        kem_count = (server_kem if server_kem is not None
                     else self._unissued(self._kem_one_time, self._kem_cursor))
        pq = self._profile.kem_key_prefix is not None
        last_resort = self.current_last_resort_kem_prekey
        signed = self.current_signed_prekey
        # A top-up never exceeds what the ring may hold (a server that keeps
        # reporting low counts would otherwise fill it, and upkeep would then
        # refuse everything, rotation included).  The signed prekey is also
        # due once the base keys it remembers near their limit (initial
        # messages without a one-time prekey are refused at the limit).
        return Upkeep(
            one_time=min(policy.one_time - one_time, MAX_STORED - len(self._one_time))
            if one_time < policy.one_time_low else 0,
            kem=min(policy.kem - kem_count, MAX_STORED - len(self._kem_one_time))
            if pq and kem_count < policy.kem_low else 0,
            rotate_signed=now - signed.created_at >= policy.signed_max_age
            or len(self._signed[signed.key_id].seen) >= MAX_REMEMBERED * 9 // 10,
            rotate_last_resort=last_resort is not None
            and now - last_resort.created_at >= policy.last_resort_max_age)

    def upkeep(self, rng: RandomSource, *, now: int, policy: UpkeepPolicy = UpkeepPolicy(),
               server_one_time: int | None = None, server_kem: int | None = None) -> Upload:
        """Do what :meth:`upkeep_due` finds due: top up the one-time EC and
        KEM prekeys (to the target, or as far as the ring has room), rotate
        the signed and the last-resort KEM prekey once they are too old (the
        signed one also once the base keys it remembers reach 90% of their
        limit; the old ones keep working for ``policy.grace``), drop keys
        whose grace has ended, and return what to upload.  All or nothing."""
        due = self.upkeep_due(now=now, policy=policy, server_one_time=server_one_time,
                              server_kem=server_kem)
        self._check_open()
        self._check_batch(due.one_time, len(self._one_time))
        self._check_batch(due.kem, len(self._kem_one_time))
        if due.rotate_signed or due.rotate_last_resort:
            self._check_rotation(now, policy.grace)
        self._check_ids(self._next_one_time, due.one_time)
        self._check_ids(self._next_kem, due.kem + int(due.rotate_last_resort))
        self._check_ids(self._next_signed, int(due.rotate_signed))
        one_time = self.generate_one_time_prekeys(due.one_time, rng)
        kem = self.generate_kem_prekeys(due.kem, rng, now=now) if due.kem else []
        signed = (self.rotate_signed_prekey(rng, now=now, grace=policy.grace)
                  if due.rotate_signed else None)
        last_resort = (self.rotate_last_resort_kem_prekey(rng, now=now, grace=policy.grace)
                       if due.rotate_last_resort else None)
        self.prune(now)
        return Upload(tuple(one_time), tuple(kem), signed, last_resort)

    # --- lookups for the responder -------------------------------------------------

    def signed_prekey(self, key_id: int, *, now: int) -> SignedPreKey:
        """The signed prekey ``key_id`` if it is current or within its grace.

        Raises :class:`~signalish.errors.PreKeyExpired` or :class:`~signalish.errors.UnknownPreKey`.
        """
        record = self._lookup_retirable(self._signed, self._next_signed, key_id, now, "signed")
        assert isinstance(record, SignedPreKey)
        return record

    def one_time_prekey(self, key_id: int) -> OneTimePreKey:
        """The unused one-time EC prekey ``key_id``.

        Raises :class:`~signalish.errors.PreKeyAlreadyUsed` or :class:`~signalish.errors.UnknownPreKey`.
        """
        record = self._one_time.get(key_id)
        if record is None:
            self._raise_missing(key_id, self._next_one_time, "one-time")
        return record

    def kem_prekey(self, key_id: int, *, now: int) -> KemPreKey:
        """The KEM prekey ``key_id``: an unused one-time one, or a last-resort
        one within its grace."""
        record = self._kem_one_time.get(key_id)
        if record is not None:
            return record
        if key_id in self._last_resort:
            found = self._lookup_retirable(self._last_resort, self._next_kem, key_id, now, "KEM")
            assert isinstance(found, KemPreKey)
            return found
        # A pruned last-resort id also lands here: both are gone for good.
        self._raise_missing(key_id, self._next_kem, "KEM")

    def _lookup_retirable(self, table: dict[int, _Retirable], next_id: int, key_id: int,
                          now: int, what: str) -> SignedPreKey | KemPreKey:
        entry = table.get(key_id)
        if entry is None:
            if 0 < key_id < next_id:
                raise PreKeyExpired(f"{what} prekey {key_id} was retired")
            raise UnknownPreKey(f"no {what} prekey with id {key_id}")
        if entry.retire_at is not None and entry.retire_at <= now:
            raise PreKeyExpired(f"{what} prekey {key_id} was retired")
        return entry.record

    @staticmethod
    def _raise_missing(key_id: int, next_id: int, what: str) -> NoReturn:
        if 0 < key_id < next_id:
            raise PreKeyAlreadyUsed(f"{what} prekey {key_id} was already used")
        raise UnknownPreKey(f"no {what} prekey with id {key_id}")

    # --- consumption -----------------------------------------------------------------

    def take_one_time_prekey(self, key_id: int) -> OneTimePreKey:
        """Remove and return one-time EC prekey ``key_id``; a second take raises
        :class:`~signalish.errors.PreKeyAlreadyUsed`."""
        self._check_open()
        record = self.one_time_prekey(key_id)
        del self._one_time[key_id]
        self._note(_ONE_TIME_PART + key_id.to_bytes(4, "big"))
        return record

    def _uses_one_time(self, header: InitialHeader) -> bool:
        return header.one_time_prekey_id is not None or (
            header.kem_prekey_id is not None and header.kem_prekey_id in self._kem_one_time)

    def check_replay(self, header: InitialHeader, *, now: int) -> None:
        """Refuse an initial message without a one-time prekey whose base key
        this signed prekey already accepted (:class:`~signalish.errors.PreKeyReplayed`),
        or that the signed prekey has no room left to remember
        (:class:`~signalish.errors.PolicyViolation`).  Changes nothing."""
        if self._uses_one_time(header):
            return
        self.signed_prekey(header.signed_prekey_id, now=now)
        seen = self._signed[header.signed_prekey_id].seen
        if header.base_key.public_bytes_raw() in seen:
            raise PreKeyReplayed("this initial message was already accepted")
        if len(seen) >= MAX_REMEMBERED:
            raise PolicyViolation(f"signed prekey {header.signed_prekey_id} accepted "
                                  f"{MAX_REMEMBERED} initial messages without a one-time "
                                  "prekey; rotate it")

    def consume(self, header: InitialHeader, *, now: int) -> None:
        """Delete the one-time prekeys an initial message used (X3DH section
        3.4: Bob deletes the one-time prekey), or, if it used none, remember
        its base key beside the signed prekey.  Call it once the first
        message under the new session has authenticated.  All or nothing."""
        self._check_open()
        if header.one_time_prekey_id is not None:
            self.one_time_prekey(header.one_time_prekey_id)
        if header.kem_prekey_id is not None:
            self.kem_prekey(header.kem_prekey_id, now=now)
        self.check_replay(header, now=now)
        if not self._uses_one_time(header):
            base_key = header.base_key.public_bytes_raw()
            self._signed[header.signed_prekey_id].seen.add(base_key)
            self._note(_REMEMBERED_PART + header.signed_prekey_id.to_bytes(4, "big") + base_key)
        if header.one_time_prekey_id is not None:
            del self._one_time[header.one_time_prekey_id]
            self._note(_ONE_TIME_PART + header.one_time_prekey_id.to_bytes(4, "big"))
        if header.kem_prekey_id is not None:
            self._kem_one_time.pop(header.kem_prekey_id, None)
            self._note(_KEM_PART + header.kem_prekey_id.to_bytes(4, "big"))

    # --- serialization -----------------------------------------------------------

    # --- stored forms (the code is in .codec) ------------------------------------

    def to_bytes(self) -> bytes:
        """Tag 0x21, version 2 (secret), then a 16-byte SHA-256 digest
        (unkeyed: it catches accidents, not deliberate edits).  The identity
        is stored separately; only its public key is recorded here, to catch
        a mismatched load.  Version 2 added the remembered base keys after
        each signed prekey; version 1 is still read."""
        return ring_to_bytes(self)

    def to_rows(self) -> dict[bytes, bytes]:
        """The ring as store rows: part key -> row bytes.  ``b""`` is the head.

        The layout is in :mod:`signalish._prekeys.codec`.  A row that did not change
        since the last call (or since :meth:`from_rows`) is the same bytes
        object, so comparing with the previous rows is cheap; only the head
        is encoded on every call.
        """
        return ring_to_rows(self)

    def changes(self, old: dict[bytes, bytes]
                ) -> tuple[dict[bytes, bytes], list[tuple[bytes, bytes]], list[bytes]]:
        """What saving the ring over ``old`` (its rows as last read or
        written) takes: the new rows, the rows to write, the parts to delete.
        ``old`` may be updated in place and returned.  After consuming
        prekeys (the path of a first message) only their rows and the head
        are looked at; after any other change every row is compared."""
        return ring_changes(self, old)

    @classmethod
    def from_bytes(cls, data: bytes, identity: IdentityKeyPair) -> PreKeyRing:
        """Load a ring written by :meth:`to_bytes` for ``identity``.

        Raises a :class:`~signalish.errors.DecodeError` subclass for malformed data
        and :class:`~signalish.errors.InvalidArgument` if the ring belongs to a
        different identity.
        """
        return ring_from_bytes(data, identity, cls)

    @classmethod
    def from_rows(cls, rows: Mapping[bytes, bytes], identity: IdentityKeyPair) -> PreKeyRing:
        """Inverse of :meth:`to_rows` (``rows`` must include ``b""``, the head).

        Also accepts ``{b"": whole_ring_bytes}`` where the head is a version 1
        or version 2 whole ring as :meth:`to_bytes` writes it: then this is
        :meth:`from_bytes` (how a store written before the row layout loads).

        Raises :class:`~signalish.errors.CorruptState` for a row whose digest
        fails; a :class:`~signalish.errors.DecodeError` subclass for a row
        that does not parse (:class:`~signalish.errors.UnexpectedType` for a
        row of another kind), and :class:`~signalish.errors.InvalidEncoding`
        for rows that do not fit together: no head, an unknown or misshapen
        part key, a row whose id or base key is not its part key's, an id not
        below its counter, a KEM id both one-time and last-resort, a head
        count that is not the number of rows of its kind, a remembered base
        key of a signed prekey the head does not hold;
        :class:`~signalish.errors.InvalidArgument` if the ring belongs to a
        different identity.  The same limits as :meth:`from_bytes` apply.
        """
        return ring_from_rows(rows, identity, cls)

    def __repr__(self) -> str:
        return (f"PreKeyRing(profile={self._profile.name}, signed={sorted(self._signed)}, "
                f"one_time_remaining={len(self._one_time)}, "
                f"kem_remaining={len(self._kem_one_time)})")
