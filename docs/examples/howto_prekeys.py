"""How-to: keep the prekeys stocked and fresh, and what the server does.

The store owns the prekeys: change them only through the manager
(``upkeep``, or ``prekeys()`` for anything else), which writes them back in
one transaction and closes the ring object, so a stale copy can never put
used prekeys back.
"""

from signalish import (
    IdentityKeyPair,
    MemoryStore,
    PreKeyBundle,
    SessionManager,
    SystemRandom,
    UpkeepPolicy,
)
from signalish.errors import InvalidArgument, PreKeyExpired

rng = SystemRandom()
DAY = 24 * 3600
now = 1_700_000_000
bob = SessionManager(IdentityKeyPair.generate(rng), MemoryStore())

# On start, and whenever the server says keys run low: one call does what is
# due (top up one-time EC and KEM prekeys, rotate the signed prekey weekly and
# the last-resort KEM prekey monthly) and says what to upload.
policy = UpkeepPolicy(one_time=100, one_time_low=20, grace=2 * DAY)
upload = bob.upkeep(now=now, policy=policy)
assert len(upload.one_time) == 100 and len(upload.kem) == 100
with bob.prekeys(now=now) as ring:
    identity = ring.identity.public
    signed = ring.current_signed_prekey.public()
    last_resort = ring.current_last_resort_kem_prekey
    assert last_resort is not None
    keep_with_the_account = ring.next_ids  # pass to PreKeyRing.create after a reinstall

# The server stores, from an upload: the identity key, the current signed
# prekey with its signature, the current last-resort KEM prekey with its
# signature, and every one-time prekey.  For each bundle it hands out it takes
# (and deletes) one one-time EC prekey and one one-time KEM prekey while it
# has them, else the last-resort KEM prekey (never deleted):
server_one_time, server_kem = list(upload.one_time), list(upload.kem)


def serve() -> PreKeyBundle:
    return PreKeyBundle(identity, signed,
                        server_one_time.pop(0) if server_one_time else None,
                        server_kem.pop(0) if server_kem else last_resort.public())


bundles = [serve() for _ in range(85)]  # 85 peers fetched a bundle
assert bundles[0].one_time_prekey is not None

# The server reports 15 left: below the low mark, so upkeep tops up to 100.
upload = bob.upkeep(now=now + DAY, policy=policy, server_one_time=len(server_one_time),
                    server_kem=len(server_kem))
assert len(upload.one_time) == 85 and upload.one_time[0].key_id == 101  # ids never reused

# A week later the signed prekey is rotated; the old one keeps working for
# the policy's grace (two days here), for initial messages already in flight.
upload = bob.upkeep(now=now + 7 * DAY, policy=policy, server_one_time=100, server_kem=100)
assert upload.signed is not None and not upload.one_time
with bob.prekeys(now=now + 8 * DAY) as ring:
    assert ring.signed_prekey(signed.key_id, now=now + 8 * DAY).key_id == signed.key_id
    try:
        ring.signed_prekey(signed.key_id, now=now + 10 * DAY)
    except PreKeyExpired:
        pass  # past its grace: initial messages naming it are refused

# The ring object is closed once its block has ended.
try:
    ring.generate_one_time_prekeys(1, rng)
except InvalidArgument:
    pass
