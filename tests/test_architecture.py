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
    assert "bridge.output" in graph["bridge.commands.verifying"]  # top level
    assert "bridge.proof" in graph["bridge.commands.verifying"]  # inside a function
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


# neural's two halves are its subpackages (neural/__init__.py); they share config, model, checkpoint and cvp.
def _half(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "neural" else None


def test_neural_modules_are_each_in_one_half_or_shared():
    shared = {"neural", "neural.config", "neural.model", "neural.checkpoint", "neural.cvp", "neural.construction",
              "neural.learning", "neural.tlens", "neural.hf", "neural.prefix_forcing", "neural.decoding",
              "neural.selected", "neural.streamed"}
    modules = [n for n in project_modules() if n.split(".")[0] == "neural"]
    assert {_half(n) for n in modules} == {None, "construction", "learning"}
    assert not [n for n in modules if n not in shared and _half(n) is None]


def test_neither_half_of_neural_imports_the_other():
    """They share the decoder, the checkpoint format and ``neural.decoding``; nothing else crosses."""
    graph = import_graph()
    for name, imports in graph.items():
        half = _half(name)
        if half in ("construction", "learning"):
            other = sorted(n for n in imports if _half(n) not in (None, half))
            assert not other, f"{name} imports {other}"


def test_one_greedy_loop():
    """Every greedy decoding in the packages is ``neural.decoding.greedy``: no other function feeds back its own
    argmax token by token."""
    loops = []
    for name, path in project_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name in ("greedy", "generate") and any(
                    isinstance(n, ast.For | ast.While) for n in ast.walk(node)):
                loops.append(f"{name}.{node.name}")
    assert loops == ["neural.decoding.greedy"]


# ---- errors: a user's mistake is exit 2, a bug is exit 70 --------------------------------------------------------

# Calls whose ValueError means "this user string is not a number / device": the only ones bridge may catch it from.
PARSES = {"int", "float", "os.dup2", "os.open"}
# bridge/output.py is the one place where every exception not mapped before is turned into its exit status (70 for
# a bug), and where a closed stdout is silenced.
EXEMPT = {"bridge/output.py"}


def _catches_value_error(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in ("ValueError", "Exception") for n in names if n is not None) \
        or handler.type is None


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def value_error_catches(tree: ast.AST) -> list[tuple[int, set[str]]]:
    """(line, calls in the try body) for every handler that catches ValueError (or everything)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_value_error(h) for h in node.handlers):
            calls = {_dotted(c.func) for stmt in node.body for c in ast.walk(stmt) if isinstance(c, ast.Call)}
            out.append((node.lineno, calls))
    return out


def test_bridge_catches_no_bare_value_error_from_the_library():
    """Users' mistakes come from the library as grammar.errors.ParameterError (or InputError); a ValueError caught
    around a library call would report a bug as bad input."""
    offenders = []
    for path in sorted((ROOT / "bridge").rglob("*.py")):
        for line, calls in value_error_catches(ast.parse(path.read_text())):
            if str(path.relative_to(ROOT)) in EXEMPT or calls <= PARSES:
                continue
            offenders.append(f"{path.relative_to(ROOT)}:{line} around {sorted(calls - PARSES)}")
    assert not offenders, offenders


def test_the_catch_finder_sees_a_library_call():
    tree = ast.parse("try:\n    build(x)\nexcept ValueError:\n    pass\n")
    assert value_error_catches(tree) == [(1, {"build"})]


def test_no_two_modules_share_a_basename():
    """A name like ``export`` or ``training`` means one module, whichever package a reader meets it in."""
    seen: dict[str, list[str]] = {}
    for name, path in project_modules().items():
        if path.name != "__init__.py":
            seen.setdefault(path.stem, []).append(name)
    assert {stem: names for stem, names in seen.items() if len(names) > 1} == {}


def test_bridge_engines_never_import_the_command_shells():
    """``bridge.commands`` parses flags, prints and picks exit codes over the engines; no engine reaches back up
    (the two ``python -m`` entry points, ``bridge.cli`` and ``bridge.verify``, are shells by another name)."""
    graph = import_graph()
    entry_points = {"bridge.cli", "bridge.verify"}
    engines = [m for m in graph if m.startswith("bridge.") and not m.startswith("bridge.commands")
               and m not in entry_points]
    assert engines and {m: sorted(n for n in graph[m] if n.startswith("bridge.commands")) for m in engines
                        if any(n.startswith("bridge.commands") for n in graph[m])} == {}


def test_construction_modes_are_compared_as_members_not_strings():
    """``grammar.ir.Mode`` is parsed once (the spec, a flag, a checkpoint); a ``== "cvp"`` on a mode elsewhere would
    be the second meaning the enum exists to prevent."""
    import re

    compared = re.compile(r"""(mode|construction)[\w.()"']*\s*[!=]=\s*["'](thm33|cvp)["']""")
    found = [f"{name}:{i}" for name, path in project_modules().items()
             for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if compared.search(line)]
    assert found == []
