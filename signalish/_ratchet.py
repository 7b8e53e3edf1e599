"""The Double Ratchet (Signal's Double Ratchet spec, rev 1).

Theory of operation.  A :class:`RatchetState` holds the spec's variables
(section 3.2): our ratchet key pair DHs, the peer's ratchet key DHr, the
root key RK, the sending and receiving chain keys CKs and CKr, the counters
Ns, Nr and PN, and, with header encryption (section 4), HKs, HKr, NHKs and
NHKr.  Skipped message keys live in a :class:`~signalish._window.Window`.

:func:`ratchet_encrypt` is section 3.4's RatchetEncrypt (4.3's
RatchetEncryptHE).  :func:`ratchet_decrypt` is RatchetDecrypt (4.3's
RatchetDecryptHE) made transactional: it works out every new value in local
variables, authenticates the message, and only then writes them into the
state.  A decryption that raises has changed nothing; no copy of the state is
made on the way.

The ratchet never touches bytes on the wire.  Encrypting yields the header
(the spec's HEADER(DHs, PN, Ns)), the message key and, with header
encryption, the header key; a wire format (``_message`` for the native
profile, ``_wire_v3`` for libsignal's) turns them into a message.
Decrypting takes a parsed message that offers what the spec's receiver
needs: its header in the clear, or trial decryption of the header under a
header key, and the opening of its body under a message key.  A new
message format, or a ratchet that mixes a second key into every message key
(SPQR's triple ratchet), is a new wire module, not an edit here.

Choices section 5.2 leaves open: KDF_RK is HKDF with the root key as salt,
64 bytes (96 with header encryption: the last 32 are the next header key);
KDF_CK is HMAC-SHA-256 with 0x01 (message key) and 0x02 (next chain key).
"""

from __future__ import annotations

from hmac import digest as _hmac_digest
from typing import Final, NamedTuple, Protocol

from ._errors import (
    AuthenticationError,
    AwaitingFirstMessage,
    ChainExhausted,
    InvalidKey,
    MessageRejected,
    SignalishError,
    TooFarAhead,
)
from ._primitives import PrivateKey, PublicKey, RandomSource, hkdf
from ._profile import Profile
from ._window import MAX_COUNTER, Chain, RatchetLimits, Reason, Window

__all__ = ["RatchetState", "Header", "Sending", "Received", "kdf_rk", "kdf_ck",
           "ratchet_encrypt", "ratchet_decrypt", "Located", "locate", "decrypt_located",
           "refusal"]

_MESSAGE_KEY: Final = b"\x01"
_CHAIN_KEY: Final = b"\x02"


class Header(NamedTuple):
    """HEADER(dh_pair, pn, n) (section 3.4): the sender's ratchet public key,
    the length of its previous sending chain, and the message number."""

    ratchet_key: bytes
    pn: int
    n: int


class Sending(NamedTuple):
    """What :func:`ratchet_encrypt` hands the wire format: the header, the
    message key, and the header key when headers are encrypted."""

    header: Header
    message_key: bytes
    header_key: bytes | None


class Received(Protocol):
    """A parsed message, as the receiving ratchet sees it.  Wire formats
    implement it; its methods raise nothing but what they document."""

    @property
    def header(self) -> Header | None:
        """The header, or None when it is encrypted."""

    def open_header(self, header_key: bytes) -> Header | None:
        """DecryptHeader (section 4.2): the header if ``header_key`` opens it."""

    def open(self, message_key: bytes, ad: bytes) -> bytes:
        """DECRYPT (section 3.1): the plaintext, or
        :class:`~signalish.errors.AuthenticationError`."""


def kdf_rk(profile: Profile, rk: bytes, dh_out: bytes, header_keys: bool) -> tuple[bytes, bytes, bytes]:
    """KDF_RK (section 5.2): (root key, chain key, next header key or b"")."""
    out = hkdf(dh_out, salt=rk, info=profile.ratchet_info,
               length=96 if header_keys else 64, hash_name=profile.kdf_hash)
    return out[:32], out[32:64], out[64:]


def kdf_ck(ck: bytes) -> tuple[bytes, bytes]:
    """KDF_CK (section 5.2): (next chain key, message key).  The hot loop of
    a long gap calls it once per key, so it calls the standard library's
    one-shot HMAC directly (OpenSSL underneath, as ``hmac_sha256`` is)."""
    return _hmac_digest(ck, _CHAIN_KEY, "sha256"), _hmac_digest(ck, _MESSAGE_KEY, "sha256")


class RatchetState:
    """The Double Ratchet's variables for one session.  Mutable, as the spec's
    state is; only :func:`ratchet_encrypt` and :func:`ratchet_decrypt` change it."""

    __slots__ = ("profile", "header_encryption", "dhs", "dhs_public", "dhr",
                 "rk", "cks", "ckr", "ns", "nr", "pn", "hks", "hkr", "nhks", "nhkr", "step",
                 "window")

    def __init__(self, profile: Profile, header_encryption: bool, dhs: PrivateKey,
                 dhs_public: bytes, rk: bytes) -> None:
        self.profile = profile
        self.header_encryption = header_encryption
        # Both halves are kept: the public one goes in every header, and
        # deriving it from the private key would cost a scalar multiplication.
        self.dhs = dhs
        self.dhs_public = dhs_public
        self.dhr: bytes | None = None
        self.rk = rk
        self.cks: bytes | None = None
        self.ckr: bytes | None = None
        self.ns = self.nr = self.pn = 0
        self.hks: bytes | None = None
        self.hkr: bytes | None = None
        self.nhks: bytes | None = None
        self.nhkr: bytes | None = None
        self.step = 0
        self.window = Window()

    @classmethod
    def init_alice(cls, profile: Profile, sk: bytes, bob_ratchet_key: PublicKey,
                   rng: RandomSource, header_encryption: bool) -> RatchetState:
        """RatchetInitAlice (section 3.3) / RatchetInitAliceHE (section 4.3)."""
        rk, hka, nhkb = _split_sk(profile, sk, header_encryption)
        dhs = PrivateKey.generate(rng)
        state = cls(profile, header_encryption, dhs, dhs.public.public_bytes_raw(), rk)
        state.dhr = bob_ratchet_key.public_bytes_raw()
        if profile.ratchet_start == "libsignal":
            # libsignal: Bob may send at once on SK's chain key, with his
            # signed prekey as ratchet key; Alice keeps that receiving chain.
            state.ckr = sk[32:64]
            state.window.open_chain(bob_ratchet_key.public_bytes_raw(), 0)
        state.rk, state.cks, nhks = kdf_rk(profile, rk, dhs.exchange(bob_ratchet_key),
                                           header_encryption)
        if header_encryption:
            state.hks, state.nhks, state.nhkr = hka, nhks, nhkb
        return state

    @classmethod
    def init_bob(cls, profile: Profile, sk: bytes, bob_ratchet_key: PrivateKey,
                 header_encryption: bool) -> RatchetState:
        """RatchetInitBob (section 3.3) / RatchetInitBobHE (section 4.3)."""
        rk, hka, nhkb = _split_sk(profile, sk, header_encryption)
        state = cls(profile, header_encryption, bob_ratchet_key, bob_ratchet_key.public.public_bytes_raw(), rk)
        if profile.ratchet_start == "libsignal":
            state.cks = sk[32:64]
        if header_encryption:
            state.nhks, state.nhkr = nhkb, hka
        return state


def _split_sk(profile: Profile, sk: bytes, header_encryption: bool) -> tuple[bytes, bytes, bytes]:
    if not header_encryption:
        return sk[:32], b"", b""
    out = hkdf(sk, salt=None, info=profile.header_keys_info, length=96,
               hash_name=profile.kdf_hash)
    return out[:32], out[32:64], out[64:]


def ratchet_encrypt(state: RatchetState) -> Sending:
    """RatchetEncrypt (section 3.4) or RatchetEncryptHE (section 4.3), up to
    the encryption itself: advances the sending chain and returns what the
    wire format needs to write the message.

    Raises :class:`~signalish.errors.AwaitingFirstMessage` if the state has no
    sending chain,
    :class:`~signalish.errors.ChainExhausted` at the chain's last number."""
    if state.cks is None:
        raise AwaitingFirstMessage("this session cannot send until it has received a message")
    if state.ns >= MAX_COUNTER:
        # Message numbers are 32-bit and Ns must stay storable after the
        # increment, so the last number a chain sends is 2**32 - 2.
        raise ChainExhausted("sending chain exhausted (2**32 - 1 messages); start a new session")
    state.cks, mk = kdf_ck(state.cks)
    header = Header(state.dhs_public, state.pn, state.ns)
    state.ns += 1
    return Sending(header, mk, state.hks if state.header_encryption else None)


def _skip(ck: bytes, start: int, until: int, now: int) -> tuple[bytes, dict[int, tuple[bytes, int]]]:
    """Derive the message keys start..until-1, as window entries stamped
    ``now``, and the chain key at ``until`` (the hot loop of a long gap)."""
    keys = {}
    for n in range(start, until):
        ck, mk = kdf_ck(ck)
        keys[n] = (mk, now)
    return ck, keys


class Located:
    """Where a received message belongs in one state, worked out from its
    header alone (no chain key is derived): a remembered chain (``chain``),
    a forgotten one (``forgotten``), or, when neither, a new DH ratchet step
    with the peer's ratchet key ``key``."""

    __slots__ = ("chain", "is_current", "forgotten", "chain_id", "key", "pn", "n")

    def __init__(self, chain: Chain | None, is_current: bool, forgotten: Reason | None,
                 chain_id: bytes, key: bytes, pn: int, n: int) -> None:
        self.chain = chain
        self.is_current = is_current
        self.forgotten = forgotten
        self.chain_id = chain_id
        self.key = key
        self.pn = pn
        self.n = n

    @property
    def known(self) -> bool:
        """Whether this state recognizes the message's chain (remembered or
        forgotten): then no other session of the record can own it."""
        return self.chain is not None or self.forgotten is not None

    def steps(self, state: RatchetState) -> int:
        """KDF_CK steps needed before the message can be authenticated."""
        if self.chain is None:
            return self.n + 1
        if self.is_current and self.n >= state.nr:
            return self.n - state.nr + 1
        return 0


def locate(state: RatchetState, frame: Received) -> Located | None:
    """Classify ``frame`` against ``state`` from its header (section 3.5's
    first tests, and with header encryption section 4.3's trial header
    decryption).  None: no header key of this state opens the header."""
    window = state.window
    current = window.chains[-1] if state.ckr is not None else None
    header = frame.header
    if header is None:
        opened = _open_header(state, current, frame)
        if opened is None:
            return None
        chain_id, header = opened
    else:
        chain_id = header.ratchet_key
    key, pn, n = header
    if current is not None and current.chain_id == chain_id:
        return Located(current, True, None, chain_id, key, pn, n)
    chain = window.find(chain_id)
    if chain is not None:
        return Located(chain, False, None, chain_id, key, pn, n)
    return Located(None, False, window.forgotten_reason(chain_id), chain_id, key, pn, n)


def ratchet_decrypt(state: RatchetState, frame: Received, ad: bytes, *,
                    now: int, rng: RandomSource, limits: RatchetLimits) -> bytes:
    """RatchetDecrypt (section 3.5) / RatchetDecryptHE (section 4.3).

    On success the state has advanced and the plaintext is returned.  On any
    error (:class:`~signalish.errors.AuthenticationError` or a
    :class:`~signalish.errors.MessageRejected` subclass) the state is exactly as it was.
    """
    where = locate(state, frame)
    if where is None:
        raise AuthenticationError("decryption failed")
    return decrypt_located(state, where, frame, ad, now=now, rng=rng, limits=limits)


def refusal(state: RatchetState, where: Located, *, now: int,
            limits: RatchetLimits) -> SignalishError | None:
    """The verdict :func:`decrypt_located` gives ``where`` before it derives
    any key or checks any MAC (a duplicate, a key evicted or expired, a
    message too far ahead, a message past its chain's end), or None if it
    would go on to the MAC.  Changes nothing.  A second ratchet that must
    act before the MAC (SPQR) asks this first, so that the Double Ratchet's
    own verdicts come out as they would without it."""
    n = where.n
    if n >= MAX_COUNTER or where.pn > MAX_COUNTER:
        return TooFarAhead(f"message {n} is beyond the end of any chain")
    chain = where.chain
    if chain is None:
        if where.forgotten is not None:
            return where.forgotten.error(f"message {n}")
        if n > limits.max_skip:
            return TooFarAhead(f"message {n} would skip {n} keys (max_skip {limits.max_skip})")
        return None
    if where.is_current and n == state.nr:
        return None
    next_n = state.nr if where.is_current else (chain.end if chain.end is not None else 0)
    try:
        if state.window.classify(chain, n, next_n, now, limits) is not None:
            return None
    except (AuthenticationError, MessageRejected) as error:
        return error
    if not where.is_current:
        return AuthenticationError("decryption failed")
    if n - state.nr > limits.max_skip:
        return TooFarAhead(f"message {n} would skip {n - state.nr} keys (max_skip {limits.max_skip})")
    return None


def decrypt_located(state: RatchetState, where: Located, frame: Received, ad: bytes, *,
                    now: int, rng: RandomSource, limits: RatchetLimits) -> bytes:
    """The rest of :func:`ratchet_decrypt`, for a message already located."""
    n = where.n
    if n >= MAX_COUNTER or where.pn > MAX_COUNTER:
        # An honest sender never uses the last counter value (see
        # ratchet_encrypt); refusing it keeps Nr and chain ends in 32 bits.
        raise TooFarAhead(f"message {n} is beyond the end of any chain")
    if where.chain is not None:
        return _decrypt_in_chain(state, where.chain, where.is_current, n, frame, ad, now, limits)
    if where.forgotten is not None:
        raise where.forgotten.error(f"message {n}")
    current = state.window.chains[-1] if state.ckr is not None else None
    return _decrypt_new_step(state, current, where.key, where.pn, n, where.chain_id, frame, ad,
                             now, rng, limits)


def _open_header(state: RatchetState, current: Chain | None, frame: Received
                 ) -> tuple[bytes, Header] | None:
    """Which header key opens the header, and the header (section 4.3: HKr
    first, then NHKr; then older and forgotten chains, to classify late
    messages).  None if none does."""
    candidates: list[bytes | None] = [None if current is None else current.chain_id, state.nhkr]
    candidates += [c.chain_id for c in reversed(state.window.chains) if c is not current]
    candidates += [chain_id for chain_id, _ in state.window.forgotten]
    for hk in candidates:
        if hk is None:
            continue
        header = frame.open_header(hk)
        if header is not None:
            return hk, header
    return None


def _decrypt_in_chain(state: RatchetState, chain: Chain, is_current: bool, n: int,
                      frame: Received, ad: bytes, now: int,
                      limits: RatchetLimits) -> bytes:
    window = state.window
    if is_current and n == state.nr:  # the next message in order: nothing stored for it
        assert state.ckr is not None
        next_ck, mk = kdf_ck(state.ckr)
        plaintext = frame.open(mk, ad)
        state.ckr = next_ck
        state.nr = n + 1
        if window.stored:
            window.enforce(now, state.step, limits)
        return plaintext
    next_n = state.nr if is_current else (chain.end if chain.end is not None else 0)
    stored = window.classify(chain, n, next_n, now, limits)
    if stored is not None:
        plaintext = frame.open(stored, ad)
        window.take(chain, n)
        window.enforce(now, state.step, limits)
        return plaintext
    if not is_current:
        raise AuthenticationError("decryption failed")
    if n - state.nr > limits.max_skip:
        raise TooFarAhead(f"message {n} would skip {n - state.nr} keys (max_skip {limits.max_skip})")
    assert state.ckr is not None
    ck, skipped = _skip(state.ckr, state.nr, n, now)
    next_ck, mk = kdf_ck(ck)
    plaintext = frame.open(mk, ad)
    window.add(chain, skipped)
    state.ckr = next_ck
    state.nr = n + 1
    if window.stored:  # only stored keys can have aged; chains change only at DH steps
        window.enforce(now, state.step, limits)
    return plaintext


def _decrypt_new_step(state: RatchetState, current: Chain | None, key: bytes, pn: int, n: int,
                      new_chain_id: bytes, frame: Received, ad: bytes,
                      now: int, rng: RandomSource, limits: RatchetLimits) -> bytes:
    """DHRatchet (section 3.5 / 4.3) with the skipped keys of section 3.5.

    Only the new chain is walked before the message authenticates (at most
    ``max_skip`` steps); the previous chain's skipped keys are derived after,
    so a forged message never costs that walk.  If the peer's previous chain
    ran on past the farthest message a current chain may reach (``Nr +
    max_skip``), its unreachable tail is given up (late messages from it are refused as evicted) instead of
    refusing the step: otherwise every later message, which repeats the same
    PN, would be refused too and the session could never recover.
    """
    if n > limits.max_skip:
        raise TooFarAhead(f"message {n} would skip {n} keys (max_skip {limits.max_skip})")
    try:
        their_key = PublicKey.from_public_bytes(key)
    except InvalidKey:
        raise AuthenticationError("decryption failed") from None
    profile, he = state.profile, state.header_encryption
    try:
        rk, ckr, nhkr = kdf_rk(profile, state.rk, state.dhs.exchange(their_key), he)
    except InvalidKey:
        raise AuthenticationError("decryption failed") from None
    ck, new_skipped = _skip(ckr, 0, n, now)
    next_ck, mk = kdf_ck(ck)
    plaintext = frame.open(mk, ad)
    # Authenticated: commit.  First the receiving half of the step...
    window = state.window
    if current is not None and state.ckr is not None:
        if current.step == 0 and pn == 1:
            # Only libsignal's start opens a chain at step 0 (Alice's, for
            # Bob's signed prekey with SK's chain key), and nobody sends on
            # it: Bob ratchets on the message that creates his session.  His
            # first PreviousCounter, max(count, 1) - 1 = 0, means a count of 0.
            pn = 0
        # As far as a message on a current chain may reach: max_skip keys
        # skipped, plus the one at nr + max_skip (libsignal reaches as far).
        reachable = min(pn, state.nr + limits.max_skip + 1)
        _, old_skipped = _skip(state.ckr, state.nr, reachable, now)
        window.add(current, old_skipped)
        window.finish(current, max(pn, state.nr), reachable if reachable < pn else None)
    state.step += 1
    chain = window.open_chain(new_chain_id, state.step)
    window.add(chain, new_skipped)
    state.pn, state.ns, state.nr = state.ns, 0, n + 1
    state.dhr, state.ckr = key, next_ck
    if he:
        state.hks, state.hkr, state.nhkr = state.nhks, state.nhkr, nhkr
    # ...then the sending half, with a fresh ratchet key.
    dhs = PrivateKey.generate(rng)
    state.rk, state.cks, state.nhks = kdf_rk(profile, rk, dhs.exchange(their_key), he)
    state.dhs, state.dhs_public = dhs, dhs.public.public_bytes_raw()
    if not he:
        state.nhks = None
    window.enforce(now, state.step, limits)
    return plaintext
