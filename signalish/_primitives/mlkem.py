"""ML-KEM-1024 (FIPS 203), the post-quantum KEM of PQXDH."""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives.asymmetric import mlkem as _mlkem

from .._errors import InvalidArgument, InvalidKey
from .randomness import RandomSource

__all__ = [
    "MLKEM1024_PUBLIC_KEY_SIZE",
    "MLKEM1024_CIPHERTEXT_SIZE",
    "MLKEM1024_SEED_SIZE",
    "KemPublicKey",
    "KemPrivateKey",
]

MLKEM1024_PUBLIC_KEY_SIZE: Final = 1568
MLKEM1024_CIPHERTEXT_SIZE: Final = 1568
MLKEM1024_SEED_SIZE: Final = 64


class KemPublicKey:
    """An ML-KEM-1024 encapsulation key (1568 bytes, FIPS 203 checked)."""

    __slots__ = ("_raw", "_key")

    def __init__(self, raw: bytes, key: _mlkem.MLKEM1024PublicKey) -> None:
        self._raw = raw
        self._key = key

    @classmethod
    def from_public_bytes(cls, raw: bytes) -> KemPublicKey:
        """Import a 1568-byte encapsulation key.  Raises
        :class:`~signalish.errors.InvalidKey` for another length or a key that
        fails FIPS 203's modulus check."""
        if len(raw) != MLKEM1024_PUBLIC_KEY_SIZE:
            raise InvalidKey(f"an ML-KEM-1024 public key is 1568 bytes, got {len(raw)}")
        raw = bytes(raw)
        try:
            key = _mlkem.MLKEM1024PublicKey.from_public_bytes(raw)
        except ValueError:
            # FIPS 203 section 7.2 modulus check failed.
            raise InvalidKey("ML-KEM-1024 public key fails the modulus check") from None
        return cls(raw, key)

    def public_bytes_raw(self) -> bytes:
        """The 1568-byte encapsulation key, as :meth:`from_public_bytes` takes it."""
        return self._raw

    def encapsulate(self) -> tuple[bytes, bytes]:
        """Returns (ciphertext, shared secret).  Randomness comes from
        OpenSSL: ``cryptography`` offers no derandomized encapsulation."""
        shared, ciphertext = self._key.encapsulate()
        return ciphertext, shared

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KemPublicKey) and self._raw == other._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"KemPublicKey({self._raw[:8].hex()}...)"


class KemPrivateKey:
    """An ML-KEM-1024 decapsulation key, held as its 64-byte seed d || z and
    expanded (a key generation) only when first used.

    Its only serialized form is that seed (FIPS 203 section 7.1), not the
    expanded decapsulation key, so it is loaded with :meth:`from_seed` and
    read with :meth:`seed` rather than ``from_private_bytes`` and
    ``private_bytes_raw``.
    """

    __slots__ = ("_seed", "_key", "_public")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != MLKEM1024_SEED_SIZE:
            raise InvalidArgument(f"an ML-KEM seed is 64 bytes, got {len(seed)}")
        self._seed = bytes(seed)
        self._key: _mlkem.MLKEM1024PrivateKey | None = None
        self._public: KemPublicKey | None = None

    @classmethod
    def generate(cls, rng: RandomSource) -> KemPrivateKey:
        return cls(rng.random_bytes(MLKEM1024_SEED_SIZE))

    @classmethod
    def from_seed(cls, seed: bytes) -> KemPrivateKey:
        """Load the 64-byte seed d || z.  Raises
        :class:`~signalish.errors.InvalidArgument` for another length."""
        return cls(seed)

    def _loaded(self) -> _mlkem.MLKEM1024PrivateKey:
        if self._key is None:
            self._key = _mlkem.MLKEM1024PrivateKey.from_seed_bytes(self._seed)
        return self._key

    def seed(self) -> bytes:
        """The 64-byte seed d || z (secret), as :meth:`from_seed` takes it."""
        return self._seed

    @property
    def public(self) -> KemPublicKey:
        if self._public is None:
            public = self._loaded().public_key()
            self._public = KemPublicKey(public.public_bytes_raw(), public)
        return self._public

    def decapsulate(self, ciphertext: bytes) -> bytes:
        """FIPS 203 ML-KEM.Decaps (implicit rejection: a wrong but
        well-sized ciphertext yields an unrelated secret, not an error)."""
        if len(ciphertext) != MLKEM1024_CIPHERTEXT_SIZE:
            raise InvalidKey(
                f"an ML-KEM-1024 ciphertext is 1568 bytes, got {len(ciphertext)}"
            )
        return self._loaded().decapsulate(ciphertext)

    def __repr__(self) -> str:
        return f"KemPrivateKey(public={self.public.public_bytes_raw()[:8].hex()}...)"
