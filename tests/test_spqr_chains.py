"""signalish._spqr_chains: SPQR's per-epoch chains and skipped keys.

1. Replay against libsignal-client 0.103.0: tests/fixtures/spqr_chains.json
   holds, for both parties of one conversation (messages 0..249: three epoch
   secrets folded in, two first sends in a new epoch each), every send,
   receive and epoch step, and the chain state libsignal's SessionRecord held
   after each.  The same calls on SpqrChains must give the same wire index,
   root key, chain keys, counters and set of kept epochs, after every message.
2. The receiving window: out of order, duplicates, the jump limit, eviction,
   pruned and future epochs; a refused key changes no byte of the state;
   Hypothesis over delivery orders.
3. Serialization: round trips, and every malformed input refused.

The state is read back through its documented byte layout, parsed here
independently (:func:`parse`), so the layout is tested too.
"""

from __future__ import annotations

import copy
import json
import struct
from pathlib import Path
from typing import Any, Final, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signalish._errors import (
    ChainExhausted,
    DecodeError,
    DuplicateMessage,
    InvalidArgument,
    InvalidEncoding,
    InvalidLength,
    MessageKeyEvicted,
    MessageKeyExpired,
    MessageRejected,
    TooFarAhead,
    TrailingBytes,
    TruncatedInput,
)
from signalish._spqr_chains import SpqrChains, SpqrLimits
from signalish._spqr_kdf import MAX_INDEX, add_epoch, chain_step, spqr_init

FIXTURES: Final = Path(__file__).resolve().parent / "fixtures"
CHAINS: Final[dict[str, Any]] = json.loads((FIXTURES / "spqr_chains.json").read_text())
SEED: Final = bytes.fromhex(json.loads((FIXTURES / "spqr_keys.json").read_text())["seed"]["value"])
SECRETS: Final = {v["epoch"]: bytes.fromhex(v["secret"])
                  for v in CHAINS["epoch_secrets"]["values"]}


# --- the documented layout, read independently ----------------------------------------


class Entry(NamedTuple):
    epoch: int
    send: tuple[int, bytes] | None
    recv: tuple[int, bytes]
    floor: int
    skipped: dict[int, bytes]


class State(NamedTuple):
    initiator: bool
    root: bytes
    newest: int
    send_epoch: int
    entries: list[Entry]


def parse(data: bytes) -> State:
    """The layout of the module docstring, without its consistency checks."""
    direction, root, newest, send_epoch = struct.unpack_from(">B32sQQ", data, 0)
    pos = 49
    entries = []
    for _ in range(newest - max(0, send_epoch - 1) + 1):
        epoch, flag = struct.unpack_from(">QB", data, pos)
        pos += 9
        send = None
        if flag:
            send = struct.unpack_from(">I32s", data, pos)
            pos += 36
        recv = struct.unpack_from(">I32s", data, pos)
        floor, count = struct.unpack_from(">II", data, pos + 36)
        pos += 44
        skipped = {}
        for _ in range(count):
            n, key = struct.unpack_from(">I32s", data, pos)
            skipped[n] = key
            pos += 36
        entries.append(Entry(epoch, send, recv, floor, skipped))
    assert pos == len(data)
    return State(direction == 0, root, newest, send_epoch, entries)


def entry(chains: SpqrChains, epoch: int) -> Entry:
    return next(e for e in parse(chains.to_bytes()).entries if e.epoch == epoch)


# --- 1. replay against libsignal's records -----------------------------------------


def _apply(state: dict[str, Any], change: dict[str, Any]) -> None:
    """A fixture difference (make_spqr_chains.py's apply)."""
    for key, value in copy.deepcopy(change).items():
        if "." in key:
            epoch, half = key.split(".")
            next(e for e in state["entries"] if e["epoch"] == int(epoch))[half] = value
        else:
            state[key] = value


def _as_libsignal(chains: SpqrChains) -> dict[str, Any]:
    """Our state in the fixture's shape.  libsignal keeps a deleted sending
    chain's counter and we do not, so a deleted one is [None, None] here and
    its counter is set aside on their side."""
    state = parse(chains.to_bytes())
    return {
        "direction": "A2B" if state.initiator else "B2A",
        "newest": state.newest, "send_epoch": state.send_epoch, "root": state.root.hex(),
        "entries": [{"epoch": e.epoch,
                     "send": [e.send[0], e.send[1].hex()] if e.send else [None, None],
                     "recv": [e.recv[0], e.recv[1].hex()],
                     "skipped": len(e.skipped)} for e in state.entries],
    }


def _theirs(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "entries": [
        {**e, "send": e["send"] if e["send"][1] else [None, None], "skipped": 0}
        for e in state["entries"]]}


def _replay(party: str) -> list[tuple[int, bytes]]:
    events = CHAINS["events"][party]
    chains = SpqrChains.initial(SEED, events["initiator"])
    libsignal: dict[str, Any] = {}
    keys = []
    for i, op, wire_epoch, index, added, change in events["events"]:
        if added is not None and op == "send":  # the CT side folds in at Encaps1, a send
            chains.add_epoch(added, SECRETS[added])
        if op == "send":
            n, key = chains.send_key(wire_epoch - 1)
            assert n == index, f"message {i}: index"
        else:
            trial = chains.copy()
            key = trial.receive_key(wire_epoch - 1, index)
            chains = trial
        if added is not None and op == "recv":  # the EK side folds in at decapsulation
            chains.add_epoch(added, SECRETS[added])
        _apply(libsignal, change)
        assert _as_libsignal(chains) == _theirs(libsignal), f"{party} after message {i}"
        keys.append((i, key))
    return keys


@pytest.mark.parametrize("party", ["A", "B"])
def test_replay_matches_libsignal_records(party: str) -> None:
    _replay(party)


def test_both_replays_agree_on_every_message_key() -> None:
    """The sender's key for each message is the receiver's."""
    assert _replay("A") == _replay("B")


@pytest.mark.parametrize("party", ["A", "B"])
def test_the_fixture_covers_epochs_and_pruning(party: str) -> None:
    """At least two KEM epochs folded in, and at least two first sends in a
    newer epoch, one of which dropped a whole epoch."""
    events = CHAINS["events"][party]["events"]
    assert sum(e[4] is not None for e in events) >= 2
    shapes = [[x["epoch"] for x in e[5]["entries"]] for e in events if "entries" in e[5]]
    assert any(len(b) < len(a) for a, b in zip(shapes, shapes[1:]))
    assert len({e[2] for e in events if e[1] == "send"}) >= 3


# --- 2. sending, epochs, pruning -----------------------------------------------------


def pair(limits: SpqrLimits = SpqrLimits()) -> tuple[SpqrChains, SpqrChains]:
    return SpqrChains.initial(SEED, True, limits), SpqrChains.initial(SEED, False, limits)


def test_initial_chains_come_from_spqr_init() -> None:
    keys = spqr_init(SEED)
    alice, bob = pair()
    a, b = parse(alice.to_bytes()), parse(bob.to_bytes())
    assert a.root == b.root == keys.root
    assert a.entries == [Entry(0, (0, keys.a2b), (0, keys.b2a), 1, {})]
    assert b.entries == [Entry(0, (0, keys.b2a), (0, keys.a2b), 1, {})]
    assert (a.initiator, b.initiator) == (True, False)


def test_sending_counts_from_one_with_chain_step() -> None:
    alice, _ = pair()
    ck = spqr_init(SEED).a2b
    for n in range(1, 5):
        ck, mk = chain_step(ck, n)
        assert alice.send_key(0) == (n, mk)
    assert entry(alice, 0).send == (4, ck)


def test_add_epoch_uses_kdf_scka_rk_by_direction() -> None:
    alice, bob = pair()
    keys = add_epoch(spqr_init(SEED).root, b"\x07" * 32)
    alice.add_epoch(1, b"\x07" * 32)
    bob.add_epoch(1, b"\x07" * 32)
    assert parse(alice.to_bytes()).root == keys.root
    assert entry(alice, 1) == Entry(1, (0, keys.a2b), (0, keys.b2a), 1, {})
    assert entry(bob, 1) == Entry(1, (0, keys.b2a), (0, keys.a2b), 1, {})
    assert alice.epochs == (0, 1) and alice.newest_epoch == 1 and alice.send_epoch == 0


@pytest.mark.parametrize("epoch", [0, 1, 3, -1, 2**64, True])
def test_add_epoch_must_be_the_next(epoch: int) -> None:
    alice, _ = pair()
    alice.add_epoch(1, bytes(32))
    before = alice.to_bytes()
    with pytest.raises(InvalidArgument):
        alice.add_epoch(epoch, bytes(32))
    assert alice.to_bytes() == before


@pytest.mark.parametrize("secret", [b"", bytes(31), bytes(33)])
def test_add_epoch_needs_a_32_byte_secret(secret: bytes) -> None:
    alice, _ = pair()
    with pytest.raises(InvalidArgument):
        alice.add_epoch(1, secret)
    assert alice.epochs == (0,)


def _three_epochs() -> SpqrChains:
    """Alice after sending in epoch 0, with epochs 1 and 2 added."""
    alice, _ = pair()
    alice.send_key(0)
    alice.add_epoch(1, b"\x01" * 32)
    alice.add_epoch(2, b"\x02" * 32)
    return alice


def test_the_first_send_in_a_newer_epoch_prunes() -> None:
    """As libsignal's records show: the older send chain goes, its receive
    chain stays, and epochs older than send epoch - 1 are dropped."""
    alice = _three_epochs()
    assert alice.epochs == (0, 1, 2)
    alice.send_key(1)
    assert alice.epochs == (0, 1, 2) and alice.send_epoch == 1
    assert entry(alice, 0).send is None and entry(alice, 0).recv[1]
    alice.send_key(1)
    alice.send_key(2)
    assert list(alice.epochs) == [1, 2] and alice.send_epoch == 2
    assert entry(alice, 1).send is None and entry(alice, 2).send is not None


def test_a_jump_of_two_epochs_prunes_the_same_way() -> None:
    alice = _three_epochs()
    alice.send_key(2)
    assert alice.epochs == (1, 2)
    assert entry(alice, 1).send is None


@pytest.mark.parametrize("epoch", [0, 1, 3, 2**64 - 1])
def test_no_send_without_a_sending_chain(epoch: int) -> None:
    """Deleted (1), dropped (0) or not added yet (3)."""
    alice = _three_epochs()
    alice.send_key(1)
    alice.send_key(2)
    before = alice.to_bytes()
    with pytest.raises(InvalidArgument):
        alice.send_key(epoch)
    assert alice.to_bytes() == before


@pytest.mark.parametrize("epoch", [-1, 2**64, True, "0"])
def test_send_epoch_must_be_u64(epoch: object) -> None:
    alice, _ = pair()
    with pytest.raises(InvalidArgument):
        alice.send_key(epoch)  # type: ignore[arg-type]


def _with_send_count(n: int) -> SpqrChains:
    """Alice whose epoch 0 sending chain has counted n, via the layout."""
    alice, _ = pair()
    data = bytearray(alice.to_bytes())
    struct.pack_into(">I", data, 49 + 9, n)
    return SpqrChains.from_bytes(bytes(data))


def test_the_sending_chain_ends_at_u32_max() -> None:
    alice = _with_send_count(MAX_INDEX - 1)
    assert alice.send_key(0)[0] == MAX_INDEX
    before = alice.to_bytes()
    with pytest.raises(ChainExhausted):
        alice.send_key(0)
    assert alice.to_bytes() == before


# --- 2. receiving ------------------------------------------------------------------


def sent(sender: SpqrChains, epoch: int, count: int) -> list[bytes]:
    """The keys of ``count`` messages sent in ``epoch``, in order (index i+1)."""
    out: list[bytes] = []
    for _ in range(count):
        n, key = sender.send_key(epoch)
        assert n == len(out) + 1
        out.append(key)
    return out


def refused(chains: SpqrChains, epoch: int, n: int, error: type[Exception]) -> None:
    before = chains.to_bytes()
    with pytest.raises(error):
        chains.receive_key(epoch, n)
    assert chains.to_bytes() == before


def test_in_order_receiving_stores_nothing() -> None:
    alice, bob = pair()
    keys = sent(alice, 0, 5)
    assert [bob.receive_key(0, n) for n in range(1, 6)] == keys
    assert bob.stored_keys == 0 and entry(bob, 0).recv[0] == 5


def test_out_of_order_and_duplicates() -> None:
    alice, bob = pair()
    keys = sent(alice, 0, 6)
    for n in (5, 2, 6, 1, 3, 4):
        assert bob.receive_key(0, n) == keys[n - 1]
    assert bob.stored_keys == 0
    for n in range(1, 7):
        refused(bob, 0, n, DuplicateMessage)


def test_skipped_keys_are_stored_then_taken() -> None:
    alice, bob = pair()
    keys = sent(alice, 0, 4)
    assert bob.receive_key(0, 4) == keys[3]
    assert entry(bob, 0).skipped == {1: keys[0], 2: keys[1], 3: keys[2]}
    assert bob.receive_key(0, 2) == keys[1]
    assert entry(bob, 0).skipped == {1: keys[0], 3: keys[2]}
    refused(bob, 0, 2, DuplicateMessage)


@pytest.mark.parametrize("n", [0, -1, 2**32, True, None])
def test_receive_index_must_be_1_to_u32_max(n: object) -> None:
    _, bob = pair()
    refused(bob, 0, n, InvalidArgument)  # type: ignore[arg-type]


def test_the_jump_limit_at_the_default() -> None:
    """25,000 ahead of the chain is accepted, 25,001 refused."""
    _, bob = pair()
    refused(bob, 0, 25_001, TooFarAhead)
    ck = spqr_init(SEED).a2b
    for n in range(1, 25_000):
        ck, _ = chain_step(ck, n)
    assert bob.receive_key(0, 25_000) == chain_step(ck, 25_000).message_key
    assert bob.stored_keys == 2_000
    refused(bob, 0, 50_001, TooFarAhead)
    refused(bob, 0, 22_999, MessageKeyEvicted)  # fell below the 2,000 stored
    assert min(entry(bob, 0).skipped) == 23_000


def test_the_jump_is_counted_from_the_chain() -> None:
    alice, bob = pair(SpqrLimits(max_jump=3))
    keys = sent(alice, 0, 7)
    refused(bob, 0, 4, TooFarAhead)
    assert bob.receive_key(0, 3) == keys[2]
    assert bob.receive_key(0, 6) == keys[5]
    refused(bob, 0, 10, TooFarAhead)
    assert bob.receive_key(0, 1) == keys[0]  # stored keys are no jump


def test_eviction_at_2000_keys() -> None:
    alice, bob = pair()
    keys = sent(alice, 0, 2_003)
    assert bob.receive_key(0, 2_001) == keys[2_000]
    assert bob.stored_keys == 2_000 and entry(bob, 0).floor == 1  # at the limit
    assert bob.receive_key(0, 2_003) == keys[2_002]  # 2,001 stored: key 1 goes
    assert bob.stored_keys == 2_000 and entry(bob, 0).floor == 2
    refused(bob, 0, 1, MessageKeyEvicted)
    assert bob.receive_key(0, 2) == keys[1]
    refused(bob, 0, 2, DuplicateMessage)
    assert bob.receive_key(0, 2_002) == keys[2_001]


def test_eviction_takes_the_lowest_numbers_first() -> None:
    alice, bob = pair(SpqrLimits(max_skipped=3))
    keys = sent(alice, 0, 12)
    bob.receive_key(0, 3)  # stores 1, 2
    bob.receive_key(0, 6)  # stores 4, 5; 1 goes
    assert sorted(entry(bob, 0).skipped) == [2, 4, 5] and entry(bob, 0).floor == 2
    bob.receive_key(0, 12)  # 7..11 are new: everything below 9 goes
    assert entry(bob, 0).skipped == {9: keys[8], 10: keys[9], 11: keys[10]}
    assert entry(bob, 0).floor == 9
    for n in range(1, 9):  # 3 and 6 were delivered, but below the floor that is not known
        refused(bob, 0, n, MessageKeyEvicted)
    refused(bob, 0, 12, DuplicateMessage)


def test_no_stored_keys_at_all() -> None:
    alice, bob = pair(SpqrLimits(max_skipped=0))
    keys = sent(alice, 0, 5)
    assert bob.receive_key(0, 4) == keys[3]
    assert bob.stored_keys == 0
    refused(bob, 0, 2, MessageKeyEvicted)
    refused(bob, 0, 4, DuplicateMessage)
    assert bob.receive_key(0, 5) == keys[4]


def test_pruned_and_future_epochs() -> None:
    """Bob drops epoch 0 at his first send in epoch 2; an epoch never added
    is ahead of him."""
    alice, bob = pair()
    early = sent(alice, 0, 3)
    for chains in (alice, bob):
        chains.add_epoch(1, b"\x01" * 32)
        chains.add_epoch(2, b"\x02" * 32)
    assert bob.receive_key(0, 2) == early[1]
    refused(bob, 3, 1, TooFarAhead)
    bob.send_key(2)
    assert bob.epochs == (1, 2)
    refused(bob, 0, 1, MessageKeyExpired)
    refused(bob, 0, 3, MessageKeyExpired)
    assert bob.receive_key(1, 1) == sent(alice, 1, 1)[0]


def test_every_refusal_is_a_message_rejected() -> None:
    for error in (DuplicateMessage, MessageKeyEvicted, MessageKeyExpired, TooFarAhead):
        assert issubclass(error, MessageRejected)


def test_a_copy_is_independent() -> None:
    alice, bob = pair()
    keys = sent(alice, 0, 3)
    bob.receive_key(0, 3)
    original = bob.to_bytes()
    trial = bob.copy()
    assert trial.receive_key(0, 1) == keys[0]  # a stored key, shared with the original
    trial.add_epoch(1, bytes(32))
    trial.send_key(1)
    assert bob.to_bytes() == original
    assert bob.receive_key(0, 1) == keys[0]  # the trial was dropped: still there
    assert trial.to_bytes() != bob.to_bytes()
    assert SpqrChains.from_bytes(trial.copy().to_bytes()).to_bytes() == trial.to_bytes()


def test_repr_shows_no_key() -> None:
    alice, bob = pair()
    sent(alice, 0, 5)
    bob.receive_key(0, 5)
    bob.add_epoch(1, bytes(32))
    state = parse(bob.to_bytes())
    secrets = [state.root] + [k for e in state.entries
                              for k in (e.recv[1], *(e.send[1:] if e.send else ()),
                                        *e.skipped.values())]
    text = repr(bob)
    assert "B2A" in text and "4 skipped" in text
    for secret in secrets:
        for form in (secret.hex(), repr(secret)[2:18], secret.hex()[:8]):
            assert form not in text


# --- 2. properties: delivery orders ---------------------------------------------------

keys32 = st.binary(min_size=32, max_size=32)


@given(data=st.data(), seed=keys32)
def test_every_key_is_delivered_exactly_once(data: st.DataObject, seed: bytes) -> None:
    """Messages over up to three epochs, delivered in any order with
    repeats, some attempts abandoned as a failed MAC would be; Bob adds each
    epoch at some point.  Every message is received once, with the key
    Alice used; a repeat is a DuplicateMessage; a message of an epoch Bob
    lacks is TooFarAhead and is delivered again later."""
    alice, bob = SpqrChains.initial(seed, True), SpqrChains.initial(seed, False)
    epochs = data.draw(st.integers(1, 3), label="epochs")
    secrets = data.draw(st.lists(keys32, min_size=epochs - 1, max_size=epochs - 1))
    expected: dict[tuple[int, int], bytes] = {}
    for epoch in range(epochs):
        if epoch:
            alice.add_epoch(epoch, secrets[epoch - 1])
        for n, key in enumerate(sent(alice, epoch, data.draw(st.integers(0, 6))), 1):
            expected[(epoch, n)] = key
    queue = data.draw(st.permutations(list(expected))) if expected else []
    if expected:
        queue += data.draw(st.lists(st.sampled_from(list(expected)), max_size=6))
    got: dict[tuple[int, int], bytes] = {}
    returned: set[bytes] = set()
    while queue:
        if bob.newest_epoch < epochs - 1 and data.draw(st.booleans()):
            bob.add_epoch(bob.newest_epoch + 1, secrets[bob.newest_epoch])
        message = queue.pop(0)
        before = bob.to_bytes()
        trial = bob.copy()
        try:
            key = trial.receive_key(*message)
        except TooFarAhead:
            assert message[0] > bob.newest_epoch
            queue.append(message)
        except DuplicateMessage:
            assert message in got
        else:
            assert message not in got and key == expected[message]
            assert key not in returned
            if data.draw(st.booleans(), label="MAC fails"):
                queue.append(message)  # the trial is dropped
            else:
                got[message] = key
                returned.add(key)
                bob = trial
        assert bob.to_bytes() == before or bob is trial
    assert got == expected and bob.stored_keys == 0


@given(data=st.data())
def test_refusals_are_classified_and_states_round_trip(data: st.DataObject) -> None:
    """Small limits, Bob sending too (so he prunes): a key returned is
    always Alice's and new; each refusal has its cause; every state the
    operations reach reloads to the same bytes."""
    limits = SpqrLimits(max_jump=data.draw(st.integers(1, 6)),
                        max_skipped=data.draw(st.integers(0, 4)))
    alice, bob = SpqrChains.initial(SEED, True, limits), SpqrChains.initial(SEED, False, limits)
    expected: dict[tuple[int, int], bytes] = {}
    got: set[tuple[int, int]] = set()
    for _ in range(data.draw(st.integers(1, 40))):
        action = data.draw(st.sampled_from(["alice sends", "bob receives", "bob receives",
                                            "both add", "bob sends"]))
        if action == "alice sends":
            epoch = data.draw(st.integers(alice.send_epoch, alice.newest_epoch))
            n, key = alice.send_key(epoch)
            expected[(epoch, n)] = key
        elif action == "both add" and alice.newest_epoch < 4:
            secret = bytes([alice.newest_epoch]) * 32
            alice.add_epoch(alice.newest_epoch + 1, secret)
            bob.add_epoch(bob.newest_epoch + 1, secret)
        elif action == "bob sends":
            bob.send_key(data.draw(st.integers(bob.send_epoch, bob.newest_epoch)))
        elif action == "bob receives" and expected:
            epoch, n = message = data.draw(st.sampled_from(sorted(expected)))
            before = bob.to_bytes()
            try:
                key = bob.receive_key(epoch, n)
            except MessageRejected as error:
                assert bob.to_bytes() == before
                if isinstance(error, MessageKeyExpired):
                    assert epoch < bob.epochs[0]
                elif isinstance(error, DuplicateMessage):
                    assert message in got
                elif isinstance(error, MessageKeyEvicted):
                    assert n < entry(bob, epoch).floor
                else:
                    assert isinstance(error, TooFarAhead)
                    assert n - entry(bob, epoch).recv[0] > limits.max_jump
            else:
                assert key == expected[message] and message not in got
                got.add(message)
        for chains in (alice, bob):
            data_bytes = chains.to_bytes()
            assert SpqrChains.from_bytes(data_bytes, limits).to_bytes() == data_bytes
            assert bob.stored_keys <= limits.max_skipped * len(bob.epochs)


# --- 3. serialization ------------------------------------------------------------------


def rich() -> SpqrChains:
    """A state with every kind of field: a deleted send chain, three epochs,
    skipped keys, a raised floor."""
    alice, bob = pair(SpqrLimits(max_skipped=3))
    sent(alice, 0, 6)
    bob.receive_key(0, 6)  # 1..5 skipped, 1 and 2 evicted
    for chains in (alice, bob):
        chains.add_epoch(1, b"\x01" * 32)
        chains.add_epoch(2, b"\x02" * 32)
    sent(alice, 1, 3)
    bob.receive_key(1, 3)
    bob.send_key(0)
    bob.send_key(1)
    return bob


RICH: Final = rich()
RICH_BYTES: Final = RICH.to_bytes()
RICH_LIMITS: Final = SpqrLimits(max_skipped=3)


def test_the_rich_state_is_rich() -> None:
    state = parse(RICH_BYTES)
    assert RICH_BYTES[E2_FLOOR - 77:E2_FLOOR - 72] == bytes([0, 0, 0, 2, 1])  # epoch 2, send flag
    assert RICH_BYTES[E2_FLOOR:E2_FLOOR + 8] == bytes([0, 0, 0, 1, 0, 0, 0, 0])
    assert [e.epoch for e in state.entries] == [0, 1, 2] and state.send_epoch == 1
    assert state.entries[0].send is None and state.entries[0].floor == 3
    assert sorted(state.entries[0].skipped) == [3, 4, 5]
    assert sorted(state.entries[1].skipped) == [1, 2]


def test_round_trip() -> None:
    again = SpqrChains.from_bytes(RICH_BYTES, RICH_LIMITS)
    assert again.to_bytes() == RICH_BYTES
    assert repr(again) == repr(RICH)
    a, b = RICH.copy(), again
    assert a.send_key(1) == b.send_key(1)
    assert a.receive_key(0, 4) == b.receive_key(0, 4)
    assert a.receive_key(1, 9) == b.receive_key(1, 9)
    for chains in (SpqrChains.initial(SEED, True), SpqrChains.initial(SEED, False)):
        assert SpqrChains.from_bytes(chains.to_bytes()).to_bytes() == chains.to_bytes()


def test_from_bytes_accepts_bytearray_and_memoryview() -> None:
    for form in (bytearray(RICH_BYTES), memoryview(RICH_BYTES)):
        assert SpqrChains.from_bytes(form, RICH_LIMITS).to_bytes() == RICH_BYTES  # type: ignore[arg-type]


def test_every_truncation_is_refused() -> None:
    for end in range(len(RICH_BYTES)):
        with pytest.raises(TruncatedInput):
            SpqrChains.from_bytes(RICH_BYTES[:end], RICH_LIMITS)


@pytest.mark.parametrize("extra", [b"\x00", b"\x01" * 45, RICH_BYTES[-36:]])
def test_trailing_bytes_are_refused(extra: bytes) -> None:
    with pytest.raises(TrailingBytes):
        SpqrChains.from_bytes(RICH_BYTES + extra, RICH_LIMITS)


def _patch(fmt: str, offset: int, *values: object) -> bytes:
    data = bytearray(RICH_BYTES)
    struct.pack_into(fmt, data, offset, *values)
    return bytes(data)


# Offsets in RICH_BYTES: header 49; epoch 0 (no send chain) at 49: epoch 8, flag 1,
# recv n 4 + key 32, floor 4, count 4, keys 3 x 36; epoch 1 at 210; epoch 2 further.
E0: Final = 49
E0_FLOOR: Final = E0 + 9 + 36
E0_KEYS: Final = E0_FLOOR + 8
E1: Final = E0_KEYS + 3 * 36
E1_SEND: Final = E1 + 9
E2: Final = E1 + 9 + 36 + 36 + 8 + 2 * 36
E2_FLOOR: Final = E2 + 9 + 36 + 36

HOSTILE: Final[list[tuple[str, bytes, type[DecodeError]]]] = [
    ("direction 2", _patch(">B", 0, 2), InvalidEncoding),
    ("direction 0xff", _patch(">B", 0, 255), InvalidEncoding),
    ("send epoch past newest", _patch(">Q", 41, 3), InvalidEncoding),
    ("newest epoch 3 (an epoch short)", _patch(">Q", 33, 3), TruncatedInput),
    ("newest epoch 2**64-1", _patch(">Q", 33, 2**64 - 1), TruncatedInput),
    ("send epoch 2 (epoch 0 not dropped)", _patch(">Q", 41, 2), InvalidEncoding),
    ("send epoch 0 (epoch 0 lacks its send chain)", _patch(">Q", 41, 0), InvalidEncoding),
    ("first epoch 1", _patch(">Q", E0, 1), InvalidEncoding),
    ("second epoch repeated", _patch(">Q", E1, 0), InvalidEncoding),
    ("epochs out of order", _patch(">Q", E2, 1), InvalidEncoding),
    ("send flag 2", _patch(">B", E0 + 8, 2), InvalidEncoding),
    ("send flag on a deleted chain", _patch(">B", E0 + 8, 1), InvalidEncoding),
    ("no send flag in the send epoch", _patch(">B", E1 + 8, 0), InvalidEncoding),
    ("send count 0 in the send epoch", _patch(">I", E1_SEND, 0), InvalidEncoding),
    ("floor 0", _patch(">I", E0_FLOOR, 0), InvalidEncoding),
    ("floor past the received count", _patch(">I", E0_FLOOR, 7), InvalidEncoding),
    ("floor above a stored key", _patch(">I", E0_FLOOR, 4), InvalidEncoding),
    ("floor 2 on an unused chain", _patch(">I", E2_FLOOR, 2), InvalidEncoding),
    ("more keys than the limit", _patch(">I", E0_FLOOR + 4, 4), InvalidLength),
    ("key count 2**32-1", _patch(">I", E0_FLOOR + 4, 2**32 - 1), InvalidLength),
    ("fewer keys than present", _patch(">I", E0_FLOOR + 4, 2), InvalidEncoding),
    ("keys repeated", _patch(">I", E0_KEYS + 36, 3), InvalidEncoding),
    ("keys unsorted", _patch(">I", E0_KEYS, 5) [:E0_KEYS + 72] + _patch(">I", E0_KEYS + 72, 3)
     [E0_KEYS + 72:], InvalidEncoding),
    ("key number 0", _patch(">I", E0_KEYS, 0), InvalidEncoding),
    ("key number = received count", _patch(">I", E0_KEYS + 72, 6), InvalidEncoding),
    ("key number past the received count", _patch(">I", E0_KEYS + 72, 99), InvalidEncoding),
]


@pytest.mark.parametrize(("data", "error"), [h[1:] for h in HOSTILE],
                         ids=[h[0] for h in HOSTILE])
def test_hostile_states_are_refused(data: bytes, error: type[DecodeError]) -> None:
    with pytest.raises(error):
        SpqrChains.from_bytes(data, RICH_LIMITS)


def test_a_future_epoch_must_not_have_sent() -> None:
    alice, _ = pair()
    alice.add_epoch(1, bytes(32))
    data = bytearray(alice.to_bytes())
    entry1 = 49 + 9 + 36 + 36 + 8
    assert data[entry1:entry1 + 9] == b"\x00" * 7 + b"\x01\x01"
    SpqrChains.from_bytes(bytes(data))
    struct.pack_into(">I", data, entry1 + 9, 1)
    with pytest.raises(InvalidEncoding):
        SpqrChains.from_bytes(bytes(data))


def test_the_limits_are_those_of_the_reader() -> None:
    with pytest.raises(InvalidLength):
        SpqrChains.from_bytes(RICH_BYTES, SpqrLimits(max_skipped=2))
    assert SpqrChains.from_bytes(RICH_BYTES).limits == SpqrLimits()


@pytest.mark.parametrize("data", ["", None, 5, [0]])
def test_from_bytes_wants_bytes(data: object) -> None:
    with pytest.raises(InvalidArgument):
        SpqrChains.from_bytes(data)  # type: ignore[arg-type]


@given(position=st.integers(0, len(RICH_BYTES) - 1), value=st.integers(0, 255))
def test_any_accepted_state_is_canonical(position: int, value: int) -> None:
    """A one-byte change is refused, or reads as a state that writes those
    very bytes (a changed key or counter)."""
    data = bytearray(RICH_BYTES)
    data[position] = value
    try:
        chains = SpqrChains.from_bytes(bytes(data), RICH_LIMITS)
    except DecodeError:
        return
    assert chains.to_bytes() == bytes(data)


@given(data=st.binary(max_size=300))
def test_random_bytes_are_refused_or_canonical(data: bytes) -> None:
    try:
        chains = SpqrChains.from_bytes(data)
    except DecodeError:
        return
    assert chains.to_bytes() == data


# --- limits --------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    {"max_jump": 0}, {"max_jump": -1}, {"max_jump": 2**32}, {"max_jump": True},
    {"max_skipped": -1}, {"max_skipped": 2**32}, {"max_skipped": 1.0}, {"max_skipped": False},
])
def test_limits_are_checked(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        SpqrLimits(**kwargs)  # type: ignore[arg-type]


def test_default_limits() -> None:
    assert SpqrLimits() == SpqrLimits(max_jump=25_000, max_skipped=2_000)


@pytest.mark.parametrize(("seed", "initiator", "limits"), [
    (bytes(31), True, SpqrLimits()), (bytes(32), 1, SpqrLimits()), (bytes(32), True, None)])
def test_initial_arguments_are_checked(seed: bytes, initiator: bool, limits: SpqrLimits) -> None:
    with pytest.raises(InvalidArgument):
        SpqrChains.initial(seed, initiator, limits)
