"""Shared set-up for the tests that run Bob on a SQLite file, some of them in
forked processes."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from signalish import (
    NATIVE,
    DeterministicRandom,
    IdentityKeyPair,
    MemoryStore,
    PreKeyRing,
    SessionManager,
    SQLiteStore,
)


def sqlite_bob(path: Path, seed: bytes) -> tuple[SessionManager, IdentityKeyPair,
                                                 DeterministicRandom]:
    """Bob's identity and prekeys in SQLite at ``path``, written in one
    transaction; Alice (in memory) has initiated a session with him.  Returns
    Alice's manager, Bob's identity and the random source."""
    rng = DeterministicRandom(seed)
    bob = IdentityKeyPair.generate(rng)
    ring = PreKeyRing.create(bob, NATIVE, rng, now=0)
    ring.generate_one_time_prekeys(3, rng)
    bundle = ring.issue_bundle()  # before saving, so that the issue position is stored
    with SQLiteStore(path) as store, store.transaction():
        store.save_prekeys(ring.to_bytes())
        store.save_local("identity", bob.to_bytes())
    alice = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), rng=rng)
    alice.initiate("bob", bundle)
    return alice, bob, rng


def fork(target: Callable[[], None], errors: Path) -> int:
    """Run ``target`` in a forked child; its traceback goes to ``errors``."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            target()
            code = 0
        except BaseException:
            errors.write_text(traceback.format_exc())
        finally:
            os._exit(code)
    return pid
