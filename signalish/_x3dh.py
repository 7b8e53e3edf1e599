"""X3DH (Signal's X3DH spec, rev 1) and PQXDH (Signal's PQXDH spec).

Theory of operation.  Bob publishes a :class:`~signalish.PreKeyBundle`.
Alice, with Bob offline, calls :func:`initiate`: it verifies every signature
in the bundle before any Diffie-Hellman (X3DH section 3.3), applies the
caller's :class:`BundlePolicy`, then computes::

    DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)
    DH4 = DH(EK_A, OPK_B)                       (only with a one-time prekey)
    (CT, SS) = ML-KEM-1024.Encaps(PQPK_B)       (PQXDH only; round-3 Kyber1024
                                                 under libsignal_v4)
    SK = HKDF(salt = 0^HashLen, IKM = 0xFF^32 || DH1 || DH2 || DH3 [|| DH4] [|| SS],
              info = profile.x3dh_info or profile.pqxdh_info)
    AD = Encode(IK_A) || Encode(IK_B)

and returns SK, AD and the :class:`InitialHeader` Alice sends with her first
message (X3DH section 3.3, PQXDH section 3.3).  Bob calls :func:`respond`
with that header and his :class:`~signalish.PreKeyRing`; it looks up the
prekeys the header names (refusing unknown, used or retired ones), repeats
the computation with his private keys (section 3.4) and returns the same SK
and AD.  Neither function mutates anything: Bob deletes the one-time prekeys
with :meth:`PreKeyRing.consume` after the first message has authenticated.

Both functions are deterministic given their inputs when Alice's caller
supplies the ephemeral key and, for PQXDH, the encapsulation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from ._bundle import PreKeyBundle
from ._errors import InvalidArgument, PolicyViolation, UnsupportedByProfile
from ._initial import InitialHeader
from ._keys import IdentityKey, IdentityKeyPair
from ._prekeys import PreKeyRing
from ._primitives import (
    MLKEM1024_CIPHERTEXT_SIZE,
    KemPrivateKey,
    KemPublicKey,
    PrivateKey,
    RandomSource,
    SystemRandom,
    hkdf,
    kyber1024_decapsulate,
    kyber1024_encapsulate,
)
from ._profile import Profile

__all__ = ["BundlePolicy", "InitialHeader", "AgreementResult", "initiate", "respond"]

_F: Final = b"\xff" * 32  # X3DH section 2.2: 32 0xFF bytes for curve25519
_SYSTEM_RANDOM: Final = SystemRandom()


@dataclass(frozen=True, slots=True)
class BundlePolicy:
    """Which key agreements a party accepts.

    ``require_one_time_prekey``: refuse bundles (initiator) and initial
    messages (responder) that use no one-time EC prekey.  X3DH allows it
    (section 3.3) at some cost to forward secrecy of the first message.

    ``require_kem_prekey``: refuse plain X3DH; insist on PQXDH.  Set it once
    every peer publishes KEM prekeys: without it, whoever serves bundles can
    strip the KEM prekey and downgrade the session to classical security.
    """

    require_one_time_prekey: bool = False
    require_kem_prekey: bool = False

    def check(self, has_one_time: bool, has_kem: bool, what: str) -> None:
        if self.require_one_time_prekey and not has_one_time:
            raise PolicyViolation(f"{what} uses no one-time prekey and the policy requires one")
        if self.require_kem_prekey and not has_kem:
            raise PolicyViolation(f"{what} uses no KEM prekey and the policy requires PQXDH")


@dataclass(frozen=True, slots=True)
class AgreementResult:
    """The output of X3DH/PQXDH: the secret SK, the associated data AD and
    the initial-message header.  ``repr`` hides SK."""

    shared_secret: bytes = field(repr=False)
    associated_data: bytes
    header: InitialHeader
    #: On the responder's side, the signed prekey the header named (Bob's
    #: first ratchet key pair); None on the initiator's side.
    signed_prekey: PrivateKey | None = field(default=None, repr=False, compare=False)

    @property
    def protocol(self) -> Literal["X3DH", "PQXDH"]:
        return self.header.protocol


def _encapsulate(profile: Profile, public_key: KemPublicKey) -> tuple[bytes, bytes]:
    if profile.kem == "kyber1024":
        return kyber1024_encapsulate(public_key)
    return public_key.encapsulate()


def _decapsulate(profile: Profile, private_key: KemPrivateKey, ciphertext: bytes) -> bytes:
    if profile.kem == "kyber1024":
        return kyber1024_decapsulate(private_key, ciphertext)
    return private_key.decapsulate(ciphertext)


def _kdf(profile: Profile, key_material: bytes, pq: bool) -> bytes:
    info = profile.pqxdh_info if pq else profile.x3dh_info
    assert info is not None
    return hkdf(_F + key_material, salt=None, info=info,
                length=profile.shared_secret_length, hash_name=profile.kdf_hash)


def initiate(
    identity: IdentityKeyPair,
    bundle: PreKeyBundle,
    profile: Profile,
    *,
    policy: BundlePolicy = BundlePolicy(),
    rng: RandomSource = _SYSTEM_RANDOM,
    ephemeral_key: PrivateKey | None = None,
    kem_encapsulation: tuple[bytes, bytes] | None = None,
) -> AgreementResult:
    """Alice's side of X3DH (section 3.3), or PQXDH when the bundle carries
    a KEM prekey.

    ``ephemeral_key`` (EK_A) and ``kem_encapsulation`` (ciphertext, shared
    secret) may be supplied to make the result reproducible, for test vectors;
    otherwise they come from ``rng`` and OpenSSL.  A supplied encapsulation
    is trusted to match the bundle's KEM key.

    Raises :class:`~signalish.errors.InvalidSignature` before any DH if a bundle
    signature fails, :class:`~signalish.errors.PolicyViolation` if ``policy``
    refuses the bundle, :class:`~signalish.errors.UnsupportedByProfile` for a KEM
    prekey under a profile without PQXDH, :class:`~signalish.errors.InvalidKey` if a
    DH output is all zeros.
    """
    bundle.verify(profile)
    one_time, kem = bundle.one_time_prekey, bundle.kem_prekey
    policy.check(one_time is not None, kem is not None, "bundle")
    if kem is not None and profile.pqxdh_info is None:
        raise UnsupportedByProfile(f"profile {profile.name} has no PQXDH")
    if kem is None and profile.requires_kem:
        raise PolicyViolation(f"profile {profile.name} needs a KEM prekey in every bundle")
    if kem is None and kem_encapsulation is not None:
        raise InvalidArgument("kem_encapsulation given but the bundle has no KEM prekey")
    ek = ephemeral_key if ephemeral_key is not None else PrivateKey.generate(rng)
    spk = bundle.signed_prekey.public_key
    parts = [
        identity.agree(spk),
        ek.exchange(bundle.identity_key.public_key),
        ek.exchange(spk),
    ]
    if one_time is not None:
        parts.append(ek.exchange(one_time.public_key))
    ciphertext: bytes | None = None
    if kem is not None:
        ciphertext, kem_secret = (kem_encapsulation if kem_encapsulation is not None
                                  else _encapsulate(profile, kem.public_key))
        if len(ciphertext) != MLKEM1024_CIPHERTEXT_SIZE or len(kem_secret) != 32:
            raise InvalidArgument("kem_encapsulation must be (1568-byte CT, 32-byte secret)")
        parts.append(kem_secret)
    header = InitialHeader(
        identity_key=identity.public,
        base_key=ek.public,
        signed_prekey_id=bundle.signed_prekey.key_id,
        one_time_prekey_id=None if one_time is None else one_time.key_id,
        kem_prekey_id=None if kem is None else kem.key_id,
        kem_ciphertext=ciphertext,
    )
    return AgreementResult(
        shared_secret=_kdf(profile, b"".join(parts), kem is not None),
        associated_data=identity.public.encode(profile) + bundle.identity_key.encode(profile),
        header=header,
    )


def respond(
    prekeys: PreKeyRing,
    header: InitialHeader,
    *,
    now: int,
    policy: BundlePolicy = BundlePolicy(),
) -> AgreementResult:
    """Bob's side (X3DH section 3.4, PQXDH section 3.4), using the prekeys
    the header names from ``prekeys``.  Changes nothing in ``prekeys``.

    Raises :class:`~signalish.errors.UnknownPreKey`, :class:`~signalish.errors.PreKeyAlreadyUsed`
    or :class:`~signalish.errors.PreKeyExpired` for a prekey it cannot use,
    :class:`~signalish.errors.PreKeyReplayed` for an initial message without a
    one-time prekey that this signed prekey already accepted,
    :class:`~signalish.errors.PolicyViolation` if ``policy`` refuses the header, and
    :class:`~signalish.errors.InvalidKey` if a DH output is all zeros.
    """
    profile = prekeys.profile
    policy.check(header.one_time_prekey_id is not None, header.kem_prekey_id is not None,
                 "initial message")
    if header.kem_prekey_id is not None and profile.pqxdh_info is None:
        raise UnsupportedByProfile(f"profile {profile.name} has no PQXDH")
    if header.kem_prekey_id is None and profile.requires_kem:
        raise PolicyViolation(f"profile {profile.name} needs a KEM prekey in every session")
    spk = prekeys.signed_prekey(header.signed_prekey_id, now=now).private_key
    prekeys.check_replay(header, now=now)
    one_time = (None if header.one_time_prekey_id is None
                else prekeys.one_time_prekey(header.one_time_prekey_id).private_key)
    kem = (None if header.kem_prekey_id is None
           else prekeys.kem_prekey(header.kem_prekey_id, now=now).private_key)
    identity = prekeys.identity
    return _respond_with_keys(profile, identity.dh_private, identity.public, spk, one_time, kem,
                              header)


def _respond_with_keys(
    profile: Profile,
    identity_private: PrivateKey,
    identity_public: IdentityKey,
    signed_prekey: PrivateKey,
    one_time_prekey: PrivateKey | None,
    kem_prekey: KemPrivateKey | None,
    header: InitialHeader,
) -> AgreementResult:
    """The computation of X3DH section 3.4 / PQXDH section 3.4 on raw keys."""
    parts = [
        signed_prekey.exchange(header.identity_key.public_key),
        identity_private.exchange(header.base_key),
        signed_prekey.exchange(header.base_key),
    ]
    if one_time_prekey is not None:
        parts.append(one_time_prekey.exchange(header.base_key))
    if kem_prekey is not None and header.kem_ciphertext is not None:
        parts.append(_decapsulate(profile, kem_prekey, header.kem_ciphertext))
    return AgreementResult(
        shared_secret=_kdf(profile, b"".join(parts), kem_prekey is not None),
        associated_data=header.identity_key.encode(profile) + identity_public.encode(profile),
        header=header,
        signed_prekey=signed_prekey,
    )
