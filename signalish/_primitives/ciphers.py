"""Symmetric ciphers: AES-256-GCM and ChaCha20-Poly1305 (AEADs), and
AES-256-CBC with PKCS#7 for libsignal's v3 messages, which carry their own MAC.

Every failure to decrypt raises the same :class:`AuthenticationError`,
whether a tag, a length or a padding was wrong: no padding oracle.
"""

from __future__ import annotations

from typing import Final

from cryptography.exceptions import InvalidTag as _PycaInvalidTag
from cryptography.hazmat.primitives import padding as _padding
from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher
from cryptography.hazmat.primitives.ciphers import algorithms as _algorithms
from cryptography.hazmat.primitives.ciphers import modes as _modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM as _AESGCM
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305 as _ChaCha20Poly1305

from .._errors import AuthenticationError, InvalidArgument

__all__ = [
    "aes256_gcm_encrypt",
    "aes256_gcm_decrypt",
    "chacha20_poly1305_encrypt",
    "chacha20_poly1305_decrypt",
    "aes256_cbc_encrypt",
    "aes256_cbc_decrypt",
]


_GCM_ARGUMENTS: Final = "AES-256-GCM takes a 32-byte key and a 12-byte nonce"


def aes256_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM with a 96-bit nonce; returns ciphertext || 16-byte tag."""
    if len(key) != 32 or len(nonce) != 12:
        raise InvalidArgument(_GCM_ARGUMENTS)
    return _AESGCM(key).encrypt(nonce, plaintext, aad)


def aes256_gcm_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM decryption.  Raises :class:`AuthenticationError`."""
    if len(key) != 32 or len(nonce) != 12:
        raise InvalidArgument(_GCM_ARGUMENTS)
    try:
        return _AESGCM(key).decrypt(nonce, ciphertext, aad)
    except (_PycaInvalidTag, ValueError):
        raise AuthenticationError("decryption failed") from None


def chacha20_poly1305_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """ChaCha20-Poly1305 (RFC 8439); returns ciphertext || 16-byte tag."""
    if len(key) != 32 or len(nonce) != 12:
        raise InvalidArgument("ChaCha20-Poly1305 takes a 32-byte key and a 12-byte nonce")
    return _ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)


def chacha20_poly1305_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """ChaCha20-Poly1305 decryption.  Raises :class:`AuthenticationError`."""
    if len(key) != 32 or len(nonce) != 12:
        raise InvalidArgument("ChaCha20-Poly1305 takes a 32-byte key and a 12-byte nonce")
    try:
        return _ChaCha20Poly1305(key).decrypt(nonce, ciphertext, aad)
    except (_PycaInvalidTag, ValueError):
        raise AuthenticationError("decryption failed") from None


def aes256_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """AES-256-CBC with PKCS#7 padding (no authentication: pair it with a MAC)."""
    if len(key) != 32 or len(iv) != 16:
        raise InvalidArgument("AES-256-CBC takes a 32-byte key and a 16-byte IV")
    padder = _padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = _Cipher(_algorithms.AES(key), _modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def aes256_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """AES-256-CBC decryption.  Bad length or padding raises
    :class:`AuthenticationError`, the same error a failed MAC gives, so that
    callers cannot build a padding oracle by accident."""
    if len(key) != 32 or len(iv) != 16:
        raise InvalidArgument("AES-256-CBC takes a 32-byte key and a 16-byte IV")
    if not ciphertext or len(ciphertext) % 16:
        raise AuthenticationError("decryption failed")
    decryptor = _Cipher(_algorithms.AES(key), _modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = _padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise AuthenticationError("decryption failed") from None


# --- appended for sealed sender (signalish._sealed_sender) ---------------------

from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV as _AESGCMSIV  # noqa: E402

__all__ += ["aes256_ctr", "aes256_gcm_siv_encrypt", "aes256_gcm_siv_decrypt"]


def aes256_ctr(key: bytes, counter: bytes, data: bytes) -> bytes:
    """AES-256 in CTR mode (NIST SP 800-38A section 6.5) from a 16-byte
    initial counter block, big-endian increment.  Encryption and decryption
    are the same function.  No authentication: pair it with a MAC."""
    if len(key) != 32 or len(counter) != 16:
        raise InvalidArgument("AES-256-CTR takes a 32-byte key and a 16-byte counter block")
    encryptor = _Cipher(_algorithms.AES(key), _modes.CTR(counter)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


_GCM_SIV_ARGUMENTS: Final = "AES-256-GCM-SIV takes a 32-byte key and a 12-byte nonce"


def aes256_gcm_siv_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM-SIV (RFC 8452); returns ciphertext || 16-byte tag."""
    if len(key) != 32 or len(nonce) != 12:
        raise InvalidArgument(_GCM_SIV_ARGUMENTS)
    return _AESGCMSIV(key).encrypt(nonce, plaintext, aad)


def aes256_gcm_siv_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM-SIV decryption.  Raises :class:`AuthenticationError`."""
    if len(key) != 32 or len(nonce) != 12:
        raise InvalidArgument(_GCM_SIV_ARGUMENTS)
    try:
        return _AESGCMSIV(key).decrypt(nonce, ciphertext, aad)
    except (_PycaInvalidTag, ValueError):
        raise AuthenticationError("decryption failed") from None
