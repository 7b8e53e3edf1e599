"""Profiles: every parameter that differs between wire-compatible families.

A :class:`Profile` is passed explicitly to every layer; nothing branches on
a global.  Three profiles exist:

``NATIVE``
    signalish's own.  32-byte raw public keys, HKDF-SHA-256, its own info
    strings, XEdDSA in the spec's form, and prekey signatures that also bind
    the prekey's kind and id and cover one-time EC prekeys (docs/profiles.rst
    gives the reasons).
``LIBSIGNAL_V3``
    byte-compatible with libsignal protocol version 3: 0x05-prefixed keys,
    info "WhisperText", a 64-byte X3DH output (root key || chain key), XEdDSA
    with the sign bit in signature byte 63, signatures over the encoded key
    only, and no PQXDH.
``LIBSIGNAL_V4``
    byte-compatible with libsignal protocol version 4 as libsignal-client
    0.73 to 0.90 speaks it without SPQR: version 3's encodings, plus a
    Kyber1024 prekey in every session (round-3 Kyber, 0x08-prefixed keys,
    signed like the signed prekey), PQXDH with info
    "WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024" and 96 bytes out (root
    key, chain key, and 32 bytes that seed SPQR), and version byte 0x44.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Literal

from ._errors import InvalidKey, UnsupportedByProfile

__all__ = ["Profile", "PreKeyKind", "NATIVE", "LIBSIGNAL_V3", "LIBSIGNAL_V4"]

_NATIVE_SIGNATURE_CONTEXT: Final = b"signalish prekey signature v1\x00"


class PreKeyKind(IntEnum):
    """What a prekey signature is for (bound into native signatures)."""

    SIGNED = 1
    ONE_TIME = 2
    KEM_ONE_TIME = 3
    KEM_LAST_RESORT = 4


@dataclass(frozen=True, slots=True)
class Profile:
    """The parameters of one protocol family.  Compare profiles by name."""

    name: str
    #: Bytes before the 32-byte u-coordinate in Encode(PK) (X3DH section 2.5).
    ec_key_prefix: bytes
    #: Bytes before the 1568-byte key in EncodeKEM(PK) (PQXDH section 2.1);
    #: None when the profile has no PQXDH.
    kem_key_prefix: bytes | None
    #: Where an XEdDSA verifier finds the Edwards sign bit.
    xeddsa_form: Literal["spec", "libsignal"]
    #: Hash for HKDF in X3DH/PQXDH and later in the ratchet.
    kdf_hash: Literal["sha256", "sha512"]
    #: HKDF info of X3DH (X3DH section 2.1 "info").
    x3dh_info: bytes
    #: HKDF info of PQXDH, or None when the profile has no PQXDH.
    pqxdh_info: bytes | None
    #: Bytes of secret X3DH/PQXDH output (32 = SK; libsignal: 64 = RK || CK).
    shared_secret_length: int
    #: Whether signatures bind kind and id and cover one-time EC prekeys.
    bind_prekey_ids: bool
    #: HKDF info of KDF_RK (Double Ratchet section 5.2).
    ratchet_info: bytes
    #: HKDF-Expand info turning a message key into an AEAD key.
    message_key_info: bytes
    #: HKDF info splitting SK into root and header keys (header encryption).
    header_keys_info: bytes
    #: HMAC label deriving a header nonce from a message key.
    header_nonce_info: bytes
    #: Message format (the wire format module that writes and reads
    #: messages): "native" (AES-256-GCM, optional header encryption) or
    #: "libsignal_v3" (SignalMessage protobufs, AES-256-CBC, an 8-byte MAC).
    wire: Literal["native", "libsignal_v3", "libsignal_v4"]
    #: How the ratchet starts: "spec" (section 3.3: SK is the root key) or
    #: "libsignal" (SK = root key || chain key, and the responder may send at
    #: once on that chain with its signed prekey as ratchet key).
    ratchet_start: Literal["spec", "libsignal"]
    #: The KEM of PQXDH: FIPS 203 ML-KEM-1024, or round-3 Kyber1024 (what
    #: libsignal calls Kyber1024; same keys and ciphertexts, another shared
    #: secret: signalish._primitives.kyber).
    kem: Literal["ml-kem-1024", "kyber1024"] = "ml-kem-1024"
    #: Whether every session needs a KEM prekey (PQXDH only, never X3DH).
    requires_kem: bool = False

    def encode_ec(self, raw: bytes) -> bytes:
        """Encode(PK): the profile's encoding of an X25519 public key."""
        return self.ec_key_prefix + raw

    def decode_ec(self, data: bytes) -> bytes:
        """Inverse of :meth:`encode_ec`; returns the 32-byte u-coordinate."""
        n = len(self.ec_key_prefix)
        if len(data) != n + 32 or data[:n] != self.ec_key_prefix:
            raise InvalidKey(
                f"{self.name}: an encoded X25519 key is {n + 32} bytes"
                + (f" starting 0x{self.ec_key_prefix.hex()}" if n else "")
            )
        return data[n:]

    def encode_kem(self, raw: bytes) -> bytes:
        """EncodeKEM(PK) (PQXDH section 2.1)."""
        if self.kem_key_prefix is None:
            raise UnsupportedByProfile(f"profile {self.name} has no post-quantum prekeys")
        return self.kem_key_prefix + raw

    def prekey_signature_message(
        self, kind: PreKeyKind, key_id: int, encoded_key: bytes
    ) -> bytes | None:
        """The bytes the identity key signs for a prekey, or None when the
        profile leaves that kind unsigned (one-time EC prekeys in X3DH)."""
        if self.bind_prekey_ids:
            return (
                _NATIVE_SIGNATURE_CONTEXT
                + bytes((kind,))
                + key_id.to_bytes(4, "big")
                + encoded_key
            )
        if kind is PreKeyKind.ONE_TIME:
            return None
        return encoded_key

    def __repr__(self) -> str:
        return f"Profile({self.name})"


NATIVE: Final = Profile(
    name="native",
    ec_key_prefix=b"",
    kem_key_prefix=b"",
    xeddsa_form="spec",
    kdf_hash="sha256",
    x3dh_info=b"signalish_X3DH_CURVE25519_SHA-256",
    pqxdh_info=b"signalish_PQXDH_CURVE25519_SHA-256_ML-KEM-1024",
    shared_secret_length=32,
    bind_prekey_ids=True,
    ratchet_info=b"signalish_Ratchet",
    message_key_info=b"signalish_MessageKey",
    header_keys_info=b"signalish_HeaderKeys",
    header_nonce_info=b"signalish_HeaderNonce",
    wire="native",
    ratchet_start="spec",
)

LIBSIGNAL_V3: Final = Profile(
    name="libsignal_v3",
    ec_key_prefix=b"\x05",
    kem_key_prefix=None,
    xeddsa_form="libsignal",
    kdf_hash="sha256",
    x3dh_info=b"WhisperText",
    pqxdh_info=None,
    shared_secret_length=64,
    bind_prekey_ids=False,
    ratchet_info=b"WhisperRatchet",
    message_key_info=b"WhisperMessageKeys",
    header_keys_info=b"",
    header_nonce_info=b"",
    wire="libsignal_v3",
    ratchet_start="libsignal",
)

LIBSIGNAL_V4: Final = Profile(
    name="libsignal_v4",
    ec_key_prefix=b"\x05",
    kem_key_prefix=b"\x08",
    xeddsa_form="libsignal",
    kdf_hash="sha256",
    x3dh_info=b"WhisperText",
    pqxdh_info=b"WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024",
    shared_secret_length=96,
    bind_prekey_ids=False,
    ratchet_info=b"WhisperRatchet",
    message_key_info=b"WhisperMessageKeys",
    header_keys_info=b"",
    header_nonce_info=b"",
    wire="libsignal_v4",
    ratchet_start="libsignal",
    kem="kyber1024",
    requires_kem=True,
)

PROFILES: Final = {p.name: p for p in (NATIVE, LIBSIGNAL_V3, LIBSIGNAL_V4)}
