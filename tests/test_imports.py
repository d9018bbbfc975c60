"""The library's import graph has no cycle: every import of a lkca_jax module, at module level or
inside a function, read from the source (nothing is imported to find them)."""

import ast

from conftest import ROOT


def import_graph() -> dict[str, set[str]]:
    """{module: the lkca_jax modules it imports}, a package standing for its ``__init__.py``."""
    files = {}
    for f in (ROOT / "lkca_jax").rglob("*.py"):
        parts = f.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f

    def known(name: str) -> str:  # the module a dotted name lives in
        while name not in files:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for module, f in files.items():
        found = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lkca_jax") and not node.level:
                found |= {known(f"{node.module}.{a.name}") for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {known(a.name) for a in node.names if a.name.startswith("lkca_jax")}
        graph[module] = found - {module, "lkca_jax"}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as [a, b, ..., a], or [] (depth-first search, three colours)."""
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_cycle_finder_finds_a_cycle_and_only_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []  # a diamond is no cycle


def test_the_library_has_no_import_cycle():
    graph = import_graph()
    assert {"lkca_jax.methods", "lkca_jax.data.scenes", "lkca_jax.data.tfds"} <= set(graph)
    assert "lkca_jax.methods" in graph["lkca_jax.lowrank"]  # function-level imports are read too
    assert cycle(graph) == [], " -> ".join(cycle(graph))
