"""The owner's side of the prekey lifecycle (X3DH section 4.1 and 4.6,
PQXDH section 4.5): :mod:`.ring` (the ring of private prekeys and its
lifecycle, described there), :mod:`.codec` (its stored forms: the whole ring
and its store rows) and :mod:`.policy` (upkeep policy, id counters, uploads
and limits).
"""

from .policy import PreKeyIds, Upkeep, UpkeepPolicy, Upload
from .ring import PreKeyRing

__all__ = ["PreKeyRing", "PreKeyIds", "UpkeepPolicy", "Upkeep", "Upload"]
