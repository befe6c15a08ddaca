"""The static report: the dashboard page with uPlot, its script and the data of every dimension inlined,
written to one HTML file that opens offline (`make run-local` ends with one)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from uxstream.dashboard.app import Dashboard
from uxstream.dashboard.page import render_page, uplot_missing
from uxstream.dashboard.params import DIMENSIONS, Params
from uxstream.errors import UserError


def report_data(dashboard: Dashboard, params: Params) -> dict[str, Any]:
    """The embedded data: what /api/data returns for each dimension at `params`' range."""
    return {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "data": {d: dashboard.read_data(replace(params, dimension=d)) for d in DIMENSIONS},
    }


def write_report(dashboard: Dashboard, params: Params, path: Path) -> Path:
    missing = uplot_missing()
    if missing:
        raise UserError(missing)
    embedded = report_data(dashboard, params)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_page(params.query(), embedded), encoding="utf-8")
    return path
