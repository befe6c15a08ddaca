"""A static check: every stateful DataStream operator in the jobs has a stable `.uid(...)` (RELIABILITY T11).

A savepoint maps state to operators by uid; without one, Flink derives an id from the topology, and any
change to the job graph orphans the state. The check reads the job sources (no Flink needed) and reports
each call that creates an operator which may hold state — keyed `process`/`reduce`/`aggregate`/`apply`/
`sum`/`min`/`max`/`min_by`/`max_by`, `map`/`flat_map`/`filter` after a `key_by`, sources (`from_source`,
`add_source`) and sinks (`sink_to`, `add_sink`) — whose result is not given a `.uid(...)` in the same
fluent chain (`.name(...)`, `.set_parallelism(...)` and the like may sit in between).

SQL operators get their uids from the planner: flink-conf/config.yaml sets `table.exec.uid.generation:
ALWAYS` (NOTES.md, "Operator uids").
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ALWAYS_STATEFUL = frozenset(
    {
        "process",
        "reduce",
        "aggregate",
        "apply",
        "sum",
        "min",
        "max",
        "min_by",
        "max_by",
        "from_source",
        "add_source",
        "sink_to",
        "add_sink",
    }
)
"""Operators that hold state on a keyed stream, plus sources (offsets) and sinks (transactions)."""

STATEFUL_WHEN_KEYED = frozenset({"map", "flat_map", "filter"})
"""Rich functions on a KeyedStream can use keyed state."""

CHAIN_SETTERS = frozenset(
    {
        "name",
        "uid",
        "set_uid_hash",
        "set_description",
        "set_parallelism",
        "set_max_parallelism",
        "slot_sharing_group",
        "disable_chaining",
        "start_new_chain",
        "force_non_parallel",
    }
)
"""Calls that configure the operator just created (the uid may come after any of them)."""


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    operator: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: .{self.operator}(...) creates a stateful operator without .uid(...)"


def _receiver_chain(node: ast.expr) -> list[str]:
    """Method names along the receiver chain of `node` (`a.key_by(f).process(g)` → [process, key_by])."""
    names: list[str] = []
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        names.append(node.func.attr)
        node = node.func.value
    return names


def _uses_pyflink(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pyflink"):
            return True
        if isinstance(node, ast.Import) and any(a.name.startswith("pyflink") for a in node.names):
            return True
    return False


def check_source(source: str, path: Path) -> list[Finding]:
    """Findings of one Python source (files without a pyflink import hold no Flink operators)."""
    tree = ast.parse(source, filename=str(path))
    if not _uses_pyflink(tree):
        return []
    parents: dict[ast.AST, ast.AST] = {}
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            parents[child] = parent
    findings: list[Finding] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        operator = node.func.attr
        receiver = _receiver_chain(node.func.value)
        stateful = operator in ALWAYS_STATEFUL or (operator in STATEFUL_WHEN_KEYED and "key_by" in receiver)
        if not stateful:
            continue
        # Walk up the fluent chain configuring this operator: `<node>.name(..).uid(..)`.
        has_uid = False
        current: ast.AST = node
        while True:
            attribute = parents.get(current)
            call = parents.get(attribute) if attribute is not None else None
            if not (
                isinstance(attribute, ast.Attribute)
                and isinstance(call, ast.Call)
                and call.func is attribute
                and attribute.attr in CHAIN_SETTERS
            ):
                break
            has_uid = has_uid or attribute.attr in ("uid", "set_uid_hash")
            current = call
        if not has_uid:
            findings.append(Finding(path, node.lineno, operator))
    return sorted(findings, key=lambda f: (str(f.path), f.line))


def check_paths(paths: list[Path]) -> list[Finding]:
    """Findings of every `*.py` file under `paths`."""
    findings: list[Finding] = []
    for root in paths:
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for file in files:
            findings.extend(check_source(file.read_text(encoding="utf-8"), file))
    return findings
