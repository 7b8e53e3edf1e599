"""Safety numbers: comparing identity keys out of band, as libsignal does.

For each party, starting from ``version (2 bytes, 0) || key || identifier``,
SHA-512 is applied ``iterations`` times (default 5,200), each time over the
previous hash followed by the key (the 33-byte ``0x05 || u`` form).  The
first 30 bytes give 30 digits (six 5-byte big-endian chunks, each mod
100,000); the displayable safety number is both parties' digits, the
lexicographically smaller half first, so both see the same 60 digits.  The
scannable form is the protobuf ``CombinedFingerprints {1 version, 2 local
{1 content}, 3 remote {1 content}}`` with the first 32 bytes of each hash.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import Enum
from typing import Final

from ._errors import InvalidArgument, InvalidEncoding
from ._keys import IdentityKey

__all__ = ["SafetyNumber", "FingerprintMatch", "compare_scannable"]

DEFAULT_ITERATIONS: Final = 5_200
SCANNABLE_VERSION: Final = 2
_FINGERPRINT_VERSION: Final = b"\x00\x00"


class FingerprintMatch(Enum):
    """Outcome of comparing two scannable fingerprints."""

    MATCH = "match"
    MISMATCH = "mismatch"
    DIFFERENT_VERSIONS = "different versions"


def _hash(key: IdentityKey, identifier: bytes, iterations: int) -> bytes:
    encoded = b"\x05" + key.public_bytes_raw()
    digest = _FINGERPRINT_VERSION + encoded + identifier
    for _ in range(iterations):
        digest = hashlib.sha512(digest + encoded).digest()
    return digest


def _digits(digest: bytes) -> str:
    return "".join(f"{int.from_bytes(digest[i:i + 5], 'big') % 100_000:05d}"
                   for i in range(0, 30, 5))


def _logical(content: bytes) -> bytes:
    return b"\x0a" + bytes((len(content),)) + content


def _combined(version: int, local: bytes, remote: bytes) -> bytes:
    if not 0 <= version < 128:
        raise InvalidArgument("scannable version must be 0..127")
    return (b"\x08" + bytes((version,)) + b"\x12" + bytes((34,)) + _logical(local)
            + b"\x1a" + bytes((34,)) + _logical(remote))


@dataclass(frozen=True, slots=True)
class SafetyNumber:
    """The safety number of two identities, from one party's point of view."""

    displayable: str
    scannable: bytes

    @classmethod
    def compute(cls, local_key: IdentityKey, local_id: bytes | str, remote_key: IdentityKey,
                remote_id: bytes | str, *, iterations: int = DEFAULT_ITERATIONS,
                version: int = SCANNABLE_VERSION) -> SafetyNumber:
        """Compute as libsignal's ``Fingerprint.new(iterations, version, ...)``.
        Identifiers are bytes (a ``str`` is encoded as UTF-8)."""
        if not 1 <= iterations <= 1_000_000:
            raise InvalidArgument("iterations must be 1..1,000,000")
        local_id = local_id.encode() if isinstance(local_id, str) else bytes(local_id)
        remote_id = remote_id.encode() if isinstance(remote_id, str) else bytes(remote_id)
        local = _hash(local_key, local_id, iterations)
        remote = _hash(remote_key, remote_id, iterations)
        ours, theirs = _digits(local), _digits(remote)
        displayable = ours + theirs if ours <= theirs else theirs + ours
        return cls(displayable, _combined(version, local[:32], remote[:32]))

    def formatted(self) -> str:
        """The 60 digits in twelve groups of five, as apps show them."""
        return " ".join(self.displayable[i:i + 5] for i in range(0, 60, 5))


def _parse_combined(data: bytes) -> tuple[int, bytes, bytes]:
    if (len(data) != 74 or data[0] != 0x08 or data[1] >= 128 or data[2:4] != b"\x12\x22"
            or data[4:6] != b"\x0a\x20" or data[38:40] != b"\x1a\x22" or data[40:42] != b"\x0a\x20"):
        raise InvalidEncoding("scannable fingerprint: not a CombinedFingerprints message")
    return data[1], data[6:38], data[42:74]


def compare_scannable(ours: SafetyNumber | bytes, scanned: bytes) -> FingerprintMatch:
    """Compare our scannable fingerprint with one scanned from the peer's
    screen: it matches when its local part is our remote part and the other
    way round.  Raises :class:`~signalish.errors.InvalidEncoding` for malformed input."""
    mine = ours.scannable if isinstance(ours, SafetyNumber) else ours
    my_version, my_local, my_remote = _parse_combined(mine)
    their_version, their_local, their_remote = _parse_combined(scanned)
    if my_version != their_version:
        return FingerprintMatch.DIFFERENT_VERSIONS
    same = hmac.compare_digest(my_local, their_remote) & hmac.compare_digest(my_remote, their_local)
    return FingerprintMatch.MATCH if same else FingerprintMatch.MISMATCH
