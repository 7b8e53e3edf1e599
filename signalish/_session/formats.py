"""The format versions of stored sessions: whole records, and records kept
as store rows (a head row, a row per session, counters and key rows).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Final

from .._encoding import Tag


MAX_ARCHIVED_LIMIT: Final = 64
#: Format version written.  Version 2 added the receive-only flag (session
#: flags bit 2) and given-up chain tails; version 1 is still read.
RECORD_VERSION: Final = 2
#: The head row of a record kept as store rows (SessionRecord.rows).
ROWS_VERSION: Final = 3
#: The same two formats with a flags byte after "max archived", written only
#: when a flag is set (bit 0: no current session, every session is archived),
#: so that a record with a current session keeps its earlier bytes.
RECORD_FLAGS_VERSION: Final = 4
ROWS_FLAGS_VERSION: Final = 5
_NO_CURRENT: Final = 0x01
#: A session's base key (the head row lists them in order).
_BASE_KEY: Final = attrgetter("base_key")
#: The first two bytes' second byte of a head row (as opposed to a whole
#: record stored as a head).
HEAD_VERSIONS: Final = frozenset({bytes((ROWS_VERSION,)), bytes((ROWS_FLAGS_VERSION,))})
SESSION_ROW_VERSION: Final = 1
_ROW_TAG: Final = bytes((Tag.SESSION_ROW, SESSION_ROW_VERSION))
#: A session row with SPQR state (session flags bit 3, the state after the
#: ratchet state); written only for such a session.
SESSION_ROW_PQ_VERSION: Final = 2
_ROW_PQ_TAG: Final = bytes((Tag.SESSION_ROW, SESSION_ROW_PQ_VERSION))
#: A session row without SPQR in the split layout: what a message in a
#: chain changes (CKs, CKr, Ns, Nr) is in its counters row (tag 0x53).
#: Written for every session without SPQR; version 1 is still read.
SESSION_ROW_SPLIT_VERSION: Final = 3
_ROW_SPLIT_TAG: Final = bytes((Tag.SESSION_ROW, SESSION_ROW_SPLIT_VERSION))
#: The whole-record format with a flags byte always present and sessions that
#: may hold SPQR state; written only when one does.
RECORD_PQ_VERSION: Final = 6
#: Session layouts, as Session._read takes them: 1 and 2 are the record
#: versions' own, 3 adds SPQR (flag bit 3).
_SESSION_LAYOUT_PQ: Final = 3
