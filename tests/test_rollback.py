"""Rolling back a SQLite store: what is detected, and what the application
does about it so that no message key is ever used twice.

The scenario: Bob's device copies its database (a file-system snapshot, a
sync tool, a restored VM), keeps talking, and later the old copy comes back.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import copy_rows
from sessions import Party, make_party, message_key_id
from signalish import DeterministicRandom, SQLiteStore, SessionManager
from signalish.errors import PreKeyError, StaleSession, StoreRolledBack


def sqlite_bob(path: Path, seed: bytes, min_generation: int = 0) -> tuple[SessionManager,
                                                                          SQLiteStore]:
    identity = make_party("bob", b"rollback").identity
    store = SQLiteStore(path, min_generation=min_generation)
    return SessionManager(identity, store, rng=DeterministicRandom(seed)), store


def copy_database(source: Path, target: Path) -> None:
    """An offline copy: the store is closed, so the file is the whole state."""
    shutil.copyfile(source, target)


def setup_conversation(tmp_path: Path) -> tuple[Party, SessionManager, SQLiteStore, Path]:
    alice = make_party("alice", b"rollback")
    template = make_party("bob", b"rollback")
    path = tmp_path / "bob.db"
    bob, store = sqlite_bob(path, b"bob")
    with store.transaction():
        copy_rows(template.store, store)  # the template's prekey rows (it has no session)
    alice.manager.initiate("bob", template.bundle())
    bob.decrypt("alice", alice.manager.encrypt("bob", b"hi"), now=1)
    alice.manager.decrypt("bob", bob.encrypt("alice", b"hello"), now=2)
    return alice, bob, store, path


def test_old_copy_detected_with_the_recorded_generation_and_no_key_reused(tmp_path: Path) -> None:
    alice, bob, store, path = setup_conversation(tmp_path)
    store.close()
    copy_database(path, tmp_path / "snapshot.db")
    bob, store = sqlite_bob(path, b"bob again")
    sent = [bob.encrypt("alice", b"after the snapshot %d" % i) for i in range(3)]
    for message in sent:
        alice.manager.decrypt("bob", message, now=3)
    recorded = store.generation  # the application keeps this outside the database
    store.close()
    copy_database(tmp_path / "snapshot.db", path)  # the old copy comes back
    with pytest.raises(StoreRolledBack):
        SQLiteStore(path, min_generation=recorded)
    # What the application does: open it anyway, and make every session receive-only.
    bob, store = sqlite_bob(path, b"after rollback")
    bob.mark_restored(now=3)
    with pytest.raises(StaleSession):
        bob.encrypt("alice", b"would reuse a key")
    in_flight = alice.manager.encrypt("bob", b"new ratchet key")
    assert bob.decrypt("alice", in_flight, now=4) == b"new ratchet key"
    replies = [bob.encrypt("alice", b"fresh chain %d" % i) for i in range(3)]
    for i, reply in enumerate(replies):
        assert alice.manager.decrypt("bob", reply, now=5) == b"fresh chain %d" % i
    ids = [message_key_id(m) for m in sent + replies]
    assert len(set(ids)) == len(ids)
    store.close()


def test_without_a_recorded_generation_the_old_copy_is_not_detected(tmp_path: Path) -> None:
    """The documented limit: an old copy is a valid store.  Unless the
    application recorded a newer generation somewhere the copy does not bring
    back (or marks the store restored itself), the library cannot know, and
    the old sending state would be used again."""
    alice, bob, store, path = setup_conversation(tmp_path)
    store.close()
    copy_database(path, tmp_path / "snapshot.db")
    bob, store = sqlite_bob(path, b"bob again")
    first = bob.encrypt("alice", b"after the snapshot")
    store.close()
    copy_database(tmp_path / "snapshot.db", path)
    bob, store = sqlite_bob(path, b"after rollback")   # opens without complaint
    again = bob.encrypt("alice", b"same key again")
    assert message_key_id(first) == message_key_id(again)  # why min_generation matters
    store.close()


def test_a_copy_restored_under_an_open_store_is_detected(tmp_path: Path) -> None:
    import sqlite3
    alice, bob, store, path = setup_conversation(tmp_path)
    snapshot = tmp_path / "snapshot.db"
    with sqlite3.connect(path) as source, sqlite3.connect(snapshot) as target:
        source.backup(target)
    bob.encrypt("alice", b"moves the generation on")
    with sqlite3.connect(snapshot) as source, sqlite3.connect(path) as target:
        source.backup(target)   # an older copy written back through SQLite
    with pytest.raises(StoreRolledBack):
        bob.encrypt("alice", b"refused before anything is read")
    store.close()


def test_after_mark_restored_no_prekey_builds_a_second_session(tmp_path: Path) -> None:
    """Found by review: mark_restored left the old copy's prekey ring, so an
    initial message that had consumed a one-time prekey after the copy was
    taken (replayed by a server, or resent) built a second session from that
    prekey, and one that used none could be replayed too (the base keys the
    ring remembered went back with it).  Now the ring is restarted: both
    are refused, and the new prekeys come back to be uploaded."""
    path = tmp_path / "bob.db"
    bob, store = sqlite_bob(path, b"prekeys")
    with bob.prekeys(now=0) as ring:
        ring.generate_one_time_prekeys(3, bob.rng)
        with_one_time = ring.issue_bundle()
        ids_then = ring.next_ids
    store.close()
    copy_database(path, tmp_path / "snapshot.db")
    bob, store = sqlite_bob(path, b"prekeys later")
    alice, carol = make_party("alice", b"prekeys"), make_party("carol", b"prekeys")
    alice.manager.initiate("bob", with_one_time)
    first = alice.manager.encrypt("bob", b"first session")
    assert bob.decrypt("alice", first, now=1) == b"first session"
    with bob.prekeys(now=1) as ring:  # more keys, then a bundle once they ran out
        ring.rotate_signed_prekey(bob.rng, now=1, grace=86_400)
        ring.generate_one_time_prekeys(2, bob.rng)
        bundles = [ring.issue_bundle() for _ in range(6)]
        ids_later = ring.next_ids
    without = bundles[-1]
    assert without.one_time_prekey is None
    assert ids_later.signed > ids_then.signed and ids_later.one_time > ids_then.one_time
    carol.manager.initiate("bob", without)
    second = carol.manager.encrypt("bob", b"no one-time prekey")
    assert bob.decrypt("carol", second, now=1) == b"no one-time prekey"
    store.close()
    copy_database(tmp_path / "snapshot.db", path)  # the old copy comes back
    bob, store = sqlite_bob(path, b"restored")
    upload = bob.mark_restored(now=2, next_ids=ids_later)
    assert upload.signed is not None and not upload.one_time
    for address, message in (("alice", first), ("mallory", first), ("carol", second)):
        with pytest.raises(PreKeyError):
            bob.decrypt(address, message, now=3)
    # The ids went on from where the newest ring had reached.
    with bob.prekeys(now=3) as ring:
        assert ring.next_ids.signed > ids_later.signed
        assert ring.next_ids.one_time == ids_later.one_time
        ring.generate_one_time_prekeys(1, bob.rng)
        fresh = ring.issue_bundle()
    assert fresh.one_time_prekey is not None
    assert fresh.one_time_prekey.key_id >= ids_later.one_time
    alice.manager.initiate("bob", fresh)
    assert bob.decrypt("alice", alice.manager.encrypt("bob", b"new"), now=3) == b"new"
    store.close()
