"""Which wire format each profile names (``Profile.wire``).

The one place that lists the implementations of
:class:`~signalish._wire.WireFormat`: a new format is a new module and one
line here; sessions and the manager look formats up by profile.
"""

from __future__ import annotations

from typing import Final

from ._message import NATIVE_WIRE
from ._profile import Profile
from ._wire import WireFormat
from ._wire_v3 import V3_WIRE
from ._wire_v4 import V4_WIRE

__all__ = ["wire_format"]

_WIRE_FORMATS: Final[dict[str, WireFormat]] = {NATIVE_WIRE.name: NATIVE_WIRE,
                                               V3_WIRE.name: V3_WIRE,
                                               V4_WIRE.name: V4_WIRE}


def wire_format(profile: Profile) -> WireFormat:
    """The wire format ``profile`` names."""
    return _WIRE_FORMATS[profile.wire]
