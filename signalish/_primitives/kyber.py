"""Kyber1024 as libsignal uses it (key type 0x08): the round-3 CRYSTALS-Kyber
KEM, computed with the ML-KEM-1024 of :mod:`.mlkem`.

libsignal's ``Kyber1024`` is not FIPS 203 ML-KEM but the scheme submitted to
round 3 of the NIST PQC process, "CRYSTALS-Kyber Algorithm Specifications
And Supporting Documentation (version 3.02)", 2021-08-04, section 1.3
(Kyber.CCAKEM, Algorithms 7 to 9), built on Kyber.CPAPKE (section 1.2).
FIPS 203 (ML-KEM, 2024-08-13) lists what it changed in its section 1.3,
"Differences From the CRYSTALS-KYBER Submission".  The encodings did not
change: public keys (1568 bytes), ciphertexts (1568 bytes) and the expanded
decapsulation key (3168 bytes, dk_PKE || ek || H(ek) || z, which is
round 3's sk' || pk || H(pk) || z) are byte for byte the same, and K-PKE is
Kyber.CPAPKE.

The construction.  With H = SHA3-256, G = SHA3-512 and KDF = SHAKE-256
truncated to 32 bytes::

    round 3 Enc(pk):  m  = H(32 random bytes)
                      (Kbar, r) = G(m || H(pk));  c = CPAPKE.Enc(pk, m, r)
                      K  = KDF(Kbar || H(c))
    ML-KEM Encaps_internal(ek, m) (FIPS 203 Algorithm 17):
                      (K', r) = G(m || H(ek));   c = K-PKE.Encrypt(ek, m, r)
                      returns K' (= Kbar) and the same c

So, for any valid ciphertext, **Kyber1024 secret = SHAKE-256(K_mlkem ||
SHA3-256(c))[:32]**, where K_mlkem is what ML-KEM-1024 derives from the same
(key, ciphertext).  Decapsulation agrees too: round-3 Dec and ML-KEM.Decaps
(FIPS 203 Algorithm 18) both decrypt m', recompute (Kbar', r') = G(m' ||
H(pk)), re-encrypt and compare, and on a match return Kbar' (ML-KEM) or
KDF(Kbar' || H(c)) (round 3).

Encapsulation.  :func:`kyber1024_encapsulate` lets ML-KEM draw m uniformly
instead of hashing fresh randomness into it.  Round 3 hashes m only so as not
to expose raw system randomness; H of 32 random bytes and 32 random bytes are
indistinguishable, and the receiver cannot tell how m was chosen, so the
result is a valid round-3 encapsulation that any round-3 decapsulator opens
to the same secret.

Implicit rejection differs.  For a well-sized ciphertext that fails the
re-encryption check, round 3 returns KDF(z || H(c)); ML-KEM returns
J(z || c) = SHAKE-256(z || c)[:32].  :func:`kyber1024_decapsulate` applies
the transform to whatever ML-KEM returned, so for such a ciphertext it
returns ``SHAKE-256(SHAKE-256(z || c)[:32] || SHA3-256(c))[:32]`` (z being
the last 32 bytes of the key's 64-byte seed), which is **not** the value a
round-3 implementation (libsignal) would return for the same key and
ciphertext.  Both values are pseudorandom functions of (z, c) that nobody
without z can predict, and the session that follows simply fails to
authenticate, so the difference does not show on the wire; but a
decapsulation of an invalid ciphertext cannot be compared byte for byte with
libsignal's.

Keys.  Round-3 key generation from a seed differs from ML-KEM's: round 3
expands d with (rho, sigma) = G(d), FIPS 203 with G(d || k), k = 4 being a
domain-separation byte (its section 1.3).  A :class:`KemPrivateKey`
seed is therefore an ML-KEM seed only, and a given 64 bytes yield different
keys in the two schemes.  Because ``cryptography`` loads ML-KEM private keys
from their seed only, a round-3 secret key (3168 expanded bytes, as
libsignal stores them) cannot be loaded here, although its format is the one
ML-KEM would accept as an expanded key.  Public keys from round-3 key
generation always pass FIPS 203's modulus check (their coefficients are
reduced mod q); :meth:`KemPublicKey.from_public_bytes` refuses those that
do not, which a round-3 implementation might not.
"""

from __future__ import annotations

import hashlib
from typing import Final

from .._errors import InvalidArgument, InvalidKey
from .mlkem import MLKEM1024_CIPHERTEXT_SIZE, KemPrivateKey, KemPublicKey

__all__ = [
    "KYBER1024_SHARED_SECRET_SIZE",
    "kyber1024_shared_secret",
    "kyber1024_encapsulate",
    "kyber1024_decapsulate",
]

#: The size of a Kyber1024 (and of an ML-KEM-1024) shared secret.
KYBER1024_SHARED_SECRET_SIZE: Final = 32


def kyber1024_shared_secret(k_mlkem: bytes, ciphertext: bytes) -> bytes:
    """The round-3 Kyber1024 shared secret for a ciphertext whose ML-KEM-1024
    shared secret is ``k_mlkem``: SHAKE-256(k_mlkem || SHA3-256(ciphertext))
    truncated to 32 bytes (the KDF step of round-3 Algorithms 8 and 9).

    Deterministic; combined with a derandomized ML-KEM encapsulation
    (vectorgen/mlkem_encaps.py) it reproduces round-3 test vectors.  Raises
    :class:`~signalish.errors.InvalidArgument` if ``k_mlkem`` is not 32
    bytes and :class:`~signalish.errors.InvalidKey` if ``ciphertext`` is not
    1568 bytes (as :meth:`KemPrivateKey.decapsulate` does).
    """
    if len(k_mlkem) != KYBER1024_SHARED_SECRET_SIZE:
        raise InvalidArgument(f"an ML-KEM shared secret is 32 bytes, got {len(k_mlkem)}")
    if len(ciphertext) != MLKEM1024_CIPHERTEXT_SIZE:
        raise InvalidKey(f"a Kyber1024 ciphertext is 1568 bytes, got {len(ciphertext)}")
    return hashlib.shake_256(
        bytes(k_mlkem) + hashlib.sha3_256(ciphertext).digest()
    ).digest(KYBER1024_SHARED_SECRET_SIZE)


def kyber1024_encapsulate(public_key: KemPublicKey) -> tuple[bytes, bytes]:
    """Round-3 Kyber1024 encapsulation to ``public_key`` (whose 1568 bytes
    are the same in both schemes: import a Kyber1024 key with
    :meth:`KemPublicKey.from_public_bytes`).  Returns (ciphertext, shared
    secret), in the order of :meth:`KemPublicKey.encapsulate`.  Randomness
    comes from OpenSSL.  Raises :class:`~signalish.errors.InvalidArgument`
    if ``public_key`` is not a :class:`KemPublicKey` (raw bytes, say)."""
    if not isinstance(public_key, KemPublicKey):
        raise InvalidArgument(
            "kyber1024_encapsulate takes a KemPublicKey (KemPublicKey.from_public_bytes), "
            f"not {type(public_key).__name__}"
        )
    ciphertext, k_mlkem = public_key.encapsulate()
    return ciphertext, kyber1024_shared_secret(k_mlkem, ciphertext)


def kyber1024_decapsulate(private_key: KemPrivateKey, ciphertext: bytes) -> bytes:
    """Round-3 Kyber1024 decapsulation with an ML-KEM-1024 key.  Equal to
    round 3's Dec for every valid ciphertext.  For a well-sized invalid one
    it returns SHAKE-256(SHAKE-256(z || c)[:32] || SHA3-256(c))[:32] (z =
    ``private_key.seed()[32:]``), which differs from round 3's implicit
    rejection value SHAKE-256(z || SHA3-256(c))[:32]: see the module
    docstring.  Raises :class:`~signalish.errors.InvalidKey` for a
    ciphertext that is not 1568 bytes and
    :class:`~signalish.errors.InvalidArgument` if ``private_key`` is not a
    :class:`KemPrivateKey`."""
    if not isinstance(private_key, KemPrivateKey):
        raise InvalidArgument(
            f"kyber1024_decapsulate takes a KemPrivateKey, not {type(private_key).__name__}"
        )
    ciphertext = bytes(ciphertext)
    return kyber1024_shared_secret(private_key.decapsulate(ciphertext), ciphertext)
