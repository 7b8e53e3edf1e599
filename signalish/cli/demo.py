"""The demonstration: a whole conversation, and what a server in the middle sees."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from .._attachments import AttachmentKey, decrypt_attachment, encrypt_attachment
from .._backup import BackupParams, WrongPassword, create_backup, restore_backup
from .._bundle import PreKeyBundle
from .._fingerprint import FingerprintMatch, SafetyNumber, compare_scannable
from .._errors import AuthenticationError, DuplicateMessage, NoSession, StaleSession
from .._keys import IdentityKeyPair
from .._manager import Recovery, SessionManager
from .._message import PreKeyFrame, parse
from .._primitives import SystemRandom
from .._profile import LIBSIGNAL_V4, Profile
from .._spqr import parse_message
from .._wire_v3 import V3Frame, V3PreKeyFrame, parse_v3
from .._sealed import SealedBoxPrivateKey, SealedBoxSuite
from .._sealed_sender import (
    Device,
    Recipient,
    SenderCertificate,
    SentMessage,
    ServerCertificate,
    ServiceId,
    UnidentifiedSenderMessageContent,
    seal_v2,
    unseal_and_validate,
)
from .._sender_keys import GroupCipher
from .._devices import ProtocolAddress
from .._provisioning import LinkRequest, ProvisioningData, parse_link_qr, seal_provisioning
from .._session import SessionOptions
from .._stores import MemoryStore, SQLiteStore, load_identity_key_pair, save_identity_key_pair


def _short(data: bytes, n: int = 12) -> str:
    return data[:n].hex() + ("..." if len(data) > n else "")


def _pq_field(message: bytes) -> bytes:
    """Field 5 (SPQR's message) of a version 4 SignalMessage or of the one
    inside a PreKeySignalMessage."""
    frame = parse_v3(message, 1 << 20, 4)
    inner = frame.inner if isinstance(frame, V3PreKeyFrame) else frame
    assert isinstance(inner, V3Frame) and inner.pq_ratchet is not None
    return inner.pq_ratchet


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 66 - len(title)))


def _show(label: str, message: bytes) -> None:
    kind = {0x40: "Message", 0x41: "Message (encrypted header)",
            0x42: "PreKeyMessage"}.get(message[0], "?")
    print(f"  server relays {label}: {kind}, {len(message)} bytes, {_short(message, 10)}")


def run(profile: Profile, header_encryption: bool = False) -> int:
    rng = SystemRandom()
    now = 1_700_000_000
    options = SessionOptions(header_encryption=header_encryption)
    workdir = Path(tempfile.mkdtemp(prefix="signalish-demo-"))
    ok = True

    _section(f"1. Bob publishes prekeys ({profile.name} profile) and goes offline")
    bob = IdentityKeyPair.generate(rng)
    bob_store = SQLiteStore(workdir / "bob.db")
    with bob_store.transaction():
        save_identity_key_pair(bob_store, bob)
    bob_manager = SessionManager(bob, bob_store, profile, rng=rng,
                                 options=SessionOptions(registration_id=4242))
    with bob_manager.prekeys(now=now) as ring:  # the store owns the prekeys
        ring.generate_one_time_prekeys(10, rng)
        if profile.kem_key_prefix is not None:
            ring.generate_kem_prekeys(5, rng, now=now)
        wire_bundle = ring.issue_bundle().to_bytes()
    print(f"Bob's identity key {_short(bob.public.public_bytes_raw())}; state in {workdir / 'bob.db'}")
    print(f"bundle on the server: {len(wire_bundle)} bytes, public keys and signatures only")

    _section("2. Alice writes first, while Bob is offline")
    alice_identity = IdentityKeyPair.generate(rng)
    alice = SessionManager(alice_identity, MemoryStore(), profile, rng=rng, options=options)
    alice.initiate("bob", PreKeyBundle.from_bytes(wire_bundle))
    first = alice.encrypt("bob", b"Hi Bob, are you there?")
    frame = parse(first, options.limits.max_message_size)
    assert isinstance(frame, PreKeyFrame)
    print(f"handshake: {frame.header.protocol}, every bundle signature verified first")
    _show("Alice's first message", first)
    print("  it can see: Alice's identity and ephemeral keys, prekey ids, the KEM ciphertext;")
    print("  it cannot see: the text, or any key that decrypts it")

    _section("3. Bob comes online, reads and replies")
    print("Bob reads:  ", bob_manager.decrypt("alice", first, now=now + 60).decode())
    reply = bob_manager.encrypt("alice", b"Yes! Got your message.")
    _show("Bob's reply", reply)
    print("Alice reads:", alice.decrypt("bob", reply, now=now + 61).decode())

    _section("4. Three messages arrive out of order (3, 1, 2) and one twice")
    batch = [alice.encrypt("bob", f"part {i} of 3".encode()) for i in (1, 2, 3)]
    for index in (2, 0, 1):
        print(f"Bob reads message {index + 1}:", bob_manager.decrypt("alice", batch[index],
                                                                  now=now + 70).decode())
    try:
        bob_manager.decrypt("alice", batch[0], now=now + 71)
        ok = False
    except DuplicateMessage:
        print("the repeated delivery is refused: DuplicateMessage")

    _section("5. A tampered message is refused and changes nothing")
    message = alice.encrypt("bob", b"Meet at 6.")
    tampered = bytearray(message)
    tampered[-20] ^= 0x01
    before = bob_manager.export_session("alice")
    try:
        bob_manager.decrypt("alice", bytes(tampered), now=now + 80)
        ok = False
    except AuthenticationError as error:
        print(f"refused: {type(error).__name__}: {error}")
    unchanged = bob_manager.export_session("alice") == before
    ok &= unchanged
    print("Bob's stored session unchanged:", "yes" if unchanged else "NO")
    print("the genuine one still reads:", bob_manager.decrypt("alice", message,
                                                            now=now + 81).decode())

    _section("6. Bob's app restarts: the session comes back from SQLite")
    bob_store.close()
    reopened = SQLiteStore(workdir / "bob.db")
    identity = load_identity_key_pair(reopened)
    assert identity is not None
    bob_manager = SessionManager(identity, reopened, profile, rng=rng)
    print(f"restored session record: {len(bob_manager.export_session('alice') or b'')} bytes")
    later = alice.encrypt("bob", b"Still there after the restart?")
    print("Bob reads:  ", bob_manager.decrypt("alice", later, now=now + 90).decode())
    print("Alice reads:", alice.decrypt("bob", bob_manager.encrypt("alice", b"Still here."),
                                        now=now + 91).decode())

    _section("7. Alice and Bob compare safety numbers")
    alice_view = SafetyNumber.compute(alice.identity.public, "alice", identity.public, "bob")
    bob_view = SafetyNumber.compute(identity.public, "bob", alice.identity.public, "alice")
    print("Alice's screen:", alice_view.formatted())
    print("Bob's screen:  ", bob_view.formatted())
    verdict = compare_scannable(alice_view, bob_view.scannable)
    print("Alice scans Bob's code:", verdict.value)
    ok &= verdict is FingerprintMatch.MATCH

    _section("8. A sealed box: anonymous, no session (HPKE, ML-KEM-768 + X25519)")
    drop_box = SealedBoxPrivateKey.generate(SealedBoxSuite.MLKEM768_X25519, rng)
    box = drop_box.public_key.seal(b"an anonymous tip")
    print(f"sealed box: {len(box)} bytes; opened: {drop_box.open(box).decode()}")

    _section("9. Bob backs up his device under a password and restores it")
    params = BackupParams(iterations=1, lanes=1, memory_kib=8 * 1024)  # demo speed
    with reopened.transaction():
        reopened.save_local("settings", b"theme=dark")  # the app's own data, backed up too
    blob = create_backup(identity, reopened, "correct horse battery staple", rng=rng,
                         params=params, include_local=True)
    print(f"backup: {len(blob)} bytes (Argon2id t={params.iterations}, "
          f"m={params.memory_kib} KiB; the default is RFC 9106's t=3, m=64 MiB)")
    try:
        restore_backup(blob, "wrong password", MemoryStore(), now=now + 100)
        ok = False
    except WrongPassword:
        print("a wrong password is refused: WrongPassword")
    new_phone = MemoryStore()
    restored = restore_backup(blob, "correct horse battery staple", new_phone, now=now + 100,
                              rng=rng)
    stored = load_identity_key_pair(new_phone)  # the identity is in the store
    ok &= stored is not None and stored.public == restored.public
    ok &= new_phone.load_local("settings") == b"theme=dark"
    print("the new phone's store holds the identity and the app's settings again")
    phone = SessionManager(restored, new_phone, profile, rng=rng)
    try:
        phone.encrypt("alice", b"Hello from the new phone")
        ok = False
    except StaleSession:
        print("restored sessions only receive at first: the old phone may have sent on them")
        print("  since the backup, and sending could repeat its message keys (StaleSession)")
    print("restored Bob reads:", phone.decrypt("alice", alice.encrypt("bob", b"New phone?"),
                                               now=now + 100).decode())
    print("Alice's new ratchet key gives Bob's phone a fresh sending chain:")
    print("Alice reads:", alice.decrypt("bob", phone.encrypt("alice", b"Same Bob."),
                                        now=now + 101).decode())
    _section("10. Bob keeps his prekeys stocked (the server reports 3 left)")
    upload = bob_manager.upkeep(now=now + 200, server_one_time=3, server_kem=3)
    print(f"upload: {len(upload.one_time)} one-time EC and {len(upload.kem)} one-time KEM "
          "prekeys (topped up to 100), ids from "
          f"{upload.one_time[0].key_id if upload.one_time else '-'}; nothing else was due")
    ok &= len(upload.one_time) == 97 and upload.signed is None

    _section("11. Padding hides how long a message is")
    padded = SessionOptions(padding=160)
    carol = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), profile, rng=rng,
                           options=padded)
    dave = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), profile, rng=rng,
                          options=padded)
    with dave.prekeys(now=now) as ring:
        ring.generate_one_time_prekeys(1, rng)
        dave_bundle = ring.issue_bundle()
    carol.initiate("dave", dave_bundle)
    dave.decrypt("carol", carol.encrypt("dave", b"hi"), now=now)
    carol.decrypt("dave", dave.encrypt("carol", b"hello"), now=now)
    sizes = []
    for text in (b"ok", b"See you at the station at six, by the clock." * 3):
        message = carol.encrypt("dave", text)
        ok &= dave.decrypt("carol", message, now=now) == text
        sizes.append(len(message))
        print(f"  {len(text):3} bytes of text -> {len(message)} bytes on the wire")
    ok &= len(set(sizes)) == 1

    _section("12. An attachment travels outside the ratchet")
    photo = bytes(range(256)) * 4096  # 1 MiB
    key = AttachmentKey.generate(rng)
    blob, metadata = encrypt_attachment(key, photo, rng=rng)
    pointer = key.to_bytes() + metadata.digest + metadata.size.to_bytes(8, "big")
    sealed_pointer = alice.encrypt("bob", pointer)
    got = phone.decrypt("alice", sealed_pointer, now=now + 300)
    received = decrypt_attachment(AttachmentKey.from_bytes(got[:64]), blob,
                                  digest=got[64:96], size=int.from_bytes(got[96:], "big"))
    print(f"a {len(photo):,}-byte file: {len(blob):,} bytes uploaded (padded to hide its "
          f"size), its key and digest sent in a {len(sealed_pointer)}-byte message")
    ok &= received == photo

    _section("13. Dave loses his session with Carol; they recover")
    carol_recovery, dave_recovery = Recovery(carol), Recovery(dave)
    message = carol.encrypt("dave", b"still there?")
    forged = message[:-1] + bytes((message[-1] ^ 1,))
    try:
        dave.decrypt("carol", forged, now=now)
        ok = False
    except AuthenticationError as error:
        ok &= dave_recovery.failed("carol", forged, error, timestamp=1, device_id=1,
                                   now=now) is None
        print("a forged message fails alone: not answered, and the genuine one reads:",
              dave.decrypt("carol", message, now=now).decode())
    dave.delete_sessions("carol")  # say, a reinstall that kept his identity and prekeys
    lost = carol.encrypt("dave", b"Are we still on for six?")
    answer = b""
    try:
        dave.decrypt("carol", lost, now=now)
        ok = False
    except NoSession as error:
        answer = dave_recovery.failed("carol", lost, error, timestamp=2, device_id=1,
                                      now=now) or b""
        print(f"Dave cannot decrypt (NoSession) and answers with a {len(answer)}-byte "
              "decryption error message")
    if answer and carol_recovery.received("dave", answer, now=now):
        print("it names Carol's current ratchet key: she archives that session, starts a")
        print("  new one from a fresh bundle and resends")
        with dave.prekeys(now=now) as ring:
            ring.generate_one_time_prekeys(1, rng)
            dave_bundle = ring.issue_bundle()
        carol.initiate("dave", dave_bundle)
        got = dave.decrypt("carol", carol.encrypt("dave", b"Are we still on for six?"), now=now)
        print("Dave reads:", got.decode())
        ok &= got == b"Are we still on for six?"
    else:
        ok = False

    _section("14. Post-quantum ratchet: libsignal v4 with SPQR, as Signal speaks today")
    erin = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), LIBSIGNAL_V4, rng=rng)
    frank = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), LIBSIGNAL_V4, rng=rng)
    with frank.prekeys(now=now) as ring:
        ring.generate_one_time_prekeys(1, rng)
        ring.generate_kem_prekeys(1, rng, now=now)
        frank_bundle = ring.issue_bundle()
    erin.initiate("frank", frank_bundle)
    epochs: set[int] = set()
    for i in range(120):
        for sender, to, receiver, name in ((erin, "frank", frank, "erin"),
                                           (frank, "erin", erin, "frank")):
            message = sender.encrypt(to, b"message %d" % i)
            ok &= receiver.decrypt(name, message, now=now) == b"message %d" % i
            epochs.add(parse_message(_pq_field(message))[1].epoch)
    print(f"240 messages: every message key also depends on SPQR's chains, and the ML-KEM-768 "
          f"Braid\n  agreed {max(epochs) - 1} fresh post-quantum secrets on the way "
          "(docs/spqr.md)")
    ok &= max(epochs) >= 3

    ok &= _group_chat(rng, now)
    ok &= _linked_laptop(rng, now)

    reopened.close()
    for leftover in workdir.iterdir():
        leftover.unlink()
    workdir.rmdir()
    print("\nall steps behaved as expected" if ok else "\nSOMETHING WENT WRONG")
    return 0 if ok else 1


def _group_chat(rng: SystemRandom, now: int) -> bool:
    """Section 15: sender keys, delivered through sealed sender v2."""
    _section("15. A group chat: one ciphertext for everyone, sender hidden from the server")
    ok = True
    names = ("hana", "ivan", "june")
    identities = {name: IdentityKeyPair.generate(rng) for name in names}
    stores = {name: MemoryStore() for name in names}
    managers = {name: SessionManager(identities[name], stores[name], LIBSIGNAL_V4, rng=rng)
                for name in names}
    groups = {name: GroupCipher(stores[name], LIBSIGNAL_V4, rng=rng) for name in names}
    uuids = {name: str(uuid.UUID(bytes=rng.random_bytes(16), version=4)) for name in names}
    # The server's certificate chain, and Hana's sender certificate.
    root, server = IdentityKeyPair.generate(rng), IdentityKeyPair.generate(rng)
    server_cert = ServerCertificate.create(1, server.public, root)
    now_ms = now * 1000
    hana_cert = SenderCertificate.create(
        sender_uuid=uuids["hana"], sender_e164=None, sender_device_id=1,
        identity_key=identities["hana"].public, expiration=now_ms + 86_400_000,
        signer=server_cert, server_key=server)
    distribution = uuid.UUID(bytes=rng.random_bytes(16), version=4)
    skdm = groups["hana"].distribution_message("hana", distribution)
    for name in ("ivan", "june"):  # Hana's sender key reaches each member over 1:1
        with managers[name].prekeys(now=now) as ring:
            ring.generate_one_time_prekeys(1, rng)
            ring.generate_kem_prekeys(1, rng, now=now)
            bundle = ring.issue_bundle()
        managers["hana"].initiate(name, bundle)
        received = managers[name].decrypt("hana", managers["hana"].encrypt(name, skdm), now=now)
        groups[name].process("hana", received)
    print(f"Hana's sender key went to Ivan and June over their 1:1 sessions "
          f"({len(skdm)}-byte distribution message)")
    text = b"Dinner at eight?"
    group_message = groups["hana"].encrypt("hana", distribution, text)
    usmc = UnidentifiedSenderMessageContent(7, hana_cert, group_message, 1, b"demo-group")
    recipients = [Recipient(ServiceId.aci(uuids[name]), identities[name].public,
                            (Device(1, 1),)) for name in ("ivan", "june")]
    sent = seal_v2(usmc, recipients, identities["hana"], rng)
    print(f"  server receives one {len(sent)}-byte message for 2 recipients; the sender is "
          "inside, sealed")
    parsed = SentMessage.from_bytes(sent)
    for name in ("ivan", "june"):
        delivered = parsed.received_message(ServiceId.aci(uuids[name]))
        opened = unseal_and_validate(delivered, identities[name], trust_roots=root.public,
                                     now=now_ms, local_uuid=uuids[name], local_device_id=1)
        sender = "hana" if opened.sender.sender_uuid == uuids["hana"] else "?"
        got = groups[name].decrypt(sender, opened.contents)
        print(f"{name.title()} unseals {len(delivered)} bytes: from {sender.title()} "
              f"(certificate checked), reads {got.decode()!r}")
        ok &= got == text and sender == "hana"
    return ok


def _linked_laptop(rng: SystemRandom, now: int) -> bool:
    """Section 16: linking a second device by QR code, then a message to both."""
    _section("16. Ivy links her laptop by QR code; Jon's next message reaches both devices")
    ok = True

    def device(identity: IdentityKeyPair, device_id: int) -> SessionManager:
        options = SessionOptions(device_id=device_id, registration_id=100 + device_id)
        manager = SessionManager(identity, MemoryStore(), rng=rng, options=options)
        with manager.prekeys(now=now) as ring:
            ring.generate_one_time_prekeys(2, rng)
            ring.generate_kem_prekeys(2, rng, now=now)
        return manager

    def bundle(manager: SessionManager) -> PreKeyBundle:
        with manager.prekeys(now=now) as ring:
            return ring.issue_bundle()

    ivy_account = IdentityKeyPair.generate(rng)
    ivy_phone, jon = device(ivy_account, 1), device(IdentityKeyPair.generate(rng), 1)
    jon.initiate(ProtocolAddress("ivy", 1), bundle(ivy_phone))
    request = LinkRequest.create(rng)
    qr = request.qr_text()
    print(f"Ivy's laptop shows a QR code ({len(qr)} characters): {qr[:48]}...")
    data = ProvisioningData(identity=ivy_account, aci=uuid.UUID(bytes=rng.random_bytes(16)),
                            provisioning_code="482913", device_id=2)
    envelope = seal_provisioning(parse_link_qr(qr), data, rng)
    print(f"  server relays the provisioning envelope: {len(envelope)} bytes, "
          f"{_short(envelope, 10)} (it cannot open it)")
    got = request.open(envelope)
    laptop = device(got.identity, 2)
    print("The laptop opens it: same account identity, its own prekeys and sessions")
    sent = jon.encrypt_to_devices("ivy", b"Lunch tomorrow?")
    print(f"Jon sends to the devices he knows: {sorted(sent.messages)}; the server answers "
          "409, device 2 missing")
    jon.update_devices("ivy", missing={2: bundle(laptop)})
    sent = jon.encrypt_to_devices("ivy", b"Lunch tomorrow?")
    for device_id, manager in ((1, ivy_phone), (2, laptop)):
        got_text = manager.decrypt(ProtocolAddress("jon", 1), sent.messages[device_id], now=now)
        print(f"  Ivy's {'phone' if device_id == 1 else 'laptop'} reads: {got_text.decode()}")
        ok &= got_text == b"Lunch tomorrow?"
    ok &= got.identity.public == ivy_account.public and sorted(sent.messages) == [1, 2]
    return ok
