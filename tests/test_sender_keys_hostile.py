"""Sender key parsers and records under attack.

Every malformed input must raise a named signalish error (the class is
asserted), and a refused message must leave the record byte for byte as it
was.  The protobuf and record bytes built here are written from
docs/sender_keys.md, not with the module's own encoders.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signalish import LIBSIGNAL_V3, NATIVE, DeterministicRandom, Profile, SignalishError
from signalish.errors import (
    AuthenticationError,
    CorruptState,
    DecodeError,
    InvalidArgument,
    InvalidEncoding,
    InvalidKey,
    InvalidLength,
    MessageRejected,
    NoSession,
    TrailingBytes,
    TruncatedInput,
    UnexpectedType,
    UnknownVersion,
)
from signalish._encoding import add_digest
from signalish._sender_keys import (
    SenderKeyDistributionMessage,
    SenderKeyLimits,
    SenderKeyMessage,
    SenderKeyRecord,
)
from strategies import every_truncation_and_extension

PROFILES = [NATIVE, LIBSIGNAL_V3]
IDS = [p.name for p in PROFILES]
DIST = uuid.UUID("d1d1d1d1-7000-11eb-b32a-33b8a8a487a6")
P = 2**255 - 19


def pair(profile: Profile) -> tuple[SenderKeyRecord, SenderKeyRecord]:
    own = SenderKeyRecord.create(DIST, profile, DeterministicRandom(b"hostile"))
    return own, SenderKeyRecord.from_distribution_message(own.distribution_message(), profile)


def flips(data: bytes) -> list[bytes]:
    out = []
    for i in range(len(data) * 8):
        b = bytearray(data)
        b[i // 8] ^= 1 << (i % 8)
        out.append(bytes(b))
    return out


# Protobuf pieces, written here from the documented layout.
def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def vfield(tag: int, n: int) -> bytes:
    return varint(tag << 3) + varint(n)


def bfield(tag: int, b: bytes) -> bytes:
    return varint(tag << 3 | 2) + varint(len(b)) + b


GOOD_U = bytes.fromhex("7d5fcfea8b71d3ae133bc28ca8c64cdd431d6af6c264fdc32f3571b6aa782c0a")


def skdm(*fields: bytes, version: int = 0x33) -> bytes:
    return bytes((version,)) + b"".join(fields)


STANDARD = [bfield(1, DIST.bytes), vfield(2, 7), vfield(3, 0), bfield(4, bytes(32)),
            bfield(5, b"\x05" + GOOD_U)]


def test_the_hand_built_skdm_parses() -> None:
    m = SenderKeyDistributionMessage.parse(skdm(*STANDARD), LIBSIGNAL_V3)
    assert (m.distribution_id, m.chain_id, m.iteration, m.signing_key) == (DIST, 7, 0, GOOD_U)


def replace(index: int, value: bytes) -> list[bytes]:
    fields = list(STANDARD)
    fields[index] = value
    return fields


@pytest.mark.parametrize("data, error", [
    (skdm(*STANDARD, version=0x23), UnknownVersion),
    (skdm(*STANDARD, version=0x43), UnknownVersion),
    (skdm(*STANDARD, version=0x13), UnknownVersion),
    (b"", TruncatedInput),
    (skdm(*STANDARD, vfield(6, 1)), TrailingBytes),                       # unknown field at the end
    (skdm(*STANDARD[:2], vfield(6, 1), *STANDARD[2:]), InvalidEncoding),  # unknown field inside
    (skdm(*STANDARD[:2], vfield(2, 7), *STANDARD[2:]), InvalidEncoding),  # field 2 twice
    (skdm(*STANDARD[:2], *STANDARD[3:]), InvalidEncoding),                # iteration missing
    (skdm(*STANDARD[:4]), TruncatedInput),                                # signing key missing
    (skdm(STANDARD[0], STANDARD[2], STANDARD[1], *STANDARD[3:]), InvalidEncoding),  # order
    (skdm(*replace(1, b"\x10\x87\x00")), InvalidEncoding),                # non-minimal varint
    (skdm(*replace(1, vfield(2, 2**32))), InvalidEncoding),               # chain id over 32 bits
    (skdm(*replace(1, bfield(2, b"\x07"))), InvalidEncoding),             # wrong wire type
    (skdm(*replace(0, bfield(1, bytes(15)))), InvalidLength),
    (skdm(*replace(0, bfield(1, bytes(17)))), InvalidLength),
    (skdm(*replace(3, bfield(4, bytes(31)))), InvalidLength),
    (skdm(*replace(3, bfield(4, bytes(33)))), InvalidLength),
    (skdm(*replace(4, bfield(5, GOOD_U))), InvalidLength),                # no 0x05
    (skdm(*replace(4, bfield(5, b"\x06" + GOOD_U))), InvalidEncoding),
    (skdm(*replace(4, bfield(5, b"\x05" + GOOD_U + b"\x00"))), InvalidLength),
    (skdm(*STANDARD[:4], b"\x2a\x40" + b"\x05" + GOOD_U), TruncatedInput),  # overlong length
    (skdm(*replace(4, bfield(5, b"\x05" + bytes(32)))), InvalidKey),      # u = 0, low order
    (skdm(*replace(4, bfield(5, b"\x05" + (1).to_bytes(32, "little")))), InvalidKey),
    (skdm(*replace(4, bfield(5, b"\x05" + (P + 9).to_bytes(32, "little")))), InvalidKey),
])
def test_malformed_libsignal_skdms(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        SenderKeyDistributionMessage.parse(data, LIBSIGNAL_V3)


@pytest.mark.parametrize("version", [0x30, 0x34, 0x3F])
def test_skdm_version_low_nibble_is_ignored_as_libsignal_does(version: int) -> None:
    m = SenderKeyDistributionMessage.parse(skdm(*STANDARD, version=version), LIBSIGNAL_V3)
    assert m.to_bytes(LIBSIGNAL_V3) == skdm(*STANDARD)


@pytest.mark.parametrize("profile", PROFILES, ids=IDS)
def test_every_truncation_extension_and_bit_flip_of_an_skdm(profile: Profile) -> None:
    own, _ = pair(profile)
    data = own.distribution_message()
    for bad in every_truncation_and_extension(data):
        with pytest.raises(DecodeError):
            SenderKeyDistributionMessage.parse(bad, profile)
    for bad in flips(data):
        try:
            m = SenderKeyDistributionMessage.parse(bad, profile)
        except (DecodeError, InvalidKey):
            continue
        # A flip that parses is another message, encoded canonically, except
        # for the ignored low nibble of libsignal's version byte.
        if profile is LIBSIGNAL_V3 and bad[0] != data[0]:
            assert m.to_bytes(profile) == data
        else:
            assert m.to_bytes(profile) == bad


def test_native_skdm_tags_and_versions() -> None:
    own, _ = pair(NATIVE)
    data = own.distribution_message()
    with pytest.raises(UnexpectedType):
        SenderKeyDistributionMessage.parse(b"\x91" + data[1:], NATIVE)
    with pytest.raises(UnknownVersion):
        SenderKeyDistributionMessage.parse(data[:1] + b"\x02" + data[2:], NATIVE)
    with pytest.raises(UnexpectedType):  # a libsignal SKDM under NATIVE
        SenderKeyDistributionMessage.parse(pair(LIBSIGNAL_V3)[0].distribution_message(), NATIVE)
    with pytest.raises(UnknownVersion):  # a native one under a libsignal profile
        SenderKeyDistributionMessage.parse(data, LIBSIGNAL_V3)
    with pytest.raises(InvalidKey):
        SenderKeyDistributionMessage.parse(data[:58] + bytes(32), NATIVE)


# --- SenderKeyMessage ---------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES, ids=IDS)
def test_every_truncation_and_extension_of_a_message_is_refused(profile: Profile) -> None:
    own, their = pair(profile)
    message = own.encrypt(b"a group message")
    before = their.to_bytes()
    for bad in every_truncation_and_extension(message):
        with pytest.raises(DecodeError):
            their.decrypt(bad)
    assert their.to_bytes() == before
    assert their.decrypt(message) == b"a group message"


@pytest.mark.parametrize("profile", PROFILES, ids=IDS)
def test_every_bit_flip_of_a_message_is_refused_and_changes_nothing(profile: Profile) -> None:
    own, their = pair(profile)
    own.encrypt(b"skipped")  # so that the record holds a stored key too
    their.decrypt(own.encrypt(b"second"))
    message = own.encrypt(b"the message under attack")
    before = their.to_bytes()
    seen: set[type[Exception]] = set()
    for bad in flips(message):
        with pytest.raises(SignalishError) as failure:
            their.decrypt(bad)
        assert isinstance(failure.value, (DecodeError, InvalidArgument, NoSession,
                                          AuthenticationError)), repr(failure.value)
        seen.add(type(failure.value))
        assert their.to_bytes() == before
    assert AuthenticationError in seen and NoSession in seen and InvalidArgument in seen
    assert their.decrypt(message) == b"the message under attack"


@pytest.mark.parametrize("version, error", [
    (0x23, UnknownVersion), (0x43, UnknownVersion), (0x03, UnknownVersion), (0xF3, UnknownVersion),
    (0x30, AuthenticationError), (0x34, AuthenticationError), (0x3F, AuthenticationError),
])
def test_message_version_byte(version: int, error: type[Exception]) -> None:
    own, their = pair(LIBSIGNAL_V3)
    message = own.encrypt(b"x")
    before = their.to_bytes()
    with pytest.raises(error):
        their.decrypt(bytes((version,)) + message[1:])
    assert their.to_bytes() == before


def skm(*fields: bytes) -> bytes:
    return b"\x33" + b"".join(fields) + bytes(64)


MSG = [bfield(1, DIST.bytes), vfield(2, 7), vfield(3, 0), bfield(4, bytes(16))]


@pytest.mark.parametrize("data, error", [
    (skm(*MSG[:3], bfield(4, b"")), InvalidLength),
    (skm(*MSG[:3], bfield(4, bytes(15))), InvalidLength),
    (skm(*MSG[:3], bfield(4, bytes(1024 + 32))), InvalidLength),          # over the limit
    (skm(*MSG, vfield(5, 0)), TrailingBytes),
    (skm(MSG[0], MSG[1], MSG[3]), InvalidEncoding),                        # iteration missing
    (skm(MSG[0], MSG[1], MSG[1], MSG[2], MSG[3]), InvalidEncoding),        # field 2 twice
    (skm(bfield(1, bytes(17)), *MSG[1:]), InvalidLength),
    (skm(*MSG[:3], b"\x22\x20" + bytes(16)), TruncatedInput),
    (b"\x33" + bytes(63), TruncatedInput),
])
def test_malformed_libsignal_messages(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        SenderKeyMessage.parse(data, LIBSIGNAL_V3, max_message_size=1024)
    assert SenderKeyMessage.parse(skm(*MSG), LIBSIGNAL_V3).iteration == 0


def test_malformed_native_messages() -> None:
    own, their = pair(NATIVE)
    message = own.encrypt(b"0123456789")
    limits = SenderKeyLimits(max_message_size=9)
    with pytest.raises(InvalidLength):
        their.decrypt(message, limits)

    def with_length(n: int) -> bytes:
        return message[:26] + n.to_bytes(4, "big") + message[30:]

    with pytest.raises(TruncatedInput):
        their.decrypt(with_length(27))
    with pytest.raises(TrailingBytes):
        their.decrypt(with_length(25))
    with pytest.raises(InvalidLength):
        their.decrypt(with_length(15))
    with pytest.raises(UnexpectedType):
        their.decrypt(b"\x90" + message[1:])
    with pytest.raises(UnknownVersion):
        their.decrypt(message[:1] + b"\x00" + message[2:])
    assert their.decrypt(message) == b"0123456789"


@pytest.mark.parametrize("profile", PROFILES, ids=IDS)
@settings(max_examples=200)
@given(data=st.binary(max_size=200))
def test_random_bytes_only_raise_named_errors(profile: Profile, data: bytes) -> None:
    for parse in (lambda: SenderKeyDistributionMessage.parse(data, profile),
                  lambda: SenderKeyMessage.parse(data, profile)):
        try:
            parse()
        except (DecodeError, InvalidKey):
            pass


@pytest.mark.parametrize("profile", PROFILES, ids=IDS)
@settings(max_examples=100)
@given(data=st.data())
def test_mutated_messages_only_raise_named_errors(profile: Profile, data: st.DataObject) -> None:
    own, their = pair(profile)
    message = bytearray(own.encrypt(b"mutate me"))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(message) - 1))
        message[at] = data.draw(st.integers(0, 255))
    before = their.to_bytes()
    try:
        assert their.decrypt(bytes(message)) == b"mutate me"
    except (DecodeError, InvalidKey, InvalidArgument, NoSession, AuthenticationError,
            MessageRejected):
        assert their.to_bytes() == before


# --- records -------------------------------------------------------------------------------


def record(profile: bytes = b"libsignal_v3", count: int | None = None,
           states: list[bytes] | None = None, tag: int = 0x92, version: int = 1,
           extra: bytes = b"") -> bytes:
    """A record built from the documented layout, with a valid digest."""
    states = states if states is not None else [state()]
    body = (bytes((tag, version)) + len(profile).to_bytes(4, "big") + profile + DIST.bytes
            + bytes((len(states) if count is None else count,)) + b"".join(states) + extra)
    return add_digest(body)


def state(chain_id: int = 7, iteration: int = 10, floor: int = 2, key: bytes = GOOD_U,
          own: bytes = b"\x00", keys: list[int] | None = None) -> bytes:
    keys = [3, 5] if keys is None else keys
    return (chain_id.to_bytes(4, "big") + iteration.to_bytes(8, "big") + floor.to_bytes(8, "big")
            + bytes(32) + key + own + len(keys).to_bytes(4, "big")
            + b"".join(i.to_bytes(4, "big") + bytes(32) for i in keys))


def test_the_hand_built_record_loads() -> None:
    r = SenderKeyRecord.from_bytes(record(states=[state(), state(chain_id=8)]))
    assert [s.chain_id for s in r.states] == [7, 8] and r.profile is LIBSIGNAL_V3
    assert list(r.states[0].message_keys) == [3, 5] and r.states[0].floor == 2


def own_state(seed: bytes, public: bytes) -> bytes:
    return state(key=public, own=b"\x01" + seed, keys=[])


def test_own_state_seed_must_match_its_key() -> None:
    own, _ = pair(NATIVE)
    signer = own.states[0].signer
    assert signer is not None
    seed, public = signer.seed(), own.states[0].signing_key
    assert SenderKeyRecord.from_bytes(record(states=[own_state(seed, public)])).states[0].signer
    with pytest.raises(InvalidEncoding):
        SenderKeyRecord.from_bytes(record(states=[own_state(seed, GOOD_U)]))
    # A seed whose Edwards public key has sign bit 1 is refused.
    bad_seed = next(s for s in (bytes([i]) * 32 for i in range(256)) if _sign_bit(s))
    with pytest.raises(InvalidEncoding):
        SenderKeyRecord.from_bytes(record(states=[own_state(bad_seed, public)]))


def _sign_bit(seed: bytes) -> int:
    from signalish._primitives import Ed25519Signer
    return Ed25519Signer(seed).public_bytes_raw()[31] >> 7


@pytest.mark.parametrize("data, error", [
    (record(profile=b"nonesuch"), InvalidEncoding),
    (record(profile=b"\xff"), InvalidEncoding),
    (record(states=[]), InvalidEncoding),                                 # no state
    (record(states=[state(), state()]), InvalidEncoding),                 # one chain id twice
    (record(states=[state(floor=11)]), InvalidEncoding),                  # floor > iteration
    (record(states=[state(iteration=2**32 + 1, floor=0)]), InvalidEncoding),
    (record(states=[state(keys=[1])]), InvalidEncoding),                  # below the floor
    (record(states=[state(keys=[10])]), InvalidEncoding),                 # not below iteration
    (record(states=[state(keys=[5, 3])]), InvalidEncoding),               # out of order
    (record(states=[state(keys=[3, 3])]), InvalidEncoding),               # twice
    (record(states=[state(key=bytes(32))]), InvalidEncoding),             # low-order signing key
    (record(states=[state(own=b"\x02")]), InvalidEncoding),               # flag not 0 or 1
    (record(count=2), TruncatedInput),                                    # count says 2, one follows
    (record(extra=b"\x00"), TrailingBytes),
    (record(tag=0x50), UnexpectedType),
    (record(version=2), UnknownVersion),
])
def test_invalid_records_with_a_good_digest(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        SenderKeyRecord.from_bytes(data)


@pytest.mark.parametrize("profile", PROFILES, ids=IDS)
def test_every_damage_to_a_stored_record_is_corrupt_state(profile: Profile) -> None:
    own, their = pair(profile)
    own.encrypt(b"skip")
    their.decrypt(own.encrypt(b"keep a key"))
    for data in (own.to_bytes(), their.to_bytes()):
        for bad in flips(data) + every_truncation_and_extension(data):
            with pytest.raises(CorruptState):
                SenderKeyRecord.from_bytes(bad)


@settings(max_examples=200)
@given(data=st.binary(max_size=300))
def test_random_records_only_raise_named_errors(data: bytes) -> None:
    for candidate in (data, add_digest(data), add_digest(b"\x92\x01" + data)):
        try:
            SenderKeyRecord.from_bytes(candidate)
        except (CorruptState, DecodeError):
            pass
