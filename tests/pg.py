"""A throwaway PostgreSQL server for the tests, started with ``pgserver``.

``pg_server`` (session-scoped) starts one server in a fresh directory and
stops it and deletes the directory at the end; if it cannot start, every
test that uses it fails (an error, never a skip).  ``pg`` gives each test a
schema of its own on that server, dropped afterwards.  Import both into a
test module (``from pg import pg, pg_server  # noqa: F401``).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest


class Server:
    """One PostgreSQL server in ``root``; :meth:`restart` stops and starts it
    (clients lose their connections, as in a real restart)."""

    def __init__(self, root: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: no XDG_RUNTIME_DIR here
            import pgserver
            from pgserver import _commands
        self.root = root
        self._pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]
        self._server = pgserver.get_server(root / "data", cleanup_mode="stop")
        self.pgdata: Path = self._server.pgdata
        self.user: str | None = self._server.system_user
        self.conninfo: str = self._server.get_uri()
        self.socket_dir = parse_qs(urlsplit(self.conninfo).query)["host"][0]
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute("SELECT 1")

    def _ctl(self, *args: str) -> None:
        self._pg_ctl(list(args), pgdata=self.pgdata, user=self.user, timeout=60)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: connections are terminated, open
        transactions rolled back; ``immediate``: as if it crashed)."""
        self._ctl("-w", "-m", mode, "stop")

    def start(self) -> None:
        self._ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}",
                  "-l", str(self.pgdata / "log"), "start")

    def restart(self, down: float = 0.0, mode: str = "fast") -> None:
        """Stop the server, keep it down for ``down`` seconds, start it."""
        self.stop(mode)
        time.sleep(down)
        self.start()

    def close(self) -> None:
        try:
            self.stop()
        except Exception:
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    root = Path(tempfile.mkdtemp(prefix="signalish-pg-"))
    try:
        server = Server(root)
    except Exception as error:  # a test that needs the server fails, never skips
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start a PostgreSQL server with pgserver: {error!r}",
                    pytrace=False)
    try:
        yield server
    finally:
        server.close()


_schemas = itertools.count()


@dataclass
class Database:
    """A test's own schema on the shared server."""

    server: Server
    schema: str

    @property
    def conninfo(self) -> str:
        return self.server.conninfo

    def store(self, **options: Any) -> Any:
        from signalish._postgres import PostgresStore
        return PostgresStore(self.conninfo, schema=self.schema, **options)

    def connect(self) -> psycopg.Connection[Any]:
        """A plain connection (autocommit), for looking behind the store."""
        return psycopg.connect(self.conninfo, autocommit=True)


@pytest.fixture
def pg(pg_server: Server) -> Iterator[Database]:
    schema = f"t{os.getpid()}_{next(_schemas)}"
    database = Database(pg_server, schema)
    yield database
    try:
        with database.connect() as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}_app" CASCADE')
    except psycopg.Error:
        pass  # the server may be down after a test that stopped it


# --- looking behind the store, and Bob on it -------------------------------------------

TABLES = ("identities", "prekey_rows", "session_rows", "local", "sender_keys")


def dump(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the store's schema, raw, read through a
    connection of its own (what a crash or another process would find)."""
    with database.connect() as conn:
        return {table: [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                        for row in conn.execute(
                            f'SELECT * FROM "{database.schema}".{table} ORDER BY 1, 2')]
                for table in TABLES}


def bob_on(store: Any, seed: bytes, one_time: int = 3) -> tuple[Any, Any, Any]:
    """Bob's identity (as local data) and prekey ring written into ``store``
    in one transaction, and Alice (in memory) with a session she initiated
    from his bundle.  Returns Alice's manager, Bob's identity and the
    random source."""
    from signalish import (NATIVE, DeterministicRandom, IdentityKeyPair, MemoryStore,
                           PreKeyRing, SessionManager, save_identity_key_pair)
    from signalish._storage import save_ring

    rng = DeterministicRandom(seed)
    bob = IdentityKeyPair.generate(rng)
    ring = PreKeyRing.create(bob, NATIVE, rng, now=0)
    ring.generate_one_time_prekeys(one_time, rng)
    bundle = ring.issue_bundle()  # before saving, so that the issue position is stored
    with store.transaction():
        save_ring(store, ring, {})
        save_identity_key_pair(store, bob)
    alice = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), rng=rng)
    alice.initiate("bob", bundle)
    return alice, bob, rng
