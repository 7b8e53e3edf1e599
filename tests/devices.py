"""A Signal-style server in miniature, for the multi-device tests and the
how-to: accounts with devices, prekey bundles, and the three answers a
server gives a sender whose device list is out of date (409 with missing and
extra devices, 410 with stale ones).  signalish stays sans-IO; this is the
other side of the wire, written the way a test needs it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

from signalish import (
    DeterministicRandom,
    DeviceMessages,
    IdentityKeyPair,
    MemoryStore,
    PreKeyBundle,
    ProtocolAddress,
    SessionManager,
    SessionOptions,
)


@dataclass
class Device:
    """One installation: the account's identity, its own store, prekeys,
    registration id and sessions."""

    user: str
    device_id: int
    manager: SessionManager

    @property
    def address(self) -> ProtocolAddress:
        return ProtocolAddress(self.user, self.device_id)

    @property
    def registration_id(self) -> int:
        return self.manager.options.registration_id


def new_device(user: str, device_id: int, identity: IdentityKeyPair, registration_id: int,
               options: SessionOptions = SessionOptions()) -> Device:
    rng = DeterministicRandom(b"%s.%d.%d" % (user.encode(), device_id, registration_id))
    options = replace(options, registration_id=registration_id, device_id=device_id)
    manager = SessionManager(identity, MemoryStore(), rng=rng, options=options)
    with manager.prekeys(now=0) as ring:
        ring.generate_one_time_prekeys(10, rng)
        ring.generate_kem_prekeys(5, rng, now=0)
    return Device(user, device_id, manager)


@dataclass
class Answer:
    status: int  # 200, 409 or 410
    missing: list[int] = field(default_factory=list)
    extra: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)


class Server:
    """Accounts, their devices and each device's inbox.  A submission to a
    user must carry one message per current device (less the sender's own
    device when it writes to its own account), each for the registration
    id that device has now."""

    def __init__(self) -> None:
        self.devices: dict[str, dict[int, Device]] = defaultdict(dict)
        self.inbox: dict[tuple[str, int], list[tuple[ProtocolAddress, bytes]]] = defaultdict(list)
        self.submissions = 0

    def register(self, device: Device) -> None:
        self.devices[device.user][device.device_id] = device
        self.inbox[(device.user, device.device_id)] = []

    def remove(self, user: str, device_id: int) -> None:
        del self.devices[user][device_id]

    def bundle(self, user: str, device_id: int) -> PreKeyBundle:
        with self.devices[user][device_id].manager.prekeys(now=0) as ring:
            return ring.issue_bundle()

    def submit(self, sender: ProtocolAddress, sent: DeviceMessages) -> Answer:
        self.submissions += 1
        current = self.devices[sent.user]
        expected = set(current) - ({sender.device_id} if sent.user == sender.name else set())
        missing = sorted(expected - set(sent.messages))
        extra = sorted(set(sent.messages) - expected)
        if missing or extra:
            return Answer(409, missing=missing, extra=extra)
        stale = sorted(d for d in sent.messages
                       if sent.registration_ids.get(d) != current[d].registration_id)
        if stale:
            return Answer(410, stale=stale)
        for device_id, message in sent.messages.items():
            self.inbox[(sent.user, device_id)].append((sender, message))
        return Answer(200)


def send(server: Server, device: Device, to_user: str, plaintext: bytes,
         attempts: int = 4) -> int:
    """The documented retry flow: encrypt to the devices we know, and on a
    409 or 410 bring the device list up to date and try again.  Returns the
    number of attempts it took."""
    manager = device.manager
    for attempt in range(1, attempts + 1):
        own = device.device_id if to_user == device.user else None
        sent = manager.encrypt_to_devices(to_user, plaintext, exclude=own)
        answer = server.submit(device.address, sent)
        if answer.status == 200:
            return attempt
        renew = answer.missing + answer.stale
        manager.update_devices(to_user, missing={d: server.bundle(to_user, d) for d in renew},
                               extra=answer.extra, stale=answer.stale)
    raise AssertionError(f"{device.address} could not reach {to_user} in {attempts} attempts")


def read(server: Server, device: Device, *, now: int = 1) -> list[tuple[ProtocolAddress, bytes]]:
    """Everything in the device's inbox, decrypted, in order."""
    queued = server.inbox[(device.user, device.device_id)]
    got = [(sender, device.manager.decrypt(sender, message, now=now))
           for sender, message in queued]
    queued.clear()
    return got
