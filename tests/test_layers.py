"""The import graph of ``src/tailor`` is the pipeline: every import points down a layer, and nothing loops.

Built from the source with ``ast`` (every ``import`` and ``from … import``, at the top of a module or inside a
function, since a deferred import is still a dependency). Layers, bottom to top, as README's "Layout" tells:
a module may import its own package and any lower layer; packages that share a layer stay independent.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import tailor

SRC = Path(tailor.__file__).parent
LAYERS: list[tuple[str, ...]] = [
    ("errors", "_version", "progress"),
    ("settings", "asgi", "json_input", "localfiles"),
    ("storage", "db", "resources", "artifact"),
    ("membership",),  # who serves a shared database (over db)
    ("data",),
    ("algorithms",),  # the registry and the built-in algorithm: trains, exports model.tar.gz
    ("serving", "auth"),  # serving rebuilds a network from model.json, so it sits above algorithms
    ("backends",),  # where processes run: local now, a cluster next
    ("jobs", "hosting", "transform"),
    ("tuning",),  # tuning jobs run their trials as training jobs
    ("migrations",),  # the schema of every domain's tables
    ("core",),
    ("api", "client"),
    ("cli",),
]
RANK = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    parts = ("tailor", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in SRC.rglob("*.py")}


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The tailor modules ``path`` imports (``from pkg import mod`` counts as importing ``pkg.mod``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m == "tailor" or m.startswith("tailor.")}


@functools.cache
def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, name, set(mods)) - {name} for name, path in mods.items()}


def unit(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def test_every_module_has_a_layer() -> None:
    units = {unit(m) for m in modules()} - {"tailor"}
    assert units <= set(RANK), f"put {sorted(units - set(RANK))} in a layer (and in README's Layout)"


def test_imports_point_down() -> None:
    upward = []
    for source, targets in graph().items():
        if source == "tailor":
            continue  # the package itself re-exports the SDK: the top of the graph
        for target in targets:
            a, b = unit(source), unit(target)
            if a != b and (b == "tailor" or RANK[b] >= RANK[a]):
                upward.append(f"{source} -> {target}")
    assert not upward, "imports that do not point to a lower layer:\n" + "\n".join(sorted(upward))


def test_no_cycles() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    """The walker finds deferred and relative imports, so a violation cannot hide inside a function."""
    pkg = tmp_path / "tailor" / "data"
    pkg.mkdir(parents=True)
    mod = pkg / "x.py"
    mod.write_text("def f():\n    from ..hosting import service\n    import tailor.jobs.runner\n")
    found = imports(mod, "tailor.data.x", {"tailor.hosting.service"})
    assert found == {"tailor.hosting.service", "tailor.jobs.runner"}
    assert all(RANK[unit(t)] > RANK["data"] for t in found)
