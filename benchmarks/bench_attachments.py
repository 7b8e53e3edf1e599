"""Attachment encryption throughput against its primitive floor, same run.

Usage: ``python benchmarks/bench_attachments.py [--quick] [--json PATH]``

Ours is the streaming API an application uses (docs/attachments.md): an
``AttachmentEncryptor`` fed 64 KiB chunks, and an ``AttachmentDecryptor``
fed the blob in 64 KiB chunks into a sink that keeps nothing.  Throughput is
plaintext megabytes (10**6 bytes) per second.

Two floors, called directly on ``cryptography``, ``hmac`` and ``hashlib`` over
the same bytes (the padded body, in the same 64 KiB chunks):

* ``AES+HMAC``: AES-256-CBC and HMAC-SHA256, the floor the format's
  encryption and authentication cannot go below;
* ``+SHA-256``: that plus the SHA-256 digest of the blob, which the format also
  requires (the attachment pointer carries it), so the whole of the
  unavoidable work.

The ratios ours / floor are the figures to compare across machines.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cryptography  # noqa: E402
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402

import signalish  # noqa: E402
from signalish._attachments import (  # noqa: E402
    AttachmentDecryptor,
    AttachmentEncryptor,
    AttachmentKey,
    attachment_padded_size,
)
from signalish._primitives import DeterministicRandom, SystemRandom  # noqa: E402

CHUNK = 64 * 1024
MIB = 2**20


class NullSink:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes, /) -> None:
        self.count += len(data)

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        raise AssertionError("the benchmark's blob failed to verify")


def chunks(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), CHUNK):
        yield bytes(view[start:start + CHUNK])


def scenario(size: int) -> dict[str, Callable[[], object]]:
    """The four timed operations for one file size."""
    rng = DeterministicRandom(b"bench-attachments")
    plaintext = rng.random_bytes(size)
    key = AttachmentKey.generate(rng)
    system = SystemRandom()
    encryptor = AttachmentEncryptor(key, rng=rng)
    blob = b"".join(encryptor.encrypt_iter(chunks(plaintext)))
    meta = encryptor.metadata
    blob_chunks = list(chunks(blob))
    plain_chunks = list(chunks(plaintext))
    body_chunks = list(chunks(plaintext + bytes(attachment_padded_size(size) - size)))
    aes_key, mac_key = key.to_bytes()[:32], key.to_bytes()[32:]
    iv = blob[:16]
    body_len = attachment_padded_size(size)

    def ours_encrypt() -> object:
        enc = AttachmentEncryptor(key, rng=system)
        for piece in enc.encrypt_iter(iter(plain_chunks)):
            pass
        return enc.metadata

    def ours_decrypt() -> object:
        sink = NullSink()
        dec = AttachmentDecryptor(key, sink, digest=meta.digest, size=size)
        for piece in blob_chunks:
            dec.update(piece)
        dec.finish()
        return sink.count

    def floor(decrypt: bool, digest: bool) -> Callable[[], object]:
        def run() -> object:
            cipher = Cipher(algorithms.AES(aes_key), modes.CBC(iv))
            ctx = cipher.decryptor() if decrypt else cipher.encryptor()
            mac = hmac.new(mac_key, iv, "sha256")
            sha = hashlib.sha256(iv) if digest else None
            for piece in (blob_chunks if decrypt else body_chunks):
                out = ctx.update(piece)
                mac.update(piece if decrypt else out)
                if sha is not None:
                    sha.update(piece if decrypt else out)
            if not decrypt:  # the body is block-aligned or not: PKCS#7 adds 1..16 bytes
                last = ctx.update(bytes([16 - body_len % 16]) * (16 - body_len % 16))
                last += ctx.finalize()
                mac.update(last)
                if sha is not None:
                    sha.update(last)
            else:
                ctx.finalize()
            return mac.digest(), sha.digest() if sha is not None else None
        return run

    return {"ours_encrypt": ours_encrypt, "ours_decrypt": ours_decrypt,
            "floor_encrypt": floor(False, False), "floor_decrypt": floor(True, False),
            "floor_sha_encrypt": floor(False, True), "floor_sha_decrypt": floor(True, True)}


def measure(fn: Callable[[], object], *, rounds: int) -> float:
    """Median seconds per call over ``rounds`` calls, after one warm-up."""
    fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def figures(quick: bool) -> list[dict[str, Any]]:
    """Throughput of ours and of both floors, 1 MB and 64 MB, as rows."""
    results = []
    for label, size, rounds in (("1 MB", MIB, 5 if quick else 31),
                                ("64 MB", 64 * MIB, 1 if quick else 5)):
        ops = scenario(size)
        # Interleave ours and the floors so that drift on the machine hits all alike.
        seconds: dict[str, list[float]] = {name: [] for name in ops}
        for _ in range(1 if quick else 3):
            for name, fn in ops.items():
                seconds[name].append(measure(fn, rounds=rounds))
        mbps = {name: size / 1e6 / statistics.median(s) for name, s in seconds.items()}
        for direction in ("encrypt", "decrypt"):
            ours = mbps[f"ours_{direction}"]
            results.append({
                "name": f"{direction} {label}", "size": size,
                "ours_mb_s": ours, "floor_mb_s": mbps[f"floor_{direction}"],
                "floor_sha_mb_s": mbps[f"floor_sha_{direction}"],
                "ratio": mbps[f"floor_{direction}"] / ours,
                "ratio_sha": mbps[f"floor_sha_{direction}"] / ours})
    return results


def lines(results: list[dict[str, Any]]) -> list[str]:
    """The rows as Markdown (used by this script and by suite.py)."""
    out = [f"Attachments ({CHUNK // 1024} KiB chunks, MB/s of plaintext, higher is better; "
           "ours/floor = our time / the floor's, in the same run):", "",
           "| attachment | ours (MB/s) | AES+HMAC (MB/s) | ours/floor | +SHA-256 (MB/s) "
           "| ours/floor |", "|---|---|---|---|---|---|"]
    for r in results:
        out.append(f"| {r['name']} | {r['ours_mb_s']:.0f} | {r['floor_mb_s']:.0f} "
                   f"| {r['ratio']:.2f} | {r['floor_sha_mb_s']:.0f} | {r['ratio_sha']:.2f} |")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: proves the suite runs")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    results = figures(args.quick)
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "cryptography": cryptography.__version__, "signalish": signalish.__version__,
            "chunk": CHUNK, "quick": args.quick}
    print(f"signalish {meta['signalish']}, cryptography {meta['cryptography']}, "
          f"Python {meta['python']} on {meta['machine']}")
    print("\n".join(lines(results)))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
