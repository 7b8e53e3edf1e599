"""Password-protected backups of an identity, its prekeys and its sessions.

A backup restores a device that can continue its conversations: the
identity key pair, the serialized :class:`~signalish.PreKeyRing`, the peers'
trusted identity keys, (optionally) every session record and (optionally)
the application's own data kept in the store (:class:`~signalish.LocalStore`).
Restoring writes the identity key pair into the store too, where
:func:`~signalish.load_identity_key_pair` finds it.

Key derivation is Argon2id (RFC 9106) with the parameters recorded in the
blob; the default is RFC 9106's second recommended option (t = 3, p = 4,
m = 64 MiB), meant for machines where 2 GiB per derivation is too much.
64 bytes of Argon2id output give an AES-256-GCM key and a verification key.

Blob (version 1)::

    0x70 0x01 | iterations (4) | lanes (4) | memory KiB (4) | salt (16)
              | verifier (32) | nonce (12) | length (4) | ciphertext
              | SHA-256 of all the above, first 16 bytes

verifier = HMAC-SHA256(verification key, "signalish backup verifier"); the
AEAD's associated data is every byte before the ciphertext.  Opening checks,
in order: the checksum (a damaged blob: :class:`BackupDamaged`), the Argon2id
cost against the caller's ceiling (:class:`BackupCostExceeded`, before any
derivation: the checksum is unkeyed, so whoever can change the blob can set
the cost), the verifier (:class:`WrongPassword`), then the AEAD (a blob altered
by someone who also fixed the checksum: :class:`BackupDamaged`).  The verifier
lets a password be tested offline, but no more than the AEAD alone would:
guessing costs one Argon2id derivation either way.

Restoring is not resuming.  The device may have sent messages, and used
prekeys, after the backup was made; state from the backup knows nothing of
that.  So :func:`restore_backup` makes every restored session receive-only
(see :meth:`SessionManager.mark_restored`) and does not bring back any prekey
that might have been used: it replaces the ring's signed and last-resort
prekeys with new ones and drops every one-time prekey, keeping its id counters
(the backup's, raised to those the application passes as ``next_ids``: only
then are ids handed out after the backup never handed out again).  The
application then uploads new prekeys, as after a fresh install.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Final

from ._encoding import Reader, Tag, Writer
from ._errors import (
    AuthenticationError,
    DecodeError,
    InvalidArgument,
    InvalidEncoding,
    LocalError,
    RemoteError,
    SignalishError,
)
from ._keys import IdentityKey, IdentityKeyPair
from ._prekeys import PreKeyIds, PreKeyRing
from ._primitives import SystemRandom, RandomSource, aes256_gcm_decrypt, aes256_gcm_encrypt, argon2id, hmac_sha256
from ._session import SessionRecord
from ._storage import forget_own_sender_keys, load_ring, record_bytes, save_record, save_ring
from ._stores import RESERVED_PREFIX, LocalStore, Store, save_identity_key_pair

__all__ = ["BackupParams", "BackupError", "WrongPassword", "BackupDamaged",
           "BackupCostExceeded", "DEFAULT_MAX_COST", "create_backup", "restore_backup"]

_CHECK: Final = 16
_VERIFIER_LABEL: Final = b"signalish backup verifier"
_MAX_CONTENTS: Final = 1 << 30
_MAX_ENTRIES: Final = 1_000_000


class BackupError(SignalishError):
    """A backup could not be opened.  Never raised itself: each subclass
    also says who is at fault, :class:`WrongPassword` the user (a
    :class:`~signalish.LocalError`), :class:`BackupDamaged` and
    :class:`BackupCostExceeded` the blob (a :class:`~signalish.RemoteError`)."""


class WrongPassword(BackupError, LocalError):
    """The password does not open this backup."""


class BackupDamaged(BackupError, RemoteError):
    """The backup is truncated, altered or malformed."""


class BackupCostExceeded(BackupError, RemoteError):
    """The backup asks for a costlier Argon2id derivation than the caller's
    ``max_cost`` allows.  Nothing was derived.  A genuine backup made with
    higher parameters needs a higher ``max_cost``; a blob nobody chose may
    be an attempt to exhaust memory or time."""


@dataclass(frozen=True, slots=True)
class BackupParams:
    """Argon2id cost.  The default is RFC 9106 section 4's second recommended
    option; raise ``memory_kib`` where memory allows (the first option is 2 GiB
    with one iteration)."""

    iterations: int = 3
    lanes: int = 4
    memory_kib: int = 64 * 1024

    def __post_init__(self) -> None:
        if not 1 <= self.iterations <= 1_000 or not 1 <= self.lanes <= 255:
            raise InvalidArgument("Argon2id iterations must be 1..1000 and lanes 1..255")
        if not 8 * self.lanes <= self.memory_kib <= 4 * 1024 * 1024:
            raise InvalidArgument("Argon2id memory must be 8 * lanes KiB .. 4 GiB")


#: The default ceiling for :func:`restore_backup`: 10 passes, 16 lanes,
#: 256 MiB.  It admits the creation default (RFC 9106's second option) with
#: room to spare, and bounds a hostile blob to about 10 passes over 256 MiB.
DEFAULT_MAX_COST: Final = BackupParams(iterations=10, lanes=16, memory_kib=256 * 1024)


def _derive(password: str | bytes, salt: bytes, params: BackupParams) -> tuple[bytes, bytes]:
    secret = password.encode() if isinstance(password, str) else bytes(password)
    out = argon2id(secret, salt, length=64, iterations=params.iterations, lanes=params.lanes,
                   memory_kib=params.memory_kib)
    return out[:32], hmac_sha256(out[32:], _VERIFIER_LABEL)


#: Contents version 2 adds the application's local data; it is written only
#: when that is included, so a backup without it keeps version 1's bytes.
_LOCAL_VERSION: Final = 2


def _contents(identity: IdentityKeyPair, store: Store, include_sessions: bool,
              include_local: bool) -> bytes:
    w = Writer(Tag.BACKUP_CONTENTS, _LOCAL_VERSION if include_local else 1)
    w.fixed(identity.seed())
    loaded = load_ring(store, identity)
    w.flag(loaded is not None)
    if loaded is not None:
        w.var(loaded[0].to_bytes())
    addresses = store.identity_addresses()
    w.u32(len(addresses))
    for address in addresses:
        key = store.get_identity(address)
        assert key is not None
        w.var(address.encode()).fixed(key.public_bytes_raw())
    sessions = store.session_addresses() if include_sessions else []
    w.u32(len(sessions))
    for address in sessions:
        w.var(address.encode()).var(record_bytes(store, address) or b"")
    if include_local:
        assert isinstance(store, LocalStore)
        names = [name for name in store.local_names() if not name.startswith(RESERVED_PREFIX)]
        w.u32(len(names))
        for name in names:
            w.var(name.encode()).var(store.load_local(name) or b"")
    return w.getvalue()


def create_backup(identity: IdentityKeyPair, store: Store, password: str | bytes, *,
                  rng: RandomSource, include_sessions: bool = True, include_local: bool = False,
                  params: BackupParams = BackupParams()) -> bytes:
    """Everything needed to restore this device, encrypted under ``password``,
    read in one transaction.  ``include_local`` adds the application's own
    data in the store (every :class:`~signalish.LocalStore` name but the
    library's reserved ones); a store without it raises
    :class:`~signalish.errors.InvalidArgument`."""
    if not password:
        raise InvalidArgument("the backup password is empty")
    if include_local and not isinstance(store, LocalStore):
        raise InvalidArgument("include_local needs a store with local data (LocalStore)")
    with store.transaction():
        contents = _contents(identity, store, include_sessions, include_local)
    salt, nonce = rng.random_bytes(16), rng.random_bytes(12)
    key, verifier = _derive(password, salt, params)
    head = (Writer(Tag.BACKUP).u32(params.iterations).u32(params.lanes).u32(params.memory_kib)
            .fixed(salt).fixed(verifier).fixed(nonce).getvalue()
            + struct.pack(">I", len(contents) + 16))
    body = head + aes256_gcm_encrypt(key, nonce, contents, head)
    return body + hashlib.sha256(body).digest()[:_CHECK]


def restore_backup(blob: bytes, password: str | bytes, store: Store, *, now: int,
                   rng: RandomSource | None = None,
                   max_cost: BackupParams = DEFAULT_MAX_COST,
                   next_ids: PreKeyIds | None = None) -> IdentityKeyPair:
    """Write a backup's trusted identities, sessions, prekey ring, local data
    and, if ``store`` keeps local data (:class:`~signalish.LocalStore`), the
    identity key pair into ``store`` (one transaction), and return the
    identity key pair.  Local data replaces what ``store`` holds under the
    same names; other names are left alone.

    Every restored session is receive-only until the peer's next DH ratchet
    step or a new session (:class:`~signalish.errors.StaleSession` on encrypt): the
    backed-up device may have sent on it since.  The prekey ring is restarted
    (:meth:`PreKeyRing.restart <signalish.PreKeyRing.restart>`): a new signed
    prekey (and, where the profile has PQXDH, a new last-resort KEM prekey)
    made at ``now`` from ``rng``, and no one-time prekeys: upload new ones.
    Its id counters are the backup's, raised to ``next_ids`` if given (the
    counters the newest ring had, kept beside the account or learned from
    the server); then initial messages addressed to prekeys made after the
    backup are refused as a :class:`~signalish.errors.PreKeyError`, as after
    a reinstall.  Without ``next_ids`` those ids are issued again with new
    keys, and such a message fails as an
    :class:`~signalish.errors.AuthenticationError` instead.

    Raises :class:`BackupCostExceeded` (before any key derivation) if the
    blob's Argon2id parameters exceed ``max_cost`` in any of iterations,
    lanes or memory, :class:`WrongPassword` or :class:`BackupDamaged`, and
    :class:`~signalish.errors.InvalidArgument` for a backup with local data
    and a store that cannot keep it, or for a store that keeps sender keys
    but cannot list or delete them (our own, which must go, see
    :func:`~signalish.groups.forget_own_sender_keys`); nothing is written
    then.
    """
    identity, ring, identities, sessions, local = _open_backup(blob, password, max_cost)
    keeps_local = isinstance(store, LocalStore)
    if local and not keeps_local:
        raise InvalidArgument("the backup holds local data and the store cannot keep it")
    rng = rng if rng is not None else SystemRandom()
    new_ring = None
    if ring is not None:
        new_ring = PreKeyRing.from_bytes(ring, identity)
        new_ring.restart(rng, now=now, next_ids=next_ids)
    records = []
    for address, data in sessions:
        record = SessionRecord.from_bytes(data)
        record.block_sending()
        records.append((address, record))
    with store.transaction():
        if new_ring is not None:
            for part in store.prekey_parts():  # the ring is replaced, row by row
                store.delete_prekeys(part)
            save_ring(store, new_ring, {})
        for address, peer_key in identities:
            store.save_identity(address, peer_key)
        for address, record in records:
            store.delete_session(address)
            save_record(store, address, record, {})
        # Backups carry no sender keys; own ones already in this store may
        # be older than what this account sent: start new ones.
        forget_own_sender_keys(store)
        if keeps_local:
            assert isinstance(store, LocalStore)
            save_identity_key_pair(store, identity)
            for name, data in local:
                store.save_local(name, data)
    return identity


_Contents = tuple[IdentityKeyPair, bytes | None, list[tuple[str, IdentityKey]],
                  list[tuple[str, bytes]], list[tuple[str, bytes]]]


def _open_backup(blob: bytes, password: str | bytes, max_cost: BackupParams) -> _Contents:
    """Check, decrypt and parse a backup (what it holds, as it was written)."""
    blob = bytes(blob)
    body, check = blob[:-_CHECK], blob[-_CHECK:]
    if len(blob) <= _CHECK or not hmac.compare_digest(hashlib.sha256(body).digest()[:_CHECK], check):
        raise BackupDamaged("backup checksum does not match: truncated or damaged")
    try:
        r = Reader(body, Tag.BACKUP, "Backup")
        params = BackupParams(r.u32("iterations"), r.u32("lanes"), r.u32("memory"))
        salt, verifier, nonce = r.fixed(16, "salt"), r.fixed(32, "verifier"), r.fixed(12, "nonce")
        ciphertext = r.var("ciphertext", _MAX_CONTENTS)
        r.finish()
    except (DecodeError, InvalidArgument) as error:
        raise BackupDamaged(f"backup header: {error}") from None
    if (params.iterations > max_cost.iterations or params.lanes > max_cost.lanes
            or params.memory_kib > max_cost.memory_kib):
        raise BackupCostExceeded(
            f"the backup asks for Argon2id t={params.iterations}, p={params.lanes}, "
            f"m={params.memory_kib} KiB, above max_cost (t={max_cost.iterations}, "
            f"p={max_cost.lanes}, m={max_cost.memory_kib} KiB)")
    key, expected = _derive(password, salt, params)
    if not hmac.compare_digest(expected, verifier):
        raise WrongPassword("the password does not open this backup")
    try:
        contents = aes256_gcm_decrypt(key, nonce, ciphertext, body[:len(body) - len(ciphertext)])
    except AuthenticationError:
        raise BackupDamaged("backup contents fail authentication: altered") from None
    try:
        return _parse_contents(contents)
    except (SignalishError, UnicodeDecodeError) as error:
        raise BackupDamaged(f"backup contents: {error}") from None


def _parse_contents(contents: bytes) -> _Contents:
    """Parse and validate everything before anything is written."""
    r = Reader(contents, Tag.BACKUP_CONTENTS, "BackupContents", frozenset({1, _LOCAL_VERSION}))
    try:
        identity = IdentityKeyPair.from_seed(r.fixed(32, "identity seed"))
    except InvalidArgument:
        raise InvalidEncoding("BackupContents: identity seed has sign bit 1") from None
    ring = r.var("prekeys", _MAX_CONTENTS) if r.flag("prekeys present") else None
    identities = [(r.var("address", 4096).decode("utf-8", "strict"),
                   IdentityKey.from_public_bytes(r.fixed(32, "identity key")))
                  for _ in range(r.count("identity count", _MAX_ENTRIES))]
    sessions = [(r.var("address", 4096).decode("utf-8", "strict"), r.var("record", _MAX_CONTENTS))
                for _ in range(r.count("session count", _MAX_ENTRIES))]
    local: list[tuple[str, bytes]] = []
    if r.version == _LOCAL_VERSION:
        local = [(r.var("name", 4096).decode("utf-8", "strict"), r.var("data", _MAX_CONTENTS))
                 for _ in range(r.count("local count", _MAX_ENTRIES))]
        names = [name for name, _ in local]
        if any(name.startswith(RESERVED_PREFIX) for name in names):
            raise InvalidEncoding("BackupContents: a reserved local-data name")
        if names != sorted(set(names)):
            raise InvalidEncoding("BackupContents: local-data names not sorted and distinct")
    r.finish()
    if ring is not None:
        PreKeyRing.from_bytes(ring, identity)
    for _, record in sessions:
        SessionRecord.from_bytes(record)
    return identity, ring, identities, sessions, local
