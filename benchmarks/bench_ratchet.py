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
"""

from __future__ import annotations

import argparse
import hmac
import json
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cryptography  # noqa: E402
from bench_handshake import measure  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import x25519  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

import signalish  # noqa: E402
from signalish import (  # noqa: E402
    NATIVE,
    DeterministicRandom,
    IdentityKeyPair,
    MemoryStore,
    PreKeyRing,
    RatchetLimits,
    SessionManager,
    SessionOptions,
    SessionRecord,
    SQLiteStore,
    Store,
)
from signalish import SignalishError  # noqa: E402
from signalish._message import parse, plain_prefix  # noqa: E402
from signalish._session import Session  # noqa: E402

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
    alice = SessionRecord.from_bytes(a_store.load_session("bob") or b"").current
    bob = SessionRecord.from_bytes(b_store.load_session("alice") or b"").current
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


def hostile_figures(rounds: int) -> dict[str, Any]:
    """The most work one forged message can cause at the default limits, and
    the size of a session record filled to them."""
    limits = RatchetLimits()
    b_store = MemoryStore()
    rng = DeterministicRandom(b"hostile")
    bob_id = IdentityKeyPair.generate(rng)
    ring = PreKeyRing.create(bob_id, NATIVE, rng, now=0)
    ring.generate_one_time_prekeys(10, rng)
    with b_store.transaction():
        b_store.save_prekeys(ring.to_bytes())
    options = SessionOptions(limits=limits)
    bob = SessionManager(bob_id, b_store, rng=rng, options=options, trust=lambda *_: True)
    # Fill Bob's record: the archive full of earlier sessions, the current one
    # holding max_stored_keys skipped keys.
    for _ in range(options.max_archived + 1):
        alice = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), rng=rng,
                               options=options)
        alice.initiate("bob", ring.issue_bundle())
        for _ in range(limits.max_skip):
            alice.encrypt("bob", b"x")
        bob.decrypt("alice", alice.encrypt("bob", b"last"), now=0)
    for _ in range(limits.max_skip):
        alice.encrypt("bob", b"x")
    bob.decrypt("alice", alice.encrypt("bob", b"more"), now=0)
    record_bytes = b_store.load_session("alice") or b""
    record = SessionRecord.from_bytes(record_bytes)
    stored = sum(s.state.window.stored for s in record.sessions)
    tracemalloc.start()
    loaded = SessionRecord.from_bytes(record_bytes)
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del loaded
    current = record.current
    assert current is not None
    samples = []
    for i in range(rounds):
        key = IdentityKeyPair.generate(DeterministicRandom(b"forged%d" % i)).public.public_bytes()
        forged = plain_prefix(key, current.state.nr + limits.max_skip, limits.max_skip, 32) \
            + bytes(32)
        start = time.perf_counter()
        try:
            bob.decrypt("alice", forged, now=0)
        except SignalishError as error:
            refusal = type(error).__name__
        samples.append((time.perf_counter() - start) * 1e6)
    return {"worst_us": max(samples), "sessions": len(record.sessions), "stored": stored,
            "record_bytes": len(record_bytes), "memory_bytes": memory, "refusal": refusal}


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
    fresh = len(b_store.load_session("alice") or b"")
    a, b, r = sessions()
    for _ in range(gap):
        a.encrypt(payload)
    b.decrypt(parse(a.encrypt(payload), LIMITS.max_message_size), now=0, rng=r)
    record = SessionRecord(NATIVE)
    record.sessions.append(b)
    holding = len(record.to_bytes())

    hostile = hostile_figures(rounds=3 if args.quick else 9)

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
    print(f"hostile message, worst case at default limits (a forged DH step asking for "
          f"2 x max_skip keys, tried on {hostile['sessions']} sessions): "
          f"{hostile['worst_us']:,.0f} us, refused ({hostile['refusal']})")
    print(f"session record at its limits ({hostile['stored']:,} stored keys, "
          f"{hostile['sessions']} sessions): {hostile['record_bytes']:,} B serialized, "
          f"{hostile['memory_bytes']:,} B of Python memory once loaded")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results,
                                         "sizes": {"fresh": fresh, "skipped_1000": holding},
                                         "hostile": hostile}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
