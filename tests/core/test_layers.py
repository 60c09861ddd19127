"""The layers of zoo, kept: imports only point down, and nothing imports in a circle.

Every `import` and `from ... import` statement counts, at module level, inside functions and
under `if TYPE_CHECKING:` alike: a type hint that points up is still a module that knows one
above it. The layers are in `LAYERS`, lowest first (docs/architecture.md explains them); a
module may import its own layer and those below, never one above, and a new module must sit
in one of them. The same holds for each built-in plugin: its modules import one another
without cycles.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Lowest first. A module belongs to the first prefix it starts with.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("zoo.core",)),
    ("toolkit", ("zoo.toolkit",)),
    ("training", ("zoo.training",)),
    ("features", ("zoo.features",)),
    ("python api", ("zoo.api",)),
    ("command line", ("zoo.cli",)),
    ("facade", ("zoo.__main__", "zoo")),
)


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    where: str  # path:line of the import statement

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} ({self.where})"


def module_name(path: Path, root: Path, package: str) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    name = ".".join((package, *parts))
    return name.removesuffix(".__init__")


def modules(root: Path, package: str) -> dict[str, Path]:
    return {module_name(p, root, package): p for p in sorted(root.rglob("*.py"))}


def imports(path: Path, name: str, known: dict[str, Path], package: str) -> list[Edge]:
    """Every import of a module of `package` in the file, resolved to the module imported."""
    is_package = path.name == "__init__.py"
    edges = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:  # `from zoo.core import config`: the module config
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in known else base)
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        where = f"{shown}:{getattr(node, 'lineno', 0)}"
        for target in targets:
            while target not in known and "." in target:  # `import zoo.core.x.y` -> the module
                target = target.rpartition(".")[0]
            inside = target == package or target.startswith(package + ".")
            if target in known and target != name and inside:
                edges.append(Edge(name, target, where))
    return edges


def graph(root: Path, package: str) -> list[Edge]:
    known = modules(root, package)
    return [edge for name, path in known.items() for edge in imports(path, name, known, package)]


def cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One cycle (as its edges) for each strongly connected group of modules (Tarjan)."""
    out: dict[str, list[Edge]] = {}
    for edge in edges:
        out.setdefault(edge.source, []).append(edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for edge in out.get(node, []):
            if edge.target not in index:
                visit(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(out):
        if node not in index:
            visit(node)
    return [_a_cycle(sorted(group)[0], group, out) for group in groups]


def _a_cycle(start: str, group: set[str], out: dict[str, list[Edge]]) -> list[Edge]:
    """A path from `start` back to itself inside `group` (breadth first: a short one)."""
    paths: list[list[Edge]] = [[e] for e in out[start] if e.target in group]
    seen = {start}
    while paths:
        path = paths.pop(0)
        if path[-1].target == start:
            return path
        if path[-1].target in seen:
            continue
        seen.add(path[-1].target)
        paths += [[*path, e] for e in out[path[-1].target] if e.target in group]
    raise AssertionError("a strongly connected group has a cycle")


def layer_of(module: str) -> int | None:
    for number, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return number
    return None


def describe(cycle: list[Edge]) -> str:
    return "import cycle: " + "; ".join(map(str, cycle))


# --------------------------------------------------------------------------------- zoo
ZOO = graph(REPO / "zoo", "zoo")


def test_every_module_of_zoo_is_in_a_layer():
    lost = [m for m in modules(REPO / "zoo", "zoo") if layer_of(m) is None]
    assert not lost, f"modules in no layer of tests/core/test_layers.py LAYERS: {lost}"


def test_zoo_has_no_import_cycle():
    found = cycles(ZOO)
    assert not found, "\n".join(map(describe, found))


def test_imports_only_point_down():
    upward = [
        f"{edge} imports from the {LAYERS[layer_of(edge.target)][0]} layer, above "
        f"{LAYERS[layer_of(edge.source)][0]}"
        for edge in ZOO
        if layer_of(edge.target) > layer_of(edge.source)  # type: ignore[operator]
    ]
    assert not upward, "\n".join(upward)


def test_zoo_itself_is_imported_by_nobody_inside_zoo():
    """`zoo/__init__.py` is the facade for users and plugins: code inside zoo names the module
    it means, so that the facade can import from every layer without a cycle."""
    inside = [str(edge) for edge in ZOO if edge.target == "zoo"]
    assert not inside, "\n".join(inside)


# ----------------------------------------------------------------------------- plugins
PLUGINS = sorted(p.parent.name for p in (REPO / "plugins").glob("*/__init__.py"))


@pytest.mark.parametrize("plugin", PLUGINS)
def test_each_built_in_plugin_has_no_import_cycle(plugin):
    found = cycles(graph(REPO / "plugins" / plugin, f"zoo_plugins.{plugin}"))
    assert not found, "\n".join(map(describe, found))


# ------------------------------------------------------------------- the check itself
def test_the_check_finds_a_cycle_and_an_upward_import(tmp_path):
    """The checker is real: a small package with a cycle and an upward import is caught,
    each named by its edge."""
    root = tmp_path / "zoo"
    (root / "core").mkdir(parents=True)
    (root / "features").mkdir()
    (root / "__init__.py").write_text("")
    (root / "core" / "__init__.py").write_text("")
    (root / "core" / "a.py").write_text("def f():\n    from zoo.features import b\n")
    (root / "features" / "__init__.py").write_text("")
    (root / "features" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from zoo.core.a import f\n"
    )
    edges = graph(root, "zoo")
    assert {(e.source, e.target) for e in edges} == {
        ("zoo.core.a", "zoo.features.b"),
        ("zoo.features.b", "zoo.core.a"),
    }
    [cycle] = cycles(edges)
    assert {e.source for e in cycle} == {"zoo.core.a", "zoo.features.b"}
    up = [e for e in edges if layer_of(e.target) > layer_of(e.source)]  # type: ignore[operator]
    assert [str(e).split(" (")[0] for e in up] == ["zoo.core.a -> zoo.features.b"]
