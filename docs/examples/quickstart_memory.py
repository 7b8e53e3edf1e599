"""Quickstart: two parties, in-memory stores, a first message and a reply."""

from signalish import (
    NATIVE,
    IdentityKeyPair,
    MemoryStore,
    PreKeyBundle,
    SessionManager,
    SystemRandom,
)

rng = SystemRandom()
now = 1_700_000_000  # seconds; your clock, passed in: signalish never reads it

# Bob creates an identity and prekeys.  The store owns the private parts:
# change them only inside `prekeys()`, which writes them back in one
# transaction and then closes the ring object, so no stale copy of it can
# ever be saved again.  He publishes the bundle (bytes) on a server.
bob = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), NATIVE)
with bob.prekeys(now=now) as ring:
    ring.generate_one_time_prekeys(100, rng)
    ring.generate_kem_prekeys(20, rng, now=now)
    published = ring.issue_bundle().to_bytes()

# Alice fetches the bundle while Bob is offline and writes first.
alice = SessionManager(IdentityKeyPair.generate(rng), MemoryStore())
alice.initiate("bob", PreKeyBundle.from_bytes(published))
to_bob = alice.encrypt("bob", b"Hi Bob!")

# Your application moves the bytes. Bob reads and replies.
assert bob.decrypt("alice", to_bob, now=now + 60) == b"Hi Bob!"
to_alice = bob.encrypt("alice", b"Hi Alice!")
assert alice.decrypt("bob", to_alice, now=now + 61) == b"Hi Alice!"
