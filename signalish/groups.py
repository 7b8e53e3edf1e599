"""Group messaging with sender keys (Signal's SenderKey protocol).

Each member of a group creates a sender key for the group's distribution
id and sends its :class:`SenderKeyDistributionMessage` to every other
member through their 1:1 sessions; from then on one
:class:`SenderKeyMessage` per group message reaches everyone.
:class:`GroupCipher` does the bookkeeping over a :class:`SenderKeyStore`
(both built-in stores are one).  Under the ``libsignal_v3`` and
``libsignal_v4`` profiles every message is byte-compatible with
libsignal's; the native profile has formats of its own.  Formats, limits
and behaviour: :doc:`sender_keys`.

After a rollback or a restore, :meth:`SessionManager.mark_restored
<signalish.SessionManager.mark_restored>` deletes our own sender keys from
the manager's store; :func:`forget_own_sender_keys` does the same for a
store of sender keys that the manager does not see.
"""

from ._sender_keys import (
    GroupCipher,
    SenderKeyDistributionMessage,
    SenderKeyLimits,
    SenderKeyMessage,
    SenderKeyRecord,
    SenderKeyState,
)
from ._storage import forget_own_sender_keys
from ._stores import SenderKeyStore

__all__ = [
    "GroupCipher",
    "SenderKeyStore",
    "SenderKeyLimits",
    "SenderKeyDistributionMessage",
    "SenderKeyMessage",
    "SenderKeyRecord",
    "SenderKeyState",
    "forget_own_sender_keys",
]
