"""Message padding: hide a message's length to within a block.

The ratchet's ciphertext is as long as the plaintext (plus a constant), so
without padding a message's length tells an observer what it is ("ok" or a
paragraph).  Signal's applications pad every message's content before
``signalEncrypt`` and strip it after decryption; this module does the same,
with the same scheme, so ``SessionManager`` can do it for any profile
(``SessionOptions.padding``, off by default):

    padded = content || 0x80 || 0x00 ... 0x00
    len(padded) = block * ceil((len(content) + 2) / block) - 1

The length is one byte short of a multiple of the block (160 in Signal), so
that AES-CBC's PKCS#7 padding, which adds at least one byte, ends exactly on
a block multiple; under the native profile (AES-GCM, no cipher padding) the
ciphertext is the same one byte short, which hides as much.  Facts from
Signal's applications (their ``getPaddedMessageLength`` and its callers:
Signal-Android's PushTransportDetails, Signal-Desktop's message padding),
read for the format only.

Stripping follows Signal's applications too: trailing zero bytes are
dropped back to the last 0x80, which is dropped with them.  A message whose
content does not end that way (a peer that does not pad) is returned as it
is, as Signal's applications return it: the message has authenticated, and
padding hides lengths, it authenticates nothing, so refusing it would only
lose a genuine message (and could not undo the ratchet step it took).
"""

from __future__ import annotations

from typing import Final

from ._errors import InvalidArgument

__all__ = ["pad", "unpad", "padded_length", "SIGNAL_BLOCK"]

#: Signal's block: message lengths are hidden to within 160 bytes.
SIGNAL_BLOCK: Final = 160
_TERMINATOR: Final = 0x80


def padded_length(length: int, block: int) -> int:
    """The length :func:`pad` gives ``length`` bytes of content."""
    if block < 2:
        raise InvalidArgument("a padding block is at least 2 bytes")
    if length < 0:
        raise InvalidArgument("a length is not negative")
    return block * -(-(length + 2) // block) - 1


def pad(content: bytes, block: int = SIGNAL_BLOCK) -> bytes:
    """``content`` || 0x80 || zeros, to one byte short of a multiple of
    ``block``."""
    size = padded_length(len(content), block)
    return bytes(content) + b"\x80" + bytes(size - len(content) - 1)


def unpad(padded: bytes) -> bytes:
    """The content :func:`pad` padded; ``padded`` itself, unchanged, if it
    does not end in 0x80 followed by zeros only."""
    end = len(padded.rstrip(b"\x00")) - 1
    if end < 0 or padded[end] != _TERMINATOR:
        return bytes(padded)
    return bytes(padded[:end])
