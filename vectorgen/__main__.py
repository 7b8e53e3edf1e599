"""``python -m vectorgen [--check] [--dir DIR]``: rebuild vectors/ byte for
byte, or with ``--check`` only compare (exit 1 on any difference)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vectorgen.generate import GENERATORS


def render(data: object) -> str:
    return json.dumps(data, indent=1, sort_keys=False) + "\n"


def generate(directory: Path, check: bool) -> int:
    """Rebuild every generated vector file; with ``check``, only compare.

    A missing ``directory`` is created when writing; with ``check`` it is
    reported in one line (exit 1), since there is nothing to compare with."""
    if check and not directory.is_dir():
        print(f"{directory}: no such directory, nothing to compare with")
        return 1
    if not check:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            print(f"{directory}: cannot create the directory ({error.strerror or error})")
            return 1
    drift = 0
    for name, build in GENERATORS.items():
        path = directory / name
        text = render(build())
        if check:
            same = path.exists() and path.read_text() == text
            print(f"{name:24} {'unchanged' if same else 'DIFFERS from the library output'}")
            drift += not same
        else:
            path.write_text(text)
            print(f"{name:24} written ({len(text):,} bytes)")
    return 1 if drift else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vectorgen", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on drift")
    parser.add_argument("--dir", type=Path, default=Path.cwd() / "vectors",
                        help="the vectors directory (default ./vectors)")
    args = parser.parse_args(argv)
    return generate(args.dir, args.check)


if __name__ == "__main__":
    sys.exit(main())
