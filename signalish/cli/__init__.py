"""Command line: ``python -m signalish demo [--header-encryption]`` and
``python -m signalish vectors verify [PATH]``.

Edges only: the library itself never prints.  The vector generator is not
part of the package: ``python -m vectorgen`` from a checkout.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .._profile import PROFILES
from . import demo, vectors

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m signalish", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="a conversation through an untrusted server")
    run_demo.add_argument("--header-encryption", action="store_true",
                          help="encrypt ratchet headers (Double Ratchet section 4)")
    run_vectors = commands.add_parser("vectors", help="verify vectors/")
    actions = run_vectors.add_subparsers(dest="action", required=True)
    check = actions.add_parser("verify", help="check signalish against vector files")
    check.add_argument("path", type=Path, nargs="?", default=None)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo.run(PROFILES["native"], header_encryption=args.header_encryption)
    if args.command == "vectors":
        return vectors.verify(args.path or vectors.default_dir())
    return 2  # pragma: no cover - argparse enforces the choices
