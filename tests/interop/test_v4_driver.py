"""driver_v4.mjs: two libsignal-client 0.90.0 parties talking through Python.

These tests are about the driver and about libsignal's protocol version 4
wire format (PQXDH with Kyber1024), not about signalish: they pin the facts
signalish's v4 implementation relies on, read from bytes libsignal wrote.

A PreKeySignalMessage is 0x44 || protobuf:
  1 one-time prekey id (absent without one), 2 base key, 3 identity key,
  4 SignalMessage, 5 registration id, 6 signed prekey id, 7 Kyber prekey id,
  8 Kyber ciphertext (0x08 || 1568 bytes).
A SignalMessage is 0x44 || protobuf || 8-byte MAC:
  1 ratchet key, 2 counter, 3 previous counter, 4 ciphertext,
  5 SPQR message (0.90.0 always sends it; signalish will not).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from libsignal_peer import LibsignalPeer

ALICE_REG, BOB_REG, CAROL_REG = 1111, 2222, 3333
SIGNED_ID, PREKEY_ID, KYBER_ID = 5, 6, 7
VERSION_4 = 0x44
KYBER_KEY_LEN = KYBER_CT_LEN = 1 + 1568     # 0x08 (Kyber1024) || 1568 bytes
MAC_LEN = 8

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


# --- a tiny protobuf walker ------------------------------------------------------


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i
        if shift > 63:
            raise ValueError("varint too long")


def walk(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field, wire type, value) for each field, in order; strict about
    truncation and unknown wire types, so a wrong split of the bytes fails."""
    fields: list[tuple[int, int, int | bytes]] = []
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0")
        value: int | bytes
        if wire == VARINT:
            value, i = _varint(data, i)
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            if i + size > len(data):
                raise ValueError("truncated fixed field")
            value, i = int.from_bytes(data[i:i + size], "little"), i + size
        elif wire == LENGTH:
            size, i = _varint(data, i)
            if i + size > len(data):
                raise ValueError("truncated length-delimited field")
            value, i = data[i:i + size], i + size
        else:
            raise ValueError(f"wire type {wire}")
        fields.append((field, wire, value))
    return fields


def as_dict(fields: list[tuple[int, int, int | bytes]]) -> dict[int, tuple[int, int | bytes]]:
    numbers = [f for f, _, _ in fields]
    assert len(numbers) == len(set(numbers)), f"repeated field in {numbers}"
    return {f: (w, v) for f, w, v in fields}


def test_walker() -> None:
    assert walk(bytes.fromhex("08960112026869")) == [(1, VARINT, 150), (2, LENGTH, b"hi")]
    for broken in ("0896", "120368", "0b", "00"):
        with pytest.raises(ValueError):
            walk(bytes.fromhex(broken))


def signal_message_fields(message: bytes) -> dict[int, tuple[int, int | bytes]]:
    assert message[0] == VERSION_4, message[:1].hex()
    walked = walk(message[1:-MAC_LEN])
    numbers = [f for f, _, _ in walked]
    assert numbers == sorted(numbers), numbers      # libsignal writes fields in order
    fields = as_dict(walked)
    wire, key = fields[1]
    assert wire == LENGTH and isinstance(key, bytes) and len(key) == 33 and key[0] == 0x05
    assert fields[2][0] == VARINT and fields[3][0] == VARINT
    assert fields[4][0] == LENGTH
    return fields


def prekey_message_fields(message: bytes) -> dict[int, tuple[int, int | bytes]]:
    assert message[0] == VERSION_4, message[:1].hex()
    return as_dict(walk(message[1:]))


# --- parties -----------------------------------------------------------------------


@pytest.fixture
def peers() -> Iterator[dict[str, LibsignalPeer]]:
    parties: dict[str, LibsignalPeer] = {}
    try:
        for name, registration_id in (("alice", ALICE_REG), ("bob", BOB_REG),
                                      ("carol", CAROL_REG)):
            parties[name] = LibsignalPeer("0.90.0")
            parties[name].ok("init", registration_id=registration_id)
        yield parties
    finally:
        for party in parties.values():
            party.close()


def bob_bundle(bob: LibsignalPeer, *, one_time: bool, last_resort: bool) -> dict[str, Any]:
    bundle = bob.ok("make_bundle", registration_id=BOB_REG, signed_prekey_id=SIGNED_ID,
                    prekey_id=PREKEY_ID if one_time else None, kyber_prekey_id=KYBER_ID,
                    last_resort=last_resort)
    del bundle["ok"]
    return bundle


def send(sender: LibsignalPeer, to: str, text: str) -> tuple[int, bytes]:
    answer = sender.ok("encrypt", address=to, plaintext=text.encode().hex())
    return answer["type"], bytes.fromhex(answer["body"])


def receive(receiver: LibsignalPeer, sender: str, message: tuple[int, bytes]) -> str:
    answer = receiver.ok("decrypt", address=sender, type=message[0], body=message[1].hex())
    return bytes.fromhex(answer["plaintext"]).decode()


def refused(receiver: LibsignalPeer, sender: str, message: tuple[int, bytes]) -> str:
    answer = receiver("decrypt", address=sender, type=message[0], body=message[1].hex())
    assert not answer["ok"], answer
    return str(answer["error"])


# --- the bundle --------------------------------------------------------------------


@pytest.mark.parametrize("one_time", [True, False])
def test_bundle_fields(peers: dict[str, LibsignalPeer], one_time: bool) -> None:
    alice, bob = peers["alice"], peers["bob"]
    bundle = bob_bundle(bob, one_time=one_time, last_resort=False)
    kyber = bytes.fromhex(bundle["kyber_prekey"])
    assert len(kyber) == KYBER_KEY_LEN and kyber[0] == 0x08
    assert len(bytes.fromhex(bundle["kyber_signature"])) == 64
    assert bundle["kyber_prekey_id"] == KYBER_ID and bundle["last_resort"] is False
    assert (bundle["prekey_id"], bundle["prekey"] is None) == \
        ((PREKEY_ID, False) if one_time else (None, True))
    # Both signatures are over the serialized keys, type byte included.
    for key, signature in (("signed_prekey", "signature"), ("kyber_prekey", "kyber_signature")):
        assert alice.ok("verify", key=bundle["identity"], message=bundle[key],
                        signature=bundle[signature])["valid"] is True
        assert alice.ok("verify", key=bundle["identity"], message=bundle[key][2:],
                        signature=bundle[signature])["valid"] is False
    # A bad Kyber signature, or a missing Kyber key, and process_bundle refuses.
    bad = bytearray(bytes.fromhex(bundle["kyber_signature"]))
    bad[10] ^= 1
    assert not alice("process_bundle", address="bob", **{**bundle, "kyber_signature": bad.hex()})["ok"]
    assert not alice("process_bundle", address="bob", **{**bundle, "kyber_prekey": None})["ok"]
    assert not alice.ok("session_info", address="bob")["exists"]
    alice.ok("process_bundle", address="bob", **bundle)
    # The store holds what was issued; a second bundle reuses the keys by id.
    stored = bob.ok("stored_prekeys")
    assert stored["signed_prekeys"] == [SIGNED_ID]
    assert stored["prekeys"] == ([PREKEY_ID] if one_time else [])
    assert stored["kyber_prekeys"] == [{"id": KYBER_ID, "last_resort": False}]
    again = bob_bundle(bob, one_time=False, last_resort=False)
    assert (again["kyber_prekey"], again["signed_prekey"]) == \
        (bundle["kyber_prekey"], bundle["signed_prekey"])
    assert not bob("make_bundle", registration_id=BOB_REG, signed_prekey_id=SIGNED_ID,
                   prekey_id=None, kyber_prekey_id=KYBER_ID, last_resort=True)["ok"]


def test_sign_and_verify(peers: dict[str, LibsignalPeer]) -> None:
    alice, bob = peers["alice"], peers["bob"]
    identity = bob_bundle(bob, one_time=False, last_resort=True)["identity"]
    signature = bob.ok("sign", message=b"any message".hex())["signature"]
    assert alice.ok("verify", key=identity, message=b"any message".hex(),
                    signature=signature)["valid"] is True
    assert alice.ok("verify", key=identity, message=b"any messagf".hex(),
                    signature=signature)["valid"] is False


# --- conversations -----------------------------------------------------------------


@pytest.mark.parametrize("last_resort", [False, True], ids=["one-time-kyber", "last-resort-kyber"])
@pytest.mark.parametrize("one_time", [True, False], ids=["with-ec-prekey", "no-ec-prekey"])
def test_conversation(peers: dict[str, LibsignalPeer], one_time: bool, last_resort: bool) -> None:
    alice, bob = peers["alice"], peers["bob"]
    alice.ok("process_bundle", address="bob", **bob_bundle(bob, one_time=one_time,
                                                           last_resort=last_resort))
    first = [send(alice, "bob", f"hello bob {i}") for i in range(3)]
    assert [kind for kind, _ in first] == [3, 3, 3]
    assert receive(bob, "alice", first[0]) == "hello bob 0"
    assert receive(bob, "alice", first[2]) == "hello bob 2"
    # The one-time keys are gone after the first message; a last-resort one stays.
    stored = bob.ok("stored_prekeys")
    assert stored["prekeys"] == []
    assert stored["kyber_prekeys"] == ([{"id": KYBER_ID, "last_resort": True}] if last_resort else [])
    assert stored["used_last_resort"] == (1 if last_resort else 0)
    # Later PreKeySignalMessages of the same session need neither key again.
    reply = send(bob, "alice", "hello alice")
    assert reply[0] == 2 and receive(alice, "bob", reply) == "hello alice"
    after = send(alice, "bob", "now a SignalMessage")
    assert after[0] == 2 and receive(bob, "alice", after) == "now a SignalMessage"
    assert receive(bob, "alice", first[1]) == "hello bob 1"
    schedule = random.Random(f"{one_time}{last_resort}")
    for number in range(40):
        sender, receiver, names = ((alice, bob, ("alice", "bob")) if schedule.random() < 0.5
                                   else (bob, alice, ("bob", "alice")))
        text = f"{names[0]} #{number} " + "x" * schedule.randint(0, 200)
        message = send(sender, names[1], text)
        assert message[0] == 2 and receive(receiver, names[0], message) == text
    for party, peer in ((alice, "bob"), (bob, "alice")):
        info = party.ok("session_info", address=peer)
        assert info["has_current"] and info["spqr"] and info["previous"] == 0


def test_out_of_order_across_dh_steps(peers: dict[str, LibsignalPeer]) -> None:
    alice, bob = peers["alice"], peers["bob"]
    alice.ok("process_bundle", address="bob", **bob_bundle(bob, one_time=False, last_resort=True))

    def bulk(sender: LibsignalPeer, to: str, text: str, count: int) -> list[tuple[int, bytes]]:
        answer = sender.ok("encrypt_bulk", address=to, text=text, count=count,
                           keep=list(range(count)))
        return [(m["type"], bytes.fromhex(m["body"])) for m in answer["messages"]]

    a1 = bulk(alice, "bob", "a1-", 4)
    assert [kind for kind, _ in a1] == [3] * 4
    assert receive(bob, "alice", a1[3]) == "a1-3"            # bob skips a1-0..2
    b1 = bulk(bob, "alice", "b1-", 4)
    assert receive(alice, "bob", b1[2]) == "b1-2"            # alice skips b1-0, b1-1
    a2 = bulk(alice, "bob", "a2-", 3)                        # a new DH step
    assert [kind for kind, _ in a2] == [2] * 3
    assert receive(bob, "alice", a2[1]) == "a2-1"
    b2 = bulk(bob, "alice", "b2-", 3)
    late: list[tuple[LibsignalPeer, str, tuple[int, bytes], str]] = (
        [(bob, "alice", m, f"a1-{i}") for i, m in enumerate(a1) if i != 3]
        + [(bob, "alice", m, f"a2-{i}") for i, m in enumerate(a2) if i != 1]
        + [(alice, "bob", m, f"b1-{i}") for i, m in enumerate(b1) if i != 2]
        + [(alice, "bob", m, f"b2-{i}") for i, m in enumerate(b2)])
    random.Random(4).shuffle(late)
    for receiver, sender, message, text in late:
        assert receive(receiver, sender, message) == text
    # Each message once: a second delivery is refused.
    assert "old counter" in refused(bob, "alice", a1[0])
    assert "old counter" in refused(alice, "bob", b2[0])


def test_decrypt_each_undoes_every_attempt(peers: dict[str, LibsignalPeer]) -> None:
    alice, bob = peers["alice"], peers["bob"]
    alice.ok("process_bundle", address="bob", **bob_bundle(bob, one_time=True, last_resort=False))
    messages = [send(alice, "bob", f"m{i}") for i in range(3)]
    wire = [{"type": kind, "body": body.hex()} for kind, body in messages]
    # Undone: each attempt meets the party as it was (one-time keys still there).
    results = bob.ok("decrypt_each", address="alice", messages=wire + wire[:1],
                     keep_state=False)["results"]
    assert [r["ok"] for r in results] == [True] * 4
    assert [bytes.fromhex(r["plaintext"]) for r in results] == [b"m0", b"m1", b"m2", b"m0"]
    assert not bob.ok("session_info", address="alice")["exists"]
    assert bob.ok("stored_prekeys")["kyber_prekeys"] == [{"id": KYBER_ID, "last_resort": False}]
    # Kept: the repeat is a duplicate.
    results = bob.ok("decrypt_each", address="alice", messages=wire + wire[:1],
                     keep_state=True)["results"]
    assert [r["ok"] for r in results] == [True, True, True, False]
    assert results[3]["stage"] == "decrypt"
    assert bob.ok("stored_prekeys")["kyber_prekeys"] == []
    garbage = bob.ok("decrypt_each", address="alice", messages=[{"type": 2, "body": "44"}],
                     keep_state=False)["results"][0]
    assert garbage["ok"] is False and garbage["stage"] == "deserialize"


# --- the Kyber prekey store rule -----------------------------------------------------


def test_last_resort_kyber_replay_refused(peers: dict[str, LibsignalPeer]) -> None:
    alice, bob, carol = peers["alice"], peers["bob"], peers["carol"]
    bundle = bob_bundle(bob, one_time=False, last_resort=True)
    alice.ok("process_bundle", address="bob", **bundle)
    first = send(alice, "bob", "once")
    assert receive(bob, "alice", first) == "once"
    # Replayed to the live session: libsignal itself refuses (a duplicate).
    assert "old counter" in refused(bob, "alice", first)
    # Replayed to a party without that session (lost, or a fresh copy): only the
    # store's memory of (kyber id, signed prekey id, base key) refuses it.
    assert bob.ok("delete_session", address="alice")["deleted"] is True
    error = refused(bob, "alice", first)
    assert "markKyberPreKeyUsed" in error and "reused" in error
    assert bob.ok("session_record", address="alice")["record"] is None
    # The last-resort key itself stays usable for new sessions (new base keys).
    carol.ok("process_bundle", address="bob", **bundle)
    assert receive(bob, "carol", send(carol, "bob", "from carol")) == "from carol"
    alice.ok("process_bundle", address="bob", **bundle)
    second = send(alice, "bob", "new session")
    assert second[0] == 3
    assert as_dict(walk(second[1][1:]))[2] != as_dict(walk(first[1][1:]))[2]
    assert receive(bob, "alice", second) == "new session"
    stored = bob.ok("stored_prekeys")
    assert stored["kyber_prekeys"] == [{"id": KYBER_ID, "last_resort": True}]
    assert stored["used_last_resort"] == 3


def test_one_time_kyber_key_gone_after_use(peers: dict[str, LibsignalPeer]) -> None:
    alice, bob, carol = peers["alice"], peers["bob"], peers["carol"]
    bundle = bob_bundle(bob, one_time=False, last_resort=False)
    alice.ok("process_bundle", address="bob", **bundle)
    carol.ok("process_bundle", address="bob", **bundle)
    first = send(alice, "bob", "once")
    assert receive(bob, "alice", first) == "once"
    assert bob.ok("stored_prekeys")["kyber_prekeys"] == []
    bob.ok("delete_session", address="alice")
    assert f"no kyber prekey {KYBER_ID}" in refused(bob, "alice", first)
    # Anyone else who fetched the same bundle is refused too.
    assert f"no kyber prekey {KYBER_ID}" in refused(bob, "carol", send(carol, "bob", "late"))


# --- the wire format -----------------------------------------------------------------


@pytest.mark.parametrize("one_time", [True, False], ids=["with-ec-prekey", "no-ec-prekey"])
def test_wire_facts(peers: dict[str, LibsignalPeer], one_time: bool) -> None:
    alice, bob = peers["alice"], peers["bob"]
    bundle = bob_bundle(bob, one_time=one_time, last_resort=False)
    alice_identity = alice.ok("init", registration_id=ALICE_REG)["identity"]   # a fresh alice
    alice.ok("process_bundle", address="bob", **bundle)
    kind, prekey_message = send(alice, "bob", "first")
    assert kind == 3 and prekey_message[0] == VERSION_4
    walked = walk(prekey_message[1:])
    numbers = [f for f, _, _ in walked]
    expected = [1, 2, 3, 4, 5, 6, 7, 8] if one_time else [2, 3, 4, 5, 6, 7, 8]
    assert numbers == expected                      # in this order, 1 only with a one-time prekey
    fields = as_dict(walked)
    if one_time:
        assert fields[1] == (VARINT, PREKEY_ID)
    base_key = fields[2][1]
    assert fields[2][0] == LENGTH and isinstance(base_key, bytes)
    assert len(base_key) == 33 and base_key[0] == 0x05
    assert fields[3] == (LENGTH, bytes.fromhex(alice_identity))
    assert fields[5] == (VARINT, ALICE_REG)
    assert fields[6] == (VARINT, SIGNED_ID)
    assert fields[7] == (VARINT, KYBER_ID)
    wire, kyber_ct = fields[8]
    assert wire == LENGTH and isinstance(kyber_ct, bytes)
    assert len(kyber_ct) == KYBER_CT_LEN and kyber_ct[0] == 0x08
    # The inner SignalMessage: the same layout as a bare one.
    wire, inner = fields[4]
    assert wire == LENGTH and isinstance(inner, bytes)
    inner_fields = signal_message_fields(inner)
    assert sorted(inner_fields) == [1, 2, 3, 4, 5]
    # Counter and previous counter are written even when zero.
    assert inner_fields[2] == (VARINT, 0) and inner_fields[3] == (VARINT, 0)
    # A second message before any reply: same base key and Kyber ciphertext.
    again = as_dict(walk(send(alice, "bob", "second")[1][1:]))
    assert again[2] == fields[2] and again[8] == fields[8]
    assert as_dict(walk(again[4][1][1:-MAC_LEN]))[2] == (VARINT, 1)   # type: ignore[index]
    assert receive(bob, "alice", (3, prekey_message)) == "first"
    # SignalMessages both ways: 0x44, fields 1..4 and 0.90.0's field 5, 8-byte MAC.
    for sender, to, receiver in ((bob, "alice", alice), (alice, "bob", bob)) * 3:
        kind, message = send(sender, to, f"to {to}")
        assert kind == 2
        signal_fields = signal_message_fields(message)
        assert sorted(signal_fields) == [1, 2, 3, 4, 5]
        pq_wire, pq = signal_fields[5]
        assert pq_wire == LENGTH and isinstance(pq, bytes) and len(pq) > 0
        ciphertext = signal_fields[4][1]
        assert isinstance(ciphertext, bytes) and len(ciphertext) % 16 == 0
        assert receive(receiver, "bob" if sender is bob else "alice", (kind, message)) == f"to {to}"
    # A flipped MAC byte is refused.
    kind, message = send(alice, "bob", "mac")
    assert "decryption failed" in refused(bob, "alice",
                                         (kind, message[:-1] + bytes([message[-1] ^ 1])))
    assert receive(bob, "alice", (kind, message)) == "mac"


def test_session_record_and_spqr_state(peers: dict[str, LibsignalPeer]) -> None:
    """session_info decodes SessionRecord: field 1 is the current session,
    field 15 inside it the SPQR state (present between two 0.90.0 parties)."""
    alice, bob = peers["alice"], peers["bob"]
    assert alice.ok("session_record", address="bob")["record"] is None
    assert alice.ok("session_info", address="bob") == {"ok": True, "exists": False}
    alice.ok("process_bundle", address="bob", **bob_bundle(bob, one_time=True, last_resort=False))
    info = alice.ok("session_info", address="bob")
    assert info["exists"] and info["has_current"] and info["spqr"]
    record = bytes.fromhex(alice.ok("session_record", address="bob")["record"])
    top = walk(record)
    assert [f for f, _, _ in top] == [1]
    state = as_dict(walk(top[0][2]))    # type: ignore[arg-type]
    assert sorted(state) == info["current_fields"]
    assert len(state[15][1]) == info["spqr_bytes"]   # type: ignore[arg-type]
    receive(bob, "alice", send(alice, "bob", "hi"))
    receive(alice, "bob", send(bob, "alice", "hi back"))
    for party, peer in ((alice, "bob"), (bob, "alice")):
        info = party.ok("session_info", address=peer)
        assert info["spqr"] and info["spqr_bytes"] > 0 and 15 in info["current_fields"]
    # A new session archives the old one: record field 2.
    alice.ok("process_bundle", address="bob", **bob_bundle(bob, one_time=False, last_resort=False))
    assert alice.ok("session_info", address="bob")["previous"] == 1
