"""SPQR, the Sparse Post-Quantum Ratchet, as one session's state: the ML-KEM
Braid (:mod:`signalish._spqr_braid`) beside per-epoch KDF chains
(:mod:`signalish._spqr_chains`), and the bytes of its message, field 5
(``pq_ratchet``) of a version 4 SignalMessage.

Each Signal message carries one SPQR message and is keyed with one SPQR
message key, mixed into the Double Ratchet's message key as the HKDF salt of
"WhisperMessageKeys" (:func:`signalish._spqr_kdf.message_keys`).

Field 5 (observed on libsignal-client 0.103.0: every field 5 of thousands of
its messages parses this way, with no byte left over)::

    0x01                   version (V1)
    varint epoch           the sender's Braid epoch, 1..2**64-1
    varint index           n of the SPQR sending chain, 0..2**32-1 (0: not keyed)
    type (1 byte)          0 NONE, 1 HDR, 2 EK, 3 EK_CT1_ACK, 4 CT1_ACK, 5 CT1, 6 CT2
    [varint chunk index || chunk (32)]    for types 1, 2, 3, 5 and 6

Varints are protobuf's (LEB128), minimal, as libsignal writes them; a
non-minimal one, a value out of range, an unknown version or type, and
trailing bytes are refused.

Index 0 means "not keyed with SPQR": libsignal-client 0.79 to 0.90, which
only *offer* SPQR, send it until they receive a keyed message.  A session
accepts such messages (with the Double Ratchet's keys alone) only until the
peer's first keyed message; after that an unkeyed one is refused, so a
session cannot be downgraded once SPQR is running.  signalish always keys
its own messages.

A received message moves the SPQR state before its MAC is checked (the key
depends on it); :meth:`Spqr.receive` therefore works on a copy, which the
session keeps only if the message then decrypts.
"""

from __future__ import annotations

from typing import Final

from ._encoding import Reader, Writer
from ._errors import (
    AuthenticationError,
    DecodeError,
    InvalidEncoding,
    TrailingBytes,
    TruncatedInput,
)
from ._primitives import RandomSource
from ._spqr_braid import CHUNKED, MAX_EPOCH, Braid, BraidMessage, MessageType, State
from ._spqr_chains import SpqrChains, SpqrLimits
from ._window import RatchetLimits

__all__ = ["Spqr", "encode_message", "parse_message", "VERSION_V1"]

VERSION_V1: Final = 1
#: Chain epochs a party keeps at most: the send epoch, the one before it,
#: and one added ahead of its first send (signalish._spqr_chains).
KEPT_EPOCHS: Final = 3
_MAX_INDEX: Final = (1 << 32) - 1
_MAX_CHUNK_INDEX: Final = 0xFFFF
#: The longest field 5: version, three 10/5/3-byte varints, type, chunk.
MAX_MESSAGE_SIZE: Final = 1 + 10 + 5 + 1 + 3 + 32


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_message(index: int, message: BraidMessage) -> bytes:
    """Field 5 for ``message`` sent as number ``index`` of its chain."""
    out = bytes((VERSION_V1,)) + _varint(message.epoch) + _varint(index) + \
        bytes((message.type,))
    if message.chunk is not None:
        assert message.chunk_index is not None
        out += _varint(message.chunk_index) + message.chunk
    return out


class _Cursor:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self, what: str) -> int:
        if self.pos >= len(self.data):
            raise TruncatedInput(f"SPQR message: input ends before {what}")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self, what: str, top: int) -> int:
        value, shift = 0, 0
        while True:
            byte = self.byte(what)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 63:
                raise InvalidEncoding(f"SPQR message: {what} is too long")
        if byte == 0 and shift:
            raise InvalidEncoding(f"SPQR message: {what} is not minimally encoded")
        if value > top:
            raise InvalidEncoding(f"SPQR message: {what} out of range")
        return value


def parse_message(data: bytes) -> tuple[int, BraidMessage]:
    """(index, Braid message) from field 5, strictly; raises a
    :class:`~signalish.errors.DecodeError`."""
    cursor = _Cursor(bytes(data))
    version = cursor.byte("the version")
    if version != VERSION_V1:
        raise InvalidEncoding(f"SPQR message: version {version} is not V1")
    epoch = cursor.varint("the epoch", MAX_EPOCH)
    if epoch == 0:
        raise InvalidEncoding("SPQR message: epoch 0")
    index = cursor.varint("the index", _MAX_INDEX)
    raw_type = cursor.byte("the type")
    if raw_type > max(MessageType):
        raise InvalidEncoding(f"SPQR message: unknown type {raw_type}")
    kind = MessageType(raw_type)
    chunk_index = chunk = None
    if kind in CHUNKED:
        chunk_index = cursor.varint("the chunk index", _MAX_CHUNK_INDEX)
        chunk = cursor.data[cursor.pos:cursor.pos + 32]
        if len(chunk) != 32:
            raise TruncatedInput("SPQR message: input ends inside the chunk")
        cursor.pos += 32
    if cursor.pos != len(cursor.data):
        raise TrailingBytes("SPQR message: bytes after its end")
    return index, BraidMessage(epoch, kind, chunk_index, chunk)


class Spqr:
    """One session's SPQR state (see the module docstring)."""

    __slots__ = ("braid", "chains", "keyed")

    def __init__(self, braid: Braid, chains: SpqrChains, keyed: bool) -> None:
        self.braid = braid
        self.chains = chains
        #: Whether a keyed message (index >= 1) has arrived from the peer.
        self.keyed = keyed

    @classmethod
    def start(cls, seed: bytes, initiator: bool, limits: RatchetLimits) -> Spqr:
        """A session's SPQR from the third 32-byte block of the version 4
        PQXDH output; the initiator is the Braid's EK side of epoch 1.  The
        chains take their bounds from the session's (:func:`spqr_limits`)."""
        braid = Braid.initiator(seed) if initiator else Braid.responder(seed)
        return cls(braid, SpqrChains.initial(seed, initiator, spqr_limits(limits)), False)

    def copy(self) -> Spqr:
        return Spqr(self.braid.copy(), self.chains.copy(), self.keyed)

    def __repr__(self) -> str:
        return f"Spqr({self.braid!r}, keyed={self.keyed})"

    def send(self, rng: RandomSource) -> tuple[bytes, bytes]:
        """(field 5, SPQR message key) for the next message sent."""
        message, epoch_key = self.braid.send(rng)
        if epoch_key is not None:
            self.chains.add_epoch(*epoch_key)
        n, key = self.chains.send_key(message.epoch - 1)
        return encode_message(n, message), key

    def steps(self, data: bytes) -> int:
        """The chain steps :meth:`receive` would take for field 5 ``data``
        (0 if it does not parse): what trying a message costs before its MAC
        can be checked, for the record's per-message budget."""
        try:
            index, message = parse_message(data)
        except DecodeError:
            return 0
        return self.chains.steps(message.epoch - 1, index) if index else 0

    def receive(self, data: bytes) -> bytes | None:
        """The SPQR message key of a received message with field 5 ``data``,
        or None for an unkeyed one (index 0) while that is still allowed.
        Changes this object (call it on a :meth:`copy`); raises a
        :class:`~signalish.errors.DecodeError` for malformed bytes,
        :class:`~signalish.errors.AuthenticationError` for an unkeyed
        message after keyed ones, a Braid MAC that fails, or an epoch this
        party has not reached (so the recovery flow of docs/howto.rst sees a
        state left behind by a restore as what it is), or what the
        chains raise for a key they cannot give (a duplicate, one too far
        ahead or long gone)."""
        index, message = parse_message(data)
        epoch_key = self.braid.receive(message)
        if epoch_key is not None:
            self.chains.add_epoch(*epoch_key)
        if message.epoch - 1 > self.chains.newest_epoch:
            # Keyed from a chain this party has not made: a peer in step
            # cannot send that (forged, or this state is behind the peer's).
            raise AuthenticationError("decryption failed")
        if index == 0:
            if self.keyed:
                raise AuthenticationError("decryption failed")
            return None
        key = self.chains.receive_key(message.epoch - 1, index)
        self.keyed = True
        return key

    def write(self, w: Writer) -> None:
        """keyed (1) || Braid state (:meth:`Braid.write`) || chains length
        (4) || chains (:meth:`SpqrChains.to_bytes`)."""
        w.u8(self.keyed)
        self.braid.write(w)
        w.var(self.chains.to_bytes())

    @classmethod
    def read(cls, r: Reader, limits: RatchetLimits) -> Spqr:
        keyed = r.u8("SPQR keyed flag")
        if keyed > 1:
            raise InvalidEncoding("SPQR: keyed flag is not 0 or 1")
        braid = Braid.read(r)
        bounds = spqr_limits(limits)
        # The chains' largest encoding under these limits: each kept epoch's
        # fixed fields and its skipped keys (36 bytes each).
        most = 64 + KEPT_EPOCHS * (128 + 36 * bounds.max_skipped)
        chains = SpqrChains.from_bytes(r.var("SPQR chains", most), bounds)
        # The Braid and the chains move together: the CT side adds epoch e's
        # chains when it encapsulates (states 8 to 11), the EK side when it
        # decapsulates, so before that its newest is e - 1; and nobody has
        # sent on a chain epoch beyond e - 1.
        newest = braid.epoch if braid.state >= State.CT1_SAMPLED else braid.epoch - 1
        if chains.newest_epoch != newest or chains.send_epoch > braid.epoch - 1 \
                or braid.epoch - 1 not in chains.epochs:
            raise InvalidEncoding("SPQR: the Braid and the chains disagree on the epoch")
        return cls(braid, chains, bool(keyed))


def spqr_limits(limits: RatchetLimits) -> SpqrLimits:
    """SPQR's chains under a session's bounds: a message may make them skip
    at most ``max_skip`` keys (each an HKDF before its MAC can be checked,
    the same budget the Double Ratchet has), and the (at most three) kept
    epochs' receiving chains together keep at most ``max_stored_keys``
    skipped keys, a third each.  libsignal's are 25,000 and 2,000 per chain
    (third-party figures; ``SessionOptions.libsignal()`` gives 25,000 and
    3,333)."""
    return SpqrLimits(max_jump=max(limits.max_skip, 1),
                      max_skipped=max(limits.max_stored_keys // KEPT_EPOCHS, 1))
