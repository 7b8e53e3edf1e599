"""PostgreSQL: a fleet of workers on one database, against SQLite and memory.

Usage: ``python benchmarks/bench_postgres.py [--quick] [--json PATH]`` (needs
the ``postgres`` extra and ``pgserver``, which starts a throwaway server in
a temporary directory; POSIX only: workers are forked).

Three figures, all for Bob answering his peers (NATIVE profile, sessions
past their first reply), one message = decrypt + reply, each a
[SessionManager] call, so two store transactions per message:

* **per message, one process** [SessionManager + MemoryStore / SQLiteStore /
  PostgresStore]: the cost of a message in each store, measured in the same
  run, and the ratios; and PostgresStore with the decrypt and the reply in
  one application transaction (one COMMIT).  The memory and SQLite stores keep parsed records
  between calls; PostgresStore cannot (its generation is new for every
  transaction: docs/fleet.md), so it also pays for reading and parsing the
  record every call.
* **a fleet** [N processes x SessionManager + PostgresStore]: messages per
  second with 1, 2 and 4 worker processes on one database, messages from
  16 peers dealt round-robin to the workers (so workers of one peer's
  messages contend for its lock), and with 4 workers, partitioned by peer
  (each peer's messages to one worker: no contention).
* **a big store** [PostgresStore]: 100,000 sessions of realistic rows
  (copied from a real session, each row's check computed for its address)
  loaded with COPY; then one message for one address among them, against
  the same in an empty schema; and the sizes: rows per session, bytes per
  row, bytes on disk per session (table and index).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import cryptography  # noqa: E402
import psycopg  # noqa: E402

import signalish  # noqa: E402
from signalish import (  # noqa: E402
    NATIVE,
    DeterministicRandom,
    IdentityKeyPair,
    MemoryStore,
    PreKeyRing,
    SessionManager,
    SQLiteStore,
    StoreError,
    load_identity_key_pair,
    save_identity_key_pair,
)
from signalish._postgres import PostgresStore  # noqa: E402
from signalish._storage import save_ring  # noqa: E402
from signalish._stores.rows import _row_check, _session_key  # noqa: E402

PEERS = 16
NOW = 10


class Server:
    """A throwaway PostgreSQL server (pgserver), default settings."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
        self.root = Path(tempfile.mkdtemp(prefix="signalish-bench-pg-"))
        self.server = pgserver.get_server(self.root / "data", cleanup_mode=None)
        self.conninfo: str = self.server.get_uri()

    def version(self) -> str:
        with psycopg.connect(self.conninfo) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def close(self) -> None:
        from pgserver import _commands
        try:
            _commands.pg_ctl(["-w", "-m", "fast", "stop"],  # type: ignore[attr-defined]
                             pgdata=self.server.pgdata, user=self.server.system_user)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def conversation(store: Any, peers: int = PEERS, seed: bytes = b"bench postgres"
                 ) -> tuple[IdentityKeyPair, dict[str, SessionManager]]:
    """Bob (identity and prekey ring in ``store``) and ``peers`` peers in
    memory, each with a session Bob has answered once."""
    rng = DeterministicRandom(seed)
    bob = IdentityKeyPair.generate(rng)
    ring = PreKeyRing.create(bob, NATIVE, rng, now=0)
    ring.generate_one_time_prekeys(peers, rng)
    bundles = [ring.issue_bundle() for _ in range(peers)]
    with store.transaction():
        save_ring(store, ring, {})
        save_identity_key_pair(store, bob)
    manager = SessionManager(bob, store, rng=rng)
    others: dict[str, SessionManager] = {}
    for i, bundle in enumerate(bundles):
        address = f"peer{i}"
        peer = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), rng=rng)
        peer.initiate("bob", bundle)
        manager.decrypt(address, peer.encrypt("bob", b"hello"), now=NOW)
        peer.decrypt("bob", manager.encrypt(address, b"hi"), now=NOW)
        others[address] = peer
    return bob, others


def backlog(peers: dict[str, SessionManager], per_peer: int) -> list[tuple[str, bytes]]:
    """``per_peer`` messages from every peer, interleaved."""
    return [(address, peer.encrypt("bob", b"x" * 160))
            for _ in range(per_peer) for address, peer in peers.items()]


def answer(manager: SessionManager, address: str, message: bytes) -> None:
    plaintext = manager.decrypt(address, message, now=NOW)
    manager.encrypt(address, b"re " + plaintext[:8])


def answer_in_one_transaction(manager: SessionManager, address: str, message: bytes) -> None:
    """Decrypt and reply in one application transaction: one COMMIT (the
    reply may be sent once it has committed)."""
    with manager.store.transaction():
        answer(manager, address, message)


def per_message_us(store: Any, messages: int, rounds: int, one_transaction: bool = False
                   ) -> tuple[float, float]:
    """Median and spread of microseconds per message (decrypt + reply)."""
    bob, peers = conversation(store, peers=4)
    manager = SessionManager(bob, store)
    step = answer_in_one_transaction if one_transaction else answer
    per_round = max(1, messages // rounds)
    queue = backlog(peers, (per_round * (rounds + 1)) // len(peers) + 1)
    for address, message in queue[:per_round]:  # warm-up
        step(manager, address, message)
    queue = queue[per_round:]
    samples = []
    for r in range(rounds):
        chunk = queue[r * per_round:(r + 1) * per_round]
        start = time.perf_counter()
        for address, message in chunk:
            step(manager, address, message)
        samples.append((time.perf_counter() - start) / len(chunk) * 1e6)
    return statistics.median(samples), max(samples) - min(samples)


def async_per_message_us(conninfo: str, messages: int, rounds: int) -> tuple[float, float]:
    """The same as per_message_us, through [AsyncSessionManager +
    AsyncPostgresStore] (each store call a coroutine on the loop, the
    protocol in a worker thread)."""
    import asyncio

    from signalish import AsyncSessionManager
    from signalish._postgres import AsyncPostgresStore

    schema = fresh_schema()
    with PostgresStore(conninfo, schema=schema) as sync_store:
        bob, peers = conversation(sync_store, peers=4)
    per_round = max(1, messages // rounds)
    queue = backlog(peers, (per_round * (rounds + 1)) // len(peers) + 1)

    async def run() -> list[float]:
        store = await AsyncPostgresStore.connect(conninfo, schema=schema)
        manager = AsyncSessionManager(bob, store)

        async def step(address: str, message: bytes) -> None:
            plaintext = await manager.decrypt(address, message, now=NOW)
            await manager.encrypt(address, b"re " + plaintext[:8])

        for address, message in queue[:per_round]:  # warm-up
            await step(address, message)
        samples = []
        for r in range(rounds):
            chunk = queue[per_round * (r + 1):per_round * (r + 2)]
            start = time.perf_counter()
            for address, message in chunk:
                await step(address, message)
            samples.append((time.perf_counter() - start) / len(chunk) * 1e6)
        await store.close()
        return samples

    samples = asyncio.run(run())
    drop(conninfo, schema)
    return statistics.median(samples), max(samples) - min(samples)


def fresh_schema() -> str:
    return "bench_" + uuid.uuid4().hex[:12]


def drop(conninfo: str, schema: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def fleet(conninfo: str, workers: int, per_peer: int, partitioned: bool) -> dict[str, Any]:
    """Messages per second of ``workers`` forked processes answering one
    queue of messages from PEERS peers."""
    schema = fresh_schema()
    with PostgresStore(conninfo, schema=schema) as store:
        _, peers = conversation(store)
    queue = backlog(peers, per_peer)
    if partitioned:
        shares = [[m for m in queue if int(m[0][4:]) % workers == k] for k in range(workers)]
    else:
        shares = [queue[k::workers] for k in range(workers)]
    start_r, start_w = os.pipe()
    done_r, done_w = os.pipe()
    pids = []
    for share in shares:
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - a worker
            code = 1
            try:
                os.close(start_w)
                store = PostgresStore(conninfo, schema=schema, lock_timeout=30)
                identity = load_identity_key_pair(store)
                assert identity is not None
                manager = SessionManager(identity, store)
                retries = 0
                os.read(start_r, 1)
                for address, message in share:
                    while True:
                        try:
                            answer(manager, address, message)
                            break
                        except StoreError:  # StoreBusy: a deadlock broken, or a lock timeout
                            retries += 1
                            if retries > 1_000:
                                raise
                os.write(done_w, retries.to_bytes(4, "big"))
                store.close()
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(start_r)
    time.sleep(0.3)  # every worker connected and waiting
    started = time.perf_counter()
    os.write(start_w, b"g" * workers)
    retries = 0
    for _ in pids:
        retries += int.from_bytes(os.read(done_r, 4), "big")
    elapsed = time.perf_counter() - started
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError("a benchmark worker failed")
    os.close(start_w)
    os.close(done_r)
    os.close(done_w)
    drop(conninfo, schema)
    return {"workers": workers, "partitioned": partitioned, "messages": len(queue),
            "seconds": elapsed, "per_second": len(queue) / elapsed, "retries": retries}


def big_store(conninfo: str, sessions: int, messages: int, rounds: int) -> dict[str, Any]:
    """A schema with ``sessions`` sessions besides Bob's live ones; the cost
    of a message there, and the sizes."""
    schema = fresh_schema()
    store = PostgresStore(conninfo, schema=schema)
    bob, peers = conversation(store, peers=4)
    manager = SessionManager(bob, store)
    for address, message in backlog(peers, 3):
        answer(manager, address, message)
    template = {part: store.load_session("peer0", part) or b""
                for part in _parts(store, schema, "peer0")}
    started = time.perf_counter()
    with store.connection.cursor() as cursor:
        with cursor.copy(f'COPY "{schema}".session_rows (address, part, data) '
                         "FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "bytea", "bytea"])
            for i in range(sessions):
                address = f"+1555{i:07d}.1"
                for part, value in template.items():
                    copy.write_row((address, part, value + _row_check(
                        "session_rows", _session_key(address, part), value)))
    load_seconds = time.perf_counter() - started
    store.connection.execute(f'ANALYZE "{schema}".session_rows')
    row = store.connection.execute(
        f"SELECT count(*), avg(pg_column_size(data)), avg(length(data)), "
        f"pg_table_size('\"{schema}\".session_rows'), "
        f"pg_indexes_size('\"{schema}\".session_rows') FROM \"{schema}\".session_rows"
    ).fetchone()
    assert row is not None
    count, stored_bytes, raw_bytes, table_bytes, index_bytes = row
    big_us, big_spread = _answer_us(store, bob, peers, messages, rounds)
    store.close()
    drop(conninfo, schema)
    return {"sessions": sessions, "rows": int(count), "rows_per_session": len(template),
            "row_bytes": float(raw_bytes), "stored_row_bytes": float(stored_bytes),
            "table_bytes": int(table_bytes), "index_bytes": int(index_bytes),
            "bytes_per_session": (int(table_bytes) + int(index_bytes)) / max(1, sessions),
            "load_seconds": load_seconds, "rows_per_second": len(template) * sessions
            / load_seconds, "message_us": big_us, "message_spread_us": big_spread,
            "parts": sorted(p[:1].decode() or "head" for p in template)}


def _parts(store: PostgresStore, schema: str, address: str) -> list[bytes]:
    rows = store.connection.execute(
        f'SELECT part FROM "{schema}".session_rows WHERE address = %s', (address,)).fetchall()
    return [bytes(r[0]) for r in rows]


def _answer_us(store: Any, bob: IdentityKeyPair, peers: dict[str, SessionManager],
               messages: int, rounds: int) -> tuple[float, float]:
    manager = SessionManager(bob, store)
    per_round = max(1, messages // rounds)
    queue = backlog(peers, per_round * rounds // len(peers) + 1)
    samples = []
    for r in range(rounds):
        chunk = queue[r * per_round:(r + 1) * per_round]
        start = time.perf_counter()
        for address, message in chunk:
            answer(manager, address, message)
        samples.append((time.perf_counter() - start) / len(chunk) * 1e6)
    return statistics.median(samples), max(samples) - min(samples)


def figures(quick: bool) -> dict[str, Any]:
    server = Server()
    try:
        messages, rounds = (60, 3) if quick else (400, 5)
        results: dict[str, Any] = {"server": server.version()}
        memory = per_message_us(MemoryStore(), messages, rounds)
        with tempfile.TemporaryDirectory() as tmp, SQLiteStore(Path(tmp) / "b.db") as lite:
            sqlite = per_message_us(lite, messages, rounds)
        schema = fresh_schema()
        with PostgresStore(server.conninfo, schema=schema) as store:
            postgres = per_message_us(store, messages, rounds)
        drop(server.conninfo, schema)
        schema = fresh_schema()
        with PostgresStore(server.conninfo, schema=schema) as store:
            together = per_message_us(store, messages, rounds, one_transaction=True)
        drop(server.conninfo, schema)
        asynchronous = async_per_message_us(server.conninfo, messages, rounds)
        results["per_message"] = {"memory_us": memory[0], "memory_spread_us": memory[1],
                                  "postgres_async_us": asynchronous[0],
                                  "postgres_async_spread_us": asynchronous[1],
                                  "sqlite_us": sqlite[0], "sqlite_spread_us": sqlite[1],
                                  "postgres_us": postgres[0], "postgres_spread_us": postgres[1],
                                  "postgres_one_commit_us": together[0],
                                  "postgres_one_commit_spread_us": together[1],
                                  "postgres_over_sqlite": postgres[0] / sqlite[0],
                                  "postgres_over_memory": postgres[0] / memory[0]}
        per_peer = 8 if quick else 40
        results["fleet"] = [fleet(server.conninfo, n, per_peer, False) for n in (1, 2, 4)]
        results["fleet"].append(fleet(server.conninfo, 4, per_peer, True))
        results["big"] = big_store(server.conninfo, 100_000, messages, rounds)
        results["big"]["empty_message_us"] = postgres[0]
        return results
    finally:
        server.close()


def lines(results: dict[str, Any]) -> list[str]:
    """The rows as Markdown (used by this script, and by suite.py if it
    runs this benchmark)."""
    p = results["per_message"]
    out = [f"PostgreSQL {results['server']}: one message = decrypt + reply, two "
           "[SessionManager] transactions (NATIVE, sessions past their first reply):", "",
           "| store | per message | PostgreSQL / this |", "|---|---|---|",
           f"| MemoryStore | {p['memory_us']:,.0f} us | {p['postgres_over_memory']:.1f}x |",
           f"| SQLiteStore | {p['sqlite_us']:,.0f} us | {p['postgres_over_sqlite']:.1f}x |",
           f"| PostgresStore | {p['postgres_us']:,.0f} us | 1.0x |",
           f"| PostgresStore, decrypt and reply in one transaction "
           f"| {p['postgres_one_commit_us']:,.0f} us "
           f"| {p['postgres_us'] / p['postgres_one_commit_us']:.1f}x |",
           f"| [AsyncSessionManager + AsyncPostgresStore] "
           f"| {p['postgres_async_us']:,.0f} us "
           f"| {p['postgres_us'] / p['postgres_async_us']:.2f}x (async/sync "
           f"{p['postgres_async_us'] / p['postgres_us']:.2f}) |", "",
           "A fleet: worker processes on one database, messages from "
           f"{PEERS} peers (dealt round-robin, or partitioned by peer):", "",
           "| workers | messages | messages/s | vs 1 worker | StoreBusy retries |",
           "|---|---|---|---|---|"]
    one = results["fleet"][0]["per_second"]
    for f in results["fleet"]:
        label = f"{f['workers']}" + (", by peer" if f["partitioned"] else "")
        out.append(f"| {label} | {f['messages']:,} | {f['per_second']:,.0f} "
                   f"| {f['per_second'] / one:.2f}x | {f['retries']} |")
    b = results["big"]
    out += ["", f"A store with {b['sessions']:,} sessions ({b['rows']:,} session rows, "
            f"loaded with COPY in {b['load_seconds']:.1f} s, {b['rows_per_second']:,.0f} rows/s):",
            "", "| | value |", "|---|---|",
            f"| one message among them | {b['message_us']:,.0f} us "
            f"({b['message_us'] / b['empty_message_us']:.2f}x the empty store) |",
            f"| rows per session | {b['rows_per_session']} ({', '.join(b['parts'])}) |",
            f"| bytes per row (value + 16-byte check) | {b['row_bytes']:,.0f} |",
            f"| on disk per session, table + index | {b['bytes_per_session']:,.0f} bytes |",
            f"| table, index | {b['table_bytes'] / 2**20:,.1f} MiB, "
            f"{b['index_bytes'] / 2**20:,.1f} MiB |"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: proves the suite runs")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    started = time.perf_counter()
    results = figures(args.quick)
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "cryptography": cryptography.__version__,
            "psycopg": psycopg.__version__, "signalish": signalish.__version__,
            "quick": args.quick, "seconds": time.perf_counter() - started}
    print(f"signalish {meta['signalish']}, cryptography {meta['cryptography']}, psycopg "
          f"{meta['psycopg']}, Python {meta['python']} on {meta['machine']} "
          f"({meta['cpus']} CPUs), {meta['seconds']:.0f} s")
    print("\n".join(lines(results)))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
