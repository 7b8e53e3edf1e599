"""The SPQR key schedule: every KDF and MAC of the Sparse Post-Quantum
Ratchet, the ML-KEM Braid's authenticator, and the Triple Ratchet's
message keys, as libsignal instantiates them.

Pure functions on bytes; the state that carries these keys from one call to
the next belongs to the SPQR ratchet, not here.  Sources:

* "DR3" is Signal's *The Double Ratchet Algorithm*, revision 3 (2025-09-26),
  section 5 (SPQR), 6 (the Triple Ratchet) and 7 (implementation);
* "Braid" is Signal's *The ML-KEM Braid Protocol*, revision 1;
* "observed" means checked byte for byte against libsignal-client 0.103.0
  (messages and SessionRecords it wrote; tests/test_spqr_kdf.py replays them
  from tests/fixtures/spqr_keys.json).  The specs leave labels, encodings and
  the exact HKDF inputs to the implementation; every one of those below is
  observed.

HKDF is RFC 5869 with SHA-256; "salt 0" is 32 zero bytes (RFC 5869's
default).  u32be and u64be are big-endian unsigned integers.

Seed (DR3 section 7.1: one secret per ratchet out of the handshake; observed:
the third 32-byte block of the 96 bytes the version 4 PQXDH derives)::

    seed = PQXDH output[64:96]

KDF_SCKA_INIT, :func:`spqr_init` (DR3 section 5.2; label and split observed)::

    root || A2B || B2A = HKDF(salt 0, seed, "Signal PQ Ratchet V1 Chain  Start", 96)

The label has two spaces before "Start".  These are the chains of chain
epoch 0.  The initiator (direction A2B) sends on A2B and receives on B2A, the
responder the reverse.

KDF_SCKA_RK, :func:`add_epoch` (DR3 section 5.2: salt = root key, IKM = the
SCKA output; label observed)::

    root' || A2B || B2A = HKDF(salt = root, es, "Signal PQ Ratchet V1 Chain Add Epoch", 96)

where es is epoch e's secret (:func:`scka_key`); the chains are chain epoch e.

KDF_SCKA_CK, :func:`chain_step` (DR3 section 5.2: keyed by the chain key,
applied to the counter and a constant; the section 7.2 table for it is a
copy of KDF_SCKA_INIT's and is not followed; instantiation observed)::

    ck' || mk = HKDF(salt 0, ck, u32be(n) || "Signal PQ Ratchet V1 Chain Next", 64)

n is the SPQR index on the wire; a chain's first message has n = 1.  A
message stamped wire epoch e takes its key from chain epoch e - 1 (observed).

KDF_AUTH, :func:`auth_init` and :func:`auth_update` (Braid sections 2.2 and
2.4).  The Braid says salt = root, IKM = key; libsignal, observed, uses salt 0
and IKM root || key::

    root' || mac = HKDF(salt 0, root || key,
                        "Signal_PQCKA_V1_MLKEM768:Authenticator Update" || u64be(e), 64)

Init is Update at epoch 1 from a root of 32 zero bytes, with the seed as key.

KDF_OK, :func:`scka_key` (Braid section 2.2; label observed); K is the
ML-KEM-768 shared secret of epoch e, and both sides then call
:func:`auth_update` with es::

    es = HKDF(salt 0, K, "Signal_PQCKA_V1_MLKEM768:SCKA Key" || u64be(e), 32)

MacHdr and MacCt, :func:`mac_header` and :func:`mac_ciphertext` (Braid
section 2.4, HMAC-SHA256 as section 2.2 recommends; labels and the u64be epoch
observed).  MacCt uses the mac key after Update(e); MacHdr of epoch e + 1
therefore does too::

    MacHdr = HMAC-SHA256(mac, "Signal_PQCKA_V1_MLKEM768:ekheader" || u64be(e) || hdr)
    MacCt  = HMAC-SHA256(mac, "Signal_PQCKA_V1_MLKEM768:ciphertext" || u64be(e) || ct1 || ct2)

KDF_HYBRID, :func:`message_keys` (DR3 sections 6.3 and 7.2: salt = the SCKA
message key, IKM = the Double Ratchet message key; observed: libsignal folds
it into its version 3 key expansion, label "WhisperMessageKeys")::

    cipher key || MAC key || IV = HKDF(salt = SPQR mk, dr_mk, "WhisperMessageKeys", 80)

dr_mk is HMAC-SHA256(CK, 0x01), the message key of ``_ratchet.kdf_ck``.
Without an SPQR key the salt is absent, which is today's version 3 and 4
derivation in ``_wire_v3``.  (An SPQR key of 32 zero bytes gives the same
keys, as RFC 5869 makes an absent salt equal to zeros.)
"""

from __future__ import annotations

from typing import Final, NamedTuple

from ._errors import InvalidArgument
from ._primitives import hkdf, hmac_sha256

__all__ = [
    "INIT_LABEL",
    "ADD_EPOCH_LABEL",
    "CHAIN_NEXT_LABEL",
    "PROTOCOL_INFO",
    "AUTH_UPDATE_LABEL",
    "SCKA_KEY_LABEL",
    "EK_HEADER_LABEL",
    "CIPHERTEXT_LABEL",
    "MESSAGE_KEYS_LABEL",
    "KEY_SIZE",
    "HEADER_SIZE",
    "CIPHERTEXT_SIZE",
    "MAX_EPOCH",
    "MAX_INDEX",
    "EpochKeys",
    "ChainStep",
    "AuthKeys",
    "MessageKeys",
    "spqr_init",
    "add_epoch",
    "chain_step",
    "auth_init",
    "auth_update",
    "scka_key",
    "mac_header",
    "mac_ciphertext",
    "message_keys",
]

INIT_LABEL: Final = b"Signal PQ Ratchet V1 Chain  Start"
ADD_EPOCH_LABEL: Final = b"Signal PQ Ratchet V1 Chain Add Epoch"
CHAIN_NEXT_LABEL: Final = b"Signal PQ Ratchet V1 Chain Next"
PROTOCOL_INFO: Final = b"Signal_PQCKA_V1_MLKEM768"
AUTH_UPDATE_LABEL: Final = PROTOCOL_INFO + b":Authenticator Update"
SCKA_KEY_LABEL: Final = PROTOCOL_INFO + b":SCKA Key"
EK_HEADER_LABEL: Final = PROTOCOL_INFO + b":ekheader"
CIPHERTEXT_LABEL: Final = PROTOCOL_INFO + b":ciphertext"
MESSAGE_KEYS_LABEL: Final = b"WhisperMessageKeys"

KEY_SIZE: Final = 32
HEADER_SIZE: Final = 64  # ML-KEM-768 incremental header: rho || SHA3-256(ek_vector || rho)
CIPHERTEXT_SIZE: Final = 960 + 128  # ct1 || ct2
MAX_EPOCH: Final = 2**64 - 1
MAX_INDEX: Final = 2**32 - 1
_AUTH_INIT_EPOCH: Final = 1


class EpochKeys(NamedTuple):
    """KDF_SCKA_INIT's or KDF_SCKA_RK's output: the next root key and the
    two chain keys of the epoch, by direction."""

    root: bytes
    a2b: bytes
    b2a: bytes

    def __repr__(self) -> str:
        return "EpochKeys(<secret>)"


class ChainStep(NamedTuple):
    """KDF_SCKA_CK's output: the next chain key and the message key."""

    chain_key: bytes
    message_key: bytes

    def __repr__(self) -> str:
        return "ChainStep(<secret>)"


class AuthKeys(NamedTuple):
    """The Braid authenticator's state (Braid section 2.4)."""

    root_key: bytes
    mac_key: bytes

    def __repr__(self) -> str:
        return "AuthKeys(<secret>)"


class MessageKeys(NamedTuple):
    """What one message is sealed with: AES-256-CBC key, HMAC-SHA256 key, IV."""

    cipher_key: bytes
    mac_key: bytes
    iv: bytes

    def __repr__(self) -> str:
        return "MessageKeys(<secret>)"


def _key(value: bytes, name: str, size: int = KEY_SIZE) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        raise InvalidArgument(f"{name} must be {size} bytes")


def _u64(epoch: int) -> bytes:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= MAX_EPOCH:
        raise InvalidArgument("an epoch is an integer in 0..2**64-1")
    return epoch.to_bytes(8, "big")


def _split(okm: bytes) -> EpochKeys:
    return EpochKeys(okm[:32], okm[32:64], okm[64:96])


def spqr_init(seed: bytes) -> EpochKeys:
    """KDF_SCKA_INIT (DR3 section 5.2): the root key and chain epoch 0's
    chains from the 32-byte SPQR seed.  Raises :class:`InvalidArgument`."""
    _key(seed, "the SPQR seed")
    return _split(hkdf(seed, salt=None, info=INIT_LABEL, length=96))


def add_epoch(root: bytes, epoch_secret: bytes) -> EpochKeys:
    """KDF_SCKA_RK (DR3 section 5.2): fold epoch e's secret (:func:`scka_key`)
    into the root key; the chains are chain epoch e's.  Raises
    :class:`InvalidArgument`."""
    _key(root, "the SPQR root key")
    _key(epoch_secret, "an epoch secret")
    return _split(hkdf(epoch_secret, salt=root, info=ADD_EPOCH_LABEL, length=96))


def chain_step(chain_key: bytes, n: int) -> ChainStep:
    """KDF_SCKA_CK (DR3 section 5.2): the key for the chain's message ``n``
    (1 for the first) and the chain key after it.  Raises
    :class:`InvalidArgument` unless n is in 1..2**32-1."""
    _key(chain_key, "an SPQR chain key")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_INDEX:
        raise InvalidArgument("an SPQR index is an integer in 1..2**32-1")
    okm = hkdf(chain_key, salt=None, info=n.to_bytes(4, "big") + CHAIN_NEXT_LABEL, length=64)
    return ChainStep(okm[:32], okm[32:])


def auth_init(seed: bytes) -> AuthKeys:
    """Authenticator Init (Braid section 2.4): Update at epoch 1 from a zero
    root key, with the SPQR seed as the key.  Raises :class:`InvalidArgument`."""
    _key(seed, "the SPQR seed")
    return auth_update(bytes(KEY_SIZE), _AUTH_INIT_EPOCH, seed)


def auth_update(root_key: bytes, epoch: int, key: bytes) -> AuthKeys:
    """Authenticator Update, KDF_AUTH (Braid sections 2.2 and 2.4) as
    libsignal computes it: IKM root_key || key under salt 0, not the spec's
    salt = root_key.  Raises :class:`InvalidArgument`."""
    _key(root_key, "the authenticator root key")
    _key(key, "an authenticator update key")
    okm = hkdf(root_key + key, salt=None, info=AUTH_UPDATE_LABEL + _u64(epoch), length=64)
    return AuthKeys(okm[:32], okm[32:])


def scka_key(shared_secret: bytes, epoch: int) -> bytes:
    """KDF_OK (Braid section 2.2): epoch ``epoch``'s secret from its
    ML-KEM-768 shared secret.  Raises :class:`InvalidArgument`."""
    _key(shared_secret, "an ML-KEM shared secret")
    return hkdf(shared_secret, salt=None, info=SCKA_KEY_LABEL + _u64(epoch), length=32)


def mac_header(mac_key: bytes, epoch: int, header: bytes) -> bytes:
    """MacHdr (Braid section 2.4): the 32-byte MAC sent after epoch
    ``epoch``'s 64-byte encapsulation-key header.  Raises
    :class:`InvalidArgument`."""
    _key(mac_key, "the authenticator mac key")
    _key(header, "an ML-KEM-768 header", HEADER_SIZE)
    return hmac_sha256(mac_key, EK_HEADER_LABEL + _u64(epoch) + header)


def mac_ciphertext(mac_key: bytes, epoch: int, ciphertext: bytes) -> bytes:
    """MacCt (Braid section 2.4): the 32-byte MAC sent after ct2, over
    ``ciphertext`` = ct1 || ct2 (1088 bytes), keyed by the mac key after
    Update(epoch).  Raises :class:`InvalidArgument`."""
    _key(mac_key, "the authenticator mac key")
    _key(ciphertext, "ct1 || ct2", CIPHERTEXT_SIZE)
    return hmac_sha256(mac_key, CIPHERTEXT_LABEL + _u64(epoch) + ciphertext)


def message_keys(dr_message_key: bytes, spqr_message_key: bytes | None) -> MessageKeys:
    """KDF_HYBRID (DR3 sections 6.3 and 7.2) in libsignal's form: expand the
    Double Ratchet message key (HMAC-SHA256(CK, 0x01)) with the SPQR message
    key as salt; None, for a message without SPQR, gives today's version 3
    keys.  Raises :class:`InvalidArgument`."""
    _key(dr_message_key, "a Double Ratchet message key")
    if spqr_message_key is not None:
        _key(spqr_message_key, "an SPQR message key")
    okm = hkdf(dr_message_key, salt=spqr_message_key, info=MESSAGE_KEYS_LABEL, length=80)
    return MessageKeys(okm[:32], okm[32:64], okm[64:])
