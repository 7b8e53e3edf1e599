"""The stored forms of a prekey ring.

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
from typing import Any, Final, Protocol, TypeVar

from .._bundle import SIGNATURE_SIZE, KemPreKey, OneTimePreKey, SignedPreKey
from .._encoding import Reader, Tag, Writer, add_digest, check_digest
from .._errors import InvalidArgument, InvalidEncoding
from .._keys import IdentityKeyPair
from .._primitives import MLKEM1024_SEED_SIZE, KemPrivateKey, PrivateKey
from .._profile import PROFILES, Profile
from .policy import MAX_REMEMBERED, MAX_STORED

__all__ = ["RingFields", "ring_to_bytes", "ring_from_bytes", "ring_to_rows", "ring_from_rows",
           "ring_changes"]

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


@dataclass(slots=True)
class _Retirable:
    """A rotating key and the time after which it is no longer accepted;
    for a signed prekey, also the base keys of initial messages it accepted
    without a one-time prekey."""

    record: SignedPreKey | KemPreKey
    retire_at: int | None
    seen: set[bytes] = field(default_factory=set)


class RingFields(Protocol):
    """What the stored forms read and write of a ring: the fields of
    :class:`~signalish._prekeys.ring.PreKeyRing`."""

    registration_id: int
    device_id: int
    _identity: IdentityKeyPair
    _profile: Profile
    _next_signed: int
    _next_one_time: int
    _next_kem: int
    _one_time_cursor: int
    _kem_cursor: int
    _signed: dict[int, _Retirable]
    _one_time: dict[int, OneTimePreKey]
    _kem_one_time: dict[int, KemPreKey]
    _last_resort: dict[int, _Retirable]
    _row_cache: dict[bytes, bytes]
    _touched: set[bytes] | None


R = TypeVar("R", bound=RingFields)
#: How a reader makes the empty ring it fills: the ring class itself.
_Make = Callable[[IdentityKeyPair, Profile, int, int], R]


def ring_to_bytes(ring: RingFields) -> bytes:
    w = Writer(Tag.PREKEY_RING, RING_VERSION)
    _write_common(ring, w)
    w.u32(len(ring._signed))
    for key_id, entry in sorted(ring._signed.items()):
        _write_signed(w, key_id, entry)
        w.u32(len(entry.seen))
        for base_key in sorted(entry.seen):
            w.fixed(base_key)
    w.u32(len(ring._one_time))
    for key_id, one in sorted(ring._one_time.items()):
        _write_one_time(w, key_id, one)
    w.u32(len(ring._kem_one_time))
    for key_id, kem in sorted(ring._kem_one_time.items()):
        _write_kem(w, key_id, kem)
    _write_last_resort(ring, w)
    return add_digest(w.getvalue())


def _write_common(ring: RingFields, w: Writer) -> None:
    w.var(ring._profile.name.encode()).fixed(ring._identity.public.public_bytes_raw())
    w.u32(ring.registration_id).u32(ring.device_id)
    for value in (ring._next_signed, ring._next_one_time, ring._next_kem,
                  ring._one_time_cursor, ring._kem_cursor):
        w.u64(value)


def _write_last_resort(ring: RingFields, w: Writer) -> None:
    w.u32(len(ring._last_resort))
    for key_id, entry in sorted(ring._last_resort.items()):
        record = entry.record
        assert isinstance(record, KemPreKey)
        w.u32(key_id).u64(record.created_at).fixed(record.private_key.seed())
        w.fixed(record.signature)
        _write_retire(w, entry.retire_at)


def _head_row(ring: RingFields) -> bytes:
    w = Writer(Tag.PREKEY_RING, HEAD_VERSION)
    _write_common(ring, w)
    w.u32(len(ring._signed))
    for key_id, entry in sorted(ring._signed.items()):
        _write_signed(w, key_id, entry)
        w.u32(len(entry.seen))
    w.u32(len(ring._one_time)).u32(len(ring._kem_one_time))
    _write_last_resort(ring, w)
    return add_digest(w.getvalue())


def ring_to_rows(ring: RingFields) -> dict[bytes, bytes]:
    parts = [_ONE_TIME_PART + key_id.to_bytes(4, "big") for key_id in ring._one_time]
    parts += [_KEM_PART + key_id.to_bytes(4, "big") for key_id in ring._kem_one_time]
    for key_id, entry in ring._signed.items():
        prefix = _REMEMBERED_PART + key_id.to_bytes(4, "big")
        parts += [prefix + base_key for base_key in entry.seen]
    fresh: dict[bytes, bytes] = {}
    for part in parts:
        row = _row_of(ring, part)
        assert row is not None
        fresh[part] = row
    ring._row_cache = fresh
    ring._touched = set()
    rows = {HEAD_PART: _head_row(ring)}
    rows.update(fresh)
    return rows


def ring_changes(ring: RingFields, old: dict[bytes, bytes]
            ) -> tuple[dict[bytes, bytes], list[tuple[bytes, bytes]], list[bytes]]:
    if ring._touched is None or HEAD_PART not in old:
        rows = ring_to_rows(ring)
        return (rows, [(part, data) for part, data in rows.items() if old.get(part) != data],
                [part for part in old if part not in rows])
    writes: list[tuple[bytes, bytes]] = []
    deletes: list[bytes] = []
    head = _head_row(ring)
    if old[HEAD_PART] != head:
        writes.append((HEAD_PART, head))
        old[HEAD_PART] = head
    cache = dict(ring._row_cache)  # replaced, never changed in place
    for part in ring._touched:
        row = _row_of(ring, part)
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
    ring._row_cache = cache
    ring._touched = set()
    return old, writes, deletes


def _row_of(ring: RingFields, part: bytes) -> bytes | None:
    """The current row under ``part`` (a one-time, KEM or remembered
    part), or None if there is none."""
    cached = ring._row_cache.get(part)
    kind, key_id = part[:1], int.from_bytes(part[1:5], "big")
    if kind == _ONE_TIME_PART:
        one = ring._one_time.get(key_id)
        if one is None:
            return None
        return cached or _row(Tag.ONE_TIME_PREKEY, ONE_TIME_ROW_VERSION, _write_one_time,
                              key_id, one)
    if kind == _KEM_PART:
        kem = ring._kem_one_time.get(key_id)
        if kem is None:
            return None
        return cached or _row(Tag.KEM_PREKEY, KEM_ROW_VERSION, _write_kem, key_id, kem)
    entry = ring._signed.get(key_id)
    if entry is None or part[5:] not in entry.seen:
        return None
    if cached is not None:
        return cached
    w = Writer(Tag.PREKEY_RING, REMEMBERED_ROW_VERSION)
    return add_digest(w.u32(key_id).fixed(part[5:]).getvalue())


def ring_from_bytes(data: bytes, identity: IdentityKeyPair, make: _Make[R]) -> R:
    r = Reader(check_digest(data, "PreKeyRing"), Tag.PREKEY_RING, "PreKeyRing",
               frozenset({1, RING_VERSION}))
    ring, owner = _read_common(r, identity, make)
    ids = _IdOrder(r)
    for _ in range(r.count("signed count", MAX_STORED)):
        key_id, entry = _read_signed(ring, r, ids)
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
    _read_last_resort(ring, r)
    r.finish()
    _check_loaded(ring)
    if owner != identity.public.public_bytes_raw():
        raise InvalidArgument("this PreKeyRing belongs to a different identity")
    return ring


def ring_from_rows(rows: Mapping[bytes, bytes], identity: IdentityKeyPair,
              make: _Make[R]) -> R:
    head = rows.get(HEAD_PART)
    if head is None:
        raise InvalidEncoding("PreKeyRing: no head row")
    body = check_digest(head, "PreKeyRing head")
    if body[0] == Tag.PREKEY_RING and body[1] in (1, RING_VERSION):
        if len(rows) != 1:
            raise InvalidEncoding("PreKeyRing: a whole ring (version 1 or 2) beside other rows")
        return ring_from_bytes(head, identity, make)
    r = Reader(body, Tag.PREKEY_RING, "PreKeyRing head", frozenset({HEAD_VERSION}))
    ring, owner = _read_common(r, identity, make)
    remembered: dict[int, int] = {}
    ids = _IdOrder(r)
    for _ in range(r.count("signed count", MAX_STORED)):
        key_id, entry = _read_signed(ring, r, ids)
        remembered[key_id] = r.count("remembered count", MAX_REMEMBERED)
        ring._signed[key_id] = entry
    one_time_count = r.count("one-time count", MAX_STORED)
    kem_count = r.count("KEM count", MAX_STORED)
    _read_last_resort(ring, r)
    r.finish()
    _check_loaded(ring)
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
    _check_loaded(ring)
    if owner != identity.public.public_bytes_raw():
        raise InvalidArgument("this PreKeyRing belongs to a different identity")
    return ring


def _read_common(r: Reader, identity: IdentityKeyPair, make: _Make[R]) -> tuple[R, bytes]:
    """The fields before the signed prekeys; returns the ring (empty
    tables) and the owner's identity key as recorded."""
    name = r.var("profile", 64)
    profile = PROFILES.get(name.decode("ascii", "replace"))
    if profile is None:
        raise InvalidEncoding("PreKeyRing: unknown profile name")
    owner = r.fixed(32, "identity key")
    ring = make(identity, profile, r.u32("registration id"), r.u32("device id"))
    ring._next_signed = r.u64("next signed id")
    ring._next_one_time = r.u64("next one-time id")
    ring._next_kem = r.u64("next KEM id")
    ring._one_time_cursor = r.u64("one-time cursor")
    ring._kem_cursor = r.u64("KEM cursor")
    return ring, owner


def _read_signed(ring: RingFields, r: Reader, ids: _IdOrder) -> tuple[int, _Retirable]:
    """One signed prekey up to its retire time (not its remembered keys)."""
    key_id = ids.next(ring._next_signed)
    created = r.u64("created at")
    private = PrivateKey.from_private_bytes(r.fixed(32, "private key"))
    signature = r.fixed(SIGNATURE_SIZE, "signature")
    return key_id, _Retirable(SignedPreKey(key_id, created, private, signature),
                              _read_retire(r))


def _read_last_resort(ring: RingFields, r: Reader) -> None:
    ids = _IdOrder(r)
    for _ in range(r.count("last-resort count", MAX_STORED)):
        key_id = ids.next(ring._next_kem)
        if key_id in ring._kem_one_time:
            raise InvalidEncoding("PreKeyRing: KEM id used twice")
        created = r.u64("created at")
        kem_private = KemPrivateKey.from_seed(r.fixed(MLKEM1024_SEED_SIZE, "seed"))
        record = KemPreKey(key_id, created, kem_private,
                           r.fixed(SIGNATURE_SIZE, "signature"), True)
        ring._last_resort[key_id] = _Retirable(record, _read_retire(r))


def _check_loaded(ring: RingFields) -> None:
    current = [i for i, e in ring._signed.items() if e.retire_at is None]
    if current != [ring._next_signed - 1]:
        raise InvalidEncoding("PreKeyRing: exactly the newest signed prekey must be current")
    if ring._profile.kem_key_prefix is None:
        if ring._kem_one_time or ring._last_resort:
            raise InvalidEncoding("PreKeyRing: KEM prekeys under a profile without PQXDH")
    elif len([e for e in ring._last_resort.values() if e.retire_at is None]) != 1:
        raise InvalidEncoding("PreKeyRing: exactly one last-resort KEM prekey must be current")
    if max(ring._next_signed, ring._next_one_time, ring._next_kem) > 2**32:
        raise InvalidEncoding("PreKeyRing: id counter beyond the 32-bit id space")
    if not (1 <= ring._one_time_cursor <= ring._next_one_time
            and 1 <= ring._kem_cursor <= ring._next_kem):
        raise InvalidEncoding("PreKeyRing: issue cursor beyond the id counter")


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
