"""The documentation's code runs, and every public name is documented.

The Sphinx build itself runs in CI with warnings as errors (.ci/run)."""

from __future__ import annotations

import importlib
import runpy
from pathlib import Path

import pytest

import signalish
import signalish.errors

DOCS = Path(__file__).resolve().parent.parent / "docs"
EXAMPLES = sorted((DOCS / "examples").glob("*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example: Path) -> None:
    runpy.run_path(str(example), run_name="__main__")


def test_every_example_is_shown_in_the_docs() -> None:
    pages = "".join(p.read_text() for pattern in ("*.rst", "*.md") for p in DOCS.glob(pattern))
    for example in EXAMPLES:
        assert f"examples/{example.name}" in pages


def _is_documented(obj: object, name: str, api: str, module: str = "signalish") -> bool:
    return f"py:data:: {name}\n" in api or f"py:data:: {module}.{name}\n" in api or bool(
        getattr(obj, "__doc__", None) and obj.__doc__ is not type(obj).__doc__
        and not isinstance(obj, (int, str, bytes)))


#: Every public module (docs/api.rst): the rest are private.
PUBLIC_MODULES = ["signalish", "signalish.errors", "signalish.groups", "signalish.sealed_sender",
                  "signalish.linking", "signalish.postgres", "signalish.attachments",
                  "signalish.fingerprint", "signalish.backup", "signalish.sealed_box",
                  "signalish.recovery"]


def test_the_public_modules_are_these() -> None:
    """No public (unprefixed) module is missing from PUBLIC_MODULES."""
    package = Path(signalish.__file__).parent
    found = {"signalish"} | {f"signalish.{p.stem}" for p in package.glob("*.py")
                             if not p.stem.startswith("_")}
    assert found == set(PUBLIC_MODULES)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_name_is_documented(name: str) -> None:
    module = importlib.import_module(name)
    api = (DOCS / "api.rst").read_text()
    assert f"automodule:: {module.__name__}\n" in api
    for name in module.__all__:
        obj = getattr(module, name)
        assert _is_documented(obj, name, api, module.__name__), \
            f"{module.__name__}.{name} has no documentation"


def test_every_error_class_is_in_signalish_errors() -> None:
    """signalish.errors lists every subclass of SignalishError, and nothing else."""
    exported = {getattr(signalish.errors, name) for name in signalish.errors.__all__}

    def subclasses(cls: type) -> set[type]:
        return {cls} | {s for c in cls.__subclasses__() for s in subclasses(c)}
    assert subclasses(signalish.SignalishError) == exported


def _drawn_parents(docstring: str) -> dict[str, set[str]]:
    """Each class's parents as drawn in a docstring's ``+--`` tree."""
    lines = docstring[docstring.index("    SignalishError\n"):].splitlines()
    parents: dict[str, set[str]] = {"SignalishError": set()}
    path = ["SignalishError"]
    for line in lines[1:]:
        if "+-- " not in line:
            break
        depth = line.index("+-- ") // 4
        name = line[line.index("+-- ") + 4:].split()[0]
        del path[depth:]
        parents.setdefault(name, set()).add(path[-1])
        path.append(name)
    return parents


@pytest.mark.parametrize("module", ["signalish.errors"])
def test_the_error_tree_in_the_docs_is_the_hierarchy(module: str) -> None:
    docstring = importlib.import_module(module).__doc__
    assert docstring is not None
    actual = {
        name: {base.__name__ for base in getattr(signalish.errors, name).__bases__
               if issubclass(base, signalish.SignalishError)}
        for name in signalish.errors.__all__}
    assert _drawn_parents(docstring) == actual


def test_a_name_that_moved_out_of_signalish_still_imports_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="signalish.backup.create_backup"):
        from signalish import create_backup
    from signalish.backup import create_backup as moved
    assert create_backup is moved
    assert "create_backup" not in signalish.__all__
    with pytest.raises(AttributeError):
        signalish.no_such_name  # noqa: B018
