"""Wire formats: how a profile writes what the ratchet produces as bytes,
and reads it back.

The ratchet (``_ratchet``) deals in headers and keys only.  A wire format
turns a :class:`~signalish._ratchet.Sending` into a message, parses received
bytes into objects the ratchet can work with (the
:class:`~signalish._ratchet.Received` protocol), wraps a first message with
the X3DH/PQXDH header, and says what each side's associated data is.  Each
profile names its format (``Profile.wire``); ``_wires.wire_format`` finds
it.  Implementations: ``_message`` (native) and ``_wire_v3`` (libsignal
protocol version 3).
"""

from __future__ import annotations

from typing import Protocol

from ._initial import InitialHeader
from ._ratchet import Received, Sending

__all__ = ["WireFormat", "InitialMessage"]


class InitialMessage:
    """A parsed first message (PreKeyMessage, PreKeySignalMessage): the
    X3DH/PQXDH header, the ratchet message it carries and, where the format
    has one, the sender's registration id."""

    __slots__ = ("header", "inner", "registration_id")

    def __init__(self, header: InitialHeader, inner: Received,
                 registration_id: int | None = None) -> None:
        self.header = header
        self.inner = inner
        self.registration_id = registration_id


class WireFormat(Protocol):
    """One profile's message format."""

    #: The name a :class:`~signalish.Profile` uses for it.
    name: str
    #: Whether messages can carry encrypted headers (Double Ratchet section 4).
    header_encryption: bool

    def parse(self, data: bytes, max_plaintext: int) -> Received | InitialMessage:
        """Parse a message strictly; raises a :class:`~signalish.errors.DecodeError`."""

    def seal(self, sending: Sending, plaintext: bytes, ad: bytes) -> bytes:
        """ENCRYPT and frame one message (section 3.4's CONCAT included)."""

    def initial_message(self, header: InitialHeader, registration_id: int,
                        message: bytes) -> bytes:
        """Wrap ``message`` with the initial header (X3DH section 3.3)."""

    def message_type(self, data: bytes) -> int:
        """The type code an envelope should carry for ``data``."""

    def associated_data(self, session_ad: bytes, local: bytes, remote: bytes,
                        sending: bool) -> bytes:
        """The associated data a message is bound to, from the session's AD
        (X3DH section 3.3) and both identity keys (Encode()d)."""
