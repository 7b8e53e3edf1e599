"""An independent reference of signalish's profiles, for checking vectors.

Written only from Signal's X3DH, PQXDH and Double Ratchet specifications,
RFC 9106, FIPS 203, the CRYSTALS-Kyber round-3 specification (v3.02) and
signalish's documentation (docs/profiles.md, docs/ratchet.md,
docs/formats.md, docs/libsignal.md, docs/sealed_backup_safety.md), sharing
no code with signalish.  Plain, not fast: states are dictionaries, and a
party is deep-copied before every delivery so that a refusal changes nothing.

The three profiles: ``native``, ``libsignal_v3`` and ``libsignal_v4``
(libsignal protocol version 4 without SPQR: version 3 plus a Kyber1024
prekey in every session, libsignal.md "The handshake of version 4").  The
KEMs come from outside signalish: ML-KEM-1024 from ``cryptography``
(OpenSSL), and libsignal's Kyber1024, which is round-3 CRYSTALS-Kyber and
not ML-KEM, from kyber-py's round-3 implementation (``kyber_py.kyber``),
run as round 3 specifies it (Algorithms 8 and 9), not as ML-KEM plus a hash
(the way signalish computes it).  Kyber prekeys are listed, like ML-KEM
ones, by their FIPS 203 seed d || z: FIPS 203 KeyGen_internal (kyber-py's
``ML_KEM_1024.key_derive``) expands it into a decapsulation key dk_PKE || ek
|| H(ek) || z, which is byte for byte round 3's secret key sk' || pk || H(pk)
|| z (FIPS 203 section 1.3 changed no encoding), and round-3 Dec runs on it.

It recomputes every vector kind that depends on signalish's own choices:

* a conversation: every message each party sends, byte for byte; every
  delivery's plaintext or the exact name of the error that refuses it; and
  at the end each party's serialized SessionRecord, byte for byte;
* a handshake: the bundle bytes (with their signatures), SK, AD and the
  initial header, from the listed private keys and ids;
* a backup: the Argon2id output, the contents and the whole blob, from the
  listed salt, nonce and parameters.

Section references ("ratchet.md, Routing") name the paragraph each rule
comes from.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import struct
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from kyber_py.kyber.default_parameters import DEFAULT_PARAMETERS  # type: ignore[import-untyped]
from kyber_py.kyber.kyber import Kyber  # type: ignore[import-untyped]
from kyber_py.ml_kem import ML_KEM_1024  # type: ignore[import-untyped]

PROFILES = {
    "native": {"prefix": b"", "kem_prefix": b"", "kem": "ML-KEM-1024",
               "x3dh": b"signalish_X3DH_CURVE25519_SHA-256",
               "pqxdh": b"signalish_PQXDH_CURVE25519_SHA-256_ML-KEM-1024", "sk": 32,
               "ratchet": b"signalish_Ratchet", "version": None},
    "libsignal_v3": {"prefix": b"\x05", "kem_prefix": None, "kem": None,
                     "x3dh": b"WhisperText", "pqxdh": None, "sk": 64,
                     "ratchet": b"WhisperRatchet", "version": 0x34},
    # libsignal.md "The handshake of version 4": RK || CK || 32 bytes for SPQR.
    "libsignal_v4": {"prefix": b"\x05", "kem_prefix": b"\x08", "kem": "Kyber1024",
                     "x3dh": b"WhisperText",
                     "pqxdh": b"WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024", "sk": 96,
                     "ratchet": b"WhisperRatchet", "version": 0x44},
}
LIBSIGNAL = ("libsignal_v3", "libsignal_v4")
MAX_COUNTER = 0xFFFFFFFF
NONE, EVICTED, EXPIRED = 0, 1, 2  # formats.md: drop reasons
REASON_ERROR = {EVICTED: "MessageKeyEvicted", EXPIRED: "MessageKeyExpired"}


class Refused(Exception):
    """The reference refuses an operation; ``name`` is signalish's error class."""

    def __init__(self, name: str, why: str = "") -> None:
        super().__init__(f"{name}: {why}" if why else name)
        self.name = name


# --- primitives, straight from RFC 5869 / RFC 7748 / RFC 8032 / FIPS 203 via pyca -----


def hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out, i = out + block, i + 1
    return out[:length]


def mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def dh(private: bytes, public: bytes) -> bytes:
    out = x25519.X25519PrivateKey.from_private_bytes(private).exchange(
        x25519.X25519PublicKey.from_public_bytes(public))
    if out == bytes(32):
        raise Refused("AuthenticationError", "all-zero DH")
    return out


def public_of(private: bytes) -> bytes:
    return x25519.X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def identity_private(seed: bytes) -> bytes:
    """profiles.md: the X25519 scalar is clamp(SHA-512(seed)[:32])."""
    a = bytearray(hashlib.sha512(seed).digest()[:32])
    a[0] &= 248
    a[31] = (a[31] & 127) | 64
    return bytes(a)


def kem_public(seed: bytes) -> bytes:
    """FIPS 203 ML-KEM-1024.KeyGen_internal(d, z) from the seed d || z: ek.
    Round-3 Kyber1024 keys have the same 1568-byte public key format."""
    return mlkem.MLKEM1024PrivateKey.from_seed_bytes(seed).public_key().public_bytes_raw()


def kyber_decapsulation_key(seed: bytes) -> bytes:
    """The 3168-byte key round-3 Kyber.CCAKEM.Dec takes, from the FIPS 203
    seed: ML-KEM's dk = dk_PKE || ek || H(ek) || z, round 3's sk layout."""
    ek, dk = ML_KEM_1024.key_derive(seed)
    assert ek == kem_public(seed) and dk[1536:1536 + 1568] == ek
    return dk


def kyber_round3(coins: bytes | None = None) -> Kyber:
    """A fresh kyber-py round-3 Kyber1024 (its module-level instance is
    shared); with ``coins``, its one draw of 32 random bytes returns them."""
    kyber = Kyber(DEFAULT_PARAMETERS["kyber_1024"])
    if coins is not None:
        draws = [coins]

        def random_bytes(n: int) -> bytes:
            assert n == 32 and draws, "round-3 encapsulation draws 32 bytes once"
            return draws.pop()

        kyber.random_bytes = random_bytes
    return kyber


def kyber_encapsulate(public: bytes, coins: bytes) -> tuple[bytes, bytes]:
    """Round-3 Kyber1024.CCAKEM.Enc (v3.02 Algorithm 8) whose random m is
    ``coins`` (it then hashes m = H(m)): (ciphertext, shared secret)."""
    secret, ciphertext = kyber_round3(coins).encaps(public)  # kyber-py returns (K, c)
    return ciphertext, secret


def kem_decapsulate(profile: str, seed: bytes, ciphertext: bytes) -> bytes:
    """The profile's KEM: ML-KEM-1024 (FIPS 203, OpenSSL via pyca), or
    round-3 Kyber1024 (libsignal_v4; v3.02 Algorithm 9, kyber-py)."""
    if PROFILES[profile]["kem"] == "Kyber1024":
        return kyber_round3().decaps(kyber_decapsulation_key(seed), ciphertext)
    return mlkem.MLKEM1024PrivateKey.from_seed_bytes(seed).decapsulate(ciphertext)


def gcm_open(key: bytes, nonce: bytes, data: bytes, ad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(nonce, data, ad)
    except Exception:  # noqa: BLE001 - any failure is one authentication failure
        raise Refused("AuthenticationError", "AEAD") from None


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


def u64(v: int) -> bytes:
    return struct.pack(">Q", v)


def var(data: bytes) -> bytes:
    return u32(len(data)) + data


def digest16(body: bytes) -> bytes:
    """formats.md: stored state ends with the first 16 bytes of SHA-256 of all before."""
    return body + hashlib.sha256(body).digest()[:16]


# --- bundles (formats.md tags 0x10..0x20, profiles.md signatures) ----------------------


def prekey_signature(profile: str, seed: bytes, kind: int, key_id: int, encoded: bytes) -> bytes:
    """profiles.md: an Ed25519 signature by the identity seed (sign bit 0, so
    also the XEdDSA one); native signs context, kind, id and key, libsignal
    Encode(key) only (libsignal.md: a Kyber prekey's is over 0x08 || key)."""
    message = encoded if profile in LIBSIGNAL else (
        b"signalish prekey signature v1\x00" + bytes([kind]) + u32(key_id) + encoded)
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed).sign(message)


def build_bundle(profile: str, identity_seed: bytes, registration_id: int, device_id: int,
                 spk: tuple[int, bytes], otk: tuple[int, bytes] | None,
                 kem: tuple[int, bytes, bool] | None) -> bytes:
    prefix = PROFILES[profile]["prefix"]
    out = b"\x20\x01" + u32(registration_id) + u32(device_id)
    out += public_of(identity_private(identity_seed))
    spk_id, spk_private = spk
    spk_pub = public_of(spk_private)
    out += u32(spk_id) + spk_pub + prekey_signature(profile, identity_seed, 1, spk_id,
                                                     prefix + spk_pub)
    if otk is None:
        out += b"\x00"
    else:
        otk_pub = public_of(otk[1])
        out += b"\x01" + u32(otk[0]) + otk_pub
        if profile in LIBSIGNAL:  # unsigned, as in X3DH
            out += b"\x00"
        else:
            out += b"\x01" + prekey_signature(profile, identity_seed, 2, otk[0], otk_pub)
    if kem is None:
        out += b"\x00"
    else:
        kem_id, kem_seed, last_resort = kem
        public = kem_public(kem_seed)
        out += b"\x01" + u32(kem_id) + bytes([last_resort]) + public
        out += prekey_signature(profile, identity_seed, 4 if last_resort else 3, kem_id,
                                PROFILES[profile]["kem_prefix"] + public)
    return out


def parse_bundle(data: bytes) -> dict[str, Any]:
    assert data[:2] == b"\x20\x01"
    pos = 2 + 8
    bundle: dict[str, Any] = {"identity": data[pos:pos + 32]}
    pos += 32
    bundle["spk_id"], bundle["spk"] = struct.unpack(">I", data[pos:pos + 4])[0], data[pos + 4:pos + 36]
    pos += 36 + 64
    bundle["otk_id"] = bundle["otk"] = None
    if data[pos] == 1:
        bundle["otk_id"] = struct.unpack(">I", data[pos + 1:pos + 5])[0]
        bundle["otk"] = data[pos + 5:pos + 37]
        pos += 37
        pos += 1 + (64 if data[pos] == 1 else 0)
    else:
        pos += 1
    bundle["kem_id"] = bundle["kem"] = None
    if data[pos] == 1:
        bundle["kem_id"] = struct.unpack(">I", data[pos + 1:pos + 5])[0]
        bundle["kem"] = data[pos + 6:pos + 6 + 1568]  # after id and last-resort flag
    return bundle


def initial_header(ik_a: bytes, ek_a: bytes, spk_id: int, otk_id: int | None,
                   kem_id: int | None, ct: bytes | None) -> bytes:
    """formats.md tag 0x30, in its tagged form."""
    out = b"\x30\x01" + ik_a + ek_a + u32(spk_id)
    out += b"\x00" if otk_id is None else b"\x01" + u32(otk_id)
    out += b"\x00" if ct is None else b"\x01" + u32(kem_id or 0) + ct
    return out


# --- libsignal protobuf (libsignal.md) -----------------------------------------------


def varint(v: int) -> bytes:
    out = b""
    while v > 0x7F:
        out += bytes([v & 0x7F | 0x80])
        v >>= 7
    return out + bytes([v])


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        v |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return v, pos


def proto_fields(data: bytes) -> dict[int, Any]:
    fields, pos = {}, 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        if key & 7 == 0:
            fields[key >> 3], pos = read_varint(data, pos)
        else:
            length, pos = read_varint(data, pos)
            fields[key >> 3], pos = data[pos:pos + length], pos + length
    return fields


# --- the ratchet's pieces (ratchet.md, libsignal.md) ----------------------------------


def new_chain(chain_id: bytes, step: int) -> dict[str, Any]:
    """ratchet.md "The window": a remembered receiving chain."""
    return {"id": chain_id, "step": step, "end": None, "lost": None, "floor": 0,
            "reason": NONE, "keys": {}}


def stored_count(s: dict[str, Any]) -> int:
    return sum(len(c["keys"]) for c in s["chains"])


def forget(s: dict[str, Any], chain: dict[str, Any], reason: int, limits: dict[str, int]) -> None:
    s["chains"].remove(chain)
    s["forgotten"].append((chain["id"], reason))
    s["forgotten"] = s["forgotten"][-2 * limits["max_receiving_chains"]:]


def drop_keys(chain: dict[str, Any], numbers: list[int], reason: int) -> None:
    for n in numbers:
        del chain["keys"][n]
    chain["floor"], chain["reason"] = numbers[-1] + 1, reason


def enforce(s: dict[str, Any], now: int, limits: dict[str, int]) -> None:
    """ratchet.md "Applying the limits", in its order."""
    while len(s["chains"]) > limits["max_receiving_chains"]:
        forget(s, s["chains"][0], EVICTED, limits)
    for chain in list(s["chains"]):
        if chain["end"] is not None and s["step"] - chain["step"] > limits["expire_after_steps"]:
            forget(s, chain, EXPIRED, limits)
    for chain in s["chains"]:
        old = []
        for n, (_, at) in chain["keys"].items():  # ascending N
            if now - at < limits["expire_after_seconds"]:
                break
            old.append(n)
        if old:
            drop_keys(chain, old, EXPIRED)
    excess = stored_count(s) - limits["max_stored_keys"]
    for chain in s["chains"]:
        if excess <= 0:
            break
        victims = list(chain["keys"])[:excess]
        if victims:
            drop_keys(chain, victims, EVICTED)
            excess -= len(victims)


def derive(ck: bytes, start: int, until: int, now: int) -> tuple[bytes, dict[int, tuple[bytes, int]]]:
    """KDF_CK from message ``start`` to ``until`` (exclusive): the stored
    (message key, stored at) entries and the chain key at ``until``."""
    keys = {}
    for n in range(start, until):
        keys[n] = (mac(ck, b"\x01"), now)
        ck = mac(ck, b"\x02")
    return ck, keys


# --- a party ----------------------------------------------------------------------------


class Party:
    def __init__(self, profile: str, keys: dict[str, Any], draws: list[str],
                 header_encryption: bool, limits: dict[str, int], max_archived: int) -> None:
        self.profile = profile
        self.p, self.he, self.limits = PROFILES[profile], header_encryption, limits
        self.max_archived = max_archived
        #: libsignal.md: versions 3 and 4 share messages, MAC and ratchet start.
        self.libsignal = profile in LIBSIGNAL
        self.ik = identity_private(bytes.fromhex(keys["identity_seed"]))
        self.ik_pub = public_of(self.ik)
        self.registration_id = keys["registration_id"]
        pre = keys["prekeys"]
        self.spk = {pre["signed"]["id"]: {"private": bytes.fromhex(pre["signed"]["private"]),
                                          "seen": set()}}
        self.otk = {k["id"]: bytes.fromhex(k["private"]) for k in pre["one_time"]}
        self.otk_listed = set(self.otk)
        self.kem = {k["id"]: (bytes.fromhex(k["seed"]), k["last_resort"]) for k in pre["kem"]}
        self.kem_listed = set(self.kem)
        self.draws = [bytes.fromhex(d) for d in draws]
        #: The SessionRecord with the one peer: None, or sessions current first.
        self.record: list[dict[str, Any]] | None = None

    def draw(self) -> bytes:
        return self.draws.pop(0)

    def enc(self, key: bytes) -> bytes:
        return self.p["prefix"] + key

    # X3DH / PQXDH (profiles.md "Key agreement") ------------------------------------------

    def kdf_sk(self, km: bytes, pq: bool) -> bytes:
        return hkdf(b"", b"\xff" * 32 + km, self.p["pqxdh"] if pq else self.p["x3dh"],
                    self.p["sk"])

    def initiate(self, bundle_bytes: bytes, kem: tuple[bytes, bytes] | None) -> None:
        b = parse_bundle(bundle_bytes)
        ek = self.draw()
        km = dh(self.ik, b["spk"]) + dh(ek, b["identity"]) + dh(ek, b["spk"])
        if b["otk"] is not None:
            km += dh(ek, b["otk"])
        if kem is not None:
            km += kem[1]
        sk = self.kdf_sk(km, kem is not None)
        header = initial_header(self.ik_pub, public_of(ek), b["spk_id"], b["otk_id"],
                                b["kem_id"] if kem else None, kem and kem[0])
        session = {"initiated_by_us": True, "pending": header, "remote": b["identity"],
                   "ad": self.enc(self.ik_pub) + self.enc(b["identity"]),
                   "base": public_of(ek), "digest": hashlib.sha256(header).digest(),
                   "state": self.start_ratchet(sk, b["spk"], alice=True),
                   "spk_id": b["spk_id"], "otk_id": b["otk_id"],
                   "kem_id": b["kem_id"] if kem else None, "ct": kem and kem[0],
                   "blocked": False}
        # ratchet.md "Sessions": a new session of ours is current; the oldest go.
        self.record = [session] + (self.record or [])
        del self.record[1 + self.max_archived:]

    def start_ratchet(self, sk: bytes, ratchet_key: bytes, alice: bool) -> dict[str, Any]:
        """ratchet.md "Starting the ratchet"; libsignal.md "Ratchet start"."""
        rk, hka, nhkb = sk[:32], None, None
        if self.he:
            split = hkdf(b"", sk, b"signalish_HeaderKeys", 96)
            rk, hka, nhkb = split[:32], split[32:64], split[64:]
        s: dict[str, Any] = {"rk": rk, "cks": None, "ckr": None, "ns": 0, "nr": 0, "pn": 0,
                             "dhr": None, "hks": None, "hkr": None, "nhks": None, "nhkr": None,
                             "step": 0, "chains": [], "forgotten": []}
        if alice:
            s["dhs"] = self.draw()
            s["dhr"] = ratchet_key
            if self.libsignal:  # Alice keeps SK's chain as her receiving chain, at step 0
                s["ckr"] = sk[32:64]
                s["chains"].append(new_chain(ratchet_key, 0))
            s["rk"], s["cks"], nhks = self.kdf_rk(rk, dh(s["dhs"], ratchet_key))
            if self.he:
                s["hks"], s["nhks"], s["nhkr"] = hka, nhks, nhkb
        else:
            s["dhs"] = ratchet_key
            if self.libsignal:
                s["cks"] = sk[32:64]
            if self.he:
                s["nhks"], s["nhkr"] = nhkb, hka
        return s

    def kdf_rk(self, rk: bytes, dh_out: bytes) -> tuple[bytes, bytes, bytes | None]:
        out = hkdf(rk, dh_out, self.p["ratchet"], 96 if self.he else 64)
        return out[:32], out[32:64], (out[64:] if self.he else None)

    # sending (ratchet.md "KDFs and encryption", formats.md "Messages") -------------------

    def send(self, base: bytes | None, plaintext: bytes) -> bytes:
        if not self.record:
            raise Refused("NoSession", "no session")
        session = self.record[0]
        assert base is None or session["base"] == base, "the current session sends"
        s = session["state"]
        if session["blocked"]:
            raise Refused("StaleSession")
        if s["cks"] is None:
            raise Refused("AwaitingFirstMessage", "cannot send yet")
        mk = mac(s["cks"], b"\x01")
        s["cks"] = mac(s["cks"], b"\x02")
        n, pn = s["ns"], s["pn"]
        s["ns"] += 1
        if self.libsignal:
            keys = hkdf(b"", mk, b"WhisperMessageKeys", 80)
            padder = padding.PKCS7(128).padder()
            encryptor = Cipher(algorithms.AES(keys[:32]), modes.CBC(keys[64:])).encryptor()
            ct = encryptor.update(padder.update(plaintext) + padder.finalize()) \
                + encryptor.finalize()
            version = bytes([self.p["version"]])
            body = (version + b"\x0a\x21\x05" + public_of(s["dhs"]) + b"\x10" + varint(n)
                    + b"\x18" + varint(max(pn, 1) - 1) + b"\x22" + varint(len(ct)) + ct)
            message = body + mac(keys[32:64], self.enc(self.ik_pub)
                                 + self.enc(session["remote"]) + body)[:8]
            if session["pending"] is not None:
                pre = b"" if session["otk_id"] is None else b"\x08" + varint(session["otk_id"])
                pre += b"\x12\x21\x05" + session["base"] + b"\x1a\x21\x05" + self.ik_pub
                pre += b"\x22" + varint(len(message)) + message
                pre += b"\x28" + varint(self.registration_id) + b"\x30" + varint(session["spk_id"])
                if self.profile == "libsignal_v4":  # 7 Kyber prekey id, 8 0x08 || ciphertext
                    pre += b"\x38" + varint(session["kem_id"])
                    pre += b"\x42" + varint(1 + len(session["ct"])) + b"\x08" + session["ct"]
                return version + pre
            return message
        key = mac(mk, b"signalish_MessageKey\x01")
        header = public_of(s["dhs"]) + struct.pack(">II", pn, n)
        if self.he:
            nonce = mac(mk, b"signalish_HeaderNonce")[:12]
            prefix = (b"\x41\x01" + nonce + AESGCM(s["hks"]).encrypt(nonce, header, b"")
                      + u32(len(plaintext) + 16))
        else:
            prefix = b"\x40\x01" + header + u32(len(plaintext) + 16)
        message = prefix + AESGCM(key).encrypt(bytes(12), plaintext, session["ad"] + prefix)
        if session["pending"] is not None:
            return b"\x42\x01" + session["pending"][2:] + u32(len(message)) + message
        return message

    # receiving -----------------------------------------------------------------------

    def receive(self, data: bytes, now: int) -> bytes:
        """One delivery; on refusal nothing changes (ratchet.md)."""
        saved = copy.deepcopy((self.record, self.otk, self.kem, self.spk, self.draws))
        try:
            return self._receive(data, now)
        except Refused:
            self.record, self.otk, self.kem, self.spk, self.draws = saved
            raise

    def _receive(self, data: bytes, now: int) -> bytes:
        header, inner = self.split_prekey(data)
        if header is not None:
            return self.receive_initial(header, inner, now)
        if self.record is None:
            raise Refused("NoSession", "no session with this peer")
        return self.route(inner, now)

    def split_prekey(self, data: bytes) -> tuple[dict[str, Any] | None, bytes]:
        if self.libsignal:
            if data[1] == 0x0A:
                return None, data
            f = proto_fields(data[1:])
            h = {"identity": f[3][1:], "base": f[2][1:], "spk_id": f[6], "otk_id": f.get(1),
                 "kem_id": f.get(7), "ct": None}
            if 8 in f:  # version 4: 0x08 || Kyber ciphertext
                assert f[8][:1] == b"\x08" and len(f[8]) == 1569
                h["ct"] = f[8][1:]
            h["bytes"] = initial_header(h["identity"], h["base"], h["spk_id"], h["otk_id"],
                                        h["kem_id"], h["ct"])
            return h, f[4]
        if data[0] != 0x42:
            return None, data
        pos = 2 + 64 + 4
        h = {"identity": data[2:34], "base": data[34:66],
             "spk_id": struct.unpack(">I", data[66:70])[0], "otk_id": None, "kem_id": None,
             "ct": None}
        if data[pos] == 1:
            h["otk_id"] = struct.unpack(">I", data[pos + 1:pos + 5])[0]
            pos += 5
        else:
            pos += 1
        if data[pos] == 1:
            h["kem_id"] = struct.unpack(">I", data[pos + 1:pos + 5])[0]
            h["ct"] = data[pos + 5:pos + 5 + 1568]
            pos += 5 + 1568
        else:
            pos += 1
        h["bytes"] = b"\x30\x01" + data[2:pos]
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        return h, data[pos + 4:pos + 4 + length]

    def receive_initial(self, h: dict[str, Any], inner: bytes, now: int) -> bytes:
        """ratchet.md "Sessions": an initial message for a known session must
        repeat its header exactly; otherwise a new session is built."""
        record = self.record or []
        found = [s for s in record if s["base"] == h["base"]]
        if found:
            session = found[0]
            if session["initiated_by_us"] or \
                    hashlib.sha256(h["bytes"]).digest() != session["digest"]:
                raise Refused("AuthenticationError", "changed initial header")
            plaintext = self.decrypt_in(session, self.locate(session, inner), inner, now)
            self.install(session)
            return plaintext
        session = self.respond(h)
        plaintext = self.decrypt_in(session, self.locate(session, inner), inner, now)
        self.consume(h)
        self.record = record
        self.install(session)
        return plaintext

    def respond(self, h: dict[str, Any]) -> dict[str, Any]:
        """X3DH 3.4 with the prekey checks of ratchet.md "Sessions", in order:
        signed prekey, replay of a message without one-time prekeys, one-time
        prekey, KEM prekey."""
        if h["spk_id"] not in self.spk:
            raise Refused("UnknownPreKey")
        if not self.uses_one_time(h) and h["base"] in self.spk[h["spk_id"]]["seen"]:
            raise Refused("PreKeyReplayed")
        if h["otk_id"] is not None and h["otk_id"] not in self.otk:
            raise Refused("PreKeyAlreadyUsed" if h["otk_id"] in self.otk_listed
                          else "UnknownPreKey")
        if h["kem_id"] is not None and h["kem_id"] not in self.kem:
            raise Refused("PreKeyAlreadyUsed" if h["kem_id"] in self.kem_listed
                          else "UnknownPreKey")
        spk = self.spk[h["spk_id"]]["private"]
        km = dh(spk, h["identity"]) + dh(self.ik, h["base"]) + dh(spk, h["base"])
        if h["otk_id"] is not None:
            km += dh(self.otk[h["otk_id"]], h["base"])
        if h["ct"] is not None:
            km += kem_decapsulate(self.profile, self.kem[h["kem_id"]][0], h["ct"])
        sk = self.kdf_sk(km, h["ct"] is not None)
        return {"initiated_by_us": False, "pending": None, "remote": h["identity"],
                "ad": self.enc(h["identity"]) + self.enc(self.ik_pub), "base": h["base"],
                "digest": hashlib.sha256(h["bytes"]).digest(),
                "state": self.start_ratchet(sk, spk, alice=False), "blocked": False}

    def uses_one_time(self, h: dict[str, Any]) -> bool:
        return h["otk_id"] is not None or (
            h["kem_id"] is not None and h["kem_id"] in self.kem and not self.kem[h["kem_id"]][1])

    def consume(self, h: dict[str, Any]) -> None:
        if not self.uses_one_time(h):
            self.spk[h["spk_id"]]["seen"].add(h["base"])
        if h["otk_id"] is not None:
            del self.otk[h["otk_id"]]
        if h["kem_id"] is not None and not self.kem[h["kem_id"]][1]:
            del self.kem[h["kem_id"]]

    def install(self, session: dict[str, Any]) -> None:
        """ratchet.md "Sessions", rule 1, with the simultaneous-initiation
        tie-break: the smaller base key compared as bytes."""
        record = self.record
        assert record is not None
        if session not in record:
            record.append(session)
        current = record[0]
        record.remove(session)
        if (current is not session and current["initiated_by_us"]
                and current["pending"] is not None and current["base"] < session["base"]):
            record.insert(1, session)
        else:
            record.insert(0, session)
        del record[1 + self.max_archived:]

    # routing (ratchet.md "Routing") ---------------------------------------------------

    def route(self, data: bytes, now: int) -> bytes:
        record = self.record
        assert record is not None
        located = [(s, self.locate(s, data)) for s in record]
        owners = [(s, w) for s, w in located if w is not None and w["known"]]
        if owners:
            first: Refused | None = None
            for session, where in owners:
                try:
                    plaintext = self.decrypt_in(session, where, data, now)
                except Refused as error:
                    first = first or error
                    continue
                return self.promote(session, plaintext)
            assert first is not None
            raise first
        budget = 2 * (self.limits["max_skip"] + 1)
        too_far: Refused | None = None
        for session, where in located:
            if where is None:
                continue
            cost = where["n"] + 1 + self.extra_cost(session, data)
            if cost > budget:
                too_far = too_far or Refused("TooFarAhead", "derivation budget")
                continue
            budget -= cost
            trial = copy.deepcopy(session)
            try:
                plaintext = self.decrypt_in(trial, where, data, now)
            except Refused as error:
                if error.name == "TooFarAhead":
                    too_far = too_far or error
                    continue
                if error.name == "AuthenticationError":
                    continue
                raise
            session.clear()
            session.update(trial)
            return self.promote(session, plaintext)
        if too_far is not None:
            raise too_far
        raise Refused("AuthenticationError", "no session decrypts it")

    def extra_cost(self, session: dict[str, Any], data: bytes) -> int:
        """Chain steps besides the Double Ratchet's that trying ``data`` in
        ``session`` takes before its MAC can be checked (none here; SPQR's,
        spqr_reference.py)."""
        return 0

    def promote(self, session: dict[str, Any], plaintext: bytes) -> bytes:
        """Rule 2: a message that decrypts in an archived session makes it current."""
        assert self.record is not None
        self.record.remove(session)
        self.record.insert(0, session)
        return plaintext

    def header_of(self, s: dict[str, Any], data: bytes) -> tuple[bytes, bytes, int, int] | None:
        """(chain id, ratchet key, PN, N), or None if this session cannot read it."""
        if self.libsignal:
            f = proto_fields(data[1:-8])
            return f[1][1:], f[1][1:], f[3] + 1, f[2]  # libsignal.md: PN = wire + 1
        if self.he != (data[0] == 0x41):
            return None
        if not self.he:
            pn, n = struct.unpack(">II", data[34:42])
            return data[2:34], data[2:34], pn, n
        # ratchet.md "Header encryption, receiving": the keys in this order.
        current = s["chains"][-1]["id"] if s["ckr"] is not None else None
        candidates = [current, s["nhkr"]]
        candidates += [c["id"] for c in reversed(s["chains"]) if c["id"] != current]
        candidates += [chain_id for chain_id, _ in s["forgotten"]]
        for hk in candidates:
            if hk is None:
                continue
            try:
                header = AESGCM(hk).decrypt(data[2:14], data[14:70], b"")
            except Exception:  # noqa: BLE001
                continue
            pn, n = struct.unpack(">II", header[32:40])
            return hk, header[:32], pn, n
        return None

    def locate(self, session: dict[str, Any], data: bytes) -> dict[str, Any] | None:
        s = session["state"]
        header = self.header_of(s, data)
        if header is None:
            return None
        chain_id, key, pn, n = header
        where = {"id": chain_id, "key": key, "pn": pn, "n": n, "chain": None, "current": False,
                 "forgotten": None}
        for i, chain in enumerate(s["chains"]):
            if chain["id"] == chain_id:
                where["chain"] = chain_id
                where["current"] = s["ckr"] is not None and i == len(s["chains"]) - 1
        if where["chain"] is None:
            where["forgotten"] = next((r for c, r in s["forgotten"] if c == chain_id), None)
        where["known"] = where["chain"] is not None or where["forgotten"] is not None
        return where

    # the ratchet (Double Ratchet 3.5 / 4.3 with ratchet.md's window) -----------------

    def decrypt_in(self, session: dict[str, Any], where: dict[str, Any] | None, data: bytes,
                   now: int) -> bytes:
        if where is None:
            raise Refused("AuthenticationError", "not this session's header")
        s, limits, n = session["state"], self.limits, where["n"]
        if n >= MAX_COUNTER or where["pn"] > MAX_COUNTER:
            raise Refused("TooFarAhead", "beyond the last counter")
        if where["chain"] is not None:
            chain = next(c for c in s["chains"] if c["id"] == where["chain"])
            plaintext = self.in_chain(session, chain, where["current"], n, data, now)
        elif where["forgotten"] is not None:
            raise Refused(REASON_ERROR[where["forgotten"]], "chain dropped")
        else:
            plaintext = self.new_step(session, where, data, now)
        session["pending"] = None
        enforce(s, now, limits)
        return plaintext

    def in_chain(self, session: dict[str, Any], chain: dict[str, Any], current: bool, n: int,
                 data: bytes, now: int) -> bytes:
        """ratchet.md "The window": the verdict for message N of a remembered chain."""
        s, limits = session["state"], self.limits
        if n in chain["keys"]:
            mk, at = chain["keys"][n]
            if now - at >= limits["expire_after_seconds"]:
                raise Refused("MessageKeyExpired")
            plaintext = self.open_body(session, mk, data)
            del chain["keys"][n]
            return plaintext
        if n < chain["floor"]:
            raise Refused(REASON_ERROR[chain["reason"]], "below the floor")
        if chain["end"] is not None and n >= chain["end"]:
            raise Refused("AuthenticationError", "beyond the chain's end")
        if chain["lost"] is not None and n >= chain["lost"]:
            raise Refused("MessageKeyEvicted", "given-up tail")
        if n < (s["nr"] if current else chain["end"]):
            raise Refused("DuplicateMessage")
        if n - s["nr"] > limits["max_skip"]:
            raise Refused("TooFarAhead")
        ck, skipped = derive(s["ckr"], s["nr"], n, now)
        plaintext = self.open_body(session, mac(ck, b"\x01"), data)
        chain["keys"].update(skipped)
        s["ckr"], s["nr"] = mac(ck, b"\x02"), n + 1
        return plaintext

    def new_step(self, session: dict[str, Any], where: dict[str, Any], data: bytes,
                 now: int) -> bytes:
        """DHRatchet: the new chain first (N at most max_skip), the previous
        chain's keys up to PN only after the message authenticated, and at
        most max_skip of them (ratchet.md "Long gaps at the end of a chain")."""
        s, limits, n, pn = session["state"], self.limits, where["n"], where["pn"]
        if n > limits["max_skip"]:
            raise Refused("TooFarAhead", "new chain")
        key = where["key"]
        if int.from_bytes(key, "little") >= 2**255 - 19:  # formats.md: u < p
            raise Refused("AuthenticationError", "bad ratchet key")
        dh_out = dh(s["dhs"], key)  # a low-order key gives zeros: refused
        rk, ckr, nhkr = self.kdf_rk(s["rk"], dh_out)
        ck, skipped = derive(ckr, 0, n, now)
        plaintext = self.open_body(session, mac(ck, b"\x01"), data)
        if s["ckr"] is not None:
            current = s["chains"][-1]
            if current["step"] == 0 and pn == 1:  # libsignal.md: the step-0 chain had none
                pn = 0
            reachable = min(pn, s["nr"] + limits["max_skip"] + 1)  # up to Nr + max_skip
            _, old = derive(s["ckr"], s["nr"], reachable, now)
            current["keys"].update(old)
            current["end"] = max(pn, s["nr"])
            if reachable < pn:
                current["lost"] = reachable
        s["step"] += 1
        chain = new_chain(where["id"], s["step"])
        chain["keys"].update(skipped)
        s["chains"].append(chain)
        s["pn"], s["ns"], s["nr"] = s["ns"], 0, n + 1
        s["dhr"], s["ckr"] = key, mac(ck, b"\x02")
        if self.he:
            s["hks"], s["hkr"], s["nhkr"] = s["nhks"], s["nhkr"], nhkr
        s["dhs"] = self.draw()
        s["rk"], s["cks"], s["nhks"] = self.kdf_rk(rk, dh(s["dhs"], key))
        session["blocked"] = False
        return plaintext

    def open_body(self, session: dict[str, Any], mk: bytes, data: bytes) -> bytes:
        if self.libsignal:
            keys = hkdf(b"", mk, b"WhisperMessageKeys", 80)
            expected = mac(keys[32:64], self.enc(session["remote"]) + self.enc(self.ik_pub)
                           + data[:-8])[:8]
            if not hmac.compare_digest(expected, data[-8:]):
                raise Refused("AuthenticationError", "MAC")
            f = proto_fields(data[1:-8])
            decryptor = Cipher(algorithms.AES(keys[:32]), modes.CBC(keys[64:])).decryptor()
            padded = decryptor.update(f[4]) + decryptor.finalize()
            unpadder = padding.PKCS7(128).unpadder()
            try:
                return unpadder.update(padded) + unpadder.finalize()
            except ValueError:
                raise Refused("AuthenticationError", "padding") from None
        split = 70 + 4 if self.he else 46
        return gcm_open(mac(mk, b"signalish_MessageKey\x01"), bytes(12), data[split:],
                        session["ad"] + data[:split])

    # the SessionRecord (formats.md "SessionRecord", ratchet.md "What a record holds") --

    def record_bytes(self) -> bytes:
        if self.record is None:
            return b""
        out = b"\x50\x02" + var(self.profile.encode()) + bytes([self.max_archived])
        out += u32(len(self.record))
        for session in self.record:
            out += self.session_bytes(session)
        return digest16(out)

    def session_bytes(self, session: dict[str, Any]) -> bytes:
        flags = (session["initiated_by_us"] | (session["pending"] is not None) << 1
                 | session["blocked"] << 2)
        out = bytes([flags]) + self.ik_pub + session["remote"] + var(session["ad"])
        out += session["base"] + session["digest"]
        if session["pending"] is not None:
            out += var(session["pending"])
        for name in ("max_skip", "max_stored_keys", "max_receiving_chains",
                     "expire_after_steps", "expire_after_seconds", "max_message_size"):
            out += u32(self.limits[name])
        s = session["state"]
        optional = ("dhr", "cks", "ckr", "hks", "hkr", "nhks", "nhkr")
        flags = int(self.he)
        for bit, name in enumerate(optional, start=1):
            if s[name] is not None:
                flags |= 1 << bit
        out += bytes([flags]) + s["dhs"] + public_of(s["dhs"]) + s["rk"]
        out += b"".join(s[name] for name in optional if s[name] is not None)
        out += u32(s["ns"]) + u32(s["nr"]) + u32(s["pn"]) + u64(s["step"])
        out += u32(len(s["chains"]))
        for c in s["chains"]:
            out += c["id"] + u64(c["step"])
            out += b"\x00" if c["end"] is None else b"\x01" + u32(c["end"])
            out += b"\x00" if c["lost"] is None else b"\x01" + u32(c["lost"])
            out += u32(c["floor"]) + bytes([c["reason"]]) + u32(len(c["keys"]))
            for n, (mk, at) in c["keys"].items():
                out += u32(n) + mk + u64(at)
        out += u32(len(s["forgotten"]))
        for chain_id, reason in s["forgotten"]:
            out += chain_id + bytes([reason])
        return out


# --- backups (sealed_backup_safety.md) ------------------------------------------------


def backup_contents(identity_seed: bytes, ring: bytes | None, identities: list[tuple[str, bytes]],
                    sessions: list[tuple[str, bytes]]) -> bytes:
    out = b"\x71\x01" + identity_seed
    out += b"\x00" if ring is None else b"\x01" + var(ring)
    out += u32(len(identities))
    for address, key in sorted(identities, key=lambda e: e[0].encode()):
        out += var(address.encode()) + key
    out += u32(len(sessions))
    for address, record in sorted(sessions, key=lambda e: e[0].encode()):
        out += var(address.encode()) + var(record)
    return out


def backup_keys(password: bytes, salt: bytes, iterations: int, lanes: int,
                memory_kib: int) -> tuple[bytes, bytes, bytes]:
    """(Argon2id output, AES-256-GCM key, verifier)."""
    out = Argon2id(salt=salt, length=64, iterations=iterations, lanes=lanes,
                   memory_cost=memory_kib).derive(password)
    return out, out[:32], mac(out[32:], b"signalish backup verifier")


def create_backup(password: bytes, salt: bytes, nonce: bytes, iterations: int, lanes: int,
                  memory_kib: int, contents: bytes) -> bytes:
    _, key, verifier = backup_keys(password, salt, iterations, lanes, memory_kib)
    head = (b"\x70\x01" + u32(iterations) + u32(lanes) + u32(memory_kib) + salt + verifier
            + nonce + u32(len(contents) + 16))
    return digest16(head + AESGCM(key).encrypt(nonce, contents, head))
