"""The documentation's code runs, and every public name is documented.

The Sphinx build itself runs in CI with warnings as errors (.ci/run)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

import signalish

DOCS = Path(__file__).resolve().parent.parent / "docs"
EXAMPLES = sorted((DOCS / "examples").glob("*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example: Path) -> None:
    runpy.run_path(str(example), run_name="__main__")


def test_every_example_is_shown_in_the_docs() -> None:
    pages = "".join(p.read_text() for p in DOCS.glob("*.rst"))
    for example in EXAMPLES:
        assert f"examples/{example.name}" in pages


def test_every_public_name_is_documented() -> None:
    api = (DOCS / "api.rst").read_text()
    for name in signalish.__all__:
        obj = getattr(signalish, name)
        documented = f"py:data:: {name}\n" in api or (
            getattr(obj, "__doc__", None) and obj.__doc__ is not type(obj).__doc__
            and not isinstance(obj, (int, str, bytes)))
        assert documented, f"signalish.{name} has no documentation"
