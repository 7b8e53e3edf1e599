"""How-to: out-of-order delivery, identity changes, and every decryption error."""

from signalish import (
    NATIVE,
    CannotSend,
    IdentityKeyPair,
    MemoryStore,
    NoSession,
    RatchetLimits,
    SessionManager,
    SessionOptions,
    SystemRandom,
    UntrustedIdentity,
)
from signalish.errors import (
    AuthenticationError,
    DecodeError,
    DuplicateMessage,
    MessageKeyEvicted,
    MessageKeyExpired,
    PreKeyError,
    TooFarAhead,
)

rng = SystemRandom()
now = 1_700_000_000
options = SessionOptions(limits=RatchetLimits(max_skip=100, max_stored_keys=500))
bob = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), NATIVE, options=options)
with bob.prekeys(now=now) as ring:
    ring.generate_one_time_prekeys(5, rng)
    bundle = ring.issue_bundle()
alice = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), options=options)
alice.initiate("bob", bundle)

# Out of order: just decrypt what arrives. Skipped keys are kept within the limits.
first, second, third = (alice.encrypt("bob", m) for m in (b"1", b"2", b"3"))
assert bob.decrypt("alice", third, now=now) == b"3"
assert bob.decrypt("alice", first, now=now) == b"1"
assert bob.decrypt("alice", second, now=now) == b"2"


held: list[tuple[str, bytes]] = []  # messages too far ahead, to try again later


def receive(manager: SessionManager, sender: str, data: bytes) -> bytes | None:
    """What an application does with each outcome. Nothing changed on error."""
    try:
        return manager.decrypt(sender, data, now=now)
    except DuplicateMessage:
        return None  # already shown to the user: drop silently
    except (MessageKeyEvicted, MessageKeyExpired):
        return None  # too old for the window: tell the user a message was lost
    except TooFarAhead:
        # More than max_skip past what arrived: hold it and try again after the
        # messages before it (asking for a resend brings one further ahead still).
        held.append((sender, data))
        return None
    except (AuthenticationError, DecodeError):
        return None  # forged, corrupted or not for us: drop it (and see howto_recovery.py)
    except PreKeyError:
        return None  # an initial message for prekeys we no longer have
    except UntrustedIdentity as changed:
        # Show "safety number changed"; after the user verifies:
        manager.trust_identity(changed.address, changed.received)  # type: ignore[arg-type]
        return manager.decrypt(sender, data, now=now)
    except NoSession:
        return None  # nothing to decrypt with: ask the sender to start over (howto_recovery.py)


assert receive(bob, "alice", first) is None  # a duplicate
assert receive(bob, "alice", b"garbage") is None


def send(manager: SessionManager, to: str, text: bytes, fetch_bundle) -> bytes:  # type: ignore[no-untyped-def]
    """Encrypt, starting a session from a fresh bundle when there is none or
    when the one there cannot send (restored from a backup, exhausted)."""
    try:
        return manager.encrypt(to, text)
    except (NoSession, CannotSend):
        manager.initiate(to, fetch_bundle(to))
        return manager.encrypt(to, text)


def fetch_bundle(address: str):  # type: ignore[no-untyped-def]
    """Stands in for the server: Bob publishes a fresh bundle."""
    with bob.prekeys(now=now) as ring:
        return ring.issue_bundle()


alice.mark_restored(now=now)  # as after restoring a backup: the session only receives
message = send(alice, "bob", b"after the restore", fetch_bundle)
assert bob.decrypt("alice", message, now=now) == b"after the restore"

# A message more than max_skip (100 here) ahead is held, and reads once the gap has filled.
gap = [alice.encrypt("bob", b"%d" % i) for i in range(150)]
assert receive(bob, "alice", gap[-1]) is None and held == [("alice", gap[-1])]
for message in gap[:100]:
    receive(bob, "alice", message)
sender, data = held.pop()
assert receive(bob, sender, data) == b"149"
