"""The dashboard page: one HTML document for the live server and the static report.

Live: the page loads uPlot and dashboard.js from the server and fetches /api/data. Report: the same page
with uPlot, the script, the styles and the data (every dimension) inlined, so the file opens offline.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from uxstream.dashboard.params import DIMENSION_TITLES, DIMENSIONS, RANGE_CHOICES

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
WEB = HERE / "web"
UPLOT_DIST = WEB / "node_modules" / "uplot" / "dist"
"""Installed by `make setup` (npm ci in uxstream/dashboard/web, version pinned by package-lock.json)."""
UPLOT_FILES = ("uPlot.iife.min.js", "uPlot.min.css")
TIME_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
)

CHARTS = (
    ("active_users", "Active users per minute (1 min and sliding 5 min)"),
    ("page_views", "Page views per minute"),
    ("error_rate", "Error rate per minute (error events / page views)"),
    ("vitals", "Web vitals p75 against the Core Web Vitals thresholds (global)"),
    ("funnels", "Funnels: conversion and drop-off per step"),
    ("alerts", "Open and recent anomaly alerts"),
    ("health", "Pipeline health (global)"),
    ("uniques", "Unique users over the range (merged HLL sketches of the minute windows)"),
)


def uplot_missing() -> str | None:
    """Why the page cannot be served (uPlot not installed), or None."""
    missing = [name for name in UPLOT_FILES if not (UPLOT_DIST / name).is_file()]
    if missing:
        return f"uPlot is not installed ({UPLOT_DIST / missing[0]} is missing): run `make setup`"
    return None


def _select(name: str, label: str, options: list[tuple[str, str]], current: str) -> str:
    items = "".join(
        f'<option value="{html.escape(v)}"{" selected" if v == current else ""}>{html.escape(t)}</option>'
        for v, t in options
    )
    return f'<label>{label} <select id="{name}" name="{name}">{items}</select></label>'


def _script_json(value: Any) -> str:
    return json.dumps(value).replace("</", "<\\/").replace("<!--", "<\\!--")


def render_page(params: dict[str, str], embedded: dict[str, Any] | None) -> str:
    """The page. `embedded` (report only): data per dimension, plus `generated_at`; assets are inlined."""
    ranges = list(RANGE_CHOICES) if params["range"] in RANGE_CHOICES else [*RANGE_CHOICES, params["range"]]
    zones = list(TIME_ZONES) if params["tz"] in TIME_ZONES else [*TIME_ZONES, params["tz"]]
    controls = "".join(
        [
            _select(
                "dimension", "Dimension", [(d, DIMENSION_TITLES[d]) for d in DIMENSIONS], params["dimension"]
            ),
            _select("range", "Range", [(r, f"last {r}") for r in ranges], params["range"]),
            _select("tz", "Time zone", [(z, z) for z in zones], params["tz"]),
        ]
    )
    sections = "".join(
        f'<section class="chart" id="chart-{key}" data-chart="{key}"><h2>{html.escape(title)}</h2>'
        f'<p class="note" data-note="{key}"></p><div class="plot"></div></section>'
        for key, title in CHARTS
    )
    if embedded is None:
        head = (
            '<link rel="stylesheet" href="/static/uplot/uPlot.min.css">'
            '<link rel="stylesheet" href="/static/app/dashboard.css">'
        )
        scripts = (
            f"<script>window.UX_PARAMS = {_script_json(params)};</script>"
            '<script src="/static/uplot/uPlot.iife.min.js"></script>'
            '<script src="/static/app/dashboard.js"></script>'
        )
        mode = "live"
    else:
        css = (UPLOT_DIST / "uPlot.min.css").read_text() + (STATIC / "dashboard.css").read_text()
        head = f"<style>{css}</style>"
        scripts = (
            f"<script>window.UX_PARAMS = {_script_json(params)};"
            f"window.UX_EMBEDDED = {_script_json(embedded)};</script>"
            f"<script>{(UPLOT_DIST / 'uPlot.iife.min.js').read_text()}</script>"
            f"<script>{(STATIC / 'dashboard.js').read_text()}</script>"
        )
        mode = "report"
    realtime = (
        '<section class="realtime" id="realtime"><h2>Right now</h2>'
        '<div class="figures">'
        '<div><span class="big" data-rt="active_users_1m">–</span> active users, last minute</div>'
        '<div><span class="big" data-rt="active_users_5m">–</span> active users, last 5 minutes</div>'
        '<div><span class="big" data-rt="events_per_second">–</span> events/s</div></div>'
        '<p class="note" data-note="realtime"></p></section>'
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>uxstream dashboard</title>{head}</head>"
        f'<body data-mode="{mode}"><header><h1>uxstream</h1><form id="controls">{controls}</form>'
        '<span id="status" class="status"></span></header>'
        '<div id="error" class="error" role="alert" hidden></div>'
        f"<main>{realtime if embedded is None else ''}{sections}</main>{GEOIP_ATTRIBUTION}{scripts}"
        "</body></html>"
    )


GEOIP_ATTRIBUTION = (
    '<footer class="attribution">Countries derived from IP addresses by the jobs use the '
    '<a href="https://db-ip.com">IP Geolocation by DB-IP</a> Lite database (CC BY 4.0) unless '
    "UXSTREAM_GEOIP_DB names another.</footer>"
)
"""DB-IP's licence asks for this link on every page showing results of its database (README "Enrichment")."""
