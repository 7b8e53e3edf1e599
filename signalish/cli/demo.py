"""The demonstration: an offline first contact, and what a server sees."""

from __future__ import annotations

import hashlib
import textwrap

from .._bundle import PreKeyBundle
from .._keys import IdentityKeyPair
from .._prekeys import PreKeyRing
from .._primitives import SystemRandom
from .._profile import Profile
from .._x3dh import InitialHeader, initiate, respond


def _short(data: bytes, n: int = 12) -> str:
    return data[:n].hex() + ("..." if len(data) > n else "")


def _id(key_id: int | None) -> str:
    return "none" if key_id is None else f"#{key_id}"


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 66 - len(title)))


def run(profile: Profile) -> int:
    rng = SystemRandom()
    now = 1_700_000_000

    _section(f"1. Bob sets up ({profile.name} profile) and goes offline")
    bob = IdentityKeyPair.generate(rng)
    ring = PreKeyRing.create(bob, profile, rng, now=now, registration_id=4242)
    ring.generate_one_time_prekeys(10, rng)
    if profile.kem_key_prefix is not None:
        ring.generate_kem_prekeys(5, rng, now=now)
    print(f"Bob's identity key:       {_short(bob.public.public_bytes())}")
    print(f"one-time prekeys stocked: {ring.one_time_prekeys_remaining}")
    print(f"one-time KEM prekeys:     {ring.kem_prekeys_remaining}")

    _section("2. The server hands Bob's bundle to Alice")
    wire_bundle = ring.issue_bundle().to_bytes()
    bundle = PreKeyBundle.from_bytes(wire_bundle)
    print(f"bundle on the wire: {len(wire_bundle)} bytes, all public")
    print(f"  identity key       {_short(bundle.identity_key.public_bytes())}")
    print(f"  signed prekey #{bundle.signed_prekey.key_id:<4} {_short(bundle.signed_prekey.public_key.raw)}")
    if bundle.one_time_prekey is not None:
        print(f"  one-time prekey #{bundle.one_time_prekey.key_id:<2} "
              f"{_short(bundle.one_time_prekey.public_key.raw)}")
    if bundle.kem_prekey is not None:
        print(f"  ML-KEM-1024 prekey #{bundle.kem_prekey.key_id} "
              f"({'last resort' if bundle.kem_prekey.last_resort else 'one-time'}, "
              f"{len(bundle.kem_prekey.public_key.raw)} bytes)")

    _section("3. Alice verifies the bundle and agrees on a secret")
    alice = IdentityKeyPair.generate(rng)
    sent = initiate(alice, bundle, profile, rng=rng)
    print(f"every signature verified; protocol: {sent.protocol}")
    wire_header = sent.header.to_bytes()

    _section("4. What the server relays to Bob (and could log)")
    header = InitialHeader.from_bytes(wire_header)
    print(textwrap.dedent(f"""\
        initial-message header: {len(wire_header)} bytes
          Alice's identity key   {_short(header.identity_key.public_bytes())}
          Alice's ephemeral key  {_short(header.base_key.raw)}
          prekey ids used        signed #{header.signed_prekey_id}, one-time {_id(header.one_time_prekey_id)}, KEM {_id(header.kem_prekey_id)}
          KEM ciphertext         {len(header.kem_ciphertext or b'')} bytes
        The server sees only public keys, ids and the ciphertext: no secret."""))

    _section("5. Bob comes online and answers")
    received = respond(ring, header, now=now + 60)
    ring.consume(header, now=now + 60)
    same = sent.shared_secret == received.shared_secret
    same_ad = sent.associated_data == received.associated_data
    print(f"shared secret equal on both sides:     {'yes' if same else 'NO'}")
    print(f"associated data equal on both sides:   {'yes' if same_ad else 'NO'}")
    print("fingerprint of the secret (SHA-256, 8 bytes): "
          + hashlib.sha256(sent.shared_secret).hexdigest()[:16])
    print(f"Bob's one-time prekeys left: {ring.one_time_prekeys_remaining} (replenish when low)")
    return 0 if same and same_ad else 1
