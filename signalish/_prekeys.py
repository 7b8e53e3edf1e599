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

Storage.  :meth:`PreKeyRing.to_bytes` writes the whole ring as one blob (tag
0x21, version 2; docs/formats.md).  :meth:`PreKeyRing.to_rows` writes it as
store rows instead, a small head plus one row per one-time key, so that
consuming a one-time prekey deletes a row rather than rewriting the ring.
Each row is a part key mapped to row bytes; every row ends in the 16-byte
digest of :func:`~signalish._encoding.add_digest` and ids are 32-bit
big-endian::

    b""                       head: tag 0x21 version 3 (below)
    b"o" || id (4)            one-time EC prekey: tag 0x11 version 2,
                              id (4), private (32), flag, [signature (64)]
    b"k" || id (4)            one-time KEM prekey: tag 0x12 version 2,
                              id (4), created (8), seed d||z (64), signature (64)
    b"r" || spk id (4) || base key (32)
                              remembered base key: tag 0x21 version 4,
                              signed prekey id (4), base key (32)

The head is the version 2 whole ring with three differences: a signed
prekey's remembered count (4) is followed by no base keys; the one-time EC
count (4) and the one-time KEM count (4) are followed by no entries.  Each
count is the number of rows of its kind.  Signed prekeys and last-resort KEM
prekeys (few) stay in the head.  A row repeats the id of its part key, so a
row moved under another part key is refused.  Loading
(:meth:`PreKeyRing.from_rows`) is as strict as :meth:`PreKeyRing.from_bytes`,
and also accepts ``{b"": to_bytes()}`` (a store written before the row
layout).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

from ._bundle import (
    SIGNATURE_SIZE,
    KemPreKey,
    KemPreKeyPublic,
    OneTimePreKey,
    OneTimePreKeyPublic,
    PreKeyBundle,
    SignedPreKey,
    SignedPreKeyPublic,
)
from ._encoding import Reader, Tag, Writer, add_digest, check_digest
from ._errors import (
    InvalidArgument,
    InvalidEncoding,
    PolicyViolation,
    PreKeyAlreadyUsed,
    PreKeyExpired,
    PreKeyReplayed,
    UnknownPreKey,
    UnsupportedByProfile,
)
from ._initial import InitialHeader
from ._keys import IdentityKeyPair
from ._primitives import MLKEM1024_SEED_SIZE, KemPrivateKey, PrivateKey, RandomSource
from ._profile import PROFILES, Profile


__all__ = ["PreKeyRing", "PreKeyIds", "UpkeepPolicy", "Upkeep", "Upload"]

MAX_BATCH: Final = 10_000
MAX_STORED: Final = 100_000
#: Initial messages without a one-time prekey one signed prekey accepts
#: (each remembered by its 32-byte base key); rotate the signed prekey sooner.
MAX_REMEMBERED: Final = 10_000
RING_VERSION: Final = 2
#: Versions of the row layout (see the module docstring).
HEAD_VERSION: Final = 3
REMEMBERED_ROW_VERSION: Final = 4
ONE_TIME_ROW_VERSION: Final = 2
KEM_ROW_VERSION: Final = 2
#: Part key of the head row.
HEAD_PART: Final = b""
_ONE_TIME_PART: Final = b"o"
_KEM_PART: Final = b"k"
_REMEMBERED_PART: Final = b"r"
_U64: Final = 2**64 - 1


@dataclass(frozen=True, slots=True)
class PreKeyIds:
    """The next id a ring hands out, of each kind.  Keep it with the
    application's account data (or let the server remember it) and pass it
    to :meth:`PreKeyRing.create` after a reinstall: ids then never repeat, so
    an initial message still in flight for a key of the old installation is
    refused as a :class:`~signalish.errors.PreKeyError` (its ids lie below
    the counters), not tried with a new key under the same id (which fails
    as an :class:`~signalish.errors.AuthenticationError`, like a forgery)."""

    signed: int = 1
    one_time: int = 1
    kem: int = 1

    def __post_init__(self) -> None:
        for name in ("signed", "one_time", "kem"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not 1 <= value < 2**32 - MAX_BATCH:
                raise InvalidArgument(f"PreKeyIds.{name} must be 1..2**32-{MAX_BATCH + 1}")


@dataclass(frozen=True, slots=True)
class UpkeepPolicy:
    """When :meth:`PreKeyRing.upkeep` generates and rotates prekeys.

    One-time EC and one-time KEM prekeys are topped up to ``one_time`` and
    ``kem`` once fewer than ``one_time_low`` and ``kem_low`` are available;
    the signed prekey is rotated once older than ``signed_max_age`` seconds,
    the last-resort KEM prekey once older than ``last_resort_max_age``; a
    rotated-out key keeps working for ``grace`` seconds, for initial
    messages already in flight.  The defaults are Signal's applications'
    order of magnitude: 100 keys, rotation every week (signed) and month
    (last resort)."""

    one_time: int = 100
    one_time_low: int = 20
    kem: int = 100
    kem_low: int = 20
    signed_max_age: int = 7 * 86_400
    last_resort_max_age: int = 30 * 86_400
    grace: int = 30 * 86_400

    def __post_init__(self) -> None:
        if not 0 <= self.one_time_low <= self.one_time <= MAX_BATCH or \
                not 0 <= self.kem_low <= self.kem <= MAX_BATCH:
            raise InvalidArgument(f"upkeep: need 0 <= low <= target <= {MAX_BATCH}")
        if min(self.signed_max_age, self.last_resort_max_age, self.grace) < 0:
            raise InvalidArgument("upkeep: ages and grace are seconds >= 0")


@dataclass(frozen=True, slots=True)
class Upkeep:
    """What :meth:`PreKeyRing.upkeep_due` found due: how many one-time EC and
    KEM prekeys to generate, and which rotations.  False when nothing is."""

    one_time: int
    kem: int
    rotate_signed: bool
    rotate_last_resort: bool

    def __bool__(self) -> bool:
        return bool(self.one_time or self.kem or self.rotate_signed or self.rotate_last_resort)


@dataclass(frozen=True, slots=True)
class Upload:
    """What to send the server after :meth:`PreKeyRing.upkeep`: the new
    public prekeys (signatures included), empty or None where nothing is
    new.  The server keeps the one-time ones until it hands them out, once
    each, and replaces its signed and last-resort prekey with new ones."""

    one_time: tuple[OneTimePreKeyPublic, ...] = ()
    kem: tuple[KemPreKeyPublic, ...] = ()
    signed: SignedPreKeyPublic | None = None
    last_resort: KemPreKeyPublic | None = None

    def __bool__(self) -> bool:
        return bool(self.one_time or self.kem or self.signed or self.last_resort)


@dataclass(slots=True)
class _Retirable:
    """A rotating key and the time after which it is no longer accepted;
    for a signed prekey, also the base keys of initial messages it accepted
    without a one-time prekey."""

    record: SignedPreKey | KemPreKey
    retire_at: int | None
    seen: set[bytes] = field(default_factory=set)


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

    def restart(self, rng: RandomSource, *, now: int) -> None:
        """Forget every prekey that may have been used since this copy of the
        ring was made (it came from a backup): drop all one-time prekeys,
        replace the signed prekey and the last-resort KEM prekey with new ones
        (no grace for the old ones, whose replay memory may be stale).  The id
        counters are kept, so no id is ever issued twice."""
        self._check_open()
        self._check_rotation(now, 0)
        self._check_ids(max(self._next_signed, self._next_kem), 1)
        self._touched = None
        self._one_time.clear()
        self._kem_one_time.clear()
        self._signed.clear()
        self._last_resort.clear()
        self._one_time_cursor, self._kem_cursor = self._next_one_time, self._next_kem
        self.rotate_signed_prekey(rng, now=now, grace=0)
        if self._profile.kem_key_prefix is not None:
            self.rotate_last_resort_kem_prekey(rng, now=now, grace=0)

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
        return Upkeep(
            one_time=policy.one_time - one_time if one_time < policy.one_time_low else 0,
            kem=policy.kem - kem_count if pq and kem_count < policy.kem_low else 0,
            rotate_signed=now - self.current_signed_prekey.created_at >= policy.signed_max_age,
            rotate_last_resort=last_resort is not None
            and now - last_resort.created_at >= policy.last_resort_max_age)

    def upkeep(self, rng: RandomSource, *, now: int, policy: UpkeepPolicy = UpkeepPolicy(),
               server_one_time: int | None = None, server_kem: int | None = None) -> Upload:
        """Do what :meth:`upkeep_due` finds due: top up the one-time EC and
        KEM prekeys, rotate the signed and the last-resort KEM prekey once
        they are too old (the old ones keep working for ``policy.grace``),
        drop keys whose grace has ended, and return what to upload.  All or
        nothing."""
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

    def to_bytes(self) -> bytes:
        """Tag 0x21, version 2 (secret), then a 16-byte SHA-256 digest
        (unkeyed: it catches accidents, not deliberate edits).  The identity
        is stored separately; only its public key is recorded here, to catch
        a mismatched load.  Version 2 added the remembered base keys after
        each signed prekey; version 1 is still read."""
        w = Writer(Tag.PREKEY_RING, RING_VERSION)
        self._write_common(w)
        w.u32(len(self._signed))
        for key_id, entry in sorted(self._signed.items()):
            _write_signed(w, key_id, entry)
            w.u32(len(entry.seen))
            for base_key in sorted(entry.seen):
                w.fixed(base_key)
        w.u32(len(self._one_time))
        for key_id, one in sorted(self._one_time.items()):
            _write_one_time(w, key_id, one)
        w.u32(len(self._kem_one_time))
        for key_id, kem in sorted(self._kem_one_time.items()):
            _write_kem(w, key_id, kem)
        self._write_last_resort(w)
        return add_digest(w.getvalue())

    def _write_common(self, w: Writer) -> None:
        w.var(self._profile.name.encode()).fixed(self._identity.public.public_bytes_raw())
        w.u32(self.registration_id).u32(self.device_id)
        for value in (self._next_signed, self._next_one_time, self._next_kem,
                      self._one_time_cursor, self._kem_cursor):
            w.u64(value)

    def _write_last_resort(self, w: Writer) -> None:
        w.u32(len(self._last_resort))
        for key_id, entry in sorted(self._last_resort.items()):
            record = entry.record
            assert isinstance(record, KemPreKey)
            w.u32(key_id).u64(record.created_at).fixed(record.private_key.seed())
            w.fixed(record.signature)
            _write_retire(w, entry.retire_at)

    def _head_row(self) -> bytes:
        w = Writer(Tag.PREKEY_RING, HEAD_VERSION)
        self._write_common(w)
        w.u32(len(self._signed))
        for key_id, entry in sorted(self._signed.items()):
            _write_signed(w, key_id, entry)
            w.u32(len(entry.seen))
        w.u32(len(self._one_time)).u32(len(self._kem_one_time))
        self._write_last_resort(w)
        return add_digest(w.getvalue())

    def to_rows(self) -> dict[bytes, bytes]:
        """The ring as store rows: part key -> row bytes.  ``b""`` is the head.

        The layout is in the module docstring.  A row that did not change
        since the last call (or since :meth:`from_rows`) is the same bytes
        object, so comparing with the previous rows is cheap; only the head
        is encoded on every call.
        """
        parts = [_ONE_TIME_PART + key_id.to_bytes(4, "big") for key_id in self._one_time]
        parts += [_KEM_PART + key_id.to_bytes(4, "big") for key_id in self._kem_one_time]
        for key_id, entry in self._signed.items():
            prefix = _REMEMBERED_PART + key_id.to_bytes(4, "big")
            parts += [prefix + base_key for base_key in entry.seen]
        fresh: dict[bytes, bytes] = {}
        for part in parts:
            row = self._row_of(part)
            assert row is not None
            fresh[part] = row
        self._row_cache = fresh
        self._touched = set()
        rows = {HEAD_PART: self._head_row()}
        rows.update(fresh)
        return rows

    def changes(self, old: dict[bytes, bytes]
                ) -> tuple[dict[bytes, bytes], list[tuple[bytes, bytes]], list[bytes]]:
        """What saving the ring over ``old`` (its rows as last read or
        written) takes: the new rows, the rows to write, the parts to delete.
        ``old`` may be updated in place and returned.  After consuming
        prekeys (the path of a first message) only their rows and the head
        are looked at; after any other change every row is compared."""
        if self._touched is None or HEAD_PART not in old:
            rows = self.to_rows()
            return (rows, [(part, data) for part, data in rows.items() if old.get(part) != data],
                    [part for part in old if part not in rows])
        writes: list[tuple[bytes, bytes]] = []
        deletes: list[bytes] = []
        head = self._head_row()
        if old[HEAD_PART] != head:
            writes.append((HEAD_PART, head))
            old[HEAD_PART] = head
        cache = dict(self._row_cache)  # replaced, never changed in place
        for part in self._touched:
            row = self._row_of(part)
            if row is None:
                cache.pop(part, None)
                if part in old:
                    deletes.append(part)
                    del old[part]
            else:
                cache[part] = row
                if old.get(part) != row:
                    writes.append((part, row))
                    old[part] = row
        self._row_cache = cache
        self._touched = set()
        return old, writes, deletes

    def _row_of(self, part: bytes) -> bytes | None:
        """The current row under ``part`` (a one-time, KEM or remembered
        part), or None if there is none."""
        cached = self._row_cache.get(part)
        kind, key_id = part[:1], int.from_bytes(part[1:5], "big")
        if kind == _ONE_TIME_PART:
            one = self._one_time.get(key_id)
            if one is None:
                return None
            return cached or _row(Tag.ONE_TIME_PREKEY, ONE_TIME_ROW_VERSION, _write_one_time,
                                  key_id, one)
        if kind == _KEM_PART:
            kem = self._kem_one_time.get(key_id)
            if kem is None:
                return None
            return cached or _row(Tag.KEM_PREKEY, KEM_ROW_VERSION, _write_kem, key_id, kem)
        entry = self._signed.get(key_id)
        if entry is None or part[5:] not in entry.seen:
            return None
        if cached is not None:
            return cached
        w = Writer(Tag.PREKEY_RING, REMEMBERED_ROW_VERSION)
        return add_digest(w.u32(key_id).fixed(part[5:]).getvalue())

    @classmethod
    def from_bytes(cls, data: bytes, identity: IdentityKeyPair) -> PreKeyRing:
        """Load a ring written by :meth:`to_bytes` for ``identity``.

        Raises a :class:`~signalish.errors.DecodeError` subclass for malformed data
        and :class:`~signalish.errors.InvalidArgument` if the ring belongs to a
        different identity.
        """
        r = Reader(check_digest(data, "PreKeyRing"), Tag.PREKEY_RING, "PreKeyRing",
                   frozenset({1, RING_VERSION}))
        ring, owner = cls._read_common(r, identity)
        ids = _IdOrder(r)
        for _ in range(r.count("signed count", MAX_STORED)):
            key_id, entry = ring._read_signed(r, ids)
            if r.version >= 2:
                entry.seen = _read_seen(r)
            ring._signed[key_id] = entry
        ids = _IdOrder(r)
        for _ in range(r.count("one-time count", MAX_STORED)):
            key_id = ids.next(ring._next_one_time)
            ring._one_time[key_id] = _read_one_time(r, key_id)
        ids = _IdOrder(r)
        for _ in range(r.count("KEM count", MAX_STORED)):
            key_id = ids.next(ring._next_kem)
            ring._kem_one_time[key_id] = _read_kem(r, key_id)
        ring._read_last_resort(r)
        r.finish()
        ring._check_loaded()
        if owner != identity.public.public_bytes_raw():
            raise InvalidArgument("this PreKeyRing belongs to a different identity")
        return ring

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
        head = rows.get(HEAD_PART)
        if head is None:
            raise InvalidEncoding("PreKeyRing: no head row")
        body = check_digest(head, "PreKeyRing head")
        if body[0] == Tag.PREKEY_RING and body[1] in (1, RING_VERSION):
            if len(rows) != 1:
                raise InvalidEncoding("PreKeyRing: a whole ring (version 1 or 2) beside other rows")
            return cls.from_bytes(head, identity)
        r = Reader(body, Tag.PREKEY_RING, "PreKeyRing head", frozenset({HEAD_VERSION}))
        ring, owner = cls._read_common(r, identity)
        remembered: dict[int, int] = {}
        ids = _IdOrder(r)
        for _ in range(r.count("signed count", MAX_STORED)):
            key_id, entry = ring._read_signed(r, ids)
            remembered[key_id] = r.count("remembered count", MAX_REMEMBERED)
            ring._signed[key_id] = entry
        one_time_count = r.count("one-time count", MAX_STORED)
        kem_count = r.count("KEM count", MAX_STORED)
        ring._read_last_resort(r)
        r.finish()
        ring._check_loaded()
        if kem_count and ring._profile.kem_key_prefix is None:
            raise InvalidEncoding("PreKeyRing: KEM prekeys under a profile without PQXDH")

        # Sort the part keys (cheap) and check them against the head before
        # decoding any row (KEM rows cost a key expansion each).
        one_time_parts: list[bytes] = []
        kem_parts: list[bytes] = []
        remembered_parts: list[bytes] = []
        for part in rows:
            if not isinstance(part, bytes):
                raise InvalidEncoding("PreKeyRing: a row's part key is not bytes")
            kind = part[:1]
            if kind == _ONE_TIME_PART and len(part) == 5:
                one_time_parts.append(part)
            elif kind == _KEM_PART and len(part) == 5:
                kem_parts.append(part)
            elif kind == _REMEMBERED_PART and len(part) == 37:
                remembered_parts.append(part)
            elif part != HEAD_PART:
                raise InvalidEncoding("PreKeyRing: unknown or misshapen row part key")
        if len(one_time_parts) != one_time_count:
            raise InvalidEncoding(f"PreKeyRing: {len(one_time_parts)} one-time prekey rows, "
                                  f"the head counts {one_time_count}")
        if len(kem_parts) != kem_count:
            raise InvalidEncoding(f"PreKeyRing: {len(kem_parts)} one-time KEM prekey rows, "
                                  f"the head counts {kem_count}")
        found: dict[int, int] = dict.fromkeys(remembered, 0)
        for part in remembered_parts:
            signed_id = int.from_bytes(part[1:5], "big")
            if signed_id not in found:
                raise InvalidEncoding("PreKeyRing: a remembered base key of a signed prekey "
                                      "the ring does not hold")
            found[signed_id] += 1
        if found != remembered:
            raise InvalidEncoding("PreKeyRing: remembered base key rows do not match "
                                  "the head's counts")

        cache: dict[bytes, bytes] = {}
        one_time_parts.sort()
        for part in one_time_parts:
            key_id = _part_id(part, ring._next_one_time)
            data = rows[part]
            r = _row_reader(data, Tag.ONE_TIME_PREKEY, "PreKeyRing one-time row",
                            ONE_TIME_ROW_VERSION, key_id)
            ring._one_time[key_id] = _read_one_time(r, key_id)
            r.finish()
            cache[part] = bytes(data)
        kem_parts.sort()
        for part in kem_parts:
            key_id = _part_id(part, ring._next_kem)
            if key_id in ring._last_resort:
                raise InvalidEncoding("PreKeyRing: KEM id used twice")
            data = rows[part]
            r = _row_reader(data, Tag.KEM_PREKEY, "PreKeyRing KEM row", KEM_ROW_VERSION, key_id)
            ring._kem_one_time[key_id] = _read_kem(r, key_id)
            r.finish()
            cache[part] = bytes(data)
        for part in remembered_parts:
            data = rows[part]
            signed_id = int.from_bytes(part[1:5], "big")
            r = _row_reader(data, Tag.PREKEY_RING, "PreKeyRing remembered row",
                            REMEMBERED_ROW_VERSION, signed_id)
            if r.fixed(32, "base key") != part[5:]:
                raise InvalidEncoding("PreKeyRing: a remembered row's base key is not "
                                      "its part key's")
            r.finish()
            ring._signed[signed_id].seen.add(part[5:])
            cache[part] = bytes(data)
        ring._row_cache = cache
        ring._touched = set()
        ring._check_loaded()
        if owner != identity.public.public_bytes_raw():
            raise InvalidArgument("this PreKeyRing belongs to a different identity")
        return ring

    @classmethod
    def _read_common(cls, r: Reader, identity: IdentityKeyPair) -> tuple[PreKeyRing, bytes]:
        """The fields before the signed prekeys; returns the ring (empty
        tables) and the owner's identity key as recorded."""
        name = r.var("profile", 64)
        profile = PROFILES.get(name.decode("ascii", "replace"))
        if profile is None:
            raise InvalidEncoding("PreKeyRing: unknown profile name")
        owner = r.fixed(32, "identity key")
        ring = cls(identity, profile, r.u32("registration id"), r.u32("device id"))
        ring._next_signed = r.u64("next signed id")
        ring._next_one_time = r.u64("next one-time id")
        ring._next_kem = r.u64("next KEM id")
        ring._one_time_cursor = r.u64("one-time cursor")
        ring._kem_cursor = r.u64("KEM cursor")
        return ring, owner

    def _read_signed(self, r: Reader, ids: _IdOrder) -> tuple[int, _Retirable]:
        """One signed prekey up to its retire time (not its remembered keys)."""
        key_id = ids.next(self._next_signed)
        created = r.u64("created at")
        private = PrivateKey.from_private_bytes(r.fixed(32, "private key"))
        signature = r.fixed(SIGNATURE_SIZE, "signature")
        return key_id, _Retirable(SignedPreKey(key_id, created, private, signature),
                                  _read_retire(r))

    def _read_last_resort(self, r: Reader) -> None:
        ids = _IdOrder(r)
        for _ in range(r.count("last-resort count", MAX_STORED)):
            key_id = ids.next(self._next_kem)
            if key_id in self._kem_one_time:
                raise InvalidEncoding("PreKeyRing: KEM id used twice")
            created = r.u64("created at")
            kem_private = KemPrivateKey.from_seed(r.fixed(MLKEM1024_SEED_SIZE, "seed"))
            record = KemPreKey(key_id, created, kem_private,
                               r.fixed(SIGNATURE_SIZE, "signature"), True)
            self._last_resort[key_id] = _Retirable(record, _read_retire(r))

    def _check_loaded(self) -> None:
        current = [i for i, e in self._signed.items() if e.retire_at is None]
        if current != [self._next_signed - 1]:
            raise InvalidEncoding("PreKeyRing: exactly the newest signed prekey must be current")
        if self._profile.kem_key_prefix is None:
            if self._kem_one_time or self._last_resort:
                raise InvalidEncoding("PreKeyRing: KEM prekeys under a profile without PQXDH")
        elif len([e for e in self._last_resort.values() if e.retire_at is None]) != 1:
            raise InvalidEncoding("PreKeyRing: exactly one last-resort KEM prekey must be current")
        if max(self._next_signed, self._next_one_time, self._next_kem) > 2**32:
            raise InvalidEncoding("PreKeyRing: id counter beyond the 32-bit id space")
        if not (1 <= self._one_time_cursor <= self._next_one_time
                and 1 <= self._kem_cursor <= self._next_kem):
            raise InvalidEncoding("PreKeyRing: issue cursor beyond the id counter")

    def __repr__(self) -> str:
        return (f"PreKeyRing(profile={self._profile.name}, signed={sorted(self._signed)}, "
                f"one_time_remaining={len(self._one_time)}, "
                f"kem_remaining={len(self._kem_one_time)})")


class _IdOrder:
    """Enforces strictly increasing ids below the counter (canonical order)."""

    __slots__ = ("_reader", "_last")

    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self._last = 0

    def next(self, limit: int) -> int:
        key_id = self._reader.u32("key id")
        if not self._last < key_id < limit:
            raise InvalidEncoding("PreKeyRing: key ids out of order or beyond the counter")
        self._last = key_id
        return key_id


def _write_signed(w: Writer, key_id: int, entry: _Retirable) -> None:
    """A signed prekey up to its retire time (not its remembered keys)."""
    record = entry.record
    assert isinstance(record, SignedPreKey)
    w.u32(key_id).u64(record.created_at).fixed(record.private_key.private_bytes_raw())
    w.fixed(record.signature)
    _write_retire(w, entry.retire_at)


def _write_one_time(w: Writer, key_id: int, one: OneTimePreKey) -> None:
    w.u32(key_id).fixed(one.private_key.private_bytes_raw()).flag(one.signature is not None)
    if one.signature is not None:
        w.fixed(one.signature)


def _write_kem(w: Writer, key_id: int, kem: KemPreKey) -> None:
    w.u32(key_id).u64(kem.created_at).fixed(kem.private_key.seed()).fixed(kem.signature)


def _read_one_time(r: Reader, key_id: int) -> OneTimePreKey:
    """The fields after the id written by :func:`_write_one_time`."""
    private = PrivateKey.from_private_bytes(r.fixed(32, "private key"))
    sig = r.fixed(SIGNATURE_SIZE, "signature") if r.flag("signature present") else None
    return OneTimePreKey(key_id, private, sig)


def _read_kem(r: Reader, key_id: int) -> KemPreKey:
    """The fields after the id written by :func:`_write_kem`."""
    created = r.u64("created at")
    kem_private = KemPrivateKey.from_seed(r.fixed(MLKEM1024_SEED_SIZE, "seed"))
    return KemPreKey(key_id, created, kem_private, r.fixed(SIGNATURE_SIZE, "signature"), False)


def _part_id(part: bytes, limit: int) -> int:
    """The id of a one-time row's part key, which must be below its counter."""
    key_id = int.from_bytes(part[1:5], "big")
    if not 0 < key_id < limit:
        raise InvalidEncoding("PreKeyRing: a row's key id is zero or not below its counter")
    return key_id


def _row_reader(data: bytes, tag: int, what: str, version: int, key_id: int) -> Reader:
    """A reader over a row past its id, which must be ``key_id`` (the part key's)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what}: expected bytes, got {type(data).__name__}")
    r = Reader(check_digest(data, what), tag, what, frozenset({version}))
    if r.u32("key id") != key_id:
        raise InvalidEncoding(f"{what}: the row's id is not its part key's")
    return r


def _row(tag: int, version: int, write: Callable[[Writer, int, Any], None], key_id: int,
         key: Any) -> bytes:
    """One per-key row: ``write`` the key's fields, then the digest."""
    w = Writer(tag, version)
    write(w, key_id, key)
    return add_digest(w.getvalue())


def _write_retire(w: Writer, retire_at: int | None) -> None:
    w.flag(retire_at is not None)
    if retire_at is not None:
        w.u64(retire_at)


def _read_seen(r: Reader) -> set[bytes]:
    seen: list[bytes] = [r.fixed(32, "base key")
                         for _ in range(r.count("remembered count", MAX_REMEMBERED))]
    if any(a >= b for a, b in zip(seen, seen[1:])):
        raise InvalidEncoding("PreKeyRing: remembered base keys out of order")
    return set(seen)


def _read_retire(r: Reader) -> int | None:
    return r.u64("retire at") if r.flag("retired") else None
