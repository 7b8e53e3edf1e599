""":class:`SessionOptions`: the choices a party makes for the sessions it
creates.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import InvalidArgument
from .._window import RatchetLimits
from .formats import MAX_ARCHIVED_LIMIT

__all__ = ["SessionOptions"]


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """Choices a party makes for the sessions it creates.

    ``header_encryption``: encrypt ratchet headers (Double Ratchet section 4)
    in sessions we initiate, and refuse sessions a peer initiates without.
    ``max_archived``: earlier sessions kept per peer for late messages
    (libsignal keeps 40; signalish's default 5 bounds the work a forged
    message can cause, each archived session costing one DH on such a message).
    ``padding``: a block size; :class:`~signalish.SessionManager` then pads
    what it encrypts to one byte short of a multiple of it (0x80, then
    zeros), and strips that from what it decrypts, as Signal's applications
    do with 160 (``signalish._padding``).  0, the default, pads nothing.
    ``pq_ratchet``: run SPQR, the Sparse Post-Quantum Ratchet (the Triple
    Ratchet, ``signalish._spqr``), in new ``libsignal_v4`` sessions, as
    libsignal-client 0.92 and later require (the default).  False makes
    version 4 sessions without it, as libsignal 0.73 to 0.79 speak; sessions
    keep what they were created with.  Other profiles ignore it.
    """

    header_encryption: bool = False
    limits: RatchetLimits = RatchetLimits()
    max_archived: int = 5
    #: Our registration id, sent in libsignal PreKeySignalMessages.
    registration_id: int = 0
    padding: int = 0
    pq_ratchet: bool = True
    #: Our device id (1..127), which the bundles of a prekey ring that
    #: :meth:`~signalish.SessionManager.prekeys` creates carry.
    device_id: int = 1

    def __post_init__(self) -> None:
        if self.padding == 1 or not 0 <= self.padding <= 65536:
            raise InvalidArgument("padding must be 0 (none) or a block of 2..65536 bytes")
        if not 0 <= self.max_archived <= MAX_ARCHIVED_LIMIT:
            raise InvalidArgument(f"max_archived must be 0..{MAX_ARCHIVED_LIMIT}")
        if not 0 <= self.registration_id <= 0xFFFFFFFF:
            raise InvalidArgument("registration_id is 32-bit unsigned")
        if isinstance(self.device_id, bool) or not isinstance(self.device_id, int) \
                or not 1 <= self.device_id <= 127:
            raise InvalidArgument("device_id must be an integer in 1..127")

    @classmethod
    def libsignal(cls, registration_id: int) -> SessionOptions:
        """libsignal's own limits (MAX_FORWARD_JUMPS 25,000; 2,000 keys per
        receiving chain, here 10,000 per session for its 5 chains; 40 archived
        sessions) for use with the ``libsignal_v3`` profile."""
        return cls(limits=RatchetLimits(max_skip=25_000, max_stored_keys=10_000,
                                        max_receiving_chains=5, expire_after_steps=5),
                   max_archived=40, registration_id=registration_id)
