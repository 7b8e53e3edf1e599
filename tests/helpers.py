"""Loading vector files from the project's own vectors/ tree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def load_vectors(relative: str) -> Any:
    with open(VECTORS / relative, encoding="utf-8") as handle:
        return json.load(handle)


def wycheproof_cases(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(group, test) pairs of a Wycheproof file, for pytest parametrization."""
    data = load_vectors(f"third_party/wycheproof/{name}")
    return [(group, test) for group in data["testGroups"] for test in group["tests"]]


def case_id(case: tuple[dict[str, Any], dict[str, Any]]) -> str:
    group, test = case
    return f"tc{test['tcId']}-{test['result']}"


# --- stores as rows -------------------------------------------------------------------


def session_parts(store: Any) -> dict[str, list[bytes]]:
    """Every (address, parts) of a MemoryStore or SQLiteStore's session rows,
    including rows of an address without a head row (which
    ``session_addresses`` does not list).  Addresses left with no row are
    left out: they hold nothing."""
    from signalish import MemoryStore, SQLiteStore
    if isinstance(store, MemoryStore):
        return {address: sorted(rows) for address, rows in sorted(store._sessions.items())
                if rows}
    if isinstance(store, SQLiteStore):
        import sqlite3
        db = sqlite3.connect(store._path)
        try:
            found: dict[str, list[bytes]] = {}
            for address, part in db.execute(
                    "SELECT address, part FROM session_rows ORDER BY address, part"):
                found.setdefault(address, []).append(bytes(part))
            return found
        finally:
            db.close()
    raise TypeError(f"session_parts: no way to list the rows of {type(store).__name__}")


def session_rows(store: Any) -> dict[str, dict[bytes, bytes]]:
    """Every session row of ``store``: address -> part -> data (read through
    ``load_session``, so that SQLite rows are checked)."""
    return {address: {part: store.load_session(address, part) for part in parts}
            for address, parts in session_parts(store).items()}


def prekey_rows(store: Any) -> dict[bytes, bytes]:
    """Every prekey row of ``store``: part -> data."""
    return {part: store.load_prekeys(part) for part in store.prekey_parts()}


def snapshot(store: Any) -> dict[str, Any]:
    """Everything a MemoryStore or SQLiteStore holds for the protocol: all
    session rows, all prekey rows, every trusted identity and every
    sender-key record.  Two equal snapshots are the same stored state, row
    for row (a copy: later writes to the store do not change it)."""
    taken = {"sessions": session_rows(store), "prekeys": prekey_rows(store),
             "identities": {address: store.get_identity(address).to_bytes()
                            for address in store.identity_addresses()}}
    sender_keys = {key: store.load_sender_key(*key)
                   for key in getattr(store, "sender_key_ids", list)()}
    if sender_keys:  # only then, so that snapshots of stores without any read as before
        taken["sender_keys"] = sender_keys
    return taken


def copy_rows(source: Any, target: Any) -> None:
    """Write every session and prekey row of ``source`` into ``target`` (call
    inside a transaction of ``target``); identities are not copied."""
    for address, rows in session_rows(source).items():
        for part, data in rows.items():
            target.save_session(address, data, part)
    for part, data in prekey_rows(source).items():
        target.save_prekeys(data, part)


def read_varint(data: bytes, i: int) -> tuple[int, int]:
    """A protobuf varint of ``data`` at ``i``: (value, the index after it).
    For tests that read libsignal's bytes with a parser of their own, not
    signalish's (which refuses what these only need to walk)."""
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


class _Boom(Exception):
    pass


def check_local_data(store: Any) -> None:
    """What every store with local data must do (the built-in stores and
    PostgreSQL's): names saved, sorted, deleted, rolled back; reserved
    names refused from the application and taken from the library."""
    import pytest

    from signalish import (DeterministicRandom, IdentityKeyPair, load_identity_key_pair,
                           save_identity_key_pair)
    from signalish.errors import InvalidArgument

    with store.transaction():
        store.save_local("b", b"2")
        store.save_local("a", b"1")
        with pytest.raises(InvalidArgument):
            store.save_local("signalish:identity", b"x")
        with pytest.raises(InvalidArgument):
            store.save_local(b"a", b"x")
    assert store.local_names() == ["a", "b"]
    with pytest.raises(_Boom):
        with store.transaction():
            store.delete_local("a")
            assert store.load_local("a") is None
            raise _Boom
    assert store.load_local("a") == b"1"
    with store.transaction():
        store.delete_local("a")
        store.delete_local("missing")
    assert store.local_names() == ["b"]
    identity = IdentityKeyPair.generate(DeterministicRandom(b"local"))
    with store.transaction():
        save_identity_key_pair(store, identity)
    loaded = load_identity_key_pair(store)
    assert loaded is not None and loaded.seed() == identity.seed()
    assert store.local_names() == ["b", "signalish:identity"]


def check_sender_key_records(store: Any, *, stable_generation: bool) -> None:
    """What every SenderKeyStore must do: records per (sender, distribution
    id), replaced, deleted, listed sorted, rolled back with a failed
    transaction (and, with ``stable_generation``, a store whose generation
    changes only on commits: left unchanged by it); a distribution id is a
    UUID."""
    from uuid import UUID

    import pytest

    from signalish._stores import SenderKeyStore
    from signalish.errors import InvalidArgument

    assert isinstance(store, SenderKeyStore)
    one, two = UUID(int=1), UUID("d1d1d1d1-7000-11eb-b32a-33b8a8a487a6")
    with store.transaction():
        store.save_sender_key("alice.1", two, b"alice two")
        store.save_sender_key("alice.1", one, b"alice one")
        store.save_sender_key("bob.2", one, b"bob one")
    assert store.load_sender_key("alice.1", one) == b"alice one"
    assert store.load_sender_key("alice.1", two) == b"alice two"
    assert store.load_sender_key("alice.2", one) is None
    assert store.sender_key_ids() == [("alice.1", one), ("alice.1", two), ("bob.2", one)]
    generation = store.generation
    with pytest.raises(_Boom):
        with store.transaction():
            store.save_sender_key("alice.1", one, b"changed")
            store.delete_sender_key("bob.2", one)
            store.save_sender_key("carol.1", one, b"new")
            raise _Boom
    if stable_generation:
        assert store.generation == generation
    assert store.sender_key_ids() == [("alice.1", one), ("alice.1", two), ("bob.2", one)]
    assert store.load_sender_key("alice.1", one) == b"alice one"
    with store.transaction():
        store.save_sender_key("alice.1", one, b"replaced")
        store.delete_sender_key("bob.2", one)
        store.delete_sender_key("nobody", one)  # nothing there: nothing happens
    assert store.load_sender_key("alice.1", one) == b"replaced"
    assert store.sender_key_ids() == [("alice.1", one), ("alice.1", two)]
    with pytest.raises(InvalidArgument):
        store.load_sender_key("alice.1", str(one))
    with pytest.raises(InvalidArgument):
        with store.transaction():
            store.save_sender_key("alice.1", one.bytes, b"x")
