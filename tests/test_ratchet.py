"""The Double Ratchet and its skipped-key window.

Every rejection is checked for the right error *and* for an unchanged state
(serialized bytes compared before and after).
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from helpers import load_vectors
from signalish import NATIVE, RatchetLimits, SignalishError
from signalish.errors import AwaitingFirstMessage, CannotSend, NoSession
from signalish.errors import (
    AuthenticationError,
    DuplicateMessage,
    MessageKeyEvicted,
    MessageKeyExpired,
    TooFarAhead,
)
from signalish._primitives import hkdf
from signalish._ratchet import RatchetState, kdf_ck, kdf_rk
from strategies import AD, ratchet_pair, receive, send, snapshot

SIGNAL = load_vectors("third_party/signal_published.json")


def rejects(state: RatchetState, message: bytes, rng, error: type[Exception], **kw) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(state)
    with pytest.raises(error):
        receive(state, message, rng, **kw)
    assert snapshot(state) == before


# --- KDFs against independent values -------------------------------------------


def test_kdf_ck_and_message_keys_match_libsignal_published_values() -> None:
    v = SIGNAL["chain_step"]
    next_ck, seed = kdf_ck(bytes.fromhex(v["chain_key"]))
    assert next_ck.hex() == v["next_chain_key"]
    keys = hkdf(seed, salt=None, info=b"WhisperMessageKeys", length=80)
    assert keys[:32].hex() == v["cipher_key"]
    assert keys[32:64].hex() == v["mac_key"]


def test_kdf_rk_is_hkdf_with_root_key_as_salt() -> None:
    rk, dh = bytes(range(32)), bytes(range(32, 64))
    prk = hmac.new(rk, dh, hashlib.sha256).digest()
    t1 = hmac.new(prk, b"signalish_Ratchet\x01", hashlib.sha256).digest()
    t2 = hmac.new(prk, t1 + b"signalish_Ratchet\x02", hashlib.sha256).digest()
    t3 = hmac.new(prk, t2 + b"signalish_Ratchet\x03", hashlib.sha256).digest()
    assert kdf_rk(NATIVE, rk, dh, False) == (t1, t2, b"")
    assert kdf_rk(NATIVE, rk, dh, True) == (t1, t2, t3)


def test_native_message_layout_decrypts_with_an_independent_aead() -> None:
    """docs/ratchet.md: key = HMAC(mk, "signalish_MessageKey" || 0x01), nonce 0^96,
    AD = session AD || message bytes before the ciphertext."""
    alice, _, _ = ratchet_pair(b"layout")
    assert alice.cks is not None
    mk = hmac.new(alice.cks, b"\x01", hashlib.sha256).digest()
    message = send(alice, b"hello")
    assert message[:2] == b"\x40\x01" and len(message) == 2 + 32 + 12 + 5 + 16
    assert message[2:34] == alice.dhs_public
    key = hmac.new(mk, b"signalish_MessageKey\x01", hashlib.sha256).digest()
    assert AESGCM(key).decrypt(bytes(12), message[46:], AD + message[:46]) == b"hello"


# --- conversations ------------------------------------------------------------------


@pytest.mark.parametrize("he", [False, True])
def test_out_of_order_across_dh_steps(he: bool) -> None:
    alice, bob, rng = ratchet_pair(b"ooo", he)
    a1 = [send(alice, b"a1-%d" % i) for i in range(4)]
    assert receive(bob, a1[2], rng) == b"a1-2"
    b1 = [send(bob, b"b1-%d" % i) for i in range(3)]
    assert receive(alice, b1[1], rng) == b"b1-1"
    a2 = [send(alice, b"a2-%d" % i) for i in range(3)]
    # Bob gets the second chain first, then the late ones of the first chain.
    assert receive(bob, a2[2], rng) == b"a2-2"
    assert receive(bob, a1[3], rng) == b"a1-3"
    assert receive(bob, a1[0], rng) == b"a1-0"
    assert receive(bob, a2[0], rng) == b"a2-0"
    assert receive(alice, b1[0], rng) == b"b1-0"
    assert receive(alice, b1[2], rng) == b"b1-2"
    assert receive(bob, a1[1], rng) == b"a1-1"
    assert receive(bob, a2[1], rng) == b"a2-1"
    assert bob.window.stored == 0 and alice.window.stored == 0


def test_responder_cannot_send_first() -> None:
    _, bob, _ = ratchet_pair(b"bob-first")
    with pytest.raises(AwaitingFirstMessage) as refused:
        send(bob, b"x")
    assert isinstance(refused.value, CannotSend) and not isinstance(refused.value, NoSession)


@pytest.mark.parametrize("he", [False, True])
def test_duplicate_is_rejected_and_changes_nothing(he: bool) -> None:
    alice, bob, rng = ratchet_pair(b"dup", he)
    m = [send(alice, b"%d" % i) for i in range(3)]
    receive(bob, m[0], rng)
    receive(bob, m[2], rng)
    rejects(bob, m[0], rng, DuplicateMessage)
    rejects(bob, m[2], rng, DuplicateMessage)
    assert receive(bob, m[1], rng) == b"1"
    rejects(bob, m[1], rng, DuplicateMessage)
    # Duplicates on a finished chain too.
    receive(alice, send(bob, b"r"), rng)
    receive(bob, send(alice, b"next chain"), rng)
    rejects(bob, m[1], rng, DuplicateMessage)


@pytest.mark.parametrize("he", [False, True])
def test_too_far_ahead(he: bool) -> None:
    limits = RatchetLimits(max_skip=5)
    alice, bob, rng = ratchet_pair(b"far", he)
    m = [send(alice, b"%d" % i) for i in range(8)]
    rejects(bob, m[6], rng, TooFarAhead, limits=limits)  # first message: n > max_skip
    assert receive(bob, m[5], rng, limits=limits) == b"5"
    receive(alice, send(bob, b"r"), rng, limits=limits)
    more = [send(alice, b"x%d" % i) for i in range(7)]
    rejects(bob, more[6], rng, TooFarAhead, limits=limits)
    assert receive(bob, more[5], rng, limits=limits) == b"x5"


@pytest.mark.parametrize("he", [False, True])
def test_previous_chain_tail_beyond_max_skip_is_given_up(he: bool) -> None:
    """A DH step whose PN lies more than max_skip past the chain it closes
    does not wedge the session (every later message repeats that PN): the
    first max_skip missing keys are kept, the unreachable tail is given up
    and its messages, if they ever arrive, are refused as evicted."""
    limits = RatchetLimits(max_skip=5)
    alice, bob, rng = ratchet_pair(b"pn", he)
    receive(bob, send(alice, b"a1"), rng, limits=limits)
    receive(alice, send(bob, b"b1"), rng, limits=limits)   # Alice steps: chain A2
    receive(bob, send(alice, b"a2-0"), rng, limits=limits)  # Bob steps: chain B2
    lost = [send(alice, b"a2-%d" % i) for i in range(1, 8)]  # A2 reaches 8 messages
    receive(alice, send(bob, b"b2"), rng, limits=limits)   # Alice steps again, PN = 8
    a3 = [send(alice, b"a3-%d" % i) for i in range(3)]
    assert receive(bob, a3[1], rng, limits=limits) == b"a3-1"
    assert receive(bob, a3[0], rng, limits=limits) == b"a3-0"
    # A2 #1..#6 are as far as a current chain may reach (Nr + max_skip): kept.
    for i in (5, 0, 2):
        assert receive(bob, lost[i], rng, limits=limits) == b"a2-%d" % (i + 1)
    # A2 #7 was beyond it: given up, refused as evicted, state unchanged.
    rejects(bob, lost[6], rng, MessageKeyEvicted, limits=limits)
    rejects(bob, lost[5], rng, DuplicateMessage, limits=limits)
    assert receive(bob, a3[2], rng, limits=limits) == b"a3-2"


def test_new_chain_counter_beyond_window_still_refused_before_work() -> None:
    limits = RatchetLimits(max_skip=5)
    alice, bob, rng = ratchet_pair(b"pn2")
    receive(bob, send(alice, b"a1"), rng, limits=limits)
    receive(alice, send(bob, b"b1"), rng, limits=limits)
    a2 = [send(alice, b"x") for _ in range(7)]
    rejects(bob, a2[6], rng, TooFarAhead, limits=limits)


@pytest.mark.parametrize("he", [False, True])
def test_eviction_oldest_first(he: bool) -> None:
    limits = RatchetLimits(max_stored_keys=3)
    alice, bob, rng = ratchet_pair(b"evict", he)
    m = [send(alice, b"%d" % i) for i in range(6)]
    assert receive(bob, m[5], rng, limits=limits) == b"5"  # skips 0..4, keeps 2..4
    assert bob.window.stored == 3
    rejects(bob, m[0], rng, MessageKeyEvicted, limits=limits)
    rejects(bob, m[1], rng, MessageKeyEvicted, limits=limits)
    assert receive(bob, m[2], rng, limits=limits) == b"2"
    rejects(bob, m[2], rng, DuplicateMessage, limits=limits)


@pytest.mark.parametrize("he", [False, True])
def test_expiry_by_age(he: bool) -> None:
    limits = RatchetLimits(expire_after_seconds=100)
    alice, bob, rng = ratchet_pair(b"age", he)
    m = [send(alice, b"%d" % i) for i in range(4)]
    receive(bob, m[3], rng, now=1_000, limits=limits)
    assert receive(bob, m[0], rng, now=1_099, limits=limits) == b"0"
    rejects(bob, m[1], rng, MessageKeyExpired, now=1_100, limits=limits)
    # A later successful decryption purges them for good.
    receive(bob, send(alice, b"4"), rng, now=1_200, limits=limits)
    assert bob.window.stored == 0
    rejects(bob, m[2], rng, MessageKeyExpired, now=1_200, limits=limits)


@pytest.mark.parametrize("he", [False, True])
def test_expiry_by_steps_and_chain_cap(he: bool) -> None:
    for limits, error in ((RatchetLimits(expire_after_steps=1), MessageKeyExpired),
                          (RatchetLimits(max_receiving_chains=2), MessageKeyEvicted)):
        alice, bob, rng = ratchet_pair(b"steps", he)
        old = [send(alice, b"%d" % i) for i in range(3)]
        receive(bob, old[2], rng, limits=limits)
        for step in range(12):
            receive(alice, send(bob, b"r%d" % step), rng, limits=limits)
            send(alice, b"never delivered %d" % step)  # leaves a skipped key behind
            receive(bob, send(alice, b"a%d" % step), rng, limits=limits)
            window = bob.window
            assert window.stored == sum(len(c.keys) for c in window.chains)
            assert len(window.forgotten) <= 2 * limits.max_receiving_chains
            if step == 2:
                rejects(bob, old[0], rng, error, limits=limits)
                rejects(bob, old[2], rng, error, limits=limits)
        # Much later the first chain's id has left the bounded list of
        # forgotten chains: its messages are then simply undecryptable.
        rejects(bob, old[0], rng, AuthenticationError, limits=limits)


@pytest.mark.parametrize("he", [False, True])
def test_every_single_bit_flip_is_rejected_without_change(he: bool) -> None:
    alice, bob, rng = ratchet_pair(b"tamper", he)
    receive(bob, send(alice, b"first"), rng)
    receive(alice, send(bob, b"reply"), rng)
    message = send(alice, b"tamper with me")
    before = snapshot(bob)
    for i in range(len(message)):
        for bit in range(8):
            bad = message[:i] + bytes((message[i] ^ (1 << bit),)) + message[i + 1:]
            with pytest.raises(SignalishError):
                receive(bob, bad, rng)
            assert snapshot(bob) == before
    assert receive(bob, message, rng) == b"tamper with me"


def test_forged_message_beyond_chain_end() -> None:
    alice, bob, rng = ratchet_pair(b"end")
    receive(bob, send(alice, b"0"), rng)
    receive(alice, send(bob, b"r"), rng)
    receive(bob, send(alice, b"next step"), rng)  # Alice's first chain ended at PN = 1
    # A message claiming n = 5 on the finished chain: the peer never sent it.
    old_key = bob.window.chains[0].chain_id
    from signalish._message import plain_prefix
    forged = plain_prefix(old_key, 0, 5, 16) + bytes(16)
    rejects(bob, forged, rng, AuthenticationError)
