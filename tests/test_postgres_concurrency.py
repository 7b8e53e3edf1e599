"""A fleet of worker processes on one PostgreSQL database.

Bob lives in the database; his peers (two long conversations, and
newcomers whose first messages are PreKeyMessages that consume one-time
prekeys) live in this process, in memory.  Each round the peers send a
batch (some messages held back for a later round, so workers also decrypt
out of order and across DH steps), and four forked workers each try to
decrypt *every* message of the round, in orders of their own, and answer
each one they delivered.  ``deliver`` writes the plaintext into the
application's own table, through the store's connection, in the store's
transaction; a reply is released (appended, fsynced, to the worker's file)
only after ``encrypt`` returned.  Workers retry on StoreBusy and on a lost
or refused connection.

Three runs: workers left alone; workers killed with SIGKILL at random
moments and at chosen points (inside the decrypt transaction, inside the
encrypt transaction, between encrypt and release) and started again; and
the server restarted twice under them.  Each must end with every message
delivered exactly once (one inbox row each), every released reply
decrypted by its peer exactly once, no two replies to a peer sharing a
message key (tests/sessions.py ``message_key_id``), the one-time prekeys
of the newcomers consumed, and no worker hung (a deadlock).
"""

from __future__ import annotations

import gc
import json
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
from signalish.errors import CorruptState, DuplicateMessage, StoreRolledBack

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

WORKERS = 4
ROUNDS = 3
PER_PEER = 10  # messages per long conversation per round
NEWCOMERS = 2  # new peers per round, two PreKeyMessages each
NOW = 10


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class DyingStore(PostgresStore):
    """Kills its process right after writing a session row (before COMMIT)
    when armed."""

    die_after_save = False

    def save_session(self, address: str, data: bytes, part: bytes = b"") -> None:
        super().save_session(address, data, part)
        if self.die_after_save:
            die()


def retrying(call: Callable[[], Any], counts: dict[str, int], deadline: float) -> Any:
    """``call()``, again and again while the store is busy or unreachable."""
    pause = 0.002
    while True:
        try:
            return call()
        except (CorruptState, StoreRolledBack):
            raise
        except StoreError as error:
            kind = "commit lost" if "during COMMIT" in str(error) else type(error).__name__
            counts[kind] = counts.get(kind, 0) + 1
            if time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0, pause))
            pause = min(0.2, pause * 2)


def worker(db: Database, name: str, queue: list[tuple[str, bytes]], order: list[int],
           out: Path, plan: tuple[str, int] | None, lock_timeout: float) -> None:
    """One worker's life: decrypt every message of ``queue`` in ``order``
    (DuplicateMessage: another worker, or an earlier life, had it), answer
    each one delivered; die as ``plan`` says (at a point of the n-th message
    this life delivers)."""
    random.seed(os.getpid())
    deadline = time.monotonic() + 45
    counts: dict[str, int] = {}
    store = retrying(lambda: DyingStore(db.conninfo, schema=db.schema,
                                        lock_timeout=lock_timeout),
                     counts, deadline)
    identity = load_identity_key_pair(store)
    assert identity is not None
    manager = SessionManager(identity, store)  # SystemRandom: fresh keys in every life
    replies = os.open(out.with_suffix(".replies"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    delivered = duplicates = 0
    for index in order:
        address, message = queue[index]
        step = delivered  # plans count deliveries: the n-th message this life delivers

        def deliver(plaintext: bytes) -> None:
            store.connection.execute(
                f'INSERT INTO "{db.schema}_app".inbox (body, worker) VALUES (%s, %s)',
                (plaintext, name))
            if plan == ("deliver", step):
                die()  # decrypted and written, not committed

        lost = counts.get("commit lost", 0)
        try:
            plaintext = retrying(lambda: manager.decrypt(address, message, now=NOW,
                                                         deliver=deliver), counts, deadline)
        except DuplicateMessage:
            duplicates += 1
            if counts.get("commit lost", 0) > lost:
                # Perhaps this worker's own COMMIT went through: delivered,
                # and its reply is this worker's to send, but it cannot tell.
                counts["in doubt"] = counts.get("in doubt", 0) + 1
            continue
        delivered += 1
        store.die_after_save = plan == ("encrypt", step)
        reply = retrying(lambda: manager.encrypt(address, b"re " + plaintext), counts, deadline)
        if plan == ("release", step):
            die()  # encrypted and committed, never released
        os.write(replies, f"{address} {reply.hex()}\n".encode())
        os.fsync(replies)
    os.close(replies)
    store.close()
    out.write_text(json.dumps({"delivered": delivered, "duplicates": duplicates,
                               "retries": counts}))


@dataclass
class Fleet:
    """Bob in the database, his peers here, and what has been checked."""

    db: Database
    tmp: Path
    bob: IdentityKeyPair
    peers: dict[str, SessionManager]
    chance: random.Random = field(default_factory=lambda: random.Random(20260520))
    sent: list[bytes] = field(default_factory=list)
    held: list[tuple[int, tuple[str, bytes]]] = field(default_factory=list)
    key_ids: dict[str, set[bytes]] = field(default_factory=dict)
    replies_read: dict[Path, int] = field(default_factory=dict)
    newcomers: int = 0
    self_kills: int = 0
    lock_timeout: float = 2.0
    per_peer: int = PER_PEER
    retries: dict[str, int] = field(default_factory=dict)
    lives: int = 0

    @classmethod
    def start(cls, db: Database, tmp: Path) -> Fleet:
        with db.connect() as conn:
            conn.execute(f'CREATE SCHEMA "{db.schema}_app"')
            conn.execute(f'CREATE TABLE "{db.schema}_app".inbox (id serial PRIMARY KEY, '
                         "body bytea NOT NULL, worker text NOT NULL)")
        with db.store() as store:
            alice, bob, rng = bob_on(store, b"fleet", one_time=ROUNDS * NEWCOMERS + 4)
            carol = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), rng=rng)
            with SessionManager(bob, store).prekeys(now=0) as ring:
                carol.initiate("bob", ring.issue_bundle())
        return cls(db, tmp, bob, {"alice": alice, "carol": carol})

    def round_queue(self, number: int) -> list[tuple[str, bytes]]:
        fresh: list[tuple[str, bytes]] = []
        for address in ("alice", "carol"):
            for _ in range(self.per_peer):
                text = f"{address} {len(self.sent)}".encode()
                self.sent.append(text)
                fresh.append((address, self.peers[address].encrypt("bob", text)))
        with self.db.store() as store:
            with SessionManager(self.bob, store).prekeys(now=0) as ring:
                bundles = [ring.issue_bundle() for _ in range(NEWCOMERS)]
        for bundle in bundles:
            address = f"new{self.newcomers}"
            self.newcomers += 1
            rng = DeterministicRandom(address.encode())
            peer = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), rng=rng)
            peer.initiate("bob", bundle)
            self.peers[address] = peer
            for _ in range(2):
                text = f"{address} {len(self.sent)}".encode()
                self.sent.append(text)
                fresh.append((address, peer.encrypt("bob", text)))
        last = number == ROUNDS - 1
        queue = []
        for item in fresh:
            if not last and self.chance.random() < 0.15:
                self.held.append((number + self.chance.choice((1, 2)), item))
            else:
                queue.append(item)
        queue += [item for due, item in self.held if due <= number or last]
        self.held = [(due, item) for due, item in self.held if not (due <= number or last)]
        self.chance.shuffle(queue)
        return queue

    def spawn(self, queue: list[tuple[str, bytes]], k: int, life: int,
              plan: tuple[str, int] | None) -> tuple[int, Path, Path]:
        order = self.chance.sample(range(len(queue)), len(queue))
        out = self.tmp / f"w{k}-{life}.json"
        errors = out.with_suffix(".err")
        gc.collect()  # no connection object of this process may be finalized in a child
        pid = fork(lambda: worker(self.db, f"w{k}", queue, order, out, plan, self.lock_timeout),
                   errors)
        self.lives += 1
        return pid, out, errors

    def read_replies(self) -> int:
        """Every peer decrypts every reply released so far, once; no two
        replies to a peer share a message key."""
        count = 0
        for path in sorted(self.tmp.glob("*.replies")):
            data = path.read_bytes()
            lines = data[:data.rfind(b"\n") + 1].splitlines()
            for line in lines[self.replies_read.get(path, 0):]:
                address, text = line.decode().split()
                reply = bytes.fromhex(text)
                ids = self.key_ids.setdefault(address, set())
                key_id = message_key_id(reply)
                assert key_id not in ids, f"two replies to {address} share a message key"
                ids.add(key_id)
                assert self.peers[address].decrypt("bob", reply, now=NOW).startswith(
                    b"re " + address.encode())
                with pytest.raises(DuplicateMessage):
                    self.peers[address].decrypt("bob", reply, now=NOW)
                count += 1
            self.replies_read[path] = len(lines)
        return count

    def collect(self, out: Path) -> None:
        result = json.loads(out.read_text())
        for name, n in result["retries"].items():
            self.retries[name] = self.retries.get(name, 0) + n

    def check_inbox(self) -> None:
        with self.db.connect() as conn:
            rows = conn.execute(f'SELECT body, count(*) FROM "{self.db.schema}_app".inbox '
                                "GROUP BY body").fetchall()
            parts = conn.execute(f'SELECT part FROM "{self.db.schema}".prekey_rows').fetchall()
        counts = {bytes(body): n for body, n in rows}
        assert {body for body, n in counts.items() if n > 1} == set(), "delivered twice"
        assert set(counts) == set(self.sent), "a message was never delivered"
        # Every newcomer's one-time prekey was consumed (two spares are left).
        assert sum(1 for (part,) in parts if bytes(part)[:1] == b"o") == 2


def reap(pid: int, deadline: float, errors: Path) -> int:
    """Wait for ``pid``; a worker still running at ``deadline`` is hung."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0:
                pytest.fail(errors.read_text() if errors.exists() else f"exit {status}")
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("a worker did not finish: deadlock?")
        time.sleep(0.005)


def run_round(fleet: Fleet, number: int, *, kills: int = 0,
              meanwhile: Callable[[], None] | None = None) -> tuple[int, int]:
    """One round: four workers on one queue; with ``kills``, most first
    lives die at a chosen point of their work, and ``kills`` lives are
    killed by this process at random moments; each is started again.
    ``meanwhile`` runs once the workers are started.  Returns (kills,
    replies read)."""
    queue = fleet.round_queue(number)
    running: dict[int, tuple[int, Path, Path]] = {}
    lives = [0] * WORKERS
    for k in range(WORKERS):
        plan = None
        if kills and fleet.chance.random() < 0.6:  # this life dies at a chosen point
            plan = (fleet.chance.choice(("deliver", "encrypt", "release")),
                    fleet.chance.randrange(3))
        running[k] = fleet.spawn(queue, k, lives[k], plan)
    deadline = time.monotonic() + 50
    killed = 0
    next_kill = time.monotonic() + fleet.chance.uniform(0.01, 0.06)
    if meanwhile is not None:
        meanwhile()
    while running:
        for k, (pid, out, errors) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done:
                continue
            del running[k]
            if os.WIFSIGNALED(status):  # died at its chosen point: start it again
                assert os.WTERMSIG(status) == signal.SIGKILL
                fleet.self_kills += 1
                lives[k] += 1
                running[k] = fleet.spawn(queue, k, lives[k], None)
                continue
            assert os.WEXITSTATUS(status) == 0, errors.read_text() if errors.exists() else ""
            fleet.collect(out)
        if running and killed < kills and time.monotonic() >= next_kill:
            k = fleet.chance.choice(sorted(running))
            pid, _, errors = running[k]
            os.kill(pid, signal.SIGKILL)  # wherever it is: a transaction, or between
            reap(pid, deadline, errors)
            killed += 1
            lives[k] += 1
            running[k] = fleet.spawn(queue, k, lives[k], None)
            next_kill = time.monotonic() + fleet.chance.uniform(0.01, 0.06)
        if time.monotonic() > deadline:
            for pid, _, errors in running.values():
                reap(pid, 0, errors)
        time.sleep(0.002)
    return killed, fleet.read_replies()


def summary(fleet: Fleet, label: str, started: float, replies: int, killed: int = 0) -> str:
    return (f"{label}: {len(fleet.sent)} messages from {len(fleet.peers)} peers, "
            f"{WORKERS} workers, {fleet.lives} worker lives, {killed} kills and "
            f"{fleet.self_kills} self-kills, {replies} "
            f"replies, retries {fleet.retries}, {time.monotonic() - started:.1f} s")


@pytest.mark.parametrize("lock_timeout", [0.0, 2.0])
def test_workers_share_a_queue_exactly_once_without_reusing_a_key(
        pg: Database, tmp_path: Path, lock_timeout: float) -> None:
    """With a long lock timeout workers wait for each other; with none
    (0: no wait) they often fail with StoreBusy and retry."""
    started = time.monotonic()
    fleet = Fleet.start(pg, tmp_path)
    fleet.lock_timeout = lock_timeout
    replies = 0
    for number in range(ROUNDS):
        if number or lock_timeout >= 0.1:
            replies += run_round(fleet, number)[1]
            continue
        # First round, no lock wait: a slow worker holds alice for a second,
        # so that the others surely find her busy.
        holder = pg.store()
        slow = holder.transaction()
        slow.__enter__()
        holder.lock(["alice"])

        def release() -> None:
            time.sleep(1.0)
            slow.__exit__(None, None, None)

        replies += run_round(fleet, number, meanwhile=release)[1]
        holder.close()
    assert not fleet.held
    fleet.check_inbox()
    # Nobody was killed: every delivered message got exactly one reply.
    assert replies == len(fleet.sent)
    if lock_timeout < 0.1:
        assert fleet.retries.get("StoreBusy", 0) > 0
    print(summary(fleet, f"fleet, lock_timeout {lock_timeout:g} s", started, replies))


def test_sigkilled_workers_lose_nothing_and_reuse_no_key(pg: Database, tmp_path: Path) -> None:
    started = time.monotonic()
    fleet = Fleet.start(pg, tmp_path)
    fleet.per_peer = 3 * PER_PEER  # rounds long enough for the kills
    replies = killed = 0
    for number in range(ROUNDS):
        k, r = run_round(fleet, number, kills=20)
        killed, replies = killed + k, replies + r
    fleet.check_inbox()
    # A message whose worker died between its commit and the release of
    # its reply has none; every other one has exactly one.
    assert len(fleet.sent) - (fleet.lives - ROUNDS * WORKERS) <= replies <= len(fleet.sent)
    assert fleet.self_kills > 0 and killed >= 20, (fleet.self_kills, killed)
    print(summary(fleet, "SIGKILL", started, replies, killed))


def test_the_server_restarted_under_load(pg: Database, tmp_path: Path) -> None:
    """The server is restarted twice while the workers run (stopped with
    its fast mode: every connection is cut, open transactions roll back,
    and for 0.3 s nobody can connect).  So that the workers are surely in
    the middle of their work, this process first holds the lock of one or
    both long conversations, as a slow worker would, and restarts the server
    once a worker waits for it; the restart releases it with everything
    else."""
    started = time.monotonic()
    fleet = Fleet.start(pg, tmp_path)
    replies = 0

    def restart() -> None:
        # Once a worker waits for a held lock (in the middle of a transaction):
        deadline = time.monotonic() + 20
        with pg.connect() as conn:
            while not conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = "
                                   "'advisory' AND NOT granted").fetchone()[0]:
                assert time.monotonic() < deadline, "no worker waits for the held lock"
                time.sleep(0.01)
        pg.server.restart(down=0.3)

    for number in range(ROUNDS - 1):
        holder = pg.store()
        with pytest.raises(StoreError, match="connection to the database was lost"):
            with holder.transaction():
                holder.lock(["alice", "carol"][:2 - number])
                replies += run_round(fleet, number, meanwhile=restart)[1]
        holder.close()
    replies += run_round(fleet, ROUNDS - 1)[1]
    fleet.check_inbox()
    # A decrypt whose COMMIT was cut off by the restart may have committed:
    # its retry then finds it done (DuplicateMessage) and sends no reply.
    assert len(fleet.sent) - fleet.retries.get("in doubt", 0) <= replies <= len(fleet.sent)
    assert fleet.retries.get("StoreUnavailable", 0) > 0, "no worker saw the restart"
    print(summary(fleet, "restart", started, replies))
