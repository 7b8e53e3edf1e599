"""Command line: ``python -m signalish demo [--header-encryption]``.

Edges only: the library itself never prints.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .._profile import PROFILES
from . import demo

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m signalish", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="a conversation through an untrusted server")
    run_demo.add_argument("--header-encryption", action="store_true",
                          help="encrypt ratchet headers (Double Ratchet section 4)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo.run(PROFILES["native"], header_encryption=args.header_encryption)
    return 2  # pragma: no cover - argparse enforces the choices
