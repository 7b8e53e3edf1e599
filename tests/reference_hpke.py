"""A plain HPKE reference for the two sealed-box suites, written from RFC 9180
(sections 4 and 5.1, DHKEM in 4.1) and the X-Wing draft
(draft-connolly-cfrg-xwing-kem, "Decapsulate" and "expandDecapsulationKey").

It shares no code with signalish: it uses pyca/cryptography's raw X25519,
ML-KEM-768 and AEADs, and the standard library's HMAC and SHA-3.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

XWING_LABEL = b"\\.//^\\"


def i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(32), b"HPKE-v1" + suite_id + label + ikm, hashlib.sha256).digest()


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled = i2osp(length, 2) + b"HPKE-v1" + suite_id + label + info
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + labeled + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def dhkem_x25519_decap(enc: bytes, sk_r: bytes) -> bytes:
    suite_id = b"KEM" + i2osp(0x0020, 2)
    private = x25519.X25519PrivateKey.from_private_bytes(sk_r)
    dh = private.exchange(x25519.X25519PublicKey.from_public_bytes(enc))
    kem_context = enc + private.public_key().public_bytes_raw()
    eae_prk = labeled_extract(suite_id, b"", b"eae_prk", dh)
    return labeled_expand(suite_id, eae_prk, b"shared_secret", kem_context, 32)


def xwing_decap(enc: bytes, seed: bytes) -> bytes:
    expanded = hashlib.shake_256(seed).digest(96)
    sk_m = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
    sk_x = x25519.X25519PrivateKey.from_private_bytes(expanded[64:])
    ct_m, ct_x = enc[:1088], enc[1088:]
    ss_m = sk_m.decapsulate(ct_m)
    ss_x = sk_x.exchange(x25519.X25519PublicKey.from_public_bytes(ct_x))
    pk_x = sk_x.public_key().public_bytes_raw()
    return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + XWING_LABEL).digest()


def key_schedule(kem_id: int, aead_id: int, shared_secret: bytes, info: bytes,
                 nk: int) -> tuple[bytes, bytes]:
    """KeySchedule for mode_base (RFC 9180 section 5.1): (key, base_nonce)."""
    suite_id = b"HPKE" + i2osp(kem_id, 2) + i2osp(0x0001, 2) + i2osp(aead_id, 2)
    psk_id_hash = labeled_extract(suite_id, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(suite_id, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = labeled_extract(suite_id, shared_secret, b"secret", b"")
    return (labeled_expand(suite_id, secret, b"key", context, nk),
            labeled_expand(suite_id, secret, b"base_nonce", context, 12))


def aead(aead_id: int, key: bytes) -> AESGCM | ChaCha20Poly1305:
    return AESGCM(key) if aead_id == 2 else ChaCha20Poly1305(key)


def nonce(base_nonce: bytes, seq: int) -> bytes:
    return bytes(a ^ b for a, b in zip(base_nonce, i2osp(seq, 12), strict=True))
