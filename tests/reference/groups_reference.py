"""An independent reference for sender keys and sealed sender, for checking vectors.

Written only from public specifications (RFC 8032 Ed25519, RFC 7748 X25519,
the XEdDSA specification, RFC 5869 HKDF, RFC 8452 AES-GCM-SIV), the black-box
facts about libsignal-client 0.103.0 in /work/exp/groups/FINDINGS.md and
signalish's format documentation (docs/sender_keys.md, docs/sealed_sender.md,
vectors/README.md, docs/vectors.md).  It imports nothing from signalish and shares no code with
it: the primitives come from ``cryptography`` (pyca) and ``hashlib``/``hmac``.
Plain, not fast: states are dictionaries, and every refused operation runs on a
deep copy, so a refusal changes nothing.

Keys.  An identity or signing key is an Ed25519 seed (RFC 8032) whose Edwards
public key has sign bit 0; its X25519 private scalar is clamp(SHA-512(seed)[:32])
and its public u the Montgomery form of the Edwards key (sender_keys.md "The
chain and the keys").  libsignal writes a public key as 0x05 || u.  Signatures
are plain, deterministic Ed25519 signatures by the seed, which are XEdDSA
signatures under u in both forms (the sign bit of A is 0, and s < 2^253).

Section references ("sender_keys.md, Decrypting") name the paragraph each rule
comes from.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import struct
import uuid as uuidlib
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import x25519 as pyca_x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESGCMSIV

P = 2**255 - 19
LIBSIGNAL = ("libsignal_v3", "libsignal_v4")
PROFILES = ("native",) + LIBSIGNAL
#: sender_keys.md "SenderKeyLimits": max_message_size defaults to 4 MiB.
DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024


class Refused(Exception):
    """The reference refuses an operation; ``name`` is the error class name."""

    def __init__(self, name: str, why: str = "") -> None:
        super().__init__(f"{name}: {why}" if why else name)
        self.name = name


# --- primitives (RFC 5869, RFC 7748, RFC 8032, XEdDSA) ----------------------------------


def hkdf(ikm: bytes, info: bytes, length: int, salt: bytes | None = None) -> bytes:
    """RFC 5869 HKDF-SHA256; no salt is HashLen zero bytes (section 2.2)."""
    prk = hmac.new(salt if salt else bytes(32), ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out, i = out + block, i + 1
    return out[:length]


def hmac256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def clamp(scalar: bytes) -> bytes:
    """RFC 7748 section 5 decodeScalar25519's clamping."""
    a = bytearray(scalar)
    a[0] &= 248
    a[31] = (a[31] & 127) | 64
    return bytes(a)


def x25519_private(seed: bytes) -> bytes:
    """The X25519 scalar of an Ed25519 seed: clamp(SHA-512(seed)[:32]) (RFC 8032 5.1.5)."""
    return clamp(hashlib.sha512(seed).digest()[:32])


def x25519_public(private: bytes) -> bytes:
    return pyca_x25519.X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def x25519(private: bytes, public: bytes) -> bytes:
    """RFC 7748 X25519; an all-zero output (a small-order point) is refused."""
    try:
        return pyca_x25519.X25519PrivateKey.from_private_bytes(private).exchange(
            pyca_x25519.X25519PublicKey.from_public_bytes(public))
    except ValueError:
        raise Refused("AuthenticationError", "small-order X25519 input") from None


def edwards_public(seed: bytes) -> bytes:
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def montgomery_u(edwards: bytes) -> bytes:
    """RFC 7748 section 4.1: u = (1 + y) / (1 - y)."""
    y = int.from_bytes(edwards, "little") & ((1 << 255) - 1)
    return ((1 + y) * pow(1 - y, P - 2, P) % P).to_bytes(32, "little")


def public_u(seed: bytes) -> bytes:
    """The public u of a seed, computed both ways (they must agree), sign bit 0 checked."""
    a = edwards_public(seed)
    assert a[31] & 0x80 == 0, "signalish seeds have Edwards sign bit 0"
    u = x25519_public(x25519_private(seed))
    assert u == montgomery_u(a), "X25519 public and Montgomery form of the Ed25519 key differ"
    return u


def sign(seed: bytes, message: bytes) -> bytes:
    """Deterministic Ed25519 (RFC 8032) by the seed; XEdDSA-valid under its u."""
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed).sign(message)


def xeddsa_verify(u: bytes, message: bytes, signature: bytes, form: str) -> bool:
    """XEdDSA verification (XEdDSA spec section 2.6 / 3.x) under a Montgomery u.

    ``form`` "spec": A = convert_mont(u) with sign bit 0, and s must be below
    2^253.  ``form`` "libsignal": the sign bit of A is the top bit of byte 63
    of the signature, cleared before the Ed25519 check (FINDINGS.md,
    "Signature form")."""
    if len(u) != 32 or len(signature) != 64:
        return False
    value = int.from_bytes(u, "little")
    if value >= P or value == P - 1:  # non-canonical, or no Edwards point (u = -1)
        return False
    y = (value - 1) * pow(value + 1, P - 2, P) % P
    sign_bit = 0
    if form == "libsignal":
        sign_bit = signature[63] >> 7
        signature = signature[:63] + bytes([signature[63] & 0x7F])
    a = (y | (sign_bit << 255)).to_bytes(32, "little")
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(a).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def acceptable_u(u: bytes) -> bool:
    """sender_keys.md "Native wire formats": canonical (u < p) and not of small order.
    A clamped scalar is a multiple of 8, so X25519 with any scalar gives all
    zeros exactly for the small-order points."""
    if len(u) != 32 or int.from_bytes(u, "little") >= P:
        return False
    try:
        pyca_x25519.X25519PrivateKey.from_private_bytes(bytes([8]) + bytes(31)).exchange(
            pyca_x25519.X25519PublicKey.from_public_bytes(u))
    except ValueError:
        return False
    return True


def aes_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def aes_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    try:
        dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        data = dec.update(ciphertext) + dec.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(data) + unpadder.finalize()
    except ValueError:
        raise Refused("AuthenticationError", "CBC/PKCS#7") from None


def aes_ctr(key: bytes, data: bytes) -> bytes:
    """AES-256-CTR from counter block 0 (sealed_sender.md v1)."""
    enc = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    return enc.update(data) + enc.finalize()


# --- protobuf, as libsignal writes it -------------------------------------------------


def varint(v: int) -> bytes:
    out = b""
    while v > 0x7F:
        out += bytes([v & 0x7F | 0x80])
        v >>= 7
    return out + bytes([v])


def pb_varint(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def pb_bytes(field: int, value: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(value)) + value


def pb_fixed64(field: int, value: int) -> bytes:
    return varint(field << 3 | 1) + struct.pack("<Q", value)


class Reader:
    """A strict sequential reader: minimal varints, exact lengths.

    Error names (my own mapping; sender_keys.md names the classes but not
    every situation): running out of bytes is TruncatedInput, a non-minimal
    or over-long varint, a wrong tag, a missing, repeated or reordered field
    is InvalidEncoding, a field of the wrong size InvalidLength."""

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data, self.pos = data, pos
        self.end = len(data) if end is None else end

    def left(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if self.left() < n:
            raise Refused("TruncatedInput")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def varint(self) -> int:
        value = shift = 0
        start = self.pos
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
            if shift >= 70:
                raise Refused("InvalidEncoding", "varint too long")
        if self.data[start:self.pos] != varint(value):
            raise Refused("InvalidEncoding", "non-minimal varint")
        return value

    def key(self, field: int, wire: int) -> None:
        if self.left() == 0:
            raise Refused("TruncatedInput", f"field {field} missing")
        if self.varint() != field << 3 | wire:
            raise Refused("InvalidEncoding", f"expected field {field}")

    def u32_field(self, field: int) -> int:
        self.key(field, 0)
        value = self.varint()
        if value > 0xFFFFFFFF:
            raise Refused("InvalidEncoding", "above 32 bits")
        return value

    def bytes_field(self, field: int, size: int | None = None) -> bytes:
        self.key(field, 2)
        length = self.varint()
        if size is not None and length != size:
            raise Refused("InvalidLength", f"field {field}: {length} bytes")
        return self.take(length)


def pb_parse(data: bytes) -> dict[int, Any]:
    """A lenient protobuf reader (for our own, known-good encodings)."""
    fields: dict[int, Any] = {}
    r = Reader(data)
    while r.left():
        key = r.varint()
        if key & 7 == 0:
            fields[key >> 3] = r.varint()
        elif key & 7 == 1:
            fields[key >> 3] = struct.unpack("<Q", r.take(8))[0]
        elif key & 7 == 2:
            fields[key >> 3] = r.take(r.varint())
        else:
            raise Refused("InvalidEncoding", "wire type")
    return fields


# =====================================================================================
# Sender keys (docs/sender_keys.md; FINDINGS.md "SenderKeyDistributionMessage",
# "SenderKeyMessage", "Limits")
# =====================================================================================


def chain_step(chain_key: bytes) -> tuple[bytes, bytes]:
    """sender_keys.md "The chain and the keys": (seed, next chain key)."""
    return hmac256(chain_key, b"\x01"), hmac256(chain_key, b"\x02")


def chain_key_at(chain_key: bytes, steps: int) -> bytes:
    for _ in range(steps):
        chain_key = chain_step(chain_key)[1]
    return chain_key


def signing_key_encoding(profile: str, u: bytes) -> bytes:
    return u if profile == "native" else b"\x05" + u


def build_skdm(profile: str, distribution_id: bytes, chain_id: int, iteration: int,
               chain_key: bytes, u: bytes) -> bytes:
    if profile == "native":  # "Native wire formats": 90 bytes, big-endian
        return (b"\x90\x01" + distribution_id + struct.pack(">II", chain_id, iteration)
                + chain_key + u)
    return b"\x33" + (pb_bytes(1, distribution_id) + pb_varint(2, chain_id)
                      + pb_varint(3, iteration) + pb_bytes(4, chain_key)
                      + pb_bytes(5, b"\x05" + u))


def message_keys(profile: str, seed: bytes) -> tuple[bytes, bytes]:
    """(key, iv or nonce) from a seed, per profile."""
    if profile == "native":
        out = hkdf(seed, b"signalish_SenderKeyMessage", 44)
        return out[:32], out[32:]
    out = hkdf(seed, b"WhisperGroup", 48)
    return out[16:], out[:16]


def build_message(profile: str, distribution_id: bytes, chain_id: int, iteration: int,
                  seed: bytes, plaintext: bytes, signing_seed: bytes) -> bytes:
    key, iv = message_keys(profile, seed)
    if profile == "native":
        header = (b"\x91\x01" + distribution_id
                  + struct.pack(">III", chain_id, iteration, len(plaintext) + 16))
        body = header + AESGCM(key).encrypt(iv, plaintext, header)
    else:
        body = b"\x33" + (pb_bytes(1, distribution_id) + pb_varint(2, chain_id)
                          + pb_varint(3, iteration)
                          + pb_bytes(4, aes_cbc_encrypt(key, iv, plaintext)))
    return body + sign(signing_seed, body)


class SenderKeySender:
    """Our own sender key: encrypts plaintexts in order from its iteration."""

    def __init__(self, profile: str, distribution_id: bytes, chain_id: int, chain_key: bytes,
                 signing_seed: bytes, iteration: int = 0) -> None:
        self.profile, self.distribution_id, self.chain_id = profile, distribution_id, chain_id
        self.chain_key, self.iteration, self.signing_seed = chain_key, iteration, signing_seed
        self.u = public_u(signing_seed)

    def distribution_message(self) -> bytes:
        return build_skdm(self.profile, self.distribution_id, self.chain_id, self.iteration,
                          self.chain_key, self.u)

    def encrypt(self, plaintext: bytes) -> tuple[int, bytes]:
        seed, self.chain_key = chain_step(self.chain_key)
        iteration, self.iteration = self.iteration, self.iteration + 1
        return iteration, build_message(self.profile, self.distribution_id, self.chain_id,
                                        iteration, seed, plaintext, self.signing_seed)


# --- parsing (sender_keys.md "libsignal wire formats", "Native wire formats") ----------


def libsignal_version(r: Reader) -> int:
    """sender_keys.md: only the high nibble is checked; 3 is accepted, below 3
    is "too old", above 3 UnknownVersion.  The docs give no class name for
    "too old"; this reference calls it UnknownVersion as well (a finding)."""
    version = r.take(1)[0]
    if version >> 4 < 3:
        raise Refused("UnknownVersion", "too old")
    if version >> 4 > 3:
        raise Refused("UnknownVersion")
    return version


def parse_skdm(profile: str, data: bytes) -> dict[str, Any]:
    r = Reader(data)
    if profile == "native":
        tag = r.take(1)[0]
        if tag != 0x90:
            raise Refused("UnexpectedType")
        if r.take(1)[0] != 0x01:
            raise Refused("UnknownVersion")
        out: dict[str, Any] = {"distribution_id": r.take(16)}
        out["chain_id"], out["iteration"] = struct.unpack(">II", r.take(8))
        out["chain_key"], out["u"] = r.take(32), r.take(32)
        if r.left():
            raise Refused("TrailingBytes")
    else:
        libsignal_version(r)
        out = {"distribution_id": r.bytes_field(1, 16), "chain_id": r.u32_field(2),
               "iteration": r.u32_field(3), "chain_key": r.bytes_field(4, 32)}
        key = r.bytes_field(5, 33)
        if r.left():
            raise Refused("TrailingBytes")
        if key[0] != 0x05:
            raise Refused("InvalidKey", "key type byte")
        out["u"] = key[1:]
    if not acceptable_u(out["u"]):
        raise Refused("InvalidKey")
    return out


def parse_message(profile: str, data: bytes,
                  max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> dict[str, Any]:
    r = Reader(data)
    if profile == "native":
        tag = r.take(1)[0]
        if tag != 0x91:
            raise Refused("UnexpectedType")
        if r.take(1)[0] != 0x01:
            raise Refused("UnknownVersion")
        out: dict[str, Any] = {"distribution_id": r.take(16)}
        out["chain_id"], out["iteration"], length = struct.unpack(">III", r.take(12))
        if not 16 <= length <= max_message_size + 16:
            raise Refused("InvalidLength")
        out["ciphertext"] = r.take(length)
    else:
        libsignal_version(r)
        out = {"distribution_id": r.bytes_field(1, 16), "chain_id": r.u32_field(2),
               "iteration": r.u32_field(3)}
        out["ciphertext"] = r.bytes_field(4)
        n = len(out["ciphertext"])
        if n < 16 or n > max_message_size + 16 or n % 16:
            raise Refused("InvalidLength")
    out["signed"] = data[:r.pos]
    out["signature"] = r.take(64)
    if r.left():
        raise Refused("TrailingBytes")
    return out


# --- the receiver (sender_keys.md "Rules", "Decrypting") -------------------------------


class SenderKeyReceiver:
    """A member's records of one sender, one per distribution id (GroupCipher's view).

    A state: chain id, ``iteration`` (that of ``chain_key``, the next one
    expected), ``floor`` (below it every key is gone), the signing key u and
    the stored seeds of skipped iterations, ascending."""

    def __init__(self, profile: str, limits: dict[str, int]) -> None:
        self.profile, self.limits = profile, limits
        self.records: dict[bytes, list[dict[str, Any]]] = {}

    def process(self, skdm: bytes) -> bytes:
        m = parse_skdm(self.profile, skdm)
        distribution_id: bytes = m["distribution_id"]
        states = self.records.setdefault(m["distribution_id"], [])
        for state in states:
            if state["chain_id"] == m["chain_id"]:
                if state["u"] == m["u"]:  # same chain and key: to the front, unchanged
                    states.remove(state)
                    states.insert(0, state)
                    return distribution_id
                states.remove(state)  # same chain id, another key: replaced
                break
        states.insert(0, {"chain_id": m["chain_id"], "iteration": m["iteration"],
                          "floor": m["iteration"], "chain_key": m["chain_key"],
                          "u": m["u"], "keys": {}})
        del states[self.limits["max_states"]:]
        return distribution_id

    def decrypt(self, data: bytes) -> bytes:
        """Everything on a copy; the copy is kept only if every check passed."""
        trial = copy.deepcopy(self.records)
        plaintext = self._decrypt(trial, data)
        self.records = trial
        return plaintext

    def _decrypt(self, records: dict[bytes, list[dict[str, Any]]], data: bytes) -> bytes:
        form = "spec" if self.profile == "native" else "libsignal"
        m = parse_message(self.profile, data,
                          self.limits.get("max_message_size", DEFAULT_MAX_MESSAGE_SIZE))
        states = records.get(m["distribution_id"])
        if states is None:  # GroupCipher finds no record for that distribution id
            raise Refused("NoSession", "no record for the distribution id")
        state = next((s for s in states if s["chain_id"] == m["chain_id"]), None)
        if state is None:
            raise Refused("NoSession", "no state with the chain id")
        if not xeddsa_verify(state["u"], m["signed"], m["signature"], form):
            raise Refused("AuthenticationError", "signature")
        n = m["iteration"]
        if n < state["iteration"]:
            if n in state["keys"]:
                seed = state["keys"].pop(n)
            elif n < state["floor"]:
                raise Refused("MessageKeyEvicted")
            else:
                raise Refused("DuplicateMessage")
        else:
            if n - state["iteration"] > self.limits["max_forward_jump"]:
                raise Refused("TooFarAhead")
            ck = state["chain_key"]
            for skipped in range(state["iteration"], n):
                state["keys"][skipped], ck = chain_step(ck)
            seed, state["chain_key"] = chain_step(ck)
            state["iteration"] = n + 1
            keys = sorted(state["keys"])
            excess = len(keys) - self.limits["max_message_keys"]
            if excess > 0:
                for old in keys[:excess]:
                    del state["keys"][old]
                state["floor"] = keys[excess - 1] + 1
            state["keys"] = dict(sorted(state["keys"].items()))
        key, iv = message_keys(self.profile, seed)
        if self.profile == "native":
            try:
                return AESGCM(key).decrypt(iv, m["ciphertext"], m["signed"][:30])
            except InvalidTag:
                raise Refused("AuthenticationError", "AES-GCM") from None
        return aes_cbc_decrypt(key, iv, m["ciphertext"])


# =====================================================================================
# Sealed sender (docs/sealed_sender.md; FINDINGS.md "Certificates",
# "UnidentifiedSenderMessageContent", "Sealed sender v1", "Sealed sender v2")
# =====================================================================================

#: FINDINGS.md "UnidentifiedSenderMessageContent": CiphertextMessageType -> USMC type.
USMC_TYPE = {3: 1, 2: 2, 7: 7, 8: 8}
USMC_TYPE_BACK = {v: k for k, v in USMC_TYPE.items()}


def key33(u: bytes) -> bytes:
    return b"\x05" + u


def server_certificate(key_id: int, server_seed: bytes, trust_root_seed: bytes) -> bytes:
    data = pb_varint(1, key_id) + pb_bytes(2, key33(public_u(server_seed)))
    return pb_bytes(1, data) + pb_bytes(2, sign(trust_root_seed, data))


def sender_certificate(sender: dict[str, Any], server_cert: bytes, server_seed: bytes) -> bytes:
    data = b""
    if sender["e164"] is not None:
        data += pb_bytes(1, sender["e164"].encode())
    data += (pb_varint(2, sender["device_id"]) + pb_fixed64(3, sender["expiration"])
             + pb_bytes(4, key33(public_u(bytes.fromhex(sender["identity_seed"]))))
             + pb_bytes(5, server_cert) + pb_bytes(6, sender["uuid"].encode()))
    return pb_bytes(1, data) + pb_bytes(2, sign(server_seed, data))


def usmc(message_type: int, sender_cert: bytes, contents: bytes, content_hint: int,
         group_id: bytes | None) -> bytes:
    out = (pb_varint(1, USMC_TYPE[message_type]) + pb_bytes(2, sender_cert)
           + pb_bytes(3, contents))
    if content_hint:
        out += pb_varint(4, content_hint)
    if group_id is not None:
        out += pb_bytes(5, group_id)
    return out


def parse_usmc(data: bytes) -> dict[str, Any]:
    """Only for messages that authenticated: the fields we compare."""
    f = pb_parse(data)
    if 1 not in f or 2 not in f or 3 not in f or f[1] not in USMC_TYPE_BACK:
        raise Refused("InvalidEncoding", "USMC")
    return {"message_type": USMC_TYPE_BACK[f[1]], "sender_certificate": f[2],
            "contents": f[3], "content_hint": f.get(4, 0), "group_id": f.get(5)}


def parse_sender_certificate(data: bytes) -> dict[str, Any]:
    outer = pb_parse(data)
    cert = pb_parse(outer[1])
    signer = pb_parse(cert[5])
    signer_data = pb_parse(signer[1])
    return {"data": outer[1], "signature": outer[2], "e164": cert.get(1),
            "device_id": cert[2], "expiration": cert[3], "identity_key": cert[4],
            "uuid": cert[6].decode(), "server_data": signer[1],
            "server_signature": signer[2], "server_key_id": signer_data[1],
            "server_key": signer_data[2]}


def validate_certificate(sender_cert: bytes, trust_root_u: bytes, now: int) -> None:
    """sealed_sender.md step 4: root signed the server certificate, its key
    signed the sender certificate (XEdDSA, libsignal form), then now <= expiration."""
    c = parse_sender_certificate(sender_cert)
    if not xeddsa_verify(trust_root_u, c["server_data"], c["server_signature"], "libsignal"):
        raise Refused("InvalidCertificate", "server certificate signature")
    server_key = c["server_key"]
    if len(server_key) != 33 or server_key[0] != 5 or not xeddsa_verify(
            server_key[1:], c["data"], c["signature"], "libsignal"):
        raise Refused("InvalidCertificate", "sender certificate signature")
    if now > c["expiration"]:
        raise Refused("CertificateExpired")


# --- v1 (sealed_sender.md "Cryptography", v1) -------------------------------------------


def v1_ephemeral_keys(dh: bytes, recipient33: bytes, ephemeral33: bytes) -> tuple[bytes, ...]:
    out = hkdf(dh, b"", 96, salt=b"UnidentifiedDelivery" + recipient33 + ephemeral33)
    return out[:32], out[32:64], out[64:]


def v1_static_keys(dh: bytes, chain: bytes, static: bytes) -> tuple[bytes, bytes]:
    out = hkdf(dh, b"", 96, salt=chain + static)
    return out[32:64], out[64:]


def seal_v1(usmc_bytes: bytes, recipient_u: bytes, sender_seed: bytes,
            ephemeral_private: bytes) -> bytes:
    e_pub = x25519_public(clamp(ephemeral_private))
    r33, e33 = key33(recipient_u), key33(e_pub)
    s33 = key33(public_u(sender_seed))
    chain, k1, m1 = v1_ephemeral_keys(x25519(clamp(ephemeral_private), recipient_u), r33, e33)
    enc = aes_ctr(k1, s33)
    static = enc + hmac256(m1, enc)[:10]
    k2, m2 = v1_static_keys(x25519(x25519_private(sender_seed), recipient_u), chain, static)
    enc = aes_ctr(k2, usmc_bytes)
    body = enc + hmac256(m2, enc)[:10]
    return b"\x11" + pb_bytes(1, e33) + pb_bytes(2, static) + pb_bytes(3, body)


def open_v1(data: bytes, recipient_seed: bytes) -> bytes:
    r = Reader(data)
    if r.take(1)[0] != 0x11:
        raise Refused("UnknownVersion")
    e33, static, body = r.bytes_field(1, 33), r.bytes_field(2, 43), r.bytes_field(3)
    if r.left():
        raise Refused("TrailingBytes")
    if len(body) < 10:
        raise Refused("InvalidLength")
    if e33[0] != 5:
        raise Refused("AuthenticationError", "ephemeral key type")
    r_priv = x25519_private(recipient_seed)
    r33 = key33(x25519_public(r_priv))
    chain, k1, m1 = v1_ephemeral_keys(x25519(r_priv, e33[1:]), r33, e33)
    if not hmac.compare_digest(hmac256(m1, static[:33])[:10], static[33:]):
        raise Refused("AuthenticationError", "static MAC")
    s33 = aes_ctr(k1, static[:33])
    if s33[0] != 5:
        raise Refused("AuthenticationError", "static key type")
    k2, m2 = v1_static_keys(x25519(r_priv, s33[1:]), chain, static)
    if not hmac.compare_digest(hmac256(m2, body[:-10])[:10], body[-10:]):
        raise Refused("AuthenticationError", "body MAC")
    content = aes_ctr(k2, body[:-10])
    # sealed_sender.md "What the receiver checks" 3: the decrypted static key
    # must be the certificate's identity key.
    cert = parse_sender_certificate(parse_usmc(content)["sender_certificate"])
    if cert["identity_key"] != s33:
        raise Refused("AuthenticationError", "certificate key is not the static key")
    return content


# --- v2 (sealed_sender.md "Cryptography", v2; "Formats") --------------------------------


def service_id_fixed(service_id: str) -> bytes:
    """FINDINGS.md / sealed_sender.md: 17 bytes, 0x00 ACI / 0x01 PNI || UUID bytes."""
    if service_id.startswith("PNI:"):
        return b"\x01" + uuidlib.UUID(service_id[4:]).bytes
    return b"\x00" + uuidlib.UUID(service_id).bytes


def service_id_string(fixed: bytes) -> str:
    u = str(uuidlib.UUID(bytes=fixed[1:]))
    return u if fixed[0] == 0 else f"PNI:{u}"


def v2_ephemeral(m: bytes) -> bytes:
    """E's private key: r[:32] of HKDF(M, "Sealed Sender v2: r (2023-08)", 64)."""
    return hkdf(m, b"Sealed Sender v2: r (2023-08)", 64)[:32]


def v2_body_key(m: bytes) -> bytes:
    return hkdf(m, b"Sealed Sender v2: K", 32)


def v2_c(m: bytes, dh: bytes, e33: bytes, r33: bytes) -> bytes:
    pad = hkdf(dh + e33 + r33, b"Sealed Sender v2: DH", 32)
    return bytes(a ^ b for a, b in zip(m, pad))


def v2_at(dh: bytes, e33: bytes, c: bytes, s33: bytes, r33: bytes) -> bytes:
    return hkdf(dh + e33 + c + s33 + r33, b"Sealed Sender v2: DH-sender", 16)


def seal_v2(usmc_bytes: bytes, m: bytes, recipients: list[dict[str, Any]],
            excluded: list[str], sender_seed: bytes) -> bytes:
    e_priv = clamp(v2_ephemeral(m))
    e_pub = x25519_public(e_priv)
    e33 = key33(e_pub)
    s_priv = x25519_private(sender_seed)
    s33 = key33(x25519_public(s_priv))
    body = AESGCMSIV(v2_body_key(m)).encrypt(bytes(12), usmc_bytes, None)
    out = b"\x23" + varint(len(recipients) + len(excluded))
    for rec in recipients:
        r_u = public_u(bytes.fromhex(rec["identity_seed"]))
        r33 = key33(r_u)
        out += service_id_fixed(rec["service_id"])
        devices = rec["devices"]
        for i, (device_id, registration_id) in enumerate(devices):
            assert 0 <= registration_id <= 0x3FFF
            more = 0x8000 if i + 1 < len(devices) else 0
            out += varint(device_id) + struct.pack(">H", registration_id | more)
        c = v2_c(m, x25519(e_priv, r_u), e33, r33)
        out += c + v2_at(x25519(s_priv, r_u), e33, c, s33, r33)
    for sid in excluded:
        out += service_id_fixed(sid) + b"\x00"
    return out + e_pub + body


def split_v2(sent: bytes) -> dict[str, Any]:
    """What a server does with a SentMessage: recipients (in order, with their
    devices and the ReceivedMessage for them) and the excluded service ids."""
    r = Reader(sent)
    if r.take(1)[0] != 0x23:
        raise Refused("UnknownVersion")
    count = r.varint()
    entries: list[tuple[str, list[tuple[int, int]], bytes]] = []
    excluded: list[str] = []
    for _ in range(count):
        sid = service_id_string(r.take(17))
        devices: list[tuple[int, int]] = []
        device_id = r.varint()
        if device_id == 0:
            excluded.append(sid)
            continue
        while True:
            reg = struct.unpack(">H", r.take(2))[0]
            devices.append((device_id, reg & 0x3FFF))
            if not reg & 0x8000:
                break
            device_id = r.varint()
        entries.append((sid, devices, r.take(48)))
    shared = sent[r.pos:]
    if len(shared) < 32 + 16:
        raise Refused("TruncatedInput")
    return {"recipients": {sid: {"devices": devices, "received": b"\x22" + key + shared}
                           for sid, devices, key in entries},
            "order": [sid for sid, _, _ in entries], "excluded": excluded}


def open_v2(data: bytes, recipient_seed: bytes) -> bytes:
    r = Reader(data)
    if r.take(1)[0] != 0x22:
        raise Refused("UnknownVersion")
    c, at, e_pub = r.take(32), r.take(16), r.take(32)
    body = r.take(r.left())
    if len(body) < 16:
        raise Refused("TruncatedInput")
    r_priv = x25519_private(recipient_seed)
    r33 = key33(x25519_public(r_priv))
    e33 = key33(e_pub)
    m = v2_c(c, x25519(r_priv, e_pub), e33, r33)  # XOR is its own inverse
    if not hmac.compare_digest(x25519_public(clamp(v2_ephemeral(m))), e_pub):
        raise Refused("AuthenticationError", "ephemeral key")
    try:
        content = AESGCMSIV(v2_body_key(m)).decrypt(bytes(12), body, None)
    except InvalidTag:
        raise Refused("AuthenticationError", "AES-GCM-SIV") from None
    s33 = parse_sender_certificate(parse_usmc(content)["sender_certificate"])["identity_key"]
    if len(s33) != 33 or s33[0] != 5:
        raise Refused("AuthenticationError", "sender key")
    if not hmac.compare_digest(v2_at(x25519(r_priv, s33[1:]), e33, c, s33, r33), at):
        raise Refused("AuthenticationError", "authentication tag")
    return content


def unseal(data: bytes, recipient_seed: bytes) -> bytes:
    """sealed_sender.md ``unseal``: exact version byte 0x11 (v1) or 0x22 (v2)."""
    if not data:
        raise Refused("TruncatedInput")
    if data[0] == 0x11:
        return open_v1(data, recipient_seed)
    if data[0] == 0x22:
        return open_v2(data, recipient_seed)
    raise Refused("UnknownVersion")
