"""How-to: rotate the signed prekey and replenish one-time prekeys."""

from signalish import NATIVE, IdentityKeyPair, PreKeyExpired, PreKeyRing, SystemRandom

rng = SystemRandom()
DAY = 24 * 3600
now = 1_700_000_000
ring = PreKeyRing.create(IdentityKeyPair.generate(rng), NATIVE, rng, now=now)
ring.generate_one_time_prekeys(100, rng)
old = ring.current_signed_prekey.key_id

# Weekly: a new signed prekey; the old one keeps working for two days, for
# initial messages already in flight.  Publish the new public half.
new_public = ring.rotate_signed_prekey(rng, now=now + 7 * DAY, grace=2 * DAY)
assert ring.signed_prekey(old, now=now + 8 * DAY).key_id == old
try:
    ring.signed_prekey(old, now=now + 9 * DAY)
except PreKeyExpired:
    pass  # past its grace: initial messages naming it are refused

# Whenever the server reports few one-time prekeys left (or by your own count):
if ring.one_time_prekeys_remaining < 20:
    uploads = ring.generate_one_time_prekeys(100, rng)
    assert all(key.key_id > 100 for key in uploads)  # ids are never reused
assert new_public.key_id == old + 1
