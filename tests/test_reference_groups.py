"""The independent groups reference (tests/reference/groups_reference.py)
recomputes every case of vectors/sender_keys.json and vectors/sealed_sender.json.

The vectors were produced by signalish; the reference was written from the
public specifications (RFC 8032, RFC 7748, XEdDSA, RFC 5869, RFC 8452), the
black-box facts about libsignal-client in /work/exp/groups/FINDINGS.md and
signalish's documents (docs/sender_keys.md, docs/sealed_sender.md,
vectors/README.md), and shares no code with signalish.

Sender keys: from (profile, distribution id, chain id, chain key, signing seed,
plaintexts) it rebuilds the SenderKeyDistributionMessage and every message byte
for byte, then runs the delivery list as a fresh receiver: every plaintext, or
a refusal by the same error name that leaves the receiver unchanged.

Sealed sender: from the seeds and the case's inputs it rebuilds the server
certificate, the sender certificate, the USMC, the v1 message (from the
recorded ephemeral private key) or the v2 SentMessage (from the recorded M),
splits a SentMessage into each recipient's ReceivedMessage, opens every
message as its recipient, and runs the certificate validations and refusals.
"""

from __future__ import annotations

import copy
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from helpers import load_vectors

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
import groups_reference as ref  # noqa: E402

SENDER_KEYS = load_vectors("sender_keys.json")
SEALED = load_vectors("sealed_sender.json")
h = bytes.fromhex


def test_files() -> None:
    assert (SENDER_KEYS["format"], SENDER_KEYS["version"], SENDER_KEYS["kind"]) == \
        ("signalish-vectors", 1, "sender_keys")
    assert (SEALED["format"], SEALED["version"], SEALED["kind"]) == \
        ("signalish-vectors", 1, "sealed_sender")
    assert SENDER_KEYS["limits"] == {"max_forward_jump": 25000, "max_message_keys": 2000,
                                     "max_states": 5}
    names = {c["name"] for c in SENDER_KEYS["cases"]}
    assert names == {f"{p}-{kind}" for p in ref.PROFILES
                     for kind in ("in-order", "out-of-order", "tampering")} | {
                         "libsignal_v4-jump", "libsignal_v4-limit"}
    assert {c["name"] for c in SEALED["cases"]} == {
        "v1-signal-message", "v1-sender-key-message", "v2-two-recipients"}


# --- sender keys --------------------------------------------------------------------


@pytest.mark.parametrize("case", SENDER_KEYS["cases"], ids=lambda c: c["name"])
def test_reference_sender_keys(case: dict[str, Any]) -> None:
    profile = case["profile"]
    assert str(uuid.UUID(case["distribution_id"])) == case["distribution_id"]
    distribution_id = uuid.UUID(case["distribution_id"]).bytes
    sender = ref.SenderKeySender(profile, distribution_id, case["chain_id"],
                                 h(case["chain_key"]), h(case["signing_seed"]))
    assert ref.signing_key_encoding(profile, sender.u).hex() == case["signing_public"]
    assert sender.distribution_message().hex() == case["distribution_message"]

    # The sender encrypts from iteration 0, in order.  A listed message depends
    # only on its own iteration's chain key and plaintext, so an iteration left
    # out of the list is stepped over without its plaintext.
    for entry in case["messages"]:
        assert entry["iteration"] >= sender.iteration
        sender.chain_key = ref.chain_key_at(sender.chain_key,
                                            entry["iteration"] - sender.iteration)
        sender.iteration = entry["iteration"]
        iteration, message = sender.encrypt(h(entry["plaintext"]))
        assert iteration == entry["iteration"]
        assert message.hex() == entry["message"], f"iteration {iteration}: message bytes differ"

    receiver = ref.SenderKeyReceiver(profile, SENDER_KEYS["limits"])
    assert receiver.process(h(case["distribution_message"])) == distribution_id
    for number, delivery in enumerate(case["delivery"]):
        where = f"delivery {number}"
        if delivery["error"] is None:
            assert receiver.decrypt(h(delivery["message"])).hex() == delivery["plaintext"], where
            continue
        before = copy.deepcopy(receiver.records)
        with pytest.raises(ref.Refused) as refused:
            receiver.decrypt(h(delivery["message"]))
        assert refused.value.name == delivery["error"], f"{where}: {refused.value}"
        assert delivery["plaintext"] is None
        assert receiver.records == before, f"{where}: a refusal changed the receiver"


def flip(data: bytes, index: int, bit: int) -> bytes:
    out = bytearray(data)
    out[index] ^= bit
    return bytes(out)


def ciphertext_span(profile: str, message: bytes) -> tuple[int, int]:
    """(first, last) byte index of the ciphertext inside a message."""
    if profile == "native":
        return 30, len(message) - 65
    r = ref.Reader(message, 1)
    r.bytes_field(1, 16), r.u32_field(2), r.u32_field(3)
    r.key(4, 2)
    r.varint()
    return r.pos, len(message) - 65


@pytest.mark.parametrize("case", SENDER_KEYS["cases"], ids=lambda c: c["name"])
def test_sender_key_cases_are_as_documented(case: dict[str, Any]) -> None:
    """docs/vectors.md ("Cases" of sender_keys.json): the plaintexts and the
    delivery script are the ones described, with the messages rebuilt here
    (those the reference cannot rebuild, for a key it does not have, are
    checked for the property the docs give them)."""
    profile, kind = case["profile"], case["name"].split("-", 1)[1]
    listed = {m["iteration"]: (h(m["message"]), h(m["plaintext"])) for m in case["messages"]}
    delivery = [(h(d["message"]), d["plaintext"], d["error"]) for d in case["delivery"]]

    def ok(i: int) -> tuple[bytes, str | None, str | None]:
        return listed[i][0], listed[i][1].hex(), None

    def refused(i: int, error: str) -> tuple[bytes, str | None, str | None]:
        return listed[i][0], None, error

    if kind == "in-order":
        assert [listed[i][1] for i in range(4)] == [
            b"", b"hello, group", b"sixteen bytes!!!", bytes(range(100))]
        assert delivery == [ok(i) for i in range(4)]
        return
    for i, (_, plaintext) in listed.items():
        assert plaintext == f"message {i}".encode()
    if kind == "out-of-order":
        assert sorted(listed) == list(range(6))
        dup = "DuplicateMessage"
        assert delivery == [ok(2), ok(0), refused(2, dup), ok(1), ok(5), ok(3), refused(5, dup),
                            ok(4), refused(3, dup)]
    elif kind == "jump":
        ev, dup = "MessageKeyEvicted", "DuplicateMessage"
        assert delivery == [refused(25001, "TooFarAhead"), ok(2100), refused(99, ev), ok(100),
                            ok(2099), refused(100, dup), refused(2100, dup), ok(25001),
                            refused(1000, ev), refused(2500, ev), refused(23000, ev), ok(23001),
                            refused(25001, dup)]
    elif kind == "limit":
        assert sorted(listed) == [0, 23000, 23001, 25001]
        assert delivery == [refused(25001, "TooFarAhead"), ok(0), ok(25001),
                            refused(23000, "MessageKeyEvicted"), ok(23001)]
    else:
        m0 = listed[0][0]
        first, last = ciphertext_span(profile, m0)
        auth = "AuthenticationError"
        version = flip(m0, 0, 0x70) if profile != "native" else flip(m0, 1, 0x03)
        assert version[:2] == (b"\x43" + m0[1:2] if profile != "native" else b"\x91\x02")
        flips = [(first, 1), (last, 1), (len(m0) - 64, 1), (len(m0) - 1, 0x80)]
        assert delivery[:4] == [(flip(m0, i, bit), None, auth) for i, bit in flips]
        other_key, other_chain = delivery[4], delivery[5]
        assert other_key[0][:-64] == m0[:-64] and other_key[0][-64:] != m0[-64:]
        assert other_key[1:] == (None, auth)
        parsed = ref.parse_message(profile, other_chain[0])
        assert parsed["distribution_id"] == uuid.UUID(case["distribution_id"]).bytes
        assert parsed["chain_id"] != case["chain_id"] and other_chain[1:] == (None, "NoSession")
        assert delivery[6:] == [(m0[:-1], None, "TruncatedInput"),
                                (version, None, "UnknownVersion"),
                                ok(0), refused(0, "DuplicateMessage"), ok(1)]


# --- sealed sender ------------------------------------------------------------------


def certificates(case: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
    server_cert = ref.server_certificate(case["server_key_id"], h(case["server_seed"]),
                                         h(case["trust_root_seed"]))
    sender_cert = ref.sender_certificate(case["sender"], server_cert, h(case["server_seed"]))
    u = case["usmc"]
    group_id = None if u["group_id"] is None else h(u["group_id"])
    usmc = ref.usmc(u["message_type"], sender_cert, h(u["contents"]), u["content_hint"],
                    group_id)
    return server_cert, sender_cert, usmc


def check_opened(opened: bytes, case: dict[str, Any], sender_cert: bytes) -> None:
    u = ref.parse_usmc(opened)
    assert u["message_type"] == case["usmc"]["message_type"]
    assert u["sender_certificate"] == sender_cert
    assert u["contents"].hex() == case["usmc"]["contents"]
    assert u["content_hint"] == case["usmc"]["content_hint"]
    assert (u["group_id"] and u["group_id"].hex()) == case["usmc"]["group_id"]


@pytest.mark.parametrize("case", SEALED["cases"], ids=lambda c: c["name"])
def test_reference_sealed_sender(case: dict[str, Any]) -> None:
    server_cert, sender_cert, usmc = certificates(case)
    assert server_cert.hex() == case["server_certificate"]
    assert sender_cert.hex() == case["sender_certificate"]
    assert usmc.hex() == case["usmc"]["bytes"]
    sender_seed = h(case["sender"]["identity_seed"])
    seeds: dict[str, bytes] = {}

    if case["version"] == 1:
        recipient_seed = h(case["recipient_identity_seed"])
        message = ref.seal_v1(usmc, ref.public_u(recipient_seed), sender_seed,
                              h(case["ephemeral_private"]))
        assert message.hex() == case["message"], "v1 message bytes differ"
        opened = ref.unseal(message, recipient_seed)
        assert opened == usmc
        check_opened(opened, case, sender_cert)
    else:
        sent = ref.seal_v2(usmc, h(case["m"]), case["recipients"], case["excluded"],
                           sender_seed)
        assert sent.hex() == case["sent"], "v2 SentMessage bytes differ"
        split = ref.split_v2(sent)
        assert split["order"] == [r["service_id"] for r in case["recipients"]]
        assert split["excluded"] == case["excluded"]
        assert {sid: r["received"].hex() for sid, r in split["recipients"].items()} == \
            case["received"]
        for recipient in case["recipients"]:
            sid = recipient["service_id"]
            seeds[sid] = h(recipient["identity_seed"])
            assert split["recipients"][sid]["devices"] == [tuple(d) for d in recipient["devices"]]
            opened = ref.unseal(h(case["received"][sid]), seeds[sid])
            assert opened == usmc, sid
            check_opened(opened, case, sender_cert)

    # Each recipient's message, opened, has its certificate validated.
    if case["version"] == 1:
        seeds["recipient"] = h(case["recipient_identity_seed"])
        messages = {"recipient": h(case["message"])}
    else:
        messages = {sid: h(case["received"][sid]) for sid in seeds}
    opened_certs = [ref.parse_usmc(ref.unseal(messages[who], seeds[who]))["sender_certificate"]
                    for who in seeds]
    for check in case["validation"]:
        root = h(case["trust_root_seed"] if check["trust_root"] == "root"
                 else case["other_root_seed"])
        for cert in opened_certs:
            try:
                ref.validate_certificate(cert, ref.public_u(root), check["now"])
                result = "ok"
            except ref.Refused as error:
                result = error.name
            assert result == check["result"], check

    for number, refusal in enumerate(case["refusals"]):
        if case["version"] == 1:
            assert refusal["recipient"] == "recipient"
        with pytest.raises(ref.Refused) as refused:
            ref.unseal(h(refusal["message"]), seeds[refusal["recipient"]])
        assert refused.value.name == refusal["error"], f"refusal {number}: {refused.value}"


@pytest.mark.parametrize("case", SEALED["cases"], ids=lambda c: c["name"])
def test_sealed_sender_cases_are_as_documented(case: dict[str, Any]) -> None:
    """docs/vectors.md ("sealed_sender.json in detail"): the validation times
    and the refusals are the ones described, rebuilt here."""
    expiration = case["sender"]["expiration"]
    assert [(v["now"], v["trust_root"]) for v in case["validation"]] == [
        (expiration - 86_400_000, "root"), (expiration, "root"), (expiration + 1, "root"),
        (expiration, "other"), (expiration + 1, "other")]
    refusals = [(h(r["message"]), r["recipient"], r["error"]) for r in case["refusals"]]
    auth = "AuthenticationError"
    if case["version"] == 1:
        message = h(case["message"])
        # 0x11, field 1 (2 + 33 bytes), field 2 (2 + 43 bytes), then field 3's
        # tag at byte 81 and its length: the encrypted USMC starts after them.
        r = ref.Reader(message, 81)
        r.key(3, 2)
        r.varint()
        body_start = r.pos
        usmc = h(case["usmc"]["bytes"])
        other = ref.seal_v1(usmc, ref.public_u(h(case["other_root_seed"])),
                            h(case["sender"]["identity_seed"]), h(case["ephemeral_private"]))
        assert refusals == [(flip(message, i, 1), "recipient", auth)
                            for i in (4, 38, 80, body_start, len(message) - 1)] + [
            (other, "recipient", auth)]
    else:
        first, second = (r["service_id"] for r in case["recipients"])
        received = h(case["received"][first])
        assert refusals == [(flip(received, i, 1), first, auth)
                            for i in (1, 33, 49, 81, len(received) - 1)] + [
            (received, second, auth)]


def test_sealed_contents_are_the_named_messages() -> None:
    """docs/vectors.md "Cases": the sealed contents are real messages of the other files."""
    sealed = {c["name"]: h(c["usmc"]["contents"]) for c in SEALED["cases"]}
    group = next(c for c in SENDER_KEYS["cases"] if c["name"] == "libsignal_v4-in-order")
    assert sealed["v1-sender-key-message"].hex() == group["messages"][0]["message"]
    assert sealed["v2-two-recipients"].hex() == group["messages"][1]["message"]
    conversation = next(c for c in load_vectors("conversations.json")["cases"]
                        if c["name"] == "libsignal_v4-in-order")
    bobs = [e for e in conversation["events"] if e["op"] == "send" and e["from"] == "bob"]
    assert sealed["v1-signal-message"].hex() == bobs[0]["message"]
    assert (bobs[0]["plaintext"], bobs[0]["type"]) == (b"reply 0".hex(), 2)
    assert sealed["v1-signal-message"][0] == 0x44
