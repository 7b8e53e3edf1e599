"""Serialization of ratchet state and limits (inside a SessionRecord).

Layout (format version 1; docs/formats.md has the table)::

    limits:  max_skip, max_stored_keys, max_receiving_chains,
             expire_after_steps, expire_after_seconds, max_message_size (4 bytes each)
    state:   flags (1) | DHs private (32) | DHs public (32) | RK (32)
             | [DHr] [CKs] [CKr] [HKs] [HKr] [NHKs] [NHKr] (32 each, per flag bit 1..7)
             | Ns, Nr, PN (4 each) | step (8) | window
    window:  chain count (4), per chain: id (32) | step (8) | end flag [end (4)]
             | lost flag [lost from (4)] (version 2 only)
             | floor (4) | reason (1) | key count (4), per key: n (4) | key (32) | stored at (8)
             forgotten count (4), per chain: id (32) | reason (1)

Flag bit 0 is header encryption.  Reading checks every invariant the
ratchet relies on, so a state that loads is a state the ratchet can run.

The *split* layout (session rows of version 3) leaves out what every
message changes, the values of CKs and CKr (their flag bits stay) and Ns
and Nr; a counters row (:func:`counters_row`) holds them, so that a
message in a chain rewrites 70 bytes and not the session.
"""

from __future__ import annotations

import struct
from hashlib import sha256
from collections.abc import Callable
from typing import Final

from ._encoding import DIGEST_SIZE, Reader, Tag, Writer, add_digest, check_digest
from ._errors import CorruptState, InvalidArgument, InvalidEncoding
from ._primitives import PrivateKey, PublicKey
from ._profile import Profile
from ._ratchet import RatchetState
from ._window import Chain, RatchetLimits, Reason, Window

__all__ = ["write_limits", "read_limits", "write_state", "encode_state", "read_state", "keys_row",
           "counters_row", "read_counters_row", "Counters"]

_LIMIT_FIELDS = ("max_skip", "max_stored_keys", "max_receiving_chains", "expire_after_steps",
                 "expire_after_seconds", "max_message_size")
_OPTIONAL = ("dhr", "cks", "ckr", "hks", "hkr", "nhks", "nhkr")
_LIMITS: Final = struct.Struct(">IIIIII")
_COUNTERS: Final = struct.Struct(">IIIQI")  # Ns, Nr, PN, step, chain count
_SPLIT_COUNTERS: Final = struct.Struct(">IQI")  # PN, step, chain count
_FLAGS_NS_NR: Final = struct.Struct(">BII")
_COUNTERS_ROW_TAG: Final = bytes((Tag.COUNTERS_ROW, 1))
#: What a counters row carries: Ns, Nr, CKs, CKr.
Counters = tuple[int, int, bytes | None, bytes | None]
_FLOOR: Final = struct.Struct(">IBI")  # floor, reason, key count
_KEY: Final = struct.Struct(">I32sQ")  # n, message key, stored at


def write_limits(w: Writer, limits: RatchetLimits) -> None:
    w.fixed(_LIMITS.pack(*(getattr(limits, name) for name in _LIMIT_FIELDS)))


def read_limits(r: Reader) -> RatchetLimits:
    values = [r.u32(name) for name in _LIMIT_FIELDS]
    try:
        return RatchetLimits(*values)
    except InvalidArgument as error:
        raise InvalidEncoding(f"SessionRecord: {error}") from None


def write_state(w: Writer, state: RatchetState, *, keys: bool = True) -> None:
    """Write ``state``; with ``keys=False`` each chain carries its key count
    but not its keys (the store-row layout, where :func:`keys_row` holds them)."""
    w.fixed(encode_state(state, keys=keys))


def encode_state(state: RatchetState, *, keys: bool = True, split: bool = False) -> bytes:
    """What :func:`write_state` writes; with ``split``, the split layout
    (without CKs, CKr, Ns and Nr, which :func:`counters_row` holds)."""
    parts = [b"", state.dhs.private_bytes_raw(), state.dhs_public, state.rk]
    flags = 1 if state.header_encryption else 0
    bit = 2
    for value in (state.dhr, state.cks, state.ckr, state.hks, state.hkr, state.nhks, state.nhkr):
        if value is not None:
            flags |= bit
            if not split or bit not in (4, 8):
                parts.append(value)
        bit <<= 1
    parts[0] = bytes((flags,))
    window = state.window
    chains = window.chains
    if split:
        parts.append(_SPLIT_COUNTERS.pack(state.pn, state.step, len(chains)))
    else:
        parts.append(_COUNTERS.pack(state.ns, state.nr, state.pn, state.step, len(chains)))
    for chain in chains:
        parts.append(_chain_head(chain))
        if keys and chain.key_count:
            parts.append(_chain_keys(chain))
    forgotten = window.forgotten
    parts.append(len(forgotten).to_bytes(4, "big"))
    if forgotten:
        parts.extend(chain_id + bytes((reason,)) for chain_id, reason in forgotten)
    return b"".join(parts)


def _chain_head(chain: Chain) -> bytes:
    end = b"\x00" if chain.end is None else b"\x01" + chain.end.to_bytes(4, "big")
    lost = b"\x00" if chain.lost_from is None else b"\x01" + chain.lost_from.to_bytes(4, "big")
    return b"".join((chain.chain_id, chain.step.to_bytes(8, "big"), end, lost,
                     _FLOOR.pack(chain.floor, chain.reason, chain.key_count)))


def _chain_keys(chain: Chain) -> bytes:
    """A chain's stored keys, serialized; kept on the chain until the window
    changes them (a large window is encoded once, not on every message)."""
    if chain.encoded is None:
        pack = _KEY.pack
        chain.encoded = b"".join([pack(n, key, stored_at)
                                  for n, (key, stored_at) in chain.keys.items()])
    return chain.encoded


def keys_row(chain: Chain) -> bytes:
    """The store row holding a chain's stored keys: tag 0x52, version 1,
    chain id (32), key count (4), the keys as in the record, and a 16-byte
    digest.  Kept on the chain until its keys change."""
    if chain.row is None:
        chain.row = add_digest(b"".join((bytes((Tag.CHAIN_KEYS_ROW, 1)), chain.chain_id,
                                         chain.key_count.to_bytes(4, "big"),
                                         _chain_keys(chain))))
    return chain.row


def counters_row(state: RatchetState, session_digest: bytes) -> bytes:
    """The store row holding what a message changes (the split layout's
    other half): tag 0x53, version 1, the digest of the session row it
    belongs with (16), flags (bit 0: CKs, bit 1: CKr), Ns (4), Nr (4), CKs
    (32) and CKr (32) when present, and a 16-byte digest."""
    cks, ckr = state.cks, state.ckr
    body = b"".join((_COUNTERS_ROW_TAG, session_digest,
                     _FLAGS_NS_NR.pack((cks is not None) | (ckr is not None) << 1,
                                       state.ns, state.nr),
                     cks or b"", ckr or b""))
    return body + sha256(body).digest()[:DIGEST_SIZE]  # add_digest, written out: every message


def read_counters_row(row: bytes, session_digest: bytes, cks: bool, ckr: bool) -> Counters:
    """Read a :func:`counters_row`, which must belong with the session row
    whose digest is ``session_digest`` and carry exactly the chain keys
    that row's flags name."""
    r = Reader(check_digest(row, "SessionRecord counters row"), Tag.COUNTERS_ROW,
               "SessionRecord counters row", frozenset({1}))
    if r.fixed(16, "session digest") != session_digest:
        raise InvalidEncoding("SessionRecord: a counters row of another session row")
    if r.u8("counters flags") != (cks | ckr << 1):
        raise InvalidEncoding("SessionRecord: counters row and session disagree on the chains")
    ns, nr = r.u32("Ns"), r.u32("Nr")
    values = (r.fixed(32, "CKs") if cks else None, r.fixed(32, "CKr") if ckr else None)
    r.finish()
    return ns, nr, values[0], values[1]


def _reason(r: Reader, allow_none: bool) -> Reason:
    value = r.u8("reason")
    if value > 2 or (value == 0 and not allow_none):
        raise InvalidEncoding("SessionRecord: unknown drop reason")
    return Reason(value)


def read_state(r: Reader, profile: Profile, limits: RatchetLimits, version: int,
               keys: Callable[[bytes], bytes | None] | None = None,
               counters: Callable[[bool, bool], Counters] | None = None) -> RatchetState:
    """Read a state written by :func:`write_state` (``version`` 2) or by
    format version 1, which had no given-up tails.  With ``keys``, the state
    was written with ``keys=False``: ``keys(chain_id)`` returns the
    :func:`keys_row` of each chain that stores keys (None if it is missing,
    which is :class:`~signalish.errors.CorruptState`).  With ``counters``,
    the state is in the split layout: ``counters(has_cks, has_ckr)`` reads
    the values it leaves out from the :func:`counters_row`."""
    flags = r.u8("state flags")
    he = bool(flags & 1)
    dhs_private, dhs_public = r.fixed(32, "DHs private"), r.fixed(32, "DHs public")
    PublicKey.from_public_bytes(dhs_public)
    state = RatchetState(profile, he, PrivateKey.from_private_bytes(dhs_private), dhs_public,
                         r.fixed(32, "RK"))
    for bit, name in enumerate(_OPTIONAL, start=1):
        if flags & (1 << bit) and (counters is None or name not in ("cks", "ckr")):
            setattr(state, name, r.fixed(32, name))
    if not he and flags & 0b11110000:
        raise InvalidEncoding("SessionRecord: header keys without header encryption")
    if counters is None:
        state.ns, state.nr = r.u32("Ns"), r.u32("Nr")
    else:
        state.ns, state.nr, state.cks, state.ckr = counters(bool(flags & 4), bool(flags & 8))
    state.pn = r.u32("PN")
    state.step = r.u64("step")
    window = state.window
    for _ in range(r.count("chain count", limits.max_receiving_chains)):
        chain = Chain(r.fixed(32, "chain id"), r.u64("chain step"))
        chain.end = r.u32("chain end") if r.flag("chain finished") else None
        if version >= 2 and r.flag("tail given up"):
            chain.lost_from = r.u32("lost from")
            if chain.end is None or not chain.lost_from < chain.end:
                raise InvalidEncoding("SessionRecord: given-up tail outside a finished chain")
        chain.floor = r.u32("floor")
        chain.reason = _reason(r, allow_none=True)
        if (chain.reason is Reason.NONE) != (chain.floor == 0):
            raise InvalidEncoding("SessionRecord: floor and reason disagree")
        count = r.count("key count", limits.max_stored_keys)
        if keys is None:
            _read_keys(r, chain.keys, count, chain.floor, chain.end, chain.lost_from)
        elif count:
            row = keys(chain.chain_id)
            if row is None:
                raise CorruptState("SessionRecord: a chain's key row is missing")
            _read_keys_row(row, chain, count)
        if chain.lost_from is not None and chain.floor > chain.lost_from:
            raise InvalidEncoding("SessionRecord: floor above the given-up tail")
        window.chains.append(chain)
        window.stored += count
    _check_window(state, window, limits)
    for _ in range(r.count("forgotten count", 2 * limits.max_receiving_chains)):
        window.forgotten.append((r.fixed(32, "forgotten id"), _reason(r, allow_none=False)))
    return state


def _read_keys(r: Reader, into: dict[int, tuple[bytes, int]], count: int, floor: int,
               end: int | None, lost: int | None) -> None:
    last = floor - 1
    for _ in range(count):
        n = r.u32("message number")
        if n <= last or (end is not None and n >= end) or (lost is not None and n >= lost):
            raise InvalidEncoding("SessionRecord: skipped keys out of order or range")
        into[n] = (r.fixed(32, "message key"), r.u64("stored at"))
        last = n


def _read_keys_row(row: bytes, chain: Chain, count: int) -> None:
    """Check a chain's key row against the session row (digest, chain id,
    count, length) and leave its keys to be parsed, and checked, when the
    chain first uses them (:meth:`Chain.keys`)."""
    body = check_digest(row, "SessionRecord key row")
    r = Reader(body, Tag.CHAIN_KEYS_ROW, "SessionRecord key row", frozenset({1}))
    if r.fixed(32, "chain id") != chain.chain_id:
        raise InvalidEncoding("SessionRecord: a key row of another chain")
    if r.u32("key count") != count:
        raise InvalidEncoding("SessionRecord: key row and session disagree on the key count")
    start = 2 + 32 + 4
    if len(body) != start + count * _KEY.size:
        raise InvalidEncoding("SessionRecord: a key row's length does not match its count")
    floor, end, lost = chain.floor, chain.end, chain.lost_from

    def parse() -> dict[int, tuple[bytes, int]]:
        keys_reader = Reader(body, Tag.CHAIN_KEYS_ROW, "SessionRecord key row", frozenset({1}))
        keys_reader.fixed(36, "chain id and count")
        parsed: dict[int, tuple[bytes, int]] = {}
        _read_keys(keys_reader, parsed, count, floor, end, lost)
        keys_reader.finish()
        return parsed

    chain.defer(parse, count)
    chain.encoded = body[start:]
    if type(row) is bytes:
        chain.row = row  # what keys_row would write: an unchanged chain is not rewritten


def _check_window(state: RatchetState, window: Window, limits: RatchetLimits) -> None:
    if window.stored > limits.max_stored_keys:
        raise InvalidEncoding("SessionRecord: more stored keys than the limit")
    chains = window.chains
    if [c for c in chains[:-1] if c.end is None]:
        raise InvalidEncoding("SessionRecord: only the newest chain may be open")
    if (state.ckr is None) != (not chains) or (chains and chains[-1].end is not None):
        raise InvalidEncoding("SessionRecord: receiving chain and window disagree")
    if chains and chains[-1].chain_id != (state.hkr if state.header_encryption else state.dhr):
        raise InvalidEncoding("SessionRecord: current chain id does not match the state")
    if any(a.step >= b.step for a, b in zip(chains, chains[1:])) or \
            any(c.step > state.step for c in chains):
        raise InvalidEncoding("SessionRecord: chains out of order")
