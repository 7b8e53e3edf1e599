"""Addresses with a device id, and what a message to every device of a user
gives back.

A :class:`ProtocolAddress` names one device of one user, as libsignal's
ProtocolAddress does: the user's name (an account identifier the
application chooses: a service id, a phone number, a user name) and a
device id.  :class:`~signalish.SessionManager` keeps a session per device
(under the string ``"name.device"``) and one trusted identity per user
(under ``name``), since every device of an account shares the account's
identity key.  Plain address strings keep working as before: a session
and an identity per string.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ._errors import InvalidArgument, SignalishError

__all__ = ["ProtocolAddress", "Address", "DeviceMessages", "MAX_DEVICE_ID", "address_keys"]

#: The largest device id (Signal's: seven bits, as sealed sender v2 and the
#: addresses field carry it).
MAX_DEVICE_ID = 127


@dataclass(frozen=True, slots=True, order=True)
class ProtocolAddress:
    """One device of one user: ``name`` (non-empty, no NUL) and
    ``device_id`` (1..127).  ``str()`` is ``"name.device"``, the key its
    sessions are stored under."""

    name: str
    device_id: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "\x00" in self.name:
            raise InvalidArgument("a ProtocolAddress name is a non-empty str without NUL")
        if isinstance(self.device_id, bool) or not isinstance(self.device_id, int) \
                or not 1 <= self.device_id <= MAX_DEVICE_ID:
            raise InvalidArgument(f"a device id is an integer in 1..{MAX_DEVICE_ID}")

    def __str__(self) -> str:
        return f"{self.name}.{self.device_id}"


#: What :class:`~signalish.SessionManager` takes as an address.
Address = str | ProtocolAddress


def address_keys(address: Address) -> tuple[str, str]:
    """(the key its sessions are stored under, the key its trusted identity
    is stored under): ``("name.device", "name")`` for a ProtocolAddress,
    the string twice for a plain string."""
    if isinstance(address, ProtocolAddress):
        return f"{address.name}.{address.device_id}", address.name
    if isinstance(address, str):
        return address, address
    raise InvalidArgument("an address is a str or a ProtocolAddress")


@dataclass(frozen=True, slots=True)
class DeviceMessages:
    """One plaintext encrypted to several devices of one user
    (:meth:`~signalish.SessionManager.encrypt_to_devices`): ``messages``
    maps each device id to its message, ``failed`` each device that got
    none to the error its session raised (no session, an untrusted identity,
    a session that cannot send); nothing changed for those.
    ``registration_ids`` gives, where known, each messaged device's
    registration id."""

    user: str
    messages: Mapping[int, bytes] = field(default_factory=dict)
    failed: Mapping[int, SignalishError] = field(default_factory=dict)
    #: The registration id of each device that got a message, where known
    #: (:meth:`~signalish.SessionManager.registration_id`): what a server
    #: compares to spot a device that registered again.
    registration_ids: Mapping[int, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Whether every device asked for got a message."""
        return not self.failed
