"""HMAC, HKDF and constant-time comparison.

These use the standard library's OpenSSL-backed :mod:`hmac`, which is the
same code path as ``cryptography`` but without per-call object set-up: the
ratchet calls HMAC twice per message.
"""

from __future__ import annotations

import hmac
from typing import Final, Literal

from .._errors import InvalidArgument

__all__ = ["HashName", "ct_equal", "hmac_sha256", "hkdf", "hkdf_expand"]

HashName = Literal["sha256", "sha512"]
_HASH_SIZE: Final[dict[str, int]] = {"sha256": 32, "sha512": 64}


def ct_equal(a: bytes, b: bytes) -> bool:
    """Constant-time equality of two byte strings."""
    return hmac.compare_digest(a, b)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104)."""
    return hmac.digest(key, data, "sha256")


def hkdf(
    ikm: bytes,
    *,
    salt: bytes | None,
    info: bytes,
    length: int,
    hash_name: HashName = "sha256",
) -> bytes:
    """HKDF extract-and-expand (RFC 5869).  ``salt=None`` means a string of
    zeros as long as the hash output (RFC 5869 section 2.2).

    Raises :class:`InvalidArgument` if ``length`` is not in 1..255*HashLen.
    """
    hash_len = _HASH_SIZE[hash_name]
    if not 0 < length <= 255 * hash_len:
        raise InvalidArgument(f"HKDF length must be 1..{255 * hash_len}, got {length}")
    prk = hmac.digest(salt if salt else bytes(hash_len), ikm, hash_name)
    return hkdf_expand(prk, info=info, length=length, hash_name=hash_name)


def hkdf_expand(prk: bytes, *, info: bytes, length: int,
                hash_name: HashName = "sha256") -> bytes:
    """HKDF-Expand alone (RFC 5869 section 2.3), for a key that is already
    pseudorandom (HPKE's LabeledExpand uses it this way)."""
    hash_len = _HASH_SIZE[hash_name]
    if not 0 < length <= 255 * hash_len:
        raise InvalidArgument(f"HKDF length must be 1..{255 * hash_len}, got {length}")
    blocks = []
    previous = b""
    for counter in range(1, -(-length // hash_len) + 1):
        previous = hmac.digest(prk, previous + info + bytes((counter,)), hash_name)
        blocks.append(previous)
    return b"".join(blocks)[:length]
