"""Builders for two parties talking through SessionManager."""

from __future__ import annotations

from dataclasses import dataclass

from helpers import snapshot
from signalish import (
    NATIVE,
    Profile,
    DeterministicRandom,
    IdentityKeyPair,
    MemoryStore,
    PreKeyBundle,
    SessionManager,
    SessionOptions,
)


@dataclass
class Party:
    name: str
    identity: IdentityKeyPair
    store: MemoryStore
    manager: SessionManager
    rng: DeterministicRandom

    def bundle(self) -> PreKeyBundle:
        with self.manager.prekeys(now=0) as ring:
            return ring.issue_bundle()

    def snapshot(self) -> dict[str, object]:
        """Every row and identity the store holds, copied (see helpers.snapshot)."""
        return snapshot(self.store)


def make_party(name: str, seed: bytes, options: SessionOptions | None = None,
               one_time: int = 5, profile: Profile = NATIVE) -> Party:
    options = options or SessionOptions()
    rng = DeterministicRandom(name.encode() + seed)
    identity = IdentityKeyPair.generate(rng)
    store = MemoryStore()
    manager = SessionManager(identity, store, profile, rng=rng, options=options)
    with manager.prekeys(now=0) as ring:
        if one_time:
            ring.generate_one_time_prekeys(one_time, rng)
            if profile.kem_key_prefix is not None:
                ring.generate_kem_prekeys(one_time, rng, now=0)
    return Party(name, identity, store, manager, rng)


def message_key_id(message: bytes, profile: Profile = NATIVE) -> bytes:
    """What identifies the message key a message was encrypted under, read
    from its bytes: the sending ratchet key and the counter N (one chain
    position, so one key), or with header encryption the header nonce, which
    is derived from the message key itself.  Two messages with the same id
    reused a key."""
    from signalish._message import EncryptedFrame, PreKeyFrame, parse
    from signalish._wire_v3 import V3PreKeyFrame, parse_v3

    limit = 1 << 30
    if profile.wire == "native":
        frame = parse(message, limit)
    else:
        frame = parse_v3(message, limit, 4 if profile.wire == "libsignal_v4" else 3)
    inner = frame.inner if isinstance(frame, (PreKeyFrame, V3PreKeyFrame)) else frame
    if isinstance(inner, EncryptedFrame):
        return b"nonce" + inner.nonce
    return inner.ratchet_key + inner.n.to_bytes(4, "big")
