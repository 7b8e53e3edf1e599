"""Hostile input: every parser fuzzed, every limit hit, malleability, corrupted state.

Invariants, for every parser and every mutation of a valid encoding:
* only signalish's own typed exceptions escape;
* anything accepted re-encodes to exactly the bytes given (canonical: no
  second encoding of the same value is accepted);
* each call stays within bounded time and memory.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessions import make_party
from signalish import (
    DeterministicRandom,
    IdentityKey,
    IdentityKeyPair,
    KemPreKeyPublic,
    LIBSIGNAL_V3,
    OneTimePreKeyPublic,
    PreKeyBundle,
    PreKeyRing,
    SQLiteStore,
    SignalishError,
    SignedPreKeyPublic,
)
from signalish.backup import BackupParams, create_backup, restore_backup
from signalish.fingerprint import compare_scannable
from signalish.sealed_box import SealedBoxPrivateKey, SealedBoxPublicKey, SealedBoxSuite
from signalish._initial import InitialHeader
from signalish._session import SessionRecord
from signalish._storage import load_record, load_ring, record_bytes, ring_bytes
from helpers import session_parts, snapshot
from signalish.errors import (
    AuthenticationError,
    CorruptState,
    DecodeError,
    InvalidLength,
    TooFarAhead,
)
from signalish._message import parse, plain_prefix
from signalish._primitives import ed25519_verify, xeddsa_verify
from signalish._wire_v3 import parse_v3
from signalish.cli.vector_check import check_file

L = 2**252 + 27742317777372353535851937790883648493


def _world() -> dict[str, Any]:
    alice = make_party("alice", b"hostile", one_time=2)
    bob = make_party("bob", b"hostile", one_time=2)
    alice.manager.initiate("bob", bob.bundle())
    first = alice.manager.encrypt("bob", b"first message")
    bob.manager.decrypt("alice", first, now=1)
    reply = bob.manager.encrypt("alice", b"reply")
    v3a = make_party("alice", b"hostile-v3", profile=LIBSIGNAL_V3)
    v3b = make_party("bob", b"hostile-v3", profile=LIBSIGNAL_V3)
    v3a.manager.initiate("bob", v3b.bundle())
    v3_first = v3a.manager.encrypt("bob", b"v3")
    v3b.manager.decrypt("alice", v3_first, now=1)
    box_key = SealedBoxPrivateKey(SealedBoxSuite.X25519, bytes(range(32)))
    ring = load_ring(bob.store, bob.identity)[0]
    bundle = ring.issue_bundle()
    backup = create_backup(bob.identity, bob.store, "pw", rng=DeterministicRandom(b"h"),
                           params=BackupParams(iterations=1, lanes=1, memory_kib=8))
    return {"alice": alice, "bob": bob, "first": first, "reply": reply, "v3": v3_first,
            "v3_reply": v3b.manager.encrypt("alice", b"v3 reply"), "box_key": box_key,
            "box": box_key.public_key.seal(b"boxed"), "bundle": bundle, "ring": ring,
            "backup": backup}


W = _world()
LIMIT = 1 << 20

#: name -> (valid bytes, parse, re-encode or None when the parse result is not a value)
PARSERS: dict[str, tuple[bytes, Callable[[bytes], Any], Callable[[Any], bytes] | None]] = {
    "IdentityKey": (W["bob"].identity.public.to_bytes(), IdentityKey.from_bytes,
                    lambda v: v.to_bytes()),
    "IdentityKey.from_public_bytes": (W["bob"].identity.public.public_bytes_raw(),
                                      IdentityKey.from_public_bytes,
                                      lambda v: v.public_bytes_raw()),
    "IdentityKey.decode": (W["bob"].identity.public.encode(LIBSIGNAL_V3),
                           lambda data: IdentityKey.decode(data, LIBSIGNAL_V3),
                           lambda v: v.encode(LIBSIGNAL_V3)),
    "IdentityKeyPair": (W["bob"].identity.to_bytes(), IdentityKeyPair.from_bytes,
                        lambda v: v.to_bytes()),
    "SignedPreKeyPublic": (W["bundle"].signed_prekey.to_bytes(), SignedPreKeyPublic.from_bytes,
                           lambda v: v.to_bytes()),
    "OneTimePreKeyPublic": (W["bundle"].one_time_prekey.to_bytes(),
                            OneTimePreKeyPublic.from_bytes, lambda v: v.to_bytes()),
    "KemPreKeyPublic": (W["bundle"].kem_prekey.to_bytes(), KemPreKeyPublic.from_bytes,
                        lambda v: v.to_bytes()),
    "PreKeyBundle": (W["bundle"].to_bytes(), PreKeyBundle.from_bytes, lambda v: v.to_bytes()),
    "InitialHeader": (parse(W["first"], LIMIT).header.to_bytes(), InitialHeader.from_bytes,
                      lambda v: v.to_bytes()),
    "PreKeyRing": (W["ring"].to_bytes(),
                   lambda d: PreKeyRing.from_bytes(d, W["bob"].identity), lambda v: v.to_bytes()),
    "SessionRecord": (record_bytes(W["bob"].store, "alice"), SessionRecord.from_bytes,
                      lambda v: v.to_bytes()),
    "native PreKeyMessage": (W["first"], lambda d: parse(d, LIMIT), None),
    "native Message": (W["reply"], lambda d: parse(d, LIMIT), None),
    "v3 PreKeySignalMessage": (W["v3"], lambda d: parse_v3(d, LIMIT), None),
    "v3 SignalMessage": (W["v3_reply"], lambda d: parse_v3(d, LIMIT), None),
    "SealedBox": (W["box"], W["box_key"].open, None),
    "SealedBoxPublicKey": (W["box_key"].public_key.to_bytes(), SealedBoxPublicKey.from_bytes,
                           lambda v: v.to_bytes()),
    "SealedBoxPrivateKey": (W["box_key"].to_bytes(), SealedBoxPrivateKey.from_bytes,
                            lambda v: v.to_bytes()),
    "scannable fingerprint": (bytes.fromhex("0802122200") + bytes(32) + b"\x1a\x22\x0a\x20"
                              + bytes(32), lambda d: compare_scannable(d, d), None),
}
PARSERS["scannable fingerprint"] = (
    b"\x08\x02\x12\x22\x0a\x20" + bytes(32) + b"\x1a\x22\x0a\x20" + bytes(32),
    lambda d: compare_scannable(d, d), None)


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    kind = draw(st.sampled_from(["truncate", "extend", "flip", "replace", "lie", "random"]))
    if kind == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))]
    if kind == "extend":
        return data + draw(st.binary(min_size=1, max_size=8))
    if kind == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(out) - 1))
            out[i] ^= 1 << draw(st.integers(0, 7))
        return bytes(out)
    if kind == "replace":
        i = draw(st.integers(0, len(data) - 1))
        return data[:i] + bytes((draw(st.integers(0, 255)),)) + data[i + 1:]
    if kind == "lie":  # a length or counter field claiming something huge
        i = draw(st.integers(0, max(0, len(data) - 4)))
        value = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x10\x00\x00"]))
        return data[:i] + value + data[i + 4:]
    return draw(st.binary(max_size=2 * len(data)))


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_parser_fuzz(name: str, data: st.DataObject) -> None:
    valid, parse_fn, encode = PARSERS[name]
    parse_fn(valid)  # the starting point is valid
    mutated = data.draw(mutations(valid))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        value = parse_fn(mutated)
    except SignalishError:
        value = None
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < 1.0, f"{name}: {elapsed:.3f} s"
    assert peak < 16 * 1024 * 1024, f"{name}: {peak} bytes"
    if value is not None and encode is not None:
        assert encode(value) == mutated, f"{name}: a second encoding was accepted"


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_backup_fuzz(data: st.DataObject) -> None:
    from signalish import MemoryStore
    from signalish.errors import BackupError
    mutated = data.draw(mutations(W["backup"]))
    store = MemoryStore()
    try:
        restore_backup(mutated, "pw", store, now=0)
    except BackupError:
        assert snapshot(store) == {"sessions": {}, "prekeys": {}, "identities": {}}


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_vector_file_fuzz(data: st.DataObject) -> None:
    """A vector file with any value replaced is reported, never a crash."""
    import json
    from helpers import VECTORS
    file = json.loads((VECTORS / data.draw(st.sampled_from(
        ["kdf.json", "x3dh.json", "safety_numbers.json"]))).read_text())
    case = data.draw(st.sampled_from(file["cases"]))
    key = data.draw(st.sampled_from(sorted(case)))
    case[key] = data.draw(st.one_of(st.none(), st.integers(), st.text(max_size=8),
                                    st.binary(max_size=8).map(bytes.hex), st.lists(st.integers())))
    results = list(check_file(file))
    assert results


# --- resource limits ---------------------------------------------------------------


def forged(key: bytes, pn: int, n: int) -> bytes:
    return plain_prefix(key, pn, n, 32) + bytes(32)


def refuse_quickly(party: Any, message: bytes, error: type[Exception]) -> float:
    before = party.snapshot()
    start = time.perf_counter()
    with pytest.raises(error):
        party.manager.decrypt("bob", message, now=5)
    assert party.snapshot() == before
    return time.perf_counter() - start


def fresh_pair(seed: bytes) -> tuple[Any, bytes]:
    """Alice has received Bob's reply: her current receiving chain is Bob's key."""
    alice, bob = make_party("alice", seed, one_time=1), make_party("bob", seed, one_time=1)
    alice.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"hi"), now=1)
    reply = bob.manager.encrypt("alice", b"reply")
    alice.manager.decrypt("bob", reply, now=2)
    return alice, parse(reply, LIMIT).ratchet_key


def test_huge_counters_are_refused_before_any_derivation() -> None:
    alice, current = fresh_pair(b"counters")
    new_key = IdentityKeyPair.generate(DeterministicRandom(b"new")).public.public_bytes_raw()
    # N huge on the current chain or on a DH step: refused before any derivation.
    for key, pn, n in ((current, 0, 2**32 - 1), (current, 2**32 - 1, 2**31),
                       (new_key, 0, 2**32 - 1)):
        assert refuse_quickly(alice, forged(key, pn, n), TooFarAhead) < 0.05
    # PN huge on a DH step: the previous chain's tail beyond max_skip would be
    # given up, and its keys are derived only after the message authenticates,
    # so a forgery costs one DH and the new chain's N steps.
    for pn, n in ((2**32 - 1, 0), (2**31, 5)):
        assert refuse_quickly(alice, forged(new_key, pn, n), AuthenticationError) < 0.05


def test_many_new_ratchet_keys_in_a_row() -> None:
    """Each forged ratchet key costs at most one X25519 per session tried."""
    rng = DeterministicRandom(b"ratchet flood")
    flood_target, _ = fresh_pair(b"flood")
    start = time.perf_counter()
    for _ in range(50):
        key = IdentityKeyPair.generate(rng).public.public_bytes_raw()
        refuse_quickly(flood_target, forged(key, 0, 0), AuthenticationError)
    assert (time.perf_counter() - start) / 50 < 0.02


def test_giant_ciphertexts_are_refused_before_decryption() -> None:
    frame = parse(W["reply"], LIMIT)
    lying = plain_prefix(frame.ratchet_key, 0, 1, 0xFFFFFFFF) + bytes(64)
    with pytest.raises(InvalidLength):
        parse(lying, 4 * 1024 * 1024)
    real = plain_prefix(frame.ratchet_key, 0, 1, 5 * 1024 * 1024) + bytes(5 * 1024 * 1024)
    start = time.perf_counter()
    alice, _ = fresh_pair(b"giant")
    with pytest.raises(InvalidLength):
        alice.manager.decrypt("bob", real, now=5)
    assert time.perf_counter() - start < 0.1
    with pytest.raises(DecodeError):
        parse_v3(b"\x34\x0a\x21\x05" + bytes(32) + b"\x10\xff\xff\xff\xff\x0f" + bytes(12), LIMIT)


# --- malleability -------------------------------------------------------------------


def test_signatures_with_s_at_least_l_are_rejected() -> None:
    identity = IdentityKeyPair.generate(DeterministicRandom(b"malleable"))
    message = b"signed"
    signature = identity.sign(message)
    s = int.from_bytes(signature[32:], "little")
    for bigger in (s + L, s + 2 * L):
        if bigger >= 2**256:
            continue
        forged_sig = signature[:32] + bigger.to_bytes(32, "little")
        for form in ("spec", "libsignal"):
            assert not xeddsa_verify(identity.public.public_bytes_raw(), message, forged_sig, form)  # type: ignore[arg-type]
    assert xeddsa_verify(identity.public.public_bytes_raw(), message, signature, "spec")
    ed_public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    ed_sig = bytes.fromhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb"
                           "8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
    assert ed25519_verify(ed_public, b"", ed_sig)
    s = int.from_bytes(ed_sig[32:], "little") + L
    assert not ed25519_verify(ed_public, b"", ed_sig[:32] + s.to_bytes(32, "little"))


# --- corrupted state on disk ----------------------------------------------------------


def test_corrupted_or_moved_sqlite_rows(tmp_path: Any) -> None:
    """Every SQLite row carries a check over its table, address and part: a
    damaged session row, a row moved to another address, a row moved to
    another part of the same address, a truncated or moved prekey row each
    read as CorruptState, never as different data, and through the manager
    too; the rows left alone still read."""
    from signalish import SessionManager
    from signalish._storage import save_record, save_ring
    path = tmp_path / "state.db"
    record, rows = load_record(RICH["bob"].store, "alice") or (None, {})
    ring, ring_rows = load_ring(RICH["bob"].store, RICH["bob"].identity) or (None, {})
    assert record is not None and ring is not None
    session_part = next(part for part in rows if part[:1] == b"s")
    key_part = next(part for part in rows if part[:1] == b"k")
    one_time_part = next(part for part in ring_rows if part[:1] == b"o")
    with SQLiteStore(path) as store, store.transaction():
        for address in ("alice", "carol", "erin"):
            save_record(store, address, record, {})
        save_ring(store, ring, {})
    with SQLiteStore(path) as store:
        assert session_parts(store) == {address: sorted(rows) for address in
                                        ("alice", "carol", "erin")}
        assert snapshot(store)["prekeys"] == ring_rows
        db = store._db

        def raw(address: str, part: bytes) -> bytes:
            return bytes(db.execute("SELECT data FROM session_rows WHERE address=? AND part=?",
                                    (address, part)).fetchone()[0])

        def refused(address: str, part: bytes) -> None:
            with pytest.raises(CorruptState):
                store.load_session(address, part)
            with pytest.raises(CorruptState):
                load_record(store, address)
            manager = SessionManager(RICH["bob"].identity, store,
                                     rng=DeterministicRandom(b"corrupt"))
            with pytest.raises(CorruptState):
                manager.decrypt(address, RICH["pending"][0], now=13)
            with pytest.raises(CorruptState):
                manager.encrypt(address, b"x")

        # A damaged session row, a damaged head, a damaged key row.
        for part in (session_part, b"", key_part):
            good = raw("alice", part)
            damaged = bytearray(good)
            damaged[len(damaged) // 2] ^= 0x01
            db.execute("UPDATE session_rows SET data=? WHERE address='alice' AND part=?",
                       (bytes(damaged), part))
            refused("alice", part)
            db.execute("UPDATE session_rows SET data=? WHERE address='alice' AND part=?",
                       (good, part))
        assert load_record(store, "alice")[1] == rows  # undamaged again
        # Rows moved to another address: carol's head under dave (who had
        # nothing), then carol's session row in place of dave's own.
        db.execute("INSERT INTO session_rows VALUES ('dave', x'', ?)", (raw("carol", b""),))
        refused("dave", b"")
        db.execute("DELETE FROM session_rows WHERE address='dave'")
        with store.transaction():
            save_record(store, "dave", record, {})
        assert load_record(store, "dave")[1] == rows
        db.execute("UPDATE session_rows SET data=? WHERE address='dave' AND part=?",
                   (raw("carol", session_part), session_part))
        refused("dave", session_part)
        # Rows moved to another part of the same address: erin's key row in
        # place of her session row, then her session row under another base key.
        session_row = raw("erin", session_part)
        db.execute("UPDATE session_rows SET data=? WHERE address='erin' AND part=?",
                   (raw("erin", key_part), session_part))
        refused("erin", session_part)
        other = b"s" + bytes(32)
        db.execute("DELETE FROM session_rows WHERE address='erin' AND part=?", (session_part,))
        db.execute("INSERT INTO session_rows VALUES ('erin', ?, ?)", (other, session_row))
        with pytest.raises(CorruptState):
            store.load_session("erin", other)
        with pytest.raises(CorruptState):
            load_record(store, "erin")  # and its own part has no row
        # Carol's rows were never touched.
        loaded = load_record(store, "carol")
        assert loaded is not None and loaded[1] == rows
        assert loaded[0].to_bytes() == record.to_bytes()
        # A truncated prekey row (the head, then a one-time prekey's row) and a
        # prekey row moved to another part.
        for part in (b"", one_time_part):
            good = bytes(db.execute("SELECT data FROM prekey_rows WHERE part=?",
                                    (part,)).fetchone()[0])
            db.execute("UPDATE prekey_rows SET data=substr(data, 1, length(data) - 1) "
                       "WHERE part=?", (part,))
            with pytest.raises(CorruptState):
                store.load_prekeys(part)
            with pytest.raises(CorruptState):
                load_ring(store, RICH["bob"].identity)
            db.execute("UPDATE prekey_rows SET data=? WHERE part=?", (good, part))
        assert load_ring(store, RICH["bob"].identity)[1] == ring_rows
        moved = b"o\xff\xff\xff\xfe"
        db.execute("INSERT INTO prekey_rows SELECT ?, data FROM prekey_rows WHERE part=?",
                   (moved, one_time_part))
        db.execute("DELETE FROM prekey_rows WHERE part=?", (one_time_part,))
        with pytest.raises(CorruptState):
            store.load_prekeys(moved)
        with pytest.raises(CorruptState):
            load_ring(store, RICH["bob"].identity)


# --- stored state edited by someone who recomputes the digest --------------------------
#
# The digests on stored state are unkeyed: they catch accidents, not edits by
# whoever can write the store.  Such edits must still never crash the library
# or make it misbehave: an edited record either fails to load with a typed
# error, or loads as a state the ratchet can run, where every operation ends
# in a result or a typed error.


def _redigest(data: bytes) -> bytes:
    import hashlib
    body = data[:-16]
    return body + hashlib.sha256(body).digest()[:16]


def _rich_world() -> dict[str, Any]:
    """Bob's record with skipped keys on two chains, a finished chain and a
    pending reply; and messages from Alice still to arrive."""
    alice = make_party("alice", b"edited", one_time=2)
    bob = make_party("bob", b"edited", one_time=2)
    alice.manager.initiate("bob", bob.bundle())
    a1 = [alice.manager.encrypt("bob", b"a1-%d" % i) for i in range(4)]
    bob.manager.decrypt("alice", a1[3], now=10)
    alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"b1"), now=11)
    a2 = [alice.manager.encrypt("bob", b"a2-%d" % i) for i in range(3)]
    bob.manager.decrypt("alice", a2[2], now=12)
    return {"bob": bob, "record": record_bytes(bob.store, "alice"),
            "ring": ring_bytes(bob.store, bob.identity),
            "rows": snapshot(bob.store)["sessions"]["alice"],
            "ring_rows": snapshot(bob.store)["prekeys"],
            "pending": [a1[0], a2[0], alice.manager.encrypt("bob", b"a2-3")],
            "initial": a1[1]}


RICH = _rich_world()


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_record_edits_with_a_recomputed_digest_load_safely_or_not_at_all(
        data: st.DataObject) -> None:
    from signalish import MemoryStore
    edited = _redigest(data.draw(mutations(RICH["record"])))
    try:
        record = SessionRecord.from_bytes(edited)
    except SignalishError:
        return
    assert record.to_bytes() == edited  # nothing accepted has a second encoding
    store = MemoryStore()
    with store.transaction():
        store.save_session("alice", edited)
        store.save_prekeys(RICH["ring"])
    _run_edited(store, b"edited")


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_prekey_ring_edits_with_a_recomputed_digest_load_safely_or_not_at_all(
        data: st.DataObject) -> None:
    from signalish import MemoryStore, SessionManager
    edited = _redigest(data.draw(mutations(RICH["ring"])))
    try:
        ring = PreKeyRing.from_bytes(edited, RICH["bob"].identity)
    except SignalishError:
        return
    assert ring.to_bytes() == edited
    store = MemoryStore()
    with store.transaction():
        store.save_prekeys(edited)
    bob = SessionManager(RICH["bob"].identity, store, rng=DeterministicRandom(b"edited ring"))
    try:
        bob.decrypt("alice", W["first"], now=13)
    except SignalishError:
        pass


def _run_edited(store: Any, seed: bytes) -> None:
    """Every operation on an edited store ends in a result or a typed error."""
    from signalish import SessionManager
    bob = SessionManager(RICH["bob"].identity, store, rng=DeterministicRandom(seed))
    for message in RICH["pending"] + [RICH["initial"], W["first"]]:
        try:
            bob.decrypt("alice", message, now=13)
        except SignalishError:
            pass
    try:
        bob.encrypt("alice", b"still typed")
    except SignalishError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_record_row_edits_with_a_recomputed_digest_load_safely_or_not_at_all(
        data: st.DataObject) -> None:
    """The same for the rows a store keeps: one row of the record (head,
    session or stored keys) edited, its digest recomputed."""
    from signalish import MemoryStore
    part = data.draw(st.sampled_from(sorted(RICH["rows"])))
    edited = _redigest(data.draw(mutations(RICH["rows"][part])))
    rows = {**RICH["rows"], part: edited}
    try:
        loaded = SessionRecord.from_rows(rows.get)
        for session in loaded[0].sessions if loaded is not None else []:
            for chain in session.state.window.chains:
                chain.keys  # noqa: B018 (stored keys are parsed, and checked, when first used)
    except SignalishError:
        loaded = None
    if loaded is not None:
        # Nothing accepted has a second encoding: encoded afresh, the record
        # gives back exactly the rows it was read from.
        assert SessionRecord.from_bytes(loaded[0].to_bytes()).rows() == loaded[1]
    store = MemoryStore()
    with store.transaction():
        for row_part, row in rows.items():
            store.save_session("alice", row, row_part)
        for row_part, row in RICH["ring_rows"].items():
            store.save_prekeys(row, row_part)
    _run_edited(store, b"edited rows")


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_prekey_row_edits_with_a_recomputed_digest_load_safely_or_not_at_all(
        data: st.DataObject) -> None:
    from signalish import MemoryStore
    part = data.draw(st.sampled_from(sorted(RICH["ring_rows"])))
    edited = _redigest(data.draw(mutations(RICH["ring_rows"][part])))
    rows = {**RICH["ring_rows"], part: edited}
    try:
        ring = PreKeyRing.from_rows(rows, RICH["bob"].identity)
    except SignalishError:
        ring = None
    if ring is not None:
        fresh = PreKeyRing.from_bytes(ring.to_bytes(), RICH["bob"].identity)
        assert fresh.to_rows() == rows  # nothing accepted has a second encoding
    store = MemoryStore()
    with store.transaction():
        for row_part, row in RICH["rows"].items():
            store.save_session("alice", row, row_part)
        for row_part, row in rows.items():
            store.save_prekeys(row, row_part)
    _run_edited(store, b"edited ring rows")
