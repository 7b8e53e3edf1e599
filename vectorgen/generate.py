"""Builds every file in vectors/ from fixed seeds, byte for byte reproducibly.

Format and meaning of each file: vectors/README.md and vectors/schema/.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from signalish._backup import BackupParams, create_backup
from signalish._bundle import PreKeyBundle
from signalish._errors import SignalishError
from signalish._fingerprint import SafetyNumber
from signalish._keys import IdentityKeyPair
from signalish._manager import SessionManager
from signalish._prekeys import PreKeyRing
from signalish._primitives import (
    DeterministicRandom,
    HpkePrivate,
    PrivateKey,
    PublicKey,
    aes256_gcm_decrypt,
    aes256_gcm_encrypt,
    argon2id,
    chacha20_poly1305_encrypt,
    hkdf,
    hkdf_expand,
    hmac_sha256,
)
from signalish._profile import LIBSIGNAL_V3, LIBSIGNAL_V4, NATIVE, Profile
from signalish._ratchet import kdf_ck, kdf_rk
from signalish._sealed import SealedBoxSuite, _info
from signalish._session import SessionOptions, SessionRecord
from signalish._storage import record_bytes, ring_bytes
from signalish._stores import MemoryStore
from signalish._window import RatchetLimits
from signalish._x3dh import _respond_with_keys, initiate
from vectorgen.groups import gen_sealed_sender, gen_sender_keys
from vectorgen.kyber_encaps import kyber1024_encaps_derandomized
from vectorgen.mlkem_encaps import encaps_internal
from vectorgen.provisioning import gen_provisioning

Json = dict[str, Any]


class RecordingRandom:
    """A DeterministicRandom that remembers every draw, for the vectors."""

    def __init__(self, seed: bytes) -> None:
        self._inner = DeterministicRandom(seed)
        self.draws: list[bytes] = []

    def random_bytes(self, n: int, /) -> bytes:
        value = self._inner.random_bytes(n)
        self.draws.append(value)
        return value


def envelope(kind: str, description: str, cases: list[Json]) -> Json:
    return {"format": "signalish-vectors", "version": 1, "kind": kind,
            "description": description, "cases": cases}


def kem_encapsulation(profile: Profile, bundle: PreKeyBundle,
                      m: bytes) -> tuple[bytes, bytes] | None:
    """(ciphertext, shared secret) to the bundle's KEM prekey, from 32 bytes
    ``m``: FIPS 203 ML-KEM-1024.Encaps_internal(ek, m), or under a profile
    whose KEM is round-3 Kyber1024 (libsignal_v4) Kyber.CCAKEM.Enc with ``m``
    as its 32 random bytes (round 3 then hashes them: m := SHA3-256(m))."""
    if bundle.kem_prekey is None:
        return None
    public = bundle.kem_prekey.public_key.public_bytes_raw()
    if profile.kem == "kyber1024":
        return kyber1024_encaps_derandomized(public, m)
    return encaps_internal(public, m, "ML-KEM-1024")


# --- kdf.json -------------------------------------------------------------------


def gen_kdf() -> Json:
    rng = DeterministicRandom(b"vectors/kdf")
    cases: list[Json] = []
    for profile in (NATIVE, LIBSIGNAL_V3):
        for header_keys in ((False, True) if profile is NATIVE else (False,)):
            rk, dh = rng.random_bytes(32), rng.random_bytes(32)
            root, chain, nhk = kdf_rk(profile, rk, dh, header_keys)
            cases.append({"function": "KDF_RK", "profile": profile.name,
                          "header_encryption": header_keys, "rk": rk.hex(), "dh_out": dh.hex(),
                          "root_key": root.hex(), "chain_key": chain.hex(),
                          "next_header_key": nhk.hex() or None})
    for _ in range(2):
        ck = rng.random_bytes(32)
        next_ck, mk = kdf_ck(ck)
        cases.append({"function": "KDF_CK", "ck": ck.hex(), "next_ck": next_ck.hex(),
                      "mk": mk.hex(),
                      "native_aead_key": hmac_sha256(mk, NATIVE.message_key_info + b"\x01").hex(),
                      "native_header_nonce": hmac_sha256(mk, NATIVE.header_nonce_info)[:12].hex(),
                      "libsignal_message_keys": hkdf(mk, salt=None, info=b"WhisperMessageKeys",
                                                     length=80).hex()})
    return envelope("kdf", "KDF_RK, KDF_CK and message keys of both profiles", cases)


# --- x3dh.json ------------------------------------------------------------------


def _x3dh_case(profile: Profile, one_time: bool, kem: bool, seed: bytes,
               last_resort_kem: bool = False) -> Json:
    """``kem``: PQXDH with a one-time KEM prekey, or with ``last_resort_kem``
    the ring's last-resort one (the ring has no one-time KEM prekey then)."""
    rng = DeterministicRandom(seed)
    alice, bob = IdentityKeyPair.generate(rng), IdentityKeyPair.generate(rng)
    ring = PreKeyRing.create(bob, profile, rng, now=0, registration_id=7, device_id=3)
    if one_time:
        ring.generate_one_time_prekeys(1, rng)
    if kem and not last_resort_kem:
        ring.generate_kem_prekeys(1, rng, now=0)
    bundle = ring.issue_bundle()
    if not kem and bundle.kem_prekey is not None:
        bundle = PreKeyBundle(bundle.identity_key, bundle.signed_prekey, bundle.one_time_prekey,
                              None, bundle.registration_id, bundle.device_id)
    ek = PrivateKey.generate(rng)
    m = rng.random_bytes(32) if kem else None
    encapsulation = kem_encapsulation(profile, bundle, m) if m else None
    assert kem == (encapsulation is not None)
    sent = initiate(alice, bundle, profile, ephemeral_key=ek, kem_encapsulation=encapsulation)
    spk = ring.current_signed_prekey
    otk = ring.one_time_prekey(bundle.one_time_prekey.key_id) if bundle.one_time_prekey else None
    kpk = ring.kem_prekey(bundle.kem_prekey.key_id, now=0) if bundle.kem_prekey else None
    received = _respond_with_keys(profile, bob.dh_private, bob.public, spk.private_key,
                                  otk.private_key if otk else None,
                                  kpk.private_key if kpk else None, sent.header)
    assert received.shared_secret == sent.shared_secret
    return {
        "profile": profile.name, "protocol": sent.protocol,
        "alice_identity_seed": alice.seed().hex(), "bob_identity_seed": bob.seed().hex(),
        "registration_id": bundle.registration_id, "device_id": bundle.device_id,
        "signed_prekey": {"id": spk.key_id, "private": spk.private_key.private_bytes_raw().hex()},
        "one_time_prekey": None if otk is None else {
            "id": otk.key_id, "private": otk.private_key.private_bytes_raw().hex()},
        "kem_prekey": None if kpk is None else {
            "id": kpk.key_id, "seed": kpk.private_key.seed().hex(), "last_resort": kpk.last_resort},
        "alice_ephemeral_private": ek.private_bytes_raw().hex(),
        "kem_encaps_m": None if m is None else m.hex(),
        "bundle": bundle.to_bytes().hex(),
        "kem_ciphertext": None if encapsulation is None else encapsulation[0].hex(),
        "kem_shared_secret": None if encapsulation is None else encapsulation[1].hex(),
        "shared_secret": sent.shared_secret.hex(),
        "associated_data": sent.associated_data.hex(),
        "initial_header": sent.header.to_bytes().hex(),
    }


def gen_x3dh() -> Json:
    cases = []
    for profile in (NATIVE, LIBSIGNAL_V3):
        for one_time in (True, False):
            for kem in ((False, True) if profile is NATIVE else (False,)):
                seed = f"vectors/x3dh/{profile.name}/{one_time}/{kem}".encode()
                cases.append(_x3dh_case(profile, one_time, kem, seed))
    # libsignal v4: PQXDH with round-3 Kyber1024 always; one-time or last-resort Kyber.
    for one_time in (True, False):
        for kyber in ("one-time", "last-resort"):
            seed = f"vectors/x3dh/{LIBSIGNAL_V4.name}/{one_time}/{kyber}".encode()
            cases.append(_x3dh_case(LIBSIGNAL_V4, one_time, True, seed,
                                    last_resort_kem=kyber == "last-resort"))
    return envelope("x3dh", "X3DH and PQXDH for every combination of prekeys", cases)


# --- conversations.json ---------------------------------------------------------


class Party:
    def __init__(self, name: str, profile: Profile, seed: bytes, options: SessionOptions,
                 one_time_prekeys: int = 3) -> None:
        rng = DeterministicRandom(seed + b"/" + name.encode() + b"/keys")
        self.name, self.profile = name, profile
        self.identity = IdentityKeyPair.generate(rng)
        ring = PreKeyRing.create(self.identity, profile, rng, now=0,
                                 registration_id=options.registration_id)
        ring.generate_one_time_prekeys(one_time_prekeys, rng)
        if profile.kem_key_prefix is not None:
            ring.generate_kem_prekeys(2, rng, now=0)
        self.store = MemoryStore()
        with self.store.transaction():
            self.store.save_prekeys(ring.to_bytes())
        self.keys: Json = {"identity_seed": self.identity.seed().hex(),
                           "registration_id": options.registration_id,
                           "prekey_ring": ring.to_bytes().hex(), "prekeys": _list_prekeys(ring)}
        self.rng = RecordingRandom(seed + b"/" + name.encode() + b"/session")
        self.manager = SessionManager(self.identity, self.store, profile, rng=self.rng,
                                      options=options)

    def bundle(self) -> PreKeyBundle:
        with self.manager.prekeys(now=0) as ring:
            return ring.issue_bundle()


def _list_prekeys(ring: PreKeyRing) -> Json:
    signed = ring.current_signed_prekey
    return {"signed": {"id": signed.key_id, "private": signed.private_key.private_bytes_raw().hex()},
            "one_time": [{"id": k.key_id, "private": k.private_key.private_bytes_raw().hex()}
                         for k in ring._one_time.values()],
            "kem": [{"id": k.key_id, "seed": k.private_key.seed().hex(), "last_resort": False}
                    for k in ring._kem_one_time.values()]
            + ([] if ring.current_last_resort_kem_prekey is None else [{
                "id": ring.current_last_resort_kem_prekey.key_id,
                "seed": ring.current_last_resort_kem_prekey.private_key.seed().hex(),
                "last_resort": True}])}


class Conversation:
    def __init__(self, name: str, description: str, profile: Profile, *,
                 header_encryption: bool = False, limits: RatchetLimits | None = None,
                 pq: bool = True, one_time_prekeys: int = 3, seed: bytes | None = None) -> None:
        seed = seed or b"vectors/conversations/" + name.encode()
        base = (SessionOptions.libsignal(0) if profile.ratchet_start == "libsignal"
                else SessionOptions())
        #: False: bundles are handed out without their KEM prekey (plain X3DH),
        #: which keeps the vectors small where PQXDH is not the point.
        self.pq = pq
        self.parties: dict[str, Party] = {}
        for who, reg in (("alice", 1111), ("bob", 2222)):
            # conversations.json predates SPQR: its libsignal_v4 sessions run
            # without it (spqr.json has SPQR's).
            options = SessionOptions(header_encryption=header_encryption,
                                     limits=limits or base.limits,
                                     max_archived=base.max_archived, registration_id=reg,
                                     pq_ratchet=False)
            self.parties[who] = Party(who, profile, seed, options, one_time_prekeys)
        self.case: Json = {"name": name, "description": description, "profile": profile.name,
                           "header_encryption": header_encryption,
                           "limits": _limits(limits or base.limits),
                           "max_archived": base.max_archived,
                           "parties": {w: p.keys for w, p in self.parties.items()}, "events": []}
        self.messages: list[bytes] = []
        self.now = 1_000

    def other(self, who: str) -> str:
        return "bob" if who == "alice" else "alice"

    def initiate(self, who: str) -> None:
        bundle = self.parties[self.other(who)].bundle()
        if not self.pq:
            bundle = PreKeyBundle(bundle.identity_key, bundle.signed_prekey,
                                  bundle.one_time_prekey, None, bundle.registration_id,
                                  bundle.device_id)
        m = hashlib.sha256(b"kem-m" + bundle.to_bytes()).digest() if bundle.kem_prekey else None
        encapsulation = kem_encapsulation(self.parties[who].profile, bundle, m) if m else None
        self.parties[who].manager.initiate(self.other(who), bundle,
                                           kem_encapsulation=encapsulation)
        self.case["events"].append({
            "op": "initiate", "from": who, "bundle": bundle.to_bytes().hex(),
            "kem_encaps_m": None if m is None else m.hex(),
            "kem_ciphertext": None if encapsulation is None else encapsulation[0].hex(),
            "kem_shared_secret": None if encapsulation is None else encapsulation[1].hex()})

    def send(self, who: str, text: str, *, refused: str | None = None) -> int:
        """Encrypt; returns the message number.  ``refused``: the error the
        send must end in instead (recorded, no message; returns -1)."""
        party = self.parties[who]
        stored = record_bytes(party.store, self.other(who))
        event: Json = {"op": "send", "from": who, "plaintext": text.encode().hex()}
        if refused is not None:
            try:
                party.manager.encrypt(self.other(who), text.encode())
            except SignalishError as error:
                event["error"] = type(error).__name__
            expect_outcome(event, refused)
            self.case["events"].append(event)
            return -1
        record = SessionRecord.from_bytes(stored or b"")
        assert record.current is not None
        message = party.manager.encrypt(self.other(who), text.encode())
        self.messages.append(message)
        self.case["events"].append({**event, "session": record.current.base_key.hex(),
                                    "message": message.hex(),
                                    "type": party.manager.message_type(message)})
        return len(self.messages) - 1

    def receive(self, who: str, index: int, *, flip: int | None = None,
                data: bytes | None = None, now: int | None = None,
                expect: str | None = None) -> None:
        """Deliver message ``index`` (or, with ``flip``, a copy with one bit of
        that byte flipped; with ``data``, those bytes in its place) at ``now``
        (default: one second after the last delivery).  ``expect``: the error
        name, or "ok", that generation must see (a guard against scripts
        that silently stop testing what they say)."""
        if data is None:
            data = self.messages[index]
            if flip is not None:
                data = data[:flip] + bytes((data[flip] ^ 0x01,)) + data[flip + 1:]
        if now is not None:
            assert now >= self.now - 1, "time runs forward in the vectors"
            self.now = now
        event: Json = {"op": "receive", "to": who, "message": index, "now": self.now}
        if data != self.messages[index]:
            event["bytes"] = data.hex()
        try:
            event["plaintext"] = self.parties[who].manager.decrypt(
                self.other(who), data, now=self.now).hex()
        except Exception as error:  # noqa: BLE001 - recorded as the expected outcome
            event["error"] = type(error).__name__
        if expect is not None:
            expect_outcome(event, expect)
        self.case["events"].append(event)
        self.now += 1

    def delete_session(self, who: str) -> None:
        """The application deletes ``who``'s session record with the other
        party (``Store.delete_session``); prekeys and identities stay."""
        party = self.parties[who]
        with party.store.transaction():
            party.store.delete_session(self.other(who))
        self.case["events"].append({"op": "delete_session", "who": who})

    def finish(self) -> Json:
        self.case["random"] = {w: [d.hex() for d in p.rng.draws]
                               for w, p in self.parties.items()}
        self.case["final_state"] = {w: (record_bytes(p.store, self.other(w)) or b"").hex()
                                    for w, p in self.parties.items()}
        return self.case


def expect_outcome(event: Json, wanted: str) -> None:
    got = event.get("error", "ok")
    if got != wanted:
        raise AssertionError(f"vector script: {event} ended in {got}, the script expects {wanted}")


def _limits(limits: RatchetLimits) -> Json:
    return {name: getattr(limits, name) for name in (
        "max_skip", "max_stored_keys", "max_receiving_chains", "expire_after_steps",
        "expire_after_seconds", "max_message_size")}


def _script_in_order(c: Conversation) -> None:
    c.initiate("alice")
    for i in range(2):
        c.receive("bob", c.send("alice", f"hello {i}"))
    for round_ in range(3):
        c.receive("alice", c.send("bob", f"reply {round_}"))
        c.receive("bob", c.send("alice", f"answer {round_}"))


def _script_out_of_order(c: Conversation) -> None:
    c.initiate("alice")
    a1 = [c.send("alice", f"a1-{i}") for i in range(4)]
    c.receive("bob", a1[2])
    b1 = [c.send("bob", f"b1-{i}") for i in range(3)]
    c.receive("alice", b1[2])
    a2 = [c.send("alice", f"a2-{i}") for i in range(3)]
    c.receive("bob", a2[1])
    b2 = [c.send("bob", f"b2-{i}") for i in range(2)]
    for who, index in (("alice", b2[1]), ("bob", a1[0]), ("alice", b1[0]), ("bob", a2[2]),
                       ("bob", a1[3]), ("alice", b1[1]), ("bob", a2[0]), ("alice", b2[0]),
                       ("bob", a1[1])):
        c.receive(who, index)


def _script_simultaneous(c: Conversation) -> None:
    c.initiate("alice")
    c.initiate("bob")
    from_alice, from_bob = c.send("alice", "hi bob"), c.send("bob", "hi alice")
    c.receive("bob", from_alice)
    c.receive("alice", from_bob)
    for i in range(2):
        c.receive("bob", c.send("alice", f"a{i}"))
        c.receive("alice", c.send("bob", f"b{i}"))


def _script_negative(c: Conversation) -> None:
    """With max_skip 3 and max_stored_keys 2."""
    c.initiate("alice")
    first = c.send("alice", "first")
    c.receive("bob", first)
    c.receive("bob", first)                      # replayed: DuplicateMessage
    c.receive("alice", c.send("bob", "reply"))   # Alice steps to a new chain
    sent = [c.send("alice", f"m{i}") for i in range(4)]
    c.receive("bob", sent[3], flip=len(c.messages[sent[3]]) - 3)   # tampered
    c.receive("bob", sent[3])                    # skips m0..m2; the cap keeps m1, m2
    c.receive("bob", sent[0])                    # MessageKeyEvicted
    c.receive("bob", sent[2])
    far = [c.send("alice", f"far{i}") for i in range(5)]
    c.receive("bob", far[4])                     # would skip 4 > 3: TooFarAhead
    c.receive("bob", far[3])                     # skips 3: fine
    c.receive("bob", sent[2])                    # DuplicateMessage
    c.receive("bob", first)                      # the old PreKeyMessage again


def _warm_up(c: Conversation, first: int = 1) -> list[int]:
    """Alice initiates and sends ``first`` messages, Bob reads the last and
    answers, Alice reads that: both have sending chains from here on and
    Alice's messages are no longer PreKeyMessages.  Returns Alice's first
    messages."""
    c.initiate("alice")
    hello = [c.send("alice", f"hello {i}") for i in range(first)]
    c.receive("bob", hello[-1], expect="ok")
    c.receive("alice", c.send("bob", "hi"), expect="ok")
    return hello


def _ping(c: Conversation, text: str = "ping") -> None:
    """One DH ratchet step at each party: Bob sends, Alice reads (her step),
    Alice answers, Bob reads (his step)."""
    c.receive("alice", c.send("bob", text), expect="ok")
    c.receive("bob", c.send("alice", text + " back"), expect="ok")


def _script_expiry_steps(c: Conversation) -> None:
    """With expire_after_steps 2: a chain opened at Bob's step s is dropped
    by the step s + 3 (step - s > 2), and not by s + 2."""
    _warm_up(c)                                  # Bob's step 1
    a = [c.send("alice", f"a{i}") for i in range(3)]
    c.receive("bob", a[2], expect="ok")          # step 2 opens the chain; a0, a1 stored
    _ping(c)                                     # step 3 ends it
    _ping(c)                                     # step 4: 4 - 2 = 2, kept
    c.receive("bob", a[0], expect="ok")
    _ping(c)                                     # step 5: 5 - 2 = 3 > 2, dropped
    c.receive("bob", a[1], expect="MessageKeyExpired")


def _script_expiry_time(c: Conversation) -> None:
    """With expire_after_seconds 100: a key stored at T opens at T + 99 and
    is expired from T + 100 on (now - stored_at >= 100)."""
    _warm_up(c)
    a = [c.send("alice", f"a{i}") for i in range(5)]
    t = 2_000
    c.receive("bob", a[4], now=t, expect="ok")                   # a0..a3 stored at T
    c.receive("bob", a[0], now=t + 99, expect="ok")
    c.receive("bob", a[1], now=t + 100, expect="MessageKeyExpired")  # refused, still stored
    c.receive("bob", a[2], now=t + 100, expect="MessageKeyExpired")
    c.receive("bob", c.send("alice", "a5"), now=t + 100, expect="ok")  # drops a1..a3: floor 4
    c.receive("bob", a[3], now=t + 100, expect="MessageKeyExpired")  # below the floor
    c.receive("bob", a[0], now=t + 100, expect="MessageKeyExpired")  # a duplicate below it too


def _script_chain_eviction(c: Conversation) -> None:
    """With max_receiving_chains 2 and max_stored_keys 3: whole chains are
    dropped oldest first, their ids remembered (at most 4) and then
    forgotten; the key cap evicts the oldest chain's lowest numbers first."""
    _warm_up(c)                                  # Bob's chain A0 (step 1)
    rounds: list[list[int]] = []
    for k, count in enumerate((2, 2, 3, 3, 1, 1, 1), start=1):
        sent = [c.send("alice", f"r{k}-{i}") for i in range(count)]
        c.receive("bob", sent[-1], expect="ok")  # Bob's step k + 1: chain Ak, others stored
        c.receive("alice", c.send("bob", f"ack {k}"), expect="ok")  # Alice moves on
        rounds.append(sent)
        if k == 3:                               # chains A2, A3; A0 and A1 dropped
            c.receive("bob", rounds[0][0], expect="MessageKeyEvicted")
        if k == 4:                               # A3, A4: 4 keys > 3, A3's key 0 evicted
            c.receive("bob", rounds[2][0], expect="MessageKeyEvicted")
            c.receive("bob", rounds[2][1], expect="ok")
            c.receive("bob", rounds[3][0], expect="ok")
    # Dropped so far, oldest first: A0 .. A5; only the last four are remembered.
    c.receive("bob", rounds[0][0], expect="AuthenticationError")  # A1: no longer known
    c.receive("bob", rounds[1][0], expect="MessageKeyEvicted")    # A2: still remembered


def _script_refusals(c: Conversation) -> None:
    """With max_skip 3 and max_stored_keys 5: every refusal of the window,
    including a new chain too far ahead and a given-up tail."""
    hello = _warm_up(c)
    c.receive("bob", hello[0], expect="DuplicateMessage")          # the initial message again
    m = [c.send("alice", f"m{i}") for i in range(8)]
    c.receive("bob", m[0], expect="ok")                            # Bob's step 2
    c.receive("bob", m[0], expect="DuplicateMessage")
    c.receive("bob", m[7], expect="TooFarAhead")                   # would skip 6 > 3
    c.receive("bob", m[1], flip=len(c.messages[m[1]]) - 3, expect="AuthenticationError")
    c.receive("bob", m[2], expect="ok")                            # m1 stored; Nr 3
    c.receive("alice", c.send("bob", "reply"), expect="ok")        # Alice's chain ends at 8
    n = [c.send("alice", f"n{i}") for i in range(9)]
    c.receive("bob", n[4], expect="TooFarAhead")                   # new chain, N 4 > 3
    c.receive("bob", n[0], expect="ok")     # m3..m6 stored (reach Nr + max_skip), m7 given up
    c.receive("bob", m[7], expect="MessageKeyEvicted")
    c.receive("bob", m[6], expect="ok")
    c.receive("bob", m[4], expect="ok")
    c.receive("bob", m[1], expect="ok")
    c.receive("bob", n[3], expect="ok")                            # n1, n2 stored: 4 keys
    c.receive("bob", n[4], expect="ok")
    c.receive("bob", n[6], expect="ok")                            # n5 stored: 5 keys
    c.receive("bob", n[8], expect="ok")                            # n7 stored: m3 evicted
    c.receive("bob", m[3], expect="MessageKeyEvicted")
    c.receive("bob", m[1], expect="MessageKeyEvicted")             # a duplicate below the floor
    c.receive("bob", m[5], expect="ok")


def _script_initial_messages(c: Conversation) -> None:
    """Bob has one one-time prekey.  Late initial messages that are not plain
    replays, a changed header, an archived session made current again, then
    Bob deletes the session: NoSession, PreKeyReplayed, PreKeyAlreadyUsed."""
    c.initiate("alice")                                   # S1, with one-time prekey 1
    p = [c.send("alice", f"p{i}") for i in range(3)]
    c.receive("bob", p[0], expect="ok")
    message = c.messages[p[1]]
    changed = message[:69] + bytes((message[69] ^ 0x01,)) + message[70:]  # signed prekey id
    c.receive("bob", p[1], data=changed, expect="AuthenticationError")
    c.receive("alice", c.send("bob", "r0"), expect="ok")
    c.receive("bob", c.send("alice", "a0"), expect="ok")
    c.receive("bob", p[1], expect="ok")                   # late, not a replay
    c.initiate("alice")                                   # S2: no one-time prekey left
    q0 = c.send("alice", "q0")
    c.receive("bob", q0, expect="ok")                     # S2 current at Bob
    c.receive("bob", p[2], expect="ok")                   # S1 current again (rule 1)
    c.receive("alice", c.send("bob", "on S1"), expect="ok")  # promotes S1 at Alice (rule 2)
    c.receive("bob", c.send("alice", "back on S1"), expect="ok")
    c.delete_session("bob")
    c.receive("bob", c.send("alice", "lost"), expect="NoSession")
    c.send("bob", "anyone?", refused="NoSession")
    c.receive("bob", q0, expect="PreKeyReplayed")
    c.receive("bob", p[0], expect="PreKeyAlreadyUsed")


def _script_out_of_order_tampered(c: Conversation) -> None:
    """The deliveries of _script_out_of_order, with tampered copies refused
    on the way: a message that would start a DH step with a MAC byte changed
    (no step is taken and nothing is drawn), an initial message whose Kyber
    ciphertext changed after Bob built the session from the genuine one (a
    changed initial header), and a message whose key is stored with a
    ciphertext byte changed (the key stays)."""
    c.initiate("alice")
    a1 = [c.send("alice", f"a1-{i}") for i in range(4)]
    c.receive("bob", a1[2], expect="ok")
    b1 = [c.send("bob", f"b1-{i}") for i in range(3)]
    c.receive("alice", b1[2], flip=len(c.messages[b1[2]]) - 3, expect="AuthenticationError")
    c.receive("alice", b1[2], expect="ok")
    a2 = [c.send("alice", f"a2-{i}") for i in range(3)]
    c.receive("bob", a2[1], expect="ok")
    b2 = [c.send("bob", f"b2-{i}") for i in range(2)]
    c.receive("bob", a1[0], flip=len(c.messages[a1[0]]) - 3, expect="AuthenticationError")
    c.receive("alice", b1[0], flip=len(c.messages[b1[0]]) - 9, expect="AuthenticationError")
    for who, index in (("alice", b2[1]), ("bob", a1[0]), ("alice", b1[0]), ("bob", a2[2]),
                       ("bob", a1[3]), ("alice", b1[1]), ("bob", a2[0]), ("alice", b2[0]),
                       ("bob", a1[1])):
        c.receive(who, index, expect="ok")


def _script_kyber_prekeys(c: Conversation) -> None:
    """Bob has one one-time EC prekey, two one-time Kyber prekeys and his
    last-resort Kyber prekey.  Alice builds three sessions, using them in that
    order; then Bob deletes his session and the three initial messages come
    back: the one-time keys are gone (PreKeyAlreadyUsed), the last-resort
    session's base key is remembered (PreKeyReplayed)."""
    c.initiate("alice")                                   # S1: OPK 1, one-time Kyber
    p = [c.send("alice", f"p{i}") for i in range(2)]
    c.receive("bob", p[0], flip=len(c.messages[p[0]]) - 100,  # Kyber ciphertext
              expect="AuthenticationError")
    c.receive("bob", p[0], flip=len(c.messages[p[0]]) - 1600,  # inside the SignalMessage
              expect="AuthenticationError")
    c.receive("bob", p[0], expect="ok")
    c.receive("alice", c.send("bob", "r0"), expect="ok")
    c.initiate("alice")                                   # S2: no OPK, one-time Kyber
    q = c.send("alice", "q0")
    c.receive("bob", q, expect="ok")
    c.initiate("alice")                                   # S3: no OPK, last-resort Kyber
    r = c.send("alice", "r0")
    c.receive("bob", r, expect="ok")
    c.receive("alice", c.send("bob", "on S3"), expect="ok")
    c.receive("bob", c.send("alice", "S3 again"), expect="ok")
    c.receive("bob", p[1], expect="ok")                   # S1, late: current again at Bob
    c.delete_session("bob")
    c.receive("bob", p[0], expect="PreKeyAlreadyUsed")
    c.receive("bob", q, expect="PreKeyAlreadyUsed")
    c.receive("bob", r, expect="PreKeyReplayed")


def _byte_order_seed(name: str) -> bytes:
    """The first seed whose two base keys order one way as bytes and the
    other way as little-endian integers (so the tie-break is unambiguous)."""
    for i in range(1_000):
        seed = f"vectors/conversations/{name}/{i}".encode()
        a, b = (PrivateKey.generate(DeterministicRandom(seed + f"/{w}/session".encode())).public.public_bytes_raw()
                for w in ("alice", "bob"))
        if (a < b) != (int.from_bytes(a, "little") < int.from_bytes(b, "little")):
            return seed
    raise AssertionError("no seed found")


def gen_conversations() -> Json:
    scenarios: list[tuple[str, str, Profile, bool, RatchetLimits | None,
                          Callable[[Conversation], None]]] = [
        ("native-pqxdh-in-order", "PQXDH, messages delivered in order", NATIVE, False, None,
         _script_in_order),
        ("native-pqxdh-out-of-order", "skipped keys kept across DH steps, both directions",
         NATIVE, False, None, _script_out_of_order),
        ("native-header-encryption", "out of order with encrypted headers", NATIVE, True, None,
         _script_out_of_order),
        ("native-simultaneous-initiation", "both initiate at once and converge", NATIVE,
         False, None, _script_simultaneous),
        ("native-negative", "replayed, tampered, evicted and too-far-ahead messages",
         NATIVE, False, RatchetLimits(max_skip=3, max_stored_keys=2), _script_negative),
        ("libsignal_v3-in-order", "libsignal protocol v3, in order", LIBSIGNAL_V3, False, None,
         _script_in_order),
        ("libsignal_v3-out-of-order", "libsignal protocol v3, out of order", LIBSIGNAL_V3,
         False, None, _script_out_of_order),
    ]
    cases = []
    for name, description, profile, he, limits, script in scenarios:
        conversation = Conversation(name, description, profile, header_encryption=he,
                                    limits=limits)
        script(conversation)
        cases.append(conversation.finish())
    # Each window rule at its boundary, with and without header encryption
    # (plain X3DH: PQXDH is not the point here and would only add bytes).
    window: list[tuple[str, str, RatchetLimits, Callable[[Conversation], None]]] = [
        ("expiry-steps", "expire_after_steps 2: a chain's keys at the last step they live and "
         "the first step they are gone", RatchetLimits(expire_after_steps=2), _script_expiry_steps),
        ("expiry-time", "expire_after_seconds 100: a key at 99 and 100 seconds, then below "
         "the floor", RatchetLimits(expire_after_seconds=100), _script_expiry_time),
        ("chain-eviction", "max_receiving_chains 2, max_stored_keys 3: chains dropped oldest "
         "first, the forgotten list, key eviction across chains",
         RatchetLimits(max_receiving_chains=2, max_stored_keys=3, expire_after_steps=100),
         _script_chain_eviction),
        ("refusals", "max_skip 3, max_stored_keys 5: duplicates, tampering, too far ahead on "
         "the current and on a new chain, a given-up tail, eviction below the floor",
         RatchetLimits(max_skip=3, max_stored_keys=5), _script_refusals),
    ]
    for he in (False, True):
        for short, description, limits, script in window:
            name = f"native-{'header-encryption-' if he else ''}{short}"
            conversation = Conversation(name, description, NATIVE, header_encryption=he,
                                        limits=limits, pq=False)
            script(conversation)
            cases.append(conversation.finish())
    for he in (False, True):
        conversation = Conversation(
            f"native-{'header-encryption-' if he else ''}initial-messages",
            "late and changed initial messages, an archived session made current by its "
            "initial message, NoSession, PreKeyReplayed, PreKeyAlreadyUsed", NATIVE,
            header_encryption=he, pq=False, one_time_prekeys=1)
        _script_initial_messages(conversation)
        cases.append(conversation.finish())
    name = "native-simultaneous-byte-order"
    conversation = Conversation(
        name, "simultaneous initiation whose base keys order one way as bytes and the other "
        "as little-endian integers: the smaller as bytes wins", NATIVE, pq=False,
        seed=_byte_order_seed(name))
    _script_simultaneous(conversation)
    cases.append(conversation.finish())
    v4: list[tuple[str, str, int, Callable[[Conversation], None]]] = [
        ("libsignal_v4-in-order", "libsignal protocol v4 (Kyber1024 prekeys, no SPQR), in "
         "order", 3, _script_in_order),
        ("libsignal_v4-out-of-order", "libsignal protocol v4, out of order across DH steps, "
         "tampered copies refused on the way", 3, _script_out_of_order_tampered),
        ("libsignal_v4-kyber-prekeys", "libsignal protocol v4: one-time and last-resort "
         "Kyber prekeys, a tampered Kyber ciphertext, initial messages replayed after the "
         "session is deleted", 1, _script_kyber_prekeys),
    ]
    for name, description, one_time_prekeys, script in v4:
        conversation = Conversation(name, description, LIBSIGNAL_V4,
                                    one_time_prekeys=one_time_prekeys)
        script(conversation)
        cases.append(conversation.finish())
    return envelope("conversation", "whole conversations, every message's bytes", cases)


# --- safety_numbers.json, sealed_boxes.json, backups.json ----------------------------


def gen_safety_numbers() -> Json:
    rng = DeterministicRandom(b"vectors/safety")
    cases = []
    for iterations, version in ((5_200, 2), (5_200, 1), (1_024, 2)):
        a, b = IdentityKeyPair.generate(rng).public, IdentityKeyPair.generate(rng).public
        a_id, b_id = rng.random_bytes(16), b"+14155550123"
        number = SafetyNumber.compute(a, a_id, b, b_id, iterations=iterations, version=version)
        cases.append({"iterations": iterations, "version": version,
                      "local_key": a.encode(LIBSIGNAL_V3).hex(), "local_id": a_id.hex(),
                      "remote_key": b.encode(LIBSIGNAL_V3).hex(), "remote_id": b_id.hex(),
                      "displayable": number.displayable, "scannable": number.scannable.hex()})
    return envelope("safety_number", "safety numbers as libsignal computes them", cases)


def _extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    """LabeledExtract (RFC 9180 section 4) with HKDF-SHA256."""
    return hmac_sha256(salt or bytes(32), b"HPKE-v1" + suite_id + label + ikm)


def _expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    """LabeledExpand (RFC 9180 section 4) with HKDF-SHA256."""
    labeled = length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info
    return hkdf_expand(prk, info=labeled, length=length)


def seal_deterministic(suite: SealedBoxSuite, public: bytes, plaintext: bytes,
                       eseed: bytes) -> bytes:
    """RFC 9180 SealBase with the encapsulation randomness given (``eseed``),
    so that sealed-box vectors can be rebuilt byte for byte."""
    if suite is SealedBoxSuite.X25519:
        ephemeral = PrivateKey.from_private_bytes(eseed[:32])  # DHKEM's skE
        enc = ephemeral.public.public_bytes_raw()
        dh = ephemeral.exchange(PublicKey.from_public_bytes(public))
        kem_suite = b"KEM\x00\x20"
        shared = _expand(kem_suite, _extract(kem_suite, b"", b"eae_prk", dh), b"shared_secret",
                         enc + public, 32)
        kem_id, aead_id = b"\x00\x20", b"\x00\x02"
    else:  # X-Wing EncapsulateDerand: eseed = ML-KEM m (32) || X25519 ephemeral (32)
        ct_m, ss_m = encaps_internal(public[:1184], eseed[:32], "ML-KEM-768")
        ephemeral = PrivateKey.from_private_bytes(eseed[32:64])
        ct_x, pk_x = ephemeral.public.public_bytes_raw(), public[1184:]
        ss_x = ephemeral.exchange(PublicKey.from_public_bytes(pk_x))
        shared = hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + b"\\.//^\\").digest()
        enc, kem_id, aead_id = ct_m + ct_x, b"\x64\x7a", b"\x00\x03"
    suite_id = b"HPKE" + kem_id + b"\x00\x01" + aead_id
    context = (b"\x00" + _extract(suite_id, b"", b"psk_id_hash", b"")
               + _extract(suite_id, b"", b"info_hash", _info(suite, public)))
    secret = _extract(suite_id, shared, b"secret", b"")
    key = _expand(suite_id, secret, b"key", context, 32)
    nonce = _expand(suite_id, secret, b"base_nonce", context, 12)
    seal = aes256_gcm_encrypt if suite is SealedBoxSuite.X25519 else chacha20_poly1305_encrypt
    ciphertext = seal(key, nonce, plaintext, b"")
    return bytes((0x62, 1, suite)) + enc + len(ciphertext).to_bytes(4, "big") + ciphertext


def gen_sealed_boxes() -> Json:
    rng = DeterministicRandom(b"vectors/sealed")
    cases = []
    for suite in SealedBoxSuite:
        for plaintext in (b"", b"anonymous tip", bytes(range(256)) * 3):
            seed, eseed = rng.random_bytes(32), rng.random_bytes(64)
            recipient = HpkePrivate(suite.hpke, seed)
            cases.append({"suite": suite.name, "recipient_seed": seed.hex(),
                          "recipient_public": recipient.public.public_bytes_raw().hex(),
                          "encapsulation_randomness": eseed.hex(),
                          "plaintext": plaintext.hex(),
                          "box": seal_deterministic(suite, recipient.public.public_bytes_raw(), plaintext,
                                                    eseed).hex()})
    return envelope("sealed_box", "sealed boxes to open (HPKE base mode, single shot)", cases)


def gen_backups() -> Json:
    conversation = Conversation("backup", "", NATIVE)
    _script_in_order(conversation)
    bob = conversation.parties["bob"]
    cases = []
    for params, include in ((BackupParams(iterations=1, lanes=1, memory_kib=64), True),
                            (BackupParams(), False)):
        rng = RecordingRandom(b"vectors/backup" + bytes([include]))
        blob = create_backup(bob.identity, bob.store, "correct horse battery staple",
                             rng=rng, include_sessions=include, params=params)
        salt, nonce = rng.draws
        password = b"correct horse battery staple"
        derived = argon2id(password, salt, length=64, iterations=params.iterations,
                           lanes=params.lanes, memory_kib=params.memory_kib)
        key = derived[:32]
        ciphertext = blob[2 + 12 + 16 + 32 + 12 + 4:-16]
        head = blob[:2 + 12 + 16 + 32 + 12 + 4]
        cases.append({"params": {"iterations": params.iterations, "lanes": params.lanes,
                                 "memory_kib": params.memory_kib},
                      "salt": salt.hex(), "nonce": nonce.hex(),
                      "identity_seed": bob.identity.seed().hex(),
                      "argon2id_output": derived.hex(),
                      "contents": aes256_gcm_decrypt(key, nonce, ciphertext, head).hex(),
                      "password": "correct horse battery staple", "backup": blob.hex(),
                      "identity_public": bob.identity.public.public_bytes_raw().hex(),
                      "identities": {a: k.public_bytes_raw().hex() for a, k in
                                     ((a, bob.store.get_identity(a))
                                      for a in bob.store.identity_addresses()) if k},
                      "sessions": ({a: (record_bytes(bob.store, a) or b"").hex()
                                    for a in bob.store.session_addresses()} if include else {}),
                      "prekey_ring": (ring_bytes(bob.store, bob.identity) or b"").hex()})
    return envelope("backup", "password-protected backups to restore", cases)


def gen_spqr() -> Json:
    """spqr.json, built in vectorgen/spqr.py (which builds on this module)."""
    from vectorgen.spqr import gen_spqr as build
    return build()


GENERATORS: dict[str, Callable[[], Json]] = {
    "kdf.json": gen_kdf,
    "x3dh.json": gen_x3dh,
    "conversations.json": gen_conversations,
    "safety_numbers.json": gen_safety_numbers,
    "sealed_boxes.json": gen_sealed_boxes,
    "backups.json": gen_backups,
    "spqr.json": gen_spqr,
    "sender_keys.json": gen_sender_keys,
    "sealed_sender.json": gen_sealed_sender,
    "provisioning.json": gen_provisioning,
}
