"""More than max_skip messages lost at the end of a sending chain, then a DH
step (finding 10: "a session can wedge for good").

A sends A2 #0 (delivered), then A2 #1..#25,002, all lost, then takes a DH
step on B's reply and sends on A3.  A3 #0 announces a previous chain of
25,003 messages, of which B received one: its last message, #25,002, lies
one beyond the farthest a message on a current chain may reach (Nr +
max_skip = #25,001, with libsignal's MAX_FORWARD_JUMPS of 25,000 as
``SessionOptions.libsignal``'s max_skip).  Every later message repeats that
previous-chain length, so refusing the step (TooFarAhead) would refuse
everything from then on.  signalish must instead take the step and give up
the unreachable tail of A2: A2 #1..#25,001 stay reachable (their keys
derived, the newest kept within max_stored_keys), A2 #25,002 is refused as
MessageKeyEvicted.

The two directions:

* libsignal sends, signalish receives (the case of the finding);
* signalish sends the lost messages, libsignal receives: what libsignal does.
  libsignal 0.72.1 (observed when this was written, and asserted below so a
  change shows): it takes the DH step at once, deriving nothing of the
  previous chain; a late message of that chain is derived when it arrives,
  allowed up to 25,000 past the next one expected on it: with nothing of A2
  after #0 delivered that is #25,001, as far as signalish reaches (in an
  earlier run, A2 #25,002 was then refused, "decryption failed": seen, not
  asserted); below, #1 arrives first, which moves that limit to #25,002.
  It keeps the 2,000 newest skipped keys and refuses older ones as "message
  with old counter".  That late derivation of 25,000 keys takes libsignal
  several seconds.
"""

from __future__ import annotations

import pytest

from helpers import snapshot
from libsignal_peer import LibsignalPeer
from signalish.errors import MessageKeyEvicted, TooFarAhead
from test_libsignal import (
    ALICE_REG,
    BOB_REG,
    bundle_fields,
    bundle_from_libsignal,
    from_libsignal,
    signalish_party,
    to_libsignal,
)

MAX_SKIP = 25_000
LOST = MAX_SKIP + 2  # A2 #1..#25,002, never delivered


def test_libsignal_sender_loses_more_than_max_skip(libsignal: LibsignalPeer) -> None:
    """A = libsignal, B = signalish: B takes A's DH step despite the gap."""
    libsignal.ok("init", registration_id=ALICE_REG)
    bob, ring = signalish_party(b"gap-bob", BOB_REG)
    assert bob.options.limits.max_skip == MAX_SKIP
    libsignal.ok("process_bundle", address="bob", **bundle_fields(ring.issue_bundle()))

    _, a1 = from_libsignal(libsignal, "a1-0", to="bob")
    assert bob.decrypt("alice", a1, now=1) == b"a1-0"
    assert to_libsignal(libsignal, bob, bob.encrypt("alice", b"b1-0"), sender="bob") == "b1-0"
    _, a2 = from_libsignal(libsignal, "a2-0", to="bob")      # A's DH step: chain A2
    assert bob.decrypt("alice", a2, now=2) == b"a2-0"
    b2 = bob.encrypt("alice", b"b2-0")                        # B's new ratchet key
    # A2 #1..#25,002, never delivered; keep the last two (#25,001 and #25,002).
    # Bulk message i is A2 #i+1, its plaintext "a2-<i>".
    bulk = libsignal.ok("encrypt_bulk", address="bob", text="a2-", count=LOST,
                        keep=[LOST - 2, LOST - 1])
    lost = {m["index"] + 1: bytes.fromhex(m["body"]) for m in bulk["messages"]}
    assert sorted(lost) == [LOST - 1, LOST]
    assert to_libsignal(libsignal, bob, b2, sender="bob") == "b2-0"   # A's DH step: A3
    a3 = [from_libsignal(libsignal, f"a3-{i}", to="bob")[1] for i in range(5)]

    try:
        first = bob.decrypt("alice", a3[0], now=3)
    except TooFarAhead as error:
        pytest.fail(f"the session is wedged (finding 10): A3 #0 refused with TooFarAhead: {error}")
    assert first == b"a3-0"
    for i in (1, 3, 2, 4):                                    # one out of order
        assert bob.decrypt("alice", a3[i], now=3) == f"a3-{i}".encode()

    # The unreachable tail: refused as evicted, not as a forgery, and nothing changes.
    before = snapshot(bob.store)
    with pytest.raises(MessageKeyEvicted):
        bob.decrypt("alice", lost[LOST], now=4)
    assert snapshot(bob.store) == before
    # The last reachable message (Nr + max_skip) is not lost.
    assert bob.decrypt("alice", lost[LOST - 1], now=4) == f"a2-{LOST - 2}".encode()
    before = snapshot(bob.store)
    with pytest.raises(MessageKeyEvicted):
        bob.decrypt("alice", lost[LOST], now=4)
    assert snapshot(bob.store) == before

    # The session goes on, both ways.
    assert to_libsignal(libsignal, bob, bob.encrypt("alice", b"b3-0"), sender="bob") == "b3-0"
    _, a4 = from_libsignal(libsignal, "a4-0", to="bob")
    assert bob.decrypt("alice", a4, now=5) == b"a4-0"


def test_signalish_sender_loses_more_than_max_skip(libsignal: LibsignalPeer) -> None:
    """A = signalish, B = libsignal: the same gap, libsignal receiving."""
    libsignal.ok("init", registration_id=BOB_REG)
    alice, _ = signalish_party(b"gap-alice", ALICE_REG)
    alice.initiate("bob", bundle_from_libsignal(
        libsignal.ok("make_bundle", registration_id=BOB_REG, signed_prekey_id=1, prekey_id=2)))

    assert to_libsignal(libsignal, alice, alice.encrypt("bob", b"a1-0")) == "a1-0"
    _, b1 = from_libsignal(libsignal, "b1-0")
    assert alice.decrypt("bob", b1, now=1) == b"b1-0"
    assert to_libsignal(libsignal, alice, alice.encrypt("bob", b"a2-0")) == "a2-0"
    _, b2 = from_libsignal(libsignal, "b2-0")
    lost = {}
    for n in range(1, LOST + 1):
        message = alice.encrypt("bob", b"a2-%d" % n)
        if n in (1, 2, LOST - 1, LOST):
            lost[n] = message
    assert alice.decrypt("bob", b2, now=2) == b"b2-0"       # A3 from here on
    a3 = [alice.encrypt("bob", b"a3-%d" % i) for i in range(5)]

    for i in (0, 1, 3, 2, 4):
        assert to_libsignal(libsignal, alice, a3[i]) == f"a3-{i}"

    def late(n: int) -> dict[str, object]:
        return libsignal("decrypt", address="alice", type=2, body=lost[n].hex())

    # What libsignal does with the late A2 messages (see the module docstring).
    assert late(1) == {"ok": True, "plaintext": b"a2-1".hex()}
    # #1 arrived first, so #25,002 is within 25,000 of the next expected.
    assert late(LOST) == {"ok": True, "plaintext": (b"a2-%d" % LOST).hex()}
    assert late(LOST - 1) == {"ok": True, "plaintext": (b"a2-%d" % (LOST - 1)).hex()}
    refused = late(2)
    assert not refused["ok"] and "old counter" in str(refused["error"]), refused

    # The session goes on, both ways.
    _, b3 = from_libsignal(libsignal, "b3-0")
    assert alice.decrypt("bob", b3, now=3) == b"b3-0"
    assert to_libsignal(libsignal, alice, alice.encrypt("bob", b"a4-0")) == "a4-0"
