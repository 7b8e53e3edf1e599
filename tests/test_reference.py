"""The independent reference (tests/reference/) recomputes every vector that
depends on signalish's own choices.

The vectors were produced by signalish; the reference was written from the
specifications and signalish's documentation and shares no code with it.
Agreement byte for byte (messages, refusals by name, final session records,
bundles, backups) is the evidence that both follow the documents.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import load_vectors

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
import signal_reference as ref  # noqa: E402

CONVERSATIONS = load_vectors("conversations.json")["cases"]
X3DH = load_vectors("x3dh.json")["cases"]
BACKUPS = load_vectors("backups.json")["cases"]
h = bytes.fromhex


@pytest.mark.parametrize("case", CONVERSATIONS, ids=lambda c: c["name"])
def test_reference_recomputes_conversation(case: dict[str, Any]) -> None:
    parties = {who: ref.Party(case["profile"], keys, case["random"][who],
                              case["header_encryption"], case["limits"], case["max_archived"])
               for who, keys in case["parties"].items()}
    messages: list[bytes] = []
    delivered = 0
    for number, event in enumerate(case["events"]):
        where = f"event {number} ({event['op']})"
        if event["op"] == "initiate":
            kem = event["kem_ciphertext"] and (h(event["kem_ciphertext"]),
                                               h(event["kem_shared_secret"]))
            if kem and ref.PROFILES[case["profile"]]["kem"] == "Kyber1024":
                # Round-3 Kyber encapsulates from its 32 random bytes with
                # kyber-py: the recorded values must be what it computes.
                public = ref.parse_bundle(h(event["bundle"]))["kem"]
                assert ref.kyber_encapsulate(public, h(event["kem_encaps_m"])) == kem, where
            parties[event["from"]].initiate(h(event["bundle"]), kem or None)
        elif event["op"] == "delete_session":
            parties[event["who"]].record = None
        elif event["op"] == "send" and "error" in event:
            with pytest.raises(ref.Refused) as refused:
                parties[event["from"]].send(None, h(event["plaintext"]))
            assert refused.value.name == event["error"], where
        elif event["op"] == "send":
            message = parties[event["from"]].send(h(event["session"]), h(event["plaintext"]))
            assert message.hex() == event["message"], f"{where}: message bytes differ"
            messages.append(message)
        else:
            data = h(event["bytes"]) if "bytes" in event else messages[event["message"]]
            party = parties[event["to"]]
            if "error" in event:
                before = party.record_bytes()
                with pytest.raises(ref.Refused) as refused:
                    party.receive(data, event["now"])
                assert refused.value.name == event["error"], f"{where}: {refused.value}"
                assert party.record_bytes() == before, f"{where}: a refusal changed the state"
            else:
                assert party.receive(data, event["now"]).hex() == event["plaintext"], where
                delivered += 1
    assert delivered > 0
    assert all(not p.draws for p in parties.values()), "randomness left over"
    for who, party in parties.items():
        assert party.record_bytes().hex() == case["final_state"][who], f"{who}'s final state"


@pytest.mark.parametrize("case", X3DH, ids=lambda c: f"{c['profile']}-{c['protocol']}"
                         f"-{'otk' if c['one_time_prekey'] else 'no-otk'}"
                         + ("-last-resort-kem" if c["kem_prekey"]
                            and c["kem_prekey"]["last_resort"] else ""))
def test_reference_recomputes_x3dh(case: dict[str, Any]) -> None:
    """The bundle from the listed keys and ids, then both sides of the handshake."""
    otk_in, kem_in = case["one_time_prekey"], case["kem_prekey"]
    bundle = ref.build_bundle(
        case["profile"], h(case["bob_identity_seed"]), case["registration_id"],
        case["device_id"], (case["signed_prekey"]["id"], h(case["signed_prekey"]["private"])),
        otk_in and (otk_in["id"], h(otk_in["private"])),
        kem_in and (kem_in["id"], h(kem_in["seed"]), kem_in["last_resort"]))
    assert bundle.hex() == case["bundle"]
    alice = ref.identity_private(h(case["alice_identity_seed"]))
    bob = ref.identity_private(h(case["bob_identity_seed"]))
    spk = h(case["signed_prekey"]["private"])
    ek = h(case["alice_ephemeral_private"])
    otk = otk_in and h(otk_in["private"])
    km_alice = ref.dh(alice, ref.public_of(spk)) + ref.dh(ek, ref.public_of(bob)) \
        + ref.dh(ek, ref.public_of(spk)) + (ref.dh(ek, ref.public_of(otk)) if otk else b"")
    km_bob = ref.dh(spk, ref.public_of(alice)) + ref.dh(bob, ref.public_of(ek)) \
        + ref.dh(spk, ref.public_of(ek)) + (ref.dh(otk, ref.public_of(ek)) if otk else b"")
    assert km_alice == km_bob
    profile = ref.PROFILES[case["profile"]]
    pq = kem_in is not None
    if pq:
        secret = ref.kem_decapsulate(case["profile"], h(kem_in["seed"]),
                                     h(case["kem_ciphertext"]))
        assert secret.hex() == case["kem_shared_secret"]
        if profile["kem"] == "Kyber1024":  # round 3, from its 32 random bytes (kyber-py)
            ct, ss = ref.kyber_encapsulate(ref.kem_public(h(kem_in["seed"])),
                                           h(case["kem_encaps_m"]))
            assert (ct.hex(), ss.hex()) == (case["kem_ciphertext"], case["kem_shared_secret"])
        km_alice += secret
    info = profile["pqxdh"] if pq else profile["x3dh"]
    sk = ref.hkdf(b"", b"\xff" * 32 + km_alice, info, profile["sk"])
    assert sk.hex() == case["shared_secret"]
    ad = profile["prefix"] + ref.public_of(alice) + profile["prefix"] + ref.public_of(bob)
    assert ad.hex() == case["associated_data"]
    header = ref.initial_header(ref.public_of(alice), ref.public_of(ek),
                                case["signed_prekey"]["id"], otk_in and otk_in["id"],
                                kem_in and kem_in["id"],
                                case["kem_ciphertext"] and h(case["kem_ciphertext"]))
    assert header.hex() == case["initial_header"]


@pytest.mark.parametrize("case", BACKUPS, ids=lambda c: f"t{c['params']['iterations']}"
                         f"-m{c['params']['memory_kib']}")
def test_reference_recomputes_backup(case: dict[str, Any]) -> None:
    """The blob from its inputs (salt, nonce, parameters, store contents), and
    the contents from the documented layout."""
    params = case["params"]
    password = case["password"].encode()
    output, key, verifier = ref.backup_keys(password, h(case["salt"]), params["iterations"],
                                            params["lanes"], params["memory_kib"])
    assert output.hex() == case["argon2id_output"]
    contents = ref.backup_contents(h(case["identity_seed"]), h(case["prekey_ring"]) or None,
                                   [(a, h(k)) for a, k in case["identities"].items()],
                                   [(a, h(r)) for a, r in case["sessions"].items()])
    assert contents.hex() == case["contents"]
    blob = ref.create_backup(password, h(case["salt"]), h(case["nonce"]), params["iterations"],
                             params["lanes"], params["memory_kib"], contents)
    assert blob.hex() == case["backup"]
    assert ref.public_of(ref.identity_private(h(case["identity_seed"]))).hex() \
        == case["identity_public"]


def test_reference_imports_nothing_of_signalish() -> None:
    """The reference stays independent: no module of signalish or of the
    vector generator (whose KEM code is signalish's approach), only the
    standard library, ``cryptography`` and kyber-py."""
    import ast

    tree = ast.parse(Path(ref.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module is not None
            roots.add(node.module.split(".")[0])
    assert roots <= {"__future__", "copy", "hashlib", "hmac", "struct", "typing",
                     "cryptography", "kyber_py"}, roots
