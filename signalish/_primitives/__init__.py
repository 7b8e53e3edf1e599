"""Primitives layer: the only code that imports ``cryptography``.

Everything above this package sees bytes and a few opaque key objects.  The
rules enforced here:

* an all-zero X25519 output is an error (X3DH section 2.3 lets the check be
  made; RFC 7748 section 6.1 recommends it), never input to a KDF;
* public keys are checked on import: non-canonical u (u >= p) and the
  low-order points of Curve25519 are refused;
* secrets are compared only with :func:`hmac.compare_digest`;
* randomness comes from one injectable :class:`RandomSource`.

One module per concern: ``randomness``, ``kdf`` (HMAC, HKDF, comparison),
``x25519``, ``xeddsa`` (Ed25519 and XEdDSA), ``ciphers`` (AEADs and
AES-CBC), ``mlkem``, ``kyber`` (libsignal's round-3 Kyber1024 over ML-KEM), ``hpke``,
``argon2`` and ``streaming`` (AES-CBC and HMAC fed in chunks).  This module re-exports the
names the rest of signalish uses, so that callers import from
``signalish._primitives`` and never from a submodule.
tests/test_architecture.py holds the rule that nothing else imports
``cryptography``.
"""

from __future__ import annotations

from .argon2 import argon2id
from .ciphers import (
    aes256_cbc_decrypt,
    aes256_cbc_encrypt,
    aes256_gcm_decrypt,
    aes256_gcm_encrypt,
    chacha20_poly1305_decrypt,
    chacha20_poly1305_encrypt,
)
from .hpke import HPKE_ENC_SIZE, HPKE_PUBLIC_SIZE, HpkePrivate, HpkePublic, HpkeSuiteName
from .kdf import ct_equal, hkdf, hkdf_expand, hmac_sha256
from .kyber import (
    KYBER1024_SHARED_SECRET_SIZE,
    kyber1024_decapsulate,
    kyber1024_encapsulate,
    kyber1024_shared_secret,
)
from .mlkem import (
    MLKEM1024_CIPHERTEXT_SIZE,
    MLKEM1024_PUBLIC_KEY_SIZE,
    MLKEM1024_SEED_SIZE,
    KemPrivateKey,
    KemPublicKey,
)
from .randomness import DeterministicRandom, RandomSource, SystemRandom
from .x25519 import PrivateKey, PublicKey
from .xeddsa import (
    Ed25519Signer,
    XEdDSAVerifier,
    ed25519_verify,
    montgomery_u_from_edwards,
    xeddsa_verify,
)

from .streaming import Aes256CbcPkcs7Decryptor, Aes256CbcPkcs7Encryptor, HmacSha256Stream

__all__ = [
    # streaming
    "Aes256CbcPkcs7Encryptor",
    "Aes256CbcPkcs7Decryptor",
    "HmacSha256Stream",
    # randomness
    "RandomSource",
    "SystemRandom",
    "DeterministicRandom",
    # kdf
    "ct_equal",
    "hmac_sha256",
    "hkdf",
    "hkdf_expand",
    # x25519
    "PrivateKey",
    "PublicKey",
    # xeddsa
    "Ed25519Signer",
    "ed25519_verify",
    "XEdDSAVerifier",
    "xeddsa_verify",
    "montgomery_u_from_edwards",
    # ciphers
    "aes256_gcm_encrypt",
    "aes256_gcm_decrypt",
    "chacha20_poly1305_encrypt",
    "chacha20_poly1305_decrypt",
    "aes256_cbc_encrypt",
    "aes256_cbc_decrypt",
    # mlkem
    "MLKEM1024_PUBLIC_KEY_SIZE",
    "MLKEM1024_CIPHERTEXT_SIZE",
    "MLKEM1024_SEED_SIZE",
    "KemPrivateKey",
    "KemPublicKey",
    # kyber (round-3 Kyber1024 via ML-KEM-1024)
    "KYBER1024_SHARED_SECRET_SIZE",
    "kyber1024_shared_secret",
    "kyber1024_encapsulate",
    "kyber1024_decapsulate",
    # hpke
    "HpkeSuiteName",
    "HPKE_PUBLIC_SIZE",
    "HPKE_ENC_SIZE",
    "HpkePrivate",
    "HpkePublic",
    # argon2
    "argon2id",
]

# Appended for sealed sender: AES-256-CTR (v1) and AES-256-GCM-SIV (v2).
from .ciphers import aes256_ctr, aes256_gcm_siv_decrypt, aes256_gcm_siv_encrypt  # noqa: E402

__all__ += ["aes256_ctr", "aes256_gcm_siv_encrypt", "aes256_gcm_siv_decrypt"]
