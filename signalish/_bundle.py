"""Prekeys and prekey bundles (X3DH section 3.2, PQXDH section 3.2).

Public values (``*Public`` classes and :class:`PreKeyBundle`) are what a
server stores and hands out.  Private records (:class:`SignedPreKey`,
:class:`OneTimePreKey`, :class:`KemPreKey`) stay with their owner, normally
inside a :class:`~signalish.PreKeyRing`.

What each signature covers is the profile's choice
(:meth:`Profile.prekey_signature_message`): ``libsignal_v3`` signs
Encode(SPK) only, as X3DH section 3.2 says; ``native`` binds kind and id and
signs one-time EC prekeys too, so that no bit of a bundle can change
without :meth:`PreKeyBundle.verify` failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from ._encoding import Codec, Reader, Tag, Writer
from ._errors import InvalidArgument, InvalidSignature, UnsupportedByProfile
from ._keys import IdentityKey, IdentityKeyPair
from ._primitives import (
    MLKEM1024_PUBLIC_KEY_SIZE,
    KemPrivateKey,
    KemPublicKey,
    PrivateKey,
    PublicKey,
    RandomSource,
)
from ._profile import PreKeyKind, Profile

__all__ = [
    "SignedPreKeyPublic",
    "OneTimePreKeyPublic",
    "KemPreKeyPublic",
    "SignedPreKey",
    "OneTimePreKey",
    "KemPreKey",
    "PreKeyBundle",
]

SIGNATURE_SIZE: Final = 64
MAX_KEY_ID: Final = 0xFFFFFFFF


def _check_id(key_id: int) -> None:
    if not 0 <= key_id <= MAX_KEY_ID:
        raise InvalidArgument(f"prekey ids are 32-bit unsigned, got {key_id}")


def _sign(
    identity: IdentityKeyPair, profile: Profile, kind: PreKeyKind, key_id: int, encoded: bytes
) -> bytes | None:
    message = profile.prekey_signature_message(kind, key_id, encoded)
    return None if message is None else identity.sign(message)


def _verify(
    identity: IdentityKey,
    profile: Profile,
    kind: PreKeyKind,
    key_id: int,
    encoded: bytes,
    signature: bytes | None,
    what: str,
) -> None:
    message = profile.prekey_signature_message(kind, key_id, encoded)
    if message is None:
        return
    if signature is None or not identity.verify_signature(message, signature, profile):
        raise InvalidSignature(f"{what} signature does not verify under the identity key")


def _check_signature_size(signature: bytes | None) -> None:
    if signature is not None and len(signature) != SIGNATURE_SIZE:
        raise InvalidArgument(f"signatures are 64 bytes, got {len(signature)}")


def _write_signature(w: Writer, signature: bytes | None) -> None:
    w.flag(signature is not None)
    if signature is not None:
        w.fixed(signature)


def _read_signature(r: Reader) -> bytes | None:
    return r.fixed(SIGNATURE_SIZE, "signature") if r.flag("signature present") else None


# --- public values -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedPreKeyPublic(Codec):
    """The public half of a signed prekey, as published."""

    _TAG: ClassVar[int] = Tag.SIGNED_PREKEY  # body: id, key, signature

    key_id: int
    public_key: PublicKey
    signature: bytes

    def __post_init__(self) -> None:
        _check_id(self.key_id)
        _check_signature_size(self.signature)

    def verify(self, identity: IdentityKey, profile: Profile) -> None:
        """Raises :class:`~signalish.errors.InvalidSignature` unless the signature holds."""
        _verify(identity, profile, PreKeyKind.SIGNED, self.key_id,
                profile.encode_ec(self.public_key.public_bytes_raw()), self.signature, "signed prekey")

    def _write(self, w: Writer) -> None:
        w.u32(self.key_id).fixed(self.public_key.public_bytes_raw()).fixed(self.signature)

    @classmethod
    def _read(cls, r: Reader) -> SignedPreKeyPublic:
        return cls(r.u32("key id"), PublicKey.from_public_bytes(r.fixed(32, "public key")),
                   r.fixed(SIGNATURE_SIZE, "signature"))


@dataclass(frozen=True, slots=True)
class OneTimePreKeyPublic(Codec):
    """The public half of a one-time EC prekey.  ``signature`` is None under
    profiles that leave one-time prekeys unsigned."""

    _TAG: ClassVar[int] = Tag.ONE_TIME_PREKEY  # body: id, key, flag [, signature]

    key_id: int
    public_key: PublicKey
    signature: bytes | None

    def __post_init__(self) -> None:
        _check_id(self.key_id)
        _check_signature_size(self.signature)

    def verify(self, identity: IdentityKey, profile: Profile) -> None:
        _verify(identity, profile, PreKeyKind.ONE_TIME, self.key_id,
                profile.encode_ec(self.public_key.public_bytes_raw()), self.signature, "one-time prekey")

    def _write(self, w: Writer) -> None:
        w.u32(self.key_id).fixed(self.public_key.public_bytes_raw())
        _write_signature(w, self.signature)

    @classmethod
    def _read(cls, r: Reader) -> OneTimePreKeyPublic:
        return cls(r.u32("key id"), PublicKey.from_public_bytes(r.fixed(32, "public key")),
                   _read_signature(r))


@dataclass(frozen=True, slots=True)
class KemPreKeyPublic(Codec):
    """The public half of an ML-KEM-1024 prekey (PQXDH section 3.2): either
    one-time or the last-resort key handed out when no one-time key is left."""

    _TAG: ClassVar[int] = Tag.KEM_PREKEY  # body: id, last-resort flag, key, signature

    key_id: int
    public_key: KemPublicKey
    signature: bytes
    last_resort: bool

    def __post_init__(self) -> None:
        _check_id(self.key_id)
        _check_signature_size(self.signature)

    @property
    def kind(self) -> PreKeyKind:
        return PreKeyKind.KEM_LAST_RESORT if self.last_resort else PreKeyKind.KEM_ONE_TIME

    def verify(self, identity: IdentityKey, profile: Profile) -> None:
        _verify(identity, profile, self.kind, self.key_id,
                profile.encode_kem(self.public_key.public_bytes_raw()), self.signature, "KEM prekey")

    def _write(self, w: Writer) -> None:
        w.u32(self.key_id).flag(self.last_resort).fixed(self.public_key.public_bytes_raw())
        w.fixed(self.signature)

    @classmethod
    def _read(cls, r: Reader) -> KemPreKeyPublic:
        key_id = r.u32("key id")
        last_resort = r.flag("last resort")
        key = KemPublicKey.from_public_bytes(r.fixed(MLKEM1024_PUBLIC_KEY_SIZE, "public key"))
        return cls(key_id, key, r.fixed(SIGNATURE_SIZE, "signature"), last_resort)


# --- private records --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedPreKey:
    """A signed prekey with its private key and creation time (seconds)."""

    key_id: int
    created_at: int
    private_key: PrivateKey
    signature: bytes

    @classmethod
    def generate(cls, identity: IdentityKeyPair, profile: Profile, key_id: int,
                 now: int, rng: RandomSource) -> SignedPreKey:
        _check_id(key_id)
        private = PrivateKey.generate(rng)
        signature = _sign(identity, profile, PreKeyKind.SIGNED, key_id,
                          profile.encode_ec(private.public.public_bytes_raw()))
        assert signature is not None  # every profile signs the signed prekey
        return cls(key_id, now, private, signature)

    def public(self) -> SignedPreKeyPublic:
        return SignedPreKeyPublic(self.key_id, self.private_key.public, self.signature)


@dataclass(frozen=True, slots=True)
class OneTimePreKey:
    """A one-time EC prekey with its private key."""

    key_id: int
    private_key: PrivateKey
    signature: bytes | None

    @classmethod
    def generate(cls, identity: IdentityKeyPair, profile: Profile, key_id: int,
                 rng: RandomSource) -> OneTimePreKey:
        _check_id(key_id)
        private = PrivateKey.generate(rng)
        signature = _sign(identity, profile, PreKeyKind.ONE_TIME, key_id,
                          profile.encode_ec(private.public.public_bytes_raw()))
        return cls(key_id, private, signature)

    def public(self) -> OneTimePreKeyPublic:
        return OneTimePreKeyPublic(self.key_id, self.private_key.public, self.signature)


@dataclass(frozen=True, slots=True)
class KemPreKey:
    """An ML-KEM-1024 prekey with its private key (one-time or last-resort)."""

    key_id: int
    created_at: int
    private_key: KemPrivateKey
    signature: bytes
    last_resort: bool

    @classmethod
    def generate(cls, identity: IdentityKeyPair, profile: Profile, key_id: int, now: int,
                 rng: RandomSource, *, last_resort: bool) -> KemPreKey:
        _check_id(key_id)
        if profile.kem_key_prefix is None:
            raise UnsupportedByProfile(f"profile {profile.name} has no post-quantum prekeys")
        private = KemPrivateKey.generate(rng)
        kind = PreKeyKind.KEM_LAST_RESORT if last_resort else PreKeyKind.KEM_ONE_TIME
        signature = _sign(identity, profile, kind, key_id,
                          profile.encode_kem(private.public.public_bytes_raw()))
        assert signature is not None
        return cls(key_id, now, private, signature, last_resort)

    def public(self) -> KemPreKeyPublic:
        return KemPreKeyPublic(self.key_id, self.private_key.public, self.signature,
                               self.last_resort)


# --- bundles --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreKeyBundle(Codec):
    """What a server hands to an initiator (X3DH section 3.2, PQXDH section 3.2).

    ``registration_id`` and ``device_id`` identify the owner's installation;
    signalish carries them but does not interpret them.  ``from_bytes`` does
    not verify signatures: call :meth:`verify` (``initiate`` does).
    """

    _TAG: ClassVar[int] = Tag.PREKEY_BUNDLE

    identity_key: IdentityKey
    signed_prekey: SignedPreKeyPublic
    one_time_prekey: OneTimePreKeyPublic | None = None
    kem_prekey: KemPreKeyPublic | None = None
    registration_id: int = 0
    device_id: int = 1

    def __post_init__(self) -> None:
        for name, value in (("registration_id", self.registration_id),
                            ("device_id", self.device_id)):
            if not 0 <= value <= 0xFFFFFFFF:
                raise InvalidArgument(f"{name} is 32-bit unsigned, got {value}")

    def verify(self, profile: Profile) -> None:
        """Check every signature in the bundle under its identity key.

        Raises :class:`~signalish.errors.InvalidSignature` naming the prekey whose
        signature failed, or :class:`~signalish.errors.UnsupportedByProfile` if the
        bundle carries a KEM prekey and the profile has no PQXDH.
        """
        if self.kem_prekey is not None and profile.kem_key_prefix is None:
            raise UnsupportedByProfile(f"profile {profile.name} has no post-quantum prekeys")
        self.signed_prekey.verify(self.identity_key, profile)
        if self.one_time_prekey is not None:
            self.one_time_prekey.verify(self.identity_key, profile)
        if self.kem_prekey is not None:
            self.kem_prekey.verify(self.identity_key, profile)

    def _write(self, w: Writer) -> None:
        w.u32(self.registration_id).u32(self.device_id).fixed(self.identity_key.public_bytes_raw())
        self.signed_prekey._write(w)
        w.flag(self.one_time_prekey is not None)
        if self.one_time_prekey is not None:
            self.one_time_prekey._write(w)
        w.flag(self.kem_prekey is not None)
        if self.kem_prekey is not None:
            self.kem_prekey._write(w)

    @classmethod
    def _read(cls, r: Reader) -> PreKeyBundle:
        registration_id = r.u32("registration id")
        device_id = r.u32("device id")
        identity = IdentityKey(PublicKey.from_public_bytes(r.fixed(32, "identity key")))
        signed = SignedPreKeyPublic._read(r)
        one_time = OneTimePreKeyPublic._read(r) if r.flag("one-time prekey present") else None
        kem = KemPreKeyPublic._read(r) if r.flag("KEM prekey present") else None
        return cls(identity, signed, one_time, kem, registration_id, device_id)
