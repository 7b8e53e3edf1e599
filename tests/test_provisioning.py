"""Linking a new device by QR code (signalish/_provisioning.py, docs/linking.md).

The known answers come from a reference written in this file from
docs/linking.md on pyca ``cryptography``, ``struct`` and ``urllib`` directly,
sharing no code with signalish: the QR string, the ProvisioningData bytes and
the whole envelope must equal it byte for byte.  :func:`provisioning_vector_cases`
computes the vector cases (inputs and outputs) from that reference alone, for
a vectors/provisioning.json.

The rest is hostile input: every truncation and bit flip of an envelope and of
the data, wrong versions and tags, another key, another provisioning id,
swapped fields, oversize lengths, malformed QR strings, and Hypothesis over
all of them.  A failed open must leave the request exactly as it was.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import UUID

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st

from signalish import NATIVE, MemoryStore, SessionManager
from signalish._errors import (
    AuthenticationError,
    DecodeError,
    InvalidArgument,
    InvalidEncoding,
    InvalidKey,
    InvalidLength,
    RemoteError,
    TrailingBytes,
    TruncatedInput,
    UnexpectedType,
    UnknownVersion,
)
from signalish._keys import IdentityKeyPair
from signalish._prekeys import PreKeyRing
from signalish._primitives import DeterministicRandom, PrivateKey
from signalish._provisioning import (
    MAX_EXTRA,
    LinkRequest,
    LinkTarget,
    ProvisioningData,
    parse_link_qr,
    seal_provisioning,
)
from sessions import make_party

DOC = Path(__file__).resolve().parent.parent / "docs" / "linking.md"
P = 2**255 - 19

# --- the reference, from docs/linking.md ---------------------------------------

INFO = b"signalish provisioning envelope v1"
# docs/linking.md: the largest ProvisioningData and the largest ciphertext.
MAX_DATA_SIZE = 66_186
MAX_CIPHERTEXT = MAX_DATA_SIZE + 16


class FixedRandom:
    """A random source that hands out given byte strings, in order."""

    def __init__(self, chunks: Sequence[bytes]) -> None:
        self.chunks = list(chunks)

    def random_bytes(self, n: int, /) -> bytes:
        chunk = self.chunks.pop(0)
        assert len(chunk) == n, (len(chunk), n)
        return chunk


def ed25519_seed(label: bytes, sign_bit: int = 0) -> bytes:
    """The first SHA-256(label || i) whose Ed25519 public key has the given sign bit."""
    for i in range(256):
        seed = hashlib.sha256(label + bytes((i,))).digest()
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
        if public[31] >> 7 == sign_bit:
            return seed
    raise AssertionError("no seed")


def x25519_public(private: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def ref_field(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def ref_data(*, seed: bytes, aci: bytes, code: bytes, pni: bytes | None = None,
             pni_seed: bytes | None = None, number: bytes | None = None,
             name: bytes | None = None, device_id: int | None = None, extra: bytes = b"",
             flag: int = 1, version: int = 1) -> bytes:
    """ProvisioningData as docs/linking.md lays it out."""
    out = bytes((0xA0, version)) + seed + aci
    out += bytes((flag,)) + pni + pni_seed if pni is not None and pni_seed is not None else b"\x00"
    out += b"\x01" + ref_field(number) if number is not None else b"\x00"
    out += b"\x01" + ref_field(name) if name is not None else b"\x00"
    out += ref_field(code)
    out += b"\x01" + struct.pack(">I", device_id) if device_id is not None else b"\x00"
    return out + ref_field(extra)


def ref_envelope(request_private: bytes, ephemeral_private: bytes, provisioning_id: bytes,
                 plaintext: bytes) -> bytes:
    """The envelope as docs/linking.md defines it."""
    ephemeral = X25519PrivateKey.from_private_bytes(ephemeral_private)
    request_public = x25519_public(request_private)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(request_public))
    okm = HKDF(SHA256(), 44, salt=None, info=INFO).derive(shared)
    header = b"\xa1\x01" + ephemeral.public_key().public_bytes_raw()
    ciphertext = AESGCM(okm[:32]).encrypt(okm[32:], plaintext,
                                          header + request_public + provisioning_id)
    return header + struct.pack(">I", len(ciphertext)) + ciphertext


def ref_qr(provisioning_id: str, request_public: bytes) -> str:
    key = quote(base64.b64encode(b"\x05" + request_public).decode(), safe="")
    return f"signalish://linkdevice?uuid={provisioning_id}&pub_key={key}&v=1"


def ref_v4(random16: bytes) -> str:
    """RFC 9562 version 4: version nibble 4, variant bits 10."""
    b = bytearray(random16)
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def provisioning_vector_cases() -> list[dict[str, Any]]:
    """The cases for a vectors/provisioning.json, computed by the reference only.

    Each case: the request's private key and the 16 random bytes its id is made
    from (or a given id), the ephemeral private key the sender draws, the data
    fields; then the request's public key, the QR string, the data bytes and
    the envelope.  ``fails_under`` lists provisioning ids under which the same
    key must refuse the envelope (AuthenticationError).
    """
    def h(label: str) -> bytes:
        return hashlib.sha256(b"signalish provisioning vectors " + label.encode()).digest()

    def show(field: str, value: Any) -> Any:
        if field == "pni":
            return str(UUID(bytes=value))
        if field in ("code", "number", "name"):
            return value.decode()
        return value.hex() if isinstance(value, bytes) else value

    cases: list[dict[str, Any]] = []
    specs: list[tuple[str, dict[str, Any], str | None]] = [
        ("minimal", {"code": b"123456"}, None),
        ("full", {"pni": h("pni")[:16], "pni_seed": ed25519_seed(b"pni identity"),
                  "number": b"+14155550123", "name": "Zoë's laptop".encode(),
                  "device_id": 2, "code": b"AbC-0123_xyz~", "extra": h("extra") * 3},
         None),
        ("server-issued-id", {"code": b"k", "device_id": 0xFFFFFFFF, "extra": b""},
         "00112233-4455-6677-8899-aabbccddeeff"),
    ]
    for name, fields, given_id in specs:
        request_private, random16, ephemeral = h(name + " request"), h(name + " id")[:16], \
            h(name + " ephemeral")
        provisioning_id = given_id or ref_v4(random16)
        seed, aci = ed25519_seed(name.encode() + b" identity"), h(name + " aci")[:16]
        data = ref_data(seed=seed, aci=aci, **fields)
        envelope = ref_envelope(request_private, ephemeral, UUID(provisioning_id).bytes, data)
        cases.append({
            "name": name,
            "request_private": request_private.hex(),
            "id_random": None if given_id else random16.hex(),
            "provisioning_id": provisioning_id,
            "ephemeral_private": ephemeral.hex(),
            "data": {"identity_seed": seed.hex(), "aci": str(UUID(bytes=aci)),
                     **{k: show(k, v) for k, v in fields.items()}},
            "request_public": x25519_public(request_private).hex(),
            "qr_text": ref_qr(provisioning_id, x25519_public(request_private)),
            "data_bytes": data.hex(),
            "envelope": envelope.hex(),
            "fails_under": [str(UUID(int=UUID(provisioning_id).int ^ 1))],
        })
    return cases


def data_from_case(fields: dict[str, Any]) -> ProvisioningData:
    b = bytes.fromhex
    return ProvisioningData(
        IdentityKeyPair.from_seed(b(fields["identity_seed"])), UUID(fields["aci"]),
        fields["code"], pni=UUID(fields["pni"]) if "pni" in fields else None,
        pni_identity=IdentityKeyPair.from_seed(b(fields["pni_seed"])) if "pni_seed" in fields
        else None,
        number=fields.get("number"), account_name=fields.get("name"),
        device_id=fields.get("device_id"), extra=b(fields.get("extra", "")))


CASES = provisioning_vector_cases()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_known_answers_from_the_reference(case: dict[str, Any]) -> None:
    b = bytes.fromhex
    if case["id_random"] is not None:
        chunks = [b(case["request_private"]), b(case["id_random"])]
        request = LinkRequest.create(FixedRandom(chunks))
    else:
        request = LinkRequest.create(FixedRandom([b(case["request_private"])]),
                                     provisioning_id=UUID(case["provisioning_id"]))
    assert str(request.provisioning_id) == case["provisioning_id"]
    assert request.target.public_key.public_bytes_raw().hex() == case["request_public"]
    assert request.qr_text() == case["qr_text"]
    target = parse_link_qr(case["qr_text"])
    assert target == request.target
    data = data_from_case(case["data"])
    assert data.to_bytes().hex() == case["data_bytes"]
    assert ProvisioningData.from_bytes(b(case["data_bytes"])) == data
    envelope = seal_provisioning(target, data, FixedRandom([b(case["ephemeral_private"])]))
    assert envelope.hex() == case["envelope"]
    for other in case["fails_under"]:
        twin = LinkRequest(PrivateKey.from_private_bytes(b(case["request_private"])), UUID(other))
        with pytest.raises(AuthenticationError):
            twin.open(envelope)
    assert request.open(b(case["envelope"])) == data


def test_the_docs_state_the_constants_the_module_uses() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for text in (INFO.decode(), "0xA0", "0xA1", "66,186", "66,202", "signalish://linkdevice?"):
        assert text in doc, text
    biggest = ProvisioningData(
        IdentityKeyPair.generate(DeterministicRandom(b"max")), UUID(int=1), "~" * 256,
        pni=UUID(int=2), pni_identity=IdentityKeyPair.generate(DeterministicRandom(b"pni")),
        number="+" + "9" * 15, account_name="n" * 256, device_id=7, extra=bytes(MAX_EXTRA))
    assert len(biggest.to_bytes()) == MAX_DATA_SIZE
    request = LinkRequest.create(DeterministicRandom(b"max request"))
    envelope = seal_provisioning(request.target, biggest, DeterministicRandom(b"e"))
    assert request.open(envelope) == biggest


# --- fixtures ------------------------------------------------------------------------


def sample_data(label: bytes = b"alice", **overrides: Any) -> ProvisioningData:
    rng = DeterministicRandom(b"data " + label)
    fields: dict[str, Any] = dict(
        identity=IdentityKeyPair.generate(rng), aci=UUID(bytes=rng.random_bytes(16)),
        provisioning_code="s3cret-code", number="+14155550123", account_name="alice",
        device_id=3, extra=b"profile key " + rng.random_bytes(32))
    fields.update(overrides)
    return ProvisioningData(**fields)


def fresh(label: bytes = b"new device") -> LinkRequest:
    return LinkRequest.create(DeterministicRandom(b"request " + label))


def sealed(request: LinkRequest, data: ProvisioningData | None = None,
           label: bytes = b"sender") -> bytes:
    return seal_provisioning(parse_link_qr(request.qr_text()), data or sample_data(),
                             DeterministicRandom(label))


def assert_unchanged(request: LinkRequest, before: str, envelope: bytes,
                     data: ProvisioningData) -> None:
    assert not request.used and repr(request) == before
    assert request.open(envelope) == data


# --- round trips and single use ---------------------------------------------------


def test_link_round_trip_and_single_use() -> None:
    request, data = fresh(), sample_data()
    envelope = sealed(request, data)
    assert not request.used
    assert request.open(envelope) == data
    assert request.used and "used" in repr(request)
    with pytest.raises(InvalidArgument):
        request.open(envelope)
    with pytest.raises(InvalidArgument):
        request.open(sealed(request, data, b"another sender"))


def test_the_new_device_publishes_its_own_prekeys_and_talks() -> None:
    primary = make_party("primary", b"link")
    request = fresh(b"laptop")
    data = sample_data(identity=primary.identity, device_id=2)
    received = request.open(sealed(request, data))
    assert received.identity.public == primary.identity.public
    ring = PreKeyRing.create(received.identity, NATIVE, DeterministicRandom(b"laptop ring"),
                             now=0, device_id=received.device_id or 1)
    bundle = ring.issue_bundle()
    assert bundle.device_id == 2 and bundle.identity_key == primary.identity.public
    bundle.verify(NATIVE)
    laptop = SessionManager(received.identity, MemoryStore(), NATIVE,
                            rng=DeterministicRandom(b"laptop"))
    bob = make_party("bob", b"link")
    with laptop.prekeys(now=0) as laptop_ring:
        laptop_bundle = laptop_ring.issue_bundle()
    bob.manager.initiate("alice.2", laptop_bundle)
    message = bob.manager.encrypt("alice.2", b"hi laptop")
    assert laptop.decrypt("bob", message, now=1) == b"hi laptop"
    assert bob.manager.decrypt("alice.2", laptop.encrypt("bob", b"hi bob"), now=2) == b"hi bob"


def test_minimal_data_and_pni() -> None:
    rng = DeterministicRandom(b"pni")
    minimal = ProvisioningData(IdentityKeyPair.generate(rng), UUID(int=9), "1")
    with_pni = ProvisioningData(IdentityKeyPair.generate(rng), UUID(int=9), "1", pni=UUID(int=10),
                                pni_identity=IdentityKeyPair.generate(rng))
    for data in (minimal, with_pni):
        request = fresh(data.to_bytes()[:8])
        assert request.open(sealed(request, data)) == data
    assert minimal != with_pni and minimal != "not data"


ids = st.uuids()
identities = st.binary(min_size=8, max_size=8).map(
    lambda s: IdentityKeyPair.generate(DeterministicRandom(s)))
codes = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
names = st.text(min_size=1, max_size=60)


@st.composite
def provisioning_data(draw: st.DrawFn) -> ProvisioningData:
    pni = draw(st.none() | ids)
    return ProvisioningData(
        draw(identities), draw(ids), draw(codes), pni=pni,
        pni_identity=None if pni is None else draw(identities),
        number=draw(st.none() | st.from_regex(r"\+[1-9][0-9]{1,14}", fullmatch=True)),
        account_name=draw(st.none() | names),
        device_id=draw(st.none() | st.integers(1, 2**32 - 1)),
        extra=draw(st.binary(max_size=200)))


@given(provisioning_data(), st.binary(min_size=4, max_size=4), ids)
def test_any_data_round_trips_through_any_request(data: ProvisioningData, seed: bytes,
                                                  provisioning_id: UUID) -> None:
    assert ProvisioningData.from_bytes(data.to_bytes()) == data
    request = LinkRequest.create(DeterministicRandom(seed), provisioning_id=provisioning_id)
    assert parse_link_qr(request.qr_text()) == request.target
    assert request.open(seal_provisioning(request.target, data, DeterministicRandom(seed))) == data


@given(provisioning_data())
def test_every_truncation_of_the_data_is_refused(data: ProvisioningData) -> None:
    encoded = data.to_bytes()
    for cut in range(len(encoded)):
        with pytest.raises(DecodeError):
            ProvisioningData.from_bytes(encoded[:cut])
    with pytest.raises(TrailingBytes):
        ProvisioningData.from_bytes(encoded + b"\x00")


# --- hostile envelopes ----------------------------------------------------------------


def test_every_truncation_and_bit_flip_of_an_envelope_is_refused() -> None:
    request, data = fresh(), sample_data(extra=b"")
    envelope = sealed(request, data)
    before = repr(request)
    for cut in range(len(envelope)):
        with pytest.raises(DecodeError):
            request.open(envelope[:cut])
    for tail in (b"\x00", b"\xff" * 3):
        with pytest.raises(TrailingBytes):
            request.open(envelope + tail)
    for i in range(len(envelope)):
        for bit in range(8):
            flipped = bytearray(envelope)
            flipped[i] ^= 1 << bit
            with pytest.raises((DecodeError, InvalidKey, AuthenticationError)):
                request.open(bytes(flipped))
    assert_unchanged(request, before, envelope, data)


@pytest.mark.parametrize("position,value,error", [
    (0, 0xA0, UnexpectedType), (0, 0x62, UnexpectedType), (0, 0x00, UnexpectedType),
    (1, 0x00, UnknownVersion), (1, 0x02, UnknownVersion), (1, 0xFF, UnknownVersion),
], ids=["data-tag", "sealed-box-tag", "zero-tag", "version-0", "version-2", "version-255"])
def test_wrong_tags_and_versions(position: int, value: int, error: type[Exception]) -> None:
    request, data = fresh(), sample_data()
    envelope, before = sealed(request, data), repr(request)
    changed = bytearray(envelope)
    changed[position] = value
    with pytest.raises(error):
        request.open(bytes(changed))
    assert_unchanged(request, before, envelope, data)


def test_another_key_and_another_request_with_the_same_key_are_refused() -> None:
    data = sample_data()
    key = DeterministicRandom(b"shared key").random_bytes(32)
    first = LinkRequest(PrivateKey.from_private_bytes(key), UUID(int=1))
    second = LinkRequest(PrivateKey.from_private_bytes(key), UUID(int=2))
    stranger = fresh(b"stranger")
    envelope = sealed(first, data)
    for other in (second, stranger):
        with pytest.raises(AuthenticationError):
            other.open(envelope)
        assert not other.used
    # Sealed to a target that names another id (a tampered QR code) under the right key.
    wrong_id = seal_provisioning(LinkTarget(UUID(int=2), first.target.public_key), data,
                                 DeterministicRandom(b"x"))
    with pytest.raises(AuthenticationError):
        first.open(wrong_id)
    assert first.open(envelope) == data


def test_swapped_and_substituted_fields_are_refused() -> None:
    request, data = fresh(), sample_data()
    one, two = sealed(request, data, b"one"), sealed(request, data, b"two")
    before = repr(request)
    header, body = 34, slice(34, None)
    for forged in (one[:header] + two[body], two[:header] + one[body],
                   # the request's own public key as the ephemeral key
                   one[:2] + request.target.public_key.public_bytes_raw() + one[body]):
        with pytest.raises(AuthenticationError):
            request.open(forged)
    # An authentic ProvisioningData where an envelope is expected.
    with pytest.raises(UnexpectedType):
        request.open(data.to_bytes())
    assert_unchanged(request, before, one, data)


@pytest.mark.parametrize("u,error", [
    (0, InvalidKey), (1, InvalidKey), (P - 1, InvalidKey), (P, InvalidKey),
    (2**255 + 9, InvalidKey),
], ids=["zero", "one", "p-1", "p", "above-p"])
def test_unacceptable_ephemeral_keys(u: int, error: type[Exception]) -> None:
    request, data = fresh(), sample_data()
    envelope, before = sealed(request, data), repr(request)
    forged = envelope[:2] + (u % 2**256).to_bytes(32, "little") + envelope[34:]
    with pytest.raises(error):
        request.open(forged)
    assert_unchanged(request, before, envelope, data)


@pytest.mark.parametrize("length,body,error", [
    (0xFFFFFFFF, b"", InvalidLength),
    (MAX_CIPHERTEXT + 1, bytes(MAX_CIPHERTEXT + 1), InvalidLength),
    (MAX_CIPHERTEXT, bytes(100), TruncatedInput),
    (15, bytes(15), InvalidLength),
    (0, b"", InvalidLength),
], ids=["u32-max", "one-over-max", "max-but-short", "shorter-than-tag", "empty"])
def test_oversize_and_undersize_lengths(length: int, body: bytes, error: type[Exception]) -> None:
    request, data = fresh(), sample_data()
    envelope, before = sealed(request, data), repr(request)
    with pytest.raises(error):
        request.open(envelope[:34] + struct.pack(">I", length) + body)
    assert_unchanged(request, before, envelope, data)


def test_an_authentic_envelope_with_malformed_data_is_refused() -> None:
    private = DeterministicRandom(b"malformed").random_bytes(32)
    request = LinkRequest(PrivateKey.from_private_bytes(private), UUID(int=77))
    seed = ed25519_seed(b"m")
    good = ref_data(seed=seed, aci=bytes(16), code=b"c")
    cases: list[tuple[bytes, type[Exception]]] = [
        (b"", TruncatedInput), (b"garbage", UnexpectedType), (good + b"\x00", TrailingBytes),
        (ref_data(seed=seed, aci=bytes(16), code=b"c", version=2), UnknownVersion),
        (ref_data(seed=ed25519_seed(b"m", 1), aci=bytes(16), code=b"c"), InvalidEncoding),
    ]
    for plaintext, error in cases:
        envelope = ref_envelope(private, DeterministicRandom(plaintext).random_bytes(32),
                                UUID(int=77).bytes, plaintext)
        with pytest.raises(error):
            request.open(envelope)
        assert not request.used
    envelope = ref_envelope(private, bytes(range(32)), UUID(int=77).bytes, good)
    assert request.open(envelope).provisioning_code == "c"


@given(st.binary(max_size=300) | st.binary(max_size=300).map(lambda b: b"\xa1\x01" + b))
def test_random_bytes_never_open_and_change_nothing(blob: bytes) -> None:
    request = fresh(b"random")
    before = repr(request)
    with pytest.raises((DecodeError, InvalidKey, AuthenticationError)):
        request.open(blob)
    assert not request.used and repr(request) == before


def test_sealing_checks_its_arguments() -> None:
    request, data, rng = fresh(), sample_data(), DeterministicRandom(b"x")
    target: Any = request.qr_text()
    with pytest.raises(InvalidArgument):
        seal_provisioning(target, data, rng)
    not_data: Any = data.to_bytes()
    with pytest.raises(InvalidArgument):
        seal_provisioning(request.target, not_data, rng)
    not_a_uuid: Any = str(request.provisioning_id)
    with pytest.raises(InvalidArgument):
        LinkTarget(not_a_uuid, request.target.public_key)
    with pytest.raises(InvalidArgument):
        LinkRequest(b"\x01" * 32, UUID(int=1))  # type: ignore[arg-type]


# --- ProvisioningData, strictly ------------------------------------------------------


SEED = ed25519_seed(b"strict")


@pytest.mark.parametrize("encoded,error", [
    (ref_data(seed=SEED, aci=bytes(16), code=b"c", device_id=0), InvalidEncoding),
    (ref_data(seed=SEED, aci=bytes(16), code=b"c", pni=bytes(16), pni_seed=SEED, flag=2),
     InvalidEncoding),
    (ref_data(seed=ed25519_seed(b"x", 1), aci=bytes(16), code=b"c"), InvalidEncoding),
    (ref_data(seed=SEED, aci=bytes(16), code=b"c", pni=bytes(16), pni_seed=ed25519_seed(b"y", 1)),
     InvalidEncoding),
    (ref_data(seed=SEED, aci=bytes(16), code=b"c", number=b"14155550123"), InvalidEncoding),
    (ref_data(seed=SEED, aci=bytes(16), code=b"c", number=b"+0155"), InvalidEncoding),
    (ref_data(seed=SEED, aci=bytes(16), code=b"c", number=b"+" + b"1" * 16), InvalidLength),
    (ref_data(seed=SEED, aci=bytes(16), code=b"c", number="+١٢٣".encode()), InvalidEncoding),
    (ref_data(seed=SEED, aci=bytes(16), code=b"c", name=b"\xff"), InvalidEncoding),
    (ref_data(seed=SEED, aci=bytes(16), code=b"c", name=b"\xed\xa0\x80"), InvalidEncoding),
    (ref_data(seed=SEED, aci=bytes(16), code=b"c", name=b""), InvalidEncoding),
    (ref_data(seed=SEED, aci=bytes(16), code=b"c", name=b"n" * 257), InvalidLength),
    (ref_data(seed=SEED, aci=bytes(16), code=b""), InvalidEncoding),
    (ref_data(seed=SEED, aci=bytes(16), code=b"a b"), InvalidEncoding),
    (ref_data(seed=SEED, aci=bytes(16), code="é".encode()), InvalidEncoding),
    (ref_data(seed=SEED, aci=bytes(16), code=b"c" * 257), InvalidLength),
    (ref_data(seed=SEED, aci=bytes(16), code=b"c", extra=bytes(MAX_EXTRA + 1)), InvalidLength),
    (ref_data(seed=SEED, aci=bytes(16), code=b"c")[:-4] + b"\x00\x00\x00\x01", TruncatedInput),
], ids=["device-0", "flag-2", "seed-sign-bit", "pni-seed-sign-bit", "number-no-plus",
        "number-leading-0", "number-long", "number-non-ascii", "name-bad-utf8",
        "name-surrogate", "name-empty", "name-long", "code-empty", "code-space",
        "code-non-ascii", "code-long", "extra-long", "extra-truncated"])
def test_data_decoding_is_strict(encoded: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        ProvisioningData.from_bytes(encoded)


def test_data_bit_flips_give_an_error_or_other_data() -> None:
    data = sample_data(pni=UUID(int=4), pni_identity=IdentityKeyPair.generate(
        DeterministicRandom(b"p")))
    encoded = data.to_bytes()
    for i in range(len(encoded)):
        for bit in range(8):
            flipped = bytearray(encoded)
            flipped[i] ^= 1 << bit
            try:
                other = ProvisioningData.from_bytes(bytes(flipped))
            except DecodeError:
                continue
            assert other != data and other.to_bytes() == bytes(flipped)


BAD_FIELDS: list[tuple[str, dict[str, Any]]] = [
    ("identity-bytes", {"identity": SEED}),
    ("aci-str", {"aci": "00000000-0000-0000-0000-000000000000"}),
    ("pni-alone", {"pni": UUID(int=1)}),
    ("pni-identity-alone", {"pni_identity": IdentityKeyPair.from_seed(SEED)}),
    ("pni-str", {"pni": "x", "pni_identity": IdentityKeyPair.from_seed(SEED)}),
    ("code-empty", {"provisioning_code": ""}),
    ("code-space", {"provisioning_code": "a b"}),
    ("code-long", {"provisioning_code": "c" * 257}),
    ("code-bytes", {"provisioning_code": b"code"}),
    ("number-bare", {"number": "4155550123"}),
    ("number-long", {"number": "+1234567890123456"}),
    ("name-empty", {"account_name": ""}),
    ("name-long", {"account_name": "é" * 129}),
    ("name-surrogate", {"account_name": "\udc80"}),
    ("device-0", {"device_id": 0}),
    ("device-big", {"device_id": 2**32}),
    ("device-bool", {"device_id": True}),
    ("extra-long", {"extra": bytes(MAX_EXTRA + 1)}),
    ("extra-str", {"extra": "text"}),
]


@pytest.mark.parametrize("overrides", [o for _, o in BAD_FIELDS], ids=[n for n, _ in BAD_FIELDS])
def test_data_construction_checks_every_field(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        sample_data(**overrides)


def test_repr_hides_every_secret() -> None:
    pni_identity = IdentityKeyPair.generate(DeterministicRandom(b"pni secret"))
    data = sample_data(pni=UUID(int=5), pni_identity=pni_identity)
    private = DeterministicRandom(b"request secret").random_bytes(32)
    request = LinkRequest(PrivateKey.from_private_bytes(private), UUID(int=6))
    shown = repr(data) + str(data) + repr(request) + repr(request.target)
    for secret in (data.identity.seed(), pni_identity.seed(), private, data.extra):
        assert secret.hex() not in shown and secret.hex().upper() not in shown
        assert base64.b64encode(secret).decode() not in shown
    assert data.provisioning_code not in shown
    assert data.identity.public.public_bytes_raw().hex() in shown
    with pytest.raises(TypeError):
        hash(data)


# --- hostile QR strings ----------------------------------------------------------------

REQUEST = LinkRequest.create(DeterministicRandom(b"qr"))
GOOD = REQUEST.qr_text()
UUID_TEXT = str(REQUEST.provisioning_id)
KEY = base64.b64encode(b"\x05" + REQUEST.target.public_key.public_bytes_raw()).decode()
KEY_Q = quote(KEY, safe="")


def qr(uuid: str = UUID_TEXT, key: str = KEY_Q, v: str = "1",
       prefix: str = "signalish://linkdevice?") -> str:
    return f"{prefix}uuid={uuid}&pub_key={key}&v={v}"


def b64(raw: bytes) -> str:
    return quote(base64.b64encode(raw).decode(), safe="")


HOSTILE_QR: list[tuple[str, object, type[Exception]]] = [
    ("signal-scheme", qr(prefix="sgnl://linkdevice?"), UnexpectedType),
    ("upper-scheme", GOOD.replace("signalish", "SIGNALISH", 1), UnexpectedType),
    ("https", qr(prefix="https://linkdevice?"), UnexpectedType),
    ("no-scheme", "hello", UnexpectedType),
    ("empty", "", UnexpectedType),
    ("other-host", qr(prefix="signalish://link?"), InvalidEncoding),
    ("trailing-slash", qr(prefix="signalish://linkdevice/?"), InvalidEncoding),
    ("no-query", "signalish://linkdevice", InvalidEncoding),
    ("missing-v", GOOD.replace("&v=1", ""), InvalidEncoding),
    ("missing-uuid", f"signalish://linkdevice?pub_key={KEY_Q}&v=1", InvalidEncoding),
    ("missing-key", f"signalish://linkdevice?uuid={UUID_TEXT}&v=1", InvalidEncoding),
    ("duplicate-uuid", GOOD + f"&uuid={UUID_TEXT}", InvalidEncoding),
    ("duplicate-v", GOOD + "&v=1", InvalidEncoding),
    ("capabilities", GOOD + "&capabilities=", InvalidEncoding),
    ("unknown-param", GOOD + "&x=1", InvalidEncoding),
    ("empty-param", GOOD + "&", InvalidEncoding),
    ("no-equals", GOOD + "&v", InvalidEncoding),
    ("fragment", GOOD + "#frag", InvalidEncoding),
    ("space", GOOD + " ", InvalidEncoding),
    ("newline", GOOD + "\n", InvalidEncoding),
    ("version-2", qr(v="2"), UnknownVersion),
    ("version-9999", qr(v="9999"), UnknownVersion),
    ("version-01", qr(v="01"), InvalidEncoding),
    ("version-0", qr(v="0"), InvalidEncoding),
    ("version-text", qr(v="one"), InvalidEncoding),
    ("version-empty", qr(v=""), InvalidEncoding),
    ("version-huge", qr(v="1" * 300), InvalidEncoding),
    ("uuid-upper", qr(uuid=UUID_TEXT.upper()), InvalidEncoding),
    ("uuid-no-hyphens", qr(uuid=UUID_TEXT.replace("-", "")), InvalidEncoding),
    ("uuid-braces", qr(uuid="%7B" + UUID_TEXT + "%7D"), InvalidEncoding),
    ("uuid-urn", qr(uuid="urn%3Auuid%3A" + UUID_TEXT), InvalidEncoding),
    ("uuid-short", qr(uuid=UUID_TEXT[:-1]), InvalidEncoding),
    ("uuid-empty", qr(uuid=""), InvalidEncoding),
    ("key-raw-plus", qr(key=KEY_Q.replace("%2B", "+")) if "%2B" in KEY_Q else qr(key="a+b"),
     InvalidEncoding),
    ("key-excess-padding", qr(key=KEY_Q + "%3D%3D%3D%3D"), InvalidEncoding),
    ("key-inner-padding", qr(key=KEY_Q[:8] + "%3D" + KEY_Q[8:]), InvalidEncoding),
    ("key-32-unpadded", qr(key=b64(bytes(range(1, 33))).replace("%3D", "")), InvalidEncoding),
    ("key-32-non-canonical", qr(key=b64(bytes(range(1, 33)))[:-4] + "h%3D"), InvalidEncoding),
    ("key-urlsafe", qr(key=base64.urlsafe_b64encode(b"\x05" + b"\xfb" * 32).decode()),
     InvalidEncoding),
    ("key-escaped-space", qr(key="%20" + KEY_Q), InvalidEncoding),
    ("key-escaped-newline", qr(key=KEY_Q + "%0A"), InvalidEncoding),
    ("key-bad-escape", qr(key=KEY_Q + "%2"), InvalidEncoding),
    ("key-not-hex-escape", qr(key="%zz" + KEY_Q), InvalidEncoding),
    ("key-escaped-high-byte", qr(key="%FF" + KEY_Q), InvalidEncoding),
    ("key-non-ascii", qr(key="é" + KEY_Q), InvalidEncoding),
    ("key-empty", qr(key=""), InvalidEncoding),
    ("key-32-bytes", qr(key=b64(REQUEST.target.public_key.public_bytes_raw())), InvalidKey),
    ("key-34-bytes", qr(key=b64(b"\x05" + REQUEST.target.public_key.public_bytes_raw() + b"\x00")),
     InvalidKey),
    ("key-prefix-6", qr(key=b64(b"\x06" + REQUEST.target.public_key.public_bytes_raw())),
     InvalidKey),
    ("key-zero", qr(key=b64(b"\x05" + bytes(32))), InvalidKey),
    ("key-one", qr(key=b64(b"\x05" + (1).to_bytes(32, "little"))), InvalidKey),
    ("key-p", qr(key=b64(b"\x05" + P.to_bytes(32, "little"))), InvalidKey),
    ("key-above-p", qr(key=b64(b"\x05" + b"\xff" * 32)), InvalidKey),
    ("too-long", GOOD + "&" + "x" * 600, InvalidLength),
    ("bytes", GOOD.encode(), InvalidArgument),
    ("none", None, InvalidArgument),
]


@pytest.mark.parametrize("text,error", [(t, e) for _, t, e in HOSTILE_QR],
                         ids=[n for n, _, _ in HOSTILE_QR])
def test_hostile_qr_strings(text: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_link_qr(text)  # type: ignore[arg-type]


def test_qr_string_is_ascii_and_fits_a_small_qr_code() -> None:
    assert GOOD.isascii() and len(GOOD) < 150
    assert GOOD == ref_qr(UUID_TEXT, REQUEST.target.public_key.public_bytes_raw())


def test_equivalent_qr_spellings_parse_to_the_same_target() -> None:
    for text in (f"signalish://linkdevice?v=1&pub_key={KEY_Q}&uuid={UUID_TEXT}",
                 qr(key=re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), KEY_Q)),
                 qr(key=KEY.replace("+", "%2B")),              # raw "/" and "="
                 qr(key="".join(f"%{c:02X}" for c in KEY.encode())),
                 qr(uuid="".join(f"%{c:02x}" for c in UUID_TEXT.encode()))):
        assert parse_link_qr(text) == REQUEST.target, text


@given(st.text(max_size=200))
def test_any_text_parses_or_raises_a_remote_error(text: str) -> None:
    try:
        target = parse_link_qr(text)
    except RemoteError:
        return
    assert parse_link_qr(target.qr_text()) == target


@given(st.integers(0, len(GOOD) - 1), st.characters(min_codepoint=0x20, max_codepoint=0x7E))
def test_any_one_character_change_parses_or_raises_a_remote_error(index: int, char: str) -> None:
    text = GOOD[:index] + char + GOOD[index + 1:]
    try:
        target = parse_link_qr(text)
    except RemoteError:
        return
    assert parse_link_qr(target.qr_text()) == target


def test_the_published_vectors_are_the_references() -> None:
    """vectors/provisioning.json, which signalish generates (vectorgen), is
    exactly what the reference above computes: every field the reference
    produces, as JSON values.  The file's one further field, ``refusals``, is
    checked against the reference too: each is the envelope changed as
    docs/vectors.md says, and the reference refuses it for the recorded reason
    (a failed tag, or, for ephemeral u = 0, the all-zero X25519 result)."""
    import json

    from cryptography.exceptions import InvalidTag

    path = Path(__file__).resolve().parent.parent / "vectors" / "provisioning.json"
    published = json.loads(path.read_text(encoding="utf-8"))
    assert {k: published[k] for k in ("format", "version", "kind")} == {
        "format": "signalish-vectors", "version": 1, "kind": "provisioning"}
    reference = provisioning_vector_cases()
    assert [c["name"] for c in published["cases"]] == [c["name"] for c in reference]
    for case, expected in zip(published["cases"], reference):
        assert set(case) == set(expected) | {"refusals"}, case["name"]
        assert {k: case[k] for k in expected} == expected, case["name"]

        private = bytes.fromhex(expected["request_private"])

        def ref_open(envelope: bytes, provisioning_id: str) -> bytes:
            ephemeral, (length,), ciphertext = envelope[2:34], struct.unpack(
                ">I", envelope[34:38]), envelope[38:]
            assert envelope[:2] == b"\xa1\x01" and length == len(ciphertext)
            shared = X25519PrivateKey.from_private_bytes(private).exchange(
                X25519PublicKey.from_public_bytes(ephemeral))
            okm = HKDF(SHA256(), 44, salt=None, info=INFO).derive(shared)
            aad = envelope[:34] + x25519_public(private) + UUID(provisioning_id).bytes
            return AESGCM(okm[:32]).decrypt(okm[32:], ciphertext, aad)

        envelope, own_id = bytes.fromhex(expected["envelope"]), expected["provisioning_id"]
        assert ref_open(envelope, own_id).hex() == expected["data_bytes"]
        for other in expected["fails_under"]:
            with pytest.raises(InvalidTag):
                ref_open(envelope, other)

        def flip(at: int) -> bytes:
            return envelope[:at] + bytes((envelope[at] ^ 0x01,)) + envelope[at + 1:]

        tampered = [flip(2), flip(38), flip(len(envelope) - 1),
                    envelope[:2] + bytes(32) + envelope[34:]]
        assert [bytes.fromhex(r["envelope"]) for r in case["refusals"]] == tampered
        assert [r["error"] for r in case["refusals"]] == (["AuthenticationError"] * 3
                                                          + ["InvalidKey"])
        for changed in tampered[:3]:
            with pytest.raises(InvalidTag):
                ref_open(changed, own_id)
        with pytest.raises(ValueError):  # cryptography refuses an all-zero X25519 result
            ref_open(tampered[3], own_id)
