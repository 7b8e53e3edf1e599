"""The ML-KEM Braid: SPQR's sparse continuous key agreement.

Two parties take turns: in each *epoch* one of them (the EK side) makes an
ML-KEM-768 key pair and sends its public key in pieces, the other (the CT
side) encapsulates to it, and both derive that epoch's secret.  Every
Signal message carries one small Braid message (field 5 of a version 4
SignalMessage): a type and, for most types, one 32-byte chunk of an erasure
code (:mod:`signalish._primitives.erasure`), so the 96-byte header, the
1152-byte ek_vector, the 960-byte ct1 and the 160-byte ct2 travel over many
messages, and any n chunks of a stream rebuild it whatever was lost.

Sources: Signal's *The ML-KEM Braid Protocol* (revision 1), section 2
(states, messages, the authenticator) for the structure; black-box
observation of libsignal-client 0.103.0 (its messages, its SessionRecords
and its log lines; no libsignal or spqr source read) for every place the
specification leaves open or libsignal departs from it:

* the state numbering (libsignal's record keeps the states in the
  specification's order, numbered 1 to 11 as :class:`State` does);
* the EK side sends ``CT1_ACK`` (type 4) in ``EK_SENT_CT1_RECEIVED``, where
  the specification's pseudocode sends ``NONE``;
* ``CT1_ACKNOWLEDGED`` also takes plain ``EK`` chunks;
* a message that does not fit the current state (another type, an older
  epoch) is ignored, and the Braid does not move;
* the key schedule and the labels (:mod:`signalish._spqr_kdf`).

States (EK side 1-5, CT side 6-11) and what each sends::

    1 KEYS_UNSAMPLED         key generation on the next send, then HDR     -> 2
    2 KEYS_SAMPLED           HDR chunks          first CT1 chunk           -> 3
    3 HEADER_SENT            EK chunks           ct1 complete              -> 4
    4 CT1_RECEIVED           EK_CT1_ACK chunks   first CT2 chunk           -> 5
    5 EK_SENT_CT1_RECEIVED   CT1_ACK             ct2 complete: decapsulate,
                                                 key of epoch e            -> 6 (epoch e + 1)
    6 NO_HEADER_RECEIVED     NONE                header complete           -> 7
    7 HEADER_RECEIVED        encapsulate (ct1) on the next send: key of
                             epoch e, then CT1                              -> 8
    8 CT1_SAMPLED            CT1 chunks          ek complete               -> 9
                                                 ack before ek complete    -> 10
                                                 ek complete with ack      -> 11
    9 EK_RECEIVED_CT1_SAMPLED CT1 chunks         EK_CT1_ACK: ct2           -> 11
   10 CT1_ACKNOWLEDGED       NONE                ek complete: ct2          -> 11
   11 CT2_SAMPLED            CT2 chunks          any message of epoch e+1  -> 1 (epoch e + 1)

Every message is stamped with the sender's epoch; its SPQR key comes from
chain epoch (stamp - 1).  A key is output at two transitions only: the CT
side's send out of state 7 and the EK side's receipt that completes ct2.

Secrets held: the decapsulation key (its 64-byte seed), the encapsulation
state (y_hat, e2, m: :class:`~signalish._primitives.mlkem_braid.EncapsState`)
and the authenticator's two keys.  Nothing here is printed by ``repr``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from ._encoding import Reader, Writer
from ._errors import AuthenticationError, InvalidArgument, InvalidEncoding, InvalidKey
from ._primitives import RandomSource, ct_equal
from ._primitives.erasure import CHUNK_SIZE, MAX_CHUNK_INDEX, Decoder, Encoder
from ._primitives.mlkem_braid import (
    ENCAPS_STATE_SIZE,
    EncapsState,
    decapsulate,
    encaps1,
    encaps2,
    keygen,
)
from ._spqr_kdf import AuthKeys, auth_init, auth_update, mac_ciphertext, mac_header, scka_key

__all__ = ["MessageType", "State", "BraidMessage", "Braid", "MAX_EPOCH"]

HEADER_SIZE: Final = 64
EK_VECTOR_SIZE: Final = 1152
CT1_SIZE: Final = 960
CT2_SIZE: Final = 128
MAC_SIZE: Final = 32
SEED_SIZE: Final = 64
MAX_EPOCH: Final = (1 << 64) - 1


class MessageType(enum.IntEnum):
    """The Braid message types, with their wire values (observed)."""

    NONE = 0
    HDR = 1
    EK = 2
    EK_CT1_ACK = 3
    CT1_ACK = 4
    CT1 = 5
    CT2 = 6


#: The types that carry a chunk.
CHUNKED: Final = frozenset({MessageType.HDR, MessageType.EK, MessageType.EK_CT1_ACK,
                            MessageType.CT1, MessageType.CT2})


class State(enum.IntEnum):
    """The eleven states, numbered as libsignal's record numbers them."""

    KEYS_UNSAMPLED = 1
    KEYS_SAMPLED = 2
    HEADER_SENT = 3
    CT1_RECEIVED = 4
    EK_SENT_CT1_RECEIVED = 5
    NO_HEADER_RECEIVED = 6
    HEADER_RECEIVED = 7
    CT1_SAMPLED = 8
    EK_RECEIVED_CT1_SAMPLED = 9
    CT1_ACKNOWLEDGED = 10
    CT2_SAMPLED = 11


@dataclass(frozen=True, slots=True)
class BraidMessage:
    """One Braid message: the sender's epoch, a type and, for the chunked
    types, a chunk index and 32 bytes."""

    epoch: int
    type: MessageType
    chunk_index: int | None = None
    chunk: bytes | None = None

    def __post_init__(self) -> None:
        if isinstance(self.epoch, bool) or not isinstance(self.epoch, int) \
                or not 1 <= self.epoch <= MAX_EPOCH:
            raise InvalidArgument("a Braid epoch is an integer in 1..2**64-1")
        if not isinstance(self.type, MessageType):
            raise InvalidArgument("a Braid message type is a MessageType")
        if self.type in CHUNKED:
            if (isinstance(self.chunk_index, bool) or not isinstance(self.chunk_index, int)
                    or not 0 <= self.chunk_index <= 0xFFFF):
                raise InvalidArgument("a chunk index is an integer in 0..65535")
            if not isinstance(self.chunk, bytes) or len(self.chunk) != CHUNK_SIZE:
                raise InvalidArgument("a chunk is 32 bytes")
        elif self.chunk_index is not None or self.chunk is not None:
            raise InvalidArgument(f"a {self.type.name} message carries no chunk")


#: Output of a send or a receive that completed an epoch: (epoch, secret).
EpochKey = tuple[int, bytes]


class Braid:
    """One party's Braid state.  :meth:`send` and :meth:`receive` change it
    in place; a caller that must be able to undo (a message whose MAC fails
    later) works on :meth:`copy` and keeps the copy only on success."""

    __slots__ = ("state", "epoch", "_auth", "_seed", "_ek_vector", "_header", "_ct1",
                 "_encaps", "_encoder", "_decoder")

    def __init__(self, state: State, epoch: int, auth: AuthKeys) -> None:
        self.state = state
        self.epoch = epoch
        self._auth = auth
        self._seed: bytes | None = None          # decapsulation key (EK side)
        self._ek_vector: bytes | None = None     # own (2) or received (9)
        self._header: bytes | None = None        # received header (CT side)
        self._ct1: bytes | None = None
        #: Between ct1 and ct2 (CT side): the encapsulation state, serialized
        #: (it is written with the session after every message, and parsed
        #: only once, for ct2).
        self._encaps: bytes | None = None
        self._encoder: Encoder | None = None
        self._decoder: Decoder | None = None

    @classmethod
    def initiator(cls, seed: bytes) -> Braid:
        """The session's initiator: the EK side of epoch 1."""
        return cls(State.KEYS_UNSAMPLED, 1, auth_init(seed))

    @classmethod
    def responder(cls, seed: bytes) -> Braid:
        """The session's responder: the CT side of epoch 1."""
        braid = cls(State.NO_HEADER_RECEIVED, 1, auth_init(seed))
        braid._decoder = Decoder(HEADER_SIZE + MAC_SIZE)
        return braid

    def copy(self) -> Braid:
        """An independent copy (encoders and decoders copied; bytes shared)."""
        other = Braid(self.state, self.epoch, self._auth)
        other._seed, other._ek_vector, other._header = self._seed, self._ek_vector, self._header
        other._ct1, other._encaps = self._ct1, self._encaps
        other._encoder = None if self._encoder is None else self._encoder.copy()
        other._decoder = None if self._decoder is None else self._decoder.copy()
        return other

    def __repr__(self) -> str:
        return f"Braid(state={self.state.name}, epoch={self.epoch})"

    # --- sending ------------------------------------------------------------------------

    def _chunk(self, kind: MessageType) -> BraidMessage:
        assert self._encoder is not None
        if self._encoder.next_index > MAX_CHUNK_INDEX:
            # Every chunk index of this stream was sent (65,536 messages with
            # nothing back that moves the Braid on): go on without a chunk,
            # which every state of the peer's takes (and ignores).
            return BraidMessage(self.epoch, MessageType.NONE)
        index, chunk = self._encoder.next_chunk()
        return BraidMessage(self.epoch, kind, index, chunk)

    def send(self, rng: RandomSource) -> tuple[BraidMessage, EpochKey | None]:
        """The Braid message for the next Signal message, and the epoch key
        this send produced (only on leaving HEADER_RECEIVED).  The message's
        SPQR key comes from chain epoch ``message.epoch - 1``."""
        state = self.state
        if state is State.KEYS_UNSAMPLED:
            seed, header, ek_vector = keygen(rng.random_bytes(SEED_SIZE))
            mac = mac_header(self._auth.mac_key, self.epoch, header)
            self._seed, self._ek_vector = seed, ek_vector
            self._encoder = Encoder(header + mac)
            self.state = State.KEYS_SAMPLED
            return self._chunk(MessageType.HDR), None
        if state is State.KEYS_SAMPLED:
            return self._chunk(MessageType.HDR), None
        if state is State.HEADER_SENT:
            return self._chunk(MessageType.EK), None
        if state is State.CT1_RECEIVED:
            return self._chunk(MessageType.EK_CT1_ACK), None
        if state is State.EK_SENT_CT1_RECEIVED:
            return BraidMessage(self.epoch, MessageType.CT1_ACK), None
        if state is State.HEADER_RECEIVED:
            assert self._header is not None
            encaps, ct1, shared = encaps1(self._header, rng.random_bytes(32))
            secret = scka_key(shared, self.epoch)
            self._auth = auth_update(self._auth.root_key, self.epoch, secret)
            self._encaps, self._ct1 = encaps.to_bytes(), ct1
            self._encoder = Encoder(ct1)
            self.state = State.CT1_SAMPLED
            return self._chunk(MessageType.CT1), (self.epoch, secret)
        if state in (State.CT1_SAMPLED, State.EK_RECEIVED_CT1_SAMPLED):
            return self._chunk(MessageType.CT1), None
        if state is State.CT2_SAMPLED:
            return self._chunk(MessageType.CT2), None
        # NO_HEADER_RECEIVED, CT1_ACKNOWLEDGED
        return BraidMessage(self.epoch, MessageType.NONE), None

    # --- receiving ----------------------------------------------------------------------

    def receive(self, message: BraidMessage) -> EpochKey | None:
        """Take the peer's Braid message; returns the epoch key its receipt
        produced (only when it completes ct2 on the EK side).  A message
        that does not fit the state is ignored.  Raises
        :class:`~signalish.errors.AuthenticationError` if a completed header
        or ciphertext fails its MAC, a completed ek_vector does not match its
        header, or the message's epoch is one this party has not reached (a
        peer in step cannot be there: the message is forged, or this state
        is older than the peer's, as after a restore from a backup).  On any
        error this object may be half-changed (work on a :meth:`copy`)."""
        state, kind = self.state, message.type
        if message.epoch != self.epoch:
            if state is State.CT2_SAMPLED and message.epoch == self.epoch + 1:
                self._clear()
                self.state, self.epoch = State.KEYS_UNSAMPLED, self.epoch + 1
                return None
            if message.epoch > self.epoch:
                raise AuthenticationError("decryption failed")
            return None  # an older epoch's message: nothing for the Braid
        if state is State.KEYS_SAMPLED and kind is MessageType.CT1:
            self._decoder = Decoder(CT1_SIZE)
            self._add(message)
            assert self._ek_vector is not None
            self._encoder = Encoder(self._ek_vector)
            self._ek_vector = None
            self.state = State.HEADER_SENT
            self._after_ct1_chunk()
        elif state is State.HEADER_SENT and kind is MessageType.CT1:
            self._add(message)
            self._after_ct1_chunk()
        elif state is State.CT1_RECEIVED and kind is MessageType.CT2:
            self._decoder = Decoder(CT2_SIZE + MAC_SIZE)
            self.state = State.EK_SENT_CT1_RECEIVED
            self._encoder = None
            return self._ct2_chunk(message)
        elif state is State.EK_SENT_CT1_RECEIVED and kind is MessageType.CT2:
            return self._ct2_chunk(message)
        elif state is State.NO_HEADER_RECEIVED and kind is MessageType.HDR:
            self._add(message)
            assert self._decoder is not None
            payload = self._decoder.message()
            if payload is not None:
                header, mac = payload[:HEADER_SIZE], payload[HEADER_SIZE:]
                if not ct_equal(mac, mac_header(self._auth.mac_key, self.epoch, header)):
                    raise AuthenticationError("decryption failed")  # the header's MAC
                self._header = header
                self._decoder = Decoder(EK_VECTOR_SIZE)
                self.state = State.HEADER_RECEIVED
        elif state is State.CT1_SAMPLED and kind in (MessageType.EK, MessageType.EK_CT1_ACK):
            self._add(message)
            ek_vector = self._ek_complete()
            acked = kind is MessageType.EK_CT1_ACK
            if ek_vector is not None and acked:
                self._finish_encaps(ek_vector)
            elif ek_vector is not None:
                self._ek_vector, self._decoder = ek_vector, None
                self.state = State.EK_RECEIVED_CT1_SAMPLED
            elif acked:
                self._encoder = None
                self.state = State.CT1_ACKNOWLEDGED
        elif state is State.EK_RECEIVED_CT1_SAMPLED and kind is MessageType.EK_CT1_ACK:
            assert self._ek_vector is not None
            self._finish_encaps(self._ek_vector)
        elif state is State.CT1_ACKNOWLEDGED and kind in (MessageType.EK, MessageType.EK_CT1_ACK):
            self._add(message)
            ek_vector = self._ek_complete()
            if ek_vector is not None:
                self._finish_encaps(ek_vector)
        return None

    def _add(self, message: BraidMessage) -> None:
        assert self._decoder is not None and message.chunk is not None
        assert message.chunk_index is not None
        self._decoder.add_chunk(message.chunk_index, message.chunk)

    def _after_ct1_chunk(self) -> None:
        assert self._decoder is not None
        ct1 = self._decoder.message()
        if ct1 is not None:
            self._ct1, self._decoder = ct1, None
            self.state = State.CT1_RECEIVED

    def _ct2_chunk(self, message: BraidMessage) -> EpochKey | None:
        self._add(message)
        assert self._decoder is not None
        payload = self._decoder.message()
        if payload is None:
            return None
        assert self._seed is not None and self._ct1 is not None
        ct2, mac = payload[:CT2_SIZE], payload[CT2_SIZE:]
        secret = scka_key(decapsulate(self._seed, self._ct1, ct2), self.epoch)
        auth = auth_update(self._auth.root_key, self.epoch, secret)
        if not ct_equal(mac, mac_ciphertext(auth.mac_key, self.epoch, self._ct1 + ct2)):
            raise AuthenticationError("decryption failed")  # the ciphertext's MAC
        epoch = self.epoch
        self._clear()
        self._auth = auth
        self.state, self.epoch = State.NO_HEADER_RECEIVED, epoch + 1
        self._decoder = Decoder(HEADER_SIZE + MAC_SIZE)
        return epoch, secret

    def _ek_complete(self) -> bytes | None:
        assert self._decoder is not None
        return self._decoder.message()

    def _finish_encaps(self, ek_vector: bytes) -> None:
        assert self._encaps is not None and self._header is not None and self._ct1 is not None
        try:
            ct2 = encaps2(EncapsState.from_bytes(self._encaps), self._header, ek_vector)
        except InvalidKey:
            # The ek_vector does not match the header the peer MACed.
            raise AuthenticationError("decryption failed") from None
        mac = mac_ciphertext(self._auth.mac_key, self.epoch, self._ct1 + ct2)
        self._clear()
        self._encoder = Encoder(ct2 + mac)
        self.state = State.CT2_SAMPLED

    def _clear(self) -> None:
        self._seed = self._ek_vector = self._header = self._ct1 = None
        self._encaps = None
        self._encoder = self._decoder = None

    # --- serialization ------------------------------------------------------------------

    #: Per state, which fields are stored, in this order.
    _FIELDS: Final = {
        State.KEYS_UNSAMPLED: (),
        State.KEYS_SAMPLED: ("seed", "ek_vector", "encoder"),
        State.HEADER_SENT: ("seed", "encoder", "decoder"),
        State.CT1_RECEIVED: ("seed", "ct1", "encoder"),
        State.EK_SENT_CT1_RECEIVED: ("seed", "ct1", "decoder"),
        State.NO_HEADER_RECEIVED: ("decoder",),
        State.HEADER_RECEIVED: ("header", "decoder"),
        State.CT1_SAMPLED: ("header", "encaps", "ct1", "encoder", "decoder"),
        State.EK_RECEIVED_CT1_SAMPLED: ("header", "encaps", "ct1", "ek_vector", "encoder"),
        State.CT1_ACKNOWLEDGED: ("header", "encaps", "ct1", "decoder"),
        State.CT2_SAMPLED: ("encoder",),
    }
    #: The payload size of each state's encoder and decoder.
    _STREAMS: Final = {
        State.KEYS_SAMPLED: (HEADER_SIZE + MAC_SIZE, None),
        State.HEADER_SENT: (EK_VECTOR_SIZE, CT1_SIZE),
        State.CT1_RECEIVED: (EK_VECTOR_SIZE, None),
        State.EK_SENT_CT1_RECEIVED: (None, CT2_SIZE + MAC_SIZE),
        State.NO_HEADER_RECEIVED: (None, HEADER_SIZE + MAC_SIZE),
        State.HEADER_RECEIVED: (None, EK_VECTOR_SIZE),
        State.CT1_SAMPLED: (CT1_SIZE, EK_VECTOR_SIZE),
        State.EK_RECEIVED_CT1_SAMPLED: (CT1_SIZE, None),
        State.CT1_ACKNOWLEDGED: (None, EK_VECTOR_SIZE),
        State.CT2_SAMPLED: (CT2_SIZE + MAC_SIZE, None),
    }

    def write(self, w: Writer) -> None:
        """Append the state: state (1) || epoch (8) || authenticator root
        key (32) || MAC key (32), then the state's fields in the order of
        ``_FIELDS``: fixed-size ones as they are (seed 64, ek_vector 1152,
        header 64, ct1 960, encapsulation state 1312), encoders and decoders
        with a 4-byte length (their layouts: signalish._primitives.erasure)."""
        w.u8(self.state).u64(self.epoch).fixed(self._auth.root_key).fixed(self._auth.mac_key)
        for name in self._FIELDS[self.state]:
            if name == "encoder":
                assert self._encoder is not None
                w.var(self._encoder.to_bytes())
            elif name == "decoder":
                assert self._decoder is not None
                w.var(self._decoder.to_bytes())
            else:
                value = getattr(self, "_" + name)
                assert isinstance(value, bytes)
                w.fixed(value)

    _SIZES: Final = {"seed": SEED_SIZE, "ek_vector": EK_VECTOR_SIZE, "header": HEADER_SIZE,
                     "ct1": CT1_SIZE, "encaps": ENCAPS_STATE_SIZE}

    @classmethod
    def read(cls, r: Reader) -> Braid:
        """Read what :meth:`write` wrote; raises a
        :class:`~signalish.errors.DecodeError` for anything else."""
        raw_state = r.u8("SPQR state")
        if raw_state not in State._value2member_map_:
            raise InvalidEncoding("SPQR: unknown Braid state")
        state = State(raw_state)
        epoch = r.u64("SPQR epoch")
        if epoch == 0:
            raise InvalidEncoding("SPQR: epoch 0")
        auth = AuthKeys(r.fixed(32, "authenticator root key"), r.fixed(32, "authenticator MAC key"))
        braid = cls(state, epoch, auth)
        encoder_size, decoder_size = cls._STREAMS.get(state, (None, None))
        for name in cls._FIELDS[state]:
            if name == "encoder":
                encoder = Encoder.from_bytes(r.var("SPQR encoder", 1 << 16))
                if encoder.size != encoder_size:
                    raise InvalidEncoding("SPQR: an encoder of the wrong size for its state")
                braid._encoder = encoder
            elif name == "decoder":
                decoder = Decoder.from_bytes(r.var("SPQR decoder", 1 << 16))
                if decoder.size != decoder_size or decoder.has_message():
                    raise InvalidEncoding("SPQR: a decoder of the wrong size, or complete")
                braid._decoder = decoder
            elif name == "encaps":
                encaps = r.fixed(ENCAPS_STATE_SIZE, "SPQR encapsulation state")
                EncapsState.from_bytes(encaps)  # refused here if out of range
                braid._encaps = encaps
            else:
                setattr(braid, "_" + name, r.fixed(cls._SIZES[name], f"SPQR {name}"))
        return braid
