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
from signalish._storage import save_ring


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
        save_ring(store, ring, {})  # as rows, as SessionManager.prekeys writes them
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


def legacy_check(table: str, key: str, value: bytes) -> bytes:
    """The 16-byte check SQLiteStore appends to every row value."""
    import hashlib
    return hashlib.sha256(b"signalish row\x00" + table.encode() + b"\x00" + key.encode()
                          + b"\x00" + value).digest()[:16]


def legacy_file(path: Path, *, sessions: dict[str, bytes] | None = None,
                prekeys: bytes | None = None, identities: dict[str, bytes] | None = None,
                local: dict[str, bytes] | None = None, generation: int | None = 0) -> None:
    """A SQLite file as releases before the row layout wrote it, built by hand:
    one ``sessions`` row per address holding the whole record, one
    ``prekeys`` row (id 1) holding the whole ring; every value followed by
    its row check.  ``generation`` None leaves out the ``meta`` table (the
    releases before it)."""
    import sqlite3
    db = sqlite3.connect(str(path), isolation_level=None)
    try:
        db.execute("BEGIN")
        db.execute("CREATE TABLE identities (address TEXT PRIMARY KEY, key BLOB NOT NULL)")
        db.execute("CREATE TABLE prekeys (id INTEGER PRIMARY KEY CHECK (id = 1), "
                   "data BLOB NOT NULL)")
        db.execute("CREATE TABLE sessions (address TEXT PRIMARY KEY, data BLOB NOT NULL)")
        db.execute("CREATE TABLE local (name TEXT PRIMARY KEY, data BLOB NOT NULL)")
        if generation is not None:
            db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            db.execute("INSERT INTO meta VALUES ('generation', ?)", (generation,))
        for address, key in (identities or {}).items():
            db.execute("INSERT INTO identities VALUES (?, ?)",
                       (address, key + legacy_check("identities", address, key)))
        if prekeys is not None:
            db.execute("INSERT INTO prekeys VALUES (1, ?)",
                       (prekeys + legacy_check("prekeys", "1", prekeys),))
        for address, data in (sessions or {}).items():
            db.execute("INSERT INTO sessions VALUES (?, ?)",
                       (address, data + legacy_check("sessions", address, data)))
        for name, data in (local or {}).items():
            db.execute("INSERT INTO local VALUES (?, ?)",
                       (name, data + legacy_check("local", name, data)))
        db.execute("COMMIT")
    finally:
        db.close()
