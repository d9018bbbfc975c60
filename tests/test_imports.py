"""The library's import graph has no cycle: every import of a lkca_jax module, at module level or
inside a function, read from the source (nothing is imported to find them)."""

import ast
import contextlib
import gc

from conftest import ROOT


@contextlib.contextmanager
def no_gc_finalizers():
    """Parse with the cyclic garbage collector off. CPython 3.11 keeps one AST recursion counter per
    interpreter: a finalizer run by a collection in the middle of ``ast.parse`` (CI: an orbax coroutine
    left by an earlier test, whose unraisable-exception report formats a traceback, which parses
    source too) moves it, and the outer parse fails with "SystemError: AST constructor recursion depth
    mismatch". Collecting first and pausing the collector keeps finalizers out of the parse."""
    was_on = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


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

    with no_gc_finalizers():
        trees = {module: ast.parse(f.read_text(), str(f)) for module, f in files.items()}
    graph = {}
    for module, tree in trees.items():
        found = set()
        for node in ast.walk(tree):
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


def test_the_import_graph_survives_finalizers_that_parse_source():
    class ParsesWhenFreed:  # what CI's orbax coroutine did: a finalizer that ends up in ast.parse
        def __del__(self):
            ast.parse("a = (1 + (2 * (3 - 4)))")

    threshold = gc.get_threshold()
    gc.set_threshold(20)  # collect often, so a collection would fall inside every parse
    try:
        for _ in range(5):
            for _ in range(100):
                cyclic = ParsesWhenFreed()
                cyclic.me = cyclic
            del cyclic
            assert "lkca_jax.methods" in import_graph()["lkca_jax.lowrank"]
    finally:
        gc.set_threshold(*threshold)


def test_the_library_has_no_import_cycle():
    graph = import_graph()
    assert {"lkca_jax.methods", "lkca_jax.data.scenes", "lkca_jax.data.tfds"} <= set(graph)
    assert "lkca_jax.methods" in graph["lkca_jax.lowrank"]  # function-level imports are read too
    assert cycle(graph) == [], " -> ".join(cycle(graph))


# The library's layers, lowest first (README, "Layout"): a module imports only from its own layer
# (without a cycle) or from lower ones. Each name covers the module and everything under it.
LAYERS = (
    ("base", ("ops", "atomic", "quiet", "hostmem", "provenance", "paper", "metrics", "losses", "parallel",
              "precision", "methods")),
    ("data", ("data",)),
    ("models", ("models",)),
    ("reference", ("reference",)),
    ("config", ("config",)),
    ("runs", ("checkpoint", "pretrained", "convert", "accounting", "distillation", "lowrank", "inference")),
    ("work", ("evaluation", "figures", "export", "training")),
    ("commands", ("__main__", "")),  # "": the package's own __init__ (load_pretrained, build_model, ...)
)


def layer_of(module: str) -> int:
    name = module.removeprefix("lkca_jax").removeprefix(".")
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} is in no layer of LAYERS: add it where it belongs")


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a lower layer to a higher one, as 'a (layer) -> b (layer)'."""
    return [f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})"
            for a in sorted(graph) for b in sorted(graph[a]) if layer_of(b) > layer_of(a)]


def test_the_layer_check_finds_an_upward_import():
    assert upward({"lkca_jax.data.tfds": {"lkca_jax.config"}, "lkca_jax.config": {"lkca_jax.data.spec"}}) == [
        "lkca_jax.data.tfds (data) -> lkca_jax.config (config)"]


def test_every_module_imports_only_its_own_layer_or_lower_ones():
    graph = import_graph()
    assert {layer_of(m) for m in graph} == set(range(len(LAYERS)))  # every layer holds a module
    assert upward(graph) == [], "\n".join(upward(graph))
