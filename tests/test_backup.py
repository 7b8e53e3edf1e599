"""Password-protected backups.

A restored device receives on its old sessions but never sends on state that
the old device may already have sent on; it gets new prekeys; hostile blobs
cannot set the cost of opening them.
"""

from __future__ import annotations

import hashlib
import struct

import pytest

import signalish._backup as backup_module
from signalish import (
    DeterministicRandom,
    LIBSIGNAL_V3,
    MemoryStore,
    NATIVE,
    Profile,
    SessionManager,
    SessionOptions,
    WrongPassword,
)
from signalish.backup import BackupParams, create_backup, restore_backup
from signalish.errors import (
    AuthenticationError,
    BackupDamaged,
    InvalidArgument,
    PreKeyError,
    PreKeyExpired,
    StaleSession,
)
from signalish._backup import BackupCostExceeded
from signalish._session import SessionRecord
from signalish._storage import load_record, load_ring, record_bytes
from helpers import snapshot
from sessions import Party, make_party, message_key_id

FAST = BackupParams(iterations=1, lanes=1, memory_kib=64)
EMPTY = {"sessions": {}, "prekeys": {}, "identities": {}}
SETUPS = [pytest.param(NATIVE, False, id="native"),
          pytest.param(NATIVE, True, id="native-header-encryption"),
          pytest.param(LIBSIGNAL_V3, False, id="libsignal_v3")]


def conversation(profile: Profile = NATIVE, he: bool = False) -> tuple[Party, Party]:
    options = SessionOptions(header_encryption=he)
    alice = make_party("alice", b"backup", options, profile=profile)
    bob = make_party("bob", b"backup", options, profile=profile)
    alice.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"hi"), now=1)
    alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"hello"), now=2)
    return alice, bob


def restored(bob: Party, blob: bytes, seed: bytes = b"new") -> tuple[SessionManager, MemoryStore]:
    store = MemoryStore()
    identity = restore_backup(blob, "correct horse", store, now=10, rng=DeterministicRandom(seed))
    assert identity.public == bob.identity.public
    return (SessionManager(identity, store, bob.manager.profile, rng=DeterministicRandom(seed),
                           options=bob.manager.options), store)


@pytest.mark.parametrize("profile, he", SETUPS)
def test_send_after_restore_never_reuses_a_message_key(profile: Profile, he: bool) -> None:
    """The reproduction: back up, keep sending, restore, send.  The restored
    device must not produce a message under a key the old one used."""
    alice, bob = conversation(profile, he)
    blob = create_backup(bob.identity, bob.store, "correct horse", rng=DeterministicRandom(b"b"),
                         params=FAST)
    sent = [bob.manager.encrypt("alice", b"after the backup %d" % i) for i in range(3)]
    for message in sent:
        alice.manager.decrypt("bob", message, now=3)
    in_flight = alice.manager.encrypt("bob", b"sent before the phone was lost")
    new_bob, store = restored(bob, blob)
    before = snapshot(store)
    with pytest.raises(StaleSession):
        new_bob.encrypt("alice", b"would reuse a key")
    assert snapshot(store) == before
    # It still receives; Alice's message carries a new ratchet key, so the
    # restored session takes a DH step and gets a sending chain of its own.
    assert new_bob.decrypt("alice", in_flight, now=4) == b"sent before the phone was lost"
    replies = [new_bob.encrypt("alice", b"restored %d" % i) for i in range(3)]
    for i, reply in enumerate(replies):
        assert alice.manager.decrypt("bob", reply, now=5) == b"restored %d" % i
    ids = [message_key_id(m, profile) for m in sent + replies]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("profile, he", SETUPS)
def test_restored_session_behind_a_dh_step_needs_a_new_session(profile: Profile,
                                                                he: bool) -> None:
    """If the old device took DH steps after the backup, the restored state
    cannot follow the conversation at all: it refuses to send, fails to
    decrypt, and a new session from a fresh bundle works."""
    alice, bob = conversation(profile, he)
    blob = create_backup(bob.identity, bob.store, "correct horse", rng=DeterministicRandom(b"c"),
                         params=FAST)
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"a2"), now=3)
    old_reply = bob.manager.encrypt("alice", b"b2 on a fresh ratchet key")
    alice.manager.decrypt("bob", old_reply, now=3)
    new_bob, store = restored(bob, blob)
    with pytest.raises(StaleSession):
        new_bob.encrypt("alice", b"x")
    with pytest.raises(AuthenticationError):
        new_bob.decrypt("alice", alice.manager.encrypt("bob", b"a3"), now=4)
    new_bob.initiate("alice", alice.bundle())
    fresh = new_bob.encrypt("alice", b"new session")
    assert alice.manager.decrypt("bob", fresh, now=5) == b"new session"
    assert new_bob.decrypt("alice", alice.manager.encrypt("bob", b"ok"), now=6) == b"ok"
    assert message_key_id(fresh, profile) != message_key_id(old_reply, profile)


def test_restore_replaces_prekeys_and_keeps_ids_growing() -> None:
    alice, bob = conversation()
    old = load_ring(bob.store, bob.identity)[0]
    old_spk = old.current_signed_prekey.key_id
    blob = create_backup(bob.identity, bob.store, "correct horse", rng=DeterministicRandom(b"p"),
                         params=FAST)
    new_bob, store = restored(bob, blob)
    ring = load_ring(store, bob.identity)[0]
    assert ring.one_time_prekeys_remaining == 0 and ring.kem_prekeys_remaining == 0
    assert ring.current_signed_prekey.key_id == old_spk + 1
    with new_bob.prekeys(now=11) as open_ring:
        fresh = open_ring.generate_one_time_prekeys(3, DeterministicRandom(b"x"))
    assert min(k.key_id for k in fresh) > max(5, 1)  # ids continue after the old ones
    # An initial message addressed to the old prekeys is refused.
    carol = make_party("carol", b"backup")
    carol.manager.initiate("bob", old.issue_bundle())
    with pytest.raises(PreKeyExpired):
        new_bob.decrypt("carol", carol.manager.encrypt("bob", b"to old keys"), now=12)


def test_restore_with_the_newest_counters_never_reissues_an_id() -> None:
    """Keys made after the backup: without next_ids, the restored device's new
    keys take their ids again (a message to one of the old keys then cannot
    decrypt: AuthenticationError); with the newest ring's counters every id
    is new, and such a message is a PreKeyError, as after a reinstall."""
    alice, bob = conversation()
    blob = create_backup(bob.identity, bob.store, "pw", rng=DeterministicRandom(b"p"),
                         params=FAST)
    with bob.manager.prekeys(now=5) as ring:  # after the backup
        first_new = ring.next_ids
        ring.rotate_signed_prekey(bob.rng, now=5, grace=86_400)
        ring.generate_one_time_prekeys(20, bob.rng)
        ring.generate_kem_prekeys(20, bob.rng, now=5)
        later = ring.issue_bundle()
        while (later.one_time_prekey is None or later.one_time_prekey.key_id < first_new.one_time
               or later.kem_prekey is None or later.kem_prekey.key_id < first_new.kem):
            later = ring.issue_bundle()  # keys made after the backup only
        newest = ring.next_ids
    carol = make_party("carol", b"after the backup")
    carol.manager.initiate("bob", later)
    in_flight = carol.manager.encrypt("bob", b"to a key made after the backup")
    for next_ids, refused in ((None, AuthenticationError), (newest, PreKeyError)):
        store = MemoryStore()
        identity = restore_backup(blob, "pw", store, now=10, rng=DeterministicRandom(b"r"),
                                  next_ids=next_ids)
        again = SessionManager(identity, store, rng=DeterministicRandom(b"again"))
        upload = again.upkeep(now=11)  # new one-time keys, as the docs ask, before it comes
        with pytest.raises(refused):
            again.decrypt("carol", in_flight, now=11)
        if next_ids is None:  # the ids of the keys made after the backup, again
            assert min(k.key_id for k in upload.one_time) == first_new.one_time
        else:
            assert min(k.key_id for k in upload.one_time) == newest.one_time
            with again.prekeys(now=11) as ring:
                assert ring.next_ids.signed > newest.signed


def test_without_sessions() -> None:
    _, bob = conversation()
    blob = create_backup(bob.identity, bob.store, "pw", rng=DeterministicRandom(b"s"),
                         include_sessions=False, params=FAST)
    store = MemoryStore()
    restore_backup(blob, "pw", store, now=10)
    assert store.session_addresses() == [] and load_ring(store, bob.identity) is not None
    assert snapshot(store)["sessions"] == {}


def test_wrong_password_and_damage_are_distinct() -> None:
    _, bob = conversation()
    blob = create_backup(bob.identity, bob.store, "pw", rng=DeterministicRandom(b"d"),
                         params=FAST)
    store = MemoryStore()
    with pytest.raises(WrongPassword):
        restore_backup(blob, "not the password", store, now=10)
    for i in range(0, len(blob), 97):
        with pytest.raises(BackupDamaged):
            restore_backup(blob[:i] + bytes((blob[i] ^ 0x04,)) + blob[i + 1:], "pw", store, now=10)
    with pytest.raises(BackupDamaged):
        restore_backup(blob[:-1], "pw", store, now=10)
    assert snapshot(store) == EMPTY


def _with_checksum(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()[:16]


def test_altered_ciphertext_with_fixed_checksum_is_damage() -> None:
    """Someone who changes the ciphertext and recomputes the checksum still
    fails the AEAD: reported as damage, not as a wrong password."""
    _, bob = conversation()
    blob = create_backup(bob.identity, bob.store, "pw", rng=DeterministicRandom(b"e"),
                         params=FAST)
    body = bytearray(blob[:-16])
    body[-5] ^= 0x01
    with pytest.raises(BackupDamaged, match="authentication"):
        restore_backup(_with_checksum(bytes(body)), "pw", MemoryStore(), now=10)


@pytest.mark.parametrize("iterations, lanes, memory_kib", [
    (1_000, 4, 64 * 1024),              # the most passes BackupParams allows
    (3, 4, 4 * 1024 * 1024),            # 4 GiB
    (3, 255, 64 * 1024),                # the most lanes
    (11, 4, 64 * 1024),                 # just above the default ceiling's passes
    (3, 4, 256 * 1024 + 1),             # just above its memory
    (3, 17, 64 * 1024),                 # just above its lanes
])
def test_hostile_costs_with_a_valid_checksum_are_refused_before_any_derivation(
        iterations: int, lanes: int, memory_kib: int, monkeypatch: pytest.MonkeyPatch) -> None:
    _, bob = conversation()
    blob = create_backup(bob.identity, bob.store, "pw", rng=DeterministicRandom(b"h"),
                         params=FAST)
    hostile = _with_checksum(blob[:2] + struct.pack(">III", iterations, lanes, memory_kib)
                             + blob[14:-16])

    def no_derivation(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("Argon2id ran on a blob above the ceiling")

    monkeypatch.setattr(backup_module, "argon2id", no_derivation)
    store = MemoryStore()
    with pytest.raises(BackupCostExceeded):
        restore_backup(hostile, "pw", store, now=10)
    assert snapshot(store) == EMPTY


def test_the_ceiling_is_the_callers_choice() -> None:
    _, bob = conversation()
    params = BackupParams(iterations=2, lanes=1, memory_kib=128)
    blob = create_backup(bob.identity, bob.store, "pw", rng=DeterministicRandom(b"i"),
                         params=params)
    with pytest.raises(BackupCostExceeded):
        restore_backup(blob, "pw", MemoryStore(), now=10,
                       max_cost=BackupParams(iterations=1, lanes=1, memory_kib=128))
    with pytest.raises(BackupCostExceeded):
        restore_backup(blob, "pw", MemoryStore(), now=10,
                       max_cost=BackupParams(iterations=2, lanes=1, memory_kib=64))
    restore_backup(blob, "pw", MemoryStore(), now=10, max_cost=params)  # at the ceiling: fine
    # Above the ceiling but with a wrong password: still the cost error, and first.
    with pytest.raises(BackupCostExceeded):
        restore_backup(blob, "wrong", MemoryStore(), now=10,
                       max_cost=BackupParams(iterations=1, lanes=1, memory_kib=64))


def test_default_parameters_follow_rfc9106_second_recommendation() -> None:
    params = BackupParams()
    assert (params.iterations, params.lanes, params.memory_kib) == (3, 4, 64 * 1024)
    _, bob = conversation()
    blob = create_backup(bob.identity, bob.store, "pw", rng=DeterministicRandom(b"f"))
    assert blob[2:14] == (3).to_bytes(4, "big") + (4).to_bytes(4, "big") + (65536).to_bytes(4, "big")
    assert restore_backup(blob, "pw", MemoryStore(), now=10).public == bob.identity.public


def test_bad_parameters_and_empty_password() -> None:
    with pytest.raises(InvalidArgument):
        BackupParams(memory_kib=4)
    _, bob = conversation()
    with pytest.raises(InvalidArgument):
        create_backup(bob.identity, bob.store, "", rng=DeterministicRandom(b"g"), params=FAST)


def test_restore_over_a_store_with_rows_leaves_no_stale_row() -> None:
    """Restoring into a store that already holds rows (sessions with stored
    message keys, one-time prekeys) replaces the
    record and the ring row by row: no row of the old state survives beside
    the restored one, and the restored device keeps talking."""
    alice, bob = conversation()
    blob = create_backup(bob.identity, bob.store, "pw", rng=DeterministicRandom(b"r"),
                         params=FAST)
    backed_up = record_bytes(bob.store, "alice")
    skipped = [alice.manager.encrypt("bob", b"skipped %d" % i) for i in range(3)]
    bob.manager.decrypt("alice", skipped[-1], now=3)    # two keys stored: a key row
    carol = make_party("carol", b"backup")
    carol.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("carol", carol.manager.encrypt("bob", b"hi"), now=3)
    old = snapshot(bob.store)
    assert any(part[:1] == b"k" for part in old["sessions"]["alice"])
    assert {part[:1] for part in old["prekeys"]} >= {b"", b"o"}
    restore_backup(blob, "pw", bob.store, now=10, rng=DeterministicRandom(b"restore"))
    ring, ring_rows = load_ring(bob.store, bob.identity) or (None, {})
    assert ring is not None and ring_rows == ring.to_rows()
    assert snapshot(bob.store)["prekeys"] == ring_rows   # no old prekey row left
    assert ring.one_time_prekeys_remaining == 0
    record, rows = load_record(bob.store, "alice") or (None, {})
    assert record is not None and rows == record.rows()
    assert snapshot(bob.store)["sessions"]["alice"] == rows  # no old key row left
    expected = SessionRecord.from_bytes(backed_up or b"")
    expected.block_sending()
    assert record.to_bytes() == expected.to_bytes()
    # Carol's record is not in the backup and stays as it was.
    assert snapshot(bob.store)["sessions"]["carol"] == old["sessions"]["carol"]
    new_bob = SessionManager(bob.identity, bob.store, rng=DeterministicRandom(b"after"))
    with pytest.raises(StaleSession):
        new_bob.encrypt("alice", b"x")
    assert new_bob.decrypt("alice", alice.manager.encrypt("bob", b"again"), now=11) == b"again"
    assert alice.manager.decrypt("bob", new_bob.encrypt("alice", b"back"), now=12) == b"back"


# --- the application's local data and the identity in the store ----------------------


def test_local_data_and_the_identity_travel_in_the_backup(tmp_path: object) -> None:
    from signalish import SQLiteStore, load_identity_key_pair

    _, bob = conversation()
    with bob.store.transaction():
        bob.store.save_local("inbox", b"three messages")
        bob.store.save_local("contacts", b"alice")
    blob = create_backup(bob.identity, bob.store, "correct horse", include_local=True,
                         rng=DeterministicRandom(b"l"), params=FAST)
    plain = create_backup(bob.identity, bob.store, "correct horse",
                          rng=DeterministicRandom(b"l"), params=FAST)
    assert backup_module._open_backup(plain, "correct horse", FAST)[4] == []
    for store in (MemoryStore(), SQLiteStore(f"{tmp_path}/restored.db")):
        with store.transaction():
            store.save_local("inbox", b"older")        # replaced
            store.save_local("drafts", b"kept")        # left alone
        identity = restore_backup(blob, "correct horse", store, now=10)
        assert identity.public == bob.identity.public
        stored = load_identity_key_pair(store)
        assert stored is not None and stored.seed() == bob.identity.seed()
        assert store.load_local("inbox") == b"three messages"
        assert store.load_local("contacts") == b"alice"
        assert store.load_local("drafts") == b"kept"
        # A manager built from what the store holds continues the conversation.
        manager = SessionManager(stored, store, NATIVE, rng=DeterministicRandom(b"m"))
        assert manager.has_session("alice")


def test_a_restore_always_puts_the_identity_into_the_store() -> None:
    from signalish import load_identity_key_pair

    _, bob = conversation()
    blob = create_backup(bob.identity, bob.store, "pw", rng=DeterministicRandom(b"i"),
                         params=FAST)
    store = MemoryStore()
    assert load_identity_key_pair(store) is None
    restore_backup(blob, "pw", store, now=10)
    stored = load_identity_key_pair(store)
    assert stored is not None and stored.public == bob.identity.public
    # The reserved entry is not the application's: a backup of the restored
    # store carries the identity once, in its own field, not as local data.
    again = create_backup(stored, store, "pw", include_local=True,
                          rng=DeterministicRandom(b"j"), params=FAST)
    assert backup_module._open_backup(again, "pw", FAST)[4] == []


class _NoLocal:
    """A store of an application's own that keeps no local data."""

    def __init__(self) -> None:
        self._inner = MemoryStore()

    def __getattr__(self, name: str) -> object:
        if name in ("load_local", "save_local", "delete_local", "local_names"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_local_data_needs_a_store_that_keeps_it() -> None:
    _, bob = conversation()
    with bob.store.transaction():
        bob.store.save_local("inbox", b"x")
    with pytest.raises(InvalidArgument):
        create_backup(bob.identity, _NoLocal(), "pw", include_local=True,  # type: ignore[arg-type]
                      rng=DeterministicRandom(b"n"), params=FAST)
    blob = create_backup(bob.identity, bob.store, "pw", include_local=True,
                         rng=DeterministicRandom(b"n"), params=FAST)
    target = _NoLocal()
    with pytest.raises(InvalidArgument):
        restore_backup(blob, "pw", target, now=10)  # type: ignore[arg-type]
    assert snapshot(target._inner) == EMPTY
    # Without local data it restores, and the identity is returned, not stored.
    plain = create_backup(bob.identity, bob.store, "pw", rng=DeterministicRandom(b"n"),
                          params=FAST)
    assert restore_backup(plain, "pw", target, now=10).public == bob.identity.public  # type: ignore[arg-type]
    assert target._inner.load_local("signalish:identity") is None


def _blob_of(contents: bytes, password: str = "pw") -> bytes:
    """A backup blob around ``contents``, framed as create_backup frames it."""
    from signalish._encoding import Tag, Writer
    from signalish._primitives import aes256_gcm_encrypt

    salt, nonce = bytes(16), bytes(12)
    key, verifier = backup_module._derive(password, salt, FAST)
    head = (Writer(Tag.BACKUP).u32(FAST.iterations).u32(FAST.lanes).u32(FAST.memory_kib)
            .fixed(salt).fixed(verifier).fixed(nonce).getvalue()
            + struct.pack(">I", len(contents) + 16))
    return _with_checksum(head + aes256_gcm_encrypt(key, nonce, contents, head))


@pytest.mark.parametrize("entries", [
    [("signalish:identity", b"x")],        # a reserved name
    [("b", b"1"), ("a", b"2")],            # not sorted
    [("a", b"1"), ("a", b"2")],            # twice
])
def test_hostile_local_entries_are_damage(entries: list[tuple[str, bytes]]) -> None:
    from signalish._encoding import Tag, Writer

    _, bob = conversation()
    w = Writer(Tag.BACKUP_CONTENTS, 2).fixed(bob.identity.seed()).flag(False).u32(0).u32(0)
    w.u32(len(entries))
    for name, data in entries:
        w.var(name.encode()).var(data)
    store = MemoryStore()
    with pytest.raises(BackupDamaged):
        restore_backup(_blob_of(w.getvalue()), "pw", store, now=10)
    assert snapshot(store) == EMPTY and store.local_names() == []
    # The same contents as version 1 have bytes left over.
    one = Writer(Tag.BACKUP_CONTENTS, 1).fixed(bob.identity.seed()).flag(False).u32(0).u32(0)
    with pytest.raises(BackupDamaged):
        restore_backup(_blob_of(one.getvalue() + b"\x00\x00\x00\x00"), "pw", store, now=10)
    # And a well-formed version 2 restores.
    good = Writer(Tag.BACKUP_CONTENTS, 2).fixed(bob.identity.seed()).flag(False).u32(0).u32(0)
    good.u32(1).var(b"a").var(b"1")
    restore_backup(_blob_of(good.getvalue()), "pw", store, now=10)
    assert store.load_local("a") == b"1"
