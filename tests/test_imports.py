"""The package's import graph: no cycle, and no edge from a lower layer to a higher one.

Every import counts, also the lazy ones inside functions (they run when the function does), except
in a package's ``__init__`` (top level only: its facade functions run on call). The
layers, low to high: physics (models, geometry, reduce kernels, units, ...) < study and plan <
stages < infrastructure and front ends (cluster, runtime, report, driver, api, cli).
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "qgtflow"

LOWER = ("qgtflow.models", "qgtflow.geometry", "qgtflow.reduce", "qgtflow.units")
HIGHER = ("qgtflow.stages", "qgtflow.cli", "qgtflow.report", "qgtflow.cluster", "qgtflow.plan", "qgtflow.runtime",
          "qgtflow.driver", "qgtflow.api")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """{module: the qgtflow modules it imports} (``from pkg import name`` counts as pkg.name when that is a module)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        edges = set()
        tree = ast.parse(path.read_text())
        # a package's __init__ counts at top level only: its functions (the qgtflow.evaluate facade)
        # run on call, not on import of a submodule (the convention of SOURCE_HASH in common.smk)
        for node in tree.body if is_pkg else ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = ".".join(parent[: len(parent) - node.level + 1] + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_no_import_cycle():
    graph = import_graph()
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_lower_layer_imports_a_higher_one():
    wrong = sorted(f"{a} -> {b}" for a, edges in import_graph().items() if _within(a, LOWER)
                   for b in edges if _within(b, HIGHER))
    assert not wrong, wrong


def test_the_graph_sees_lazy_imports():
    graph = import_graph()
    assert "qgtflow.study" in graph["qgtflow.plan"]  # inside a function
    assert "qgtflow.io" in graph["qgtflow.stages.geometry_stage"]  # `from qgtflow import io`
