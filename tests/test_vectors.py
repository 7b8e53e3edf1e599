"""vectors/: valid against their schemas, reproducible, and verified.

The independent recomputation of the conversation and handshake vectors is in
test_reference.py; here signalish's own generator and verifier are tested.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import VECTORS
from vectorgen.mlkem_encaps import encaps_internal
from signalish.cli.vector_check import check_file
from vectorgen.generate import GENERATORS
from vectorgen.__main__ import render

FILES = sorted(GENERATORS)


@pytest.mark.parametrize("name", FILES)
def test_file_matches_its_schema(name: str) -> None:
    data = json.loads((VECTORS / name).read_text())
    schema = json.loads((VECTORS / "schema" / f"{data['kind']}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize("name", FILES)
def test_generation_is_byte_identical(name: str) -> None:
    """The committed file is exactly what the library generates (no drift)."""
    assert (VECTORS / name).read_text() == render(GENERATORS[name]())


@pytest.mark.parametrize("name", FILES)
def test_signalish_verifies_every_case(name: str) -> None:
    results = list(check_file(json.loads((VECTORS / name).read_text())))
    assert results and all(problem is None for _, problem in results), results


def test_verifier_notices_a_changed_byte() -> None:
    data = json.loads((VECTORS / "conversations.json").read_text())
    event = next(e for e in data["cases"][0]["events"] if e["op"] == "send")
    event["message"] = event["message"][:-2] + ("00" if event["message"][-2:] != "00" else "01")
    outcomes = [problem for _, problem in check_file(data)]
    assert outcomes[0] is not None and "message bytes" in outcomes[0]
    assert all(problem is None for problem in outcomes[1:])


def test_cli_verify_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    from signalish.cli import main
    assert main(["vectors", "verify", str(VECTORS)]) == 0
    out = capsys.readouterr().out
    assert "conversations.json 4: native-negative" in out and " 0 failed" in out


def test_verifier_uses_round3_kyber_for_libsignal_v4() -> None:
    """A libsignal_v4 case whose recorded KEM secret is the ML-KEM-1024 one
    for the same ciphertext (what a Kyber1024 mistaken for ML-KEM gives) is
    refused, in x3dh.json and in a conversation's initiate event."""
    from signalish._primitives import KemPrivateKey

    def mlkem_secret(seed: str, ciphertext: str) -> str:
        return KemPrivateKey.from_seed(bytes.fromhex(seed)).decapsulate(
            bytes.fromhex(ciphertext)).hex()

    data = json.loads((VECTORS / "x3dh.json").read_text())
    data["cases"] = [c for c in data["cases"] if c["profile"] == "libsignal_v4"]
    assert len(data["cases"]) == 4
    case = data["cases"][0]
    case["kem_shared_secret"] = mlkem_secret(case["kem_prekey"]["seed"], case["kem_ciphertext"])
    outcomes = [problem for _, problem in check_file(data)]
    assert outcomes[0] is not None and "kyber1024 decapsulation" in outcomes[0]
    assert all(problem is None for problem in outcomes[1:])

    data = json.loads((VECTORS / "conversations.json").read_text())
    data["cases"] = [c for c in data["cases"] if c["profile"] == "libsignal_v4"]
    assert len(data["cases"]) >= 1
    case = data["cases"][0]
    event = next(e for e in case["events"] if e["op"] == "initiate")
    seed = next(k["seed"] for k in case["parties"]["bob"]["prekeys"]["kem"]
                if not k["last_resort"])
    event["kem_shared_secret"] = mlkem_secret(seed, event["kem_ciphertext"])
    outcomes = [problem for _, problem in check_file(data)]
    assert outcomes[0] is not None and "kyber1024 decapsulation" in outcomes[0], outcomes[0]
    assert all(problem is None for problem in outcomes[1:])


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.sampled_from(["ML-KEM-768", "ML-KEM-1024"]))
def test_deterministic_encapsulation_agrees_with_openssl(m: bytes, parameter_set: str) -> None:
    """The vectors' FIPS 203 Encaps_internal: OpenSSL decapsulates its ciphertext
    to the same key (a wrong ciphertext would give an unrelated key)."""
    cls = mlkem.MLKEM768PrivateKey if parameter_set == "ML-KEM-768" else mlkem.MLKEM1024PrivateKey
    private = cls.from_seed_bytes(m + m)
    ciphertext, key = encaps_internal(private.public_key().public_bytes_raw(), m, parameter_set)
    assert private.decapsulate(ciphertext) == key


def test_vectors_readme_documents_every_file() -> None:
    readme = (VECTORS / "README.md").read_text()
    for name in FILES:
        assert f"`{name}`" in readme
    assert Path(VECTORS / "schema").is_dir()


def _flip_hex(value: str) -> str:
    """``value`` (hex) with the lowest bit of its last byte flipped."""
    return value[:-2] + f"{int(value[-2:], 16) ^ 1:02x}"


def _outcomes_after(name: str, change: Callable[[dict[str, Any]], None]) -> list[str | None]:
    data = json.loads((VECTORS / name).read_text())
    change(data)
    return [problem for _, problem in check_file(data)]


@pytest.mark.parametrize(("what", "change", "problem"), [
    ("a message byte",
     lambda d: d["cases"][0]["messages"][1].update(message=_flip_hex(
         d["cases"][0]["messages"][1]["message"])), "message at iteration 1"),
    ("the chain key",
     lambda d: d["cases"][0].update(chain_key=_flip_hex(d["cases"][0]["chain_key"])),
     "distribution message"),
    ("a delivery's verdict",
     lambda d: d["cases"][0]["delivery"][0].update(plaintext=None, error="DuplicateMessage"),
     "delivery 0 outcome"),
    ("a delivered message's bytes",
     lambda d: d["cases"][0]["delivery"].__setitem__(0, {**d["cases"][0]["delivery"][0],
                                                         "message": d["cases"][0]["delivery"][0]
                                                         ["message"][:-2]}),
     "delivery 0 outcome"),
])
def test_verifier_notices_a_changed_sender_key_case(
        what: str, change: Callable[[dict[str, Any]], None], problem: str) -> None:
    outcomes = _outcomes_after("sender_keys.json", change)
    assert outcomes[0] is not None and problem in outcomes[0], (what, outcomes[0])
    assert all(p is None for p in outcomes[1:])


def test_verifier_notices_changed_sender_key_limits() -> None:
    outcomes = _outcomes_after("sender_keys.json",
                               lambda d: d["limits"].update(max_message_keys=1_999))
    assert len(outcomes) == 1 and outcomes[0] is not None and "limits" in outcomes[0]


def _bump(case: int, *path: str) -> Callable[[dict[str, Any]], None]:
    """Add 1 to the integer at ``path`` in case ``case``."""
    def change(data: dict[str, Any]) -> None:
        holder = data["cases"][case]
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] += 1
    return change


def _flip(case: int, field: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["cases"][case].update({field: _flip_hex(d["cases"][case][field])})


@pytest.mark.parametrize(("case", "change", "problem"), [
    (0, _flip(0, "ephemeral_private"), "v1 message"),
    (0, _bump(0, "server_key_id"), "server certificate"),
    (1, _bump(1, "sender", "expiration"), "sender certificate"),
    (1, _flip(1, "recipient_identity_seed"), ""),  # any failure: the seed may be refused
    (2, _flip(2, "m"), "v2 SentMessage"),
    (2, _flip(2, "sent"), "v2 SentMessage"),
])
def test_verifier_notices_a_changed_sealed_sender_input(
        case: int, change: Callable[[dict[str, Any]], None], problem: str) -> None:
    outcomes = _outcomes_after("sealed_sender.json", change)
    assert outcomes[case] is not None and problem in outcomes[case], outcomes[case]
    assert all(p is None for i, p in enumerate(outcomes) if i != case)


@pytest.mark.parametrize("case", [0, 2])
def test_verifier_notices_a_changed_sealed_sender_verdict(case: int) -> None:
    def change(data: dict[str, Any]) -> None:
        data["cases"][case]["validation"][2]["result"] = "ok"  # expiration + 1
        data["cases"][case]["refusals"][-1]["error"] = "InvalidEncoding"
    outcomes = _outcomes_after("sealed_sender.json", change)
    assert outcomes[case] is not None and "validation" in outcomes[case], outcomes[case]
    data = json.loads((VECTORS / "sealed_sender.json").read_text())
    data["cases"][case]["refusals"][-1]["error"] = "InvalidEncoding"
    outcomes = [problem for _, problem in check_file(data)]
    assert outcomes[case] is not None and "refusal" in outcomes[case], outcomes[case]


def test_sender_key_fast_forward_equals_encrypting_every_message() -> None:
    """vectors verify makes a sender's message at iteration n without the
    messages before it (sender_key_at); that is what encrypting them gives."""
    import uuid

    from signalish._primitives import DeterministicRandom
    from signalish._profile import PROFILES
    from signalish._sender_keys import SenderKeyRecord
    from signalish.cli.vector_check import sender_key_at

    for profile in PROFILES.values():
        record = SenderKeyRecord.create(uuid.UUID(int=7), profile, DeterministicRandom(b"ff"))
        jumped = sender_key_at(record, 5)
        for i in range(5):
            record.encrypt(f"message {i}".encode())
        assert record.encrypt(b"five") == jumped.encrypt(b"five")
        assert record.to_bytes() == jumped.to_bytes()


def test_sealed_sender_contents_are_the_documented_messages() -> None:
    """vectors/README.md says where each USMC's contents come from."""
    groups = json.loads((VECTORS / "sender_keys.json").read_text())
    group = next(c for c in groups["cases"] if c["name"] == "libsignal_v4-in-order")
    talk = json.loads((VECTORS / "conversations.json").read_text())
    chat = next(c for c in talk["cases"] if c["name"] == "libsignal_v4-in-order")
    reply = next(e for e in chat["events"] if e["op"] == "send" and e["type"] == 2)
    sealed = {c["name"]: c["usmc"]["contents"]
              for c in json.loads((VECTORS / "sealed_sender.json").read_text())["cases"]}
    assert sealed == {"v1-signal-message": reply["message"],
                      "v1-sender-key-message": group["messages"][0]["message"],
                      "v2-two-recipients": group["messages"][1]["message"]}
    assert bytes.fromhex(reply["plaintext"]) == b"reply 0"


def _set_data(case: int, **fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["cases"][case]["data"].update(fields)


def _own_id_in_fails_under(case: int) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["cases"][case].update(fails_under=[d["cases"][case]["provisioning_id"]])


def _genuine_as_refusal(case: int) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["cases"][case]["refusals"][0].update(envelope=d["cases"][case]["envelope"])


@pytest.mark.parametrize(("case", "change", "problem"), [
    (0, _flip(0, "request_private"), "request public key"),
    (0, _flip(0, "id_random"), "provisioning id"),
    (2, lambda d: d["cases"][2].update(provisioning_id="00112233-4455-6677-8899-aabbccddeefe"),
     "QR string"),
    (1, _flip(1, "request_public"), "request public key"),
    (1, lambda d: d["cases"][1].update(qr_text=d["cases"][1]["qr_text"].replace("v=1", "v=2")),
     "QR string"),
    (1, _flip(1, "ephemeral_private"), "envelope"),
    (1, _flip(1, "envelope"), "envelope"),
    (0, _flip(0, "data_bytes"), "data bytes"),
    (0, _set_data(0, code="123457"), "data bytes"),
    (1, _set_data(1, name="Zoe's laptop"), "data bytes"),
    (2, _set_data(2, device_id=0xFFFFFFFE), "data bytes"),
    (2, _set_data(2, extra="00"), "data bytes"),
    (0, _set_data(0, account_name="alice"), "unknown fields"),
    (0, _own_id_in_fails_under(0), "envelope under provisioning id"),
    (2, _own_id_in_fails_under(2), "envelope under provisioning id"),
    (1, lambda d: d["cases"][1]["refusals"][0].update(error="InvalidKey"), "refusal 0"),
    (1, lambda d: d["cases"][1]["refusals"][3].update(error="AuthenticationError"), "refusal 3"),
    (2, _genuine_as_refusal(2), "refusal 0"),
])
def test_verifier_notices_a_changed_provisioning_case(
        case: int, change: Callable[[dict[str, Any]], None], problem: str) -> None:
    outcomes = _outcomes_after("provisioning.json", change)
    assert outcomes[case] is not None and problem in outcomes[case], outcomes[case]
    assert all(p is None for i, p in enumerate(outcomes) if i != case)
