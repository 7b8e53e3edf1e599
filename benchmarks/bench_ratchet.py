"""Double Ratchet messaging cost against its primitive floor, same run.

Usage: ``python benchmarks/bench_ratchet.py [--quick] [--json PATH]``

Scenarios, all on in-memory ``Session`` objects (the path every API call
takes; the store round trip is measured separately in the stores line):

* one-way: Alice encrypts, Bob parses and decrypts, no DH step;
* alternating: each message answers the previous one, so every decryption
  performs a DH ratchet step;
* skipped 1,000: one decryption that first derives and stores 1,000 keys;
* SessionManager + MemoryStore / SQLiteStore: one-way, including the
  serialization and store transaction of both parties.

The floor of each scenario is the primitive calls it cannot avoid
(``cryptography`` and ``hmac`` called directly): KDF_CK's two HMACs and the
AEAD-key HMAC on each side, AES-256-GCM encryption and decryption, and for a
DH step the two X25519 operations, the key generation and two KDF_RK (HKDF)
calls; for skipped keys two HMACs per skipped key.  Ratios ours / floor and
throughput against Syndace doubleratchet 1.3.0 (figures measured on this
machine type and recorded in DESIGN.md: 8,585 one-way and 3,246 alternating
messages per second) are printed.

Hostile peer (``hostile_figures``), for both option sets (``SessionOptions()``
and ``SessionOptions.libsignal``), all through SessionManager + MemoryStore:
the largest record the peer can make us store (1 + max_archived sessions of
max_stored_keys skipped keys each), a genuine message on it and on a fresh
record, and the peer's best forged messages against it beside their floor
(the KDF_CK steps and X25519 they force, raw), warm (record cached by the
manager) and cold (a new manager, which parses the record first).
``--quick`` builds a 5-session stand-in of the 41-session libsignal record.
"""

from __future__ import annotations

import argparse
import hmac
import json
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cryptography  # noqa: E402
from bench_handshake import measure  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import x25519  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

import signalish  # noqa: E402
from signalish import (
    LIBSIGNAL_V3,
    NATIVE,
    DeterministicRandom,
    IdentityKeyPair,
    MemoryStore,
    PreKeyRing,
    Profile,
    RatchetLimits,
    SQLiteStore,
    SessionManager,
    SessionOptions,
    Store,
)
from signalish._session import SessionRecord
from signalish._storage import load_record, record_bytes, save_record  # noqa: E402
from signalish import SignalishError  # noqa: E402
from signalish._message import parse, plain_prefix  # noqa: E402
from signalish._primitives import PrivateKey  # noqa: E402
from signalish._ratchet import kdf_ck  # noqa: E402
from signalish._session import Session  # noqa: E402
from signalish._wire_v3 import signal_message_body  # noqa: E402

SYNDACE = {"one-way": 8_585, "alternating": 3_246}  # msg/s, DESIGN.md
LIMITS = RatchetLimits(max_skip=20_000, max_stored_keys=20_000)


def pair(store_a: Store, store_b: Store) -> tuple[SessionManager, SessionManager]:
    rng = DeterministicRandom(b"bench-ratchet")
    bob_id = IdentityKeyPair.generate(rng)
    ring = PreKeyRing.create(bob_id, NATIVE, rng, now=0)
    ring.generate_one_time_prekeys(1, rng)
    with store_b.transaction():
        store_b.save_prekeys(ring.to_bytes())
    options = SessionOptions(limits=LIMITS)
    alice = SessionManager(IdentityKeyPair.generate(rng), store_a, rng=rng, options=options)
    bob = SessionManager(bob_id, store_b, rng=rng, options=options)
    alice.initiate("bob", ring.issue_bundle())
    bob.decrypt("alice", alice.encrypt("bob", b"hello"), now=0)
    alice.decrypt("bob", bob.encrypt("alice", b"hi"), now=0)
    return alice, bob


def sessions() -> tuple[Session, Session, DeterministicRandom]:
    a_store, b_store = MemoryStore(), MemoryStore()
    pair(a_store, b_store)
    alice = SessionRecord.from_bytes(record_bytes(a_store, "bob") or b"").current
    bob = SessionRecord.from_bytes(record_bytes(b_store, "alice") or b"").current
    assert alice is not None and bob is not None
    return alice, bob, DeterministicRandom(b"steps")


def floor_message(ck: bytes, payload: bytes) -> None:
    """What one message costs at the least: both sides' KDF_CK and AEAD key,
    GCM in each direction."""
    for _ in range(2):
        mk = hmac.digest(ck, b"\x01", "sha256")
        ck_next = hmac.digest(ck, b"\x02", "sha256")
        key = hmac.digest(mk, b"k\x01", "sha256")
    sealed = AESGCM(key).encrypt(bytes(12), payload, b"ad" * 40)
    AESGCM(key).decrypt(bytes(12), sealed, b"ad" * 40)
    del ck_next


def floor_dh_step(a: x25519.X25519PrivateKey, b_raw: bytes) -> None:
    b_pub = x25519.X25519PublicKey.from_public_bytes(b_raw)  # the received ratchet key
    for _ in range(2):
        dh = a.exchange(b_pub)
        prk = hmac.digest(b"r" * 32, dh, "sha256")
        t1 = hmac.digest(prk, b"i\x01", "sha256")
        hmac.digest(prk, t1 + b"i\x02", "sha256")
    x25519.X25519PrivateKey.generate()


# --- A hostile peer -----------------------------------------------------------
#
# Every figure below is measured at the layer applications call: Alice's
# SessionManager over a MemoryStore; no figure is of a bare Session.  The
# manager keeps parsed records between calls, so two cases are measured: warm
# (the record is in the manager's cache, as for every message but the first
# after a start) and cold (a new manager: the message includes loading the
# record from its store rows, with stored keys parsed when a chain first uses
# them).  A decrypted message also saves the rows it changed.
# The adversary is the peer ("mallory", one identity key): it may open as many
# sessions as it likes with initial messages, and fill each session's window
# of skipped keys by advancing its sending chain past messages it never sends.

HOSTILE_OPTIONS = (("defaults", NATIVE, SessionOptions()),
                   ("libsignal", LIBSIGNAL_V3, SessionOptions.libsignal(registration_id=1)))
QUICK_LIBSIGNAL_SESSIONS = 5  # --quick stand-in: 5 of libsignal's 1 + 40 sessions
#: The hostile figures are CPU time of this process: the work a message costs,
#: unaffected by other processes taking the CPU meanwhile (benchmarks often run
#: on shared machines, and these samples last up to seconds).
clock = time.process_time


def skip_unsent(store: Store, count: int) -> None:
    """The adversary moves its sending chain ``count`` messages ahead without
    sending them (what encrypting and dropping them would do, but cheaper)."""
    loaded = load_record(store, "alice")
    assert loaded is not None
    record, rows = loaded
    assert record.current is not None
    state = record.current.state
    ck = state.cks
    assert ck is not None
    for _ in range(count):
        ck = kdf_ck(ck)[0]
    state.cks, state.ns = ck, state.ns + count
    record.current.touch()
    with store.transaction():
        save_record(store, "alice", record, rows)


def filled_record(profile: Profile, options: SessionOptions, sessions: int,
                  keys: int) -> tuple[SessionManager, SessionManager]:
    """Alice and the adversary after it opened ``sessions`` sessions with her,
    left ``keys`` skipped keys in each (at most max_skip per message), and
    Alice answered in the last one, so that it carries ordinary messages."""
    rng = DeterministicRandom(b"hostile " + profile.name.encode())
    alice = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), profile, rng=rng,
                           options=options)
    mallory = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), profile, rng=rng,
                             options=options)
    with alice.prekeys(now=0) as ring:
        ring.generate_one_time_prekeys(sessions, rng)
        bundles = [ring.issue_bundle() for _ in range(sessions)]
    max_skip = options.limits.max_skip
    for bundle in bundles:
        mallory.initiate("alice", bundle)
        for done in range(0, keys, max_skip) if keys else [0]:
            skip_unsent(mallory.store, min(max_skip, keys - done))
            alice.decrypt("mallory", mallory.encrypt("alice", b"fill"), now=0)
    mallory.decrypt("alice", alice.encrypt("mallory", b"reply"), now=0)
    alice.decrypt("mallory", mallory.encrypt("alice", b"new chain"), now=0)  # a DH step
    return alice, mallory


def forged(profile: Profile, ratchet_key: bytes, pn: int, n: int) -> bytes:
    """A message with the header given and a ciphertext no key opens."""
    if profile.wire == "libsignal_v3":
        return signal_message_body(ratchet_key, pn, n, bytes(16)) + bytes(8)  # MAC
    return plain_prefix(ratchet_key, pn, n, 32) + bytes(32)


def in_order_us(alice: SessionManager, mallory: SessionManager,
                count: int) -> tuple[float, float]:
    """Median and max, in us, of Alice's SessionManager.decrypt of a genuine
    message, the next in order on her current receiving chain."""
    samples = []
    for message in [mallory.encrypt("alice", b"x" * 64) for _ in range(count)]:
        start = clock()
        alice.decrypt("mallory", message, now=0)
        samples.append((clock() - start) * 1e6)
    return statistics.median(samples), max(samples)


def hostile_set(profile: Profile, options: SessionOptions, rounds: int,
                sessions: int) -> dict[str, Any]:
    """One option set: the fullest record the adversary can make Alice store,
    and its best forged messages against it (SessionManager + MemoryStore)."""
    limits = options.limits
    start = time.perf_counter()
    alice, mallory = filled_record(profile, options, sessions, limits.max_stored_keys)
    build_s = time.perf_counter() - start
    blob = record_bytes(alice.store, "mallory") or b""
    record = SessionRecord.from_bytes(blob)
    tracemalloc.start()
    loaded = SessionRecord.from_bytes(blob)  # every key parsed: the most it can take
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del loaded

    # One genuine in-order message, on the full record and on a fresh one:
    # the whole record is parsed and serialized again for every message.
    genuine_full = in_order_us(alice, mallory, 20 * rounds)
    genuine_fresh = in_order_us(*filled_record(profile, options, 1, 0), 20 * rounds)

    # The floor, timed in the same loop as each forged message: the KDF_CK
    # steps (two raw HMAC-SHA256 each) and X25519 operations the message
    # forces, then the same record parse; returns (total, parse) in us.
    ours_key = x25519.X25519PrivateKey.generate()
    their_key = x25519.X25519PrivateKey.generate().public_key()

    def floor(steps: int, dh: int) -> tuple[float, float]:
        """(the derivations, the record's load from its rows) in us."""
        start = clock()
        ck = b"c" * 32
        for _ in range(steps):
            hmac.digest(ck, b"\x01", "sha256")
            ck = hmac.digest(ck, b"\x02", "sha256")
        for _ in range(dh):
            ours_key.exchange(their_key)
        derived = clock()
        load_record(alice.store, "mallory")
        end = clock()
        return (derived - start) * 1e6, (end - derived) * 1e6

    def cold() -> SessionManager:
        return SessionManager(alice.identity, alice.store, profile, rng=alice.rng,
                              options=alice.options, trust=alice.trust)

    def refuse(manager: SessionManager, message: bytes, refusals: set[str]) -> float:
        start = clock()
        try:
            manager.decrypt("mallory", message, now=0)
        except SignalishError as error:
            refusals.add(type(error).__name__)
        else:
            raise AssertionError("a forged message decrypted")
        # Read after the except block: dropping the error frees what its
        # traceback kept alive, and that is part of the cost.
        return (clock() - start) * 1e6

    # The adversary's best forged messages, each refused.  ``forced``: the
    # KDF_CK steps and X25519 operations the message makes Alice perform.
    n_sessions, max_skip = len(record.sessions), limits.max_skip
    budget = 2 * (max_skip + 1)  # KDF_CK steps one message may force, all sessions together
    fresh_keys = iter([PrivateKey.generate(DeterministicRandom(b"forged %d" % i)).public.public_bytes_raw()
                       for i in range(3 * rounds)])
    state = SessionRecord.from_bytes(record_bytes(mallory.store, "alice") or b"").sessions[0].state
    cases: list[tuple[str, Callable[[], tuple[bytes, int, int]], tuple[int, int]]] = [
        ("fresh ratchet key, PN = N = max_skip", lambda: (next(fresh_keys), max_skip, max_skip),
         (budget, min(2, n_sessions))),
        ("fresh ratchet key, PN = 2**32-1, N = max_skip",
         lambda: (next(fresh_keys), 2**32 - 1, max_skip), (budget, min(2, n_sessions))),
        ("current receiving chain, N = Nr + max_skip",
         lambda: (state.dhs_public, state.pn, state.ns + max_skip), (max_skip + 1, 0)),
        ("fresh ratchet key, N = 0 (each of a stream)", lambda: (next(fresh_keys), 0, 0),
         (n_sessions, n_sessions)),
    ]
    results: list[dict[str, Any]] = []
    parses: list[float] = []
    for name, header, (steps, dh) in cases:
        warm: list[float] = []
        cold_us: list[float] = []
        floors: list[float] = []
        cold_floors: list[float] = []
        refusals: set[str] = set()
        for _ in range(rounds):
            message = forged(profile, *header())
            warm.append(refuse(alice, message, refusals))
            derive_us, parse_us = floor(steps, dh)
            floors.append(derive_us)
            manager = cold()
            cold_us.append(refuse(manager, message, refusals))
            derive_again, parse_again = floor(steps, dh)
            cold_floors.append(derive_again + parse_again)
            parses.append(parse_us)
        results.append({"name": name, "median_us": statistics.median(warm), "max_us": max(warm),
                        "refused_with": "/".join(sorted(refusals)), "forced_kdf_ck": steps,
                        "forced_x25519": dh, "floor_us": statistics.median(floors),
                        # each message against the floor timed right after it
                        "ratio": statistics.median(o / f for o, f in zip(warm, floors)),
                        "cold_median_us": statistics.median(cold_us),
                        "cold_ratio": statistics.median(
                            o / f for o, f in zip(cold_us, cold_floors))})
    return {"profile": profile.name, "max_skip": max_skip,
            "max_stored_keys": limits.max_stored_keys, "max_archived": options.max_archived,
            "sessions": n_sessions, "stored_keys": sum(s.state.window.stored for s in record.sessions),
            "record_bytes": len(blob), "memory_bytes": memory, "build_s": build_s,
            "genuine_full_us": genuine_full, "genuine_fresh_us": genuine_fresh,
            "parse_us": statistics.median(parses), "forged": results}


def hostile_figures(rounds: int, quick: bool = False) -> dict[str, Any]:
    """:func:`hostile_set` for each option set; with ``quick`` the libsignal
    record is a stand-in of QUICK_LIBSIGNAL_SESSIONS sessions (building all 41
    takes about a minute)."""
    figures = {}
    for label, profile, options in HOSTILE_OPTIONS:
        full = 1 + options.max_archived
        sessions = min(full, QUICK_LIBSIGNAL_SESSIONS) if quick and label == "libsignal" else full
        figures[label] = hostile_set(profile, options, rounds, sessions)
        figures[label]["stand_in"] = sessions < full
    return figures


def hostile_lines(figures: dict[str, Any]) -> list[str]:
    """The hostile figures as Markdown (used by this script and by suite.py)."""
    lines = ["Hostile peer, measured through SessionManager + MemoryStore (warm: the record "
             "is in the manager's cache; cold: a new manager, so the message also loads the "
             "record from its rows; a decrypted message also saves what it changed); times "
             "are CPU time of this process:"]
    for label, h in figures.items():
        full = 1 + h["max_archived"]
        note = (f" (--quick stand-in: {h['sessions']} of the {full} sessions an adversary can "
                "open; run without --quick for the full record)") if h["stand_in"] else ""
        fresh, full_msg = h["genuine_fresh_us"], h["genuine_full_us"]
        lines += ["", f"**{label}** ({h['profile']} profile, max_skip {h['max_skip']:,}, "
                  f"{h['max_stored_keys']:,} stored keys per session, {h['max_archived']} "
                  f"archived){note}: largest record {h['sessions']} sessions, "
                  f"{h['stored_keys']:,} stored keys, {h['record_bytes']:,} B serialized, "
                  f"{h['memory_bytes']:,} B of Python memory once loaded (built in "
                  f"{h['build_s']:.1f} s).", "",
                  "| message | warm median (us) | warm max (us) | refused with "
                  "| forced KDF_CK + X25519 | floor (us) | warm/floor | cold median (us) "
                  "| cold/(floor + load) |", "|---|---|---|---|---|---|---|---|---|",
                  f"| genuine in-order, fresh record | {fresh[0]:,.0f} | {fresh[1]:,.0f} "
                  "| - (decrypted) | - | - | - | - | - |",
                  f"| genuine in-order, full record | {full_msg[0]:,.0f} | {full_msg[1]:,.0f} "
                  "| - (decrypted) | - | - | - | - | - |"]
        for r in h["forged"]:
            lines.append(f"| forged: {r['name']} | {r['median_us']:,.0f} | {r['max_us']:,.0f} "
                         f"| {r['refused_with']} | {r['forced_kdf_ck']:,} + {r['forced_x25519']} "
                         f"| {r['floor_us']:,.0f} | {r['ratio']:.2f} "
                         f"| {r['cold_median_us']:,.0f} | {r['cold_ratio']:.2f} |")
        lines += ["", "Floor: the KDF_CK steps (two raw HMAC-SHA256 each) and X25519 the "
                  "message forces, timed right after each message; the ratios are medians of "
                  "those paired ratios.  The first two rows are the bound for any one message "
                  "(2 x (max_skip + 1) KDF_CK and one X25519 per session tried; the budget "
                  f"leaves {h['sessions'] - 2} of the {h['sessions']} sessions untried).  A cold "
                  "manager also loads the record from its rows first (every row's digest and "
                  "every session; stored keys are parsed when a chain first uses them: "
                  f"{h['parse_us']:,.0f} us here), once per start, not once per message; the "
                  "last column divides by the floor plus that load."]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rounds, per = (3, 50) if args.quick else (15, 2_000)
    payload = b"x" * 64
    rows = []

    alice, bob, rng = sessions()

    def one_way() -> None:
        bob.decrypt(parse(alice.encrypt(payload), LIMITS.max_message_size), now=0, rng=rng)

    ck = b"c" * 32
    rows.append(("one-way encrypt+decrypt (64 B)", measure(one_way, rounds=rounds, per_round=per),
                 measure(lambda: floor_message(ck, payload), rounds=rounds, per_round=per),
                 SYNDACE["one-way"]))

    alice, bob, rng = sessions()
    turn = [alice, bob]

    def alternating() -> None:
        sender, receiver = turn
        receiver.decrypt(parse(sender.encrypt(payload), LIMITS.max_message_size), now=0, rng=rng)
        turn.reverse()

    a_key = x25519.X25519PrivateKey.generate()
    b_pub = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()

    def alternating_floor() -> None:
        floor_message(ck, payload)
        floor_dh_step(a_key, b_pub)

    rows.append(("alternating (DH step each)", measure(alternating, rounds=rounds, per_round=per // 4),
                 measure(alternating_floor, rounds=rounds, per_round=per // 4),
                 SYNDACE["alternating"]))

    gap = 1_000
    skip_rounds = (2, 2) if args.quick else (7, 5)

    def skipped_floor() -> None:
        c = ck
        for _ in range(gap):
            hmac.digest(c, b"\x01", "sha256")
            c = hmac.digest(c, b"\x02", "sha256")
        floor_message(ck, payload)

    samples = []
    for _ in range(skip_rounds[0] * skip_rounds[1]):
        # Each sample needs fresh sessions: the decryption can happen only once.
        a, b, r = sessions()
        for _ in range(gap):
            a.encrypt(payload)
        message = a.encrypt(payload)
        start = time.perf_counter()
        b.decrypt(parse(message, LIMITS.max_message_size), now=0, rng=r)
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    skip_ours = (samples[len(samples) // 2], samples[-1] - samples[0])
    rows.append((f"decrypt after {gap:,} skipped", skip_ours,
                 measure(skipped_floor, rounds=skip_rounds[0], per_round=skip_rounds[1]), None))

    for label, make in (("SessionManager+MemoryStore one-way", lambda: (MemoryStore(), MemoryStore())),
                        ("SessionManager+SQLiteStore one-way", None)):
        if make is None:
            tmp = Path(tempfile.mkdtemp())
            stores: tuple[Store, Store] = (SQLiteStore(tmp / "a.db"), SQLiteStore(tmp / "b.db"))
        else:
            stores = make()
        ma, mb = pair(*stores)

        def managed(ma: SessionManager = ma, mb: SessionManager = mb) -> None:
            mb.decrypt("alice", ma.encrypt("bob", payload), now=0)

        n = per // 10 if make is None else per // 4
        rows.append((label, measure(managed, rounds=rounds, per_round=max(n, 5)),
                     measure(lambda: floor_message(ck, payload), rounds=rounds, per_round=per), None))

    a_store, b_store = MemoryStore(), MemoryStore()
    pair(a_store, b_store)
    fresh = len(record_bytes(b_store, "alice") or b"")
    a, b, r = sessions()
    for _ in range(gap):
        a.encrypt(payload)
    b.decrypt(parse(a.encrypt(payload), LIMITS.max_message_size), now=0, rng=r)
    record = SessionRecord(NATIVE)
    record.sessions.append(b)
    holding = len(record.to_bytes())

    hostile = hostile_figures(rounds=2 if args.quick else 9, quick=args.quick)

    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "cryptography": cryptography.__version__, "signalish": signalish.__version__,
            "rounds": rounds, "quick": args.quick}
    print(f"signalish {meta['signalish']}, cryptography {meta['cryptography']}, "
          f"Python {meta['python']} on {meta['machine']}; medians")
    print("| benchmark | ours (us) | spread | floor (us) | ours/floor | msg/s | vs Syndace |")
    print("|---|---|---|---|---|---|---|")
    results = []
    for name, (ours, spread), (floor, _), syndace in rows:
        rate = 1e6 / ours
        versus = f"{rate / syndace:.1f}x" if syndace else "-"
        print(f"| {name} | {ours:.1f} | {spread:.1f} | {floor:.1f} | {ours / floor:.2f} "
              f"| {rate:,.0f} | {versus} |")
        results.append({"name": name, "ours_us": ours, "spread_us": spread, "floor_us": floor,
                        "ratio": ours / floor, "msgs_per_s": rate,
                        "vs_syndace": rate / syndace if syndace else None})
    print(f"\nserialized session record: fresh {fresh} B; holding {gap:,} skipped keys {holding:,} B "
          f"({(holding - fresh) / gap:.0f} B per key)")
    print("\n" + "\n".join(hostile_lines(hostile)))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results,
                                         "sizes": {"fresh": fresh, "skipped_1000": holding},
                                         "hostile": hostile}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
