"""Session records and the prekey ring as store rows.

A store keeps each record and the ring as rows (see
:class:`~signalish._stores.SessionStore` and
:class:`~signalish._stores.PreKeyStore`): a head under part ``b""`` and one
row per session, per chain of stored keys, per one-time prekey and per
remembered base key.  Loading returns the object and the rows it was read
from; saving writes only the rows that differ from those and deletes the
ones that are gone, and returns the new rows for the next save.  Unchanged
rows come back from the objects as the very same ``bytes`` objects, so the
comparison costs nothing for them.

A head that holds a whole record or ring (their format 1 or 2, as stores
held them before the row layout, and as backups and test vectors carry
them) loads as one; the next save replaces it with rows.
"""

from __future__ import annotations

from typing import Final

from ._errors import InvalidArgument
from ._keys import IdentityKeyPair
from ._prekeys import PreKeyRing
from ._sender_keys import SenderKeyRecord
from ._session import SessionRecord
from ._stores import PreKeyStore, SenderKeyStore, SessionStore

__all__ = ["Rows", "load_record", "save_record", "load_ring", "save_ring", "record_bytes",
           "ring_bytes", "forget_own_sender_keys"]

#: part -> row, as last read or written.
Rows = dict[bytes, bytes]


#: The version bytes of a whole record or ring stored as a head.
_LEGACY: Final = (b"\x01", b"\x02", b"\x04", b"\x06")


def _legacy(old: Rows) -> bool:
    """Whether ``old`` is a whole record or ring stored as a head (format 1,
    2 or, for a record, 4 or 6; the row layout's heads are versions 3 and
    5).  Rows of anything else the store holds beside such a head are
    unknown, so a save replaces them all."""
    head = old.get(b"")
    return head is not None and head[1:2] in _LEGACY


def load_record(store: SessionStore, address: str) -> tuple[SessionRecord, Rows] | None:
    """The record of ``address`` and its rows, or None if it has none."""
    return SessionRecord.from_rows(lambda part: store.load_session(address, part))


def save_record(store: SessionStore, address: str, record: SessionRecord, old: Rows) -> Rows:
    """Write what changed in ``record`` since ``old`` (the rows last read or
    written; empty for a new record).  Inside a transaction."""
    head = old.get(b"")  # _legacy(old), written out: every message
    if head is not None and head[1:2] in _LEGACY:
        store.delete_session(address)  # a whole record as head: rows replace it
        old = {}
    rows, writes, deletes = record.changes(old)
    for part, data in writes:
        store.save_session(address, data, part)
    for part in deletes:
        store.delete_session(address, part)
    return rows


def record_bytes(store: SessionStore, address: str) -> bytes | None:
    """The record of ``address`` in the whole-record format
    (:meth:`SessionRecord.to_bytes`), or None."""
    loaded = load_record(store, address)
    return None if loaded is None else loaded[0].to_bytes()


def load_ring(store: PreKeyStore, identity: IdentityKeyPair) -> tuple[PreKeyRing, Rows] | None:
    """The stored ring and its rows, or None if the store has none."""
    parts = store.prekey_parts()
    if b"" not in parts:
        return None
    head = store.load_prekeys(b"")
    if head is None:
        return None
    rows: Rows = {b"": head}
    if not _legacy(rows):  # a whole ring as head: any other rows are not its
        for part in parts:
            data = store.load_prekeys(part) if part else None
            if data is not None:
                rows[part] = data
    return PreKeyRing.from_rows(rows, identity), rows


def save_ring(store: PreKeyStore, ring: PreKeyRing, old: Rows) -> Rows:
    """Write what changed in ``ring`` since ``old``.  Inside a transaction."""
    if _legacy(old):
        for part in store.prekey_parts():  # a whole ring as head: rows replace it
            store.delete_prekeys(part)
        old = {}
    rows, writes, deletes = ring.changes(old)
    for part, data in writes:
        store.save_prekeys(data, part)
    for part in deletes:
        store.delete_prekeys(part)
    return rows


def ring_bytes(store: PreKeyStore, identity: IdentityKeyPair) -> bytes | None:
    """The stored ring in the whole-ring format (:meth:`PreKeyRing.to_bytes`),
    or None."""
    loaded = load_ring(store, identity)
    return None if loaded is None else loaded[0].to_bytes()


def forget_own_sender_keys(store: object) -> None:
    """Delete our own sender-key records (those holding a signing private
    key) from ``store``: after a rollback or a restore they may be older
    than what was sent, and sending on them would reuse message keys.
    Other members' records stay.  Call it inside the store's transaction.

    A store that keeps no sender keys (no ``load_sender_key`` or
    ``save_sender_key``) is left alone.  One that keeps them but cannot
    list or delete them (it lacks ``sender_key_ids`` or
    ``delete_sender_key``, which :class:`~signalish.groups.GroupCipher`
    alone does not need) raises :class:`~signalish.errors.InvalidArgument`:
    our own keys there went back too, and could not be removed."""
    if not isinstance(store, SenderKeyStore):
        if hasattr(store, "load_sender_key") or hasattr(store, "save_sender_key"):
            raise InvalidArgument(
                "this store keeps sender keys but cannot list or delete them (it has no "
                "sender_key_ids or delete_sender_key): our own sender keys in it may be "
                "older than what was sent, and could not be deleted; give it the whole "
                "SenderKeyStore protocol")
        return
    for sender, distribution_id in store.sender_key_ids():
        data = store.load_sender_key(sender, distribution_id)
        if data is not None and SenderKeyRecord.from_bytes(data).is_own:
            store.delete_sender_key(sender, distribution_id)
