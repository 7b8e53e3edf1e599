"""Incremental AES-256-CBC (PKCS#7) and HMAC-SHA256, for data too large to
hold in memory (attachments: docs/attachments.md).

The one-shot functions in :mod:`.ciphers` and :mod:`.kdf` take the whole
message; these objects take it in pieces of any size and keep at most one
block (16 bytes) of their own.  Decryption withholds the last block until
:meth:`Aes256CbcPkcs7Decryptor.finalize`, where the PKCS#7 padding is checked;
a bad length or padding raises :class:`AuthenticationError`, the same error a
failed MAC gives, so that no padding oracle is built by accident.  Callers
must check their MAC before they trust (or show) anything decrypted.
"""

from __future__ import annotations

import hmac
from typing import Final

from cryptography.hazmat.primitives import padding as _padding
from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher
from cryptography.hazmat.primitives.ciphers import algorithms as _algorithms
from cryptography.hazmat.primitives.ciphers import modes as _modes

from .._errors import AuthenticationError, InvalidArgument

__all__ = ["Aes256CbcPkcs7Encryptor", "Aes256CbcPkcs7Decryptor", "HmacSha256Stream"]

_CBC_ARGUMENTS: Final = "AES-256-CBC takes a 32-byte key and a 16-byte IV"
_FINISHED: Final = "this stream is finished"


class Aes256CbcPkcs7Encryptor:
    """AES-256-CBC with PKCS#7 padding, fed in pieces.

    ``update`` returns the ciphertext of every whole block seen so far;
    ``finalize`` pads the rest and returns the last block(s).  The output
    equals :func:`~signalish._primitives.ciphers.aes256_cbc_encrypt` of the
    concatenated input.
    """

    __slots__ = ("_encryptor", "_padder", "_done")

    def __init__(self, key: bytes, iv: bytes) -> None:
        if len(key) != 32 or len(iv) != 16:
            raise InvalidArgument(_CBC_ARGUMENTS)
        self._encryptor = _Cipher(_algorithms.AES(key), _modes.CBC(iv)).encryptor()
        self._padder = _padding.PKCS7(128).padder()
        self._done = False

    def update(self, data: bytes) -> bytes:
        if self._done:
            raise InvalidArgument(_FINISHED)
        return self._encryptor.update(self._padder.update(data))

    def finalize(self) -> bytes:
        if self._done:
            raise InvalidArgument(_FINISHED)
        self._done = True
        return self._encryptor.update(self._padder.finalize()) + self._encryptor.finalize()

    def __repr__(self) -> str:
        return "Aes256CbcPkcs7Encryptor(<secret>)"


class Aes256CbcPkcs7Decryptor:
    """AES-256-CBC decryption with PKCS#7 unpadding, fed in pieces.

    ``update`` returns the plaintext of every block except the last one seen
    (it may be padding); ``finalize`` checks the total length and the padding
    and returns what is left.  Any failure raises :class:`AuthenticationError`
    and says nothing more.
    """

    __slots__ = ("_decryptor", "_unpadder", "_done")

    def __init__(self, key: bytes, iv: bytes) -> None:
        if len(key) != 32 or len(iv) != 16:
            raise InvalidArgument(_CBC_ARGUMENTS)
        self._decryptor = _Cipher(_algorithms.AES(key), _modes.CBC(iv)).decryptor()
        self._unpadder = _padding.PKCS7(128).unpadder()
        self._done = False

    def update(self, data: bytes) -> bytes:
        if self._done:
            raise InvalidArgument(_FINISHED)
        return self._unpadder.update(self._decryptor.update(data))

    def finalize(self) -> bytes:
        if self._done:
            raise InvalidArgument(_FINISHED)
        self._done = True
        try:
            rest = self._decryptor.finalize()  # raises on a partial last block
            return self._unpadder.update(rest) + self._unpadder.finalize()
        except ValueError:
            raise AuthenticationError("decryption failed") from None

    def __repr__(self) -> str:
        return "Aes256CbcPkcs7Decryptor(<secret>)"


class HmacSha256Stream:
    """HMAC-SHA256 (RFC 2104) fed in pieces; :meth:`verify` compares in
    constant time."""

    __slots__ = ("_mac",)

    def __init__(self, key: bytes) -> None:
        self._mac = hmac.new(key, digestmod="sha256")

    def update(self, data: bytes) -> None:
        self._mac.update(data)

    def digest(self) -> bytes:
        """The tag of everything fed so far (the stream may go on)."""
        return self._mac.digest()

    def verify(self, tag: bytes) -> bool:
        """Whether ``tag`` is the tag of everything fed so far, compared in
        constant time."""
        return hmac.compare_digest(self._mac.digest(), tag)

    def __repr__(self) -> str:
        return "HmacSha256Stream(<secret>)"
