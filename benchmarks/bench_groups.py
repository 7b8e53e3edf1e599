"""One group message against group size: sender keys against pairwise fan-out.

Usage: ``python benchmarks/bench_groups.py [--quick] [--json PATH]``; also part
of ``python -m benchmarks``.

For a group of N members (the sender and N - 1 others, one device each),
the sender's cost and the bytes it uploads for one message, under
``LIBSIGNAL_V4`` (the formats Signal uses), at the API level:

* **sender keys + sealed sender v2** [GroupCipher + MemoryStore, seal_v2]: one
  SenderKeyMessage, sealed once for all N - 1 recipients (one body, one
  48-byte entry per recipient);
* **sender keys alone** [GroupCipher + MemoryStore]: the SenderKeyMessage
  (the same for any N), for a server that sees senders;
* **pairwise fan-out + sealed sender v1** [SessionManager + MemoryStore,
  seal_v1]: one 1:1 message (SPQR on, sessions past their first reply) per
  recipient, each sealed on its own, which is what a group costs without
  sender keys;

and one recipient's cost to read its copy [unseal_and_validate + GroupCipher],
which does not grow with N.  The ratio column is pairwise / sender keys (how
many times more the fan-out costs), measured in the same run.
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import cryptography  # noqa: E402

from bench_handshake import measure  # noqa: E402

import signalish  # noqa: E402
from signalish import (  # noqa: E402
    LIBSIGNAL_V4,
    DeterministicRandom,
    IdentityKeyPair,
    MemoryStore,
    SessionManager,
    SessionOptions,
)
from signalish.groups import GroupCipher  # noqa: E402
from signalish.sealed_sender import (  # noqa: E402
    Device,
    Recipient,
    SenderCertificate,
    SentMessage,
    ServerCertificate,
    ServiceId,
    UnidentifiedSenderMessageContent,
    seal_v1,
    seal_v2,
    unseal_and_validate,
)

PAYLOAD = b"x" * 160  # a short text message, padded as Signal's applications pad
DISTRIBUTION = uuid.UUID(int=1)
EXPIRES = 2_000_000_000_000
NOW = 1_700_000_000


def _member_id(i: int) -> str:
    return str(uuid.UUID(int=(1 << 64) + i))


class Group:
    """A sender and ``size - 1`` recipients: identities, certificates, the
    sender's 1:1 sessions with each (answered once, so they are past their
    PreKey messages) and its sender key, distributed."""

    def __init__(self, size: int) -> None:
        rng = DeterministicRandom(b"bench groups %d" % size)
        self.rng = rng
        root, server = IdentityKeyPair.generate(rng), IdentityKeyPair.generate(rng)
        self.root = root.public
        signer = ServerCertificate.create(1, server.public, root)
        options = replace(SessionOptions.libsignal(1), pq_ratchet=True)
        self.sender = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), LIBSIGNAL_V4,
                                     rng=rng, options=options)
        self.certificate = SenderCertificate.create(
            sender_uuid=_member_id(0), sender_e164=None, sender_device_id=1,
            identity_key=self.sender.identity.public, expiration=EXPIRES, signer=signer,
            server_key=server)
        self.groups = GroupCipher(self.sender.store, LIBSIGNAL_V4, rng=rng)  # type: ignore[arg-type]
        skdm = self.groups.distribution_message("me", DISTRIBUTION)
        self.recipients: list[Recipient] = []
        self.peers: list[tuple[str, SessionManager]] = []
        for i in range(1, size):
            peer = SessionManager(IdentityKeyPair.generate(rng), MemoryStore(), LIBSIGNAL_V4,
                                  rng=rng, options=replace(options, registration_id=i))
            with peer.prekeys(now=0) as ring:
                ring.generate_kem_prekeys(1, rng, now=0)
                bundle = ring.issue_bundle()
            address = _member_id(i)
            self.sender.initiate(address, bundle)
            peer.decrypt("sender", self.sender.encrypt(address, skdm), now=NOW)
            self.sender.decrypt(address, peer.encrypt("sender", b"ok"), now=NOW)
            self.peers.append((address, peer))
            self.recipients.append(Recipient(ServiceId.aci(address), peer.identity.public,
                                             (Device(1, i),)))

    def sender_keys(self) -> bytes:
        return self.groups.encrypt("me", DISTRIBUTION, PAYLOAD)

    def sealed_v2(self) -> bytes:
        message = self.groups.encrypt("me", DISTRIBUTION, PAYLOAD)
        usmc = UnidentifiedSenderMessageContent(7, self.certificate, message, 1, b"g" * 32)
        return seal_v2(usmc, self.recipients, self.sender.identity, self.rng)

    def pairwise(self) -> int:
        total = 0
        for address, peer in self.peers:
            inner = self.sender.encrypt(address, PAYLOAD)
            usmc = UnidentifiedSenderMessageContent(2, self.certificate, inner)
            total += len(seal_v1(usmc, peer.identity.public, self.sender.identity, self.rng))
        return total


def figures(quick: bool) -> list[dict[str, Any]]:
    sizes = (2, 10, 100) if quick else (2, 10, 100, 1_000)
    rounds = 3 if quick else 7
    results = []
    for size in sizes:
        group = Group(size)
        per = max(1, 200 // size) if quick else max(2, 2_000 // size)
        v2_us, v2_spread = measure(group.sealed_v2, rounds=rounds, per_round=per)
        sk_us, _ = measure(group.sender_keys, rounds=rounds, per_round=per * 4)
        pair_us, pair_spread = measure(group.pairwise, rounds=rounds, per_round=max(1, per // 4))
        sent = group.sealed_v2()
        first = group.recipients[0].service_id
        received = SentMessage.from_bytes(sent).received_message(first)
        # A reader that joins now (the current sender key, so the backlog is
        # read in order, without a jump past the forward limit).
        reader = GroupCipher(MemoryStore(), LIBSIGNAL_V4)
        reader.process("sender", group.groups.distribution_message("me", DISTRIBUTION))

        def read(copy: bytes) -> None:
            usmc = unseal_and_validate(copy, group.peers[0][1].identity, trust_roots=group.root,
                                       now=EXPIRES)
            reader.decrypt("sender", usmc.contents)

        # A fresh message each time (a read consumes its key): made and split
        # (the server's work) outside the timing, read inside it.
        backlog = collections.deque(
            SentMessage.from_bytes(group.sealed_v2()).received_message(first)
            for _ in range(rounds * per + max(3, per // 5)))
        read_us, _ = measure(lambda: read(backlog.popleft()), rounds=rounds, per_round=per)
        results.append({
            "members": size, "sender_keys_v2_us": v2_us, "sender_keys_v2_spread_us": v2_spread,
            "sender_keys_us": sk_us, "pairwise_us": pair_us, "pairwise_spread_us": pair_spread,
            "ratio": pair_us / v2_us, "read_us": read_us,
            "sender_keys_v2_bytes": len(sent), "sender_keys_bytes": len(group.sender_keys()),
            "pairwise_bytes": group.pairwise(), "received_bytes": len(received),
        })
    return results


def lines(results: list[dict[str, Any]]) -> list[str]:
    """The rows as Markdown (used by this script and by suite.py)."""
    out = ["Groups: one message from one sender to N - 1 members, LIBSIGNAL_V4 (sender: "
           "[GroupCipher + MemoryStore] + seal_v2, against [SessionManager + MemoryStore] + "
           "seal_v1 per member, SPQR on; reader: [unseal_and_validate + GroupCipher]; "
           "pairwise/SK = how many times more the fan-out costs, same run):", "",
           "| members | sender keys + v2 | pairwise + v1 | pairwise/SK | sender keys alone "
           "| bytes sent, SK + v2 | bytes sent, pairwise | bytes per recipient | one reader |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        out.append(f"| {r['members']:,} | {r['sender_keys_v2_us']:,.0f} us "
                   f"| {r['pairwise_us']:,.0f} us | {r['ratio']:.1f}x "
                   f"| {r['sender_keys_us']:,.0f} us | {r['sender_keys_v2_bytes']:,} "
                   f"| {r['pairwise_bytes']:,} | {r['received_bytes']:,} "
                   f"| {r['read_us']:,.0f} us |")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: proves the suite runs")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    results = figures(args.quick)
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "cryptography": cryptography.__version__, "signalish": signalish.__version__,
            "quick": args.quick}
    print(f"signalish {meta['signalish']}, cryptography {meta['cryptography']}, "
          f"Python {meta['python']} on {meta['machine']}")
    print("\n".join(lines(results)))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
