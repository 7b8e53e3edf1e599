"""Sealed sender against every pinned libsignal-client (driver_sealed.mjs),
both ways: certificates made by each side validated by the other, v1
messages (with a 1:1 message inside, decrypted by a SessionManager or by
libsignal) and v2 messages to several recipients and devices, split by each
side's splitter.

Every test runs against each release that has what it uses:

* 0.72.1 (``@signalapp/libsignal-client``): protocol version 3, so the
  signalish side's 1:1 sessions are LIBSIGNAL_V3 and the bundles carry no
  Kyber prekey.  It has every sealed-sender call used here
  (SenderCertificate.validate, sealedSenderEncryptMessage, sealedSenderEncrypt,
  sealedSenderMultiRecipientEncrypt with excluded recipients,
  SealedSenderMultiRecipientMessage, sealedSenderMultiRecipientMessageForSingleRecipient,
  sealedSenderDecryptToUsmc, sealedSenderDecryptMessage) except
  ``SenderCertificate.validateWithTrustRoots``: the test of several trust
  roots in libsignal runs against 0.90.0 and 0.103.0 only, and
  test_which_releases_validate_with_several_trust_roots pins that 0.72.1
  lacks it.
* 0.90.0 (``libsignal-v4``): protocol version 4 with Kyber, the signalish
  side LIBSIGNAL_V4 with ``SessionOptions(pq_ratchet=False)``.
* 0.103.0 (``libsignal-v5``): LIBSIGNAL_V4 with SPQR (the default).

The sealed-sender formats (certificates, USMC, v1, v2 sent and received) are
the same bytes in all three; only the 1:1 session layer under them differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from libsignal_peer import LibsignalPeer
from signalish import (
    LIBSIGNAL_V3,
    LIBSIGNAL_V4,
    DeterministicRandom,
    IdentityKey,
    IdentityKeyPair,
    MemoryStore,
    PreKeyBundle,
    Profile,
    PublicKey,
    SessionManager,
    SessionOptions,
    SignedPreKeyPublic,
)
from signalish._recovery import DecryptionErrorMessage, plaintext_content
from signalish._sealed_sender import (
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
from signalish.errors import AuthenticationError, CertificateExpired, InvalidCertificate
from test_libsignal import bundle_fields as v3_bundle_fields
from test_libsignal_v4 import bundle_fields as v4_bundle_fields
from test_libsignal_v4 import bundle_from_libsignal as v4_bundle_from_libsignal
from test_libsignal_v4 import has_field_5, inner_of, issue_bundle

ALICE = "9d0652a3-dcc3-4d11-975f-74d61598733f"
BOB = "796abedb-ca4e-4f18-8803-1fde5b921f9f"
CAROL = "e4a5b5a9-2c51-4b43-9a5a-1d7cbd1c0e11"
DAVE = "00000000-1111-4222-8333-444444444444"
EXPIRES = 1_900_000_000_000


# --- the releases ------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    """A pinned libsignal-client and what signalish speaks with it 1:1."""

    version: str
    profile: Profile
    pq_ratchet: bool   # SPQR in signalish's sessions (LIBSIGNAL_V4 only)

    @property
    def kyber(self) -> bool:
        return self.profile is LIBSIGNAL_V4

    def options(self, registration_id: int) -> SessionOptions:
        return replace(SessionOptions.libsignal(registration_id), pq_ratchet=self.pq_ratchet)

    def party(self, seed: bytes, registration_id: int, *,
              identity: IdentityKeyPair | None = None, one_time: int = 2) -> SessionManager:
        """A signalish party (or, given ``identity``, one more device of an
        account) with ``one_time`` one-time EC prekeys and, under
        LIBSIGNAL_V4, as many one-time Kyber prekeys."""
        rng = DeterministicRandom(seed)
        identity = identity or IdentityKeyPair.generate(rng)
        manager = SessionManager(identity, MemoryStore(), self.profile, rng=rng,
                                 options=self.options(registration_id))
        with manager.prekeys(now=0) as ring:
            if one_time:
                ring.generate_one_time_prekeys(one_time, rng)
                if self.kyber:
                    ring.generate_kem_prekeys(one_time, rng, now=0)
        return manager

    def check_1to1(self, usmc: UnidentifiedSenderMessageContent, *, spqr: bool) -> None:
        """The 1:1 message inside ``usmc`` has this release's message version
        (the high nibble of its first byte: 3 for 0.72.1, which writes 0x34,
        4 after) and SPQR (SignalMessage field 5) iff ``spqr``."""
        assert usmc.message_type in (2, 3)
        message = usmc.contents
        assert message[0] >> 4 == (4 if self.kyber else 3)
        assert has_field_5(inner_of(message) if usmc.message_type == 3 else message) is spqr

    def bundle_fields(self, manager: SessionManager) -> dict[str, Any]:
        """The next bundle of a signalish party, as driver_sealed.mjs's
        process_bundle takes it (no Kyber fields for 0.72.1)."""
        bundle = issue_bundle(manager)
        return v4_bundle_fields(bundle) if self.kyber else v3_bundle_fields(bundle)

    def bundle_from_libsignal(self, fields: dict[str, Any]) -> PreKeyBundle:
        """driver_sealed.mjs's make_bundle answer as a signalish bundle."""
        if self.kyber:
            return v4_bundle_from_libsignal(fields)
        assert "kyber_prekey" not in fields and fields["prekey"] is None
        h, dec = bytes.fromhex, LIBSIGNAL_V3.decode_ec
        return PreKeyBundle(
            identity_key=IdentityKey.decode(h(fields["identity"]), LIBSIGNAL_V3),
            signed_prekey=SignedPreKeyPublic(
                fields["signed_prekey_id"],
                PublicKey.from_public_bytes(dec(h(fields["signed_prekey"]))),
                h(fields["signature"])),
            registration_id=fields["registration_id"], device_id=fields["device_id"])


RELEASES = {
    "0.72.1": Release("0.72.1", LIBSIGNAL_V3, pq_ratchet=False),
    "0.90.0": Release("0.90.0", LIBSIGNAL_V4, pq_ratchet=False),
    "0.103.0": Release("0.103.0", LIBSIGNAL_V4, pq_ratchet=True),
}
#: The releases with SenderCertificate.validateWithTrustRoots (0.72.1 has
#: validate(trustRoot, time) only).
WITH_TRUST_ROOT_LISTS = ["0.90.0", "0.103.0"]
#: What each driver answered to init, by version.
INIT: dict[str, dict[str, Any]] = {}


def start(version: str) -> LibsignalPeer:
    """driver_sealed.mjs, initialised for ``version``."""
    driver = LibsignalPeer(version, script="driver_sealed.mjs")
    try:
        INIT[version] = driver.ok("init", version=version)
    except BaseException:
        driver.close()
        raise
    return driver


def release_of(peer: LibsignalPeer) -> Release:
    return RELEASES[peer.version]


@pytest.fixture(scope="module")
def drivers() -> Iterator[dict[str, LibsignalPeer]]:
    """One driver per release for the module, started when first needed:
    each test names its own parties."""
    started: dict[str, LibsignalPeer] = {}
    try:
        yield started
    finally:
        for driver in started.values():
            driver.close()


@pytest.fixture(params=list(RELEASES))
def peer(request: pytest.FixtureRequest, drivers: dict[str, LibsignalPeer]) -> LibsignalPeer:
    """The driver of one release (every release unless a test narrows it
    with an indirect parametrization)."""
    version: str = request.param
    if version not in drivers:
        drivers[version] = start(version)
    return drivers[version]


def key(hex_key: str) -> IdentityKey:
    return IdentityKey.decode(bytes.fromhex(hex_key), LIBSIGNAL_V4)


def enc(identity: IdentityKey) -> str:
    return identity.encode(LIBSIGNAL_V4).hex()


class PyServer:
    """A trust root and a server key held by signalish."""

    def __init__(self, seed: bytes, key_id: int = 7) -> None:
        rng = DeterministicRandom(seed)
        self.root, self.key = IdentityKeyPair.generate(rng), IdentityKeyPair.generate(rng)
        self.certificate = ServerCertificate.create(key_id, self.key.public, self.root)

    def issue(self, uuid: str, device_id: int, identity: IdentityKey, *,
              e164: str | None = None, expiration: int = EXPIRES) -> SenderCertificate:
        return SenderCertificate.create(sender_uuid=uuid, sender_e164=e164,
                                        sender_device_id=device_id, identity_key=identity,
                                        expiration=expiration, signer=self.certificate,
                                        server_key=self.key)


def device_of(release: Release, identity: IdentityKeyPair,
              registration_id: int) -> SessionManager:
    """One device of an account: its own prekeys (a signed prekey and, under
    LIBSIGNAL_V4, the last-resort Kyber prekey), the account's identity."""
    return release.party(b"device %d" % registration_id, registration_id, identity=identity,
                         one_time=0)


def libsignal_server(peer: LibsignalPeer, key_id: int = 42) -> tuple[IdentityKey, dict[str, Any]]:
    made = peer.ok("server", key_id=key_id)
    return key(made["trust_root"]), made


def usmc_for(certificate: SenderCertificate) -> UnidentifiedSenderMessageContent:
    contents = plaintext_content(DecryptionErrorMessage(None, 1_700_000_000_000, 3))
    return UnidentifiedSenderMessageContent(8, certificate, contents, 1, b"\xab" * 32)


# --- certificates ------------------------------------------------------------------


@pytest.mark.parametrize("e164", [None, "+15551234567"])
def test_libsignal_certificates_parse_and_validate_here(peer: LibsignalPeer,
                                                        e164: str | None) -> None:
    root, made = libsignal_server(peer)
    identity = IdentityKeyPair.generate(DeterministicRandom(b"cert")).public
    raw = bytes.fromhex(peer.ok("sender_certificate", uuid=ALICE, e164=e164, device_id=3,
                                identity=enc(identity), expiration=EXPIRES)["certificate"])
    cert = SenderCertificate.from_bytes(raw)
    assert cert.to_bytes() == raw
    assert (cert.sender_uuid, cert.sender_e164, cert.sender_device_id, cert.identity_key,
            cert.expiration) == (ALICE, e164, 3, identity, EXPIRES)
    server = ServerCertificate.from_bytes(bytes.fromhex(made["server_certificate"]))
    assert cert.signer == server and server.key_id == 42 and enc(server.key) == made["server_key"]
    assert server.verify(root)
    cert.validate(root, EXPIRES)
    cert.validate([key(enc(IdentityKeyPair.generate(DeterministicRandom(b"o")).public)), root],
                  EXPIRES)
    with pytest.raises(CertificateExpired):
        cert.validate(root, EXPIRES + 1)
    with pytest.raises(InvalidCertificate):
        cert.validate(PyServer(b"other").root.public, 0)


@pytest.mark.parametrize("e164", [None, "+15551234567"])
def test_signalish_certificates_validate_in_libsignal(peer: LibsignalPeer,
                                                      e164: str | None) -> None:
    """SenderCertificate.validate(trustRoot, time), in every release."""
    server, other = PyServer(b"py server"), PyServer(b"other")
    identity = IdentityKeyPair.generate(DeterministicRandom(b"sender")).public
    cert = server.issue(ALICE, 5, identity, e164=e164)

    def info(root: IdentityKey, time: int) -> dict[str, Any]:
        return peer.ok("certificate_info", certificate=cert.to_bytes().hex(),
                       trust_root=enc(root), time=time)

    seen = info(server.root.public, EXPIRES)
    assert seen["valid"] and seen["serialized"] == cert.to_bytes().hex()
    assert (seen["sender_uuid"], seen["sender_e164"], seen["device_id"], seen["identity"],
            seen["expiration"], seen["server_key_id"], seen["server_key"]) == (
        ALICE, e164, 5, enc(identity), EXPIRES, 7, enc(server.key.public))
    assert info(server.root.public, 0)["valid"]
    assert not info(server.root.public, EXPIRES + 1)["valid"]
    assert not info(other.root.public, 0)["valid"]
    tampered = bytearray(cert.to_bytes())
    tampered[-1] ^= 1   # the server key's signature
    forged = peer.ok("certificate_info", certificate=bytes(tampered).hex(),
                     trust_root=enc(server.root.public), time=0)
    assert forged["valid"] is False


@pytest.mark.parametrize("peer", WITH_TRUST_ROOT_LISTS, indirect=True)
@pytest.mark.parametrize("e164", [None, "+15551234567"])
def test_signalish_certificates_validate_with_several_roots_in_libsignal(
        peer: LibsignalPeer, e164: str | None) -> None:
    """SenderCertificate.validateWithTrustRoots(trustRoots, time): 0.90.0 and
    0.103.0 only."""
    server, other = PyServer(b"py server"), PyServer(b"other")
    identity = IdentityKeyPair.generate(DeterministicRandom(b"sender")).public
    cert = server.issue(ALICE, 5, identity, e164=e164)

    def info(roots: list[IdentityKey], time: int) -> dict[str, Any]:
        return peer.ok("certificate_info", certificate=cert.to_bytes().hex(),
                       trust_roots=[enc(r) for r in roots], time=time)

    seen = info([server.root.public], EXPIRES)
    assert seen["valid"] and seen["serialized"] == cert.to_bytes().hex()
    assert (seen["sender_uuid"], seen["sender_e164"], seen["device_id"], seen["identity"],
            seen["expiration"], seen["server_key_id"], seen["server_key"]) == (
        ALICE, e164, 5, enc(identity), EXPIRES, 7, enc(server.key.public))
    assert not info([server.root.public], EXPIRES + 1)["valid"]
    assert not info([other.root.public], 0)["valid"]
    assert info([other.root.public, server.root.public], 0)["valid"]
    assert info([server.root.public, other.root.public], EXPIRES)["valid"]
    assert not info([other.root.public, other.root.public], 0)["valid"]


def test_which_releases_validate_with_several_trust_roots(peer: LibsignalPeer) -> None:
    """SenderCertificate.validateWithTrustRoots is in 0.90.0 and 0.103.0, not
    in 0.72.1 (whose driver refuses trust_roots rather than answer wrongly)."""
    has = peer.version in WITH_TRUST_ROOT_LISTS
    assert INIT[peer.version]["validate_with_trust_roots"] is has
    assert INIT[peer.version]["kyber"] is release_of(peer).kyber
    if not has:
        server = PyServer(b"py server")
        cert = server.issue(ALICE, 5, IdentityKeyPair.generate(DeterministicRandom(b"s")).public)
        refused = peer("certificate_info", certificate=cert.to_bytes().hex(),
                       trust_roots=[enc(server.root.public)], time=0)
        assert not refused["ok"] and "validateWithTrustRoots" in refused["error"]


def test_usmc_bytes_agree(peer: LibsignalPeer) -> None:
    usmc = usmc_for(PyServer(b"u").issue(ALICE, 1, PyServer(b"i").root.public))
    seen = peer.ok("usmc_parse", usmc=usmc.to_bytes().hex())
    assert seen["serialized"] == usmc.to_bytes().hex()
    assert (seen["msg_type"], seen["hint"], seen["group_id"], seen["contents"]) == (
        8, 1, "ab" * 32, usmc.contents.hex())


# --- v1 ----------------------------------------------------------------------------


def test_bundles_follow_the_release(peer: LibsignalPeer) -> None:
    """driver_sealed.mjs's 1:1 layer is the release's: its bundles carry a
    Kyber prekey from 0.90.0 on and none from 0.72.1, and it refuses a bundle
    of the other kind rather than run another protocol version."""
    release = release_of(peer)
    peer.ok("party", name="kind", aci=BOB, device_id=1, registration_id=9)
    made = peer.ok("make_bundle", name="kind")
    assert ("kyber_prekey" in made) is release.kyber
    other = Release("other", LIBSIGNAL_V3 if release.kyber else LIBSIGNAL_V4, pq_ratchet=False)
    refused = peer("process_bundle", name="kind", to={"aci": ALICE},
                   **other.bundle_fields(other.party(b"other kind", 10)))
    assert not refused["ok"] and "kyber_prekey" in refused["error"]
    peer.ok("process_bundle", name="kind", to={"aci": ALICE},
            **release.bundle_fields(release.party(b"same kind", 10)))


def test_v1_from_libsignal_with_a_session_message_inside(peer: LibsignalPeer) -> None:
    """libsignal's sealedSenderEncryptMessage (a 1:1 PreKeySignalMessage in a
    v1 envelope) to a signalish SessionManager: unsealed, validated, then
    decrypted by the session layer."""
    release = release_of(peer)
    alice_key = key(peer.ok("party", name="v1-alice", aci=ALICE, device_id=1,
                            registration_id=1111)["identity"])
    bob = release.party(b"v1 bob", 2222)
    peer.ok("process_bundle", name="v1-alice", to={"aci": BOB, "device_id": 1},
            **release.bundle_fields(bob))
    root, _ = libsignal_server(peer)
    cert = peer.ok("sender_certificate", uuid=ALICE, e164=None, device_id=1,
                   identity=enc(alice_key), expiration=EXPIRES)["certificate"]
    for text in (b"hello sealed", b"second"):
        message = bytes.fromhex(peer.ok("seal_message", name="v1-alice",
                                        to={"aci": BOB, "device_id": 1},
                                        plaintext=text.hex(), certificate=cert)["message"])
        assert message[0] == 0x11
        usmc = unseal_and_validate(message, bob.identity, trust_roots=[root], now=EXPIRES,
                                   local_uuid=BOB, local_device_id=1)
        assert usmc.message_type == 3 and usmc.sender.identity_key == alice_key
        assert usmc.sender.sender_uuid == ALICE and usmc.to_bytes() == bytes.fromhex(
            peer.ok("usmc_parse", usmc=usmc.to_bytes().hex())["serialized"])
        assert bob.decrypt("alice", usmc.contents, now=1) == text
        # 0.90.0 offers SPQR in its first messages, 0.103.0 always runs it.
        release.check_1to1(usmc, spqr=release.kyber)
    with pytest.raises(CertificateExpired):
        unseal_and_validate(message, bob.identity, trust_roots=root, now=EXPIRES + 1)


def test_v1_from_signalish_decrypts_in_libsignal(peer: LibsignalPeer) -> None:
    """signalish seals a 1:1 PreKeySignalMessage of a signalish session; libsignal's
    sealedSenderDecryptMessage validates signalish's certificate and decrypts it."""
    release = release_of(peer)
    peer.ok("party", name="v1-carl", aci=CAROL, device_id=2, registration_id=3333)
    fields = peer.ok("make_bundle", name="v1-carl")
    del fields["ok"]
    alice = release.party(b"v1 alice", 1111)
    alice.initiate("carl", release.bundle_from_libsignal(fields))
    server, rng = PyServer(b"v1 server"), DeterministicRandom(b"v1 seal")
    carl = key(fields["identity"])

    def send(text: bytes, cert: SenderCertificate) -> bytes:
        inner = alice.encrypt("carl", text)
        usmc = UnidentifiedSenderMessageContent(alice.message_type(inner), cert, inner)
        release.check_1to1(usmc, spqr=release.pq_ratchet)
        return seal_v1(usmc, carl, alice.identity, rng)

    def decrypt(message: bytes, time: int = EXPIRES) -> dict[str, Any]:
        return peer.ok("decrypt", name="v1-carl", message=message.hex(),
                       trust_root=enc(server.root.public), time=time, local_uuid=CAROL,
                       local_device_id=2)

    cert = server.issue(ALICE, 1, alice.identity.public, e164="+15550001111")
    got = decrypt(send(b"hello libsignal", cert))
    assert bytes.fromhex(got["plaintext"]) == b"hello libsignal"
    assert (got["sender_uuid"], got["sender_e164"], got["device_id"]) == (
        ALICE, "+15550001111", 1)
    expired = decrypt(send(b"late", cert), time=EXPIRES + 1)
    assert expired["failed"] and "trust root validation failed" in expired["error"]
    own = server.issue(CAROL, 2, alice.identity.public)
    assert decrypt(send(b"self", own))["code"] == "2"     # SealedSenderSelfSend


def test_v1_from_signalish_opens_in_libsignal(peer: LibsignalPeer) -> None:
    bob_key = key(peer.ok("party", name="v1-bob", aci=BOB, device_id=2,
                          registration_id=2222)["identity"])
    rng = DeterministicRandom(b"v1 usmc")
    alice = IdentityKeyPair.generate(rng)
    usmc = usmc_for(PyServer(b"s").issue(ALICE, 1, alice.public))
    message = seal_v1(usmc, bob_key, alice, rng)
    assert peer.ok("open", name="v1-bob", message=message.hex())["serialized"] == (
        usmc.to_bytes().hex())
    tampered = bytearray(message)
    tampered[-1] ^= 1
    assert peer.ok("open", name="v1-bob", message=bytes(tampered).hex())["failed"]


def test_v1_static_key_must_match_the_certificate(peer: LibsignalPeer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A v1 message whose encrypted static key is not the certificate's identity
    key: libsignal refuses it ("sender certificate key does not match message
    key") and so does signalish."""
    import signalish._sealed_sender.envelopes as module
    bob_key = key(peer.ok("party", name="v1-bob2", aci=BOB, device_id=1,
                          registration_id=2)["identity"])
    rng = DeterministicRandom(b"mismatch")
    named, actual = IdentityKeyPair.generate(rng), IdentityKeyPair.generate(rng)
    monkeypatch.setattr(module, "_check_sender", lambda usmc, sender: None)
    message = seal_v1(usmc_for(PyServer(b"s").issue(ALICE, 1, named.public)), bob_key,
                      actual, rng)
    refused = peer.ok("open", name="v1-bob2", message=message.hex())
    assert refused["failed"] and "does not match message key" in refused["error"]


def test_v1_libsignal_sealed_usmc_and_wrong_recipient(peer: LibsignalPeer) -> None:
    """libsignal's sealedSenderEncrypt of a signalish USMC to a signalish
    identity; another identity cannot open it."""
    rng = DeterministicRandom(b"v1 dora")
    bob, eve = IdentityKeyPair.generate(rng), IdentityKeyPair.generate(rng)
    dora = key(peer.ok("party", name="v1-dora", aci=ALICE, device_id=1,
                       registration_id=4)["identity"])
    usmc = usmc_for(PyServer(b"d").issue(ALICE, 1, dora))
    message = bytes.fromhex(peer.ok("seal_usmc", name="v1-dora", to={"aci": BOB},
                                    identity=enc(bob.public), usmc=usmc.to_bytes().hex())["message"])
    assert unseal(message, bob) == usmc
    with pytest.raises(AuthenticationError):
        unseal(message, eve)


# --- v2 ----------------------------------------------------------------------------


def test_v2_from_libsignal_to_signalish(peer: LibsignalPeer) -> None:
    """Bob on two devices (one identity), Carol on one, Dave excluded; split by
    libsignal and by signalish into the same bytes, opened by each recipient."""
    alice_key = key(peer.ok("party", name="v2-alice", aci=ALICE, device_id=1,
                            registration_id=1111)["identity"])
    release = release_of(peer)
    bob = IdentityKeyPair.generate(DeterministicRandom(b"v2 bob"))
    carol = release.party(b"v2 carol", 3333)
    devices = {(BOB, 1): device_of(release, bob, 2001), (BOB, 3): device_of(release, bob, 2003),
               (CAROL, 1): carol}
    for (uuid, device), manager in devices.items():
        peer.ok("process_bundle", name="v2-alice", to={"aci": uuid, "device_id": device},
                **release.bundle_fields(manager))
    root, _ = libsignal_server(peer)
    cert = peer.ok("sender_certificate", uuid=ALICE, e164=None, device_id=1,
                   identity=enc(alice_key), expiration=EXPIRES)["certificate"]
    usmc_hex = peer.ok("usmc_group", name="v2-alice", plaintext=b"to the group".hex(),
                       certificate=cert, hint=1, group_id="cd" * 32)["usmc"]
    sent = bytes.fromhex(peer.ok("seal_multi", name="v2-alice",
                                 recipients=[{"aci": BOB, "device_id": 1},
                                             {"aci": BOB, "device_id": 3},
                                             {"aci": CAROL, "device_id": 1}],
                                 excluded=[DAVE], usmc=usmc_hex)["message"])
    theirs = peer.ok("split", sent=sent.hex())
    ours = SentMessage.from_bytes(sent)
    assert [str(s) for s in ours.excluded] == theirs["excluded"] == [DAVE]
    assert {str(s): ([d.device_id for d in ds], [d.registration_id for d in ds])
            for s, ds in ours.recipients.items()} == {
        BOB: ([1, 3], [2001, 2003]), CAROL: ([1], [3333])} == {
        s: (r["device_ids"], r["registration_ids"]) for s, r in theirs["recipients"].items()}
    for uuid, identity in ((BOB, bob), (CAROL, carol.identity)):
        received = ours.received_message(ServiceId.aci(uuid))
        assert received.hex() == theirs["recipients"][uuid]["received"]
        usmc = unseal_and_validate(received, identity, trust_roots=root, now=EXPIRES)
        assert usmc.to_bytes().hex() == usmc_hex and usmc.message_type == 7
        assert usmc.group_id == b"\xcd" * 32 and usmc.content_hint == 1
    with pytest.raises(AuthenticationError):
        unseal(ours.received_message(ServiceId.aci(BOB)), carol.identity)


def test_v2_from_signalish_to_libsignal(peer: LibsignalPeer) -> None:
    """signalish's SentMessage to an ACI on two devices and a PNI, one
    excluded: libsignal's parser agrees, and each recipient opens its message."""
    bob_key = key(peer.ok("party", name="v2-bob", aci=BOB, device_id=1,
                          registration_id=1)["identity"])
    carol_key = key(peer.ok("party", name="v2-carol", aci=CAROL, device_id=1,
                            registration_id=2)["identity"])
    rng = DeterministicRandom(b"v2 alice")
    alice = IdentityKeyPair.generate(rng)
    usmc = usmc_for(PyServer(b"v2").issue(ALICE, 1, alice.public))
    recipients = [Recipient(ServiceId.aci(BOB), bob_key, (Device(1, 0x1234), Device(2, 0x3FFF))),
                  Recipient(ServiceId.pni(CAROL), carol_key, (Device(127, 0),))]
    sent = seal_v2(usmc, recipients, alice, rng, excluded=[ServiceId.aci(DAVE)])
    theirs = peer.ok("split", sent=sent.hex())
    assert theirs["excluded"] == [DAVE]
    assert {s: (r["device_ids"], r["registration_ids"])
            for s, r in theirs["recipients"].items()} == {
        BOB: ([1, 2], [0x1234, 0x3FFF]), f"PNI:{CAROL}": ([127], [0])}
    ours = SentMessage.from_bytes(sent)
    for name, service_id in (("v2-bob", ServiceId.aci(BOB)), ("v2-carol", ServiceId.pni(CAROL))):
        received = theirs["recipients"][str(service_id)]["received"]
        assert ours.received_message(service_id).hex() == received
        assert peer.ok("open", name=name, message=received)["serialized"] == usmc.to_bytes().hex()
    assert peer.ok("open", name="v2-carol",
                   message=theirs["recipients"][BOB]["received"])["failed"]


def test_v2_single_recipient_matches_libsignal(peer: LibsignalPeer) -> None:
    bob_key = key(peer.ok("party", name="v2-solo", aci=BOB, device_id=1,
                          registration_id=1)["identity"])
    rng = DeterministicRandom(b"solo")
    alice = IdentityKeyPair.generate(rng)
    usmc = usmc_for(PyServer(b"solo").issue(ALICE, 1, alice.public))
    sent = seal_v2(usmc, [Recipient(ServiceId.aci(BOB), bob_key, (Device(1, 5),))], alice, rng)
    theirs = peer.ok("split", sent=sent.hex())
    assert theirs["single"] == theirs["recipients"][BOB]["received"] == (
        SentMessage.from_bytes(sent).received_message(ServiceId.aci(BOB)).hex())
    assert peer.ok("open", name="v2-solo", message=theirs["single"])["serialized"] == (
        usmc.to_bytes().hex())


# --- the known answers in tests/test_sealed_sender.py ----------------------------


def record() -> dict[str, str]:
    """libsignal's certificates, a v1 message and a v2 SentMessage to the
    signalish identities that tests/test_sealed_sender.py derives from
    DeterministicRandom(b"kat bob") and (b"kat carol"), in a v2 message
    from Alice to Bob's devices 1 (registration id 2001) and 2 (2002) and
    Carol's device 1 (3001), Dave excluded.  Run this file as a script to
    print a fresh set (libsignal's keys are random each time)."""
    peer = start("0.103.0")
    try:
        bob = IdentityKeyPair.generate(DeterministicRandom(b"kat bob"))
        carol = IdentityKeyPair.generate(DeterministicRandom(b"kat carol"))
        alice = key(peer.ok("party", name="kat", aci=ALICE, device_id=1,
                            registration_id=1111)["identity"])
        root, made = libsignal_server(peer)
        cert = peer.ok("sender_certificate", uuid=ALICE, e164="+15551234567", device_id=1,
                       identity=enc(alice), expiration=EXPIRES)["certificate"]
        usmc = peer.ok("usmc_group", name="kat", plaintext=b"known answer".hex(),
                       certificate=cert, hint=1, group_id="cd" * 32)["usmc"]
        v1 = peer.ok("seal_usmc", name="kat", to={"aci": BOB}, identity=enc(bob.public),
                     usmc=usmc)["message"]
        for (uuid, device), identity, registration in (((BOB, 1), bob, 2001),
                                                       ((BOB, 2), bob, 2002),
                                                       ((CAROL, 1), carol, 3001)):
            peer.ok("process_bundle", name="kat", to={"aci": uuid, "device_id": device},
                    **RELEASES["0.103.0"].bundle_fields(device_of(RELEASES["0.103.0"], identity,
                                                                   registration)))
        sent = peer.ok("seal_multi", name="kat", recipients=[
            {"aci": BOB, "device_id": 1}, {"aci": BOB, "device_id": 2},
            {"aci": CAROL, "device_id": 1}], excluded=[DAVE], usmc=usmc)["message"]
        received = peer.ok("split", sent=sent)["recipients"][BOB]["received"]
        return {"trust_root": enc(root), "server_certificate": made["server_certificate"],
                "sender_certificate": cert, "usmc": usmc, "v1": v1, "v2_sent": sent,
                "v2_received_bob": received}
    finally:
        peer.close()


if __name__ == "__main__":
    # From the checkout: PYTHONPATH=tests .venv/bin/python tests/interop/test_sealed_sender_interop.py
    for name, value in record().items():
        print(f"    {name!r}: (")
        for i in range(0, len(value), 80):
            print(f"        {value[i:i + 80]!r}")
        print("    ),")
