"""Command line: ``python -m signalish demo``.

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
    run_demo = commands.add_parser("demo", help="Alice reaches offline Bob through a server")
    run_demo.add_argument("--profile", choices=sorted(PROFILES), default="native")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo.run(PROFILES[args.profile])
    return 2  # pragma: no cover - argparse enforces the choices
