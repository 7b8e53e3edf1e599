"""``python -m signalish vectors {generate,verify}``."""

from __future__ import annotations

import json
from pathlib import Path

from .vector_check import check_file
from .vector_gen import GENERATORS


def default_dir() -> Path:
    """./vectors: run from the repository root, or pass a path."""
    return Path.cwd() / "vectors"


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


def verify(target: Path) -> int:
    files = sorted(target.glob("*.json")) if target.is_dir() else [target]
    rows, failures = [], 0
    for path in files:
        data = json.loads(path.read_text())
        for label, problem in check_file(data):
            rows.append((path.name, label, problem))
            failures += problem is not None
    width = max((len(f) + len(c) for f, c, _ in rows), default=10) + 3
    print(f"{'vector':{width}} result")
    for file, label, problem in rows:
        print(f"{file + ' ' + label:{width}} {'pass' if problem is None else 'FAIL ' + problem}")
    print(f"{len(rows) - failures} passed, {failures} failed")
    return 1 if failures or not rows else 0
