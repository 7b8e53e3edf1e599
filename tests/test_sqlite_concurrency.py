"""SQLiteStore under contention, shared by processes, and rolled back.

* A write lock held elsewhere makes a call raise :class:`StoreBusy` after
  ``timeout`` seconds, with nothing written; the same call succeeds later.
* Two processes share Bob's file and decrypt the same queue at once: every
  message is delivered exactly once, and no reply reuses a message key.
* The generation number: counted per writing transaction, and an older file
  (under an open store, or older than ``min_generation`` at open) raises
  :class:`StoreRolledBack`.

Child processes are forked (POSIX only) and open their own store after the
fork; the parent holds no connection to the file while forking.
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sqlite_helpers import fork, legacy_file, sqlite_bob

from signalish import IdentityKeyPair, SQLiteStore, SessionManager, StoreError
from signalish.errors import (
    CorruptState,
    DuplicateMessage,
    InvalidArgument,
    StoreBusy,
    StoreRolledBack,
)
from signalish._message import PlainFrame, parse

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

NOW = 10


# --- helpers -------------------------------------------------------------------


def setup_bob(path: Path, seed: bytes = b"concurrency") -> tuple[SessionManager, IdentityKeyPair]:
    """Bob in SQLite at ``path`` (one writing transaction), Alice in memory."""
    alice, bob, _ = sqlite_bob(path, seed)
    return alice, bob


def dump(path: Path) -> list[str]:
    """Every row of the file, read through a fresh connection."""
    db = sqlite3.connect(str(path))
    try:
        return list(db.iterdump())
    finally:
        db.close()


def header(message: bytes) -> tuple[bytes, int]:
    """(ratchet key, N) of a native Message, by signalish's own parser."""
    frame = parse(message, 1 << 20)
    assert isinstance(frame, PlainFrame), "replies from a responder are plain Messages"
    return frame.ratchet_key, frame.n




def wait(pid: int, deadline: float, errors: Path) -> None:
    """Reap ``pid``; a child still running at ``deadline`` is a deadlock."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("child process did not finish: deadlock?")
        time.sleep(0.005)
    text = errors.read_text() if errors.exists() else ""
    assert os.waitstatus_to_exitcode(status) == 0, text


class LockHolder:
    """Holds the file's write lock (BEGIN IMMEDIATE) from another connection,
    in this process or in a forked one.  The process is forked at once, before
    this process opens the file (SQLite connections must not cross a fork);
    ``with holder.locked():`` then takes and releases the lock on command."""

    def __init__(self, path: Path, where: str, tmp: Path) -> None:
        self.path, self.where, self.errors = path, where, tmp / "holder.err"
        self.db: sqlite3.Connection | None = None
        self.pid = 0
        if where == "process":
            command_r, self.command_w = os.pipe()
            self.reply_r, reply_w = os.pipe()

            def serve() -> None:
                os.close(self.command_w)
                os.close(self.reply_r)
                db = sqlite3.connect(str(path), isolation_level=None)
                while (command := os.read(command_r, 1)) in (b"L", b"U"):
                    db.execute("BEGIN IMMEDIATE" if command == b"L" else "ROLLBACK")
                    os.write(reply_w, command)
                db.close()

            self.pid = fork(serve, self.errors)
            os.close(command_r)
            os.close(reply_w)

    def _tell(self, command: bytes) -> None:
        os.write(self.command_w, command)
        assert os.read(self.reply_r, 1) == command, "lock holder failed"

    @contextmanager
    def locked(self) -> Iterator[None]:
        if self.where == "process":
            self._tell(b"L")
        else:
            self.db = sqlite3.connect(str(self.path), isolation_level=None)
            self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            if self.where == "process":
                self._tell(b"U")
            else:
                assert self.db is not None
                self.db.execute("ROLLBACK")
                self.db.close()

    def stop(self) -> None:
        if self.pid:
            os.write(self.command_w, b"Q")
            os.close(self.command_w)
            os.close(self.reply_r)
            wait(self.pid, time.monotonic() + 30, self.errors)
            self.pid = 0


def busy(call: Callable[[], object], timeout: float) -> StoreBusy:
    start = time.monotonic()
    with pytest.raises(StoreBusy) as caught:
        call()
    elapsed = time.monotonic() - start
    assert timeout * 0.9 <= elapsed < timeout + 5, elapsed
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    return caught.value


# --- (a) a lock held elsewhere ---------------------------------------------------


@pytest.mark.parametrize("where", ["connection", "process"])
def test_lock_held_elsewhere_raises_store_busy_and_writes_nothing(
        tmp_path: Path, where: str) -> None:
    path = tmp_path / "bob.db"
    alice, bob = setup_bob(path)
    first, second = alice.encrypt("bob", b"first"), alice.encrypt("bob", b"second")
    holder = LockHolder(path, where, tmp_path)
    try:
        with holder.locked():
            # Opening needs no write lock (the file has its tables already).
            store = SQLiteStore(path, timeout=0.2)
        manager = SessionManager(bob, store)
        delivered: list[bytes] = []

        def deliver(plaintext: bytes) -> None:
            delivered.append(plaintext)
            store.save_local("inbox", plaintext)

        before, generation = dump(path), store.generation
        with holder.locked():
            # The PreKeyMessage that would create the session and use a prekey.
            error = busy(lambda: manager.decrypt("alice", first, now=NOW, deliver=deliver), 0.2)
            assert "first" not in str(error) and "alice" not in str(error)
        assert dump(path) == before and store.generation == generation and not delivered
        assert store.load_session("alice") is None

        assert manager.decrypt("alice", first, now=NOW, deliver=deliver) == b"first"
        before, generation = dump(path), store.generation
        with holder.locked():
            busy(lambda: manager.decrypt("alice", second, now=NOW, deliver=deliver), 0.2)
            busy(lambda: manager.encrypt("alice", b"reply"), 0.2)
            busy(lambda: manager.trust_identity("carol", bob.public), 0.2)
        assert dump(path) == before and store.generation == generation
        assert delivered == [b"first"]

        # Released: the same message decrypts, and replies flow.
        assert manager.decrypt("alice", second, now=NOW, deliver=deliver) == b"second"
        assert store.load_local("inbox") == b"second"
        reply = manager.encrypt("alice", b"reply")
        assert alice.decrypt("bob", reply, now=NOW) == b"reply"
        with pytest.raises(DuplicateMessage):
            manager.decrypt("alice", second, now=NOW)
        store.close()
    finally:
        holder.stop()


def test_timeout_zero_fails_at_once_and_timeout_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    SQLiteStore(path).close()
    with SQLiteStore(path, timeout=0) as store, \
            LockHolder(path, "connection", tmp_path).locked():
        start = time.monotonic()
        with pytest.raises(StoreBusy):
            with store.transaction():
                pytest.fail("the body must not run")
        assert time.monotonic() - start < 0.5
    for bad in (-1, float("nan"), float("inf"), "1", True):
        with pytest.raises(InvalidArgument):
            SQLiteStore(path, timeout=bad)  # type: ignore[arg-type]
    for bad_generation in (-1, 2**63, 1.0, True):
        with pytest.raises(InvalidArgument):
            SQLiteStore(path, min_generation=bad_generation)  # type: ignore[arg-type]


class FailingConnection:
    """Wraps the store's connection; raises ``error`` on the first statement
    that starts with ``prefix``."""

    def __init__(self, db: sqlite3.Connection, prefix: str, error: sqlite3.Error) -> None:
        self.db, self.prefix, self.error = db, prefix, error

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        if self.error is not None and sql.startswith(self.prefix):
            error, self.error = self.error, None  # type: ignore[assignment]
            raise error
        return self.db.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def test_busy_at_commit_rolls_back_and_other_errors_are_store_errors(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    with SQLiteStore(path) as store:
        real = store._db
        store._db = FailingConnection(real, "COMMIT",  # type: ignore[assignment]
                                      sqlite3.OperationalError("database is locked"))
        with pytest.raises(StoreBusy):
            with store.transaction():
                store.save_local("a", b"secret value")
        assert not real.in_transaction and store.load_local("a") is None
        assert store.generation == 0

        store._db = FailingConnection(real, "INSERT OR REPLACE INTO local",  # type: ignore[assignment]
                                      sqlite3.DatabaseError("disk I/O error"))
        with pytest.raises(StoreError) as caught:
            with store.transaction():
                try:
                    store.save_local("a", b"secret value")
                except StoreError:
                    pass  # swallowed: the transaction must still not commit
        assert type(caught.value) is StoreError
        assert isinstance(caught.value.__cause__, StoreError)
        assert "secret" not in str(caught.value)
        assert store.load_local("a") is None and store.generation == 0
        store._db = real
        with store.transaction():
            store.save_local("a", b"ok")
        assert store.load_local("a") == b"ok" and store.generation == 1


def test_not_a_database_is_a_store_error_without_its_content(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"top secret plaintext " * 200)
    with pytest.raises(StoreError) as caught:
        SQLiteStore(path)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
    assert "secret" not in str(caught.value)
    with pytest.raises(StoreError):
        SQLiteStore(tmp_path)  # a directory


# --- (b) two processes, one file ---------------------------------------------------


def worker(path: Path, name: str, queue: list[bytes], order: list[int], timeout: float,
           start_fd: int, out: Path, seed: int) -> None:
    """Decrypt every message of ``queue`` in ``order``, replying to each one
    this process delivered; record what happened in ``out`` (JSON)."""
    os.read(start_fd, 1)
    pause = random.Random(seed)
    store = SQLiteStore(path, timeout=timeout)
    identity = IdentityKeyPair.from_bytes(store.load_local("identity") or b"")
    manager = SessionManager(identity, store)  # SystemRandom: a fresh key per DH step
    delivered: list[int] = []
    duplicates: list[int] = []
    replies: list[str] = []
    busy_count = 0

    def retry(call: Callable[[], bytes]) -> bytes:
        nonlocal busy_count
        while True:
            try:
                return call()
            except StoreBusy:
                busy_count += 1
                time.sleep(pause.random() * 0.002)

    for index in order:
        def deliver(plaintext: bytes) -> None:
            key = "got/" + plaintext.decode()
            if store.load_local(key) is not None:
                store.save_local("double/" + plaintext.decode(), name.encode())
            store.save_local(key, name.encode())

        try:
            plaintext = retry(lambda: manager.decrypt("alice", queue[index], now=NOW,
                                                      deliver=deliver))
        except DuplicateMessage:
            duplicates.append(index)
        else:
            delivered.append(index)
            reply = retry(lambda: manager.encrypt("alice", b"re " + plaintext + b" by " +
                                                  name.encode()))
            replies.append(reply.hex())
        time.sleep(pause.random() * 0.003)  # let the other process in
    store.close()
    out.write_text(json.dumps({"delivered": delivered, "duplicates": duplicates,
                               "replies": replies, "busy": busy_count}))


@pytest.mark.parametrize("timeout", [0.02, 10.0])
def test_two_processes_share_one_file(tmp_path: Path, timeout: float) -> None:
    path = tmp_path / "bob.db"
    alice, bob = setup_bob(path)
    shuffle = random.Random(1234)
    seen_headers: set[tuple[bytes, int]] = set()
    sent = 0
    held: list[tuple[int, bytes]] = []  # (round to deliver in, message)
    total_busy = 0
    per_process = [0, 0]
    rounds = 4
    for round_number in range(rounds):
        # Alice's messages for this round: on her newest chain (a DH step after
        # she read Bob's replies), plus some held back from earlier chains.
        fresh = []
        for _ in range(25):
            fresh.append(alice.encrypt("bob", f"m{sent}".encode()))
            sent += 1
        queue: list[bytes] = []
        for message in fresh:
            if round_number < rounds - 1 and shuffle.random() < 0.2:
                held.append((round_number + shuffle.choice((1, 2)), message))
            else:
                queue.append(message)
        due = [m for r, m in held if r <= round_number or round_number == rounds - 1]
        held = [(r, m) for r, m in held if not (r <= round_number or round_number == rounds - 1)]
        queue.extend(due)
        if shuffle.random() < 0.5:
            shuffle.shuffle(queue)
        orders = [list(range(len(queue))), shuffle.sample(range(len(queue)), len(queue))]

        start_r, start_w = os.pipe()
        pids = []
        for k, order in enumerate(orders):
            out = tmp_path / f"r{round_number}-{k}.json"
            target = functools.partial(worker, path, f"p{k}", queue, order, timeout, start_r,
                                       out, round_number * 2 + k)
            pids.append((fork(target, tmp_path / f"r{round_number}-{k}.err"), k))
        os.close(start_r)
        os.write(start_w, b"go")
        os.close(start_w)
        deadline = time.monotonic() + 60
        for pid, k in pids:
            wait(pid, deadline, tmp_path / f"r{round_number}-{k}.err")
        results = [json.loads((tmp_path / f"r{round_number}-{k}.json").read_text())
                   for k in range(2)]

        # Exactly once: each process tried everything; what one delivered the
        # other found taken (DuplicateMessage).
        got = [set(r["delivered"]) for r in results]
        per_process = [n + len(g) for n, g in zip(per_process, got)]
        assert got[0].isdisjoint(got[1])
        assert got[0] | got[1] == set(range(len(queue)))
        for r in results:
            assert sorted(r["delivered"] + r["duplicates"]) == list(range(len(queue)))
            total_busy += r["busy"]

        # Every reply decrypts at Alice exactly once; no two share a header.
        replies = [bytes.fromhex(h) for r in results for h in r["replies"]]
        assert len(replies) == len(queue)
        shuffle.shuffle(replies)
        for reply in replies:
            key = header(reply)
            assert key not in seen_headers, "two replies share a message key"
            seen_headers.add(key)
            assert alice.decrypt("bob", reply, now=NOW).startswith(b"re m")
            with pytest.raises(DuplicateMessage):
                alice.decrypt("bob", reply, now=NOW)

    assert not held
    assert min(per_process) > 0, per_process  # both really took part
    with SQLiteStore(path) as store:
        for i in range(sent):
            assert store.load_local(f"got/m{i}") in (b"p0", b"p1"), i
            assert store.load_local(f"double/m{i}") is None, i
    print(f"timeout={timeout}: {sent} messages, {len(seen_headers)} replies, "
          f"delivered per process {per_process}, {total_busy} StoreBusy retries")


# --- (c) the generation number --------------------------------------------------------


def meta_generation(path: Path) -> int | None:
    db = sqlite3.connect(str(path))
    try:
        row = db.execute("SELECT value FROM meta WHERE name = 'generation'").fetchone()
        return None if row is None else int(row[0])
    finally:
        db.close()


def test_generation_counts_writing_transactions_only(tmp_path: Path) -> None:
    path = tmp_path / "bob.db"
    alice, bob = setup_bob(path)  # one writing transaction
    with SQLiteStore(path) as store, SQLiteStore(path) as other:
        assert store.generation == other.generation == meta_generation(path) == 1
        with store.transaction():
            store.load_prekeys()
        assert store.generation == 1
        manager = SessionManager(bob, store)
        manager.has_session("alice")
        message = alice.encrypt("bob", b"hi")
        manager.decrypt("alice", message, now=NOW, deliver=lambda p: store.save_local("in", p))
        assert store.generation == meta_generation(path) == 2  # one transaction, many rows
        with pytest.raises(DuplicateMessage):
            manager.decrypt("alice", message, now=NOW)
        assert store.generation == 2
        with pytest.raises(ZeroDivisionError):
            with store.transaction():
                store.save_local("x", b"y")
                1 / 0
        assert store.generation == meta_generation(path) == 2
        manager.encrypt("alice", b"reply")
        assert store.generation == 3
        with store.transaction():
            store.delete_session("nobody")  # deletes no row: nothing written
            store.delete_session("alice", b"s" + bytes(32))
            store.delete_prekeys(b"o\xff\xff\xff\xff")
        assert store.generation == meta_generation(path) == 3
        # The other store learns the generation at its next transaction.
        assert other.generation == 1
        with other.transaction():
            pass
        assert other.generation == 3
        with other.transaction():
            other.save_local("x", b"z")
        assert other.generation == 4
        with store.transaction():
            assert store.generation == 4
    with SQLiteStore(path) as store:
        assert store.generation == 4


def snapshot(path: Path, to: Path) -> None:
    """A consistent copy of a live database (SQLite's backup API)."""
    source, target = sqlite3.connect(str(path)), sqlite3.connect(str(to))
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def test_older_copy_under_an_open_store_raises_store_rolled_back(tmp_path: Path) -> None:
    path = tmp_path / "bob.db"
    alice, bob = setup_bob(path)
    store = SQLiteStore(path)
    manager = SessionManager(bob, store)
    manager.decrypt("alice", alice.encrypt("bob", b"one"), now=NOW)
    snapshot(path, tmp_path / "old.db")
    old_generation = store.generation
    for text in (b"two", b"three"):
        manager.decrypt("alice", alice.encrypt("bob", text), now=NOW)
    manager.encrypt("alice", b"reply")
    seen = store.generation
    assert seen == old_generation + 3

    # The older copy is written over the live file (through SQLite, as a
    # restore from backup would; see SQLiteStore's docstring for byte copies).
    snapshot(tmp_path / "old.db", path)
    restored = dump(path)
    message = alice.encrypt("bob", b"four")
    for call in (lambda: manager.decrypt("alice", message, now=NOW),
                 lambda: manager.encrypt("alice", b"would reuse a key"),
                 lambda: manager.trust_identity("carol", bob.public)):
        with pytest.raises(StoreRolledBack) as caught:
            call()
        assert str(seen) in str(caught.value)
    assert dump(path) == restored and store.generation == seen
    store.close()

    # A fresh store cannot tell, unless the application recorded the generation.
    with SQLiteStore(path) as fresh:
        assert fresh.generation == old_generation
    with pytest.raises(StoreRolledBack):
        SQLiteStore(path, min_generation=seen)


def test_file_replaced_under_an_open_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bob.db"
    with SQLiteStore(path) as store:
        with store.transaction():
            store.save_local("a", b"1")
        snapshot(path, tmp_path / "old.db")
        with store.transaction():
            store.save_local("a", b"2")
        # An older copy renamed over the path: the store's connection still
        # has the unlinked file open, so its writes would be lost.
        shutil.copyfile(tmp_path / "old.db", tmp_path / "incoming.db")
        os.replace(tmp_path / "incoming.db", path)
        for _ in range(2):
            with pytest.raises(StoreError, match="replaced or moved"):
                with store.transaction():
                    pytest.fail("the body must not run")
        assert store.generation == 2


def test_min_generation_at_open(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    with SQLiteStore(path) as store, store.transaction():
        store.save_local("a", b"1")
    shutil.copyfile(path, tmp_path / "old.db")  # closed: a plain copy is whole
    with SQLiteStore(path) as store:
        for value in (b"2", b"3"):
            with store.transaction():
                store.save_local("a", value)
        recorded = store.generation
    assert recorded == 3
    with SQLiteStore(path, min_generation=recorded) as store:
        assert store.load_local("a") == b"3"
    SQLiteStore(path, min_generation=0).close()
    with pytest.raises(StoreRolledBack):
        SQLiteStore(path, min_generation=recorded + 1)

    shutil.copyfile(tmp_path / "old.db", path)  # an old copy brought back while closed
    for name in ("x.db-wal", "x.db-shm"):
        assert not (tmp_path / name).exists()
    with pytest.raises(StoreRolledBack) as caught:
        SQLiteStore(path, min_generation=recorded)
    assert "1" in str(caught.value) and "3" in str(caught.value)
    with SQLiteStore(path) as store:  # without the record, nothing to compare with
        assert store.generation == 1 and store.load_local("a") == b"1"


def make_legacy(path: Path) -> None:
    """A file as the release before the meta table wrote it (also before the
    row layout: a ``sessions`` table of whole records), built by hand."""
    legacy_file(path, sessions={"alice": b"state"}, local={"a": b"legacy"}, generation=None)


def test_legacy_file_without_meta_is_generation_zero_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    make_legacy(path)
    with SQLiteStore(path, min_generation=0) as store:
        assert store.generation == 0
        assert meta_generation(path) == 0  # the table was added on open
        assert store.load_local("a") == b"legacy" and store.load_session("alice") == b"state"
        assert store.session_addresses() == ["alice"] and store.prekey_parts() == []
        with store.transaction():
            store.save_local("a", b"upgraded")
        assert store.generation == meta_generation(path) == 1
    make_legacy(tmp_path / "other.db")
    with pytest.raises(StoreRolledBack):
        SQLiteStore(tmp_path / "other.db", min_generation=1)


def test_meta_table_lost_under_an_open_store(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    with SQLiteStore(path) as fresh, SQLiteStore(path) as used:
        with used.transaction():
            used.save_local("a", b"1")
        assert used.generation == 1 and fresh.generation == 0
        db = sqlite3.connect(str(path), isolation_level=None)
        db.execute("DROP TABLE meta")  # a legacy copy restored under both stores
        db.close()
        with pytest.raises(StoreRolledBack):
            with used.transaction():
                pass
        with fresh.transaction():  # it saw nothing newer: it re-creates the table
            fresh.save_local("a", b"2")
        assert fresh.generation == meta_generation(path) == 1


def test_malformed_generation_is_corrupt_state(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("UPDATE meta SET value = 'x' WHERE name = 'generation'")
    db.close()
    with pytest.raises(CorruptState):
        SQLiteStore(path)


def _bob_on_sqlite(tmp_path: Path, seed: bytes) -> tuple[Any, Any, SQLiteStore]:
    """Alice and Bob talking, and Bob's state copied into a SQLiteStore."""
    from sessions import make_party
    from helpers import copy_rows
    alice, bob = make_party("alice", seed), make_party("bob", seed)
    alice.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"hi"), now=1)
    store = SQLiteStore(tmp_path / "bob.db")
    with store.transaction():
        copy_rows(bob.store, store)
        key = bob.store.get_identity("alice")
        assert key is not None
        store.save_identity("alice", key)
    return alice, bob, store


def test_one_store_used_from_several_threads(tmp_path: Path) -> None:
    """A SQLiteStore made in one thread works from others (asyncio.to_thread
    included), and transactions from two threads at once run one after the
    other: every message of two managers sharing the store is decrypted
    once, none is lost or read twice."""
    import asyncio
    import threading
    from signalish import DeterministicRandom, SessionManager
    from signalish.errors import DuplicateMessage

    alice, bob, store = _bob_on_sqlite(tmp_path, b"threads")
    messages = [alice.manager.encrypt("bob", b"%d" % i) for i in range(40)]

    async def from_a_worker_thread() -> bytes:
        manager = SessionManager(bob.identity, store, rng=DeterministicRandom(b"async"))
        return await asyncio.to_thread(manager.decrypt, "alice", messages[0], now=2)

    assert asyncio.run(from_a_worker_thread()) == b"0"
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def worker(seed: bytes, indexes: range) -> None:
        manager = SessionManager(bob.identity, store, rng=DeterministicRandom(seed))
        for i in indexes:
            try:
                results[i] = manager.decrypt("alice", messages[i], now=3)
            except BaseException as error:  # collected, asserted below
                errors.append(error)

    threads = [threading.Thread(target=worker, args=(b"t1", range(1, 40, 2))),
               threading.Thread(target=worker, args=(b"t2", range(2, 40, 2)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == {i: b"%d" % i for i in range(1, 40)}
    manager = SessionManager(bob.identity, store, rng=DeterministicRandom(b"after"))
    for i in (0, 7, 39):
        with pytest.raises(DuplicateMessage):
            manager.decrypt("alice", messages[i], now=4)
    store.close()


def test_a_commit_by_another_thread_between_a_call_and_its_generation_read(
        tmp_path: Path) -> None:
    """Two managers (one per thread) on one SQLiteStore: another thread's
    whole transaction runs right after this thread's call committed, before
    the call reads the generation it left.  The generation each thread sees
    is its own, so the first manager does not keep its older record: no
    message key is used twice."""
    import threading
    from signalish import DeterministicRandom, SessionManager
    from sessions import message_key_id

    alice, bob, store = _bob_on_sqlite(tmp_path, b"race")
    first = SessionManager(bob.identity, store, rng=DeterministicRandom(b"first"))
    second = SessionManager(bob.identity, store, rng=DeterministicRandom(b"second"))
    first.encrypt("alice", b"warm")  # the first manager caches the record
    real = store.transaction
    armed, out = [True], []

    class CommitThenLetTheOtherThreadRun:
        def __enter__(self) -> None:
            self.inner = real()
            self.inner.__enter__()

        def __exit__(self, *exc: object) -> None:
            self.inner.__exit__(*exc)  # type: ignore[arg-type]
            if armed and threading.current_thread() is threading.main_thread():
                armed.clear()
                other = threading.Thread(target=lambda: out.append(
                    second.encrypt("alice", b"from the other thread")))
                other.start()
                other.join()

    store.transaction = lambda: CommitThenLetTheOtherThreadRun()  # type: ignore[method-assign]
    sent = [first.encrypt("alice", b"one")]
    sent += out
    sent.append(first.encrypt("alice", b"two"))
    ids = [message_key_id(m) for m in sent]
    assert len(sent) == 3 and len(set(ids)) == 3
    assert [alice.manager.decrypt("bob", m, now=2) for m in sent] == [
        b"one", b"from the other thread", b"two"]
    store.close()
