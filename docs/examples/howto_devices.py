"""How-to: send to every device of a user, and keep the device list current."""

from signalish import (
    DeviceMessages,
    IdentityKeyPair,
    MemoryStore,
    PreKeyBundle,
    ProtocolAddress,
    SessionManager,
    SessionOptions,
    SystemRandom,
    UntrustedIdentity,
)

rng = SystemRandom()
now = 1_700_000_000


def install(identity: IdentityKeyPair, device_id: int, registration_id: int) -> SessionManager:
    """One device of an account: the account's identity, its own store and prekeys."""
    options = SessionOptions(device_id=device_id, registration_id=registration_id)
    manager = SessionManager(identity, MemoryStore(), options=options)
    with manager.prekeys(now=now) as ring:
        ring.generate_one_time_prekeys(5, rng)
        ring.generate_kem_prekeys(5, rng, now=now)
    return manager


# --- the server's side, in a few lines (yours speaks HTTP) -----------------------------
accounts: dict[str, dict[int, SessionManager]] = {}  # user -> device id -> device


def bundle(user: str, device_id: int) -> PreKeyBundle:
    with accounts[user][device_id].prekeys(now=now) as ring:
        return ring.issue_bundle()


def submit(sender: ProtocolAddress, sent: DeviceMessages) -> dict[str, list[int]]:
    """Accept one message per current device of ``sent.user`` (not the sender's own
    device), each for that device's current registration id; else say what is wrong."""
    current = accounts[sent.user]
    expected = set(current) - ({sender.device_id} if sent.user == sender.name else set())
    missing, extra = sorted(expected - set(sent.messages)), sorted(set(sent.messages) - expected)
    if missing or extra:
        return {"missing": missing, "extra": extra}  # HTTP 409 at Signal's server
    stale = [d for d in sent.messages
             if sent.registration_ids.get(d) != current[d].options.registration_id]
    if stale:
        return {"stale": stale}  # HTTP 410
    return {}  # 200: delivered


# --- the client's side: the retry flow --------------------------------------------------
def send(me: ProtocolAddress, manager: SessionManager, to: str, text: bytes) -> None:
    for _ in range(3):
        own = me.device_id if to == me.name else None
        sent = manager.encrypt_to_devices(to, text, exclude=own)
        answer = submit(me, sent)
        if not answer:
            return
        renew = answer.get("missing", []) + answer.get("stale", [])
        manager.update_devices(to, missing={d: bundle(to, d) for d in renew},
                               extra=answer.get("extra", []), stale=answer.get("stale", []))
    raise RuntimeError("the device list did not settle")


alice_identity, bob_identity = IdentityKeyPair.generate(rng), IdentityKeyPair.generate(rng)
accounts["alice"] = {1: install(alice_identity, 1, 11)}
accounts["bob"] = {1: install(bob_identity, 1, 21), 2: install(bob_identity, 2, 22)}
alice = accounts["alice"][1]

send(ProtocolAddress("alice", 1), alice, "bob", b"hi Bob, on both your devices")
assert alice.devices("bob") == [1, 2]

accounts["bob"][3] = install(bob_identity, 3, 23)   # Bob links a tablet
del accounts["bob"][2]                              # and unlinks his laptop
send(ProtocolAddress("alice", 1), alice, "bob", b"one 409 later: phone and tablet")
assert alice.devices("bob") == [1, 3]

accounts["bob"][1] = install(bob_identity, 1, 31)  # Bob reinstalls on his phone
send(ProtocolAddress("alice", 1), alice, "bob", b"one 410 later: the new phone")
assert alice.registration_id(ProtocolAddress("bob", 1)) == 31

# A device the server adds under Bob with another identity key is refused: trust is
# decided per user (one identity key per account), not per device address.
accounts["bob"][9] = install(IdentityKeyPair.generate(rng), 9, 99)
try:
    send(ProtocolAddress("alice", 1), alice, "bob", b"never sent")
except UntrustedIdentity as error:  # nothing changed; ask Alice to compare safety numbers
    print("refused: a new identity key for", error.address)
