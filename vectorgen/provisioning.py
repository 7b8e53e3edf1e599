"""Builds vectors/provisioning.json: linking a device (``signalish._provisioning``).

Each case is a new device's link request (its private key and provisioning
id), the ProvisioningData an existing device sends it, and the envelope sealed
with a given ephemeral key; then the envelope refused under another
provisioning id and when tampered with.

The inputs are the ones ``provisioning_vector_cases()`` in
tests/test_provisioning.py picks (SHA-256 of labels), so that its reference,
written from docs/linking.md without signalish, computes the same cases: the
test at the end of that file compares them.

Format: vectors/README.md, docs/vectors.md and schema/provisioning.schema.json.
"""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID

from signalish._errors import InvalidArgument, SignalishError
from signalish._keys import IdentityKeyPair
from signalish._primitives import PrivateKey
from signalish._provisioning import LinkRequest, ProvisioningData, parse_link_qr, seal_provisioning
from signalish.cli.vector_check import ListRandom, flip_bit

Json = dict[str, Any]

#: ProvisioningData's arguments under their names in the vectors.
FIELD_NAMES = {"provisioning_code": "code", "pni": "pni", "pni_identity": "pni_seed",
               "number": "number", "account_name": "name", "device_id": "device_id",
               "extra": "extra"}


def _h(label: str) -> bytes:
    return hashlib.sha256(b"signalish provisioning vectors " + label.encode()).digest()


def _identity(label: bytes) -> IdentityKeyPair:
    """The first SHA-256(label || i), i = 0, 1, ..., that is an identity seed
    (its Ed25519 public key has sign bit 0)."""
    for i in range(256):
        try:
            return IdentityKeyPair.from_seed(hashlib.sha256(label + bytes((i,))).digest())
        except InvalidArgument:
            continue
    raise AssertionError("no identity seed")


def _shown(data: ProvisioningData, argument: str) -> Any:
    """The value of one of ``data``'s arguments as the vectors write it."""
    value = getattr(data, argument)
    if argument == "pni":
        return str(value)
    if argument == "pni_identity":
        return value.seed().hex()
    return value.hex() if isinstance(value, bytes) else value


def _verdict(request: LinkRequest, envelope: bytes) -> str:
    """The error class name ``request`` refuses ``envelope`` with; the
    request must be unchanged."""
    before = repr(request)
    try:
        request.open(envelope)
    except SignalishError as error:
        assert repr(request) == before and not request.used
        return type(error).__name__
    raise AssertionError("the envelope opened")


def _case(name: str, arguments: dict[str, Any], given_id: str | None) -> Json:
    """``arguments``: ProvisioningData's, besides identity and aci, in the
    order the case lists them; ``given_id``: the id the application's server
    issued, or None for a random version-4 id."""
    request_private, id_random, ephemeral = (_h(name + " request"), _h(name + " id")[:16],
                                             _h(name + " ephemeral"))
    draws = ListRandom([request_private.hex()] + ([] if given_id else [id_random.hex()]))
    request = (LinkRequest.create(draws) if given_id is None
               else LinkRequest.create(draws, provisioning_id=UUID(given_id)))
    assert draws.exhausted()
    data = ProvisioningData(_identity(name.encode() + b" identity"),
                            UUID(bytes=_h(name + " aci")[:16]), **arguments)
    # The existing device seals to what it read from the QR code.
    target = parse_link_qr(request.qr_text())
    assert target == request.target
    sealer = ListRandom([ephemeral.hex()])
    envelope = seal_provisioning(target, data, sealer)
    assert sealer.exhausted()
    provisioning_id = request.provisioning_id
    # Another id (the last bit flipped), the same key.
    other_id = UUID(int=provisioning_id.int ^ 1)
    twin = LinkRequest(PrivateKey.from_private_bytes(request_private), other_id)
    assert _verdict(twin, envelope) == "AuthenticationError"
    # 0xA1 || 0x01 || E (32) || length (4) || ciphertext and tag
    tampered = [flip_bit(envelope, at) for at in (2, 38, len(envelope) - 1)]
    tampered.append(envelope[:2] + bytes(32) + envelope[34:])
    refusals = [{"envelope": t.hex(), "error": _verdict(request, t)} for t in tampered]
    assert [r["error"] for r in refusals] == ["AuthenticationError"] * 3 + ["InvalidKey"]
    assert request.open(envelope) == data
    return {
        "name": name,
        "request_private": request_private.hex(),
        "id_random": None if given_id else id_random.hex(),
        "provisioning_id": str(provisioning_id),
        "ephemeral_private": ephemeral.hex(),
        "data": {"identity_seed": data.identity.seed().hex(), "aci": str(data.aci),
                 **{FIELD_NAMES[a]: _shown(data, a) for a in arguments}},
        "request_public": request.target.public_key.public_bytes_raw().hex(),
        "qr_text": request.qr_text(),
        "data_bytes": data.to_bytes().hex(),
        "envelope": envelope.hex(),
        "fails_under": [str(other_id)],
        "refusals": refusals,
    }


def gen_provisioning() -> Json:
    from vectorgen.generate import envelope  # generate.py imports this module
    cases = [
        _case("minimal", {"provisioning_code": "123456"}, None),
        _case("full", {"pni": UUID(bytes=_h("pni")[:16]),
                       "pni_identity": _identity(b"pni identity"),
                       "number": "+14155550123", "account_name": "Zoë's laptop",
                       "device_id": 2, "provisioning_code": "AbC-0123_xyz~",
                       "extra": _h("extra") * 3}, None),
        _case("server-issued-id", {"provisioning_code": "k", "device_id": 0xFFFFFFFF,
                                   "extra": b""}, "00112233-4455-6677-8899-aabbccddeeff"),
    ]
    return envelope("provisioning", "linking a device: the link request's QR string, the "
                    "ProvisioningData and its envelope rebuilt from the recorded keys, the "
                    "envelope refused under another provisioning id and when tampered with",
                    cases)
