"""PostgreSQL stores: :class:`PostgresStore` (psycopg 3, synchronous) and
:class:`AsyncPostgresStore` (psycopg 3, asyncio), for a fleet of worker
processes on any number of machines sharing one database.

Theory of operation (docs/fleet.md argues each point at length):

* **Rows.**  The tables and the row format are SQLiteStore's: every value
  is followed by the same 16-byte SHA-256 check over its table, key and
  value (``signalish._stores.rows._row_check``), so a row that was damaged or
  moved to another key reads as :class:`~signalish.errors.CorruptState`,
  and rows can be copied between the two stores byte for byte.
* **Transactions.**  ``BEGIN ISOLATION LEVEL READ COMMITTED`` ...
  ``COMMIT``, with nested blocks as savepoints; the connection is in
  autocommit mode between transactions, so reads outside a transaction
  see the latest commit and writes outside one are refused.
* **Locks.**  Inside a transaction, the first statement that touches an
  address's session rows, the prekey ring or a (sender, distribution id)
  sender-key record first takes a transaction-level advisory lock on a
  64-bit hash of (schema, what, key), in a statement of its own: under
  READ COMMITTED every later statement then reads what the previous
  holder of the lock committed, and nobody else can change those rows
  until this transaction ends.  Trusted identities are not locked: a
  write is conditional on the row still holding what this transaction
  read, and raises :class:`~signalish.errors.StoreBusy` otherwise.
  Lock waits, deadlocks and serialization failures are StoreBusy.
* **Generation.**  A fresh number for every transaction: the store keeps
  no store-wide counter (it would be one row every commit in the fleet
  writes), so a :class:`~signalish.SessionManager` re-reads its records in
  every call.  Inside a transaction, rows of a locked address or of the
  locked ring are read once and kept until it ends, which no other
  writer can invalidate.

The SQL, the lock keys, the row checks and the transaction bookkeeping
live once, in :class:`_Core`, as generators of queries ("sans-IO"); the
two store classes only carry the queries to psycopg and back.

The package: :mod:`.base` (migrations, query types, checks), :mod:`.core`
(the sans-IO core), :mod:`.sync` and :mod:`.async_store` (the two stores).
"""

from .async_store import AsyncPostgresStore
from .base import MIGRATIONS
from .sync import PostgresStore

__all__ = ["PostgresStore", "AsyncPostgresStore", "MIGRATIONS"]
