"""PostgreSQL stores for a fleet of workers: :class:`PostgresStore`
(psycopg 3, synchronous) and :class:`AsyncPostgresStore` (psycopg's
``AsyncConnection``, for :class:`~signalish.AsyncSessionManager`).

Install the extra: ``pip install 'signalish[postgres]'``; psycopg is
imported only when a store is made.  Any number of processes on any number
of machines may share one database: each call locks the addresses it
touches (advisory locks, per address, for the transaction), so nothing is
lost and no message key is used twice.  Locking, transactions, sizing and
failure modes: :doc:`fleet`.
"""

from ._postgres import MIGRATIONS, AsyncPostgresStore, PostgresStore

__all__ = ["PostgresStore", "AsyncPostgresStore", "MIGRATIONS"]
