"""Recovering a broken session: archive and delete through SessionManager,
decryption error messages in every profile, and the Recovery flow.

Attacked: a forged or stale error message must change nothing; a forged
message must not make the receiver ask for a new session on its own; a
record without a current session must survive every store, a restart and
hostile bytes; and no message key is used twice on any of these paths.
"""

from __future__ import annotations

import pytest

from helpers import snapshot
from sessions import Party, make_party, message_key_id
from signalish import (
    LIBSIGNAL_V3,
    LIBSIGNAL_V4,
    MemoryStore,
    NATIVE,
    NoSession,
    Profile,
    SQLiteStore,
    SessionManager,
)
from signalish.recovery import DecryptionErrorMessage, Recovery, RecoveryPolicy
from signalish._encoding import add_digest
from signalish._recovery import NATIVE_DECRYPTION_ERROR, parse_plaintext_content
from signalish._session import SessionRecord
from signalish._storage import load_record
from signalish.errors import (
    AuthenticationError,
    DecodeError,
    DuplicateMessage,
    InvalidArgument,
    InvalidEncoding,
    TooFarAhead,
    TrailingBytes,
    TruncatedInput,
    UnexpectedType,
    UnknownPreKey,
    UnknownVersion,
)

PROFILES = [pytest.param(NATIVE, id="native"), pytest.param(LIBSIGNAL_V3, id="libsignal_v3"),
            pytest.param(LIBSIGNAL_V4, id="libsignal_v4")]


def pair(profile: Profile, seed: bytes = b"r") -> tuple[Party, Party]:
    alice = make_party("alice", seed, profile=profile)
    bob = make_party("bob", seed, profile=profile)
    alice.manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"hello"), now=1)
    alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"hi"), now=1)
    return alice, bob


def flip(message: bytes) -> bytes:
    return message[:-1] + bytes((message[-1] ^ 1,))


# --- archive and delete ------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_archive_stops_sending_and_late_messages_still_decrypt(profile: Profile) -> None:
    alice, bob = pair(profile)
    in_flight = [bob.manager.encrypt("alice", b"late %d" % i) for i in range(3)]
    assert alice.manager.archive_session("bob")
    assert alice.manager.has_session("bob")
    assert not alice.manager.has_session("bob", current=True)
    before = snapshot(alice.store)
    with pytest.raises(NoSession):
        alice.manager.encrypt("bob", b"nothing to send on")
    assert snapshot(alice.store) == before
    assert not alice.manager.archive_session("bob")  # nothing current: no change
    assert snapshot(alice.store) == before
    # A late message decrypts in the archived session, and (as in libsignal)
    # makes it current again.
    assert alice.manager.decrypt("bob", in_flight[0], now=2) == b"late 0"
    assert alice.manager.has_session("bob", current=True)
    reply = alice.manager.encrypt("bob", b"back")
    assert bob.manager.decrypt("alice", reply, now=2) == b"back"
    assert [alice.manager.decrypt("bob", m, now=2) for m in in_flight[1:]] == [b"late 1",
                                                                             b"late 2"]


@pytest.mark.parametrize("profile", PROFILES)
def test_a_new_session_after_archive_and_the_old_ones_messages(profile: Profile) -> None:
    alice, bob = pair(profile)
    in_flight = bob.manager.encrypt("alice", b"old session")
    alice.manager.archive_session("bob")
    alice.manager.initiate("bob", bob.bundle())
    fresh = alice.manager.encrypt("bob", b"new session")
    assert bob.manager.decrypt("alice", fresh, now=3) == b"new session"
    assert alice.manager.decrypt("bob", in_flight, now=3) == b"old session"
    record = load_record(alice.store, "bob")
    assert record is not None and len(record[0].sessions) == 2


def test_archive_keeps_at_most_max_archived() -> None:
    alice = make_party("alice", b"m")
    bob = make_party("bob", b"m", one_time=10)
    for _ in range(alice.manager.options.max_archived + 3):
        alice.manager.initiate("bob", bob.bundle())
        assert alice.manager.archive_session("bob")
        record = load_record(alice.store, "bob")
        assert record is not None
        assert len(record[0].sessions) <= alice.manager.options.max_archived
        assert record[0].current is None


@pytest.mark.parametrize("profile", PROFILES)
def test_delete_sessions_forgets_everything_but_the_identity(profile: Profile) -> None:
    alice, bob = pair(profile)
    in_flight = bob.manager.encrypt("alice", b"lost")
    identity = alice.store.get_identity("bob")
    assert alice.manager.delete_sessions("bob")
    assert not alice.manager.has_session("bob")
    assert alice.store.get_identity("bob") == identity
    with pytest.raises(NoSession):
        alice.manager.decrypt("bob", in_flight, now=4)
    with pytest.raises(NoSession):
        alice.manager.encrypt("bob", b"x")
    assert not alice.manager.delete_sessions("bob")


@pytest.mark.parametrize("profile", PROFILES)
def test_no_current_session_persists_in_sqlite(tmp_path: object, profile: Profile) -> None:
    path = f"{tmp_path}/a.db"
    alice = make_party("alice", b"q", profile=profile)
    bob = make_party("bob", b"q", profile=profile)
    store = SQLiteStore(path)
    manager = SessionManager(alice.identity, store, profile, rng=alice.rng)
    manager.initiate("bob", bob.bundle())
    bob.manager.decrypt("alice", manager.encrypt("bob", b"one"), now=1)
    late = bob.manager.encrypt("alice", b"late")
    assert manager.archive_session("bob")
    store.close()
    # A restart: a new store object and manager read the flag from the rows.
    store = SQLiteStore(path)
    manager = SessionManager(alice.identity, store, profile, rng=alice.rng)
    assert manager.has_session("bob") and not manager.has_session("bob", current=True)
    with pytest.raises(NoSession):
        manager.encrypt("bob", b"x")
    assert manager.decrypt("bob", late, now=5) == b"late"
    assert manager.has_session("bob", current=True)
    store.close()


# --- the record format --------------------------------------------------------------


def archived_record(profile: Profile = NATIVE) -> SessionRecord:
    alice, _ = pair(profile)
    alice.manager.archive_session("bob")
    loaded = load_record(alice.store, "bob")
    assert loaded is not None
    return loaded[0]


def test_whole_record_with_no_current_session_round_trips() -> None:
    record = archived_record()
    data = record.to_bytes()
    assert data[:2] == b"\x50\x04"
    again = SessionRecord.from_bytes(data)
    assert again.current is None and again.to_bytes() == data
    assert [s.base_key for s in again.sessions] == [s.base_key for s in record.sessions]


def test_a_record_with_a_current_session_keeps_its_earlier_format() -> None:
    alice, _ = pair(NATIVE)
    loaded = load_record(alice.store, "bob")
    assert loaded is not None
    assert loaded[0].to_bytes()[:2] == b"\x50\x02"
    assert loaded[1][b""][:2] == b"\x50\x03"


def test_head_row_with_no_current_session() -> None:
    record = archived_record()
    head = record.rows()[b""]
    assert head[:2] == b"\x50\x05"
    # profile name length (4) || name || max archived (1) || flags (1) || count (4)
    name = record.profile.name.encode()
    flags_at = 2 + 4 + len(name) + 1
    assert head[flags_at] == 0x01


def _rewrite(data: bytes, edit: int, value: bytes) -> bytes:
    body = bytearray(data[:-16])
    body[edit:edit + len(value)] = value
    return add_digest(bytes(body))


@pytest.mark.parametrize("flags", [0x00, 0x02, 0x03, 0x80, 0xFF])
def test_unknown_flags_are_refused(flags: int) -> None:
    record = archived_record()
    name = record.profile.name.encode()
    flags_at = 2 + 4 + len(name) + 1
    for data in (record.to_bytes(), record.rows()[b""]):
        forged = _rewrite(data, flags_at, bytes((flags,)))
        with pytest.raises(InvalidEncoding):
            if data[1] == 4:
                SessionRecord.from_bytes(forged)
            else:
                SessionRecord.from_rows({b"": forged}.get)


def test_no_current_session_needs_an_archived_one_and_fits_the_archive() -> None:
    record = archived_record()
    name = record.profile.name.encode()
    count_at = 2 + 4 + len(name) + 2
    empty = _rewrite(record.to_bytes()[:count_at + 4] + bytes(16), count_at, bytes(4))
    with pytest.raises(InvalidEncoding):
        SessionRecord.from_bytes(empty)
    # As many sessions as 1 + max archived is a full record with a current
    # session; without one, the count is out of range.
    full = (record.max_archived + 1).to_bytes(4, "big")
    with pytest.raises(DecodeError):
        SessionRecord.from_bytes(_rewrite(record.to_bytes(), count_at, full))
    with pytest.raises(DecodeError):
        SessionRecord.from_rows({b"": _rewrite(record.rows()[b""], count_at, full)}.get)


def test_flag_versions_are_not_mixed_up() -> None:
    record = archived_record()
    whole, head = record.to_bytes(), record.rows()[b""]
    # A head row's version on a whole record, and the other way round.
    with pytest.raises(UnknownVersion):
        SessionRecord.from_bytes(add_digest(whole[:1] + b"\x05" + whole[2:-16]))
    rows = record.rows()
    rows[b""] = add_digest(head[:1] + b"\x04" + head[2:-16])
    with pytest.raises(DecodeError):
        SessionRecord.from_rows(rows.get)


# --- decryption error messages ------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_lost_session_recovered_through_an_error_message(profile: Profile) -> None:
    alice, bob = pair(profile)
    sent = alice.manager.encrypt("bob", b"before the loss")
    assert bob.manager.decrypt("alice", sent, now=2) == b"before the loss"
    # Bob loses every session (a reinstall that kept identity and prekeys).
    bob.manager.delete_sessions("alice")
    lost = alice.manager.encrypt("bob", b"lost")
    with pytest.raises(NoSession):
        bob.manager.decrypt("alice", lost, now=3)
    answer = bob.manager.decryption_error(lost, timestamp=1700, device_id=1)
    if profile.wire == "native":
        assert answer[0] == NATIVE_DECRYPTION_ERROR
        error = DecryptionErrorMessage.from_native_bytes(answer)
    else:
        assert answer[0] == 0xC0
        error = parse_plaintext_content(answer)
    assert (error.timestamp, error.device_id) == (1700, 1)
    assert alice.manager.process_decryption_error("bob", answer)
    with pytest.raises(NoSession):
        alice.manager.encrypt("bob", b"not on the broken session")
    alice.manager.initiate("bob", bob.bundle())
    resent = alice.manager.encrypt("bob", b"lost")
    assert bob.manager.decrypt("alice", resent, now=4) == b"lost"
    assert alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"ok"), now=4) == b"ok"
    assert message_key_id(resent, profile) != message_key_id(lost, profile)


@pytest.mark.parametrize("profile", PROFILES)
def test_an_error_message_on_an_old_ratchet_key_changes_nothing(profile: Profile) -> None:
    alice, bob = pair(profile)
    old = alice.manager.encrypt("bob", b"one")
    bob.manager.decrypt("alice", old, now=2)
    # Alice's ratchet moves on after Bob's reply.
    alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"two"), now=2)
    alice.manager.encrypt("bob", b"three")
    stale = bob.manager.decryption_error(old, timestamp=5, device_id=1)
    before = snapshot(alice.store)
    assert not alice.manager.process_decryption_error("bob", stale)
    assert snapshot(alice.store) == before
    # Nor for an address with no session, nor a sender-key error (no key).
    assert not alice.manager.process_decryption_error("carol", stale)
    if profile.wire == "native":
        keyless = DecryptionErrorMessage(None, 5, 1).to_native_bytes()
    else:
        from signalish.recovery import plaintext_content
        keyless = plaintext_content(DecryptionErrorMessage(None, 5, 1))
    assert not alice.manager.process_decryption_error("bob", keyless)
    assert snapshot(alice.store) == before


def test_native_error_message_with_encrypted_headers_names_no_key() -> None:
    from signalish import SessionOptions

    options = SessionOptions(header_encryption=True)
    alice = make_party("alice", b"he", options=options)
    bob = make_party("bob", b"he", options=options)
    alice.manager.initiate("bob", bob.bundle())
    first = alice.manager.encrypt("bob", b"x")
    assert first[0] == 0x42
    bob.manager.decrypt("alice", first, now=1)
    reply = bob.manager.encrypt("alice", b"y")
    assert reply[0] == 0x41
    for message in (first, reply):
        error = DecryptionErrorMessage.from_native_bytes(
            bob.manager.decryption_error(message, timestamp=1, device_id=2))
        assert error.ratchet_key is None


def test_native_error_message_names_the_plain_header_key() -> None:
    alice, bob = pair(NATIVE)
    message = alice.manager.encrypt("bob", b"x")
    error = DecryptionErrorMessage.from_native_bytes(
        bob.manager.decryption_error(message, timestamp=9, device_id=3))
    assert error.ratchet_key == message[2:34]
    with pytest.raises(UnexpectedType):
        DecryptionErrorMessage.for_original(message, 0x42, 9, 3, NATIVE)
    with pytest.raises(InvalidArgument):
        DecryptionErrorMessage.for_original(message, 0x43, 9, 3, NATIVE)


def test_native_frame_layout_and_strict_parsing() -> None:
    key = bytes(range(32))
    framed = DecryptionErrorMessage(key, 0x0102030405060708, 0x0A0B0C0D).to_native_bytes()
    assert framed == (b"\x43\x01\x01" + key + bytes.fromhex("0102030405060708")
                      + bytes.fromhex("0a0b0c0d"))
    assert DecryptionErrorMessage(None, 1, 2).to_native_bytes() == \
        b"\x43\x01\x00" + (1).to_bytes(8, "big") + (2).to_bytes(4, "big")
    assert DecryptionErrorMessage.from_native_bytes(framed) == \
        DecryptionErrorMessage(key, 0x0102030405060708, 0x0A0B0C0D)
    cases: list[tuple[bytes, type[Exception]]] = [
        (framed[:-1], TruncatedInput), (framed + b"\x00", TrailingBytes),
        (b"\x44" + framed[1:], UnexpectedType), (b"\x43\x02" + framed[2:], UnknownVersion),
        (framed[:2] + b"\x02" + framed[3:], InvalidEncoding),
        (framed[:2] + b"\x03" + framed[3:], InvalidEncoding), (b"", TruncatedInput),
    ]
    for data, error in cases:
        with pytest.raises(error):
            DecryptionErrorMessage.from_native_bytes(data)
    with pytest.raises(InvalidArgument):
        DecryptionErrorMessage.from_native_bytes(bytearray(framed))  # type: ignore[arg-type]


def test_every_truncation_of_a_native_frame_is_refused() -> None:
    framed = DecryptionErrorMessage(bytes(32), 7, 8).to_native_bytes()
    for end in range(len(framed)):
        with pytest.raises(DecodeError):
            DecryptionErrorMessage.from_native_bytes(framed[:end])


def test_error_messages_of_the_other_format_are_refused() -> None:
    alice, bob = pair(NATIVE)
    message = alice.manager.encrypt("bob", b"x")
    native = bob.manager.decryption_error(message, timestamp=1, device_id=1)
    v3_alice, v3_bob = pair(LIBSIGNAL_V3)
    libsignal = v3_bob.manager.decryption_error(v3_alice.manager.encrypt("bob", b"x"),
                                                timestamp=1, device_id=1)
    with pytest.raises(DecodeError):
        alice.manager.process_decryption_error("bob", libsignal)
    with pytest.raises(DecodeError):
        v3_alice.manager.process_decryption_error("bob", native)


# --- the Recovery flow --------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_one_forged_message_is_not_reported_and_changes_nothing(profile: Profile) -> None:
    alice, bob = pair(profile)
    recovery = Recovery(bob.manager)
    genuine = alice.manager.encrypt("bob", b"genuine")
    before = snapshot(bob.store)
    with pytest.raises(AuthenticationError) as failure:
        bob.manager.decrypt("alice", flip(genuine), now=5)
    assert snapshot(bob.store) == before
    assert recovery.failed("alice", flip(genuine), failure.value, timestamp=1, device_id=1,
                           now=5) is None
    assert bob.manager.decrypt("alice", genuine, now=5) == b"genuine"
    recovery.succeeded("alice")
    # The count started again: one more forgery is again not reported.
    with pytest.raises(AuthenticationError) as failure:
        bob.manager.decrypt("alice", flip(alice.manager.encrypt("bob", b"x")), now=6)
    assert recovery.failed("alice", genuine, failure.value, timestamp=1, device_id=1,
                           now=6) is None


@pytest.mark.parametrize("profile", PROFILES)
def test_a_lost_session_is_reported_and_recovered(profile: Profile) -> None:
    alice, bob = pair(profile)
    bob_recovery, alice_recovery = Recovery(bob.manager), Recovery(alice.manager)
    bob.manager.delete_sessions("alice")
    lost = alice.manager.encrypt("bob", b"one")
    with pytest.raises(NoSession) as failure:
        bob.manager.decrypt("alice", lost, now=10)
    answer = bob_recovery.failed("alice", lost, failure.value, timestamp=10, device_id=1,
                                 now=10)
    assert answer is not None
    # Rate-limited: a second failure within the interval is not answered.
    again = alice.manager.encrypt("bob", b"two")
    with pytest.raises(NoSession) as failure:
        bob.manager.decrypt("alice", again, now=11)
    assert bob_recovery.failed("alice", again, failure.value, timestamp=11, device_id=1,
                               now=11) is None
    assert alice_recovery.received("bob", answer, now=12)
    # A replay of the same error message within the interval changes nothing.
    before = snapshot(alice.store)
    assert not alice_recovery.received("bob", answer, now=13)
    assert snapshot(alice.store) == before
    alice.manager.initiate("bob", bob.bundle())
    assert bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"one"), now=14) == b"one"


@pytest.mark.parametrize("profile", PROFILES)
def test_repeated_authentication_failures_are_reported(profile: Profile) -> None:
    alice, bob = pair(profile)
    # Bob's state goes back to an older copy: Alice's next DH step is then
    # computed against a ratchet key he no longer has, and fails to authenticate.
    old = snapshot(bob.store)
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"a"), now=2)
    alice.manager.decrypt("bob", bob.manager.encrypt("alice", b"b"), now=2)
    store = MemoryStore()
    restored = SessionManager(bob.identity, store, profile, rng=bob.rng)
    sessions = old["sessions"]
    assert isinstance(sessions, dict)
    for part, data in sessions["alice"].items():
        store.save_session("alice", data, part)
    recovery = Recovery(restored, RecoveryPolicy(confirm=2, interval=60))
    answers = []
    for i in range(2):
        message = alice.manager.encrypt("bob", b"m%d" % i)
        with pytest.raises(AuthenticationError) as failure:
            restored.decrypt("alice", message, now=3)
        answers.append(recovery.failed("alice", message, failure.value, timestamp=i,
                                       device_id=1, now=3))
    assert answers[0] is None and answers[1] is not None
    assert alice.manager.process_decryption_error("bob", answers[1])


@pytest.mark.parametrize("error", [DuplicateMessage("d"), TooFarAhead("t"),
                                   InvalidEncoding("e")])
def test_errors_that_are_not_a_lost_session_are_never_reported(error: Exception) -> None:
    alice, bob = pair(NATIVE)
    recovery = Recovery(bob.manager, RecoveryPolicy(confirm=1))
    message = alice.manager.encrypt("bob", b"x")
    for now in range(5):
        assert recovery.failed("alice", message, error, timestamp=1, device_id=1,  # type: ignore[arg-type]
                               now=now * 1000) is None


def test_prekey_errors_are_reported_and_unparseable_messages_are_not() -> None:
    alice, bob = pair(NATIVE)
    recovery = Recovery(bob.manager)
    message = alice.manager.encrypt("bob", b"x")
    assert recovery.failed("alice", message, UnknownPreKey("u"), timestamp=1, device_id=1,
                           now=0) is not None
    assert recovery.failed("alice", b"\x40", NoSession("n"), timestamp=1, device_id=1,
                           now=1000) is None


def test_recovery_policy_is_checked() -> None:
    for kwargs in ({"confirm": 0}, {"interval": 0}, {"confirm": True}, {"interval": 1.5}):
        with pytest.raises(InvalidArgument):
            RecoveryPolicy(**kwargs)  # type: ignore[arg-type]
