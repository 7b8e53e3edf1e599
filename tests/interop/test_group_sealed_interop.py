"""A group of two signalish and two libsignal-client members, talking
through sealed sender (driver_sealed.mjs): the issue's "done" criterion.

Every test runs once per pinned release (0.72.1, 0.90.0, 0.103.0: every
call used here is in all three, see test_sealed_sender_interop.py), with the
libsignal members on that release and the signalish members' 1:1 sessions
in its profile: LIBSIGNAL_V3 for 0.72.1 (its sender keys too), LIBSIGNAL_V4
without SPQR for 0.90.0, LIBSIGNAL_V4 with SPQR (as 0.103.0 requires) for
0.103.0.

Every member's sender key reaches the others; across the boundary the
SenderKeyDistributionMessage travels inside a 1:1 session message sealed in
a v1 envelope.  Group messages are sealed sender v2: one SentMessage per
group message, split by the server (here signalish's splitter, checked
against libsignal's), each recipient unsealing its own copy, validating the
sender certificate and decrypting the SenderKeyMessage from the member the
certificate names.  Then messages arrive out of order, a member leaves, and
the sender key is rotated.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from libsignal_peer import LibsignalPeer
from signalish import DeterministicRandom, IdentityKey, SessionManager
from signalish.groups import GroupCipher
from signalish.sealed_sender import (
    Device,
    Recipient,
    SenderCertificate,
    SentMessage,
    ServiceId,
    UnidentifiedSenderMessageContent,
    seal_v1,
    seal_v2,
    unseal_and_validate,
)
from test_libsignal_v4 import issue_bundle
from test_sealed_sender_interop import EXPIRES, RELEASES, PyServer, Release, enc, key, start

DISTRIBUTION = uuid.UUID("3f2c7d1e-5b6a-4c8d-9e0f-112233445566")
GROUP_ID = b"\x42" * 32
# Members: two signalish, two libsignal; every device is device 1.
SAM, SUE = "5a0b6c1d-0000-4000-8000-00000000a001", "5a0b6c1d-0000-4000-8000-00000000a002"
LEO, LIA = "5a0b6c1d-0000-4000-8000-00000000b001", "5a0b6c1d-0000-4000-8000-00000000b002"
ZOE = "5a0b6c1d-0000-4000-8000-00000000c001"  # joins later
REGISTRATION = {SAM: 1001, SUE: 1002, LEO: 2001, LIA: 2002, ZOE: 3001}


def name(member: str) -> str:
    """The address string signalish uses for a member (its sessions and its
    sender-key records): service id and device, as libsignal's ProtocolAddress."""
    return f"{member}.1"


class PyMember:
    """A signalish member: a SessionManager in the release's profile, a
    GroupCipher (same profile) over the same store, and a certificate from
    the server."""

    def __init__(self, member: str, server: PyServer, release: Release) -> None:
        self.member = member
        self.release = release
        self.manager: SessionManager = release.party(member.encode(), REGISTRATION[member])
        self.groups = GroupCipher(self.manager.store,  # type: ignore[arg-type]
                                  release.profile,
                                  rng=DeterministicRandom(b"group " + member.encode()))
        self.certificate = server.issue(member, 1, self.manager.identity.public)
        self.rng = DeterministicRandom(b"seal " + member.encode())

    @property
    def identity(self) -> IdentityKey:
        return self.manager.identity.public

    def sealed_1to1(self, to: str, identity: IdentityKey, plaintext: bytes) -> bytes:
        inner = self.manager.encrypt(name(to), plaintext)
        usmc = UnidentifiedSenderMessageContent(self.manager.message_type(inner),
                                                self.certificate, inner)
        assert inner[0] >> 4 == (4 if self.release.kyber else 3)  # the release's version
        return seal_v1(usmc, identity, self.manager.identity, self.rng)

    def open_1to1(self, message: bytes, root: IdentityKey) -> tuple[str, bytes]:
        usmc = unseal_and_validate(message, self.manager.identity, trust_roots=root,
                                   now=EXPIRES, local_uuid=self.member, local_device_id=1)
        sender = name(usmc.sender.sender_uuid)
        assert usmc.contents[0] >> 4 == (4 if self.release.kyber else 3)
        return sender, self.manager.decrypt(sender, usmc.contents, now=1)

    def open_group(self, message: bytes, root: IdentityKey) -> tuple[str, bytes]:
        usmc = unseal_and_validate(message, self.manager.identity, trust_roots=root,
                                   now=EXPIRES, local_uuid=self.member, local_device_id=1)
        assert usmc.message_type == 7 and usmc.group_id == GROUP_ID
        sender = f"{usmc.sender.sender_uuid}.{usmc.sender.sender_device_id}"
        return sender, self.groups.decrypt(sender, usmc.contents)

    def group_send(self, text: bytes, recipients: list[Recipient]) -> bytes:
        message = self.groups.encrypt(name(self.member), DISTRIBUTION, text)
        usmc = UnidentifiedSenderMessageContent(7, self.certificate, message, 1, GROUP_ID)
        return seal_v2(usmc, recipients, self.manager.identity, self.rng)


@pytest.fixture(scope="module", params=list(RELEASES))
def group(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The four members, with sessions and every sender key distributed,
    the libsignal ones on one release."""
    release: Release = RELEASES[request.param]
    peer: LibsignalPeer = start(release.version)
    try:
        server = PyServer(b"group server")
        root = server.root.public
        sam, sue = PyMember(SAM, server, release), PyMember(SUE, server, release)
        ids: dict[str, IdentityKey] = {SAM: sam.identity, SUE: sue.identity}
        certificates: dict[str, SenderCertificate] = {}
        bundles: dict[str, dict[str, Any]] = {}
        for member, label in ((LEO, "leo"), (LIA, "lia")):
            ids[member] = key(peer.ok("party", name=label, aci=member, device_id=1,
                                      registration_id=REGISTRATION[member])["identity"])
            certificates[member] = server.issue(member, 1, ids[member])
            bundles[member] = {k: v for k, v in peer.ok("make_bundle", name=label).items()
                               if k != "ok"}
        # 1:1 sessions: the libsignal members with everyone (their v2 sends
        # need one per recipient); the signalish members with both of them.
        for label in ("leo", "lia"):
            for py in (sam, sue):
                peer.ok("process_bundle", name=label, to={"aci": py.member},
                        **release.bundle_fields(py.manager))
        peer.ok("process_bundle", name="leo", to={"aci": LIA}, **bundles[LIA])
        peer.ok("process_bundle", name="lia", to={"aci": LEO}, **bundles[LEO])
        for py in (sam, sue):
            for member in (LEO, LIA):
                py.manager.initiate(name(member), release.bundle_from_libsignal(bundles[member]))
        sam.manager.initiate(name(SUE), issue_bundle(sue.manager))
        # Sender keys.  signalish -> libsignal: the SKDM inside a sealed 1:1
        # message, opened and decrypted by libsignal, then processed.
        for py in (sam, sue):
            skdm = py.groups.distribution_message(name(py.member), DISTRIBUTION)
            for member, label in ((LEO, "leo"), (LIA, "lia")):
                sealed = py.sealed_1to1(member, ids[member], skdm)
                got = peer.ok("decrypt", name=label, message=sealed.hex(), trust_root=enc(root),
                              time=EXPIRES, local_uuid=member, local_device_id=1)
                assert bytes.fromhex(got["plaintext"]) == skdm and got["sender_uuid"] == py.member
                assert "failed" not in peer.ok("skdm_process", name=label,
                                               sender={"aci": py.member}, skdm=skdm.hex())
        # Between the two signalish members, and between the two libsignal
        # ones, the same distribution without crossing the boundary.
        sue.groups.process(name(SAM), sue.manager.decrypt(
            name(SAM), sam.manager.encrypt(name(SUE), sam.groups.distribution_message(
                name(SAM), DISTRIBUTION)), now=1))
        sam.groups.process(name(SUE), sue.groups.distribution_message(name(SUE), DISTRIBUTION))
        for sender, label, other in ((LEO, "leo", "lia"), (LIA, "lia", "leo")):
            skdm_hex = peer.ok("skdm", name=label, distribution_id=str(DISTRIBUTION))["skdm"]
            assert "failed" not in peer.ok("skdm_process", name=other, sender={"aci": sender},
                                           skdm=skdm_hex)
            # libsignal -> signalish: sealedSenderEncryptMessage (v1, a 1:1
            # message inside), unsealed and decrypted by signalish.
            for py in (sam, sue):
                sealed = bytes.fromhex(peer.ok(
                    "seal_message", name=label, to={"aci": py.member}, plaintext=skdm_hex,
                    certificate=certificates[sender].to_bytes().hex())["message"])
                who, skdm = py.open_1to1(sealed, root)
                assert who == name(sender) and skdm == bytes.fromhex(skdm_hex)
                assert py.groups.process(who, skdm) == DISTRIBUTION
        yield {"peer": peer, "release": release, "root": root, "sam": sam, "sue": sue,
               "ids": ids, "certificates": certificates}
    finally:
        peer.close()


def recipients(ids: dict[str, IdentityKey], members: list[str]) -> list[Recipient]:
    return [Recipient(ServiceId.aci(m), ids[m], (Device(1, REGISTRATION[m]),)) for m in members]


def libsignal_opens(g: dict[str, Any], label: str, received: bytes) -> dict[str, Any]:
    answer: dict[str, Any] = g["peer"].ok("group_open", name=label, message=received.hex(),
                                          trust_root=enc(g["root"]), time=EXPIRES)
    return answer


def test_a_signalish_member_writes_to_the_group(group: dict[str, Any]) -> None:
    g, sam = group, group["sam"]
    for i in range(3):
        text = b"sam to everyone %d" % i
        sent = sam.group_send(text, recipients(g["ids"], [SUE, LEO, LIA]))
        split = SentMessage.from_bytes(sent)
        theirs = g["peer"].ok("split", sent=sent.hex())["recipients"]
        for member in (SUE, LEO, LIA):
            assert split.received_message(ServiceId.aci(member)).hex() == \
                theirs[member]["received"]
        assert g["sue"].open_group(split.received_message(ServiceId.aci(SUE)), g["root"]) == (
            name(SAM), text)
        for member, label in ((LEO, "leo"), (LIA, "lia")):
            got = libsignal_opens(g, label, split.received_message(ServiceId.aci(member)))
            assert bytes.fromhex(got["plaintext"]) == text and got["sender_uuid"] == SAM


def test_a_libsignal_member_writes_to_the_group(group: dict[str, Any]) -> None:
    g = group
    for i in range(3):
        text = b"leo to everyone %d" % i
        answer = g["peer"].ok("group_seal", name="leo", distribution_id=str(DISTRIBUTION),
                              plaintext=text.hex(),
                              certificate=g["certificates"][LEO].to_bytes().hex(),
                              recipients=[{"aci": SAM}, {"aci": SUE}, {"aci": LIA}],
                              group_id=GROUP_ID.hex())
        assert "failed" not in answer
        split = SentMessage.from_bytes(bytes.fromhex(answer["sent"]))
        for py in (g["sam"], g["sue"]):
            assert py.open_group(split.received_message(ServiceId.aci(py.member)),
                                 g["root"]) == (name(LEO), text)
        got = libsignal_opens(g, "lia", split.received_message(ServiceId.aci(LIA)))
        assert bytes.fromhex(got["plaintext"]) == text and got["sender_uuid"] == LEO


def test_group_messages_out_of_order_and_twice(group: dict[str, Any]) -> None:
    g, sue = group, group["sue"]
    texts = [b"sue %d" % i for i in range(5)]
    sent = [SentMessage.from_bytes(sue.group_send(t, recipients(g["ids"], [SAM, LEO])))
            for t in texts]
    for index in (3, 0, 4, 2, 1):
        assert g["sam"].open_group(sent[index].received_message(ServiceId.aci(SAM)),
                                   g["root"]) == (name(SUE), texts[index])
        got = libsignal_opens(g, "leo", sent[index].received_message(ServiceId.aci(LEO)))
        assert bytes.fromhex(got["plaintext"]) == texts[index]
    again = libsignal_opens(g, "leo", sent[2].received_message(ServiceId.aci(LEO)))
    assert again["failed"] and again["code"] == "1"  # DuplicatedMessage
    from signalish.errors import DuplicateMessage
    with pytest.raises(DuplicateMessage):
        g["sam"].open_group(sent[2].received_message(ServiceId.aci(SAM)), g["root"])


def test_a_member_leaves_and_the_sender_key_is_rotated(group: dict[str, Any]) -> None:
    """Lia leaves: Sam rotates his sender key and sends the new one to the
    others only; Lia, who still has a valid certificate path and even gets a
    copy sealed to her, cannot read Sam's new messages."""
    g, sam = group, group["sam"]
    skdm = sam.groups.rotate(name(SAM), DISTRIBUTION)
    sealed = sam.sealed_1to1(LEO, g["ids"][LEO], skdm)
    got = g["peer"].ok("decrypt", name="leo", message=sealed.hex(), trust_root=enc(g["root"]),
                       time=EXPIRES, local_uuid=LEO, local_device_id=1)
    assert "failed" not in g["peer"].ok("skdm_process", name="leo", sender={"aci": SAM},
                                        skdm=got["plaintext"])
    g["sue"].groups.process(name(SAM), g["sue"].manager.decrypt(
        name(SAM), sam.manager.encrypt(name(SUE), skdm), now=1))
    text = b"after Lia left"
    split = SentMessage.from_bytes(sam.group_send(text, recipients(g["ids"], [SUE, LEO, LIA])))
    assert g["sue"].open_group(split.received_message(ServiceId.aci(SUE)), g["root"])[1] == text
    got = libsignal_opens(g, "leo", split.received_message(ServiceId.aci(LEO)))
    assert bytes.fromhex(got["plaintext"]) == text
    refused = libsignal_opens(g, "lia", split.received_message(ServiceId.aci(LIA)))
    assert refused["failed"] and "missing sender key state" in refused["error"]


def test_a_member_joins_and_reads_from_then_on(group: dict[str, Any]) -> None:
    """Zoe (signalish) joins: Sam and Leo send her their current sender keys
    (not new ones: libsignal's create() on an existing key, and signalish's
    distribution_message, give the current chain state), sealed 1:1; she reads
    their next group messages, not the ones sent before she joined."""
    g, sam = group, group["sam"]
    server = PyServer(b"group server")  # the same seed: the same root and server key
    zoe = PyMember(ZOE, server, g["release"])
    ids = dict(g["ids"], **{zoe.member: zoe.identity})
    before = SentMessage.from_bytes(sam.group_send(b"before Zoe", recipients(ids, [SUE])))
    sam.manager.initiate(name(zoe.member), issue_bundle(zoe.manager))
    g["peer"].ok("process_bundle", name="leo", to={"aci": zoe.member},
                 **g["release"].bundle_fields(zoe.manager))
    skdm = sam.groups.distribution_message(name(SAM), DISTRIBUTION)
    who, got = zoe.open_1to1(sam.sealed_1to1(zoe.member, zoe.identity, skdm), g["root"])
    assert zoe.groups.process(who, got) == DISTRIBUTION
    leo_skdm = g["peer"].ok("skdm", name="leo", distribution_id=str(DISTRIBUTION))["skdm"]
    sealed = bytes.fromhex(g["peer"].ok(
        "seal_message", name="leo", to={"aci": zoe.member}, plaintext=leo_skdm,
        certificate=g["certificates"][LEO].to_bytes().hex())["message"])
    who, got = zoe.open_1to1(sealed, g["root"])
    assert who == name(LEO) and zoe.groups.process(who, got) == DISTRIBUTION
    text = b"welcome, Zoe"
    split = SentMessage.from_bytes(sam.group_send(text, recipients(ids, [SUE, LEO, zoe.member])))
    assert zoe.open_group(split.received_message(ServiceId.aci(zoe.member)), g["root"]) == (
        name(SAM), text)
    answer = g["peer"].ok("group_seal", name="leo", distribution_id=str(DISTRIBUTION),
                          plaintext=b"hi Zoe".hex(),
                          certificate=g["certificates"][LEO].to_bytes().hex(),
                          recipients=[{"aci": SAM}, {"aci": zoe.member}],
                          group_id=GROUP_ID.hex())
    leo_split = SentMessage.from_bytes(bytes.fromhex(answer["sent"]))
    assert zoe.open_group(leo_split.received_message(ServiceId.aci(zoe.member)),
                          g["root"]) == (name(LEO), b"hi Zoe")
    # The message from before she joined, had it been sealed to her, is
    # older than the state she was given: refused, not decrypted.
    from signalish.errors import MessageRejected
    usmc = unseal_and_validate(before.received_message(ServiceId.aci(SUE)),
                               g["sue"].manager.identity, trust_roots=g["root"], now=EXPIRES)
    with pytest.raises(MessageRejected):
        zoe.groups.decrypt(name(SAM), usmc.contents)
