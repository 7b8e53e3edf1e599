"""The paths applications walk, each against the baseline it should stay near.

Every figure here is a ratio of two timings taken in the same run, the API
users call (``SessionManager`` with a store) over the layer beneath it or
over the primitives it cannot avoid:

* one-way and alternating messages, ``SessionManager`` + ``MemoryStore``
  over the same messages between ``Session`` objects in memory;
* one-way with ``SQLiteStore`` over the ``Session`` path plus, per call, one
  bare SQLite commit (WAL, ``synchronous=FULL``) of one row of the size the
  manager writes (the session row);
* the first PreKeyMessage a responder receives, with 100 one-time EC and 20
  one-time KEM prekeys in its store, over the responder's PQXDH floor (the
  one-time keys loaded from their stored form, the X25519 and ML-KEM
  operations and HKDF, then the DH ratchet step the first message starts,
  its chain step and AEAD) plus one dictionary row deleted;
* a backlog of 1,000 messages decrypted by ``decrypt_batch`` in one
  transaction, over ``Session.decrypt`` of the same messages.

Printed by ``python -m benchmarks`` beside the goals issue 13 set; a goal is
a direction, never a pass/fail threshold.
"""

from __future__ import annotations

import hmac
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench_handshake import hkdf_floor, measure
from bench_ratchet import LIMITS, pair, sessions

from signalish import (
    NATIVE,
    DeterministicRandom,
    IdentityKeyPair,
    MemoryStore,
    SessionManager,
    SessionOptions,
    SQLiteStore,
)
from signalish._message import parse
from signalish._storage import load_record

PAYLOAD = b"x" * 64


def _median_ratio(ours: Callable[[], object], base: Callable[[], object], *, rounds: int,
                  per: int) -> tuple[float, float, float]:
    """Median of ours, of base, and of the paired ratios, the two timed in
    alternation so that drift in the machine's speed hits both alike."""
    mine, theirs, ratios = [], [], []
    for _ in range(rounds):
        a = measure(ours, rounds=1, per_round=per)[0]
        b = measure(base, rounds=1, per_round=per)[0]
        mine.append(a)
        theirs.append(b)
        ratios.append(a / b)
    return statistics.median(mine), statistics.median(theirs), statistics.median(ratios)


def messaging(rounds: int, per: int) -> list[dict[str, Any]]:
    rows = []
    alice, bob, rng = sessions()
    ma, mb = pair(MemoryStore(), MemoryStore())
    limit = LIMITS.max_message_size
    ours, base, ratio = _median_ratio(
        lambda: mb.decrypt("alice", ma.encrypt("bob", PAYLOAD), now=0),
        lambda: bob.decrypt(parse(alice.encrypt(PAYLOAD), limit), now=0, rng=rng),
        rounds=rounds, per=per)
    rows.append({"name": "one-way, SessionManager + MemoryStore / Session", "ours_us": ours,
                 "base_us": base, "ratio": ratio, "goal": 1.5})

    # What any persisting caller pays at the least: the Session path plus, per
    # call, a MemoryStore transaction that writes the one row a message
    # changes (the session's counters row, encoded and digested).  Its ratio
    # to the Session path is the floor under the row above.
    a4, b4, rng4 = sessions()
    floor_store = MemoryStore()

    def persisted() -> None:
        with floor_store.transaction():
            message = a4.encrypt(PAYLOAD)
            floor_store.save_session("bob", a4.counters_row(), b"c")
        with floor_store.transaction():
            b4.decrypt(parse(message, limit), now=0, rng=rng4)
            floor_store.save_session("alice", b4.counters_row(), b"c")

    ours, base, ratio = _median_ratio(persisted, lambda: bob.decrypt(
        parse(alice.encrypt(PAYLOAD), limit), now=0, rng=rng), rounds=rounds, per=per)
    rows.append({"name": "floor: one-way, Session + per call a MemoryStore transaction writing "
                 "the counters row / Session", "ours_us": ours, "base_us": base,
                 "ratio": ratio, "goal": "-"})

    a2, b2, rng2 = sessions()
    turn = [a2, b2]
    ma2, mb2 = pair(MemoryStore(), MemoryStore())
    managers = [(ma2, "bob", mb2, "alice"), (mb2, "alice", ma2, "bob")]

    def session_turn() -> None:
        turn[1].decrypt(parse(turn[0].encrypt(PAYLOAD), limit), now=0, rng=rng2)
        turn.reverse()

    def manager_turn() -> None:
        sender, to, receiver, name = managers[0]
        receiver.decrypt(name, sender.encrypt(to, PAYLOAD), now=0)
        managers.reverse()

    ours, base, ratio = _median_ratio(manager_turn, session_turn, rounds=rounds,
                                      per=max(per // 4, 10))
    rows.append({"name": "alternating, SessionManager + MemoryStore / Session",
                 "ours_us": ours, "base_us": base, "ratio": ratio, "goal": 1.3})

    tmp = Path(tempfile.mkdtemp())
    sa, sb = SQLiteStore(tmp / "a.db"), SQLiteStore(tmp / "b.db")
    qa, qb = pair(sa, sb)
    loaded = load_record(sb, "alice")
    assert loaded is not None
    row_bytes = loaded[0].sessions[0].row()  # what a call writes: one session row
    bare = sqlite3.connect(tmp / "bare.db", isolation_level=None)
    bare.execute("PRAGMA journal_mode=WAL")
    bare.execute("PRAGMA synchronous=FULL")
    bare.execute("CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB)")
    a3, b3, rng3 = sessions()

    def commit() -> None:
        bare.execute("BEGIN IMMEDIATE")
        bare.execute("INSERT OR REPLACE INTO t VALUES (?, ?)", (b"k", row_bytes))
        bare.execute("COMMIT")

    def session_and_commits() -> None:
        message = a3.encrypt(PAYLOAD)
        commit()
        b3.decrypt(parse(message, limit), now=0, rng=rng3)
        commit()

    ours, base, ratio = _median_ratio(
        lambda: qb.decrypt("alice", qa.encrypt("bob", PAYLOAD), now=0), session_and_commits,
        rounds=rounds, per=max(per // 20, 5))
    rows.append({"name": "one-way, SessionManager + SQLiteStore / (Session + a bare commit "
                 "per call)", "ours_us": ours, "base_us": base, "ratio": ratio, "goal": 1.3})
    sa.close()
    sb.close()
    bare.close()
    return rows


def _responder(count: int) -> tuple[SessionManager, list[bytes]]:
    """Bob with 100 one-time EC and 20 one-time KEM prekeys, and ``count + 1``
    first messages from as many new initiators (the first one warms his
    manager up: it loads the ring once, as a running application has)."""
    rng = DeterministicRandom(b"bench first message %d" % count)
    bob = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), NATIVE, rng=rng,
                         options=SessionOptions(limits=LIMITS))
    with bob.prekeys(now=0) as ring:
        ring.generate_one_time_prekeys(100, rng)
        ring.generate_kem_prekeys(20, rng, now=0)
        bundles = [ring.issue_bundle() for _ in range(count + 1)]
    messages = []
    for i, bundle in enumerate(bundles):
        alice = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), NATIVE, rng=rng,
                               options=SessionOptions(limits=LIMITS))
        alice.initiate("bob", bundle)
        messages.append(alice.encrypt("bob", PAYLOAD))
    bob.decrypt("alice-warm-up", messages.pop(0), now=0)
    return bob, messages


def first_message(rounds: int) -> dict[str, Any]:
    per = 10
    # The floor, the primitive work this message cannot avoid: Bob's side of
    # PQXDH with a one-time prekey (load EK_A and IK_A, load the one-time EC
    # private key and the one-time ML-KEM key from its stored seed, four
    # X25519, one decapsulation, HKDF), then the DH ratchet step the first
    # message starts (a new ratchet key, two X25519, two KDF_RK), the
    # message's chain step and AES-GCM, and one row deleted.
    spk, ikb = x25519.X25519PrivateKey.generate(), x25519.X25519PrivateKey.generate()
    otk = x25519.X25519PrivateKey.generate().private_bytes_raw()
    ek = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    ik = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    ratchet = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    seed = bytes(range(64))
    _, ct = mlkem.MLKEM1024PrivateKey.from_seed_bytes(seed).public_key().encapsulate()
    aead_key, nonce = b"k" * 32, bytes(12)
    box = AESGCM(aead_key).encrypt(nonce, PAYLOAD, b"")
    ck, rk = b"c" * 32, b"r" * 32

    def floor() -> None:
        e = x25519.X25519PublicKey.from_public_bytes(ek)
        i = x25519.X25519PublicKey.from_public_bytes(ik)
        one_time = x25519.X25519PrivateKey.from_private_bytes(otk)
        kem = mlkem.MLKEM1024PrivateKey.from_seed_bytes(seed)
        km = spk.exchange(i) + ikb.exchange(e) + spk.exchange(e) + one_time.exchange(e)
        km += kem.decapsulate(ct)
        hkdf_floor(b"\xff" * 32 + km, b"info", 64)
        peer = x25519.X25519PublicKey.from_public_bytes(ratchet)
        hkdf_floor(rk + spk.exchange(peer), b"ratchet", 64)
        mine = x25519.X25519PrivateKey.from_private_bytes(bytes(range(32)))
        mine.public_key().public_bytes_raw()
        hkdf_floor(rk + mine.exchange(peer), b"ratchet", 64)
        hmac.digest(ck, b"\x01", "sha256")
        hmac.digest(ck, b"\x02", "sha256")
        AESGCM(aead_key).decrypt(nonce, box, b"")
        rows = {b"o1": b"row"}
        del rows[b"o1"]

    ours, bases = [], []
    for _ in range(rounds):  # each round's messages against the floor timed right after
        bob, messages = _responder(per)
        start = time.perf_counter()
        for i, message in enumerate(messages):
            bob.decrypt(f"alice {i}", message, now=0)
        ours.append((time.perf_counter() - start) / per * 1e6)
        bases.append(measure(floor, rounds=1, per_round=per)[0])
    return {"name": "first PreKeyMessage (100 + 20 prekeys), SessionManager / PQXDH responder "
            "floor + one row deleted", "ours_us": statistics.median(ours),
            "base_us": statistics.median(bases),
            "ratio": statistics.median(a / b for a, b in zip(ours, bases)), "goal": 1.2}


def backlog(rounds: int, count: int = 1_000) -> dict[str, Any]:
    batch, single = [], []
    limit = LIMITS.max_message_size
    for _ in range(rounds):
        ma, mb = pair(MemoryStore(), MemoryStore())
        queued = [("alice", ma.encrypt("bob", PAYLOAD)) for _ in range(count)]
        start = time.perf_counter()
        outcomes = mb.decrypt_batch(queued, now=0)
        batch.append((time.perf_counter() - start) / count * 1e6)
        assert all(o.ok for o in outcomes)
        alice, bob, rng = sessions()
        frames = [alice.encrypt(PAYLOAD) for _ in range(count)]
        start = time.perf_counter()
        for frame in frames:
            bob.decrypt(parse(frame, limit), now=0, rng=rng)
        single.append((time.perf_counter() - start) / count * 1e6)
    ours, base = statistics.median(batch), statistics.median(single)
    return {"name": f"backlog of {count:,} in one decrypt_batch / Session.decrypt, per message",
            "ours_us": ours, "base_us": base,
            "ratio": statistics.median(a / b for a, b in zip(batch, single)), "goal": 1.3}


def figures(quick: bool) -> list[dict[str, Any]]:
    rounds, per = (3, 40) if quick else (9, 400)
    rows = messaging(rounds, per)
    rows.append(first_message(rounds))
    rows.append(backlog(rounds if not quick else 2, 200 if quick else 1_000))
    return rows


def lines(rows: list[dict[str, Any]], hostile: dict[str, Any]) -> list[str]:
    out = ["The paths applications walk, against the layer beneath or the floor (same run; "
           "the goals are issue 13's, a direction and not a test):", "",
           "| path | ours (us) | baseline (us) | ratio | goal |", "|---|---|---|---|---|"]
    for r in rows:
        goal = r["goal"] if r["goal"] == "-" else f"{r['goal']}x"
        out.append(f"| {r['name']} | {r['ours_us']:,.1f} | {r['base_us']:,.1f} "
                   f"| {r['ratio']:.2f}x | {goal} |")
    for label, h in hostile.items():
        full, fresh = h["genuine_full_us"][0], h["genuine_fresh_us"][0]
        stand_in = " (quick stand-in record)" if h.get("stand_in") else ""
        out.append(f"| genuine message on a record at {label} limits{stand_in} / on a fresh "
                   f"record (SessionManager + MemoryStore) | {full:,.1f} | {fresh:,.1f} "
                   f"| {full / fresh:.2f}x | {1.5 if label == 'libsignal' else '-'}"
                   f"{'x' if label == 'libsignal' else ''} |")
    return out
