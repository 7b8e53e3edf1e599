"""SPQR: libsignal_v4 sessions with the post-quantum ratchet turned on."""

from dataclasses import replace

from signalish import (
    LIBSIGNAL_V4,
    IdentityKeyPair,
    MemoryStore,
    SessionManager,
    SessionOptions,
    SystemRandom,
)
from signalish.errors import AuthenticationError

rng = SystemRandom()
now = 1_700_000_000


def party(registration_id: int, pq_ratchet: bool) -> SessionManager:
    """A libsignal_v4 party with libsignal's limits, with or without SPQR."""
    options = replace(SessionOptions.libsignal(registration_id), pq_ratchet=pq_ratchet)
    manager = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), LIBSIGNAL_V4,
                             options=options)
    with manager.prekeys(now=now) as ring:
        ring.generate_one_time_prekeys(5, rng)
        ring.generate_kem_prekeys(5, rng, now=now)  # version 4 needs Kyber prekeys
    return manager


alice, bob = party(1111, pq_ratchet=True), party(2222, pq_ratchet=True)
with bob.prekeys(now=now) as ring:
    alice.initiate("bob", ring.issue_bundle())

# Nothing else changes for the application.  Alternating messages complete an
# SPQR epoch (a fresh ML-KEM-768 secret, mixed into every later message key)
# about every 87 messages, so these 300 complete three.
for i in range(150):
    assert bob.decrypt("alice", alice.encrypt("bob", b"ping %d" % i), now=now) == b"ping %d" % i
    assert alice.decrypt("bob", bob.encrypt("alice", b"pong %d" % i), now=now) == b"pong %d" % i

# Both sides must run SPQR: a party without it cannot open a keyed message.
carol = party(3333, pq_ratchet=False)
with carol.prekeys(now=now) as ring:
    alice.initiate("carol", ring.issue_bundle())
try:
    carol.decrypt("alice", alice.encrypt("carol", b"hello"), now=now)
except AuthenticationError:
    pass  # refused, and Carol's store is unchanged
else:
    raise AssertionError("a message keyed with SPQR opened without it")
