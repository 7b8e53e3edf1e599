"""SPQR against libsignal-client 0.103.0, the first release line where it is
mandatory: a signalish session with ``SessionOptions(pq_ratchet=True)``
under LIBSIGNAL_V4 and a libsignal party talk in both directions, across
several SPQR epochs, with messages held back, dropped and repeated.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from libsignal_peer import LibsignalPeer
from signalish import LIBSIGNAL_V4, DeterministicRandom, IdentityKeyPair, MemoryStore
from signalish import SessionManager, SessionOptions
from signalish._spqr import parse_message
from signalish._wire_v3 import parse_v3
from test_libsignal_v4 import bundle_fields, bundle_from_libsignal, issue_bundle

ALICE_REG, BOB_REG = 1111, 2222
LIMIT = 1 << 20


def pq_party(seed: bytes, registration_id: int) -> SessionManager:
    rng = DeterministicRandom(seed)
    options = replace(SessionOptions.libsignal(registration_id), pq_ratchet=True)
    manager = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), LIBSIGNAL_V4,
                             rng=rng, options=options)
    with manager.prekeys(now=0) as ring:
        ring.generate_one_time_prekeys(2, rng)
        ring.generate_kem_prekeys(2, rng, now=0)
    return manager


def libsignal_starts(libsignal: LibsignalPeer, seed: bytes) -> tuple[SessionManager, bytes]:
    """libsignal (as "alice") starts a session with a signalish party
    ("bob") from its bundle; returns bob and libsignal's first message,
    already decrypted by bob."""
    libsignal.ok("init", registration_id=ALICE_REG)
    bob = pq_party(seed, BOB_REG)
    libsignal.ok("process_bundle", address="bob", **bundle_fields(issue_bundle(bob)))
    kind, first = encrypt_from_libsignal(libsignal, "hello bob", to="bob")
    assert kind == 3 and bob.decrypt("alice", first, now=1) == b"hello bob"
    return bob, first


def signalish_starts(libsignal: LibsignalPeer, seed: bytes, *,
                     last_resort: bool = False) -> tuple[SessionManager, bytes]:
    """A signalish party ("alice") starts a session with libsignal ("bob")
    from libsignal's bundle; returns alice and her first message, already
    decrypted by libsignal."""
    libsignal.ok("init", registration_id=BOB_REG)
    made = libsignal.ok("make_bundle", registration_id=BOB_REG, signed_prekey_id=1,
                        prekey_id=2, kyber_prekey_id=3, last_resort=last_resort)
    del made["ok"]
    alice = pq_party(seed, ALICE_REG)
    alice.initiate("bob", bundle_from_libsignal(made))
    first = alice.encrypt("bob", b"hello bob")
    assert alice.message_type(first) == 3
    assert decrypt_at_libsignal(libsignal, alice, first, "alice") == "hello bob"
    return alice, first


def field5(message: bytes) -> tuple[int, Any]:
    frame = parse_v3(message, LIMIT, 4)
    inner = getattr(frame, "inner", frame)
    assert inner.pq_ratchet is not None
    return parse_message(inner.pq_ratchet)


def encrypt_from_libsignal(libsignal: LibsignalPeer, text: str, to: str) -> tuple[int, bytes]:
    answer = libsignal.ok("encrypt", address=to, plaintext=text.encode().hex())
    return answer["type"], bytes.fromhex(answer["body"])


def decrypt_at_libsignal(libsignal: LibsignalPeer, manager: SessionManager, message: bytes,
                         sender: str) -> str:
    answer = libsignal.ok("decrypt", address=sender, type=manager.message_type(message),
                          body=message.hex())
    return bytes.fromhex(answer["plaintext"]).decode()


def converse(libsignal: LibsignalPeer, manager: SessionManager, count: int, seed: int, *,
             libsignal_name: str, signalish_name: str, hold: float = 0.0,
             drop: float = 0.0, swap: bool = False) -> dict[str, int]:
    """``count`` messages, two from libsignal for each from signalish; a
    ``hold`` share is delivered 1 to 6 messages late (so within both
    implementations' windows of 5 receiving chains: every one must
    decrypt), a ``drop`` share never; with ``swap``, every message arrives
    just after the next one its sender sends.  Returns what happened."""
    chooser = random.Random(seed)
    held: list[tuple[int, tuple[str, bytes, str]]] = []
    seen = {"epochs": 1, "late": 0, "late_across_epochs": 0, "dropped": 0}
    newest = {"to-signalish": 1, "to-libsignal": 1}
    behind: dict[str, tuple[str, bytes, str]] = {}
    for i in range(count):
        if i % 3 != 2:
            _, message = encrypt_from_libsignal(libsignal, f"l{i}", to=signalish_name)
            entry = ("to-signalish", message, f"l{i}")
        else:
            message = manager.encrypt(libsignal_name, b"s%d" % i)
            entry = ("to-libsignal", message, f"s{i}")
        epoch = field5(message)[1].epoch
        newest[entry[0]] = max(newest[entry[0]], epoch)
        seen["epochs"] = max(seen["epochs"], epoch)
        roll = chooser.random()
        if swap:
            # Each message waits for its sender's next one; at a new epoch
            # the new message goes first and the old epoch's last one after.
            previous = behind.pop(entry[0], None)
            behind[entry[0]] = entry
            if previous is None:
                continue
            if field5(previous[1])[1].epoch < epoch:
                del behind[entry[0]]
                deliver(libsignal, manager, entry, libsignal_name, signalish_name)
                seen["late"] += 1
                seen["late_across_epochs"] += 1
            deliver(libsignal, manager, previous, libsignal_name, signalish_name)
        elif roll < drop:
            seen["dropped"] += 1
        elif roll < drop + hold:
            held.append((i + chooser.randint(1, 6), entry))
        else:
            deliver(libsignal, manager, entry, libsignal_name, signalish_name)
        for due, late in [h for h in held if h[0] <= i]:
            held.remove((due, late))
            seen["late"] += 1
            if field5(late[1])[1].epoch < newest[late[0]]:
                seen["late_across_epochs"] += 1
            deliver(libsignal, manager, late, libsignal_name, signalish_name)
    for late in [h[1] for h in held] + list(behind.values()):
        deliver(libsignal, manager, late, libsignal_name, signalish_name)
    return seen


def deliver(libsignal: LibsignalPeer, manager: SessionManager, entry: tuple[str, bytes, str],
            libsignal_name: str, signalish_name: str) -> None:
    direction, message, text = entry
    if direction == "to-signalish":
        assert manager.decrypt(libsignal_name, message, now=1) == text.encode()
    else:
        assert decrypt_at_libsignal(libsignal, manager, message, signalish_name) == text


def test_libsignal_initiates_and_spqr_runs_through_epochs(libsignal_v5: LibsignalPeer) -> None:
    libsignal = libsignal_v5
    bob, first = libsignal_starts(libsignal, b"spqr-bob")
    assert field5(first)[0] == 1  # keyed from the first message
    reply = bob.encrypt("alice", b"hello libsignal")
    assert decrypt_at_libsignal(libsignal, bob, reply, "bob") == "hello libsignal"
    seen = converse(libsignal, bob, 450, 1, libsignal_name="alice", signalish_name="bob")
    assert seen["epochs"] >= 4


def test_signalish_initiates_and_spqr_runs_through_epochs(libsignal_v5: LibsignalPeer) -> None:
    libsignal = libsignal_v5
    alice, first = signalish_starts(libsignal, b"spqr-alice")
    assert field5(first)[0] == 1
    kind, reply = encrypt_from_libsignal(libsignal, "hello alice", to="alice")
    assert kind == 2 and alice.decrypt("bob", reply, now=1) == b"hello alice"
    seen = converse(libsignal, alice, 450, 2, libsignal_name="bob", signalish_name="alice")
    assert seen["epochs"] >= 4


def test_late_and_lost_messages_across_epochs(libsignal_v5: LibsignalPeer) -> None:
    bob, _ = libsignal_starts(libsignal_v5, b"spqr-late")
    libsignal = libsignal_v5
    seen = converse(libsignal, bob, 600, 3, libsignal_name="alice", signalish_name="bob",
                    hold=0.15, drop=0.1)
    assert seen["epochs"] >= 3 and seen["dropped"] > 20 and seen["late"] > 40, seen


@pytest.mark.parametrize("signalish_initiates", [False, True])
def test_every_message_after_the_next_one(libsignal_v5: LibsignalPeer,
                                          signalish_initiates: bool) -> None:
    """Every message waits for its sender's next one, and at every new SPQR
    epoch the old epoch's last message arrives after the new epoch's first."""
    libsignal = libsignal_v5
    if signalish_initiates:
        manager, _ = signalish_starts(libsignal, b"spqr-swap-a", last_resort=True)
        names = {"libsignal_name": "bob", "signalish_name": "alice"}
    else:
        manager, _ = libsignal_starts(libsignal, b"spqr-swap-b")
        names = {"libsignal_name": "alice", "signalish_name": "bob"}
    seen = converse(libsignal, manager, 500, 4, swap=True, **names)
    assert seen["epochs"] >= 4 and seen["late_across_epochs"] >= 4, seen


def test_libsignal_090_offers_spqr_and_signalish_takes_it_up(
        libsignal_v4: LibsignalPeer) -> None:
    """libsignal-client 0.90.0 only offers SPQR: its first messages carry
    field 5 with index 0 (not keyed).  A signalish session with SPQR reads
    them with the Double Ratchet's keys alone, answers keyed, and from then
    on both key every message; an unkeyed message after that is refused."""
    libsignal = libsignal_v4
    libsignal.ok("init", registration_id=ALICE_REG)
    bob = pq_party(b"spqr-090", BOB_REG)
    libsignal.ok("process_bundle", address="bob", **bundle_fields(issue_bundle(bob)))
    firsts = [encrypt_from_libsignal(libsignal, f"offer {i}", to="bob")[1] for i in range(3)]
    assert [field5(m)[0] for m in firsts] == [0, 0, 0]
    assert [bob.decrypt("alice", m, now=1) for m in firsts] == [b"offer 0", b"offer 1",
                                                               b"offer 2"]
    reply = bob.encrypt("alice", b"keyed")
    assert field5(reply)[0] == 1
    assert decrypt_at_libsignal(libsignal, bob, reply, "bob") == "keyed"
    seen = converse(libsignal, bob, 300, 5, libsignal_name="alice", signalish_name="bob")
    assert seen["epochs"] >= 2


def test_signalish_initiates_to_libsignal_090(libsignal_v4: LibsignalPeer) -> None:
    libsignal = libsignal_v4
    alice, _ = signalish_starts(libsignal, b"spqr-090-a")
    _, reply = encrypt_from_libsignal(libsignal, "keyed too", to="alice")
    assert field5(reply)[0] >= 1
    assert alice.decrypt("bob", reply, now=1) == b"keyed too"
    seen = converse(libsignal, alice, 300, 6, libsignal_name="bob", signalish_name="alice")
    assert seen["epochs"] >= 2


def flip_in_field5(message: bytes, offset: int) -> bytes:
    """``message`` with one bit flipped at ``offset`` inside its field 5."""
    frame = parse_v3(message, LIMIT, 4)
    inner = getattr(frame, "inner", frame)
    assert inner.pq_ratchet is not None
    start = message.index(inner.pq_ratchet)
    return message[:start + offset] + bytes((message[start + offset] ^ 0x01,)) + \
        message[start + offset + 1:]


def test_tampered_field5_and_duplicates_are_refused_by_both(
        libsignal_v5: LibsignalPeer) -> None:
    from signalish.errors import AuthenticationError, DecodeError, DuplicateMessage

    libsignal = libsignal_v5
    bob, _ = libsignal_starts(libsignal, b"spqr-tamper")
    converse(libsignal, bob, 60, 7, libsignal_name="alice", signalish_name="bob")
    # libsignal -> signalish: every byte of field 5 flipped, each refused,
    # nothing changed; then the genuine message decrypts, and again is a duplicate.
    _, message = encrypt_from_libsignal(libsignal, "genuine", to="bob")
    before = bob.export_session("alice")
    for offset in range(len(field5_bytes(message))):
        with pytest.raises((AuthenticationError, DecodeError)):
            bob.decrypt("alice", flip_in_field5(message, offset), now=2)
        assert bob.export_session("alice") == before
    assert bob.decrypt("alice", message, now=2) == b"genuine"
    with pytest.raises(DuplicateMessage):
        bob.decrypt("alice", message, now=2)
    # signalish -> libsignal: the same, with libsignal keeping no state change
    # from a refusal (decrypt_each with keep_state=False).
    reply = bob.encrypt("alice", b"genuine reply")
    forged = [flip_in_field5(reply, offset) for offset in range(len(field5_bytes(reply)))]
    answer = libsignal.ok("decrypt_each", address="bob", keep_state=False,
                          messages=[{"type": 2, "body": m.hex()} for m in forged])
    assert not any(result.get("ok") for result in answer["results"]), answer["results"]
    assert decrypt_at_libsignal(libsignal, bob, reply, "bob") == "genuine reply"
    again = libsignal("decrypt", address="bob", type=2, body=reply.hex())
    assert not again.get("ok")
    converse(libsignal, bob, 30, 8, libsignal_name="alice", signalish_name="bob")


def field5_bytes(message: bytes) -> bytes:
    frame = parse_v3(message, LIMIT, 4)
    inner = getattr(frame, "inner", frame)
    assert inner.pq_ratchet is not None
    return bytes(inner.pq_ratchet)


@pytest.mark.parametrize("signalish_initiates", [False, True])
def test_ten_thousand_messages_with_restarts_from_sqlite(libsignal_v5: LibsignalPeer,
                                                         signalish_initiates: bool,
                                                         tmp_path: Any) -> None:
    """10,000 messages in runs of every shape: one way each way, alternating,
    two to one, with late and lost messages, and the signalish side
    restarted from its SQLite file every few hundred messages (mid-epoch)."""
    from signalish import SQLiteStore

    libsignal = libsignal_v5
    if signalish_initiates:
        manager, _ = signalish_starts(libsignal, b"spqr-10k-a")
        names = {"libsignal_name": "bob", "signalish_name": "alice"}
    else:
        manager, _ = libsignal_starts(libsignal, b"spqr-10k-b")
        names = {"libsignal_name": "alice", "signalish_name": "bob"}
    # Move the signalish party's state into SQLite, then reopen it as we go.
    path = tmp_path / "signalish.db"
    store = SQLiteStore(path)
    copy_store(manager, store)
    manager = reopen(manager, store)
    total, epochs, rounds = 0, 1, 0
    shapes = ["one-way-l", "one-way-s", "alternate", "two-to-one", "late"]
    while total < 10_000:
        shape = shapes[rounds % len(shapes)]
        rounds += 1
        seen = run_shape(libsignal, manager, shape, 400, rounds, **names)
        total += 400
        epochs = max(epochs, seen["epochs"])
        store.close()
        store = SQLiteStore(path)
        manager = reopen(manager, store)
    store.close()
    assert epochs >= 20


def copy_store(manager: SessionManager, store: Any) -> None:
    from helpers import copy_rows

    with store.transaction():
        copy_rows(manager.store, store)
        for address in manager.store.identity_addresses():
            key = manager.store.get_identity(address)
            assert key is not None
            store.save_identity(address, key)


def reopen(manager: SessionManager, store: Any) -> SessionManager:
    return SessionManager(manager.identity, store, LIBSIGNAL_V4, rng=manager.rng,
                          options=manager.options)


def run_shape(libsignal: LibsignalPeer, manager: SessionManager, shape: str, count: int,
              seed: int, *, libsignal_name: str, signalish_name: str) -> dict[str, int]:
    seen = {"epochs": 1}
    if shape == "late":
        return converse(libsignal, manager, count, seed, hold=0.2, drop=0.1,
                        libsignal_name=libsignal_name, signalish_name=signalish_name)
    for i in range(count):
        from_libsignal = {"one-way-l": True, "one-way-s": False,
                          "alternate": i % 2 == 0, "two-to-one": i % 3 != 2}[shape]
        if from_libsignal:
            _, message = encrypt_from_libsignal(libsignal, f"{shape} {i}", to=signalish_name)
            assert manager.decrypt(libsignal_name, message, now=i) == f"{shape} {i}".encode()
        else:
            message = manager.encrypt(libsignal_name, f"{shape} {i}".encode())
            assert decrypt_at_libsignal(libsignal, manager, message, signalish_name) == \
                f"{shape} {i}"
        seen["epochs"] = max(seen["epochs"], field5(message)[1].epoch)
    return seen


ALICE_ACI = "a1a2a3a4-b1b2-4c1c-8d1d-e1e2e3e4e5e6"
BOB_ACI = "f1f2f3f4-0102-4304-8506-070809101112"


def addressed(manager: SessionManager, local: Any, peers: dict[str, Any]) -> SessionManager:
    """The same party with service addresses (its own, and its peers')."""
    return SessionManager(manager.identity, manager.store, LIBSIGNAL_V4, rng=manager.rng,
                          options=manager.options, local_address=local,
                          service_address=peers.get)


def test_addresses_libsignal_writes_and_signalish_checks(libsignal_v5: LibsignalPeer) -> None:
    from signalish import ServiceAddress
    from signalish.errors import AuthenticationError

    libsignal = libsignal_v5
    alice_spec = {"aci": ALICE_ACI, "device_id": 42}
    bob_spec = {"aci": BOB_ACI, "device_id": 81}
    libsignal.ok("init", registration_id=ALICE_REG, local=alice_spec)
    plain = pq_party(b"spqr-addr-bob", BOB_REG)
    libsignal.ok("process_bundle", address=bob_spec, **bundle_fields(issue_bundle(plain)))
    answer = libsignal.ok("encrypt", address=bob_spec, plaintext=b"to bob.81".hex())
    first = bytes.fromhex(answer["body"])
    inner = getattr(parse_v3(first, LIMIT, 4), "inner")
    assert inner.addresses == (ServiceAddress.aci(ALICE_ACI, 42).to_bytes()
                               + ServiceAddress.aci(BOB_ACI, 81).to_bytes())
    me = ServiceAddress.aci(BOB_ACI, 81)
    # Addressed to another device of Bob's, or from another of Alice's: refused,
    # and nothing changes.
    for local, sender in ((ServiceAddress.aci(BOB_ACI, 82), ServiceAddress.aci(ALICE_ACI, 42)),
                          (me, ServiceAddress.aci(ALICE_ACI, 43)),
                          (me, ServiceAddress.pni(ALICE_ACI, 42))):
        wrong = addressed(plain, local, {"alice": sender})
        before = wrong.export_session("alice"), snapshot_rows(wrong)
        with pytest.raises(AuthenticationError):
            wrong.decrypt("alice", first, now=1)
        assert (wrong.export_session("alice"), snapshot_rows(wrong)) == before
    # A party that knows no service address of the sender cannot check, and
    # refuses too (as libsignal does when its own address is not a service id).
    with pytest.raises(AuthenticationError):
        addressed(plain, me, {}).decrypt("alice", first, now=1)
    bob = addressed(plain, me, {"alice": ServiceAddress.aci(ALICE_ACI, 42)})
    assert bob.decrypt("alice", first, now=1) == b"to bob.81"


def snapshot_rows(manager: SessionManager) -> Any:
    from helpers import snapshot

    return snapshot(manager.store)


def test_addresses_signalish_writes_and_libsignal_checks(libsignal_v5: LibsignalPeer) -> None:
    from signalish import ServiceAddress

    libsignal = libsignal_v5
    alice_spec = {"aci": ALICE_ACI, "device_id": 42}
    bob_spec = {"aci": BOB_ACI, "device_id": 81}
    libsignal.ok("init", registration_id=BOB_REG, local=bob_spec)
    made = libsignal.ok("make_bundle", registration_id=BOB_REG, signed_prekey_id=1,
                        prekey_id=2, kyber_prekey_id=3, last_resort=False)
    del made["ok"]
    alice = addressed(pq_party(b"spqr-addr-alice", ALICE_REG),
                      ServiceAddress.aci(ALICE_ACI, 42),
                      {"bob": ServiceAddress.aci(BOB_ACI, 81)})
    alice.initiate("bob", bundle_from_libsignal(made))
    first = alice.encrypt("bob", b"to bob.81")
    inner = getattr(parse_v3(first, LIMIT, 4), "inner")
    assert inner.addresses == (ServiceAddress.aci(ALICE_ACI, 42).to_bytes()
                               + ServiceAddress.aci(BOB_ACI, 81).to_bytes())
    # libsignal refuses it from another device, or as another recipient...
    for sender, local in (({"aci": ALICE_ACI, "device_id": 43}, bob_spec),
                          (alice_spec, {"aci": BOB_ACI, "device_id": 82})):
        refused = libsignal("decrypt", address=sender, local=local, type=3, body=first.hex())
        assert not refused.get("ok"), refused
    # ...and takes it as it is.
    answer = libsignal.ok("decrypt", address=alice_spec, type=3, body=first.hex())
    assert bytes.fromhex(answer["plaintext"]) == b"to bob.81"
    # Once libsignal answers, the session leaves PreKeyMessages and field 6 behind.
    reply = bytes.fromhex(libsignal.ok("encrypt", address=alice_spec,
                                       plaintext=b"hi".hex())["body"])
    assert alice.decrypt("bob", reply, now=1) == b"hi"
    later = alice.encrypt("bob", b"later")
    assert alice.message_type(later) == 2 and parse_v3(later, LIMIT, 4).addresses is None
    answer = libsignal.ok("decrypt", address=alice_spec, type=2, body=later.hex())
    assert bytes.fromhex(answer["plaintext"]) == b"later"
