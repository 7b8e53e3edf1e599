"""The prekey lifecycle's policy and its results: the id counters to carry
over a reinstall (:class:`PreKeyIds`), when to replenish and rotate
(:class:`UpkeepPolicy`, :class:`Upkeep`), what to upload (:class:`Upload`),
and the ring's size limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .._bundle import KemPreKeyPublic, OneTimePreKeyPublic, SignedPreKeyPublic
from .._errors import InvalidArgument

__all__ = ["PreKeyIds", "UpkeepPolicy", "Upkeep", "Upload", "MAX_BATCH", "MAX_STORED",
           "MAX_REMEMBERED"]

MAX_BATCH: Final = 10_000
MAX_STORED: Final = 100_000
#: Initial messages without a one-time prekey one signed prekey accepts
#: (each remembered by its 32-byte base key); rotate the signed prekey sooner.
MAX_REMEMBERED: Final = 10_000


@dataclass(frozen=True, slots=True)
class PreKeyIds:
    """The next id a ring hands out, of each kind.  Keep it with the
    application's account data (or let the server remember it) and pass it
    to :meth:`PreKeyRing.create` after a reinstall: ids then never repeat, so
    an initial message still in flight for a key of the old installation is
    refused as a :class:`~signalish.errors.PreKeyError` (its ids lie below
    the counters), not tried with a new key under the same id (which fails
    as an :class:`~signalish.errors.AuthenticationError`, like a forgery)."""

    signed: int = 1
    one_time: int = 1
    kem: int = 1

    def __post_init__(self) -> None:
        for name in ("signed", "one_time", "kem"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not 1 <= value < 2**32 - MAX_BATCH:
                raise InvalidArgument(f"PreKeyIds.{name} must be 1..2**32-{MAX_BATCH + 1}")


@dataclass(frozen=True, slots=True)
class UpkeepPolicy:
    """When :meth:`PreKeyRing.upkeep` generates and rotates prekeys.

    One-time EC and one-time KEM prekeys are topped up to ``one_time`` and
    ``kem`` once fewer than ``one_time_low`` and ``kem_low`` are available;
    the signed prekey is rotated once older than ``signed_max_age`` seconds,
    the last-resort KEM prekey once older than ``last_resort_max_age``; a
    rotated-out key keeps working for ``grace`` seconds, for initial
    messages already in flight.  The defaults are Signal's applications'
    order of magnitude: 100 keys, rotation every week (signed) and month
    (last resort)."""

    one_time: int = 100
    one_time_low: int = 20
    kem: int = 100
    kem_low: int = 20
    signed_max_age: int = 7 * 86_400
    last_resort_max_age: int = 30 * 86_400
    grace: int = 30 * 86_400

    def __post_init__(self) -> None:
        if not 0 <= self.one_time_low <= self.one_time <= MAX_BATCH or \
                not 0 <= self.kem_low <= self.kem <= MAX_BATCH:
            raise InvalidArgument(f"upkeep: need 0 <= low <= target <= {MAX_BATCH}")
        if min(self.signed_max_age, self.last_resort_max_age, self.grace) < 0:
            raise InvalidArgument("upkeep: ages and grace are seconds >= 0")


@dataclass(frozen=True, slots=True)
class Upkeep:
    """What :meth:`PreKeyRing.upkeep_due` found due: how many one-time EC and
    KEM prekeys to generate, and which rotations.  False when nothing is."""

    one_time: int
    kem: int
    rotate_signed: bool
    rotate_last_resort: bool

    def __bool__(self) -> bool:
        return bool(self.one_time or self.kem or self.rotate_signed or self.rotate_last_resort)


@dataclass(frozen=True, slots=True)
class Upload:
    """What to send the server after :meth:`PreKeyRing.upkeep`: the new
    public prekeys (signatures included), empty or None where nothing is
    new.  The server keeps the one-time ones until it hands them out, once
    each, and replaces its signed and last-resort prekey with new ones."""

    one_time: tuple[OneTimePreKeyPublic, ...] = ()
    kem: tuple[KemPreKeyPublic, ...] = ()
    signed: SignedPreKeyPublic | None = None
    last_resort: KemPreKeyPublic | None = None

    def __bool__(self) -> bool:
        return bool(self.one_time or self.kem or self.signed or self.last_resort)
