"""The erasure code that carries SPQR's ML-KEM Braid messages in chunks.

The Braid (SPQR) sends each of its messages (header 96 bytes, ek_vector
1152, ct1 960, ct2 160) as a stream of 32-byte chunks, one chunk on each
Signal message, and the receiver rebuilds the message from *any* n of them,
where n is the message size over 32.  Messages get lost or reordered, so the
sender keeps going after the n data chunks with parity chunks until the
protocol moves on.

The code, as libsignal-client 0.103.0 produces it (established by black-box
observation of its output, and checked against its chunks by
tests/test_erasure.py; no libsignal source was read):

* A payload of n * 32 bytes is cut into n data chunks; chunk i < n is
  ``payload[32*i : 32*i + 32]`` (the code is systematic).
* A chunk is 16 big-endian 16-bit words.  Word j of data chunk i is the
  point (x = i, y = word) of P_j, the polynomial of degree < n over GF(2^16)
  with reduction polynomial x^16 + x^12 + x^3 + x + 1 (0x1100B) through the
  n data points.
* Chunk k >= n has word j = P_j(k), the chunk index taken as a field
  element.  Indices run 0..65535, so a stream has at most 65536 chunks.
* Any n distinct chunks fix every P_j (a Reed-Solomon code, MDS): the
  decoder interpolates.  It corrects erasures, not errors: n chunks have no
  redundancy to check, and a wrong chunk gives a wrong message.  The Braid
  authenticates what the decoder returns (the header MAC, the header's hash
  of the ek_vector, the ciphertext MAC), and the whole Signal message that
  carries a chunk is MACed.

Arithmetic.  Products use log/antilog tables built once at import (x is a
primitive element of this field, so its powers x^0 .. x^65534 are every
non-zero element).  Interpolation uses the barycentric form: for distinct
points x_t, b_t = 1 / prod_{s != t} (x_t + x_s) once per point set, and
then at a new point x the Lagrange weight of x_t is
``l(x) * b_t / (x + x_t)`` with ``l(x) = prod_s (x + x_s)``: O(n) per chunk
after O(n^2) once.  All of it happens on logarithms, mod 65535.

Side channels.  Table lookups indexed by the data leak it through the cache.
That is acceptable here because everything that passes through this code is
public: the header, the ek_vector and the ciphertexts all travel in the
clear in field 5 of each SignalMessage (covered by its MAC, not encrypted).
Do not use this module on secrets.

State encodings (no tag or version: the enclosing record frames them;
integers unsigned big-endian)::

    Encoder:  u32 size || u32 next_index || payload (size bytes)
    Decoder:  u32 size || u32 count || count x (u16 index || 32-byte chunk)

``size`` is a multiple of 32 in 32..2097152, ``next_index`` is in 0..65536
(65536: every index was used), ``count`` is at most size / 32 and the
decoder's indices are strictly increasing.  ``from_bytes`` accepts exactly
the encodings that ``to_bytes`` produces.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Final, Self

from .._errors import (
    InvalidArgument,
    InvalidEncoding,
    InvalidLength,
    TrailingBytes,
    TruncatedInput,
)

__all__ = [
    "CHUNK_SIZE",
    "MAX_CHUNK_INDEX",
    "MAX_PAYLOAD_SIZE",
    "gf_mul",
    "gf_inv",
    "Encoder",
    "Decoder",
]

CHUNK_SIZE: Final = 32
MAX_CHUNK_INDEX: Final = 0xFFFF
#: One data chunk per field element: n = 65536 is the largest code.
MAX_PAYLOAD_SIZE: Final = (MAX_CHUNK_INDEX + 1) * CHUNK_SIZE

_POLY: Final = 0x1100B
_ORDER: Final = 0xFFFF  # order of the multiplicative group
# log(0) is undefined; this stand-in lands every "log(w) + log(0)" with w != 0
# in the zero-filled third of _EXP, so a product by a known non-zero weight
# (interpolation) needs no branch for a zero word.
_LOG_ZERO: Final = 2 * _ORDER
_WORDS: Final = struct.Struct(">16H")


def _build_tables() -> tuple[list[int], list[int]]:
    powers = []
    x = 1
    for _ in range(_ORDER):
        powers.append(x)
        x <<= 1
        if x > 0xFFFF:
            x ^= _POLY
    log = [_LOG_ZERO] * 0x10000
    for exponent, value in enumerate(powers):
        log[value] = exponent
    # Two periods, so a sum of two logs needs no reduction; then zeros.
    return powers + powers + [0] * _ORDER, log


_EXP, _LOG = _build_tables()


def _check_element(value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise InvalidArgument(f"a GF(2^16) element is an int in 0..65535, got {value!r}")


def gf_mul(a: int, b: int) -> int:
    """The product of ``a`` and ``b`` in GF(2^16) mod 0x1100B.  Raises
    :class:`~signalish.errors.InvalidArgument` for a value outside 0..65535."""
    _check_element(a)
    _check_element(b)
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def gf_inv(a: int) -> int:
    """The multiplicative inverse of ``a`` in GF(2^16) mod 0x1100B.  Raises
    :class:`~signalish.errors.InvalidArgument` for 0 or a value outside
    0..65535."""
    _check_element(a)
    if a == 0:
        raise InvalidArgument("0 has no inverse")
    return _EXP[_ORDER - _LOG[a]]  # _EXP holds two periods


# --- interpolation ------------------------------------------------------------------


def _barycentric(points: tuple[int, ...]) -> list[int]:
    """log b_t = -sum_{s != t} log(x_t + x_s), for distinct points."""
    log = _LOG
    return [-sum([log[xt ^ xs] for xs in points if xs != xt]) % _ORDER for xt in points]


@lru_cache(maxsize=16)
def _data_barycentric(n: int) -> tuple[int, ...]:
    """The barycentric weights of the data points 0..n-1 (every encoder of
    an n-chunk payload shares them)."""
    return tuple(_barycentric(tuple(range(n))))


def _evaluate(points: tuple[int, ...], bary: tuple[int, ...] | list[int],
              rows: list[list[int]], x: int) -> bytes:
    """The chunk at ``x`` (not one of ``points``) from the chunks at
    ``points``, given as the logs of their words (``rows``)."""
    log = _LOG
    exp = _EXP
    lx = sum([log[x ^ p] for p in points])
    acc = [0] * 16
    for p, b, row in zip(points, bary, rows):
        w = (lx + b - log[x ^ p]) % _ORDER
        acc = [a ^ exp[w + y] for a, y in zip(acc, row)]
    return _WORDS.pack(*acc)


def _word_logs(chunk: bytes) -> list[int]:
    log = _LOG
    return [log[word] for word in _WORDS.unpack(chunk)]


# --- argument checks ------------------------------------------------------------------


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int):
        raise InvalidArgument(f"a payload size is an int, got {type(size).__name__}")
    if not (0 < size <= MAX_PAYLOAD_SIZE and size % CHUNK_SIZE == 0):
        raise InvalidArgument(
            f"a payload size is a multiple of 32 in 32..{MAX_PAYLOAD_SIZE}, got {size}")
    return size


def _check_index(index: int) -> int:
    if isinstance(index, bool) or not isinstance(index, int):
        raise InvalidArgument(f"a chunk index is an int, got {type(index).__name__}")
    if not 0 <= index <= MAX_CHUNK_INDEX:
        raise InvalidArgument(f"a chunk index is in 0..{MAX_CHUNK_INDEX}, got {index}")
    return index


def _check_bytes(data: bytes, what: str) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidArgument(f"{what} is bytes, got {type(data).__name__}")
    return bytes(data)


def _bytes_to_parse(data: bytes, what: str) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what}: expected bytes, got {type(data).__name__}")
    return bytes(data)


def _parse_size(data: bytes, what: str) -> int:
    if len(data) < 8:
        raise TruncatedInput(f"{what}: input shorter than its 8-byte header")
    size = int.from_bytes(data[:4], "big")
    if not (0 < size <= MAX_PAYLOAD_SIZE and size % CHUNK_SIZE == 0):
        raise InvalidLength(f"{what}: size {size} is not a multiple of 32 in 32..{MAX_PAYLOAD_SIZE}")
    return size


def _check_body_length(data: bytes, expected: int, what: str) -> None:
    if len(data) < expected:
        raise TruncatedInput(f"{what}: input ends {expected - len(data)} bytes early")
    if len(data) > expected:
        raise TrailingBytes(f"{what}: {len(data) - expected} bytes after the end")


# --- the two ends ----------------------------------------------------------------------


class Encoder:
    """Cuts one payload into chunks: the data chunks 0..n-1, then parity
    chunks n, n+1, ... up to index 65535.

    Raises :class:`~signalish.errors.InvalidArgument` if the payload is not
    a multiple of 32 bytes in 32..2097152.
    """

    __slots__ = ("_payload", "_rows", "_next")

    def __init__(self, payload: bytes) -> None:
        payload = _check_bytes(payload, "a payload")
        _check_size(len(payload))
        self._payload = payload
        self._rows: list[list[int]] | None = None
        self._next = 0

    @property
    def size(self) -> int:
        """The payload's length in bytes."""
        return len(self._payload)

    @property
    def next_index(self) -> int:
        """The index :meth:`next_chunk` returns next (65536 once every index was used)."""
        return self._next

    def next_chunk(self) -> tuple[int, bytes]:
        """The next chunk and its index, starting at 0.  Raises
        :class:`~signalish.errors.InvalidArgument` after index 65535."""
        if self._next > MAX_CHUNK_INDEX:
            raise InvalidArgument("this encoder has used every chunk index 0..65535")
        index = self._next
        chunk = self.chunk(index)
        self._next = index + 1
        return index, chunk

    def chunk(self, index: int) -> bytes:
        """Chunk ``index`` (0..65535), without moving :attr:`next_index`."""
        _check_index(index)
        n = len(self._payload) // CHUNK_SIZE
        if index < n:
            return self._payload[CHUNK_SIZE * index : CHUNK_SIZE * (index + 1)]
        if self._rows is None:
            self._rows = [_word_logs(self._payload[CHUNK_SIZE * i : CHUNK_SIZE * (i + 1)])
                          for i in range(n)]
        return _evaluate(tuple(range(n)), _data_barycentric(n), self._rows, index)

    def copy(self) -> Encoder:
        """An independent copy (the payload and the cached words are shared:
        nothing changes them)."""
        other = Encoder.__new__(Encoder)
        other._payload, other._rows, other._next = self._payload, self._rows, self._next
        return other

    def to_bytes(self) -> bytes:
        """``u32 size || u32 next_index || payload`` (see the module docstring)."""
        return len(self._payload).to_bytes(4, "big") + self._next.to_bytes(4, "big") + self._payload

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Strict inverse of :meth:`to_bytes`: raises a named
        :class:`~signalish.errors.DecodeError` subclass for any other input."""
        data = _bytes_to_parse(data, "Encoder")
        size = _parse_size(data, "Encoder")
        next_index = int.from_bytes(data[4:8], "big")
        if next_index > MAX_CHUNK_INDEX + 1:
            raise InvalidEncoding(f"Encoder: next index {next_index} is above 65536")
        _check_body_length(data, 8 + size, "Encoder")
        encoder = cls(data[8:])
        encoder._next = next_index
        return encoder

    def __repr__(self) -> str:
        return f"Encoder(size={self.size}, next_index={self._next})"


class Decoder:
    """Collects the chunks of one payload of known ``size`` until it can
    rebuild it: any ``size // 32`` distinct indices will do.

    The first chunk at each index is kept.  A later chunk at an index already
    held is ignored, whether it repeats the first or differs from it, and so
    is every chunk after the payload is complete: nothing received later can
    change a message once it is determined.  Raises
    :class:`~signalish.errors.InvalidArgument` if ``size`` is not a multiple
    of 32 in 32..2097152.  Interpolation costs O(n^2) for n = size // 32
    (n <= 36 in SPQR).
    """

    __slots__ = ("_n", "_chunks", "_message")

    def __init__(self, size: int) -> None:
        self._n = _check_size(size) // CHUNK_SIZE
        self._chunks: dict[int, bytes] = {}
        self._message: bytes | None = None

    @property
    def size(self) -> int:
        """The payload's length in bytes."""
        return self._n * CHUNK_SIZE

    @property
    def held(self) -> int:
        """How many distinct chunks are held (at most ``size // 32``)."""
        return len(self._chunks)

    def copy(self) -> Decoder:
        """An independent copy."""
        other = Decoder.__new__(Decoder)
        other._n, other._chunks, other._message = self._n, dict(self._chunks), self._message
        return other

    def add_chunk(self, index: int, chunk: bytes) -> None:
        """Take chunk ``index`` (0..65535, 32 bytes).  Raises
        :class:`~signalish.errors.InvalidArgument` for anything else, and
        then nothing changed."""
        _check_index(index)
        chunk = _check_bytes(chunk, "a chunk")
        if len(chunk) != CHUNK_SIZE:
            raise InvalidArgument(f"a chunk is {CHUNK_SIZE} bytes, got {len(chunk)}")
        if len(self._chunks) < self._n and index not in self._chunks:
            self._chunks[index] = chunk

    def has_message(self) -> bool:
        """Whether enough chunks arrived to rebuild the payload."""
        return len(self._chunks) == self._n

    def message(self) -> bytes | None:
        """The payload, or None while fewer than ``size // 32`` chunks are held."""
        if not self.has_message():
            return None
        if self._message is None:
            self._message = self._rebuild()
        return self._message

    def _rebuild(self) -> bytes:
        chunks = self._chunks
        n = self._n
        if all(i in chunks for i in range(n)):
            return b"".join(chunks[i] for i in range(n))
        points = tuple(sorted(chunks))
        bary = _barycentric(points)
        rows = [_word_logs(chunks[p]) for p in points]
        return b"".join(chunks[k] if k in chunks else _evaluate(points, bary, rows, k)
                        for k in range(n))

    def to_bytes(self) -> bytes:
        """``u32 size || u32 count || count x (u16 index || chunk)``, indices
        ascending (see the module docstring)."""
        parts = [self.size.to_bytes(4, "big"), len(self._chunks).to_bytes(4, "big")]
        for index in sorted(self._chunks):
            parts.append(index.to_bytes(2, "big"))
            parts.append(self._chunks[index])
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Strict inverse of :meth:`to_bytes`: raises a named
        :class:`~signalish.errors.DecodeError` subclass for any other input,
        among them duplicate or unsorted indices and more chunks than the
        payload needs."""
        data = _bytes_to_parse(data, "Decoder")
        size = _parse_size(data, "Decoder")
        count = int.from_bytes(data[4:8], "big")
        if count > size // CHUNK_SIZE:
            raise InvalidLength(f"Decoder: {count} chunks held, at most {size // CHUNK_SIZE}")
        entry = 2 + CHUNK_SIZE
        _check_body_length(data, 8 + count * entry, "Decoder")
        decoder = cls(size)
        previous = -1
        for offset in range(8, len(data), entry):
            index = int.from_bytes(data[offset : offset + 2], "big")
            if index <= previous:
                raise InvalidEncoding("Decoder: chunk indices are not strictly increasing")
            decoder._chunks[index] = data[offset + 2 : offset + entry]
            previous = index
        return decoder

    def __repr__(self) -> str:
        return f"Decoder(size={self.size}, held={len(self._chunks)})"
