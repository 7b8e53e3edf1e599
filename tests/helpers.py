"""Loading vector files from the project's own vectors/ tree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def load_vectors(relative: str) -> Any:
    with open(VECTORS / relative, encoding="utf-8") as handle:
        return json.load(handle)


def wycheproof_cases(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(group, test) pairs of a Wycheproof file, for pytest parametrization."""
    data = load_vectors(f"third_party/wycheproof/{name}")
    return [(group, test) for group in data["testGroups"] for test in group["tests"]]


def case_id(case: tuple[dict[str, Any], dict[str, Any]]) -> str:
    group, test = case
    return f"tc{test['tcId']}-{test['result']}"
