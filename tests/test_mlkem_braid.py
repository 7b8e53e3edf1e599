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
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem
from hypothesis import assume, given
from hypothesis import strategies as st
from kyber_py.ml_kem import ML_KEM_768  # type: ignore[import-untyped]

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


# Project Wycheproof (github.com/C2SP/wycheproof), testvectors_v1/mlkem_768_test.json,
# commit dac1dd47, Apache-2.0: the cases named by tcId, copied unchanged except that
# "ek" is replaced by its SHA-256 ("ek_sha256") and "reencrypts" is added (ours: whether
# c is an honest encapsulation, false for the implicit-rejection cases).  tc164 needs
# more than three SHAKE128 blocks for one matrix entry (585 bytes), so it exercises
# SampleNTT's extra squeeze.
WYCHEPROOF_MLKEM768: list[dict[str, Any]] = [
    {
        "tcId": 1,
        "comment": "",
        "flags": ["Strcmp"],
        "result": "valid",
        "reencrypts": False,
        "seed": (
            "cbfc4405d1b2a3a386c94c25e0f2d5f5ee92cb0388ff4d6aa04223086d51c3fd24752da14c9fc3b8"
            "ae0d9e4a8b1016b8d8fc69e229c03ea2ef08a4ae0cffc37f"),
        "ek_sha256": "67fe2cb60768d55758c67bfd5842692dedb14513d581c48db2cd3adf94568106",
        "c": (
            "00e96c44eb5f5380d80b4cb05d608971a28fbe838b912b558bf9676c6c67c9692ed6ea063fc47b70"
            "d5d6004825c269b9cb8e68b5728d67f44844d97686a11154e3cbd4a6f9e47524d93d851bdce480d7"
            "762ded09be53d17cce3ee28dc5a06911c062b99b218355dd5822108c55e2c67f7ea0b74b6189b33b"
            "4589d8ff9d0c867d13edaaf1c5f724675320beda3e6acc673c048fa04a1b30f899227d5a555e08a4"
            "12a47b7db75eb118a8844a71b186880426f6bb6e77186d18e753cbcce93c9fb76c729875b4d473ee"
            "ca8dab9941969faef04df9ce3178e7341eab416d28bb7aee12bfb8f4c3df814eff45a0187329079a"
            "cfc41a8e8dba7b08d111f02e37a1d2b69e57eef808fcc6ae23385534a420a93dfb6a95c73e2f1016"
            "177c4fe9d3ced769e277293aaceded6d07efc7890eaa885bd1e73f9e5da2b9cfda0d44cbc9090705"
            "ac2ce3e7bcd7775b593c706e45ddc97d3a65d9b7e73673f9473df5bfec689671f73e7f6ee77c730a"
            "8ebda1f0b2c112a71904d6f28a51d8d479f8323fb485e722f5c4d5857e95989a9cbaf273efd04fc3"
            "cbde98baa9969e095e88accecfbd12ef2155497a5b15fe91a70d1106b91a568363bfc2d6736cc813"
            "8cbc41ddf1e54fd40511e27d89e2c26c027b63c156e2bbb998faaed3d72186f0cc626dad39a782dc"
            "da2087fd13a9498e10b41b685646a227ea1166a5632c195983f4aba2b718b4074030d57126d34c38"
            "349892007acbea9e393b967dc3146b270f080a1f0bee90d65a095a6352a7718ed1717a8025a2bd38"
            "c66d120baf4247676a1fe044a57ce268c078f8ff46cc26fe4f9c7a03d6467adacb8418d26273662b"
            "ce1f7bc00b906e0088e95dc0fb419e2232e85aac77b9e7cd563e604de5e1d3e9693dcd3b19865cf4"
            "250773691e7e0af9c2755cd31f49d1f96708f3ba2f0b98184525abb869e12d5cea0ac1740181a875"
            "035300b05a54b8d42ee3b4ae92b06e43cd807e2b096c977f23c61ef8c989c52ed83754076dea1323"
            "f639250bef61bdf903bf7961cec89ba6942d9d0647ac9c8195d93ed8abcedf25754644035719a5a0"
            "a1c8c0798912726a9a8258e4c10ae7485322ed9ba331f6f090c4b492a4fcf53d753cd34f28ec0443"
            "fce0724f43c89a3942169d5099a8f7430f38691ebce2e3fe4f600d82c7ccedf60673f8e5d4c1a9f8"
            "4b8b5b23f5ed63defb6a7205e0a8b105bdc6ff4568fc78cb4456b02fedb7f4c48f6fd6b69216a331"
            "9821039db40e19a31a0b0c9d471d5a7a73865d26f8be3595525b1ec4a8579efd07ea98e2602e2bff"
            "dfd8febc5c7b4c736d326b5030ccc6faf9420a9c156a8f4516b9fff675459dfdcd4ef85d7adbdffd"
            "60f4a39628e399cc752c2e99ab2f431dc765e7c9d206bfe32649fbef4ef48b1d7936fc74766d7243"
            "50ee2245a8d5f23fbc6c7ed8b57168ce1e864e49d7f8c475dcda140bd42473825b3c72eb8c547801"
            "88813011e1962a503f9b516e13226de6375b204733b0192183c8f55e870e61cf8947c3191790bc0b"
            "657bc43aebc9d86c"),
        "K": "76c10bb1d86d96d7eb18e298363e51f7728e113f455df7d15017940ed3541451",
    },
    {
        "tcId": 2,
        "comment": "Test vector based on official round 3 seeds 0",
        "flags": [],
        "result": "valid",
        "reencrypts": True,
        "seed": (
            "7c9935a0b07694aa0c6d10e4db6b1add2fd81a25ccb148032dcd739936737f2d8626ed79d4511408"
            "00e03b59b956f8210e556067407d13dc90fa9e8b872bfb8f"),
        "ek_sha256": "86adbca81f4fee893e2fb58fb98aa2fe188f501fed268d7f4056f8c05c4e53c4",
        "c": (
            "c8391085b8d3ea9794212541b2914f08964d33521d3f67ad66096ebfb1f706424b49558f755b5625"
            "bae236f2e0079601c766f7d960808f7e2bb0c7a5e066ed346de628f8c57eebabbb0c22d911548463"
            "693ef3ce52a53f7ff415f00e657ae1c5a48fa5ec6e4be5cf462daffc84d2f6d5ff55dc9bbe8bb0d7"
            "25ec64fd4cd4bd8dba0a844e8b5ce4b6a28934d7f7a050991fe185b506b451dabfad52d52cb2114c"
            "a7d9a5cf986c8fdc1bc10ec0c1869e50c03c55a76192a1049aca636ba9020bdaa8d0f58c763b0b89"
            "845ca06d4c4ddc21433e16b9c62e44871fdbc05ba218af871fdd7dcfa464e60faa5265264ce1391b"
            "d9a8c5faa7626d5f159b9805b975710a3503a0b858a11c6a647cc0e19ac88b1be9056c95b4d2087d"
            "0951d1d2f4992491117e6347794ba54571ec49bba71af3413d38a30bf5872248d1f6d07c86baf782"
            "e73d2637f043d341a00921857d8b21ddf3e1d6310036ed27af49e5de1b900fe4de79808ff29f9570"
            "859612b15adc01fbb265b305b1e3a12ae419da5b74261fa284c101da3d8dca8b2e4521aca571ef44"
            "a058e844ff32b16d5aaea05f7f3af8e2ab16222e347662eddfb891d0ecc2a55c5638f9dde92d9a3d"
            "544a5f901ac501acd1ea6a010201fcb10ad702c425a94bdf5890d500a2a147eee1d1fcba8c3abe7c"
            "2dfe70f346f033d816a0b2791b4f0b2d956d9ee5971715399a5688302495e2e07c1c8c01527184bc"
            "d0c208bc159f2e13318c0bb3dd24a6a7fc849f83385ed4dba07fe1d7bd5640cc9ed5ccfdd68763cb"
            "0d0edf61b292177fc1d2d3c11dd0495056bcb12558aebcfddef9feb4aebc57afd9023c65cfe65a24"
            "e33f1b00111e92e63e011eaf0b212cf95743cd07f5189ece1f205b7f6fcb2e6b1961b5404cebe47c"
            "8cd13b8599d5b49e6d87eeda36e9b8fc4c00635896aa2b75896e336d1b612ee13db811e1f07e6174"
            "8d920f4865f3f11741399dc6162c91ca168a02329dff821d58198712dd558abb099b3a0baf9da1b7"
            "30b2aa73bcf58d74f357b06f7211c804b6c8af16ff3509fad1d35b14bfdced7db8a6a25c48e59564"
            "80724daa057cd660b67ee3e472574182679d485838a6476eac02141075c812af7967ba7c9185cc2a"
            "bd2a4545b80f3d3104d58d654a57792dcfabbe9c0715e8de2ef81ef404c8168fd7a43efab3d448e6"
            "86a088efd26a26159948926723d7eccc39e3c1b719cf8becb7be7e964f22cd8cb1b7e25e800ea97d"
            "60a64cc0bbd9cb407a3ab9f88f5e29169eeafd4e0322fde6590ae093ce8feeae98b622caa7556ff4"
            "26c9e7a404ce69355830a7a67767a76c7d9a97b84bfcf50a02f75c235d2f9c671138049ffc7c8055"
            "926c03eb3fb87f9695185a42eca9a41655873d30a6b3bf428b246223484a8ff61ee3eeafff10e99c"
            "2c13a76284d063e56ab711a35a85b5383df81da23490f66e8ea3fcba067f5530c6541c2b8f74717c"
            "35023e7b9b3956c3ee2ff84ba03ccf4b4b5321b9240895481bc6d63c1693c1847852f8e97f50a133"
            "532ac3ee1e52d464"),
        "K": "e7184a0975ee3470878d2d159ec83129c8aec253d4ee17b4810311d198cd0368",
    },
    {
        "tcId": 115,
        "comment": "Ciphertext too short",
        "flags": [],
        "result": "invalid",
        "seed": (
            "9346c8be5ca2a57eb6ae5632dea509545323e7e7ffe050cc982e8df340376dfd328d97ccbe18ff5d"
            "09cbb0a86894ab66b15245791d77ed35c219ca7bf6d7a66d"),
        "ek_sha256": "d35a014b2678ed3e1c0a3d2f349bdbb80f0ff791fd5cc805463f6b319bf6bf65",
        "c": "43d6181b",
        "K": "",
    },
    {
        "tcId": 142,
        "comment": "Random ciphertext",
        "flags": [],
        "result": "valid",
        "reencrypts": False,
        "seed": (
            "3f6f67ff01382a44c8d5dc52295311a1934f1a10f0ca6085e53af2eb524334881674047e7e7a1649"
            "482e1d9b0de92455cd14d0049bdcb7cea4b867ace5c8922b"),
        "ek_sha256": "9c361bdc190b22a6c0e67de6b592ef8a8c6e437c0f30d8c69d040c9e6fad5304",
        "c": (
            "542acf1e3c7dd990f1879ef5b5aebd32055618c4e5b958995f0b22a78f9e2bdd8dd0cda23893c56f"
            "48a20d4df878e1cdbd39f50310f2ac0cd502e761329da00d49e7b8721f53af649ef7edfe74f259ff"
            "efd492f13b1ac396eb65916e02b3348560ca426e9b93beccad58bcf0c5804f0a10532635fcb74e45"
            "c1f8eaa83d56e78d8a7ee5aadcb7e06eddef900b484632bf1bdb0e1a4ef8b6fe34789934d9baa887"
            "ec5a39dbc6416f66008751aa193a9c313ef8a57a515bfe046953fa6a1329a770e9e1bfdc33f3a68d"
            "bd5cec1c2a55a0e41093583230ac35386645e6dcd166f25706efc779fec0cc4299e8e7501b93a857"
            "378713475782cb0b31ab645940f4c875548345ca0138372719c3cf9022034f17c28bb90f6090d4b8"
            "be957ec63c297a0ba95dc02f8761c18e7a948c1c20158230e2f9ff809cfd01b9d020b7164f8a3c54"
            "a143594d7d35b8e1ad6cb25d96c11c1b7f47f62a8d90c0e2b3d1460b86a463579e7b44ff74b6a29f"
            "30521588a26887797c60d86235e0bf4c2bc7166bbeb275996e1f50cfc36641710a52fe08fb5dda30"
            "f6129d3a304e336ff0d8698515b2cc450cffb45cceea7ef51a989d036c71367a4d26cd6025479d2f"
            "7ae58e700928e176c59b3040b054a09312d9fe529ce784a71513b44c1cd4073209a93a4df73b7097"
            "da88cea0b31c3e77e70abcb4b2ba5edd8db8f47ce844750158ddc5609dde43eac393eb5909d9415e"
            "e4698d923d8ebc28612f8b0676565010360b9406091ddc881fb6a992b70645b6898d13a8e3e449be"
            "589cf17bf9312e5cc58b03d3c181f7f176b67bea210337d6c52913f8cfe145da9426434c1fad0da7"
            "911bdb35e68b86b5bc6717dccee9222c4842c28fb13115278f1249b213498791082bab15d32f5948"
            "1b29b9512945602eeba8af490af99fbb841bd1aead2b4f6f57f19dc970e83bd3928ea2d33ca3c3e5"
            "0cd5d68e6ef516371cbaecb6b73f57fd5ae5b38a74f20759dcf217066081fee51f0fe8a93aabeab4"
            "717f05395e304e86bedbe11d462c1cb9d4e32e75b35fb707e7b509e43b450d6025b2d3e84e00f3d9"
            "2b717578e820a33788013b2bda42f2701a9c6044ac2082e0387e141bc97a60bac45e0c1f4787bb5b"
            "892cb190e4b6776f5139082850494bc5ac56a6f759a0505ed4757009c35a4d36bad276185f1fc753"
            "99043168b22cc668a4b1202e03407b9fbb6a0799ba6a396ea78e137f7c68996f18f1636037179c4b"
            "920ef68526fc9008aecbfc0a2b02432e2b15832b35a61f438e06ce977c4d447612c13eebd0549edf"
            "316f64f5e7f3ccb0b46d19b79d103c1ab8f1551b6b3d22ab75a85660af2a9eab9c734875fef1d526"
            "da819829b66d65c8459a1aa404ec83842aa97a595e0271630644ade4df047f06778fe1bd1466bd41"
            "3279940f15b9b848fae294bf4964286629682abed221e1ede635f315273854d57f68872bd9cb5035"
            "45ef7b949b36df853eb7a4f47805406555d361aeeec6b77a0b6030b5a124f34cc121a927740aeaa6"
            "a381083f4e645b0d"),
        "K": "0483742b451a5b2364318ed5cc233ce07dbb3fd4ec9386050cb8cf0adc8d41e9",
    },
    {
        "tcId": 152,
        "comment": "Bit flipped ciphertext",
        "flags": [],
        "result": "valid",
        "reencrypts": False,
        "seed": (
            "b48adb659aa166819721b61fa815b332ff5603e8b6733ac4c0dfc24a77aef37691376ac748603699"
            "5c3088f66641357cbb4b78df57965db17ba4a4c561da976b"),
        "ek_sha256": "dd84dd2900c8869f3e2269021e611d0cc17587676aca5d536f9e584195eff9f7",
        "c": (
            "2c3950af249007129e7d7af3f435503bacf70f70936005d594d520a5a326f30908696a20c2a5c165"
            "97496d4338dc321f4a8244226a22545eaa4389c7a9f651d5ae287ac7be48acebf87e9c8a2b947faf"
            "f342b025712891544a274be1d2b7d4c427d0d5c49ca25e02668e5ba06ea55b689a91951f6c99c137"
            "8a1e6cffd7d9f49680621ae85c9a8b5a547e6d8884262b2298d92b31fd61499198ffb031d488507b"
            "fd494e582af632d0a237cd9e9d5d079b7068298845ce47a097277b4253acc239d2dc1c708cbdb694"
            "158973494512e8f7ea9650086c58e5a6071bbdec04ca9a6613e3b9c433cdff0d441d2df4392bfbee"
            "0fa3e8fe153cc45c1489c031561cc228f104e5797bd4125f4cf2f2753dee2e1cbb279bcc85da4536"
            "d6e9af384ed1e14e95c71dc3b32396330972206c2f96a74f85c97a639a7103e7c221de65821c2d3f"
            "88b48664eb1deb0a321703c3bbaca3f50d2b05d3f2b4ef379c463cb528ff2e9491cb6b9101bc4cb4"
            "b93c5f1a60212dd8ef6f8d30d642f0e505f2c9094381aabb3b3f79037eccbc136e9a2eec082b3a4a"
            "558465b877fcd847403bc173100e50e9ed47c4e6205207143d98bfd7be4a4037e36aeeb1ff96dcf2"
            "57725868c0ef138cacc2fab33cad86cf6dde9d71ec843fcb7f124e956b92e2162b962123d2e6e999"
            "864fecb1d683c3d779c8fa6487f71277d3257c0c1ad29d51d0327bd3b32e55aab71cbfdb372d4621"
            "d6dd2604c5de323da32b4705e90d2cdcc45b22fb5e960ee6ece08259bbfd8f772fc6638d7eb48ac6"
            "496f67f2cd453cca693a6673421944fcdb226c2b5cbaac92dd054d2820d987e34f3caf617ed6a9ec"
            "03f35d17ce52e25b6f1999f57cb1ae69001e75652e656c02ca8ae0f06b4f99447805c4d71d6adb28"
            "3696bbd566a5602808fa6036a7bd7c636ed4bf7a3a035f941b058287cd7b400277dde91a8580222f"
            "e03b00249abc1d3f6cbb4029c63671e1cb5cc145e3d7222751579cbaac7187080e4e75ea48e3a1bd"
            "7ab51d1328565601944e5363e243e173ff70efa17293bc1f0fdf4458d67c4b0f40e129593a607126"
            "413bf4a006c7d6d31f130f6e4c64e9ab20727f05f66fecb90513fc589a54b5589ed3d06e37188f7f"
            "42ddf7ef4b5e1b902009c2f239f9af5b2cd19013cc487aa3a3d7b23dfedaad47340bc4b11cad33c8"
            "f335a5246db8d71117722167a3908f2519894d457fc762f0d435d550ac97e394be75a647b676648b"
            "3e8defef1a951974492ee5ad6a813ef642963b86c3c866c6d331b9e2c400552a8540b01c5f9a58f5"
            "06cfc7181c91e4308854e839433dbfe89be00cad46f477c75fd95cdc0ada28dd6530ad75aa0ed65d"
            "af029339cca77505c7b65de647d316c630837f0e5ab6bd4d9c4497f91311fb412445f7120cbfc2bf"
            "7f8001dd7e456280dfb8b0122195761a7d1f8a927ecb6e2b090fccd33e6c49a56f6e80048f8e7b09"
            "a3a3d50db70a561f4aab2d730cf7864de24a2ce926b0c359a2145cbcb44db12ebde465521aa34269"
            "d5ca81a918f556e2"),
        "K": "cefc2442a375c0a9468db9b9ffd5c5a08f178a187a943a6875afd9cc20ffcead",
    },
    {
        "tcId": 162,
        "comment": "message all 0xff",
        "flags": [],
        "result": "valid",
        "reencrypts": True,
        "seed": (
            "78f9d4db2f8832e4457b1235626c04c58495e576dfc36b628089ef98d95d2ddac4f9f4b5e160e78c"
            "9fe8d6d03f9697b1706bb5c347148e96b3b172f94cc6a8db"),
        "ek_sha256": "2ef9ba55c675a522fa22a0ff0fda52a23358dd89b91370f7d0a7d7f86ac2c332",
        "c": (
            "cbca6cc7f2b281d1c67eb91825e992cfba3592461868200490dcffaa23122655ab6bb977fe78a924"
            "6f9d69ffa22e874b706608dc3784f3e4498cca9fc6763aa2ae90571246a534e0d4c163c04d2bb806"
            "463c5f450b7ad8e7335a8c22b78d852c36ae6e544261299fd78b34071bac18e33e9fff3fbacdd9f1"
            "bcbc02560286f9b3b1ac88bd50211f8de3542a74e55ec1ccf86d3655b38b91604756b5228bfd8d5f"
            "e3e45328bc1c47bfe4c6aa26352373854dbbddfcb62a17b1593c16070029c771b0d6bbd120e84fcd"
            "bbb8a2dedebe673a4fd5199ed6964b899199c574668d2647343dd26001a57571ad67321aaa719f7b"
            "e7d986ac4b2b2d2ac076f11119d4bc115d6cb5e0ae5024c1b51c8375307238ff3e76fca926353e82"
            "ad34845243a761d292f4abd515cec17d2af9a6d5b5bb1a7f63e3fbe7f8dba33ff216ddb2a0908157"
            "562cdd9ea6771c1b7b9b23916a88a4aef66d931ede645cee5ae9edd095d17726d568fdff8eacfddc"
            "6eb790c7a66107104902fd7acce80827857fb403a62e3076d3e2e7ae27b1fa1aee615a7d3d616f90"
            "9a42b82a5dd8903b4c7df2b06f52e17b11c52854b1f34ba26a1fe5478f48b5d68ae8a276dc496491"
            "14c553141bfd7461a6bbde2a0733f55bd757004195f81fed533f134c8ba4446b1007ad2a1813ce94"
            "e40c5d10b3f76bcfbacd9cc560359fdbda99cc9f6e07fed62ba32c30e3be23013cd362557bd32003"
            "1a1a0fa8bcb4c6f26b64bb9584a0fe5b6e9762f5394dda413ba0987873e9ed91717c96c6d85122a2"
            "40728a56857993869568ea1f4f3a22a57ed9d7ede953477fd469e6d5d936019dbc45b204ea70f277"
            "10fdde4047cac39e268dab69959914eabedf5750fa6a99549f25b1bd4d01e7a6f5d86302bf8a0e21"
            "c3d2383f6db0e6eca94fe67e35a092ce19e196c27165646d43199a7ae3c8be21318cfe08bb551fa4"
            "2fba6012f9adaef6530122d027f4056ef433524866617d2786e5cc1fcc6f8280b7f69a542dfd749b"
            "38c8df68f66b99b5b0038459b9a51cb5d3eee654f4ec506a4c58cb82cd53a883f9d5d60e3c2fad5b"
            "47e183e036b34101df037095cf5c6af3933fba043eda0104d02d49d327be2809031b4907dfff8fcf"
            "44062299a7fca50229be95eac0b2b7b397857c5dc489ac2edf94b4b6164294c2d611d3ea52935019"
            "32411fc6f3f76f34f6060597a29978416c5a10dad6d030bdadcce38c077fad1e353317057c9ac7e4"
            "4587dfef6f849531b27d90aadf8f32591d0c462aa4312246f01aca8e5a58451b6d8400436fd72d99"
            "a96d8b8e9310da9d23813615743d01ede049c4e7152da854282d5565ac3266801c8fa6afeaa28fbd"
            "3662921d05634fed09b32564970c5a3c9888a02b7897edbf15a453d385cee14afc68ccb4782db627"
            "b214f7d83f1d4c3e6039b80fd0506397d78e6c41e1283f3e8f2c8b0648b6fefd453148746324890a"
            "33307a982a1e929df0e21f50f486d1673c2f0f838e2835c9733fa3daf4abfd41b5b3c256f3151f51"
            "bc172006803777b0"),
        "K": "0ca2714e446dcf6d2bd14bd66f674b8256d9b44e75b9671055f63249ed807865",
    },
    {
        "tcId": 163,
        "comment": "ciphertext secret and error zero",
        "flags": [],
        "result": "valid",
        "reencrypts": False,
        "seed": (
            "78f9d4db2f8832e4457b1235626c04c58495e576dfc36b628089ef98d95d2ddac4f9f4b5e160e78c"
            "9fe8d6d03f9697b1706bb5c347148e96b3b172f94cc6a8db"),
        "ek_sha256": "2ef9ba55c675a522fa22a0ff0fda52a23358dd89b91370f7d0a7d7f86ac2c332",
        "c": (
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "80888088808880008088088080000880000008880008088888088088800088000880888008088088"
            "00000080808080088888880888000888080800000088000800008088880088808080008800888080"
            "08880880808800880088808088080008000080888880880880808008800088008888888000800888"
            "8000080088088080"),
        "K": "309d56795b2a044fb483648e7f54d27bd98d02b2f8e5d6a51f49f2130c244218",
    },
    {
        "tcId": 164,
        "comment": "Rho leads to frequent rejection on matrix expansion",
        "flags": [],
        "result": "valid",
        "reencrypts": True,
        "seed": (
            "0df627a3ac0000000000000000000000000000000000000000000000000000000000000000000000"
            "000000000000000000000000000000000000000000000000"),
        "ek_sha256": "d9a1bce72c6fccc83c42dbe65e6b522930f495aa7e9d513e3790b0aa8b1ff65f",
        "c": (
            "6447afaabc0a7a51726b425703b9988f68dcfe8df919d8b4e7dda749cc0da850e94d8228a4df2dc8"
            "da8b36ae4d8318c6a189d836aee83d927382988c5baacd5e8a07009f1c91f9e0517f147285b00cdb"
            "ed7977d3153b7c2b47c7b9d23eeef4965a93c8927ab64403e1398e145d176f7177e01211d7f5379d"
            "f66e76313e414a8f35bfc15cb09193736b87c96d15b2858da68bde0c3890b08b987c29f17ae4ad40"
            "d7758d4c07fce68aa51873cd242cc6c762f5a3d0959c35c2a67b6d8b26c4f8c942d0342d88622876"
            "bd158e211e2cc96963521800f30f968a40c5e4aeb43a0b0cc3acc136c1f2782560a69890b4c419f3"
            "8cf15e2c9af2472e0101e11838d6ff98be6907bf77af805d090a498dea0bd2952b943d3f5fbc825c"
            "5746b29487253c9bb37e16e0a3537405a224764bc13abdacf54ee8bf9926f09216d11e3aadf614e2"
            "2d8e3ad5993314b159e43eba829fcb6d4f0da187fcc5952097498df7104767f9840971537bb56c2c"
            "f3ded8bb2ea878954bb6657a7116688753b77aeafd91212f2aa6a00289893b79d40a73a345b01677"
            "4fb9c56d369b14cf5aaf93ddb2c6c647e6a3a522e259837c055c57794bf0d93e33c2bc8c899f596a"
            "9a156774e538816f9e52ea6b36c356cc1b05a318568f91cd8a25833cc35b0f2ec0867dd3b2d1da3f"
            "6dce2b0586409e73b34ab15a1fd40bd766ba20194a2eee2afa3d3db827ef8636dddc04bc55c8def9"
            "f20f401e5fb35603428643e741df3ec1c1e1e0d1db3466a0afe2f696329b0e8f5c387a0944827a48"
            "ebfb27ac30f6bb0bfe72e91837d9a020b04ac7b9ea5afd72b7bb3f7645efbe29f7de50f5e4ad7b93"
            "8c5446113b6113e35b43ddc1e8d409f3fb5e63f427a6111b64237ef539aade18da715fb03553461e"
            "09a080de8adc930fc7fc9582772fa5bdabdedf42e3c3b0b319c0edec3e62bde5035fcc52d3ed5d4e"
            "201f1c067148f871e12daca9a5e744326ab1632d8a6ce06566a477c64dd415015d827ef433550128"
            "2db61d319ab0f98c9e18f5bfbeeeda234db517f3e5697f98778d5e9b75bfc845f67197dc65f3443b"
            "35687d10e7eef9d7aad92574d6d7c74bd23f5a4a9336c70ce10cfe2cf6b33bc8423e8626be1bdf4b"
            "f9d1394ac897f80a4dd7ae032afae29783c75e0d53b40da7a37ea02fe926e7c627208b8cd8158231"
            "b545ffd4165b32bcf77a1df0b8efd9067d4f894c8cf8c1950b4b8700e0f50dacae3b0a5d495cce67"
            "a4c2c2cb3c51e3614c96ac2d9e67ab47f353edbfe008f37648759c221753e052f29a74e87ec99ca8"
            "f40b1578fbec735bc33f372fbadb5cc8b8359dc7cd3519e424407a20af591a606270fbeff46f79c4"
            "c6c1e751ca57e9840aee139d5dc3493a4c90233b4cc60697995a49818aba6ba4e83a06782570d6bc"
            "9a583e385a91ccdf1e816e15a7ed1b0a131933dbdc263745520feb2626800b09cdd4383a6e826982"
            "4c259c83ac0d5bca9853476772991c3c102e35d1be882a90bb6111e011e539a7e679d81d156881e0"
            "a1817df918e51a31"),
        "K": "70367781f13305303d67e814f4c04d43eaf7fd8c831cf4ffe18a8e6d25d553f0",
    },
    {
        "tcId": 174,
        "comment": "Rho leads to matrix containing zeroes",
        "flags": [],
        "result": "valid",
        "reencrypts": True,
        "seed": (
            "986458520d0000000000000000000000000000000000000000000000000000000000000000000000"
            "000000000000000000000000000000000000000000000000"),
        "ek_sha256": "b70b0ac2f02851f395fea665c45d3dd98ba968bd745251a271a84aba9ecc77f9",
        "c": (
            "000f98aafe4e952ff10b6ccb1e65132076401027a7cba62df70b1d54a68d25d1e31d7d0275eba66b"
            "db77e8a1cfdc6d591673193ecdf39be8a4ee2fbad9981b52b967c7415e4185be06dcd927fc2aee05"
            "2f5e63a67b142369414687de5d2c43c19092b9136db96c51ad7ec108038fc8e9ea92ee273554a28a"
            "ccf146e8f2237fa611cab0cd048ebdc472751dc9d330ffc2b98a6d8c9af5c53117881f8dd7d68843"
            "f8db6e8a9f0b777524935b476521fae746a191516f4a88f65a4ac111fc68b75bb61e680f0576c354"
            "e010f77e4e7be17ffd8ce01548fa6bd9c4f13659e47551055b662dbaf0e2bd631d626de519dd9bca"
            "1ae5a56efcf19b8ee2e1001f56b435f630604c42df8af02a22c3fe810dd2aecef3fb7cd38ab7580e"
            "aa7e350f615e75f0b21b61a5fe0ac3413160634d4a52675a14cc5c3b210a31530d9726733d79d661"
            "c65f012a5d847f30ad62ed323246222542944972461725029d1a9fe988020109441b7d06a3a56fcd"
            "12b831f1e778fe7e1aff843653f9e0f7d930277e94d85af06ab542774892a7c65566cc3b089980ab"
            "2dd17bd146793bf5c8c751173923d67b3151794a00e502e7be8603f4d8e09513465fc82b2543bfdb"
            "5c930ece639456bf772c5dcb76ef4732d0b0a540969cc9fe94a54204b3700224021644b4af5fef85"
            "56efe297c32e98e95d2ff1087c8fe04e7ebbf237919c922c93082a490084bff89646a20ed51eb6b8"
            "73e53a8b76e845d48d7212895a99f7f440d25dc04e262a204cced282e20511e0407fbe4f56b599d3"
            "5a7d29179563b386c98a7d87f8f33be03d47a7d9119c52f3d4624b3ef6b9f62fe018794f43ee4fa2"
            "2b88d397665d5a6af9a6e8d321cf435446b5a603485398a950dd16565223cd75438e062b9e6561c6"
            "86fc7949ca43731717d5e1f53291ebc6755d2f48ce632d86604e42bf35a1545b9a36a0cbbdcb083e"
            "fbe7c6535d287d630af9cdafdb088aded6df658404a3777cd3626b845e289828f592feacf91025ce"
            "0453280a7c520c76cb4f9e7f0d0f16851a42eed8c0c908c82ce3554034889527a505a47d9b28323e"
            "cdf9ab5e69d354a9549ca7e36f2b3b8b09b12d00db6662647512d4cce14dd20bc4034e69b0551719"
            "c97c2b7346ce4362ca0bff9627072ec10deb1233a86c5a70328bbafef0ac2769c7a932649b37e408"
            "2d8e3d56c57ff6bea7516f880a3b37cef99a55567fbc185c0f31c57bc1f0e9a3e3219736cbb2ab0f"
            "e788d849ed191a2f42524b6f55dfcad134a278597473c573e10fb3f6d8c2006be4fb355beb8b92e0"
            "44d5ab410d3a9f4d925117cbdc8fad8f31d7bb1e5d8045c617252e39cb7b333316196f4a740a029c"
            "0cca158fdbaab7757be2e60b656774811cdb55cbd65fe3367da0755aa7cd27c16241329e24fc318f"
            "a88d770476e846b6ac1c626d4a15e1fc2ce3ee854d4bc5191088aff2834b2ca80898bbb37eacf747"
            "0cc65f8a401dbcb8abe71f5735aefa3c7da7c4deb11e568213b2a1ebc147909091b35fbc8700f837"
            "66832e4467f203d9"),
        "K": "af2a86006103784b31398ecf5adb1b1c8ebbc1a1ad1707beaacef56ddf907b48",
    },
    {
        "tcId": 184,
        "comment": "Rho leads to a matrix with unusually large entries",
        "flags": [],
        "result": "valid",
        "reencrypts": True,
        "seed": (
            "013d4182890000000000000000000000000000000000000000000000000000000000000000000000"
            "000000000000000000000000000000000000000000000000"),
        "ek_sha256": "2ac83b4778b26f2b4e5a47db171a349d62a2b182e26686c9078f715befc0045f",
        "c": (
            "67e9e846fe3713020d7d8cf5c9f98082d3f4ca000acb3768e4a9827ef80b63ab74b2fcd07fe40275"
            "b484cec428fd092504754fb4e097cc4c3ef44ed94615855d54b4aacfc55a49159b6066abd2268eab"
            "37ab9ee144fc997e606a877d6e6598b9dc161e5d46a2707d556f120ca1123379d8a105cb1b234785"
            "54ade4bbd145aeda92c43d07591ebc073f64be90e5f5b64bad5148c0be02e412d55f75edbf7841bf"
            "e55c99771bb303ea62abb9c4f1107ce3869f159254198ad930e8398a1019fa08950673e2ee026b1c"
            "f3ba21c63703206fb756b451a62a08e3ff50edf5bf53c259501b97bb7121b315c980148736275d7f"
            "f8150e3bc45e645e8b9874f09acbbaab387c96da7924c5a169b77246da4f850e4607638f4290e1ae"
            "aed182d1e6cd6510a5f14a1c1a12b82efd29494775bfce4bc99e37ac1329a0f97471025cf6b0bfb5"
            "e6fb2139583d6e8784e66a680005d7550c079e8589f6e2c005840590baf2ad6800183a352d9d783d"
            "3d822cec6300c42ec0216c737a694340626700eb8ed5613d634985ecbe9f004635efd8fb3f6fc6af"
            "1f6d9c07c4bca637b4d0250259611571e8579672b2b383e647f6f7e2a5f5c77e1b3db8f64347f1ba"
            "62af836f13266dd3a46e47c4c2f4971a30040757bdbc6ef7a55972ef3ff0477fbb1fab941f0e4edb"
            "ea75d5687b3026ee8446099a4e28880c4f6be247d276d2374b87d8cddc6c1ac890878d7dd5460784"
            "8841f7345dfe417bc8737edd006c4370361ecbd47a141efcaf57377b1dde25af26bfcf1eae27574a"
            "aba16d62926240930076dd3f452442e401b40c28a1d04ee11e2769b769ac35bf3d33275a06536b24"
            "7dc6b4e5ef19055aa7059b3ba8463fbd534e84973976924d57e2fd4fff71d807d21ad1c111201226"
            "7a9775bbd87b6f884135b009103553068260704fae1cb1f30fbefad173456373b34472604a6bb215"
            "c98a7e330e92b38f9487bb652656062812098c09ca07560ae111d19284ceff00dd0caac0eb63f70e"
            "f3966d6cb18e1ab3e2799b388b5eff300d5fd5b1db6a83a4c5eff976ef0cdd286026640a7df6179b"
            "25e2585efaa2c4721c1de47e4bc6d3d328b837f271c0425c3c6aa09edee6489745a2ff8e3b613e81"
            "9ba0add2a3c8b019cd2947a26484392b47f65519282a36813d0d1680a5dd0a2e0c64a299e7185f16"
            "3e11850914c1e41a4669e7cf87edf68fee03018473cfdb60a344591417e7b79f91568d07dedfd043"
            "df4c70c41e6d977c25d47b1409ffa879b778f97828a7632b76bb0ab8ab209a49fe6c96c7a6acb8c4"
            "857f1f25a8e06352aa5627f6ed4268ca3be4c8caeffc49bde6d014e5c89ac6efc83d4c0c612d3b57"
            "9569b402d24d67bb78a778b79c0ac0e1402ca86641ab8b4098102443ad5324f3710498edd4ca64e4"
            "a4b27ce5e64b405ac5e744a2baab3b4b4ab5a6d46786b16919ec44902db13082e419ebbec0e6f5a7"
            "a7d6cfea45caf8323ad95d4c05f5ba0eb502eb3a601bdbb67c6a4438dbfe8f27e7ead293d2549337"
            "b67302b05a01cbff"),
        "K": "b0103654959074c684385ef65fe59ff4bd3612e76d985f8a7e1781ae2e50c0e2",
    },
]


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
    assert hashlib.sha256(ek).hexdigest() == case["ek_sha256"]
    assert header[32:] == hashlib.sha3_256(ek).digest()
    assert decapsulate(seed, c[:960], c[960:]).hex() == case["K"]

    _, dk = ML_KEM_768.key_derive(seed)
    m = ML_KEM_768._k_pke_decrypt(dk[:1152], c)
    ciphertext, shared = braid_encapsulate(header, ek_vector, m)
    assert (ciphertext == c) is case["reencrypts"]
    assert (shared.hex() == case["K"]) is case["reencrypts"]
