"""``python -m signalish vectors verify [PATH]``."""

from __future__ import annotations

import json
from pathlib import Path

from .vector_check import check_file


def default_dir() -> Path:
    """./vectors: run from the repository root, or pass a path."""
    return Path.cwd() / "vectors"


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
