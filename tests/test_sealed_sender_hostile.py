"""Every sealed-sender parser and opener under attack: truncation, a flipped bit
at every byte, wrong versions, extra, missing, repeated and reordered fields,
oversize lengths and random bytes.  A hostile input gives a clean
:class:`~signalish.errors.RemoteError` (a DecodeError, InvalidKey or
AuthenticationError), never another exception and never a forged success."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signalish._sealed_sender import (
    MAX_MESSAGE_SIZE,
    SenderCertificate,
    SentMessage,
    ServerCertificate,
    ServiceId,
    UnidentifiedSenderMessageContent,
    seal_v1,
    seal_v2,
    unseal,
)
import signalish._sealed_sender.envelopes as envelopes
from signalish._primitives import aes256_gcm_siv_encrypt, hkdf
from signalish._wire_v3 import _bytes_field, _uint_field
from signalish.errors import (
    AuthenticationError,
    DecodeError,
    InvalidArgument,
    InvalidCertificate,
    InvalidKey,
    InvalidLength,
    TrailingBytes,
    TruncatedInput,
    UnknownVersion,
)
from test_sealed_sender import (
    ALICE_ID,
    BOB,
    BOB_ID,
    CAROL,
    DAVE,
    KAT,
    KAT_ROOT,
    SERVER,
    DeterministicRandom,
    recipients,
    usmc_of,
)

CLEAN = (DecodeError, InvalidKey, AuthenticationError)


def flips(data: bytes) -> list[bytes]:
    """``data`` with one bit changed, at every byte (bit 0, and bit 7 every
    other byte)."""
    out = []
    for i in range(len(data)):
        for bit in (0x01, 0x80) if i % 2 else (0x01,):
            out.append(data[:i] + bytes((data[i] ^ bit,)) + data[i + 1:])
    return out


def cleanly_refused(parse: Callable[[bytes], object], data: bytes) -> None:
    try:
        parse(data)
    except CLEAN:
        return
    raise AssertionError(f"accepted: {data.hex()}")


def clean_or_parsed(parse: Callable[[bytes], object], data: bytes) -> None:
    try:
        parse(data)
    except CLEAN:
        pass


V1 = KAT["v1"]
V2 = KAT["v2_received_bob"]
SENT = KAT["v2_sent"]


@pytest.mark.parametrize("name, message", [("v1", V1), ("v2", V2)])
def test_sealed_messages_truncated_extended_or_flipped_never_open(name: str,
                                                                 message: bytes) -> None:
    open_bob = lambda data: unseal(data, BOB_ID)  # noqa: E731
    assert open_bob(message).to_bytes() == KAT["usmc"]
    for variant in [message[:i] for i in range(len(message))] + flips(message) + [
            message + b"\x00", message + b"\x12\x00"]:
        cleanly_refused(open_bob, variant)


def test_version_bytes() -> None:
    for byte in (0x00, 0x01, 0x10, 0x12, 0x1F, 0x21, 0x23, 0x33, 0xFF):
        with pytest.raises(UnknownVersion):
            unseal(bytes((byte,)) + V1[1:], BOB_ID)
    with pytest.raises(UnknownVersion):
        unseal(SENT, BOB_ID)
    for byte in (0x22, 0x24, 0x13):
        with pytest.raises(UnknownVersion):
            SentMessage.from_bytes(bytes((byte,)) + SENT[1:])
    with pytest.raises(TruncatedInput):
        unseal(b"", BOB_ID)
    with pytest.raises(DecodeError):
        unseal(b"\x11" + b"\x00" * (MAX_MESSAGE_SIZE), BOB_ID)


def test_v1_fields_extra_missing_repeated_reordered_oversize() -> None:
    body = V1[1:]
    e, static, message = body[:35], body[35:80], body[80:]
    for fields in (e + static, e + message, static + e + message, e + e + static + message,
                   e + static + message + _bytes_field(4, b"x"),
                   e + static + message + message,
                   _bytes_field(1, b"\x05" + bytes(33)) + static + message,
                   _bytes_field(1, b"\x06" + e[3:]) + static + message,
                   e + _bytes_field(2, bytes(42)) + message,
                   e + static + b"\x1a\x80\x80\x80\x80\x01"):
        with pytest.raises(DecodeError):
            unseal(b"\x11" + fields, BOB_ID)
    # A low-order ephemeral key is refused as a failed decryption.
    with pytest.raises(AuthenticationError):
        unseal(b"\x11" + _bytes_field(1, b"\x05" + bytes(32)) + static + message, BOB_ID)


def test_v2_received_parts() -> None:
    c, at, e, body = V2[1:33], V2[33:49], V2[49:81], V2[81:]
    for forged in (b"\x22" + bytes(32) + at + e + body, b"\x22" + c + bytes(16) + e + body,
                   b"\x22" + c + at + bytes(32) + body, b"\x22" + c + at + e + body[:-1],
                   b"\x22" + c + at + e + bytes(16)):
        with pytest.raises(AuthenticationError):
            unseal(forged, BOB_ID)


def test_certificates_under_attack() -> None:
    raw = KAT["sender_certificate"]

    def validated(data: bytes) -> object:
        cert = SenderCertificate.from_bytes(data)
        try:
            cert.validate(KAT_ROOT, 0)
        except InvalidCertificate:
            raise AuthenticationError("refused") from None
        return cert

    for variant in [raw[:i] for i in range(len(raw))] + flips(raw) + [raw + b"\x00"]:
        cleanly_refused(validated, variant)
    server = KAT["server_certificate"]
    for variant in [server[:i] for i in range(len(server))] + [server + b"\x00"]:
        cleanly_refused(ServerCertificate.from_bytes, variant)
    for variant in flips(server):
        clean_or_parsed(ServerCertificate.from_bytes, variant)
        try:
            assert not ServerCertificate.from_bytes(variant).verify(KAT_ROOT)
        except CLEAN:
            pass


def test_certificate_fields_out_of_form() -> None:
    cert = SERVER.issue(ALICE_ID.public, e164="+15550001111")
    body = cert.certificate_data()
    signature = cert.signature

    def wrapped(fields: bytes) -> bytes:
        return _bytes_field(1, fields) + _bytes_field(2, signature)

    e164, rest = body[:14], body[14:]
    device, expires, key = rest[:2], rest[2:11], rest[11:46]
    signer, uuid = rest[46:46 + 2 + len(SERVER.certificate.to_bytes())], rest[-38:]
    assert e164 + device + expires + key + signer + uuid == body
    for fields in (device + e164 + expires + key + signer + uuid,       # out of order
                   e164 + e164 + device + expires + key + signer + uuid,  # repeated
                   e164 + expires + key + signer + uuid,                # device missing
                   e164 + device + expires + key + signer,              # uuid missing
                   e164 + device + expires + key + signer + uuid + b"\x38\x01",  # unknown field 7
                   e164 + b"\x10\x00" + expires + key + signer + uuid,  # device 0
                   e164 + b"\x10\x80\x01" + expires + key + signer + uuid,  # device 128
                   e164 + b"\x10\x81\x00" + expires + key + signer + uuid,  # long varint
                   e164 + device + b"\x18\x01" + key + signer + uuid,   # expires as varint
                   _bytes_field(1, b"15550001111") + device + expires + key + signer + uuid,
                   _bytes_field(1, b"") + device + expires + key + signer + uuid,
                   e164 + device + expires + key + signer + _bytes_field(6, BOB.upper().encode()),
                   e164 + device + expires + _bytes_field(4, bytes(33)) + signer + uuid):
        with pytest.raises(DecodeError):
            SenderCertificate.from_bytes(wrapped(fields))
    for outer in (_bytes_field(1, body), _bytes_field(1, body) + _bytes_field(2, signature[:63]),
                  _bytes_field(2, signature) + _bytes_field(1, body),
                  _bytes_field(1, body) + _bytes_field(2, signature) + _bytes_field(3, b"")):
        with pytest.raises(DecodeError):
            SenderCertificate.from_bytes(outer)
    with pytest.raises(InvalidKey):
        SenderCertificate.from_bytes(wrapped(e164 + device + expires + _bytes_field(
            4, b"\x05" + bytes(32)) + signer + uuid))


def test_usmc_under_attack() -> None:
    raw = KAT["usmc"]
    parse = UnidentifiedSenderMessageContent.from_bytes
    whole = parse(raw)
    parsed = []
    for variant in [raw[:i] for i in range(len(raw))] + [raw + b"\x00"]:
        try:
            parsed.append(parse(variant))
        except CLEAN:
            pass
    # Only the two prefixes that end between fields parse: without the
    # group id, and without the hint and the group id.
    assert [(u.content_hint, u.group_id) for u in parsed] == [(0, None), (1, None)]
    assert all(u.contents == whole.contents for u in parsed)
    for variant in flips(raw):
        clean_or_parsed(parse, variant)
    usmc = usmc_of()
    cert = _bytes_field(2, usmc.sender.to_bytes())
    contents = _bytes_field(3, usmc.contents)
    for data in (b"\x08\x03" + cert + contents, b"\x08\x09" + cert + contents,
                 b"\x08\x07" + contents, b"\x08\x07" + cert,
                 b"\x08\x07" + cert + contents + b"\x20\x00",        # hint 0 written
                 b"\x08\x07" + cert + contents + _bytes_field(5, b""),
                 b"\x08\x07" + cert + contents + _bytes_field(5, bytes(257)),
                 b"\x08\x07" + cert + contents + _bytes_field(6, b"x"),
                 b"\x08\x07" + contents + cert):
        with pytest.raises(DecodeError):
            parse(data)


def test_sent_message_under_attack() -> None:
    parse = SentMessage.from_bytes
    for variant in [SENT[:i] for i in range(40)] + [SENT[:i] for i in range(40, len(SENT), 7)]:
        clean_or_parsed(parse, variant)
    for variant in flips(SENT[:200]):
        clean_or_parsed(parse, variant)
    bob, carol, dave = (ServiceId.aci(u).fixed_width() for u in (BOB, CAROL, DAVE))
    key, shared = bytes(48), bytes(32 + 16)

    def sent(count: int, *entries: bytes) -> bytes:
        return b"\x23" + bytes((count,)) + b"".join(entries) + shared

    assert parse(sent(2, bob + b"\x01\x00\x05" + key, dave + b"\x00")).excluded == (
        ServiceId.aci(DAVE),)
    for bad in (sent(2, bob + b"\x01\x00\x05" + key, bob + b"\x02\x00\x05" + key),  # twice
                sent(2, bob + b"\x01\x00\x05" + key, bob + b"\x00"),        # excluded too
                sent(1, bob + b"\x01\x80\x05\x01\x00\x06" + key),           # device repeated
                sent(1, bob + b"\x01\x80\x05\x00" + key),                   # device 0 inside
                sent(1, bob + b"\x80\x01\x00\x05" + key),                   # device 128
                sent(1, bob + b"\x81\x00\x00\x05" + key),                   # long varint
                sent(1, bob + b"\x01\x40\x05" + key),                       # reserved bit
                sent(1, b"\x02" + bob[1:] + b"\x01\x00\x05" + key),         # kind 2
                sent(1, dave + b"\x00"),                                    # nobody to send to
                sent(0),
                sent(3, bob + b"\x01\x00\x05" + key, carol + b"\x01\x00\x05" + key)):
        with pytest.raises(DecodeError):
            parse(bad)
    with pytest.raises(TruncatedInput):
        parse(b"\x23\x01" + bob + b"\x01\x00\x05" + key + bytes(47))
    with pytest.raises(DecodeError):
        parse(b"\x23\x01" + bob + b"\x01\x00\x05" + key + bytes(33 + MAX_MESSAGE_SIZE + 16))


def test_trailing_and_oversize_usmc_inside_a_valid_envelope() -> None:
    """Envelopes around malformed plaintexts, sealed by the attacker: a v1
    envelope is authentic once its MAC checks, so the USMC is refused as a
    DecodeError; a v2 one is authentic only once AT checks, which needs the
    sender the USMC names, so it fails as any forgery does."""
    rng = DeterministicRandom(b"inner")
    import signalish._sealed_sender.envelopes as module

    class Bad:
        sender = usmc_of().sender

        def to_bytes(self) -> bytes:
            return usmc_of().to_bytes() + b"\x00"

    original = module._check_sender
    module._check_sender = lambda usmc, sender: None
    try:
        v1 = seal_v1(Bad(), BOB_ID.public, ALICE_ID, rng)  # type: ignore[arg-type]
        v2 = seal_v2(Bad(), recipients()[:1], ALICE_ID, rng)  # type: ignore[arg-type]
    finally:
        module._check_sender = original
    with pytest.raises(TrailingBytes):
        unseal(v1, BOB_ID)
    with pytest.raises(AuthenticationError, match="^sealed sender message did not decrypt$"):
        unseal(SentMessage.from_bytes(v2).received_message(ServiceId.aci(BOB)), BOB_ID)


def _forged_v2(plaintext: bytes) -> bytes:
    """A v2 ReceivedMessage made by someone who knows only Bob's public
    identity key: any M gives E and K, so the body opens to ``plaintext``;
    AT (unknowable without a sender's private key) is zeros."""
    m = bytes(range(32))
    ephemeral, k = envelopes._derive_v2(m)
    e_pub, r_pub = b"\x05" + ephemeral.public.public_bytes_raw(), b"\x05" + BOB_ID.public.public_bytes_raw()
    pad = hkdf(ephemeral.exchange(BOB_ID.public.public_key) + e_pub + r_pub, salt=None,
               info=envelopes._LABEL_DH, length=32)
    return (b"\x22" + envelopes._xor(m, pad) + bytes(16) + e_pub[1:]
            + aes256_gcm_siv_encrypt(k, bytes(12), plaintext, b""))


def test_a_forged_v2_envelope_fails_alike_whatever_its_plaintext() -> None:
    """Found by review: a forged v2 envelope whose plaintext did not parse
    raised InvalidEncoding, TrailingBytes or InvalidKey (the forger chooses
    the plaintext), where the documented answer to anything not authentic
    is AuthenticationError with one text."""
    low_order = _bytes_field(4, b"\x05" + bytes(32))  # a certificate naming u = 0
    certificate = _bytes_field(1, _uint_field(2, 1) + b"\x19" + bytes(8) + low_order) \
        + _bytes_field(2, bytes(64))
    plaintexts = {
        "garbage": b"\xff\xff",
        "trailing byte": _uint_field(1, 2) + b"\x00",
        "low-order key in the certificate": _uint_field(1, 2) + _bytes_field(2, certificate)
        + _bytes_field(3, b"x"),
        "well formed, but no sender signed it": usmc_of().to_bytes(),
    }
    for name, plaintext in plaintexts.items():
        with pytest.raises(AuthenticationError, match="^sealed sender message did not decrypt$"):
            unseal(_forged_v2(plaintext), BOB_ID)
    # What the same forgery raised before the fix, for the first three: the
    # parse of the plaintext on its own.
    with pytest.raises(DecodeError):
        UnidentifiedSenderMessageContent.from_bytes(plaintexts["trailing byte"])


def test_sent_message_parse_compares_service_ids_a_linear_number_of_times(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: each excluded service id was looked up in a list of
    the earlier ones, so a 1 MiB SentMessage of excluded ids took minutes
    to parse.  Counted, not timed: the comparisons of service ids while
    parsing n of them stay within a small multiple of n."""
    n = 2_000
    sent = seal_v2(usmc_of(), recipients()[:1], ALICE_ID, DeterministicRandom(b"many"),
                   excluded=[ServiceId.aci(f"00000000-0000-4000-8000-{i:012x}") for i in range(n)])
    calls = [0]
    equal = ServiceId.__eq__

    def counting(self: ServiceId, other: object) -> bool:
        calls[0] += 1
        return equal(self, other)

    monkeypatch.setattr(ServiceId, "__eq__", counting)
    parsed = SentMessage.from_bytes(sent)
    assert len(parsed.excluded) == n
    assert calls[0] <= 4 * n, calls[0]  # a list made it n * (n - 1) / 2


def test_sealing_refuses_what_no_recipient_could_open() -> None:
    """Found by review: seal_v1 and seal_v2 made messages over
    MAX_MESSAGE_SIZE that unseal then refused, and SentMessage.from_bytes
    accepted bodies whose ReceivedMessage was too long.  At the limit a
    message opens; one byte more is refused when sealing."""
    rng = DeterministicRandom(b"limits")
    probe = 900_000
    v1_len = len(seal_v1(usmc_of(contents=b"x" * probe), BOB_ID.public, ALICE_ID, rng))
    fits = probe + MAX_MESSAGE_SIZE - v1_len
    v1 = seal_v1(usmc_of(contents=b"y" * fits), BOB_ID.public, ALICE_ID, rng)
    assert len(v1) == MAX_MESSAGE_SIZE
    assert unseal(v1, BOB_ID).contents == b"y" * fits
    with pytest.raises(InvalidArgument, match="MAX_MESSAGE_SIZE"):
        seal_v1(usmc_of(contents=b"y" * (fits + 1)), BOB_ID.public, ALICE_ID, rng)

    one = recipients()[:1]
    usmc_len = len(usmc_of(contents=b"x" * probe).to_bytes())
    fits = probe + (MAX_MESSAGE_SIZE - (1 + 48 + 32 + 16)) - usmc_len
    sent = seal_v2(usmc_of(contents=b"z" * fits), one, ALICE_ID, rng)
    received = SentMessage.from_bytes(sent).received_message(ServiceId.aci(BOB))
    assert len(received) == MAX_MESSAGE_SIZE
    assert unseal(received, BOB_ID).contents == b"z" * fits
    with pytest.raises(InvalidArgument, match="MAX_MESSAGE_SIZE"):
        seal_v2(usmc_of(contents=b"z" * (fits + 1)), one, ALICE_ID, rng)
    # A SentMessage whose ReceivedMessage would be one byte too long.
    with pytest.raises(InvalidLength, match="body too long"):
        SentMessage.from_bytes(sent + b"\x00")


@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    for parse in (SenderCertificate.from_bytes, ServerCertificate.from_bytes,
                  UnidentifiedSenderMessageContent.from_bytes, SentMessage.from_bytes):
        clean_or_parsed(parse, data)
    for first in (b"\x11", b"\x22", b"\x23"):
        clean_or_parsed(lambda d: unseal(d, BOB_ID), first + data)
