"""Handshake cost against its primitive floor, both timed in the same run.

Usage: ``python benchmarks/bench_handshake.py [--quick] [--json PATH]``

A handshake here is what two real parties do on first contact: Alice parses
a bundle from bytes and runs ``initiate``; Bob parses the header from bytes
and runs ``respond``.  The floor is the sum of the primitive operations such a
handshake cannot avoid, called directly on ``cryptography`` and ``hmac``:
loading the peer public keys, one XEdDSA check per signed prekey (the
u -> y conversion and an Ed25519 verification), generating the ephemeral key,
every X25519, the ML-KEM encapsulation and decapsulation for PQXDH, and the
HKDF on each side.  The ratio ours / floor is the figure to compare across
machines; absolute times are printed for context only.

Syndace's X3DH 1.3.0 (the ``bench`` extra) is timed beside the X3DH row in
both of its states: ``BaseState`` holding one prekey (the key agreement
alone, like ``initiate`` + ``respond`` here) and ``State`` with its default
pool of 100 prekeys (which also deletes the used prekey and republishes its
bundle on every passive agreement).  Neither parses bytes: Syndace passes
bundles and headers as objects.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cryptography  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519  # noqa: E402

import signalish  # noqa: E402
from signalish import (
    LIBSIGNAL_V4,
    NATIVE,
    Profile,
    DeterministicRandom,
    IdentityKeyPair,
    PreKeyBundle,
    PreKeyRing,
    SystemRandom,
)
from signalish._initial import InitialHeader
from signalish._x3dh import initiate, respond

P = 2**255 - 19


def measure(fn: Callable[[], object], *, rounds: int, per_round: int) -> tuple[float, float]:
    """Median and spread (max - min) of per-call microseconds over rounds."""
    for _ in range(max(3, per_round // 5)):
        fn()  # warm-up
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(per_round):
            fn()
        samples.append((time.perf_counter() - start) / per_round * 1e6)
    return statistics.median(samples), max(samples) - min(samples)


def hkdf_floor(ikm: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.digest(bytes(32), ikm, "sha256")
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes((i,)), "sha256")
        out += block
        i += 1
    return out[:length]


def scenario(pq: bool, profile: Profile = NATIVE
             ) -> tuple[Callable[[], object], Callable[[], object]]:
    """Our handshake and its floor.  Under ``LIBSIGNAL_V4`` the KEM is round-3
    Kyber1024: the floor then adds the SHA3-256 and SHAKE-256 of each side's
    Kyber shared secret to ML-KEM's work (the floor of that construction)."""
    rng = DeterministicRandom(b"bench")
    bob = IdentityKeyPair.generate(rng)
    ring = PreKeyRing.create(bob, profile, rng, now=0)
    ring.generate_one_time_prekeys(1, rng)
    if pq:
        ring.generate_kem_prekeys(1, rng, now=0)
    bundle = ring.issue_bundle()
    if not pq:
        bundle = PreKeyBundle(bundle.identity_key, bundle.signed_prekey, bundle.one_time_prekey)
    bundle_bytes = bundle.to_bytes()
    alice = IdentityKeyPair.generate(rng)
    system = SystemRandom()

    kyber = profile.kem == "kyber1024"

    def ours() -> object:
        sent = initiate(alice, PreKeyBundle.from_bytes(bundle_bytes), profile, rng=system)
        return respond(ring, InitialHeader.from_bytes(sent.header.to_bytes()), now=0)

    # Raw material for the floor.
    ik_b = bundle.identity_key.public_bytes_raw()
    spk_b = bundle.signed_prekey.public_key.public_bytes_raw()
    opk_b = bundle.one_time_prekey.public_key.public_bytes_raw()  # type: ignore[union-attr]
    kem_b = bundle.kem_prekey.public_key.public_bytes_raw() if bundle.kem_prekey else b""
    # The signatures the bundle carries: the signed prekey's, the one-time
    # prekey's where the profile signs it, the KEM prekey's.
    signed = [(b"m" * 70, bundle.signed_prekey.signature)] * (
        1 + int(profile.bind_prekey_ids) + int(pq))
    ik_a_priv = x25519.X25519PrivateKey.from_private_bytes(alice.dh_private.private_bytes_raw())
    ik_b_priv = x25519.X25519PrivateKey.from_private_bytes(bob.dh_private.private_bytes_raw())
    spk_priv = x25519.X25519PrivateKey.from_private_bytes(
        ring.current_signed_prekey.private_key.private_bytes_raw())
    opk_priv = x25519.X25519PrivateKey.from_private_bytes(
        ring.one_time_prekey(1).private_key.private_bytes_raw())
    kem_priv = mlkem.MLKEM1024PrivateKey.from_seed_bytes(
        ring.kem_prekey(bundle.kem_prekey.key_id, now=0).private_key.seed()) if pq else None  # type: ignore[union-attr]
    ik_a_pub = ik_a_priv.public_key().public_bytes_raw()

    def floor() -> object:
        # Alice: load keys, check signatures, generate EK, 4 DH (+ encaps), HKDF.
        ik = x25519.X25519PublicKey.from_public_bytes(ik_b)
        spk = x25519.X25519PublicKey.from_public_bytes(spk_b)
        opk = x25519.X25519PublicKey.from_public_bytes(opk_b)
        u = int.from_bytes(ik_b, "little")
        y = (u - 1) * pow(u + 1, -1, P) % P
        ed = ed25519.Ed25519PublicKey.from_public_bytes(y.to_bytes(32, "little"))
        for message, signature in signed:
            try:
                ed.verify(signature, message)
            except Exception:
                pass  # the cost is what matters; these messages are stand-ins
        ek = x25519.X25519PrivateKey.generate()
        km = ik_a_priv.exchange(spk) + ek.exchange(ik) + ek.exchange(spk) + ek.exchange(opk)
        if pq:
            ss, ct = mlkem.MLKEM1024PublicKey.from_public_bytes(kem_b).encapsulate()
            if kyber:
                ss = hashlib.shake_256(ss + hashlib.sha3_256(ct).digest()).digest(32)
            km += ss
        hkdf_floor(b"\xff" * 32 + km, b"info", 32)
        # Bob: load keys, 4 DH (+ decaps), HKDF.
        ek_pub = x25519.X25519PublicKey.from_public_bytes(ek.public_key().public_bytes_raw())
        ika = x25519.X25519PublicKey.from_public_bytes(ik_a_pub)
        km = spk_priv.exchange(ika) + ik_b_priv.exchange(ek_pub) + spk_priv.exchange(ek_pub) \
            + opk_priv.exchange(ek_pub)
        if kem_priv is not None:
            ss = kem_priv.decapsulate(ct)
            if kyber:
                ss = hashlib.shake_256(ss + hashlib.sha3_256(ct).digest()).digest(32)
            km += ss
        return hkdf_floor(b"\xff" * 32 + km, b"info", 32)

    return ours, floor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: proves the suite runs")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    rounds, per_round = (3, 20) if args.quick else (15, 200)
    results = []
    for name, pq, profile in (("X3DH handshake (with one-time prekey)", False, NATIVE),
                              ("PQXDH handshake (with one-time prekey)", True, NATIVE),
                              ("libsignal v4 PQXDH, Kyber1024 (with one-time prekey)", True,
                               LIBSIGNAL_V4)):
        ours, floor = scenario(pq, profile)
        # Interleave the two so that drift on the machine hits both alike.
        ours_us, ours_spread = measure(ours, rounds=rounds, per_round=per_round)
        floor_us, floor_spread = measure(floor, rounds=rounds, per_round=per_round)
        results.append({"name": name, "ours_us": ours_us, "ours_spread_us": ours_spread,
                        "floor_us": floor_us, "floor_spread_us": floor_spread,
                        "ratio": ours_us / floor_us})
    syndace = syndace_handshakes(rounds=3 if args.quick else 7, n=10 if args.quick else 60)
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "cryptography": cryptography.__version__, "signalish": signalish.__version__,
            "rounds": rounds, "per_round": per_round, "quick": args.quick}
    print(f"signalish {meta['signalish']}, cryptography {meta['cryptography']}, "
          f"Python {meta['python']} on {meta['machine']}; median of {rounds} rounds")
    print(f"| {'benchmark':40} | ours (us) | floor (us) | ours/floor |")
    print(f"|{'-' * 42}|-----------|------------|------------|")
    for r in results:
        print(f"| {r['name']:40} | {r['ours_us']:9.1f} | {r['floor_us']:10.1f} | {r['ratio']:10.2f} |")
    if isinstance(syndace, str):
        print(f"Syndace X3DH 1.3.0: {syndace}")
    else:
        ours_x3dh = results[0]["ours_us"]
        print(f"\n| {'Syndace X3DH 1.3.0 handshake':48} | Syndace (us) | Syndace/ours |")
        print(f"|{'-' * 50}|--------------|--------------|")
        for label, us in syndace.items():
            print(f"| {label:48} | {us:12.0f} | {us / ours_x3dh:11.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results, "syndace": syndace},
                                        indent=1) + "\n")
    return 0


def syndace_handshakes(*, rounds: int, n: int) -> dict[str, float] | str:
    """Median microseconds per handshake for both of Syndace's X3DH states,
    or why they could not be timed."""
    import peers

    adapter = peers.syndace()
    if isinstance(adapter, str):
        return adapter
    out = {}
    for label, kind in (("BaseState, 1 prekey", "handshake_base_state"),
                        ("State, default 100 prekeys", "handshake")):
        out[label] = statistics.median(adapter[kind](n) / n * 1e6 for _ in range(rounds))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
