"""Adapters that make the peer libraries do the same work as signalish's figures.

Installed by the ``bench`` extra: Syndace's DoubleRatchet and X3DH 1.3.0, and
python-axolotl 0.2.3 (which needs protobuf < 4).  Each adapter returns
callables timed exactly like signalish's: ``handshake()`` (both sides of one
key agreement), ``one_way()`` (one message encrypted and decrypted, no DH
step) and ``alternating()`` (each message answers the last, so a DH step).
A peer that is not installed is reported as missing, never faked.

Syndace's X3DH has two states, and its handshake cost depends on which:
``handshake`` times ``x3dh.State`` with its default pool of 100 prekeys
(after each passive agreement it deletes the used prekey, refills the pool
and republishes the bundle, which recomputes every prekey's public key), and
``handshake_base_state`` times ``x3dh.BaseState`` holding one prekey (the
agreement alone, prekey management left to the application, as signalish's
``respond`` leaves consumption to ``PreKeyRing.consume``).

Notes on fairness: Syndace's API is asynchronous, so its loops run inside
one coroutine (no event-loop round trip per call) and its messages are
passed as objects (it has no wire format of its own); python-axolotl
serializes and parses its protobuf messages, as signalish does its bytes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

Timed = Callable[[int], float]  # runs n iterations, returns seconds


def syndace() -> dict[str, Timed] | str:
    try:
        import doubleratchet
        import x3dh
        from doubleratchet.recommended import (
            HashFunction,
            aead_aes_hmac,
            diffie_hellman_ratchet_curve25519,
            kdf_hkdf,
            kdf_separate_hmacs,
        )
    except ImportError as error:
        return f"not installed ({error.name})"

    class Aead(aead_aes_hmac.AEAD):
        @staticmethod
        def _get_hash_function() -> Any:
            return HashFunction.SHA_256

        @staticmethod
        def _get_info() -> bytes:
            return b"bench message keys"

    class RootKdf(kdf_hkdf.KDF):
        @staticmethod
        def _get_hash_function() -> Any:
            return HashFunction.SHA_256

        @staticmethod
        def _get_info() -> bytes:
            return b"bench root chain"

    class ChainKdf(kdf_separate_hmacs.KDF):
        @staticmethod
        def _get_hash_function() -> Any:
            return HashFunction.SHA_256

    class Ratchet(doubleratchet.DoubleRatchet):
        @staticmethod
        def _build_associated_data(associated_data: bytes, header: Any) -> bytes:
            return (associated_data + header.ratchet_pub
                    + header.sending_chain_length.to_bytes(8, "big")
                    + header.previous_sending_chain_length.to_bytes(8, "big"))

    class State(x3dh.State):
        def _publish_bundle(self, bundle: Any) -> None:
            pass

        @staticmethod
        def _encode_public_key(key_format: Any, pub: bytes) -> bytes:
            return pub

    class BaseState(x3dh.BaseState):
        @staticmethod
        def _encode_public_key(key_format: Any, pub: bytes) -> bytes:
            return pub

    config = dict(diffie_hellman_ratchet_class=diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet,
                  root_chain_kdf=RootKdf, message_chain_kdf=ChainKdf,
                  message_chain_constant=b"\x01\x02", dos_protection_threshold=100,
                  max_num_skipped_message_keys=1000, aead=Aead)

    def new_state() -> Any:
        # 100 prekeys and no refill during a run: a refill republishes (re-signs)
        # the bundle, publishing work that is not part of a handshake.
        return State.create(x3dh.IdentityKeyFormat.CURVE_25519, x3dh.HashFunction.SHA_256,
                            b"bench", pre_key_refill_threshold=1, pre_key_refill_target=100)

    async def pair() -> tuple[Any, Any]:
        bob_ratchet = diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet._generate_priv()
        bob_pub = diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet._derive_pub(bob_ratchet)
        secret = b"s" * 32
        alice, first = await Ratchet.encrypt_initial_message(
            shared_secret=secret, recipient_ratchet_pub=bob_pub, message=b"hi",
            associated_data=b"ad", **config)
        bob, _ = await Ratchet.decrypt_initial_message(
            shared_secret=secret, own_ratchet_priv=bob_ratchet, message=first,
            associated_data=b"ad", **config)
        return alice, bob

    def new_base_state() -> Any:
        # One prekey, never deleted: BaseState leaves prekey management to the
        # application, so each handshake below is the key agreement alone.
        state = BaseState.create(x3dh.IdentityKeyFormat.CURVE_25519, x3dh.HashFunction.SHA_256,
                                 b"bench")
        state.generate_pre_keys(1)
        return state

    def run(body: Callable[[int], Any]) -> Timed:
        def timed(n: int) -> float:
            return asyncio.run(body(n))
        return timed

    async def handshakes(n: int) -> float:
        # Building the bundle (Syndace re-signs it on every access) is Bob's
        # publishing work, done once in real use: it stays outside the timing.
        alice, bob = new_state(), new_state()
        total = 0.0
        for _ in range(min(n, 90)):  # one prekey each, 100 available
            bundle = bob.bundle
            start = time.perf_counter()
            _, _, header = await alice.get_shared_secret_active(bundle)
            await bob.get_shared_secret_passive(header)
            total += time.perf_counter() - start
        return total * n / min(n, 90)

    async def handshakes_base_state(n: int) -> float:
        alice, bob = new_base_state(), new_base_state()
        bundle = bob.bundle  # built once, outside the timing, as above
        start = time.perf_counter()
        for _ in range(n):
            _, _, header = await alice.get_shared_secret_active(bundle)
            await bob.get_shared_secret_passive(header)
        return time.perf_counter() - start

    async def one_way(n: int) -> float:
        alice, bob = await pair()
        start = time.perf_counter()
        for _ in range(n):
            await bob.decrypt_message(await alice.encrypt_message(b"x" * 64, b"ad"), b"ad")
        return time.perf_counter() - start

    async def alternating(n: int) -> float:
        alice, bob = await pair()
        start = time.perf_counter()
        for i in range(n):
            sender, receiver = (alice, bob) if i % 2 == 0 else (bob, alice)
            await receiver.decrypt_message(await sender.encrypt_message(b"x" * 64, b"ad"), b"ad")
        return time.perf_counter() - start

    # The level an application stands at: each party's state is loaded before
    # every call and saved after it (Syndace's JSON form, as text in a dict),
    # as signalish's SessionManager does with its store.
    async def persisted(n: int, alternate: bool) -> float:
        alice, bob = await pair()
        saved = {"a": json.dumps(alice.json), "b": json.dumps(bob.json)}
        start = time.perf_counter()
        for i in range(n):
            sender, receiver = ("b", "a") if alternate and i % 2 else ("a", "b")
            party = Ratchet.from_json(json.loads(saved[sender]), **config)
            message = await party.encrypt_message(b"x" * 64, b"ad")
            saved[sender] = json.dumps(party.json)
            party = Ratchet.from_json(json.loads(saved[receiver]), **config)
            await party.decrypt_message(message, b"ad")
            saved[receiver] = json.dumps(party.json)
        return time.perf_counter() - start

    async def one_way_persisted(n: int) -> float:
        return await persisted(n, alternate=False)

    async def alternating_persisted(n: int) -> float:
        return await persisted(n, alternate=True)

    return {"handshake": run(handshakes), "handshake_base_state": run(handshakes_base_state),
            "one_way": run(one_way), "alternating": run(alternating),
            "one_way_persisted": run(one_way_persisted),
            "alternating_persisted": run(alternating_persisted)}


def axolotl() -> dict[str, Timed] | str:
    try:
        from axolotl.ecc.curve import Curve
        from axolotl.protocol.prekeywhispermessage import PreKeyWhisperMessage
        from axolotl.protocol.whispermessage import WhisperMessage
        from axolotl.sessionbuilder import SessionBuilder
        from axolotl.sessioncipher import SessionCipher
        from axolotl.state.prekeybundle import PreKeyBundle
        from axolotl.state.prekeyrecord import PreKeyRecord
        from axolotl.state.signedprekeyrecord import SignedPreKeyRecord
        from axolotl.tests.inmemoryaxolotlstore import InMemoryAxolotlStore
    except Exception as error:  # noqa: BLE001 - e.g. protobuf >= 4 breaks its imports
        return f"not usable ({type(error).__name__}: {str(error)[:60]})"

    def store() -> Any:
        return InMemoryAxolotlStore()

    def session() -> tuple[Any, Any, Any, Any]:
        """A fresh pair: Alice built from Bob's bundle, Bob answered her first message."""
        alice_store, bob_store = store(), store()
        pre, signed = Curve.generateKeyPair(), Curve.generateKeyPair()
        signature = Curve.calculateSignature(bob_store.getIdentityKeyPair().getPrivateKey(),
                                             signed.getPublicKey().serialize())
        bob_store.storePreKey(31337, PreKeyRecord(31337, pre))
        bob_store.storeSignedPreKey(22, SignedPreKeyRecord(22, 0, signed, signature))
        bundle = PreKeyBundle(bob_store.getLocalRegistrationId(), 1, 31337, pre.getPublicKey(),
                              22, signed.getPublicKey(), signature,
                              bob_store.getIdentityKeyPair().getPublicKey())
        SessionBuilder(alice_store, alice_store, alice_store, alice_store, "bob", 1) \
            .processPreKeyBundle(bundle)
        alice = SessionCipher(alice_store, alice_store, alice_store, alice_store, "bob", 1)
        bob = SessionCipher(bob_store, bob_store, bob_store, bob_store, "alice", 1)
        first = alice.encrypt(b"hi")
        bob.decryptPkmsg(PreKeyWhisperMessage(serialized=first.serialize()))
        alice.decryptMsg(WhisperMessage(serialized=bob.encrypt(b"hello").serialize()))
        return alice_store, bob_store, alice, bob

    def handshakes(n: int) -> float:
        total = 0.0
        for _ in range(n):
            start = time.perf_counter()
            session()
            total += time.perf_counter() - start
        return total

    def one_way(n: int) -> float:
        _, _, alice, bob = session()
        start = time.perf_counter()
        for _ in range(n):
            bob.decryptMsg(WhisperMessage(serialized=alice.encrypt(b"x" * 64).serialize()))
        return time.perf_counter() - start

    def alternating(n: int) -> float:
        _, _, alice, bob = session()
        start = time.perf_counter()
        for i in range(n):
            sender, receiver = (alice, bob) if i % 2 == 0 else (bob, alice)
            receiver.decryptMsg(WhisperMessage(serialized=sender.encrypt(b"x" * 64).serialize()))
        return time.perf_counter() - start

    return {"handshake": handshakes, "one_way": one_way, "alternating": alternating}
