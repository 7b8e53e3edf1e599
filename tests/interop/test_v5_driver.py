"""driver_v5.mjs: two libsignal-client 0.103.0 parties talking through Python.

These tests document the oracle for signalish's SPQR work: they are about the
driver and about what 0.103.0 writes, not about signalish (nothing here
imports it).  The message layout is test_v4_driver.py's, plus:

* SignalMessage field 5, the SPQR message, in every SignalMessage (bare or
  inside a PreKeySignalMessage), starting at SPQR version 1, epoch 1,
  index 1 (0.103.0 keys the very first message with SPQR);
* SignalMessage field 6, the addresses (36 bytes: sender service id in its
  fixed-width form, 17 bytes, sender device, recipient service id, recipient
  device), only in the SignalMessage inside a PreKeySignalMessage and only
  when both the sender's local address and the recipient's address are
  service ids (ACI or PNI); checked by the receiver against the (remote,
  local) addresses it decrypts with, and reported as a MAC failure when they
  differ.  A bare SignalMessage is not checked against them.

The driver is started as ``LibsignalPeer("0.103.0")``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import libsignal_peer
from libsignal_peer import LibsignalPeer
from test_v4_driver import (
    LENGTH,
    VERSION_4,
    _varint,
    as_dict,
    signal_message_fields,
    walk,
)

VERSION = "0.103.0"
assert VERSION in libsignal_peer.DRIVERS

ALICE_REG, BOB_REG = 1111, 2222
SIGNED_ID, PREKEY_ID, KYBER_ID = 5, 6, 7
ALICE_UUID = "a1a2a3a4-b1b2-4c1c-8d1d-e1e2e3e4e5e6"
BOB_UUID = "f1f2f3f4-0102-4304-8506-070809101112"
PREKEY, WHISPER = 3, 2                      # CiphertextMessageType
ADDRESSES_LEN = 2 * (17 + 1)
SPQR_V1 = 1
SPQR_TYPES_WITH_CHUNK = {1, 2, 3, 5, 6}     # Hdr, Ek, EkCt1Ack, Ct1, Ct2
CHUNK_LEN = 32

Address = dict[str, Any]


@pytest.fixture
def pair() -> Iterator[tuple[LibsignalPeer, LibsignalPeer]]:
    parties: list[LibsignalPeer] = []
    try:
        for _ in range(2):
            parties.append(LibsignalPeer(VERSION))
        yield parties[0], parties[1]
    finally:
        for party in parties:
            party.close()


def start(alice: LibsignalPeer, bob: LibsignalPeer, a: Address, b: Address, *,
          one_time: bool = True) -> None:
    """Both parties with their own addresses; alice has processed bob's bundle."""
    assert alice.ok("init", registration_id=ALICE_REG, local=a)["local"]["device_id"] == a["device_id"]
    bob.ok("init", registration_id=BOB_REG, local=b)
    bundle = bob.ok("make_bundle", registration_id=BOB_REG, signed_prekey_id=SIGNED_ID,
                    prekey_id=PREKEY_ID if one_time else None, kyber_prekey_id=KYBER_ID)
    del bundle["ok"]
    assert bundle["device_id"] == b["device_id"]
    alice.ok("process_bundle", address=b, **bundle)


def send(sender: LibsignalPeer, to: Address, text: str, **extra: Any) -> tuple[int, bytes]:
    answer = sender.ok("encrypt", address=to, plaintext=text.encode().hex(), **extra)
    return answer["type"], bytes.fromhex(answer["body"])


def receive(receiver: LibsignalPeer, sender: Address, message: tuple[int, bytes], **extra: Any) -> str:
    answer = receiver.ok("decrypt", address=sender, type=message[0], body=message[1].hex(), **extra)
    return bytes.fromhex(answer["plaintext"]).decode()


def try_once(receiver: LibsignalPeer, sender: Address, message: tuple[int, bytes],
             **extra: Any) -> dict[str, Any]:
    """One decryption attempt that the receiver forgets (decrypt_each), with
    libsignal's log lines."""
    answer = receiver.ok("decrypt_each", address=sender, keep_state=False, logs=True,
                         messages=[{"type": message[0], "body": message[1].hex()}], **extra)
    result: dict[str, Any] = answer["results"][0]
    result["logs"] = [line["message"] for line in answer["logs"]]
    return result


def inner_signal_message(message: tuple[int, bytes]) -> bytes:
    """The SignalMessage itself, or the one inside a PreKeySignalMessage."""
    kind, body = message
    if kind == WHISPER:
        return body
    assert kind == PREKEY and body[0] == VERSION_4
    outer = as_dict(walk(body[1:]))
    wire, inner = outer[4]
    assert wire == LENGTH and isinstance(inner, bytes)
    return inner


SpqrHeader = tuple[int, int, int, int, int | None]


def spqr_message(data: bytes) -> SpqrHeader:
    """(version, epoch, index, type, chunk index | None) of a field 5, which
    must parse to its last byte."""
    version = data[0]
    epoch, i = _varint(data, 1)
    index, i = _varint(data, i)
    kind = data[i]
    i += 1
    chunk = None
    if kind in SPQR_TYPES_WITH_CHUNK:
        chunk, i = _varint(data, i)
        i += CHUNK_LEN
    assert i == len(data), data.hex()
    return version, epoch, index, kind, chunk


def fixed_width(address: Address) -> bytes | None:
    """The ServiceId fixed-width binary of an address spec, or None for a name."""
    if "aci" in address:
        return b"\x00" + uuid.UUID(address["aci"]).bytes
    if "pni" in address:
        return b"\x01" + uuid.UUID(address["pni"]).bytes
    return None


def expected_addresses(sender: Address, recipient: Address) -> bytes | None:
    ours, theirs = fixed_width(sender), fixed_width(recipient)
    if ours is None or theirs is None:
        return None
    return ours + bytes([sender["device_id"]]) + theirs + bytes([recipient["device_id"]])


def check_message(message: tuple[int, bytes], sender: Address, recipient: Address) -> SpqrHeader:
    """Fields 1..4 and 5 always, 6 exactly in a PreKeySignalMessage between
    service ids, with the expected bytes.  Returns field 5 parsed."""
    fields = signal_message_fields(inner_signal_message(message))
    expected = expected_addresses(sender, recipient) if message[0] == PREKEY else None
    assert sorted(fields) == ([1, 2, 3, 4, 5] if expected is None else [1, 2, 3, 4, 5, 6])
    if expected is not None:
        assert fields[6] == (LENGTH, expected) and len(expected) == ADDRESSES_LEN
    wire, spqr = fields[5]
    assert wire == LENGTH and isinstance(spqr, bytes)
    parsed = spqr_message(spqr)
    assert parsed[0] == SPQR_V1 and parsed[1] >= 1 and parsed[2] >= 1
    return parsed


ALICE_ACI: Address = {"aci": ALICE_UUID, "device_id": 42}
BOB_ACI: Address = {"aci": BOB_UUID, "device_id": 81}
ADDRESSING: dict[str, tuple[Address, Address, bool]] = {
    # name: (alice's address, bob's address, with a one-time EC prekey)
    "names": ({"name": "alice", "device_id": 2}, {"name": "bob", "device_id": 3}, True),
    "aci": (ALICE_ACI, BOB_ACI, True),
    "pni": ({"pni": ALICE_UUID, "device_id": 100}, {"pni": BOB_UUID, "device_id": 3}, False),
    "aci-to-name": (ALICE_ACI, {"name": "bob", "device_id": 81}, False),
}


# --- conversations -----------------------------------------------------------------


@pytest.mark.parametrize("addressing", list(ADDRESSING))
def test_conversation(pair: tuple[LibsignalPeer, LibsignalPeer], addressing: str) -> None:
    alice, bob = pair
    a, b, one_time = ADDRESSING[addressing]
    start(alice, bob, a, b, one_time=one_time)
    first = [send(alice, b, f"hello bob {i}") for i in range(3)]
    assert [kind for kind, _ in first] == [PREKEY] * 3
    spqr = [check_message(m, a, b) for m in first]
    # The very first message is keyed with SPQR: version 1, epoch 1, index 1,
    # the first chunk (0) of the header; then index 2, 3 and chunks 1, 2.
    assert spqr == [(SPQR_V1, 1, 1, 1, 0), (SPQR_V1, 1, 2, 1, 1), (SPQR_V1, 1, 3, 1, 2)]
    outer = [f for f, _, _ in walk(first[0][1][1:])]
    assert outer == ([1, 2, 3, 4, 5, 6, 7, 8] if one_time else [2, 3, 4, 5, 6, 7, 8])
    assert receive(bob, a, first[2]) == "hello bob 2"
    assert receive(bob, a, first[0]) == "hello bob 0"
    reply = send(bob, a, "hello alice")
    assert reply[0] == WHISPER
    check_message(reply, b, a)
    assert receive(alice, b, reply) == "hello alice"
    assert receive(bob, a, first[1]) == "hello bob 1"
    for number in range(30):
        sender, receiver, frm, to = (alice, bob, a, b) if number % 3 else (bob, alice, b, a)
        message = send(sender, to, f"#{number}")
        assert message[0] == WHISPER
        check_message(message, frm, to)
        assert receive(receiver, frm, message) == f"#{number}"
    for party, peer in ((alice, b), (bob, a)):
        info = party.ok("session_info", address=peer)
        assert info["has_current"] and info["spqr"] and info["previous"] == 0
    # Sessions are filed under the peer's whole address (name and device).
    assert alice.ok("session_record", address={**b, "device_id": 9})["record"] is None


def test_addresses_checked_on_prekey_receipt(pair: tuple[LibsignalPeer, LibsignalPeer]) -> None:
    alice, bob = pair
    a, b = ALICE_ACI, BOB_ACI
    start(alice, bob, a, b)
    first = send(alice, b, "first")
    # Each wrong address, on either side, is refused with the same generic
    # error (ErrorCode.Generic); only libsignal's log says why.
    mismatch, not_service_ids = "Address mismatch: ", "Locally supplied addresses not valid Service IDs: "
    for sender, local, why in (({**a, "device_id": 41}, None, mismatch),
                               ({"aci": BOB_UUID, "device_id": 42}, None, mismatch),
                               (a, {**b, "device_id": 80}, mismatch),
                               (a, {"pni": BOB_UUID, "device_id": 81}, mismatch),
                               (a, {"name": "bob", "device_id": 81}, not_service_ids)):
        result = try_once(bob, sender, first, **({} if local is None else {"local": local}))
        assert not result["ok"] and result["stage"] == "decrypt", (sender, local, result)
        assert result["error"] == "invalid PreKey message: decryption failed" and result["code"] == "0"
        assert any(line.startswith(why) for line in result["logs"]), result["logs"]
        assert any("MAC verification failed" in line for line in result["logs"]), result["logs"]
    # Field 6 is under the MAC: a changed sender device is refused even by a
    # receiver who expects the changed address, with no address mismatch.
    inner = inner_signal_message(first)
    device_at = first[1].index(inner) + inner.index(expected_addresses(a, b) or b"") + 17
    assert first[1][device_at] == a["device_id"]
    forged = (PREKEY, first[1][:device_at] + bytes([43]) + first[1][device_at + 1:])
    result = try_once(bob, {**a, "device_id": 43}, forged)
    assert not result["ok"] and not any("Address mismatch" in line for line in result["logs"])
    assert any("MAC verification failed" in line for line in result["logs"]), result["logs"]
    # Encrypting with an explicit local address writes that one into field 6
    # (alice as device 43 of her ACI, in the same session): bob reads it only
    # as from .43.
    other = send(alice, b, "as .43", local={**a, "device_id": 43})
    check_message(other, {**a, "device_id": 43}, b)
    assert not try_once(bob, a, other)["ok"]
    accepted = try_once(bob, {**a, "device_id": 43}, other)
    assert accepted["ok"] and bytes.fromhex(accepted["plaintext"]) == b"as .43"
    assert receive(bob, a, first) == "first"
    # A bare SignalMessage carries no addresses and is not checked against them.
    reply = send(bob, a, "reply")
    assert receive(alice, b, reply, local={"aci": ALICE_UUID, "device_id": 7}) == "reply"
    later = send(alice, b, "later")
    assert later[0] == WHISPER
    assert receive(bob, a, later, local={"name": "someone else"}) == "later"


# --- the record ----------------------------------------------------------------------


def test_record_dump_and_restore(pair: tuple[LibsignalPeer, LibsignalPeer]) -> None:
    alice, bob = pair
    a, b = ALICE_ACI, BOB_ACI
    bob.ok("init", registration_id=BOB_REG, local=b)
    alice.ok("init", registration_id=ALICE_REG, local=a)
    assert alice.ok("session_record", address=b)["record"] is None
    bundle = bob.ok("make_bundle", registration_id=BOB_REG, signed_prekey_id=SIGNED_ID,
                    prekey_id=None, kyber_prekey_id=KYBER_ID)
    del bundle["ok"]
    alice.ok("process_bundle", address=b, **bundle)
    # SessionRecord: field 1 the current SessionStructure, whose field 15 is the
    # SPQR state (from process_bundle on).
    record = bytes.fromhex(alice.ok("session_record", address=b)["record"])
    top = walk(record)
    assert [f for f, _, _ in top] == [1]
    state = as_dict(walk(top[0][2]))    # type: ignore[arg-type]
    info = alice.ok("session_info", address=b)
    assert sorted(state) == info["current_fields"] and 15 in state
    assert len(state[15][1]) == info["spqr_bytes"]   # type: ignore[arg-type]
    # Dump after a round trip, talk on, then put the dump back: the same bytes,
    # and a party taken back to it still reads what its peer sends next.
    assert receive(bob, a, send(alice, b, "one")) == "one"
    assert receive(alice, b, send(bob, a, "two")) == "two"
    dumped = alice.ok("session_record", address=b)["record"]
    assert len(bytes.fromhex(dumped)) > 1000                # SPQR keeps kilobytes of state
    late = send(bob, a, "three")
    assert receive(alice, b, late) == "three"
    assert alice.ok("session_record", address=b)["record"] != dumped
    alice.ok("set_session_record", address=b, record=dumped)
    assert alice.ok("session_record", address=b)["record"] == dumped
    assert receive(alice, b, late) == "three"               # decryptable again
    assert receive(bob, a, send(alice, b, "four")) == "four"
    # null removes the record; bytes that are not a record are refused.
    alice.ok("set_session_record", address=b, record=None)
    assert alice.ok("session_info", address=b) == {"ok": True, "exists": False}
    assert not alice("set_session_record", address=b, record="0a03ffffff")["ok"]


def test_private_keys(pair: tuple[LibsignalPeer, LibsignalPeer]) -> None:
    bob = pair[1]
    bob.ok("init", registration_id=BOB_REG)
    bob.ok("make_bundle", registration_id=BOB_REG, signed_prekey_id=SIGNED_ID,
           prekey_id=PREKEY_ID, kyber_prekey_id=KYBER_ID)
    keys = bob.ok("private_keys")
    assert len(bytes.fromhex(keys["identity"])) == 32
    assert [k["id"] for k in keys["prekeys"]] == [PREKEY_ID]
    assert [k["id"] for k in keys["signed_prekeys"]] == [SIGNED_ID]
    assert [k["id"] for k in keys["kyber_prekeys"]] == [KYBER_ID]
    assert {len(k["private"]) for k in keys["prekeys"] + keys["signed_prekeys"]} == {64}
    secret = bytes.fromhex(keys["kyber_prekeys"][0]["secret"])
    assert len(secret) == 1 + 3168 and secret[0] == 0x08      # Kyber1024


# --- logs --------------------------------------------------------------------------


def test_log_capture(pair: tuple[LibsignalPeer, LibsignalPeer]) -> None:
    alice, bob = pair
    alice.ok("init", registration_id=ALICE_REG)
    bob.ok("init", registration_id=BOB_REG)
    bundle = bob.ok("make_bundle", registration_id=BOB_REG, signed_prekey_id=SIGNED_ID,
                    prekey_id=PREKEY_ID, kyber_prekey_id=KYBER_ID, logs=True)
    del bundle["ok"]
    assert bundle.pop("logs") == []
    # No "logs", no capture.
    assert "logs" not in alice.ok("process_bundle", address="bob", **bundle)
    first = alice.ok("encrypt", address="bob", plaintext="00", logs=True)
    assert set(first["logs"][0]) == {"level", "target", "file", "line", "message"}
    messages = [line["message"] for line in first["logs"]]
    assert any("KeysUnsampled -> KeysSampled" in m for m in messages), messages
    assert {line["level"] for line in first["logs"]} <= {"error", "warn", "info"}
    received = bob.ok("decrypt", address="libsignal", type=first["type"], body=first["body"],
                      logs="info")
    assert any("spqr initiating state with version V1 and direction B2A" in line["message"]
               for line in received["logs"]), received["logs"]
    # A level filters; a failed command still returns what was logged.
    assert alice.ok("encrypt", address="bob", plaintext="01", logs="warn")["logs"] == []
    failed = bob("decrypt", address="libsignal", type=first["type"], body=first["body"],
                 logs=True)
    assert not failed["ok"] and isinstance(failed["logs"], list)
    assert not alice("encrypt", address="bob", plaintext="02", logs="loud")["ok"]


# --- addresses ---------------------------------------------------------------------


def test_address_specs(pair: tuple[LibsignalPeer, LibsignalPeer]) -> None:
    alice = pair[0]
    local = alice.ok("init", registration_id=ALICE_REG)["local"]
    assert local == {"name": "libsignal", "device_id": 1, "string": "libsignal.1",
                     "service_id": None, "kind": None, "fixed_width": None}
    assert alice.ok("address_info", address="bob")["string"] == "bob.1"
    for spec, kind, prefix in (({"aci": ALICE_UUID.upper(), "device_id": 7}, "aci", ""),
                               ({"pni": ALICE_UUID, "device_id": 7}, "pni", "PNI:"),
                               ({"name": ALICE_UUID, "device_id": 7}, "aci", ""),
                               ({"name": "PNI:" + ALICE_UUID, "device_id": 7}, "pni", "PNI:")):
        info = alice.ok("address_info", address=spec)
        assert info["kind"] == kind and info["service_id"] == prefix + ALICE_UUID
        assert info["string"] == f"{prefix}{ALICE_UUID}.7"
        assert bytes.fromhex(info["fixed_width"]) == fixed_width({kind: ALICE_UUID})
    for bad in ({"name": "bob", "device_id": 0}, {"name": "bob", "device_id": 128},
                {"aci": "not-a-uuid"}, {"name": "bob", "aci": ALICE_UUID}, {"device_id": 2},
                {"name": "bob", "device": 2}, None, ["bob"]):
        assert not alice("address_info", address=bad)["ok"], bad
    assert not alice("encrypt", plaintext="00")["ok"]        # no address
    # make_bundle's device id is the local address's, unless given.
    alice.ok("init", registration_id=ALICE_REG, local={"aci": ALICE_UUID, "device_id": 42})
    assert alice.ok("make_bundle", registration_id=ALICE_REG, signed_prekey_id=1, prekey_id=None,
                    kyber_prekey_id=2)["device_id"] == 42
    assert alice.ok("make_bundle", registration_id=ALICE_REG, signed_prekey_id=1, prekey_id=None,
                    kyber_prekey_id=2, device_id=5)["device_id"] == 5
    assert not alice("unknown_command")["ok"]
