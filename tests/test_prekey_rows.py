"""PreKeyRing as store rows (to_rows / from_rows): round trips, which rows a
change touches, the legacy whole-ring head, and hostile rows."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signalish import (
    LIBSIGNAL_V3,
    NATIVE,
    DeterministicRandom,
    IdentityKeyPair,
    PreKeyBundle,
    PreKeyRing,
    Profile,
)
from signalish._initial import InitialHeader
from signalish._profile import PROFILES
from signalish._x3dh import initiate
from signalish.errors import (
    CorruptState,
    DecodeError,
    InvalidArgument,
    InvalidEncoding,
    UnexpectedType,
    UnknownVersion,
)
from strategies import make_ring

ALL_PROFILES = sorted(PROFILES.values(), key=lambda p: p.name)


def _digest(body: bytes) -> bytes:
    """The row digest, written out independently of signalish._encoding."""
    return body + hashlib.sha256(body).digest()[:16]


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def _header(ring: PreKeyRing, rng: DeterministicRandom, *, one_time: bool,
            kem: str | None, bundle: PreKeyBundle | None = None) -> InitialHeader:
    """A real initial message to ``ring`` (from ``bundle`` or a new one):
    with its next one-time EC prekey or none; with the next one-time KEM
    prekey (``kem="one_time"``), the current last-resort one
    (``"last_resort"``) or none (the last-resort one under a profile whose
    sessions always use a KEM prekey, which remembers the same way)."""
    if kem is None and ring.profile.requires_kem:
        kem = "last_resort"
    if bundle is None:
        if one_time or kem == "one_time":
            bundle = ring.issue_bundle()
        else:  # hand out no one-time key (issue_bundle would move its cursor)
            bundle = PreKeyBundle(ring.identity.public, ring.current_signed_prekey.public())
    if not one_time:
        bundle = replace(bundle, one_time_prekey=None)
    else:
        assert bundle.one_time_prekey is not None
    if kem is None:
        bundle = replace(bundle, kem_prekey=None)
    elif kem == "last_resort":
        last_resort = ring.current_last_resort_kem_prekey
        assert last_resort is not None
        bundle = replace(bundle, kem_prekey=last_resort.public())
    else:
        assert bundle.kem_prekey is not None and not bundle.kem_prekey.last_resort
    alice = IdentityKeyPair.generate(rng)
    return initiate(alice, bundle, ring.profile, rng=rng).header


def _busy_ring(seed: bytes, profile: Profile) -> tuple[IdentityKeyPair, PreKeyRing,
                                                       DeterministicRandom]:
    """A ring with every kind of row and head entry: one-time keys (some
    consumed), remembered base keys under a retired and the current signed
    prekey, and (PQXDH) a retired last-resort KEM prekey."""
    identity, ring, rng = make_ring(seed, profile, one_time=4, kem=3)
    pq = profile.kem_key_prefix is not None
    ring.consume(_header(ring, rng, one_time=True, kem="one_time" if pq else None), now=1_000)
    ring.consume(_header(ring, rng, one_time=False, kem="last_resort" if pq else None),
                 now=1_000)
    ring.consume(_header(ring, rng, one_time=False, kem=None), now=1_000)
    ring.rotate_signed_prekey(rng, now=1_100, grace=1_000)
    if pq:
        ring.rotate_last_resort_kem_prekey(rng, now=1_100, grace=1_000)
    ring.consume(_header(ring, rng, one_time=False, kem="last_resort" if pq else None),
                 now=1_200)
    return identity, ring, rng


def _kinds(rows: dict[bytes, bytes]) -> dict[bytes, set[bytes]]:
    out: dict[bytes, set[bytes]] = {b"o": set(), b"k": set(), b"r": set()}
    for part in rows:
        if part:
            out[part[:1]].add(part)
    return out


# --- round trips -------------------------------------------------------------------


@pytest.mark.parametrize("profile", ALL_PROFILES, ids=lambda p: p.name)
def test_round_trip_busy_ring(profile: Profile) -> None:
    identity, ring, _ = _busy_ring(b"busy-" + profile.name.encode(), profile)
    rows = ring.to_rows()
    kinds = _kinds(rows)
    assert len(kinds[b"o"]) == ring.one_time_prekeys_remaining == 3
    assert len(kinds[b"k"]) == ring.kem_prekeys_remaining == (
        2 if profile.kem_key_prefix is not None else 0)
    assert len(kinds[b"r"]) == 3
    assert {part[1:5] for part in kinds[b"r"]} == {_u32(1), _u32(2)}
    assert rows[b""][:2] == b"\x21\x03"

    # Rows come in any order (a store's); the ring hands keys out in id order.
    shuffled = dict(reversed(list(rows.items())))
    expected = PreKeyRing.from_bytes(ring.to_bytes(), identity).issue_bundle()
    assert expected.one_time_prekey is not None and expected.one_time_prekey.key_id == 2
    assert PreKeyRing.from_rows(shuffled, identity).issue_bundle() == expected

    loaded = PreKeyRing.from_rows(rows, identity)
    assert loaded.to_bytes() == ring.to_bytes()
    assert loaded.to_rows() == rows
    assert loaded.issue_bundle() == ring.issue_bundle()
    # Loading seeds the row cache with the rows it was given.
    again = loaded.to_rows()
    assert all(again[part] is rows[part] for part in rows if part)


@pytest.mark.parametrize("profile", ALL_PROFILES, ids=lambda p: p.name)
def test_round_trip_fresh_ring(profile: Profile) -> None:
    identity, ring, _ = make_ring(b"fresh", profile, one_time=0, kem=0)
    rows = ring.to_rows()
    assert list(rows) == [b""]
    assert PreKeyRing.from_rows(rows, identity).to_bytes() == ring.to_bytes()


@pytest.mark.parametrize("profile", ALL_PROFILES, ids=lambda p: p.name)
def test_head_is_the_whole_ring_without_row_entries(profile: Profile) -> None:
    """With no one-time keys and nothing remembered, the version 3 head is
    the version 2 whole ring with the version byte changed."""
    _, ring, rng = make_ring(b"head", profile, one_time=0, kem=0)
    ring.rotate_signed_prekey(rng, now=2_000, grace=50)
    whole = ring.to_bytes()
    assert ring.to_rows()[b""] == _digest(b"\x21\x03" + whole[2:-16])


def test_row_bytes_follow_the_documented_layout() -> None:
    _, ring, rng = _busy_ring(b"layout", NATIVE)
    rows = ring.to_rows()
    for part in _kinds(rows)[b"o"]:
        key_id = int.from_bytes(part[1:], "big")
        one = ring.one_time_prekey(key_id)
        assert one.signature is not None
        assert rows[part] == _digest(b"\x11\x02" + part[1:] + one.private_key.private_bytes_raw()
                                     + b"\x01" + one.signature)
    for part in _kinds(rows)[b"k"]:
        kem = ring.kem_prekey(int.from_bytes(part[1:], "big"), now=1_200)
        assert rows[part] == _digest(b"\x12\x02" + part[1:] + kem.created_at.to_bytes(8, "big")
                                     + kem.private_key.seed() + kem.signature)
    for part in _kinds(rows)[b"r"]:
        assert rows[part] == _digest(b"\x21\x04" + part[1:])
    # libsignal_v3 one-time prekeys are unsigned: flag 0, no signature.
    _, plain, _ = make_ring(b"layout", LIBSIGNAL_V3, one_time=1)
    one = plain.one_time_prekey(1)
    assert plain.to_rows()[b"o" + _u32(1)] == _digest(
        b"\x11\x02" + _u32(1) + one.private_key.private_bytes_raw() + b"\x00")


# --- what a change touches ---------------------------------------------------------------


def _same_objects(before: dict[bytes, bytes], after: dict[bytes, bytes]) -> None:
    for part in before.keys() & after.keys():
        if part:
            assert after[part] is before[part], part


@pytest.mark.parametrize("profile", ALL_PROFILES, ids=lambda p: p.name)
def test_consuming_a_one_time_prekey_deletes_its_rows(profile: Profile) -> None:
    identity, ring, rng = _busy_ring(b"consume-" + profile.name.encode(), profile)
    pq = profile.kem_key_prefix is not None
    before = ring.to_rows()
    header = _header(ring, rng, one_time=True, kem="one_time" if pq else None)
    ring.consume(header, now=1_300)
    after = ring.to_rows()
    removed = before.keys() - after.keys()
    assert after.keys() - before.keys() == set()
    expected = {b"o" + _u32(header.one_time_prekey_id or 0)}
    if pq:
        expected.add(b"k" + _u32(header.kem_prekey_id or 0))
    assert removed == expected
    _same_objects(before, after)
    assert after[b""] != before[b""]  # the counts changed
    assert PreKeyRing.from_rows(after, identity).to_bytes() == ring.to_bytes()


@pytest.mark.parametrize("profile", ALL_PROFILES, ids=lambda p: p.name)
def test_a_message_without_one_time_prekey_adds_one_remembered_row(profile: Profile) -> None:
    identity, ring, rng = _busy_ring(b"remember-" + profile.name.encode(), profile)
    before = ring.to_rows()
    header = _header(ring, rng, one_time=False,
                     kem="last_resort" if profile.kem_key_prefix is not None else None)
    ring.consume(header, now=1_300)
    after = ring.to_rows()
    assert before.keys() - after.keys() == set()
    signed = ring.current_signed_prekey.key_id
    assert after.keys() - before.keys() == {
        b"r" + _u32(signed) + header.base_key.public_bytes_raw()}
    _same_objects(before, after)
    assert PreKeyRing.from_rows(after, identity).to_bytes() == ring.to_bytes()


def test_unchanged_ring_returns_the_same_row_objects() -> None:
    _, ring, _ = _busy_ring(b"same", NATIVE)
    first = ring.to_rows()
    second = ring.to_rows()
    assert second == first
    _same_objects(first, second)
    second.clear()  # the caller's dict is its own
    assert ring.to_rows() == first


def test_new_keys_add_rows_and_keep_the_others() -> None:
    _, ring, rng = _busy_ring(b"grow", NATIVE)
    before = ring.to_rows()
    ring.generate_one_time_prekeys(2, rng)
    ring.generate_kem_prekeys(1, rng, now=1_300)
    after = ring.to_rows()
    assert before.keys() - after.keys() == set()
    assert after.keys() - before.keys() == {b"o" + _u32(5), b"o" + _u32(6), b"k" + _u32(6)}
    _same_objects(before, after)


def test_gone_keys_leave_the_rows_and_the_cache() -> None:
    identity, ring, rng = _busy_ring(b"gone", NATIVE)
    before = ring.to_rows()
    ring.prune(2_100)  # the retired signed prekey 1 and its remembered keys go
    after = ring.to_rows()
    assert {p for p in before.keys() - after.keys()} == {
        p for p in before if p[:5] == b"r" + _u32(1)}
    assert len(after) == len(before) - 2
    assert set(ring._row_cache) == set(after) - {b""}
    ring.restart(rng, now=3_000)
    assert list(ring.to_rows()) == [b""]
    assert ring._row_cache == {}
    assert PreKeyRing.from_rows(ring.to_rows(), identity).to_bytes() == ring.to_bytes()


# --- legacy heads ---------------------------------------------------------------------


@pytest.mark.parametrize("profile", ALL_PROFILES, ids=lambda p: p.name)
def test_whole_ring_as_head_loads_as_from_bytes(profile: Profile) -> None:
    identity, ring, _ = _busy_ring(b"legacy-" + profile.name.encode(), profile)
    whole = ring.to_bytes()
    loaded = PreKeyRing.from_rows({b"": whole}, identity)
    assert loaded.to_bytes() == whole
    assert loaded.to_rows() == ring.to_rows()
    assert loaded.issue_bundle() == ring.issue_bundle()
    with pytest.raises(InvalidEncoding, match="whole ring"):
        PreKeyRing.from_rows({b"": whole, b"o" + _u32(2): ring.to_rows()[b"o" + _u32(2)]},
                             identity)


def test_version_1_whole_ring_as_head() -> None:
    """Version 1 is version 2 without the remembered count after each signed
    prekey; build one from a ring that remembers nothing."""
    identity, ring, _ = make_ring(b"v1", NATIVE, one_time=2, kem=1)
    v2 = ring.to_bytes()[:-16]
    name = NATIVE.name.encode()
    at = 2 + 4 + len(name) + 32 + 8 + 5 * 8 + 4 + (4 + 8 + 32 + 64 + 1)
    assert v2[at:at + 4] == bytes(4)
    v1 = _digest(b"\x21\x01" + v2[2:at] + v2[at + 4:])
    assert PreKeyRing.from_bytes(v1, identity).to_bytes() == ring.to_bytes()
    loaded = PreKeyRing.from_rows({b"": v1}, identity)
    assert loaded.to_bytes() == ring.to_bytes()
    assert loaded.to_rows() == ring.to_rows()


# --- hostile rows ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def busy() -> tuple[IdentityKeyPair, PreKeyRing, dict[bytes, bytes]]:
    identity, ring, _ = _busy_ring(b"hostile", NATIVE)
    return identity, ring, ring.to_rows()


Busy = tuple[IdentityKeyPair, PreKeyRing, dict[bytes, bytes]]


def test_missing_head(busy: Busy) -> None:
    identity, _, rows = busy
    with pytest.raises(InvalidEncoding, match="head"):
        PreKeyRing.from_rows({}, identity)
    with pytest.raises(InvalidEncoding, match="head"):
        PreKeyRing.from_rows({p: v for p, v in rows.items() if p}, identity)


def test_row_moved_under_another_part_key(busy: Busy) -> None:
    identity, _, rows = busy
    one_time = sorted(_kinds(rows)[b"o"])
    kem = sorted(_kinds(rows)[b"k"])
    remembered = sorted(_kinds(rows)[b"r"])
    swapped = dict(rows)
    swapped[one_time[0]], swapped[one_time[1]] = rows[one_time[1]], rows[one_time[0]]
    with pytest.raises(InvalidEncoding, match="part key"):
        PreKeyRing.from_rows(swapped, identity)
    swapped = dict(rows)
    swapped[kem[0]], swapped[kem[1]] = rows[kem[1]], rows[kem[0]]
    with pytest.raises(InvalidEncoding, match="part key"):
        PreKeyRing.from_rows(swapped, identity)
    same_signed = [p for p in remembered if p[1:5] == remembered[0][1:5]]
    assert len(same_signed) == 2
    swapped = dict(rows)
    swapped[same_signed[0]], swapped[same_signed[1]] = rows[same_signed[1]], rows[same_signed[0]]
    with pytest.raises(InvalidEncoding, match="part key"):
        PreKeyRing.from_rows(swapped, identity)
    # A row of one kind under a part key of another.
    for part, other in ((kem[0], one_time[0]), (one_time[0], remembered[0]),
                        (remembered[0], kem[0])):
        with pytest.raises(UnexpectedType):
            PreKeyRing.from_rows({**rows, part: rows[other]}, identity)
    # The head under a one-time part key, a remembered row as the head.
    with pytest.raises(UnexpectedType):
        PreKeyRing.from_rows({**rows, one_time[0]: rows[b""]}, identity)
    with pytest.raises(UnknownVersion):
        PreKeyRing.from_rows({**rows, b"": rows[remembered[0]]}, identity)


def test_bad_digest_is_corrupt_state(busy: Busy) -> None:
    identity, _, rows = busy
    for part, data in rows.items():
        for i in (0, 1, len(data) // 2, len(data) - 1):
            altered = data[:i] + bytes((data[i] ^ 0x01,)) + data[i + 1:]
            with pytest.raises(CorruptState):
                PreKeyRing.from_rows({**rows, part: altered}, identity)
        for cut in (0, 1, 17, len(data) - 1):
            with pytest.raises(CorruptState):
                PreKeyRing.from_rows({**rows, part: data[:cut]}, identity)
        with pytest.raises(CorruptState):
            PreKeyRing.from_rows({**rows, part: data + b"\x00"}, identity)


def test_missing_rows_break_the_counts(busy: Busy) -> None:
    identity, _, rows = busy
    for part in rows:
        if part:
            with pytest.raises(InvalidEncoding, match="rows|counts"):
                PreKeyRing.from_rows({p: v for p, v in rows.items() if p != part}, identity)


def test_extra_rows_break_the_counts(busy: Busy) -> None:
    identity, ring, rows = busy
    # Genuine rows of keys this ring no longer holds (from before it consumed them).
    _, younger, rng = make_ring(b"hostile", NATIVE, one_time=4, kem=3)
    old = younger.to_rows()
    used_one_time = sorted(old.keys() - rows.keys())
    assert used_one_time == [b"k" + _u32(2), b"o" + _u32(1)]
    for part in used_one_time:
        with pytest.raises(InvalidEncoding, match="rows"):
            PreKeyRing.from_rows({**rows, part: old[part]}, identity)
    # A remembered row the head does not count.
    signed = ring.current_signed_prekey.key_id
    extra = b"r" + _u32(signed) + bytes(range(32))
    with pytest.raises(InvalidEncoding, match="counts"):
        PreKeyRing.from_rows({**rows, extra: _digest(b"\x21\x04" + extra[1:])}, identity)


def test_remembered_row_of_an_unknown_signed_prekey(busy: Busy) -> None:
    identity, ring, rows = busy
    remembered = sorted(_kinds(rows)[b"r"])
    for signed in (0, 3, 99):  # 3 is the next signed id
        assert signed not in (1, 2)
        unknown = b"r" + _u32(signed) + remembered[0][5:]
        hostile = {p: v for p, v in rows.items() if p != remembered[0]}
        hostile[unknown] = _digest(b"\x21\x04" + unknown[1:])
        with pytest.raises(InvalidEncoding, match="signed prekey"):
            PreKeyRing.from_rows(hostile, identity)
    # Pruned: its remembered rows are refused once the head no longer holds it.
    identity2, pruned, _ = _busy_ring(b"hostile", NATIVE)
    pruned.prune(2_100)
    hostile = {**pruned.to_rows(), **{p: v for p, v in rows.items() if p[:5] == b"r" + _u32(1)}}
    with pytest.raises(InvalidEncoding, match="signed prekey"):
        PreKeyRing.from_rows(hostile, identity2)


def test_kem_id_both_one_time_and_last_resort(busy: Busy) -> None:
    identity, ring, rows = busy
    last_resort = ring.current_last_resort_kem_prekey
    assert last_resort is not None
    key_id = last_resort.key_id
    forged = _digest(b"\x12\x02" + _u32(key_id) + last_resort.created_at.to_bytes(8, "big")
                     + last_resort.private_key.seed() + last_resort.signature)
    hostile = dict(rows)
    del hostile[min(_kinds(rows)[b"k"])]  # keep the count right
    hostile[b"k" + _u32(key_id)] = forged
    with pytest.raises(InvalidEncoding, match="used twice"):
        PreKeyRing.from_rows(hostile, identity)


def test_ids_beyond_the_counter() -> None:
    """The head of a ring that made 3 one-time keys with genuine rows of the
    same seed's keys 3..5 (a longer-lived copy)."""
    identity, short, _ = make_ring(b"counter", NATIVE, one_time=3, kem=2)
    _, long, _ = make_ring(b"counter", NATIVE, one_time=5, kem=0)
    assert (long.one_time_prekey(3).private_key.private_bytes_raw()
            == short.one_time_prekey(3).private_key.private_bytes_raw())
    rows = long.to_rows()
    hostile = {p: v for p, v in short.to_rows().items() if p[:1] != b"o"}
    hostile.update({b"o" + _u32(i): rows[b"o" + _u32(i)] for i in (3, 4, 5)})
    with pytest.raises(InvalidEncoding, match="counter"):
        PreKeyRing.from_rows(hostile, identity)
    # Id 0 is below every counter but never issued.
    zero = b"o" + _u32(0)
    one = short.one_time_prekey(1)
    assert one.signature is not None
    hostile = {p: v for p, v in short.to_rows().items() if p != b"o" + _u32(1)}
    hostile[zero] = _digest(b"\x11\x02" + _u32(0) + one.private_key.private_bytes_raw()
                            + b"\x01" + one.signature)
    with pytest.raises(InvalidEncoding, match="counter"):
        PreKeyRing.from_rows(hostile, identity)


@pytest.mark.parametrize("part", [
    b"o", b"o\x00\x00\x01", b"o\x00\x00\x00\x01\x00", b"k\x00\x00\x01",
    b"r" + bytes(35), b"r" + bytes(37), b"r\x00\x00\x00\x01",
    b"x\x00\x00\x00\x01", b"O\x00\x00\x00\x01",
    b"\x00",
], ids=lambda p: p.hex())
def test_bad_part_keys(busy: Busy, part: bytes) -> None:
    identity, _, rows = busy
    value = rows[min(_kinds(rows)[b"o"])]
    with pytest.raises(InvalidEncoding, match="part key"):
        PreKeyRing.from_rows({**rows, part: value}, identity)


def test_part_key_not_bytes(busy: Busy) -> None:
    identity, _, rows = busy
    with pytest.raises(InvalidEncoding, match="part key"):
        PreKeyRing.from_rows({**rows, "o": b""}, identity)  # type: ignore[dict-item]


def test_kem_rows_under_a_profile_without_pqxdh() -> None:
    identity, ring, _ = make_ring(b"nopq", LIBSIGNAL_V3, one_time=1)
    _, native, _ = make_ring(b"nopq", NATIVE, one_time=1, kem=1)
    kem_row = native.to_rows()[b"k" + _u32(2)]
    with pytest.raises(InvalidEncoding):
        PreKeyRing.from_rows({**ring.to_rows(), b"k" + _u32(2): kem_row}, identity)


def test_wrong_identity(busy: Busy) -> None:
    _, _, rows = busy
    other = IdentityKeyPair.generate(DeterministicRandom(b"someone else"))
    with pytest.raises(InvalidArgument, match="different identity"):
        PreKeyRing.from_rows(rows, other)


def test_row_of_another_version(busy: Busy) -> None:
    identity, _, rows = busy
    part = min(_kinds(rows)[b"o"])
    body = rows[part][:-16]
    with pytest.raises(UnknownVersion):
        PreKeyRing.from_rows({**rows, part: _digest(body[:1] + b"\x01" + body[2:])}, identity)
    with pytest.raises(DecodeError):
        PreKeyRing.from_rows({**rows, part: _digest(body + b"\x00")}, identity)


# --- random histories -------------------------------------------------------------------

_OPS = st.sampled_from(["one_time", "kem", "consume_one_time", "consume_without", "take",
                        "rotate", "rotate_kem", "prune", "restart", "bundle"])


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=1, max_size=8), st.sampled_from(ALL_PROFILES),
       st.lists(st.tuples(_OPS, st.integers(0, 3)), max_size=12))
def test_random_histories_round_trip(seed: bytes, profile: Profile,
                                     ops: list[tuple[str, int]]) -> None:
    identity, ring, rng = make_ring(b"hist" + seed, profile, one_time=2, kem=1)
    pq = profile.kem_key_prefix is not None
    now = 1_000
    previous = ring.to_rows()
    for op, n in ops:
        now += 100
        if op == "one_time":
            ring.generate_one_time_prekeys(n + 1, rng)
        elif op == "kem" and pq:
            ring.generate_kem_prekeys(n + 1, rng, now=now)
        elif op == "consume_one_time":
            bundle = ring.issue_bundle()
            if bundle.one_time_prekey is not None:  # else all were handed out
                ring.consume(_header(ring, rng, one_time=True, kem=None, bundle=bundle),
                             now=now)
        elif op == "consume_without":
            kem = "last_resort" if pq and n % 2 else None
            ring.consume(_header(ring, rng, one_time=False, kem=kem), now=now)
        elif op == "take" and ring.one_time_prekeys_remaining:
            key_id = ring.issue_bundle().one_time_prekey
            if key_id is not None:
                ring.take_one_time_prekey(key_id.key_id)
        elif op == "rotate":
            ring.rotate_signed_prekey(rng, now=now, grace=100 * n)
        elif op == "rotate_kem" and pq:
            ring.rotate_last_resort_kem_prekey(rng, now=now, grace=100 * n)
        elif op == "prune":
            ring.prune(now)
        elif op == "restart" and n == 0:
            ring.restart(rng, now=now)
        elif op == "bundle":
            ring.issue_bundle()
        rows = ring.to_rows()
        _same_objects(previous, rows)
        kinds = _kinds(rows)
        assert len(kinds[b"o"]) == ring.one_time_prekeys_remaining
        assert len(kinds[b"k"]) == ring.kem_prekeys_remaining
        loaded = PreKeyRing.from_rows(rows, identity)
        assert loaded.to_bytes() == ring.to_bytes()
        assert loaded.to_rows() == rows
        previous = rows


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=1, max_size=8), st.sampled_from(ALL_PROFILES),
       st.lists(st.tuples(_OPS, st.integers(0, 3)), max_size=12))
def test_incremental_changes_leave_the_store_equal_to_the_full_rows(
        seed: bytes, profile: Profile, ops: list[tuple[str, int]]) -> None:
    """``changes()`` (what a save writes, looking only at what a consume
    touched) applied to a store after every operation leaves exactly the
    rows ``to_rows()`` of a fresh copy would: nothing missed, nothing stale."""
    identity, ring, rng = make_ring(b"changes" + seed, profile, one_time=3, kem=2)
    pq = profile.kem_key_prefix is not None
    store = dict(ring.to_rows())  # what the store holds
    old = dict(store)
    now = 1_000
    for op, n in ops:
        now += 100
        if op == "one_time":
            ring.generate_one_time_prekeys(n + 1, rng)
        elif op == "kem" and pq:
            ring.generate_kem_prekeys(n + 1, rng, now=now)
        elif op == "consume_one_time":
            bundle = ring.issue_bundle()
            if bundle.one_time_prekey is not None:
                ring.consume(_header(ring, rng, one_time=True,
                                     kem="one_time" if pq and bundle.kem_prekey is not None
                                     and not bundle.kem_prekey.last_resort else None,
                                     bundle=bundle), now=now)
        elif op == "consume_without":
            ring.consume(_header(ring, rng, one_time=False,
                                 kem="last_resort" if pq and n % 2 else None), now=now)
        elif op == "take" and ring.one_time_prekeys_remaining:
            bundle = ring.issue_bundle()
            if bundle.one_time_prekey is not None:
                ring.take_one_time_prekey(bundle.one_time_prekey.key_id)
        elif op == "rotate":
            ring.rotate_signed_prekey(rng, now=now, grace=100 * n)
        elif op == "prune":
            ring.prune(now)
        elif op == "bundle":
            ring.issue_bundle()
        old, writes, deletes = ring.changes(old)
        for part, data in writes:
            store[part] = data
        for part in deletes:
            del store[part]
        assert store == old
        fresh = PreKeyRing.from_rows(dict(store), identity)
        assert fresh.to_bytes() == ring.to_bytes()
        assert fresh.to_rows() == store
