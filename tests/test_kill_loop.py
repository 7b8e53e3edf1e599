"""Crash safety under repeated SIGKILL: a CI-sized kill loop.

Bob works in a child process forked from this one (everything is imported
already, so a restart costs a fork and opening the file).  The child opens
Bob's :class:`SQLiteStore` and works through a queue of Alice's messages:
for each it decrypts with ``deliver=`` recording the plaintext (and the
queue position) in the same transaction, then encrypts a reply and appends
it to a file, fsynced, only after ``encrypt`` returned.  The parent kills
the child with SIGKILL at random moments and starts it again, hundreds of
times, until the queue is done; some runs instead kill themselves at chosen
points (inside the decrypt transaction, between decrypt and encrypt, inside
the encrypt transaction, after encrypt before the reply is written).

Alice lives in the parent (in memory).  Whenever Bob has caught up she
reads his replies and sends the next batch, so every batch is on a new
chain and Bob does a DH ratchet step per batch; some messages are held back
for one or two batches and batches are shuffled, so Bob also decrypts out
of order and across DH steps.

At the end: every message was delivered exactly once (no gap, no double),
no two replies share a header (ratchet key, N), so no message key was used
twice, and Alice decrypted every reply that was written, each once.
"""

from __future__ import annotations

import math
import os
import random
import signal
import time
from pathlib import Path

import pytest

from sqlite_helpers import fork, sqlite_bob

from signalish import IdentityKeyPair, SQLiteStore, SessionManager
from signalish.errors import DuplicateMessage
from signalish._message import PlainFrame, parse

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

MESSAGES = 400
BATCH = 16
SEED = 20260509
TIMER_KILLS = 300  # the parent's SIGKILLs at random moments; afterwards runs finish
SELF_KILL_SHARE = 0.2  # runs that kill themselves at a chosen point instead
SELF_KILL_POINTS = ("deliver", "gap", "encrypt", "append")
NOW = 10


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class DyingStore(SQLiteStore):
    """Kills its process right after writing a row of the session (the first
    one the save writes, so the others are not written yet), before COMMIT,
    when asked to."""

    die_after_save = False

    def save_session(self, address: str, data: bytes, part: bytes = b"") -> None:
        super().save_session(address, data, part)
        if self.die_after_save:
            die()


def complete_lines(path: Path) -> list[bytes]:
    data = path.read_bytes() if path.exists() else b""
    return data[:data.rfind(b"\n") + 1].splitlines()


def bob_runs(path: Path, queue: list[bytes], replies: Path,
             plan: tuple[str, int] | None, progress: int) -> None:
    """One life of Bob's process: resume where the store says, go to the end
    of ``queue`` (or die as ``plan`` says).  Writes a byte to ``progress``
    after each decrypt, for the parent's pacing only."""
    # A reply cut off by a kill is dropped (it was never released).
    data = replies.read_bytes() if replies.exists() else b""
    if not data.endswith(b"\n") and data:
        os.truncate(replies, data.rfind(b"\n") + 1)
    store = DyingStore(path, timeout=30)
    identity = IdentityKeyPair.from_bytes(store.load_local("identity") or b"")
    manager = SessionManager(identity, store)  # SystemRandom: fresh keys after every restart
    cursor = int(store.load_local("cursor") or b"0")
    if cursor:
        # The last message delivered before the restart is refused now.
        try:
            manager.decrypt("alice", queue[cursor - 1], now=NOW)
        except DuplicateMessage:
            pass
        else:
            raise AssertionError(f"message at {cursor - 1} decrypted twice")
    out = os.open(replies, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    for step, position in enumerate(range(cursor, len(queue))):
        def deliver(plaintext: bytes) -> None:
            key = "got/" + plaintext.decode()
            if store.load_local(key) is not None:
                store.save_local("double/" + plaintext.decode(), b"")
            store.save_local(key, str(position).encode())
            store.save_local("cursor", str(position + 1).encode())
            if plan == ("deliver", step):
                die()  # decrypted and written, not committed

        plaintext = manager.decrypt("alice", queue[position], now=NOW, deliver=deliver)
        os.write(progress, b".")
        if plan == ("gap", step):
            die()  # committed, no reply yet
        store.die_after_save = plan == ("encrypt", step)
        reply = manager.encrypt("alice", b"re " + plaintext)
        if plan == ("append", step):
            die()  # encrypted and committed, never released
        os.write(out, reply.hex().encode() + b"\n")
        os.fsync(out)
    os.close(out)
    store.close()




def reap(pid: int, deadline: float) -> int:
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("Bob's process hung")
        time.sleep(0.0005)


def test_repeated_sigkill_loses_nothing_and_reuses_no_key(tmp_path: Path) -> None:
    started = time.monotonic()
    path, replies, errors = tmp_path / "bob.db", tmp_path / "replies", tmp_path / "child.err"
    alice, bob, rng = sqlite_bob(path, b"kill loop")

    chance = random.Random(SEED)
    queue: list[bytes] = []
    held: list[tuple[int, bytes]] = []  # (batch to deliver in, message)
    sent = batches = 0
    headers: set[tuple[bytes, int]] = set()
    answered: set[bytes] = set()
    replies_read = 0

    def alice_reads_replies() -> None:
        nonlocal replies_read
        lines = complete_lines(replies)
        for line in lines[replies_read:]:
            reply = bytes.fromhex(line.decode())
            frame = parse(reply, 1 << 20)
            assert isinstance(frame, PlainFrame)
            key = (frame.ratchet_key, frame.n)
            assert key not in headers, "two replies share a header: a message key was reused"
            headers.add(key)
            text = alice.decrypt("bob", reply, now=NOW)
            assert text.startswith(b"re msg ") and text not in answered
            answered.add(text)
            with pytest.raises(DuplicateMessage):
                alice.decrypt("bob", reply, now=NOW)
        replies_read = len(lines)

    def alice_sends_batch() -> None:
        nonlocal sent, batches, held
        last = sent + BATCH >= MESSAGES
        batch: list[bytes] = []
        for _ in range(min(BATCH, MESSAGES - sent)):
            message = alice.encrypt("bob", f"msg {sent}".encode())
            sent += 1
            if not last and chance.random() < 0.15:
                held.append((batches + chance.choice((1, 2)), message))
            else:
                batch.append(message)
        batch += [m for due, m in held if due <= batches or last]
        held = [(due, m) for due, m in held if not (due <= batches or last)]
        if chance.random() < 0.6:
            chance.shuffle(batch)
        queue.extend(batch)
        batches += 1

    timer_kills = self_kills = drains = decrypted = 0
    delay = 0.005  # upper bound of the random kill moment, adjusted to the machine
    caught_up = True
    while True:
        if caught_up:
            alice_reads_replies()
            if sent == MESSAGES and not held:
                break
            alice_sends_batch()
        plan: tuple[str, int] | None = None
        timer = timer_kills < TIMER_KILLS and chance.random() >= SELF_KILL_SHARE
        if not timer and timer_kills < TIMER_KILLS:
            plan = (chance.choice(SELF_KILL_POINTS), chance.randrange(3))
        if errors.exists():
            errors.unlink()
        progress_r, progress_w = os.pipe()
        pid = fork(lambda: bob_runs(path, queue, replies, plan, progress_w), errors)
        os.close(progress_w)
        if timer:
            time.sleep(chance.uniform(0, delay))
            os.kill(pid, signal.SIGKILL)
        status = reap(pid, time.monotonic() + 30)
        progress = 0
        while chunk := os.read(progress_r, 4096):
            progress += len(chunk)
        os.close(progress_r)
        decrypted += progress
        if os.WIFSIGNALED(status):
            assert os.WTERMSIG(status) == signal.SIGKILL
            caught_up = False
            if timer:
                timer_kills += 1
                # Spread the kills over the whole queue: aim each life at the
                # messages left per kill left (about one or two), so kills land
                # anywhere in start-up, decrypts and replies.
                # (Self-killing runs and clean exits decrypt some too: 0.75.)
                target = 0.75 * (MESSAGES - decrypted) / max(1, TIMER_KILLS - timer_kills)
                step = math.exp(-0.1 * (progress - target))
                delay = min(0.5, max(0.001, delay * min(2.0, max(0.5, step))))
            else:
                self_kills += 1
        else:
            message = errors.read_text() if errors.exists() else ""
            assert os.waitstatus_to_exitcode(status) == 0, message
            caught_up = True
            drains += 1
        assert time.monotonic() - started < 120, "kill loop too slow"

    assert timer_kills >= 200, timer_kills
    assert len(queue) == MESSAGES
    with SQLiteStore(path) as store:
        assert store.load_local("cursor") == str(MESSAGES).encode()
        positions = set()
        for i in range(MESSAGES):
            position = store.load_local(f"got/msg {i}")
            assert position is not None, f"message {i} was never delivered"
            assert store.load_local(f"double/msg {i}") is None, f"message {i} delivered twice"
            positions.add(int(position))
        assert positions == set(range(MESSAGES))
    assert len(headers) == len(answered) == replies_read
    # A message whose reply was lost to a kill has none; all others have one.
    assert MESSAGES - replies_read <= self_kills + timer_kills
    elapsed = time.monotonic() - started
    print(f"kill loop: {MESSAGES} messages in {batches} batches, {timer_kills} timer kills, "
          f"{self_kills} self kills, {drains} clean exits, {replies_read} replies, "
          f"{elapsed:.1f} s")
