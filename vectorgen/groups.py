"""Builds vectors/sender_keys.json and vectors/sealed_sender.json.

* Sender keys (``signalish._sender_keys``): a sender's new record in each
  profile, its distribution message and the messages it encrypts, and what a
  fresh receiver makes of them delivered in order, out of order, across a
  jump that evicts stored keys, and tampered with.
* Sealed sender (``signalish._sealed_sender``): certificates, a USMC and its
  v1 or v2 envelope, rebuilt from seeds and the randomness the sealer drew,
  then validated at the edges of the certificate's lifetime and refused when
  tampered with or opened by another recipient.

Format: vectors/README.md, docs/vectors.md and the two schemas.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from signalish._errors import SignalishError
from signalish._keys import IdentityKeyPair
from signalish._primitives import DeterministicRandom, RandomSource
from signalish._profile import LIBSIGNAL_V3, LIBSIGNAL_V4, NATIVE, Profile
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
from signalish._sender_keys import SenderKeyLimits, SenderKeyMessage, SenderKeyRecord
from signalish.cli.vector_check import ListRandom, flip_bit, sender_key_at

Json = dict[str, Any]

#: The limits every sender-key case assumes (libsignal's, signalish's defaults).
LIMITS = SenderKeyLimits()


def _envelope(kind: str, description: str, cases: list[Json]) -> Json:
    from vectorgen.generate import envelope  # generate.py imports this module
    return envelope(kind, description, cases)


def _uuid4(rng: RandomSource) -> uuid.UUID:
    """An RFC 4122 version 4 UUID from 16 drawn bytes (libsignal's JS API
    takes nothing else as a distribution id)."""
    return uuid.UUID(bytes=rng.random_bytes(16), version=4)


def _outcome(action: Any) -> tuple[str | None, str | None]:
    """(plaintext hex, None) or (None, error class name)."""
    try:
        return bytes(action()).hex(), None
    except SignalishError as error:
        return None, type(error).__name__


# --- sender_keys.json ---------------------------------------------------------------


class SenderKeyCase:
    """One sender, one fresh receiver.  ``send`` lists a message the sender's
    record produces at an iteration; ``deliver`` hands bytes to the receiver
    and records what it made of them."""

    def __init__(self, name: str, profile: Profile) -> None:
        rng = DeterministicRandom(b"vectors/sender_keys/" + name.encode())
        self.profile = profile
        distribution_id = _uuid4(rng)
        self.sender = SenderKeyRecord.create(distribution_id, profile, rng)
        state = self.sender.states[0]
        assert state.signer is not None and state.iteration == 0
        skdm = self.sender.distribution_message()
        self.receiver = SenderKeyRecord.from_distribution_message(skdm, profile)
        self.rng = rng
        self.sent: dict[int, bytes] = {}
        u = state.signing_key.hex()
        self.case: Json = {
            "name": name, "profile": profile.name, "distribution_id": str(distribution_id),
            "chain_id": state.chain_id, "chain_key": state.chain_key.hex(),
            "signing_seed": state.signer.seed().hex(),
            "signing_public": u if profile.wire == "native" else "05" + u,
            "distribution_message": skdm.hex(), "messages": [], "delivery": []}

    def send(self, iteration: int, plaintext: bytes) -> bytes:
        """The sender's message at ``iteration`` (increasing from call to
        call; the iterations skipped were encrypted and never delivered)."""
        state = self.sender.states[0]
        assert iteration >= state.iteration, "the sender encrypts in order"
        if iteration > state.iteration:
            self.sender = sender_key_at(self.sender, iteration)
        message = self.sender.encrypt(plaintext, LIMITS)
        self.sent[iteration] = message
        self.case["messages"].append({"iteration": iteration, "plaintext": plaintext.hex(),
                                      "message": message.hex()})
        return message

    def deliver(self, data: int | bytes, expect: str = "ok") -> None:
        """Deliver the message sent at iteration ``data`` (or these bytes);
        ``expect``: "ok" or the error generation must see."""
        message = self.sent[data] if isinstance(data, int) else data
        before = self.receiver.to_bytes()
        plaintext, error = _outcome(lambda: self.receiver.decrypt(message, LIMITS))
        if error is not None:
            assert self.receiver.to_bytes() == before, "a refusal changed the record"
        if (error or "ok") != expect:
            raise AssertionError(f"{self.case['name']}: delivery ended in {error or 'ok'}, "
                                 f"the script expects {expect}")
        self.case["delivery"].append({"message": message.hex(), "plaintext": plaintext,
                                      "error": error})


PLAINTEXTS = (b"", b"hello, group", b"sixteen bytes!!!", bytes(range(100)))


def _in_order(c: SenderKeyCase) -> None:
    """Plaintexts of 0, 12, 16 (a whole AES block) and 100 bytes."""
    for i, plaintext in enumerate(PLAINTEXTS):
        c.deliver(c.send(i, plaintext))


def _out_of_order(c: SenderKeyCase) -> None:
    for i in range(6):
        c.send(i, f"message {i}".encode())
    for i, expect in ((2, "ok"), (0, "ok"), (2, "DuplicateMessage"), (1, "ok"), (5, "ok"),
                      (3, "ok"), (5, "DuplicateMessage"), (4, "ok"), (3, "DuplicateMessage")):
        c.deliver(i, expect)


class _Replay:
    """Gives ``values`` first, then draws from ``rest``."""

    def __init__(self, values: list[bytes], rest: RandomSource) -> None:
        self._values, self._rest = list(values), rest

    def random_bytes(self, n: int, /) -> bytes:
        if self._values:
            value = self._values.pop(0)
            assert len(value) == n
            return value
        return self._rest.random_bytes(n)


def _tampering(c: SenderKeyCase) -> None:
    """Changed copies of message 0, refused without a change; then it and
    message 1 decrypt."""
    genuine = c.send(0, b"message 0")
    c.send(1, b"message 1")
    parsed = SenderKeyMessage.parse(genuine, c.profile)
    ciphertext_at = len(parsed.signed) - len(parsed.ciphertext)
    signature_at = len(genuine) - 64
    # The same message signed by another key: a second record with this
    # sender key's chain id and chain key, and another signing key.
    state = c.sender.states[0]
    forger_rng = DeterministicRandom(b"vectors/sender_keys/forger/" + c.case["name"].encode())
    forger = SenderKeyRecord.create(
        c.sender.distribution_id, c.profile,
        _Replay([state.chain_id.to_bytes(4, "big"), bytes.fromhex(c.case["chain_key"])],
                forger_rng))
    forged = forger.encrypt(b"message 0", LIMITS)
    assert forged[:signature_at] == genuine[:signature_at] != forged
    # A message of another sender key (another chain id) for the same group.
    stranger = SenderKeyRecord.create(c.sender.distribution_id, c.profile, c.rng)
    assert stranger.states[0].chain_id != state.chain_id
    version_at = 0 if c.profile.wire != "native" else 1
    changed_version = bytearray(genuine)
    changed_version[version_at] = 0x43 if version_at == 0 else 0x02
    for data, expect in (
            (flip_bit(genuine, ciphertext_at), "AuthenticationError"),
            (flip_bit(genuine, len(parsed.signed) - 1), "AuthenticationError"),
            (flip_bit(genuine, signature_at), "AuthenticationError"),
            (flip_bit(genuine, len(genuine) - 1, 0x80), "AuthenticationError"),
            (forged, "AuthenticationError"),
            (stranger.encrypt(b"message 0", LIMITS), "NoSession"),
            (genuine[:-1], "TruncatedInput"),
            (bytes(changed_version), "UnknownVersion")):
        c.deliver(data, expect)
    c.deliver(0)
    c.deliver(0, "DuplicateMessage")
    c.deliver(1)


def _jump(c: SenderKeyCase) -> None:
    """Jumps past the window (2,000 keys) and the forward limit (25,000)."""
    for i in (99, 100, 1_000, 2_099, 2_100, 2_500, 23_000, 23_001, 25_001):
        c.send(i, f"message {i}".encode())
    for i, expect in (
            (25_001, "TooFarAhead"),        # 25,001 past a fresh state's next iteration (0)
            (2_100, "ok"),                  # keeps the keys of 100 to 2,099; floor 100
            (99, "MessageKeyEvicted"),
            (100, "ok"),
            (2_099, "ok"),
            (100, "DuplicateMessage"),
            (2_100, "DuplicateMessage"),
            (25_001, "ok"),                 # 22,900 ahead; keeps 23,001 to 25,000 only
            (1_000, "MessageKeyEvicted"),   # was kept, pushed out by the newer keys
            (2_500, "MessageKeyEvicted"),   # never kept
            (23_000, "MessageKeyEvicted"),
            (23_001, "ok"),
            (25_001, "DuplicateMessage")):
        c.deliver(i, expect)


def _limit(c: SenderKeyCase) -> None:
    """The forward limit exactly: 25,000 past the next iteration is taken,
    25,001 is not."""
    for i in (0, 23_000, 23_001, 25_001):
        c.send(i, f"message {i}".encode())
    for i, expect in (
            (25_001, "TooFarAhead"),        # 25,001 past a fresh state's next iteration (0)
            (0, "ok"),                      # the next iteration is now 1
            (25_001, "ok"),                 # exactly 25,000 past it; keeps 23,001 to 25,000
            (23_000, "MessageKeyEvicted"),
            (23_001, "ok")):
        c.deliver(i, expect)


def gen_sender_keys() -> Json:
    cases = []
    for profile in (NATIVE, LIBSIGNAL_V3, LIBSIGNAL_V4):
        for short, script in (("in-order", _in_order), ("out-of-order", _out_of_order),
                              ("tampering", _tampering)):
            c = SenderKeyCase(f"{profile.name}-{short}", profile)
            script(c)
            cases.append(c.case)
    c = SenderKeyCase("libsignal_v4-jump", LIBSIGNAL_V4)
    _jump(c)
    cases.append(c.case)
    c = SenderKeyCase("libsignal_v4-limit", LIBSIGNAL_V4)
    _limit(c)
    cases.append(c.case)
    data = _envelope("sender_keys", "a sender key's distribution message and messages, and "
                     "what a fresh receiver makes of them", cases)
    data["limits"] = {"max_forward_jump": LIMITS.max_forward_jump,
                      "max_message_keys": LIMITS.max_message_keys,
                      "max_states": LIMITS.max_states}
    return {k: data[k] for k in ("format", "version", "kind", "description", "limits", "cases")}


# --- sealed_sender.json ----------------------------------------------------------------


def _contents_signal_message() -> bytes:
    """Bob's first SignalMessage (type 2, "reply 0") in conversations.json's
    case libsignal_v4-in-order."""
    from vectorgen.generate import Conversation, _script_in_order
    conversation = Conversation("libsignal_v4-in-order", "", LIBSIGNAL_V4, one_time_prekeys=3)
    _script_in_order(conversation)
    event = next(e for e in conversation.case["events"] if e["op"] == "send" and e["type"] == 2)
    assert event["from"] == "bob" and bytes.fromhex(event["plaintext"]) == b"reply 0"
    return bytes.fromhex(event["message"])


def _contents_sender_key_messages() -> list[bytes]:
    """The messages of sender_keys.json's case libsignal_v4-in-order."""
    c = SenderKeyCase("libsignal_v4-in-order", LIBSIGNAL_V4)
    _in_order(c)
    return [bytes.fromhex(m["message"]) for m in c.case["messages"]]


@dataclass(frozen=True)
class SealedScript:
    """What a sealed-sender case varies; everything else comes from its seed."""

    name: str
    version: int
    server_key_id: int
    e164: str | None
    device_id: int
    expiration: int
    message_type: int
    content_hint: int
    group: bool
    contents: bytes


def _sealed_case(s: SealedScript) -> Json:
    from vectorgen.generate import RecordingRandom
    rng = DeterministicRandom(b"vectors/sealed_sender/" + s.name.encode())
    #: The sealer's random source (its draws are in the case).
    draws = RecordingRandom(b"vectors/sealed_sender/" + s.name.encode() + b"/seal")
    root, server, other_root = (IdentityKeyPair.generate(rng) for _ in range(3))
    server_cert = ServerCertificate.create(s.server_key_id, server.public, root)
    sender = IdentityKeyPair.generate(rng)
    sender_uuid = str(_uuid4(rng))
    cert = SenderCertificate.create(sender_uuid=sender_uuid, sender_e164=s.e164,
                                    sender_device_id=s.device_id, identity_key=sender.public,
                                    expiration=s.expiration, signer=server_cert,
                                    server_key=server)
    group_id = rng.random_bytes(32) if s.group else None
    usmc = UnidentifiedSenderMessageContent(s.message_type, cert, s.contents, s.content_hint,
                                            group_id)
    case: Json = {
        "name": s.name, "version": s.version,
        "trust_root_seed": root.seed().hex(), "other_root_seed": other_root.seed().hex(),
        "server_seed": server.seed().hex(), "server_key_id": s.server_key_id,
        "server_certificate": server_cert.to_bytes().hex(),
        "sender": {"identity_seed": sender.seed().hex(), "uuid": sender_uuid, "e164": s.e164,
                   "device_id": s.device_id, "expiration": s.expiration},
        "sender_certificate": cert.to_bytes().hex(),
        "usmc": {"message_type": s.message_type, "content_hint": s.content_hint,
                 "group_id": None if group_id is None else group_id.hex(),
                 "contents": s.contents.hex(), "bytes": usmc.to_bytes().hex()}}
    # (message, recipient label, its key pair): what validation and refusals open.
    opened: list[tuple[bytes, str, IdentityKeyPair]] = []
    refusals: list[tuple[bytes, str, IdentityKeyPair]] = []
    if s.version == 1:
        recipient = IdentityKeyPair.generate(rng)
        message = seal_v1(usmc, recipient.public, sender, draws)
        (ephemeral,) = draws.draws
        case.update({"recipient_identity_seed": recipient.seed().hex(),
                     "ephemeral_private": ephemeral.hex(), "message": message.hex()})
        opened.append((message, "recipient", recipient))
        # 0x11 || 0a 21 ephemeral (33) || 12 2b static (43) || 1a varint(n) body (n)
        static_at, body_at = 1 + 2 + 33 + 2, 1 + 2 + 33 + 2 + 43 + 1
        assert message[body_at - 1] == 0x1A
        while message[body_at] & 0x80:
            body_at += 1
        body_at += 1
        misdirected = seal_v1(usmc, other_root.public, sender, ListRandom([ephemeral.hex()]))
        refusals += [(flip_bit(message, at), "recipient", recipient) for at in
                     (4, static_at, static_at + 42, body_at, len(message) - 1)]
        refusals.append((misdirected, "recipient", recipient))
    else:
        keys = [IdentityKeyPair.generate(rng) for _ in range(2)]
        ids = [ServiceId.aci(_uuid4(rng)), ServiceId.pni(_uuid4(rng))]
        excluded = [ServiceId.aci(_uuid4(rng))]
        devices = [(Device(1, 0x3FFF), Device(2, 1234)), (Device(1, 77),)]
        recipients = [Recipient(sid, key.public, d) for sid, key, d in zip(ids, keys, devices)]
        sent = seal_v2(usmc, recipients, sender, draws, excluded=excluded)
        (m,) = draws.draws
        split = SentMessage.from_bytes(sent)
        received = {str(sid): split.received_message(sid) for sid in ids}
        case.update({
            "m": m.hex(),
            "recipients": [{"service_id": str(r.service_id), "identity_seed": key.seed().hex(),
                            "devices": [[d.device_id, d.registration_id] for d in r.devices]}
                           for r, key in zip(recipients, keys)],
            "excluded": [str(sid) for sid in excluded], "sent": sent.hex(),
            "received": {sid: data.hex() for sid, data in received.items()}})
        for sid, key in zip(ids, keys):
            opened.append((received[str(sid)], str(sid), key))
        first, second = str(ids[0]), str(ids[1])
        data = received[first]
        refusals += [(flip_bit(data, at), first, keys[0]) for at in (1, 33, 49, 81, len(data) - 1)]
        refusals.append((data, second, keys[1]))
    for message, _, key in opened:
        assert unseal(message, key).to_bytes() == usmc.to_bytes()
    case["validation"] = []
    for now, which, expect in ((s.expiration - 86_400_000, "root", "ok"),
                               (s.expiration, "root", "ok"),
                               (s.expiration + 1, "root", "CertificateExpired"),
                               (s.expiration, "other", "InvalidCertificate"),
                               (s.expiration + 1, "other", "InvalidCertificate")):
        trust = (root if which == "root" else other_root).public
        results = {_outcome(lambda: unseal_and_validate(m, k, trust_roots=trust, now=now)
                            .to_bytes())[1] or "ok" for m, _, k in opened}
        assert results == {expect}, (s.name, now, which, results)
        case["validation"].append({"now": now, "trust_root": which, "result": expect})
    case["refusals"] = []
    for message, label, key in refusals:
        _, error = _outcome(lambda: unseal(message, key).to_bytes())
        assert error == "AuthenticationError", (s.name, error)
        case["refusals"].append({"message": message.hex(), "recipient": label, "error": error})
    order = ["name", "version", "trust_root_seed", "other_root_seed", "server_seed",
             "server_key_id", "server_certificate", "sender", "sender_certificate", "usmc",
             "recipient_identity_seed", "ephemeral_private", "message", "m", "recipients",
             "excluded", "sent", "received", "validation", "refusals"]
    return {k: case[k] for k in order if k in case}


def gen_sealed_sender() -> Json:
    group_messages = _contents_sender_key_messages()
    scripts = [
        SealedScript("v1-signal-message", 1, 0, "+14155550123", 1, 1_767_225_600_000,
                     2, 0, False, _contents_signal_message()),
        SealedScript("v1-sender-key-message", 1, 1, None, 127, 1_767_225_600_001,
                     7, 1, True, group_messages[0]),
        SealedScript("v2-two-recipients", 2, 0xFFFFFFFF, "+442079460000", 3, 1_798_761_599_999,
                     7, 2, True, group_messages[1]),
    ]
    return _envelope("sealed_sender", "sealed sender v1 and v2: certificates, the USMC and its "
                     "envelope rebuilt from seeds and drawn randomness, validation and refusals",
                     [_sealed_case(s) for s in scripts])
