"""The storage interfaces (``Store`` and the protocols it joins, and the
optional ``LocalStore`` and ``SenderKeyStore``) and the checks every
implementation applies to the names it is given.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Final, Protocol, runtime_checkable
from uuid import UUID

from .._errors import CorruptState, DecodeError, InvalidArgument
from .._keys import IdentityKey, IdentityKeyPair

__all__ = ["IdentityStore", "PreKeyStore", "SessionStore", "Store", "LocalStore",
           "SenderKeyStore", "RESERVED_PREFIX", "IDENTITY_NAME", "load_identity_key_pair",
           "save_identity_key_pair", "save_reserved_local"]


#: Local-data names that start with this belong to the library; the
#: application's own names must not (save_local refuses them).
RESERVED_PREFIX: Final = "signalish:"
#: Where :func:`save_identity_key_pair` keeps the local identity key pair.
IDENTITY_NAME: Final = RESERVED_PREFIX + "identity"


@runtime_checkable
class IdentityStore(Protocol):
    """Peers' identity keys as last trusted (libsignal's IdentityKeyStore)."""

    def get_identity(self, address: str) -> IdentityKey | None:
        """The identity key trusted for ``address``, or None if none was
        recorded yet."""
        ...

    def save_identity(self, address: str, key: IdentityKey) -> None:
        """Record ``key`` as the trusted identity of ``address``, replacing
        any earlier one.  Called inside a transaction."""
        ...

    def identity_addresses(self) -> list[str]:
        """Every address with a recorded identity, sorted."""
        ...


@runtime_checkable
class PreKeyStore(Protocol):
    """The local :class:`~signalish.PreKeyRing` (secret), as rows: a head
    row under part ``b""`` and one row per one-time prekey and per
    remembered base key, so that consuming a one-time prekey deletes one
    row (the layout of libsignal's PreKeyStore and KyberPreKeyStore).
    Parts are short byte strings the library chooses; stores keep them and
    the rows as opaque bytes.  Use :meth:`SessionManager.prekeys` rather
    than calling these yourself."""

    def load_prekeys(self, part: bytes = b"") -> bytes | None:
        """The row stored under ``part``, or None if there is none."""
        ...

    def save_prekeys(self, data: bytes, part: bytes = b"") -> None:
        """Store ``data`` under ``part``, replacing any row there.  Called
        inside a transaction."""
        ...

    def delete_prekeys(self, part: bytes) -> None:
        """Remove the row under ``part``; nothing happens if there is none.
        Called inside a transaction."""
        ...

    def prekey_parts(self) -> list[bytes]:
        """The parts of every stored prekey row, sorted (``b""`` first)."""
        ...


@runtime_checkable
class LocalStore(Protocol):
    """Application data kept beside the protocol state, under names the
    application chooses, written in the same transactions (so a message's
    plaintext and the state that decrypted it commit together), and carried
    by a backup made with ``include_local=True``.  Both built-in stores
    implement it.  Names starting with :data:`RESERVED_PREFIX` are the
    library's (the local identity key pair is kept under one)."""

    def load_local(self, name: str) -> bytes | None:
        """The data saved under ``name``, or None."""
        ...

    def save_local(self, name: str, data: bytes) -> None:
        """Save ``data`` under ``name``, replacing what was there.  Called
        inside a transaction.  The built-in stores refuse a reserved name
        with :class:`~signalish.errors.InvalidArgument`."""
        ...

    def delete_local(self, name: str) -> None:
        """Remove ``name``; nothing happens if there is none."""
        ...

    def local_names(self) -> list[str]:
        """Every saved name, sorted, the reserved ones included."""
        ...


@runtime_checkable
class SenderKeyStore(Protocol):
    """Sender-key records (secret) for group messaging, one per sender and
    distribution id, as libsignal's SenderKeyStore keeps them: ``sender``
    is the sending device's address string (ours, for our own sender key),
    ``distribution_id`` the group's distribution id.  Records are opaque
    bytes to the store.  Both built-in stores implement it, in the same
    transactions as everything else; a store of the application's own
    needs it only for group messaging.  Backups do not carry sender keys
    (a restored sending chain would reuse message keys): after a restore,
    create new sender keys and distribute them."""

    def load_sender_key(self, sender: str, distribution_id: UUID) -> bytes | None:
        """The record of ``sender`` for ``distribution_id``, or None."""
        ...

    def save_sender_key(self, sender: str, distribution_id: UUID, record: bytes) -> None:
        """Store ``record``, replacing any.  Called inside a transaction."""
        ...

    def delete_sender_key(self, sender: str, distribution_id: UUID) -> None:
        """Remove that record; nothing happens if there is none.  Called
        inside a transaction."""
        ...

    def sender_key_ids(self) -> list[tuple[str, UUID]]:
        """Every (sender, distribution id) with a record, sorted."""
        ...


def _check_distribution_id(distribution_id: UUID) -> bytes:
    if not isinstance(distribution_id, UUID):
        raise InvalidArgument("a distribution id is a uuid.UUID")
    return distribution_id.bytes


def _check_local_name(name: str, reserved_ok: bool = False) -> None:
    if not isinstance(name, str):
        raise InvalidArgument("a local-data name is a str")
    if name.startswith(RESERVED_PREFIX) and not reserved_ok:
        raise InvalidArgument(f"local-data names starting {RESERVED_PREFIX!r} are reserved")


def save_reserved_local(store: object, name: str, data: bytes) -> bool:
    """Save library data under a reserved local name (``signalish:...``),
    inside a transaction: the built-in stores refuse reserved names in
    ``save_local`` and take them through ``_save_reserved``; a store of the
    application's own takes them through ``save_local``.  False, saving
    nothing, for a store without local data."""
    save = getattr(store, "_save_reserved", getattr(store, "save_local", None))
    if save is None:
        return False
    save(name, data)
    return True


def save_identity_key_pair(store: LocalStore, identity: IdentityKeyPair) -> None:
    """Keep ``identity`` (secret) in ``store``, as libsignal's identity store
    keeps the local identity key pair; :func:`~signalish.backup.restore_backup`
    calls it.  Call it inside a transaction with whatever else should commit
    with it."""
    save_reserved_local(store, IDENTITY_NAME, identity.to_bytes())


def load_identity_key_pair(store: LocalStore) -> IdentityKeyPair | None:
    """The identity key pair kept in ``store``, or None.  Raises
    :class:`~signalish.errors.CorruptState` if it is damaged."""
    data = store.load_local(IDENTITY_NAME)
    if data is None:
        return None
    try:
        return IdentityKeyPair.from_bytes(data)
    except (DecodeError, InvalidArgument):
        raise CorruptState("the stored identity key pair is damaged") from None


@runtime_checkable
class SessionStore(Protocol):
    """Each peer address's :class:`~signalish._session.SessionRecord` (secret),
    as rows: a head row under part ``b""`` (which sessions, in which order),
    one row per session and one per chain of stored message keys, so that a
    message rewrites the one or two rows it changed, not the record.
    Parts are short byte strings the library chooses; stores hold them and
    the rows as opaque bytes and never parse them."""

    def load_session(self, address: str, part: bytes = b"") -> bytes | None:
        """The row for ``address`` under ``part``, or None if there is none.
        Whether the head (``part=b""``) exists says whether ``address`` has
        a record."""
        ...

    def save_session(self, address: str, data: bytes, part: bytes = b"") -> None:
        """Store ``data`` for ``address`` under ``part``, replacing any row
        there.  Called inside a transaction."""
        ...

    def delete_session(self, address: str, part: bytes | None = None) -> None:
        """Remove the row of ``address`` under ``part``, or, with ``part``
        None, every row of ``address`` (its whole record); nothing happens
        if there is none.  Called inside a transaction."""
        ...

    def session_addresses(self) -> list[str]:
        """Every address with a record (a head row), sorted."""
        ...


@runtime_checkable
class Store(IdentityStore, PreKeyStore, SessionStore, Protocol):
    """All three, plus a transaction that makes their writes atomic, and a
    generation number.

    ``transaction()``: a context manager; every write inside it is committed
    when the block ends, or none is if the block raises.
    ``generation``: a number that changes whenever anything else (another
    connection, another process, another manager) may have changed the
    store since this object last committed; read inside a transaction, it
    is current as of the start of that transaction.  :class:`SessionManager`
    keeps parsed records between calls only while the generation is the one
    its own last commit left; a store without a meaningful one may return a
    new value each time (nothing is then cached)."""

    def transaction(self) -> AbstractContextManager[None]:
        """A context manager: the writes inside it commit together when the
        block ends, or none does if it raises (then the store is as before)."""
        ...

    @property
    def generation(self) -> int:
        """See the class docstring."""
        ...
