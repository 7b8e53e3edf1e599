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

import pytest

from sqlite_helpers import sqlite_bob

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
from signalish.errors import DuplicateMessage

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
        prekeys_before = store.load_prekeys()

        def fail(plaintext: bytes) -> None:
            assert plaintext == b"first"
            raise Boom

        with pytest.raises(Boom):
            manager.decrypt("alice", first, now=1, deliver=fail)
        assert store.load_session("alice") is None
        assert store.load_prekeys() == prekeys_before  # one-time prekey not consumed
        assert manager.decrypt("alice", first, now=1) == b"first"
        with pytest.raises(DuplicateMessage):
            manager.decrypt("alice", first, now=1)


def test_failed_save_on_encrypt_releases_no_ciphertext(tmp_path: Path) -> None:
    path = tmp_path / "bob.db"
    alice, bob, rng = setup_pair(path)

    class FailingStore(SQLiteStore):
        fail = False

        def save_session(self, address: str, data: bytes) -> None:
            super().save_session(address, data)
            if self.fail:
                raise Boom

    with FailingStore(path) as store:
        manager = SessionManager(bob, store, rng=rng)
        manager.decrypt("alice", alice.encrypt("bob", b"hi"), now=1)
        stored = store.load_session("alice")
        store.fail = True
        with pytest.raises(Boom):
            manager.encrypt("alice", b"never released")
        assert store.load_session("alice") == stored
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
    child = subprocess.run([sys.executable, "-c", KILLER, str(ROOT), str(path)],
                           input=message.hex(), capture_output=True, text=True, timeout=60)
    assert child.returncode == 9, child.stderr
    assert child.stdout == "survives a crash"
    with SQLiteStore(path) as store:
        assert store.load_session("alice") is None  # the transaction never committed
        manager = SessionManager(bob, store, rng=rng)
        assert manager.decrypt("alice", message, now=6) == b"survives a crash"
    assert os.path.exists(path)


def test_sqlite_writes_need_a_transaction(tmp_path: Path) -> None:
    from signalish.errors import InvalidArgument
    with SQLiteStore(tmp_path / "x.db") as store:
        with pytest.raises(InvalidArgument):
            store.save_session("a", b"x")
        with store.transaction(), pytest.raises(InvalidArgument):
            with store.transaction():
                pass
