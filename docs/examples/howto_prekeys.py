"""How-to: rotate the signed prekey and replenish one-time prekeys.

The store owns the prekeys: change them only inside ``manager.prekeys()``,
which writes the ring back in one transaction when the block ends and then
closes the ring object, so a stale copy can never put used prekeys back.
"""

from signalish import IdentityKeyPair, MemoryStore, SessionManager, SystemRandom
from signalish.errors import InvalidArgument, PreKeyExpired

rng = SystemRandom()
DAY = 24 * 3600
now = 1_700_000_000
bob = SessionManager(IdentityKeyPair.generate(rng), MemoryStore())
with bob.prekeys(now=now) as ring:
    ring.generate_one_time_prekeys(100, rng)
    old = ring.current_signed_prekey.key_id

# Weekly: a new signed prekey; the old one keeps working for two days, for
# initial messages already in flight.  Publish the new public half.
with bob.prekeys(now=now + 7 * DAY) as ring:
    new_public = ring.rotate_signed_prekey(rng, now=now + 7 * DAY, grace=2 * DAY)
    assert ring.signed_prekey(old, now=now + 8 * DAY).key_id == old
    try:
        ring.signed_prekey(old, now=now + 9 * DAY)
    except PreKeyExpired:
        pass  # past its grace: initial messages naming it are refused

# Whenever the server reports few one-time prekeys left (here: now, for the
# example's sake), make a new batch and upload its public halves:
with bob.prekeys(now=now + 8 * DAY) as ring:
    uploads = ring.generate_one_time_prekeys(100, rng)
    assert all(key.key_id > 100 for key in uploads)  # ids are never reused
assert new_public.key_id == old + 1

# The ring object is closed once its block has ended.
try:
    ring.generate_one_time_prekeys(1, rng)
except InvalidArgument:
    pass
