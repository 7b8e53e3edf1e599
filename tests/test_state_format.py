"""Session state written by earlier format versions still loads and works.

tests/fixtures/state_v1.json was written once by format version 1 (see
make_state_fixture.py) and is never regenerated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from signalish import (
    CorruptState,
    DeterministicRandom,
    DuplicateMessage,
    IdentityKeyPair,
    MemoryStore,
    SessionManager,
    SessionRecord,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
V1 = json.loads((FIXTURES / "state_v1.json").read_text())


@pytest.mark.parametrize("case", V1["cases"],
                         ids=lambda c: f"{c['profile']}-he={c['header_encryption']}")
def test_v1_state_loads_and_decrypts(case: dict[str, Any]) -> None:
    record_bytes = bytes.fromhex(case["bob_record"])
    record = SessionRecord.from_bytes(record_bytes)
    assert record.to_bytes() == record_bytes  # re-encoding is stable
    assert record.current is not None
    assert record.current.header_encryption is case["header_encryption"]
    store = MemoryStore()
    with store.transaction():
        store.save_session("alice", record_bytes)
    assert record.profile.name == case["profile"]
    bob = SessionManager(IdentityKeyPair.from_bytes(bytes.fromhex(case["bob_identity"])), store,
                         record.profile, rng=DeterministicRandom(b"later"))
    for pending in case["pending"]:
        message = bytes.fromhex(pending["message"])
        assert bob.decrypt("alice", message, now=case["now"]).decode() == pending["plaintext"]
        with pytest.raises(DuplicateMessage):
            bob.decrypt("alice", message, now=case["now"])


def test_v1_state_bit_flips_are_detected() -> None:
    data = bytes.fromhex(V1["cases"][0]["bob_record"])
    for i in range(0, len(data), 3):
        with pytest.raises(CorruptState):
            SessionRecord.from_bytes(data[:i] + bytes((data[i] ^ 0x01,)) + data[i + 1:])
