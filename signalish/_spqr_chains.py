"""SPQR's symmetric half: one pair of KDF chains per epoch, with skipped keys
(DR3 section 5: "The Sparse Post-Quantum Ratchet").

"DR3" is Signal's *The Double Ratchet Algorithm*, revision 3, section 5;
"observed" means seen in the SessionRecords libsignal-client 0.103.0 wrote
(field 1.15.2; tests/test_spqr_chains.py replays them from
tests/fixtures/spqr_chains.json).  The KDFs are :mod:`signalish._spqr_kdf`'s.

Theory of operation.  The Braid hands out one secret per epoch; each is
folded into the root key (KDF_SCKA_RK, :meth:`SpqrChains.add_epoch`) and
yields the two chains of that *chain epoch*, one per direction.  Chain epoch
0 comes from the seed alone (KDF_SCKA_INIT, :meth:`SpqrChains.initial`).
The initiator (direction A2B) sends on the A2B chain and receives on B2A,
the responder the reverse.  A message stamped wire epoch ``e`` is keyed
from chain epoch ``e - 1`` (observed); every method here takes the chain
epoch.  Each chain counts its messages from 1 (the counter is incremented
before KDF_SCKA_CK); the count is the index on the wire.

Several epochs are live at once, because each side keeps sending in its
old epoch until it learns that the peer has the new secret.  What is kept
(observed):

* at the first send in a chain epoch newer than the previous send epoch,
  every older epoch's sending chain is deleted (its receiving chain stays)
  and every epoch older than (send epoch - 1) is dropped with its skipped
  keys: one receiving epoch survives before the send epoch.  So the kept
  epochs always run from max(0, send epoch - 1) to the newest, contiguous.
* :meth:`~SpqrChains.add_epoch` prunes nothing.

Receiving (SCKARatchetReceiveKey, DR3 section 5.6, with the ``header.n - 1``
erratum of its SkipMessageKeys bound) for message ``n`` of chain epoch ``e``:

* a stored skipped key for (e, n)             -> removed and returned
* ``e`` older than the oldest kept epoch      -> :class:`MessageKeyExpired`
  (dropped by the pruning above: an epoch step, as the Double Ratchet's
  window reports a chain expired by DH ratchet steps)
* ``e`` newer than the newest epoch           -> :class:`TooFarAhead` (its
  secret has not been folded in; an honest peer never gets there first)
* ``n`` below the chain's floor, not stored   -> :class:`MessageKeyEvicted`
* ``floor <= n <= received count``            -> :class:`DuplicateMessage`
* ``n - received count > max_jump``           -> :class:`TooFarAhead`
* otherwise the keys between are stored (TrySkipped/SkipMessageKeys) and
  key ``n`` is returned.

Each receiving chain stores at most ``max_skipped`` keys; when a skip makes
it hold more, the lowest-numbered go, and its *floor* rises to one past the
highest key given up.  A number below the floor that is not stored was
evicted, or was delivered before the eviction; it is reported as evicted
(the floor is all that is remembered; see ``_window`` for the same rule).
The limits (:class:`SpqrLimits`: a jump of 25,000, 2,000 keys per chain)
are third parties' reading of Signal's, not observed here.

Transactions.  Every method computes its new values first and assigns them
only when nothing can fail any more, so an exception leaves the object as
it was.  A receive is finished only once the caller has checked the MAC, so
a session works on :meth:`~SpqrChains.copy` (cheap: the skipped-key maps are
never changed in place, so copies share them) and keeps the copy only if the
message decrypts.

Serialization, :meth:`~SpqrChains.to_bytes` (no type tag: the session
record frames it).  Integers are unsigned big-endian::

    direction      u8    0 = A2B (initiator), 1 = B2A (responder)
    root key       32
    newest epoch   u64
    send epoch     u64   <= newest epoch
    then one entry per kept epoch, oldest first, from max(0, send epoch - 1)
    to the newest epoch:
      epoch        u64   the previous entry's + 1
      send flag    u8    1 iff epoch >= send epoch (older sending chains are deleted)
      [send n u32 (0 above the send epoch) || send chain key 32]    if the flag is 1
      recv n       u32
      recv chain key 32
      floor        u32   1 <= floor <= max(1, recv n)
      count        u32   <= SpqrLimits.max_skipped
      count x (n u32 || message key 32)   n strictly increasing, floor <= n < recv n

:meth:`~SpqrChains.from_bytes` accepts exactly what ``to_bytes`` writes.
libsignal keeps the counter of a deleted sending chain; it is never used
again, so it is not stored here.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from itertools import islice
from typing import Final

from ._errors import (
    ChainExhausted,
    DuplicateMessage,
    InvalidArgument,
    InvalidEncoding,
    InvalidLength,
    MessageKeyEvicted,
    MessageKeyExpired,
    TooFarAhead,
    TrailingBytes,
    TruncatedInput,
)
from ._spqr_kdf import KEY_SIZE, MAX_EPOCH, MAX_INDEX, add_epoch, chain_step, spqr_init

__all__ = ["SpqrLimits", "SpqrChains"]

_HEAD: Final = struct.Struct(">B32sQQ")  # direction, root, newest epoch, send epoch
_EPOCH: Final = struct.Struct(">QB")  # epoch, send flag
_CHAIN: Final = struct.Struct(">I32s")  # n, chain key
_TAIL: Final = struct.Struct(">II")  # floor, skipped key count
_KEY: Final = struct.Struct(">I32s")  # n, message key
_MIN_ENTRY: Final = _EPOCH.size + _CHAIN.size + _TAIL.size  # an entry without a sending chain
_WHAT: Final = "SPQR chains"


@dataclass(frozen=True, slots=True)
class SpqrLimits:
    """Bounds on what a receiving chain does for late or early messages.

    ``max_jump``: how far one message may move a receiving chain (its
    number minus the chain's count); further is :class:`TooFarAhead`.
    ``max_skipped``: skipped keys stored per chain; the lowest-numbered
    are evicted first.  Defaults: Signal's, as third parties report them.
    Not serialized: pass the same limits to :meth:`SpqrChains.from_bytes`.
    """

    max_jump: int = 25_000
    max_skipped: int = 2_000

    def __post_init__(self) -> None:
        for name, low in (("max_jump", 1), ("max_skipped", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_INDEX:
                raise InvalidArgument(f"SpqrLimits.{name} must be {low}..2**32-1, got {value!r}")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class _Epoch:
    """One chain epoch.  Never changed in place (copies share them)."""

    epoch: int
    send: tuple[int, bytes] | None  # (messages sent, chain key); None once deleted
    recv: tuple[int, bytes]  # (highest message derived, chain key)
    floor: int  # numbers below it that are not stored were evicted
    skipped: Mapping[int, bytes]  # number -> message key, ascending


def _check_epoch(epoch: int) -> None:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= MAX_EPOCH:
        raise InvalidArgument("a chain epoch is an integer in 0..2**64-1")


def _new_epoch(epoch: int, initiator: bool, a2b: bytes, b2a: bytes) -> _Epoch:
    send, recv = (a2b, b2a) if initiator else (b2a, a2b)
    return _Epoch(epoch, (0, send), (0, recv), 1, {})


class SpqrChains:
    """SPQR's root key and per-epoch chains for one session (module
    docstring).  Mutable, as DR3's state is; each method either completes or
    changes nothing."""

    __slots__ = ("_initiator", "_root", "_newest", "_send_epoch", "_epochs", "_limits")

    def __init__(self, initiator: bool, root: bytes, newest: int, send_epoch: int,
                 epochs: list[_Epoch], limits: SpqrLimits) -> None:
        self._initiator = initiator
        self._root = root
        self._newest = newest
        self._send_epoch = send_epoch
        self._epochs = epochs  # contiguous, oldest first, ending at _newest
        self._limits = limits

    # --- construction ---------------------------------------------------------------

    @classmethod
    def initial(cls, seed: bytes, initiator: bool, limits: SpqrLimits = SpqrLimits()) -> SpqrChains:
        """RatchetInitAliceSCKA / RatchetInitBobSCKA's chains (DR3 section 5):
        KDF_SCKA_INIT of the 32-byte SPQR seed gives the root key and chain
        epoch 0.  ``initiator`` is direction A2B.  Raises
        :class:`InvalidArgument`."""
        if not isinstance(initiator, bool):
            raise InvalidArgument("initiator must be a bool")
        if not isinstance(limits, SpqrLimits):
            raise InvalidArgument("limits must be SpqrLimits")
        keys = spqr_init(seed)
        return cls(initiator, keys.root, 0, 0, [_new_epoch(0, initiator, keys.a2b, keys.b2a)],
                   limits)

    def copy(self) -> SpqrChains:
        """An independent copy, in time linear in the number of kept epochs
        (the skipped-key maps are shared, never changed in place)."""
        return SpqrChains(self._initiator, self._root, self._newest, self._send_epoch,
                          list(self._epochs), self._limits)

    # --- what a caller may look at (no keys) ----------------------------------------

    @property
    def initiator(self) -> bool:
        """True for direction A2B."""
        return self._initiator

    @property
    def newest_epoch(self) -> int:
        """The newest chain epoch (the number of epoch secrets folded in)."""
        return self._newest

    @property
    def send_epoch(self) -> int:
        """The chain epoch of the last :meth:`send_key` (0 before any)."""
        return self._send_epoch

    @property
    def epochs(self) -> tuple[int, ...]:
        """The chain epochs kept, oldest first."""
        return tuple(entry.epoch for entry in self._epochs)

    @property
    def stored_keys(self) -> int:
        """How many skipped message keys are stored, over all epochs."""
        return sum(len(entry.skipped) for entry in self._epochs)

    @property
    def limits(self) -> SpqrLimits:
        return self._limits

    def __repr__(self) -> str:
        parts = []
        for entry in self._epochs:
            send = "deleted" if entry.send is None else str(entry.send[0])
            parts.append(f"{entry.epoch}: sent {send}, received {entry.recv[0]}, "
                         f"{len(entry.skipped)} skipped")
        return (f"SpqrChains({'A2B' if self._initiator else 'B2A'}, "
                f"send_epoch={self._send_epoch}, epochs=[{'; '.join(parts)}])")

    # --- the ratchet ---------------------------------------------------------------

    def _index(self, epoch: int) -> int | None:
        index = epoch - self._epochs[0].epoch
        return index if 0 <= index < len(self._epochs) else None

    def add_epoch(self, epoch: int, epoch_secret: bytes) -> None:
        """Fold epoch ``epoch``'s secret (the Braid's output key) into the
        root key, KDF_SCKA_RK (DR3 sections 5.5 and 5.6), and open chain
        epoch ``epoch``.  Prunes nothing.  Raises :class:`InvalidArgument`
        unless ``epoch`` is the newest epoch + 1 and the secret 32 bytes."""
        _check_epoch(epoch)
        if epoch != self._newest + 1:
            raise InvalidArgument(f"epoch {epoch} does not follow the newest epoch {self._newest}")
        keys = add_epoch(self._root, epoch_secret)
        entry = _new_epoch(epoch, self._initiator, keys.a2b, keys.b2a)
        self._root, self._newest = keys.root, epoch
        self._epochs = [*self._epochs, entry]

    def send_key(self, epoch: int) -> tuple[int, bytes]:
        """SCKARatchetSendKey's chain step (DR3 section 5.6): (n, message
        key) of the next message of chain epoch ``epoch`` (the Braid's
        sending epoch, wire epoch - 1); n is the index on the wire, 1 for a
        chain's first message.  The first send in a newer epoch prunes (see
        the module docstring).  Raises :class:`InvalidArgument` when that
        epoch has no sending chain (not added yet, deleted, or dropped), and
        :class:`ChainExhausted` after 2**32 - 1 messages."""
        _check_epoch(epoch)
        index = self._index(epoch)
        if index is None or (entry := self._epochs[index]).send is None:
            raise InvalidArgument(f"chain epoch {epoch} has no sending chain")
        n, chain_key = entry.send
        if n >= MAX_INDEX:
            raise ChainExhausted(f"SPQR chain epoch {epoch} has sent 2**32-1 messages")
        step = chain_step(chain_key, n + 1)
        epochs = list(self._epochs)
        epochs[index] = replace(entry, send=(n + 1, step.chain_key))
        if epoch > self._send_epoch:
            epochs = [e if e.epoch >= epoch or e.send is None else replace(e, send=None)
                      for e in epochs if e.epoch >= epoch - 1]
        self._epochs, self._send_epoch = epochs, epoch
        return n + 1, step.message_key

    def steps(self, epoch: int, n: int) -> int:
        """How many chain steps :meth:`receive_key` would take for message
        ``n`` of chain epoch ``epoch`` (0 when it would take none or refuse
        before walking; ``n`` for an epoch not added yet, which a Braid
        message may add).  Changes nothing; for budgeting a message before it
        is tried."""
        if not 1 <= n <= MAX_INDEX or n > self._limits.max_jump + 1:
            return 0
        index = self._index(epoch)
        if index is None:
            return n if epoch > self._newest else 0
        entry = self._epochs[index]
        received = entry.recv[0]
        if n in entry.skipped or n <= received or n - received > self._limits.max_jump:
            return 0
        return n - received

    def receive_key(self, epoch: int, n: int) -> bytes:
        """SCKARatchetReceiveKey's chain part (DR3 section 5.6, with
        TrySkippedMessageKeys and SkipMessageKeys): the message key of
        message ``n`` of chain epoch ``epoch`` (wire epoch - 1).  Call it on
        a :meth:`copy` and keep the copy only if the message authenticates.

        Raises (module docstring) :class:`DuplicateMessage`,
        :class:`MessageKeyEvicted`, :class:`MessageKeyExpired` or
        :class:`TooFarAhead`, all :class:`MessageRejected`, and
        :class:`InvalidArgument` unless n is in 1..2**32-1 (the wire codec
        refuses the rest).  A raise changes nothing."""
        _check_epoch(epoch)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_INDEX:
            raise InvalidArgument("an SPQR index is an integer in 1..2**32-1")
        index = self._index(epoch)
        if index is None:
            if epoch < self._epochs[0].epoch:
                raise MessageKeyExpired(f"chain epoch {epoch}: dropped, its keys expired")
            raise TooFarAhead(f"chain epoch {epoch} is not known yet")
        entry = self._epochs[index]
        stored = entry.skipped.get(n)
        if stored is not None:
            skipped = {k: v for k, v in entry.skipped.items() if k != n}
            self._set(index, replace(entry, skipped=skipped))
            return stored
        received, chain_key = entry.recv
        if n <= received:
            if n < entry.floor:
                raise MessageKeyEvicted(f"chain epoch {epoch} message {n}: its key was evicted")
            raise DuplicateMessage(f"chain epoch {epoch} message {n} was already received")
        if n - received > self._limits.max_jump:
            raise TooFarAhead(f"chain epoch {epoch} message {n} would skip {n - received - 1} "
                              f"keys (max_jump {self._limits.max_jump})")
        # Old keys all lie below the new ones, so "lowest first" drops old keys
        # first; new keys below ``first_kept`` are never stored at all.
        limit = self._limits.max_skipped
        excess = len(entry.skipped) + (n - received - 1) - limit
        first_kept = received + 1 + max(0, excess - len(entry.skipped))
        new_keys: dict[int, bytes] = {}
        for i in range(received + 1, n):
            chain_key, key = chain_step(chain_key, i)
            if i >= first_kept:
                new_keys[i] = key
        chain_key, key = chain_step(chain_key, n)
        floor = entry.floor
        if excess > 0:
            old = entry.skipped
            if excess <= len(old):
                skipped = dict(islice(old.items(), excess, None))
                floor = max(floor, next(islice(old, excess - 1, None)) + 1)
            else:
                skipped = {}
                floor = max(floor, first_kept)
            skipped.update(new_keys)
        else:
            skipped = {**entry.skipped, **new_keys}
        self._set(index, replace(entry, recv=(n, chain_key), floor=floor, skipped=skipped))
        return key

    def _set(self, index: int, entry: _Epoch) -> None:
        epochs = list(self._epochs)
        epochs[index] = entry
        self._epochs = epochs

    # --- serialization ----------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The layout in the module docstring."""
        parts = [_HEAD.pack(0 if self._initiator else 1, self._root, self._newest,
                            self._send_epoch)]
        for entry in self._epochs:
            parts.append(_EPOCH.pack(entry.epoch, entry.send is not None))
            if entry.send is not None:
                parts.append(_CHAIN.pack(*entry.send))
            parts.append(_CHAIN.pack(*entry.recv))
            parts.append(_TAIL.pack(entry.floor, len(entry.skipped)))
            parts.extend(_KEY.pack(k, v) for k, v in entry.skipped.items())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, limits: SpqrLimits = SpqrLimits()) -> SpqrChains:
        """Strict inverse of :meth:`to_bytes`: raises :class:`TruncatedInput`,
        :class:`TrailingBytes`, :class:`InvalidLength` (more skipped keys
        than ``limits`` allow) or :class:`InvalidEncoding` (any value the
        ratchet could not have written)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidArgument(f"{_WHAT}: expected bytes, got {type(data).__name__}")
        if not isinstance(limits, SpqrLimits):
            raise InvalidArgument("limits must be SpqrLimits")
        r = _Cursor(bytes(data))
        direction, root = r.uint(1, "the direction"), r.key("the root key")
        newest, send_epoch = r.uint(8, "the newest epoch"), r.uint(8, "the send epoch")
        if direction > 1:
            raise _bad(f"direction {direction} is neither 0 nor 1")
        if send_epoch > newest:
            raise _bad("the send epoch is newer than the newest epoch")
        oldest = max(0, send_epoch - 1)
        r.need((newest - oldest + 1) * _MIN_ENTRY, f"{newest - oldest + 1} epochs")
        epochs = []
        for expected in range(oldest, newest + 1):
            epoch, flag = r.uint(8, "an epoch"), r.uint(1, "a send flag")
            if epoch != expected:
                raise _bad(f"epoch {epoch} where epoch {expected} belongs")
            if flag != (epoch >= send_epoch):
                raise _bad(f"epoch {epoch}: send flag {flag}, but a sending chain is kept "
                           f"exactly in the epochs from the send epoch {send_epoch} on")
            send: tuple[int, bytes] | None = None
            if flag:
                sent, send_ck = r.uint(4, "a sending count"), r.key("a sending chain key")
                if (sent != 0 and epoch > send_epoch) or (sent == 0 and epoch == send_epoch > 0):
                    raise _bad(f"epoch {epoch}: sent {sent} is impossible with send "
                               f"epoch {send_epoch}")
                send = (sent, send_ck)
            received, recv_ck = r.uint(4, "a receiving count"), r.key("a receiving chain key")
            floor, stored = r.uint(4, "a floor"), r.uint(4, "a skipped key count")
            if not 1 <= floor <= max(1, received):
                raise _bad(f"epoch {epoch}: floor {floor} outside 1..{max(1, received)}")
            if stored > limits.max_skipped:
                raise InvalidLength(f"{_WHAT}: epoch {epoch} stores {stored} skipped keys, "
                                    f"at most {limits.max_skipped}")
            r.need(stored * (4 + KEY_SIZE), "the skipped keys")
            skipped: dict[int, bytes] = {}
            previous = floor - 1
            for _ in range(stored):
                k, key = r.uint(4, "a skipped key number"), r.key("a skipped key")
                if not previous < k < received:
                    raise _bad(f"epoch {epoch}: skipped key {k} out of order or outside "
                               f"{floor}..{received - 1}")
                skipped[k] = key
                previous = k
            epochs.append(_Epoch(epoch, send, (received, recv_ck), floor, skipped))
        r.finish()
        return cls(direction == 0, root, newest, send_epoch, epochs, limits)


def _bad(message: str) -> InvalidEncoding:
    return InvalidEncoding(f"{_WHAT}: {message}")


class _Cursor:
    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def need(self, size: int, what: str) -> None:
        if size > len(self._data) - self._pos:
            raise TruncatedInput(f"{_WHAT}: input ends inside {what}")

    def _take(self, size: int, what: str) -> bytes:
        self.need(size, what)
        self._pos += size
        return self._data[self._pos - size:self._pos]

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self._take(size, what), "big")

    def key(self, what: str) -> bytes:
        return self._take(KEY_SIZE, what)

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise TrailingBytes(f"{_WHAT}: {len(self._data) - self._pos} bytes after the end")
