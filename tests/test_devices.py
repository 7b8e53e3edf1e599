"""Many devices per user (issue 18): ProtocolAddress, encrypt_to_devices,
update_devices and trust per user, against the miniature server in
tests/devices.py."""

from __future__ import annotations

import pytest

from devices import Device, Server, new_device, read, send
from signalish import (
    DeterministicRandom,
    IdentityKeyPair,
    MemoryStore,
    NoSession,
    ProtocolAddress,
    SessionManager,
    SessionOptions,
    UntrustedIdentity,
)
from signalish.fingerprint import SafetyNumber
from signalish.errors import InvalidArgument

USERS = ("alice", "bob", "carol")


def identity(user: str, salt: bytes = b"") -> IdentityKeyPair:
    return IdentityKeyPair.generate(DeterministicRandom(b"account " + user.encode() + salt))


def world() -> tuple[Server, dict[str, IdentityKeyPair], dict[tuple[str, int], Device]]:
    """Three users with a phone (1) and a laptop (2) each."""
    server = Server()
    ids = {user: identity(user) for user in USERS}
    devices = {}
    for n, user in enumerate(USERS):
        for device_id in (1, 2):
            device = new_device(user, device_id, ids[user], 100 * (n + 1) + device_id)
            server.register(device)
            devices[(user, device_id)] = device
    return server, ids, devices


def everyone_reads(server: Server, devices: dict[tuple[str, int], Device]
                   ) -> dict[tuple[str, int], list[tuple[str, bytes]]]:
    return {key: [(str(sender), text) for sender, text in read(server, device)]
            for key, device in devices.items()}


def test_protocol_address() -> None:
    assert str(ProtocolAddress("bob", 2)) == "bob.2"
    assert ProtocolAddress("bob", 2) == ProtocolAddress("bob", 2)
    for name, device_id in (("", 1), ("a\x00b", 1), ("bob", 0), ("bob", 128), ("bob", True),
                            (b"bob", 1)):
        with pytest.raises(InvalidArgument):
            ProtocolAddress(name, device_id)  # type: ignore[arg-type]


def test_every_message_reaches_every_device() -> None:
    """Each device of each user writes to each other user and to its own
    other device; every device reads exactly what was sent to it, once."""
    server, _, devices = world()
    expected: dict[tuple[str, int], list[tuple[str, bytes]]] = {key: [] for key in devices}
    for (user, device_id), device in devices.items():
        for to in USERS:
            text = b"%s.%d to %s" % (user.encode(), device_id, to.encode())
            send(server, device, to, text)
            for (other, other_device) in devices:
                if other == to and (other, other_device) != (user, device_id):
                    expected[(other, other_device)].append((f"{user}.{device_id}", text))
    assert everyone_reads(server, devices) == expected
    # Round two: every session is established both ways now; no retry needed.
    before = server.submissions
    for device in devices.values():
        for to in USERS:
            send(server, device, to, b"again")
    assert server.submissions - before == len(devices) * len(USERS)
    assert all(len(got) == 5 for got in everyone_reads(server, devices).values())


def test_devices_added_removed_and_relinked_mid_conversation() -> None:
    server, ids, devices = world()
    alice, bob_phone = devices[("alice", 1)], devices[("bob", 1)]
    send(server, alice, "bob", b"hello both")
    assert alice.manager.devices("bob") == [1, 2]
    # Bob adds a tablet: the server says device 3 is missing; one retry.
    tablet = new_device("bob", 3, ids["bob"], 203)
    server.register(tablet)
    assert send(server, alice, "bob", b"hello three") == 2
    assert alice.manager.devices("bob") == [1, 2, 3]
    assert [t for _, t in read(server, tablet)] == [b"hello three"]
    # Bob removes his laptop: device 2 is extra; its session is archived.
    old_laptop = devices[("bob", 2)]
    assert len(read(server, old_laptop)) == 2  # now it has a session with alice.1
    late = old_laptop.manager.encrypt_to_devices("alice", b"sent before removal", [1])
    server.remove("bob", 2)
    assert send(server, alice, "bob", b"hello two") == 2
    assert alice.manager.devices("bob") == [1, 3]
    assert alice.manager.has_session(ProtocolAddress("bob", 2))          # archived...
    assert not alice.manager.has_session(ProtocolAddress("bob", 2), current=True)
    assert alice.manager.decrypt(ProtocolAddress("bob", 2), late.messages[1],
                                 now=1) == b"sent before removal"        # ...still decrypts
    # Bob links the laptop again, as device 2 with a new registration: alice
    # archived device 2, so the server says it is missing (one retry).
    relinked = new_device("bob", 2, ids["bob"], 299)
    server.register(relinked)
    assert send(server, alice, "bob", b"hello again") == 2
    assert read(server, relinked)[-1][1] == b"hello again"
    # A sender that still had the old laptop's session gets 410 for it.
    carol = devices[("carol", 1)]
    send(server, carol, "bob", b"before the relink")  # carol: devices 1, 3 after one 409
    assert carol.manager.devices("bob") == [1, 2, 3]
    relinked_again = new_device("bob", 2, ids["bob"], 298)
    server.register(relinked_again)
    attempts_before = server.submissions
    assert send(server, carol, "bob", b"after the relink") == 2
    assert server.submissions - attempts_before == 2
    assert carol.manager.registration_id(ProtocolAddress("bob", 2)) == 298
    assert read(server, relinked_again)[-1] == (ProtocolAddress("carol", 1), b"after the relink")
    assert [t for _, t in read(server, bob_phone)][-1] == b"after the relink"


def test_trust_is_per_user_not_per_address() -> None:
    """A device the server adds under bob with another identity key is
    refused: when alice is told to send to it, and when it writes to her.
    Nothing changes either time, and bob's real devices go on."""
    server, ids, devices = world()
    alice = devices[("alice", 1)]
    send(server, alice, "bob", b"hi")
    impostor = new_device("bob", 9, identity("bob", b"impostor"), 999)
    server.register(impostor)
    sent = alice.manager.encrypt_to_devices("bob", b"who is there")
    assert server.submit(alice.address, sent).missing == [9]
    store_before = alice.manager.export_session(ProtocolAddress("bob", 1))
    with pytest.raises(UntrustedIdentity) as refused:
        alice.manager.update_devices("bob", missing={9: server.bundle("bob", 9)})
    assert refused.value.address == "bob"
    assert not alice.manager.has_session(ProtocolAddress("bob", 9))
    assert alice.manager.export_session(ProtocolAddress("bob", 1)) == store_before
    # The impostor writes first instead: refused, no session.
    impostor.manager.initiate(ProtocolAddress("alice", 1), server.bundle("alice", 1))
    forged = impostor.manager.encrypt(ProtocolAddress("alice", 1), b"I am bob")
    with pytest.raises(UntrustedIdentity):
        alice.manager.decrypt(ProtocolAddress("bob", 9), forged, now=1)
    assert not alice.manager.has_session(ProtocolAddress("bob", 9))
    server.remove("bob", 9)
    assert send(server, alice, "bob", b"still fine") == 1
    # Plain address strings keep an identity each, as before.
    legacy = SessionManager(identity("dave"), MemoryStore(), rng=DeterministicRandom(b"d"))
    legacy.initiate("bob.9", server.bundle("bob", 1))
    legacy.initiate("bob.8", server.bundle("bob", 2))
    assert legacy.store.get_identity("bob.9") == ids["bob"].public
    assert legacy.store.get_identity("bob") is None


def test_the_safety_number_does_not_change_when_a_device_is_added() -> None:
    server, ids, devices = world()
    alice = devices[("alice", 1)]
    send(server, alice, "bob", b"hi")

    def number() -> str:
        bob_key = alice.manager.store.get_identity("bob")
        assert bob_key is not None
        return SafetyNumber.compute(ids["alice"].public, "alice", bob_key, "bob").formatted()

    before = number()
    server.register(new_device("bob", 3, ids["bob"], 203))
    assert send(server, alice, "bob", b"to three devices") == 2
    assert number() == before


def test_encrypt_to_devices_reports_each_device() -> None:
    server, ids, devices = world()
    alice = devices[("alice", 1)]
    alice.manager.initiate(ProtocolAddress("bob", 1), server.bundle("bob", 1))
    result = alice.manager.encrypt_to_devices("bob", b"x", [1, 2, 5])
    assert set(result.messages) == {1} and set(result.failed) == {2, 5}
    assert all(isinstance(e, NoSession) for e in result.failed.values())
    assert not result.complete
    assert result.registration_ids == {1: 201}
    assert alice.manager.encrypt_to_devices("bob", b"y").complete
    with pytest.raises(InvalidArgument):
        alice.manager.update_devices("bob", missing={3: server.bundle("bob", 1)})
    with pytest.raises(InvalidArgument):
        alice.manager.encrypt_to_devices("bob", b"z", [0])


def test_with_max_archived_0_a_removed_device_leaves_no_record() -> None:
    """Archiving the only session of a record that keeps no archived ones
    leaves nothing: the record is deleted (an empty one would be unreadable
    and block every device of the user)."""
    server, ids, devices = world()
    alice = new_device("alice", 3, ids["alice"], 903,
                       options=SessionOptions(max_archived=0))
    server.register(alice)
    send(server, alice, "bob", b"hi")
    server.remove("bob", 2)
    send(server, alice, "bob", b"bob has one device now")
    assert not alice.manager.has_session(ProtocolAddress("bob", 2))
    reopened = SessionManager(alice.manager.identity, alice.manager.store)
    assert reopened.devices("bob") == [1]
    assert reopened.encrypt_to_devices("bob", b"still works").complete
    assert reopened.registration_id(ProtocolAddress("bob", 2)) is None


def test_registration_ids_belong_to_the_device() -> None:
    """A device's registration id is learned from its bundles and kept with
    the device (not the session); a reinstalled device that writes first
    under the native profile shows its old id until the server's 410 brings
    its new bundle; delete_sessions forgets it."""
    server, ids, devices = world()
    alice = devices[("alice", 1)]
    bob_laptop = ProtocolAddress("bob", 2)
    send(server, alice, "bob", b"hi")
    assert alice.manager.registration_id(bob_laptop) == 202
    reinstalled = new_device("bob", 2, ids["bob"], 299)
    server.register(reinstalled)
    reinstalled.manager.initiate(alice.address, server.bundle("alice", 1))
    alice.manager.decrypt(bob_laptop, reinstalled.manager.encrypt(alice.address, b"new"), now=1)
    assert alice.manager.registration_id(bob_laptop) == 202  # not learnable from it
    assert send(server, alice, "bob", b"after the reinstall") == 2  # one 410
    assert alice.manager.registration_id(bob_laptop) == 299
    alice.manager.delete_sessions(bob_laptop)
    assert alice.manager.registration_id(bob_laptop) is None
