"""The house rules of agent/ (agent/__init__.py), checked on the real import graph.

Every ``import`` in every module is read with ``ast`` -- also those inside functions
and under ``TYPE_CHECKING``, which hide a dependency without removing it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2] / "agent"
MAX_LINES = 400

VOCABULARY = "agent.model"  # the package and every module in it
SHARED = {
    "agent.config",
    "agent.credentials",
    "agent.lifecycle",
    "agent.clock",  # the agent's steady clock, and the wall clock's time of its seconds
    "agent.android",
    "agent.addresses",
    "agent.meters",  # what every layer counts into
    "agent.config.sessions",
}
CORE = {
    "agent.registry",
    "agent.ledger",
    "agent.deadlines",
    "agent.records",
    "agent.refusals",
    "agent.store",
    "agent.store_errors",
    "agent.store_writer",
    "agent.authority",
    "agent.events",
    "agent.core",
    "agent.waitlist",
    "agent.actions",
    "agent.statelock",
}
# The parts of the sources the config reads: their rule grammars, nothing that runs.
GRAMMAR = {
    "agent.discovery",
    "agent.discovery.match",
    "agent.discovery.static",
}


def layer(module: str) -> str:
    """The layer a module of agent/ belongs to."""
    if module == VOCABULARY or module.startswith(VOCABULARY + "."):
        return "vocabulary"
    if module in SHARED:
        return "shared"
    if module in CORE:
        return "core"
    for prefix, name in (
        ("agent.discovery", "sources"),
        ("agent.coordinator", "sinks"),
        ("agent.systemd", "sinks"),
        ("agent.sessions", "sinks"),
        ("agent.recovery", "sinks"),
        ("agent.audit", "sinks"),
        ("agent.metrics", "sinks"),
        ("agent.api", "api"),
    ):
        if module == prefix or module.startswith(prefix + "."):
            return name
    return "tools"


# What each layer may import besides itself and the vocabulary.
ALLOWED = {
    "vocabulary": set(),
    "shared": {"shared"},
    "core": {"shared"},
    "sources": {"shared"},
    "sinks": {"core", "shared"},
    "api": {"core", "shared", "sinks"},
    "tools": {"core", "shared", "sinks", "api", "sources"},
}


def modules() -> dict[str, Path]:
    """Every module of agent/ by its dotted name."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(module: str, path: Path, known: set[str]) -> Iterator[str]:
    """The agent modules ``module`` imports (``from a import b`` counts a.b if it is one)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        # ``from agent import refusals`` names agent.refusals, not the package itself.
        yield from (n for n in names if n in known and n not in (module, "agent"))


GRAPH = {m: set(imports(m, p, set(modules()))) for m, p in modules().items()}


def test_the_layers_are_what_the_package_docstring_says() -> None:
    assert {layer(m) for m in ("agent.model", "agent.model.changes")} == {"vocabulary"}
    assert layer("agent.config.sessions") == "shared"
    assert layer("agent.discovery.udev") == "sources"
    assert layer("agent.coordinator.sync") == "sinks"
    assert layer("agent.systemd.supervision") == "sinks"
    assert layer("agent.audit") == "sinks"
    assert {layer(m) for m in ("agent.actions", "agent.statelock")} == {"core"}
    assert layer("agent.api.rest") == "api"
    assert {layer(m) for m in ("agent.cli", "agent.doctor", "agent.daemon")} == {"tools"}


def upward(module: str, deps: set[str]) -> list[str]:
    """The imports of ``module`` that run against the flow."""
    mine = layer(module)
    allowed = {mine, "vocabulary"} | ALLOWED[mine]
    return sorted(
        dep
        for dep in deps
        if layer(dep) not in allowed and not (mine == "shared" and dep in GRAMMAR)
    )


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_only_run_downward(module: str) -> None:
    wrong = upward(module, GRAPH[module])
    assert not wrong, f"{module} ({layer(module)}) imports {wrong} ({[layer(d) for d in wrong]})"


def test_the_import_graph_has_no_cycle() -> None:
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for dep in sorted(GRAPH[module]):
            visit(dep, [*path, module])
        done.add(module)

    for module in sorted(GRAPH):
        visit(module, [])


def test_the_rule_sees_a_violation() -> None:
    # The check itself must be able to fail.
    assert upward("agent.registry", {"agent.coordinator.sync"}) == ["agent.coordinator.sync"]
    assert upward("agent.discovery.udev", {"agent.authority"}) == ["agent.authority"]
    assert upward("agent.coordinator.sync", {"agent.api.wire"}) == ["agent.api.wire"]
    assert upward("agent.config", {"agent.discovery.udev"}) == ["agent.discovery.udev"]
    assert upward("agent.config", {"agent.discovery.match"}) == []


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_is_over_400_lines(module: str) -> None:
    lines = modules()[module].read_text().count("\n")
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it by what it holds"
