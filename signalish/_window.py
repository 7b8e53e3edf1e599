"""The window of skipped message keys (Double Ratchet rev 1, sections 3.2
"skipped messages" and 6 "security considerations").

Theory of operation.  Keys are grouped by receiving chain (its id is the
peer's ratchet public key, or the header key when headers are encrypted).
Within a chain, keys are stored in increasing message number, and chains in
the order they became current, so "oldest first" is simply: the oldest
chain's lowest number.  Eviction (too many stored keys) and expiry (too old
in seconds) always remove oldest-first, which lets one number per chain, its
``floor``, record everything that was thrown away: every message number
below the floor is gone, for the reason stored beside it.

For a message number ``n`` on a remembered chain the verdict is therefore
exact and needs no per-message memory:

* key stored                        -> decrypt with it
* ``n < floor``                      -> :class:`MessageKeyEvicted` or
                                       :class:`MessageKeyExpired`
* ``floor <= n < next`` (not stored) -> :class:`DuplicateMessage`
                                       (it was delivered already)
* ``n >= end`` on a finished chain   -> the peer never sent it:
                                       :class:`AuthenticationError`
* ``lost_from <= n < end``           -> :class:`MessageKeyEvicted`: the
                                       peer moved on when this message was
                                       more than ``max_skip`` ahead of what
                                       had arrived, so its key was given up

A whole chain is dropped when more than ``max_receiving_chains`` are
remembered (reason: evicted) or when it ended more than
``expire_after_steps`` DH ratchet steps ago (reason: expired); its id is then
kept in a short list of forgotten chains so that late messages still get the
right error.  A duplicate older than the floor is reported with the floor's
reason: the window has a lower edge, and below it signalish no longer knows
which messages arrived.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from enum import IntEnum
from typing import Final

from ._errors import (
    AuthenticationError,
    DuplicateMessage,
    InvalidArgument,
    MessageKeyEvicted,
    MessageKeyExpired,
    MessageRejected,
)

__all__ = ["RatchetLimits", "Reason", "Chain", "Window"]

MAX_COUNTER: Final = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class RatchetLimits:
    """Bounds on what a session keeps for late messages (docs/ratchet.md).

    ``max_skip``: message keys one incoming message may make us skip
    (the spec's MAX_SKIP); a header asking for more is refused with
    :class:`~signalish.errors.TooFarAhead` before any key is derived.
    ``max_stored_keys``: skipped keys kept per session; the oldest go first.
    ``max_receiving_chains``: receiving chains remembered (libsignal: 5).
    ``expire_after_steps``: a chain's keys are dropped this many DH ratchet
    steps after it ended.
    ``expire_after_seconds``: a stored key is dropped this long after it was
    stored (the caller passes ``now``).
    ``max_message_size``: the largest plaintext accepted, in bytes.
    """

    max_skip: int = 1_000
    max_stored_keys: int = 2_000
    max_receiving_chains: int = 5
    expire_after_steps: int = 4
    expire_after_seconds: int = 30 * 24 * 3600
    max_message_size: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_skip", "max_stored_keys", "max_receiving_chains",
                     "expire_after_steps", "expire_after_seconds", "max_message_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= MAX_COUNTER:
                raise InvalidArgument(f"RatchetLimits.{name} must be 1..2**32-1, got {value!r}")


class Reason(IntEnum):
    """Why keys below a chain's floor, or a whole chain, were dropped."""

    NONE = 0
    EVICTED = 1
    EXPIRED = 2

    def error(self, what: str) -> MessageRejected:
        if self is Reason.EXPIRED:
            return MessageKeyExpired(f"{what}: its key expired")
        return MessageKeyEvicted(f"{what}: its key was evicted")


class Chain:
    """One remembered receiving chain."""

    __slots__ = ("chain_id", "step", "end", "lost_from", "floor", "reason", "_keys",
                 "_pending", "encoded", "row")

    def __init__(self, chain_id: bytes, step: int) -> None:
        self.chain_id = chain_id
        #: The DH ratchet step at which this chain became current.
        self.step = step
        #: One past the last message number of a finished chain (the PN the
        #: peer announced when it moved on); None while the chain is current.
        self.end: int | None = None
        #: On a finished chain whose end lay more than ``max_skip`` past the
        #: messages received when the peer moved on: the first message number
        #: given up (its key was never derived).  None otherwise.
        self.lost_from: int | None = None
        self.floor = 0
        self.reason = Reason.NONE
        self._keys: dict[int, tuple[bytes, int]] = {}
        # Keys not parsed yet: (a function that parses and checks them, their
        # count).  A record loaded from store rows parses a chain's keys when
        # they are first used, so loading a large record costs its sessions,
        # not its stored keys.
        self._pending: tuple[Callable[[], dict[int, tuple[bytes, int]]], int] | None = None
        #: The serialized stored keys, and the store row that holds them,
        #: kept by the state codec; every change to the keys goes through
        #: :class:`Window`, which clears both (:meth:`touch`).
        self.encoded: bytes | None = None
        self.row: bytes | None = None

    def touch(self) -> None:
        """Forget the cached serialized forms: the chain changed."""
        self.encoded = self.row = None

    @property
    def keys(self) -> dict[int, tuple[bytes, int]]:
        """Message number -> (message key, time stored), in increasing order."""
        pending = self._pending
        if pending is not None:
            self._keys = pending[0]()  # raises, and stays pending, if they are malformed
            self._pending = None
        return self._keys

    @keys.setter
    def keys(self, value: dict[int, tuple[bytes, int]]) -> None:
        self._keys, self._pending = value, None

    @property
    def key_count(self) -> int:
        """How many keys the chain stores, without parsing pending ones."""
        pending = self._pending
        return pending[1] if pending is not None else len(self._keys)

    def defer(self, parse: Callable[[], dict[int, tuple[bytes, int]]], count: int) -> None:
        """Keys to parse (with ``parse``) when first used; ``count`` of them."""
        self._pending = (parse, count)


class Window:
    """The skipped keys of one session, by chain, oldest chain first."""

    __slots__ = ("chains", "forgotten", "stored")

    def __init__(self) -> None:
        self.chains: list[Chain] = []
        #: ids of dropped chains and why, oldest first (bounded).
        self.forgotten: list[tuple[bytes, Reason]] = []
        self.stored = 0

    def parse_pending(self) -> None:
        """Parse, and check, every chain's stored keys not parsed yet
        (raises a :class:`~signalish.errors.DecodeError` if any are
        malformed): before a decryption changes anything."""
        for chain in self.chains:
            if chain._pending is not None:
                chain.keys  # noqa: B018

    def find(self, chain_id: bytes) -> Chain | None:
        for chain in reversed(self.chains):
            if chain.chain_id == chain_id:
                return chain
        return None

    def forgotten_reason(self, chain_id: bytes) -> Reason | None:
        for forgotten_id, reason in self.forgotten:
            if forgotten_id == chain_id:
                return reason
        return None

    def classify(self, chain: Chain, n: int, next_n: int, now: int,
                 limits: RatchetLimits) -> bytes | None:
        """The stored key for message ``n`` of ``chain``, or None when ``n``
        is new (``n >= next_n`` on the current chain).  Raises the window's
        error otherwise.  Changes nothing."""
        entry = chain.keys.get(n)
        if entry is not None:
            if now - entry[1] >= limits.expire_after_seconds:
                raise MessageKeyExpired(f"message {n}: its key expired")
            return entry[0]
        if n < chain.floor:
            raise chain.reason.error(f"message {n}")
        if chain.end is not None and n >= chain.end:
            # The peer announced this chain ended before n: no such message.
            raise AuthenticationError("decryption failed")
        if chain.lost_from is not None and n >= chain.lost_from:
            raise MessageKeyEvicted(f"message {n}: given up, more than max_skip behind "
                                    "when its chain ended")
        if n < next_n:
            raise DuplicateMessage(f"message {n} was already decrypted")
        return None

    # --- mutation (only ever after a successful decryption) -------------------

    def add(self, chain: Chain, keys: dict[int, tuple[bytes, int]]) -> None:
        """Store skipped keys (message number -> (key, time stored)), all
        above every number the chain already holds."""
        chain.keys.update(keys)
        chain.touch()
        self.stored += len(keys)

    def take(self, chain: Chain, n: int) -> None:
        del chain.keys[n]
        chain.touch()
        self.stored -= 1

    def finish(self, chain: Chain, end: int, lost_from: int | None) -> None:
        """Record that the peer moved on from ``chain`` after ``end``
        messages, and where its given-up tail starts, if it has one."""
        chain.end, chain.lost_from = end, lost_from  # the stored keys are unchanged

    def open_chain(self, chain_id: bytes, step: int) -> Chain:
        chain = Chain(chain_id, step)
        self.chains.append(chain)
        return chain

    def enforce(self, now: int, step: int, limits: RatchetLimits) -> None:
        """Apply every limit: chain count, chain age in steps, key age in
        seconds, key count.  Oldest first in each case.  Linear in the keys
        dropped: each chain's victims are collected in one pass and removed
        together (removing a dict's first key one at a time would rescan the
        holes left by the previous removals, quadratic in a large eviction)."""
        while len(self.chains) > limits.max_receiving_chains:
            self._forget(self.chains[0], Reason.EVICTED, limits)
        for chain in list(self.chains):
            if chain.end is not None and step - chain.step > limits.expire_after_steps:
                self._forget(chain, Reason.EXPIRED, limits)
        for chain in self.chains:
            expired = []
            for n, (_, stored_at) in chain.keys.items():
                if now - stored_at < limits.expire_after_seconds:
                    break
                expired.append(n)
            if expired:
                self._drop_keys(chain, expired, Reason.EXPIRED)
        excess = self.stored - limits.max_stored_keys
        for chain in self.chains:
            if excess <= 0:
                break
            victims = list(islice(chain.keys, excess))
            if victims:
                self._drop_keys(chain, victims, Reason.EVICTED)
                excess -= len(victims)

    def _drop_keys(self, chain: Chain, numbers: list[int], reason: Reason) -> None:
        """Drop the chain's oldest keys ``numbers`` (in order) for ``reason``."""
        keys = chain.keys
        for n in numbers:
            del keys[n]
        if len(numbers) > 32:
            chain.keys = dict(keys.items())  # compact: no holes before the first key
        self.stored -= len(numbers)
        chain.floor = numbers[-1] + 1
        chain.reason = reason
        chain.touch()

    def _forget(self, chain: Chain, reason: Reason, limits: RatchetLimits) -> None:
        self.chains.remove(chain)
        self.stored -= chain.key_count
        self.forgotten.append((chain.chain_id, reason))
        del self.forgotten[: max(0, len(self.forgotten) - 2 * limits.max_receiving_chains)]
