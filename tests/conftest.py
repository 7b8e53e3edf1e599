"""Shared helpers: loading vector files from the project's own vectors/ tree."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

VECTORS = Path(__file__).resolve().parent.parent / "vectors"

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
