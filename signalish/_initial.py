"""The initial-message header (X3DH section 3.3, PQXDH section 3.3): what
Alice sends beside her first message so that Bob can repeat the key
agreement.  Its own module because both the handshake (``_x3dh``) and the
prekey lifecycle (``_prekeys``, which consumes what it names) read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from ._encoding import Codec, Reader, Tag, Writer
from ._errors import InvalidArgument
from ._keys import IdentityKey
from ._primitives import MLKEM1024_CIPHERTEXT_SIZE, PublicKey

__all__ = ["InitialHeader"]


@dataclass(frozen=True, slots=True)
class InitialHeader(Codec):
    """What Alice sends with her first message (X3DH section 3.3): her
    identity key, her ephemeral (base) key, the ids of Bob's prekeys she used
    and, for PQXDH, the KEM ciphertext.  Serialized as tag 0x30, version 1:
    IK_A (32), EK_A (32), SPK id (4), flag [OPK id (4)], flag [KEM id (4),
    CT (1568)]."""

    _TAG: ClassVar[int] = Tag.INITIAL_HEADER

    identity_key: IdentityKey
    base_key: PublicKey
    signed_prekey_id: int
    one_time_prekey_id: int | None = None
    kem_prekey_id: int | None = None
    kem_ciphertext: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.kem_prekey_id is None) != (self.kem_ciphertext is None):
            raise InvalidArgument("kem_prekey_id and kem_ciphertext go together")
        if self.kem_ciphertext is not None and len(self.kem_ciphertext) != MLKEM1024_CIPHERTEXT_SIZE:
            raise InvalidArgument("an ML-KEM-1024 ciphertext is 1568 bytes")
        for value in (self.signed_prekey_id, self.one_time_prekey_id, self.kem_prekey_id):
            if value is not None and not 0 <= value <= 0xFFFFFFFF:
                raise InvalidArgument(f"prekey ids are 32-bit unsigned, got {value}")

    @property
    def protocol(self) -> Literal["X3DH", "PQXDH"]:
        return "X3DH" if self.kem_ciphertext is None else "PQXDH"

    def _write(self, w: Writer) -> None:
        w.fixed(self.identity_key.public_bytes_raw()).fixed(self.base_key.public_bytes_raw())
        w.u32(self.signed_prekey_id)
        w.flag(self.one_time_prekey_id is not None)
        if self.one_time_prekey_id is not None:
            w.u32(self.one_time_prekey_id)
        w.flag(self.kem_prekey_id is not None)
        if self.kem_prekey_id is not None and self.kem_ciphertext is not None:
            w.u32(self.kem_prekey_id).fixed(self.kem_ciphertext)

    @classmethod
    def _read(cls, r: Reader) -> InitialHeader:
        identity = IdentityKey(PublicKey.from_public_bytes(r.fixed(32, "identity key")))
        base = PublicKey.from_public_bytes(r.fixed(32, "base key"))
        signed_id = r.u32("signed prekey id")
        one_time_id = r.u32("one-time prekey id") if r.flag("one-time prekey present") else None
        kem_id: int | None = None
        ciphertext: bytes | None = None
        if r.flag("KEM present"):
            kem_id = r.u32("KEM prekey id")
            ciphertext = r.fixed(MLKEM1024_CIPHERTEXT_SIZE, "KEM ciphertext")
        return cls(identity, base, signed_id, one_time_id, kem_id, ciphertext)
