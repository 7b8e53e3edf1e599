"""An independent reference of SPQR, the Sparse Post-Quantum Ratchet, as
libsignal runs it, for checking vectors/spqr.json.

Written from Signal's *The Double Ratchet Algorithm* revision 3 (section 5,
SPQR; section 6, the Triple Ratchet), *The ML-KEM Braid Protocol* revision 1
(section 2), FIPS 203, and docs/spqr.md and docs/vectors.md ("SPQR, as the
vectors use it"): the facts black-box observation of libsignal-client
0.103.0 established (labels, encodings, the erasure code, the Braid's
departures from its specification, the chains' pruning) and signalish's
own bounds and refusals.  It imports nothing of signalish: the Double
Ratchet, the handshake and the libsignal framing are signal_reference.py's
(this module's ``SpqrParty`` extends its ``Party``), ML-KEM-768 is
kyber-py's (``kyber_py.ml_kem``), hashes are hashlib's.

Plain, not fast: states are dictionaries (so that a refusal can be checked
to change nothing by comparing them), encoders and decoders too.

* The KDFs are one function each, named as the specifications name them.
* GF(2^16) is x^16 + x^12 + x^3 + x + 1 (0x1100B) with log/antilog tables;
  the erasure code is Lagrange interpolation through the data chunks, one
  polynomial per big-endian 16-bit column.
* Split ML-KEM-768 takes kyber-py's K-PKE.Encrypt (FIPS 203 Algorithm 14)
  twice: ct1 = c1 only depends on rho and r, not on t_hat, so encaps1
  encrypts under the header's rho with t_hat = 0 and keeps c1; encaps2,
  with the whole ek, runs ML-KEM.Encaps_internal (Algorithm 17) and keeps
  c2 (after checking that c1 and K came out the same).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from typing import Any

from kyber_py.ml_kem import ML_KEM_768  # type: ignore[import-untyped]
from signal_reference import (
    MAX_COUNTER,
    REASON_ERROR,
    Party,
    Refused,
    hkdf,
    mac,
    proto_fields,
    public_of,
    varint,
)
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# --- labels (docs/vectors.md: all observed; the Braid's are PROTOCOL_INFO-prefixed) ----

CHAIN_START = b"Signal PQ Ratchet V1 Chain  Start"  # two spaces before "Start"
CHAIN_ADD_EPOCH = b"Signal PQ Ratchet V1 Chain Add Epoch"
CHAIN_NEXT = b"Signal PQ Ratchet V1 Chain Next"
PROTOCOL_INFO = b"Signal_PQCKA_V1_MLKEM768"
ZERO = bytes(32)

#: The verdicts a receiving window gives before any key is checked.
WINDOW_VERDICTS = frozenset({"DuplicateMessage", "MessageKeyEvicted", "MessageKeyExpired",
                             "TooFarAhead"})


def u32be(v: int) -> bytes:
    return v.to_bytes(4, "big")


def u64be(v: int) -> bytes:
    return v.to_bytes(8, "big")


# --- the key schedule -----------------------------------------------------------------


def kdf_scka_init(seed: bytes) -> tuple[bytes, bytes, bytes]:
    """DR3 5.2 KDF_SCKA_INIT: (root key, A2B chain key, B2A chain key) of chain epoch 0."""
    okm = hkdf(ZERO, seed, CHAIN_START, 96)
    return okm[:32], okm[32:64], okm[64:]


def kdf_scka_rk(root: bytes, epoch_secret: bytes) -> tuple[bytes, bytes, bytes]:
    """DR3 5.2 KDF_SCKA_RK: salt the root key, IKM the Braid's epoch secret."""
    okm = hkdf(root, epoch_secret, CHAIN_ADD_EPOCH, 96)
    return okm[:32], okm[32:64], okm[64:]


def kdf_scka_ck(chain_key: bytes, n: int) -> tuple[bytes, bytes]:
    """DR3 5.2 KDF_SCKA_CK: (next chain key, message key) for message n."""
    okm = hkdf(ZERO, chain_key, u32be(n) + CHAIN_NEXT, 64)
    return okm[:32], okm[32:]


def kdf_auth(root: bytes, key: bytes, epoch: int) -> tuple[bytes, bytes]:
    """Braid 2.2/2.4 KDF_AUTH as observed: zero salt, IKM root || key."""
    okm = hkdf(ZERO, root + key, PROTOCOL_INFO + b":Authenticator Update" + u64be(epoch), 64)
    return okm[:32], okm[32:]


def auth_init(seed: bytes) -> tuple[bytes, bytes]:
    """Braid 2.4 Init: Update at epoch 1 from a zero root key."""
    return kdf_auth(ZERO, seed, 1)


def kdf_ok(shared_secret: bytes, epoch: int) -> bytes:
    """Braid 2.2 KDF_OK: the epoch secret."""
    return hkdf(ZERO, shared_secret, PROTOCOL_INFO + b":SCKA Key" + u64be(epoch), 32)


def mac_hdr(mac_key: bytes, epoch: int, header: bytes) -> bytes:
    return mac(mac_key, PROTOCOL_INFO + b":ekheader" + u64be(epoch) + header)


def mac_ct(mac_key: bytes, epoch: int, ciphertext: bytes) -> bytes:
    return mac(mac_key, PROTOCOL_INFO + b":ciphertext" + u64be(epoch) + ciphertext)


def message_keys(dr_message_key: bytes, spqr_message_key: bytes | None) -> bytes:
    """DR3 6.3/7.2 KDF_HYBRID folded into "WhisperMessageKeys": salt the SPQR
    key (none without SPQR), IKM the Double Ratchet's; cipher || MAC || IV."""
    return hkdf(spqr_message_key or b"", dr_message_key, b"WhisperMessageKeys", 80)


# --- GF(2^16) and the erasure code ----------------------------------------------------

POLY = 0x1100B


def _tables() -> tuple[list[int], list[int]]:
    exp, log = [0] * 65535, [0] * 65536
    value = 1
    for power in range(65535):
        exp[power] = value
        log[value] = power
        value <<= 1  # times x, a generator of the multiplicative group mod 0x1100B
        if value & 0x10000:
            value ^= POLY
    assert value == 1
    return exp, log


EXP, LOG = _tables()


def gf_mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return EXP[(LOG[a] + LOG[b]) % 65535]


def gf_inv(a: int) -> int:
    assert a != 0
    return EXP[-LOG[a] % 65535]


def words(chunk: bytes) -> list[int]:
    return [int.from_bytes(chunk[i:i + 2], "big") for i in range(0, 32, 2)]


def interpolate(points: dict[int, bytes], x: int) -> bytes:
    """The chunk at index ``x`` of the code through ``points`` (index ->
    chunk): per column, the polynomial of degree < len(points) through them,
    in Lagrange form (characteristic 2: minus is plus is XOR)."""
    if x in points:
        return points[x]
    out = [0] * 16
    for t, chunk in points.items():
        numerator = denominator = 1
        for s in points:
            if s != t:
                numerator = gf_mul(numerator, x ^ s)
                denominator = gf_mul(denominator, t ^ s)
        weight = gf_mul(numerator, gf_inv(denominator))
        out = [o ^ gf_mul(weight, y) for o, y in zip(out, words(chunk))]
    return b"".join(w.to_bytes(2, "big") for w in out)


def encoder(payload: bytes) -> dict[str, Any]:
    assert len(payload) % 32 == 0
    return {"payload": payload, "next": 0}


def encoder_chunk(payload: bytes, index: int) -> bytes:
    """Chunk ``index``: data chunk index (systematic) or the value there of
    the polynomials through the data chunks 0..n-1."""
    n = len(payload) // 32
    data = {i: payload[32 * i:32 * i + 32] for i in range(n)}
    return interpolate(data, index)


def encoder_next(e: dict[str, Any]) -> tuple[int, bytes]:
    index = e["next"]
    assert index <= 0xFFFF
    e["next"] += 1
    return index, encoder_chunk(e["payload"], index)


def decoder(size: int) -> dict[str, Any]:
    return {"n": size // 32, "chunks": {}}


def decoder_add(d: dict[str, Any], index: int, chunk: bytes) -> None:
    """The first chunk at an index stays; nothing is added once n are held."""
    if len(d["chunks"]) < d["n"] and index not in d["chunks"]:
        d["chunks"][index] = chunk


def decoder_message(d: dict[str, Any]) -> bytes | None:
    if len(d["chunks"]) < d["n"]:
        return None
    return b"".join(interpolate(d["chunks"], k) for k in range(d["n"]))


# --- split ML-KEM-768 (FIPS 203 via kyber-py) -------------------------------------------


def mlkem_keygen(seed: bytes) -> tuple[bytes, bytes, bytes]:
    """(dk, header, ek_vector): KeyGen_internal(d, z); ek = ek_vector || rho,
    header = rho || SHA3-256(ek)."""
    ek, dk = ML_KEM_768.key_derive(seed)
    return dk, ek[1152:] + hashlib.sha3_256(ek).digest(), ek[:1152]


def mlkem_encaps1(header: bytes, m: bytes) -> tuple[dict[str, bytes], bytes, bytes]:
    """(state, ct1, K) from the header alone: (K, r) = G(m || H(ek)), and
    c1 of K-PKE.Encrypt(t_hat = 0 || rho, m, r), which t_hat does not enter."""
    rho, ek_hash = header[:32], header[32:]
    g = hashlib.sha3_512(m + ek_hash).digest()
    shared, r = g[:32], g[32:]
    ct1 = ML_KEM_768._k_pke_encrypt(bytes(1152) + rho, m, r)[:960]
    return {"m": m, "ct1": ct1, "shared": shared}, ct1, shared


def mlkem_encaps2(state: dict[str, bytes], header: bytes, ek_vector: bytes) -> bytes:
    """ct2, once the ek_vector matches the header's hash and passes FIPS 203's
    modulus check (kyber-py's Encaps_internal refuses it otherwise)."""
    rho, ek_hash = header[:32], header[32:]
    if hashlib.sha3_256(ek_vector + rho).digest() != ek_hash:
        raise Refused("InvalidKey", "the ek_vector does not match the header")
    try:
        shared, c = ML_KEM_768._encaps_internal(ek_vector + rho, state["m"])
    except ValueError:
        raise Refused("InvalidKey", "modulus check") from None
    assert c[:960] == state["ct1"] and shared == state["shared"]
    return bytes(c[960:])


def mlkem_decaps(dk: bytes, ct1: bytes, ct2: bytes) -> bytes:
    return bytes(ML_KEM_768.decaps(dk, ct1 + ct2))


# --- the Braid (Braid section 2.5, with the observed departures) ------------------------

TYPES = ["None", "Hdr", "Ek", "EkCt1Ack", "Ct1Ack", "Ct1", "Ct2"]
CHUNKED = {"Hdr", "Ek", "EkCt1Ack", "Ct1", "Ct2"}


def braid_start(seed: bytes, initiator: bool) -> dict[str, Any]:
    """Braid 2.6: the initiator is the EK side of epoch 1."""
    b: dict[str, Any] = {"epoch": 1, "auth": auth_init(seed)}
    if initiator:
        b["state"] = "KeysUnsampled"
    else:
        b.update(state="NoHeaderReceived", decoder=decoder(96))
    return b


def _reset(b: dict[str, Any], state: str, epoch: int, **fields: Any) -> None:
    auth = b["auth"]
    b.clear()
    b.update(state=state, epoch=epoch, auth=auth, **fields)


def braid_send(b: dict[str, Any], draw: Any) -> tuple[dict[str, Any], tuple[int, bytes] | None]:
    """(message, epoch key or None); ``draw()`` gives the next random value."""
    state, epoch = b["state"], b["epoch"]

    def chunk(kind: str) -> dict[str, Any]:
        if b["encoder"]["next"] > 0xFFFF:  # every index used: no chunk any more
            return {"epoch": epoch, "type": "None"}
        index, data = encoder_next(b["encoder"])
        return {"epoch": epoch, "type": kind, "chunk_index": index, "chunk": data}

    if state == "KeysUnsampled":
        seed = draw()
        assert len(seed) == 64
        dk, header, ek_vector = mlkem_keygen(seed)
        tag = mac_hdr(b["auth"][1], epoch, header)
        _reset(b, "KeysSampled", epoch, dk=dk, ek_vector=ek_vector, encoder=encoder(header + tag))
        return chunk("Hdr"), None
    sends = {"KeysSampled": "Hdr", "HeaderSent": "Ek", "Ct1Received": "EkCt1Ack",
             "Ct1Sampled": "Ct1", "EkReceivedCt1Sampled": "Ct1", "Ct2Sampled": "Ct2"}
    if state in sends:
        return chunk(sends[state]), None
    if state == "EkSentCt1Received":  # observed: Ct1Ack, where the spec sends None
        return {"epoch": epoch, "type": "Ct1Ack"}, None
    if state == "HeaderReceived":
        m = draw()
        assert len(m) == 32
        encaps, ct1, shared = mlkem_encaps1(b["header"], m)
        secret = kdf_ok(shared, epoch)
        b["auth"] = kdf_auth(b["auth"][0], secret, epoch)
        _reset(b, "Ct1Sampled", epoch, header=b["header"], encaps=encaps, ct1=ct1,
               encoder=encoder(ct1), decoder=b["decoder"])
        return chunk("Ct1"), (epoch, secret)
    return {"epoch": epoch, "type": "None"}, None  # NoHeaderReceived, Ct1Acknowledged


def braid_receive(b: dict[str, Any], msg: dict[str, Any]) -> tuple[int, bytes] | None:
    """The epoch key the message completes, or None.  Messages that do not
    fit the state (another type, an older epoch) change nothing."""
    state, epoch, kind = b["state"], b["epoch"], msg["type"]
    if msg["epoch"] != epoch:
        if state == "Ct2Sampled" and msg["epoch"] == epoch + 1:
            _reset(b, "KeysUnsampled", epoch + 1)
        elif msg["epoch"] > epoch:
            raise Refused("AuthenticationError", "an epoch the peer cannot have reached")
        return None

    def add() -> None:
        decoder_add(b["decoder"], msg["chunk_index"], msg["chunk"])

    if state == "KeysSampled" and kind == "Ct1":
        _reset(b, "HeaderSent", epoch, dk=b["dk"], encoder=encoder(b["ek_vector"]),
               decoder=decoder(960))
        add()
        _ct1_progress(b)
    elif state == "HeaderSent" and kind == "Ct1":
        add()
        _ct1_progress(b)
    elif state == "Ct1Received" and kind == "Ct2":
        _reset(b, "EkSentCt1Received", epoch, dk=b["dk"], ct1=b["ct1"], decoder=decoder(160))
        add()
        return _ct2_progress(b)
    elif state == "EkSentCt1Received" and kind == "Ct2":
        add()
        return _ct2_progress(b)
    elif state == "NoHeaderReceived" and kind == "Hdr":
        add()
        payload = decoder_message(b["decoder"])
        if payload is not None:
            header, tag = payload[:64], payload[64:]
            if not hmac.compare_digest(tag, mac_hdr(b["auth"][1], epoch, header)):
                raise Refused("AuthenticationError", "header MAC")
            _reset(b, "HeaderReceived", epoch, header=header, decoder=decoder(1152))
    elif state == "Ct1Sampled" and kind in ("Ek", "EkCt1Ack"):
        add()
        ek_vector = decoder_message(b["decoder"])
        if ek_vector is not None and kind == "EkCt1Ack":
            _complete_encaps(b, ek_vector)
        elif ek_vector is not None:
            _reset(b, "EkReceivedCt1Sampled", epoch, header=b["header"], encaps=b["encaps"],
                   ct1=b["ct1"], ek_vector=ek_vector, encoder=b["encoder"])
        elif kind == "EkCt1Ack":
            _reset(b, "Ct1Acknowledged", epoch, header=b["header"], encaps=b["encaps"],
                   ct1=b["ct1"], decoder=b["decoder"])
    elif state == "EkReceivedCt1Sampled" and kind == "EkCt1Ack":
        _complete_encaps(b, b["ek_vector"])
    elif state == "Ct1Acknowledged" and kind in ("Ek", "EkCt1Ack"):  # observed: Ek too
        add()
        ek_vector = decoder_message(b["decoder"])
        if ek_vector is not None:
            _complete_encaps(b, ek_vector)
    return None


def _ct1_progress(b: dict[str, Any]) -> None:
    ct1 = decoder_message(b["decoder"])
    if ct1 is not None:
        _reset(b, "Ct1Received", b["epoch"], dk=b["dk"], ct1=ct1, encoder=b["encoder"])


def _ct2_progress(b: dict[str, Any]) -> tuple[int, bytes] | None:
    payload = decoder_message(b["decoder"])
    if payload is None:
        return None
    epoch = b["epoch"]
    ct2, tag = payload[:128], payload[128:]
    secret = kdf_ok(mlkem_decaps(b["dk"], b["ct1"], ct2), epoch)
    auth = kdf_auth(b["auth"][0], secret, epoch)  # update first, then verify
    if not hmac.compare_digest(tag, mac_ct(auth[1], epoch, b["ct1"] + ct2)):
        raise Refused("AuthenticationError", "ciphertext MAC")
    b["auth"] = auth
    _reset(b, "NoHeaderReceived", epoch + 1, decoder=decoder(96))
    return epoch, secret


def _complete_encaps(b: dict[str, Any], ek_vector: bytes) -> None:
    try:
        ct2 = mlkem_encaps2(b["encaps"], b["header"], ek_vector)
    except Refused:  # not the key the MACed header named
        raise Refused("AuthenticationError", "ek_vector") from None
    tag = mac_ct(b["auth"][1], b["epoch"], b["ct1"] + ct2)
    _reset(b, "Ct2Sampled", b["epoch"], encoder=encoder(ct2 + tag))


# --- the chains (DR3 section 5, observed pruning) ---------------------------------------


def chains_start(seed: bytes, initiator: bool) -> dict[str, Any]:
    root, a2b, b2a = kdf_scka_init(seed)
    c = {"initiator": initiator, "root": root, "newest": 0, "send_epoch": 0, "epochs": {}}
    _open_epoch(c, 0, a2b, b2a)
    return c


def _open_epoch(c: dict[str, Any], epoch: int, a2b: bytes, b2a: bytes) -> None:
    send, recv = (a2b, b2a) if c["initiator"] else (b2a, a2b)
    c["epochs"][epoch] = {"send": [0, send], "recv": [0, recv], "floor": 1, "skipped": {}}


def chains_add_epoch(c: dict[str, Any], epoch: int, secret: bytes) -> None:
    assert epoch == c["newest"] + 1
    c["root"], a2b, b2a = kdf_scka_rk(c["root"], secret)
    c["newest"] = epoch
    _open_epoch(c, epoch, a2b, b2a)


def chains_send(c: dict[str, Any], epoch: int) -> tuple[int, bytes]:
    """(n, key); the first send in a newer epoch deletes older sending chains
    and keeps one receiving epoch before it."""
    entry = c["epochs"][epoch]
    assert entry["send"] is not None
    n = entry["send"][0] + 1
    entry["send"][1], key = kdf_scka_ck(entry["send"][1], n)
    entry["send"][0] = n
    if epoch > c["send_epoch"]:
        for e in list(c["epochs"]):
            if e < epoch - 1:
                del c["epochs"][e]
            elif e < epoch:
                c["epochs"][e]["send"] = None
        c["send_epoch"] = epoch
    return n, key


def chains_receive(c: dict[str, Any], epoch: int, n: int, max_jump: int,
                   max_skipped: int) -> bytes:
    if epoch not in c["epochs"]:
        if epoch < min(c["epochs"]):
            raise Refused("MessageKeyExpired", "epoch dropped")
        raise Refused("TooFarAhead", "epoch not reached")
    entry = c["epochs"][epoch]
    if n in entry["skipped"]:
        return bytes(entry["skipped"].pop(n))
    received, chain_key = entry["recv"]
    if n <= received:
        raise Refused("MessageKeyEvicted" if n < entry["floor"] else "DuplicateMessage")
    if n - received > max_jump:
        raise Refused("TooFarAhead", "jump")
    for i in range(received + 1, n):
        chain_key, entry["skipped"][i] = kdf_scka_ck(chain_key, i)
    chain_key, key = kdf_scka_ck(chain_key, n)
    entry["recv"] = [n, chain_key]
    while len(entry["skipped"]) > max_skipped:  # lowest numbers go first
        lowest = min(entry["skipped"])
        del entry["skipped"][lowest]
        entry["floor"] = max(entry["floor"], lowest + 1)
    return key


# --- field 5 ---------------------------------------------------------------------------


def encode_field5(index: int, msg: dict[str, Any]) -> bytes:
    out = b"\x01" + varint(msg["epoch"]) + varint(index) + bytes([TYPES.index(msg["type"])])
    if msg["type"] in CHUNKED:
        out += varint(msg["chunk_index"]) + msg["chunk"]
    return out


def _read_varint(data: bytes, pos: int, top: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise Refused("TruncatedInput", "field 5 ends inside a varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            break
        shift += 7
        if shift > 63:
            raise Refused("InvalidEncoding", "varint too long")
    if (byte == 0 and shift) or value > top:
        raise Refused("InvalidEncoding", "non-minimal or out-of-range varint")
    return value, pos


def parse_field5(data: bytes) -> tuple[int, dict[str, Any]]:
    """Strictly: version 1, minimal varints in range, a known type, exactly
    one chunk for the chunked types, nothing after."""
    if not data:
        raise Refused("TruncatedInput", "empty field 5")
    if data[0] != 1:
        raise Refused("InvalidEncoding", "version")
    epoch, pos = _read_varint(data, 1, 2**64 - 1)
    if epoch == 0:
        raise Refused("InvalidEncoding", "epoch 0")
    index, pos = _read_varint(data, pos, 2**32 - 1)
    if pos >= len(data):
        raise Refused("TruncatedInput", "no type")
    if data[pos] >= len(TYPES):
        raise Refused("InvalidEncoding", "type")
    msg: dict[str, Any] = {"epoch": epoch, "type": TYPES[data[pos]]}
    pos += 1
    if msg["type"] in CHUNKED:
        msg["chunk_index"], pos = _read_varint(data, pos, 0xFFFF)
        msg["chunk"], pos = data[pos:pos + 32], pos + 32
        if len(msg["chunk"]) != 32:
            raise Refused("TruncatedInput", "chunk")
    if pos != len(data):
        raise Refused("TrailingBytes", "after the message")
    return index, msg


def spqr_steps(s: dict[str, Any], field5: bytes, max_jump: int) -> int:
    """The chain steps receiving ``field5`` would walk before the message's
    MAC can be checked (for the routing budget): n minus the chain's count
    for a new n within reach, n for an epoch not made yet, else 0."""
    try:
        index, msg = parse_field5(field5)
    except Refused:
        return 0
    epoch = msg["epoch"] - 1
    if not 1 <= index <= max_jump + 1:
        return 0
    if epoch not in s["chains"]["epochs"]:
        return index if epoch > s["chains"]["newest"] else 0
    entry = s["chains"]["epochs"][epoch]
    received = entry["recv"][0]
    if index in entry["skipped"] or index <= received or index - received > max_jump:
        return 0
    return int(index - received)


# --- one session's SPQR -----------------------------------------------------------------


def spqr_start(seed: bytes, initiator: bool) -> dict[str, Any]:
    return {"braid": braid_start(seed, initiator), "chains": chains_start(seed, initiator),
            "keyed": False}


def spqr_send(s: dict[str, Any], draw: Any) -> tuple[bytes, bytes, tuple[int, bytes] | None]:
    """(field 5, SPQR message key, epoch key or None).  A message stamped
    wire epoch e is keyed from chain epoch e - 1."""
    msg, epoch_key = braid_send(s["braid"], draw)
    if epoch_key is not None:
        chains_add_epoch(s["chains"], *epoch_key)
    n, key = chains_send(s["chains"], msg["epoch"] - 1)
    return encode_field5(n, msg), key, epoch_key


def spqr_receive(s: dict[str, Any], field5: bytes, max_jump: int,
                 max_skipped: int) -> bytes | None:
    index, msg = parse_field5(field5)
    epoch_key = braid_receive(s["braid"], msg)
    if epoch_key is not None:
        chains_add_epoch(s["chains"], *epoch_key)
    if msg["epoch"] - 1 > s["chains"]["newest"]:
        raise Refused("AuthenticationError", "keyed from a chain not made yet")
    if index == 0:  # unkeyed (libsignal 0.80 to 0.90), only before a keyed one
        if s["keyed"]:
            raise Refused("AuthenticationError", "unkeyed after keyed")
        return None
    key = chains_receive(s["chains"], msg["epoch"] - 1, index, max_jump, max_skipped)
    s["keyed"] = True
    return key


# --- a libsignal_v4 party with SPQR ------------------------------------------------------


class SpqrParty(Party):
    """signal_reference's libsignal_v4 party, every session with SPQR: seeded
    by the last 32 bytes of the 96 the PQXDH derives; field 5 on every
    SignalMessage; message keys salted with the SPQR key.  On receipt SPQR
    moves first (on a copy, kept only if the message decrypts), so its
    refusals come before the Double Ratchet's."""

    def __init__(self, keys: dict[str, Any], draws: list[str], limits: dict[str, int],
                 max_archived: int) -> None:
        super().__init__("libsignal_v4", keys, draws, False, limits, max_archived)
        #: The chains' bounds, from the session's (docs/spqr.md): a jump of
        #: max_skip, and max_stored_keys shared by the at most three kept
        #: epochs, a third each.
        self.max_jump = max(limits["max_skip"], 1)
        self.max_skipped = max(limits["max_stored_keys"] // 3, 1)
        self.last_sk = b""
        self.salt: bytes | None = None
        #: What the last send did: (field 5, SPQR key, epoch key or None).
        self.last_send: tuple[bytes, bytes, tuple[int, bytes] | None] | None = None

    def kdf_sk(self, km: bytes, pq: bool) -> bytes:
        self.last_sk = super().kdf_sk(km, pq)
        return self.last_sk

    def initiate(self, bundle_bytes: bytes, kem: tuple[bytes, bytes] | None) -> None:
        super().initiate(bundle_bytes, kem)
        assert self.record is not None and len(self.last_sk) == 96
        self.record[0]["spqr"] = spqr_start(self.last_sk[64:], initiator=True)

    def respond(self, h: dict[str, Any]) -> dict[str, Any]:
        session = super().respond(h)
        session["spqr"] = spqr_start(self.last_sk[64:], initiator=False)
        return session

    def extra_cost(self, session: dict[str, Any], data: bytes) -> int:
        field5 = proto_fields(data[1:-8]).get(5)
        if not isinstance(field5, bytes):
            return 0
        return spqr_steps(session["spqr"], field5, self.max_jump)

    def decrypt_in(self, session: dict[str, Any], where: dict[str, Any] | None, data: bytes,
                   now: int) -> bytes:
        if where is None:
            raise Refused("AuthenticationError", "not this session's header")
        # The Double Ratchet's verdicts that need no key come first, as
        # without SPQR (ratchet.md's window).
        self.dr_refusal(session, where, now)
        field5 = proto_fields(data[1:-8]).get(5)
        if not isinstance(field5, bytes):
            raise Refused("AuthenticationError", "no field 5")
        spqr = copy.deepcopy(session["spqr"])
        try:
            self.salt = spqr_receive(spqr, field5, self.max_jump, self.max_skipped)
        except Refused as refused:
            # On a new DH step SPQR's window verdicts say only "decryption
            # failed" (the message may belong to another session).
            if where["chain"] is None and refused.name in WINDOW_VERDICTS:
                raise Refused("AuthenticationError", f"SPQR: {refused.name}") from None
            raise
        plaintext = super().decrypt_in(session, where, data, now)
        session["spqr"] = spqr
        return plaintext

    def dr_refusal(self, session: dict[str, Any], where: dict[str, Any], now: int) -> None:
        """Raise what the Double Ratchet's window says of ``where`` before
        any key is derived (ratchet.md, "The window"); nothing otherwise."""
        s, limits, n = session["state"], self.limits, where["n"]
        if n >= MAX_COUNTER or where["pn"] > MAX_COUNTER:
            raise Refused("TooFarAhead", "beyond the last counter")
        if where["chain"] is None:
            if where["forgotten"] is not None:
                raise Refused(REASON_ERROR[where["forgotten"]], "chain dropped")
            if n > limits["max_skip"]:
                raise Refused("TooFarAhead", "new chain")
            return
        chain = next(c for c in s["chains"] if c["id"] == where["chain"])
        current = where["current"]
        if n in chain["keys"]:
            if now - chain["keys"][n][1] >= limits["expire_after_seconds"]:
                raise Refused("MessageKeyExpired")
            return
        if current and n == s["nr"]:
            return
        if n < chain["floor"]:
            raise Refused(REASON_ERROR[chain["reason"]], "below the floor")
        if chain["end"] is not None and n >= chain["end"]:
            raise Refused("AuthenticationError", "beyond the chain's end")
        if chain["lost"] is not None and n >= chain["lost"]:
            raise Refused("MessageKeyEvicted", "given-up tail")
        if n < (s["nr"] if current else chain["end"]):
            raise Refused("DuplicateMessage")
        if not current:
            raise Refused("AuthenticationError", "not on a chain's keys")
        if n - s["nr"] > limits["max_skip"]:
            raise Refused("TooFarAhead")

    def open_body(self, session: dict[str, Any], mk: bytes, data: bytes) -> bytes:
        keys = message_keys(mk, self.salt)
        expected = mac(keys[32:64], self.enc(session["remote"]) + self.enc(self.ik_pub)
                       + data[:-8])[:8]
        if not hmac.compare_digest(expected, data[-8:]):
            raise Refused("AuthenticationError", "MAC")
        decryptor = Cipher(algorithms.AES(keys[:32]), modes.CBC(keys[64:])).decryptor()
        padded = decryptor.update(proto_fields(data[1:-8])[4]) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise Refused("AuthenticationError", "padding") from None

    def send(self, base: bytes | None, plaintext: bytes) -> bytes:
        """A version 4 SignalMessage with field 5 after field 4, wrapped in a
        PreKeySignalMessage until the first reply (signal_reference's send,
        with SPQR)."""
        if not self.record:
            raise Refused("NoSession", "no session")
        session = self.record[0]
        assert base is None or session["base"] == base, "the current session sends"
        s = session["state"]
        if s["cks"] is None:
            raise Refused("AwaitingFirstMessage", "cannot send yet")
        mk = mac(s["cks"], b"\x01")
        s["cks"] = mac(s["cks"], b"\x02")
        n, pn = s["ns"], s["pn"]
        s["ns"] += 1
        field5, pq_key, epoch_key = spqr_send(session["spqr"], self.draw)
        self.last_send = (field5, pq_key, epoch_key)
        keys = message_keys(mk, pq_key)
        padder = padding.PKCS7(128).padder()
        encryptor = Cipher(algorithms.AES(keys[:32]), modes.CBC(keys[64:])).encryptor()
        ct = encryptor.update(padder.update(plaintext) + padder.finalize()) + encryptor.finalize()
        version = b"\x44"
        body = (version + b"\x0a\x21\x05" + public_of(s["dhs"]) + b"\x10" + varint(n)
                + b"\x18" + varint(max(pn, 1) - 1) + b"\x22" + varint(len(ct)) + ct
                + b"\x2a" + varint(len(field5)) + field5)
        message = body + mac(keys[32:64], self.enc(self.ik_pub) + self.enc(session["remote"])
                             + body)[:8]
        if session["pending"] is None:
            return message
        pre = b"" if session["otk_id"] is None else b"\x08" + varint(session["otk_id"])
        pre += b"\x12\x21\x05" + session["base"] + b"\x1a\x21\x05" + self.ik_pub
        pre += b"\x22" + varint(len(message)) + message
        pre += b"\x28" + varint(self.registration_id) + b"\x30" + varint(session["spk_id"])
        pre += b"\x38" + varint(session["kem_id"])
        pre += b"\x42" + varint(1 + len(session["ct"])) + b"\x08" + session["ct"]
        return bytes(version + pre)

    def braid(self) -> dict[str, Any]:
        """The current session's Braid epoch and state."""
        assert self.record
        b = self.record[0]["spqr"]["braid"]
        return {"epoch": b["epoch"], "state": b["state"]}
