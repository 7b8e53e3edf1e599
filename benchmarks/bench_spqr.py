"""The triple ratchet (SPQR beside the Double Ratchet) against the plain
version 4 ratchet and against its floor: time, bytes on the wire, stored state,
and what a forged message can cost.

Usage: ``python benchmarks/bench_spqr.py [--quick] [--json PATH]``
(``python -m benchmarks`` runs it as well, in both modes).

SPQR runs in ``libsignal_v4`` sessions opened with
``SessionOptions(pq_ratchet=True)``.  Every Signal message carries one SPQR
message (field 5: 4 bytes, or 37 with a 32-byte chunk) and is keyed with one
SPQR chain step on each side.  Once per *epoch* one party generates an
ML-KEM-768 key pair and later decapsulates, and the other encapsulates in two
halves (``signalish._primitives.mlkem_braid``: pure Python, as no library
splits ML-KEM).  An epoch needs messages both ways, so its length in
messages depends on the conversation.

Conversations (after one message each way; 64-byte plaintexts, delivered at
once and in order):

* ``one-way``: only Alice sends.  The Braid never completes an epoch (the EK
  side waits for a reply), so SPQR costs a chain step and a header chunk per
  message and nothing per epoch;
* ``alternating``: each message answers the previous one;
* ``2:1``: Alice, Alice, Bob, repeated (the pattern libsignal's epochs were
  observed with, "A2,B1").

Every row names its layer in brackets:

* ``[SessionManager + MemoryStore]``: the API applications call; every call
  is a store transaction that rewrites the session row, which with SPQR
  carries the SPQR state;
* ``[Session]``: the ratchet and the wire format on objects in memory;
* ``[Spqr]``: SPQR's state alone (``signalish._spqr.Spqr``: the Braid, its
  erasure code and the KDF chains), receiving on a copy as a session does;
  ``[Spqr + encode]`` also encodes both parties' SPQR state after each
  message, as the manager's two saves per message do;
* ``[floor]``: what SPQR's extra work cannot go below (below).

Timing is CPU time of this process.  Each round times one block of every
layer, with SPQR and without, and one block of the floor, in close
succession, and each ratio is the median over rounds of that round's ratio,
so drift in the machine's speed hits both sides of a ratio alike.  A block
is one period of the conversation, two epochs (the roles swap every epoch),
so it holds each per-epoch operation as often as the steady state does; one
period runs untimed first.  One-way blocks are 100 messages.

The floor of SPQR's extra work, per message:

* both sides' chain step (KDF_SCKA_CK: one HKDF-SHA256, three raw HMACs) and
  the field-5 codec (our encoder and parser, on a message with a chunk or
  without in the conversation's proportion);
* per epoch, ML-KEM-768 key generation from a seed and decapsulation with
  the key loaded from its stored seed (``cryptography``), and our split
  encapsulation (encaps1 + encaps2), over the epoch length observed in that
  conversation (a block holds two epochs).  The epoch's few HKDF and HMAC
  calls (KDF_OK, the authenticator, the two MACs, KDF_SCKA_RK: about 22
  HMACs, under 0.3 us a message) are left out, and so is the erasure code
  (parity chunks and decoding; the ``[Spqr]`` rows include it).

Each part is also timed on its own, to show what the floor is made of.
Our split encapsulation is timed against ``cryptography``'s one-shot
ML-KEM-768 encapsulation: the price of doing it in Python.

Bytes: field 5 on the wire is a tag, a length and the SPQR message, 6 or 39
bytes (one more for each varint that reaches 128).  State: the session row
a save writes (with SPQR, the row includes the SPQR state) and the whole
record (``SessionRecord.to_bytes``, what ``export_session`` returns),
sampled after each of the first 300 messages, both parties.

libsignal's figures beside ours were measured on libsignal-client 0.103.0
used as a black box (its messages and ``SessionRecord.serialize()``; no
source read), in this project's SPQR research notes (spqr_observed.md):
message overheads (section 2), epoch lengths (section 3.4), and record sizes
over 4,800 records, both parties, eight delivery patterns, first 300
messages each (section 4).

Forged messages.  A session with SPQR derives a received message's SPQR key
before the MAC can be checked (the MAC key depends on it), so a forged field
5 whose index is far ahead makes the receiver walk up to ``max_skip`` SPQR
chain steps, an HKDF each, before it refuses the message.  A record that
holds several sessions for one peer tries a message with an unknown ratchet
key in each of them, as far as the record's per-message budget reaches:
2 x (max_skip + 1) chain steps for all attempts together, the Double
Ratchet's and SPQR's alike, so such a message walks max_skip SPQR steps in
at most two sessions, however many the record holds.  Both cases are measured
through ``SessionManager`` + ``MemoryStore`` for ``SessionOptions()`` and
``SessionOptions.libsignal()`` (each with ``pq_ratchet``); ``--quick``
builds a 2-session stand-in of the libsignal record's 41 sessions.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cryptography  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519  # noqa: E402

import signalish  # noqa: E402
from signalish import (  # noqa: E402
    LIBSIGNAL_V4,
    DeterministicRandom,
    IdentityKeyPair,
    MemoryStore,
    RatchetLimits,
    SessionManager,
    SessionOptions,
    SignalishError,
)
from signalish._encoding import Writer  # noqa: E402
from signalish._primitives import PrivateKey  # noqa: E402
from signalish._primitives.mlkem_braid import encaps1, encaps2, keygen  # noqa: E402
from signalish._session import Session, SessionRecord  # noqa: E402
from signalish._spqr import Spqr, encode_message, parse_message  # noqa: E402
from signalish._spqr_braid import BraidMessage, MessageType  # noqa: E402
from signalish._spqr_kdf import CHAIN_NEXT_LABEL, chain_step  # noqa: E402
from signalish._storage import record_bytes  # noqa: E402
from signalish._wire_v3 import V3Frame, parse_v3, signal_message_body  # noqa: E402

PAYLOAD = b"x" * 64
LIMIT = 1 << 20
PATTERNS = {"one-way": "A", "alternating": "AB", "2:1": "AAB"}
ONE_WAY_BLOCK = 100
SIZE_SAMPLES = 300  # messages, as libsignal's record sizes were sampled
SURVEY_EPOCHS = 5  # wire epochs a survey runs to (the first two are a transient)
QUICK_LIBSIGNAL_SESSIONS = 2  # --quick stand-in for the 1 + 40 sessions

# libsignal-client 0.103.0, observed as a black box (spqr_observed.md; see the
# module docstring).
#: Section 2: field 5 on the wire, tag + length + 4 or 37 bytes.
LIBSIGNAL_FIELD5 = (6, 39)
#: Section 3.4: messages per epoch.
LIBSIGNAL_EPOCH = {"alternating": "about 87", "2:1": "108 to 125 (period 234)"}
#: Section 4: whole SessionRecord, min / median / max bytes.
LIBSIGNAL_RECORD = (633, 5_317, 7_362)
#: Section 4: its field 15, the SPQR state, min / median / max bytes.
LIBSIGNAL_SPQR_STATE = (275, 4_597, 6_727)


def options(pq: bool) -> SessionOptions:
    return SessionOptions(pq_ratchet=pq, registration_id=1)


def libsignal_options() -> SessionOptions:
    return replace(SessionOptions.libsignal(registration_id=1), pq_ratchet=True)


def pair(pq: bool, seed: bytes = b"") -> tuple[SessionManager, SessionManager]:
    """Alice and Bob (``libsignal_v4``) after one message each way."""
    rng = DeterministicRandom(b"bench-spqr " + seed)
    alice = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), LIBSIGNAL_V4, rng=rng,
                           options=options(pq))
    bob = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), LIBSIGNAL_V4, rng=rng,
                         options=options(pq))
    with bob.prekeys(now=0) as ring:
        ring.generate_one_time_prekeys(1, rng)
        ring.generate_kem_prekeys(1, rng, now=0)
        bundle = ring.issue_bundle()
    alice.initiate("bob", bundle)
    bob.decrypt("alice", alice.encrypt("bob", b"hello"), now=0)
    alice.decrypt("bob", bob.encrypt("alice", b"hi"), now=0)
    return alice, bob


Steps = dict[str, Callable[[], object]]


def manager_steps(pq: bool, seed: bytes = b"") -> Steps:
    alice, bob = pair(pq, seed)
    return {"A": lambda: bob.decrypt("alice", alice.encrypt("bob", PAYLOAD), now=0),
            "B": lambda: alice.decrypt("bob", bob.encrypt("alice", PAYLOAD), now=0)}


def session_steps(pq: bool, seed: bytes = b"") -> Steps:
    ma, mb = pair(pq, seed)
    alice = SessionRecord.from_bytes(record_bytes(ma.store, "bob") or b"").current
    bob = SessionRecord.from_bytes(record_bytes(mb.store, "alice") or b"").current
    assert alice is not None and bob is not None
    rng = DeterministicRandom(b"bench-spqr steps")

    def send(sender: Session, receiver: Session) -> Callable[[], object]:
        def step() -> object:
            frame = parse_v3(sender.encrypt(PAYLOAD, 0, rng), LIMIT, 4)
            assert isinstance(frame, V3Frame)  # both have had a reply: no PreKey message
            return receiver.decrypt(frame, now=0, rng=rng)
        return step

    return {"A": send(alice, bob), "B": send(bob, alice)}


def spqr_steps(encode: bool) -> Steps:
    """Two parties' SPQR state alone, after one message each way."""
    seed, limits = bytes(range(32)), RatchetLimits()
    parties = {"A": Spqr.start(seed, True, limits), "B": Spqr.start(seed, False, limits)}
    rng = DeterministicRandom(b"bench-spqr layer")

    def send(who: str, to: str) -> Callable[[], object]:
        def step() -> None:
            data, _ = parties[who].send(rng)
            copy = parties[to].copy()
            copy.receive(data)
            parties[to] = copy
            if encode:
                for party in (parties[who], copy):
                    w = Writer(0)
                    party.write(w)
                    w.getvalue()
        return step

    steps = {"A": send("A", "B"), "B": send("B", "A")}
    steps["A"]()
    steps["B"]()
    return steps


class Talk:
    """A conversation: ``run(n)`` sends its next ``n`` messages."""

    def __init__(self, pattern: str, steps: Steps) -> None:
        self.pattern, self.steps, self.sent = pattern, steps, 0

    def run(self, count: int) -> None:
        pattern, steps = self.pattern, self.steps
        for i in range(self.sent, self.sent + count):
            steps[pattern[i % len(pattern)]]()
        self.sent += count


# --- The survey: epochs, field 5, state sizes ------------------------------------------


def field5(message: bytes) -> bytes:
    frame = parse_v3(message, LIMIT, 4)
    inner = getattr(frame, "inner", frame)
    assert isinstance(inner, V3Frame) and inner.pq_ratchet is not None
    return inner.pq_ratchet


def spqr_size(session: Session) -> int:
    assert session.spqr is not None
    w = Writer(0)
    session.spqr.write(w)
    return len(w.getvalue()) - 2  # without the Writer's tag and version


def _stats(values: list[int]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "mean": statistics.fmean(values)}


def survey(pattern: str) -> dict[str, Any]:
    """One conversation with SPQR, then the same number of messages without:
    the epoch each message was sent in, its field 5, its size, and the state
    both parties store after each of the first SIZE_SAMPLES messages (the two
    of :func:`pair` count).  With SPQR it runs until Alice sends in wire epoch
    SURVEY_EPOCHS (one-way: SIZE_SAMPLES messages)."""
    out: dict[str, Any] = {}
    count = None
    for pq in (True, False):
        alice, bob = pair(pq, b"survey")
        parties = {"A": (alice, "bob", bob, "alice"), "B": (bob, "alice", alice, "bob")}
        rows: list[int] = []
        heads: list[int] = []
        records: list[int] = []
        spqr: list[int] = []
        sizes: list[int] = []
        fields: list[bytes] = []
        starts: dict[tuple[str, int], int] = {}
        i = 0
        while True:
            who = pattern[i % len(pattern)]
            sender, to, receiver, sender_name = parties[who]
            message = sender.encrypt(to, PAYLOAD)
            receiver.decrypt(sender_name, message, now=0)
            sizes.append(len(message))
            sent = 2 + i  # pair() sent two
            if pq:
                data = field5(message)
                fields.append(data)
                starts.setdefault((who, parse_message(data)[1].epoch), sent)
            if sent < SIZE_SAMPLES:
                for manager, address in ((alice, "bob"), (bob, "alice")):
                    # The record as the manager keeps it after its save (its
                    # cache), and the session row as the store holds it.
                    record = manager._cache[address][0]
                    current = record.current
                    assert current is not None
                    row = manager.store.load_session(address, b"s" + current.base_key)
                    assert row is not None
                    rows.append(len(row))
                    heads.append(len(manager.store.load_session(address) or b""))
                    records.append(len(record.to_bytes()))
                    if pq:
                        spqr.append(spqr_size(current))
            i += 1
            if count is not None:
                if i == count:
                    break
            elif sent + 1 >= SIZE_SAMPLES and (pattern == "A"
                                               or ("A", SURVEY_EPOCHS) in starts):
                count = i
                break
        side: dict[str, Any] = {"row_bytes": _stats(rows), "head_bytes": _stats(heads),
                                "record_bytes": _stats(records),
                                "message_bytes": statistics.fmean(sizes),
                                "messages": len(sizes)}
        if pq:
            overhead = [2 + len(f) for f in fields]  # tag 0x2a, a one-byte length, field 5
            chunk = [parse_message(f)[1].chunk is not None for f in fields]
            with_chunk = [o for o, c in zip(overhead, chunk) if c]
            without = [o for o, c in zip(overhead, chunk) if not c]
            side.update({
                "spqr_bytes": _stats(spqr),
                "field5_mean": statistics.fmean(overhead),
                "chunk_share": len(with_chunk) / len(overhead),
                "with_chunk": (min(with_chunk), max(with_chunk)) if with_chunk else None,
                "without_chunk": (min(without), max(without)) if without else None,
                "epoch_length": _epoch_length(starts, pattern)})
        out["spqr" if pq else "plain"] = side
    return out


def _epoch_length(starts: dict[tuple[str, int], int], pattern: str) -> float | None:
    """Messages per epoch in the steady state: the period (Alice's first
    message of wire epoch e + 2 minus that of e, from e = 2) over two."""
    if pattern == "A":
        return None
    epochs = sorted(e for who, e in starts if who == "A")
    periods = [starts[("A", e + 2)] - starts[("A", e)] for e in epochs
               if e >= 2 and ("A", e + 2) in starts]
    return statistics.fmean(periods) / 2 if periods else None


def block_size(pattern: str, epoch_length: float | None) -> int:
    """One period (two epochs), a whole number of the pattern's turns."""
    if epoch_length is None:
        return ONE_WAY_BLOCK
    period = round(2 * epoch_length)
    return -(-period // len(pattern)) * len(pattern)


# --- Timing -----------------------------------------------------------------------------
#
# Times are CPU time of this process (benchmarks often share the machine,
# and other processes taking the CPU would otherwise inflate whichever
# block they hit).


clock = time.process_time


def per_call(fn: Callable[[], object], *, rounds: int, per: int) -> float:
    """Median CPU microseconds per call over ``rounds`` runs of ``per`` calls."""
    for _ in range(max(3, per // 5)):
        fn()  # warm-up
    samples = []
    for _ in range(rounds):
        start = clock()
        for _ in range(per):
            fn()
        samples.append((clock() - start) / per * 1e6)
    return statistics.median(samples)


def hkdf_chain_step_floor(ck: bytes, n: int) -> bytes:
    """KDF_SCKA_CK on raw HMACs: HKDF-SHA256 (salt 0, 64 bytes)."""
    prk = hmac.digest(bytes(32), ck, "sha256")
    info = n.to_bytes(4, "big") + CHAIN_NEXT_LABEL
    t1 = hmac.digest(prk, info + b"\x01", "sha256")
    return t1 + hmac.digest(prk, t1 + info + b"\x02", "sha256")


class Floor:
    """The calls SPQR's extra work cannot avoid (see the module docstring)."""

    def __init__(self) -> None:
        self.seed = bytes(range(64))
        _, self.header, self.ek_vector = keygen(self.seed)
        self.ek = self.ek_vector + self.header[:32]
        _, self.ciphertext = mlkem.MLKEM768PrivateKey.from_seed_bytes(self.seed) \
            .public_key().encapsulate()
        self.m = b"m" * 32
        self.encaps_state = encaps1(self.header, self.m)[0]
        self.chunked = (42, BraidMessage(3, MessageType.EK, 17, bytes(32)))
        self.bare = (42, BraidMessage(3, MessageType.NONE))
        self.ck = b"c" * 32

    def chain_steps(self) -> object:
        """Both sides' KDF_SCKA_CK."""
        hkdf_chain_step_floor(self.ck, 7)
        return hkdf_chain_step_floor(self.ck, 7)

    def codec(self, chunk: bool) -> object:
        """The sender's field-5 encoding and the receiver's parse."""
        return parse_message(encode_message(*(self.chunked if chunk else self.bare)))

    def keygen(self) -> object:
        public = mlkem.MLKEM768PrivateKey.from_seed_bytes(self.seed).public_key()
        return hashlib.sha3_256(public.public_bytes_raw()).digest()  # the header's H(ek)

    def decaps(self) -> object:
        return mlkem.MLKEM768PrivateKey.from_seed_bytes(self.seed).decapsulate(self.ciphertext)

    def encaps1(self) -> object:
        return encaps1(self.header, self.m)

    def encaps2(self) -> object:
        return encaps2(self.encaps_state, self.header, self.ek_vector)

    def epoch(self) -> None:
        self.keygen()
        self.decaps()
        self.encaps1()
        self.encaps2()

    def block(self, messages: int, chunked: int, epochs: int) -> None:
        """A block's floor: ``messages`` messages, ``chunked`` of them with
        a chunk, and ``epochs`` epochs."""
        for i in range(messages):
            self.chain_steps()
            self.codec(i < chunked)
        for _ in range(epochs):
            self.epoch()

    def cryptography_encaps(self) -> object:
        return mlkem.MLKEM768PublicKey.from_public_bytes(self.ek).encapsulate()

    def ours_encaps(self) -> object:
        state, _, _ = encaps1(self.header, self.m)
        return encaps2(state, self.header, self.ek_vector)


def floor_parts(floor: Floor, rounds: int, per: int) -> dict[str, float]:
    """Each part of the floor, CPU us per call, and our encapsulation against
    ``cryptography``'s."""
    slow = max(per // 100, 5)
    return {
        "chain_step_floor": per_call(lambda: hkdf_chain_step_floor(floor.ck, 7), rounds=rounds,
                                     per=per),
        "chain_step_ours": per_call(lambda: chain_step(floor.ck, 7), rounds=rounds, per=per),
        "codec_chunk": per_call(lambda: floor.codec(True), rounds=rounds, per=per),
        "codec_bare": per_call(lambda: floor.codec(False), rounds=rounds, per=per),
        "keygen": per_call(floor.keygen, rounds=rounds, per=slow),
        "decaps": per_call(floor.decaps, rounds=rounds, per=slow),
        "encaps1": per_call(floor.encaps1, rounds=rounds, per=slow),
        "encaps2": per_call(floor.encaps2, rounds=rounds, per=slow),
        "encaps_ours": per_call(floor.ours_encaps, rounds=rounds, per=slow),
        "encaps_cryptography": per_call(floor.cryptography_encaps, rounds=rounds, per=slow),
    }


def conversation(name: str, pattern: str, floor: Floor, info: dict[str, Any],
                 rounds: int) -> dict[str, Any]:
    """Every layer's cost per message in one conversation, with and without
    SPQR, and the floor: one block each per round, in close succession, so
    that each round's ratios compare work done under the same conditions."""
    length = info["epoch_length"]
    block = block_size(pattern, length)
    epochs = 0 if length is None else 2
    chunked = round(info["chunk_share"] * block)
    seed = name.encode()
    talks: dict[str, Talk] = {
        "manager": Talk(pattern, manager_steps(True, seed)),
        "manager_plain": Talk(pattern, manager_steps(False, seed)),
        "session": Talk(pattern, session_steps(True, seed)),
        "session_plain": Talk(pattern, session_steps(False, seed)),
        "spqr": Talk(pattern, spqr_steps(False)),
        "spqr_encode": Talk(pattern, spqr_steps(True))}
    for talk in talks.values():
        talk.run(block)  # one period untimed: the steady state from here
    samples: dict[str, list[float]] = {key: [] for key in [*talks, "floor"]}
    for _ in range(rounds):
        for key, talk in talks.items():
            start = clock()
            talk.run(block)
            samples[key].append((clock() - start) / block * 1e6)
        start = clock()
        floor.block(block, chunked, epochs)
        samples["floor"].append((clock() - start) / block * 1e6)
    floors = samples["floor"]
    row: dict[str, Any] = {"conversation": name, "block": block, "epoch_length": length,
                           "floor_us": statistics.median(floors)}
    for layer in ("manager", "session"):
        ours, base = samples[layer], samples[layer + "_plain"]
        row[layer] = {"ours_us": statistics.median(ours), "base_us": statistics.median(base),
                      "ratio": statistics.median(a / b for a, b in zip(ours, base)),
                      "extra_us": statistics.median(a - b for a, b in zip(ours, base)),
                      "extra_to_floor": statistics.median(
                          (a - b) / f for a, b, f in zip(ours, base, floors))}
    for layer in ("spqr", "spqr_encode"):
        row[layer] = {"ours_us": statistics.median(samples[layer]),
                      "to_floor": statistics.median(a / f for a, f in zip(samples[layer], floors))}
    return row


# --- Forged messages --------------------------------------------------------------------


def _opened(options_: SessionOptions, sessions: int) -> tuple[SessionManager, SessionManager]:
    """Alice after the adversary opened ``sessions`` sessions with her (one
    message each) and she answered in the last one, which then carries a
    second chain."""
    rng = DeterministicRandom(b"bench-spqr forged %d" % sessions)
    alice = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), LIBSIGNAL_V4, rng=rng,
                           options=options_)
    mallory = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), LIBSIGNAL_V4,
                             rng=rng, options=options_)
    with alice.prekeys(now=0) as ring:
        ring.generate_one_time_prekeys(sessions, rng)
        ring.generate_kem_prekeys(sessions, rng, now=0)
        bundles = [ring.issue_bundle() for _ in range(sessions)]
    for bundle in bundles:
        mallory.initiate("alice", bundle)
        alice.decrypt("mallory", mallory.encrypt("alice", b"open"), now=0)
    mallory.decrypt("alice", alice.encrypt("mallory", b"reply"), now=0)
    alice.decrypt("mallory", mallory.encrypt("alice", b"new chain"), now=0)
    return alice, mallory


def _forge(genuine: bytes, index: int, ratchet_key: bytes | None = None) -> bytes:
    """``genuine`` with field 5's index set to ``index`` (type NONE, which the
    Braid ignores) and a MAC nobody computed; with ``ratchet_key``, a fresh
    ratchet key and N = PN = 0 instead of the genuine header."""
    frame = parse_v3(genuine, LIMIT, 4)
    assert isinstance(frame, V3Frame) and frame.pq_ratchet is not None
    epoch = parse_message(frame.pq_ratchet)[1].epoch
    data = encode_message(index, BraidMessage(epoch, MessageType.NONE))
    if ratchet_key is None:
        body = signal_message_body(frame.ratchet_key, frame.pn, frame.n, frame.ciphertext,
                                   frame.signed[0], data)
    else:
        body = signal_message_body(ratchet_key, 0, 0, frame.ciphertext, frame.signed[0], data)
    return body + bytes(8)


def _refused_us(alice: SessionManager, message: bytes) -> tuple[float, str]:
    start = clock()
    try:
        alice.decrypt("mallory", message, now=0)
    except SignalishError as error:
        name = type(error).__name__
    else:
        raise AssertionError("a forged message decrypted")
    # Read after the except block: dropping the error is part of the cost.
    return (clock() - start) * 1e6, name


def forged_figures(quick: bool, step_us: float, step_floor_us: float) -> list[dict[str, Any]]:
    """For both option sets: the chain-step budget and two forged messages,
    each refused, through SessionManager + MemoryStore, each beside its
    floor timed right after it (the raw HKDF chain steps and the X25519 it
    forces; for several sessions, one session's steps timed and multiplied)."""
    results = []
    x_key = x25519.X25519PrivateKey.generate()
    x_peer = x25519.X25519PrivateKey.generate().public_key()

    def floor_us(steps: int, times: int, dh: int) -> float:
        start = clock()
        ck = b"c" * 32
        for i in range(steps):
            ck = hkdf_chain_step_floor(ck, i + 1)[:32]
        derived = clock() - start
        start = clock()
        for _ in range(dh):
            x_key.exchange(x_peer)
        return (derived * times + clock() - start) * 1e6

    for label, opts in (("SessionOptions()", SessionOptions(pq_ratchet=True)),
                        ("SessionOptions.libsignal()", libsignal_options())):
        max_skip = opts.limits.max_skip
        full = 1 + opts.max_archived
        sessions = min(full, QUICK_LIBSIGNAL_SESSIONS) if quick and full > 6 else full
        alice, mallory = _opened(opts, sessions)
        genuine = mallory.encrypt("alice", b"genuine")
        index = parse_message(field5(genuine))[0]
        fresh = iter([PrivateKey.generate(DeterministicRandom(b"fresh %d" % i))
                      .public.public_bytes_raw() for i in range(3)])
        cases: list[dict[str, Any]] = []
        # The owner of the message's chain walks from the genuine index to
        # index - 1 + max_skip: max_skip steps, the most SPQR's chains allow
        # (one more is TooFarAhead, refused at once).  A fresh ratchet key
        # goes to the sessions in turn; each has received one message on its
        # SPQR chain, so index 1 + max_skip would walk max_skip steps in
        # each, but the record's budget, 2 x (max_skip + 1) steps with the
        # Double Ratchet's, lets it into two sessions at most.
        tried = min(sessions, 2)
        plan: list[tuple[str, Callable[[], bytes], int, int, int]] = [
            ("current chain, SPQR index + max_skip - 1",
             lambda: _forge(genuine, index - 1 + max_skip), max_skip, 1, 0),
            (f"fresh ratchet key, N = 0, SPQR index 1 + max_skip (a record of {sessions} "
             f"sessions; the budget reaches {tried})",
             lambda: _forge(genuine, 1 + max_skip, next(fresh)), max_skip, tried, tried)]
        for name, make, steps, times, dh in plan:
            rounds = 1 if quick or (times > 6 and max_skip > 5_000) else 3
            samples: list[float] = []
            floors: list[float] = []
            refused: set[str] = set()
            for _ in range(rounds):
                us, error = _refused_us(alice, make())
                samples.append(us)
                refused.add(error)
                floors.append(floor_us(steps, times, dh))
            cases.append({"name": name, "median_us": statistics.median(samples),
                          "rounds": rounds, "refused_with": "/".join(sorted(refused)),
                          "spqr_steps": steps * times - (times > 1), "x25519": dh,
                          "floor_us": statistics.median(floors),
                          "ratio": statistics.median(a / b for a, b in zip(samples, floors))})
        # The genuine message still decrypts: nothing the forgeries did stayed.
        assert alice.decrypt("mallory", genuine, now=0) == b"genuine"
        results.append({"options": label, "max_skip": max_skip, "max_archived": opts.max_archived,
                        "sessions": sessions, "full_sessions": full,
                        "one_session_us": max_skip * step_us,
                        "one_session_floor_us": max_skip * step_floor_us,
                        "all_sessions_us": 2 * max_skip * step_us,
                        "cases": cases})
    return results


# --- Everything -------------------------------------------------------------------------


def figures(quick: bool) -> dict[str, Any]:
    rounds = 2 if quick else 7
    floor = Floor()
    parts = floor_parts(floor, 3 if quick else 11, 200 if quick else 2_000)
    surveys = {name: survey(pattern) for name, pattern in PATTERNS.items()}
    messaging = [conversation(name, pattern, floor, surveys[name]["spqr"], rounds)
                 for name, pattern in PATTERNS.items()]
    forged = forged_figures(quick, parts["chain_step_ours"], parts["chain_step_floor"])
    return {"parts": parts, "surveys": surveys, "messaging": messaging, "forged": forged,
            "quick": quick, "rounds": rounds}


def _us(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _range(stats: dict[str, float]) -> str:
    return f"{stats['min']:,.0f} / {stats['median']:,.0f} / {stats['max']:,.0f}"


def lines(results: dict[str, Any]) -> list[str]:
    """The figures as Markdown (used by this script and by suite.py)."""
    parts, surveys = results["parts"], results["surveys"]
    out = ["SPQR, the triple ratchet: libsignal_v4 sessions with SessionOptions(pq_ratchet=True) "
           "against the same sessions without it, in the same run (64 B messages, delivered "
           "in order; CPU time; a timed block is two epochs of the conversation, one-way "
           "blocks are 100 messages; every ratio is the median of per-block ratios, each "
           "block beside the floor's block timed in the same round):", "",
           "| conversation [layer] | SPQR (us/msg) | plain v4 (us/msg) | SPQR/plain "
           "| SPQR's extra (us/msg) | floor of the extra (us/msg) | extra/floor |",
           "|---|---|---|---|---|---|---|"]
    for row in results["messaging"]:
        floor = row["floor_us"]
        for layer, label in (("manager", "SessionManager + MemoryStore"), ("session", "Session")):
            r = row[layer]
            out.append(f"| {row['conversation']} [{label}] | {_us(r['ours_us'])} "
                       f"| {_us(r['base_us'])} | {r['ratio']:.2f}x | {_us(r['extra_us'])} "
                       f"| {_us(floor)} | {r['extra_to_floor']:.1f}x |")
        for layer, label in (("spqr", "Spqr"), ("spqr_encode", "Spqr + encode")):
            r = row[layer]
            out.append(f"| {row['conversation']} [{label}] | {_us(r['ours_us'])} | - | - "
                       f"| {_us(r['ours_us'])} | {_us(floor)} | {r['to_floor']:.1f}x |")
    out += ["", "[Spqr] is SPQR's state alone (Braid, erasure code, chains), receiving on a copy "
            "as a session does; [Spqr + encode] also encodes both parties' SPQR state after "
            "each message, as the manager's two saves do.  For both, the whole cost is the "
            "extra.", "",
            "The floor [floor] of SPQR's extra work: per message both sides' chain step "
            "(raw HKDF) and the field-5 codec; per epoch ML-KEM-768 keygen and decapsulation "
            "(cryptography) and our encaps1 + encaps2, over the epoch length observed here.  "
            "The parts are timed once, on their own; the last column is the same work timed "
            "in each round beside the blocks above, which the ratios above use (the two "
            "differ as the machine's speed drifts):",
            "", "| conversation | epoch (msgs) | libsignal 0.103.0 epoch (msgs) | per message "
            "(us) | per epoch (us) | per epoch / epoch length (us/msg) | sum of the parts "
            "(us/msg) | floor timed beside the blocks (us/msg) |", "|---|---|---|---|---|---|---|---|"]
    per_epoch = parts["keygen"] + parts["decaps"] + parts["encaps1"] + parts["encaps2"]
    for row in results["messaging"]:
        name, length = row["conversation"], row["epoch_length"]
        share = surveys[name]["spqr"]["chunk_share"]
        per_message = 2 * parts["chain_step_floor"] + share * parts["codec_chunk"] \
            + (1 - share) * parts["codec_bare"]
        amortized = per_epoch / length if length else 0.0
        out.append(f"| {name} | {'none completes' if length is None else f'{length:.1f}'} "
                   f"| {LIBSIGNAL_EPOCH.get(name, '-')} | {_us(per_message)} "
                   f"| {_us(per_epoch) if length else '-'} | {_us(amortized)} "
                   f"| {_us(per_message + amortized)} | {_us(row['floor_us'])} |")
    encaps = parts["encaps1"] + parts["encaps2"]
    out += ["", f"Parts, us each: chain step {_us(parts['chain_step_floor'])} as raw HKDF "
            f"[primitives: hmac], {_us(parts['chain_step_ours'])} as signalish._spqr_kdf."
            f"chain_step [ours]; field-5 encode + parse {_us(parts['codec_chunk'])} with a "
            f"chunk, {_us(parts['codec_bare'])} without [ours]; ML-KEM-768 keygen from a seed "
            f"{_us(parts['keygen'])} and decapsulation with the key loaded from its seed "
            f"{_us(parts['decaps'])} [primitives: cryptography]; encaps1 "
            f"{_us(parts['encaps1'])} + encaps2 {_us(parts['encaps2'])} [ours, pure Python].",
            "", f"The price of Python: our split encapsulation (encaps1 + encaps2) takes "
            f"{_us(parts['encaps_ours'])} us, cryptography's one-shot ML-KEM-768 encapsulate "
            f"(from the public key's bytes) {_us(parts['encaps_cryptography'])} us: "
            f"{parts['encaps_ours'] / parts['encaps_cryptography']:.0f}x, and "
            f"{encaps / per_epoch:.0%} of the floor's {_us(per_epoch)} us per epoch.", "",
            "Bytes on the wire per message (field 5 = tag, length, SPQR message; libsignal "
            f"0.103.0 adds {LIBSIGNAL_FIELD5[0]} or {LIBSIGNAL_FIELD5[1]}, "
            "one more per varint past 127):", "",
            "| conversation | messages | mean field 5 (B/msg) | messages with a chunk "
            "| with a chunk (B) | without (B) | mean message, SPQR / plain (B) |",
            "|---|---|---|---|---|---|---|"]

    def span(bounds: tuple[int, int] | None) -> str:
        if bounds is None:
            return "-"
        return f"{bounds[0]}" if bounds[0] == bounds[1] else f"{bounds[0]}-{bounds[1]}"

    for name, s in surveys.items():
        pq, plain = s["spqr"], s["plain"]
        out.append(f"| {name} | {pq['messages']:,} | {pq['field5_mean']:.1f} "
                   f"| {pq['chunk_share']:.0%} | {span(pq['with_chunk'])} "
                   f"| {span(pq['without_chunk'])} "
                   f"| {pq['message_bytes']:.1f} / {plain['message_bytes']:.1f} |")
    lo, mid, hi = LIBSIGNAL_RECORD
    slo, smid, shi = LIBSIGNAL_SPQR_STATE
    head_lo = min(s[side]["head_bytes"]["min"] for s in surveys.values() for side in s)
    head_hi = max(s[side]["head_bytes"]["max"] for s in surveys.values() for side in s)
    heads = f"{head_lo}" if head_lo == head_hi else f"{head_lo}-{head_hi}"
    out += ["", f"Stored state per session, bytes, min / median / max after each of the first "
            f"{SIZE_SAMPLES} messages, both parties.  The session row is what every save "
            f"rewrites (the store also keeps a head row of {heads} bytes per record); the "
            "whole record is SessionRecord.to_bytes, as export_session returns it:", "",
            "| conversation | session row, SPQR | session row, plain | whole record, SPQR "
            "| whole record, plain | SPQR state alone |", "|---|---|---|---|---|---|"]
    for name, s in surveys.items():
        pq, plain = s["spqr"], s["plain"]
        out.append(f"| {name} | {_range(pq['row_bytes'])} | {_range(plain['row_bytes'])} "
                   f"| {_range(pq['record_bytes'])} | {_range(plain['record_bytes'])} "
                   f"| {_range(pq['spqr_bytes'])} |")
    out += [f"| libsignal-client 0.103.0 | - | - | {lo:,} / {mid:,} / {hi:,} | - "
            f"| {slo:,} / {smid:,} / {shi:,} |", "",
            "libsignal's row: SessionRecord.serialize() of 4,800 records (both parties, eight "
            "delivery patterns, the first 300 messages of each) and its field 15, the SPQR "
            "state; measured on libsignal-client 0.103.0 as a black box (this project's SPQR "
            "research notes, spqr_observed.md section 4).  Its record is protobuf, ours is "
            "signalish's own format.", "",
            "Forged messages, each refused, through SessionManager + MemoryStore (a session "
            "with SPQR derives the SPQR key before it can check the MAC, so a forged field 5 "
            "far ahead costs chain steps; the genuine message still decrypted afterwards).  "
            "Floor: the raw HKDF chain steps and X25519 each forces, timed right after it:", "",
            "| options | forged message | SPQR chain steps + X25519 | refused with "
            "| measured (us) | floor (us) | measured/floor |", "|---|---|---|---|---|---|---|"]
    for f in results["forged"]:
        for c in f["cases"]:
            out.append(f"| {f['options']} | {c['name']} | {c['spqr_steps']:,} + {c['x25519']} "
                       f"| {c['refused_with']} | {_us(c['median_us'])} | {_us(c['floor_us'])} "
                       f"| {c['ratio']:.2f} |")
    step = parts["chain_step_ours"]
    out.append("")
    for f in results["forged"]:
        stand_in = (f"; measured above on a {f['sessions']}-session stand-in, run without "
                    "--quick for the whole record") if f["sessions"] < f["full_sessions"] else ""
        out += [f"DoS budget, {f['options']} (max_skip {f['max_skip']:,}, "
                f"{f['max_archived']} archived): one session walks up to {f['max_skip']:,} "
                f"SPQR chain steps of {_us(step)} us = {f['one_session_us'] / 1e3:,.1f} ms "
                f"(raw HKDF floor {f['one_session_floor_us'] / 1e3:,.1f} ms) before the MAC "
                f"check.  A ratchet key no session knows is tried in the {f['full_sessions']} "
                "sessions of a record as far as the record's per-message budget reaches: "
                "2 x (max_skip + 1) chain steps over all attempts, the Double Ratchet's and "
                f"SPQR's together, so at most 2 x {f['max_skip']:,} SPQR steps = "
                f"{f['all_sessions_us'] / 1e6:,.2f} s{stand_in}.", ""]
    return out[:-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: proves it runs")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    results = figures(args.quick)
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "cryptography": cryptography.__version__, "signalish": signalish.__version__,
            "quick": args.quick}
    print(f"signalish {meta['signalish']}, cryptography {meta['cryptography']}, "
          f"Python {meta['python']} on {meta['machine']}")
    print("\n".join(lines(results)))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
