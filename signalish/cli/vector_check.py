"""Checks signalish against vector files: every case recomputed from its inputs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final
from uuid import UUID

from .._backup import DEFAULT_MAX_COST, BackupParams, WrongPassword, _open_backup, create_backup
from .._bundle import PreKeyBundle
from .._errors import SignalishError
from .._fingerprint import SafetyNumber
from .._keys import IdentityKey, IdentityKeyPair
from .._manager import SessionManager
from .._primitives import (
    KemPrivateKey,
    PrivateKey,
    aes256_gcm_decrypt,
    argon2id,
    hkdf,
    hmac_sha256,
    kyber1024_decapsulate,
)
from .._primitives.erasure import Decoder, Encoder, gf_inv, gf_mul
from .._primitives.mlkem_braid import decapsulate as mlkem768_decapsulate
from .._primitives.mlkem_braid import encaps1, encaps2, keygen
from .._profile import LIBSIGNAL_V3, LIBSIGNAL_V4, PROFILES, Profile
from .._provisioning import LinkRequest, ProvisioningData, parse_link_qr, seal_provisioning
from .._ratchet import kdf_ck, kdf_rk
from .._sealed import SealedBoxPrivateKey, SealedBoxSuite
from .._sealed_sender import (
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
from .._sender_keys import (
    SenderKeyDistributionMessage,
    SenderKeyLimits,
    SenderKeyRecord,
    SenderKeyState,
)
from .._session import SessionOptions
from .._spqr import Spqr, encode_message, parse_message
from .._spqr_braid import MessageType, State
from .._spqr_kdf import (
    add_epoch,
    auth_init,
    auth_update,
    chain_step,
    mac_ciphertext,
    mac_header,
    message_keys,
    scka_key,
    spqr_init,
)
from .._storage import load_record, record_bytes
from .._stores import MemoryStore
from .._window import RatchetLimits
from .._wire import InitialMessage
from .._wire_v3 import parse_v3
from .._x3dh import _respond_with_keys, initiate

Json = dict[str, Any]
h = bytes.fromhex


class Mismatch(AssertionError):
    """A recomputed value differs from the vector."""


def expect(what: str, got: object, wanted: object) -> None:
    if got != wanted:
        raise Mismatch(f"{what}: got {got!r:.80}, vector says {wanted!r:.80}")


class ListRandom:
    """Replays the random draws a vector lists, in order."""

    def __init__(self, draws: list[str]) -> None:
        self._draws = [h(d) for d in draws]
        #: Every value drawn so far, in order.
        self.used: list[bytes] = []

    def random_bytes(self, n: int, /) -> bytes:
        if not self._draws:
            raise Mismatch("the implementation drew more randomness than the vector lists")
        value = self._draws.pop(0)
        expect("size of a random draw", n, len(value))
        self.used.append(value)
        return value

    def exhausted(self) -> bool:
        return not self._draws


def check_kdf(case: Json) -> None:
    if case["function"] == "KDF_RK":
        out = kdf_rk(PROFILES[case["profile"]], h(case["rk"]), h(case["dh_out"]),
                     case["header_encryption"])
        expect("KDF_RK", [x.hex() or None for x in out],
               [case["root_key"], case["chain_key"], case["next_header_key"]])
        return
    mk_key = h(case["ck"])
    next_ck, mk = kdf_ck(mk_key)
    expect("KDF_CK", (next_ck.hex(), mk.hex()), (case["next_ck"], case["mk"]))
    expect("native AEAD key", hmac_sha256(mk, b"signalish_MessageKey\x01").hex(),
           case["native_aead_key"])
    expect("native header nonce", hmac_sha256(mk, b"signalish_HeaderNonce")[:12].hex(),
           case["native_header_nonce"])
    expect("libsignal message keys",
           hkdf(mk, salt=None, info=b"WhisperMessageKeys", length=80).hex(),
           case["libsignal_message_keys"])


def decapsulate(profile: Profile, key: KemPrivateKey, ciphertext: bytes) -> bytes:
    """The profile's KEM: ML-KEM-1024, or round-3 Kyber1024 (libsignal_v4)."""
    if profile.kem == "kyber1024":
        return kyber1024_decapsulate(key, ciphertext)
    return key.decapsulate(ciphertext)


def check_x3dh(case: Json) -> None:
    profile = PROFILES[case["profile"]]
    alice = IdentityKeyPair.from_seed(h(case["alice_identity_seed"]))
    bob = IdentityKeyPair.from_seed(h(case["bob_identity_seed"]))
    bundle = PreKeyBundle.from_bytes(h(case["bundle"]))
    expect("bundle identity", bundle.identity_key, bob.public)
    expect("bundle registration and device ids", (bundle.registration_id, bundle.device_id),
           (case["registration_id"], case["device_id"]))
    spk = PrivateKey.from_private_bytes(h(case["signed_prekey"]["private"]))
    expect("signed prekey", bundle.signed_prekey.public_key, spk.public)
    otk = case["one_time_prekey"] and PrivateKey.from_private_bytes(h(case["one_time_prekey"]["private"]))
    kem = case["kem_prekey"] and KemPrivateKey.from_seed(h(case["kem_prekey"]["seed"]))
    # The encapsulation is taken as recorded (making it from kem_encaps_m
    # needs a derandomized ML-KEM or round-3 Kyber, which only the generator
    # has): its shared secret must be what the KEM prekey decapsulates from
    # its ciphertext, with the profile's KEM (libsignal_v4: round-3 Kyber1024).
    encapsulation = None
    if case["kem_ciphertext"]:
        assert kem
        assert bundle.kem_prekey is not None
        expect("KEM prekey", bundle.kem_prekey.public_key, kem.public)
        expect("KEM prekey last-resort flag", bundle.kem_prekey.last_resort,
               case["kem_prekey"]["last_resort"])
        encapsulation = (h(case["kem_ciphertext"]), h(case["kem_shared_secret"]))
        expect(f"{profile.kem} decapsulation", decapsulate(profile, kem, encapsulation[0]).hex(),
               case["kem_shared_secret"])
    sent = initiate(alice, bundle, profile, ephemeral_key=PrivateKey.from_private_bytes(
        h(case["alice_ephemeral_private"])), kem_encapsulation=encapsulation)
    expect("initiator SK", sent.shared_secret.hex(), case["shared_secret"])
    expect("AD", sent.associated_data.hex(), case["associated_data"])
    expect("initial header", sent.header.to_bytes().hex(), case["initial_header"])
    received = _respond_with_keys(profile, bob.dh_private, bob.public, spk, otk or None,
                                  kem or None, sent.header)
    expect("responder SK", received.shared_secret.hex(), case["shared_secret"])


Parties = dict[str, tuple[SessionManager, MemoryStore, ListRandom]]
OTHER: Final = {"alice": "bob", "bob": "alice"}


def _parties(case: Json, profile: Profile, *, header_encryption: bool,
             pq_ratchet: bool) -> Parties:
    """Each party of a conversation case: its manager over a store holding
    its recorded ring, drawing the recorded randomness."""
    limits = RatchetLimits(**case["limits"])
    parties: Parties = {}
    for who, keys in case["parties"].items():
        store = MemoryStore()
        with store.transaction():
            store.save_prekeys(h(keys["prekey_ring"]))
        rng = ListRandom(case["random"][who])
        options = SessionOptions(header_encryption=header_encryption, limits=limits,
                                 max_archived=case["max_archived"],
                                 registration_id=keys["registration_id"], pq_ratchet=pq_ratchet)
        identity = IdentityKeyPair.from_seed(h(keys["identity_seed"]))
        parties[who] = (SessionManager(identity, store, profile, rng=rng, options=options),
                        store, rng)
    return parties


def _initiate(case: Json, parties: Parties, profile: Profile, event: Json, where: str) -> None:
    bundle = PreKeyBundle.from_bytes(h(event["bundle"]))
    # As recorded; the responder decapsulates the ciphertext, so a shared
    # secret that does not match it fails the first message.  Checked here
    # first, with the KEM prekey the bundle names.
    encapsulation = None
    if event["kem_ciphertext"]:
        encapsulation = (h(event["kem_ciphertext"]), h(event["kem_shared_secret"]))
        assert bundle.kem_prekey is not None
        seed = next(k["seed"] for k in case["parties"][OTHER[event["from"]]]["prekeys"]["kem"]
                    if k["id"] == bundle.kem_prekey.key_id)
        expect(f"{where} {profile.kem} decapsulation",
               decapsulate(profile, KemPrivateKey.from_seed(h(seed)), encapsulation[0]).hex(),
               event["kem_shared_secret"])
    parties[event["from"]][0].initiate(OTHER[event["from"]], bundle,
                                       kem_encapsulation=encapsulation)


def check_conversation(case: Json) -> None:
    profile = PROFILES[case["profile"]]
    # conversations.json's sessions run without SPQR (spqr.json has SPQR's).
    parties = _parties(case, profile, header_encryption=case["header_encryption"],
                       pq_ratchet=False)
    other = OTHER
    messages: list[bytes] = []
    for number, event in enumerate(case["events"]):
        where = f"event {number} ({event['op']})"
        if event["op"] == "initiate":
            _initiate(case, parties, profile, event, where)
        elif event["op"] == "delete_session":
            store = parties[event["who"]][1]
            with store.transaction():
                store.delete_session(other[event["who"]])
        elif event["op"] == "send" and "error" in event:
            try:
                parties[event["from"]][0].encrypt(other[event["from"]], h(event["plaintext"]))
            except SignalishError as error:
                expect(f"{where} refusal", type(error).__name__, event["error"])
            else:
                raise Mismatch(f"{where}: encrypted, the vector says {event['error']}")
        elif event["op"] == "send":
            manager = parties[event["from"]][0]
            message = manager.encrypt(other[event["from"]], h(event["plaintext"]))
            expect(f"{where} message bytes", message.hex(), event["message"])
            expect(f"{where} message type", manager.message_type(message), event["type"])
            messages.append(message)
        else:
            data = h(event["bytes"]) if "bytes" in event else messages[event["message"]]
            try:
                outcome = parties[event["to"]][0].decrypt(other[event["to"]], data,
                                                          now=event["now"]).hex()
            except SignalishError as error:
                outcome = type(error).__name__
            expect(f"{where} outcome", outcome, event.get("plaintext", event.get("error")))
    for who, (_, store, rng) in parties.items():
        expect(f"{who}'s final state", (record_bytes(store, other[who]) or b"").hex(),
               case["final_state"][who])
        expect(f"{who}'s randomness fully used", rng.exhausted(), True)


def check_safety_number(case: Json) -> None:
    number = SafetyNumber.compute(
        IdentityKey.decode(h(case["local_key"]), LIBSIGNAL_V3), h(case["local_id"]),
        IdentityKey.decode(h(case["remote_key"]), LIBSIGNAL_V3), h(case["remote_id"]),
        iterations=case["iterations"], version=case["version"])
    expect("displayable", number.displayable, case["displayable"])
    expect("scannable", number.scannable.hex(), case["scannable"])


def check_sealed_box(case: Json) -> None:
    key = SealedBoxPrivateKey(SealedBoxSuite[case["suite"]], h(case["recipient_seed"]))
    expect("recipient public key", key.public_key.public_bytes_raw().hex(), case["recipient_public"])
    expect("opened", key.open(h(case["box"])).hex(), case["plaintext"])


def check_backup(case: Json) -> None:
    params = BackupParams(**case["params"])
    derived = argon2id(case["password"].encode(), h(case["salt"]), length=64,
                       iterations=params.iterations, lanes=params.lanes,
                       memory_kib=params.memory_kib)
    expect("Argon2id output", derived.hex(), case["argon2id_output"])
    identity, ring, identities, sessions, local = _open_backup(
        h(case["backup"]), case["password"], DEFAULT_MAX_COST)
    expect("identity seed", identity.seed().hex(), case["identity_seed"])
    # Creation: the same store contents, salt and nonce give the same blob.
    store = MemoryStore()
    with store.transaction():
        if ring is not None:
            store.save_prekeys(ring)
        for address, key in identities:
            store.save_identity(address, key)
        for address, record in sessions:
            store.save_session(address, record)
        for name, data in local:
            store.save_local(name, data)
    rebuilt = create_backup(identity, store, case["password"], include_local=bool(local),
                            rng=ListRandom([case["salt"], case["nonce"]]), params=params)
    expect("backup created from the same inputs", rebuilt.hex(), case["backup"])
    body = h(case["backup"])[:-16]
    head = body[:2 + 12 + 16 + 32 + 12 + 4]
    expect("contents", aes256_gcm_decrypt(derived[:32], h(case["nonce"]), body[len(head):],
                                          head).hex(), case["contents"])
    expect("identity", identity.public.public_bytes_raw().hex(), case["identity_public"])
    expect("prekey ring", (ring or b"").hex(), case["prekey_ring"])
    expect("sessions", {a: record.hex() for a, record in sessions}, case["sessions"])
    expect("identities", {a: k.public_bytes_raw().hex() for a, k in identities},
           case["identities"])
    try:
        _open_backup(h(case["backup"]), case["password"] + "!", DEFAULT_MAX_COST)
    except WrongPassword:
        return
    raise Mismatch("a wrong password opened the backup")


# --- spqr.json ----------------------------------------------------------------------

#: The Braid's states and message types, by the names of the ML-KEM Braid
#: specification (section 2), as spqr.json writes them.
BRAID_STATES: dict[State, str] = {
    State.KEYS_UNSAMPLED: "KeysUnsampled", State.KEYS_SAMPLED: "KeysSampled",
    State.HEADER_SENT: "HeaderSent", State.CT1_RECEIVED: "Ct1Received",
    State.EK_SENT_CT1_RECEIVED: "EkSentCt1Received", State.NO_HEADER_RECEIVED: "NoHeaderReceived",
    State.HEADER_RECEIVED: "HeaderReceived", State.CT1_SAMPLED: "Ct1Sampled",
    State.EK_RECEIVED_CT1_SAMPLED: "EkReceivedCt1Sampled",
    State.CT1_ACKNOWLEDGED: "Ct1Acknowledged", State.CT2_SAMPLED: "Ct2Sampled",
}
MESSAGE_TYPES: dict[MessageType, str] = {
    MessageType.NONE: "None", MessageType.HDR: "Hdr", MessageType.EK: "Ek",
    MessageType.EK_CT1_ACK: "EkCt1Ack", MessageType.CT1_ACK: "Ct1Ack", MessageType.CT1: "Ct1",
    MessageType.CT2: "Ct2",
}


def field5_of(message: bytes) -> bytes:
    """Field 5 (the SPQR message) of a version 4 SignalMessage, or of the
    SignalMessage inside a PreKeySignalMessage."""
    frame = parse_v3(message, 1 << 24, protocol=4)
    inner = frame.inner if isinstance(frame, InitialMessage) else frame
    value = getattr(inner, "pq_ratchet", None)
    if not isinstance(value, bytes):
        raise Mismatch("a message without field 5")
    return value


def describe_field5(field5: bytes) -> Json:
    """Field 5 decoded, as spqr.json lists it."""
    index, message = parse_message(field5)
    return {"epoch": message.epoch, "index": index, "type": MESSAGE_TYPES[message.type],
            "chunk_index": message.chunk_index,
            "chunk": None if message.chunk is None else message.chunk.hex()}


def current_spqr(store: MemoryStore, address: str) -> Spqr | None:
    """The SPQR state of the current session with ``address`` (a fresh copy,
    read from the store), or None."""
    loaded = load_record(store, address)
    if loaded is None or loaded[0].current is None:
        return None
    return loaded[0].current.spqr


def braid_after(spqr: Spqr | None) -> Json:
    """A party's Braid epoch and state, as spqr.json lists them."""
    if spqr is None:
        raise Mismatch("no session with SPQR")
    return {"epoch": spqr.braid.epoch, "state": BRAID_STATES[spqr.braid.state]}


def spqr_send_trace(spqr: Spqr,
                    draws: list[bytes]) -> tuple[bytes, bytes, tuple[int, bytes] | None]:
    """Redo a send on ``spqr``, a copy of a session's SPQR state before it,
    with the randomness the send drew: (field 5, SPQR message key, the epoch
    key the Braid produced or None).  Changes ``spqr``."""
    rng = ListRandom([d.hex() for d in draws])
    message, epoch_key = spqr.braid.send(rng)
    if epoch_key is not None:
        spqr.chains.add_epoch(*epoch_key)
    n, key = spqr.chains.send_key(message.epoch - 1)
    expect("randomness of the SPQR send fully used", rng.exhausted(), True)
    return encode_message(n, message), key, epoch_key


def _check_chain_keys(case: Json, keys: tuple[bytes, bytes, bytes], root_name: str) -> None:
    expect(case["function"], [k.hex() for k in keys],
           [case[root_name], case["a2b_chain_key"], case["b2a_chain_key"]])


def _check_spqr_kdf(case: Json) -> None:
    function = case["function"]
    if function == "KDF_SCKA_INIT":
        _check_chain_keys(case, spqr_init(h(case["seed"])), "root_key")
    elif function == "KDF_SCKA_RK":
        _check_chain_keys(case, add_epoch(h(case["root_key"]), h(case["epoch_secret"])),
                          "next_root_key")
    elif function == "KDF_SCKA_CK":
        chain_key = h(case["chain_key"])
        for step in case["steps"]:
            chain_key, message_key = chain_step(chain_key, step["n"])
            expect(f"KDF_SCKA_CK n={step['n']}", (message_key.hex(), chain_key.hex()),
                   (step["message_key"], step["next_chain_key"]))
    elif function == "Authenticator.Init":
        auth = auth_init(h(case["seed"]))
        expect(function, (auth.root_key.hex(), auth.mac_key.hex()),
               (case["root_key"], case["mac_key"]))
    elif function == "KDF_AUTH":
        auth = auth_update(h(case["root_key"]), case["epoch"], h(case["key"]))
        expect(function, (auth.root_key.hex(), auth.mac_key.hex()),
               (case["next_root_key"], case["mac_key"]))
    elif function == "KDF_OK":
        expect(function, scka_key(h(case["shared_secret"]), case["epoch"]).hex(),
               case["epoch_secret"])
    elif function == "MacHdr":
        expect(function, mac_header(h(case["mac_key"]), case["epoch"], h(case["header"])).hex(),
               case["mac"])
    elif function == "MacCt":
        expect(function, mac_ciphertext(h(case["mac_key"]), case["epoch"],
                                        h(case["ciphertext"])).hex(), case["mac"])
    else:  # KDF_HYBRID
        dr_key = hmac_sha256(h(case["dr_chain_key"]), b"\x01")
        expect("the Double Ratchet message key", dr_key.hex(), case["dr_message_key"])
        salt = case["spqr_message_key"]
        keys = message_keys(dr_key, None if salt is None else h(salt))
        expect(function, [k.hex() for k in keys], [case["cipher_key"], case["mac_key"], case["iv"]])


def _check_field(case: Json) -> None:
    expect("the field polynomial", case["polynomial"], 0x1100B)
    for a, b, product in case["products"]:
        expect(f"{a:#06x} * {b:#06x}", gf_mul(a, b), product)
    for a, inverse in case["inverses"]:
        expect(f"1 / {a:#06x}", gf_inv(a), inverse)


def _check_erasure(case: Json) -> None:
    payload = h(case["payload"])
    encoder = Encoder(payload)
    chunks = {c["index"]: h(c["chunk"]) for c in case["chunks"]}
    for index, chunk in chunks.items():
        expect(f"chunk {index}", encoder.chunk(index).hex(), chunk.hex())
    for indices in case["decodings"]:
        decoder = Decoder(len(payload))
        for index in indices:
            decoder.add_chunk(index, chunks[index])
        rebuilt = decoder.message()
        expect(f"payload rebuilt from chunks {indices[:3]}...", None if rebuilt is None
               else rebuilt.hex(), case["payload"])


def _check_split_mlkem(case: Json) -> None:
    if case["function"] == "split ML-KEM-768 refusal":
        state, ct1, shared = encaps1(h(case["header"]), h(case["m"]))
        expect("encaps1", (ct1.hex(), shared.hex()), (case["ct1"], case["shared_secret"]))
        try:
            encaps2(state, h(case["header"]), h(case["ek_vector"]))
        except SignalishError as error:
            expect("encaps2's refusal", type(error).__name__, case["error"])
            return
        raise Mismatch(f"encaps2 took an ek_vector it must refuse ({case['why']})")
    seed = h(case["seed"])
    _, header, ek_vector = keygen(seed)
    expect("header and ek_vector", (header.hex(), ek_vector.hex()),
           (case["header"], case["ek_vector"]))
    state, ct1, shared = encaps1(header, h(case["m"]))
    expect("encaps1", (ct1.hex(), shared.hex()), (case["ct1"], case["shared_secret"]))
    expect("encaps2", encaps2(state, header, ek_vector).hex(), case["ct2"])
    expect("decapsulation", mlkem768_decapsulate(seed, ct1, h(case["ct2"])).hex(),
           case["shared_secret"])
    expect("epoch secret", scka_key(shared, case["epoch"]).hex(), case["epoch_secret"])


def _check_spqr_conversation(case: Json) -> None:
    expect("profile", case["profile"], LIBSIGNAL_V4.name)
    parties = _parties(case, LIBSIGNAL_V4, header_encryption=False,
                       pq_ratchet=case["pq_ratchet"])
    other = OTHER
    messages: list[bytes] = []
    for number, event in enumerate(case["events"]):
        where = f"event {number} ({event['op']})"
        if event["op"] == "initiate":
            if not event["kem_ciphertext"]:
                raise Mismatch(f"{where}: a version 4 session without a KEM ciphertext")
            _initiate(case, parties, LIBSIGNAL_V4, event, where)
        elif event["op"] == "send":
            manager, store, rng = parties[event["from"]]
            before = current_spqr(store, other[event["from"]])
            if before is None:
                raise Mismatch(f"{where}: no session with SPQR to send on")
            drawn = len(rng.used)
            message = manager.encrypt(other[event["from"]], h(event["plaintext"]))
            expect(f"{where} message bytes", message.hex(), event["message"])
            expect(f"{where} message type", manager.message_type(message), event["type"])
            field5, key, epoch_key = spqr_send_trace(before, rng.used[drawn:])
            expect(f"{where} field 5", field5.hex(), field5_of(message).hex())
            expect(f"{where} field 5 decoded", {**describe_field5(field5), "key": key.hex()},
                   event["spqr"])
            expect(f"{where} epoch secret", None if epoch_key is None else
                   {"epoch": epoch_key[0], "secret": epoch_key[1].hex()},
                   event.get("epoch_secret"))
            expect(f"{where} Braid after", braid_after(current_spqr(store, other[event["from"]])),
                   event["braid"])
            messages.append(message)
        else:
            manager, store, _ = parties[event["to"]]
            data = h(event["bytes"]) if "bytes" in event else messages[event["message"]]
            try:
                outcome = manager.decrypt(other[event["to"]], data, now=event["now"]).hex()
            except SignalishError as error:
                outcome = type(error).__name__
            expect(f"{where} outcome", outcome, event.get("plaintext", event.get("error")))
            if "braid" in event:
                expect(f"{where} Braid after", braid_after(current_spqr(store, other[event["to"]])),
                       event["braid"])
    for who, (_, _, rng) in parties.items():
        expect(f"{who}'s randomness fully used", rng.exhausted(), True)


def check_spqr(case: Json) -> None:
    if "events" in case:
        _check_spqr_conversation(case)
    elif case["function"] == "GF(2^16)":
        _check_field(case)
    elif case["function"] == "erasure code":
        _check_erasure(case)
    elif case["function"].startswith("split ML-KEM-768"):
        _check_split_mlkem(case)
    else:
        _check_spqr_kdf(case)


# --- sender_keys.json -------------------------------------------------------------------

#: The limits sender_keys.json's cases assume: signalish's (and libsignal's) defaults.
SENDER_KEY_LIMITS: Final = SenderKeyLimits()


def flip_bit(data: bytes, at: int, mask: int = 0x01) -> bytes:
    """``data`` with the bits of ``mask`` flipped in byte ``at``."""
    return data[:at] + bytes((data[at] ^ mask,)) + data[at + 1:]


def sender_key_at(record: SenderKeyRecord, iteration: int) -> SenderKeyRecord:
    """Our own sender key ``record`` as it is once it has encrypted every
    iteration before ``iteration`` (a message changes nothing but the chain,
    so the messages in between need not be made)."""
    state = record.states[0]
    if state.signer is None or iteration < state.iteration:
        raise Mismatch("a sender key can only move forward, and only our own")
    chain_key = state.chain_key
    for _ in range(state.iteration, iteration):
        chain_key, _ = kdf_ck(chain_key)
    return SenderKeyRecord(record.profile, record.distribution_id, [SenderKeyState(
        state.chain_id, iteration, chain_key, state.signing_key, state.floor, {}, state.signer)])


def check_sender_key_limits(data: Json) -> None:
    expect("limits", data.get("limits"), {
        "max_forward_jump": SENDER_KEY_LIMITS.max_forward_jump,
        "max_message_keys": SENDER_KEY_LIMITS.max_message_keys,
        "max_states": SENDER_KEY_LIMITS.max_states})


def check_sender_keys(case: Json) -> None:
    profile = PROFILES[case["profile"]]
    distribution_id = UUID(case["distribution_id"])
    expect("distribution id text", str(distribution_id), case["distribution_id"])
    # The sender's new record, from what SenderKeyRecord.create draws: the
    # chain id (4 bytes, big-endian, top bit cleared), the chain key, then
    # signing seeds until one has Edwards sign bit 0 (this one has).
    rng = ListRandom([case["chain_id"].to_bytes(4, "big").hex(), case["chain_key"],
                      case["signing_seed"]])
    sender = SenderKeyRecord.create(distribution_id, profile, rng)
    expect("randomness of the sender key fully used", rng.exhausted(), True)
    state = sender.states[0]
    expect("chain id", state.chain_id, case["chain_id"])
    u = state.signing_key.hex()
    expect("signing public key", u if profile.wire == "native" else "05" + u,
           case["signing_public"])
    skdm = sender.distribution_message()
    expect("distribution message", skdm.hex(), case["distribution_message"])
    parsed = SenderKeyDistributionMessage.parse(skdm, profile)
    expect("distribution message fields",
           (parsed.distribution_id, parsed.chain_id, parsed.iteration, parsed.chain_key.hex(),
            parsed.signing_key.hex()),
           (distribution_id, case["chain_id"], 0, case["chain_key"], u))
    for entry in case["messages"]:
        iteration = entry["iteration"]
        where = f"message at iteration {iteration}"
        if iteration != sender.states[0].iteration:
            sender = sender_key_at(sender, iteration)
        expect(where, sender.encrypt(h(entry["plaintext"]), SENDER_KEY_LIMITS).hex(),
               entry["message"])
    receiver = SenderKeyRecord.from_distribution_message(h(case["distribution_message"]), profile)
    for number, delivery in enumerate(case["delivery"]):
        where = f"delivery {number}"
        before = receiver.to_bytes()
        try:
            outcome: tuple[str | None, str | None] = (
                receiver.decrypt(h(delivery["message"]), SENDER_KEY_LIMITS).hex(), None)
        except SignalishError as error:
            outcome = (None, type(error).__name__)
            expect(f"{where}: the receiver's record after the refusal",
                   receiver.to_bytes().hex(), before.hex())
        expect(f"{where} outcome", outcome, (delivery["plaintext"], delivery["error"]))


# --- sealed_sender.json -----------------------------------------------------------------


def service_id(text: str) -> ServiceId:
    """libsignal's service id string: a bare UUID (ACI) or ``PNI:<uuid>``."""
    service = ServiceId.pni(text[4:]) if text.startswith("PNI:") else ServiceId.aci(text)
    expect("service id text", str(service), text)
    return service


def _sealed_opened(case: Json, usmc: bytes) -> list[tuple[bytes, str, IdentityKeyPair]]:
    """Rebuild the envelope from the case's inputs; (message, recipient
    label, key pair) for each message a recipient opens."""
    sender = IdentityKeyPair.from_seed(h(case["sender"]["identity_seed"]))
    content = UnidentifiedSenderMessageContent.from_bytes(usmc)
    if case["version"] == 1:
        recipient = IdentityKeyPair.from_seed(h(case["recipient_identity_seed"]))
        rng = ListRandom([case["ephemeral_private"]])
        expect("v1 message", seal_v1(content, recipient.public, sender, rng).hex(), case["message"])
        expect("randomness of seal_v1 fully used", rng.exhausted(), True)
        return [(h(case["message"]), "recipient", recipient)]
    keys = {r["service_id"]: IdentityKeyPair.from_seed(h(r["identity_seed"]))
            for r in case["recipients"]}
    recipients = [Recipient(service_id(r["service_id"]), keys[r["service_id"]].public,
                            tuple(Device(d, reg) for d, reg in r["devices"]))
                  for r in case["recipients"]]
    excluded = [service_id(text) for text in case["excluded"]]
    rng = ListRandom([case["m"]])
    expect("v2 SentMessage", seal_v2(content, recipients, sender, rng, excluded=excluded).hex(),
           case["sent"])
    expect("randomness of seal_v2 fully used", rng.exhausted(), True)
    split = SentMessage.from_bytes(h(case["sent"]))
    expect("recipients as the server reads them", list(split.recipients.items()),
           [(r.service_id, r.devices) for r in recipients])
    expect("excluded as the server reads them", list(split.excluded), excluded)
    expect("received messages", {str(r.service_id): split.received_message(r.service_id).hex()
                                 for r in recipients}, case["received"])
    return [(h(case["received"][text]), text, key) for text, key in keys.items()]


def check_sealed_sender(case: Json) -> None:
    root = IdentityKeyPair.from_seed(h(case["trust_root_seed"]))
    other_root = IdentityKeyPair.from_seed(h(case["other_root_seed"]))
    server = IdentityKeyPair.from_seed(h(case["server_seed"]))
    server_cert = ServerCertificate.create(case["server_key_id"], server.public, root)
    expect("server certificate", server_cert.to_bytes().hex(), case["server_certificate"])
    expect("server certificate parsed", ServerCertificate.from_bytes(h(case["server_certificate"])),
           server_cert)
    who = case["sender"]
    sender = IdentityKeyPair.from_seed(h(who["identity_seed"]))
    cert = SenderCertificate.create(sender_uuid=who["uuid"], sender_e164=who["e164"],
                                    sender_device_id=who["device_id"],
                                    identity_key=sender.public, expiration=who["expiration"],
                                    signer=server_cert, server_key=server)
    expect("sender certificate", cert.to_bytes().hex(), case["sender_certificate"])
    expect("sender certificate parsed", SenderCertificate.from_bytes(h(case["sender_certificate"])),
           cert)
    fields = case["usmc"]
    group_id = None if fields["group_id"] is None else h(fields["group_id"])
    usmc = UnidentifiedSenderMessageContent(fields["message_type"], cert, h(fields["contents"]),
                                            fields["content_hint"], group_id).to_bytes()
    expect("USMC", usmc.hex(), fields["bytes"])
    opened = _sealed_opened(case, usmc)
    keys = {label: key for _, label, key in opened}
    for message, label, key in opened:
        expect(f"USMC opened by {label}", unseal(message, key).to_bytes().hex(), fields["bytes"])
    for entry in case["validation"]:
        trust = (root if entry["trust_root"] == "root" else other_root).public
        for message, label, key in opened:
            try:
                unseal_and_validate(message, key, trust_roots=trust, now=entry["now"])
                result = "ok"
            except SignalishError as error:
                result = type(error).__name__
            expect(f"validation by {label} at {entry['now']} under {entry['trust_root']}",
                   result, entry["result"])
    for number, refusal in enumerate(case["refusals"]):
        try:
            unseal(h(refusal["message"]), keys[refusal["recipient"]])
            result = "ok"
        except SignalishError as error:
            result = type(error).__name__
        expect(f"refusal {number}", result, refusal["error"])


# --- provisioning.json ------------------------------------------------------------------

#: A case's ``data``: ProvisioningData's arguments under the names the vectors give them.
PROVISIONING_FIELDS: Final = frozenset({"identity_seed", "aci", "code", "pni", "pni_seed",
                                        "number", "name", "device_id", "extra"})


def provisioning_data(fields: Json) -> ProvisioningData:
    """A case's ``data``; an absent field takes its default (none; ``extra`` empty)."""
    unknown = set(fields) - PROVISIONING_FIELDS
    if unknown:
        raise Mismatch(f"data: unknown fields {sorted(unknown)}")
    pni, pni_seed = fields.get("pni"), fields.get("pni_seed")
    return ProvisioningData(
        IdentityKeyPair.from_seed(h(fields["identity_seed"])), UUID(fields["aci"]), fields["code"],
        pni=None if pni is None else UUID(pni),
        pni_identity=None if pni_seed is None else IdentityKeyPair.from_seed(h(pni_seed)),
        number=fields.get("number"), account_name=fields.get("name"),
        device_id=fields.get("device_id"), extra=h(fields.get("extra", "")))


def link_verdict(request: LinkRequest, envelope: bytes) -> str:
    """"ok" or the name of the error ``request.open(envelope)`` raises; a
    refusal must leave the request as it was."""
    before = repr(request)
    try:
        request.open(envelope)
    except SignalishError as error:
        expect("the link request after a refusal", (repr(request), request.used), (before, False))
        return type(error).__name__
    return "ok"


def check_provisioning(case: Json) -> None:
    # LinkRequest.create draws the private key, then, unless the application
    # passes the id its server issued, the 16 bytes of a version-4 UUID.
    issued = case["id_random"] is None
    draws = ListRandom([case["request_private"]] + ([] if issued else [case["id_random"]]))
    request = (LinkRequest.create(draws, provisioning_id=UUID(case["provisioning_id"])) if issued
               else LinkRequest.create(draws))
    expect("randomness of the link request fully used", draws.exhausted(), True)
    expect("provisioning id", str(request.provisioning_id), case["provisioning_id"])
    expect("request public key", request.target.public_key.public_bytes_raw().hex(),
           case["request_public"])
    expect("QR string", request.qr_text(), case["qr_text"])
    target = parse_link_qr(case["qr_text"])
    expect("QR string parsed", target, request.target)
    data = provisioning_data(case["data"])
    expect("data bytes", data.to_bytes().hex(), case["data_bytes"])
    expect("data bytes parsed", ProvisioningData.from_bytes(h(case["data_bytes"])), data)
    sealer = ListRandom([case["ephemeral_private"]])
    expect("envelope", seal_provisioning(target, data, sealer).hex(), case["envelope"])
    expect("randomness of seal_provisioning fully used", sealer.exhausted(), True)
    envelope = h(case["envelope"])
    private = PrivateKey.from_private_bytes(h(case["request_private"]))
    for text in case["fails_under"]:
        expect(f"envelope under provisioning id {text}",
               link_verdict(LinkRequest(private, UUID(text)), envelope), "AuthenticationError")
    for number, refusal in enumerate(case["refusals"]):
        expect(f"refusal {number}", link_verdict(request, h(refusal["envelope"])),
               refusal["error"])
    expect("envelope opened", request.open(envelope).to_bytes().hex(), case["data_bytes"])


CHECKS: dict[str, Callable[[Json], None]] = {
    "kdf": check_kdf, "x3dh": check_x3dh, "conversation": check_conversation,
    "safety_number": check_safety_number, "sealed_box": check_sealed_box, "backup": check_backup,
    "spqr": check_spqr, "sender_keys": check_sender_keys, "sealed_sender": check_sealed_sender,
    "provisioning": check_provisioning,
}
#: Checks of a whole file's top level, before its cases.
FILE_CHECKS: dict[str, Callable[[Json], None]] = {"sender_keys": check_sender_key_limits}


def case_label(kind: str, index: int, case: Json) -> str:
    if kind == "spqr" and "payload" in case:
        return f"{index}: erasure code, {len(case['payload']) // 2} bytes"
    for key in ("name", "function", "suite"):
        if key in case:
            return f"{index}: {case[key]}" + (f" {case['profile']}" if key == "function"
                                              and "profile" in case else "")
    if kind == "x3dh":
        return f"{index}: {case['profile']} {case['protocol']}" + (
            " +OPK" if case["one_time_prekey"] else "") + (
            " last-resort KEM" if case["kem_prekey"] and case["kem_prekey"]["last_resort"]
            else "")
    return str(index)


def check_file(data: object) -> Iterator[tuple[str, str | None]]:
    """(case label, None when it passed or the reason it failed).  Never
    raises: a malformed file or case is reported as a failure."""
    if (not isinstance(data, dict) or data.get("format") != "signalish-vectors"
            or data.get("version") != 1 or not isinstance(data.get("cases"), list)):
        yield ("file", "not a version 1 signalish vector file")
        return
    check = CHECKS.get(data.get("kind"))  # type: ignore[arg-type]
    if check is None:
        yield ("file", f"unknown kind {data.get('kind')!r}")
        return
    file_check = FILE_CHECKS.get(data["kind"])
    if file_check is not None:
        try:
            file_check(data)
        except Exception as error:  # noqa: BLE001 - reported, not raised
            yield ("file", f"{type(error).__name__}: {error}")
            return
    for index, case in enumerate(data["cases"]):
        try:
            label = case_label(data["kind"], index, case)
        except Exception:  # noqa: BLE001 - a malformed case still gets a row
            label = str(index)
        try:
            check(case)
        except Exception as error:  # noqa: BLE001 - every failure is reported, not raised
            yield (label, f"{type(error).__name__}: {error}")
        else:
            yield (label, None)
