"""What the SQL stores (SQLite and PostgreSQL) share: the check every row
carries, the keys it binds a row to, and the upper bound of a prefix
range.
"""

from __future__ import annotations

import hashlib

__all__: list[str] = []


_ROW_CHECK = 16


def _row_check(table: str, key: str, value: bytes) -> bytes:
    return hashlib.sha256(b"signalish row\x00" + table.encode() + b"\x00" + key.encode()
                          + b"\x00" + value).digest()[:_ROW_CHECK]


def _sender_key_key(sender: str, distribution: bytes) -> str:
    """What a sender-key row's check binds it to."""
    return f"{sender}\x00{distribution.hex()}"


def _session_key(address: str, part: bytes) -> str:
    """What a session row's check binds it to: its address and its part."""
    return f"{address}\x00{bytes(part).hex()}"


def _prefix_bound(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (in
    code point order), or None if there is none (no upper bound)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None
