"""Which first bytes (version bytes) libsignal-client 0.72.1 accepts, against
which signalish's parse_v3 accepts: all 256 values, both message types.

Nothing here is a list of expected values: every test asks libsignal, live,
and compares its answer with signalish's.  signalish writes every message
(LIBSIGNAL_V3, SessionManager); libsignal tries each variant on a copy of its
state (driver.mjs ``decrypt_each`` undoes every attempt), so an accepted
PreKeySignalMessage does not change what the next attempt meets.

What libsignal 0.72.1 did when this was written (for the report, not
asserted): it reads only the high nibble, 0x30..0x3f decrypt for both types;
high nibble 0..2 "ciphertext version was too old", 5..15 "ciphertext version
was unrecognized" (both when the message is parsed); 4 is protocol version 4:
a PreKeySignalMessage without Kyber fields is refused as it is parsed ("Kyber
pre key must be present for this session version"), a SignalMessage parses
but its decryption fails in a version 3 session ("decryption failed", the
same text as a bad MAC).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import signalish._wire_v3 as wire_v3
from helpers import snapshot
from libsignal_peer import LibsignalPeer
from signalish import SessionManager, SignalishError
from signalish.errors import AuthenticationError, UnknownVersion
from signalish._wire_v3 import parse_v3
from test_libsignal import (
    ALICE_REG,
    BOB_REG,
    bundle_fields,
    bundle_from_libsignal,
    from_libsignal,
    signalish_party,
    to_libsignal,
)

ALL = range(256)


def with_first_byte(data: bytes, value: int) -> bytes:
    return bytes((value,)) + data[1:]


def signalish_accepts(data: bytes) -> bool:
    try:
        parse_v3(data, 1 << 20)
    except UnknownVersion:
        return False
    return True


def libsignal_verdicts(libsignal: LibsignalPeer, kind: int,
                       messages: list[bytes]) -> list[dict[str, Any]]:
    answer = libsignal.ok("decrypt_each", address="alice",
                          messages=[{"type": kind, "body": m.hex()} for m in messages])
    results: list[dict[str, Any]] = answer["results"]
    assert len(results) == len(messages)
    return results


def compare(libsignal_results: list[dict[str, Any]], messages: list[bytes],
            plaintexts: list[bytes]) -> None:
    """libsignal's accept/refuse against signalish's, value by value."""
    theirs = {v for v in ALL if libsignal_results[v]["ok"]}
    ours = {v for v in ALL if signalish_accepts(messages[v])}
    refusals = sorted({f"{r['stage']}: {r['error']}" for r in libsignal_results if not r["ok"]})
    assert theirs == ours, (f"libsignal accepts {sorted(map(hex, theirs))}, signalish "
                            f"{sorted(map(hex, ours))}; libsignal's refusals: {refusals}")
    assert 0x34 in theirs  # what both write: the comparison is not vacuous
    for v in theirs:
        assert bytes.fromhex(libsignal_results[v]["plaintext"]) == plaintexts[v]


@pytest.fixture
def written_with() -> Iterator[Callable[[int], None]]:
    """Make signalish write a chosen version byte (in the MAC'd bytes too)."""
    def set_version(value: int) -> None:
        wire_v3.VERSION = value  # type: ignore[misc]

    original = wire_v3.VERSION
    try:
        yield set_version
    finally:
        set_version(original)


def prekey_session(libsignal: LibsignalPeer, seed: bytes) -> SessionManager:
    """signalish has a session with libsignal and still sends PreKeySignalMessages."""
    libsignal.ok("init", registration_id=BOB_REG)
    alice, _ = signalish_party(seed, ALICE_REG)
    alice.initiate("bob", bundle_from_libsignal(
        libsignal.ok("make_bundle", registration_id=BOB_REG, signed_prekey_id=1, prekey_id=2)))
    return alice


def answered_session(libsignal: LibsignalPeer, seed: bytes) -> SessionManager:
    """signalish's session with libsignal now sends SignalMessages."""
    alice = prekey_session(libsignal, seed)
    to_libsignal(libsignal, alice, alice.encrypt("bob", b"first"))
    _, reply = from_libsignal(libsignal, "reply")
    alice.decrypt("bob", reply, now=1)
    return alice


# --- PreKeySignalMessage -------------------------------------------------------------


def test_prekey_message_outer_version_byte(libsignal: LibsignalPeer) -> None:
    """The outer version byte is under no MAC: every variant is the genuine
    message with only that byte changed."""
    alice = prekey_session(libsignal, b"vb-prekey-outer")
    genuine = alice.encrypt("bob", b"prekey message")
    assert alice.message_type(genuine) == 3 and genuine[0] == 0x34
    messages = [with_first_byte(genuine, v) for v in ALL]
    compare(libsignal_verdicts(libsignal, 3, messages), messages, [b"prekey message"] * 256)


def test_prekey_message_inner_version_byte(libsignal: LibsignalPeer,
                                           written_with: Callable[[int], None]) -> None:
    """The SignalMessage inside: signalish writes version v (MAC'd), the outer
    byte is put back to 0x34."""
    alice = prekey_session(libsignal, b"vb-prekey-inner")
    messages, plaintexts = [], []
    for v in ALL:
        written_with(v)
        plaintexts.append(b"inner version %d" % v)
        messages.append(with_first_byte(alice.encrypt("bob", plaintexts[-1]), 0x34))
    written_with(0x34)
    assert {alice.message_type(m) for m in messages} == {3}
    compare(libsignal_verdicts(libsignal, 3, messages), messages, plaintexts)


def test_prekey_message_from_libsignal_with_altered_byte(libsignal: LibsignalPeer) -> None:
    """The other direction: libsignal's own PreKeySignalMessage, byte 0
    altered, fully decrypted by a fresh signalish party per attempt; it must
    accept what libsignal accepted of signalish's."""
    alice = prekey_session(libsignal, b"vb-prekey-reverse")
    genuine = alice.encrypt("bob", b"probe")
    accepted = {v for v, r in enumerate(libsignal_verdicts(
        libsignal, 3, [with_first_byte(genuine, v) for v in ALL])) if r["ok"]}

    libsignal.ok("init", registration_id=ALICE_REG)
    _, ring = signalish_party(b"vb-reverse-bob", BOB_REG)
    libsignal.ok("process_bundle", address="bob", **bundle_fields(ring.issue_bundle()))
    _, theirs = from_libsignal(libsignal, "from libsignal", to="bob")
    decrypted = set()
    for v in ALL:
        bob, _ = signalish_party(b"vb-reverse-bob", BOB_REG)  # the same party, fresh
        try:
            assert bob.decrypt("alice", with_first_byte(theirs, v), now=1) == b"from libsignal"
        except UnknownVersion:
            assert not bob.has_session("alice")
            continue
        decrypted.add(v)
    assert decrypted == accepted


# --- SignalMessage ----------------------------------------------------------------------


def test_signal_message_version_byte(libsignal: LibsignalPeer,
                                     written_with: Callable[[int], None]) -> None:
    """signalish writes a SignalMessage with version v and a valid MAC over
    it: which values libsignal decrypts."""
    alice = answered_session(libsignal, b"vb-signal")
    messages, plaintexts = [], []
    for v in ALL:
        written_with(v)
        plaintexts.append(b"version %d" % v)
        messages.append(alice.encrypt("bob", plaintexts[-1]))
    written_with(0x34)
    assert [m[0] for m in messages] == list(ALL)
    compare(libsignal_verdicts(libsignal, 2, messages), messages, plaintexts)


def test_signal_message_altered_byte_refused_before_or_by_the_mac(
        libsignal: LibsignalPeer) -> None:
    """Byte 0 of a genuine SignalMessage altered (so its MAC no longer
    matches): both refuse every change.  libsignal refuses a version it does
    not accept when it parses the message, before any MAC; signalish refuses
    those as UnknownVersion and the others as AuthenticationError, with its
    session untouched."""
    alice = answered_session(libsignal, b"vb-altered")
    genuine = alice.encrypt("bob", b"genuine")
    variants = [with_first_byte(genuine, v) for v in ALL]
    results = libsignal_verdicts(libsignal, 2, variants)
    assert {v for v in ALL if results[v]["ok"]} == {0x34}
    # Refused as it was parsed: libsignal never got as far as the MAC.
    at_parse = {v for v in ALL if not results[v]["ok"] and results[v]["stage"] == "deserialize"}
    # What libsignal decrypts when the MAC is right (previous test's question).
    with_valid_mac = {v for v in ALL if signalish_accepts(variants[v])}
    assert at_parse.isdisjoint(with_valid_mac)
    assert to_libsignal(libsignal, alice, genuine) == "genuine"

    # libsignal's genuine SignalMessage, altered, to signalish.
    _, theirs = from_libsignal(libsignal, "theirs")
    before = snapshot(alice.store)
    for v in ALL:
        if v == 0x34:
            continue
        expected = AuthenticationError if v in with_valid_mac else UnknownVersion
        with pytest.raises(SignalishError) as refused:
            alice.decrypt("bob", with_first_byte(theirs, v), now=2)
        assert isinstance(refused.value, expected), (hex(v), refused.value)
        if v in at_parse:
            assert isinstance(refused.value, UnknownVersion)
        assert snapshot(alice.store) == before
    assert alice.decrypt("bob", theirs, now=2) == b"theirs"
