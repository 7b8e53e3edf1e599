"""Thousands of conversations on one PostgreSQL, held by a fleet of worker
processes (issue 20's "done" criterion).

Bob lives in the database.  2,000 peers (in this process, in memory) each
start a session with him from his bundle and send a first message; four
forked workers share the queue, each given every message with a second
worker given it too, in orders of their own, so most messages are tried by
two processes at once.  Each worker decrypts (``deliver`` writes the
plaintext into the application's own table in the store's transaction) and
answers what it delivered.  Then every peer reads its answer and writes
again, on a new DH step, and the workers deliver that round the same way.

Checked: every message delivered exactly once (one inbox row each, whatever
the races), every peer got exactly one answer per message and decrypted it,
no two answers to one peer under one message key, and no worker hung or
failed.
"""

from __future__ import annotations

import gc
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from pg import Database, bob_on, pg, pg_server  # noqa: F401
from sessions import message_key_id
from sqlite_helpers import fork

from signalish import (
    DeterministicRandom,
    IdentityKeyPair,
    MemoryStore,
    SessionManager,
    StoreError,
    load_identity_key_pair,
)
from signalish._postgres import PostgresStore
from signalish.errors import CorruptState, DuplicateMessage

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

PEERS = 2_000
WORKERS = 4
NOW = 10


def worker(db: Database, name: str, queue: list[tuple[str, bytes]], order: list[int],
           out: Path) -> None:
    random.seed(os.getpid())
    deadline = time.monotonic() + 240
    store = PostgresStore(db.conninfo, schema=db.schema, lock_timeout=10.0)
    identity = load_identity_key_pair(store)
    assert identity is not None
    manager = SessionManager(identity, store)
    answers = []
    delivered = duplicates = retries = 0
    for index in order:
        address, message = queue[index]

        def deliver(plaintext: bytes, address: str = address) -> None:
            store.connection.execute(
                f'INSERT INTO "{db.schema}_app".inbox (peer, body, worker) VALUES (%s, %s, %s)',
                (address, plaintext, name))

        while True:
            try:
                plaintext = manager.decrypt(address, message, now=NOW, deliver=deliver)
                reply = manager.encrypt(address, b"re " + plaintext)
                break
            except DuplicateMessage:
                plaintext = reply = b""
                break
            except CorruptState:
                raise
            except StoreError:
                retries += 1
                assert time.monotonic() < deadline, "a worker made no progress"
                time.sleep(random.uniform(0, 0.05))
        if not plaintext:
            duplicates += 1
            continue
        delivered += 1
        answers.append((address, reply.hex()))
    store.close()
    out.write_text(json.dumps({"delivered": delivered, "duplicates": duplicates,
                               "retries": retries, "answers": answers}))


def run_fleet(db: Database, tmp: Path, queue: list[tuple[str, bytes]], label: str
              ) -> list[dict[str, Any]]:
    chance = random.Random(label)
    orders: list[list[int]] = [[] for _ in range(WORKERS)]
    for index in range(len(queue)):
        first = chance.randrange(WORKERS)
        second = (first + 1 + chance.randrange(WORKERS - 1)) % WORKERS
        orders[first].append(index)
        orders[second].append(index)
    for order in orders:
        chance.shuffle(order)
    gc.collect()  # no connection object of this process may be finalized in a child
    children = []
    for k in range(WORKERS):
        out = tmp / f"{label}-{k}.json"
        errors = tmp / f"{label}-{k}.err"
        pid = fork(lambda k=k, out=out: worker(db, f"w{k}", queue, orders[k], out), errors)
        children.append((pid, out, errors))
    results = []
    for pid, out, errors in children:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, errors.read_text() if errors.exists() \
            else f"worker exited with {status}"
        results.append(json.loads(out.read_text()))
    return results


def test_a_fleet_holds_thousands_of_conversations(pg: Database, tmp_path: Path) -> None:
    started = time.monotonic()
    with pg.connect() as conn:
        conn.execute(f'CREATE SCHEMA "{pg.schema}_app"')
        conn.execute(f'CREATE TABLE "{pg.schema}_app".inbox (id serial PRIMARY KEY, '
                     "peer text NOT NULL, body bytea NOT NULL, worker text NOT NULL)")
    with pg.store() as store:
        _, bob, rng = bob_on(store, b"thousands", one_time=0)
        with SessionManager(bob, store).prekeys(now=0) as ring:
            bundle = ring.issue_bundle()  # signed prekey and last-resort KEM prekey
    peers: dict[str, SessionManager] = {}
    queue: list[tuple[str, bytes]] = []
    for i in range(PEERS):
        address = f"peer{i}"
        peer = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), rng=rng)
        peer.initiate("bob", bundle)
        peers[address] = peer
        queue.append((address, peer.encrypt("bob", f"{address} hello".encode())))
    key_ids: dict[str, set[bytes]] = {address: set() for address in peers}
    for round_number in range(2):
        results = run_fleet(pg, tmp_path, queue, f"round{round_number}")
        assert sum(r["delivered"] for r in results) == len(queue)
        answered: dict[str, int] = {}
        for result in results:
            for address, reply_hex in result["answers"]:
                reply = bytes.fromhex(reply_hex)
                key = message_key_id(reply)
                assert key not in key_ids[address], f"{address}: a message key used twice"
                key_ids[address].add(key)
                text = peers[address].decrypt("bob", reply, now=NOW)
                assert text.startswith(b"re " + address.encode())
                answered[address] = answered.get(address, 0) + 1
        assert answered == {address: 1 for address in peers}
        queue = [(address, peer.encrypt("bob", f"{address} again {round_number}".encode()))
                 for address, peer in peers.items()]
    with pg.connect() as conn:
        rows = conn.execute(f'SELECT peer, body, count(*) FROM "{pg.schema}_app".inbox '
                            "GROUP BY peer, body").fetchall()
    assert len(rows) == 2 * PEERS and all(count == 1 for _, _, count in rows)
    assert {bytes(body) for _, body, _ in rows} == \
        {f"peer{i} hello".encode() for i in range(PEERS)} | \
        {f"peer{i} again 0".encode() for i in range(PEERS)}
    print(f"{PEERS} conversations, {2 * PEERS} messages, {WORKERS} workers: "
          f"{time.monotonic() - started:.1f} s")
