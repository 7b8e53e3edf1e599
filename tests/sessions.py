"""Builders for two parties talking through SessionManager."""

from __future__ import annotations

from dataclasses import dataclass

from signalish import (
    NATIVE,
    Profile,
    DeterministicRandom,
    IdentityKeyPair,
    MemoryStore,
    PreKeyBundle,
    PreKeyRing,
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
        data = self.store.load_prekeys()
        assert data is not None
        ring = PreKeyRing.from_bytes(data, self.identity)
        bundle = ring.issue_bundle()
        with self.store.transaction():
            self.store.save_prekeys(ring.to_bytes())
        return bundle

    def snapshot(self) -> tuple[object, ...]:
        return (dict(self.store._sessions), self.store._prekeys, dict(self.store._identities))


def make_party(name: str, seed: bytes, options: SessionOptions | None = None,
               one_time: int = 5, profile: Profile = NATIVE) -> Party:
    options = options or SessionOptions()
    rng = DeterministicRandom(name.encode() + seed)
    identity = IdentityKeyPair.generate(rng)
    ring = PreKeyRing.create(identity, profile, rng, now=0)
    if one_time:
        ring.generate_one_time_prekeys(one_time, rng)
        if profile.kem_key_prefix is not None:
            ring.generate_kem_prekeys(one_time, rng, now=0)
    store = MemoryStore()
    with store.transaction():
        store.save_prekeys(ring.to_bytes())
    manager = SessionManager(identity, store, profile, rng=rng, options=options)
    return Party(name, identity, store, manager, rng)
