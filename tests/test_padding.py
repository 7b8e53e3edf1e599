"""Message padding (signalish._padding, SessionOptions.padding).

The expected lengths are computed here from Signal's rule as its
applications state it (getPaddedMessageLength(n + 1) - 1 with
getPaddedMessageLength(m) = 160 * ceil((m + 1) / 160)), written out
independently of the module; libsignal itself never pads (its applications
do), so tests/interop checks what a libsignal peer receives.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signalish import LIBSIGNAL_V4, NATIVE, SessionOptions
from signalish.errors import InvalidArgument
from signalish._padding import pad, padded_length, unpad
from sessions import make_party


def signal_padded_length(size: int) -> int:
    """Signal's applications' getPaddedMessageLength(size + 1) - 1."""
    with_terminator = (size + 1) + 1
    parts = with_terminator // 160 + (1 if with_terminator % 160 else 0)
    return parts * 160 - 1


@pytest.mark.parametrize("size", [0, 1, 100, 157, 158, 159, 160, 161, 317, 318, 319, 400, 5000])
def test_lengths_are_signals(size: int) -> None:
    padded = pad(bytes([0x41]) * size)
    assert len(padded) == signal_padded_length(size) == padded_length(size, 160)
    assert (len(padded) + 1) % 160 == 0 and len(padded) > size
    assert padded[size] == 0x80 and set(padded[size + 1:]) <= {0}


@settings(max_examples=200)
@given(st.binary(max_size=2000), st.integers(2, 512))
def test_round_trip_and_the_length_hides_within_a_block(content: bytes, block: int) -> None:
    padded = pad(content, block)
    assert unpad(padded) == content
    assert (len(padded) + 1) % block == 0
    assert len(padded) - len(content) in range(1, block + 1)


def test_content_ending_in_zeros_or_0x80_survives() -> None:
    for content in (b"", b"\x00", b"\x80", b"a\x80\x00", b"\x00\x00\x80", bytes(500)):
        assert unpad(pad(content)) == content


def test_unpadded_content_is_returned_as_it_is() -> None:
    """As Signal's applications do: a peer that does not pad still reads."""
    for content in (b"hello", b"ends in one\x01", b"", bytes(10)):
        assert unpad(content) == content


def test_bad_blocks_are_refused() -> None:
    for block in (-1, 1, 65537):
        with pytest.raises(InvalidArgument):
            SessionOptions(padding=block)
    with pytest.raises(InvalidArgument):
        padded_length(3, 1)


@pytest.mark.parametrize("profile", [NATIVE, LIBSIGNAL_V4], ids=lambda p: p.name)
def test_the_manager_pads_and_strips(profile) -> None:  # type: ignore[no-untyped-def]
    options = (SessionOptions(padding=160) if profile is NATIVE
               else SessionOptions(padding=160, registration_id=7))
    alice = make_party("alice", b"pad", options, profile=profile)
    bob = make_party("bob", b"pad", options, profile=profile)
    alice.manager.initiate("bob", bob.bundle())
    plain = make_party("carol", b"pad", SessionOptions(registration_id=7), profile=profile)
    plain.manager.initiate("bob", bob.bundle())
    assert bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"first"), now=1) == b"first"
    assert alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"ack"), now=1) == b"ack"
    sizes: dict[int, set[int]] = {}
    for text in (b"", b"ok", b"x" * 157, b"y" * 158, b"w" * 159, b"z" * 300, b"v" * 317):
        message = alice.manager.encrypt("bob", text)
        assert bob.manager.decrypt("alice", message, now=1) == text
        sizes.setdefault(signal_padded_length(len(text)), set()).add(len(message))
    # Every content within one block gives messages of one length, and the
    # blocks give different lengths.
    assert sorted(sizes) == [159, 319] and all(len(s) == 1 for s in sizes.values())
    assert sizes[159] != sizes[319]
    # A peer that does not pad is read as it is.
    assert bob.manager.decrypt("carol", plain.manager.encrypt("bob", b"raw"), now=2) == b"raw"
    reply = bob.manager.encrypt("alice", b"back")
    assert alice.manager.decrypt("bob", reply, now=3) == b"back"
