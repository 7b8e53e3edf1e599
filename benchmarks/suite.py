"""The benchmark suite: ``python -m benchmarks [--quick] [--out DIR]``.

Every figure is printed beside its floor (the ``cryptography``/``hmac`` calls
the work cannot avoid, timed in the same run) and, where they do the same
work, beside Syndace's DoubleRatchet/X3DH 1.3.0 and python-axolotl 0.2.3 (the
``bench`` extra installs them).  Ratios are the comparable numbers; absolute
times depend on the machine.  Results go to DIR (default benchmarks/results):
results.json, results.md, and skipped.png / sizes.png when matplotlib is
installed.  No figure is ever a pass/fail threshold.

Each messaging row names the level it measures in brackets: ``[Session]`` is
the ratchet and wire format on objects in memory (the layer beneath the
API); ``[SessionManager + ...]`` is the API applications call, with every
call a store transaction that saves the state.  Syndace is compared at the
same level: in memory for ``[Session]`` rows, and with its state saved (as
JSON) after every call and loaded before the next for ``[SessionManager]``
rows.
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
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_async  # noqa: E402
import bench_attachments  # noqa: E402
import bench_groups  # noqa: E402
import bench_handshake  # noqa: E402
import bench_paths  # noqa: E402
import bench_postgres  # noqa: E402
import bench_ratchet  # noqa: E402
import bench_spqr  # noqa: E402
import cryptography  # noqa: E402
import peers  # noqa: E402
from bench_handshake import measure  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import x25519  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

import signalish  # noqa: E402
from signalish import MemoryStore, SQLiteStore  # noqa: E402
from signalish._session import SessionRecord  # noqa: E402
from signalish._storage import record_bytes  # noqa: E402
from signalish._message import parse  # noqa: E402

GAPS = (10, 100, 1_000, 10_000)
SIZES = (16, 256, 4_096, 65_536, 1_048_576)
LIMIT = 2 * 1024 * 1024


def row(name: str, ours: tuple[float, float], floor: float | None = None,
        **peer_us: float | str | None) -> dict[str, Any]:
    result: dict[str, Any] = {"name": name, "ours_us": ours[0], "spread_us": ours[1],
                              "floor_us": floor,
                              "ratio_to_floor": ours[0] / floor if floor else None}
    for peer, value in peer_us.items():
        result[f"{peer}_us"] = value if isinstance(value, float) else None
        result[f"{peer}_speedup"] = value / ours[0] if isinstance(value, float) else None
        if isinstance(value, str):
            result[f"{peer}_note"] = value
    return result


def peer_time(adapter: dict[str, Any] | str, kind: str, n: int) -> float | str:
    if isinstance(adapter, str):
        return adapter
    samples = [adapter[kind](n) / n * 1e6 for _ in range(3)]
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: proves the suite runs")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    quick = args.quick
    rounds, per = (3, 30) if quick else (11, 1_000)
    syndace, axolotl = peers.syndace(), peers.axolotl()
    rows: list[dict[str, Any]] = []

    # Handshakes.  Syndace's X3DH has two states (benchmarks/peers.py): State with
    # its default 100 prekeys, and BaseState with one; each gets its own row.
    for name, pq, profile in (("X3DH handshake (Syndace: State, 100 prekeys)", False,
                               signalish.NATIVE),
                              ("PQXDH handshake", True, signalish.NATIVE),
                              ("libsignal v4 PQXDH handshake (Kyber1024)", True,
                               signalish.LIBSIGNAL_V4)):
        ours, floor = bench_handshake.scenario(pq, profile)
        rows.append(row(name, measure(ours, rounds=rounds, per_round=max(per // 10, 10)),
                        measure(floor, rounds=rounds, per_round=max(per // 10, 10))[0],
                        **({} if pq else {
                            "syndace": peer_time(syndace, "handshake", 10 if quick else 60),
                            "axolotl": peer_time(axolotl, "handshake", 5 if quick else 30)})))
    x3dh = rows[0]
    rows.insert(1, row("X3DH handshake (Syndace: BaseState, 1 prekey)",
                       (x3dh["ours_us"], x3dh["spread_us"]), x3dh["floor_us"],
                       syndace=peer_time(syndace, "handshake_base_state",
                                         10 if quick else 60)))

    # Messaging.
    payload, ck = b"x" * 64, b"c" * 32
    alice, bob, rng = bench_ratchet.sessions()
    rows.append(row("one-way encrypt+decrypt (64 B) [Session]", measure(
        lambda: bob.decrypt(parse(alice.encrypt(payload), LIMIT), now=0, rng=rng),
        rounds=rounds, per_round=per), measure(
        lambda: bench_ratchet.floor_message(ck, payload), rounds=rounds, per_round=per)[0],
        syndace=peer_time(syndace, "one_way", per), axolotl=peer_time(axolotl, "one_way", per)))
    alice, bob, rng = bench_ratchet.sessions()
    turn = [alice, bob]

    def alternating() -> None:
        turn[1].decrypt(parse(turn[0].encrypt(payload), LIMIT), now=0, rng=rng)
        turn.reverse()

    dh_key = x25519.X25519PrivateKey.generate()
    peer_raw = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()

    def alternating_floor() -> None:
        bench_ratchet.floor_message(ck, payload)
        bench_ratchet.floor_dh_step(dh_key, peer_raw)

    rows.append(row("alternating, DH step each [Session]",
                    measure(alternating, rounds=rounds, per_round=per // 4),
                    measure(alternating_floor, rounds=rounds, per_round=per // 4)[0],
                    syndace=peer_time(syndace, "alternating", per // 4),
                    axolotl=peer_time(axolotl, "alternating", per // 4)))

    # Decrypt after N skipped messages.
    step_us = measure(lambda: (hmac.digest(ck, b"\x01", "sha256"),
                               hmac.digest(ck, b"\x02", "sha256")), rounds=rounds, per_round=per)[0]
    gap_rows = []
    for gap in GAPS:
        samples = []
        for _ in range(1 if quick else (3 if gap == 10_000 else 5)):
            a, b, r = bench_ratchet.sessions()
            b.decrypt(parse(a.encrypt(payload), LIMIT), now=0, rng=r)  # the DH step, untimed
            for _ in range(gap):
                a.encrypt(payload)
            message = a.encrypt(payload)
            start = time.perf_counter()
            b.decrypt(parse(message, LIMIT), now=0, rng=r)
            samples.append((time.perf_counter() - start) * 1e6)
        floor = gap * step_us + measure(lambda: bench_ratchet.floor_message(ck, payload),
                                        rounds=rounds, per_round=per)[0] / 2
        gap_rows.append(row(f"decrypt after {gap:,} skipped",
                            (statistics.median(samples), max(samples) - min(samples)), floor))
    rows += gap_rows
    slope = (gap_rows[-1]["ours_us"] - gap_rows[0]["ours_us"]) / (GAPS[-1] - GAPS[0])
    per_key = {"per_skipped_key_us": slope, "kdf_ck_step_us": step_us,
               "ratio": slope / step_us}

    # Message sizes.
    size_rows = []
    for size in SIZES:
        body = b"m" * size
        a, b, r = bench_ratchet.sessions()
        n = max(per // (1 + size // 4096), 5)
        key = b"k" * 32
        size_rows.append(row(f"one-way, {size:,} B", measure(
            lambda: b.decrypt(parse(a.encrypt(body), LIMIT), now=0, rng=r), rounds=rounds,
            per_round=n), measure(lambda: (bench_ratchet.floor_message(ck, b""),
                                           AESGCM(key).decrypt(bytes(12), AESGCM(key).encrypt(
                                               bytes(12), body, b""), b"")),
                                  rounds=rounds, per_round=n)[0]))
    rows += size_rows

    # Serialization, memory, stores.
    a_store, b_store = MemoryStore(), MemoryStore()
    bench_ratchet.pair(a_store, b_store)
    fresh = record_bytes(b_store, "alice") or b""
    a, b, r = bench_ratchet.sessions()
    for _ in range(1_000):
        a.encrypt(payload)
    b.decrypt(parse(a.encrypt(payload), LIMIT), now=0, rng=r)
    record = SessionRecord(signalish.NATIVE)
    record.sessions.append(b)
    loaded_1000 = record.to_bytes()
    for label, blob in (("fresh", fresh), ("1,000 skipped keys", loaded_1000)):
        parsed = SessionRecord.from_bytes(blob)
        rows.append(row(f"serialize session ({label})", measure(parsed.to_bytes, rounds=rounds,
                                                                 per_round=per // 10)))
        rows.append(row(f"restore session ({label})", measure(
            lambda blob=blob: SessionRecord.from_bytes(blob), rounds=rounds, per_round=per // 10)))
    memory = {}
    for keys in (0, 100, 1_000, 2_000):
        a, b, r = bench_ratchet.sessions()
        for _ in range(keys):
            a.encrypt(payload)
        b.decrypt(parse(a.encrypt(payload), LIMIT), now=0, rng=r)
        rec = SessionRecord(signalish.NATIVE)
        rec.sessions.append(b)
        blob = rec.to_bytes()
        tracemalloc.start()
        kept = SessionRecord.from_bytes(blob)
        memory[keys] = {"bytes_in_memory": tracemalloc.get_traced_memory()[0],
                        "serialized_bytes": len(blob)}
        tracemalloc.stop()
        del kept
    tmp = Path(tempfile.mkdtemp())
    sq_a, sq_b = SQLiteStore(tmp / "a.db"), SQLiteStore(tmp / "b.db")
    ma, mb = bench_ratchet.pair(sq_a, sq_b)
    rows.append(row("one-way [SessionManager + SQLiteStore, a commit per call]", measure(
        lambda: mb.decrypt("alice", ma.encrypt("bob", payload), now=0), rounds=rounds,
        per_round=max(per // 20, 5))))
    ma2, mb2 = bench_ratchet.pair(MemoryStore(), MemoryStore())
    rows.append(row("one-way [SessionManager + MemoryStore]", measure(
        lambda: mb2.decrypt("alice", ma2.encrypt("bob", payload), now=0), rounds=rounds,
        per_round=per // 4), syndace=peer_time(syndace, "one_way_persisted", per // 4)))
    ma3, mb3 = bench_ratchet.pair(MemoryStore(), MemoryStore())
    managers = [(ma3, "bob", mb3, "alice"), (mb3, "alice", ma3, "bob")]

    def managed_alternating() -> None:
        sender, to, receiver, sender_name = managers[0]
        receiver.decrypt(sender_name, sender.encrypt(to, payload), now=0)
        managers.reverse()

    rows.append(row("alternating, DH step each [SessionManager + MemoryStore]", measure(
        managed_alternating, rounds=rounds, per_round=per // 4),
        syndace=peer_time(syndace, "alternating_persisted", per // 4)))
    hostile = bench_ratchet.hostile_figures(rounds=2 if quick else 7, quick=quick)
    paths = bench_paths.figures(quick)
    attachments = bench_attachments.figures(quick)
    spqr = bench_spqr.figures(quick)
    groups = bench_groups.figures(quick)
    asyncio_api = bench_async.figures(quick)
    postgres = bench_postgres.figures(quick)

    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "system": platform.platform(), "cryptography": cryptography.__version__,
            "signalish": signalish.__version__, "quick": quick, "rounds": rounds,
            "peers": {"syndace": syndace if isinstance(syndace, str) else "DoubleRatchet/X3DH 1.3.0",
                      "axolotl": axolotl if isinstance(axolotl, str) else "python-axolotl 0.2.3"}}
    results = {"meta": meta, "rows": rows, "per_skipped_key": per_key, "memory": memory,
               "hostile": hostile, "paths": paths, "attachments": attachments, "spqr": spqr,
               "groups": groups, "asyncio": asyncio_api,
               "postgres": postgres}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    markdown = render(results)
    (args.out / "results.md").write_text(markdown)
    print(markdown)
    plots = plot(args.out, gap_rows, size_rows)
    print(plots)
    return 0


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}{unit}" if value < 100 else f"{value:,.0f}{unit}"


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [f"signalish {meta['signalish']}, cryptography {meta['cryptography']}, Python "
             f"{meta['python']}, {meta['system']}; medians of {meta['rounds']} rounds"
             + (" (quick mode: few samples, figures are rough)" if meta["quick"] else ""), "",
             "| benchmark | ours (us) | spread | floor (us) | ours/floor | Syndace (us) "
             "| vs Syndace | axolotl (us) | vs axolotl |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['name']} | {_fmt(r['ours_us'])} | {_fmt(r['spread_us'])} | "
                     f"{_fmt(r['floor_us'])} | {_fmt(r['ratio_to_floor'], 'x')} | "
                     f"{_fmt(r.get('syndace_us'))} | {_fmt(r.get('syndace_speedup'), 'x')} | "
                     f"{_fmt(r.get('axolotl_us'))} | {_fmt(r.get('axolotl_speedup'), 'x')} |")
    k = results["per_skipped_key"]
    lines += ["", f"Each skipped key costs {k['per_skipped_key_us']:.2f} us, "
              f"{k['ratio']:.2f}x one KDF_CK step ({k['kdf_ck_step_us']:.2f} us), "
              "from the slope between 10 and 10,000 skipped.", "",
              "| stored skipped keys | serialized record | memory once loaded |", "|---|---|---|"]
    for keys, m in results["memory"].items():
        lines.append(f"| {int(keys):,} | {m['serialized_bytes']:,} B | {m['bytes_in_memory']:,} B |")
    lines += [""] + bench_paths.lines(results["paths"], results["hostile"]) + [""]
    lines += bench_attachments.lines(results["attachments"]) + [""]
    lines += bench_spqr.lines(results["spqr"]) + [""]
    lines += bench_groups.lines(results["groups"]) + [""]
    lines += bench_async.lines(results["asyncio"]) + [""]
    lines += bench_postgres.lines(results["postgres"]) + [""]
    lines += bench_ratchet.hostile_lines(results["hostile"]) + [""]
    for peer, note in meta["peers"].items():
        lines.append(f"{peer}: {note}")
    return "\n".join(lines) + "\n"


def plot(out: Path, gap_rows: list[dict[str, Any]], size_rows: list[dict[str, Any]]) -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plots skipped: matplotlib is not installed (pip install '.[bench]')"
    for name, xs, rows_, xlabel in (("skipped.png", GAPS, gap_rows, "messages skipped"),
                                    ("sizes.png", SIZES, size_rows, "message size (bytes)")):
        figure, axis = plt.subplots(figsize=(6, 4))
        axis.loglog(xs, [r["ours_us"] for r in rows_], "o-", label="signalish")
        axis.loglog(xs, [r["floor_us"] for r in rows_], "s--", label="primitive floor")
        axis.set_xlabel(xlabel)
        axis.set_ylabel("microseconds")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
        figure.tight_layout()
        figure.savefig(out / name, dpi=100)
        plt.close(figure)
    return f"plots written: {out / 'skipped.png'}, {out / 'sizes.png'}"
