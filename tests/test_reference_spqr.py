"""The independent SPQR reference (tests/reference/spqr_reference.py)
recomputes every case of vectors/spqr.json.

The vectors were produced by signalish; the reference was written from the
specifications (Double Ratchet revision 3 section 5, the ML-KEM Braid,
FIPS 203) and the observed facts docs/vectors.md lists, and shares no code
with signalish.  For the conversation it produces every message byte for
byte from the listed keys and randomness, decrypts every delivered one (or
refuses it by the same error name, changing nothing), and reaches the same
SPQR key, epoch secrets and Braid states on the way.
"""

from __future__ import annotations

import ast
import copy
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem

from helpers import load_vectors

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
import signal_reference as ref  # noqa: E402
import spqr_reference as pq  # noqa: E402

CASES = load_vectors("spqr.json")["cases"]
KDFS = [c for c in CASES if c.get("function") in {
    "KDF_SCKA_INIT", "KDF_SCKA_RK", "KDF_SCKA_CK", "Authenticator.Init", "KDF_AUTH", "KDF_OK",
    "MacHdr", "MacCt", "KDF_HYBRID"}]
ERASURE = [c for c in CASES if c.get("function") == "erasure code"]
MLKEM = [c for c in CASES if c.get("function", "").startswith("split ML-KEM-768")]
CONVERSATIONS = [c for c in CASES if "events" in c]
h = bytes.fromhex


def test_every_case_is_covered() -> None:
    field = [c for c in CASES if c.get("function") == "GF(2^16)"]
    assert len(KDFS) + len(field) + len(ERASURE) + len(MLKEM) + len(CONVERSATIONS) == len(CASES)
    assert {len(c["payload"]) // 2 for c in ERASURE} == {96, 1152, 960, 160}
    assert CONVERSATIONS


@pytest.mark.parametrize("case", KDFS, ids=lambda c: c["function"])
def test_reference_key_schedule(case: dict[str, Any]) -> None:
    function = case["function"]
    if function in ("KDF_SCKA_INIT", "KDF_SCKA_RK"):
        out = (pq.kdf_scka_init(h(case["seed"])) if function == "KDF_SCKA_INIT"
               else pq.kdf_scka_rk(h(case["root_key"]), h(case["epoch_secret"])))
        root = case["root_key" if function == "KDF_SCKA_INIT" else "next_root_key"]
        assert [x.hex() for x in out] == [root, case["a2b_chain_key"], case["b2a_chain_key"]]
    elif function == "KDF_SCKA_CK":
        chain_key = h(case["chain_key"])
        for step in case["steps"]:
            chain_key, message_key = pq.kdf_scka_ck(chain_key, step["n"])
            assert (message_key.hex(), chain_key.hex()) == (step["message_key"],
                                                           step["next_chain_key"])
    elif function == "Authenticator.Init":
        assert [x.hex() for x in pq.auth_init(h(case["seed"]))] == [case["root_key"],
                                                                     case["mac_key"]]
    elif function == "KDF_AUTH":
        auth = pq.kdf_auth(h(case["root_key"]), h(case["key"]), case["epoch"])
        assert [x.hex() for x in auth] == [case["next_root_key"], case["mac_key"]]
    elif function == "KDF_OK":
        assert pq.kdf_ok(h(case["shared_secret"]), case["epoch"]).hex() == case["epoch_secret"]
    elif function == "MacHdr":
        assert pq.mac_hdr(h(case["mac_key"]), case["epoch"], h(case["header"])).hex() \
            == case["mac"]
    elif function == "MacCt":
        assert pq.mac_ct(h(case["mac_key"]), case["epoch"], h(case["ciphertext"])).hex() \
            == case["mac"]
    else:
        dr_key = ref.mac(h(case["dr_chain_key"]), b"\x01")
        assert dr_key.hex() == case["dr_message_key"]
        salt = case["spqr_message_key"]
        keys = pq.message_keys(dr_key, None if salt is None else h(salt))
        assert [keys[:32].hex(), keys[32:64].hex(), keys[64:].hex()] == \
            [case["cipher_key"], case["mac_key"], case["iv"]]


def test_reference_field() -> None:
    (case,) = [c for c in CASES if c.get("function") == "GF(2^16)"]
    assert case["polynomial"] == pq.POLY
    for a, b, product in case["products"]:
        assert pq.gf_mul(a, b) == product
    for a, inverse in case["inverses"]:
        assert pq.gf_inv(a) == inverse and pq.gf_mul(a, inverse) == 1


@pytest.mark.parametrize("case", ERASURE, ids=lambda c: f"{len(c['payload']) // 2}-bytes")
def test_reference_erasure_code(case: dict[str, Any]) -> None:
    payload = h(case["payload"])
    chunks = {c["index"]: h(c["chunk"]) for c in case["chunks"]}
    assert 65535 in chunks
    for index, chunk in chunks.items():
        assert pq.encoder_chunk(payload, index) == chunk, index
    for indices in case["decodings"]:
        assert len(indices) == len(payload) // 32
        decoder = pq.decoder(len(payload))
        for index in indices:
            pq.decoder_add(decoder, index, chunks[index])
        assert pq.decoder_message(decoder) == payload


@pytest.mark.parametrize("case", MLKEM, ids=lambda c: c.get("why", f"epoch-{c.get('epoch')}"))
def test_reference_split_mlkem768(case: dict[str, Any]) -> None:
    state, ct1, shared = pq.mlkem_encaps1(h(case["header"]), h(case["m"]))
    assert (ct1.hex(), shared.hex()) == (case["ct1"], case["shared_secret"])
    if "error" in case:
        with pytest.raises(ref.Refused) as refused:
            pq.mlkem_encaps2(state, h(case["header"]), h(case["ek_vector"]))
        assert refused.value.name == case["error"]
        return
    dk, header, ek_vector = pq.mlkem_keygen(h(case["seed"]))
    assert (header.hex(), ek_vector.hex()) == (case["header"], case["ek_vector"])
    ct2 = pq.mlkem_encaps2(state, header, ek_vector)
    assert ct2.hex() == case["ct2"]
    assert pq.mlkem_decaps(dk, ct1, ct2) == shared
    # A second ML-KEM-768 (OpenSSL's) agrees on the key pair and decapsulation.
    openssl = mlkem.MLKEM768PrivateKey.from_seed_bytes(h(case["seed"]))
    assert openssl.public_key().public_bytes_raw() == ek_vector + header[:32]
    assert openssl.decapsulate(ct1 + ct2) == shared
    assert pq.kdf_ok(shared, case["epoch"]).hex() == case["epoch_secret"]


def _decoded(field5: bytes, key: bytes) -> dict[str, Any]:
    index, msg = pq.parse_field5(field5)
    return {"epoch": msg["epoch"], "index": index, "type": msg["type"],
            "chunk_index": msg.get("chunk_index"),
            "chunk": msg["chunk"].hex() if "chunk" in msg else None, "key": key.hex()}


def _replay(case: dict[str, Any]) -> tuple[set[int], set[int], int]:
    """Replay a conversation case with the reference, checking every event;
    returns (epoch secrets seen, messages decrypted, messages sent)."""
    parties = {who: pq.SpqrParty(keys, case["random"][who], case["limits"],
                                 case["max_archived"])
               for who, keys in case["parties"].items()}
    messages: list[bytes] = []
    epochs: set[int] = set()
    decrypted: set[int] = set()
    for number, event in enumerate(case["events"]):
        where = f"event {number} ({event['op']})"
        if event["op"] == "initiate":
            kem = (h(event["kem_ciphertext"]), h(event["kem_shared_secret"]))
            public = ref.parse_bundle(h(event["bundle"]))["kem"]
            assert ref.kyber_encapsulate(public, h(event["kem_encaps_m"])) == kem, where
            parties[event["from"]].initiate(h(event["bundle"]), kem)
        elif event["op"] == "send":
            party = parties[event["from"]]
            message = party.send(h(event["session"]), h(event["plaintext"]))
            assert party.last_send is not None
            field5, key, epoch_key = party.last_send
            assert _decoded(field5, key) == event["spqr"], f"{where}: SPQR"
            assert (None if epoch_key is None else {"epoch": epoch_key[0],
                                                    "secret": epoch_key[1].hex()}) \
                == event.get("epoch_secret"), f"{where}: epoch secret"
            if epoch_key is not None:
                epochs.add(epoch_key[0])
            assert party.braid() == event["braid"], where
            assert message.hex() == event["message"], f"{where}: message bytes differ"
            messages.append(message)
        else:
            data = h(event["bytes"]) if "bytes" in event else messages[event["message"]]
            party = parties[event["to"]]
            if "error" in event:
                before = copy.deepcopy((party.record, party.draws))
                with pytest.raises(ref.Refused) as refused:
                    party.receive(data, event["now"])
                assert refused.value.name == event["error"], f"{where}: {refused.value}"
                assert (party.record, party.draws) == before, f"{where}: a refusal changed state"
            else:
                assert party.receive(data, event["now"]).hex() == event["plaintext"], where
                assert party.braid() == event["braid"], where
                decrypted.add(event["message"])
    assert all(not p.draws for p in parties.values()), "randomness left over"
    return epochs, decrypted, len(messages)


@pytest.mark.parametrize("case", CONVERSATIONS, ids=lambda c: c["name"])
def test_reference_replays_conversation(case: dict[str, Any]) -> None:
    assert case["profile"] == "libsignal_v4" and case["pq_ratchet"]
    epochs, decrypted, sent = _replay(case)
    assert epochs >= {1, 2, 3}, "three KEM epochs completed"
    assert len(decrypted) > 0.9 * sent


@pytest.mark.parametrize("seed", range(3))
def test_reference_agrees_with_signalish_on_random_schedules(seed: int) -> None:
    """Beyond the committed vector: signalish talks under tight limits, with
    several sessions, lost, reordered, replayed and tampered messages (a bit
    flipped in a chunk, field 5's head, the ciphertext or the MAC), and the
    reference must produce and judge every message the same way."""
    import random

    from signalish._window import RatchetLimits
    from vectorgen.spqr import SpqrConversation

    rnd = random.Random(seed)
    c = SpqrConversation(f"random-{seed}", "", RatchetLimits(
        max_skip=rnd.choice([3, 6, 40]), max_stored_keys=rnd.choice([3, 30]),
        max_receiving_chains=rnd.choice([2, 5]), expire_after_steps=rnd.choice([2, 5])))
    c.initiate()
    c.receive("bob", c.send("alice", "first"), expect=None)
    pending: list[tuple[str, int]] = []
    for step in range(60):
        if rnd.random() < 0.05:  # a new session; the old one's messages still come
            c.initiate()
            c.receive("bob", c.send("alice", "again"), expect=None)
        who = rnd.choice(["alice", "bob"])
        pending += [(c.other(who), c.send(who, f"{step}")) for _ in range(rnd.choice([1, 2, 5]))]
        if rnd.random() < 0.3:
            rnd.shuffle(pending)
        cut = rnd.randint(0, len(pending))
        for to, index in pending[:cut]:
            message = c.messages[index]
            if rnd.random() < 0.1 and message[1] == 0x0A:  # a SignalMessage
                f5 = len(message) - 8 - (37 if message[-47:-45] == b"\x2a\x25" else 4)
                flip = rnd.choice([len(message) - 9, f5 + rnd.randrange(4), f5 - 3,
                                   len(message) - 1])
                c.receive(to, index, flip=flip, expect=None)
            if rnd.random() < 0.9:
                c.receive(to, index, expect=None)
            if rnd.random() < 0.05:
                c.receive(to, index, expect=None)
        pending = pending[cut:]
    _replay(c.finish())


@pytest.mark.parametrize("change, wanted", [
    (lambda c: c["events"][1]["spqr"].update(key="00" * 32), "field 5 decoded"),
    (lambda c: next(e for e in c["events"] if "epoch_secret" in e)["epoch_secret"].update(
        secret="00" * 32), "epoch secret"),
    (lambda c: next(e for e in c["events"] if e["op"] == "receive" and "braid" in e)[
        "braid"].update(state="Ct2Sampled"), "Braid after"),
], ids=["spqr-key", "epoch-secret", "braid-state"])
def test_signalish_verifier_checks_the_spqr_fields(change: Any, wanted: str) -> None:
    """``python -m signalish vectors verify`` notices a changed SPQR key,
    epoch secret or Braid state (not only message bytes and plaintexts)."""
    from signalish.cli.vector_check import check_file
    data = load_vectors("spqr.json")
    data["cases"] = [c for c in data["cases"] if "events" in c]
    change(data["cases"][0])
    ((_, problem),) = check_file(data)
    assert problem is not None and wanted in problem, problem


def test_spqr_reference_imports_nothing_of_signalish() -> None:
    """Only the standard library, ``cryptography``, kyber-py and the
    reference beside it."""
    tree = ast.parse(Path(pq.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module is not None
            roots.add(node.module.split(".")[0])
    assert roots <= {"__future__", "copy", "hashlib", "hmac", "typing", "cryptography",
                     "kyber_py", "signal_reference"}, roots
