"""Sender keys: group messages encrypted once for every member.

Theory of operation.  A member who sends to a group has one sender key per
distribution id (a UUID that names the audience).  A sender key is a chain
id (a random number in 0..2**31-1 that names it), a chain key with its
iteration, and a signing key pair.  The sender hands the chain key, the
iteration and the public signing key to each member in a
SenderKeyDistributionMessage (SKDM), inside their 1:1 sessions, which
authenticate it.  Each group message then steps the chain as the Double
Ratchet's symmetric chain steps (KDF_CK, Double Ratchet section 5.2), is
encrypted once under that step's message key, and is signed: every member
holds the chain key, so only the signature says who wrote the message.

A :class:`SenderKeyRecord` holds what one party knows of one (sender,
distribution id): up to ``max_states`` states, newest first.  A state is a
chain id, the chain key and the next iteration, the public signing key (and
the private one, for our own sender key), the message keys of skipped
iterations (at most ``max_message_keys``; the lowest go first) and a floor:
every iteration below it is gone.

The rules follow libsignal-client 0.103.0, observed from outside
(docs/sender_keys.md):

* an SKDM whose chain id and signing key match a state moves that state to
  the front and changes nothing else;
* an SKDM with a known chain id and another signing key replaces that
  state, at the front;
* any other SKDM adds a state at the front; past ``max_states`` the oldest
  state is dropped;
* a message more than ``max_forward_jump`` iterations past the state's next
  one is refused.

Decrypt checks, in this order: the message parses (its version, then every
field); the record's distribution id is the message's; a state has its chain
id (else :class:`NoSession`); the signature (else
:class:`AuthenticationError`); the iteration (:class:`DuplicateMessage`,
:class:`MessageKeyEvicted` below the floor, :class:`TooFarAhead`); the
decryption itself (:class:`AuthenticationError`).  The record changes only
after all of them passed, and a used message key is deleted at once.

Two wire formats, chosen by the profile: libsignal's (``0x33`` and a
protobuf, AES-256-CBC, XEdDSA in libsignal's form) for the libsignal
profiles, and signalish's own (tags 0x90 and 0x91, AES-256-GCM, XEdDSA in
the spec's form) for NATIVE.  Signing keys are Ed25519 seeds whose Edwards
sign bit is 0, as identity keys are, so one signature verifies in both forms.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Final, Protocol

from ._encoding import Reader, Tag, Writer, add_digest, check_digest
from ._errors import (
    AuthenticationError,
    ChainExhausted,
    CorruptState,
    DuplicateMessage,
    InvalidArgument,
    InvalidEncoding,
    InvalidKey,
    InvalidLength,
    MessageKeyEvicted,
    NoSession,
    TooFarAhead,
    TruncatedInput,
    UnknownVersion,
)
from ._keys import IdentityKeyPair
from ._primitives import (
    PublicKey,
    RandomSource,
    SystemRandom,
    XEdDSAVerifier,
    aes256_cbc_decrypt,
    aes256_cbc_encrypt,
    aes256_gcm_decrypt,
    aes256_gcm_encrypt,
    ct_equal,
    hkdf,
)
from ._profile import PROFILES, Profile
from ._ratchet import kdf_ck
from ._wire_v3 import _bytes_field, _ProtoReader, _uint_field

__all__ = [
    "SenderKeyLimits",
    "SenderKeyDistributionMessage",
    "SenderKeyMessage",
    "SenderKeyState",
    "SenderKeyRecord",
    "RecordStore",
    "GroupCipher",
    "TAG_DISTRIBUTION_MESSAGE",
    "TAG_SENDER_KEY_MESSAGE",
    "TAG_SENDER_KEY_RECORD",
]

#: Native SenderKeyDistributionMessage.
TAG_DISTRIBUTION_MESSAGE: Final = Tag.SENDER_KEY_DISTRIBUTION
#: Native SenderKeyMessage.
TAG_SENDER_KEY_MESSAGE: Final = Tag.SENDER_KEY_MESSAGE
#: SenderKeyRecord, our storage format in every profile.
TAG_SENDER_KEY_RECORD: Final = Tag.SENDER_KEY_RECORD
RECORD_VERSION: Final = 1

#: libsignal's version byte: message version 3 in both nibbles.
LIBSIGNAL_VERSION: Final = 0x33
SIGNATURE_SIZE: Final = 64
MAX_ITERATION: Final = 0xFFFFFFFF
_LIBSIGNAL_INFO: Final = b"WhisperGroup"
_NATIVE_INFO: Final = b"signalish_SenderKeyMessage"
_GCM_TAG: Final = 16
# Sanity bounds of the record format, far above any sensible limit.
_MAX_RECORD_STATES: Final = 255
_MAX_RECORD_KEYS: Final = 1 << 20
_NATIVE_SKM_PREFIX: Final = 2 + 16 + 4 + 4 + 4


@dataclass(frozen=True, slots=True)
class SenderKeyLimits:
    """Bounds on what a sender key record keeps (libsignal's values by default).

    ``max_forward_jump``: a message may be at most this many iterations past
    the state's next one (libsignal: 25,000).
    ``max_message_keys``: message keys of skipped iterations kept per state;
    the lowest go first (libsignal: 2,000).
    ``max_states``: states kept per record, newest first (libsignal: 5).
    ``max_message_size``: the largest plaintext accepted, in bytes.
    """

    max_forward_jump: int = 25_000
    max_message_keys: int = 2_000
    max_states: int = 5
    max_message_size: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        for name, low, high in (("max_forward_jump", 0, MAX_ITERATION),
                                ("max_message_keys", 0, _MAX_RECORD_KEYS),
                                ("max_states", 1, _MAX_RECORD_STATES),
                                ("max_message_size", 1, MAX_ITERATION)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidArgument(f"SenderKeyLimits.{name} must be {low}..{high}, got {value!r}")


DEFAULT_LIMITS: Final = SenderKeyLimits()


def _as_bytes(data: object, what: str) -> bytes:
    """``data`` as bytes; anything but bytes-like is the caller's mistake."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidArgument(f"{what}: expected bytes, got {type(data).__name__}")
    return bytes(data)


def _check_u32(value: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ITERATION:
        raise InvalidArgument(f"{what} must be 0..2**32-1, got {value!r}")


def _signing_key(u: bytes, what: str) -> bytes:
    """Refuse a signing key that is not a canonical, non-low-order u."""
    try:
        PublicKey.from_public_bytes(u)
    except InvalidKey:
        raise InvalidKey(f"{what}: the signing key is not an acceptable X25519 point") from None
    return u


def _libsignal_version(data: bytes, what: str) -> None:
    """libsignal reads only the high nibble of the version byte."""
    if not data:
        raise TruncatedInput(f"{what}: empty")
    if data[0] >> 4 != 3:
        raise UnknownVersion(f"{what}: version byte 0x{data[0]:02x} is not message version 3")


def _proto_bytes(r: _ProtoReader, tag: int, size: int, what: str, exact: bool = True) -> bytes:
    """Field ``tag``: exactly ``size`` bytes, or at most ``size`` if not
    ``exact``.  The length is checked here, not by the reader, so that a
    wrong one is InvalidLength."""
    value = r.bytes_(tag, MAX_ITERATION)
    assert value is not None
    if len(value) > size or (exact and len(value) != size):
        raise InvalidLength(f"{what}: field {tag} is {len(value)} bytes, "
                            f"{'not' if exact else 'over'} {size}")
    return value


def _proto_uint(r: _ProtoReader, tag: int) -> int:
    value = r.uint32(tag)
    assert value is not None
    return value


# --- the two messages ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SenderKeyDistributionMessage:
    """A parsed SKDM: what a member needs to read one sender's messages.

    ``signing_key`` is the 32-byte Montgomery u of the sender's signing key;
    ``chain_key`` belongs to ``iteration`` (secret: not in repr).
    """

    distribution_id: uuid.UUID
    chain_id: int
    iteration: int
    chain_key: bytes = field(repr=False)
    signing_key: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.distribution_id, uuid.UUID):
            raise InvalidArgument("distribution_id must be a uuid.UUID")
        _check_u32(self.chain_id, "chain_id")
        _check_u32(self.iteration, "iteration")
        if len(self.chain_key) != 32 or len(self.signing_key) != 32:
            raise InvalidArgument("the chain key and the signing key are 32 bytes each")

    def to_bytes(self, profile: Profile) -> bytes:
        """The profile's encoding (docs/sender_keys.md)."""
        if profile.wire == "native":
            return (Writer(TAG_DISTRIBUTION_MESSAGE).fixed(self.distribution_id.bytes)
                    .u32(self.chain_id).u32(self.iteration).fixed(self.chain_key)
                    .fixed(self.signing_key).getvalue())
        return (bytes((LIBSIGNAL_VERSION,)) + _bytes_field(1, self.distribution_id.bytes)
                + _uint_field(2, self.chain_id) + _uint_field(3, self.iteration)
                + _bytes_field(4, self.chain_key) + _bytes_field(5, b"\x05" + self.signing_key))

    @classmethod
    def parse(cls, data: bytes, profile: Profile) -> SenderKeyDistributionMessage:
        """Strict inverse of :meth:`to_bytes`.  Raises a
        :class:`~signalish.errors.DecodeError` subclass for malformed bytes and
        :class:`~signalish.errors.InvalidKey` for an unacceptable signing key."""
        what = "SenderKeyDistributionMessage"
        data = _as_bytes(data, what)
        if profile.wire == "native":
            r = Reader(data, TAG_DISTRIBUTION_MESSAGE, what)
            dist, chain_id, iteration = r.fixed(16, "distribution id"), r.u32("chain id"), r.u32("iteration")
            chain_key, key = r.fixed(32, "chain key"), r.fixed(32, "signing key")
            r.finish()
        else:
            _libsignal_version(data, what)
            p = _ProtoReader(data[1:], what)
            dist = _proto_bytes(p, 1, 16, what)
            chain_id, iteration = _proto_uint(p, 2), _proto_uint(p, 3)
            chain_key, encoded = _proto_bytes(p, 4, 32, what), _proto_bytes(p, 5, 33, what)
            p.finish()
            if encoded[0] != 0x05:
                raise InvalidEncoding(f"{what}: the signing key does not start 0x05")
            key = encoded[1:]
        return cls(uuid.UUID(bytes=dist), chain_id, iteration, chain_key, _signing_key(key, what))


@dataclass(frozen=True, slots=True)
class SenderKeyMessage:
    """A parsed group message.  ``signed`` is every byte the signature covers."""

    distribution_id: uuid.UUID
    chain_id: int
    iteration: int
    ciphertext: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    signed: bytes = field(repr=False)

    @classmethod
    def parse(cls, data: bytes, profile: Profile,
              max_message_size: int = DEFAULT_LIMITS.max_message_size) -> SenderKeyMessage:
        """Parse strictly, bounding the ciphertext by ``max_message_size``
        first.  The distribution id says which record to load.  Raises a
        :class:`~signalish.errors.DecodeError` subclass."""
        what = "SenderKeyMessage"
        data = _as_bytes(data, what)
        if profile.wire == "native":
            r = Reader(data, TAG_SENDER_KEY_MESSAGE, what)
            dist, chain_id, iteration = r.fixed(16, "distribution id"), r.u32("chain id"), r.u32("iteration")
            length = r.u32("ciphertext length")
            if not _GCM_TAG <= length <= max_message_size + _GCM_TAG:
                raise InvalidLength(f"{what}: a ciphertext of {length} bytes is out of range")
            ciphertext, signature = r.fixed(length, "ciphertext"), r.fixed(SIGNATURE_SIZE, "signature")
            r.finish()
        else:
            _libsignal_version(data, what)
            if len(data) < 1 + SIGNATURE_SIZE:
                raise TruncatedInput(f"{what}: shorter than the version and the signature")
            p = _ProtoReader(data[1:-SIGNATURE_SIZE], what)
            dist = _proto_bytes(p, 1, 16, what)
            chain_id, iteration = _proto_uint(p, 2), _proto_uint(p, 3)
            ciphertext = _proto_bytes(p, 4, max_message_size + 16, what, exact=False)
            p.finish()
            if not ciphertext or len(ciphertext) % 16:
                raise InvalidLength(f"{what}: the ciphertext is not a whole number of AES blocks")
            signature = data[-SIGNATURE_SIZE:]
        return cls(uuid.UUID(bytes=dist), chain_id, iteration, ciphertext, signature,
                   data[:-SIGNATURE_SIZE])


def _seal(profile: Profile, seed: bytes, distribution_id: uuid.UUID, chain_id: int,
          iteration: int, plaintext: bytes, signer: IdentityKeyPair) -> bytes:
    if profile.wire == "native":
        okm = hkdf(seed, salt=None, info=_NATIVE_INFO, length=44)
        prefix = (Writer(TAG_SENDER_KEY_MESSAGE).fixed(distribution_id.bytes).u32(chain_id)
                  .u32(iteration).u32(len(plaintext) + _GCM_TAG).getvalue())
        signed = prefix + aes256_gcm_encrypt(okm[:32], okm[32:], plaintext, prefix)
    else:
        okm = hkdf(seed, salt=None, info=_LIBSIGNAL_INFO, length=48)
        signed = (bytes((LIBSIGNAL_VERSION,)) + _bytes_field(1, distribution_id.bytes)
                  + _uint_field(2, chain_id) + _uint_field(3, iteration)
                  + _bytes_field(4, aes256_cbc_encrypt(okm[16:], okm[:16], plaintext)))
    return signed + signer.sign(signed)


def _open(profile: Profile, seed: bytes, message: SenderKeyMessage) -> bytes:
    """Decrypt; any failure is :class:`AuthenticationError` and nothing else."""
    if profile.wire == "native":
        okm = hkdf(seed, salt=None, info=_NATIVE_INFO, length=44)
        return aes256_gcm_decrypt(okm[:32], okm[32:], message.ciphertext,
                                  message.signed[:_NATIVE_SKM_PREFIX])
    okm = hkdf(seed, salt=None, info=_LIBSIGNAL_INFO, length=48)
    return aes256_cbc_decrypt(okm[16:], okm[:16], message.ciphertext)


# --- state and record --------------------------------------------------------------


class SenderKeyState:
    """One sender key as a record holds it.  Read its attributes; only
    :class:`SenderKeyRecord` changes them.  ``repr`` shows no secret."""

    __slots__ = ("chain_id", "iteration", "chain_key", "signing_key", "floor",
                 "message_keys", "signer", "_verifier")

    def __init__(self, chain_id: int, iteration: int, chain_key: bytes, signing_key: bytes,
                 floor: int, message_keys: dict[int, bytes],
                 signer: IdentityKeyPair | None) -> None:
        self.chain_id = chain_id
        #: The iteration of ``chain_key``: the next message key to derive.
        self.iteration = iteration
        self.chain_key = chain_key
        #: Montgomery u of the signing key (32 bytes).
        self.signing_key = signing_key
        #: Every iteration below it is gone (evicted, or before the SKDM).
        self.floor = floor
        #: Iteration -> message key seed, in increasing iteration.
        self.message_keys = message_keys
        #: The signing key pair of our own sender key, else None.
        self.signer = signer
        self._verifier: XEdDSAVerifier | None = None

    def verify(self, message: SenderKeyMessage, profile: Profile) -> bool:
        if self._verifier is None:
            self._verifier = XEdDSAVerifier(self.signing_key)
        return self._verifier.verify(message.signed, message.signature, profile.xeddsa_form)

    def __repr__(self) -> str:
        return (f"SenderKeyState(chain_id={self.chain_id}, iteration={self.iteration}, "
                f"own={self.signer is not None}, stored_keys={len(self.message_keys)})")


class SenderKeyRecord:
    """The sender key states of one (sender, distribution id), newest first.

    Make one with :meth:`create` (our own sender key) or
    :meth:`from_distribution_message` (another member's); persist it with
    :meth:`to_bytes` (secret).  Methods that fail change nothing.
    """

    __slots__ = ("profile", "distribution_id", "_states")

    def __init__(self, profile: Profile, distribution_id: uuid.UUID,
                 states: list[SenderKeyState]) -> None:
        if not states:
            raise InvalidArgument("a sender key record holds at least one state")
        self.profile = profile
        self.distribution_id = distribution_id
        self._states = states

    @classmethod
    def create(cls, distribution_id: uuid.UUID, profile: Profile,
               rng: RandomSource) -> SenderKeyRecord:
        """A new sender key of our own: a random chain id in 0..2**31-1, a
        random chain key at iteration 0 and a new signing key.  Also how to
        rotate one (when a member leaves): create a new record, replace the
        old one and send its :meth:`distribution_message` to the members."""
        if not isinstance(distribution_id, uuid.UUID):
            raise InvalidArgument("distribution_id must be a uuid.UUID")
        chain_id = int.from_bytes(rng.random_bytes(4), "big") & 0x7FFFFFFF
        chain_key = rng.random_bytes(32)
        signer = IdentityKeyPair.generate(rng)
        state = SenderKeyState(chain_id, 0, chain_key, signer.public.public_bytes_raw(), 0, {},
                               signer)
        return cls(profile, distribution_id, [state])

    @classmethod
    def from_distribution_message(cls, message: bytes | SenderKeyDistributionMessage,
                                  profile: Profile) -> SenderKeyRecord:
        """A record for another member's sender key, from their SKDM.
        Raises what :meth:`SenderKeyDistributionMessage.parse` raises."""
        if not isinstance(message, SenderKeyDistributionMessage):
            message = SenderKeyDistributionMessage.parse(message, profile)
        return cls(profile, message.distribution_id, [_receiving_state(message)])

    @property
    def is_own(self) -> bool:
        """Whether this is our own sender key (a state holds its signing
        private key)."""
        return any(state.signer is not None for state in self._states)

    @property
    def states(self) -> tuple[SenderKeyState, ...]:
        """The states, newest first (read only)."""
        return tuple(self._states)

    def _own_state(self) -> tuple[SenderKeyState, IdentityKeyPair]:
        state = self._states[0]
        if state.signer is None:
            raise InvalidArgument("the newest sender key in this record is not ours: "
                                  "it has no signing key")
        return state, state.signer

    def distribution_message(self) -> bytes:
        """The SKDM of our current sender key: its chain id, current iteration
        and chain key (libsignal's SenderKeyDistributionMessage.create on an
        existing key; not a rotation).  Raises
        :class:`~signalish.errors.InvalidArgument` if the newest state is not
        ours."""
        state, _ = self._own_state()
        if state.iteration > MAX_ITERATION:
            raise ChainExhausted("this sender key has used every iteration")
        return SenderKeyDistributionMessage(self.distribution_id, state.chain_id, state.iteration,
                                            state.chain_key, state.signing_key).to_bytes(self.profile)

    def process(self, message: bytes | SenderKeyDistributionMessage,
                limits: SenderKeyLimits = DEFAULT_LIMITS) -> None:
        """Take in another SKDM for this distribution id (see the module
        docstring for the rules).  Raises what parsing raises, and
        :class:`~signalish.errors.InvalidArgument` for another distribution id."""
        if not isinstance(message, SenderKeyDistributionMessage):
            message = SenderKeyDistributionMessage.parse(message, self.profile)
        if message.distribution_id != self.distribution_id:
            raise InvalidArgument("the SKDM is for another distribution id than this record")
        states = self._states
        for index, state in enumerate(states):
            if state.chain_id == message.chain_id:
                if ct_equal(state.signing_key, message.signing_key):
                    states.insert(0, states.pop(index))
                    del states[limits.max_states:]
                    return
                del states[index]
                break
        states.insert(0, _receiving_state(message))
        del states[limits.max_states:]

    def encrypt(self, plaintext: bytes, limits: SenderKeyLimits = DEFAULT_LIMITS) -> bytes:
        """A group message on our newest sender key, which steps once.

        Raises :class:`~signalish.errors.InvalidArgument` if that key is not
        ours or the plaintext is over ``limits.max_message_size``, and
        :class:`~signalish.errors.ChainExhausted` after 2**32 messages."""
        state, signer = self._own_state()
        plaintext = bytes(plaintext)
        if len(plaintext) > limits.max_message_size:
            raise InvalidArgument(f"plaintext of {len(plaintext)} bytes exceeds the limit")
        if state.iteration > MAX_ITERATION:
            raise ChainExhausted("this sender key has used every iteration")
        chain_key, seed = kdf_ck(state.chain_key)
        message = _seal(self.profile, seed, self.distribution_id, state.chain_id,
                        state.iteration, plaintext, signer)
        state.chain_key, state.iteration = chain_key, state.iteration + 1
        return message

    def decrypt(self, message: bytes | SenderKeyMessage,
                limits: SenderKeyLimits = DEFAULT_LIMITS) -> bytes:
        """The plaintext of a group message from this record's sender.

        Raises, in the order checked: a DecodeError subclass (bytes that do
        not parse), :class:`~signalish.errors.InvalidArgument` (the message is
        for another distribution id), :class:`~signalish.NoSession` (no state
        with its chain id), :class:`~signalish.errors.AuthenticationError`
        (bad signature), :class:`~signalish.errors.DuplicateMessage`,
        :class:`~signalish.errors.MessageKeyEvicted` (below the floor),
        :class:`~signalish.errors.TooFarAhead`, then
        :class:`~signalish.errors.AuthenticationError` (the ciphertext does not
        decrypt).  Nothing changes unless it returns."""
        if not isinstance(message, SenderKeyMessage):
            message = SenderKeyMessage.parse(message, self.profile, limits.max_message_size)
        if message.distribution_id != self.distribution_id:
            raise InvalidArgument("the message is for another distribution id than this record")
        state = next((s for s in self._states if s.chain_id == message.chain_id), None)
        if state is None:
            raise NoSession("no sender key state for this message's chain id")
        if not state.verify(message, self.profile):
            raise AuthenticationError("decryption failed")
        n = message.iteration
        if n < state.iteration:
            seed = state.message_keys.get(n)
            if seed is None:
                if n < state.floor:
                    raise MessageKeyEvicted("sender key message: its key is no longer kept")
                raise DuplicateMessage("sender key message: already decrypted")
            plaintext = _open(self.profile, seed, message)
            del state.message_keys[n]
            return plaintext
        if n - state.iteration > limits.max_forward_jump:
            raise TooFarAhead("sender key message: too far ahead of the chain")
        keep_from = n - limits.max_message_keys
        chain_key, skipped = state.chain_key, {}
        for i in range(state.iteration, n):
            chain_key, key = kdf_ck(chain_key)
            if i >= keep_from:
                skipped[i] = key
        chain_key, seed = kdf_ck(chain_key)
        plaintext = _open(self.profile, seed, message)
        if keep_from > state.iteration:  # some skipped keys were never kept
            state.floor = max(state.floor, keep_from)
        state.message_keys.update(skipped)
        _trim(state, limits.max_message_keys)
        state.chain_key, state.iteration = chain_key, n + 1
        return plaintext

    # --- serialization -----------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Tag 0x92, version 1, the states, then a 16-byte SHA-256 digest
        (docs/sender_keys.md).  Secret: it holds chain keys and our signing
        seed."""
        w = Writer(TAG_SENDER_KEY_RECORD, RECORD_VERSION)
        w.var(self.profile.name.encode()).fixed(self.distribution_id.bytes).u8(len(self._states))
        for s in self._states:
            w.u32(s.chain_id).u64(s.iteration).u64(s.floor).fixed(s.chain_key).fixed(s.signing_key)
            w.flag(s.signer is not None)
            if s.signer is not None:
                w.fixed(s.signer.seed())
            w.u32(len(s.message_keys))
            for i, key in s.message_keys.items():
                w.u32(i).fixed(key)
        return add_digest(w.getvalue())

    @classmethod
    def from_bytes(cls, data: bytes) -> SenderKeyRecord:
        """Strict inverse of :meth:`to_bytes`.  Raises
        :class:`~signalish.errors.CorruptState` when the digest fails and a
        :class:`~signalish.errors.DecodeError` subclass when a field or an
        invariant does."""
        what = "SenderKeyRecord"
        r = Reader(check_digest(_as_bytes(data, what), what), TAG_SENDER_KEY_RECORD, what,
                   frozenset({RECORD_VERSION}))
        try:
            profile = PROFILES[r.var("profile", 64).decode("ascii")]
        except (KeyError, UnicodeDecodeError):
            raise InvalidEncoding(f"{what}: unknown profile") from None
        distribution_id = uuid.UUID(bytes=r.fixed(16, "distribution id"))
        count = r.u8("state count")
        if count == 0:
            raise InvalidEncoding(f"{what}: no state")
        states = [_read_state(r, what) for _ in range(count)]
        r.finish()
        if len({s.chain_id for s in states}) != count:
            raise InvalidEncoding(f"{what}: two states with one chain id")
        return cls(profile, distribution_id, states)

    def __repr__(self) -> str:
        return (f"SenderKeyRecord({self.profile.name}, {self.distribution_id}, "
                f"states={self._states!r})")


def _receiving_state(message: SenderKeyDistributionMessage) -> SenderKeyState:
    return SenderKeyState(message.chain_id, message.iteration, message.chain_key,
                          message.signing_key, message.iteration, {}, None)


def _trim(state: SenderKeyState, limit: int) -> None:
    """Drop the lowest stored keys beyond ``limit``; the floor rises past them."""
    excess = len(state.message_keys) - limit
    if excess > 0:
        items = list(state.message_keys.items())
        state.floor = max(state.floor, items[excess - 1][0] + 1)
        state.message_keys = dict(items[excess:])


def _read_state(r: Reader, what: str) -> SenderKeyState:
    chain_id, iteration, floor = r.u32("chain id"), r.u64("iteration"), r.u64("floor")
    if iteration > MAX_ITERATION + 1 or floor > iteration:
        raise InvalidEncoding(f"{what}: iteration or floor out of range")
    chain_key, signing_key = r.fixed(32, "chain key"), r.fixed(32, "signing key")
    try:
        _signing_key(signing_key, what)
    except InvalidKey:
        raise InvalidEncoding(f"{what}: unacceptable signing key") from None
    signer = None
    if r.flag("own"):
        try:
            signer = IdentityKeyPair.from_seed(r.fixed(32, "signing seed"))
        except InvalidArgument:
            raise InvalidEncoding(f"{what}: signing seed has Edwards sign bit 1") from None
        if not ct_equal(signer.public.public_bytes_raw(), signing_key):
            raise InvalidEncoding(f"{what}: signing seed does not match the signing key")
    keys: dict[int, bytes] = {}
    last = -1
    for _ in range(r.count("message key count", _MAX_RECORD_KEYS)):
        i = r.u32("message key iteration")
        if not floor <= i < iteration or i <= last:
            raise InvalidEncoding(f"{what}: stored message keys out of order or range")
        keys[i] = r.fixed(32, "message key")
        last = i
    return SenderKeyState(chain_id, iteration, chain_key, signing_key, floor, keys, signer)


# --- the store-facing API -------------------------------------------------------------


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

