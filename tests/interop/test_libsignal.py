"""signalish's libsignal_v3 profile against @signalapp/libsignal-client 0.72.1.

Every message here crosses between the two implementations: libsignal must
decrypt what signalish wrote and the reverse, byte formats and all.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from libsignal_peer import LibsignalPeer
from signalish._wire_v3 import (
    V3Frame,
    V3PreKeyFrame,
    parse_v3,
    prekey_message_v3,
    signal_message_body,
)
from signalish import (
    DeterministicRandom,
    IdentityKey,
    IdentityKeyPair,
    LIBSIGNAL_V3,
    MemoryStore,
    OneTimePreKeyPublic,
    PreKeyBundle,
    PreKeyRing,
    PublicKey,
    SessionManager,
    SessionOptions,
    SignedPreKeyPublic,
)
from signalish.fingerprint import FingerprintMatch, SafetyNumber, compare_scannable
from signalish.errors import AuthenticationError, InvalidSignature

ALICE_REG, BOB_REG = 1111, 2222


def signalish_party(seed: bytes, registration_id: int) -> tuple[SessionManager, PreKeyRing]:
    rng = DeterministicRandom(seed)
    identity = IdentityKeyPair.generate(rng)
    ring = PreKeyRing.create(identity, LIBSIGNAL_V3, rng, now=0, registration_id=registration_id)
    ring.generate_one_time_prekeys(5, rng)
    store = MemoryStore()
    with store.transaction():
        store.save_prekeys(ring.to_bytes())
    manager = SessionManager(identity, store, LIBSIGNAL_V3, rng=rng,
                             options=SessionOptions.libsignal(registration_id))
    return manager, ring


def bundle_fields(bundle: PreKeyBundle) -> dict[str, Any]:
    """What a server would hand libsignal: keys in libsignal's 33-byte form."""
    enc = LIBSIGNAL_V3.encode_ec
    one_time = bundle.one_time_prekey
    return {
        "registration_id": bundle.registration_id, "device_id": bundle.device_id,
        "prekey_id": None if one_time is None else one_time.key_id,
        "prekey": None if one_time is None else enc(one_time.public_key.public_bytes_raw()).hex(),
        "signed_prekey_id": bundle.signed_prekey.key_id,
        "signed_prekey": enc(bundle.signed_prekey.public_key.public_bytes_raw()).hex(),
        "signature": bundle.signed_prekey.signature.hex(),
        "identity": bundle.identity_key.encode(LIBSIGNAL_V3).hex(),
    }


def bundle_from_libsignal(fields: dict[str, Any]) -> PreKeyBundle:
    dec = LIBSIGNAL_V3.decode_ec
    return PreKeyBundle(
        identity_key=IdentityKey.decode(bytes.fromhex(fields["identity"]), LIBSIGNAL_V3),
        signed_prekey=SignedPreKeyPublic(
            fields["signed_prekey_id"],
            PublicKey.from_public_bytes(dec(bytes.fromhex(fields["signed_prekey"]))),
            bytes.fromhex(fields["signature"])),
        one_time_prekey=OneTimePreKeyPublic(
            fields["prekey_id"], PublicKey.from_public_bytes(dec(bytes.fromhex(fields["prekey"]))), None),
        registration_id=fields["registration_id"], device_id=fields["device_id"])


def to_libsignal(libsignal: LibsignalPeer, manager: SessionManager, message: bytes,
                 sender: str = "alice") -> str:
    """libsignal decrypts a message from ``sender`` (its name for signalish)."""
    answer = libsignal.ok("decrypt", address=sender, type=manager.message_type(message),
                          body=message.hex())
    return bytes.fromhex(answer["plaintext"]).decode()


def from_libsignal(libsignal: LibsignalPeer, text: str, to: str = "alice") -> tuple[int, bytes]:
    answer = libsignal.ok("encrypt", address=to, plaintext=text.encode().hex())
    return answer["type"], bytes.fromhex(answer["body"])


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes((data[index] ^ 0x01,)) + data[index + 1:]


# --- byte formats ---------------------------------------------------------------


def test_signalish_encodes_libsignal_messages_byte_for_byte(libsignal: LibsignalPeer) -> None:
    """Parse libsignal's own PreKeySignalMessage and SignalMessage, re-encode
    them from the parsed fields with signalish's encoder: identical bytes."""
    libsignal.ok("init", registration_id=ALICE_REG)
    bob, ring = signalish_party(b"bytes-bob", BOB_REG)
    libsignal.ok("process_bundle", address="bob", **bundle_fields(ring.issue_bundle()))
    messages = [from_libsignal(libsignal, text, to="bob")[1] for text in ("a", "b" * 100)]
    bob.decrypt("alice", messages[0], now=1)
    libsignal.ok("decrypt", address="bob", type=2,
                 body=bob.encrypt("alice", b"reply").hex())
    messages.append(from_libsignal(libsignal, "c" * 33, to="bob")[1])
    assert [bob.message_type(m) for m in messages] == [3, 3, 2]
    for message in messages:
        frame = parse_v3(message, 1 << 20)
        inner = frame.inner if isinstance(frame, V3PreKeyFrame) else frame
        assert isinstance(inner, V3Frame)
        rebuilt = signal_message_body(inner.ratchet_key, inner.pn, inner.n, inner.ciphertext)
        assert rebuilt + inner.mac == inner.signed + inner.mac
        if isinstance(frame, V3PreKeyFrame):
            assert prekey_message_v3(frame.header, frame.registration_id,
                                     inner.signed + inner.mac) == message
            assert frame.registration_id == ALICE_REG
        else:
            assert rebuilt + inner.mac == message


# --- signatures ------------------------------------------------------------------


def test_libsignal_verifies_signalish_signatures(libsignal: LibsignalPeer) -> None:
    libsignal.ok("init", registration_id=ALICE_REG)
    _, ring = signalish_party(b"sig-bob", BOB_REG)
    fields = bundle_fields(ring.issue_bundle())
    message = bytes.fromhex(fields["signed_prekey"])
    assert libsignal.ok("verify", key=fields["identity"], message=message.hex(),
                        signature=fields["signature"])["valid"] is True
    bad = flip(bytes.fromhex(fields["signature"]), 5).hex()
    assert libsignal.ok("verify", key=fields["identity"], message=message.hex(),
                        signature=bad)["valid"] is False
    assert not libsignal("process_bundle", address="bob", **{**fields, "signature": bad})["ok"]
    libsignal.ok("process_bundle", address="bob", **fields)


def test_signalish_verifies_libsignal_signatures(libsignal: LibsignalPeer) -> None:
    libsignal.ok("init", registration_id=BOB_REG)
    fields = libsignal.ok("make_bundle", registration_id=BOB_REG, signed_prekey_id=3, prekey_id=4)
    bundle = bundle_from_libsignal(fields)
    bundle.verify(LIBSIGNAL_V3)
    signature = bytes.fromhex(fields["signature"])
    for index in (0, 31, 32, 63):
        forged = bundle_from_libsignal({**fields, "signature": flip(signature, index).hex()})
        with pytest.raises(InvalidSignature):
            forged.verify(LIBSIGNAL_V3)
    # libsignal signs arbitrary messages the same way.
    text = b"any message at all"
    signed = libsignal.ok("sign", message=text.hex())["signature"]
    assert bundle.identity_key.verify_signature(text, bytes.fromhex(signed), LIBSIGNAL_V3)


# --- sessions, each side initiating --------------------------------------------------


def test_signalish_initiates(libsignal: LibsignalPeer) -> None:
    libsignal.ok("init", registration_id=BOB_REG)
    alice, _ = signalish_party(b"init-alice", ALICE_REG)
    bundle = bundle_from_libsignal(
        libsignal.ok("make_bundle", registration_id=BOB_REG, signed_prekey_id=1, prekey_id=2))
    alice.initiate("bob", bundle)
    first = [alice.encrypt("bob", b"hello libsignal %d" % i) for i in range(3)]
    assert [alice.message_type(m) for m in first] == [3, 3, 3]
    assert to_libsignal(libsignal, alice, first[0]) == "hello libsignal 0"
    assert to_libsignal(libsignal, alice, first[2]) == "hello libsignal 2"
    kind, reply = from_libsignal(libsignal, "hello signalish")
    assert kind == 2 and alice.message_type(reply) == 2
    assert alice.decrypt("bob", reply, now=1) == b"hello signalish"
    after = alice.encrypt("bob", b"now a SignalMessage")
    assert alice.message_type(after) == 2
    assert to_libsignal(libsignal, alice, after) == "now a SignalMessage"
    assert to_libsignal(libsignal, alice, first[1]) == "hello libsignal 1"


def test_libsignal_initiates(libsignal: LibsignalPeer) -> None:
    libsignal.ok("init", registration_id=ALICE_REG)
    bob, ring = signalish_party(b"init-bob", BOB_REG)
    libsignal.ok("process_bundle", address="bob", **bundle_fields(ring.issue_bundle()))
    kind, first = from_libsignal(libsignal, "hi from libsignal", to="bob")
    assert kind == 3
    assert bob.decrypt("alice", first, now=1) == b"hi from libsignal"
    reply = bob.encrypt("alice", b"hi from signalish")
    assert to_libsignal(libsignal, bob, reply, sender="bob") == "hi from signalish"
    kind, second = from_libsignal(libsignal, "second", to="bob")
    assert kind == 2 and bob.decrypt("alice", second, now=2) == b"second"


# --- a long conversation, and out-of-order delivery -------------------------------


def test_200_message_conversation(libsignal: LibsignalPeer) -> None:
    libsignal.ok("init", registration_id=BOB_REG)
    alice, _ = signalish_party(b"long-alice", ALICE_REG)
    alice.initiate("bob", bundle_from_libsignal(
        libsignal.ok("make_bundle", registration_id=BOB_REG, signed_prekey_id=1, prekey_id=2)))
    schedule = random.Random(200)
    # One-way runs of random length from either side, then strict alternation.
    turns = ["alice"] * 5
    while len(turns) < 150:
        turns += [schedule.choice(["alice", "bob"])] * schedule.randint(1, 12)
    turns = turns[:150] + ["alice", "bob"] * 25
    for number, sender in enumerate(turns):
        text = f"{sender} #{number} " + "x" * schedule.randint(0, 300)
        if sender == "alice":
            assert to_libsignal(libsignal, alice, alice.encrypt("bob", text.encode())) == text
        else:
            _, message = from_libsignal(libsignal, text)
            assert alice.decrypt("bob", message, now=number).decode() == text
    assert len(turns) == 200


def test_out_of_order_across_dh_steps_both_ways(libsignal: LibsignalPeer) -> None:
    libsignal.ok("init", registration_id=BOB_REG)
    alice, _ = signalish_party(b"ooo-alice", ALICE_REG)
    alice.initiate("bob", bundle_from_libsignal(
        libsignal.ok("make_bundle", registration_id=BOB_REG, signed_prekey_id=1, prekey_id=2)))
    a1 = [alice.encrypt("bob", f"a1-{i}".encode()) for i in range(4)]
    assert to_libsignal(libsignal, alice, a1[3]) == "a1-3"   # libsignal skips a1-0..2
    b1 = [from_libsignal(libsignal, f"b1-{i}")[1] for i in range(4)]
    assert alice.decrypt("bob", b1[2], now=1) == b"b1-2"     # signalish skips b1-0, b1-1
    a2 = [alice.encrypt("bob", f"a2-{i}".encode()) for i in range(3)]  # new DH step
    assert to_libsignal(libsignal, alice, a2[1]) == "a2-1"
    b2 = [from_libsignal(libsignal, f"b2-{i}")[1] for i in range(3)]   # libsignal's new step
    # Late messages from the previous chains, in scrambled order.
    assert alice.decrypt("bob", b2[2], now=2) == b"b2-2"
    assert alice.decrypt("bob", b1[0], now=2) == b"b1-0"
    assert to_libsignal(libsignal, alice, a1[0]) == "a1-0"
    assert alice.decrypt("bob", b1[3], now=2) == b"b1-3"
    assert to_libsignal(libsignal, alice, a2[0]) == "a2-0"
    assert to_libsignal(libsignal, alice, a1[2]) == "a1-2"
    assert alice.decrypt("bob", b2[0], now=2) == b"b2-0"
    assert alice.decrypt("bob", b1[1], now=2) == b"b1-1"
    assert to_libsignal(libsignal, alice, a1[1]) == "a1-1"
    assert to_libsignal(libsignal, alice, a2[2]) == "a2-2"
    assert alice.decrypt("bob", b2[1], now=2) == b"b2-1"


def test_tampered_messages_refused_by_both(libsignal: LibsignalPeer) -> None:
    libsignal.ok("init", registration_id=ALICE_REG)
    bob, ring = signalish_party(b"tamper-bob", BOB_REG)
    libsignal.ok("process_bundle", address="bob", **bundle_fields(ring.issue_bundle()))
    _, first = from_libsignal(libsignal, "first", to="bob")
    bob.decrypt("alice", first, now=1)
    # signalish -> libsignal: a flipped ciphertext bit, then a flipped MAC bit.
    message = bob.encrypt("alice", b"untouched")
    for index in (len(message) - 20, len(message) - 1):
        refused = libsignal("decrypt", address="bob", type=2, body=flip(message, index).hex())
        assert not refused["ok"]
    assert to_libsignal(libsignal, bob, message, sender="bob") == "untouched"
    # libsignal -> signalish.
    _, theirs = from_libsignal(libsignal, "also untouched", to="bob")
    for index in (len(theirs) - 20, len(theirs) - 1):
        with pytest.raises(AuthenticationError):
            bob.decrypt("alice", flip(theirs, index), now=2)
    assert bob.decrypt("alice", theirs, now=2) == b"also untouched"


# --- safety numbers ------------------------------------------------------------------


@pytest.mark.parametrize("iterations,version", [(5_200, 2), (5_200, 1), (1_024, 2)])
def test_safety_numbers_equal_libsignal_fingerprints(libsignal: LibsignalPeer,
                                                      iterations: int, version: int) -> None:
    rng = DeterministicRandom(b"fingerprints%d%d" % (iterations, version))
    for case in range(3):
        alice, bob = IdentityKeyPair.generate(rng).public, IdentityKeyPair.generate(rng).public
        alice_id, bob_id = rng.random_bytes(16), f"+1415555{case:04d}".encode()
        ours = SafetyNumber.compute(alice, alice_id, bob, bob_id, iterations=iterations,
                                    version=version)
        theirs = libsignal.ok("fingerprint", iterations=iterations, version=version,
                              local_id=alice_id.hex(), local_key=alice.encode(LIBSIGNAL_V3).hex(),
                              remote_id=bob_id.hex(), remote_key=bob.encode(LIBSIGNAL_V3).hex())
        assert ours.displayable == theirs["displayable"]
        assert ours.scannable.hex() == theirs["scannable"]
        # Bob's view, computed by libsignal, matches Alice's when scanned.
        bobs = libsignal.ok("fingerprint", iterations=iterations, version=version,
                            local_id=bob_id.hex(), local_key=bob.encode(LIBSIGNAL_V3).hex(),
                            remote_id=alice_id.hex(), remote_key=alice.encode(LIBSIGNAL_V3).hex())
        assert compare_scannable(ours, bytes.fromhex(bobs["scannable"])) is FingerprintMatch.MATCH
        assert libsignal.ok("compare_scannable", ours=bobs["scannable"],
                            theirs=ours.scannable.hex())["match"] is True


def test_safety_number_vectors_match_libsignal(libsignal: LibsignalPeer) -> None:
    """vectors/safety_numbers.json, recomputed by libsignal-client."""
    import json
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "vectors" / "safety_numbers.json"
    for case in json.loads(path.read_text())["cases"]:
        theirs = libsignal.ok("fingerprint", iterations=case["iterations"],
                              version=case["version"], local_id=case["local_id"],
                              local_key=case["local_key"], remote_id=case["remote_id"],
                              remote_key=case["remote_key"])
        assert theirs["displayable"] == case["displayable"]
        assert theirs["scannable"] == case["scannable"]
