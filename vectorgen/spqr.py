"""Builds vectors/spqr.json: SPQR (the Sparse Post-Quantum Ratchet) piece by
piece and as a whole.

* its key schedule (``signalish._spqr_kdf``): KDF_SCKA_INIT, KDF_SCKA_RK,
  KDF_SCKA_CK, the Braid authenticator's KDF_AUTH, KDF_OK, MacHdr, MacCt and
  the Triple Ratchet's message keys, each from random inputs;
* GF(2^16) and the erasure code (``signalish._primitives.erasure``) for the
  four payload sizes the Braid sends, chunks at low and high indices, and
  which chunks each decoding starts from;
* split ML-KEM-768 (``signalish._primitives.mlkem_braid``): key pair from
  its seed, encaps1 from the header alone, encaps2 with the ek_vector,
  decapsulation, the epoch secret; and two ek_vectors encaps2 must refuse;
* one whole conversation under LIBSIGNAL_V4 with ``pq_ratchet``, through
  three completed SPQR epochs, with lost, late, reordered, replayed and
  tampered messages.

Format: docs/vectors.md, vectors/schema/spqr.schema.json.
"""

from __future__ import annotations

import hashlib
from typing import Any

from signalish._errors import SignalishError
from signalish._primitives import DeterministicRandom, hmac_sha256
from signalish._primitives.erasure import Decoder, Encoder, gf_inv, gf_mul
from signalish._primitives.mlkem_braid import decapsulate, encaps1, encaps2, keygen
from signalish._profile import LIBSIGNAL_V4
from signalish._session import SessionOptions
from signalish._spqr_kdf import (
    add_epoch,
    auth_init,
    auth_update,
    chain_step,
    mac_ciphertext,
    mac_header,
    message_keys,
    scka_key,
    spqr_init,
)
from signalish._storage import load_record
from signalish._window import RatchetLimits
from signalish.cli.vector_check import (
    braid_after,
    current_spqr,
    describe_field5,
    field5_of,
    spqr_send_trace,
)
from vectorgen.generate import Party, _limits, envelope, expect_outcome, kem_encapsulation

Json = dict[str, Any]


# --- the key schedule ---------------------------------------------------------------


def _kdf_cases() -> list[Json]:
    rng = DeterministicRandom(b"vectors/spqr/kdf")
    cases: list[Json] = []
    seed = rng.random_bytes(32)
    init = spqr_init(seed)
    cases.append({"function": "KDF_SCKA_INIT", "seed": seed.hex(), "root_key": init.root.hex(),
                  "a2b_chain_key": init.a2b.hex(), "b2a_chain_key": init.b2a.hex()})
    secret = rng.random_bytes(32)
    step = add_epoch(init.root, secret)
    cases.append({"function": "KDF_SCKA_RK", "root_key": init.root.hex(),
                  "epoch_secret": secret.hex(), "next_root_key": step.root.hex(),
                  "a2b_chain_key": step.a2b.hex(), "b2a_chain_key": step.b2a.hex()})
    # A chain from its first message on, then single steps at large counters.
    for chain_key, numbers in ((init.a2b, [1, 2, 3, 4, 5]),
                               (rng.random_bytes(32), [0x100, 0x12345678, 0xFFFFFFFF])):
        steps, ck = [], chain_key
        for n in numbers:
            ck, mk = chain_step(ck, n)
            steps.append({"n": n, "message_key": mk.hex(), "next_chain_key": ck.hex()})
        cases.append({"function": "KDF_SCKA_CK", "chain_key": chain_key.hex(), "steps": steps})
    auth = auth_init(seed)
    cases.append({"function": "Authenticator.Init", "seed": seed.hex(),
                  "root_key": auth.root_key.hex(), "mac_key": auth.mac_key.hex()})
    for epoch in (1, 2, 2**40 + 3, 2**64 - 1):
        root, key = rng.random_bytes(32), rng.random_bytes(32)
        updated = auth_update(root, epoch, key)
        cases.append({"function": "KDF_AUTH", "root_key": root.hex(), "epoch": epoch,
                      "key": key.hex(), "next_root_key": updated.root_key.hex(),
                      "mac_key": updated.mac_key.hex()})
    for epoch in (1, 7, 2**64 - 1):
        shared = rng.random_bytes(32)
        cases.append({"function": "KDF_OK", "shared_secret": shared.hex(), "epoch": epoch,
                      "epoch_secret": scka_key(shared, epoch).hex()})
    for epoch in (1, 2**33 + 1):
        key, header = rng.random_bytes(32), rng.random_bytes(64)
        cases.append({"function": "MacHdr", "mac_key": key.hex(), "epoch": epoch,
                      "header": header.hex(), "mac": mac_header(key, epoch, header).hex()})
    for epoch in (1, 5):
        key, ciphertext = rng.random_bytes(32), rng.random_bytes(1088)
        cases.append({"function": "MacCt", "mac_key": key.hex(), "epoch": epoch,
                      "ciphertext": ciphertext.hex(),
                      "mac": mac_ciphertext(key, epoch, ciphertext).hex()})
    for salted in (True, False):
        chain_key = rng.random_bytes(32)
        dr_key = hmac_sha256(chain_key, b"\x01")
        spqr_key = rng.random_bytes(32) if salted else None
        keys = message_keys(dr_key, spqr_key)
        cases.append({"function": "KDF_HYBRID", "dr_chain_key": chain_key.hex(),
                      "dr_message_key": dr_key.hex(),
                      "spqr_message_key": None if spqr_key is None else spqr_key.hex(),
                      "cipher_key": keys.cipher_key.hex(), "mac_key": keys.mac_key.hex(),
                      "iv": keys.iv.hex()})
    return cases


# --- GF(2^16) and the erasure code ---------------------------------------------------


def _field_case() -> Json:
    pairs = [(0x0002, 0x8000), (0x8000, 0x8000), (0x1234, 0x5678), (0xFFFF, 0xFFFF),
             (0x0003, 0x0007), (0xABCD, 0x0001), (0x0100, 0x0100)]
    return {"function": "GF(2^16)", "polynomial": 0x1100B,
            "products": [[a, b, gf_mul(a, b)] for a, b in pairs],
            "inverses": [[a, gf_inv(a)] for a in (1, 2, 3, 0x100B, 0x8000, 0xFFFF)]}


def _erasure_case(size: int, rng: DeterministicRandom) -> Json:
    payload = rng.random_bytes(size)
    n = size // 32
    encoder = Encoder(payload)
    # Decodings: the even data chunks filled up with the first parity
    # chunks, and the last n indices of all (parity only).
    mixed = sorted(list(range(0, n, 2)) + list(range(n, n + n // 2)))
    assert len(mixed) == n
    top = list(range(65536 - n, 65536))
    indices = sorted({0, n - 1, n, n + 1, 2 * n, 255, 256, 1000, 32767, 32768,
                      *mixed, *top})
    for start in (mixed, top):
        decoder = Decoder(size)
        for index in reversed(start):
            decoder.add_chunk(index, encoder.chunk(index))
        assert decoder.message() == payload
    return {"function": "erasure code", "payload": payload.hex(),
            "chunks": [{"index": i, "chunk": encoder.chunk(i).hex()} for i in indices],
            "decodings": [mixed, top]}


# --- split ML-KEM-768 --------------------------------------------------------------


def _mlkem_cases() -> list[Json]:
    rng = DeterministicRandom(b"vectors/spqr/mlkem768")
    cases: list[Json] = []
    for epoch in (1, 2):
        seed, m = rng.random_bytes(64), rng.random_bytes(32)
        _, header, ek_vector = keygen(seed)
        state, ct1, shared = encaps1(header, m)
        ct2 = encaps2(state, header, ek_vector)
        assert decapsulate(seed, ct1, ct2) == shared
        cases.append({"function": "split ML-KEM-768", "seed": seed.hex(), "header": header.hex(),
                      "ek_vector": ek_vector.hex(), "m": m.hex(), "ct1": ct1.hex(),
                      "ct2": ct2.hex(), "shared_secret": shared.hex(), "epoch": epoch,
                      "epoch_secret": scka_key(shared, epoch).hex()})
    # Refusals of encaps2: a t_hat coefficient of q = 3329 (0xD01) behind a
    # header that hashes it (the modulus check), and another key's ek_vector.
    seed, m = rng.random_bytes(64), rng.random_bytes(32)
    _, header, ek_vector = keygen(seed)
    bad = bytes((0x01, (ek_vector[1] & 0xF0) | 0x0D)) + ek_vector[2:]
    bad_header = header[:32] + hashlib.sha3_256(bad + header[:32]).digest()
    other = keygen(rng.random_bytes(64))[2]
    for why, head, vector in (("modulus", bad_header, bad), ("hash", header, other)):
        state, ct1, shared = encaps1(head, m)
        try:
            encaps2(state, head, vector)
        except SignalishError as error:
            refused = type(error).__name__
        else:
            raise AssertionError("encaps2 took a bad ek_vector")
        cases.append({"function": "split ML-KEM-768 refusal", "why": why, "header": head.hex(),
                      "ek_vector": vector.hex(), "m": m.hex(), "ct1": ct1.hex(),
                      "shared_secret": shared.hex(), "error": refused})
    return cases


# --- a whole conversation ---------------------------------------------------------------


class SpqrConversation:
    """Alice and Bob under LIBSIGNAL_V4 with ``pq_ratchet``, recording every
    message and what SPQR did for it."""

    def __init__(self, name: str, description: str, limits: RatchetLimits) -> None:
        seed = b"vectors/spqr/" + name.encode()
        self.parties: dict[str, Party] = {}
        for who, reg in (("alice", 1111), ("bob", 2222)):
            options = SessionOptions(limits=limits, max_archived=5, registration_id=reg,
                                     pq_ratchet=True)
            self.parties[who] = Party(who, LIBSIGNAL_V4, seed, options, one_time_prekeys=1)
        self.case: Json = {"name": name, "description": description,
                           "profile": LIBSIGNAL_V4.name, "pq_ratchet": True,
                           "limits": _limits(limits), "max_archived": 5,
                           "parties": {w: p.keys for w, p in self.parties.items()},
                           "events": []}
        self.messages: list[bytes] = []
        #: Per message: (sender, decoded field 5, the sender's Braid state after).
        self.sent: list[tuple[str, Json, str]] = []
        self.now = 1_000

    @staticmethod
    def other(who: str) -> str:
        return "bob" if who == "alice" else "alice"

    def sent_epoch(self, who: str) -> int:
        """The wire epoch of ``who``'s last message (0 before any)."""
        epochs = [field5["epoch"] for sender, field5, _ in self.sent if sender == who]
        return epochs[-1] if epochs else 0

    def initiate(self) -> None:
        bundle = self.parties["bob"].bundle()
        m = hashlib.sha256(b"kem-m" + bundle.to_bytes()).digest()
        encapsulation = kem_encapsulation(LIBSIGNAL_V4, bundle, m)
        assert encapsulation is not None
        self.parties["alice"].manager.initiate("bob", bundle, kem_encapsulation=encapsulation)
        self.case["events"].append({
            "op": "initiate", "from": "alice", "bundle": bundle.to_bytes().hex(),
            "kem_encaps_m": m.hex(), "kem_ciphertext": encapsulation[0].hex(),
            "kem_shared_secret": encapsulation[1].hex()})

    def send(self, who: str, text: str) -> int:
        party = self.parties[who]
        record = load_record(party.store, self.other(who))
        assert record is not None and record[0].current is not None
        before, before_session = record[0].current.spqr, record[0].current.base_key
        assert before is not None
        drawn = len(party.rng.draws)
        message = party.manager.encrypt(self.other(who), text.encode())
        field5, key, epoch_key = spqr_send_trace(before, party.rng.draws[drawn:])
        assert field5 == field5_of(message), "the replayed SPQR send differs from the session's"
        decoded = describe_field5(field5)
        event: Json = {"op": "send", "from": who, "plaintext": text.encode().hex(),
                       "session": before_session.hex(), "message": message.hex(),
                       "type": party.manager.message_type(message),
                       "spqr": {**decoded, "key": key.hex()}}
        if epoch_key is not None:
            event["epoch_secret"] = {"epoch": epoch_key[0], "secret": epoch_key[1].hex()}
        event["braid"] = braid_after(current_spqr(party.store, self.other(who)))
        self.case["events"].append(event)
        self.messages.append(message)
        self.sent.append((who, decoded, event["braid"]["state"]))
        return len(self.messages) - 1

    def braid_state(self, who: str) -> str:
        """The name of ``who``'s Braid state now."""
        return str(braid_after(current_spqr(self.parties[who].store, self.other(who)))["state"])

    def receive(self, who: str, index: int, *, flip: int | None = None,
                expect: str | None = "ok") -> str:
        """Deliver message ``index`` (with ``flip``, one bit of that byte
        flipped); ``expect``: the outcome ("ok" or an error name) generation
        must see, or None for any.  Returns the outcome."""
        data = self.messages[index]
        if flip is not None:
            data = data[:flip] + bytes((data[flip] ^ 0x01,)) + data[flip + 1:]
        event: Json = {"op": "receive", "to": who, "message": index, "now": self.now}
        if flip is not None:
            event["bytes"] = data.hex()
        try:
            event["plaintext"] = self.parties[who].manager.decrypt(
                self.other(who), data, now=self.now).hex()
        except SignalishError as error:
            event["error"] = type(error).__name__
        if expect is not None:
            expect_outcome(event, expect)
        if "plaintext" in event:
            event["braid"] = braid_after(current_spqr(self.parties[who].store, self.other(who)))
        self.case["events"].append(event)
        self.now += 1
        return str(event.get("error", "ok"))

    def finish(self) -> Json:
        self.case["random"] = {w: [d.hex() for d in p.rng.draws]
                               for w, p in self.parties.items()}
        return self.case


def _script_epochs(c: SpqrConversation) -> None:
    """Three SPQR epochs and the start of the fourth, in runs of one to three
    messages: balanced in epochs 1 and 3 (the CT side's ct1 is complete
    first, so the ack comes before the whole ek_vector: Ct1Acknowledged),
    Bob's runs longer in epoch 2 (his ek_vector first: EkReceivedCt1Sampled).

    On the way: the first header rebuilt from a parity chunk; messages lost
    (the erasure code makes up for their chunks), all finally delivered at
    the end, the older ones refused (MessageKeyExpired, MessageKeyEvicted, or
    AuthenticationError once even their chain's id is forgotten) or decrypting;
    runs delivered in reverse order; a late Ek chunk arriving in
    Ct1Acknowledged (which takes plain Ek chunks too); in each epoch a late
    message of the previous wire epoch (decrypts); a message two wire epochs
    late (MessageKeyEvicted or MessageKeyExpired, whichever window dropped it
    first; the Double Ratchet's verdict comes first); a replay (DuplicateMessage); a changed chunk
    and a changed MAC (AuthenticationError, nothing changes)."""
    c.initiate()
    hello = [c.send("alice", f"hello {i}") for i in range(4)]  # Hdr chunks 0..3
    for i in (0, 2, 3):  # the header from chunks 0, 2 and 3 (a parity chunk)
        c.receive("bob", hello[i])
    c.receive("alice", c.send("bob", "hi alice"))  # Bob encapsulates: epoch 1's secret
    c.receive("bob", hello[1])  # a late PreKeySignalMessage: its key was skipped
    c.receive("bob", hello[1], expect="DuplicateMessage")

    balanced = [("alice", 2), ("bob", 1), ("alice", 1), ("bob", 3), ("alice", 3), ("bob", 2)]
    bob_first = [("bob", 3), ("alice", 2)]
    lost: list[int] = []
    #: Held messages: index -> (to, the receiver's wire epoch or Braid state
    #: that releases it, expected outcome).
    held: dict[int, tuple[str, int | str, str]] = {}
    tampered_chunk = tampered_mac = False
    run = 0
    while True:
        pattern = bob_first if c.sent_epoch("bob") == 2 else balanced
        who, count = pattern[run % len(pattern)]
        to = c.other(who)
        sent = [c.send(who, f"{who} {run}.{k}") for k in range(count)]
        for index in (reversed(sent) if run % 7 == 3 else sent):
            _, field5, state = c.sent[index]
            if index % 17 == 9:
                lost.append(index)
                continue
            if who == "alice" and field5["epoch"] == 1 and index >= 30 and not any(
                    e == "too late" for _, _, e in held.values()):
                held[index] = (to, 3, "too late")
                continue
            if state == "EkSentCt1Received" and not any(
                    t == to and isinstance(r, int) for t, r, e in held.values() if e == "ok"):
                held[index] = (to, field5["epoch"] + 1, "ok")
                continue
            if field5["type"] == "Ek" and field5["chunk_index"] == 25 and field5["epoch"] != 2:
                held[index] = (to, "Ct1Acknowledged", "ok")
                continue
            if not tampered_chunk and field5["type"] == "Ek" and index > 40:
                # The chunk's last byte (the MAC follows it): refused, nothing kept.
                c.receive(to, index, flip=len(c.messages[index]) - 9,
                          expect="AuthenticationError")
                tampered_chunk = True
            if not tampered_mac and index > 150:
                c.receive(to, index, flip=len(c.messages[index]) - 1,
                          expect="AuthenticationError")
                tampered_mac = True
            c.receive(to, index)
        for index, (to, release, expect) in list(held.items()):
            if (c.sent_epoch(to) >= release if isinstance(release, int)
                    else c.braid_state(to) == release):
                if expect == "too late":
                    # Refused by whichever window dropped it first: the
                    # Double Ratchet's (its chain) or SPQR's (its epoch).
                    outcome = c.receive(to, index, expect=None)
                    assert outcome in ("MessageKeyExpired", "MessageKeyEvicted"), outcome
                else:
                    c.receive(to, index, expect=expect)
                del held[index]
        run += 1
        if not held and min(c.sent_epoch(w) for w in ("alice", "bob")) >= 4 \
                and all(sum(1 for s, f, _ in c.sent if s == w and f["epoch"] == 4) >= 3
                        for w in ("alice", "bob")):
            break
    for index in lost:  # at last, oldest first
        sender = c.sent[index][0]
        outcome = c.receive(c.other(sender), index, expect=None)
        # A message so old that even its chain's id is forgotten reads as a
        # new DH step, where nothing can tell it from a forged one.
        assert outcome in ("ok", "MessageKeyExpired", "MessageKeyEvicted",
                           "AuthenticationError"), outcome


def gen_spqr() -> Json:
    cases = _kdf_cases()
    cases.append(_field_case())
    rng = DeterministicRandom(b"vectors/spqr/erasure")
    cases += [_erasure_case(size, rng) for size in (96, 1152, 960, 160)]
    cases += _mlkem_cases()
    conversation = SpqrConversation(
        "libsignal_v4-spqr-epochs",
        "libsignal protocol v4 with SPQR through three KEM epochs: lost, late, reordered, "
        "replayed and tampered messages", RatchetLimits(
            max_skip=1_000, max_stored_keys=2_000, max_receiving_chains=20,
            expire_after_steps=20))
    _script_epochs(conversation)
    cases.append(conversation.finish())
    return envelope("spqr", "SPQR: key schedule, erasure code, split ML-KEM-768 and a whole "
                    "Triple Ratchet conversation", cases)
