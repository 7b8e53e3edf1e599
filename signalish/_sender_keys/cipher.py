""":class:`GroupCipher`: sender-key encryption and decryption over a store of
records (:class:`RecordStore`), with a cache of parsed records.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager, nullcontext
from typing import Final, Protocol

from .._errors import CorruptState, InvalidArgument, NoSession
from .._primitives import RandomSource, SystemRandom
from .._profile import Profile
from .messages import (
    DEFAULT_LIMITS,
    SenderKeyDistributionMessage,
    SenderKeyLimits,
    SenderKeyMessage,
)
from .record import SenderKeyRecord

__all__ = ["RecordStore", "GroupCipher"]


class RecordStore(Protocol):
    """Where :class:`GroupCipher` keeps sender key records, as bytes keyed by
    (sender address, distribution id).  A store may also have a
    ``transaction()`` context manager (as signalish's stores do); each
    GroupCipher call then runs in one, so a failed call writes nothing."""

    def load_sender_key(self, sender: str, distribution_id: uuid.UUID) -> bytes | None:
        """The record saved under this key, or None."""
        ...

    def save_sender_key(self, sender: str, distribution_id: uuid.UUID, record: bytes) -> None:
        """Save (or replace) the record under this key."""
        ...


#: Parsed sender-key records a GroupCipher keeps between calls.
_CACHED: Final = 64


class GroupCipher:
    """Sender keys over a :class:`RecordStore` (libsignal's group_cipher);
    both built-in stores, and any :class:`~signalish.groups.SenderKeyStore`,
    are one.

    ``sender`` is the application's address string of a member (including
    its device, if it has several); for our own sender key it is our own.
    Each call loads the record, changes it and saves it, inside the store's
    transaction when it has one.  A call that raises saves nothing.

    Parsed records are kept between calls (up to ``_CACHED`` of them), each
    beside the bytes it was saved as: a loaded record is parsed again only
    if the store's bytes differ (another process, a rolled-back
    transaction).  A record is taken out of the cache while a call works on
    it and put back only once it is saved, so a call that fails leaves
    nothing half-changed behind.
    """

    __slots__ = ("store", "profile", "limits", "_rng", "_cache")

    def __init__(self, store: RecordStore, profile: Profile, *,
                 rng: RandomSource | None = None,
                 limits: SenderKeyLimits = DEFAULT_LIMITS) -> None:
        self.store = store
        self.profile = profile
        self.limits = limits
        self._rng: RandomSource = rng if rng is not None else SystemRandom()
        self._cache: dict[tuple[str, uuid.UUID], tuple[bytes, SenderKeyRecord]] = {}

    def _transaction(self) -> AbstractContextManager[object]:
        begin = getattr(self.store, "transaction", None)
        return begin() if callable(begin) else nullcontext()

    def _load(self, sender: str, distribution_id: uuid.UUID) -> SenderKeyRecord | None:
        data = self.store.load_sender_key(sender, distribution_id)
        cached = self._cache.pop((sender, distribution_id), None)
        if data is None:
            return None
        if cached is not None and cached[0] == data:
            return cached[1]
        record = SenderKeyRecord.from_bytes(data)
        if record.distribution_id != distribution_id:
            raise CorruptState("SenderKeyRecord: stored under another distribution id")
        if record.profile.name != self.profile.name:
            raise InvalidArgument(f"the stored sender key is for profile {record.profile.name}, "
                                  f"not {self.profile.name}")
        return record

    def _save(self, sender: str, record: SenderKeyRecord) -> None:
        data = record.to_bytes()
        self.store.save_sender_key(sender, record.distribution_id, data)
        self._keep(sender, record, data)

    def _keep(self, sender: str, record: SenderKeyRecord, data: bytes) -> None:
        cache = self._cache
        cache[(sender, record.distribution_id)] = (data, record)
        if len(cache) > _CACHED:
            del cache[next(iter(cache))]  # the least recently used

    def distribution_message(self, sender: str, distribution_id: uuid.UUID) -> bytes:
        """Our SKDM for ``distribution_id``, creating our sender key if there
        is none yet (libsignal's SenderKeyDistributionMessage.create)."""
        with self._transaction():
            record = self._load(sender, distribution_id)
            if record is None:
                record = SenderKeyRecord.create(distribution_id, self.profile, self._rng)
                self._save(sender, record)
                return record.distribution_message()
            message = record.distribution_message()
            self._keep(sender, record, record.to_bytes())  # unchanged
            return message

    def rotate(self, sender: str, distribution_id: uuid.UUID) -> bytes:
        """Replace our sender key with a new one and return its SKDM, to send
        to the remaining members (when a member leaves)."""
        with self._transaction():
            record = SenderKeyRecord.create(distribution_id, self.profile, self._rng)
            self._save(sender, record)
            return record.distribution_message()

    def process(self, sender: str, message: bytes) -> uuid.UUID:
        """Take in ``sender``'s SKDM (received in our 1:1 session with them);
        returns its distribution id."""
        skdm = SenderKeyDistributionMessage.parse(message, self.profile)
        with self._transaction():
            record = self._load(sender, skdm.distribution_id)
            if record is None:
                record = SenderKeyRecord.from_distribution_message(skdm, self.profile)
            else:
                record.process(skdm, self.limits)
            self._save(sender, record)
        return skdm.distribution_id

    def encrypt(self, sender: str, distribution_id: uuid.UUID, plaintext: bytes) -> bytes:
        """A group message on our sender key; the record is saved before the
        message is returned.  Raises :class:`~signalish.NoSession` if we have
        no sender key for ``distribution_id`` (call
        :meth:`distribution_message` first)."""
        with self._transaction():
            record = self._load(sender, distribution_id)
            if record is None:
                raise NoSession("no sender key of ours for this distribution id")
            message = record.encrypt(plaintext, self.limits)
            self._save(sender, record)
        return message

    def decrypt(self, sender: str, message: bytes) -> bytes:
        """The plaintext of ``sender``'s group message.  The record is found by
        the distribution id in the message.  Raises what
        :meth:`SenderKeyRecord.decrypt` raises, and
        :class:`~signalish.NoSession` when there is no record."""
        parsed = SenderKeyMessage.parse(message, self.profile, self.limits.max_message_size)
        with self._transaction():
            record = self._load(sender, parsed.distribution_id)
            if record is None:
                raise NoSession("no sender key from this sender for this distribution id")
            plaintext = record.decrypt(parsed, self.limits)
            self._save(sender, record)
        return plaintext
