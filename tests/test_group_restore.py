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
from signalish.errors import InvalidArgument
from signalish.groups import GroupCipher, SenderKeyMessage, forget_own_sender_keys

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
    restored.mark_restored(now=NOW)
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


class _TwoMethodStore:
    """An application's store: the manager's store for everything else, and
    sender keys with only the two methods GroupCipher needs (no way to list
    or delete them)."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.sender_keys: dict[tuple[str, uuid.UUID], bytes] = {}

    def __getattr__(self, name: str) -> object:
        if name in ("delete_sender_key", "sender_key_ids"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def load_sender_key(self, sender: str, distribution_id: uuid.UUID) -> bytes | None:
        return self.sender_keys.get((sender, distribution_id))

    def save_sender_key(self, sender: str, distribution_id: uuid.UUID, record: bytes) -> None:
        self.sender_keys[(sender, distribution_id)] = bytes(record)


def test_a_store_that_cannot_delete_sender_keys_is_refused_not_skipped() -> None:
    """Found by review: mark_restored skipped a store whose sender keys it
    could not list or delete, and the group's next message reused the
    message key of one sent before the rollback.  Now it refuses and
    changes nothing; and restore_backup likewise."""
    rng = DeterministicRandom(b"two-method store")
    store = _TwoMethodStore()
    alice = SessionManager(IdentityKeyPair.generate(rng), store, rng=rng)  # type: ignore[arg-type]
    bob = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), rng=rng)
    with bob.prekeys(now=NOW) as ring:
        ring.generate_one_time_prekeys(1, rng)
        bundle = ring.issue_bundle()
    alice.initiate("bob", bundle)
    groups = GroupCipher(store, alice.profile, rng=rng)
    groups.distribution_message("alice.1", GROUP)
    snapshot = dict(store.sender_keys)
    groups.encrypt("alice.1", GROUP, b"before the rollback")
    store.sender_keys = dict(snapshot)  # the sender keys go back
    sessions_before = {part: row for part, row in store.inner._sessions["bob"].items()}
    with pytest.raises(InvalidArgument, match="cannot list or delete"):
        alice.mark_restored(now=NOW)
    # Nothing changed: the session can still send, the sender key is there.
    assert store.inner._sessions["bob"] == sessions_before
    alice.encrypt("bob", b"still sends")
    assert store.sender_keys.keys() == snapshot.keys()
    params = BackupParams(iterations=1, lanes=1, memory_kib=64)
    blob = create_backup(alice.identity, store, "pw", params=params, rng=rng)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="cannot list or delete"):
        restore_backup(blob, "pw", store, now=NOW, rng=rng)  # type: ignore[arg-type]
    # What the application must do instead: give the store the whole
    # protocol, or keep sender keys in one that has it and forget there.
    keys = MemoryStore()
    kept = GroupCipher(keys, alice.profile, rng=rng)
    kept.distribution_message("alice.1", GROUP)
    kept.process("bob.1", GroupCipher(MemoryStore(), alice.profile, rng=rng)
                 .distribution_message("bob.1", GROUP))
    with keys.transaction():
        forget_own_sender_keys(keys)
    assert keys.sender_key_ids() == [("bob.1", GROUP)]
    with pytest.raises(NoSession):
        kept.encrypt("alice.1", GROUP, b"would reuse a key")


def test_forget_own_sender_keys_leaves_a_store_without_sender_keys_alone() -> None:
    class Plain:
        pass

    forget_own_sender_keys(Plain())  # nothing to forget, nothing raised
