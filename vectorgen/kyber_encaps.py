"""Deterministic round-3 Kyber1024 encapsulation (CRYSTALS-Kyber v3.02,
Algorithm 8, Kyber.CCAKEM.Enc) for building reproducible test vectors only.

Round 3 hashes its 32 random bytes into m = SHA3-256(random) and otherwise
runs ML-KEM.Encaps_internal(ek, m) (FIPS 203 Algorithm 17), then derives the
secret as SHAKE-256(K || SHA3-256(c))[:32]; see
signalish/_primitives/kyber.py.  Given the same 32 "random" bytes as the
NIST KAT generator draws, this reproduces the round-3 known answers
(tests/test_kyber.py checks the first Kyber1024 entry).  Plain Python and not
constant time, like vectorgen/mlkem_encaps.py: never use it for real
messages.
"""

from __future__ import annotations

import hashlib

from signalish._primitives import kyber1024_shared_secret
from vectorgen.mlkem_encaps import encaps_internal

__all__ = ["kyber1024_encaps_derandomized"]


def kyber1024_encaps_derandomized(public_key: bytes, randomness: bytes) -> tuple[bytes, bytes]:
    """(ciphertext, shared secret) of round-3 Kyber1024.CCAKEM.Enc(pk) when
    its call for 32 random bytes returns ``randomness``."""
    if len(randomness) != 32:
        raise ValueError("round-3 encapsulation draws 32 random bytes")
    m = hashlib.sha3_256(randomness).digest()
    ciphertext, k_mlkem = encaps_internal(public_key, m, "ML-KEM-1024")
    return ciphertext, kyber1024_shared_secret(k_mlkem, ciphertext)
