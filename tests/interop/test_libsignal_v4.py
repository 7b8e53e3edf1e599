"""signalish's libsignal_v4 profile against libsignal-client 0.90.0.

Every message here crosses between the two implementations: libsignal must
decrypt what signalish wrote and the reverse, PQXDH with Kyber1024 and all
(driver_v4.mjs plays the libsignal party; test_v4_driver.py pins the wire
facts this file relies on).

0.90.0 offers SPQR (SignalMessage field 5).  signalish never writes field 5
and only carries it under the MAC when it receives one; 0.90.0 then goes on
without SPQR.  The SPQR tests below check that from libsignal's side.

What libsignal 0.90.0 did when this was written (for the report; the version
byte tests compare it live with signalish):

* It reads only the high nibble of a version byte, and 0x40..0x4f decrypt for
  both message types and for the SignalMessage inside a PreKeySignalMessage.
  High nibble 0..2: "ciphertext version was too old" and 5..15 "ciphertext
  version was unrecognized", both as the message is parsed; 3 parses, then a
  PreKeySignalMessage's outer 0x3? is refused with "invalid PreKey message:
  X3DH no longer supported" and a SignalMessage (bare or inside) with
  "decryption failed".  signalish's v4 parser takes 0x40..0x4f and refuses
  every other byte as UnknownVersion.
* A repeated message in a live session: "old counter"; a PreKeySignalMessage
  that used a last-resort Kyber prekey and no one-time EC prekey, replayed
  after the session is gone: refused by the Kyber store's memory of
  (Kyber id, signed prekey id, base key) (driver_v4.mjs's rule).
* A PreKeySignalMessage of protocol version 3 (0x3?) from signalish's
  libsignal_v3 profile: "X3DH no longer supported".

And signalish (asserted below): a libsignal_v4 manager refuses libsignal
0.72.1's version 3 messages (0x33) with UnknownVersion as they are parsed, a
libsignal_v3 manager refuses version 4 messages (0x44) likewise, and neither
changes any state.  A tampered PreKeySignalMessage from libsignal is
refused with AuthenticationError (MAC, ciphertext, ratchet key, counters,
SPQR bytes, base key, identity key, Kyber ciphertext), InvalidEncoding (the
Kyber ciphertext's 0x08 type byte) or UnknownPreKey (prekey ids); its
registration id is under no MAC in either implementation, so a copy with
another one decrypts in both.
"""

from __future__ import annotations

from dataclasses import replace

import copy
import random
from collections.abc import Callable
from typing import Any

import pytest

import signalish._wire_v4 as wire_v4
from helpers import read_varint as _varint
from helpers import snapshot
from libsignal_peer import LibsignalPeer
from signalish import (
    LIBSIGNAL_V3,
    LIBSIGNAL_V4,
    DeterministicRandom,
    IdentityKey,
    IdentityKeyPair,
    KemPreKeyPublic,
    KemPublicKey,
    MemoryStore,
    OneTimePreKeyPublic,
    PreKeyBundle,
    PreKeyRing,
    PublicKey,
    SessionManager,
    SessionOptions,
    SignalishError,
    SignedPreKeyPublic,
)
from signalish._storage import load_ring, ring_bytes
from signalish._wire_v3 import (
    V3Frame,
    V3PreKeyFrame,
    _bytes_field,
    parse_v3,
    prekey_message_v3,
    seal,
    signal_message_body,
)
from signalish.errors import (
    AuthenticationError,
    DuplicateMessage,
    InvalidEncoding,
    PreKeyReplayed,
    UnknownPreKey,
    UnknownVersion,
)

V4 = LIBSIGNAL_V4
ALICE_REG, BOB_REG = 1111, 2222
LIMIT = 1 << 20
MAC_SIZE = 8
ALL = range(256)
V4_BYTES = set(range(0x40, 0x50))


# --- parties and bundles ----------------------------------------------------------


def signalish_party(seed: bytes, registration_id: int, *, one_time: int = 3,
                    kem: int = 3, profile: Any = V4) -> SessionManager:
    """A signalish party whose store holds a ring with ``one_time`` one-time
    EC prekeys and ``kem`` one-time Kyber prekeys (and, under libsignal_v4,
    the last-resort Kyber prekey every ring has)."""
    rng = DeterministicRandom(seed)
    # Version 4 without SPQR, as 0.73 to 0.90 speak it when SPQR is not taken
    # up (test_spqr_interop.py has SPQR, the default, against 0.90 and 0.103).
    options = replace(SessionOptions.libsignal(registration_id), pq_ratchet=False)
    manager = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), profile, rng=rng,
                             options=options)
    with manager.prekeys(now=0) as ring:
        if one_time:
            ring.generate_one_time_prekeys(one_time, rng)
        if kem:
            ring.generate_kem_prekeys(kem, rng, now=0)
    return manager


def clone(manager: SessionManager, seed: bytes = b"clone") -> SessionManager:
    """An independent copy of ``manager`` and its whole store."""
    return SessionManager(manager.identity, copy.deepcopy(manager.store), manager.profile,
                          rng=DeterministicRandom(seed), options=manager.options)


def issue_bundle(manager: SessionManager) -> PreKeyBundle:
    with manager.prekeys(now=0) as ring:
        return ring.issue_bundle()


def ring_of(manager: SessionManager) -> PreKeyRing:
    loaded = load_ring(manager.store, manager.identity)
    assert loaded is not None
    return loaded[0]


def bundle_fields(bundle: PreKeyBundle) -> dict[str, Any]:
    """What a server would hand libsignal: keys in libsignal's encodings."""
    enc = V4.encode_ec
    one_time, kem = bundle.one_time_prekey, bundle.kem_prekey
    assert kem is not None
    return {
        "registration_id": bundle.registration_id, "device_id": bundle.device_id,
        "prekey_id": None if one_time is None else one_time.key_id,
        "prekey": None if one_time is None else enc(one_time.public_key.public_bytes_raw()).hex(),
        "signed_prekey_id": bundle.signed_prekey.key_id,
        "signed_prekey": enc(bundle.signed_prekey.public_key.public_bytes_raw()).hex(),
        "signature": bundle.signed_prekey.signature.hex(),
        "identity": bundle.identity_key.encode(V4).hex(),
        "kyber_prekey_id": kem.key_id,
        "kyber_prekey": V4.encode_kem(kem.public_key.public_bytes_raw()).hex(),
        "kyber_signature": kem.signature.hex(),
    }


def bundle_from_libsignal(fields: dict[str, Any], profile: Any = V4) -> PreKeyBundle:
    dec = V4.decode_ec
    h = bytes.fromhex
    kyber = h(fields["kyber_prekey"])
    assert kyber[0] == 0x08
    return PreKeyBundle(
        identity_key=IdentityKey.decode(h(fields["identity"]), V4),
        signed_prekey=SignedPreKeyPublic(
            fields["signed_prekey_id"],
            PublicKey.from_public_bytes(dec(h(fields["signed_prekey"]))), h(fields["signature"])),
        one_time_prekey=None if fields["prekey"] is None else OneTimePreKeyPublic(
            fields["prekey_id"], PublicKey.from_public_bytes(dec(h(fields["prekey"]))), None),
        kem_prekey=None if profile is not V4 else KemPreKeyPublic(
            fields["kyber_prekey_id"], KemPublicKey.from_public_bytes(kyber[1:]),
            h(fields["kyber_signature"]), fields["last_resort"]),
        registration_id=fields["registration_id"], device_id=fields["device_id"])


def libsignal_bundle(libsignal: LibsignalPeer, *, one_time: bool, last_resort: bool,
                     kyber_prekey_id: int = 3) -> dict[str, Any]:
    fields = libsignal.ok("make_bundle", registration_id=BOB_REG, signed_prekey_id=1,
                          prekey_id=2 if one_time else None, kyber_prekey_id=kyber_prekey_id,
                          last_resort=last_resort)
    del fields["ok"]
    return fields


def to_libsignal(libsignal: LibsignalPeer, manager: SessionManager, message: bytes,
                 sender: str) -> str:
    """libsignal decrypts a message from ``sender`` (its name for signalish)."""
    answer = libsignal.ok("decrypt", address=sender, type=manager.message_type(message),
                          body=message.hex())
    return bytes.fromhex(answer["plaintext"]).decode()


def from_libsignal(libsignal: LibsignalPeer, text: str, to: str) -> tuple[int, bytes]:
    answer = libsignal.ok("encrypt", address=to, plaintext=text.encode().hex())
    return answer["type"], bytes.fromhex(answer["body"])


def bulk(libsignal: LibsignalPeer, text: str, count: int, to: str) -> list[bytes]:
    """``count`` messages from libsignal ("<text><i>"), all kept, in order."""
    answer = libsignal.ok("encrypt_bulk", address=to, text=text, count=count,
                          keep=list(range(count)))
    return [bytes.fromhex(m["body"]) for m in answer["messages"]]


def verdicts(libsignal: LibsignalPeer, sender: str, kind: int,
             messages: list[bytes]) -> list[dict[str, Any]]:
    """libsignal's answer to each message, every attempt undone."""
    answer = libsignal.ok("decrypt_each", address=sender, keep_state=False,
                          messages=[{"type": kind, "body": m.hex()} for m in messages])
    results: list[dict[str, Any]] = answer["results"]
    assert len(results) == len(messages)
    return results


def state(manager: SessionManager, peer: str) -> tuple[Any, ...]:
    """Everything a refused message must leave alone."""
    return (manager.export_session(peer), ring_bytes(manager.store, manager.identity),
            snapshot(manager.store))


def forget_session(manager: SessionManager, peer: str) -> None:
    """The party lost its session with ``peer`` but kept its prekeys."""
    with manager.store.transaction():
        manager.store.delete_session(peer)
    assert not manager.has_session(peer)


# --- protobuf positions -------------------------------------------------------------




def spans(data: bytes, start: int, end: int) -> dict[int | str, tuple[int, int]]:
    """Field number -> (start, end) of its value in ``data[start:end]``, a
    protobuf of varint and length-delimited fields, as offsets into ``data``."""
    found: dict[int | str, tuple[int, int]] = {}
    i = start
    while i < end:
        key, i = _varint(data, i)
        assert key & 7 in (0, 2) and key >> 3 not in found, (key, found)
        if key & 7 == 0:
            value_start = i
            _, i = _varint(data, i)
            found[key >> 3] = (value_start, i)
        else:
            size, i = _varint(data, i)
            found[key >> 3] = (i, i + size)
            i += size
    assert i == end
    return found


def signal_spans(message: bytes, offset: int = 0, end: int | None = None
                 ) -> dict[int | str, tuple[int, int]]:
    """Fields of the SignalMessage at ``message[offset:end]``, plus "mac"."""
    end = len(message) if end is None else end
    found = spans(message, offset + 1, end - MAC_SIZE)
    found["mac"] = (end - MAC_SIZE, end)
    return found


def prekey_spans(message: bytes) -> dict[int | str, tuple[int, int]]:
    """Fields of a PreKeySignalMessage ("inner N": field N of its SignalMessage)."""
    outer = spans(message, 1, len(message))
    found = dict(outer)
    for name, span in signal_spans(message, *outer[4]).items():
        found[f"inner {name}"] = span
    return found


def field_value(prekey_message: bytes, field: int) -> bytes:
    start, end = prekey_spans(prekey_message)[field]
    return prekey_message[start:end]


def has_field_5(signal_message: bytes) -> bool:
    return 5 in signal_spans(signal_message)


def inner_of(prekey_message: bytes) -> bytes:
    start, end = spans(prekey_message, 1, len(prekey_message))[4]
    return prekey_message[start:end]


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    return data[:index] + bytes((data[index] ^ mask,)) + data[index + 1:]


def flip_field(message: bytes, where: dict[int | str, tuple[int, int]], field: int | str,
               at: int = 0, mask: int = 0x01) -> bytes:
    """``message`` with byte ``at`` of field ``field``'s value XOR ``mask``
    (``at`` negative counts from the value's end)."""
    start, end = where[field]
    index = (start if at >= 0 else end) + at
    assert start <= index < end
    return flip(message, index, mask)


# --- a conversation ------------------------------------------------------------------


def converse(libsignal: LibsignalPeer, manager: SessionManager, rounds: int, seed: str,
             *, libsignal_name: str, signalish_name: str, now: int = 10) -> None:
    """Runs of messages from either side, each decrypted by the other;
    neither side's SignalMessages carry SPQR's field 5."""
    schedule = random.Random(seed)
    number = 0
    for _ in range(rounds):
        for sender in ("signalish", "libsignal"):
            for _ in range(schedule.randint(1, 4)):
                text = f"{sender} #{number} " + "x" * schedule.randint(0, 120)
                number += 1
                if sender == "signalish":
                    message = manager.encrypt(libsignal_name, text.encode())
                    assert manager.message_type(message) == 2 and not has_field_5(message)
                    assert to_libsignal(libsignal, manager, message, signalish_name) == text
                else:
                    kind, message = from_libsignal(libsignal, text, signalish_name)
                    assert kind == 2 and not has_field_5(message)
                    assert manager.decrypt(libsignal_name, message, now=now).decode() == text


KINDS = [pytest.param(one_time, last_resort,
                      id=("with-ec-prekey" if one_time else "no-ec-prekey") + "-"
                      + ("last-resort-kyber" if last_resort else "one-time-kyber"))
         for one_time in (True, False) for last_resort in (False, True)]


# --- sessions, each side initiating ------------------------------------------------------


@pytest.mark.parametrize("one_time,last_resort", KINDS)
def test_libsignal_initiates(libsignal_v4: LibsignalPeer, one_time: bool,
                             last_resort: bool) -> None:
    libsignal = libsignal_v4
    libsignal.ok("init", registration_id=ALICE_REG)
    bob = signalish_party(b"v4-bob-%d%d" % (one_time, last_resort), BOB_REG,
                          one_time=2 if one_time else 0, kem=0 if last_resort else 2)
    bundle = issue_bundle(bob)
    assert bundle.kem_prekey is not None and bundle.kem_prekey.last_resort is last_resort
    assert (bundle.one_time_prekey is not None) is one_time
    if last_resort:
        current = ring_of(bob).current_last_resort_kem_prekey
        assert current is not None and bundle.kem_prekey.key_id == current.key_id
    libsignal.ok("process_bundle", address="bob", **bundle_fields(bundle))
    first = bulk(libsignal, "hello bob ", 3, to="bob")
    for message in first:
        assert bob.message_type(message) == 3 and message[0] == 0x44
        where = prekey_spans(message)
        assert (1 in where) is one_time and 7 in where and 8 in where
        frame = parse_v3(message, LIMIT, protocol=4)
        assert isinstance(frame, V3PreKeyFrame)
        assert frame.header.kem_prekey_id == bundle.kem_prekey.key_id
        assert frame.registration_id == ALICE_REG
    remaining = ring_of(bob)
    ec_before, kem_before = remaining.one_time_prekeys_remaining, remaining.kem_prekeys_remaining
    assert bob.decrypt("alice", first[0], now=1) == b"hello bob 0"
    assert bob.decrypt("alice", first[2], now=1) == b"hello bob 2"
    # The one-time keys the message used are gone; the last-resort one stays.
    ring = ring_of(bob)
    assert ring.one_time_prekeys_remaining == ec_before - one_time
    assert ring.kem_prekeys_remaining == kem_before - (not last_resort)
    assert ring.current_last_resort_kem_prekey is not None
    reply = bob.encrypt("alice", b"hello libsignal")
    assert bob.message_type(reply) == 2 and reply[0] == 0x44 and not has_field_5(reply)
    assert to_libsignal(libsignal, bob, reply, "bob") == "hello libsignal"
    kind, second = from_libsignal(libsignal, "now a SignalMessage", to="bob")
    assert kind == 2 and bob.decrypt("alice", second, now=2) == b"now a SignalMessage"
    assert bob.decrypt("alice", first[1], now=2) == b"hello bob 1"   # late, still a PreKey one
    converse(libsignal, bob, 4, f"li{one_time}{last_resort}",
             libsignal_name="alice", signalish_name="bob")


@pytest.mark.parametrize("one_time,last_resort", KINDS)
def test_signalish_initiates(libsignal_v4: LibsignalPeer, one_time: bool,
                             last_resort: bool) -> None:
    libsignal = libsignal_v4
    libsignal.ok("init", registration_id=BOB_REG)
    alice = signalish_party(b"v4-alice-%d%d" % (one_time, last_resort), ALICE_REG)
    fields = libsignal_bundle(libsignal, one_time=one_time, last_resort=last_resort)
    alice.initiate("bob", bundle_from_libsignal(fields))
    first = [alice.encrypt("bob", b"hello libsignal %d" % i) for i in range(3)]
    for message in first:
        assert alice.message_type(message) == 3 and message[0] == 0x44
        where = prekey_spans(message)
        assert (1 in where) is one_time and "inner 5" not in where
        assert message[slice(*where[7])] == bytes((fields["kyber_prekey_id"],))
    assert to_libsignal(libsignal, alice, first[0], "alice") == "hello libsignal 0"
    stored = libsignal.ok("stored_prekeys")
    assert stored["prekeys"] == []
    assert stored["kyber_prekeys"] == ([{"id": 3, "last_resort": True}] if last_resort else [])
    assert stored["used_last_resort"] == (1 if last_resort else 0)
    assert to_libsignal(libsignal, alice, first[2], "alice") == "hello libsignal 2"
    kind, reply = from_libsignal(libsignal, "hello signalish", to="alice")
    assert kind == 2 and not has_field_5(reply)
    assert alice.decrypt("bob", reply, now=1) == b"hello signalish"
    after = alice.encrypt("bob", b"now a SignalMessage")
    assert alice.message_type(after) == 2
    assert to_libsignal(libsignal, alice, after, "alice") == "now a SignalMessage"
    assert to_libsignal(libsignal, alice, first[1], "alice") == "hello libsignal 1"
    converse(libsignal, alice, 4, f"si{one_time}{last_resort}",
             libsignal_name="bob", signalish_name="alice")


# --- out-of-order delivery, duplicates --------------------------------------------------


@pytest.mark.parametrize("initiator", ["signalish", "libsignal"])
def test_out_of_order_across_dh_steps_both_ways(libsignal_v4: LibsignalPeer,
                                                initiator: str) -> None:
    """Five sending chains, alternating sides (so each is a new DH step);
    of each chain the receiver gets one message at once, the rest arrive at
    the end in scrambled order.  Then every message again: refused by both."""
    libsignal = libsignal_v4
    libsignal.ok("init", registration_id=BOB_REG)
    alice = signalish_party(b"v4-ooo-" + initiator.encode(), ALICE_REG)
    if initiator == "signalish":
        alice.initiate("bob", bundle_from_libsignal(
            libsignal_bundle(libsignal, one_time=False, last_resort=True)))
    else:
        libsignal.ok("process_bundle", address="alice", **bundle_fields(issue_bundle(alice)))

    def send(sender: str, tag: str, count: int) -> list[bytes]:
        if sender == "signalish":
            return [alice.encrypt("bob", f"{tag}-{i}".encode()) for i in range(count)]
        return bulk(libsignal, f"{tag}-", count, to="alice")

    def deliver(sender: str, message: bytes, text: str) -> None:
        if sender == "signalish":
            assert to_libsignal(libsignal, alice, message, "alice") == text
        else:
            assert alice.decrypt("bob", message, now=2).decode() == text

    other = {"signalish": "libsignal", "libsignal": "signalish"}
    sender = initiator
    sent: list[tuple[str, bytes, str | None]] = []
    for step, (count, first) in enumerate([(4, 3), (4, 2), (3, 1), (3, 2), (3, 0)]):
        messages = send(sender, f"{sender}{step}", count)
        kinds = {alice.message_type(m) for m in messages}
        assert kinds == ({3} if step == 0 else {2})
        deliver(sender, messages[first], f"{sender}{step}-{first}")
        sent += [(sender, m, f"{sender}{step}-{i}") for i, m in enumerate(messages) if i != first]
        sent.append((sender, messages[first], None))
        sender = other[sender]
    late = [(s, m, text) for s, m, text in sent if text is not None]
    random.Random(initiator).shuffle(late)
    for sender, message, text in late:
        deliver(sender, message, text)
    deliver("signalish", alice.encrypt("bob", b"in order"), "in order")
    deliver("libsignal", from_libsignal(libsignal, "in order too", to="alice")[1], "in order too")

    # Each message once: every second delivery is refused, by both.
    ours = [m for sender, m, _ in sent if sender == "signalish"]
    for kind in (2, 3):
        for result in verdicts(libsignal, "alice", kind,
                               [m for m in ours if alice.message_type(m) == kind]):
            assert not result["ok"] and result["stage"] == "decrypt", result
            assert "old counter" in result["error"], result
    before = state(alice, "bob")
    for sender, message, _ in sent:
        if sender == "libsignal":
            with pytest.raises(DuplicateMessage):
                alice.decrypt("bob", message, now=3)
            assert state(alice, "bob") == before
    deliver("libsignal", from_libsignal(libsignal, "still in step", to="alice")[1], "still in step")
    deliver("signalish", alice.encrypt("bob", b"so am I"), "so am I")


# --- tampering -------------------------------------------------------------------------

# Where to flip a bit, and what signalish raises for it: field (or "inner N",
# "mac"), byte offset in the field's value (negative: from its end), mask.
PREKEY_TAMPERING: list[tuple[str, int | str, int, int, type[SignalishError]]] = [
    ("MAC", "inner mac", -1, 0x01, AuthenticationError),
    ("ciphertext", "inner 4", 5, 0x01, AuthenticationError),
    ("ratchet key", "inner 1", 7, 0x01, AuthenticationError),
    ("counter", "inner 2", 0, 0x04, AuthenticationError),
    ("previous counter", "inner 3", 0, 0x02, AuthenticationError),
    ("base key", 2, 9, 0x01, AuthenticationError),
    ("identity key", 3, 9, 0x01, AuthenticationError),
    ("signed prekey id", 6, 0, 0x40, UnknownPreKey),
    ("Kyber prekey id", 7, 0, 0x40, UnknownPreKey),
    ("Kyber ciphertext", 8, 700, 0x01, AuthenticationError),
    ("Kyber ciphertext, last byte", 8, -1, 0x80, AuthenticationError),
    ("Kyber key type", 8, 0, 0x01, InvalidEncoding),
]
SIGNAL_TAMPERING: list[tuple[str, int | str, int, int, type[SignalishError]]] = [
    ("MAC", "mac", 0, 0x01, AuthenticationError),
    ("MAC, last byte", "mac", -1, 0x80, AuthenticationError),
    ("ciphertext", 4, -3, 0x01, AuthenticationError),
    ("ratchet key", 1, 20, 0x01, AuthenticationError),
    ("counter", 2, 0, 0x04, AuthenticationError),
    ("previous counter", 3, 0, 0x02, AuthenticationError),
]


def test_tampered_prekey_message_refused_by_signalish(libsignal_v4: LibsignalPeer) -> None:
    """libsignal's PreKeySignalMessage (with a one-time EC prekey and a
    one-time Kyber prekey; its SignalMessage carries SPQR's field 5), each
    field altered: refused, and signalish's session and prekeys unchanged."""
    libsignal = libsignal_v4
    libsignal.ok("init", registration_id=ALICE_REG)
    bob = signalish_party(b"v4-tamper-bob", BOB_REG)
    libsignal.ok("process_bundle", address="bob", **bundle_fields(issue_bundle(bob)))
    _, genuine = from_libsignal(libsignal, "untouched", to="bob")
    where = prekey_spans(genuine)
    assert 1 in where and "inner 5" in where
    cases = PREKEY_TAMPERING + [
        ("one-time prekey id", 1, 0, 0x40, UnknownPreKey),
        ("SPQR message (field 5, under the MAC)", "inner 5", 3, 0x01, AuthenticationError),
    ]
    before = state(bob, "alice")
    assert before[0] is None
    for name, field, at, mask, expected in cases:
        with pytest.raises(SignalishError) as refused:
            bob.decrypt("alice", flip_field(genuine, where, field, at, mask), now=1)
        assert type(refused.value) is expected, (name, refused.value)
        assert state(bob, "alice") == before, name
    # The version byte, outside the MAC: anything but protocol version 4.
    with pytest.raises(UnknownVersion):
        bob.decrypt("alice", flip(genuine, 0, 0x70), now=1)
    assert state(bob, "alice") == before
    # The registration id is under no MAC, in either implementation: a copy
    # with another one decrypts (on a copy of bob, which it would change).
    altered = flip_field(genuine, where, 5, 0, 0x02)
    assert clone(bob).decrypt("alice", altered, now=1) == b"untouched"
    assert bob.decrypt("alice", genuine, now=1) == b"untouched"


def test_tampered_prekey_message_refused_by_libsignal(libsignal_v4: LibsignalPeer) -> None:
    libsignal = libsignal_v4
    libsignal.ok("init", registration_id=BOB_REG)
    alice = signalish_party(b"v4-tamper-alice", ALICE_REG)
    alice.initiate("bob", bundle_from_libsignal(
        libsignal_bundle(libsignal, one_time=True, last_resort=False)))
    genuine = alice.encrypt("bob", b"untouched")
    where = prekey_spans(genuine)
    cases = [(name, field, at, mask) for name, field, at, mask, _ in PREKEY_TAMPERING]
    cases.append(("one-time prekey id", 1, 0, 0x40))
    variants = [flip_field(genuine, where, field, at, mask) for _, field, at, mask in cases]
    for (name, *_), result in zip(cases, verdicts(libsignal, "alice", 3, variants)):
        assert not result["ok"], (name, result)
    altered = flip_field(genuine, where, 5, 0, 0x02)     # the registration id
    assert [r["ok"] for r in verdicts(libsignal, "alice", 3, [altered])] == [True]
    assert to_libsignal(libsignal, alice, genuine, "alice") == "untouched"


def test_tampered_signal_messages_refused_by_both(libsignal_v4: LibsignalPeer) -> None:
    libsignal = libsignal_v4
    libsignal.ok("init", registration_id=ALICE_REG)
    bob = signalish_party(b"v4-tamper-signal", BOB_REG)
    libsignal.ok("process_bundle", address="bob", **bundle_fields(issue_bundle(bob)))
    assert bob.decrypt("alice", from_libsignal(libsignal, "first", to="bob")[1], now=1) == b"first"
    assert to_libsignal(libsignal, bob, bob.encrypt("alice", b"reply"), "bob") == "reply"
    # signalish -> libsignal.
    message = bob.encrypt("alice", b"untouched")
    where = signal_spans(message)
    variants = [flip_field(message, where, field, at, mask)
                for _, field, at, mask, _ in SIGNAL_TAMPERING]
    for case, result in zip(SIGNAL_TAMPERING, verdicts(libsignal, "bob", 2, variants)):
        assert not result["ok"], (case[0], result)
    assert to_libsignal(libsignal, bob, message, "bob") == "untouched"
    # libsignal -> signalish: the first message of a new DH step, then one
    # of the chain it started (skipping one), then the skipped one.
    chain = bulk(libsignal, "chain-", 3, to="bob")
    for index in (0, 2, 1):
        genuine = chain[index]
        where = signal_spans(genuine)
        assert 5 not in where
        before = state(bob, "alice")
        for name, field, at, mask, expected in SIGNAL_TAMPERING:
            with pytest.raises(SignalishError) as refused:
                bob.decrypt("alice", flip_field(genuine, where, field, at, mask), now=2)
            assert type(refused.value) is expected, (index, name, refused.value)
            assert state(bob, "alice") == before, (index, name)
        assert bob.decrypt("alice", genuine, now=2) == b"chain-%d" % index


# --- byte formats ----------------------------------------------------------------------


def check_reencoding(message: bytes) -> V3Frame | V3PreKeyFrame:
    """Parse ``message`` with signalish's parser and write it again with its
    encoders.  A SignalMessage with SPQR's field 5 (which signalish never
    writes) is the encoding of fields 1 to 4 followed by field 5 as received."""
    frame = parse_v3(message, LIMIT, protocol=4)
    inner = frame.inner if isinstance(frame, V3PreKeyFrame) else frame
    assert isinstance(inner, V3Frame)
    rebuilt = signal_message_body(inner.ratchet_key, inner.pn, inner.n, inner.ciphertext,
                                  version=0x44)
    if inner.pq_ratchet is None:
        assert rebuilt == inner.signed
    else:
        assert rebuilt != inner.signed
        assert rebuilt + _bytes_field(5, inner.pq_ratchet) == inner.signed
    if isinstance(frame, V3PreKeyFrame):
        assert frame.registration_id is not None
        assert prekey_message_v3(frame.header, frame.registration_id,
                                 inner.signed + inner.mac, version=0x44) == message
        assert inner_of(message) == inner.signed + inner.mac
    else:
        assert inner.signed + inner.mac == message
    return frame


def test_signalish_encodes_libsignal_messages_byte_for_byte(libsignal_v4: LibsignalPeer) -> None:
    """libsignal's own v4 PreKeySignalMessages (with and without a one-time
    EC prekey; their SignalMessage carries field 5) and SignalMessages
    (without field 5 once signalish answered, in both roles), parsed and
    re-encoded by signalish: identical bytes; and all of them decrypt."""
    libsignal = libsignal_v4
    libsignal.ok("init", registration_id=ALICE_REG)
    with_field_5 = without_field_5 = 0
    for one_time in (True, False):
        bob = signalish_party(b"v4-bytes-%d" % one_time, BOB_REG, one_time=int(one_time))
        name = f"bob{int(one_time)}"
        libsignal.ok("process_bundle", address=name, **bundle_fields(issue_bundle(bob)))
        prekey_messages = [from_libsignal(libsignal, text, to=name)[1] for text in ("a", "b" * 100)]
        for message in prekey_messages:
            frame = check_reencoding(message)
            assert isinstance(frame, V3PreKeyFrame)
            assert (frame.header.one_time_prekey_id is not None) is one_time
            assert isinstance(frame.inner, V3Frame)
            assert frame.inner.pq_ratchet is not None             # 0.90.0 offers SPQR
            with_field_5 += 1
        assert bob.decrypt("alice", prekey_messages[1], now=1) == b"b" * 100
        assert to_libsignal(libsignal, bob, bob.encrypt("alice", b"reply"), name) == "reply"
        assert bob.decrypt("alice", prekey_messages[0], now=1) == b"a"
        for text in ("c" * 15, "d" * 16, "e" * 1000):
            _, message = from_libsignal(libsignal, text, to=name)
            frame = check_reencoding(message)
            assert isinstance(frame, V3Frame) and frame.pq_ratchet is None
            without_field_5 += 1
            assert bob.decrypt("alice", message, now=2) == text.encode()
    # signalish initiates: libsignal's replies never carry field 5.
    libsignal.ok("init", registration_id=BOB_REG)
    alice = signalish_party(b"v4-bytes-alice", ALICE_REG)
    alice.initiate("bob", bundle_from_libsignal(
        libsignal_bundle(libsignal, one_time=True, last_resort=False)))
    assert to_libsignal(libsignal, alice, alice.encrypt("bob", b"hi"), "alice") == "hi"
    for text in ("f", "g" * 300):
        _, message = from_libsignal(libsignal, text, to="alice")
        frame = check_reencoding(message)
        assert isinstance(frame, V3Frame) and frame.pq_ratchet is None
        without_field_5 += 1
        assert alice.decrypt("bob", message, now=1) == text.encode()
    assert (with_field_5, without_field_5) == (4, 8)


# --- SPQR: offered by libsignal, dropped for signalish ------------------------------------


def test_spqr_dropped_when_signalish_answers(libsignal_v4: LibsignalPeer) -> None:
    libsignal = libsignal_v4
    libsignal.ok("init", registration_id=ALICE_REG)
    bob = signalish_party(b"v4-spqr-bob", BOB_REG)
    libsignal.ok("process_bundle", address="bob", **bundle_fields(issue_bundle(bob)))
    assert libsignal.ok("session_info", address="bob")["spqr"] is True
    first = bulk(libsignal, "offer ", 2, to="bob")
    assert all(has_field_5(inner_of(m)) for m in first)
    assert libsignal.ok("session_info", address="bob")["spqr"] is True
    assert bob.decrypt("alice", first[0], now=1) == b"offer 0"
    reply = bob.encrypt("alice", b"no SPQR here")
    assert not has_field_5(reply)
    assert to_libsignal(libsignal, bob, reply, "bob") == "no SPQR here"
    info = libsignal.ok("session_info", address="bob")
    assert info["spqr"] is False and info["spqr_bytes"] == 0 and 15 not in info["current_fields"]
    for message in bulk(libsignal, "after ", 3, to="bob"):
        assert not has_field_5(message)
        assert parse_v3(message, LIMIT, protocol=4).pq_ratchet is None   # type: ignore[union-attr]
        bob.decrypt("alice", message, now=2)
    converse(libsignal, bob, 3, "spqr-off", libsignal_name="alice", signalish_name="bob")
    assert bob.decrypt("alice", first[1], now=3) == b"offer 1"   # its field 5 changes nothing
    info = libsignal.ok("session_info", address="bob")
    assert info["spqr"] is False and info["previous"] == 0


def test_spqr_never_on_when_signalish_initiates(libsignal_v4: LibsignalPeer) -> None:
    libsignal = libsignal_v4
    libsignal.ok("init", registration_id=BOB_REG)
    alice = signalish_party(b"v4-spqr-alice", ALICE_REG)
    alice.initiate("bob", bundle_from_libsignal(
        libsignal_bundle(libsignal, one_time=False, last_resort=False)))
    first = alice.encrypt("bob", b"hi")
    assert not has_field_5(inner_of(first))
    assert to_libsignal(libsignal, alice, first, "alice") == "hi"
    info = libsignal.ok("session_info", address="alice")
    assert info["exists"] and info["spqr"] is False and 15 not in info["current_fields"]
    for message in bulk(libsignal, "reply ", 3, to="alice"):
        assert not has_field_5(message)
        alice.decrypt("bob", message, now=1)
    converse(libsignal, alice, 3, "spqr-never", libsignal_name="bob", signalish_name="alice")
    assert libsignal.ok("session_info", address="alice")["spqr"] is False


# --- replayed PreKeySignalMessages with a last-resort Kyber prekey -------------------------


def test_last_resort_kyber_replay_refused_by_signalish(libsignal_v4: LibsignalPeer) -> None:
    """No one-time prekey of either kind left: the bundle has the
    last-resort Kyber prekey and no one-time EC prekey.  The same
    PreKeySignalMessage again is a duplicate while the session lives, and
    PreKeyReplayed once it is gone; a new session on the same keys is fine."""
    libsignal = libsignal_v4
    libsignal.ok("init", registration_id=ALICE_REG)
    bob = signalish_party(b"v4-replay-bob", BOB_REG, one_time=0, kem=0)
    bundle = issue_bundle(bob)
    assert bundle.one_time_prekey is None
    assert bundle.kem_prekey is not None and bundle.kem_prekey.last_resort
    libsignal.ok("process_bundle", address="bob", **bundle_fields(bundle))
    first, second = bulk(libsignal, "once ", 2, to="bob")
    assert bob.decrypt("alice", first, now=1) == b"once 0"
    before = state(bob, "alice")
    with pytest.raises(DuplicateMessage):
        bob.decrypt("alice", first, now=1)
    assert state(bob, "alice") == before
    forget_session(bob, "alice")
    before = state(bob, "alice")
    for replayed in (first, second):     # same base key: second is a replay too
        with pytest.raises(PreKeyReplayed):
            bob.decrypt("alice", replayed, now=2)
        assert state(bob, "alice") == before
    # The last-resort key itself stays usable for new sessions (new base keys).
    libsignal.ok("process_bundle", address="bob", **bundle_fields(bundle))
    _, again = from_libsignal(libsignal, "new session", to="bob")
    assert field_value(again, 2) != field_value(first, 2)           # base keys
    assert bob.decrypt("alice", again, now=3) == b"new session"
    assert to_libsignal(libsignal, bob, bob.encrypt("alice", b"ok"), "bob") == "ok"


def test_last_resort_kyber_replay_refused_by_libsignal(libsignal_v4: LibsignalPeer) -> None:
    libsignal = libsignal_v4
    libsignal.ok("init", registration_id=BOB_REG)
    alice = signalish_party(b"v4-replay-alice", ALICE_REG)
    bundle = bundle_from_libsignal(libsignal_bundle(libsignal, one_time=False, last_resort=True))
    alice.initiate("bob", bundle)
    first, second = (alice.encrypt("bob", b"once %d" % i) for i in range(2))
    assert to_libsignal(libsignal, alice, first, "alice") == "once 0"
    duplicate = libsignal("decrypt", address="alice", type=3, body=first.hex())
    assert not duplicate["ok"] and "old counter" in duplicate["error"]
    assert libsignal.ok("delete_session", address="alice")["deleted"] is True
    for replayed in (first, second):
        refused = libsignal("decrypt", address="alice", type=3, body=replayed.hex())
        assert not refused["ok"] and "reused" in refused["error"], refused
    assert libsignal.ok("session_record", address="alice")["record"] is None
    # A new session on the same last-resort key is accepted.
    alice.initiate("bob", bundle)
    assert to_libsignal(libsignal, alice, alice.encrypt("bob", b"new session"), "alice") \
        == "new session"
    assert libsignal.ok("stored_prekeys")["used_last_resort"] == 2


# --- protocol versions 3 and 4 do not mix ----------------------------------------------------


def twins(seed: bytes, registration_id: int) -> tuple[SessionManager, SessionManager]:
    """A libsignal_v3 and a libsignal_v4 signalish party with the same
    identity and signed prekey (and no one-time prekeys): what each profile
    does with one message, which the other one decrypts."""
    v3 = signalish_party(seed, registration_id, one_time=0, kem=0, profile=LIBSIGNAL_V3)
    v4 = signalish_party(seed, registration_id, one_time=0, kem=0)
    b3, b4 = issue_bundle(v3), issue_bundle(v4)
    assert (b3.identity_key, b3.signed_prekey) == (b4.identity_key, b4.signed_prekey)
    assert b3.kem_prekey is None and b4.kem_prekey is not None
    return v3, v4


def test_v3_messages_refused_by_a_v4_manager(libsignal: LibsignalPeer) -> None:
    """libsignal 0.72.1 (protocol version 3) initiates: its PreKeySignalMessage,
    version byte 0x33, decrypts under libsignal_v3 and is refused by
    libsignal_v4 with UnknownVersion as it is parsed, before anything is
    touched; so are its SignalMessages (0x33)."""
    libsignal.ok("init", registration_id=ALICE_REG)
    v3, v4 = twins(b"v4-cross-3", BOB_REG)
    fields = bundle_fields(issue_bundle(v4))   # 0.72.1 ignores the Kyber fields
    libsignal.ok("process_bundle", address="bob", **fields)
    first = bytes.fromhex(libsignal.ok("encrypt", address="bob",
                                       plaintext=b"version 3".hex())["body"])
    assert first[0] >> 4 == 3
    before = state(v4, "alice")
    with pytest.raises(UnknownVersion):
        v4.decrypt("alice", first, now=1)
    assert state(v4, "alice") == before
    with pytest.raises(UnknownVersion):
        v4.message_type(first)
    assert v3.decrypt("alice", first, now=1) == b"version 3"
    libsignal.ok("decrypt", address="bob", type=2, body=v3.encrypt("alice", b"reply").hex())
    signal_message = bytes.fromhex(libsignal.ok("encrypt", address="bob",
                                                plaintext=b"v3 again".hex())["body"])
    assert v3.message_type(signal_message) == 2 and signal_message[0] >> 4 == 3
    with pytest.raises(UnknownVersion):
        v4.decrypt("alice", signal_message, now=2)
    with pytest.raises(UnknownVersion):
        parse_v3(signal_message, LIMIT, protocol=4)
    assert state(v4, "alice") == before
    assert v3.decrypt("alice", signal_message, now=2) == b"v3 again"


def test_v4_messages_refused_by_a_v3_manager(libsignal_v4: LibsignalPeer) -> None:
    """libsignal 0.90.0 initiates: its PreKeySignalMessage (0x44) decrypts
    under libsignal_v4 and is refused by libsignal_v3 with UnknownVersion as
    it is parsed; so are its SignalMessages and signalish's own v4 messages.
    And 0.90.0 refuses a version 3 PreKeySignalMessage from signalish's
    libsignal_v3 profile: "X3DH no longer supported"."""
    libsignal = libsignal_v4
    libsignal.ok("init", registration_id=ALICE_REG)
    v3, v4 = twins(b"v4-cross-4", BOB_REG)
    libsignal.ok("process_bundle", address="bob", **bundle_fields(issue_bundle(v4)))
    _, first = from_libsignal(libsignal, "version 4", to="bob")
    before = state(v3, "alice")
    with pytest.raises(UnknownVersion):
        v3.decrypt("alice", first, now=1)
    with pytest.raises(UnknownVersion):
        v3.message_type(first)
    assert state(v3, "alice") == before
    assert v4.decrypt("alice", first, now=1) == b"version 4"
    reply = v4.encrypt("alice", b"reply")
    with pytest.raises(UnknownVersion):
        parse_v3(reply, LIMIT)
    assert to_libsignal(libsignal, v4, reply, "bob") == "reply"
    _, signal_message = from_libsignal(libsignal, "v4 again", to="bob")
    with pytest.raises(UnknownVersion):
        v3.decrypt("alice", signal_message, now=2)
    assert state(v3, "alice") == before
    assert v4.decrypt("alice", signal_message, now=2) == b"v4 again"

    # signalish's libsignal_v3 to 0.90.0.
    libsignal.ok("init", registration_id=BOB_REG)
    carol = signalish_party(b"v4-cross-carol", 3333, kem=0, profile=LIBSIGNAL_V3)
    carol.initiate("bob", bundle_from_libsignal(
        libsignal_bundle(libsignal, one_time=True, last_resort=False), profile=LIBSIGNAL_V3))
    old = carol.encrypt("bob", b"version 3")
    assert old[0] == 0x34 and carol.message_type(old) == 3
    [result] = verdicts(libsignal, "carol", 3, [old])
    assert not result["ok"] and "X3DH no longer supported" in result["error"], result


# --- version bytes -------------------------------------------------------------------------


def signalish_accepts(data: bytes) -> bool:
    try:
        parse_v3(data, LIMIT, protocol=4)
    except UnknownVersion:
        return False
    return True


def with_first_byte(data: bytes, value: int) -> bytes:
    return bytes((value,)) + data[1:]


def compare(results: list[dict[str, Any]], messages: list[bytes],
            plaintexts: list[bytes]) -> set[int]:
    """libsignal's accept/refuse against signalish's parser, value by value;
    returns the accepted set."""
    theirs = {v for v in ALL if results[v]["ok"]}
    ours = {v for v in ALL if signalish_accepts(messages[v])}
    refusals = sorted({f"{r['stage']}: {r['error']}" for r in results if not r["ok"]})
    assert theirs == ours, (f"libsignal accepts {sorted(map(hex, theirs))}, signalish "
                            f"{sorted(map(hex, ours))}; libsignal's refusals: {refusals}")
    assert 0x44 in theirs
    for v in theirs:
        assert bytes.fromhex(results[v]["plaintext"]) == plaintexts[v]
    return theirs


@pytest.fixture
def written_with(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Make signalish's libsignal_v4 wire write SignalMessages with a chosen
    version byte, MAC'd like any other (the PreKeySignalMessage around one
    keeps 0x44)."""
    def set_version(value: int) -> None:
        def patched(mk: bytes, ratchet_key: bytes, pn: int, n: int, plaintext: bytes,
                    identities: bytes, version: int = 0x44) -> bytes:
            return seal(mk, ratchet_key, pn, n, plaintext, identities, value)
        monkeypatch.setattr(wire_v4, "seal", patched)

    return set_version


def prekey_session(libsignal: LibsignalPeer, seed: bytes) -> SessionManager:
    """signalish has a session with libsignal and still sends PreKeySignalMessages."""
    libsignal.ok("init", registration_id=BOB_REG)
    alice = signalish_party(seed, ALICE_REG)
    alice.initiate("bob", bundle_from_libsignal(
        libsignal_bundle(libsignal, one_time=True, last_resort=False)))
    return alice


def answered_session(libsignal: LibsignalPeer, seed: bytes) -> SessionManager:
    alice = prekey_session(libsignal, seed)
    to_libsignal(libsignal, alice, alice.encrypt("bob", b"first"), "alice")
    alice.decrypt("bob", from_libsignal(libsignal, "reply", to="alice")[1], now=1)
    return alice


def test_prekey_message_outer_version_byte(libsignal_v4: LibsignalPeer) -> None:
    alice = prekey_session(libsignal_v4, b"v4-vb-outer")
    genuine = alice.encrypt("bob", b"prekey message")
    assert alice.message_type(genuine) == 3 and genuine[0] == 0x44
    messages = [with_first_byte(genuine, v) for v in ALL]
    accepted = compare(verdicts(libsignal_v4, "alice", 3, messages), messages,
                       [b"prekey message"] * 256)
    assert accepted == V4_BYTES


def test_prekey_message_inner_version_byte(libsignal_v4: LibsignalPeer,
                                           written_with: Callable[[int], None]) -> None:
    alice = prekey_session(libsignal_v4, b"v4-vb-inner")
    messages, plaintexts = [], []
    for v in ALL:
        written_with(v)
        plaintexts.append(b"inner version %d" % v)
        messages.append(alice.encrypt("bob", plaintexts[-1]))
    written_with(0x44)
    assert {m[0] for m in messages} == {0x44}
    assert [inner_of(m)[0] for m in messages] == list(ALL)
    results = verdicts(libsignal_v4, "alice", 3, messages)
    assert compare(results, messages, plaintexts) == V4_BYTES
    # Version 3 inside version 4 parses in libsignal and fails as a decryption.
    assert {results[v]["stage"] for v in range(0x30, 0x40)} == {"decrypt"}


def test_prekey_message_from_libsignal_with_altered_byte(libsignal_v4: LibsignalPeer) -> None:
    """The other direction: libsignal's own PreKeySignalMessage, byte 0
    altered, decrypted by a fresh copy of the signalish party per attempt;
    it must accept exactly what libsignal accepted of signalish's."""
    libsignal = libsignal_v4
    alice = prekey_session(libsignal, b"v4-vb-reverse")
    genuine = alice.encrypt("bob", b"probe")
    accepted = {v for v, r in enumerate(verdicts(
        libsignal, "alice", 3, [with_first_byte(genuine, v) for v in ALL])) if r["ok"]}
    assert accepted == V4_BYTES

    libsignal.ok("init", registration_id=ALICE_REG)
    bob = signalish_party(b"v4-vb-reverse-bob", BOB_REG)
    libsignal.ok("process_bundle", address="bob", **bundle_fields(issue_bundle(bob)))
    _, theirs = from_libsignal(libsignal, "from libsignal", to="bob")
    before = state(bob, "alice")
    decrypted = set()
    for v in ALL:
        try:
            plaintext = clone(bob).decrypt("alice", with_first_byte(theirs, v), now=1)
        except UnknownVersion:
            continue
        assert plaintext == b"from libsignal"
        decrypted.add(v)
    assert decrypted == accepted
    assert state(bob, "alice") == before


def test_signal_message_version_byte(libsignal_v4: LibsignalPeer,
                                     written_with: Callable[[int], None]) -> None:
    """signalish writes a SignalMessage with version v and a valid MAC over
    it: which values libsignal decrypts."""
    alice = answered_session(libsignal_v4, b"v4-vb-signal")
    messages, plaintexts = [], []
    for v in ALL:
        written_with(v)
        plaintexts.append(b"version %d" % v)
        messages.append(alice.encrypt("bob", plaintexts[-1]))
    written_with(0x44)
    assert [m[0] for m in messages] == list(ALL)
    results = verdicts(libsignal_v4, "alice", 2, messages)
    assert compare(results, messages, plaintexts) == V4_BYTES
    assert {results[v]["stage"] for v in range(0x30, 0x40)} == {"decrypt"}
    assert {results[v]["stage"] for v in ALL if v >> 4 not in (3, 4)} == {"deserialize"}


def test_signal_message_altered_byte_refused_by_both(libsignal_v4: LibsignalPeer) -> None:
    """Byte 0 of a genuine SignalMessage altered, so its MAC no longer
    matches: both refuse every change.  signalish refuses a version it does
    not read as UnknownVersion, the others (0x40..0x4f) as
    AuthenticationError, with its session untouched."""
    libsignal = libsignal_v4
    alice = answered_session(libsignal, b"v4-vb-altered")
    genuine = alice.encrypt("bob", b"genuine")
    results = verdicts(libsignal, "alice", 2, [with_first_byte(genuine, v) for v in ALL])
    assert {v for v in ALL if results[v]["ok"]} == {0x44}
    assert to_libsignal(libsignal, alice, genuine, "alice") == "genuine"

    _, theirs = from_libsignal(libsignal, "theirs", to="alice")
    before = state(alice, "bob")
    for v in ALL:
        if v == 0x44:
            continue
        expected = AuthenticationError if v in V4_BYTES else UnknownVersion
        with pytest.raises(SignalishError) as refused:
            alice.decrypt("bob", with_first_byte(theirs, v), now=2)
        assert type(refused.value) is expected, (hex(v), refused.value)
        assert state(alice, "bob") == before
    assert alice.decrypt("bob", theirs, now=2) == b"theirs"


# --- padding: what a libsignal peer's application receives and sends ----------------


def test_padding_as_signals_applications_pad(libsignal_v4: LibsignalPeer) -> None:
    """With ``SessionOptions(padding=160)`` the plaintext libsignal decrypts
    is the content, 0x80 and zeros, one byte short of a multiple of 160 (what
    Signal's applications strip); content that the libsignal side pads that
    way reaches the signalish application stripped."""
    libsignal_v4.ok("init", registration_id=ALICE_REG)
    bob = signalish_party(b"padding bob", BOB_REG)
    bob = SessionManager(bob.identity, bob.store, V4, rng=DeterministicRandom(b"pad rng"),
                         options=SessionOptions(limits=bob.options.limits, max_archived=40,
                                                registration_id=BOB_REG, padding=160))
    libsignal_v4.ok("process_bundle", address="bob", **bundle_fields(issue_bundle(bob)))

    def signal_pad(content: bytes) -> bytes:
        # Signal's applications: getPaddedMessageLength(len + 1) - 1 bytes.
        total = len(content) + 2
        length = (total // 160 + (1 if total % 160 else 0)) * 160 - 1
        return content + b"\x80" + bytes(length - len(content) - 1)

    for text in (b"hi", b"x" * 158, b"y" * 159, b"z" * 400):
        answer = libsignal_v4.ok("encrypt", address="bob", plaintext=signal_pad(text).hex())
        assert bob.decrypt("alice", bytes.fromhex(answer["body"]), now=1) == text
        reply = bob.encrypt("alice", text)
        received = bytes.fromhex(libsignal_v4.ok("decrypt", address="bob",
                                                 type=bob.message_type(reply),
                                                 body=reply.hex())["plaintext"])
        assert received == signal_pad(text)
