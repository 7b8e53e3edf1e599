"""The asyncio store protocol: :class:`~signalish.Store`'s methods as
coroutines.

An :class:`AsyncStore` is what :class:`~signalish.AsyncSessionManager`
takes.  Its methods mean exactly what the synchronous protocols' methods of
the same names mean (``signalish._stores``: sessions as rows under parts,
prekey rows, trusted identities, local data and sender keys), and its
transaction is an ``async with`` block with the same all-or-nothing rule.
"""

from __future__ import annotations

import contextvars
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable
from uuid import UUID

from ._keys import IdentityKey

__all__ = ["AsyncStore", "FLOW"]

#: The flow of calls an asyncio store's transaction belongs to: set (to a
#: fresh object) by :class:`~signalish.AsyncSessionManager` around each call,
#: and by a store's outermost transaction when none is set.  Context
#: variables follow a call into the manager's worker thread and into the
#: coroutines that thread runs on the loop, each a task of its own, so one
#: call's store operations all carry its value; another task's do not.  A
#: store that serves one flow at a time (AsyncPostgresStore: one connection)
#: refuses a transaction of another flow instead of nesting it in the open
#: one.
FLOW: contextvars.ContextVar[object | None] = contextvars.ContextVar("signalish_flow",
                                                                     default=None)


@runtime_checkable
class AsyncStore(Protocol):
    """:class:`~signalish.Store`, :class:`~signalish.LocalStore` and
    :class:`~signalish.groups.SenderKeyStore`, as coroutines."""

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """``async with store.transaction():`` the writes inside commit
        together when the block ends, or none does if it raises."""
        ...

    async def generation(self) -> int:
        """As :attr:`Store.generation <signalish.Store.generation>`: read
        inside a transaction, current as of its start; a store shared by
        many processes may return a new value each time (nothing is then
        cached)."""
        ...

    # identities
    async def get_identity(self, address: str) -> IdentityKey | None: ...
    async def save_identity(self, address: str, key: IdentityKey) -> None: ...
    async def identity_addresses(self) -> list[str]: ...

    # prekeys
    async def load_prekeys(self, part: bytes = b"") -> bytes | None: ...
    async def save_prekeys(self, data: bytes, part: bytes = b"") -> None: ...
    async def delete_prekeys(self, part: bytes) -> None: ...
    async def prekey_parts(self) -> list[bytes]: ...

    # sessions
    async def load_session(self, address: str, part: bytes = b"") -> bytes | None: ...
    async def save_session(self, address: str, data: bytes, part: bytes = b"") -> None: ...
    async def delete_session(self, address: str, part: bytes | None = None) -> None: ...
    async def session_addresses(self) -> list[str]: ...

    # local data
    async def load_local(self, name: str) -> bytes | None: ...
    async def save_local(self, name: str, data: bytes) -> None: ...
    async def delete_local(self, name: str) -> None: ...
    async def local_names(self) -> list[str]: ...

    # sender keys
    async def load_sender_key(self, sender: str, distribution_id: UUID) -> bytes | None: ...
    async def save_sender_key(self, sender: str, distribution_id: UUID,
                              record: bytes) -> None: ...
    async def delete_sender_key(self, sender: str, distribution_id: UUID) -> None: ...
    async def sender_key_ids(self) -> list[tuple[str, UUID]]: ...
