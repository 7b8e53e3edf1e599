"""Attachment encryption in Signal's attachment format, streaming.

The format (docs/attachments.md has it with its sources)::

    key  = aes_key (32) || mac_key (32)                     64 random bytes
    body = plaintext || padding to attachment_padded_size(len(plaintext))
    blob = iv (16) || AES-256-CBC-PKCS7(aes_key, iv, body) || mac (32)
    mac  = HMAC-SHA256(mac_key, iv || ciphertext)
    digest = SHA-256(blob)

The sender uploads ``blob`` and sends the key, the digest and the plaintext
size in its attachment pointer; the receiver checks the MAC and the digest and
keeps the first ``size`` bytes of the body.  The padding bytes carry no
meaning: they are zeros here, and a receiver neither reads nor checks them.

Both directions are sans-IO and stream in constant memory: the caller feeds
chunks and gets chunks.

* :class:`AttachmentEncryptor` returns the blob piece by piece; the padding
  (up to 5% of the file) comes out of :meth:`~AttachmentEncryptor.finish` in
  pieces of at most :data:`PADDING_CHUNK` bytes, and
  :attr:`~AttachmentEncryptor.metadata` (digest, sizes) is set when the blob is
  complete.
* :class:`AttachmentDecryptor` cannot know that a blob is authentic before its
  last 32 bytes arrive, and a 1 GB file does not fit in memory until then.  So
  it writes plaintext to a caller's :class:`PlaintextSink` that must treat
  every byte as provisional: the decryptor calls ``commit()`` only after the
  MAC and the digest verified, and ``abort()`` (the sink destroys what it was
  given) on every failure.  That is the contract Signal-Desktop follows
  (decrypt to a file, delete it on failure) without the two reads of
  Signal-Android (verify the file, then decrypt it), which a file changed
  between the reads would defeat.  :func:`decrypt_attachment`, for a blob in
  memory, checks everything before it returns a byte.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Protocol

from ._errors import AuthenticationError, InvalidArgument
from ._primitives import (
    Aes256CbcPkcs7Decryptor,
    Aes256CbcPkcs7Encryptor,
    HmacSha256Stream,
    RandomSource,
    ct_equal,
)

__all__ = [
    "ATTACHMENT_KEY_SIZE",
    "ATTACHMENT_IV_SIZE",
    "ATTACHMENT_MAC_SIZE",
    "ATTACHMENT_DIGEST_SIZE",
    "PADDING_CHUNK",
    "AttachmentKey",
    "AttachmentMetadata",
    "AttachmentEncryptor",
    "AttachmentDecryptor",
    "PlaintextSink",
    "attachment_padded_size",
    "attachment_blob_size",
    "encrypt_attachment",
    "decrypt_attachment",
]

ATTACHMENT_KEY_SIZE: Final = 64
ATTACHMENT_IV_SIZE: Final = 16
ATTACHMENT_MAC_SIZE: Final = 32
ATTACHMENT_DIGEST_SIZE: Final = 32
#: The largest piece of zero padding :meth:`AttachmentEncryptor.finish`
#: encrypts at once (so the largest piece it returns is this plus 16 bytes).
PADDING_CHUNK: Final = 64 * 1024

_BLOCK: Final = 16
_MIN_PADDED: Final = 541
_BASE: Final = 1.05
# IV, at least one CBC block (PKCS#7 always adds one), MAC.
_MIN_BLOB: Final = ATTACHMENT_IV_SIZE + _BLOCK + ATTACHMENT_MAC_SIZE
_FAILED: Final = "attachment authentication failed"


def attachment_padded_size(size: int) -> int:
    """The size Signal pads an attachment of ``size`` bytes to before
    encryption: ``max(541, floor(1.05 ** ceil(log(size) / log(1.05))))``,
    evaluated in IEEE double precision as Signal's clients do (and 541 for an
    empty file, where they take log(0) = -inf).

    It equals the exact rule (the smallest power of 1.05 at least ``size``,
    rounded down) for every size below 2**38 bytes, which
    tests/test_attachments.py checks bucket by bucket.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidArgument("an attachment size is an int >= 0")
    if size == 0:
        return _MIN_PADDED
    return max(_MIN_PADDED, math.floor(_BASE ** math.ceil(math.log(size) / math.log(_BASE))))


def attachment_blob_size(size: int, *, pad: bool = True) -> int:
    """The length of the blob an attachment of ``size`` plaintext bytes
    encrypts to: IV, PKCS#7-padded CBC ciphertext of the padded body, MAC."""
    body = attachment_padded_size(size)  # also checks that size is an int >= 0
    if not pad:
        body = size
    return ATTACHMENT_IV_SIZE + (body // _BLOCK + 1) * _BLOCK + ATTACHMENT_MAC_SIZE


class AttachmentKey:
    """The 64-byte attachment key: an AES-256 key followed by an HMAC-SHA256
    key.  Generate a fresh one for every attachment; send :meth:`to_bytes` in
    the attachment pointer.  Its repr never shows the key, and equality is
    constant time."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray, memoryview)) or len(key) != ATTACHMENT_KEY_SIZE:
            raise InvalidArgument(f"an attachment key is {ATTACHMENT_KEY_SIZE} bytes")
        self._key = bytes(key)

    @classmethod
    def generate(cls, rng: RandomSource) -> AttachmentKey:
        """A fresh random key from ``rng``."""
        return cls(rng.random_bytes(ATTACHMENT_KEY_SIZE))

    @classmethod
    def from_bytes(cls, key: bytes) -> AttachmentKey:
        """The key as an attachment pointer carries it (64 bytes)."""
        return cls(key)

    def to_bytes(self) -> bytes:
        """The 64 bytes for the attachment pointer's ``key`` field."""
        return self._key

    @property
    def _aes_key(self) -> bytes:
        return self._key[:32]

    @property
    def _mac_key(self) -> bytes:
        return self._key[32:]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AttachmentKey):
            return NotImplemented
        return ct_equal(self._key, other._key)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "AttachmentKey(<secret>)"


@dataclass(frozen=True, slots=True)
class AttachmentMetadata:
    """What an encryption produced besides the blob.

    ``digest`` and ``size`` go in the attachment pointer (with the key);
    ``padded_size`` and ``blob_size`` are for the upload.
    """

    #: SHA-256 of the whole blob (IV, ciphertext and MAC).
    digest: bytes
    #: The plaintext size; the receiver truncates the decrypted body to it.
    size: int
    #: The body's size before CBC: ``size`` plus the zero padding.
    padded_size: int
    #: The number of bytes uploaded.
    blob_size: int


class AttachmentEncryptor:
    """Encrypts one attachment, piece by piece.

    ``update(chunk)`` returns the blob bytes for the plaintext seen so far (the
    IV first); ``finish()`` yields the rest (the encrypted padding in pieces
    of at most :data:`PADDING_CHUNK` bytes, then the last block and the MAC).
    Once ``finish()`` is exhausted, :attr:`metadata` holds the digest and
    sizes.  :meth:`encrypt_iter` does all of this for an iterable of chunks.

    ``pad=False`` leaves the padding out (the body is the plaintext); Signal's
    clients pad every attachment.
    """

    __slots__ = ("_cipher", "_mac", "_hash", "_pending", "_size", "_pad", "_state",
                 "_blob_size", "_metadata")

    def __init__(self, key: AttachmentKey, *, rng: RandomSource, pad: bool = True) -> None:
        if not isinstance(key, AttachmentKey):
            raise InvalidArgument("key must be an AttachmentKey")
        iv = rng.random_bytes(ATTACHMENT_IV_SIZE)
        if len(iv) != ATTACHMENT_IV_SIZE:
            raise InvalidArgument("the random source returned the wrong number of bytes")
        self._cipher = Aes256CbcPkcs7Encryptor(key._aes_key, iv)
        self._mac = HmacSha256Stream(key._mac_key)
        self._hash = hashlib.sha256()
        self._pending = iv  # the IV, until the first output
        self._size = 0
        self._pad = pad
        self._state = "open"
        self._blob_size = 0
        self._metadata: AttachmentMetadata | None = None

    def _emit(self, ciphertext: bytes) -> bytes:
        if self._pending:
            ciphertext = self._pending + ciphertext
            self._pending = b""
        self._mac.update(ciphertext)
        self._hash.update(ciphertext)
        self._blob_size += len(ciphertext)
        return ciphertext

    def update(self, chunk: bytes) -> bytes:
        """Encrypt the next plaintext bytes; returns the blob bytes now known
        (possibly empty: CBC holds back a partial block)."""
        if self._state != "open":
            raise InvalidArgument("update() after finish()")
        self._size += len(chunk)
        return self._emit(self._cipher.update(chunk))

    def finish(self) -> Iterator[bytes]:
        """The rest of the blob, in pieces; sets :attr:`metadata` when
        exhausted.  Iterate it to the end: the MAC is its last piece."""
        if self._state != "open":
            raise InvalidArgument("finish() was already called")
        self._state = "finishing"
        return self._finish()

    def _finish(self) -> Iterator[bytes]:
        body = attachment_padded_size(self._size) if self._pad else self._size
        remaining = body - self._size
        zeros = bytes(min(remaining, PADDING_CHUNK))
        while remaining:
            step = min(remaining, PADDING_CHUNK)
            remaining -= step
            piece = self._emit(self._cipher.update(zeros if step == len(zeros) else zeros[:step]))
            if piece:
                yield piece
        last = self._emit(self._cipher.finalize())
        mac = self._mac.digest()
        self._hash.update(mac)
        self._blob_size += len(mac)
        self._metadata = AttachmentMetadata(
            digest=self._hash.digest(), size=self._size, padded_size=body,
            blob_size=self._blob_size)
        self._state = "done"
        yield last + mac

    def encrypt_iter(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The whole blob for ``chunks`` of plaintext, lazily; the empty
        pieces CBC produces are skipped.  :attr:`metadata` is set once the
        iterator is exhausted."""
        for chunk in chunks:
            piece = self.update(chunk)
            if piece:
                yield piece
        yield from self.finish()

    @property
    def metadata(self) -> AttachmentMetadata:
        """Digest and sizes; raises :class:`InvalidArgument` before the blob
        is complete."""
        if self._metadata is None:
            raise InvalidArgument("the blob is not complete: exhaust finish() first")
        return self._metadata

    def __repr__(self) -> str:
        return f"AttachmentEncryptor(<secret>, {self._state})"


class PlaintextSink(Protocol):
    """Where an :class:`AttachmentDecryptor` puts plaintext that is not yet
    verified, such as a temporary file.

    ``write`` receives the plaintext in order.  Exactly one of ``commit`` and
    ``abort`` is called, once: ``commit`` after the MAC and the digest
    verified (then the bytes may be used: rename the file into place),
    ``abort`` on any failure (then every byte written must be destroyed,
    never shown or parsed).
    """

    def write(self, data: bytes, /) -> object: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class AttachmentDecryptor:
    """Verifies and decrypts one blob, piece by piece, into a
    :class:`PlaintextSink`.

    ``digest`` is the attachment pointer's digest (pass ``None`` only for
    content that has none, such as Signal's stickers: the MAC then stands
    alone).  ``size`` is the pointer's plaintext size; the body beyond it is
    padding and never reaches the sink.  ``size=None`` hands over the whole
    body, padding included.

    Feed the blob with :meth:`update`, then call :meth:`finish`: it verifies
    the MAC (constant time), the digest (constant time), the CBC padding and
    that the body holds ``size`` bytes, and calls the sink's ``commit()``; if
    anything failed it calls ``abort()`` and raises
    :class:`AuthenticationError`, which says nothing of which check failed.
    :meth:`abort` cancels (a download that broke off).
    """

    __slots__ = ("_key", "_sink", "_digest", "_size", "_hash", "_mac", "_cipher", "_head",
                 "_tail", "_written", "_total", "_state")

    def __init__(self, key: AttachmentKey, sink: PlaintextSink, *, digest: bytes | None,
                 size: int | None) -> None:
        if not isinstance(key, AttachmentKey):
            raise InvalidArgument("key must be an AttachmentKey")
        if digest is not None and len(digest) != ATTACHMENT_DIGEST_SIZE:
            raise InvalidArgument(f"an attachment digest is {ATTACHMENT_DIGEST_SIZE} bytes")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise InvalidArgument("an attachment size is an int >= 0")
        self._key = key
        self._sink = sink
        self._digest = digest
        self._size = size
        self._hash = hashlib.sha256()
        self._mac = HmacSha256Stream(key._mac_key)
        self._cipher: Aes256CbcPkcs7Decryptor | None = None
        self._head = b""  # the IV, until it is complete
        self._tail = b""  # the last MAC-size bytes seen: the MAC, if the blob ends here
        self._written = 0
        self._total = 0
        self._state = "open"

    def _release(self, plaintext: bytes) -> None:
        if self._size is not None:
            plaintext = plaintext[: self._size - self._written]
        if plaintext:
            self._written += len(plaintext)
            self._sink.write(plaintext)

    def update(self, chunk: bytes) -> None:
        """Feed the next bytes of the blob.  Plaintext goes to the sink as it
        is decrypted, unverified."""
        if self._state != "open":
            raise InvalidArgument("update() after finish() or abort()")
        try:
            self._update(bytes(chunk))
        except BaseException:
            self._fail()
            raise

    def _update(self, chunk: bytes) -> None:
        self._total += len(chunk)
        self._hash.update(chunk)
        if self._cipher is None:
            need = ATTACHMENT_IV_SIZE - len(self._head)
            self._head += chunk[:need]
            chunk = chunk[need:]
            if len(self._head) < ATTACHMENT_IV_SIZE:
                return
            self._mac.update(self._head)
            self._cipher = Aes256CbcPkcs7Decryptor(self._key._aes_key, self._head)
        # Everything but the last MAC-size bytes is ciphertext.
        if len(chunk) >= ATTACHMENT_MAC_SIZE:
            ciphertext = self._tail + chunk[:-ATTACHMENT_MAC_SIZE]
            self._tail = chunk[-ATTACHMENT_MAC_SIZE:]
        else:
            joined = self._tail + chunk
            ciphertext = joined[:-ATTACHMENT_MAC_SIZE] if len(joined) > ATTACHMENT_MAC_SIZE else b""
            self._tail = joined[len(ciphertext):]
        if ciphertext:
            self._mac.update(ciphertext)
            self._release(self._cipher.update(ciphertext))

    def finish(self) -> None:
        """Verify everything and commit the sink, or abort it and raise
        :class:`AuthenticationError`."""
        if self._state != "open":
            raise InvalidArgument("finish() after finish() or abort()")
        try:
            ok = self._verify()
        except AuthenticationError:
            ok = False
        except BaseException:
            self._fail()
            raise
        if not ok:
            self._fail()
            raise AuthenticationError(_FAILED)
        self._state = "committed"
        self._sink.commit()

    def _verify(self) -> bool:
        if (self._cipher is None or self._total < _MIN_BLOB
                or (self._total - ATTACHMENT_IV_SIZE - ATTACHMENT_MAC_SIZE) % _BLOCK):
            return False
        # Both comparisons run, whatever the first gave: the time says nothing
        # about which one failed.
        mac_ok = self._mac.verify(self._tail)
        digest_ok = True if self._digest is None else ct_equal(self._hash.digest(), self._digest)
        if not (mac_ok and digest_ok):
            return False
        self._release(self._cipher.finalize())  # the padding is checked only now
        return self._size is None or self._written == self._size

    def abort(self) -> None:
        """Give up on this blob: the sink's ``abort()`` is called."""
        if self._state != "open":
            raise InvalidArgument("abort() after finish() or abort()")
        self._fail()

    def _fail(self) -> None:
        if self._state == "open":
            self._state = "aborted"
            self._sink.abort()

    def __repr__(self) -> str:
        return f"AttachmentDecryptor(<secret>, {self._state})"


# --- one-shot ---------------------------------------------------------------------


def encrypt_attachment(key: AttachmentKey, plaintext: bytes, *, rng: RandomSource,
                       pad: bool = True) -> tuple[bytes, AttachmentMetadata]:
    """The blob of ``plaintext`` and its metadata, in memory."""
    encryptor = AttachmentEncryptor(key, rng=rng, pad=pad)
    blob = b"".join(encryptor.encrypt_iter((plaintext,)))
    return blob, encryptor.metadata


class _BufferSink:
    __slots__ = ("parts", "committed")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.committed = False

    def write(self, data: bytes, /) -> None:
        self.parts.append(data)

    def commit(self) -> None:
        self.committed = True

    def abort(self) -> None:
        self.parts.clear()


def decrypt_attachment(key: AttachmentKey, blob: bytes, *, digest: bytes | None,
                       size: int | None) -> bytes:
    """The plaintext of a blob held in memory, returned only once the MAC,
    the digest and the size all checked out; otherwise
    :class:`AuthenticationError` and nothing else."""
    sink = _BufferSink()
    decryptor = AttachmentDecryptor(key, sink, digest=digest, size=size)
    decryptor.update(blob)
    decryptor.finish()
    return b"".join(sink.parts)
