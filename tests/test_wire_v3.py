"""The libsignal v3 codec on its own: strict, canonical parsing.

Interoperability with libsignal itself is in tests/interop; these tests need
no Node and check that every malformed or non-canonical encoding is refused.
"""

from __future__ import annotations

import pytest

from signalish import LIBSIGNAL_V3, SignalishError
from signalish.errors import DecodeError
from signalish._wire_v3 import V3Frame, V3PreKeyFrame, message_type_v3, parse_v3
from sessions import make_party


def conversation() -> tuple[bytes, bytes]:
    alice = make_party("alice", b"v3", profile=LIBSIGNAL_V3)
    bob = make_party("bob", b"v3", profile=LIBSIGNAL_V3)
    alice.manager.initiate("bob", bob.bundle())
    first = alice.manager.encrypt("bob", b"first")
    bob.manager.decrypt("alice", first, now=1)
    return first, bob.manager.encrypt("alice", b"reply")


def test_types_and_round_trip() -> None:
    first, reply = conversation()
    assert message_type_v3(first) == 3 and message_type_v3(reply) == 2
    prekey = parse_v3(first, 1 << 20)
    assert isinstance(prekey, V3PreKeyFrame) and isinstance(parse_v3(reply, 1 << 20), V3Frame)
    assert first[0] == reply[0] == 0x34


@pytest.mark.parametrize("which", ["prekey", "signal"])
def test_truncation_extension_and_flips_are_refused(which: str) -> None:
    first, reply = conversation()
    data = first if which == "prekey" else reply
    for i in range(len(data)):
        with pytest.raises(SignalishError):
            parse_v3(data[:i], 1 << 20)
    # Past the MAC a SignalMessage's extra bytes shift the MAC window: they
    # parse but can never authenticate; a PreKeySignalMessage refuses them.
    if which == "prekey":
        with pytest.raises(DecodeError):
            parse_v3(data + b"\x00", 1 << 20)


def test_non_canonical_encodings_are_refused() -> None:
    _, reply = conversation()
    body, mac = reply[:-8], reply[-8:]
    # Field 2 (counter = 0) written as a two-byte varint: 0x80 0x00.
    at = body.index(b"\x10\x00")
    longer = body[:at] + b"\x10\x80\x00" + body[at + 2:]
    with pytest.raises(DecodeError, match="minimal"):
        parse_v3(longer + mac, 1 << 20)
    # Fields out of order: counter after previous_counter.
    swapped = body[:at] + b"\x18\x00\x10\x00" + body[at + 4:]
    with pytest.raises(DecodeError):
        parse_v3(swapped + mac, 1 << 20)
    # An unknown field appended before the MAC.
    with pytest.raises(DecodeError):
        parse_v3(body + b"\x28\x01" + mac, 1 << 20)
    # Another version.
    with pytest.raises(DecodeError):
        parse_v3(b"\x44" + reply[1:], 1 << 20)
