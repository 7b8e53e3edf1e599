"""Sender keys (signalish._sender_keys): formats, chains, limits, states.

Known answers come from libsignal-client 0.103.0 (a black-box run,
/work/exp/groups/out/skdm.json and rotate.json), or from the documented
layout read here with ``hmac`` and ``cryptography`` alone.  Every rejection
is also checked for an unchanged record (serialized bytes compared).  Parsers
under attack are in test_sender_keys_hostile.py.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from signalish import LIBSIGNAL_V3, LIBSIGNAL_V4, NATIVE, DeterministicRandom, Profile
from signalish.errors import (
    AuthenticationError,
    ChainExhausted,
    CorruptState,
    DuplicateMessage,
    InvalidArgument,
    InvalidLength,
    MessageKeyEvicted,
    MessageRejected,
    NoSession,
    TooFarAhead,
)
from signalish._primitives import hkdf, xeddsa_verify
from signalish._sender_keys import (
    GroupCipher,
    SenderKeyDistributionMessage,
    SenderKeyLimits,
    SenderKeyMessage,
    SenderKeyRecord,
    SenderKeyState,
)

PROFILES = [NATIVE, LIBSIGNAL_V3, LIBSIGNAL_V4]
IDS = [p.name for p in PROFILES]
DIST = uuid.UUID("d1d1d1d1-7000-11eb-b32a-33b8a8a487a6")

# libsignal-client 0.103.0, black-box run (/work/exp/groups/out/skdm.json):
# SenderKeyDistributionMessage.create, then five groupEncrypt messages.
KAT_SKDM = bytes.fromhex(
    "330a10d1d1d1d1700011ebb32a33b8a8a487a610d68891b3071800222060f2fc2723cdac6ce448055c149b15"
    "2a7687183961eec77590f6570dd6967c692a21057d5fcfea8b71d3ae133bc28ca8c64cdd431d6af6c264fdc3"
    "2f3571b6aa782c0a")
KAT_CHAIN_ID = 1986282582
KAT_CHAIN_KEY = "60f2fc2723cdac6ce448055c149b152a7687183961eec77590f6570dd6967c69"
KAT_SIGNING_KEY = "7d5fcfea8b71d3ae133bc28ca8c64cdd431d6af6c264fdc32f3571b6aa782c0a"
KAT_MESSAGES = [
    ("group message 0",
     "330a10d1d1d1d1700011ebb32a33b8a8a487a610d68891b3071800221045b050a16487debedc8825f6da0556"
     "e35a4f1acb2d2c5893dfcba6bef05a7d3435c1e5ed968c1a3049d0243f5d42bb99baf547b1ee9be5c86f38f1"
     "fb0afa06be22aba9fe7b7e79366b5b6bebef5c2c02"),
    ("group message 1",
     "330a10d1d1d1d1700011ebb32a33b8a8a487a610d68891b30718012210a33441be397ac37ab1cafeca4dcc1b"
     "9a7d9c59b1bd5c18bfa810bda577c7e2896f04eb3b06871d50582ffd9102ad8d36b15aec795926a909c5052c"
     "f867fab83f06fd87c25d3107e48911c0e43de9df07"),
    ("group message 2",
     "330a10d1d1d1d1700011ebb32a33b8a8a487a610d68891b30718022210f2bfc08f3e543a2fafa2c9d704c09c"
     "6fd0d6987d86539d141a47e48af715958e2aeaa5bdc501ea4ee7fbacf4cae117d33726e224f48569d36a4cda"
     "bf300c951a99c6b1179265d40ccd1100d2a4c8cb02"),
    ("group message 3" + "x" * 20,
     "330a10d1d1d1d1700011ebb32a33b8a8a487a610d68891b30718032230c2a4a81472a6681ba7cf1ebb325ac3"
     "6f03642638989335e4f7d40834de08a7e5df82d9653eb79ee2203cd3a9dbf767cb36552458b3cd45ce24864c"
     "c303fbd0309396e47d73dbb8d88fe2ca569c9571297930ee2dc9bcd3266ef12b379687e0e6deefb26d176ac9"
     "4ca4a992445f0f9204"),
    ("group message 4",
     "330a10d1d1d1d1700011ebb32a33b8a8a487a610d68891b30718042210524e3bc416d2a3fe0152b129046471"
     "3ee9f19fd40eb6a044628548d4c9ac4b8ff74fcde6ea84a37f7019c7d75e585d1217107e44e20d6346266e05"
     "25f19662ecf3ce8393a5266cea28e7d22fe4508a06"),
]
# The chain key of the receiver's record after those five (receiverRecordAfter5).
KAT_CHAIN_KEY_AFTER_5 = "9a507d3f3e290f38cdc421f98fc4c1421b47e5883e548ed6135f232e740c53b8"
# SenderKeyDistributionMessage._new(3, DIST, 77, 10, ...) (rotate.json lateSkdm).
KAT_LATE_SKDM = bytes.fromhex(
    "330a10d1d1d1d1700011ebb32a33b8a8a487a6104d180a2220c2476d42e7c0a4b74dd2fca18dd9990e48bc1f"
    "dbb591da4cc3368b0b1903b65f2a210574055d46d07316fb71185021bb0f228f58b45c562e5a82b15d3f0aac"
    "96c8e746")


def chain(chain_key: bytes, steps: int) -> tuple[bytes, bytes]:
    """(chain key after ``steps`` steps, the last step's seed), computed here
    with ``hmac`` alone: seed = HMAC(ck, 01), next ck = HMAC(ck, 02)."""
    seed = b""
    for _ in range(steps):
        seed = hmac.digest(chain_key, b"\x01", "sha256")
        chain_key = hmac.digest(chain_key, b"\x02", "sha256")
    return chain_key, seed


def pair(profile: Profile, seed: bytes = b"pair") -> tuple[SenderKeyRecord, SenderKeyRecord]:
    own = SenderKeyRecord.create(DIST, profile, DeterministicRandom(seed))
    return own, SenderKeyRecord.from_distribution_message(own.distribution_message(), profile)


def advance(own: SenderKeyRecord, steps: int) -> None:
    """Move our sender key ``steps`` iterations on without sending (as if
    those messages went to nobody), computing the chain independently."""
    state = own.states[0]
    state.chain_key, _ = chain(state.chain_key, steps)
    state.iteration += steps


def rejects(record: SenderKeyRecord, message: bytes, error: type[Exception],
            limits: SenderKeyLimits = SenderKeyLimits()) -> None:
    before = record.to_bytes()
    with pytest.raises(error):
        record.decrypt(message, limits)
    assert record.to_bytes() == before


# --- known answers from libsignal -----------------------------------------------


def test_libsignal_skdm_parses_to_its_fields() -> None:
    m = SenderKeyDistributionMessage.parse(KAT_SKDM, LIBSIGNAL_V3)
    assert (m.distribution_id, m.chain_id, m.iteration) == (DIST, KAT_CHAIN_ID, 0)
    assert m.chain_key.hex() == KAT_CHAIN_KEY and m.signing_key.hex() == KAT_SIGNING_KEY
    assert m.to_bytes(LIBSIGNAL_V3) == KAT_SKDM == m.to_bytes(LIBSIGNAL_V4)
    late = SenderKeyDistributionMessage.parse(KAT_LATE_SKDM, LIBSIGNAL_V4)
    assert (late.chain_id, late.iteration) == (77, 10)
    assert late.to_bytes(LIBSIGNAL_V4) == KAT_LATE_SKDM


@pytest.mark.parametrize("order", ["in order", "reversed", "3,1,0,4,2"])
def test_libsignal_messages_decrypt(order: str) -> None:
    record = SenderKeyRecord.from_distribution_message(KAT_SKDM, LIBSIGNAL_V3)
    indices = {"in order": [0, 1, 2, 3, 4], "reversed": [4, 3, 2, 1, 0],
               "3,1,0,4,2": [3, 1, 0, 4, 2]}[order]
    for i in indices:
        text, body = KAT_MESSAGES[i]
        parsed = SenderKeyMessage.parse(bytes.fromhex(body), LIBSIGNAL_V3)
        assert (parsed.distribution_id, parsed.chain_id, parsed.iteration) == (DIST, KAT_CHAIN_ID, i)
        assert record.decrypt(bytes.fromhex(body)) == text.encode()
    state = record.states[0]
    assert state.iteration == 5 and not state.message_keys
    assert state.chain_key.hex() == KAT_CHAIN_KEY_AFTER_5
    for _, body in KAT_MESSAGES:
        rejects(record, bytes.fromhex(body), DuplicateMessage)


def test_our_libsignal_messages_equal_libsignals_but_for_the_signature() -> None:
    # AES-CBC with an IV from the chain is deterministic: with libsignal's
    # chain key we write libsignal's bytes, and sign them with our own key.
    own = SenderKeyRecord.create(DIST, LIBSIGNAL_V3, DeterministicRandom(b"kat"))
    state = own.states[0]
    state.chain_id, state.chain_key = KAT_CHAIN_ID, bytes.fromhex(KAT_CHAIN_KEY)
    for text, body in KAT_MESSAGES:
        ours = own.encrypt(text.encode())
        assert ours[:-64] == bytes.fromhex(body)[:-64]
        assert xeddsa_verify(state.signing_key, ours[:-64], ours[-64:], "libsignal")


def test_chain_key_in_skdm_belongs_to_its_iteration() -> None:
    own, _ = pair(LIBSIGNAL_V3)
    first = SenderKeyDistributionMessage.parse(own.distribution_message(), LIBSIGNAL_V3)
    own.encrypt(b"a")
    own.encrypt(b"b")
    later = SenderKeyDistributionMessage.parse(own.distribution_message(), LIBSIGNAL_V3)
    assert later.chain_id == first.chain_id and later.iteration == 2
    assert later.chain_key == chain(first.chain_key, 2)[0]


def test_native_layout_matches_the_documentation() -> None:
    own, _ = pair(NATIVE)
    skdm = own.distribution_message()
    assert len(skdm) == 90 and skdm[:2] == b"\x90\x01" and skdm[2:18] == DIST.bytes
    chain_id, iteration = int.from_bytes(skdm[18:22], "big"), int.from_bytes(skdm[22:26], "big")
    chain_key, signing_key = skdm[26:58], skdm[58:90]
    assert chain_id < 2**31 and iteration == 0
    message = own.encrypt(b"hello group")
    assert message[:2] == b"\x91\x01" and message[2:18] == DIST.bytes
    assert int.from_bytes(message[18:22], "big") == chain_id
    assert int.from_bytes(message[22:26], "big") == 0
    length = int.from_bytes(message[26:30], "big")
    assert length == len(b"hello group") + 16 and len(message) == 30 + length + 64
    _, seed = chain(chain_key, 1)
    okm = hkdf(seed, salt=None, info=b"signalish_SenderKeyMessage", length=44)
    assert AESGCM(okm[:32]).decrypt(okm[32:], message[30:30 + length], message[:30]) == b"hello group"
    assert xeddsa_verify(signing_key, message[:-64], message[-64:], "spec")


def test_libsignal_layout_and_cipher_read_independently() -> None:
    own, _ = pair(LIBSIGNAL_V4)
    skdm = SenderKeyDistributionMessage.parse(own.distribution_message(), LIBSIGNAL_V4)
    message = own.encrypt(b"x" * 35)
    assert message[0] == 0x33
    _, seed = chain(skdm.chain_key, 1)
    okm = hkdf(seed, salt=None, info=b"WhisperGroup", length=48)
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    ciphertext = SenderKeyMessage.parse(message, LIBSIGNAL_V4).ciphertext
    assert len(ciphertext) == 48
    d = Cipher(algorithms.AES(okm[16:]), modes.CBC(okm[:16])).decryptor()
    u = padding.PKCS7(128).unpadder()
    assert u.update(d.update(ciphertext) + d.finalize()) + u.finalize() == b"x" * 35


@pytest.mark.parametrize("profile", PROFILES, ids=IDS)
def test_signing_keys_have_sign_bit_zero_so_both_forms_verify(profile: Profile) -> None:
    for i in range(8):
        own, _ = pair(profile, b"sign%d" % i)
        message = own.encrypt(b"m")
        key = own.states[0].signing_key
        assert not own.states[0].signer.sign(b"")[63] & 0x80  # type: ignore[union-attr]
        assert xeddsa_verify(key, message[:-64], message[-64:], "spec")
        assert xeddsa_verify(key, message[:-64], message[-64:], "libsignal")


# --- round trips ------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES, ids=IDS)
@settings(max_examples=20)
@given(plaintexts=st.lists(st.binary(max_size=100), min_size=1, max_size=8), data=st.data())
def test_round_trip_in_any_order(profile: Profile, plaintexts: list[bytes],
                                 data: st.DataObject) -> None:
    own, their = pair(profile)
    messages = [own.encrypt(p) for p in plaintexts]
    order = data.draw(st.permutations(range(len(messages))))
    for i in order:
        parsed = SenderKeyMessage.parse(messages[i], profile)
        assert parsed.iteration == i and parsed.distribution_id == DIST
        assert their.decrypt(messages[i]) == plaintexts[i]
    assert not their.states[0].message_keys
    for m in messages:
        rejects(their, m, DuplicateMessage)


@pytest.mark.parametrize("profile", PROFILES, ids=IDS)
def test_distribution_message_of_an_existing_key_is_its_current_state(profile: Profile) -> None:
    own, early = pair(profile)
    messages = [own.encrypt(b"%d" % i) for i in range(3)]
    late = SenderKeyRecord.from_distribution_message(own.distribution_message(), profile)
    assert late.states[0].chain_id == own.states[0].chain_id == early.states[0].chain_id
    new = own.encrypt(b"new")
    assert late.decrypt(new) == b"new" and early.decrypt(new) == b"new"
    rejects(late, messages[0], MessageKeyEvicted)  # from before the late member joined
    assert early.decrypt(messages[0]) == b"0"


@pytest.mark.parametrize("profile", PROFILES, ids=IDS)
def test_a_record_of_another_member_cannot_send(profile: Profile) -> None:
    _, their = pair(profile)
    with pytest.raises(InvalidArgument):
        their.encrypt(b"x")
    with pytest.raises(InvalidArgument):
        their.distribution_message()


def test_plaintext_size_limit_and_chain_exhaustion() -> None:
    own, their = pair(NATIVE)
    limits = SenderKeyLimits(max_message_size=10)
    with pytest.raises(InvalidArgument):
        own.encrypt(b"x" * 11, limits)
    message = own.encrypt(b"x" * 11)
    rejects(their, message, InvalidLength, limits)
    own.states[0].iteration = 2**32 - 1
    own.encrypt(b"last")
    with pytest.raises(ChainExhausted):
        own.encrypt(b"one too many")
    with pytest.raises(ChainExhausted):
        own.distribution_message()


# --- limits ----------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES, ids=IDS)
def test_forward_jump_of_exactly_25000_and_not_25001(profile: Profile) -> None:
    own, their = pair(profile)
    fresh = their.to_bytes()
    advance(own, 25_000)
    at_limit = own.encrypt(b"25000")
    beyond = own.encrypt(b"25001")
    rejects(their, beyond, TooFarAhead)
    assert their.decrypt(at_limit) == b"25000"
    # The jump counts from the state's next iteration: now 25001, so 25001 is near.
    assert their.decrypt(beyond) == b"25001"
    again = SenderKeyRecord.from_bytes(fresh)
    assert len(again.states[0].message_keys) == 0
    rejects(again, beyond, TooFarAhead)


def test_forward_jump_counts_from_the_next_iteration() -> None:
    own, their = pair(NATIVE)
    first = own.encrypt(b"0")
    assert their.decrypt(first) == b"0"
    advance(own, 25_000)
    assert their.decrypt(own.encrypt(b"25001")) == b"25001"


def test_the_2000_key_window_after_a_jump_to_2100() -> None:
    own, their = pair(LIBSIGNAL_V3)
    messages = {}
    for i in (0, 1, 99, 100, 101, 1999, 2099):
        state = own.states[0]
        advance(own, i - state.iteration)
        messages[i] = own.encrypt(b"m%d" % i)
    advance(own, 2100 - own.states[0].iteration)
    messages[2100] = own.encrypt(b"m2100")
    assert their.decrypt(messages[2100]) == b"m2100"
    state = their.states[0]
    assert list(state.message_keys) == list(range(100, 2100)) and state.floor == 100
    for i in (0, 1, 99):
        rejects(their, messages[i], MessageKeyEvicted)
    for i in (100, 101, 1999, 2099):
        assert their.decrypt(messages[i]) == b"m%d" % i
        rejects(their, messages[i], DuplicateMessage)
    rejects(their, messages[2100], DuplicateMessage)


def test_the_window_is_fifo_over_two_jumps() -> None:
    own, their = pair(LIBSIGNAL_V3)
    kept = {}
    for i in (998, 999, 1500, 1501, 2999, 3000):
        advance(own, i - own.states[0].iteration)
        kept[i] = own.encrypt(b"%d" % i)
    assert their.decrypt(kept[1500]) == b"1500"
    assert len(their.states[0].message_keys) == 1500
    assert their.decrypt(kept[3000]) == b"3000"
    keys = their.states[0].message_keys
    assert len(keys) == 2000 and min(keys) == 999 and max(keys) == 2999 and 1500 not in keys
    rejects(their, kept[998], MessageKeyEvicted)
    rejects(their, kept[1500], DuplicateMessage)
    for i in (999, 1501, 2999):
        assert their.decrypt(kept[i]) == b"%d" % i


def test_the_window_is_per_state_not_per_record() -> None:
    # libsignal 0.103.0 keeps 1,500 keys in each of two states (3,000 in all).
    first, their = pair(LIBSIGNAL_V3, b"one")
    second = SenderKeyRecord.create(DIST, LIBSIGNAL_V3, DeterministicRandom(b"two"))
    their.process(second.distribution_message())
    for own in (first, second):
        advance(own, 1500)
        assert their.decrypt(own.encrypt(b"x")) == b"x"
    assert [len(s.message_keys) for s in their.states] == [1500, 1500]


@pytest.mark.parametrize("profile", PROFILES, ids=IDS)
def test_smaller_limits(profile: Profile) -> None:
    limits = SenderKeyLimits(max_forward_jump=5, max_message_keys=2)
    own, their = pair(profile)
    messages = [own.encrypt(b"%d" % i) for i in range(10)]
    rejects(their, messages[6], TooFarAhead, limits)
    assert their.decrypt(messages[5], limits) == b"5"
    assert list(their.states[0].message_keys) == [3, 4]
    rejects(their, messages[2], MessageKeyEvicted, limits)
    no_keys = SenderKeyLimits(max_message_keys=0)
    _, other = pair(profile)
    assert other.decrypt(messages[3], no_keys) == b"3"
    rejects(other, messages[1], MessageKeyEvicted, no_keys)
    rejects(other, messages[3], DuplicateMessage, no_keys)


@pytest.mark.parametrize("bad", [
    {"max_forward_jump": -1}, {"max_message_keys": -1}, {"max_states": 0},
    {"max_message_size": 0}, {"max_states": True}, {"max_message_keys": 1.5},
])
def test_limits_are_checked(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        SenderKeyLimits(**bad)  # type: ignore[arg-type]


# --- states ------------------------------------------------------------------------------


def senders(n: int, profile: Profile = LIBSIGNAL_V3) -> list[SenderKeyRecord]:
    return [SenderKeyRecord.create(DIST, profile, DeterministicRandom(b"s%d" % i)) for i in range(n)]


def chain_ids(record: SenderKeyRecord) -> list[int]:
    return [s.chain_id for s in record.states]


def test_five_states_newest_first_and_the_sixth_drops_the_oldest() -> None:
    own = senders(6)
    skdms = [s.distribution_message() for s in own]
    messages = [s.encrypt(b"from %d" % i) for i, s in enumerate(own)]
    their = SenderKeyRecord.from_distribution_message(skdms[0], LIBSIGNAL_V3)
    for skdm in skdms[1:5]:
        their.process(skdm)
    assert chain_ids(their) == [s.states[0].chain_id for s in reversed(own[:5])]
    their.process(skdms[5])
    assert chain_ids(their) == [s.states[0].chain_id for s in reversed(own[1:])]
    rejects(their, messages[0], NoSession)
    for i in range(1, 6):
        assert their.decrypt(messages[i]) == b"from %d" % i


def test_reprocessing_an_skdm_moves_its_state_to_the_front_and_changes_nothing() -> None:
    own = senders(5)
    their = SenderKeyRecord.from_distribution_message(own[0].distribution_message(), LIBSIGNAL_V3)
    early = own[0].distribution_message()
    assert their.decrypt(own[0].encrypt(b"a")) == b"a"
    own[0].encrypt(b"b")
    assert their.decrypt(own[0].encrypt(b"c")) == b"c"  # keeps iteration 1's key
    for s in own[1:]:
        their.process(s.distribution_message())
    before = repr(their.states[-1]), their.states[-1].chain_key, dict(their.states[-1].message_keys)
    their.process(early)  # same chain id and key, older iteration: nothing but the order changes
    assert their.states[0].chain_id == own[0].states[0].chain_id
    assert (repr(their.states[0]), their.states[0].chain_key,
            dict(their.states[0].message_keys)) == before
    assert len(their.states) == 5  # a full record loses nothing to a re-processed SKDM
    snapshot = their.to_bytes()
    their.process(early)
    assert their.to_bytes() == snapshot


def test_same_chain_id_with_another_signing_key_replaces_that_state() -> None:
    own, their = pair(LIBSIGNAL_V3)
    other = senders(3)
    for s in other[:2]:
        their.process(s.distribution_message())
    old = [own.encrypt(b"%d" % i) for i in range(3)]
    assert their.decrypt(old[1]) == b"1"
    impostor = SenderKeyRecord.create(DIST, LIBSIGNAL_V3, DeterministicRandom(b"imp"))
    impostor.states[0].chain_id = own.states[0].chain_id
    their.process(impostor.distribution_message())
    assert chain_ids(their)[0] == own.states[0].chain_id and len(their.states) == 3
    state = their.states[0]
    assert state.iteration == 0 and not state.message_keys
    assert state.signing_key == impostor.states[0].signing_key
    rejects(their, old[0], AuthenticationError)
    rejects(their, old[2], AuthenticationError)
    assert their.decrypt(impostor.encrypt(b"new")) == b"new"


def test_skdm_for_another_distribution_id_is_refused() -> None:
    own, their = pair(NATIVE)
    other = SenderKeyRecord.create(uuid.UUID(int=1), NATIVE, DeterministicRandom(b"o"))
    before = their.to_bytes()
    with pytest.raises(InvalidArgument):
        their.process(other.distribution_message())
    with pytest.raises(InvalidArgument):
        their.decrypt(other.encrypt(b"x"))
    assert their.to_bytes() == before


def test_max_states_limit_is_a_parameter() -> None:
    own = senders(3)
    their = SenderKeyRecord.from_distribution_message(own[0].distribution_message(), LIBSIGNAL_V3)
    limits = SenderKeyLimits(max_states=2)
    for s in own[1:]:
        their.process(s.distribution_message(), limits)
    assert chain_ids(their) == [own[2].states[0].chain_id, own[1].states[0].chain_id]


# --- records -------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES, ids=IDS)
def test_record_round_trip_keeps_everything(profile: Profile) -> None:
    own, their = pair(profile)
    messages = [own.encrypt(b"%d" % i) for i in range(6)]
    their.process(senders(1, profile)[0].distribution_message())
    their.decrypt(messages[4])
    assert isinstance(their.states[0], SenderKeyState) and own.states[0].signer is not None
    for record in (own, their):
        data = record.to_bytes()
        again = SenderKeyRecord.from_bytes(data)
        assert again.to_bytes() == data and again.profile is profile
        assert again.distribution_id == DIST
    again = SenderKeyRecord.from_bytes(their.to_bytes())
    assert again.decrypt(messages[2]) == b"2" and again.decrypt(messages[5]) == b"5"
    own_again = SenderKeyRecord.from_bytes(own.to_bytes())
    assert their.decrypt(own_again.encrypt(b"later")) == b"later"


def test_repr_hides_every_secret() -> None:
    own, their = pair(LIBSIGNAL_V3)
    message = own.encrypt(b"secret plaintext")
    their.decrypt(own.encrypt(b"skip one"))
    skdm = SenderKeyDistributionMessage.parse(own.distribution_message(), LIBSIGNAL_V3)
    secrets = [own.states[0].chain_key, own.states[0].signer.seed(),  # type: ignore[union-attr]
               skdm.chain_key, their.states[0].chain_key,
               *their.states[0].message_keys.values()]
    text = " ".join(repr(x) for x in (own, their, skdm, own.states[0], their.states[0],
                                      SenderKeyMessage.parse(message, LIBSIGNAL_V3)))
    for secret in secrets:
        assert secret.hex() not in text and secret.hex()[:16] not in text
    assert "secret plaintext" not in text


# --- GroupCipher over a store ---------------------------------------------------------------


class DictStore:
    def __init__(self, transactions: bool = True) -> None:
        self.data: dict[tuple[str, uuid.UUID], bytes] = {}
        self.log: list[str] = []
        if not transactions:
            self.transaction = None  # type: ignore[assignment]

    def load_sender_key(self, sender: str, distribution_id: uuid.UUID) -> bytes | None:
        return self.data.get((sender, distribution_id))

    def save_sender_key(self, sender: str, distribution_id: uuid.UUID, record: bytes) -> None:
        self.data[(sender, distribution_id)] = record

    @contextmanager
    def transaction(self) -> Iterator[None]:
        saved = dict(self.data)
        self.log.append("begin")
        try:
            yield
        except BaseException:
            self.data = saved
            self.log.append("rollback")
            raise
        self.log.append("commit")


@pytest.mark.parametrize("profile", PROFILES, ids=IDS)
@pytest.mark.parametrize("transactions", [True, False])
def test_group_cipher_over_a_store(profile: Profile, transactions: bool) -> None:
    alice_store, bob_store = DictStore(transactions), DictStore(transactions)
    alice = GroupCipher(alice_store, profile, rng=DeterministicRandom(b"alice"))
    bob = GroupCipher(bob_store, profile, rng=DeterministicRandom(b"bob"))
    with pytest.raises(NoSession):
        alice.encrypt("alice.1", DIST, b"too early")
    skdm = alice.distribution_message("alice.1", DIST)
    assert alice.distribution_message("alice.1", DIST) == skdm  # not a rotation
    assert bob.process("alice.1", skdm) == DIST
    messages = [alice.encrypt("alice.1", DIST, b"m%d" % i) for i in range(3)]
    assert bob.decrypt("alice.1", messages[2]) == b"m2"
    stored = dict(bob_store.data)
    with pytest.raises(DuplicateMessage):
        bob.decrypt("alice.1", messages[2])
    with pytest.raises(NoSession):
        bob.decrypt("carol.1", messages[0])
    tampered = bytearray(messages[0])
    tampered[-1] ^= 1
    with pytest.raises(AuthenticationError):
        bob.decrypt("alice.1", bytes(tampered))
    assert bob_store.data == stored
    if transactions:
        assert "rollback" in bob_store.log
    assert bob.decrypt("alice.1", messages[0]) == b"m0"
    # A member leaves: Alice rotates; Bob takes the new SKDM and reads both keys.
    new_skdm = alice.rotate("alice.1", DIST)
    assert new_skdm != skdm
    bob.process("alice.1", new_skdm)
    assert bob.decrypt("alice.1", alice.encrypt("alice.1", DIST, b"after")) == b"after"
    assert bob.decrypt("alice.1", messages[1]) == b"m1"
    leaver = GroupCipher(DictStore(), profile)
    leaver.process("alice.1", skdm)
    with pytest.raises(NoSession):
        leaver.decrypt("alice.1", alice.encrypt("alice.1", DIST, b"not for you"))


def test_group_cipher_refuses_a_record_of_another_profile_or_key() -> None:
    store = DictStore()
    GroupCipher(store, NATIVE, rng=DeterministicRandom(b"a")).distribution_message("me", DIST)
    with pytest.raises(InvalidArgument):
        GroupCipher(store, LIBSIGNAL_V3).encrypt("me", DIST, b"x")
    store.data[("me", uuid.UUID(int=7))] = store.data[("me", DIST)]
    with pytest.raises(CorruptState):
        GroupCipher(store, NATIVE).encrypt("me", uuid.UUID(int=7), b"x")


def test_group_cipher_saves_before_returning_a_message() -> None:
    store = DictStore()
    cipher = GroupCipher(store, NATIVE, rng=DeterministicRandom(b"a"))
    cipher.distribution_message("me", DIST)
    first = cipher.encrypt("me", DIST, b"1")
    second = cipher.encrypt("me", DIST, b"2")
    assert SenderKeyMessage.parse(first, NATIVE).iteration == 0
    assert SenderKeyMessage.parse(second, NATIVE).iteration == 1
    assert SenderKeyRecord.from_bytes(store.data[("me", DIST)]).states[0].iteration == 2


# --- a stateful conversation -----------------------------------------------------------------


class GroupConversation(RuleBasedStateMachine):
    """One sender, one receiver, small limits; messages delivered in any
    order, some twice, some tampered, with rotations.  The receiver must
    return each plaintext at most once, and a refusal must change nothing."""

    LIMITS = SenderKeyLimits(max_forward_jump=12, max_message_keys=4, max_states=2)

    def __init__(self) -> None:
        super().__init__()
        self.rng = DeterministicRandom(b"conversation")
        self.profile = PROFILES[0]
        self.own = SenderKeyRecord.create(DIST, self.profile, self.rng)
        self.their = SenderKeyRecord.from_distribution_message(self.own.distribution_message(),
                                                               self.profile)
        self.sent: list[tuple[bytes, bytes]] = []
        self.delivered: set[int] = set()

    @rule(profile=st.sampled_from(PROFILES))
    def choose_profile(self, profile: Profile) -> None:
        if not self.sent and self.profile is not profile:
            self.profile = profile
            self.own = SenderKeyRecord.create(DIST, profile, self.rng)
            self.their = SenderKeyRecord.from_distribution_message(
                self.own.distribution_message(), profile)

    @rule(size=st.integers(0, 40))
    def send(self, size: int) -> None:
        plaintext = b"%d:" % len(self.sent) + b"p" * size
        self.sent.append((plaintext, self.own.encrypt(plaintext, self.LIMITS)))

    @rule()
    def rotate(self) -> None:
        self.own = SenderKeyRecord.create(DIST, self.profile, self.rng)
        self.their.process(self.own.distribution_message(), self.LIMITS)

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.sent) - 1))
        plaintext, message = self.sent[index]
        before = self.their.to_bytes()
        try:
            result = self.their.decrypt(message, self.LIMITS)
        except (MessageRejected, NoSession):
            assert self.their.to_bytes() == before
            return
        assert result == plaintext and index not in self.delivered
        self.delivered.add(index)

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def deliver_tampered(self, data: st.DataObject) -> None:
        _, message = self.sent[data.draw(st.integers(0, len(self.sent) - 1))]
        position = data.draw(st.integers(0, len(message) * 8 - 1))
        tampered = bytearray(message)
        tampered[position // 8] ^= 1 << position % 8
        before = self.their.to_bytes()
        with pytest.raises(Exception) as failure:
            self.their.decrypt(bytes(tampered), self.LIMITS)
        assert isinstance(failure.value, (ValueError, MessageRejected, NoSession,
                                          AuthenticationError))
        assert self.their.to_bytes() == before

    @invariant()
    def record_round_trips(self) -> None:
        data = self.their.to_bytes()
        assert SenderKeyRecord.from_bytes(data).to_bytes() == data


GroupConversation.TestCase.settings = settings(max_examples=30, stateful_step_count=30,
                                               deadline=None)
test_group_conversation = GroupConversation.TestCase


def test_group_cipher_over_signalish_stores(tmp_path: object) -> None:
    from pathlib import Path

    from signalish._stores import MemoryStore, SQLiteStore
    assert isinstance(tmp_path, Path)
    files = [SQLiteStore(tmp_path / "alice.db"), SQLiteStore(tmp_path / "bob.db")]
    for alice_store, store in ((MemoryStore(), MemoryStore()), files):
        alice = GroupCipher(alice_store, LIBSIGNAL_V4, rng=DeterministicRandom(b"a"))
        bob = GroupCipher(store, LIBSIGNAL_V4)
        bob.process("alice.1", alice.distribution_message("alice.1", DIST))
        messages = [alice.encrypt("alice.1", DIST, b"%d" % i) for i in range(3)]
        assert bob.decrypt("alice.1", messages[2]) == b"2"
        stored = store.load_sender_key("alice.1", DIST)
        with pytest.raises(DuplicateMessage):
            bob.decrypt("alice.1", messages[2])
        # Inside the application's own transaction, a call's writes go with it.
        with pytest.raises(RuntimeError), store.transaction():
            assert bob.decrypt("alice.1", messages[0]) == b"0"
            raise RuntimeError("the application failed after decrypting")
        assert store.load_sender_key("alice.1", DIST) == stored
        assert bob.decrypt("alice.1", messages[0]) == b"0"
    for file in files:
        file.close()
