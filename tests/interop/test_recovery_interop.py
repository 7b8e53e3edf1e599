"""DecryptionErrorMessage and PlaintextContent against libsignal-client 0.90.0.

signalish._recovery must write the bytes libsignal writes for the same
inputs, and each side must read what the other writes (driver_v4.mjs's
dem_* and plaintext_content* commands, libsignal's public API only).

What libsignal-client 0.90.0 did when this was written (0.72.1 gave the same
bytes in /work/exp/recovery; the tests below check 0.90.0 live):

* ``DecryptionErrorMessage.forOriginal(bytes, type, timestamp, device)``
  parses a SignalMessage (type 2) or PreKeySignalMessage (type 3, then the
  SignalMessage inside) and takes its ratchet key, of protocol version 3 or
  4 alike; for a SenderKeyMessage (type 7) it reads nothing and writes no
  ratchet key; for type 8 (PlaintextContent) it refuses ("not encrypted").
  It writes fields 1 (0x05 || key), 2 (timestamp) and 3 (device id) in that
  order, 2 and 3 even when zero.
* ``PlaintextContent.from(dem).serialize()`` is 0xC0, then field 8 (key
  0x42) holding the DEM, then 0x80; ``asCiphertextMessage()`` has type 8
  and the same bytes.  ``PlaintextContent.deserialize`` refuses any other
  first byte ("unrecognized message version") but takes any body; the body
  is parsed only by ``extractFromSerializedBody``, which wants exactly one
  field 8 and a final 0x80.
* The JavaScript bridge carries timestamps as numbers: above 2**53 - 1 it
  refuses them both ways ("cannot convert ... to Timestamp (u64)",
  "precision loss").  The protobuf field is a uint64, which signalish keeps.
* ``DecryptionErrorMessage.deserialize`` is laxer than signalish (see
  test_libsignal_is_laxer): signalish refuses those encodings, and nothing
  libsignal writes is among them.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from libsignal_peer import LibsignalPeer
from signalish import (
    LIBSIGNAL_V3,
    LIBSIGNAL_V4,
    Profile,
)
from signalish._recovery import (
    PLAINTEXT_CONTENT,
    SENDER_KEY_MESSAGE,
    DecryptionErrorMessage,
    parse_plaintext_content,
    plaintext_content,
)
from signalish.errors import DecodeError
from test_libsignal_v4 import bundle_fields, issue_bundle, signalish_party

ALICE_REG, BOB_REG = 1111, 2222
JS_MAX_TIMESTAMP = (1 << 53) - 1


def libsignal_dem(libsignal: LibsignalPeer, body: bytes, kind: int, timestamp: int,
                  device_id: int) -> bytes:
    answer = libsignal.ok("dem_for_original", body=body.hex(), type=kind,
                          timestamp=timestamp, device_id=device_id)
    return bytes.fromhex(answer["dem"])


def libsignal_reads(libsignal: LibsignalPeer, dem: DecryptionErrorMessage) -> None:
    """libsignal parses signalish's DEM and PlaintextContent to the same fields,
    and writes the same PlaintextContent for it."""
    data = dem.to_bytes()
    key = None if dem.ratchet_key is None else (b"\x05" + dem.ratchet_key).hex()
    fields = {"timestamp": dem.timestamp, "device_id": dem.device_id, "ratchet_key": key}
    parsed = libsignal.ok("dem_parse", dem=data.hex())
    assert parsed == {"ok": True, "serialized": data.hex(), **fields}
    content = plaintext_content(dem)
    made = libsignal.ok("plaintext_content", dem=data.hex())
    assert made == {"ok": True, "content": content.hex(), "body": content[1:].hex(),
                    "type": PLAINTEXT_CONTENT, "ciphertext": content.hex()}
    read = libsignal.ok("plaintext_content_parse", content=content.hex())
    assert read == {"ok": True, "body": content[1:].hex(), "dem": data.hex(), **fields}


def check(libsignal: LibsignalPeer, message: bytes, kind: int, profile: Profile,
          timestamp: int, device_id: int) -> DecryptionErrorMessage:
    """Both implementations' DEM for ``message``: equal bytes, and each reads
    the other's."""
    ours = DecryptionErrorMessage.for_original(message, kind, timestamp, device_id, profile)
    theirs = libsignal_dem(libsignal, message, kind, timestamp, device_id)
    assert ours.to_bytes() == theirs
    assert DecryptionErrorMessage.from_bytes(theirs) == ours
    libsignal_reads(libsignal, ours)
    content = bytes.fromhex(libsignal.ok("plaintext_content", dem=theirs.hex())["content"])
    assert parse_plaintext_content(content) == ours
    return ours


def test_messages_between_signalish_and_libsignal(libsignal_v4: LibsignalPeer) -> None:
    """DEMs for messages signalish sent to libsignal and libsignal sent to
    signalish (SPQR field 5 and all), both message types."""
    libsignal = libsignal_v4
    libsignal.ok("init", registration_id=ALICE_REG)
    bob = signalish_party(b"dem-bob", BOB_REG)
    libsignal.ok("process_bundle", address="bob", **bundle_fields(issue_bundle(bob)))
    first = libsignal.ok("encrypt", address="bob", plaintext=b"hi bob".hex())
    assert first["type"] == 3
    first_body = bytes.fromhex(first["body"])
    check(libsignal, first_body, 3, LIBSIGNAL_V4, 1700000000123, 1)
    assert bob.decrypt("alice", first_body, now=1) == b"hi bob"
    reply = bob.encrypt("alice", b"hi alice")
    assert bob.message_type(reply) == 2
    dem = check(libsignal, reply, 2, LIBSIGNAL_V4, 1700000000456, 2)
    assert dem.ratchet_key is not None
    libsignal.ok("decrypt", address="bob", type=2, body=reply.hex())
    second = libsignal.ok("encrypt", address="bob", plaintext=b"again".hex())
    assert second["type"] == 2
    check(libsignal, bytes.fromhex(second["body"]), 2, LIBSIGNAL_V4, 0, 127)


@pytest.mark.parametrize("profile", [LIBSIGNAL_V3, LIBSIGNAL_V4], ids=lambda p: p.name)
def test_signalish_initiates(libsignal_v4: LibsignalPeer, profile: Profile) -> None:
    """A PreKeySignalMessage and a SignalMessage signalish wrote; libsignal
    0.90.0's forOriginal reads version 3 messages too."""
    libsignal = libsignal_v4
    kem = 2 if profile is LIBSIGNAL_V4 else 0
    alice = signalish_party(b"dem-a", ALICE_REG, kem=kem, profile=profile)
    bob = signalish_party(b"dem-b", BOB_REG, kem=kem, profile=profile)
    alice.initiate("bob", issue_bundle(bob))
    first = alice.encrypt("bob", b"first")
    assert alice.message_type(first) == 3
    check(libsignal, first, 3, profile, 1, 1)
    bob.decrypt("alice", first, now=1)
    reply = bob.encrypt("alice", b"reply")
    check(libsignal, reply, 2, profile, 2, 2)
    alice.decrypt("bob", reply, now=2)
    check(libsignal, alice.encrypt("bob", b"third"), 2, profile, JS_MAX_TIMESTAMP,
          (1 << 32) - 1)


def test_sender_key_type_and_random_values(libsignal_v4: LibsignalPeer) -> None:
    rng = random.Random(19)
    values = [(0, 0), (1, 1), (JS_MAX_TIMESTAMP, (1 << 32) - 1), (1 << 32, 1 << 31)]
    values += [(rng.randrange(JS_MAX_TIMESTAMP + 1), rng.randrange(1 << 32)) for _ in range(30)]
    for timestamp, device_id in values:
        ours = DecryptionErrorMessage.for_original(b"\x00", SENDER_KEY_MESSAGE, timestamp,
                                                   device_id, LIBSIGNAL_V4)
        assert ours.ratchet_key is None
        assert libsignal_dem(libsignal_v4, b"\x00", SENDER_KEY_MESSAGE, timestamp,
                             device_id) == ours.to_bytes()
        libsignal_reads(libsignal_v4, ours)
    # With ratchet keys libsignal never made: it only checks the 0x05 prefix.
    for _ in range(10):
        dem = DecryptionErrorMessage(rng.randbytes(32), rng.randrange(JS_MAX_TIMESTAMP + 1),
                                     rng.randrange(1 << 32))
        libsignal_reads(libsignal_v4, dem)


def test_refusals_agree(libsignal_v4: LibsignalPeer) -> None:
    answer = libsignal_v4("dem_for_original", body="00", type=PLAINTEXT_CONTENT, timestamp=1,
                          device_id=1)
    assert not answer["ok"] and "not encrypted" in answer["error"]
    for data in ("", "102a18", "1803", "0a20" + "11" * 32 + "102a1803",
                 "0a2106" + "11" * 32 + "102a1803"):
        assert not libsignal_v4("dem_parse", dem=data)["ok"], data
        with pytest.raises(DecodeError):
            DecryptionErrorMessage.from_bytes(bytes.fromhex(data))
    for content in ("", "c14204102a180380", "c0", "c04204102a1803", "c04204102a18038000",
                    "c0080142" + "04102a1803" + "80"):
        assert not libsignal_v4("plaintext_content_parse", content=content)["ok"], content
        with pytest.raises(DecodeError):
            parse_plaintext_content(bytes.fromhex(content))


@pytest.mark.parametrize("data", [
    "102a",                     # no device id: libsignal reads 0
    "1803102a",                 # fields out of order
    "102a18030a21" + "05" + "11" * 32,   # ratchet key last
    "102a18032001",             # an unknown field
    "102a102b1803",             # timestamp twice (the last wins)
    "10aa001803",               # a non-minimal varint
])
def test_libsignal_is_laxer(libsignal_v4: LibsignalPeer, data: str) -> None:
    """Encodings libsignal's deserialize takes and signalish refuses; libsignal
    never writes them (its serialize() returns the bytes it was given)."""
    answer: dict[str, Any] = libsignal_v4("dem_parse", dem=data)
    assert answer["ok"] and answer["serialized"] == data
    with pytest.raises(DecodeError):
        DecryptionErrorMessage.from_bytes(bytes.fromhex(data))


def test_a_libsignal_error_message_archives_the_session_it_names(
        libsignal_v4: LibsignalPeer) -> None:
    """The recovery flow across implementations: libsignal cannot read a
    message signalish sent, says so with its own DecryptionErrorMessage in a
    PlaintextContent, and signalish archives the session that message was
    sent on (and only for that session's current ratchet key); and
    SessionManager.decryption_error's bytes are what libsignal writes."""
    libsignal = libsignal_v4
    libsignal.ok("init", registration_id=ALICE_REG)
    bob = signalish_party(b"dem-archive", BOB_REG)
    libsignal.ok("process_bundle", address="bob", **bundle_fields(issue_bundle(bob)))
    first = bytes.fromhex(libsignal.ok("encrypt", address="bob", plaintext=b"hi".hex())["body"])
    assert bob.decrypt("alice", first, now=1) == b"hi"
    assert bob.decryption_error(first, timestamp=7, device_id=1) == bytes.fromhex(
        libsignal.ok("plaintext_content",
                     dem=libsignal_dem(libsignal, first, 3, 7, 1).hex())["content"])
    older = bob.encrypt("alice", b"older")
    libsignal.ok("decrypt", address="bob", type=2, body=older.hex())
    # libsignal answers, and signalish moves on past that ratchet key first:
    # then the error message is stale and changes nothing.
    stale = libsignal.ok("plaintext_content",
                         dem=libsignal_dem(libsignal, older, 2, 8, 2).hex())["content"]
    second = bytes.fromhex(libsignal.ok("encrypt", address="bob", plaintext=b"x".hex())["body"])
    bob.decrypt("alice", second, now=2)
    lost = bob.encrypt("alice", b"lost")
    assert not bob.process_decryption_error("alice", bytes.fromhex(stale))
    assert bob.has_session("alice", current=True)
    answer = libsignal.ok("plaintext_content",
                          dem=libsignal_dem(libsignal, lost, 2, 9, 2).hex())["content"]
    assert bob.process_decryption_error("alice", bytes.fromhex(answer))
    assert not bob.has_session("alice", current=True)
    # Messages libsignal sent on the archived session still read.
    third = bytes.fromhex(libsignal.ok("encrypt", address="bob", plaintext=b"late".hex())["body"])
    assert bob.decrypt("alice", third, now=3) == b"late"
