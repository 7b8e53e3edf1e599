"""The one injectable source of randomness (docs/architecture.md, sans-IO rules).

Protocol code never calls :func:`os.urandom`: it takes a :class:`RandomSource`,
so that a test or a vector generator can replay every key it made.
"""

from __future__ import annotations

import hashlib
import os
from typing import Protocol

__all__ = ["RandomSource", "SystemRandom", "DeterministicRandom"]


class RandomSource(Protocol):
    """The one source of randomness.  Protocol code never calls os.urandom."""

    def random_bytes(self, n: int, /) -> bytes:
        """Return ``n`` uniformly random bytes."""
        ...


class SystemRandom:
    """The operating system's CSPRNG (``os.urandom``).  The default."""

    __slots__ = ()

    def random_bytes(self, n: int, /) -> bytes:
        return os.urandom(n)

    def __repr__(self) -> str:
        return "SystemRandom()"


class DeterministicRandom:
    """A reproducible stream (SHAKE-256 of a seed and a counter).

    For tests and test vectors only: anyone who knows the seed knows every
    key derived from it.
    """

    __slots__ = ("_seed", "_counter")

    def __init__(self, seed: bytes) -> None:
        self._seed = bytes(seed)
        self._counter = 0

    def random_bytes(self, n: int, /) -> bytes:
        block = hashlib.shake_256(
            b"signalish-test-drbg" + self._counter.to_bytes(8, "big") + self._seed
        ).digest(n)
        self._counter += 1
        return block

    def __repr__(self) -> str:
        return "DeterministicRandom(<seed hidden>)"
