"""How-to: recover a broken session, and tell a forged message from a lost session."""

from signalish import (
    IdentityKeyPair,
    MemoryStore,
    NoSession,
    SessionManager,
    SignalishError,
    SystemRandom,
)
from signalish.recovery import Recovery, RecoveryPolicy

rng = SystemRandom()
now = 1_700_000_000
alice = SessionManager(IdentityKeyPair.generate(rng), MemoryStore())
bob = SessionManager(IdentityKeyPair.generate(rng), MemoryStore())


def fetch_bundle(manager: SessionManager):  # type: ignore[no-untyped-def]
    """Stands in for the server handing out a fresh bundle of ``manager``'s prekeys."""
    with manager.prekeys(now=now) as ring:
        ring.generate_one_time_prekeys(1, rng)
        return ring.issue_bundle()


alice.initiate("bob", fetch_bundle(bob))
bob.decrypt("alice", alice.encrypt("bob", b"hello"), now=now)

# Each side keeps one Recovery: it decides which failures to answer with a
# decryption error message, and what an incoming one may change.
policy = RecoveryPolicy(confirm=2, interval=60)  # the defaults
alice_recovery, bob_recovery = Recovery(alice, policy), Recovery(bob, policy)
sent: dict[int, bytes] = {}  # what Alice sent (plaintext), by timestamp, to resend if asked


def receive(manager: SessionManager, recovery: Recovery, sender: str, data: bytes,
            timestamp: int) -> tuple[bytes | None, bytes | None]:
    """(plaintext, what to send back to ``sender``), as an application does it."""
    try:
        plaintext = manager.decrypt(sender, data, now=now)
    except SignalishError as error:
        # Nothing changed. Recovery answers a lost session (NoSession, a
        # prekey error, a message whose key is gone) at once, an authentication
        # failure only when the next one fails too (one alone is what a forged
        # or damaged message looks like), and never a duplicate, a malformed
        # message or one too far ahead; at most once a minute per sender.
        return None, recovery.failed(sender, data, error, timestamp=timestamp, device_id=1,
                                     now=now)
    recovery.succeeded(sender)
    return plaintext, None


# A forged message (here: one bit flipped by the server) is not answered, and
# the genuine message still decrypts: the session is fine.
sent[1] = b"genuine"
message = alice.encrypt("bob", sent[1])
forged = message[:-1] + bytes((message[-1] ^ 1,))
assert receive(bob, bob_recovery, "alice", forged, 1) == (None, None)
assert receive(bob, bob_recovery, "alice", message, 1) == (b"genuine", None)

# Bob loses the session (say, he reinstalled and kept his identity and prekeys).
bob.delete_sessions("alice")
sent[2] = b"lost"
plaintext, answer = receive(bob, bob_recovery, "alice", alice.encrypt("bob", sent[2]), 2)
assert plaintext is None and answer is not None  # Bob sends this to Alice, unencrypted

# Alice acts on it only if it names the ratchet key her current session sends
# on: then she archives that session, starts a new one and resends. A forged
# or replayed error message about an older key changes nothing.
if alice_recovery.received("bob", answer, now=now):
    try:
        alice.encrypt("bob", b"")
    except NoSession:
        pass  # archived: nothing is sent on the broken session any more
    alice.initiate("bob", fetch_bundle(bob))
    resent = alice.encrypt("bob", sent[2])  # the lost message, encrypted afresh
    # (the timestamp to look up is in the error message: see DecryptionErrorMessage)
    assert receive(bob, bob_recovery, "alice", resent, 3) == (sent[2], None)

# Messages that were in flight on the archived session still decrypt.
# archive_session() does the same by hand, for an application that wants a
# new session for its own reasons (a user's "reset session" button).
assert alice.archive_session("bob")
assert not alice.has_session("bob", current=True)
alice.initiate("bob", fetch_bundle(bob))
assert bob.decrypt("alice", alice.encrypt("bob", b"new again"), now=now) == b"new again"
