"""Coverage-guided fuzzing of every signalish parser with atheris.

    pip install atheris            # once; needs a C compiler (clang or gcc)
    python tests/fuzz/fuzz_parsers.py -max_total_time=3600 [corpus/]

The first input byte picks the parser, the rest is its input.  The harness
fails (atheris reports a crash and writes the input) on any exception that
is not signalish's own typed error, and on any accepted input that does not
re-encode to exactly the same bytes.  CI runs the Hypothesis equivalent
(tests/test_hostile.py) instead; this is for long runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    from signalish import (
        DeterministicRandom,
        IdentityKey,
        IdentityKeyPair,
        KemPreKeyPublic,
        LIBSIGNAL_V3,
        OneTimePreKeyPublic,
        PreKeyBundle,
        PreKeyRing,
        SignalishError,
        SignedPreKeyPublic,
    )
    from signalish.fingerprint import compare_scannable
    from signalish.sealed_box import SealedBoxPrivateKey, SealedBoxPublicKey, SealedBoxSuite
    from signalish._initial import InitialHeader
    from signalish._session import SessionRecord
    from signalish._message import parse
    from signalish._wire_v3 import parse_v3

IDENTITY = IdentityKeyPair.generate(DeterministicRandom(b"fuzz"))
BOX = SealedBoxPrivateKey(SealedBoxSuite.MLKEM768_X25519, bytes(32))
CODECS = [IdentityKey, IdentityKeyPair, SignedPreKeyPublic, OneTimePreKeyPublic,
          KemPreKeyPublic, PreKeyBundle, InitialHeader, SessionRecord, SealedBoxPublicKey,
          SealedBoxPrivateKey]
OTHERS = [
    lambda d: parse(d, 1 << 16),
    lambda d: parse_v3(d, 1 << 16),
    lambda d: PreKeyRing.from_bytes(d, IDENTITY),
    BOX.open,
    lambda d: compare_scannable(d, d),
    IdentityKey.from_public_bytes,
    lambda d: IdentityKey.decode(d, LIBSIGNAL_V3),
]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    choice, payload = data[0], data[1:]
    if choice < len(CODECS):
        codec = CODECS[choice]
        try:
            value = codec.from_bytes(payload)  # type: ignore[attr-defined]
        except SignalishError:
            return
        if value.to_bytes() != payload:
            raise AssertionError(f"{codec.__name__}: a second encoding was accepted")
        return
    try:
        OTHERS[choice % len(OTHERS)](payload)
    except SignalishError:
        return


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
