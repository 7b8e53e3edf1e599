"""The asyncio API's cost against the synchronous one, same store, same run.

Usage: ``python benchmarks/bench_async.py [--quick] [--json PATH]``; also part
of ``python -m benchmarks``.

One message one way (encrypt on one side, decrypt on the other, both
persisted), through [SessionManager + SQLiteStore] and through
[AsyncSessionManager + AsyncSQLiteStore] (the same SQLite file format, run
in the store's own thread, each store call handed back to the event loop),
timed in alternation.  The ratio is the asyncio API's overhead per message:
the thread hop of each call and the loop round trip of each store call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import cryptography  # noqa: E402

import signalish  # noqa: E402
from signalish import (  # noqa: E402
    AsyncSessionManager,
    AsyncSQLiteStore,
    DeterministicRandom,
    IdentityKeyPair,
    SessionManager,
    SQLiteStore,
)

PAYLOAD = b"x" * 64
NOW = 1_700_000_000


def _bundle(manager: SessionManager) -> Any:
    with manager.prekeys(now=NOW) as ring:
        ring.generate_one_time_prekeys(1, manager.rng)
        ring.generate_kem_prekeys(1, manager.rng, now=NOW)
        return ring.issue_bundle()


def figures(quick: bool) -> list[dict[str, Any]]:
    per, rounds = (50, 3) if quick else (300, 9)
    directory = Path(tempfile.mkdtemp(prefix="signalish-bench-async-"))
    rng = DeterministicRandom(b"bench async")
    alice_id, bob_id = IdentityKeyPair.generate(rng), IdentityKeyPair.generate(rng)
    sync_alice = SessionManager(alice_id, SQLiteStore(directory / "a.db"), rng=rng)
    sync_bob = SessionManager(bob_id, SQLiteStore(directory / "b.db"), rng=rng)
    sync_alice.initiate("bob", _bundle(sync_bob))
    sync_bob.decrypt("alice", sync_alice.encrypt("bob", b"hi"), now=NOW)

    def sync_round() -> float:
        start = time.perf_counter()
        for _ in range(per):
            sync_bob.decrypt("alice", sync_alice.encrypt("bob", PAYLOAD), now=NOW)
        return (time.perf_counter() - start) / per * 1e6

    async def main() -> tuple[list[float], list[float]]:
        a_store = AsyncSQLiteStore(directory / "aa.db")
        b_store = AsyncSQLiteStore(directory / "ab.db")
        alice = AsyncSessionManager(alice_id, a_store, rng=rng)
        bob = AsyncSessionManager(bob_id, b_store, rng=rng)

        def prepare(ring: Any) -> Any:
            ring.generate_one_time_prekeys(1, rng)
            ring.generate_kem_prekeys(1, rng, now=NOW)
            return ring.issue_bundle()

        await alice.initiate("bob", await bob.with_prekeys(NOW, prepare))
        await bob.decrypt("alice", await alice.encrypt("bob", b"hi"), now=NOW)
        ours, base = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(per):
                await bob.decrypt("alice", await alice.encrypt("bob", PAYLOAD), now=NOW)
            ours.append((time.perf_counter() - start) / per * 1e6)
            base.append(sync_round())
        await a_store.close()
        await b_store.close()
        return ours, base

    ours, base = asyncio.run(main())
    return [{"name": "one-way, persisted [AsyncSessionManager + AsyncSQLiteStore] / "
             "[SessionManager + SQLiteStore]", "ours_us": statistics.median(ours),
             "base_us": statistics.median(base),
             "ratio": statistics.median(a / b for a, b in zip(ours, base))}]


def lines(results: list[dict[str, Any]]) -> list[str]:
    out = ["asyncio API against the synchronous one (per message, encrypt + decrypt, both "
           "persisted in SQLite; same run):", "",
           "| path | async (us) | sync (us) | async/sync |", "|---|---|---|---|"]
    for r in results:
        out.append(f"| {r['name']} | {r['ours_us']:,.0f} | {r['base_us']:,.0f} "
                   f"| {r['ratio']:.2f} |")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: proves the suite runs")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    results = figures(args.quick)
    meta = {"python": platform.python_version(), "cryptography": cryptography.__version__,
            "signalish": signalish.__version__, "quick": args.quick}
    print(f"signalish {meta['signalish']}, cryptography {meta['cryptography']}, "
          f"Python {meta['python']}")
    print("\n".join(lines(results)))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
