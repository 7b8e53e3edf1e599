"""Safety numbers: two parties compare their identity keys out of band, as
libsignal's fingerprints do (60 displayable digits, and a scannable form
for QR codes).  :class:`SafetyNumber` computes both;
:func:`compare_scannable` checks a scanned one and says how it differs
(:class:`FingerprintMatch`).
"""

from ._fingerprint import FingerprintMatch, SafetyNumber, compare_scannable

__all__ = ["SafetyNumber", "FingerprintMatch", "compare_scannable"]
