"""Session state written by earlier format versions still loads and works.

tests/fixtures/state_vN.json were written once by format version N (see
make_state_fixture.py) and are never regenerated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from signalish import DeterministicRandom, IdentityKeyPair, MemoryStore, SessionManager
from signalish._session import SessionRecord
from signalish.errors import CorruptState, DuplicateMessage, StaleSession
from signalish._session import RECORD_VERSION
from signalish._encoding import add_digest
from signalish._storage import load_record, save_record
from helpers import session_rows

FIXTURES = Path(__file__).resolve().parent / "fixtures"
VERSIONS = {v: json.loads((FIXTURES / f"state_v{v}.json").read_text())
            for v in range(1, RECORD_VERSION + 1)}
CASES = [pytest.param(version, case, id=f"v{version}-{case['profile']}-"
                      f"he={case['header_encryption']}-ro={case.get('receive_only', False)}")
         for version, fixture in VERSIONS.items() for case in fixture["cases"]]


def test_every_format_version_has_a_fixture() -> None:
    assert sorted(VERSIONS) == list(range(1, RECORD_VERSION + 1))
    assert all(f["format_version"] == v for v, f in VERSIONS.items())
    assert any(c.get("receive_only") for c in VERSIONS[RECORD_VERSION]["cases"])


def _as_v1_rows(store: MemoryStore, record: SessionRecord) -> None:
    """Rewrite the stored rows of ``record`` as session row version 1 kept
    them (each session whole but for its stored keys, no counters row)."""
    with store.transaction():
        for session in record.sessions:
            v1 = add_digest(bytes((0x51, 1)) + session._encode(keys=False))
            store.save_session("alice", v1, b"s" + session.base_key)
            store.delete_session("alice", b"c" + session.base_key)


@pytest.mark.parametrize("layout", ["whole", "rows", "rows_v1"])
@pytest.mark.parametrize("version, case", CASES)
def test_stored_state_loads_and_decrypts(version: int, case: dict[str, Any], layout: str) -> None:
    """The record as a store from before the row layout held it (``whole``:
    the record as the head row), or written as rows (``rows_v1``: with
    session rows of version 1, from before counters rows); either way the
    next save leaves the record as rows of the current versions only."""
    record_bytes = bytes.fromhex(case["bob_record"])
    assert record_bytes[1] == version
    record = SessionRecord.from_bytes(record_bytes)
    rewritten = record.to_bytes()
    assert rewritten[1] == RECORD_VERSION
    assert SessionRecord.from_bytes(rewritten).to_bytes() == rewritten  # stable
    if version == RECORD_VERSION:
        assert rewritten == record_bytes
    assert record.current is not None
    assert record.current.header_encryption is case["header_encryption"]
    store = MemoryStore()
    with store.transaction():
        if layout == "whole":
            store.save_session("alice", record_bytes)
        else:
            save_record(store, "alice", SessionRecord.from_bytes(record_bytes), {})
    if layout == "rows_v1":
        _as_v1_rows(store, record)
        assert {part[:1] for part in session_rows(store)["alice"]} <= {b"", b"s", b"k"}
    assert record.profile.name == case["profile"]
    bob = SessionManager(IdentityKeyPair.from_bytes(bytes.fromhex(case["bob_identity"])), store,
                         record.profile, rng=DeterministicRandom(b"later"))
    if case.get("receive_only"):
        with pytest.raises(StaleSession):
            bob.encrypt("alice", b"not yet")
    for pending in case["pending"]:
        message = bytes.fromhex(pending["message"])
        assert bob.decrypt("alice", message, now=case["now"]).decode() == pending["plaintext"]
        with pytest.raises(DuplicateMessage):
            bob.decrypt("alice", message, now=case["now"])
    # "after the reply" carried a new ratchet key: every case can send now.
    assert bob.encrypt("alice", b"sending again")
    loaded = load_record(store, "alice")
    assert loaded is not None and loaded[1][b""][:2] == b"\x50\x03"  # a head row now
    assert session_rows(store) == {"alice": loaded[1]}  # and nothing but the record's rows
    for part, row in loaded[1].items():
        if part[:1] == b"s":
            assert row[:2] == b"\x51\x03" and b"c" + part[1:] in loaded[1]


def test_v1_state_bit_flips_are_detected() -> None:
    data = bytes.fromhex(VERSIONS[1]["cases"][0]["bob_record"])
    for i in range(0, len(data), 3):
        with pytest.raises(CorruptState):
            SessionRecord.from_bytes(data[:i] + bytes((data[i] ^ 0x01,)) + data[i + 1:])
