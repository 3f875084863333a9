"""The import structure the line side promises: read from the source, not from what happens to load."""

import ast
from pathlib import Path

import edge_agent

ROOT = Path(edge_agent.__file__).parent
LINE_SIDE = ("capture", "runtime", "publish")
FORBIDDEN = ("edge_agent.agent", "edge_agent.cli", "edge_agent.trainer")


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_line_side_never_imports_the_daemon_the_cli_or_the_trainer():
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in imports_of(path) if n.startswith(FORBIDDEN))
        for package in LINE_SIDE
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_settings_and_helpers_the_line_side_uses_are_leaves():
    for leaf in ("settings.py", "errors.py", "fsutil.py", "threads.py"):
        assert not {n for n in imports_of(ROOT / leaf) if n.startswith("edge_agent.") and n != "edge_agent.errors"}


def test_the_backend_protocol_imports_no_backend_and_no_factory():
    imported = imports_of(ROOT / "runtime" / "backends" / "base.py")
    assert not {n for n in imported if n.startswith("edge_agent.runtime")}


def test_the_daemon_does_not_import_workstation_tools_at_start():
    for path in (ROOT / "agent").glob("*.py"):
        tree = ast.parse(path.read_text())
        top_level = {
            node.module
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edge_agent.runtime.tools")
        }
        assert not top_level, f"{path.name} imports {top_level} at start"


def test_no_line_side_or_agent_file_is_over_400_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for package in (*LINE_SIDE, "agent")
        for p in (ROOT / package).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert long == {}


def module_graph() -> dict[str, set[str]]:
    """Every edge_agent module and the edge_agent modules it imports (at the top or inside functions)."""
    graph = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[name] = {n for n in imports_of(path) if n.startswith("edge_agent")}
    # `from edge_agent.x import y` may name a module y: count the package edge only.
    return {m: {d for d in deps if d in graph} for m, deps in graph.items()}


def test_there_are_no_import_circles():
    graph = {m: deps - {m} for m, deps in module_graph().items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if dep.startswith(node + ".") or node.startswith(dep + "."):
                continue  # a package and its own modules (an __init__ re-exporting them)
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
