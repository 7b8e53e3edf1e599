"""vectors/: valid against their schemas, reproducible, and verified.

The independent recomputation of the conversation and handshake vectors is in
test_reference.py; here signalish's own generator and verifier are tested.
"""

from __future__ import annotations

import json
from pathlib import Path

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
