"""The libsignal v4 codec and handshake rules on their own (no Node).

What version 4 adds to version 3 (docs/libsignal.md): version byte 0x44,
the Kyber prekey id and ciphertext in every PreKeySignalMessage, SPQR's
field 5 read as MAC-covered bytes and never written, and a Kyber prekey in
every session.  Interoperability with libsignal 0.90.0 is in tests/interop.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from helpers import read_varint
from signalish import (
    LIBSIGNAL_V3,
    LIBSIGNAL_V4,
    DeterministicRandom,
    IdentityKeyPair,
    SessionOptions,
)
from signalish.errors import (
    AuthenticationError,
    DecodeError,
    PolicyViolation,
    UnknownVersion,
    UnsupportedByProfile,
)
from signalish._initial import InitialHeader
from signalish._wire_v3 import (
    V3Frame,
    V3PreKeyFrame,
    _bytes_field,
    _uint_field,
    parse_v3,
    prekey_message_v3,
    signal_message_body,
)
from signalish._wire_v3 import V3_WIRE
from signalish._wire_v4 import V4_WIRE
from signalish._x3dh import initiate
from sessions import make_party

LIMIT = 1 << 20
# Version 4 without SPQR (as libsignal 0.73 to 0.90 speak it when SPQR is
# not taken up); tests/test_spqr.py has the messages of sessions with SPQR.
OPTIONS = replace(SessionOptions.libsignal(4321), pq_ratchet=False)


def conversation() -> tuple[bytes, bytes, object, object]:
    alice = make_party("alice", b"v4", OPTIONS, profile=LIBSIGNAL_V4)
    bob = make_party("bob", b"v4", OPTIONS, profile=LIBSIGNAL_V4)
    alice.manager.initiate("bob", bob.bundle())
    first = alice.manager.encrypt("bob", b"first")
    assert bob.manager.decrypt("alice", first, now=1) == b"first"
    return first, bob.manager.encrypt("alice", b"reply"), alice, bob


def fields(body: bytes) -> list[int]:
    """The field numbers of a protobuf made of varint and bytes fields."""
    out, i = [], 0
    while i < len(body):
        key = body[i]
        value, i = read_varint(body, i + 1)
        if key & 7 == 2:
            i += value
        out.append(key >> 3)
    return out


def test_messages_carry_version_4_and_the_kyber_fields() -> None:
    first, reply, _, _ = conversation()
    assert first[0] == reply[0] == 0x44
    frame = parse_v3(first, LIMIT, protocol=4)
    assert isinstance(frame, V3PreKeyFrame)
    assert fields(first[1:]) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert frame.header.kem_prekey_id is not None and frame.header.kem_ciphertext is not None
    assert fields(reply[1:-8]) == [1, 2, 3, 4]  # no field 5: signalish runs no SPQR
    assert isinstance(parse_v3(reply, LIMIT, protocol=4), V3Frame)


def test_re_encoding_is_byte_for_byte() -> None:
    first, reply, _, _ = conversation()
    frame = parse_v3(first, LIMIT, protocol=4)
    assert isinstance(frame, V3PreKeyFrame)
    inner = frame.inner
    assert isinstance(inner, V3Frame)
    message = signal_message_body(inner.ratchet_key, inner.pn, inner.n, inner.ciphertext,
                                  0x44) + inner.mac
    assert frame.registration_id is not None
    assert prekey_message_v3(frame.header, frame.registration_id, message, 0x44) == first


def test_versions_do_not_mix() -> None:
    first, reply, _, _ = conversation()
    for data in (first, reply):
        with pytest.raises(UnknownVersion):
            parse_v3(data, LIMIT)  # protocol 3
        for byte in (0x34, 0x54, 0x04):
            with pytest.raises(UnknownVersion):
                parse_v3(bytes((byte,)) + data[1:], LIMIT, protocol=4)
    v3 = make_party("carol", b"v4", OPTIONS, profile=LIBSIGNAL_V3)
    dave = make_party("dave", b"v4", OPTIONS, profile=LIBSIGNAL_V3)
    v3.manager.initiate("dave", dave.bundle())
    with pytest.raises(UnknownVersion):
        parse_v3(v3.manager.encrypt("dave", b"old"), LIMIT, protocol=4)


def test_a_prekey_message_without_kyber_fields_is_refused() -> None:
    first, _, _, _ = conversation()
    frame = parse_v3(first, LIMIT, protocol=4)
    assert isinstance(frame, V3PreKeyFrame)
    tail = _uint_field(7, frame.header.kem_prekey_id or 0)
    at = first.index(tail)
    with pytest.raises(DecodeError):
        parse_v3(first[:at], LIMIT, protocol=4)  # fields 7 and 8 missing
    kyber = _bytes_field(8, b"\x08" + (frame.header.kem_ciphertext or b""))
    assert first.endswith(kyber)
    with pytest.raises(DecodeError):
        parse_v3(first[:-len(kyber)], LIMIT, protocol=4)  # field 8 missing
    for bad in (b"\x07" + (frame.header.kem_ciphertext or b""),
                b"\x08" + (frame.header.kem_ciphertext or b"")[:-1]):
        with pytest.raises(DecodeError):
            parse_v3(first[:-len(kyber)] + _bytes_field(8, bad), LIMIT, protocol=4)
    header = InitialHeader(frame.header.identity_key, frame.header.base_key,
                           frame.header.signed_prekey_id, frame.header.one_time_prekey_id)
    with pytest.raises(UnsupportedByProfile):
        V4_WIRE.initial_message(header, 1, b"inner")  # nothing to write in 7 and 8
    with pytest.raises(UnsupportedByProfile):
        V3_WIRE.initial_message(frame.header, 1, b"inner")  # version 3 has no Kyber fields


def test_fields_5_and_6_are_read_and_covered_by_the_mac() -> None:
    _, reply, alice, _ = conversation()
    body, mac = reply[:-8], reply[-8:]
    with_spqr = body + _bytes_field(5, b"\x01\x01\x01\x00") + mac
    frame = parse_v3(with_spqr, LIMIT, protocol=4)
    assert isinstance(frame, V3Frame) and frame.pq_ratchet == b"\x01\x01\x01\x00"
    before = alice.snapshot()
    with pytest.raises(AuthenticationError):  # the MAC was over the body without it
        alice.manager.decrypt("bob", with_spqr, now=2)
    assert alice.snapshot() == before
    # Field 6 (libsignal 0.92's addresses, 36 bytes) is read, and the MAC
    # covers it; any other length, a field 6 before field 5, and a field 7
    # are malformed.
    addresses = bytes(range(36))
    with_addresses = body + _bytes_field(6, addresses) + mac
    frame = parse_v3(with_addresses, LIMIT, protocol=4)
    assert isinstance(frame, V3Frame) and frame.addresses == addresses
    with pytest.raises(AuthenticationError):
        alice.manager.decrypt("bob", with_addresses, now=2)
    assert alice.snapshot() == before
    for bad in (body + _bytes_field(6, bytes(35)) + mac, body + _bytes_field(6, bytes(37)) + mac,
                body + _bytes_field(6, addresses) + _bytes_field(5, b"\x01\x01\x01\x00") + mac,
                body + _bytes_field(7, bytes(1)) + mac,
                body + _bytes_field(5, bytes(4097)) + mac):
        with pytest.raises(DecodeError):
            parse_v3(bad, LIMIT, protocol=4)
    assert alice.manager.decrypt("bob", reply, now=2) == b"reply"


def test_every_session_needs_a_kyber_prekey() -> None:
    bob = make_party("bob", b"v4-kem", OPTIONS, profile=LIBSIGNAL_V4)
    bundle = bob.bundle()
    assert bundle.kem_prekey is not None
    alice = IdentityKeyPair.generate(DeterministicRandom(b"v4-kem alice"))
    with pytest.raises(PolicyViolation):
        initiate(alice, replace(bundle, kem_prekey=None), LIBSIGNAL_V4)
    header = initiate(alice, bundle, LIBSIGNAL_V4, rng=DeterministicRandom(b"e")).header
    without = InitialHeader(header.identity_key, header.base_key, header.signed_prekey_id,
                            header.one_time_prekey_id)
    from signalish._storage import load_ring
    loaded = load_ring(bob.store, bob.identity)
    assert loaded is not None
    from signalish._x3dh import respond
    with pytest.raises(PolicyViolation):
        respond(loaded[0], without, now=1)


def test_the_kyber_shared_secret_is_round_3_not_ml_kem() -> None:
    """Both sides agree, on libsignal's 96-byte output, and the KEM part is
    round-3 Kyber's: replacing it with ML-KEM's raw secret changes SK."""
    from signalish._primitives import hkdf
    from signalish._storage import load_ring
    from signalish._x3dh import respond
    bob = make_party("bob", b"v4-sk", OPTIONS, profile=LIBSIGNAL_V4)
    bundle = bob.bundle()
    alice = IdentityKeyPair.generate(DeterministicRandom(b"v4-sk alice"))
    sent = initiate(alice, bundle, LIBSIGNAL_V4, rng=DeterministicRandom(b"ek"))
    loaded = load_ring(bob.store, bob.identity)
    assert loaded is not None
    received = respond(loaded[0], sent.header, now=1)
    assert sent.shared_secret == received.shared_secret and len(sent.shared_secret) == 96
    assert bundle.kem_prekey is not None and sent.header.kem_ciphertext is not None
    ring = loaded[0]
    kem = ring.kem_prekey(bundle.kem_prekey.key_id, now=1).private_key
    raw = kem.decapsulate(sent.header.kem_ciphertext)  # ML-KEM's K, without the hash
    spk = ring.signed_prekey(bundle.signed_prekey.key_id, now=1).private_key
    parts = [spk.exchange(alice.public.public_key),
             bob.identity.dh_private.exchange(sent.header.base_key),
             spk.exchange(sent.header.base_key)]
    if sent.header.one_time_prekey_id is not None:
        parts.append(ring.one_time_prekey(sent.header.one_time_prekey_id).private_key
                     .exchange(sent.header.base_key))
    info = b"WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024"
    with_ml_kem = hkdf(b"\xff" * 32 + b"".join(parts) + raw, salt=None, info=info, length=96)
    assert with_ml_kem != sent.shared_secret
