"""Attachments in Signal's format (signalish/_attachments.py, docs/attachments.md).

The independent evidence here is of three kinds:

* Signal's own published padding values (Signal-iOS's unit tests, stored in
  vectors/third_party/signal_attachments.json) and the padding rule recomputed
  bucket by bucket in exact integer arithmetic;
* a reference encryptor and decryptor written in this file on pyca
  ``cryptography``, ``hmac`` and ``hashlib`` directly, from the format as
  Signal-Android and Signal-Desktop implement it, sharing no code with
  signalish: every blob must equal it byte for byte.  No Signal repository
  publishes a fixed full-blob vector (docs/attachments.md says where we looked);
* Wycheproof's AES-256-CBC-PKCS5 vectors through the streaming primitive, fed
  one byte at a time.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import tracemalloc
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest
from cryptography.hazmat.primitives import padding as pyca_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from helpers import case_id, load_vectors, wycheproof_cases
from signalish._attachments import (
    PADDING_CHUNK,
    AttachmentDecryptor,
    AttachmentEncryptor,
    AttachmentKey,
    AttachmentMetadata,
    attachment_blob_size,
    decrypt_attachment,
    encrypt_attachment,
    attachment_padded_size,
)
from signalish._errors import AuthenticationError, InvalidArgument
from signalish._primitives import DeterministicRandom, hmac_sha256
from signalish._primitives.streaming import (
    Aes256CbcPkcs7Decryptor,
    Aes256CbcPkcs7Encryptor,
    HmacSha256Stream,
)

SIGNAL = load_vectors("third_party/signal_attachments.json")

KEY_BYTES = bytes(range(64))
IV = bytes(range(0xA0, 0xB0))
# Sizes around the CBC block (16) and the first padding buckets (541, 568, 596).
BOUNDARY_SIZES = (0, 1, 15, 16, 17, 31, 32, 33, 47, 48, 49, 539, 540, 541, 542, 543,
                  560, 567, 568, 569, 595, 596, 597, 1023, 1024, 1025, 4096, 67789, 67790)


class FixedIV:
    """A random source that returns one fixed IV (for byte-exact comparison)."""

    def __init__(self, iv: bytes) -> None:
        self.iv = iv

    def random_bytes(self, n: int, /) -> bytes:
        assert n == 16
        return self.iv


class RecordingSink:
    def __init__(self) -> None:
        self.data = bytearray()
        self.events: list[str] = []

    def write(self, data: bytes, /) -> None:
        assert not self.events, "write after commit or abort"
        self.data += data

    def commit(self) -> None:
        self.events.append("commit")

    def abort(self) -> None:
        self.events.append("abort")
        self.data.clear()


class HashingSink:
    """Keeps only a hash and a count: for the constant-memory test."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.count = 0
        self.committed = False

    def write(self, data: bytes, /) -> None:
        self.hash.update(data)
        self.count += len(data)

    def commit(self) -> None:
        self.committed = True

    def abort(self) -> None:
        raise AssertionError("aborted")


# --- the independent reference (pyca / hmac / hashlib only) --------------------------


def exact_padded_size(size: int) -> int:
    """max(541, floor(1.05 ** k)) for the least k with 1.05 ** k >= size, in
    exact rational arithmetic."""
    k, power = 0, Fraction(1)
    while power < size:
        k += 1
        power *= Fraction(21, 20)
    return max(541, power.numerator // power.denominator)


def reference_encrypt(key: bytes, iv: bytes, plaintext: bytes, *,
                      padding_byte: int = 0, pad: bool = True) -> tuple[bytes, bytes]:
    body = plaintext + bytes([padding_byte]) * ((exact_padded_size(len(plaintext)) if pad
                                                 else len(plaintext)) - len(plaintext))
    padder = pyca_padding.PKCS7(128).padder()
    padded = padder.update(body) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key[:32]), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    mac = hmac.new(key[32:], iv + ciphertext, hashlib.sha256).digest()
    blob = iv + ciphertext + mac
    return blob, hashlib.sha256(blob).digest()


def reference_decrypt(key: bytes, blob: bytes, digest: bytes, size: int) -> bytes:
    iv, ciphertext, mac = blob[:16], blob[16:-32], blob[-32:]
    assert hmac.compare_digest(hmac.new(key[32:], iv + ciphertext, hashlib.sha256).digest(), mac)
    assert hmac.compare_digest(hashlib.sha256(blob).digest(), digest)
    decryptor = Cipher(algorithms.AES(key[:32]), modes.CBC(iv)).decryptor()
    unpadder = pyca_padding.PKCS7(128).unpadder()
    body = unpadder.update(decryptor.update(ciphertext) + decryptor.finalize()) + unpadder.finalize()
    assert len(body) >= size
    return body[:size]


def plaintext_of(size: int) -> bytes:
    return hashlib.shake_256(size.to_bytes(8, "big")).digest(size) if size else b""


def stream_decrypt(key: AttachmentKey, pieces: list[bytes], *, digest: bytes | None,
                   size: int | None) -> RecordingSink:
    sink = RecordingSink()
    decryptor = AttachmentDecryptor(key, sink, digest=digest, size=size)
    for piece in pieces:
        decryptor.update(piece)
    decryptor.finish()
    return sink


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


# --- the padding rule ----------------------------------------------------------------


@pytest.mark.parametrize("case", SIGNAL["padded_size"]["cases"],
                         ids=lambda c: f"{c['size']}->{c['padded_size']}")
def test_padded_size_equals_signal_ios_published_values(case: dict[str, Any]) -> None:
    assert attachment_padded_size(case["size"]) == case["padded_size"]


def test_padded_size_equals_the_exact_rule_at_every_bucket_edge_below_2_to_38() -> None:
    # Every bucket B_k = floor(1.05 ** k) >= 541 below 2**38: B_k - 1 and B_k
    # pad to B_k, B_k + 1 to the next bucket.  (Above about 3 * 10**11 bytes
    # double precision and the exact rule part; no Signal client sends that.)
    power, k, checked = Fraction(1), 0, 0
    while True:
        bucket = power.numerator // power.denominator
        if bucket > 2**38:
            break
        if bucket > 541:
            following = Fraction(power * Fraction(21, 20))
            assert attachment_padded_size(bucket - 1) == bucket
            assert attachment_padded_size(bucket) == bucket
            assert attachment_padded_size(bucket + 1) == following.numerator // following.denominator
            checked += 1
        power *= Fraction(21, 20)
        k += 1
    assert checked > 400


@pytest.mark.parametrize("size", [*range(0, 600), 10**6, 10**9, 2**31 - 1])
def test_padded_size_small_and_large(size: int) -> None:
    assert attachment_padded_size(size) == exact_padded_size(size)
    assert attachment_padded_size(size) >= size


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_padded_size_refuses_what_is_not_a_size(bad: Any) -> None:
    with pytest.raises(InvalidArgument):
        attachment_padded_size(bad)


@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_blob_size_is_signal_desktop_and_android_ciphertext_length(size: int) -> None:
    # Desktop getCiphertextSize: 16 + (1 + floor(padded / 16)) * 16 + 32;
    # Android AttachmentCipherOutputStream.getCiphertextLength of the padded size.
    padded = exact_padded_size(size)
    assert attachment_blob_size(size) == 16 + (1 + padded // 16) * 16 + 32
    assert attachment_blob_size(size, pad=False) == 16 + (size // 16 + 1) * 16 + 32


# --- the format, against the reference ----------------------------------------------------


@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_blob_equals_the_independent_reference(size: int) -> None:
    key = AttachmentKey(KEY_BYTES)
    plaintext = plaintext_of(size)
    blob, meta = encrypt_attachment(key, plaintext, rng=FixedIV(IV))
    expected_blob, expected_digest = reference_encrypt(KEY_BYTES, IV, plaintext)
    assert blob == expected_blob
    assert meta == AttachmentMetadata(digest=expected_digest, size=size,
                                      padded_size=exact_padded_size(size),
                                      blob_size=len(expected_blob))
    assert reference_decrypt(KEY_BYTES, blob, meta.digest, size) == plaintext
    assert decrypt_attachment(key, expected_blob, digest=expected_digest, size=size) == plaintext


@pytest.mark.parametrize("size", [0, 1, 16, 17, 1000])
def test_unpadded_blob_equals_the_reference(size: int) -> None:
    key = AttachmentKey(KEY_BYTES)
    plaintext = plaintext_of(size)
    blob, meta = encrypt_attachment(key, plaintext, rng=FixedIV(IV), pad=False)
    assert blob == reference_encrypt(KEY_BYTES, IV, plaintext, pad=False)[0]
    assert meta.padded_size == size
    assert decrypt_attachment(key, blob, digest=meta.digest, size=size) == plaintext


def test_padding_bytes_are_not_read() -> None:
    # Signal-Android's PaddingInputStream does not zero the padding it reports,
    # so padding bytes may be anything: the receiver only truncates.
    plaintext = b"Peter Parker"
    blob, digest = reference_encrypt(KEY_BYTES, IV, plaintext, padding_byte=0x97)
    key = AttachmentKey(KEY_BYTES)
    assert decrypt_attachment(key, blob, digest=digest, size=len(plaintext)) == plaintext
    body = decrypt_attachment(key, blob, digest=digest, size=None)
    assert body == plaintext + b"\x97" * (541 - len(plaintext))


def test_size_none_hands_over_the_padded_body() -> None:
    key = AttachmentKey(KEY_BYTES)
    blob, meta = encrypt_attachment(key, b"abc", rng=FixedIV(IV))
    assert decrypt_attachment(key, blob, digest=meta.digest, size=None) == b"abc" + bytes(538)


def test_digest_none_relies_on_the_mac_alone() -> None:
    key = AttachmentKey(KEY_BYTES)
    blob, _ = encrypt_attachment(key, b"sticker", rng=FixedIV(IV))
    assert decrypt_attachment(key, blob, digest=None, size=7) == b"sticker"
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(AuthenticationError):
        decrypt_attachment(key, tampered, digest=None, size=7)


def test_fresh_iv_per_encryption() -> None:
    key = AttachmentKey(KEY_BYTES)
    rng = DeterministicRandom(b"ivs")
    first, _ = encrypt_attachment(key, b"same", rng=rng)
    second, _ = encrypt_attachment(key, b"same", rng=rng)
    assert first[:16] != second[:16] and first != second


# --- streaming -----------------------------------------------------------------------


@given(size=st.sampled_from(BOUNDARY_SIZES[:24]) | st.integers(0, 2000),
       cuts=st.lists(st.integers(0, 2100), max_size=12),
       blob_cuts=st.lists(st.integers(0, 2700), max_size=12))
def test_any_chunking_gives_the_same_blob_and_plaintext(
        size: int, cuts: list[int], blob_cuts: list[int]) -> None:
    key = AttachmentKey(KEY_BYTES)
    plaintext = plaintext_of(size)
    encryptor = AttachmentEncryptor(key, rng=FixedIV(IV))
    pieces = list(encryptor.encrypt_iter(split(plaintext, cuts)))
    blob = b"".join(pieces)
    assert all(pieces)
    assert blob == reference_encrypt(KEY_BYTES, IV, plaintext)[0]
    assert encryptor.metadata.digest == hashlib.sha256(blob).digest()
    sink = stream_decrypt(key, split(blob, blob_cuts), digest=encryptor.metadata.digest,
                          size=size)
    assert bytes(sink.data) == plaintext and sink.events == ["commit"]


@pytest.mark.parametrize("size", [0, 15, 16, 17, 541, 600])
def test_every_single_split_point(size: int) -> None:
    key = AttachmentKey(KEY_BYTES)
    plaintext = plaintext_of(size)
    blob, meta = encrypt_attachment(key, plaintext, rng=FixedIV(IV))
    for cut in range(len(plaintext) + 1):
        encryptor = AttachmentEncryptor(key, rng=FixedIV(IV))
        assert b"".join(encryptor.encrypt_iter([plaintext[:cut], plaintext[cut:]])) == blob
    for cut in range(len(blob) + 1):
        sink = stream_decrypt(key, [blob[:cut], blob[cut:]], digest=meta.digest, size=size)
        assert bytes(sink.data) == plaintext
    sink = stream_decrypt(key, [blob[i:i + 1] for i in range(len(blob))],
                          digest=meta.digest, size=size)
    assert bytes(sink.data) == plaintext


def test_padding_comes_out_in_bounded_pieces() -> None:
    key = AttachmentKey(KEY_BYTES)
    size = attachment_padded_size(10 * 2**20) + 1  # just past a bucket: about 5% (540 kB) of padding
    encryptor = AttachmentEncryptor(key, rng=FixedIV(IV))
    assert len(encryptor.update(bytes(size))) == 16 + size // 16 * 16
    tail = list(encryptor.finish())
    assert len(tail) > 5
    assert max(map(len, tail)) <= PADDING_CHUNK + 16 + 32
    meta = encryptor.metadata
    assert meta.padded_size == attachment_padded_size(size) and meta.padded_size - size > 500_000


def test_64_mb_streams_in_constant_memory() -> None:
    size, chunk_size = 64 * 2**20 + 12345, 64 * 1024
    chunk = bytes(range(256)) * (chunk_size // 256)

    def source() -> Iterator[bytes]:
        left = size
        while left:
            step = min(left, chunk_size)
            left -= step
            yield chunk if step == chunk_size else chunk[:step]

    key = AttachmentKey(KEY_BYTES)
    gc.collect()
    tracemalloc.start()
    try:
        encryptor = AttachmentEncryptor(key, rng=FixedIV(IV))
        sink = HashingSink()
        blob_hash = hashlib.sha256()
        blob_len = 0
        for piece in encryptor.encrypt_iter(source()):
            blob_hash.update(piece)
            blob_len += len(piece)
        _, peak_encrypt = tracemalloc.get_traced_memory()
        meta = encryptor.metadata
        # The decryptor needs the digest, known only once the blob is complete:
        # encrypt again (same IV) and pipe each piece straight into it, so that
        # the blob is never held whole.
        decryptor = AttachmentDecryptor(key, sink, digest=meta.digest, size=size)
        for piece in AttachmentEncryptor(key, rng=FixedIV(IV)).encrypt_iter(source()):
            decryptor.update(piece)
        decryptor.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert blob_len == meta.blob_size == attachment_blob_size(size)
    assert blob_hash.digest() == meta.digest
    assert sink.committed and sink.count == size
    expected = hashlib.sha256()
    for piece in source():
        expected.update(piece)
    assert sink.hash.digest() == expected.digest()
    # A few chunks, whatever the file size (64 MiB here).
    assert peak_encrypt < 12 * chunk_size, peak_encrypt
    assert peak < 12 * chunk_size, peak


# --- refusals ------------------------------------------------------------------------

SIZE = 1000
PLAINTEXT = plaintext_of(SIZE)


def good_blob() -> tuple[AttachmentKey, bytes, bytes]:
    key = AttachmentKey(KEY_BYTES)
    blob, meta = encrypt_attachment(key, PLAINTEXT, rng=FixedIV(IV))
    return key, blob, meta.digest


def flip(blob: bytes, index: int) -> bytes:
    return blob[:index] + bytes([blob[index] ^ 0x01]) + blob[index + 1:]


_, _BLOB, _ = good_blob()
_N = len(_BLOB)
TAMPERED: dict[str, Any] = {
    "iv first byte": lambda b: flip(b, 0),
    "iv last byte": lambda b: flip(b, 15),
    "first ciphertext block": lambda b: flip(b, 16),
    "middle ciphertext": lambda b: flip(b, _N // 2),
    "last plaintext block, inside size": lambda b: flip(b, 16 + SIZE - 5),
    "padding region": lambda b: flip(b, _N - 32 - 40),
    "last ciphertext block (PKCS#7)": lambda b: flip(b, _N - 33),
    "mac first byte": lambda b: flip(b, _N - 32),
    "mac last byte": lambda b: flip(b, _N - 1),
    "truncated by 1": lambda b: b[:-1],
    "truncated by 16": lambda b: b[:-16],
    "truncated by 32 (no mac)": lambda b: b[:-32],
    "truncated by 48": lambda b: b[:-48],
    "truncated to the iv": lambda b: b[:16],
    "truncated to 63 bytes": lambda b: b[:63],
    "empty": lambda b: b"",
    "extended by 1": lambda b: b + b"\x00",
    "extended by 16": lambda b: b + bytes(16),
    "extended by a copy of the mac": lambda b: b + b[-32:],
    "ciphertext blocks swapped": lambda b: b[:16] + b[32:48] + b[16:32] + b[48:],
}


@pytest.mark.parametrize("name", TAMPERED)
@pytest.mark.parametrize("digest_given", [True, False])
def test_tampered_blob_is_refused_and_nothing_released(name: str, digest_given: bool) -> None:
    key, blob, digest = good_blob()
    bad = TAMPERED[name](blob)
    assert bad != blob
    with pytest.raises(AuthenticationError) as refused:
        decrypt_attachment(key, bad, digest=digest if digest_given else None, size=SIZE)
    assert str(refused.value) == "attachment authentication failed"
    for cuts in ([], [17], [len(bad) - 20], list(range(0, len(bad), 100))):
        sink = RecordingSink()
        decryptor = AttachmentDecryptor(key, sink, digest=digest if digest_given else None,
                                        size=SIZE)
        for piece in split(bad, cuts):
            decryptor.update(piece)
        with pytest.raises(AuthenticationError):
            decryptor.finish()
        assert sink.events == ["abort"] and not sink.data


def refuse(key: AttachmentKey, blob: bytes, *, digest: bytes | None, size: int | None) -> None:
    with pytest.raises(AuthenticationError) as refused:
        decrypt_attachment(key, blob, digest=digest, size=size)
    assert str(refused.value) == "attachment authentication failed"
    sink = RecordingSink()
    decryptor = AttachmentDecryptor(key, sink, digest=digest, size=size)
    decryptor.update(blob)
    with pytest.raises(AuthenticationError):
        decryptor.finish()
    assert sink.events == ["abort"] and not sink.data


def test_wrong_digest_is_refused() -> None:
    key, blob, digest = good_blob()
    refuse(key, blob, digest=flip(digest, 31), size=SIZE)
    refuse(key, blob, digest=bytes(32), size=SIZE)


@pytest.mark.parametrize("half", ["aes", "mac", "both"])
def test_wrong_key_is_refused(half: str) -> None:
    _, blob, digest = good_blob()
    wrong = bytearray(KEY_BYTES)
    if half in ("aes", "both"):
        wrong[0] ^= 1
    if half in ("mac", "both"):
        wrong[63] ^= 1
    if half == "aes":
        # The MAC and digest still verify: a wrong AES key shows as a bad
        # PKCS#7 padding (or, rarely, as garbage of the right length, which
        # only the MAC over plaintext could catch and this format has not).
        try:
            got = decrypt_attachment(AttachmentKey(bytes(wrong)), blob, digest=digest, size=SIZE)
        except AuthenticationError:
            return
        assert got != PLAINTEXT
        return
    refuse(AttachmentKey(bytes(wrong)), blob, digest=digest, size=SIZE)


def test_size_beyond_the_body_is_refused() -> None:
    key, blob, digest = good_blob()
    body = attachment_padded_size(SIZE)
    assert decrypt_attachment(key, blob, digest=digest, size=body)[:SIZE] == PLAINTEXT
    refuse(key, blob, digest=digest, size=body + 1)


def test_a_blob_from_a_different_attachment_is_refused() -> None:
    key, _, digest = good_blob()
    other, _ = encrypt_attachment(key, PLAINTEXT, rng=DeterministicRandom(b"other iv"))
    refuse(key, other, digest=digest, size=SIZE)


def test_abort_and_sink_failure_reach_the_sink() -> None:
    key, blob, digest = good_blob()
    sink = RecordingSink()
    decryptor = AttachmentDecryptor(key, sink, digest=digest, size=SIZE)
    decryptor.update(blob[:500])
    decryptor.abort()
    assert sink.events == ["abort"] and not sink.data
    with pytest.raises(InvalidArgument):
        decryptor.update(blob[500:])
    with pytest.raises(InvalidArgument):
        decryptor.finish()

    class Broken(RecordingSink):
        def write(self, data: bytes, /) -> None:
            raise OSError("disk full")

    broken = Broken()
    decryptor = AttachmentDecryptor(key, broken, digest=digest, size=SIZE)
    with pytest.raises(OSError):
        decryptor.update(blob)
    assert broken.events == ["abort"]


# --- the API -------------------------------------------------------------------------


def test_key_is_64_bytes_and_never_shown() -> None:
    key = AttachmentKey.generate(DeterministicRandom(b"key"))
    assert len(key.to_bytes()) == 64
    assert AttachmentKey.from_bytes(key.to_bytes()) == key
    assert key != AttachmentKey(KEY_BYTES)
    assert repr(key) == "AttachmentKey(<secret>)" and key.to_bytes().hex() not in repr(key)
    assert KEY_BYTES.hex()[:8] not in repr(AttachmentEncryptor(AttachmentKey(KEY_BYTES),
                                                               rng=FixedIV(IV)))
    for bad in (b"", bytes(32), bytes(63), bytes(65)):
        with pytest.raises(InvalidArgument):
            AttachmentKey(bad)
    with pytest.raises(TypeError):
        hash(key)


def test_misuse_is_refused() -> None:
    key = AttachmentKey(KEY_BYTES)
    encryptor = AttachmentEncryptor(key, rng=FixedIV(IV))
    with pytest.raises(InvalidArgument):
        encryptor.metadata
    tail = encryptor.finish()
    with pytest.raises(InvalidArgument):
        encryptor.update(b"x")
    with pytest.raises(InvalidArgument):
        encryptor.finish()
    with pytest.raises(InvalidArgument):
        encryptor.metadata  # finish() not yet exhausted
    list(tail)
    assert encryptor.metadata.size == 0
    sink = RecordingSink()
    with pytest.raises(InvalidArgument):
        AttachmentDecryptor(key, sink, digest=bytes(31), size=0)
    with pytest.raises(InvalidArgument):
        AttachmentDecryptor(key, sink, digest=None, size=-1)
    with pytest.raises(InvalidArgument):
        AttachmentDecryptor(KEY_BYTES, sink, digest=None, size=0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        AttachmentEncryptor(KEY_BYTES, rng=FixedIV(IV))  # type: ignore[arg-type]


# --- the streaming primitive -----------------------------------------------------------------


@pytest.mark.parametrize(
    "case", [c for c in wycheproof_cases("aes_cbc_pkcs5_test.json") if c[0]["keySize"] == 256],
    ids=case_id)
def test_streaming_cbc_matches_wycheproof_fed_byte_by_byte(case: Any) -> None:
    _, test = case
    key, iv = bytes.fromhex(test["key"]), bytes.fromhex(test["iv"])
    msg, ct = bytes.fromhex(test["msg"]), bytes.fromhex(test["ct"])
    decryptor = Aes256CbcPkcs7Decryptor(key, iv)
    out = b"".join(decryptor.update(ct[i:i + 1]) for i in range(len(ct)))
    if test["result"] == "valid":
        assert out + decryptor.finalize() == msg
        encryptor = Aes256CbcPkcs7Encryptor(key, iv)
        out = b"".join(encryptor.update(msg[i:i + 1]) for i in range(len(msg)))
        assert out + encryptor.finalize() == ct
    else:
        with pytest.raises(AuthenticationError):
            decryptor.finalize()


def test_streaming_hmac_equals_one_shot() -> None:
    data = plaintext_of(1000)
    stream = HmacSha256Stream(b"k" * 32)
    for i in range(0, len(data), 7):
        stream.update(data[i:i + 7])
    tag = hmac_sha256(b"k" * 32, data)
    assert stream.digest() == tag and stream.verify(tag) and not stream.verify(flip(tag, 0))
