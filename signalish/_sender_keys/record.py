""":class:`SenderKeyRecord`: what one party knows of one (sender,
distribution id), its states (:class:`SenderKeyState`), the rules that
decide which state a distribution message changes, and its stored format.
"""

from __future__ import annotations

import uuid

from .._encoding import Reader, Writer, add_digest, check_digest
from .._errors import (
    AuthenticationError,
    ChainExhausted,
    DuplicateMessage,
    InvalidArgument,
    InvalidEncoding,
    InvalidKey,
    MessageKeyEvicted,
    NoSession,
    TooFarAhead,
)
from .._keys import IdentityKeyPair
from .._primitives import RandomSource, XEdDSAVerifier, ct_equal
from .._profile import PROFILES, Profile
from .._ratchet import kdf_ck
from .messages import (
    _MAX_RECORD_KEYS,
    DEFAULT_LIMITS,
    MAX_ITERATION,
    RECORD_VERSION,
    TAG_SENDER_KEY_RECORD,
    SenderKeyDistributionMessage,
    SenderKeyLimits,
    SenderKeyMessage,
    _as_bytes,
    _open,
    _seal,
    _signing_key,
)

__all__ = ["SenderKeyState", "SenderKeyRecord"]


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
