"""Incremental ("split") ML-KEM-768 for Signal's ML-KEM Braid (SPQR).

The Braid sends an ML-KEM-768 encapsulation key in two parts, a 64-byte
*header* first and the 1152-byte *ek_vector* later, and lets the
encapsulator start before the second part arrives:

* ``header``    = rho || H(ek) (32 + 32 bytes), with H = SHA3-256 and the
  standard FIPS 203 ek = ek_vector || rho (FIPS 203 Algorithm 13);
* ``ek_vector`` = ByteEncode_12(t_hat) (1152 bytes);
* ciphertext    = ct1 || ct2 (960 + 128 bytes), byte for byte the c of
  ML-KEM-768, ct1 = ByteEncode_10(Compress_10(u)) and
  ct2 = ByteEncode_4(Compress_4(v)).

:func:`encaps1` needs only the header: it runs the part of
ML-KEM.Encaps_internal (FIPS 203 Algorithm 17) and K-PKE.Encrypt
(Algorithm 14) that does not touch t_hat, and returns ct1, the shared
secret K and an :class:`EncapsState` holding y_hat, e2 and m.
:func:`encaps2` checks the ek_vector against the header (the hash, then the
FIPS 203 section 7.2 modulus check) and finishes Algorithm 14 with ct2.  For
every valid key, ct1 || ct2 and K equal ML-KEM-768.Encaps_internal(ek, m).
Key generation (Algorithm 16) and decapsulation (Algorithm 18) are
``cryptography``'s ML-KEM-768 (OpenSSL).

Written from FIPS 203 (NIST, "Module-Lattice-Based Key-Encapsulation
Mechanism Standard", 2024-08-13); the functions below name the algorithms
they implement.  Parameters of ML-KEM-768 (FIPS 203 section 8): k = 3,
eta1 = eta2 = 2, du = 10, dv = 4.

Side channels.  This is pure-Python arithmetic on secrets (m, r, y, e1,
e2, y_hat, K): no secret value chooses a branch or indexes a table, but
Python's integer multiplication, ``%`` and ``//`` are not constant-time in a
strong sense.  It is kept in this one module, behind four functions and one
state type, so that a compiled constant-time implementation can replace it.
Only SampleNTT's rejection loop branches, on values derived from the public
rho.

State encoding (:meth:`EncapsState.to_bytes`, 1312 bytes, fixed size, no
tag or version: the enclosing record frames it)::

    ByteEncode_12(y_hat[0]) || ByteEncode_12(y_hat[1]) || ByteEncode_12(y_hat[2])
                                                      (3 x 384 bytes, each < q)
    e2, two coefficients a byte: (e2[2i] + 2) | (e2[2i+1] + 2) << 4
                                                      (128 bytes, nibbles 0..4)
    m                                                 (32 bytes)

:meth:`EncapsState.from_bytes` accepts exactly the encodings that
:meth:`~EncapsState.to_bytes` produces.
"""

from __future__ import annotations

import hashlib
from typing import Final

from cryptography.hazmat.primitives.asymmetric import mlkem as _mlkem

from .._errors import (
    InvalidArgument,
    InvalidEncoding,
    InvalidKey,
    TrailingBytes,
    TruncatedInput,
)
from .kdf import ct_equal

__all__ = [
    "MLKEM768_SEED_SIZE",
    "MLKEM768_HEADER_SIZE",
    "MLKEM768_EK_VECTOR_SIZE",
    "MLKEM768_CT1_SIZE",
    "MLKEM768_CT2_SIZE",
    "MLKEM768_RANDOMNESS_SIZE",
    "MLKEM768_SHARED_SECRET_SIZE",
    "ENCAPS_STATE_SIZE",
    "EncapsState",
    "keygen",
    "encaps1",
    "encaps2",
    "decapsulate",
]

MLKEM768_SEED_SIZE: Final = 64  # d || z (FIPS 203 section 7.1)
MLKEM768_HEADER_SIZE: Final = 64  # rho || H(ek)
MLKEM768_EK_VECTOR_SIZE: Final = 1152  # ByteEncode_12(t_hat)
MLKEM768_CT1_SIZE: Final = 960  # 32 * du * k
MLKEM768_CT2_SIZE: Final = 128  # 32 * dv
MLKEM768_RANDOMNESS_SIZE: Final = 32  # m
MLKEM768_SHARED_SECRET_SIZE: Final = 32
ENCAPS_STATE_SIZE: Final = 1152 + 128 + 32

_Q: Final = 3329
_N: Final = 256
_K: Final = 3
_DU: Final = 10
_DV: Final = 4
_ETA: Final = 2  # eta1 = eta2 for ML-KEM-768
_POLY12: Final = 384  # bytes of one ByteEncode_12 polynomial
_E2_SIZE: Final = 128
_XOF_BLOCK: Final = 168  # SHAKE128 rate


def _bitrev7(i: int) -> int:
    return int(f"{i:07b}"[::-1], 2)


# zeta^BitRev7(i) (NTT and NTT^-1, Algorithms 9 and 10) and
# zeta^(2 BitRev7(i) + 1) (MultiplyNTTs, Algorithm 11), zeta = 17.
_ZETAS: Final = tuple(pow(17, _bitrev7(i), _Q) for i in range(128))
_GAMMAS: Final = tuple(pow(17, 2 * _bitrev7(i) + 1, _Q) for i in range(128))
_N_INV: Final = 3303  # 128^-1 mod q
_CBD_MASK: Final = int.from_bytes(b"\x55" * (64 * _ETA), "little")


# --- NTT arithmetic (FIPS 203 section 4.3) -----------------------------------------


def _ntt(f: list[int]) -> list[int]:
    """NTT (Algorithm 9).  Input coefficients may be any integers; the
    additions are left unreduced (at most 8q after seven layers) and
    reduced once at the end."""
    f = list(f)
    zetas = _ZETAS
    i = 1
    length = 128
    while length >= 2:
        for start in range(0, _N, 2 * length):
            zeta = zetas[i]
            i += 1
            for j in range(start, start + length):
                t = zeta * f[j + length] % _Q
                f[j + length] = f[j] - t
                f[j] += t
        length >>= 1
    return [x % _Q for x in f]


def _ntt_inverse(f: list[int]) -> list[int]:
    """NTT^-1 (Algorithm 10).  The sums are left unreduced (at most 2^7 q)
    and the result is reduced with the final multiplication by 128^-1."""
    f = list(f)
    zetas = _ZETAS
    i = 127
    length = 2
    while length <= 128:
        for start in range(0, _N, 2 * length):
            zeta = zetas[i]
            i -= 1
            for j in range(start, start + length):
                t = f[j]
                f[j] = t + f[j + length]
                f[j + length] = zeta * (f[j + length] - t) % _Q
        length <<= 1
    return [x * _N_INV % _Q for x in f]


def _dot_ntt(a: list[list[int]], b: list[list[int]]) -> list[int]:
    """sum_j MultiplyNTTs(a[j], b[j]) (Algorithms 11 and 12), reduced once
    after the sum."""
    c0 = [0] * 128
    c1 = [0] * 128
    for f, g in zip(a, b):
        c0 = [s + a0 * b0 + a1 * b1 % _Q * gamma
              for s, a0, a1, b0, b1, gamma in zip(c0, f[0::2], f[1::2], g[0::2], g[1::2],
                                                  _GAMMAS)]
        c1 = [s + a0 * b1 + a1 * b0
              for s, a0, a1, b0, b1 in zip(c1, f[0::2], f[1::2], g[0::2], g[1::2])]
    out = [0] * _N
    out[0::2] = [x % _Q for x in c0]
    out[1::2] = [x % _Q for x in c1]
    return out


# --- sampling (FIPS 203 section 4.2.2) ---------------------------------------------


def _sample_ntt(seed34: bytes) -> list[int]:
    """SampleNTT (Algorithm 7) with XOF = SHAKE128.  Works on public input
    (rho || j || i), so its rejection test may branch.  hashlib's SHAKE
    cannot squeeze incrementally; since a shorter output is a prefix of a
    longer one, a rare shortfall is met by asking for one more block."""
    xof = hashlib.shake_128(seed34)
    size = 3 * _XOF_BLOCK
    while True:
        stream = xof.digest(size)
        b0, b1, b2 = stream[0::3], stream[1::3], stream[2::3]
        candidates = [d for x, y, z in zip(b0, b1, b2)
                      for d in (x | (y & 15) << 8, y >> 4 | z << 4)]
        accepted = [d for d in candidates if d < _Q]
        if len(accepted) >= _N:
            return accepted[:_N]
        size += _XOF_BLOCK


def _sample_poly_cbd2(prf_output: bytes) -> list[int]:
    """SamplePolyCBD_2 (Algorithm 8) on 128 bytes, by bit sums: each 2-bit
    field of ``pairs`` holds b[2j] + b[2j+1], and each byte of it two
    coefficients (x0 + x1) - (x2 + x3).  Coefficients are in [-2, 2],
    not reduced mod q."""
    x = int.from_bytes(prf_output, "little")
    pairs = ((x & _CBD_MASK) + (x >> 1 & _CBD_MASK)).to_bytes(64 * _ETA, "little")
    return [c for byte in pairs
            for c in ((byte & 3) - (byte >> 2 & 3), (byte >> 4 & 3) - (byte >> 6))]


def _prf(r: bytes, n: int) -> bytes:
    """PRF_eta(s, b) = SHAKE256(s || b, 8 * 64 * eta) (section 4.1)."""
    return hashlib.shake_256(r + bytes((n,))).digest(64 * _ETA)


# --- encodings (FIPS 203 section 4.2.1) --------------------------------------------


def _byte_encode12(f: list[int]) -> bytes:
    """ByteEncode_12 (Algorithm 5) of coefficients in [0, q)."""
    out = bytearray(3 * (len(f) // 2))
    a, b = f[0::2], f[1::2]
    out[0::3] = bytes([x & 255 for x in a])
    out[1::3] = bytes([x >> 8 | (y & 15) << 4 for x, y in zip(a, b)])
    out[2::3] = bytes([y >> 4 for y in b])
    return bytes(out)


def _byte_decode12(data: bytes) -> list[int]:
    """ByteDecode_12 (Algorithm 6) without the final reduction mod q: the
    raw 12-bit values, so that callers can refuse those >= q."""
    out = [0] * (2 * (len(data) // 3))
    b0, b1, b2 = data[0::3], data[1::3], data[2::3]
    out[0::2] = [x | (y & 15) << 8 for x, y in zip(b0, b1)]
    out[1::2] = [y >> 4 | z << 4 for y, z in zip(b1, b2)]
    return out


def _count_unreduced(f: list[int]) -> int:
    """How many 12-bit values are >= q, by arithmetic: x + (4096 - q)
    carries into bit 12 exactly when x >= q."""
    return sum([(x + (4096 - _Q)) >> 12 for x in f])


def _compress_encode(f: list[int], d: int) -> bytes:
    """ByteEncode_d(Compress_d(f)) (Algorithms 4 and 5, equation 4.7) for
    coefficients in [0, q) (d < 12).  Compress_d(x) = round(2^d x / q) mod
    2^d, which for odd q is floor((2^d x + (q - 1) / 2) / q) mod 2^d.  Eight
    d-bit values fill d bytes, least significant bit first."""
    mask = (1 << d) - 1
    half = _Q // 2
    values = [((x << d) + half) // _Q & mask for x in f]
    return b"".join([
        (v0 | v1 << d | v2 << 2 * d | v3 << 3 * d | v4 << 4 * d | v5 << 5 * d | v6 << 6 * d
         | v7 << 7 * d).to_bytes(d, "little")
        for v0, v1, v2, v3, v4, v5, v6, v7 in zip(*(values[k::8] for k in range(8)))])


# --- the encapsulation state -------------------------------------------------------


class EncapsState:
    """What :func:`encaps2` needs from :func:`encaps1`: y_hat (the NTT of
    K-PKE.Encrypt's y), e2 and m.  All three are secret: whoever holds them
    and the ciphertext can compute the shared secret.

    :meth:`to_bytes` and :meth:`from_bytes` are its only serialized form
    (layout in the module docstring)."""

    __slots__ = ("_y_hat", "_e2", "_m")

    def __init__(self, y_hat: list[list[int]], e2: list[int], m: bytes) -> None:
        self._y_hat = y_hat
        self._e2 = e2
        self._m = m

    def to_bytes(self) -> bytes:
        """The 1312-byte encoding, as :meth:`from_bytes` takes it (secret)."""
        e2 = self._e2
        nibbles = bytes([(a + 2) | (b + 2) << 4 for a, b in zip(e2[0::2], e2[1::2])])
        return b"".join([*(_byte_encode12(p) for p in self._y_hat), nibbles, self._m])

    @classmethod
    def from_bytes(cls, data: bytes) -> EncapsState:
        """Parse :meth:`to_bytes` output.  Raises
        :class:`~signalish.errors.TruncatedInput` if shorter than 1312 bytes,
        :class:`~signalish.errors.TrailingBytes` if longer, and
        :class:`~signalish.errors.InvalidEncoding` for a y_hat coefficient
        >= q or an e2 nibble above 4."""
        data = bytes(data)
        if len(data) < ENCAPS_STATE_SIZE:
            raise TruncatedInput(
                f"ML-KEM-768 encaps state: {len(data)} of {ENCAPS_STATE_SIZE} bytes")
        if len(data) > ENCAPS_STATE_SIZE:
            raise TrailingBytes(
                f"ML-KEM-768 encaps state: {len(data) - ENCAPS_STATE_SIZE} bytes follow it")
        end = _K * _POLY12
        coefficients = _byte_decode12(data[:end])
        nibbles = data[end:end + _E2_SIZE]
        # Arithmetic range checks, so that only "valid or not" decides a branch.
        bad = _count_unreduced(coefficients)
        bad += sum([((b & 15) + 11) >> 4 | ((b >> 4) + 11) >> 4 for b in nibbles])
        if bad:
            raise InvalidEncoding("ML-KEM-768 encaps state: a value is out of range")
        y_hat = [coefficients[i * _N:(i + 1) * _N] for i in range(_K)]
        e2 = [c for b in nibbles for c in ((b & 15) - 2, (b >> 4) - 2)]
        return cls(y_hat, e2, data[end + _E2_SIZE:])

    def __repr__(self) -> str:
        return "EncapsState(<secret>)"


# --- the Braid's KEM ---------------------------------------------------------------


def _check_header(header: bytes) -> bytes:
    header = bytes(header)
    if len(header) != MLKEM768_HEADER_SIZE:
        raise InvalidKey(f"an ML-KEM-768 braid header is 64 bytes, got {len(header)}")
    return header


def keygen(seed: bytes) -> tuple[bytes, bytes, bytes]:
    """ML-KEM-768.KeyGen_internal (FIPS 203 Algorithm 16) from the 64-byte
    seed d || z, by ``cryptography``.  Returns (seed, header, ek_vector): the
    seed is the decapsulation key's only stored form (as
    :func:`decapsulate` takes it), the header is rho || SHA3-256(ek).
    Raises :class:`~signalish.errors.InvalidArgument` for another seed
    length."""
    seed = _check_seed(seed)
    ek = _mlkem.MLKEM768PrivateKey.from_seed_bytes(seed).public_key().public_bytes_raw()
    ek_vector, rho = ek[:MLKEM768_EK_VECTOR_SIZE], ek[MLKEM768_EK_VECTOR_SIZE:]
    return seed, rho + hashlib.sha3_256(ek).digest(), ek_vector


def encaps1(header: bytes, m: bytes) -> tuple[EncapsState, bytes, bytes]:
    """The first half of ML-KEM-768.Encaps_internal (FIPS 203 Algorithm 17)
    with K-PKE.Encrypt (Algorithm 14) up to u, from the header alone.

    ``m`` is 32 fresh random bytes.  Returns (state, ct1, K): K is the
    32-byte shared secret, ct1 the first 960 bytes of the ciphertext.
    Raises :class:`~signalish.errors.InvalidKey` for a header that is not
    64 bytes, :class:`~signalish.errors.InvalidArgument` for an m that is
    not 32 bytes.  The ek behind the header is checked by :func:`encaps2`.
    """
    header = _check_header(header)
    m = bytes(m)
    if len(m) != MLKEM768_RANDOMNESS_SIZE:
        raise InvalidArgument(f"ML-KEM randomness m is 32 bytes, got {len(m)}")
    rho, ek_hash = header[:32], header[32:]
    g = hashlib.sha3_512(m + ek_hash).digest()  # (K, r) = G(m || H(ek))
    shared, r = g[:32], g[32:]
    y = [_sample_poly_cbd2(_prf(r, n)) for n in range(_K)]
    e1 = [_sample_poly_cbd2(_prf(r, _K + n)) for n in range(_K)]
    e2 = _sample_poly_cbd2(_prf(r, 2 * _K))
    y_hat = [_ntt(p) for p in y]
    u_coefficients: list[int] = []
    for i in range(_K):
        # Row i of A_hat^T: A_hat[j, i] = SampleNTT(rho || i || j).
        row = [_sample_ntt(rho + bytes((i, j))) for j in range(_K)]
        u = _ntt_inverse(_dot_ntt(row, y_hat))
        u_coefficients += [(a + b) % _Q for a, b in zip(u, e1[i])]
    ct1 = _compress_encode(u_coefficients, _DU)
    return EncapsState(y_hat, e2, m), ct1, shared


def encaps2(state: EncapsState, header: bytes, ek_vector: bytes) -> bytes:
    """The rest of K-PKE.Encrypt (FIPS 203 Algorithm 14): v and ct2.

    First checks the ek_vector against the header that :func:`encaps1` used:
    SHA3-256(ek_vector || rho) must equal the header's H(ek), and every
    coefficient of ByteDecode_12(ek_vector) must be below q (the modulus
    check of FIPS 203 section 7.2, ByteEncode_12(ByteDecode_12(ek_vector))
    == ek_vector, which fails exactly for a 12-bit value >= q).  Raises
    :class:`~signalish.errors.InvalidKey` if either fails or a length is
    wrong.  Returns ct2, the last 128 bytes of the ciphertext."""
    header = _check_header(header)
    ek_vector = bytes(ek_vector)
    if len(ek_vector) != MLKEM768_EK_VECTOR_SIZE:
        raise InvalidKey(f"an ML-KEM-768 ek_vector is 1152 bytes, got {len(ek_vector)}")
    rho, ek_hash = header[:32], header[32:]
    if not ct_equal(hashlib.sha3_256(ek_vector + rho).digest(), ek_hash):
        raise InvalidKey("ML-KEM-768 ek_vector does not match the header's hash")
    t_hat = _byte_decode12(ek_vector)
    if _count_unreduced(t_hat):
        raise InvalidKey("ML-KEM-768 ek_vector fails the modulus check")
    v = _ntt_inverse(_dot_ntt([t_hat[i * _N:(i + 1) * _N] for i in range(_K)], state._y_hat))
    bits = int.from_bytes(state._m, "little")
    # Decompress_1(ByteDecode_1(m)): bit i of m times (q + 1) / 2.
    mu = [(bits >> i & 1) * ((_Q + 1) // 2) for i in range(_N)]
    return _compress_encode([(a + b + c) % _Q for a, b, c in zip(v, state._e2, mu)], _DV)


def _check_seed(seed: bytes) -> bytes:
    seed = bytes(seed)
    if len(seed) != MLKEM768_SEED_SIZE:
        raise InvalidArgument(f"an ML-KEM seed is 64 bytes, got {len(seed)}")
    return seed


def decapsulate(seed: bytes, ct1: bytes, ct2: bytes) -> bytes:
    """ML-KEM-768.Decaps (FIPS 203 Algorithm 18, via ``cryptography``) of
    ct1 || ct2 under the key of ``seed``.  Implicit rejection: a wrong but
    well-sized ciphertext yields an unrelated secret, not an error.  Raises
    :class:`~signalish.errors.InvalidArgument` for a seed that is not 64
    bytes and :class:`~signalish.errors.InvalidKey` for a ct1 that is not
    960 bytes or a ct2 that is not 128."""
    seed = _check_seed(seed)
    if len(ct1) != MLKEM768_CT1_SIZE or len(ct2) != MLKEM768_CT2_SIZE:
        raise InvalidKey(
            f"ML-KEM-768 ciphertext parts are 960 and 128 bytes, got {len(ct1)} and {len(ct2)}")
    key = _mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)
    return key.decapsulate(bytes(ct1) + bytes(ct2))
