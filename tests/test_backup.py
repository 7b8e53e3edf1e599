"""Password-protected backups: a restored device continues its conversations."""

from __future__ import annotations

import pytest

from signalish import (
    BackupDamaged,
    BackupParams,
    DeterministicRandom,
    InvalidArgument,
    MemoryStore,
    SessionManager,
    WrongPassword,
    create_backup,
    restore_backup,
)
from sessions import make_party

FAST = BackupParams(iterations=1, lanes=1, memory_kib=64)


def conversation():  # type: ignore[no-untyped-def]
    alice = make_party("alice", b"backup")
    bob = make_party("bob", b"backup")
    alice.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"hi"), now=1)
    alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"hello"), now=2)
    return alice, bob


def test_restored_device_continues_the_conversation() -> None:
    alice, bob = conversation()
    in_flight = alice.manager.encrypt("bob", b"sent before the phone was lost")
    blob = create_backup(bob.identity, bob.store, "correct horse", rng=DeterministicRandom(b"b"),
                         params=FAST)
    new_store = MemoryStore()
    identity = restore_backup(blob, "correct horse", new_store)
    assert identity.public == bob.identity.public
    new_bob = SessionManager(identity, new_store, rng=DeterministicRandom(b"new"))
    assert new_bob.decrypt("alice", in_flight, now=3) == b"sent before the phone was lost"
    reply = new_bob.encrypt("alice", b"restored and replying")
    assert alice.manager.decrypt("bob", reply, now=4) == b"restored and replying"
    assert new_store.get_identity("alice") == alice.identity.public
    assert new_store.load_prekeys() == bob.store.load_prekeys()


def test_without_sessions() -> None:
    _, bob = conversation()
    blob = create_backup(bob.identity, bob.store, "pw", rng=DeterministicRandom(b"s"),
                         include_sessions=False, params=FAST)
    store = MemoryStore()
    restore_backup(blob, "pw", store)
    assert store.session_addresses() == [] and store.load_prekeys() is not None


def test_wrong_password_and_damage_are_distinct() -> None:
    _, bob = conversation()
    blob = create_backup(bob.identity, bob.store, "pw", rng=DeterministicRandom(b"d"),
                         params=FAST)
    store = MemoryStore()
    with pytest.raises(WrongPassword):
        restore_backup(blob, "not the password", store)
    for i in range(0, len(blob), 97):
        with pytest.raises(BackupDamaged):
            restore_backup(blob[:i] + bytes((blob[i] ^ 0x04,)) + blob[i + 1:], "pw", store)
    with pytest.raises(BackupDamaged):
        restore_backup(blob[:-1], "pw", store)
    assert store.session_addresses() == [] and store.load_prekeys() is None


def test_altered_ciphertext_with_fixed_checksum_is_damage() -> None:
    """Someone who changes the ciphertext and recomputes the checksum still
    fails the AEAD: reported as damage, not as a wrong password."""
    import hashlib
    _, bob = conversation()
    blob = create_backup(bob.identity, bob.store, "pw", rng=DeterministicRandom(b"e"),
                         params=FAST)
    body = bytearray(blob[:-16])
    body[-5] ^= 0x01
    forged = bytes(body) + hashlib.sha256(bytes(body)).digest()[:16]
    with pytest.raises(BackupDamaged, match="authentication"):
        restore_backup(forged, "pw", MemoryStore())


def test_default_parameters_follow_rfc9106_second_recommendation() -> None:
    params = BackupParams()
    assert (params.iterations, params.lanes, params.memory_kib) == (3, 4, 64 * 1024)
    _, bob = conversation()
    blob = create_backup(bob.identity, bob.store, "pw", rng=DeterministicRandom(b"f"))
    assert blob[2:14] == (3).to_bytes(4, "big") + (4).to_bytes(4, "big") + (65536).to_bytes(4, "big")
    assert restore_backup(blob, "pw", MemoryStore()).public == bob.identity.public


def test_bad_parameters_and_empty_password() -> None:
    with pytest.raises(InvalidArgument):
        BackupParams(memory_kib=4)
    _, bob = conversation()
    with pytest.raises(InvalidArgument):
        create_backup(bob.identity, bob.store, "", rng=DeterministicRandom(b"g"), params=FAST)
