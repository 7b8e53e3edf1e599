"""Sender keys: group messages encrypted once for every member.

Theory of operation.  A member who sends to a group has one sender key per
distribution id (a UUID that names the audience).  A sender key is a chain
id (a random number in 0..2**31-1 that names it), a chain key with its
iteration, and a signing key pair.  The sender hands the chain key, the
iteration and the public signing key to each member in a
SenderKeyDistributionMessage (SKDM), inside their 1:1 sessions, which
authenticate it.  Each group message then steps the chain as the Double
Ratchet's symmetric chain steps (KDF_CK, Double Ratchet section 5.2), is
encrypted once under that step's message key, and is signed: every member
holds the chain key, so only the signature says who wrote the message.

A :class:`SenderKeyRecord` holds what one party knows of one (sender,
distribution id): up to ``max_states`` states, newest first.  A state is a
chain id, the chain key and the next iteration, the public signing key (and
the private one, for our own sender key), the message keys of skipped
iterations (at most ``max_message_keys``; the lowest go first) and a floor:
every iteration below it is gone.

The rules follow libsignal-client 0.103.0, observed from outside
(docs/sender_keys.md):

* an SKDM whose chain id and signing key match a state moves that state to
  the front and changes nothing else;
* an SKDM with a known chain id and another signing key replaces that
  state, at the front;
* any other SKDM adds a state at the front; past ``max_states`` the oldest
  state is dropped;
* a message more than ``max_forward_jump`` iterations past the state's next
  one is refused.

Decrypt checks, in this order: the message parses (its version, then every
field); the record's distribution id is the message's; a state has its chain
id (else :class:`NoSession`); the signature (else
:class:`AuthenticationError`); the iteration (:class:`DuplicateMessage`,
:class:`MessageKeyEvicted` below the floor, :class:`TooFarAhead`); the
decryption itself (:class:`AuthenticationError`).  The record changes only
after all of them passed, and a used message key is deleted at once.

Two wire formats, chosen by the profile: libsignal's (``0x33`` and a
protobuf, AES-256-CBC, XEdDSA in libsignal's form) for the libsignal
profiles, and signalish's own (tags 0x90 and 0x91, AES-256-GCM, XEdDSA in
the spec's form) for NATIVE.  Signing keys are Ed25519 seeds whose Edwards
sign bit is 0, as identity keys are, so one signature verifies in both forms.

The package: :mod:`.messages` (the two wire formats and their constants),
:mod:`.record` (records and their rules), :mod:`.cipher` (the cipher over a
store).
"""

from .cipher import GroupCipher, RecordStore
from .messages import (
    TAG_DISTRIBUTION_MESSAGE,
    TAG_SENDER_KEY_MESSAGE,
    TAG_SENDER_KEY_RECORD,
    SenderKeyDistributionMessage,
    SenderKeyLimits,
    SenderKeyMessage,
)
from .record import SenderKeyRecord, SenderKeyState

__all__ = [
    "SenderKeyLimits",
    "SenderKeyDistributionMessage",
    "SenderKeyMessage",
    "SenderKeyState",
    "SenderKeyRecord",
    "RecordStore",
    "GroupCipher",
    "TAG_DISTRIBUTION_MESSAGE",
    "TAG_SENDER_KEY_MESSAGE",
    "TAG_SENDER_KEY_RECORD",
]
