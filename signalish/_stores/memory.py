""":class:`MemoryStore`: every store interface in dictionaries, with nested
transactions kept as undo logs.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Final
from uuid import UUID

from .._keys import IdentityKey
from .protocols import _check_distribution_id, _check_local_name

__all__ = ["MemoryStore"]


_MISSING: Final = object()


class MemoryStore:
    """Everything in dictionaries.  A transaction that raises is rolled back.

    Transactions keep an undo log of the entries they change, so their cost
    is in what they write, not in the size of the store; they may nest (an
    inner block that raises undoes only its own writes), so an application
    can wrap several manager calls and its own data in one block that
    commits or fails as one (a message a call encrypted inside such a block
    may be sent only once the block has committed: if it fails, the store
    is as before and the next message reuses that key).  ``generation``
    changes when an outermost transaction that wrote anything commits, and
    when one rolls back writes that inner blocks had completed."""

    def __init__(self) -> None:
        self._identities: dict[str, IdentityKey] = {}
        self._prekeys: dict[bytes, bytes] = {}
        self._sessions: dict[str, dict[bytes, bytes]] = {}
        self._local: dict[str, bytes] = {}
        self._sender_keys: dict[tuple[str, UUID], bytes] = {}
        self._undo: list[list[tuple[dict[Any, Any], Any, Any]]] = []
        # Per open block: whether an inner block that wrote has completed in it.
        self._inner_done: list[bool] = []
        self._generation = 0
        self._transaction = _MemoryTransaction(self._undo, self)

    @property
    def generation(self) -> int:
        return self._generation

    def transaction(self) -> AbstractContextManager[None]:
        return self._transaction  # its state is the store's, so one object serves every block

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (a new one would nest in it)."""
        return bool(self._undo)

    def _set(self, target: dict[Any, Any], key: Any, value: Any) -> None:
        """``target[key] = value`` (deleting it for ``_MISSING``), logged."""
        old = target.get(key, _MISSING)
        if self._undo:
            self._undo[-1].append((target, key, old))
        else:
            self._generation += 1  # a write outside any transaction
        if value is _MISSING:
            target.pop(key, None)
        else:
            target[key] = value

    def get_identity(self, address: str) -> IdentityKey | None:
        return self._identities.get(address)

    def save_identity(self, address: str, key: IdentityKey) -> None:
        self._set(self._identities, address, key)

    def identity_addresses(self) -> list[str]:
        return sorted(self._identities)

    def load_prekeys(self, part: bytes = b"") -> bytes | None:
        return self._prekeys.get(bytes(part))

    def save_prekeys(self, data: bytes, part: bytes = b"") -> None:
        self._set(self._prekeys, bytes(part), bytes(data))

    def delete_prekeys(self, part: bytes) -> None:
        part = bytes(part)
        if part in self._prekeys:
            self._set(self._prekeys, part, _MISSING)

    def prekey_parts(self) -> list[bytes]:
        return sorted(self._prekeys)

    def load_session(self, address: str, part: bytes = b"") -> bytes | None:
        rows = self._sessions.get(address)
        return None if rows is None else rows.get(bytes(part))

    def save_session(self, address: str, data: bytes, part: bytes = b"") -> None:
        rows = self._sessions.get(address)
        if rows is None:
            rows = {}
            self._set(self._sessions, address, rows)
        # _set, written out: this runs on every message.
        if type(part) is not bytes:
            part = bytes(part)
        if type(data) is not bytes:
            data = bytes(data)
        undo = self._undo
        if undo:
            undo[-1].append((rows, part, rows.get(part, _MISSING)))
        else:
            self._generation += 1  # a write outside any transaction
        rows[part] = data

    def delete_session(self, address: str, part: bytes | None = None) -> None:
        rows = self._sessions.get(address)
        if rows is None:
            return
        if part is None:
            self._set(self._sessions, address, _MISSING)  # the undo log keeps the rows
        elif bytes(part) in rows:
            self._set(rows, bytes(part), _MISSING)

    def session_addresses(self) -> list[str]:
        return sorted(address for address, rows in self._sessions.items() if b"" in rows)

    def session_addresses_from(self, prefix: str) -> list[str]:
        """The addresses with a record that start with ``prefix``, sorted (an
        optional method: :meth:`SessionManager.devices
        <signalish.SessionManager.devices>` uses it when a store has it)."""
        return sorted(address for address, rows in self._sessions.items()
                      if b"" in rows and address.startswith(prefix))

    def load_local(self, name: str) -> bytes | None:
        """Application data kept beside the protocol state (:class:`LocalStore`):
        saved in the same transactions."""
        return self._local.get(name)

    def save_local(self, name: str, data: bytes) -> None:
        _check_local_name(name)
        self._set(self._local, name, bytes(data))

    def _save_reserved(self, name: str, data: bytes) -> None:
        _check_local_name(name, reserved_ok=True)
        self._set(self._local, name, bytes(data))

    def delete_local(self, name: str) -> None:
        if name in self._local:
            self._set(self._local, name, _MISSING)

    def local_names(self) -> list[str]:
        return sorted(self._local)

    def load_sender_key(self, sender: str, distribution_id: UUID) -> bytes | None:
        _check_distribution_id(distribution_id)
        return self._sender_keys.get((sender, distribution_id))

    def save_sender_key(self, sender: str, distribution_id: UUID, record: bytes) -> None:
        _check_distribution_id(distribution_id)
        self._set(self._sender_keys, (sender, distribution_id), bytes(record))

    def delete_sender_key(self, sender: str, distribution_id: UUID) -> None:
        if (sender, distribution_id) in self._sender_keys:
            self._set(self._sender_keys, (sender, distribution_id), _MISSING)

    def sender_key_ids(self) -> list[tuple[str, UUID]]:
        return sorted(self._sender_keys)


class _MemoryTransaction:
    """:meth:`MemoryStore.transaction` (a class, not a generator: it runs
    once per manager call)."""

    __slots__ = ("_undo", "_store")

    def __init__(self, undo: list[list[tuple[dict[Any, Any], Any, Any]]],
                 store: MemoryStore) -> None:
        self._undo, self._store = undo, store

    def __enter__(self) -> None:
        self._undo.append([])
        self._store._inner_done.append(False)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: object) -> None:
        store = self._store
        done = self._undo.pop()
        inner_done = store._inner_done.pop()
        if kind is not None:
            for target, key, old in reversed(done):
                if old is _MISSING:
                    target.pop(key, None)
                else:
                    target[key] = old
            if inner_done and not self._undo:
                # Writes of inner blocks that had completed are undone too:
                # whoever read the generation after them must see a change.
                store._generation += 1
        elif self._undo:
            self._undo[-1].extend(done)
            if done:
                store._inner_done[-1] = True
        elif done:
            store._generation += 1  # a commit that wrote
