"""How-to: link a laptop to an account by QR code, then talk from both devices."""

import uuid

from signalish import (
    IdentityKeyPair,
    MemoryStore,
    ProtocolAddress,
    SessionManager,
    SessionOptions,
    SystemRandom,
)
from signalish.linking import LinkRequest, ProvisioningData, parse_link_qr, seal_provisioning

rng = SystemRandom()
now = 1_700_000_000
aci = uuid.uuid4()

# The phone: the account's first device, holding the account's identity key pair.
account = IdentityKeyPair.generate(rng)
phone = SessionManager(account, MemoryStore(), options=SessionOptions(device_id=1,
                                                                      registration_id=1))

# 1. The laptop shows a QR code.
request = LinkRequest.create(rng)
qr = request.qr_text()           # render this with any QR library
assert qr.startswith("signalish://linkdevice?")

# 2. The phone scans it and seals what the laptop needs; the server relays the envelope
#    to the mailbox named by the QR code's provisioning id, and learns nothing else.
target = parse_link_qr(qr)
data = ProvisioningData(identity=account, aci=aci, provisioning_code="one-time-code-7",
                        device_id=2)
envelope = seal_provisioning(target, data, rng)

# 3. The laptop opens it (once), and becomes device 2 of the account, with its own
#    store, registration id and prekeys, under the account's identity key.
got = request.open(envelope)
assert got.aci == aci and got.identity.public == account.public
laptop = SessionManager(got.identity, MemoryStore(),
                        options=SessionOptions(device_id=got.device_id or 2, registration_id=2))
with laptop.prekeys(now=now) as ring:
    ring.generate_one_time_prekeys(5, rng)
    ring.generate_kem_prekeys(5, rng, now=now)
    laptop_bundle = ring.issue_bundle()   # upload, with the provisioning code

# 4. The phone now sends to its own new device too (and every peer sees one more device
#    of this account, with the same identity key: same safety number, nothing to verify).
me = str(aci)
phone.update_devices(me, missing={2: laptop_bundle})
sent = phone.encrypt_to_devices(me, b"hello from the phone", exclude=1)
assert laptop.decrypt(ProtocolAddress(me, 1), sent.messages[2], now=now) == \
    b"hello from the phone"
