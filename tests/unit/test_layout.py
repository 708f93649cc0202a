"""The package's import graph: no circles, and the classical tracker a leaf under the network.

Every ``import`` / ``from ... import`` of a project module counts, at module level or inside a function
(a function-local import still runs, it only hides the circle from a reader).
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# source folder -> import name (sim/ and policies/ install as traceany_ros.sim, traceany_ros.policies)
SOURCES = {"traceany_ros": "traceany_ros", "sim": "traceany_ros.sim", "policies": "traceany_ros.policies"}
GENERATED = ("traceany_ros.msg", "traceany_ros.srv")
TRACKER = "traceany_ros.tracker"
ABOVE_TRACKER = ("traceany_ros.model", "traceany_ros.backends", "traceany_ros.train", "traceany_ros.stream",
                 "traceany_ros.predict", "traceany_ros.nodes", "traceany_ros.commands", "traceany_ros.cli")


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Import name -> file of every project module (packages by their ``__init__``)."""
    mods = {}
    for folder, name in SOURCES.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root / folder).with_suffix("").parts
            mod = ".".join((name,) + (parts[:-1] if parts[-1] == "__init__" else parts))
            if not mod.startswith(GENERATED):
                mods[mod] = path
    return mods


def _ancestors(mod: str) -> list[str]:
    parts = mod.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules its import statements run (and the packages above them that they run first,
    except its own parents, which are running already)."""
    graph = {}
    for mod, path in mods.items():
        named = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                named.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                named.add(node.module)
                named.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import submodule`
        deps = set()
        for name in named:
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name and name != mod:
                deps.update([name] + _ancestors(name))
        own = set(_ancestors(mod))
        graph[mod] = {d for d in deps if d in mods and d not in own and d != mod}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


@pytest.fixture(scope="module")
def graph():
    return import_graph(project_modules())


def test_the_package_has_no_import_circles(graph):
    assert import_circles(graph) == []


def test_the_tracker_imports_nothing_above_it(graph):
    tracker = [m for m in graph if m == TRACKER or m.startswith(TRACKER + ".")]
    assert len(tracker) >= 6  # the package and its modules were found
    for mod in tracker:
        above = sorted(d for d in reachable(graph, mod) if d.startswith(ABOVE_TRACKER))
        assert above == [], f"{mod} imports {above}"


def test_the_network_path_runs_down_to_geometry_and_the_field(graph):
    """The model (and its training) reach neither the classical tracker nor the backends above them."""
    for mod in ("traceany_ros.model", "traceany_ros.train.loop"):
        up = sorted(d for d in reachable(graph, mod)
                    if d.startswith((TRACKER, "traceany_ros.backends", "traceany_ros.stream", "traceany_ros.nodes")))
        assert up == [], f"{mod} imports {up}"
    assert {"traceany_ros.geometry", "traceany_ros.field"} <= reachable(graph, "traceany_ros.model")


def test_geometry_imports_no_project_module(graph):
    assert graph["traceany_ros.geometry"] == set()


def test_the_checks_see_a_circle_and_an_upward_import(tmp_path):
    """The same checks on a made-up tree: a function-local circle and a tracker importing the network."""
    pkg = tmp_path / "traceany_ros"
    (pkg / "tracker").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "backends.py").write_text("def f():\n    from traceany_ros.tracker import flow\n")
    (pkg / "tracker" / "__init__.py").write_text("")
    (pkg / "tracker" / "flow.py").write_text("import numpy\n\ndef g():\n    import traceany_ros.model.network\n")
    (pkg / "model").mkdir()
    (pkg / "model" / "__init__.py").write_text("")
    (pkg / "model" / "network.py").write_text("from traceany_ros.backends import f\n")
    for folder in ("sim", "policies"):
        (tmp_path / folder).mkdir()
    g = import_graph(project_modules(tmp_path))
    assert import_circles(g) == [["traceany_ros.backends", "traceany_ros.model.network", "traceany_ros.tracker.flow"]]
    assert "traceany_ros.model.network" in reachable(g, "traceany_ros.tracker.flow")
