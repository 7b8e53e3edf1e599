"""An independent reference of signalish's two profiles, for checking vectors.

Written only from Signal's X3DH, PQXDH and Double Ratchet specifications and
signalish's format documentation (docs/profiles.md, docs/ratchet.md,
docs/formats.md, docs/libsignal.md), sharing no code with signalish.  Plain,
not fast: states are dictionaries, deep-copied before every decryption.

It recomputes a conversation vector: every message each party sends must come
out byte for byte, every delivery must give the vector's plaintext, and every
delivery the vector marks as refused must fail here too.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import struct
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PROFILES = {
    "native": {"prefix": b"", "x3dh": b"signalish_X3DH_CURVE25519_SHA-256",
               "pqxdh": b"signalish_PQXDH_CURVE25519_SHA-256_ML-KEM-1024", "sk": 32,
               "ratchet": b"signalish_Ratchet"},
    "libsignal_v3": {"prefix": b"\x05", "x3dh": b"WhisperText", "pqxdh": None, "sk": 64,
                     "ratchet": b"WhisperRatchet"},
}


class Refused(Exception):
    """The reference refuses a delivery."""


# --- primitives, straight from RFC 5869 / RFC 7748 / FIPS 203 via pyca ------------


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
        raise Refused("all-zero DH")
    return out


def public_of(private: bytes) -> bytes:
    return x25519.X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def identity_private(seed: bytes) -> bytes:
    """docs/profiles.md: the X25519 scalar is clamp(SHA-512(seed)[:32])."""
    a = bytearray(hashlib.sha512(seed).digest()[:32])
    a[0] &= 248
    a[31] = (a[31] & 127) | 64
    return bytes(a)


# --- formats (docs/formats.md) -------------------------------------------------------


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
    bundle["kem_id"] = None
    if data[pos] == 1:
        bundle["kem_id"] = struct.unpack(">I", data[pos + 1:pos + 5])[0]
    return bundle


def initial_header(ik_a: bytes, ek_a: bytes, b: dict[str, Any], ct: bytes | None) -> bytes:
    out = b"\x30\x01" + ik_a + ek_a + struct.pack(">I", b["spk_id"])
    out += b"\x00" if b["otk_id"] is None else b"\x01" + struct.pack(">I", b["otk_id"])
    out += b"\x00" if ct is None else b"\x01" + struct.pack(">I", b["kem_id"]) + ct
    return out


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


# --- a party -------------------------------------------------------------------------


class Party:
    def __init__(self, profile: str, keys: dict[str, Any], draws: list[str],
                 header_encryption: bool, limits: dict[str, int]) -> None:
        self.p, self.he, self.limits = PROFILES[profile], header_encryption, limits
        self.v3 = profile == "libsignal_v3"
        self.ik = identity_private(bytes.fromhex(keys["identity_seed"]))
        self.ik_pub = public_of(self.ik)
        self.registration_id = keys["registration_id"]
        pre = keys["prekeys"]
        self.spk = {pre["signed"]["id"]: bytes.fromhex(pre["signed"]["private"])}
        self.otk = {k["id"]: bytes.fromhex(k["private"]) for k in pre["one_time"]}
        self.kem = {k["id"]: bytes.fromhex(k["seed"]) for k in pre["kem"]}
        self.draws = [bytes.fromhex(d) for d in draws]
        self.sessions: list[dict[str, Any]] = []  # order irrelevant: found by base key

    def draw(self) -> bytes:
        return self.draws.pop(0)

    def enc(self, key: bytes) -> bytes:
        return self.p["prefix"] + key

    # X3DH / PQXDH ------------------------------------------------------------------

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
        ad = self.enc(self.ik_pub) + self.enc(b["identity"])
        state = self.start_ratchet(sk, b["spk"], alice=True)
        self.sessions.append({"base": public_of(ek), "ad": ad, "remote": b["identity"],
                              "state": state, "pending": True, "b": b, "ct": kem and kem[0],
                              "header": initial_header(self.ik_pub, public_of(ek), b,
                                                       kem and kem[0])})

    def start_ratchet(self, sk: bytes, bob_ratchet: bytes, alice: bool) -> dict[str, Any]:
        rk, hka, nhkb = sk[:32], None, None
        if self.he:
            split = hkdf(b"", sk, b"signalish_HeaderKeys", 96)
            rk, hka, nhkb = split[:32], split[32:64], split[64:]
        s: dict[str, Any] = {"rk": rk, "cks": None, "ckr": None, "ns": 0, "nr": 0, "pn": 0,
                             "dhr": None, "skipped": {}, "hks": None, "hkr": None,
                             "nhks": None, "nhkr": None}
        if alice:
            s["dhs"] = self.draw()
            s["dhr"] = bob_ratchet
            if self.v3:  # docs/libsignal.md: Alice keeps SK's chain as her receiving chain
                s["ckr"] = sk[32:64]
            s["rk"], s["cks"], s["nhks"] = self.kdf_rk(rk, dh(s["dhs"], bob_ratchet))
            s["hks"], s["nhkr"] = hka, nhkb
        else:
            s["dhs"] = bob_ratchet
            if self.v3:
                s["cks"] = sk[32:64]
            s["nhks"], s["nhkr"] = nhkb, hka
        return s

    def kdf_rk(self, rk: bytes, dh_out: bytes) -> tuple[bytes, bytes, bytes | None]:
        out = hkdf(rk, dh_out, self.p["ratchet"], 96 if self.he else 64)
        return out[:32], out[32:64], (out[64:] if self.he else None)

    # sending -------------------------------------------------------------------------

    def send(self, base: bytes, plaintext: bytes) -> bytes:
        session = next(s for s in self.sessions if s["base"] == base)
        s = session["state"]
        mk = mac(s["cks"], b"\x01")
        s["cks"] = mac(s["cks"], b"\x02")
        n, pn = s["ns"], s["pn"]
        s["ns"] += 1
        if self.v3:
            keys = hkdf(b"", mk, b"WhisperMessageKeys", 80)
            padder = padding.PKCS7(128).padder()
            encryptor = Cipher(algorithms.AES(keys[:32]), modes.CBC(keys[64:])).encryptor()
            ct = encryptor.update(padder.update(plaintext) + padder.finalize()) \
                + encryptor.finalize()
            body = (b"\x34" + b"\x0a\x21\x05" + public_of(s["dhs"]) + b"\x10" + varint(n)
                    + b"\x18" + varint(max(pn, 1) - 1) + b"\x22" + varint(len(ct)) + ct)
            message = body + mac(keys[32:64], self.enc(self.ik_pub)
                                 + self.enc(session["remote"]) + body)[:8]
            if session["pending"]:
                b = session["b"]
                pre = b"" if b["otk_id"] is None else b"\x08" + varint(b["otk_id"])
                pre += b"\x12\x21\x05" + session["base"] + b"\x1a\x21\x05" + self.ik_pub
                pre += b"\x22" + varint(len(message)) + message
                pre += b"\x28" + varint(self.registration_id) + b"\x30" + varint(b["spk_id"])
                return b"\x34" + pre
            return message
        key = mac(mk, b"signalish_MessageKey\x01")
        header = public_of(s["dhs"]) + struct.pack(">II", pn, n)
        if self.he:
            nonce = mac(mk, b"signalish_HeaderNonce")[:12]
            prefix = (b"\x41\x01" + nonce + AESGCM(s["hks"]).encrypt(nonce, header, b"")
                      + struct.pack(">I", len(plaintext) + 16))
        else:
            prefix = b"\x40\x01" + header + struct.pack(">I", len(plaintext) + 16)
        message = prefix + AESGCM(key).encrypt(bytes(12), plaintext, session["ad"] + prefix)
        if session["pending"]:
            h = session["header"][2:]
            return b"\x42\x01" + h + struct.pack(">I", len(message)) + message
        return message

    # receiving -----------------------------------------------------------------------

    def receive(self, data: bytes) -> bytes:
        header_bytes, inner = self.split_prekey(data)
        if header_bytes is not None:
            base = header_bytes["base"]
            found = [s for s in self.sessions if s["base"] == base]
            if found:
                return self.try_session(found[0], inner)
            session = self.respond(header_bytes)
            plaintext = self.try_session(session, inner)
            self.sessions.append(session)
            if header_bytes["otk_id"] is not None:
                del self.otk[header_bytes["otk_id"]]
            return plaintext
        for session in self.sessions:
            try:
                return self.try_session(session, inner)
            except Refused:
                continue
        raise Refused("no session decrypts it")

    def split_prekey(self, data: bytes) -> tuple[dict[str, Any] | None, bytes]:
        if self.v3:
            if data[1] == 0x0A:
                return None, data
            f = proto_fields(data[1:])
            return ({"base": f[2][1:], "identity": f[3][1:], "spk_id": f[6],
                     "otk_id": f.get(1), "kem_id": None, "ct": None}, f[4])
        if data[0] != 0x42:
            return None, data
        pos = 2 + 64 + 4
        h: dict[str, Any] = {"identity": data[2:34], "base": data[34:66],
                             "spk_id": struct.unpack(">I", data[66:70])[0],
                             "otk_id": None, "kem_id": None, "ct": None}
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
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        return h, data[pos + 4:pos + 4 + length]

    def respond(self, h: dict[str, Any]) -> dict[str, Any]:
        if h["otk_id"] is not None and h["otk_id"] not in self.otk:
            raise Refused("one-time prekey already used")
        spk = self.spk[h["spk_id"]]
        km = dh(spk, h["identity"]) + dh(self.ik, h["base"]) + dh(spk, h["base"])
        if h["otk_id"] is not None:
            km += dh(self.otk[h["otk_id"]], h["base"])
        if h["ct"] is not None:
            km += mlkem.MLKEM1024PrivateKey.from_seed_bytes(self.kem[h["kem_id"]]).decapsulate(h["ct"])
        sk = self.kdf_sk(km, h["ct"] is not None)
        return {"base": h["base"], "ad": self.enc(h["identity"]) + self.enc(self.ik_pub),
                "remote": h["identity"], "state": self.start_ratchet(sk, spk, alice=False),
                "pending": False}

    def try_session(self, session: dict[str, Any], data: bytes) -> bytes:
        trial = copy.deepcopy(session["state"])
        plaintext = self.ratchet_decrypt(trial, data, session)
        session["state"] = trial
        session["pending"] = False
        return plaintext

    def ratchet_decrypt(self, s: dict[str, Any], data: bytes, session: dict[str, Any]) -> bytes:
        """Double Ratchet section 3.5 (4.3 with header encryption)."""
        if self.v3:
            if data[1] != 0x0A:
                raise Refused("not a SignalMessage")
            f = proto_fields(data[1:-8])
            dh_pub, n, pn = f[1][1:], f[2], f[3] + 1  # libsignal's PN is the last index
        elif self.he:
            if data[0] != 0x41:
                raise Refused("expected an encrypted header")
            dh_pub, pn, n, chain = self.open_header(s, data)
        else:
            if data[0] != 0x40:
                raise Refused("expected a plain header")
            dh_pub, (pn, n) = data[2:34], struct.unpack(">II", data[34:42])
        chain = s["hkr_used"] if self.he else dh_pub
        if (chain, n) in s["skipped"]:
            mk = s["skipped"].pop((chain, n))
            return self.open_body(s, mk, data, session)
        current = s["hkr"] if self.he else s["dhr"]
        if self.he and chain == s["nhkr"] or not self.he and dh_pub != current:
            if s["ckr"] is not None:
                self.skip(s, current, pn)
            s["pn"], s["ns"], s["nr"] = s["ns"], 0, 0
            s["dhr"] = dh_pub
            if self.he:
                s["hks"], s["hkr"] = s["nhks"], s["nhkr"]
            s["rk"], s["ckr"], nhkr = self.kdf_rk(s["rk"], dh(s["dhs"], dh_pub))
            if self.he:
                s["nhkr"] = nhkr
            stepped = True
            chain = s["hkr"] if self.he else dh_pub
        elif n < s["nr"]:
            raise Refused("duplicate, or evicted below the window")
        else:
            stepped = False
        self.skip(s, chain, n)
        mk = mac(s["ckr"], b"\x01")
        s["ckr"], s["nr"] = mac(s["ckr"], b"\x02"), n + 1
        plaintext = self.open_body(s, mk, data, session)
        if stepped:  # the sending half of the DH step, once the message authenticated
            s["dhs"] = self.draw()
            s["rk"], s["cks"], s["nhks"] = self.kdf_rk(s["rk"], dh(s["dhs"], s["dhr"]))
        return plaintext

    def open_header(self, s: dict[str, Any], data: bytes) -> tuple[bytes, int, int, bytes]:
        nonce, sealed = data[2:14], data[14:70]
        keys = [k for k in [s["hkr"], s["nhkr"]] + [c for c, _ in s["skipped"]] if k]
        for hk in dict.fromkeys(keys):
            try:
                header = AESGCM(hk).decrypt(nonce, sealed, b"")
            except Exception:  # noqa: BLE001
                continue
            s["hkr_used"] = hk
            pn, n = struct.unpack(">II", header[32:40])
            return header[:32], pn, n, hk
        raise Refused("no header key opens the header")

    def skip(self, s: dict[str, Any], chain: bytes, until: int) -> None:
        if until - s["nr"] > self.limits["max_skip"]:
            raise Refused("too far ahead")
        while s["nr"] < until:
            s["skipped"][(chain, s["nr"])] = mac(s["ckr"], b"\x01")
            s["ckr"], s["nr"] = mac(s["ckr"], b"\x02"), s["nr"] + 1
            while len(s["skipped"]) > self.limits["max_stored_keys"]:
                del s["skipped"][next(iter(s["skipped"]))]  # oldest first

    def open_body(self, s: dict[str, Any], mk: bytes, data: bytes,
                  session: dict[str, Any]) -> bytes:
        if self.v3:
            keys = hkdf(b"", mk, b"WhisperMessageKeys", 80)
            expected = mac(keys[32:64], self.enc(session["remote"]) + self.enc(self.ik_pub)
                           + data[:-8])[:8]
            if not hmac.compare_digest(expected, data[-8:]):
                raise Refused("MAC")
            f = proto_fields(data[1:-8])
            decryptor = Cipher(algorithms.AES(keys[:32]), modes.CBC(keys[64:])).decryptor()
            padded = decryptor.update(f[4]) + decryptor.finalize()
            unpadder = padding.PKCS7(128).unpadder()
            try:
                return unpadder.update(padded) + unpadder.finalize()
            except ValueError:
                raise Refused("padding") from None
        split = 70 + 4 if self.he else 46
        try:
            return AESGCM(mac(mk, b"signalish_MessageKey\x01")).decrypt(
                bytes(12), data[split:], session["ad"] + data[:split])
        except Exception:  # noqa: BLE001
            raise Refused("AEAD") from None
