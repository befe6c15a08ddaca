"""The minute KPI rows from `kpi_cells` (io.uxstream.udf.KpiCells: one aggregate call per event for every
dimension, issue 17) equal, row for row and bit for bit, the GROUPING SETS query with Flink's built-in
filtered aggregates that they replaced (tests/support/kpi_cells.py REFERENCE): the same cells, the same
counts, the same people and links, the same PERCENTILE doubles, NULL where the built-ins give NULL.

Flink tier: one MiniCluster job over random events (ties and signed zeros among the web vitals, NULL and
empty ids, NULL dimension values, non-ASCII paths, duplicates, bots, every feedback scale and a NULL
score), in two configurations (the default settings; two dimensions in another order with bots counted)."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from jobs.common.contract import CSAT_SCALE, FEEDBACK, NPS_SCALE
from uxstream.paths import ROOT

pytestmark = [pytest.mark.services, pytest.mark.flink]

MINUTE = 60_000
T0 = 1_790_000_040_000  # a minute boundary
PAGES = ("/", "/pricing", "/checkout?step=2", "naïve/страница", "🙂/x", None)
COUNTRIES = ("DE", "US", "BR", None)
DEVICES = ("desktop", "mobile", None)
VITALS = (0.0, -0.0, 0.1, 0.25, 1.0, 1200.0, 2500.5, 1e-300, 1e300)
TYPES = ("page_view", "page_view", "error", "web_vital", "web_vital", FEEDBACK, "click")
NAMES = ("order_completed", "signup_completed", "page_view", "add_to_cart")


def random_event(rng: random.Random) -> dict[str, Any]:
    event_type = rng.choice(TYPES)
    user = rng.choice((None, "", *(f"u{i}" for i in range(12))))
    anonymous = rng.choice((None, "", *(f"a{i}" for i in range(20)), "Ω-anon"))

    def vital() -> float | None:
        if rng.random() < 0.3:
            return None
        return rng.choice(VITALS) if rng.random() < 0.6 else rng.uniform(0, 5000)

    scale = rng.choice((NPS_SCALE, CSAT_SCALE, None)) if event_type == FEEDBACK else None
    score = None
    if scale is not None and rng.random() < 0.9:
        score = rng.randint(0, 10) if scale == NPS_SCALE else rng.randint(1, 5)
    return {
        "ts": T0 + rng.randrange(0, 4 * MINUTE),
        "occurrence": 1 if rng.random() < 0.85 else rng.randint(2, 3),
        "is_bot": rng.random() < 0.1,
        "event_type": event_type,
        "event_name": rng.choice(NAMES),
        "user_id": user,
        "anonymous_id": anonymous,
        "page_path": rng.choice(PAGES),
        "country": rng.choice(COUNTRIES),
        "device_type": rng.choice(DEVICES),
        "lcp_ms": vital(),
        "inp_ms": vital(),
        "cls": vital(),
        "feedback_scale": scale,
        "feedback_score": score,
    }


def same(a: Any, b: Any) -> bool:
    """Equal, doubles to the bit (NaN equals NaN, -0.0 is not 0.0)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[list[Any]]:
    folder: Path = tmp_path_factory.mktemp("kpi-cells")
    rng = random.Random(1717)
    events = [random_event(rng) for _ in range(4000)]
    alone = {**random_event(rng), "ts": T0 + 5 * MINUTE, "is_bot": False}
    events += [  # cells that only a duplicate, only a bot reach
        {**alone, "occurrence": 2, "page_path": "/only-a-duplicate"},
        {**alone, "occurrence": 1, "is_bot": True, "page_path": "/only-a-bot"},
    ]
    source = folder / "events"  # two files: two source splits at parallelism 2, merged partial cells
    source.mkdir()
    for part in (0, 1):
        text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events[part::2])
        (source / f"part-{part}.jsonl").write_text(text, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.kpi_cells", str(source), str(folder)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-5000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


def by_cell(rows: list[list[Any]], configuration: str, source: str) -> dict[tuple[Any, ...], list[Any]]:
    chosen = [r for r in rows if r[0] == configuration and r[1] == source]
    cells = {tuple(r[2:5]): r[5:] for r in chosen}
    assert len(cells) == len(chosen), f"{configuration}/{source}: a cell appears twice"
    return cells


@pytest.mark.parametrize("configuration", ["default", "variant"])
def test_kpi_cells_rows_equal_the_grouping_sets_query_they_replaced(
    rows: list[list[Any]], configuration: str
) -> None:
    job = by_cell(rows, configuration, "job")
    reference = by_cell(rows, configuration, "reference")
    assert set(job) == set(reference)
    differing = [(cell, job[cell], reference[cell]) for cell in job if not same(job[cell], reference[cell])]
    assert not differing, f"{len(differing)} of {len(job)} cells differ, first: {differing[0]}"
    # the input exercises what could differ: every dimension of the configuration, ties among the vitals
    # (a percentile between two equal values), cells without vitals (NULL) and with bots or duplicates only
    dimensions = Counter(cell[1] for cell in job)
    expected = (
        {"global", "page_path", "country", "device_type"}
        if configuration == "default"
        else {"global", "page_path", "device_type"}
    )
    assert set(dimensions) == expected
    assert any(values[6] is None for values in job.values())
    assert any(values[6] is not None for values in job.values())
    assert any(values[0] == 0 and (values[4] or values[5]) for values in job.values())
