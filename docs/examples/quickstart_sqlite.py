"""Quickstart with the SQLite store: state survives a restart."""

import tempfile
from pathlib import Path

from signalish import (
    NATIVE,
    IdentityKeyPair,
    MemoryStore,
    SessionManager,
    SQLiteStore,
    SystemRandom,
)

rng = SystemRandom()
now = 1_700_000_000
path = Path(tempfile.mkdtemp()) / "bob.db"

# First run: Bob sets up, saving his identity beside the protocol state.
with SQLiteStore(path) as store:
    identity = IdentityKeyPair.generate(rng)
    with store.transaction():
        store.save_local("identity", identity.to_bytes())
    with SessionManager(identity, store, NATIVE).prekeys(now=now) as ring:
        ring.generate_one_time_prekeys(10, rng)
        bundle = ring.issue_bundle()

alice = SessionManager(IdentityKeyPair.generate(rng), MemoryStore())
alice.initiate("bob", bundle)
message = alice.encrypt("bob", b"written while Bob's app was closed")

# Later run: Bob's app starts again from the file.
with SQLiteStore(path) as store:
    identity = IdentityKeyPair.from_bytes(store.load_local("identity") or b"")
    bob = SessionManager(identity, store)
    received: list[bytes] = []
    # `deliver` runs inside the transaction that commits the new session state:
    # save the plaintext there and both are committed together.
    bob.decrypt("alice", message, now=now + 3600, deliver=received.append)
    assert received == [b"written while Bob's app was closed"]
