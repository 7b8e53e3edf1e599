""":class:`PostgresStore`: the synchronous PostgreSQL store (psycopg 3).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .._errors import StoreError
from .._keys import IdentityKey
from .base import T, _check_process, _connect_timeout, _psycopg, _Result, _Steps
from .core import _Core

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore"]


class PostgresStore:
    """A :class:`~signalish.Store` (with :class:`~signalish.LocalStore` and
    :class:`~signalish.groups.SenderKeyStore`) in a PostgreSQL database,
    shared by any number of processes on any number of machines.

    ``conninfo``: a libpq connection string or URI.  ``schema``: where the
    tables live (created, or migrated to this code's version, on connect;
    a newer version is refused with :class:`~signalish.StoreError`).
    ``lock_timeout``: seconds a statement waits for a lock before the
    transaction fails with :class:`~signalish.errors.StoreBusy` (``0``: no
    wait).  ``idle_timeout``: seconds an open transaction may sit idle
    before the server ends the session and releases its locks (None: never),
    so that a worker that hangs cannot hold an address forever.
    ``connect_timeout``: seconds to wait for the server at connect.

    Writes happen only inside :meth:`transaction`; nested blocks are
    savepoints and one ``COMMIT`` ends the outermost.  Inside a transaction
    the rows of an address, the prekey ring and each sender-key record are
    locked from first use to the end (see docs/fleet.md for exactly what
    that guarantees).  :attr:`connection` is the psycopg connection, for the
    application's own statements inside the same transaction.

    Errors: a lock wait past ``lock_timeout``, a deadlock or a serialization
    failure is :class:`~signalish.errors.StoreBusy`; an unreachable server
    or a lost connection is :class:`~signalish.StoreError` (the next call
    connects again); a row that fails its check is
    :class:`~signalish.errors.CorruptState`.  In every case nothing of the
    transaction was committed (but see :meth:`transaction` on a connection
    lost during ``COMMIT``), so the call can be retried.  Messages never
    contain stored data.

    ``generation`` is new for every transaction (see docs/fleet.md), so a
    :class:`~signalish.SessionManager` on this store reads its records from
    the database in every call.  One connection per store, usable from any
    thread: transactions from several threads run one at a time.  Open
    stores after ``fork()``, never before.
    """

    def __init__(self, conninfo: str, *, lock_timeout: float = 5.0, schema: str = "signalish",
                 idle_timeout: float | None = 60.0, connect_timeout: float = 10.0) -> None:
        self._core = _Core("PostgresStore", schema, lock_timeout, idle_timeout)
        self._conninfo, self._connect_timeout = conninfo, _connect_timeout(connect_timeout)
        self._pg = _psycopg()
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._cursor: psycopg.Cursor[Any] | None = None
        self._pid: int | None = None  # the process that connected
        self._connected()

    # --- the connection -----------------------------------------------------------

    def _connected(self) -> psycopg.Cursor[Any]:
        """The cursor, connecting first if there is no live connection
        (after a lost one, the first call outside a transaction connects)."""
        _check_process(self._pid, "PostgresStore")
        if self._cursor is not None and self._conn is not None and not self._conn.closed:
            return self._cursor
        self._drop()
        try:
            conn = self._pg.Connection.connect(self._conninfo, autocommit=True,
                                              connect_timeout=self._connect_timeout)
        except self._pg.Error as error:
            raise self._core.connect_error(error) from error
        self._conn, self._cursor = conn, conn.cursor(binary=True)
        self._pid = os.getpid()
        try:
            self._drive(self._core.open())
        except BaseException:
            self._drop()
            raise
        return self._cursor

    def _drop(self) -> None:
        conn, self._conn, self._cursor = self._conn, None, None
        if conn is not None and self._pid == os.getpid():  # never another process's
            try:
                conn.close()
            except self._pg.Error:
                pass

    def _drive(self, steps: _Steps[T]) -> T:
        _check_process(self._pid, "PostgresStore")
        cursor = self._cursor
        assert cursor is not None and self._conn is not None
        try:
            query = next(steps)
            while True:
                try:
                    cursor.execute(query.sql, query.params)
                    rows = cursor.fetchall() if cursor.description is not None else []
                except self._pg.Error as error:
                    broken = self._conn.broken or self._conn.closed
                    if broken and self._core.tx is None:
                        self._drop()
                    raise self._core.error(query.what, error, broken) from error
                query = steps.send(_Result(rows, cursor.rowcount, cursor.statusmessage))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            steps.close()

    def _run(self, steps: _Steps[T]) -> T:
        with self._lock:
            if self._core.tx is None:
                self._connected()
            return self._drive(steps)

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The psycopg connection (autocommit mode: between transactions
        each statement commits on its own).  Inside :meth:`transaction`, its
        statements join the store's transaction and commit or roll back with
        it; use it only from the thread that opened the transaction, and
        never call its ``commit``, ``rollback`` or ``transaction``."""
        with self._lock:
            if self._core.tx is None:
                self._connected()
            assert self._conn is not None
            return self._conn

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions -------------------------------------------------------------

    @property
    def generation(self) -> int:
        """A new number for every transaction (begun or ended): nothing may
        be cached across transactions (docs/fleet.md)."""
        return self._core.generation

    @property
    def in_transaction(self) -> bool:
        """Whether this thread has a transaction open (a new one would nest
        in it)."""
        return self._core.tx is not None and self._owner == threading.get_ident()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the body as one transaction: on a normal exit its writes
        commit at once; if the body raises, none is kept.  Nested blocks are
        savepoints (an inner block that raises undoes only its own writes,
        and a statement that failed inside it: the outer block may go on);
        nothing commits before the outermost block ends, and never after a
        statement failed outside such an undone block, even if its error
        was caught.

        Raises :class:`~signalish.errors.StoreBusy` when a lock cannot be had
        (nothing written; retry), :class:`~signalish.StoreError` when the
        database cannot be reached or the connection is lost.  A connection
        lost *during* ``COMMIT`` leaves the outcome unknown: the error says
        so; retrying is safe (a decrypt that did commit raises
        :class:`~signalish.errors.DuplicateMessage`, and its ``deliver`` ran
        in that transaction), but nothing the call encrypted may be sent."""
        with self._lock:
            core = self._core
            if core.tx is not None:
                self._drive(core.savepoint())
                try:
                    yield
                except BaseException:
                    try:
                        self._drive(core.rollback_to())
                    except StoreError:
                        pass  # recorded: the outermost block cannot commit
                    raise
                self._drive(core.release())
                return
            self._begin()
            self._owner = threading.get_ident()
            try:
                yield
                self._drive(core.commit())
            except BaseException:
                self._rollback()
                raise
            finally:
                self._owner = None
                core.end()

    def _begin(self) -> None:
        self._connected()
        try:
            self._drive(self._core.begin())
        except StoreError:
            if self._conn is not None:
                raise
            # The connection had died while idle (a server restart, say):
            # nothing was done yet, so connect again and begin once more.
            self._connected()
            self._drive(self._core.begin())

    def _rollback(self) -> None:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            self._drop()
            return
        try:
            conn.execute("ROLLBACK")
        except self._pg.Error:
            self._drop()  # the next call connects again

    def lock(self, addresses: Iterable[str] = (), *, prekeys: bool = False,
             sender_keys: Iterable[tuple[str, UUID]] = ()) -> None:
        """Inside a transaction, take now the locks its later calls would
        take one by one: the session rows of each of ``addresses`` (sorted),
        then the prekey ring, then each (sender, distribution id).  Two
        transactions that take every lock they need this way, in this
        order, cannot deadlock (see docs/fleet.md, "Batches")."""
        self._run(self._core.lock(addresses, prekeys, sender_keys))

    # --- the Store protocol -------------------------------------------------------

    def get_identity(self, address: str) -> IdentityKey | None:
        return self._run(self._core.get_identity(address))

    def save_identity(self, address: str, key: IdentityKey) -> None:
        self._run(self._core.save_identity(address, key))

    def identity_addresses(self) -> list[str]:
        return self._run(self._core.identity_addresses())

    def load_prekeys(self, part: bytes = b"") -> bytes | None:
        return self._run(self._core.load_prekeys(part))

    def save_prekeys(self, data: bytes, part: bytes = b"") -> None:
        self._run(self._core.save_prekeys(data, part))

    def delete_prekeys(self, part: bytes) -> None:
        self._run(self._core.delete_prekeys(part))

    def prekey_parts(self) -> list[bytes]:
        return self._run(self._core.prekey_parts())

    def load_session(self, address: str, part: bytes = b"") -> bytes | None:
        return self._run(self._core.load_session(address, part))

    def save_session(self, address: str, data: bytes, part: bytes = b"") -> None:
        self._run(self._core.save_session(address, data, part))

    def delete_session(self, address: str, part: bytes | None = None) -> None:
        self._run(self._core.delete_session(address, part))

    def session_addresses(self) -> list[str]:
        return self._run(self._core.session_addresses())

    def session_addresses_from(self, prefix: str) -> list[str]:
        """The addresses with a record that start with ``prefix``, sorted
        (the server filters them)."""
        return self._run(self._core.session_addresses_from(prefix))

    def load_local(self, name: str) -> bytes | None:
        """Application data kept beside the protocol state
        (:class:`~signalish.LocalStore`), saved in the same transactions."""
        return self._run(self._core.load_local(name))

    def save_local(self, name: str, data: bytes) -> None:
        self._run(self._core.save_local(name, data, False))

    def _save_reserved(self, name: str, data: bytes) -> None:
        self._run(self._core.save_local(name, data, True))

    def delete_local(self, name: str) -> None:
        self._run(self._core.delete_local(name))

    def local_names(self) -> list[str]:
        return self._run(self._core.local_names())

    def load_sender_key(self, sender: str, distribution_id: UUID) -> bytes | None:
        return self._run(self._core.load_sender_key(sender, distribution_id))

    def save_sender_key(self, sender: str, distribution_id: UUID, record: bytes) -> None:
        self._run(self._core.save_sender_key(sender, distribution_id, record))

    def delete_sender_key(self, sender: str, distribution_id: UUID) -> None:
        self._run(self._core.delete_sender_key(sender, distribution_id))

    def sender_key_ids(self) -> list[tuple[str, UUID]]:
        return self._run(self._core.sender_key_ids())
