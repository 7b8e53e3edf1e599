"""Argon2id (RFC 9106), the password hash of backups."""

from __future__ import annotations

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id as _Argon2id

from .._errors import InvalidArgument

__all__ = ["argon2id"]


def argon2id(password: bytes, salt: bytes, *, length: int, iterations: int, lanes: int,
             memory_kib: int, secret: bytes | None = None, ad: bytes | None = None) -> bytes:
    """Argon2id (RFC 9106 section 3), with the optional secret K and associated
    data X.  Raises :class:`InvalidArgument` for parameters RFC 9106 does not allow."""
    try:
        return _Argon2id(salt=salt, length=length, iterations=iterations, lanes=lanes,
                         memory_cost=memory_kib, secret=secret, ad=ad).derive(password)
    except ValueError as error:
        raise InvalidArgument(f"Argon2id parameters: {error}") from None
