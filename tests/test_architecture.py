"""The module map holds: no import cycle anywhere in the four packages, and the dependency direction of the design
(grammar imports neither torch nor z3; formal never imports torch; neural never imports z3).

The graph is read from each file's ``ast``, so imports deferred into functions count as much as top-level ones.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("grammar", "neural", "formal", "bridge")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imported_names(path: Path, module: str) -> set[str]:
    """Every module named by an import in this file, relative imports resolved; ``from P import m`` names P.m too."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph = {}
    for name, path in modules.items():
        graph[name] = {n for n in imported_names(path, name) if n in modules and n != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for root in sorted(graph):
        if state.get(root):
            continue
        stack = [(root, iter(sorted(graph[root])))]
        path = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            nxt = next(children, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(sorted(graph[nxt]))))
                path.append(nxt)
    return None


def test_the_graph_sees_deferred_imports():
    graph = import_graph()
    assert "bridge.output" in graph["bridge.verify"]  # top level
    assert "bridge.proof" in graph["bridge.verify"]  # inside a function
    assert "grammar.netlist" in graph["bridge.target"]


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("package, forbidden", [("grammar", {"torch", "z3", "neural", "formal", "bridge"}),
                                                 ("formal", {"torch", "bridge"}),
                                                 ("neural", {"z3", "formal", "bridge"})])
def test_dependency_direction(package, forbidden):
    modules = project_modules()
    for name, path in modules.items():
        if name.split(".")[0] != package:
            continue
        roots = {n.split(".")[0] for n in imported_names(path, name)}
        assert not roots & forbidden, f"{name} imports {sorted(roots & forbidden)}"
