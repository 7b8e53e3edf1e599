"""Our own sender keys after a rollback or a restore: they went back with the
store, so they are deleted and a new one must be made and distributed (no
group message key is used twice); other members' sender keys are kept."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from signalish import (
    DeterministicRandom,
    IdentityKeyPair,
    MemoryStore,
    NATIVE,
    NoSession,
    SQLiteStore,
    SessionManager,
)
from signalish.backup import BackupParams, create_backup, restore_backup
from signalish.groups import GroupCipher, SenderKeyMessage

GROUP = uuid.UUID(int=0x5EED)
NOW = 1_700_000_000


def test_mark_restored_deletes_our_sender_keys_only(tmp_path: Path) -> None:
    rng = DeterministicRandom(b"group rollback")
    path = tmp_path / "alice.db"
    alice = SessionManager(IdentityKeyPair.generate(rng), SQLiteStore(path), rng=rng)
    groups = GroupCipher(alice.store, alice.profile, rng=rng)  # type: ignore[arg-type]
    bob_store = MemoryStore()
    bob = GroupCipher(bob_store, alice.profile, rng=rng)
    bob.process("alice.1", groups.distribution_message("alice.1", GROUP))
    alice_reads = GroupCipher(alice.store, alice.profile)  # type: ignore[arg-type]
    alice_reads.process("bob.1", bob.distribution_message("bob.1", GROUP))
    first = groups.encrypt("alice.1", GROUP, b"before the snapshot")
    assert isinstance(alice.store, SQLiteStore)
    alice.store.close()
    shutil.copy(path, tmp_path / "snapshot.db")
    store = SQLiteStore(path)
    groups = GroupCipher(store, alice.profile, rng=rng)
    sent = groups.encrypt("alice.1", GROUP, b"after the snapshot")
    store.close()
    # The file goes back to the snapshot; the application notices and calls
    # mark_restored.
    shutil.copy(tmp_path / "snapshot.db", path)
    store = SQLiteStore(path)
    restored = SessionManager(alice.identity, store, rng=rng)
    groups = GroupCipher(store, alice.profile, rng=rng)
    assert len(store.sender_key_ids()) == 2
    restored.mark_restored()
    assert store.sender_key_ids() == [("bob.1", GROUP)]  # bob's key kept
    with pytest.raises(NoSession):
        groups.encrypt("alice.1", GROUP, b"would reuse a key")
    skdm = groups.distribution_message("alice.1", GROUP)  # a new key, for the members
    bob.process("alice.1", skdm)
    fresh = groups.encrypt("alice.1", GROUP, b"new chain")
    assert SenderKeyMessage.parse(fresh, alice.profile).chain_id != \
        SenderKeyMessage.parse(sent, alice.profile).chain_id
    assert bob.decrypt("alice.1", first) == b"before the snapshot"
    assert bob.decrypt("alice.1", sent) == b"after the snapshot"
    assert bob.decrypt("alice.1", fresh) == b"new chain"
    assert GroupCipher(store, alice.profile).decrypt(
        "bob.1", bob.encrypt("bob.1", GROUP, b"still readable")) == b"still readable"
    store.close()


def test_restore_backup_deletes_our_sender_keys_in_the_target_store() -> None:
    rng = DeterministicRandom(b"group backup")
    identity = IdentityKeyPair.generate(rng)
    store = MemoryStore()
    alice = SessionManager(identity, store, rng=rng)
    with alice.prekeys(now=NOW):
        pass
    params = BackupParams(iterations=1, lanes=1, memory_kib=64)
    blob = create_backup(identity, store, "pw", params=params, rng=rng)
    groups = GroupCipher(store, alice.profile, rng=rng)
    groups.distribution_message("alice.1", GROUP)
    GroupCipher(store, alice.profile).process(
        "bob.1", GroupCipher(MemoryStore(), alice.profile, rng=rng).distribution_message(
            "bob.1", GROUP))
    restore_backup(blob, "pw", store, now=NOW, rng=rng)
    assert store.sender_key_ids() == [("bob.1", GROUP)]


def test_a_kept_record_is_never_staler_than_the_store(tmp_path: Path) -> None:
    """GroupCipher keeps parsed records between calls: two ciphers on one
    file (two processes, say) take turns sending on one sender key, and an
    application transaction around a send rolls back; every message still
    has its own iteration, and each decrypts once."""
    rng = DeterministicRandom(b"group cache")
    path = tmp_path / "shared.db"
    first_store, second_store = SQLiteStore(path), SQLiteStore(path)
    first = GroupCipher(first_store, NATIVE, rng=rng)
    second = GroupCipher(second_store, NATIVE, rng=rng)
    reader = GroupCipher(MemoryStore(), NATIVE)
    reader.process("alice.1", first.distribution_message("alice.1", GROUP))
    sent = []
    for i in range(6):
        cipher = first if i % 3 else second
        sent.append(cipher.encrypt("alice.1", GROUP, b"m%d" % i))
    with pytest.raises(RuntimeError):
        with first_store.transaction():
            first.encrypt("alice.1", GROUP, b"never sent")
            raise RuntimeError("the application's transaction fails")
    sent.append(first.encrypt("alice.1", GROUP, b"after the rollback"))
    sent.append(second.encrypt("alice.1", GROUP, b"from the other"))
    iterations = [SenderKeyMessage.parse(m, NATIVE).iteration for m in sent]
    assert iterations == list(range(len(sent)))
    assert [reader.decrypt("alice.1", m) for m in sent][-2:] == [b"after the rollback",
                                                                  b"from the other"]
    first_store.close()
    second_store.close()
