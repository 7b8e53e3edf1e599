"""Stores: the SQLite store commits a decryption and its new state together.

Crash safety is shown two ways: by injecting a failure between decryption
and commit, and by killing a real process in the middle of the transaction.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from helpers import check_local_data, check_sender_key_records, session_parts, snapshot
from sqlite_helpers import legacy_file, sqlite_bob
from sessions import make_party

from signalish import (
    DeterministicRandom,
    IdentityKeyPair,
    IdentityStore,
    MemoryStore,
    PreKeyStore,
    SQLiteStore,
    SessionManager,
    SessionStore,
    Store,
)
from signalish._session import SessionRecord
from signalish._storage import load_record, record_bytes, ring_bytes
from signalish.errors import CorruptState, DuplicateMessage

ROOT = Path(__file__).resolve().parent.parent


class Boom(Exception):
    pass


def setup_pair(path: Path) -> tuple[SessionManager, IdentityKeyPair, DeterministicRandom]:
    """Alice in memory; Bob in SQLite at ``path`` with his identity saved there."""
    return sqlite_bob(path, b"stores")


def test_stores_satisfy_the_protocols(tmp_path: Path) -> None:
    for store in (MemoryStore(), SQLiteStore(tmp_path / "p.db")):
        for protocol in (IdentityStore, PreKeyStore, SessionStore, Store):
            assert isinstance(store, protocol)


def test_sqlite_round_trip_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "bob.db"
    alice, bob, rng = setup_pair(path)
    with SQLiteStore(path) as store:
        manager = SessionManager(bob, store, rng=rng)
        assert manager.decrypt("alice", alice.encrypt("bob", b"one"), now=1) == b"one"
        reply = manager.encrypt("alice", b"reply")
    assert alice.decrypt("bob", reply, now=2) == b"reply"
    with SQLiteStore(path) as store:
        identity = IdentityKeyPair.from_bytes(store.load_local("identity") or b"")
        manager = SessionManager(identity, store, rng=rng)
        assert manager.decrypt("alice", alice.encrypt("bob", b"two"), now=3) == b"two"
        assert store.get_identity("alice") == alice.identity.public


def test_failure_between_decrypt_and_commit_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bob.db"
    alice, bob, rng = setup_pair(path)
    first = alice.encrypt("bob", b"first")
    with SQLiteStore(path) as store:
        manager = SessionManager(bob, store, rng=rng)
        before = snapshot(store)
        assert before["sessions"] == {} and before["prekeys"]

        def fail(plaintext: bytes) -> None:
            assert plaintext == b"first"
            raise Boom

        with pytest.raises(Boom):
            manager.decrypt("alice", first, now=1, deliver=fail)
        # No session row, no identity, and every prekey row as it was (the
        # one-time prekey not consumed).
        assert snapshot(store) == before
        assert manager.decrypt("alice", first, now=1) == b"first"
        with pytest.raises(DuplicateMessage):
            manager.decrypt("alice", first, now=1)


def test_failed_save_on_encrypt_releases_no_ciphertext(tmp_path: Path) -> None:
    path = tmp_path / "bob.db"
    alice, bob, rng = setup_pair(path)

    class FailingStore(SQLiteStore):
        fail = False

        def save_session(self, address: str, data: bytes, part: bytes = b"") -> None:
            super().save_session(address, data, part)
            if self.fail:
                raise Boom

    with FailingStore(path) as store:
        manager = SessionManager(bob, store, rng=rng)
        manager.decrypt("alice", alice.encrypt("bob", b"hi"), now=1)
        before = snapshot(store)
        stored = record_bytes(store, "alice")
        store.fail = True
        with pytest.raises(Boom):
            manager.encrypt("alice", b"never released")
        assert snapshot(store) == before
        store.fail = False
        message = manager.encrypt("alice", b"released")
    # The released message used the first sending key, which no other released
    # message used: the peer decrypts it, and a second encryption moves on.
    assert alice.decrypt("bob", message, now=2) == b"released"
    state = SessionRecord.from_bytes(stored or b"").current
    assert state is not None and state.state.ns == 0


KILLER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, sys.argv[1])
    from signalish import DeterministicRandom, IdentityKeyPair, SessionManager, SQLiteStore
    store = SQLiteStore(sys.argv[2])
    identity = IdentityKeyPair.from_bytes(store.load_local("identity"))
    manager = SessionManager(identity, store, rng=DeterministicRandom(b"child"))
    message = bytes.fromhex(sys.stdin.read())
    def die(plaintext):
        # Decrypted, state written inside the open transaction: now the process dies.
        sys.stdout.write(plaintext.decode()); sys.stdout.flush()
        os._exit(9)
    manager.decrypt("alice", message, now=5, deliver=die)
""")


def test_killed_process_mid_transaction_loses_no_message(tmp_path: Path) -> None:
    path = tmp_path / "bob.db"
    alice, bob, rng = setup_pair(path)
    message = alice.encrypt("bob", b"survives a crash")
    with SQLiteStore(path) as store:
        before = snapshot(store)
    child = subprocess.run([sys.executable, "-c", KILLER, str(ROOT), str(path)],
                           input=message.hex(), capture_output=True, text=True, timeout=60)
    assert child.returncode == 9, child.stderr
    assert child.stdout == "survives a crash"
    with SQLiteStore(path) as store:
        assert snapshot(store) == before  # the transaction never committed
        assert session_parts(store) == {}
        manager = SessionManager(bob, store, rng=rng)
        assert manager.decrypt("alice", message, now=6) == b"survives a crash"
    assert os.path.exists(path)


def test_sqlite_writes_need_a_transaction(tmp_path: Path) -> None:
    from signalish.errors import InvalidArgument
    with SQLiteStore(tmp_path / "x.db") as store:
        for write in (lambda: store.save_session("a", b"x"),
                      lambda: store.save_session("a", b"x", b"s" + bytes(32)),
                      lambda: store.delete_session("a"),
                      lambda: store.delete_session("a", b"s" + bytes(32)),
                      lambda: store.save_prekeys(b"x"),
                      lambda: store.save_prekeys(b"x", b"o\x00\x00\x00\x01"),
                      lambda: store.delete_prekeys(b"o\x00\x00\x00\x01")):
            with pytest.raises(InvalidArgument):
                write()


# --- rows ---------------------------------------------------------------------------


def open_store(kind: str, tmp_path: Path) -> MemoryStore | SQLiteStore:
    return MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "rows.db")


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_rows_under_parts(kind: str, tmp_path: Path) -> None:
    """Rows are kept per (address, part) and per prekey part: each loads
    back as written, a delete of one part leaves the others, a delete
    without a part removes every row of the address and nothing else;
    session_addresses lists only addresses with a head row."""
    store = open_store(kind, tmp_path)
    s1, s2, k1 = b"s" + bytes(32), b"s" + bytes([1]) * 32, b"k" + bytes(64)
    with store.transaction():
        store.save_session("alice", b"head", b"")
        store.save_session("alice", b"one", s1)
        store.save_session("alice", b"two", s2)
        store.save_session("alice", b"keys", k1)
        store.save_session("bob", b"bob head")
        store.save_session("carol", b"no head yet", s1)   # a row without a head
        store.save_prekeys(b"ring head")
        store.save_prekeys(b"otk 2", b"o\x00\x00\x00\x02")
        store.save_prekeys(b"otk 1", b"o\x00\x00\x00\x01")
    assert store.session_addresses() == ["alice", "bob"]
    assert store.load_session("alice") == store.load_session("alice", b"") == b"head"
    assert [store.load_session("alice", p) for p in (s1, s2, k1)] == [b"one", b"two", b"keys"]
    assert store.load_session("alice", b"s") is None and store.load_session("bob", s1) is None
    assert store.load_session("carol") is None and store.load_session("carol", s1) == b"no head yet"
    assert store.prekey_parts() == [b"", b"o\x00\x00\x00\x01", b"o\x00\x00\x00\x02"]
    assert store.load_prekeys() == b"ring head"
    assert store.load_prekeys(b"o\x00\x00\x00\x01") == b"otk 1"
    assert store.load_prekeys(b"o\x00\x00\x00\x03") is None
    with store.transaction():
        store.save_session("alice", b"one again", s1)      # replaces
        store.delete_session("alice", s2)
        store.delete_session("alice", b"s" + bytes([9]) * 32)  # no such row: nothing
        store.delete_prekeys(b"o\x00\x00\x00\x02")
    assert snapshot(store)["sessions"] == {
        "alice": {b"": b"head", s1: b"one again", k1: b"keys"},
        "bob": {b"": b"bob head"}, "carol": {s1: b"no head yet"}}
    assert snapshot(store)["prekeys"] == {b"": b"ring head", b"o\x00\x00\x00\x01": b"otk 1"}
    with store.transaction():
        store.delete_session("alice")                       # every row of alice
        store.delete_session("carol", b"")                  # carol has no head: nothing
    assert snapshot(store)["sessions"] == {"bob": {b"": b"bob head"},
                                           "carol": {s1: b"no head yet"}}
    assert store.session_addresses() == ["bob"]
    with store.transaction():
        store.delete_prekeys(b"")
    assert store.prekey_parts() == [b"o\x00\x00\x00\x01"] and store.load_prekeys() is None
    if isinstance(store, SQLiteStore):
        store.close()
        with SQLiteStore(tmp_path / "rows.db") as again:
            assert snapshot(again)["sessions"] == {"bob": {b"": b"bob head"},
                                                   "carol": {s1: b"no head yet"}}
            assert snapshot(again)["prekeys"] == {b"o\x00\x00\x00\x01": b"otk 1"}


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_failed_transaction_restores_every_row(kind: str, tmp_path: Path) -> None:
    store = open_store(kind, tmp_path)
    s1, s2 = b"s" + bytes(32), b"s" + bytes([1]) * 32
    with store.transaction():
        store.save_session("alice", b"head")
        store.save_session("alice", b"one", s1)
        store.save_prekeys(b"ring head")
        store.save_prekeys(b"otk", b"o\x00\x00\x00\x01")
    before, generation = snapshot(store), store.generation
    with pytest.raises(Boom):
        with store.transaction():
            store.save_session("alice", b"changed", s1)
            store.save_session("alice", b"two", s2)
            store.save_session("bob", b"new head")
            store.delete_prekeys(b"o\x00\x00\x00\x01")
            store.save_prekeys(b"otk 2", b"o\x00\x00\x00\x02")
            store.delete_session("alice")
            store.save_session("alice", b"other head")
            raise Boom
    assert snapshot(store) == before and store.generation == generation
    assert store.session_addresses() == ["alice"]
    if isinstance(store, SQLiteStore):
        store.close()


# --- files from before the row layout -------------------------------------------------


def legacy_conversation() -> tuple[object, object, list[bytes]]:
    """Alice and Bob in memory, talking; Bob holds stored message keys and
    one-time prekeys.  Returns them and three of Alice's messages Bob has not
    received (the first two skipped: their keys are stored)."""
    alice, bob = make_party("alice", b"legacy file"), make_party("bob", b"legacy file")
    alice.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"hi"), now=1)
    alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"hello"), now=2)
    pending = [alice.manager.encrypt("bob", b"pending %d" % i) for i in range(3)]
    bob.manager.decrypt("alice", pending[2], now=3)
    return alice, bob, pending[:2] + [alice.manager.encrypt("bob", b"pending 3")]


@pytest.mark.parametrize("meta", [True, False], ids=["with-meta", "before-meta"])
def test_a_file_from_before_the_row_layout_is_migrated_and_talks_on(
        meta: bool, tmp_path: Path) -> None:
    """A file with the old tables (``sessions``, ``prekeys``: one whole record
    per address, one whole ring) opens; its rows move to part b"" of the new
    tables; a manager continues the conversation from it (stored keys, new
    chains, replies, a new session on a one-time prekey), and its next save
    of each record and of the ring replaces the whole blob with rows."""
    alice, bob, pending = legacy_conversation()
    record = record_bytes(bob.store, "alice")
    ring = ring_bytes(bob.store, bob.identity)
    assert record is not None and ring is not None
    carol = make_party("carol", b"legacy file")
    carol.manager.initiate("bob", bob.bundle())  # a one-time prekey the old ring holds
    path = tmp_path / "legacy.db"
    legacy_file(path, sessions={"alice": record}, prekeys=ring,
                identities={"alice": alice.identity.public.to_bytes()},
                local={"identity": bob.identity.to_bytes()},
                generation=7 if meta else None)
    with SQLiteStore(path, min_generation=7 if meta else 0) as store:
        assert store.generation == (7 if meta else 0)
        tables = {row[0] for row in store._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"session_rows", "prekey_rows", "meta"} <= tables
        assert not {"sessions", "prekeys"} & tables
        # Each blob is now the head row of its address or of the ring.
        assert snapshot(store) == {"sessions": {"alice": {b"": record}},
                                   "prekeys": {b"": ring},
                                   "identities": {"alice": alice.identity.public.to_bytes()}}
        assert store.load_local("identity") == bob.identity.to_bytes()
        manager = SessionManager(bob.identity, store, rng=DeterministicRandom(b"legacy"))
        assert manager.export_session("alice") == record
        assert manager.decrypt("alice", pending[0], now=4) == b"pending 0"   # a stored key
        assert manager.decrypt("alice", pending[2], now=4) == b"pending 3"
        reply = manager.encrypt("alice", b"from the old file")
        assert alice.manager.decrypt("bob", reply, now=5) == b"from the old file"
        assert manager.decrypt("alice", alice.manager.encrypt("bob", b"new chain"),
                               now=6) == b"new chain"
        assert manager.decrypt("carol", carol.manager.encrypt("bob", b"hi"), now=6) == b"hi"
        # The record and the ring are rows now; no part of the old blobs is left.
        rows = snapshot(store)
        loaded = load_record(store, "alice")
        assert loaded is not None and rows["sessions"]["alice"] == loaded[1]
        assert rows["sessions"]["alice"][b""][:2] == b"\x50\x03"
        assert any(part[:1] == b"k" for part in rows["sessions"]["alice"])  # pending 1's key
        assert rows["prekeys"][b""][:2] == b"\x21\x03"
        assert any(part[:1] == b"o" for part in rows["prekeys"])
        generation = store.generation
    with SQLiteStore(path, min_generation=generation) as store:
        manager = SessionManager(bob.identity, store, rng=DeterministicRandom(b"reopened"))
        assert manager.decrypt("alice", pending[1], now=7) == b"pending 1"
        assert alice.manager.decrypt("bob", manager.encrypt("alice", b"ok"), now=8) == b"ok"
        assert len(session_parts(store)["carol"]) >= 2  # carol's new record: rows too


@pytest.mark.parametrize("damage", ["flipped", "moved", "truncated", "prekeys"])
def test_a_damaged_row_of_an_old_file_is_refused_not_migrated(damage: str,
                                                                tmp_path: Path) -> None:
    """Migration rewrites each row's check for the new table: a row that
    fails its old check must be refused (CorruptState), never laundered into
    a row with a valid new check."""
    import sqlite3
    _, bob, _ = legacy_conversation()
    record = record_bytes(bob.store, "alice") or b""
    path = tmp_path / "legacy.db"
    legacy_file(path, sessions={"alice": record, "carol": record},
                prekeys=ring_bytes(bob.store, bob.identity))
    db = sqlite3.connect(str(path), isolation_level=None)
    if damage == "flipped":
        data = bytearray(db.execute("SELECT data FROM sessions WHERE address = 'alice'")
                         .fetchone()[0])
        data[40] ^= 0x01
        db.execute("UPDATE sessions SET data = ? WHERE address = 'alice'", (bytes(data),))
    elif damage == "moved":
        carol = db.execute("SELECT data FROM sessions WHERE address = 'carol'").fetchone()[0]
        db.execute("INSERT INTO sessions VALUES ('dave', ?)", (carol,))
    elif damage == "truncated":
        db.execute("UPDATE sessions SET data = substr(data, 1, 10) WHERE address = 'alice'")
    else:
        db.execute("UPDATE prekeys SET data = substr(data, 1, length(data) - 1)")
    db.close()
    with pytest.raises(CorruptState):
        SQLiteStore(path)
    db = sqlite3.connect(str(path))
    try:  # nothing was migrated: the old tables are still there, the new ones are not
        tables = {row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"sessions", "prekeys"} <= tables and "session_rows" not in tables
    finally:
        db.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_application_data_commits_with_the_protocol_state(kind: str, tmp_path: Path) -> None:
    """Both stores keep the application's own data (save_local) in the same
    transactions as the protocol's rows: it commits and rolls back with them."""
    store = open_store(kind, tmp_path)
    with store.transaction():
        store.save_local("identity", b"secret")
        store.save_session("alice", b"head")
    with pytest.raises(Boom):
        with store.transaction():
            store.save_local("identity", b"changed")
            store.save_local("outbox", b"queued")
            store.save_session("alice", b"head 2")
            raise Boom
    assert store.load_local("identity") == b"secret" and store.load_local("outbox") is None
    assert store.load_session("alice") == b"head"
    if isinstance(store, SQLiteStore):
        store.close()


# --- local data ------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def local_store(request: pytest.FixtureRequest, tmp_path: object) -> object:
    from signalish import SQLiteStore

    if request.param == "memory":
        return MemoryStore()
    return SQLiteStore(f"{tmp_path}/local.db")


def test_local_data_names_delete_and_reserved_names(local_store: Any) -> None:
    from signalish import LocalStore

    assert isinstance(local_store, LocalStore)
    check_local_data(local_store)


def test_a_damaged_stored_identity_is_corrupt_state() -> None:
    from signalish import load_identity_key_pair, save_identity_key_pair

    store = MemoryStore()
    identity = IdentityKeyPair.generate(DeterministicRandom(b"damaged"))
    with store.transaction():
        save_identity_key_pair(store, identity)
    data = bytearray(store.load_local("signalish:identity") or b"")
    data[5] ^= 1
    store._local["signalish:identity"] = bytes(data)
    with pytest.raises(CorruptState):
        load_identity_key_pair(store)


# --- sender keys --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_sender_key_records_per_sender_and_distribution(kind: str, tmp_path: Path) -> None:
    """check_sender_key_records (tests/helpers.py), then the records as a
    reopened file holds them."""
    store = open_store(kind, tmp_path)
    check_sender_key_records(store, stable_generation=True)
    one, two = UUID(int=1), UUID("d1d1d1d1-7000-11eb-b32a-33b8a8a487a6")
    if isinstance(store, SQLiteStore):
        store.close()
        with SQLiteStore(tmp_path / "rows.db") as again:
            assert again.load_sender_key("alice.1", one) == b"replaced"
            assert again.sender_key_ids() == [("alice.1", one), ("alice.1", two)]


def test_a_moved_or_damaged_sender_key_row_is_corrupt_state(tmp_path: Path) -> None:
    """Each sender-key row's check binds it to its sender and distribution
    id: a row copied to another key, or a flipped bit, is refused."""
    import sqlite3

    path = tmp_path / "sk.db"
    one, two = UUID(int=1), UUID(int=2)
    with SQLiteStore(path) as store:
        with store.transaction():
            store.save_sender_key("alice.1", one, b"record")
    db = sqlite3.connect(path)
    db.execute("INSERT INTO sender_keys SELECT sender, ?, data FROM sender_keys", (two.bytes,))
    db.execute("INSERT INTO sender_keys SELECT 'mallory.1', distribution, data FROM sender_keys "
               "WHERE distribution = ?", (one.bytes,))
    db.commit()
    db.close()
    with SQLiteStore(path) as store:
        assert store.load_sender_key("alice.1", one) == b"record"
        with pytest.raises(CorruptState):
            store.load_sender_key("alice.1", two)
        with pytest.raises(CorruptState):
            store.load_sender_key("mallory.1", one)
    db = sqlite3.connect(path)
    (data,) = db.execute("SELECT data FROM sender_keys WHERE sender = 'alice.1' AND "
                         "distribution = ?", (one.bytes,)).fetchone()
    db.execute("UPDATE sender_keys SET data = ? WHERE sender = 'alice.1' AND distribution = ?",
               (bytes((data[0] ^ 1,)) + bytes(data[1:]), one.bytes))
    db.commit()
    db.close()
    with SQLiteStore(path) as store:
        with pytest.raises(CorruptState):
            store.load_sender_key("alice.1", one)


def test_a_file_from_before_sender_keys_gains_the_table(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with SQLiteStore(path) as store:
        with store.transaction():
            store.save_local("kept", b"data")
    db = sqlite3.connect(path)
    db.execute("DROP TABLE sender_keys")
    db.commit()
    db.close()
    with SQLiteStore(path) as store:
        assert store.load_local("kept") == b"data"
        assert store.sender_key_ids() == []
        with store.transaction():
            store.save_sender_key("alice.1", UUID(int=5), b"r")
        assert store.load_sender_key("alice.1", UUID(int=5)) == b"r"


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_addresses_under_a_prefix(kind: str, tmp_path: Path) -> None:
    """session_addresses_from lists the addresses with a record that start
    with the prefix, sorted, and no other (what devices() reads)."""
    store = open_store(kind, tmp_path)
    names = ["bob.1", "bob.10", "bob.2", "bob2.1", "bo", "bob", "bob/1", "böb.1",
             "z\U0010ffff.1", "z\U0010ffff\U0010ffff", "alice.1"]
    with store.transaction():
        for name in names:
            store.save_session(name, b"head")
        store.save_session("bob.3", b"no head", b"s" + bytes(32))  # no record
    for prefix in ("bob.", "bob", "b", "", "böb.", "z\U0010ffff", "q", "\U0010ffff"):
        expected = sorted(n for n in names if n.startswith(prefix))
        assert store.session_addresses_from(prefix) == expected, prefix
    if isinstance(store, SQLiteStore):
        store.close()
