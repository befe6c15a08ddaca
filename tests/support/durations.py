"""Where a test run's time goes: per tier, per module and the slowest tests.

    .venv/bin/python -m pytest --tier-report /tmp/tiers.json     # records every test's duration
    .venv/bin/python -m tests.support.durations /tmp/tiers.json  # prints the tables (markdown)

A JUnit XML file (`pytest --junitxml`) works too, without the tier column.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any


def load(path: Path) -> list[dict[str, Any]]:
    """[{nodeid, seconds, tier, outcome}] from a --tier-report JSON or a JUnit XML file."""
    if path.suffix == ".xml":
        cases = []
        for case in ET.parse(path).getroot().iter("testcase"):
            module = case.get("classname", "").replace(".", "/") + ".py"
            failed = any(child.tag in ("failure", "error") for child in case)
            cases.append(
                {
                    "nodeid": f"{module}::{case.get('name')}",
                    "seconds": float(case.get("time", 0)),
                    "tier": "?",
                    "outcome": "failed" if failed else "passed",
                }
            )
        return cases
    tests: list[dict[str, Any]] = json.loads(path.read_text())["tests"]
    return tests


def table(title: str, rows: list[tuple[str, int, float]], total: float) -> str:
    lines = [f"| {title} | tests | seconds | share |", "|---|---:|---:|---:|"]
    for name, count, seconds in rows:
        lines.append(f"| {name} | {count} | {seconds:.1f} | {seconds / total:.0%} |")
    return "\n".join(lines)


def summary(tests: list[dict[str, Any]], slowest: int = 40) -> str:
    total = sum(t["seconds"] for t in tests) or 1.0
    by: dict[str, dict[str, list[float]]] = {"tier": defaultdict(list), "module": defaultdict(list)}
    for t in tests:
        by["tier"][t["tier"]].append(t["seconds"])
        by["module"][t["nodeid"].split("::")[0].split("@")[0]].append(t["seconds"])

    def rows(groups: dict[str, list[float]]) -> list[tuple[str, int, float]]:
        return sorted(((k, len(v), sum(v)) for k, v in groups.items()), key=lambda r: -r[2])

    top = sorted(tests, key=lambda t: -t["seconds"])[:slowest]
    out = [
        f"{len(tests)} tests, {total:.0f} s in tests (setup + call + teardown)",
        "",
        table("tier", rows(by["tier"]), total),
        "",
        table("module", rows(by["module"]), total),
        "",
        "| slowest tests | tier | seconds |",
        "|---|---|---:|",
        *(f"| `{t['nodeid']}` | {t['tier']} | {t['seconds']:.1f} |" for t in top),
    ]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print(summary(load(Path(argv[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
