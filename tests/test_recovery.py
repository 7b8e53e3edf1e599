"""DecryptionErrorMessage and PlaintextContent on their own (signalish._recovery).

Byte compatibility with libsignal itself is in
tests/interop/test_recovery_interop.py; these tests need no Node.  The fixed
byte strings below were written by libsignal-client 0.72.1 and 0.90.0 (both
the same) in /work/exp/recovery.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessions import make_party
from signalish import LIBSIGNAL_V3, LIBSIGNAL_V4, NATIVE, Profile, SessionOptions
from signalish._recovery import (
    MAX_SIZE,
    PLAINTEXT_CONTENT,
    SENDER_KEY_MESSAGE,
    DecryptionErrorMessage,
    parse_plaintext_content,
    plaintext_content,
)
from signalish._wire_v3 import V3Frame, V3PreKeyFrame, parse_v3
from signalish.errors import (
    DecodeError,
    InvalidArgument,
    InvalidEncoding,
    TrailingBytes,
    TruncatedInput,
    UnexpectedType,
    UnknownVersion,
    UnsupportedByProfile,
)

KEY = bytes.fromhex("be8eb67110f4fd6aec35c5f207a9d31478ea51c40b2ea1ac1b955f74e47deb6a")
# libsignal: forOriginal(a SignalMessage on ratchet key 0x05 || KEY, Whisper,
# 1700000000123, 2).serialize(), and PlaintextContent.from(it).serialize().
LIBSIGNAL_DEM = bytes.fromhex(
    "0a2105" + KEY.hex() + "10fbd095ffbc311802")
LIBSIGNAL_CONTENT = bytes.fromhex("c0422c" + LIBSIGNAL_DEM.hex() + "80")
# forOriginal(anything, SenderKey, 42, 3): no ratchet key.
LIBSIGNAL_SENDER_KEY_DEM = bytes.fromhex("102a1803")

timestamps = st.integers(0, (1 << 64) - 1)
device_ids = st.integers(0, (1 << 32) - 1)
keys = st.none() | st.binary(min_size=32, max_size=32)
dems = st.builds(DecryptionErrorMessage, keys, timestamps, device_ids)


# --- fixed bytes ------------------------------------------------------------------


def test_libsignal_bytes() -> None:
    dem = DecryptionErrorMessage(KEY, 1700000000123, 2)
    assert dem.to_bytes() == LIBSIGNAL_DEM
    assert DecryptionErrorMessage.from_bytes(LIBSIGNAL_DEM) == dem
    assert plaintext_content(dem) == LIBSIGNAL_CONTENT
    assert parse_plaintext_content(LIBSIGNAL_CONTENT) == dem
    no_key = DecryptionErrorMessage(None, 42, 3)
    assert no_key.to_bytes() == LIBSIGNAL_SENDER_KEY_DEM
    assert plaintext_content(no_key) == bytes.fromhex("c04204102a180380")
    assert PLAINTEXT_CONTENT == 8 and SENDER_KEY_MESSAGE == 7


def test_zero_fields_are_written() -> None:
    """libsignal writes timestamp and device id even when they are 0."""
    assert DecryptionErrorMessage(None, 0, 0).to_bytes() == bytes.fromhex("10001800")
    assert DecryptionErrorMessage.from_bytes(bytes.fromhex("10001800")) == \
        DecryptionErrorMessage(None, 0, 0)


def test_extremes() -> None:
    top = DecryptionErrorMessage(b"\xff" * 32, (1 << 64) - 1, (1 << 32) - 1)
    data = top.to_bytes()
    assert len(data) == MAX_SIZE
    assert DecryptionErrorMessage.from_bytes(data) == top
    assert parse_plaintext_content(plaintext_content(top)) == top


@given(dems)
def test_round_trip(dem: DecryptionErrorMessage) -> None:
    data = dem.to_bytes()
    assert len(data) <= MAX_SIZE
    assert DecryptionErrorMessage.from_bytes(data) == dem
    content = plaintext_content(dem)
    assert content[0] == 0xC0 and content[1] == 0x42 and content[-1] == 0x80
    assert content[3:-1] == data and content[2] == len(data)
    assert parse_plaintext_content(content) == dem


# --- arguments ---------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    (b"\x01" * 31, 1, 1), (b"\x01" * 33, 1, 1), (bytearray(32), 1, 1),
    (None, -1, 1), (None, 1 << 64, 1), (None, 1, -1), (None, 1, 1 << 32),
    (None, True, 1), (None, 1, 1.0),
])
def test_bad_arguments(args: tuple[object, object, object]) -> None:
    with pytest.raises(InvalidArgument):
        DecryptionErrorMessage(*args)  # type: ignore[arg-type]


def test_parsers_want_bytes() -> None:
    with pytest.raises(InvalidArgument):
        DecryptionErrorMessage.from_bytes(bytearray(LIBSIGNAL_DEM))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        parse_plaintext_content(bytearray(LIBSIGNAL_CONTENT))  # type: ignore[arg-type]


# --- strictness ---------------------------------------------------------------------


@pytest.mark.parametrize("data", [LIBSIGNAL_DEM, LIBSIGNAL_SENDER_KEY_DEM])
def test_truncation_and_extension(data: bytes) -> None:
    for i in range(len(data)):
        with pytest.raises(DecodeError):
            DecryptionErrorMessage.from_bytes(data[:i])
    for extra in (b"\x00", b"\x20\x01", b"\x18\x03", data):
        with pytest.raises(DecodeError):
            DecryptionErrorMessage.from_bytes(data + extra)


def test_plaintext_content_truncation_and_extension() -> None:
    data = LIBSIGNAL_CONTENT
    for i in range(len(data)):
        with pytest.raises(DecodeError):
            parse_plaintext_content(data[:i])
    with pytest.raises(TruncatedInput):
        parse_plaintext_content(data[:-1])
    for extra in (b"\x00", b"\x80", b"\x00\x00\x00"):
        with pytest.raises(TrailingBytes):
            parse_plaintext_content(data + extra)


@pytest.mark.parametrize("hexdata, error", [
    ("1803102a", InvalidEncoding),                  # device id before timestamp
    ("102a18030a21" + "05" + KEY.hex(), TrailingBytes),  # key after the others
    ("102a", TruncatedInput),                       # no device id (libsignal: 0)
    ("1803", InvalidEncoding),                      # no timestamp
    ("", TruncatedInput),
    ("102a102b1803", InvalidEncoding),              # timestamp twice
    ("0a2105" + KEY.hex() + "0a2105" + KEY.hex() + "102a1803", InvalidEncoding),
    ("10aa001803", InvalidEncoding),                # non-minimal varint
    ("102a188300", InvalidEncoding),                # non-minimal varint
    ("102a18808080801000", InvalidEncoding),        # device id >= 2**32
    ("10" + "ff" * 9 + "02" + "1803", InvalidEncoding),  # timestamp >= 2**64
    ("10" + "80" * 10 + "01" + "1803", InvalidEncoding),  # 11-byte varint
    ("0a20" + KEY.hex() + "102a1803", InvalidEncoding),    # 32-byte key
    ("0a2106" + KEY.hex() + "102a1803", InvalidEncoding),  # key type 0x06
    ("0a22" + "05" + KEY.hex() + "00" + "102a1803", InvalidEncoding),  # 34 bytes
    ("0a00102a1803", InvalidEncoding),              # empty key
    ("0821102a1803", InvalidEncoding),              # key with wire type 0
    ("122a1803", InvalidEncoding),                  # timestamp with wire type 2
    ("102a1a03", InvalidEncoding),                  # device id with wire type 2
    ("082a102a1803", InvalidEncoding),              # field 1 with wire type 0
    ("0a2105" + KEY.hex()[:-2], TruncatedInput),    # key cut short
])
def test_non_canonical_and_malformed(hexdata: str, error: type[DecodeError]) -> None:
    with pytest.raises(error):
        DecryptionErrorMessage.from_bytes(bytes.fromhex(hexdata))


@pytest.mark.parametrize("hexdata, error", [
    ("c14204102a180380", UnknownVersion),
    ("0042", UnknownVersion),
    ("c0", TruncatedInput),
    ("", TruncatedInput),
    ("c04204102a1803", TruncatedInput),             # no terminator
    ("c04204102a18038000", TrailingBytes),          # zero padding after it
    ("c04204102a180381", InvalidEncoding),          # wrong terminator
    ("c0080142" + "04102a1803" + "80", InvalidEncoding),  # another Content field first
    ("c04205102a180380", TruncatedInput),           # length past the end
    ("c04203102a1880", DecodeError),                 # inner DEM truncated
    ("c04a04102a180380", InvalidEncoding),          # field 9, not 8
    ("c04004102a180380", InvalidEncoding),          # field 8 with wire type 0
    ("c0428004102a180380", InvalidEncoding),        # non-minimal length
    ("c04240" + "00" * 64 + "80", InvalidEncoding),  # longer than any DEM
])
def test_plaintext_content_malformed(hexdata: str, error: type[DecodeError]) -> None:
    with pytest.raises(error):
        parse_plaintext_content(bytes.fromhex(hexdata))


@given(st.binary(max_size=80))
def test_fuzz_dem_parser(data: bytes) -> None:
    try:
        dem = DecryptionErrorMessage.from_bytes(data)
    except DecodeError:
        return
    assert dem.to_bytes() == data  # canonical: what parses is what it writes


@given(st.binary(max_size=80).map(lambda b: b"\xc0" + b))
def test_fuzz_plaintext_content_parser(data: bytes) -> None:
    try:
        dem = parse_plaintext_content(data)
    except DecodeError:
        return
    assert plaintext_content(dem) == data


@given(dems, st.data())
def test_fuzz_mutations(dem: DecryptionErrorMessage, data: st.DataObject) -> None:
    """Flipping, inserting or deleting bytes of a valid encoding yields a
    DecodeError or another canonical encoding, never anything else."""
    for encoded, parse, write in (
            (dem.to_bytes(), DecryptionErrorMessage.from_bytes, DecryptionErrorMessage.to_bytes),
            (plaintext_content(dem), parse_plaintext_content, plaintext_content)):
        i = data.draw(st.integers(0, len(encoded)))
        kind = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        byte = data.draw(st.integers(0, 255))
        if kind == "flip" and i < len(encoded):
            mutated = encoded[:i] + bytes((encoded[i] ^ (byte or 1),)) + encoded[i + 1:]
        elif kind == "delete" and i < len(encoded):
            mutated = encoded[:i] + encoded[i + 1:]
        else:
            mutated = encoded[:i] + bytes((byte,)) + encoded[i:]
        try:
            parsed = parse(mutated)
        except DecodeError:
            continue
        assert write(parsed) == mutated


# --- for_original on real messages ---------------------------------------------------


def conversation(profile: Profile) -> tuple[bytes, bytes]:
    """(Alice's first message, a PreKeySignalMessage; Bob's reply, a SignalMessage)."""
    alice = make_party("alice", b"dem", SessionOptions.libsignal(1111), profile=profile)
    bob = make_party("bob", b"dem", SessionOptions.libsignal(2222), profile=profile)
    alice.manager.initiate("bob", bob.bundle())
    first = alice.manager.encrypt("bob", b"first")
    bob.manager.decrypt("alice", first, now=1)
    return first, bob.manager.encrypt("alice", b"reply")


@pytest.mark.parametrize("profile", [LIBSIGNAL_V3, LIBSIGNAL_V4], ids=lambda p: p.name)
def test_for_original(profile: Profile) -> None:
    protocol = 4 if profile is LIBSIGNAL_V4 else 3
    first, reply = conversation(profile)
    prekey = parse_v3(first, 1 << 20, protocol)
    signal = parse_v3(reply, 1 << 20, protocol)
    assert isinstance(prekey, V3PreKeyFrame) and isinstance(signal, V3Frame)
    assert isinstance(prekey.inner, V3Frame)
    dem = DecryptionErrorMessage.for_original(first, 3, 1700000000123, 1, profile)
    assert dem == DecryptionErrorMessage(prekey.inner.ratchet_key, 1700000000123, 1)
    assert dem.ratchet_key != prekey.header.base_key.public_bytes_raw()
    dem = DecryptionErrorMessage.for_original(reply, 2, 7, 3, profile)
    assert dem == DecryptionErrorMessage(signal.ratchet_key, 7, 3)
    assert DecryptionErrorMessage.from_bytes(dem.to_bytes()) == dem
    assert dem.to_bytes()[:3] == b"\x0a\x21\x05"
    # The wrong type for the bytes, and bytes of the other protocol version.
    with pytest.raises(UnexpectedType):
        DecryptionErrorMessage.for_original(first, 2, 7, 3, profile)
    with pytest.raises(UnexpectedType):
        DecryptionErrorMessage.for_original(reply, 3, 7, 3, profile)
    other = LIBSIGNAL_V3 if profile is LIBSIGNAL_V4 else LIBSIGNAL_V4
    with pytest.raises(UnknownVersion):
        DecryptionErrorMessage.for_original(reply, 2, 7, 3, other)
    # Malformed originals.
    for bad, kind in ((reply[:-9], 2), (b"", 2), (first[:40], 3), (first + b"\x00", 3)):
        with pytest.raises(DecodeError):
            DecryptionErrorMessage.for_original(bad, kind, 7, 3, profile)


def test_for_original_other_types() -> None:
    # SenderKey: the bytes are not read and there is no ratchet key (libsignal alike).
    assert DecryptionErrorMessage.for_original(b"", SENDER_KEY_MESSAGE, 42, 3, LIBSIGNAL_V4) \
        == DecryptionErrorMessage(None, 42, 3)
    assert DecryptionErrorMessage.for_original(b"", SENDER_KEY_MESSAGE, 42, 3, LIBSIGNAL_V4) \
        .to_bytes() == LIBSIGNAL_SENDER_KEY_DEM
    _, reply = conversation(LIBSIGNAL_V4)
    for kind in (PLAINTEXT_CONTENT, 0, 1, 4, 5, 6, 9):
        with pytest.raises(InvalidArgument):
            DecryptionErrorMessage.for_original(reply, kind, 42, 3, LIBSIGNAL_V4)
    with pytest.raises(InvalidArgument):  # native types are the tags 0x40-0x42
        DecryptionErrorMessage.for_original(reply, 2, 42, 3, NATIVE)
    for timestamp, device_id in ((-1, 1), (1 << 64, 1), (1, 1 << 32)):
        with pytest.raises(InvalidArgument):
            DecryptionErrorMessage.for_original(reply, 2, timestamp, device_id, LIBSIGNAL_V4)
