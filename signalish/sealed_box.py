"""Sealed boxes: anonymous one-shot encryption to a public key (HPKE,
RFC 9180), with no session and no sender identity.  Two suites
(:class:`SealedBoxSuite`): X25519 alone, and the hybrid ML-KEM-768 + X25519
KEM (X-Wing).  :class:`SealedBoxPrivateKey` opens what anyone holding its
:class:`SealedBoxPublicKey` sealed.  Format: :doc:`sealed_backup_safety`.
"""

from ._sealed import SealedBoxPrivateKey, SealedBoxPublicKey, SealedBoxSuite

__all__ = ["SealedBoxSuite", "SealedBoxPrivateKey", "SealedBoxPublicKey"]
