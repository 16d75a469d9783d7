"""The imports inside ``liquidityhelper.simulator`` and ``liquidityhelper.nodes`` run one way,
and so do those of the daemon's parts (``main`` and the modules its loop is made of).

Every import statement counts: top level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import liquidityhelper

ROOT = Path(liquidityhelper.__file__).parent


def _import_nodes(tree: ast.AST, runtime_only: bool) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement under ``tree``; with ``runtime_only`` none under
    ``if TYPE_CHECKING:`` (those never run)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        if runtime_only and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(
    package: str, directory: Path | None = None, *, runtime_only: bool = False
) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports (``package`` itself for its
    ``__init__``). ``directory`` holds the package (default: where it is installed).
    ``runtime_only`` leaves out imports under ``TYPE_CHECKING``."""
    directory = directory or ROOT.parent.joinpath(*package.split("."))
    files = {
        package if p.stem == "__init__" else f"{package}.{p.stem}": p
        for p in sorted(directory.glob("*.py"))
    }
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        # The package that relative imports start from.
        here = name if path.stem == "__init__" else name.rpartition(".")[0]
        edges: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in _import_nodes(tree, runtime_only):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in files else base)
            edges.update(t for t in targets if t in files and t != name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    done: set[str] = set()
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in stack:
            return [*stack[stack.index(node) :], node]
        if node in done:
            return None
        stack.append(node)
        for nxt in sorted(graph[node]):
            cycle = visit(nxt)
            if cycle:
                return cycle
        stack.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or not."""
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph.get(name, ()))
    return seen


@pytest.mark.parametrize("package", ["liquidityhelper.simulator", "liquidityhelper.nodes"])
def test_no_import_cycle(package: str) -> None:
    graph = import_graph(package)
    assert len(graph) > 5
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_simulator_operations_do_not_import_the_model() -> None:
    """``model`` builds the operations; they see it only through ``ports.ModelPort``."""
    graph = import_graph("liquidityhelper.simulator")
    model = "liquidityhelper.simulator.model"
    for ops in ("channels", "lightning", "shop", "ports"):
        assert model not in graph[f"liquidityhelper.simulator.{ops}"], ops
    assert {"liquidityhelper.simulator.lightning", "liquidityhelper.simulator.shop"} <= graph[model]


def test_nodes_db_does_not_import_sources() -> None:
    graph = import_graph("liquidityhelper.nodes")
    assert "liquidityhelper.nodes.sources" not in graph["liquidityhelper.nodes.db"]
    assert "liquidityhelper.nodes.db" in graph["liquidityhelper.nodes.sources"]


# The loop's parts, in the order data flows: Bitcart read, sections decide and act, metrics.
DAEMON_PARTS = ("reading", "sections", "cycle_report", "cycle_metrics")


def test_the_daemon_parts_never_import_the_loop() -> None:
    """``main`` imports its parts; no part reaches ``main`` (or itself) through any import."""
    graph = import_graph("liquidityhelper")
    parts = {f"liquidityhelper.{p}" for p in DAEMON_PARTS}
    assert parts <= graph["liquidityhelper.main"]
    for part in sorted(parts):
        reach = reachable(graph, part)
        assert part not in reach, part
        assert "liquidityhelper.main" not in reach, part
    # One way: reading knows nothing of the sections, nor either of the metrics.
    assert not {"liquidityhelper.sections", "liquidityhelper.cycle_metrics"} & reachable(
        graph, "liquidityhelper.reading"
    )
    assert "liquidityhelper.cycle_metrics" not in reachable(graph, "liquidityhelper.sections")


def test_the_graph_sees_type_checking_local_and_relative_imports(tmp_path: Path) -> None:
    (tmp_path / "__init__.py").write_text("from pkg.a import A\n")
    (tmp_path / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n"
    )
    (tmp_path / "b.py").write_text("def f():\n    from . import c\n")
    (tmp_path / "c.py").write_text("import pkg.a\nfrom pkg import A\n")
    graph = import_graph("pkg", tmp_path)
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.c"},
        "pkg.c": {"pkg", "pkg.a"},
    }
    assert find_cycle(graph) == ["pkg", "pkg.a", "pkg.b", "pkg.c", "pkg"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert reachable(graph, "pkg.b") == {"pkg", "pkg.a", "pkg.b", "pkg.c"}
    assert reachable({"a": {"b"}, "b": set()}, "a") == {"b"}


def test_simulator_shares_no_code_with_the_daemon() -> None:
    """The simulator re-derives Electrum's and Bitcart's numbers itself; only logging setup
    (for ``python -m liquidityhelper.simulator``) comes from the daemon's package."""
    outside: set[str] = set()
    for path in (ROOT / "simulator").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                outside.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level:
                outside.add(node.module or "")
    ours = {m for m in outside if m.split(".")[0] == "liquidityhelper"}
    assert {m for m in ours if not m.startswith("liquidityhelper.simulator")} <= {
        "liquidityhelper.logs"
    }


def test_no_import_cycle_runs_among_the_top_level_modules() -> None:
    """``main -> wiring -> health -> page -> report -> status -> main`` ran in a circle; the
    command line's ``status`` (``status_command``) and starting the health server (``main``)
    now sit where they import nothing that comes back. Only type hints may look back."""
    graph = import_graph("liquidityhelper", runtime_only=True)
    assert len(graph) > 20
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])
