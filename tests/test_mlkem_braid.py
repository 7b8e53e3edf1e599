"""Incremental ML-KEM-768 for the ML-KEM Braid (signalish/_primitives/mlkem_braid.py).

Checked against things that share no code with it:

* kyber-py 1.2.0 (``kyber_py.ml_kem.ML_KEM_768``), a pure-Python FIPS 203
  implementation, test-time only: key derivation from a seed, its
  deterministic ``_encaps_internal(ek, m)`` (FIPS 203 Algorithm 17) and its
  K-PKE internals;
* ``cryptography``'s ML-KEM-768 (OpenSSL): the public key, the modulus check
  on import, and decapsulation of what we encapsulate;
* ``hashlib``: the header rho || SHA3-256(ek) recomputed here;
* a few cases of Project Wycheproof's ``mlkem_768_test.json`` (inline at the
  end of this file until that file is vendored under
  vectors/third_party/wycheproof/).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem
from hypothesis import assume, given
from hypothesis import strategies as st
from kyber_py.ml_kem import ML_KEM_768  # type: ignore[import-untyped]

from helpers import wycheproof_cases

from signalish._primitives.mlkem_braid import (
    ENCAPS_STATE_SIZE,
    MLKEM768_CT1_SIZE,
    MLKEM768_CT2_SIZE,
    MLKEM768_EK_VECTOR_SIZE,
    MLKEM768_HEADER_SIZE,
    MLKEM768_SEED_SIZE,
    EncapsState,
    decapsulate,
    encaps1,
    encaps2,
    keygen,
)
from signalish.errors import (
    InvalidArgument,
    InvalidEncoding,
    InvalidKey,
    TrailingBytes,
    TruncatedInput,
)

h = bytes.fromhex
Q = 3329

seeds = st.binary(min_size=64, max_size=64)
messages = st.binary(min_size=32, max_size=32)


def public_bytes(seed: bytes) -> bytes:
    """The standard 1184-byte ek, from OpenSSL."""
    return mlkem.MLKEM768PrivateKey.from_seed_bytes(seed).public_key().public_bytes_raw()


def openssl_accepts(ek: bytes) -> bool:
    """Whether OpenSSL's FIPS 203 section 7.2 import check passes."""
    try:
        mlkem.MLKEM768PublicKey.from_public_bytes(ek)
    except ValueError:
        return False
    return True


def set_coefficient(ek_vector: bytes, index: int, value: int) -> bytes:
    """ek_vector with 12-bit value ``index`` replaced (FIPS 203 ByteEncode_12:
    two values in three bytes, least significant bit first)."""
    out = bytearray(ek_vector)
    at = 3 * (index // 2)
    if index % 2 == 0:
        out[at] = value & 0xFF
        out[at + 1] = (out[at + 1] & 0xF0) | value >> 8
    else:
        out[at + 1] = (out[at + 1] & 0x0F) | (value & 0x0F) << 4
        out[at + 2] = value >> 4
    return bytes(out)


def braid_encapsulate(header: bytes, ek_vector: bytes, m: bytes) -> tuple[bytes, bytes]:
    """(ciphertext, K) through both halves, the state passed as bytes as a
    session record would carry it."""
    state, ct1, shared = encaps1(header, m)
    ct2 = encaps2(EncapsState.from_bytes(state.to_bytes()), header, ek_vector)
    assert len(ct1) == MLKEM768_CT1_SIZE and len(ct2) == MLKEM768_CT2_SIZE
    return ct1 + ct2, shared


# --- agreement with FIPS 203 ML-KEM-768 ------------------------------------------------


@given(seed=seeds, m=messages)
def test_split_encapsulation_is_mlkem768(seed: bytes, m: bytes) -> None:
    """ct1 || ct2 and K equal kyber-py's ML-KEM-768.Encaps_internal(ek, m),
    and OpenSSL's decapsulation recovers K."""
    returned_seed, header, ek_vector = keygen(seed)
    assert returned_seed == seed
    ek, _ = ML_KEM_768.key_derive(seed)
    assert ek_vector + header[:32] == ek

    ciphertext, shared = braid_encapsulate(header, ek_vector, m)
    theirs_shared, theirs_ciphertext = ML_KEM_768._encaps_internal(ek, m)
    assert ciphertext == theirs_ciphertext
    assert shared == theirs_shared
    private = mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)
    assert private.decapsulate(ciphertext) == shared
    assert decapsulate(seed, ciphertext[:960], ciphertext[960:]) == shared


@given(seed=seeds)
def test_header_is_rho_and_hash_of_ek(seed: bytes) -> None:
    ek = public_bytes(seed)
    _, header, ek_vector = keygen(seed)
    assert len(header) == MLKEM768_HEADER_SIZE and len(ek_vector) == MLKEM768_EK_VECTOR_SIZE
    assert header == ek[1152:] + hashlib.sha3_256(ek).digest()
    assert ek_vector == ek[:1152]


@given(seed=seeds, m=messages)
def test_state_layout(seed: bytes, m: bytes) -> None:
    """The state is ByteEncode_12(y_hat) || e2 as nibbles + 2 || m, with y_hat
    and e2 computed by kyber-py's K-PKE internals from r = G(m || H(ek))."""
    _, header, _ = keygen(seed)
    state, _, shared = encaps1(header, m)
    g = hashlib.sha3_512(m + header[32:]).digest()
    assert shared == g[:32]
    y, n = ML_KEM_768._generate_error_vector(g[32:], 2, 0)
    _, n = ML_KEM_768._generate_error_vector(g[32:], 2, n)
    e2, _ = ML_KEM_768._generate_polynomial(g[32:], 2, n)
    signed = [c if c <= 2 else c - Q for c in e2.coeffs]
    nibbles = bytes((a + 2) | (b + 2) << 4 for a, b in zip(signed[0::2], signed[1::2]))
    assert state.to_bytes() == y.to_ntt().encode(12) + nibbles + m


# --- what encaps2 refuses -------------------------------------------------------------


@given(seed=seeds, m=messages, bit=st.integers(0, 8 * 1152 - 1))
def test_flipped_ek_vector_fails_the_hash(seed: bytes, m: bytes, bit: int) -> None:
    _, header, ek_vector = keygen(seed)
    flipped = bytearray(ek_vector)
    flipped[bit // 8] ^= 1 << (bit % 8)
    # Still a reduced key, so only the hash can refuse it.
    assume(openssl_accepts(bytes(flipped) + header[:32]))
    state, _, _ = encaps1(header, m)
    with pytest.raises(InvalidKey):
        encaps2(state, header, bytes(flipped))
    encaps2(state, header, ek_vector)


@given(seed=seeds, m=messages, index=st.integers(0, 767), value=st.integers(Q, 4095))
def test_unreduced_coefficient_fails_the_modulus_check(
        seed: bytes, m: bytes, index: int, value: int) -> None:
    """A 12-bit value >= q with the header's hash recomputed to match: only
    the modulus check is left to refuse it (OpenSSL refuses it too)."""
    _, header, ek_vector = keygen(seed)
    rho = header[:32]
    bad = set_coefficient(ek_vector, index, value)
    assert not openssl_accepts(bad + rho)
    bad_header = rho + hashlib.sha3_256(bad + rho).digest()
    state, _, _ = encaps1(bad_header, m)
    with pytest.raises(InvalidKey):
        encaps2(state, bad_header, bad)


@given(seed=seeds, m=messages, index=st.integers(0, 767))
def test_largest_reduced_coefficient_is_accepted(seed: bytes, m: bytes, index: int) -> None:
    """q - 1 at any position passes both checks, and the result is still
    ML-KEM-768 of that (modified) key."""
    _, header, ek_vector = keygen(seed)
    rho = header[:32]
    edge = set_coefficient(ek_vector, index, Q - 1)
    assert openssl_accepts(edge + rho)
    edge_header = rho + hashlib.sha3_256(edge + rho).digest()
    ciphertext, shared = braid_encapsulate(edge_header, edge, m)
    assert (shared, ciphertext) == ML_KEM_768._encaps_internal(edge + rho, m)


def test_wrong_lengths_are_refused() -> None:
    seed = bytes(range(64))
    _, header, ek_vector = keygen(seed)
    m = bytes(32)
    state, ct1, _ = encaps1(header, m)
    ct2 = encaps2(state, header, ek_vector)
    for bad_header in (b"", header[:63], header + b"\x00", header + ek_vector):
        with pytest.raises(InvalidKey):
            encaps1(bad_header, m)
        with pytest.raises(InvalidKey):
            encaps2(state, bad_header, ek_vector)
    for bad_m in (b"", m[:31], m + b"\x00"):
        with pytest.raises(InvalidArgument):
            encaps1(header, bad_m)
    for bad_vector in (b"", ek_vector[:1151], ek_vector + b"\x00", ek_vector + header[:32]):
        with pytest.raises(InvalidKey):
            encaps2(state, header, bad_vector)
    for bad_seed in (b"", seed[:63], seed + b"\x00"):
        with pytest.raises(InvalidArgument):
            keygen(bad_seed)
        with pytest.raises(InvalidArgument):
            decapsulate(bad_seed, ct1, ct2)
    ciphertext = ct1 + ct2
    for cut in (0, 959, 961, 1088):
        with pytest.raises(InvalidKey):
            decapsulate(seed, ciphertext[:cut], ciphertext[cut:])
    with pytest.raises(InvalidKey):
        decapsulate(seed, ct1, ct2 + b"\x00")
    assert len(seed) == MLKEM768_SEED_SIZE
    assert decapsulate(seed, ct1, ct2) == encaps1(header, m)[2]


# --- the state's encoding --------------------------------------------------------------


@pytest.fixture(scope="module")
def encoded_state() -> bytes:
    _, header, _ = keygen(bytes(range(64)))
    state, _, _ = encaps1(header, bytes(range(32)))
    return state.to_bytes()


@given(seed=seeds, m=messages)
def test_state_round_trip(seed: bytes, m: bytes) -> None:
    _, header, ek_vector = keygen(seed)
    state, _, _ = encaps1(header, m)
    data = state.to_bytes()
    assert len(data) == ENCAPS_STATE_SIZE
    parsed = EncapsState.from_bytes(data)
    assert parsed.to_bytes() == data
    assert encaps2(parsed, header, ek_vector) == encaps2(state, header, ek_vector)
    assert "EncapsState" in repr(state) and data.hex()[:8] not in repr(state)


def test_state_truncations_are_refused(encoded_state: bytes) -> None:
    for size in range(ENCAPS_STATE_SIZE):
        with pytest.raises(TruncatedInput):
            EncapsState.from_bytes(encoded_state[:size])


def test_state_trailing_bytes_are_refused(encoded_state: bytes) -> None:
    for extra in (b"\x00", b"\x01", encoded_state):
        with pytest.raises(TrailingBytes):
            EncapsState.from_bytes(encoded_state + extra)


@given(index=st.integers(0, 767), value=st.integers(0, 4095))
def test_state_y_hat_range(encoded_state: bytes, index: int, value: int) -> None:
    """Every y_hat coefficient is refused from q up and kept below q; the
    boundary and the extremes are tried at each drawn position."""
    for candidate in (0, Q - 1, Q, 4095, value):
        data = set_coefficient(encoded_state[:1152], index, candidate) + encoded_state[1152:]
        if candidate >= Q:
            with pytest.raises(InvalidEncoding):
                EncapsState.from_bytes(data)
        else:
            assert EncapsState.from_bytes(data).to_bytes() == data


@given(index=st.integers(0, 127))
def test_state_e2_range(encoded_state: bytes, index: int) -> None:
    """Each e2 nibble holds e2 + 2 in 0..4: every other value of either
    nibble is refused."""
    for high in (False, True):
        for value in range(16):
            data = bytearray(encoded_state)
            at = 1152 + index
            data[at] = (data[at] & 0x0F) | value << 4 if high else (data[at] & 0xF0) | value
            if value > 4:
                with pytest.raises(InvalidEncoding):
                    EncapsState.from_bytes(bytes(data))
            else:
                assert EncapsState.from_bytes(bytes(data)).to_bytes() == bytes(data)


def test_state_m_is_any_32_bytes(encoded_state: bytes) -> None:
    for m in (bytes(32), b"\xff" * 32):
        data = encoded_state[:-32] + m
        assert EncapsState.from_bytes(data).to_bytes() == data


# --- Wycheproof ML-KEM-768 --------------------------------------------------------------


# Project Wycheproof's ML-KEM-768 file, vendored unchanged in
# vectors/third_party/wycheproof/ (sources: vectors/third_party/README.md).
# Whether c is an honest encapsulation (so re-encapsulating its m must give it
# back) is ours to say: not for the implicit-rejection cases, named by their
# comments (a c built with zero secret and error is no encapsulation of any m
# either), nor for the Strcmp case (c made to collide in a naive comparison).
NOT_HONEST: Final = frozenset({"Random ciphertext", "Bit flipped ciphertext",
                               "ciphertext secret and error zero"})
WYCHEPROOF_MLKEM768 = [test for _, test in wycheproof_cases("mlkem_768_test.json")]


def wycheproof_id(case: dict[str, Any]) -> str:
    return f"tc{case['tcId']}-{case['result']}"


@pytest.mark.parametrize("case", WYCHEPROOF_MLKEM768, ids=wycheproof_id)
def test_wycheproof_mlkem768(case: dict[str, Any]) -> None:
    """Key generation and decapsulation as Wycheproof has them.  Encapsulation
    too: m = K-PKE.Decrypt(dk, c) (kyber-py), re-encapsulated with m through
    encaps1/encaps2, must give back Wycheproof's c and K exactly when c is an
    honest encapsulation ("reencrypts", our annotation), and neither when
    the case tests implicit rejection."""
    seed, c = h(case["seed"]), h(case["c"])
    if case["result"] != "valid":
        with pytest.raises((InvalidArgument, InvalidKey)):
            keygen(seed)
            decapsulate(seed, c[:960], c[960:])
        return
    _, header, ek_vector = keygen(seed)
    ek = ek_vector + header[:32]
    assert ek.hex() == case["ek"]
    assert header[32:] == hashlib.sha3_256(ek).digest()
    assert decapsulate(seed, c[:960], c[960:]).hex() == case["K"]

    _, dk = ML_KEM_768.key_derive(seed)
    m = ML_KEM_768._k_pke_decrypt(dk[:1152], c)
    ciphertext, shared = braid_encapsulate(header, ek_vector, m)
    honest = "Strcmp" not in case["flags"] and case["comment"] not in NOT_HONEST
    assert (ciphertext == c) is honest
    assert (shared.hex() == case["K"]) is honest
