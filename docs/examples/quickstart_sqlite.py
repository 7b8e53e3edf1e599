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
    load_identity_key_pair,
    save_identity_key_pair,
)

rng = SystemRandom()
now = 1_700_000_000
path = Path(tempfile.mkdtemp()) / "bob.db"

# First run: Bob sets up, saving his identity beside the protocol state.
with SQLiteStore(path) as store:
    identity = IdentityKeyPair.generate(rng)
    with store.transaction():
        save_identity_key_pair(store, identity)
    with SessionManager(identity, store, NATIVE).prekeys(now=now) as ring:
        ring.generate_one_time_prekeys(10, rng)
        bundle = ring.issue_bundle()

alice = SessionManager(IdentityKeyPair.generate(rng), MemoryStore())
alice.initiate("bob", bundle)
message = alice.encrypt("bob", b"written while Bob's app was closed")

# Later run: Bob's app starts again from the file.
with SQLiteStore(path) as store:
    identity = load_identity_key_pair(store)
    assert identity is not None
    bob = SessionManager(identity, store)
    received: list[bytes] = []
    # `deliver` runs inside the transaction that commits the new session state:
    # save the plaintext there and both are committed together.
    bob.decrypt("alice", message, now=now + 3600, deliver=received.append)
    assert received == [b"written while Bob's app was closed"]
