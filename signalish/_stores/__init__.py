"""Storage interfaces and two implementations: in memory and SQLite.

Stores hold bytes; they never parse them.  :class:`SessionManager` runs each
operation inside :meth:`Store.transaction`: it reads what it needs, works,
writes the new state, and the transaction commits all writes at once or
none.  A decrypt therefore either returns the plaintext *and* has its new
session state committed, or fails and leaves the stored state as it was:
a crash in between loses no message and never reuses a message key.

The interfaces are in :mod:`.protocols`, :class:`MemoryStore` in
:mod:`.memory`, :class:`SQLiteStore` in :mod:`.sqlite`, and what the SQL
stores (this one and PostgreSQL's) share in :mod:`.rows`.
"""

from .memory import MemoryStore
from .protocols import (
    IDENTITY_NAME,
    RESERVED_PREFIX,
    IdentityStore,
    LocalStore,
    PreKeyStore,
    SenderKeyStore,
    SessionStore,
    Store,
    load_identity_key_pair,
    save_identity_key_pair,
    save_reserved_local,
)
from .sqlite import SQLiteStore

__all__ = ["IdentityStore", "PreKeyStore", "SessionStore", "Store", "LocalStore",
           "SenderKeyStore", "MemoryStore",
           "SQLiteStore", "RESERVED_PREFIX", "IDENTITY_NAME", "load_identity_key_pair",
           "save_identity_key_pair", "save_reserved_local"]
