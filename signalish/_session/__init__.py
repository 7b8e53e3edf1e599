"""Sessions: a Double Ratchet plus what the X3DH/PQXDH handshake decided.

Theory of operation.  A :class:`Session` is one ratchet with one peer.  The
initiator's session carries the :class:`~signalish._initial.InitialHeader` and wraps
every message in a PreKeyMessage until the first message from the peer
arrives in that session (as libsignal does), so that the responder can
build the session from whichever of those messages it receives first.

A :class:`SessionRecord` holds all sessions with one peer: the current one,
which encrypts, and up to ``max_archived`` earlier ones, which decryption
also tries.  Which session is current follows three rules:

1. a PreKeyMessage (for a new or an archived session) makes its session
   current, unless the current session is one *we* initiated and the peer
   has not answered yet: then both parties started at once (simultaneous
   initiation) and the session whose initiator base key is smaller wins on
   both sides, since both compare the same two keys;
2. an ordinary message that decrypts in an archived session promotes it:
   the peer is using it, so we follow;
3. nothing else changes the order.

Rule 1 makes simultaneous initiation converge at once; rule 2 makes any
other disagreement (a peer that reset, crossing messages) converge as soon
as one message travels each way without crossing.

The package is split by concern: :mod:`.session` (one session), :mod:`.record`
(the record and its rules), :mod:`.options` and :mod:`.formats` (the stored
formats' versions).
"""

from .._x3dh import BundlePolicy
from .formats import RECORD_VERSION
from .options import SessionOptions
from .record import SessionRecord
from .session import Session

__all__ = ["Session", "SessionRecord", "SessionOptions", "BundlePolicy", "RECORD_VERSION"]
