"""signalish._spqr_kdf against libsignal-client 0.103.0's own bytes.

tests/fixtures/spqr_keys.json holds what libsignal wrote in one conversation
(messages 0..116, fields of its SessionRecords; tests/fixtures/make_spqr_keys.py
says where each value comes from).  From the SPQR seed alone these tests
rebuild, with _spqr_kdf and no session code, every SPQR key those messages
use, and check them where libsignal exposes them:

* every message's MAC and plaintext (the Triple Ratchet message keys, chain
  epochs 0 and 1), with the classical keys as a control that must fail;
* the chain and root keys libsignal stores, at chain epochs 0 and 1;
* the authenticator keys it stores, at braid epochs 1 and 2;
* MacHdr of epochs 1 and 2 and MacCt of epoch 1 as sent in chunks.

Epoch 1's ML-KEM-768 shared secret comes from the decapsulation key in A's
record and the ciphertext B sent, decapsulated with kyber-py (a test-only
oracle): the record holds FIPS 203's expanded 2400-byte key, and
``cryptography`` 50 builds ML-KEM-768 keys only from the 64-byte seed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from functools import cache
from pathlib import Path
from typing import Any, Callable, Final, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kyber_py.ml_kem import ML_KEM_768  # type: ignore[import-untyped]

from helpers import read_varint as _varint
from signalish._errors import InvalidArgument
from signalish._primitives import aes256_cbc_decrypt
from signalish._spqr_kdf import (
    ADD_EPOCH_LABEL,
    AUTH_UPDATE_LABEL,
    CHAIN_NEXT_LABEL,
    CIPHERTEXT_LABEL,
    EK_HEADER_LABEL,
    INIT_LABEL,
    MESSAGE_KEYS_LABEL,
    PROTOCOL_INFO,
    SCKA_KEY_LABEL,
    EpochKeys,
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
from signalish._wire_v3 import seal

FIXTURE: Final[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parent / "fixtures" / "spqr_keys.json").read_text())
MESSAGES: Final[list[dict[str, Any]]] = FIXTURE["messages"]["values"]
SEED: Final = bytes.fromhex(FIXTURE["seed"]["value"])
IDENTITY: Final = {p: bytes.fromhex(FIXTURE["identities"][p]) for p in "AB"}
DIRECTION: Final = {"A": "A2B", "B": "B2A"}

# SPQR field-5 message types (spqr_observed.md section 3) and data chunk counts.
HDR, EK, EK_CT1_ACK, CT1, CT2 = 1, 2, 3, 5, 6
DATA_CHUNKS: Final = {HDR: 3, EK: 36, CT1: 30, CT2: 5}  # 96, 1152, 960, 160 bytes


# --- reading the messages -----------------------------------------------------------




def _protobuf(data: bytes) -> dict[int, Any]:
    """Fields of a SignalMessage body: varints and length-delimited only."""
    out: dict[int, Any] = {}
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        if key & 7 == 0:
            out[key >> 3], i = _varint(data, i)
        else:
            assert key & 7 == 2
            size, i = _varint(data, i)
            out[key >> 3], i = data[i:i + size], i + size
    return out


class Spqr(NamedTuple):
    """SignalMessage field 5: 0x01, varint epoch, varint index, type, and for
    chunk-carrying types a varint chunk index and a 32-byte chunk."""

    epoch: int
    n: int
    type: int
    chunk_index: int | None
    chunk: bytes


class Message(NamedTuple):
    row: dict[str, Any]
    signed: bytes  # version byte and protobuf: what the MAC covers after the identities
    mac: bytes
    ciphertext: bytes
    spqr: Spqr


def _parse(row: dict[str, Any]) -> Message:
    data = bytes.fromhex(row["signal_message"])
    assert data[0] == 0x44
    fields = _protobuf(data[1:-8])
    raw = fields[5]
    assert raw[0] == 1
    epoch, i = _varint(raw, 1)
    index, i = _varint(raw, i)
    kind, i = raw[i], i + 1
    chunk_index, chunk = None, b""
    if i < len(raw):
        chunk_index, i = _varint(raw, i)
        chunk, i = raw[i:i + 32], i + 32
    assert i == len(raw)
    return Message(row, data[:-8], data[-8:], fields[4],
                   Spqr(epoch, index, kind, chunk_index, chunk))


PARSED: Final = [_parse(row) for row in MESSAGES]


def _payload(sender: str, epoch: int, kinds: tuple[int, ...]) -> bytes:
    """A chunked payload from its data chunks (the code is systematic: chunk
    k < n is bytes 32k..32k+32 of the payload)."""
    n = DATA_CHUNKS[kinds[0]]
    chunks = {m.spqr.chunk_index: m.spqr.chunk for m in PARSED
              if m.row["sender"] == sender and m.spqr.epoch == epoch and m.spqr.type in kinds}
    assert all(k in chunks for k in range(n)), "the fixture lacks a data chunk"
    return b"".join(chunks[k] for k in range(n))


# --- the key schedule, rebuilt from the seed ------------------------------------------


@cache
def _epoch1_secret() -> bytes:
    """Epoch 1 (A holds the decapsulation key, B encapsulated): KDF_OK of K."""
    dk = bytes.fromhex(FIXTURE["epoch1_decapsulation_key"]["value"])
    ct1, ct2 = _payload("B", 1, (CT1,)), _payload("B", 1, (CT2,))[:128]
    shared: bytes = ML_KEM_768.decaps(dk, ct1 + ct2)
    return scka_key(shared, 1)


def _epoch_keys(chain_epoch: int) -> EpochKeys:
    init = spqr_init(SEED)
    if chain_epoch == 0:
        return init
    assert chain_epoch == 1
    return add_epoch(init.root, _epoch1_secret())


def _chain_key(direction: str, chain_epoch: int, steps: int) -> bytes:
    keys = _epoch_keys(chain_epoch)
    ck = keys.a2b if direction == "A2B" else keys.b2a
    for n in range(1, steps + 1):
        ck = chain_step(ck, n).chain_key
    return ck


def _spqr_message_key(direction: str, chain_epoch: int, n: int) -> bytes:
    return chain_step(_chain_key(direction, chain_epoch, n - 1), n).message_key


def _message_id(m: Message) -> str:
    return (f"m{m.row['i']}-{m.row['sender']}-epoch{m.spqr.epoch}-n{m.spqr.n}"
            f"-type{m.spqr.type}")


# --- 1. evidence from libsignal -------------------------------------------------------


def test_the_fixture_covers_two_chain_epochs_each_way() -> None:
    for sender in "AB":
        sent = [m.spqr.epoch for m in PARSED if m.row["sender"] == sender]
        assert sent.count(1) >= 10 and sent.count(2) >= 1, sender


@pytest.mark.parametrize("m", PARSED, ids=_message_id)
def test_message_keys_open_libsignal_messages(m: Message) -> None:
    """Wire epoch e takes chain epoch e-1's key number n; the Triple Ratchet
    keys then verify the MAC and decrypt, and the classical keys do not."""
    sender, receiver = m.row["sender"], m.row["receiver"]
    dr_mk = hmac.digest(bytes.fromhex(m.row["dr_chain_key"]), b"\x01", "sha256")
    spqr_mk = _spqr_message_key(DIRECTION[sender], m.spqr.epoch - 1, m.spqr.n)
    keys = message_keys(dr_mk, spqr_mk)
    identities = IDENTITY[sender] + IDENTITY[receiver]
    assert hmac.digest(keys.mac_key, identities + m.signed, "sha256")[:8] == m.mac
    plaintext = aes256_cbc_decrypt(keys.cipher_key, keys.iv, m.ciphertext)
    assert plaintext == m.row["plaintext"].encode()
    classical = message_keys(dr_mk, None)
    assert hmac.digest(classical.mac_key, identities + m.signed, "sha256")[:8] != m.mac


@pytest.mark.parametrize("entry", FIXTURE["chains"]["values"], ids=lambda e: e["record"])
def test_chains_match_libsignal_records(entry: dict[str, Any]) -> None:
    """spqr_init (chain epoch 0) and add_epoch (chain epoch 1, from the epoch
    secret computed from the wire) give the root and chain keys stored in
    1.15.2, with chain_step for the messages already counted."""
    epoch = entry["chain_epoch"]
    assert _epoch_keys(epoch).root.hex() == entry["root"]
    mine = entry["direction"]
    theirs = "B2A" if mine == "A2B" else "A2B"
    for (n, ck), direction in ((entry["send"], mine), (entry["recv"], theirs)):
        assert _chain_key(direction, epoch, n).hex() == ck


@pytest.mark.parametrize("entry", FIXTURE["authenticators"]["values"],
                         ids=lambda e: f"{e['record']}-epoch{e['braid_epoch']}")
def test_authenticator_matches_libsignal_records(entry: dict[str, Any]) -> None:
    auth = auth_init(SEED)
    if entry["braid_epoch"] == 2:
        auth = auth_update(auth.root_key, 1, _epoch1_secret())
    assert (auth.root_key.hex(), auth.mac_key.hex()) == (entry["root_key"], entry["mac_key"])


@pytest.mark.parametrize(("sender", "epoch"), [("A", 1), ("B", 2)])
def test_header_mac_matches_the_wire(sender: str, epoch: int) -> None:
    """MacHdr of epoch 1 is keyed by auth_init's mac key, epoch 2's by the
    key after Update(1)."""
    payload = _payload(sender, epoch, (HDR,))
    auth = auth_init(SEED)
    if epoch == 2:
        auth = auth_update(auth.root_key, 1, _epoch1_secret())
    assert mac_header(auth.mac_key, epoch, payload[:64]) == payload[64:]


def test_epoch1_ciphertext_mac_matches_the_wire() -> None:
    ct1, ct2_mac = _payload("B", 1, (CT1,)), _payload("B", 1, (CT2,))
    auth = auth_update(auth_init(SEED).root_key, 1, _epoch1_secret())
    assert mac_ciphertext(auth.mac_key, 1, ct1 + ct2_mac[:128]) == ct2_mac[128:]


def test_the_decapsulation_key_belongs_to_epoch1() -> None:
    """Fixture integrity: the record's dk holds the encapsulation key A sent
    (ek_vector || rho, FIPS 203 dk layout), and the header commits to it."""
    dk = bytes.fromhex(FIXTURE["epoch1_decapsulation_key"]["value"])
    header = _payload("A", 1, (HDR,))[:64]
    ek_vector = _payload("A", 1, (EK, EK_CT1_ACK))
    assert dk[1152:2336] == ek_vector + header[:32]
    assert hashlib.sha3_256(ek_vector + header[:32]).digest() == header[32:]


# --- 2. labels ----------------------------------------------------------------------


@pytest.mark.parametrize(("label", "text", "size"), [
    (INIT_LABEL, "Signal PQ Ratchet V1 Chain  Start", 33),
    (ADD_EPOCH_LABEL, "Signal PQ Ratchet V1 Chain Add Epoch", 36),
    (CHAIN_NEXT_LABEL, "Signal PQ Ratchet V1 Chain Next", 31),
    (PROTOCOL_INFO, "Signal_PQCKA_V1_MLKEM768", 24),
    (AUTH_UPDATE_LABEL, "Signal_PQCKA_V1_MLKEM768:Authenticator Update", 45),
    (SCKA_KEY_LABEL, "Signal_PQCKA_V1_MLKEM768:SCKA Key", 33),
    (EK_HEADER_LABEL, "Signal_PQCKA_V1_MLKEM768:ekheader", 33),
    (CIPHERTEXT_LABEL, "Signal_PQCKA_V1_MLKEM768:ciphertext", 35),
    (MESSAGE_KEYS_LABEL, "WhisperMessageKeys", 18),
], ids=lambda v: v if isinstance(v, str) else None)
def test_label_bytes(label: bytes, text: str, size: int) -> None:
    assert label == text.encode("ascii") and len(label) == size


def test_the_start_label_has_two_spaces() -> None:
    assert INIT_LABEL.hex() == ("5369676e616c205051205261746368657420563120"
                                "436861696e20205374617274")


# --- 3. validation ------------------------------------------------------------------

K = bytes(32)
BAD_KEYS: Final = [b"", bytes(31), bytes(33), bytearray(32), "x" * 32]
BAD_EPOCHS: Final = [-1, 2**64, True, 1.0, "1"]
BAD_INDICES: Final = [0, -1, 2**32, False, 1.0]

CALLS: Final[list[tuple[str, Callable[..., object], tuple[object, ...], int]]] = [
    # (name, function, good arguments, position of a 32-byte key argument)
    ("spqr_init", spqr_init, (K,), 0),
    ("add_epoch-root", add_epoch, (K, K), 0),
    ("add_epoch-secret", add_epoch, (K, K), 1),
    ("chain_step", chain_step, (K, 1), 0),
    ("auth_init", auth_init, (K,), 0),
    ("auth_update-root", auth_update, (K, 1, K), 0),
    ("auth_update-key", auth_update, (K, 1, K), 2),
    ("scka_key", scka_key, (K, 1), 0),
    ("mac_header", mac_header, (K, 1, bytes(64)), 0),
    ("mac_ciphertext", mac_ciphertext, (K, 1, bytes(1088)), 0),
    ("message_keys-dr", message_keys, (K, K), 0),
    ("message_keys-spqr", message_keys, (K, K), 1),
]


@pytest.mark.parametrize(("function", "args", "position"),
                         [c[1:] for c in CALLS], ids=[c[0] for c in CALLS])
def test_keys_must_be_32_bytes(function: Callable[..., object], args: tuple[object, ...],
                               position: int) -> None:
    function(*args)
    for bad in BAD_KEYS:
        with pytest.raises(InvalidArgument):
            function(*args[:position], bad, *args[position + 1:])


@pytest.mark.parametrize("function", [
    lambda e: auth_update(K, e, K),
    lambda e: scka_key(K, e),
    lambda e: mac_header(K, e, bytes(64)),
    lambda e: mac_ciphertext(K, e, bytes(1088)),
], ids=["auth_update", "scka_key", "mac_header", "mac_ciphertext"])
def test_epochs_are_u64(function: Callable[[object], object]) -> None:
    function(0)
    function(2**64 - 1)
    for bad in BAD_EPOCHS:
        with pytest.raises(InvalidArgument):
            function(bad)


def test_indices_are_1_to_u32_max() -> None:
    chain_step(K, 1)
    chain_step(K, 2**32 - 1)
    for bad in BAD_INDICES:
        with pytest.raises(InvalidArgument):
            chain_step(K, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 63, 65, 96])
def test_headers_are_64_bytes(size: int) -> None:
    with pytest.raises(InvalidArgument):
        mac_header(K, 1, bytes(size))


@pytest.mark.parametrize("size", [0, 960, 1087, 1089, 1120])
def test_ciphertexts_are_ct1_and_ct2(size: int) -> None:
    with pytest.raises(InvalidArgument):
        mac_ciphertext(K, 1, bytes(size))


# --- properties ---------------------------------------------------------------------

keys32 = st.binary(min_size=32, max_size=32)


@given(dr_mk=keys32, plaintext=st.binary(max_size=64))
def test_without_spqr_the_keys_are_version_3s(dr_mk: bytes, plaintext: bytes) -> None:
    """message_keys(mk, None) opens what _wire_v3 seals with mk."""
    identities = bytes(33) + b"\x05" * 33
    sealed = seal(dr_mk, b"\x09" * 32, 0, 0, plaintext, identities)
    keys = message_keys(dr_mk, None)
    assert hmac.digest(keys.mac_key, identities + sealed[:-8], "sha256")[:8] == sealed[-8:]
    body = _protobuf(sealed[1:-8])
    assert aes256_cbc_decrypt(keys.cipher_key, keys.iv, body[4]) == plaintext


@given(dr_mk=keys32, spqr_mk=keys32)
def test_the_spqr_key_changes_every_message_key(dr_mk: bytes, spqr_mk: bytes) -> None:
    with_spqr, classical = message_keys(dr_mk, spqr_mk), message_keys(dr_mk, None)
    assert [len(k) for k in with_spqr] == [32, 32, 16]
    # RFC 5869: an absent salt is HashLen zero bytes, so only that key is neutral.
    if spqr_mk != bytes(32):
        assert all(a != b for a, b in zip(with_spqr, classical))
    else:
        assert with_spqr == classical


@given(ck=keys32, n=st.integers(1, 2**32 - 1), m=st.integers(1, 2**32 - 1))
def test_chain_step_binds_the_index(ck: bytes, n: int, m: int) -> None:
    a, b = chain_step(ck, n), chain_step(ck, m)
    assert [len(x) for x in a] == [32, 32] and a.chain_key != a.message_key
    assert (a == b) == (n == m)


@given(seed=keys32, es=keys32)
def test_epoch_keys_are_three_distinct_keys(seed: bytes, es: bytes) -> None:
    for keys in (spqr_init(seed), add_epoch(seed, es)):
        assert [len(k) for k in keys] == [32, 32, 32] and len(set(keys)) == 3


@given(root=keys32, key=keys32, e=st.integers(0, 2**64 - 1), f=st.integers(0, 2**64 - 1))
def test_every_epoch_dependent_output_binds_the_epoch(root: bytes, key: bytes, e: int,
                                                      f: int) -> None:
    same = e == f
    assert (auth_update(root, e, key) == auth_update(root, f, key)) == same
    assert (scka_key(key, e) == scka_key(key, f)) == same
    assert (mac_header(root, e, bytes(64)) == mac_header(root, f, bytes(64))) == same
    assert (mac_ciphertext(root, e, bytes(1088)) == mac_ciphertext(root, f, bytes(1088))) == same
