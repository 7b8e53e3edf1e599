"""The SPQR chunk erasure code (signalish._primitives.erasure).

Three kinds of check:

* libsignal's own chunks (tests/fixtures/spqr_chunks.json, captured from
  libsignal-client 0.103.0 by tests/fixtures/make_spqr_chunks.py): our
  encoder must reproduce every parity chunk byte for byte, and our decoder
  must rebuild every payload from any n of them;
* the field arithmetic against a slow carry-less multiply written here, and
  the encoder against a slow Lagrange interpolation built on it;
* properties for all payloads: any n distinct indices rebuild, fewer never
  do, duplicates change nothing, the state encodings round-trip and refuse
  every truncation.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signalish._errors import (
    DecodeError,
    InvalidArgument,
    InvalidEncoding,
    InvalidLength,
    TrailingBytes,
    TruncatedInput,
)
from signalish._primitives.erasure import (
    CHUNK_SIZE,
    MAX_CHUNK_INDEX,
    MAX_PAYLOAD_SIZE,
    Decoder,
    Encoder,
    gf_inv,
    gf_mul,
)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "spqr_chunks.json"
STREAMS: list[dict[str, Any]] = json.loads(FIXTURE.read_text())["streams"]
SIZES = {"Hdr": 96, "Ek": 1152, "Ct1": 960, "Ct2": 160}


def chunks_of(stream: dict[str, Any]) -> dict[int, bytes]:
    return {int(i): bytes.fromhex(c) for i, c in stream["chunks"].items()}


def payload_of(stream: dict[str, Any]) -> bytes:
    n = stream["size"] // CHUNK_SIZE
    chunks = chunks_of(stream)
    return b"".join(chunks[i] for i in range(n))


def decode(size: int, chunks: list[tuple[int, bytes]]) -> bytes | None:
    decoder = Decoder(size)
    for index, chunk in chunks:
        decoder.add_chunk(index, chunk)
    return decoder.message()


def stream_ids(stream: dict[str, Any]) -> str:
    return str(stream["id"])


# --- libsignal's chunks --------------------------------------------------------------


@pytest.mark.parametrize("stream", STREAMS, ids=stream_ids)
def test_fixture_streams_hold_parity(stream: dict[str, Any]) -> None:
    # Without parity chunks the comparisons below would prove nothing.
    chunks = chunks_of(stream)
    n = stream["size"] // CHUNK_SIZE
    assert stream["size"] == SIZES[stream["kind"]]
    assert set(range(n)) <= set(chunks)
    assert len([i for i in chunks if i >= n]) >= 4
    assert all(len(c) == CHUNK_SIZE for c in chunks.values())


@pytest.mark.parametrize("stream", STREAMS, ids=stream_ids)
def test_encoder_reproduces_every_libsignal_chunk(stream: dict[str, Any]) -> None:
    encoder = Encoder(payload_of(stream))
    chunks = chunks_of(stream)
    for index, chunk in chunks.items():
        assert encoder.chunk(index) == chunk, f"chunk {index}"
    if stream["source"]["complete"]:
        # next_chunk emits libsignal's stream in libsignal's order.
        assert [encoder.next_chunk() for _ in chunks] == sorted(chunks.items())


@pytest.mark.parametrize("stream", STREAMS, ids=stream_ids)
def test_decoder_rebuilds_from_the_last_n_chunks(stream: dict[str, Any]) -> None:
    n = stream["size"] // CHUNK_SIZE
    last = sorted(chunks_of(stream).items())[-n:]
    assert decode(stream["size"], last) == payload_of(stream)


@pytest.mark.parametrize("stream", STREAMS, ids=stream_ids)
def test_decoder_rebuilds_from_any_n_in_any_order(stream: dict[str, Any]) -> None:
    n = stream["size"] // CHUNK_SIZE
    items = sorted(chunks_of(stream).items())
    parity = [item for item in items if item[0] >= n]
    rng = random.Random(stream["id"])
    for trial in range(12):
        chosen = rng.sample(items, n)
        if trial == 0:
            # As many parity chunks as there are, the rest data chunks.
            chosen = parity[:n] + items[: n - len(parity[:n])]
        rng.shuffle(chosen)
        decoder = Decoder(stream["size"])
        for count, (index, chunk) in enumerate(chosen, 1):
            decoder.add_chunk(index, chunk)
            assert decoder.has_message() == (count == n)
        assert decoder.message() == payload_of(stream)


def test_decoded_header_commits_to_decoded_ek_vector() -> None:
    """A check that does not assume the code: the Hdr payload is
    rho || SHA3-256(ek_vector || rho) || mac, so the two payloads that one
    sender sent in one epoch must fit together, each decoded from parity."""
    hdr_stream = next(s for s in STREAMS if s["id"] == "runs50-A->B-e1-Hdr")
    ek_stream = next(s for s in STREAMS if s["id"] == "runs50-A->B-e1-Ek")
    hdr = decode(96, sorted(chunks_of(hdr_stream).items())[-3:])
    ek_vector = decode(1152, sorted(chunks_of(ek_stream).items())[-36:])
    assert hdr is not None and ek_vector is not None
    assert hashlib.sha3_256(ek_vector + hdr[:32]).digest() == hdr[32:64]


# --- field arithmetic -------------------------------------------------------------------


def slow_mul(a: int, b: int) -> int:
    """Carry-less multiplication, then reduction mod x^16+x^12+x^3+x+1."""
    product = 0
    for bit in range(16):
        if b >> bit & 1:
            product ^= a << bit
    for bit in range(30, 15, -1):
        if product >> bit & 1:
            product ^= 0x1100B << (bit - 16)
    return product


elements = st.integers(0, 0xFFFF)


@given(elements, elements)
def test_mul_matches_the_slow_reference(a: int, b: int) -> None:
    assert gf_mul(a, b) == slow_mul(a, b)


def test_mul_matches_the_slow_reference_on_a_grid() -> None:
    rng = random.Random(1)
    edges = [0, 1, 2, 3, 0x8000, 0x8001, 0xFFFE, 0xFFFF, 0x100B, 0x1100B & 0xFFFF]
    samples = edges + [rng.randrange(0x10000) for _ in range(150)]
    for a in samples:
        for b in samples:
            assert gf_mul(a, b) == slow_mul(a, b), (a, b)


def test_every_nonzero_element_has_its_inverse() -> None:
    for a in range(1, 0x10000):
        assert slow_mul(a, gf_inv(a)) == 1, a


def test_x_is_primitive() -> None:
    # The tables rest on it: the powers of x reach every non-zero element.
    seen = set()
    power = 1
    for _ in range(0xFFFF):
        seen.add(power)
        power = slow_mul(power, 2)
    assert power == 1 and len(seen) == 0xFFFF


@given(elements, elements, elements)
def test_field_laws(a: int, b: int, c: int) -> None:
    assert gf_mul(a, b ^ c) == gf_mul(a, b) ^ gf_mul(a, c)
    assert gf_mul(a, gf_mul(b, c)) == gf_mul(gf_mul(a, b), c)
    assert gf_mul(a, b) == gf_mul(b, a)


@pytest.mark.parametrize("bad", [-1, 0x10000, True, 1.0, "1"])
def test_field_arguments_are_checked(bad: Any) -> None:
    with pytest.raises(InvalidArgument):
        gf_mul(bad, 1)
    with pytest.raises(InvalidArgument):
        gf_inv(bad)


def test_zero_has_no_inverse() -> None:
    with pytest.raises(InvalidArgument):
        gf_inv(0)


# --- the encoder against a slow Lagrange interpolation ------------------------------------


def slow_chunk(payload: bytes, x: int) -> bytes:
    """P_j(x) by Lagrange's formula with slow_mul, inverses by brute force
    exponentiation (a^65534)."""
    def inverse(a: int) -> int:
        result, base, e = 1, a, 0xFFFE
        while e:
            if e & 1:
                result = slow_mul(result, base)
            base = slow_mul(base, base)
            e >>= 1
        return result

    n = len(payload) // CHUNK_SIZE
    weights = []
    for t in range(n):
        num = den = 1
        for s in range(n):
            if s != t:
                num = slow_mul(num, x ^ s)
                den = slow_mul(den, t ^ s)
        weights.append(slow_mul(num, inverse(den)))
    out = b""
    for j in range(16):
        word = 0
        for t in range(n):
            y = int.from_bytes(payload[CHUNK_SIZE * t + 2 * j : CHUNK_SIZE * t + 2 * j + 2], "big")
            word ^= slow_mul(weights[t], y)
        out += word.to_bytes(2, "big")
    return out


@given(st.integers(1, 6).flatmap(lambda n: st.binary(min_size=32 * n, max_size=32 * n)),
       st.integers(0, MAX_CHUNK_INDEX))
def test_encoder_matches_slow_lagrange(payload: bytes, index: int) -> None:
    assert Encoder(payload).chunk(index) == slow_chunk(payload, index)


def test_one_chunk_payload_repeats_itself() -> None:
    # A polynomial of degree 0 is constant.
    payload = bytes(range(32))
    encoder = Encoder(payload)
    assert {encoder.chunk(i) for i in (0, 1, 2, 1000, MAX_CHUNK_INDEX)} == {payload}


# --- properties -------------------------------------------------------------------------------

payloads = st.integers(1, 40).flatmap(lambda n: st.binary(min_size=32 * n, max_size=32 * n))
indices = st.one_of(st.integers(0, 90), st.integers(0, MAX_CHUNK_INDEX))


@st.composite
def payload_and_indices(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    payload = draw(payloads)
    n = len(payload) // CHUNK_SIZE
    chosen = draw(st.lists(indices, min_size=n, max_size=n, unique=True))
    return payload, chosen


@given(payload_and_indices())
def test_any_n_distinct_indices_rebuild(case: tuple[bytes, list[int]]) -> None:
    payload, chosen = case
    encoder = Encoder(payload)
    decoder = Decoder(len(payload))
    for count, index in enumerate(chosen, 1):
        assert decoder.message() is None
        decoder.add_chunk(index, encoder.chunk(index))
        assert decoder.held == count
    assert decoder.has_message()
    assert decoder.message() == payload


@given(payload_and_indices())
def test_fewer_than_n_never_yield_a_message(case: tuple[bytes, list[int]]) -> None:
    payload, chosen = case
    encoder = Encoder(payload)
    decoder = Decoder(len(payload))
    for index in chosen[:-1]:
        decoder.add_chunk(index, encoder.chunk(index))
        decoder.add_chunk(index, encoder.chunk(index))  # repeats do not count
        assert not decoder.has_message()
        assert decoder.message() is None


@given(payload_and_indices(), st.data())
def test_duplicates_and_conflicting_duplicates_change_nothing(
        case: tuple[bytes, list[int]], data: st.DataObject) -> None:
    payload, chosen = case
    encoder = Encoder(payload)
    decoder = Decoder(len(payload))
    for step, index in enumerate(chosen):
        decoder.add_chunk(index, encoder.chunk(index))
        before = decoder.to_bytes()
        earlier = data.draw(st.sampled_from(chosen[: step + 1]))
        decoder.add_chunk(earlier, encoder.chunk(earlier))
        decoder.add_chunk(earlier, data.draw(st.binary(min_size=32, max_size=32)))
        assert decoder.to_bytes() == before
    # Once complete, nothing at any index (new or held) changes the message.
    decoder.add_chunk(data.draw(indices), data.draw(st.binary(min_size=32, max_size=32)))
    assert decoder.message() == payload


def test_a_conflicting_chunk_after_the_message_is_ignored() -> None:
    payload = bytes(range(96))
    decoder = Decoder(96)
    for index in (5, 6, 7):
        decoder.add_chunk(index, Encoder(payload).chunk(index))
    assert decoder.message() == payload
    decoder.add_chunk(0, bytes(32))
    decoder.add_chunk(5, bytes(32))
    assert decoder.message() == payload
    assert Decoder.from_bytes(decoder.to_bytes()).message() == payload


def test_decoder_keeps_a_copy_of_each_chunk() -> None:
    chunk = bytearray(32)
    decoder = Decoder(32)
    decoder.add_chunk(9, chunk)  # type: ignore[arg-type]
    chunk[0] = 1
    assert decoder.message() == bytes(32)


@given(payload_and_indices(), st.integers(0, 40))
def test_decoder_state_round_trips_at_every_stage(case: tuple[bytes, list[int]],
                                                  cut: int) -> None:
    payload, chosen = case
    encoder = Encoder(payload)
    cut = min(cut, len(chosen))
    decoder = Decoder(len(payload))
    for index in chosen[:cut]:
        decoder.add_chunk(index, encoder.chunk(index))
    data = decoder.to_bytes()
    assert len(data) == 8 + 34 * cut
    restored = Decoder.from_bytes(data)
    assert restored.to_bytes() == data
    assert (restored.size, restored.held) == (len(payload), cut)
    for index in chosen[cut:]:
        restored.add_chunk(index, encoder.chunk(index))
    assert restored.message() == payload


@given(payloads, st.integers(0, 45))
def test_encoder_state_round_trips(payload: bytes, sent: int) -> None:
    encoder = Encoder(payload)
    emitted = [encoder.next_chunk() for _ in range(sent)]
    assert [index for index, _ in emitted] == list(range(sent))
    data = encoder.to_bytes()
    assert len(data) == 8 + len(payload)
    restored = Encoder.from_bytes(data)
    assert restored.to_bytes() == data
    assert (restored.size, restored.next_index) == (len(payload), sent)
    assert restored.next_chunk() == encoder.next_chunk() == (sent, encoder.chunk(sent))


def _refused_truncations(data: bytes, parse: Any) -> None:
    for end in range(len(data)):
        with pytest.raises(TruncatedInput):
            parse(data[:end])
    for extra in (b"\x00", b"\xff" * 34):
        with pytest.raises(TrailingBytes):
            parse(data + extra)


@given(payload_and_indices(), st.integers(0, 40))
def test_every_truncation_of_a_decoder_is_refused(case: tuple[bytes, list[int]],
                                                  cut: int) -> None:
    payload, chosen = case
    decoder = Decoder(len(payload))
    for index in chosen[:cut]:
        decoder.add_chunk(index, Encoder(payload).chunk(index))
    _refused_truncations(decoder.to_bytes(), Decoder.from_bytes)


@given(payloads, st.integers(0, 70))
def test_every_truncation_of_an_encoder_is_refused(payload: bytes, sent: int) -> None:
    encoder = Encoder(payload)
    for _ in range(sent):
        encoder.next_chunk()
    _refused_truncations(encoder.to_bytes(), Encoder.from_bytes)


# --- strict parsing and argument checks ---------------------------------------------------------


def _decoder_bytes(size: int, entries: list[tuple[int, bytes]], count: int | None = None) -> bytes:
    body = b"".join(i.to_bytes(2, "big") + c for i, c in entries)
    return (size.to_bytes(4, "big") + (len(entries) if count is None else count).to_bytes(4, "big")
            + body)


@pytest.mark.parametrize("data, error", [
    (_decoder_bytes(96, [(4, bytes(32)), (4, bytes(32))]), InvalidEncoding),       # duplicate
    (_decoder_bytes(96, [(4, bytes(32)), (3, bytes(32))]), InvalidEncoding),       # unsorted
    (_decoder_bytes(64, [(1, bytes(32)), (2, bytes(32)), (3, bytes(32))]), InvalidLength),
    (_decoder_bytes(96, [], count=0xFFFFFFFF), InvalidLength),
    (_decoder_bytes(0, []), InvalidLength),
    (_decoder_bytes(95, []), InvalidLength),
    (_decoder_bytes(MAX_PAYLOAD_SIZE + 32, []), InvalidLength),
    (_decoder_bytes(96, [(1, bytes(32))], count=2), TruncatedInput),
    (_decoder_bytes(96, [(1, bytes(32)), (2, bytes(32))], count=1), TrailingBytes),
], ids=["duplicate", "unsorted", "too-many", "huge-count", "size-0", "size-95", "size-max+32",
        "count-above-entries", "count-below-entries"])
def test_decoder_parsing_is_strict(data: bytes, error: type[DecodeError]) -> None:
    with pytest.raises(error):
        Decoder.from_bytes(data)


def test_decoder_parses_its_largest_index_and_size() -> None:
    data = _decoder_bytes(MAX_PAYLOAD_SIZE, [(0, bytes(32)), (MAX_CHUNK_INDEX, bytes(32))])
    assert Decoder.from_bytes(data).to_bytes() == data


def _encoder_bytes(size: int, next_index: int, payload: bytes) -> bytes:
    return size.to_bytes(4, "big") + next_index.to_bytes(4, "big") + payload


@pytest.mark.parametrize("data, error", [
    (_encoder_bytes(32, 0x10001, bytes(32)), InvalidEncoding),
    (_encoder_bytes(32, 0xFFFFFFFF, bytes(32)), InvalidEncoding),
    (_encoder_bytes(0, 0, b""), InvalidLength),
    (_encoder_bytes(33, 0, bytes(33)), InvalidLength),
    (_encoder_bytes(64, 0, bytes(32)), TruncatedInput),
    (_encoder_bytes(32, 0, bytes(64)), TrailingBytes),
], ids=["next-65537", "next-max", "size-0", "size-33", "short-payload", "long-payload"])
def test_encoder_parsing_is_strict(data: bytes, error: type[DecodeError]) -> None:
    with pytest.raises(error):
        Encoder.from_bytes(data)


def test_parsers_take_only_bytes() -> None:
    with pytest.raises(TypeError):
        Decoder.from_bytes("00000060" + "00000000")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Encoder.from_bytes(None)  # type: ignore[arg-type]
    assert Decoder.from_bytes(memoryview(_decoder_bytes(96, []))).size == 96  # type: ignore[arg-type]


def test_an_encoder_stops_after_index_65535() -> None:
    encoder = Encoder.from_bytes(_encoder_bytes(64, MAX_CHUNK_INDEX, bytes(range(64))))
    index, chunk = encoder.next_chunk()
    assert index == MAX_CHUNK_INDEX and chunk == slow_chunk(bytes(range(64)), MAX_CHUNK_INDEX)
    assert encoder.next_index == MAX_CHUNK_INDEX + 1
    with pytest.raises(InvalidArgument):
        encoder.next_chunk()
    assert Encoder.from_bytes(encoder.to_bytes()).next_index == MAX_CHUNK_INDEX + 1


@pytest.mark.parametrize("payload", [b"", bytes(31), bytes(33), bytes(MAX_PAYLOAD_SIZE + 32),
                                     "x" * 32, 32, None],
                         ids=["empty", "31", "33", "max+32", "str", "int", "none"])
def test_encoder_refuses_bad_payloads(payload: Any) -> None:
    with pytest.raises(InvalidArgument):
        Encoder(payload)


def test_largest_payload_is_all_data() -> None:
    payload = bytes(MAX_PAYLOAD_SIZE)
    assert Encoder(payload).chunk(MAX_CHUNK_INDEX) == bytes(32)
    assert Decoder(MAX_PAYLOAD_SIZE).size == MAX_PAYLOAD_SIZE


@pytest.mark.parametrize("index", [-1, MAX_CHUNK_INDEX + 1, True, 1.0, "1", None])
def test_chunk_indices_are_checked(index: Any) -> None:
    with pytest.raises(InvalidArgument):
        Encoder(bytes(32)).chunk(index)
    decoder = Decoder(64)
    with pytest.raises(InvalidArgument):
        decoder.add_chunk(index, bytes(32))
    assert decoder.held == 0


@pytest.mark.parametrize("chunk", [b"", bytes(31), bytes(33), "x" * 32, None, 32],
                         ids=["empty", "31", "33", "str", "none", "int"])
def test_chunks_are_checked(chunk: Any) -> None:
    decoder = Decoder(64)
    decoder.add_chunk(0, bytes(32))
    before = decoder.to_bytes()
    with pytest.raises(InvalidArgument):
        decoder.add_chunk(1, chunk)
    assert decoder.to_bytes() == before and not decoder.has_message()


@pytest.mark.parametrize("size", [0, 31, 33, -32, MAX_PAYLOAD_SIZE + 32, True, 96.0, "96", None])
def test_decoder_sizes_are_checked(size: Any) -> None:
    with pytest.raises(InvalidArgument):
        Decoder(size)


def test_copies_are_independent() -> None:
    payload = bytes(range(96))
    encoder = Encoder(payload)
    encoder.next_chunk()
    copy = encoder.copy()
    assert copy.next_chunk() == encoder.next_chunk()
    copy.next_chunk()
    assert copy.next_index == encoder.next_index + 1
    assert copy.to_bytes() != encoder.to_bytes()
    decoder = Decoder(96)
    decoder.add_chunk(0, encoder.chunk(0))
    twin = decoder.copy()
    twin.add_chunk(5, encoder.chunk(5))
    twin.add_chunk(7, encoder.chunk(7))
    assert twin.message() == payload and decoder.message() is None
    assert decoder.held == 1 and decoder.to_bytes() != twin.to_bytes()
