"""Edge cases found by mutation testing: encodings at their limits, multi-byte
varints, and every invariant the state codec enforces beyond the digest."""

from __future__ import annotations

import pytest

from sessions import make_party
from signalish import LIBSIGNAL_V3, RatchetLimits, SessionOptions
from signalish._session import SessionRecord
from signalish._storage import record_bytes
from signalish.errors import (
    DecodeError,
    InvalidArgument,
    InvalidEncoding,
    InvalidLength,
    TruncatedInput,
)
from signalish._message import parse, plain_prefix
from signalish._window import Reason
from signalish._wire_v3 import V3Frame, V3PreKeyFrame, message_type_v3, parse_v3, signal_message_body

KEY = bytes(range(1, 33))


# --- libsignal v3 codec -------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 127, 128, 16_383, 16_384, 2**32 - 1])
@pytest.mark.parametrize("length", [16, 112, 128, 16_384])
def test_v3_varints_round_trip(n: int, length: int) -> None:
    body = signal_message_body(KEY, n, n, bytes(length))
    frame = parse_v3(body + bytes(8), 1 << 20)
    assert isinstance(frame, V3Frame)
    assert (frame.ratchet_key, frame.n, frame.pn, len(frame.ciphertext)) == (KEY, n, max(n, 1), length)
    assert frame.signed == body


def test_v3_bad_varints_and_keys() -> None:
    body = signal_message_body(KEY, 0, 1, bytes(16))
    at = body.index(b"\x10\x01")
    for bad_counter in (b"\x10\xff\xff\xff\xff\xff\x01",      # six bytes: too long
                        b"\x10\x80\x80\x80\x80\x10",          # 2**32: out of range
                        b"\x10\x81\x00"):                     # not minimal
        with pytest.raises(InvalidEncoding):
            parse_v3(body[:at] + bad_counter + body[at + 2:] + bytes(8), 1 << 20)
    for key in (b"\x06" + KEY, KEY, b"\x05" + KEY + b"\x00"):
        forged = b"\x34\x0a" + bytes((len(key),)) + key + body[36:]
        with pytest.raises(DecodeError):
            parse_v3(forged + bytes(8), 1 << 20)
    for size in (0, 15, 17):
        with pytest.raises(DecodeError):
            parse_v3(signal_message_body(KEY, 0, 1, bytes(size)) + bytes(8), 1 << 20)


def test_v3_message_types_and_lengths() -> None:
    with pytest.raises(TruncatedInput):
        message_type_v3(b"\x34")
    assert message_type_v3(b"\x34\x12") == 3 and message_type_v3(b"\x34\x08") == 3
    assert message_type_v3(b"\x34\x0a") == 2
    body = signal_message_body(KEY, 0, 1, bytes(48))
    assert isinstance(parse_v3(body + bytes(8), 32), V3Frame)  # 48 = 32 + 16: the limit
    with pytest.raises(InvalidEncoding, match="out of range"):
        parse_v3(body + bytes(8), 31)
    with pytest.raises(TruncatedInput):
        parse_v3(b"\x34\x0a" + bytes(7), 100)


def test_v3_prekey_message_fields_without_one_time_prekey() -> None:
    alice = make_party("alice", b"v3-no-otk", profile=LIBSIGNAL_V3,
                       options=SessionOptions(registration_id=4321))
    bob = make_party("bob", b"v3-no-otk", profile=LIBSIGNAL_V3, one_time=0)
    alice.manager.initiate("bob", bob.bundle())
    long_text = b"x" * 300  # a ciphertext length that needs a two-byte varint
    first = alice.manager.encrypt("bob", long_text)
    frame = parse_v3(first, 1 << 20)
    assert isinstance(frame, V3PreKeyFrame)
    assert frame.header.one_time_prekey_id is None and frame.registration_id == 4321
    assert first[1] == 0x12  # no field 1: the base key comes first
    assert bob.manager.decrypt("alice", first, now=1) == long_text
    reply = bob.manager.encrypt("alice", b"r")
    assert alice.manager.decrypt("bob", reply, now=2) == b"r"
    # A chain longer than 128 messages, delivered out of order.
    sent = [alice.manager.encrypt("bob", b"%d" % i) for i in range(140)]
    assert bob.manager.decrypt("alice", sent[139], now=3) == b"139"
    assert bob.manager.decrypt("alice", sent[128], now=3) == b"128"
    assert bob.manager.decrypt("alice", sent[0], now=3) == b"0"


# --- native codec limits -----------------------------------------------------------------


def test_native_length_limits() -> None:
    message = plain_prefix(KEY, 0, 0, 48) + bytes(48)
    assert parse(message, 32).ciphertext == bytes(48)  # exactly max_plaintext + tag
    with pytest.raises(InvalidLength):
        parse(message, 31)
    with pytest.raises(TruncatedInput):
        parse(message[:45], 100)
    with pytest.raises(InvalidLength):
        parse(plain_prefix(KEY, 0, 0, 15) + bytes(15), 100)
    with pytest.raises(TruncatedInput):
        parse(b"\x40", 100)


def test_plaintext_and_option_boundaries() -> None:
    limits = RatchetLimits(max_message_size=64)
    alice = make_party("alice", b"bounds", SessionOptions(limits=limits))
    bob = make_party("bob", b"bounds", SessionOptions(limits=limits))
    alice.manager.initiate("bob", bob.bundle())
    assert bob.manager.decrypt("alice", alice.manager.encrypt("bob", bytes(64)), now=1) == bytes(64)
    with pytest.raises(InvalidArgument):
        alice.manager.encrypt("bob", bytes(65))
    SessionOptions(max_archived=64, registration_id=2**32 - 1)
    for bad in ({"max_archived": 65}, {"max_archived": -1}, {"registration_id": 2**32}):
        with pytest.raises(InvalidArgument):
            SessionOptions(**bad)  # type: ignore[arg-type]
    options = SessionOptions.libsignal(99)
    assert (options.registration_id, options.max_archived) == (99, 40)
    assert (options.limits.max_skip, options.limits.max_receiving_chains) == (25_000, 5)


# --- the state codec's invariants (beyond the digest) ------------------------------------


def bob_record() -> SessionRecord:
    alice, bob = make_party("alice", b"codec"), make_party("bob", b"codec")
    alice.manager.initiate("bob", bob.bundle())
    sent = [alice.manager.encrypt("bob", b"%d" % i) for i in range(4)]
    bob.manager.decrypt("alice", sent[3], now=1)  # keys 0..2 stored
    bob.manager.decrypt("alice", alice.manager.encrypt("bob", b"x"), now=1)
    return SessionRecord.from_bytes(record_bytes(bob.store, "alice") or b"")


def refuses(record: SessionRecord) -> None:
    """Neither the whole-record form nor the store rows of ``record`` can be
    used: the whole form does not load; the rows do not load or, where the
    fault is in a chain's stored keys (parsed when the chain first uses
    them), the keys are refused at that first use."""
    with pytest.raises(DecodeError):
        SessionRecord.from_bytes(record.to_bytes())
    rows = record.rows()
    with pytest.raises(DecodeError):
        loaded = SessionRecord.from_rows(rows.get)
        assert loaded is not None
        for session in loaded[0].sessions:
            for chain in session.state.window.chains:
                chain.keys  # noqa: B018 (parses the keys)


def test_codec_refuses_states_the_ratchet_cannot_run() -> None:
    assert SessionRecord.from_bytes(bob_record().to_bytes()).current is not None
    record = bob_record()
    loaded = SessionRecord.from_rows(record.rows().get)
    assert loaded is not None and loaded[0].to_bytes() == record.to_bytes()
    def chain(record: SessionRecord):  # type: ignore[no-untyped-def]
        return record.sessions[0].state.window.chains[-1]

    r = bob_record(); chain(r).reason = Reason.EVICTED; refuses(r)           # reason, floor 0
    r = bob_record(); chain(r).floor = 1; refuses(r)                          # floor, no reason
    r = bob_record(); c = chain(r); c.keys = dict(reversed(c.keys.items())); refuses(r)
    r = bob_record(); c = chain(r); c.floor, c.reason = 2, Reason.EXPIRED; refuses(r)  # key 0 < floor
    r = bob_record(); s = r.sessions[0].state; s.window.chains[-1].end = 5; refuses(r)  # current ended
    r = bob_record(); r.sessions[0].state.window.forgotten.append((KEY, Reason.NONE)); refuses(r)
    r = bob_record(); r.sessions[0].state.hks = KEY; refuses(r)              # header key, no HE
    r = bob_record(); r.sessions[0].state.dhr = KEY; refuses(r)              # chain id mismatch
    r = bob_record(); r.sessions[0].state.ckr = None; refuses(r)             # chains, no CKr
    r = bob_record(); r.sessions[0].limits = RatchetLimits(max_stored_keys=2); refuses(r)
    r = bob_record(); r.sessions[0].limits = RatchetLimits(max_receiving_chains=1)
    r.sessions[0].state.window.chains.insert(0, chain(r).__class__(KEY, 0)); refuses(r)
    r = bob_record(); r.sessions.append(r.sessions[0]); refuses(r)           # one base key twice
    r = bob_record(); r.sessions[0].state.step = 0
    r.sessions[0].state.window.chains[-1].step = 5; refuses(r)               # chain from the future


# --- limit boundaries (mutation testing) ----------------------------------------------


def test_window_limits_at_their_exact_boundaries() -> None:
    from signalish._window import MAX_COUNTER
    from strategies import ratchet_pair, receive, send, snapshot
    limits = RatchetLimits(max_skip=3, expire_after_seconds=100, max_receiving_chains=2,
                           expire_after_steps=2)
    alice, bob, rng = ratchet_pair(b"bounds")
    m = [send(alice, b"%d" % i) for i in range(4)]
    receive(bob, m[3], rng, now=1_000, limits=limits)        # skips exactly max_skip
    assert bob.window.stored == 3
    receive(bob, m[0], rng, now=1_099, limits=limits)        # age 99: kept, and used
    assert bob.window.stored == 2
    receive(bob, send(alice, b"4"), rng, now=1_100, limits=limits)  # age 100: purged
    assert bob.window.stored == 0
    # A DH step whose PN is exactly max_skip past Nr is accepted.
    receive(alice, send(bob, b"r"), rng, now=1_100, limits=limits)
    for _ in range(3):
        send(alice, b"lost")
    receive(bob, send(alice, b"new chain"), rng, now=1_100, limits=limits)
    assert bob.window.stored == 3
    # Chain count and chain age: exactly at the limits the chains are kept.
    receive(alice, send(bob, b"r2"), rng, now=1_100, limits=limits)
    receive(bob, send(alice, b"step"), rng, now=1_100, limits=limits)
    assert len(bob.window.chains) == 2
    # The last number a chain sends is 2**32 - 2, so that Ns stays a 32-bit
    # value after it; one more is a typed error, raised before any change.
    alice.ns = MAX_COUNTER - 1
    send(alice, b"last")
    assert alice.ns == MAX_COUNTER
    from signalish.errors import ChainExhausted
    before = snapshot(alice)
    with pytest.raises(ChainExhausted):
        send(alice, b"one too many")
    assert snapshot(alice) == before


def test_prekey_ids_span_the_whole_u32_range() -> None:
    from signalish import PublicKey
    from signalish._initial import InitialHeader
    from signalish.errors import InvalidArgument
    from strategies import make_ring
    identity, _, _ = make_ring(b"ids", one_time=0, kem=0)
    base = PublicKey.from_public_bytes(bytes(range(2, 34)))
    for key_id in (0, 2**32 - 1):
        header = InitialHeader(identity.public, base, key_id, key_id)
        assert InitialHeader.from_bytes(header.to_bytes()) == header
    for bad in (-1, 2**32):
        with pytest.raises(InvalidArgument):
            InitialHeader(identity.public, base, bad)


def test_codec_checks_the_pending_header() -> None:
    alice, bob = make_party("alice", b"pending"), make_party("bob", b"pending")
    alice.manager.initiate("bob", bob.bundle())
    record = SessionRecord.from_bytes(record_bytes(alice.store, "bob") or b"")
    session = record.sessions[0]
    assert session.pending is not None
    session.base_key = bytes(32)                    # no longer the pending header's key
    refuses(record)
    record = SessionRecord.from_bytes(record_bytes(alice.store, "bob") or b"")
    record.sessions[0].initiated_by_us = False      # pending, yet not initiated by us
    refuses(record)
    record = SessionRecord.from_bytes(record_bytes(alice.store, "bob") or b"")
    record.sessions[0].initial_digest = bytes(32)   # the digest of another header
    refuses(record)
