"""Sender keys against libsignal-client, both directions (driver_groups.mjs).

libsignal 0.72.1, 0.90.0 and 0.103.0 write the same sender key messages (the
1:1 protocol version does not touch them), so each test runs against all
three under LIBSIGNAL_V3 or LIBSIGNAL_V4.  One driver process per release
plays every libsignal party; each test uses its own party names and
distribution id.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

import pytest

from libsignal_peer import LibsignalPeer
from signalish import LIBSIGNAL_V3, LIBSIGNAL_V4, DeterministicRandom, Profile
from signalish.errors import (
    AuthenticationError,
    DuplicateMessage,
    MessageKeyEvicted,
    NoSession,
    TooFarAhead,
)
from signalish._sender_keys import (
    GroupCipher,
    SenderKeyDistributionMessage,
    SenderKeyMessage,
    SenderKeyRecord,
)

VERSIONS = ["0.72.1", "0.90.0", "0.103.0"]
PROFILE_OF = {"0.72.1": LIBSIGNAL_V3, "0.90.0": LIBSIGNAL_V4, "0.103.0": LIBSIGNAL_V4}
_counter = itertools.count()


@pytest.fixture(scope="module", params=VERSIONS)
def peer(request: pytest.FixtureRequest) -> Iterator[LibsignalPeer]:
    p = LibsignalPeer(request.param, script="driver_groups.mjs")
    try:
        assert p.ok("init", version=request.param)["version"] == request.param
        yield p
    finally:
        p.close()


class Names:
    """Fresh party names and a distribution id for one test."""

    def __init__(self) -> None:
        n = next(_counter)
        self.dist = uuid.UUID(int=0xD1D1 << 112 | n, version=4)
        self.sender, self.receiver = f"alice{n}", f"bob{n}"


class DictStore:
    def __init__(self) -> None:
        self.data: dict[tuple[str, uuid.UUID], bytes] = {}

    def load_sender_key(self, sender: str, distribution_id: uuid.UUID) -> bytes | None:
        return self.data.get((sender, distribution_id))

    def save_sender_key(self, sender: str, distribution_id: uuid.UUID, record: bytes) -> None:
        self.data[(sender, distribution_id)] = record


def profile(peer: LibsignalPeer) -> Profile:
    return PROFILE_OF[peer.version]


def their_skdm(peer: LibsignalPeer, names: Names) -> dict[str, object]:
    return peer.ok("create", party=names.sender, sender="alice", distribution_id=str(names.dist))


def their_messages(peer: LibsignalPeer, names: Names, count: int, keep: list[int]) -> dict[int, bytes]:
    answer = peer.ok("encrypt_bulk", party=names.sender, sender="alice",
                     distribution_id=str(names.dist), text="m", count=count, keep=keep)
    return {m["index"]: bytes.fromhex(m["body"]) for m in answer["messages"]}


def deliver(peer: LibsignalPeer, names: Names, skdm: bytes) -> None:
    result = peer.ok("process", party=names.receiver, sender="alice", skdm=skdm.hex())["result"]
    assert result["ok_op"], result


def libsignal_decrypts(peer: LibsignalPeer, names: Names, messages: list[bytes]) -> list[dict[str, str]]:
    answer = peer.ok("decrypt_each", party=names.receiver, sender="alice",
                     messages=[m.hex() for m in messages], keep_state=True)
    results: list[dict[str, str]] = answer["results"]
    return results


def advance(own: SenderKeyRecord, steps: int) -> None:
    """Step our sender key on without sending (messages nobody received)."""
    from signalish._ratchet import kdf_ck
    state = own.states[0]
    for _ in range(steps):
        state.chain_key, _ = kdf_ck(state.chain_key)
    state.iteration += steps


# --- libsignal sends, signalish reads ------------------------------------------------------


def test_libsignal_skdm_and_messages_in_order_out_of_order_and_with_gaps(peer: LibsignalPeer) -> None:
    names = Names()
    created = their_skdm(peer, names)
    skdm = bytes.fromhex(str(created["skdm"]))
    parsed = SenderKeyDistributionMessage.parse(skdm, profile(peer))
    assert (str(parsed.distribution_id), parsed.chain_id, parsed.iteration, parsed.chain_key.hex()) \
        == (created["distribution_id"], created["chain_id"], 0, created["chain_key"])
    store = DictStore()
    bob = GroupCipher(store, profile(peer))
    assert bob.process("alice.1", skdm) == names.dist
    messages = their_messages(peer, names, 40, list(range(40)))
    order = [0, 1, 2, 5, 3, 4, 20, 6, 39, 19, 7]  # in order, swapped, gaps, back-fill
    for i in order:
        view = SenderKeyMessage.parse(messages[i], profile(peer))
        assert (view.distribution_id, view.chain_id, view.iteration) == (names.dist, parsed.chain_id, i)
        assert bob.decrypt("alice.1", messages[i]) == b"m%d" % i
    before = dict(store.data)
    with pytest.raises(DuplicateMessage):
        bob.decrypt("alice.1", messages[5])
    tampered = bytearray(messages[8])
    tampered[len(tampered) // 2] ^= 0x10
    with pytest.raises(AuthenticationError):
        bob.decrypt("alice.1", bytes(tampered))
    assert store.data == before
    assert bob.decrypt("alice.1", messages[8]) == b"m8"


def test_libsignal_current_state_skdm_and_late_joiner(peer: LibsignalPeer) -> None:
    names = Names()
    their_skdm(peer, names)
    early = their_messages(peer, names, 3, [0, 1, 2])
    again = their_skdm(peer, names)  # create() on an existing key: its current state
    assert again["iteration"] == 3
    record = SenderKeyRecord.from_distribution_message(bytes.fromhex(str(again["skdm"])), profile(peer))
    with pytest.raises(MessageKeyEvicted):
        record.decrypt(early[1])
    later = their_messages(peer, names, 1, [0])[0]
    assert record.decrypt(later) == b"m0"


def test_libsignal_jump_beyond_the_key_window() -> None:
    # 2,101 libsignal encryptions (half a second): against the newest release only.
    peer = LibsignalPeer("0.103.0", script="driver_groups.mjs")
    try:
        peer.ok("init", version="0.103.0")
        names = Names()
        skdm = bytes.fromhex(str(their_skdm(peer, names)["skdm"]))
        messages = their_messages(peer, names, 2101, [0, 99, 100, 2099, 2100])
    finally:
        peer.close()
    record = SenderKeyRecord.from_distribution_message(skdm, LIBSIGNAL_V4)
    assert record.decrypt(messages[2100]) == b"m2100"
    for i in (0, 99):
        with pytest.raises(MessageKeyEvicted):
            record.decrypt(messages[i])
    assert record.decrypt(messages[100]) == b"m100" and record.decrypt(messages[2099]) == b"m2099"


# --- signalish sends, libsignal reads ----------------------------------------------------------


def test_signalish_skdm_and_messages_read_by_libsignal(peer: LibsignalPeer) -> None:
    names = Names()
    alice = GroupCipher(DictStore(), profile(peer), rng=DeterministicRandom(names.sender.encode()))
    skdm = alice.distribution_message("alice.1", names.dist)
    parsed = peer.ok("parse_skdm", skdm=skdm.hex())["result"]
    ours = SenderKeyDistributionMessage.parse(skdm, profile(peer))
    assert (parsed["distribution_id"], parsed["chain_id"], parsed["iteration"], parsed["chain_key"]) \
        == (str(names.dist), ours.chain_id, 0, ours.chain_key.hex())
    assert parsed["skdm"] == skdm.hex()
    deliver(peer, names, skdm)
    messages = [alice.encrypt("alice.1", names.dist, b"s%d" % i) for i in range(12)]
    view = peer.ok("parse_skm", body=messages[3].hex())["result"]
    assert (view["distribution_id"], view["chain_id"], view["iteration"]) == (str(names.dist), ours.chain_id, 3)
    verified = peer.ok("verify_skm", body=messages[3].hex(), signing_key="05" + ours.signing_key.hex())
    assert verified["result"]["valid"] is True
    order = [0, 2, 1, 7, 3, 11, 4]
    results = libsignal_decrypts(peer, names, [messages[i] for i in order] + [messages[7]])
    assert [bytes.fromhex(r["plaintext"]) for r in results[:-1]] == [b"s%d" % i for i in order]
    assert not results[-1]["ok_op"] and results[-1]["code"] == "1"  # DuplicatedMessage
    tampered = bytearray(messages[5])
    tampered[-10] ^= 1
    refused = libsignal_decrypts(peer, names, [bytes(tampered), messages[5]])
    assert not refused[0]["ok_op"] and "signature" in refused[0]["error"]
    assert bytes.fromhex(refused[1]["plaintext"]) == b"s5"


@pytest.mark.parametrize("start", [0, 1])
def test_forward_jump_limit_agrees_with_libsignal(peer: LibsignalPeer, start: int) -> None:
    names = Names()
    own = SenderKeyRecord.create(names.dist, profile(peer), DeterministicRandom(b"jump"))
    deliver(peer, names, own.distribution_message())
    ours = SenderKeyRecord.from_distribution_message(own.distribution_message(), profile(peer))
    if start:
        first = own.encrypt(b"first")
        assert libsignal_decrypts(peer, names, [first])[0]["ok_op"]
        assert ours.decrypt(first) == b"first"
    advance(own, 25_000)
    at_limit, beyond = own.encrypt(b"at"), own.encrypt(b"beyond")
    # Jumping from the next iteration (start): at_limit is exactly 25,000 on, beyond 25,001.
    results = peer.ok("decrypt_each", party=names.receiver, sender="alice",
                      messages=[beyond.hex(), at_limit.hex()], keep_state=False)["results"]
    assert not results[0]["ok_op"] and "too far into the future" in results[0]["error"]
    assert bytes.fromhex(results[1]["plaintext"]) == b"at"
    with pytest.raises(TooFarAhead):
        ours.decrypt(beyond)
    assert ours.decrypt(at_limit) == b"at"


def test_key_window_agrees_with_libsignal(peer: LibsignalPeer) -> None:
    names = Names()
    own = SenderKeyRecord.create(names.dist, profile(peer), DeterministicRandom(b"window"))
    skdm = own.distribution_message()
    deliver(peer, names, skdm)
    ours = SenderKeyRecord.from_distribution_message(skdm, profile(peer))
    sent: dict[int, bytes] = {}
    for i in (0, 998, 999, 1500, 1501, 2999, 3000):
        advance(own, i - own.states[0].iteration)
        sent[i] = own.encrypt(b"%d" % i)
    for i in (1500, 3000):
        assert libsignal_decrypts(peer, names, [sent[i]])[0]["ok_op"]
        assert ours.decrypt(sent[i]) == b"%d" % i
    info = peer.ok("record_info", party=names.receiver, sender="alice", distribution_id=str(names.dist))
    assert info["states"][0]["message_keys"] == list(ours.states[0].message_keys)
    results = libsignal_decrypts(peer, names, [sent[i] for i in (0, 998, 999, 1500, 1501, 2999)])
    assert [r["ok_op"] for r in results] == [False, False, True, False, True, True]
    assert {r["code"] for r in results if not r["ok_op"]} == {"1"}


# --- rotation and states, both ways -------------------------------------------------------------


def test_rotation_both_ways(peer: LibsignalPeer) -> None:
    names = Names()
    # libsignal's sender rotates (a fresh store, as apps do when a member leaves).
    bob = GroupCipher(DictStore(), profile(peer))
    leaver = GroupCipher(DictStore(), profile(peer))
    first = bytes.fromhex(str(their_skdm(peer, names)["skdm"]))
    bob.process("alice.1", first)
    leaver.process("alice.1", first)
    old = their_messages(peer, names, 2, [0, 1])
    peer.ok("forget", party=names.sender)
    second = bytes.fromhex(str(their_skdm(peer, names)["skdm"]))
    assert second != first
    bob.process("alice.1", second)
    new = their_messages(peer, names, 1, [0])[0]
    assert bob.decrypt("alice.1", new) == b"m0" and bob.decrypt("alice.1", old[1]) == b"m1"
    with pytest.raises(NoSession):
        leaver.decrypt("alice.1", new)
    # signalish's sender rotates; libsignal's receiver keeps both states.
    alice = GroupCipher(DictStore(), profile(peer), rng=DeterministicRandom(b"rotate"))
    deliver(peer, names, alice.distribution_message("carol.1", names.dist))
    before = alice.encrypt("carol.1", names.dist, b"before")
    rotated = alice.rotate("carol.1", names.dist)
    after = alice.encrypt("carol.1", names.dist, b"after")
    stale = peer.ok("decrypt_each", party=names.receiver, sender="alice", messages=[after.hex()],
                    keep_state=False)["results"][0]
    assert not stale["ok_op"] and "missing sender key state" in stale["error"]
    deliver(peer, names, rotated)
    results = libsignal_decrypts(peer, names, [after, before])
    assert [bytes.fromhex(r["plaintext"]) for r in results] == [b"after", b"before"]


def test_state_order_agrees_with_libsignal(peer: LibsignalPeer) -> None:
    names = Names()
    senders = [SenderKeyRecord.create(names.dist, profile(peer), DeterministicRandom(b"o%d" % i))
               for i in range(6)]
    skdms = [s.distribution_message() for s in senders]
    # Same chain id as sender 1, another signing key (libsignal's _new builds it).
    impostor = SenderKeyRecord.create(names.dist, profile(peer), DeterministicRandom(b"imp"))
    forged = peer.ok("skdm_new", message_version=3, distribution_id=str(names.dist),
                     chain_id=senders[1].states[0].chain_id, iteration=0,
                     chain_key=impostor.states[0].chain_key.hex(),
                     signing_key="05" + impostor.states[0].signing_key.hex())["skdm"]
    sequence = [skdms[0], skdms[1], skdms[2], skdms[0], skdms[3], skdms[4],
                bytes.fromhex(forged), skdms[5], skdms[2]]
    ours = SenderKeyRecord.from_distribution_message(sequence[0], profile(peer))
    deliver(peer, names, sequence[0])
    for skdm in sequence[1:]:
        ours.process(skdm)
        deliver(peer, names, skdm)
        info = peer.ok("record_info", party=names.receiver, sender="alice",
                       distribution_id=str(names.dist))["states"]
        assert [s["chain_id"] for s in info] == [s.chain_id for s in ours.states]
        assert [s["iteration"] for s in info] == [s.iteration for s in ours.states]
    for own in senders:
        message = own.encrypt(b"hello")
        theirs = libsignal_decrypts(peer, names, [message])[0]
        try:
            mine = ours.decrypt(message) == b"hello"
        except (NoSession, AuthenticationError):
            mine = False
        assert theirs["ok_op"] is mine
