"""sessionize settings: window combinations the cascaded KPI windows cannot build are refused up front."""

from __future__ import annotations

import pytest

from jobs.common.settings import SettingsError
from jobs.sessionize.settings import SessionizeSettings


def test_the_defaults_build_sliding_and_cumulative_windows_from_the_minute_rows() -> None:
    settings = SessionizeSettings.from_env({})
    assert (settings.tumble_ms, settings.sliding_step_ms, settings.cumulative_step_ms) == (
        60_000,
        60_000,
        300_000,
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"tumble_ms": 120_000},
            "sliding_step_ms (60000) must be a multiple of tumble_ms (120000): the sliding and cumulative "
            "windows are built from the tumbling windows' rows",
        ),
        (
            {"tumble_ms": 40_000, "sliding_step_ms": 120_000, "sliding_size_ms": 240_000},
            "cumulative_step_ms (300000) must be a multiple of tumble_ms (40000): the sliding and cumulative "
            "windows are built from the tumbling windows' rows",
        ),
    ],
)
def test_steps_that_are_not_multiples_of_the_tumbling_window_are_refused(
    overrides: dict[str, int], message: str
) -> None:
    with pytest.raises(SettingsError) as error:
        SessionizeSettings.from_env({}, **overrides)
    assert str(error.value) == message


def test_a_shorter_tumbling_window_that_divides_both_steps_is_accepted() -> None:
    assert SessionizeSettings.from_env({}, tumble_ms=2_000).tumble_ms == 2_000


@pytest.mark.parametrize(
    ("dimensions", "message"),
    [
        ("country,browser", "unknown KPI dimension(s) browser: choose from page_path, country, device_type"),
        ("country,page_path,country", "KPI dimension(s) listed twice: country"),
    ],
)
def test_kpi_dimensions_must_be_known_and_listed_once(dimensions: str, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        SessionizeSettings.from_env({"UXSTREAM_SESSIONIZE_DIMENSIONS": dimensions})
    assert str(error.value) == message


def test_a_subset_of_the_dimensions_in_any_order_is_accepted() -> None:
    settings = SessionizeSettings.from_env({"UXSTREAM_SESSIONIZE_DIMENSIONS": "device_type,page_path"})
    assert settings.dimensions == ("device_type", "page_path")
