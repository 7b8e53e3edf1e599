"""Sealed sender (signalish._sealed_sender): certificates, USMC, v1 and v2.

The known answers (KAT) were made by libsignal-client 0.103.0 through
tests/interop/driver_sealed.mjs on 2026-11-23 with ``record()`` in
tests/interop/test_sealed_sender_interop.py (``PYTHONPATH=tests .venv/bin/python
tests/interop/test_sealed_sender_interop.py`` prints a fresh set): libsignal's
trust root, server key and sender identity (Alice, 9d0652a3-..., device 1,
+15551234567, expiring 1900000000000) made the certificates, a group message
USMC (content hint 1, group id 0xcd * 32), a v1 message to Bob and a v2
SentMessage to Bob's devices 1 and 2 (registration ids 2001, 2002) and Carol's
device 1 (3001), Dave (00000000-1111-4222-8333-444444444444) excluded.  Bob
and Carol are signalish identities from DeterministicRandom(b"kat bob") and
(b"kat carol"); nothing here was produced by signalish.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signalish import LIBSIGNAL_V4, DeterministicRandom, IdentityKey, IdentityKeyPair
from signalish._primitives import aes256_ctr, aes256_gcm_siv_decrypt, aes256_gcm_siv_encrypt
from signalish._sealed_sender import (
    ContentHint,
    Device,
    Recipient,
    SenderCertificate,
    SentMessage,
    ServerCertificate,
    ServiceId,
    UnidentifiedSenderMessageContent,
    seal_v1,
    seal_v2,
    unseal,
    unseal_and_validate,
)
from signalish.errors import (
    AuthenticationError,
    CertificateExpired,
    InvalidArgument,
    InvalidCertificate,
    SealedSenderSelfSend,
)

ALICE = "9d0652a3-dcc3-4d11-975f-74d61598733f"
BOB = "796abedb-ca4e-4f18-8803-1fde5b921f9f"
CAROL = "e4a5b5a9-2c51-4b43-9a5a-1d7cbd1c0e11"
DAVE = "00000000-1111-4222-8333-444444444444"
EXPIRES = 1_900_000_000_000

KAT_HEX = {
    'trust_root': (
        '0506e4cec408d16b61c9ba2978d6b0a4671a875097e97ca7ee121954ce30c89940'
    ),
    'server_certificate': (
        '0a25082a122105429aea96983ae1b1d57ad9f41ecce3f2a3b95ed3fe6866f12ace74aeeb7b9d6112'
        '40d75776c3cb28aeaab52290f9c2d48c821c78d05ddc7f7a38c365b8f197ead4a1dc692f7c670b18'
        '5588a1777d84f36a944a24a5c28f43bbb64ba2cd60bdd48f0a'
    ),
    'sender_certificate': (
        '0acd010a0c2b31353535313233343536371001190038d360ba0100002221051fe63fad50a6335247'
        '441f4a4b4da9be30d8fddfdb72cfc03e36a49dc79edd242a690a25082a122105429aea96983ae1b1'
        'd57ad9f41ecce3f2a3b95ed3fe6866f12ace74aeeb7b9d611240d75776c3cb28aeaab52290f9c2d4'
        '8c821c78d05ddc7f7a38c365b8f197ead4a1dc692f7c670b185588a1777d84f36a944a24a5c28f43'
        'bbb64ba2cd60bdd48f0a322439643036353261332d646363332d346431312d393735662d37346436'
        '313539383733336612402018a31dc563b089da1e1592cbefe5ddd934cc517a0d0f1713ecf6a48c4c'
        '1a580cc09fff456fae5ed2c9aea1218b6abe2f3404e9c18dc46806cbb2d0a1788585'
    ),
    'usmc': (
        '08071292020acd010a0c2b31353535313233343536371001190038d360ba0100002221051fe63fad'
        '50a6335247441f4a4b4da9be30d8fddfdb72cfc03e36a49dc79edd242a690a25082a122105429aea'
        '96983ae1b1d57ad9f41ecce3f2a3b95ed3fe6866f12ace74aeeb7b9d611240d75776c3cb28aeaab5'
        '2290f9c2d48c821c78d05ddc7f7a38c365b8f197ead4a1dc692f7c670b185588a1777d84f36a944a'
        '24a5c28f43bbb64ba2cd60bdd48f0a322439643036353261332d646363332d346431312d39373566'
        '2d37346436313539383733336612402018a31dc563b089da1e1592cbefe5ddd934cc517a0d0f1713'
        'ecf6a48c4c1a580cc09fff456fae5ed2c9aea1218b6abe2f3404e9c18dc46806cbb2d0a17885851a'
        '6d330a10d1d1d1d1700011ebb32a33b8a8a487a610f0c0d6db04180022100cace47f917a3990ebb3'
        '222ffa32f0b442cc4eed4150c00735c614ebda4abb65b810f44de5ea017daf79b5805e8a15b9bec0'
        '2d97ceb84f8bcff5894e891a64b9e45e09ce111179e1a1bfdc9548e1d30f20012a20cdcdcdcdcdcd'
        'cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd'
    ),
    'v1': (
        '110a210525a79cf81d3ddf629f2b1e648b1a0a4cc97a44ac9fad66f1e0fc0bbb092b4951122bac4f'
        '80e5ea4ed97dcbdf3f6a3a18742735d3b9689fb9ca7d98153b4c60e74147b96f3df27af24d52be35'
        '381ab403f809b5f6fddd3803dc95b12161cf58e8caeb6b1b91ffc4e26370f60246370fd68528f2b8'
        'fc94ff8d57ac8c370050b042e4b8a38f49a3ce9863b83d7cdeb6e366d854d68a22d238c114b40f53'
        'aa734fe4b483eb100dce1e079f9b92c14c3b1c42d1ab3d78c90f9b7c8549fd0d01730997dc485579'
        'c7f3eb527fd1d06d00aabf70540ef72becf79ee420fc3ff2014701813644019c82809c4993600988'
        '61acd065da31a95b45726ebaf23d0c17e2a10552499627fe108d1ef0cc5852bc32c3a8c01bd036f5'
        '87e28b66a8f136f2cd5c68a1fd9ba288547d0d8a2a8d2275ce07b1f9b849a570a5bdefdb9cccb786'
        '1de0dda9993b75ae00a033381ea8eae6cdca70611b798ac19e001b8e609e249d0d93a239a1cfc60a'
        '7b3e6d511bab2a5b62654ec16cbc3676dc6255a8ea3e182abc57d25bc33c6bbb6949381eb27ece64'
        '36b817fb9c79354d44d49c7a9910e6baa17d274bae71d9b012a4213ae365ffb03d5145ce41244a3d'
        '2d9ab034d3ea39e25c07d7ca3aac067493414177d9491e0aa5f417df70f2d7bf8b8ec6edf6de6896'
        'e340071ee10eeaa791381fd2963e503c6ea7b21e6912a7baa42b612fc049292255870705e1d28f14'
    ),
    'v2_sent': (
        '230300796abedbca4e4f1888031fde5b921f9f0187d10207d2b7b827a78002ae89616e722eb6180b'
        '7a14e8710f5c9606b70f5e44e65c1dec49320eedbee2c21da573af3de352550dc200e4a5b5a92c51'
        '4b439a5a1d7cbd1c0e11010bb9c603fa602a11c4d2f3706bdbce9185dc85ba9c944e0eb4b9e11b5b'
        'c4ad6b975f9631f2e4b3450198f4ea7f7c71244130000000000011114222833344444444444400bb'
        'ba19f2e7169be829524b85b25fcb8b5b6ffbda09e15b2b68cbfbd57c75f96e9e68e4e50a2ca5bdd6'
        '49257fb29f45c72462345d9198c2b56d13de47feca5a252ecb76d5f51345da0b6023d1a37a35f1ee'
        '91263da1c6cb19edafa2ffdcfdf060e79bf6900b971f3b3c26ad01cde3b8fa1351c076f845478772'
        'a38eb4af90976520d6e80a75ddca894560c2c3a9d57af3d55798ca8e077ee09de784b9a218e57d9f'
        'b4b001c60a3d882f7e41248d9c6b78429ef75085225877a3f267cc74ea02f13e4c6281f7ba0d8e30'
        'af1cefc2f789fd30f73870dd62cb50b1ff60d08c104aa8257fbfe97a89b465e04a0b39a15d1ec878'
        '3d843ca870737b461ffb2b9689b37443d4400f4a7b83b7cb3eb7542886f71b04a8d8dd97a1836879'
        'a2134ea879f60dcba44bb03fce6174b77adc69e2252dfe2dada3997637eb7833bbbae4d958472f35'
        '0785a7ca4ce46d5660e5ae700f21eb402fdf207c0663b1f8cd7248ea15c295943b1f007fb476b876'
        '4ac7d8d7068ab51a7b37aa4173c05e70714788465f0706ab9a7e1b84010df1e4d497f5e58b8d3660'
        '6a59302c25af60b3750122f9ca32a29f00f67ef26ab400c3e47643888b7eb830bc05369234abfca5'
        '3387b38730365d872d3a8bb5bb34dfffa39d4b36822b0817f6109299c92881e1cb'
    ),
    'v2_received_bob': (
        '22b7b827a78002ae89616e722eb6180b7a14e8710f5c9606b70f5e44e65c1dec49320eedbee2c21d'
        'a573af3de352550dc2bbba19f2e7169be829524b85b25fcb8b5b6ffbda09e15b2b68cbfbd57c75f9'
        '6e9e68e4e50a2ca5bdd649257fb29f45c72462345d9198c2b56d13de47feca5a252ecb76d5f51345'
        'da0b6023d1a37a35f1ee91263da1c6cb19edafa2ffdcfdf060e79bf6900b971f3b3c26ad01cde3b8'
        'fa1351c076f845478772a38eb4af90976520d6e80a75ddca894560c2c3a9d57af3d55798ca8e077e'
        'e09de784b9a218e57d9fb4b001c60a3d882f7e41248d9c6b78429ef75085225877a3f267cc74ea02'
        'f13e4c6281f7ba0d8e30af1cefc2f789fd30f73870dd62cb50b1ff60d08c104aa8257fbfe97a89b4'
        '65e04a0b39a15d1ec8783d843ca870737b461ffb2b9689b37443d4400f4a7b83b7cb3eb7542886f7'
        '1b04a8d8dd97a1836879a2134ea879f60dcba44bb03fce6174b77adc69e2252dfe2dada3997637eb'
        '7833bbbae4d958472f350785a7ca4ce46d5660e5ae700f21eb402fdf207c0663b1f8cd7248ea15c2'
        '95943b1f007fb476b8764ac7d8d7068ab51a7b37aa4173c05e70714788465f0706ab9a7e1b84010d'
        'f1e4d497f5e58b8d36606a59302c25af60b3750122f9ca32a29f00f67ef26ab400c3e47643888b7e'
        'b830bc05369234abfca53387b38730365d872d3a8bb5bb34dfffa39d4b36822b0817f6109299c928'
        '81e1cb'
    ),
}
KAT = {name: bytes.fromhex(value) for name, value in KAT_HEX.items()}

BOB_ID = IdentityKeyPair.generate(DeterministicRandom(b"kat bob"))
CAROL_ID = IdentityKeyPair.generate(DeterministicRandom(b"kat carol"))
KAT_ROOT = IdentityKey.decode(KAT["trust_root"], LIBSIGNAL_V4)


class Server:
    """A trust root and a server key, held by signalish."""

    def __init__(self, seed: bytes, key_id: int = 7) -> None:
        rng = DeterministicRandom(seed)
        self.root, self.key = IdentityKeyPair.generate(rng), IdentityKeyPair.generate(rng)
        self.certificate = ServerCertificate.create(key_id, self.key.public, self.root)

    def issue(self, identity: IdentityKey, *, uuid: str = ALICE, device_id: int = 1,
              e164: str | None = None, expiration: int = EXPIRES) -> SenderCertificate:
        return SenderCertificate.create(sender_uuid=uuid, sender_e164=e164,
                                        sender_device_id=device_id, identity_key=identity,
                                        expiration=expiration, signer=self.certificate,
                                        server_key=self.key)


SERVER = Server(b"server")
ALICE_ID = IdentityKeyPair.generate(DeterministicRandom(b"alice"))


def usmc_of(sender: IdentityKeyPair = ALICE_ID, contents: bytes = b"\x33inner message", **kw: object
            ) -> UnidentifiedSenderMessageContent:
    cert = SERVER.issue(sender.public, **kw)  # type: ignore[arg-type]
    return UnidentifiedSenderMessageContent(7, cert, contents, ContentHint.RESENDABLE, b"\x01" * 32)


# --- primitives added for sealed sender -------------------------------------------------


def test_aes256_ctr_nist_sp800_38a_f55() -> None:
    key = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
    counter = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
    plaintext = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
    expected = bytes.fromhex("601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5")
    assert aes256_ctr(key, counter, plaintext) == expected
    assert aes256_ctr(key, counter, expected) == plaintext
    with pytest.raises(InvalidArgument):
        aes256_ctr(key[:16], counter, plaintext)


def test_aes256_gcm_siv_rfc8452_c2() -> None:
    key, nonce = bytes.fromhex("01" + "00" * 31), bytes.fromhex("03" + "00" * 11)
    assert aes256_gcm_siv_encrypt(key, nonce, b"", b"").hex() == "07f5f4169bbf55a8400cd47ea6fd400f"
    sealed = aes256_gcm_siv_encrypt(key, nonce, bytes.fromhex("0100000000000000"), b"")
    assert sealed.hex() == "c2ef328e5c71c83b843122130f7364b761e0b97427e3df28"
    assert aes256_gcm_siv_decrypt(key, nonce, sealed, b"") == bytes.fromhex("0100000000000000")
    for i in range(len(sealed)):
        with pytest.raises(AuthenticationError):
            aes256_gcm_siv_decrypt(key, nonce, sealed[:i] + bytes((sealed[i] ^ 1,))
                                   + sealed[i + 1:], b"")
    with pytest.raises(AuthenticationError):
        aes256_gcm_siv_decrypt(key, nonce, sealed[:15], b"")
    with pytest.raises(InvalidArgument):
        aes256_gcm_siv_encrypt(key, nonce[:8], b"", b"")


# --- known answers from libsignal ---------------------------------------------------


def test_kat_certificates() -> None:
    server = ServerCertificate.from_bytes(KAT["server_certificate"])
    assert server.to_bytes() == KAT["server_certificate"] and server.key_id == 42
    assert server.verify(KAT_ROOT) and not server.verify(SERVER.root.public)
    cert = SenderCertificate.from_bytes(KAT["sender_certificate"])
    assert cert.to_bytes() == KAT["sender_certificate"] and cert.signer == server
    assert (cert.sender_uuid, cert.sender_e164, cert.sender_device_id, cert.expiration) == (
        ALICE, "+15551234567", 1, EXPIRES)
    cert.validate(KAT_ROOT, EXPIRES)
    cert.validate([SERVER.root.public, KAT_ROOT], 0)
    with pytest.raises(CertificateExpired):
        cert.validate(KAT_ROOT, EXPIRES + 1)
    with pytest.raises(InvalidCertificate):
        cert.validate(SERVER.root.public, 0)
    with pytest.raises(InvalidCertificate):
        cert.validate([], 0)


def test_kat_v1() -> None:
    usmc = unseal(KAT["v1"], BOB_ID)
    assert usmc == UnidentifiedSenderMessageContent.from_bytes(KAT["usmc"])
    assert usmc.to_bytes() == KAT["usmc"]
    assert (usmc.message_type, usmc.content_hint, usmc.group_id) == (7, 1, b"\xcd" * 32)
    assert usmc.sender.to_bytes() == KAT["sender_certificate"]
    assert unseal_and_validate(KAT["v1"], BOB_ID, trust_roots=KAT_ROOT, now=EXPIRES,
                               local_uuid=BOB, local_device_id=1) == usmc
    with pytest.raises(AuthenticationError):
        unseal(KAT["v1"], CAROL_ID)


def test_kat_v2() -> None:
    sent = SentMessage.from_bytes(KAT["v2_sent"])
    assert sent.recipients == {ServiceId.aci(BOB): (Device(1, 2001), Device(2, 2002)),
                               ServiceId.aci(CAROL): (Device(1, 3001),)}
    assert sent.excluded == (ServiceId.aci(DAVE),)
    for_bob = sent.received_message(ServiceId.aci(BOB))
    assert for_bob == KAT["v2_received_bob"]
    assert unseal(for_bob, BOB_ID).to_bytes() == KAT["usmc"]
    for_carol = sent.received_message(ServiceId.aci(CAROL))
    assert unseal_and_validate(for_carol, CAROL_ID, trust_roots=KAT_ROOT,
                               now=EXPIRES).to_bytes() == KAT["usmc"]
    with pytest.raises(AuthenticationError):
        unseal(for_bob, CAROL_ID)
    with pytest.raises(InvalidArgument):
        sent.received_message(ServiceId.aci(DAVE))
    with pytest.raises(InvalidArgument):
        sent.received_message(ServiceId.pni(BOB))


def test_kat_v1_step_by_step() -> None:
    """The v1 construction, spelled out with primitives only."""
    from signalish._primitives import hkdf, hmac_sha256
    body = KAT["v1"][1:]
    e_pub, static, message = body[2:35], body[37:80], body[83:]
    assert body[:2] == b"\x0a\x21" and body[35:37] == b"\x12\x2b" and body[80] == 0x1a
    bob_pub = BOB_ID.public.encode(LIBSIGNAL_V4)
    okm = hkdf(BOB_ID.agree(IdentityKey.decode(e_pub, LIBSIGNAL_V4).public_key),
               salt=b"UnidentifiedDelivery" + bob_pub + e_pub, info=b"", length=96)
    chain, cipher_key, mac_key = okm[:32], okm[32:64], okm[64:]
    assert hmac_sha256(mac_key, static[:33])[:10] == static[33:]
    sender = aes256_ctr(cipher_key, bytes(16), static[:33])
    assert sender == SenderCertificate.from_bytes(KAT["sender_certificate"]).identity_key.encode(
        LIBSIGNAL_V4)
    okm = hkdf(BOB_ID.agree(IdentityKey.decode(sender, LIBSIGNAL_V4).public_key),
               salt=chain + static, info=b"", length=96)
    assert hmac_sha256(okm[64:], message[:-10])[:10] == message[-10:]
    assert aes256_ctr(okm[32:64], bytes(16), message[:-10]) == KAT["usmc"]


def test_kat_v2_step_by_step() -> None:
    """The v2 construction, spelled out with primitives only."""
    from signalish._primitives import PrivateKey, PublicKey, hkdf
    received = KAT["v2_received_bob"]
    c, at, e_raw, body = received[1:33], received[33:49], received[49:81], received[81:]
    e_pub, bob_pub = b"\x05" + e_raw, BOB_ID.public.encode(LIBSIGNAL_V4)
    pad = hkdf(BOB_ID.agree(PublicKey.from_public_bytes(e_raw)) + e_pub + bob_pub, salt=None,
               info=b"Sealed Sender v2: DH", length=32)
    m = bytes(x ^ y for x, y in zip(c, pad))
    r = hkdf(m, salt=None, info=b"Sealed Sender v2: r (2023-08)", length=64)
    assert PrivateKey.from_private_bytes(r[:32]).public.public_bytes_raw() == e_raw
    k = hkdf(m, salt=None, info=b"Sealed Sender v2: K", length=32)
    assert aes256_gcm_siv_decrypt(k, bytes(12), body, b"") == KAT["usmc"]
    sender = SenderCertificate.from_bytes(KAT["sender_certificate"]).identity_key
    expected = hkdf(BOB_ID.agree(sender.public_key) + e_pub + c + sender.encode(LIBSIGNAL_V4)
                    + bob_pub, salt=None, info=b"Sealed Sender v2: DH-sender", length=16)
    assert expected == at


# --- certificates ---------------------------------------------------------------------


@pytest.mark.parametrize("e164", [None, "+1", "+123456789012345"])
@pytest.mark.parametrize("key_id", [0, 1, 0xDEADC0DE, 0xFFFFFFFF])
def test_certificates_round_trip(e164: str | None, key_id: int) -> None:
    server = Server(b"rt", key_id)
    cert = server.issue(ALICE_ID.public, e164=e164, device_id=127, expiration=(1 << 64) - 1)
    assert SenderCertificate.from_bytes(cert.to_bytes()) == cert
    assert ServerCertificate.from_bytes(server.certificate.to_bytes()) == server.certificate
    cert.validate(server.root.public, (1 << 64) - 1)


def test_expiry_is_inclusive() -> None:
    cert = SERVER.issue(ALICE_ID.public, expiration=1000)
    cert.validate(SERVER.root.public, 1000)
    cert.validate(SERVER.root.public, 0)
    with pytest.raises(CertificateExpired):
        cert.validate(SERVER.root.public, 1001)
    assert issubclass(CertificateExpired, InvalidCertificate)


def test_wrong_root_wrong_signer_and_tampering() -> None:
    other = Server(b"other")
    cert = SERVER.issue(ALICE_ID.public)
    with pytest.raises(InvalidCertificate):
        cert.validate(other.root.public, 0)
    cert.validate([other.root.public, SERVER.root.public], 0)
    # Signed by a key that is not the one its server certificate names.
    forged = replace(cert, signature=other.key.sign(cert.certificate_data()))
    with pytest.raises(InvalidCertificate):
        forged.validate(SERVER.root.public, 0)
    # A server certificate the root never signed.
    rogue = ServerCertificate(7, other.key.public, other.root.sign(
        SERVER.certificate.certificate_data()))
    with pytest.raises(InvalidCertificate):
        replace(cert, signer=rogue).validate(SERVER.root.public, 0)
    # Any changed field breaks the signature.
    for changed in (replace(cert, expiration=cert.expiration + 1),
                    replace(cert, sender_device_id=2), replace(cert, sender_e164="+1"),
                    replace(cert, sender_uuid=BOB), replace(cert, identity_key=BOB_ID.public)):
        with pytest.raises(InvalidCertificate):
            changed.validate(SERVER.root.public, 0)
    with pytest.raises(InvalidArgument):
        SenderCertificate.create(sender_uuid=ALICE, sender_e164=None, sender_device_id=1,
                                 identity_key=ALICE_ID.public, expiration=1,
                                 signer=SERVER.certificate, server_key=other.key)


@pytest.mark.parametrize("field, value", [
    ("uuid", "9D0652A3-DCC3-4D11-975F-74D61598733F"), ("uuid", "not-a-uuid"), ("uuid", ""),
    ("e164", "15551234567"), ("e164", "+"), ("e164", "+1234567890123456"), ("e164", ""),
    ("device_id", 0), ("device_id", 128), ("expiration", -1), ("expiration", 1 << 64),
])
def test_certificate_arguments_are_checked(field: str, value: object) -> None:
    with pytest.raises(InvalidArgument):
        SERVER.issue(ALICE_ID.public, **{field: value})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        ServerCertificate.create(-1 if field == "uuid" else 1 << 32, ALICE_ID.public, SERVER.root)


# --- USMC ---------------------------------------------------------------------------


@given(st.sampled_from([2, 3, 7, 8]), st.binary(max_size=200),
       st.integers(0, 0xFFFFFFFF), st.none() | st.binary(min_size=1, max_size=256))
def test_usmc_round_trip(kind: int, contents: bytes, hint: int, group_id: bytes | None) -> None:
    usmc = UnidentifiedSenderMessageContent(kind, SERVER.issue(ALICE_ID.public), contents,
                                            hint, group_id)
    data = usmc.to_bytes()
    assert UnidentifiedSenderMessageContent.from_bytes(data) == usmc
    assert data[:2] == bytes((0x08, {2: 2, 3: 1, 7: 7, 8: 8}[kind]))
    assert (b"\x20" in data) or hint == 0


def test_usmc_arguments_are_checked() -> None:
    cert = SERVER.issue(ALICE_ID.public)
    for bad in ({"message_type": 1}, {"message_type": 4}, {"content_hint": -1},
                {"content_hint": 1 << 32}, {"group_id": b""}, {"group_id": bytes(257)}):
        args: dict[str, object] = {"message_type": 2, "sender": cert, "contents": b"x", **bad}
        with pytest.raises(InvalidArgument):
            UnidentifiedSenderMessageContent(**args)  # type: ignore[arg-type]
    assert ContentHint.DEFAULT == 0 and ContentHint.RESENDABLE == 1 and ContentHint.IMPLICIT == 2


# --- v1 -----------------------------------------------------------------------------


@given(st.binary(max_size=300), st.binary(min_size=8, max_size=8))
def test_v1_round_trip(contents: bytes, seed: bytes) -> None:
    rng = DeterministicRandom(seed)
    usmc = usmc_of(contents=contents)
    message = seal_v1(usmc, BOB_ID.public, ALICE_ID, rng)
    assert message[0] == 0x11 and len(message) == 1 + 35 + 45 + 2 + len(usmc.to_bytes()) + 10 + (
        len(usmc.to_bytes()) + 10 > 127)
    assert unseal(message, BOB_ID) == usmc
    with pytest.raises(AuthenticationError):
        unseal(message, CAROL_ID)


def test_v1_seal_refuses_a_foreign_certificate() -> None:
    with pytest.raises(InvalidArgument):
        seal_v1(usmc_of(sender=CAROL_ID), BOB_ID.public, ALICE_ID, DeterministicRandom(b"x"))


def test_v1_static_key_must_match_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    import signalish._sealed_sender.envelopes as module
    monkeypatch.setattr(module, "_check_sender", lambda usmc, sender: None)
    message = seal_v1(usmc_of(sender=CAROL_ID), BOB_ID.public, ALICE_ID, DeterministicRandom(b"y"))
    with pytest.raises(AuthenticationError):
        unseal(message, BOB_ID)


def test_receiver_checks() -> None:
    rng = DeterministicRandom(b"checks")

    def sealed(**kw: object) -> bytes:
        return seal_v1(usmc_of(**kw), BOB_ID.public, ALICE_ID, rng)

    root = SERVER.root.public
    usmc = unseal_and_validate(sealed(), BOB_ID, trust_roots=root, now=EXPIRES,
                               local_uuid=BOB, local_device_id=1)
    assert usmc.sender.sender_uuid == ALICE
    with pytest.raises(SealedSenderSelfSend):
        unseal_and_validate(sealed(uuid=BOB, device_id=3), BOB_ID, trust_roots=root, now=0,
                            local_uuid=BOB.upper(), local_device_id=3)
    # The same account on another device is not a self-send.
    unseal_and_validate(sealed(uuid=BOB, device_id=3), BOB_ID, trust_roots=root, now=0,
                        local_uuid=BOB, local_device_id=1)
    # The certificate is checked before the self-send rule (libsignal's order).
    with pytest.raises(CertificateExpired):
        unseal_and_validate(sealed(uuid=BOB, device_id=3, expiration=5), BOB_ID,
                            trust_roots=root, now=6, local_uuid=BOB, local_device_id=3)
    with pytest.raises(InvalidCertificate):
        unseal_and_validate(sealed(), BOB_ID, trust_roots=Server(b"o").root.public, now=0)
    with pytest.raises(InvalidArgument):
        unseal_and_validate(sealed(), BOB_ID, trust_roots=root, now=0, local_uuid=BOB)


# --- v2 -----------------------------------------------------------------------------

DAN_ID = IdentityKeyPair.generate(DeterministicRandom(b"dan"))


def recipients() -> list[Recipient]:
    return [Recipient(ServiceId.aci(BOB), BOB_ID.public, (Device(1, 1), Device(2, 0x3FFF),
                                                          Device(127, 0))),
            Recipient(ServiceId.pni(CAROL), CAROL_ID.public, (Device(5, 300),)),
            Recipient(ServiceId.aci(CAROL), DAN_ID.public, (Device(1, 2),))]


def test_v2_round_trip_several_recipients_and_devices() -> None:
    usmc = usmc_of()
    sent = seal_v2(usmc, recipients(), ALICE_ID, DeterministicRandom(b"v2"),
                   excluded=[ServiceId.aci(DAVE), ServiceId.pni(DAVE)])
    assert sent[:2] == b"\x23\x05"
    parsed = SentMessage.from_bytes(sent)
    assert parsed.excluded == (ServiceId.aci(DAVE), ServiceId.pni(DAVE))
    assert list(parsed.recipients.items()) == [(r.service_id, r.devices) for r in recipients()]
    identities = {ServiceId.aci(BOB): BOB_ID, ServiceId.pni(CAROL): CAROL_ID,
                  ServiceId.aci(CAROL): DAN_ID}
    messages = {sid: parsed.received_message(sid) for sid in parsed.recipients}
    for sid, message in messages.items():
        assert message[0] == 0x22 and len(message) == 1 + 48 + 32 + len(usmc.to_bytes()) + 16
        assert unseal(message, identities[sid]) == usmc
        for other, identity in identities.items():
            if other != sid:
                with pytest.raises(AuthenticationError):
                    unseal(message, identity)
    with pytest.raises(InvalidArgument):
        parsed.received_message(ServiceId.aci(DAVE))
    assert "recipients=3" in repr(parsed)


def test_v2_seal_arguments_are_checked() -> None:
    rng, usmc = DeterministicRandom(b"args"), usmc_of()
    one = recipients()[:1]
    for bad_recipients, excluded in (([], []), (one + one, []), (one, [ServiceId.aci(BOB)]),
                                     (one, [ServiceId.aci(DAVE)] * 2)):
        with pytest.raises(InvalidArgument):
            seal_v2(usmc, bad_recipients, ALICE_ID, rng, excluded=excluded)
    with pytest.raises(InvalidArgument):
        seal_v2(usmc_of(sender=BOB_ID), one, ALICE_ID, rng)
    for devices in ((), (Device(1, 1), Device(1, 2))):
        with pytest.raises(InvalidArgument):
            Recipient(ServiceId.aci(BOB), BOB_ID.public, devices)
    for device_id, registration_id in ((0, 1), (128, 1), (1, -1), (1, 0x4000)):
        with pytest.raises(InvalidArgument):
            Device(device_id, registration_id)


def test_service_ids() -> None:
    aci, pni = ServiceId.aci(BOB), ServiceId.pni(BOB)
    assert str(aci) == BOB and str(pni) == f"PNI:{BOB}"
    assert aci.fixed_width()[0] == 0 and pni.fixed_width()[0] == 1
    assert ServiceId.from_fixed_width(pni.fixed_width()) == pni != aci
    with pytest.raises(InvalidArgument):
        ServiceId.aci("bob")
