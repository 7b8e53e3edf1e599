"""The independent reference (tests/reference/) recomputes every vector.

The vectors were produced by signalish; the reference was written from the
specifications and signalish's format documentation and shares no code with
it.  Agreement byte for byte is the evidence that both follow the documents.
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


@pytest.mark.parametrize("case", CONVERSATIONS, ids=lambda c: c["name"])
def test_reference_recomputes_conversation(case: dict[str, Any]) -> None:
    parties = {who: ref.Party(case["profile"], keys, case["random"][who],
                              case["header_encryption"], case["limits"])
               for who, keys in case["parties"].items()}
    messages: list[bytes] = []
    refused = delivered = 0
    for number, event in enumerate(case["events"]):
        if event["op"] == "initiate":
            kem = event["kem_ciphertext"] and (bytes.fromhex(event["kem_ciphertext"]),
                                               bytes.fromhex(event["kem_shared_secret"]))
            parties[event["from"]].initiate(bytes.fromhex(event["bundle"]), kem or None)
        elif event["op"] == "send":
            message = parties[event["from"]].send(bytes.fromhex(event["session"]),
                                                  bytes.fromhex(event["plaintext"]))
            assert message.hex() == event["message"], f"event {number}: message bytes differ"
            messages.append(message)
        else:
            data = bytes.fromhex(event["bytes"]) if "bytes" in event else messages[event["message"]]
            if "error" in event:
                with pytest.raises(ref.Refused):
                    parties[event["to"]].receive(data)
                refused += 1
            else:
                assert parties[event["to"]].receive(data).hex() == event["plaintext"], number
                delivered += 1
    assert delivered > 0
    assert all(not p.draws for p in parties.values()), "randomness left over"
    assert refused == sum("error" in e for e in case["events"])


@pytest.mark.parametrize("case", X3DH, ids=lambda c: f"{c['profile']}-{c['protocol']}"
                         f"-{'otk' if c['one_time_prekey'] else 'no-otk'}")
def test_reference_recomputes_x3dh(case: dict[str, Any]) -> None:
    """Both sides of the handshake, from the listed private keys."""
    alice = ref.identity_private(bytes.fromhex(case["alice_identity_seed"]))
    bob = ref.identity_private(bytes.fromhex(case["bob_identity_seed"]))
    spk = bytes.fromhex(case["signed_prekey"]["private"])
    ek = bytes.fromhex(case["alice_ephemeral_private"])
    otk = case["one_time_prekey"] and bytes.fromhex(case["one_time_prekey"]["private"])
    km_alice = ref.dh(alice, ref.public_of(spk)) + ref.dh(ek, ref.public_of(bob)) \
        + ref.dh(ek, ref.public_of(spk)) + (ref.dh(ek, ref.public_of(otk)) if otk else b"")
    km_bob = ref.dh(spk, ref.public_of(alice)) + ref.dh(bob, ref.public_of(ek)) \
        + ref.dh(spk, ref.public_of(ek)) + (ref.dh(otk, ref.public_of(ek)) if otk else b"")
    assert km_alice == km_bob
    profile = ref.PROFILES[case["profile"]]
    pq = case["kem_prekey"] is not None
    if pq:
        from cryptography.hazmat.primitives.asymmetric import mlkem
        secret = mlkem.MLKEM1024PrivateKey.from_seed_bytes(
            bytes.fromhex(case["kem_prekey"]["seed"])).decapsulate(
            bytes.fromhex(case["kem_ciphertext"]))
        assert secret.hex() == case["kem_shared_secret"]
        km_alice += secret
    info = profile["pqxdh"] if pq else profile["x3dh"]
    sk = ref.hkdf(b"", b"\xff" * 32 + km_alice, info, profile["sk"])
    assert sk.hex() == case["shared_secret"]
    ad = profile["prefix"] + ref.public_of(alice) + profile["prefix"] + ref.public_of(bob)
    assert ad.hex() == case["associated_data"]
