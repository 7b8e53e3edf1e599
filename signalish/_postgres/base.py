"""What the PostgreSQL stores' parts share: the schema's migrations, the
query and result types the sans-IO core speaks, the SQLSTATE classes, the
checks of names and durations, and one transaction's bookkeeping.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, TypeVar

from .._errors import InvalidArgument, StoreError

__all__ = ["MIGRATIONS"]



T = TypeVar("T")

#: The schema's versioned migrations: step ``i`` (a tuple of statements,
#: ``{s}`` standing for the quoted schema name) takes a schema from version
#: ``i`` to ``i + 1``; the code's schema version is ``len(MIGRATIONS)``.  A
#: new version appends a step and never edits an old one.
MIGRATIONS: Final[list[tuple[str, ...]]] = [
    (  # version 1: SQLiteStore's tables
        'CREATE TABLE IF NOT EXISTS {s}.identities (address text COLLATE "C" PRIMARY KEY, '
        "key bytea NOT NULL)",
        "CREATE TABLE IF NOT EXISTS {s}.prekey_rows (part bytea PRIMARY KEY, "
        "data bytea NOT NULL)",
        # Rewritten in place by every message: leave room for HOT updates.
        'CREATE TABLE IF NOT EXISTS {s}.session_rows (address text COLLATE "C" NOT NULL, '
        "part bytea NOT NULL, data bytea NOT NULL, PRIMARY KEY (address, part)) "
        "WITH (fillfactor = 90)",
        'CREATE TABLE IF NOT EXISTS {s}.local (name text COLLATE "C" PRIMARY KEY, '
        "data bytea NOT NULL)",
        'CREATE TABLE IF NOT EXISTS {s}.sender_keys (sender text COLLATE "C" NOT NULL, '
        "distribution uuid NOT NULL, data bytea NOT NULL, PRIMARY KEY (sender, distribution))",
    ),
]

_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# SQLSTATEs that mean "someone else holds what this transaction needs: retry":
# serialization_failure, deadlock_detected, lock_not_available, query_canceled
# (a statement_timeout, which a lock wait can run into).
_BUSY_STATES: Final = frozenset({"40001", "40P01", "55P03", "57014"})
# The server went away or is not accepting connections right now.
_GONE_STATES: Final = frozenset({"57P01", "57P02", "57P03"})
_MAX_LOCK_TIMEOUT: Final = 2_147_483  # seconds: PostgreSQL's limit in milliseconds


class _Query(NamedTuple):
    what: str  # for error messages: never carries stored data
    sql: str
    params: tuple[object, ...] = ()


class _Result(NamedTuple):
    rows: list[tuple[Any, ...]]
    rowcount: int
    status: str | None


#: What every store method of :class:`_Core` is: a generator of queries,
#: sent each query's result, returning the method's value.
_Steps = Generator[_Query, _Result, T]


def _psycopg() -> Any:
    """psycopg 3, imported when a store is made (the ``postgres`` extra):
    the rest of signalish does not need it, and importing this module does
    not either."""
    try:
        import psycopg
    except ImportError as error:
        raise ImportError("PostgresStore and AsyncPostgresStore need psycopg 3: "
                          "pip install 'signalish[postgres]'") from error
    return psycopg


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} is a str")
    if "\x00" in value:
        raise InvalidArgument(f"{what} cannot contain NUL (PostgreSQL text refuses it)")
    return value


def _seconds(value: object, what: str, *, none_ok: bool = False) -> float | None:
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not 0 <= value <= _MAX_LOCK_TIMEOUT:
        raise InvalidArgument(f"a PostgreSQL store's {what} must be a finite number of "
                              "seconds >= 0")
    return float(value)


def _milliseconds(seconds: float | None) -> str:
    """A PostgreSQL duration; at least 1 ms, since 0 would mean "forever"."""
    return "0" if seconds is None else f"{max(1, round(seconds * 1000))}ms"


@dataclass(slots=True)
class _Tx:
    """One outermost transaction's bookkeeping."""

    locks: set[int] = field(default_factory=set)
    # Rows of locked addresses and of the locked ring, as read (complete).
    sessions: dict[str, dict[bytes, bytes]] = field(default_factory=dict)
    prekeys: dict[bytes, bytes] | None = None
    # Identity rows as this transaction read or wrote them (None: no row).
    identities: dict[str, bytes | None] = field(default_factory=dict)
    # Per open savepoint, what to restore if it is rolled back.
    savepoints: list[tuple[set[int], dict[str, bytes | None], StoreError | None]] = \
        field(default_factory=list)
    # The first error of a statement: the transaction will not commit (unless
    # a savepoint opened before it is rolled back, which undoes it).
    failure: StoreError | None = None


def _connect_timeout(value: object) -> int:
    seconds = _seconds(value, "connect_timeout")
    assert seconds is not None
    return max(2, math.ceil(seconds))  # libpq: whole seconds, 1 counts as 2


def _check_process(pid: int | None, name: str) -> None:
    """Refuse a connection made in another process: after ``fork()`` parent
    and child would share one socket, their statements interleaved in one
    session, and a message key could be used twice."""
    if pid is not None and pid != os.getpid():
        raise InvalidArgument(f"this {name} connected in another process (this one was forked "
                              "after it connected): open a new store in this process")
