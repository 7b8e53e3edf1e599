"""The layer map (docs/architecture.md), checked on the source.

Every module under signalish/ is parsed with :mod:`ast`, never imported, and
its imports, wherever they stand (module level, inside functions, under
``if TYPE_CHECKING``), are checked against the layer table below:

* a module imports only from its own layer and the layers below it;
* only ``signalish._primitives`` imports ``cryptography``;
* no import cycle joins signalish modules.

The table lives here and only here; docs/architecture.md shows the same
table, and :func:`test_the_docs_show_this_table` keeps the two equal.  A new
module goes into both.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection, Iterator
from functools import cache
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
PACKAGE: Final = ROOT / "signalish"
ARCHITECTURE_DOC: Final = ROOT / "docs" / "architecture.md"

# Lowest layer first.  Names are relative to the signalish package: a package
# (``_primitives``, ``cli``) covers every module inside it, and ``__init__`` is
# signalish/__init__.py, the public API.
LAYERS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("foundation", ("_errors", "_encoding", "_profile")),
    ("primitives", ("_primitives",)),
    ("keys", ("_keys", "_fingerprint", "_sealed", "_attachments", "_provisioning")),
    ("bundle", ("_bundle", "_initial")),
    ("prekeys", ("_prekeys",)),
    ("x3dh", ("_x3dh",)),
    ("ratchet", ("_window", "_ratchet", "_spqr_kdf", "_spqr_chains", "_spqr_braid")),
    ("wire", ("_wire", "_message", "_wire_v3", "_wire_v4", "_wires", "_state_codec",
              "_padding", "_recovery", "_spqr", "_sealed_sender")),
    ("session", ("_session", "_sender_keys")),
    ("stores", ("_stores", "_async_store", "_postgres")),
    ("services", ("_storage", "_devices", "_manager", "_async", "_backup")),
    ("api", ("errors", "groups", "sealed_sender", "linking", "postgres", "attachments",
             "fingerprint", "backup", "sealed_box", "recovery", "__init__")),
    ("edge", ("cli", "__main__")),
)

# The one layer allowed to import cryptography.
CRYPTOGRAPHY_LAYER: Final = "primitives"


# --- reading the source ------------------------------------------------------------


@cache
def modules() -> dict[str, Path]:
    """Every module under signalish/, by dotted name (``signalish._keys``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _resolve(name: str, known: Collection[str]) -> str:
    """The module of ``known`` that ``name`` refers to (its longest known
    prefix), or ``name`` unchanged when it names none (``cryptography``)."""
    candidate = name
    while candidate:
        if candidate in known:
            return candidate
        candidate = candidate.rpartition(".")[0]
    return name


def _dynamic_import(node: ast.Call) -> str | None:
    """The module named by ``importlib.import_module("x")`` or ``__import__("x")``."""
    func = node.func
    named = (isinstance(func, ast.Name) and func.id in ("__import__", "import_module")) or (
        isinstance(func, ast.Attribute) and func.attr == "import_module")
    if named and node.args and isinstance(node.args[0], ast.Constant):
        value = node.args[0].value
        if isinstance(value, str) and not value.startswith("."):
            return value
    return None


def parse_imports(source: str, package: str, known: Collection[str]) -> list[tuple[str, int]]:
    """(imported module, line) for every import in ``source``, a module of
    ``package``, resolved to a module of ``known`` where it names one."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((_resolve(alias.name, known), node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # "from . import demo" imports a module; "from ._keys import X" a name.
            found.extend((_resolve(f"{target}.{alias.name}", known), node.lineno)
                         for alias in node.names)
        elif isinstance(node, ast.Call) and (dynamic := _dynamic_import(node)):
            found.append((_resolve(dynamic, known), node.lineno))
    return found


@cache
def imports_of(module: str) -> tuple[tuple[str, int], ...]:
    """Every import of one signalish module; see :func:`parse_imports`."""
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return tuple(parse_imports(path.read_text(), package, modules()))


def _table_key(module: str) -> str:
    return "__init__" if module == "signalish" else module.removeprefix("signalish.")


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the layer that holds ``module``."""
    key = _table_key(module)
    for index, (_, members) in enumerate(LAYERS):
        if any(key == member or key.startswith(member + ".") for member in members):
            return index
    return None


def _where(module: str, line: int) -> str:
    return f"{modules()[module].relative_to(ROOT)}:{line}"


def _internal_edges() -> Iterator[tuple[str, str, int]]:
    for module in modules():
        for target, line in imports_of(module):
            if target in modules() and target != module:
                yield module, target, line


# --- the rules ------------------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    missing = [module for module in modules() if layer_of(module) is None]
    assert not missing, (
        f"modules in no layer: {missing}; add each to LAYERS in tests/test_architecture.py "
        "and to the table in docs/architecture.md")


def test_the_table_names_only_modules_that_exist() -> None:
    keys = {_table_key(module) for module in modules()}
    stale = [member for _, members in LAYERS for member in members
             if not any(key == member or key.startswith(member + ".") for key in keys)]
    assert not stale, f"the layer table names modules that do not exist: {stale}"


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    upward = []
    for module, target, line in _internal_edges():
        own, other = layer_of(module), layer_of(target)
        if own is not None and other is not None and other > own:
            upward.append(f"{_where(module, line)}: {module} ({LAYERS[own][0]}) imports "
                          f"{target} ({LAYERS[other][0]})")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_only_primitives_imports_cryptography() -> None:
    offenders = []
    importers = set()
    for module in modules():
        for target, line in imports_of(module):
            if target == "cryptography" or target.startswith("cryptography."):
                importers.add(module)
                layer = layer_of(module)
                if layer is None or LAYERS[layer][0] != CRYPTOGRAPHY_LAYER:
                    offenders.append(f"{_where(module, line)}: {module} imports {target}")
    assert not offenders, "cryptography imported outside the primitives:\n" + "\n".join(offenders)
    # The scan itself works: the primitives do import cryptography.
    assert "signalish._primitives.x25519" in importers


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module: set() for module in modules()}
    for module, target, _ in _internal_edges():
        graph[module].add(target)
    return graph


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth first)."""
    start, inside = component[0], set(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(graph[node] & inside):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if succ not in previous:
                    previous[succ] = node
                    following.append(succ)
        frontier = following
    raise AssertionError("a strongly connected component without a cycle")


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles = [" -> ".join(_shortest_cycle(graph, component))
              + f" (one of {len(component)} modules in a cycle)"
              for component in _components(graph)]
    assert not cycles, "import cycles among signalish modules:\n" + "\n".join(cycles)


def test_the_scanner_resolves_every_import_form() -> None:
    # A scanner that saw nothing would pass every rule above.
    known = {"p", "p._a", "p._b", "p.sub", "p.sub.c"}
    in_p = """
import os
import p._a
from . import sub
from .sub import c
from ._b import name
from p import public_name
import cryptography.hazmat.primitives
def later() -> None:
    from ._a import y
    importlib.import_module("cryptography.x509")
"""
    assert sorted(parse_imports(in_p, "p", known), key=lambda found: found[1]) == [
        ("os", 2), ("p._a", 3), ("p.sub", 4), ("p.sub.c", 5), ("p._b", 6), ("p", 7),
        ("cryptography.hazmat.primitives", 8), ("p._a", 10), ("cryptography.x509", 11),
    ]
    in_sub = "from .._b import name\nfrom . import c, package_name\n"
    assert parse_imports(in_sub, "p.sub", known) == [("p._b", 1), ("p.sub.c", 2), ("p.sub", 2)]


# --- the documentation -------------------------------------------------------------


_ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*([\w-]+)\s*\|([^|]*)\|")


def test_the_docs_show_this_table() -> None:
    text = ARCHITECTURE_DOC.read_text()
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    rows = [match for line in section.splitlines() if (match := _ROW.match(line))]
    documented = [(int(m[1]), m[2], tuple(re.findall(r"`([\w.]+)`", m[3]))) for m in rows]
    expected = [(index, name, members) for index, (name, members) in enumerate(LAYERS)]
    assert documented == expected, "docs/architecture.md's layer table differs from LAYERS"


def test_the_vector_generator_is_not_in_the_installed_package() -> None:
    """Its pure-Python ML-KEM encapsulation is for vectors only (not constant
    time): it lives in vectorgen/, beside vectors/, not under signalish/."""
    names = {path.name for path in PACKAGE.rglob("*.py")}
    assert not names & {"vector_gen.py", "mlkem_encaps.py", "generate.py"}
    assert (PACKAGE.parent / "vectorgen" / "mlkem_encaps.py").is_file()
