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
"""

from __future__ import annotations

import struct
from typing import Final

from ._encoding import Reader, Writer
from ._errors import InvalidArgument, InvalidEncoding
from ._primitives import PrivateKey, PublicKey
from ._profile import Profile
from ._ratchet import RatchetState
from ._window import Chain, RatchetLimits, Reason, Window

__all__ = ["write_limits", "read_limits", "write_state", "read_state"]

_LIMIT_FIELDS = ("max_skip", "max_stored_keys", "max_receiving_chains", "expire_after_steps",
                 "expire_after_seconds", "max_message_size")
_OPTIONAL = ("dhr", "cks", "ckr", "hks", "hkr", "nhks", "nhkr")
_LIMITS: Final = struct.Struct(">IIIIII")
_COUNTERS: Final = struct.Struct(">IIIQI")  # Ns, Nr, PN, step, chain count
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


def write_state(w: Writer, state: RatchetState) -> None:
    flags = int(state.header_encryption)
    parts = [b"", state.dhs.private_bytes_raw(), state.dhs_public, state.rk]
    for bit, name in enumerate(_OPTIONAL, start=1):
        value = getattr(state, name)
        if value is not None:
            flags |= 1 << bit
            parts.append(value)
    parts[0] = bytes((flags,))
    window = state.window
    parts.append(_COUNTERS.pack(state.ns, state.nr, state.pn, state.step, len(window.chains)))
    parts.extend(_chain_bytes(chain) for chain in window.chains)
    parts.append(len(window.forgotten).to_bytes(4, "big"))
    parts.extend(chain_id + bytes((reason,)) for chain_id, reason in window.forgotten)
    w.fixed(b"".join(parts))


def _chain_bytes(chain: Chain) -> bytes:
    """One chain's serialized form, kept on the chain until the window
    changes it (a large window is encoded once, not on every message)."""
    if chain.encoded is None:
        head = [chain.chain_id, chain.step.to_bytes(8, "big")]
        head.append(b"\x00" if chain.end is None else b"\x01" + chain.end.to_bytes(4, "big"))
        head.append(b"\x00" if chain.lost_from is None
                    else b"\x01" + chain.lost_from.to_bytes(4, "big"))
        head.append(_FLOOR.pack(chain.floor, chain.reason, len(chain.keys)))
        pack = _KEY.pack
        head.extend(pack(n, key, stored_at) for n, (key, stored_at) in chain.keys.items())
        chain.encoded = b"".join(head)
    return chain.encoded


def _reason(r: Reader, allow_none: bool) -> Reason:
    value = r.u8("reason")
    if value > 2 or (value == 0 and not allow_none):
        raise InvalidEncoding("SessionRecord: unknown drop reason")
    return Reason(value)


def read_state(r: Reader, profile: Profile, limits: RatchetLimits, version: int) -> RatchetState:
    """Read a state written by :func:`write_state` (``version`` 2) or by
    format version 1, which had no given-up tails."""
    flags = r.u8("state flags")
    he = bool(flags & 1)
    dhs_private, dhs_public = r.fixed(32, "DHs private"), r.fixed(32, "DHs public")
    PublicKey.from_public_bytes(dhs_public)
    state = RatchetState(profile, he, PrivateKey.from_private_bytes(dhs_private), dhs_public,
                         r.fixed(32, "RK"))
    for bit, name in enumerate(_OPTIONAL, start=1):
        if flags & (1 << bit):
            setattr(state, name, r.fixed(32, name))
    if not he and flags & 0b11110000:
        raise InvalidEncoding("SessionRecord: header keys without header encryption")
    state.ns, state.nr, state.pn = r.u32("Ns"), r.u32("Nr"), r.u32("PN")
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
        last = chain.floor - 1
        for _ in range(r.count("key count", limits.max_stored_keys)):
            n = r.u32("message number")
            if n <= last or (chain.end is not None and n >= chain.end) or \
                    (chain.lost_from is not None and n >= chain.lost_from):
                raise InvalidEncoding("SessionRecord: skipped keys out of order or range")
            chain.keys[n] = (r.fixed(32, "message key"), r.u64("stored at"))
            last = n
        if chain.lost_from is not None and chain.floor > chain.lost_from:
            raise InvalidEncoding("SessionRecord: floor above the given-up tail")
        window.chains.append(chain)
        window.stored += len(chain.keys)
    _check_window(state, window, limits)
    for _ in range(r.count("forgotten count", 2 * limits.max_receiving_chains)):
        window.forgotten.append((r.fixed(32, "forgotten id"), _reason(r, allow_none=False)))
    return state


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
