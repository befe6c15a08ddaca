"""`uxstream alerts` as a person reads it: the peak against the pre-incident baseline, z at opening and at
peak, the duration; and `uxstream anomaly-eval --set` (pure formatting and parsing, nothing started)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobs.anomaly.logic import DetectorSettings
from uxstream.anomaly import ALERT_COLUMNS, format_alerts, with_detector_overrides
from uxstream.errors import UserError

OPENED = datetime(2025, 1, 6, 1, 20, tzinfo=UTC)


def row(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "status": "resolved", "severity": "critical", "metric": "error_rate", "window_kind": "tumbling_1m",
        "dimension": "global", "dimension_value": "(all)", "opened_window_start": OPENED,
        "opened_at": OPENED + timedelta(minutes=2), "resolved_at": OPENED + timedelta(minutes=20),
        "last_window_end": OPENED + timedelta(minutes=20), "value": 0.016, "baseline": 0.03,
        "baseline_method": "ewma", "z_score": 0.5, "peak_z": 14.4, "peak_value": 0.294,
        "opened_baseline": 0.03, "opened_z": 9.6, "anomalous_windows": 15, "alert_id": "a1",
    }  # fmt: skip
    assert set(base) == set(ALERT_COLUMNS)
    return {**base, **changes}


def test_a_resolved_alert_reads_as_its_peak_against_the_baseline_it_opened_with() -> None:
    lines = format_alerts([row()])
    assert lines[0].split("  ")[0] == "status"
    assert [c.strip() for c in lines[0].split("  ") if c.strip()] == [
        "status", "severity", "metric", "segment", "opened (UTC)", "resolved", "duration", "peak",
        "baseline", "z open/peak", "last (baseline)",
    ]  # fmt: skip
    assert [c.strip() for c in lines[1].split("  ") if c.strip()] == [
        "resolved", "critical", "error_rate (tumbling_1m)", "global=(all)", "2025-01-06 01:20",
        "2025-01-06 01:40", "20 min", "0.294", "0.03 (ewma)", "9.6/14.4", "0.016 (0.03)",
    ]  # fmt: skip


def test_an_open_alert_lasts_until_its_latest_window_and_an_old_row_shows_what_it_has() -> None:
    open_row = row(status="open", resolved_at=None, last_window_end=OPENED + timedelta(minutes=7))
    old = row(peak_value=None, opened_baseline=None, opened_z=None, baseline=0.07)  # before V0009
    cells = [
        [c.strip() for c in line.split("  ") if c.strip()] for line in format_alerts([open_row, old])[1:]
    ]
    assert cells[0][5:8] == ["-", "7 min", "0.294"]
    assert cells[1][7:10] == ["-", "0.07 (ewma)", "-/14.4"]
    assert format_alerts([]) == ["no open or recent alerts"]


def test_anomaly_eval_set_overrides_numeric_detector_settings_with_clear_errors() -> None:
    settings = with_detector_overrides(DetectorSettings(), ["open_after=2", "fast_open_z=6.5"])
    assert (settings.open_after, settings.fast_open_z) == (2, 6.5)
    with pytest.raises(UserError, match=r"^--set 'nope=1': expected NAME=VALUE with NAME one of "):
        with_detector_overrides(DetectorSettings(), ["nope=1"])
    with pytest.raises(UserError, match=r"^--set 'open_after=two': 'two' is not a number$"):
        with_detector_overrides(DetectorSettings(), ["open_after=two"])
    with pytest.raises(UserError, match=r"^--set: fast_open_z 3.0 is below the threshold 4.0$"):
        with_detector_overrides(DetectorSettings(), ["fast_open_z=3"])
