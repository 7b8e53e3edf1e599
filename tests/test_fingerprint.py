"""Safety numbers against Signal's published value, and their comparison.

(tests/interop checks them against libsignal-client's Fingerprint too.)"""

from __future__ import annotations

import pytest

from helpers import load_vectors
from signalish import DeterministicRandom, IdentityKey, IdentityKeyPair, LIBSIGNAL_V3
from signalish.fingerprint import FingerprintMatch, SafetyNumber, compare_scannable
from signalish.errors import InvalidEncoding

V = load_vectors("third_party/signal_published.json")["safety_number"]
ALICE = IdentityKey.decode(bytes.fromhex(V["alice_key"]), LIBSIGNAL_V3)
BOB = IdentityKey.decode(bytes.fromhex(V["bob_key"]), LIBSIGNAL_V3)


def test_published_safety_number() -> None:
    alice_view = SafetyNumber.compute(ALICE, V["alice_id"], BOB, V["bob_id"])
    bob_view = SafetyNumber.compute(BOB, V["bob_id"], ALICE, V["alice_id"])
    assert alice_view.displayable == bob_view.displayable == V["displayable"]
    assert alice_view.formatted().replace(" ", "") == V["displayable"]
    assert len(alice_view.formatted().split()) == 12


def test_match_mismatch_and_versions() -> None:
    alice_view = SafetyNumber.compute(ALICE, V["alice_id"], BOB, V["bob_id"])
    bob_view = SafetyNumber.compute(BOB, V["bob_id"], ALICE, V["alice_id"])
    assert compare_scannable(alice_view, bob_view.scannable) is FingerprintMatch.MATCH
    # An attacker's key in the middle: Bob's phone shows a different number.
    mallory = IdentityKeyPair.generate(DeterministicRandom(b"mallory")).public
    bob_sees = SafetyNumber.compute(BOB, V["bob_id"], mallory, V["alice_id"])
    assert compare_scannable(alice_view, bob_sees.scannable) is FingerprintMatch.MISMATCH
    assert bob_sees.displayable != alice_view.displayable
    # Comparing with oneself is not a match (local and remote are swapped).
    assert compare_scannable(alice_view, alice_view.scannable) is FingerprintMatch.MISMATCH
    old = SafetyNumber.compute(BOB, V["bob_id"], ALICE, V["alice_id"], version=1)
    assert compare_scannable(alice_view, old.scannable) is FingerprintMatch.DIFFERENT_VERSIONS


def test_malformed_scannable_is_refused() -> None:
    good = SafetyNumber.compute(ALICE, V["alice_id"], BOB, V["bob_id"]).scannable
    for bad in (b"", good[:-1], good + b"\x00", b"\x10" + good[1:], good[:4] + b"\x0b" + good[5:]):
        with pytest.raises(InvalidEncoding):
            compare_scannable(good, bad)
