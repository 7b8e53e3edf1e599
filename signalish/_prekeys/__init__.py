"""The owner's side of the prekey lifecycle (X3DH section 4.1 and 4.6,
PQXDH section 4.5).

A :class:`PreKeyRing` holds one identity's private prekeys:

* signed prekeys: one current, plus retired ones kept until a grace period
  the caller chose has passed, so initial messages that were already in
  flight at rotation still decrypt;
* one-time EC prekeys: each usable exactly once; ids are never reused;
* one-time ML-KEM-1024 prekeys, and last-resort ML-KEM-1024 prekeys that are
  handed out only when no one-time KEM prekey is left and are never consumed.

Ids come from per-kind counters that only grow, so a missing id below the
counter is known to have been used or retired (distinct errors) without
keeping a list of used ids.  Time is always a parameter (``now``, seconds).
Every method validates before it mutates: a call that raises changes nothing.

Replays: an initial message that consumed a one-time prekey cannot be
accepted twice (the key is gone).  One that used none (only the signed
prekey, and at most a last-resort KEM prekey) could be, once the session it
built has left the session record; so the ring remembers the base key of
every such message beside the signed prekey it used, for as long as that
signed prekey lives, and refuses a repeat with
:class:`~signalish.errors.PreKeyReplayed` (as libsignal does for last-resort Kyber
prekeys).

A ring obtained from :meth:`SessionManager.prekeys` is closed when its
``with`` block ends: every changing method then raises
:class:`~signalish.errors.InvalidArgument`, so a stale copy cannot be kept and
saved over the store's.

The package: :mod:`.ring` (the ring and its lifecycle), :mod:`.codec` (its
stored forms, described there) and :mod:`.policy` (upkeep policy, id
counters, uploads and limits).
"""

from .policy import PreKeyIds, Upkeep, UpkeepPolicy, Upload
from .ring import PreKeyRing

__all__ = ["PreKeyRing", "PreKeyIds", "UpkeepPolicy", "Upkeep", "Upload"]
