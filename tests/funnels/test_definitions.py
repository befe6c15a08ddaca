"""Funnel definitions file: the shipped example, and one exact error message per invalid definition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobs.common.settings import SettingsError
from jobs.funnels.definitions import FunnelConfigError, load_funnels, parse_duration, parse_funnels
from jobs.funnels.logic import Funnel, Step
from jobs.funnels.settings import DEFAULT_CONFIG, FunnelsSettings
from uxstream.contract.generator import FUNNELS

HOUR = 3_600_000


def test_the_shipped_funnels_follow_the_generator_journeys() -> None:
    funnels = {f.name: f for f in load_funnels(DEFAULT_CONFIG)}
    assert sorted(funnels) == sorted(FUNNELS)
    for name, steps in FUNNELS.items():
        assert funnels[name].step_names == steps
        assert funnels[name].window_ms == HOUR
        assert funnels[name].ordering == "ordered"
    assert funnels["checkout"].hold_constant == ("properties.product_id",)


def test_settings_read_the_definitions_from_the_configured_path(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text('[[funnel]]\nname = "x"\nsteps = [{ event = "a" }, { event = "b" }]\n')
    settings = FunnelsSettings.from_env({"UXSTREAM_FUNNELS_CONFIG": str(path)})
    assert settings.funnels == (Funnel(name="x", steps=(Step("a"), Step("b"))),)
    assert FunnelsSettings.from_env({}).config_path == DEFAULT_CONFIG


def test_a_full_definition_parses_every_option() -> None:
    (funnel,) = parse_funnels(
        {
            "funnel": [
                {
                    "name": "checkout",
                    "ordering": "strict",
                    "window": "1h30m",
                    "hold_constant": ["properties.product_id", "session_hint"],
                    "breakdowns": ["country"],
                    "exclusions": [{"event": "cart_emptied", "where": {"page_path": "/cart"}}],
                    "steps": [
                        {"event": "product_viewed"},
                        {"event": "add_to_cart", "window": "30m"},
                        {"event": "order_completed", "where": {"properties.currency": "USD"}},
                    ],
                }
            ]
        }
    )
    assert funnel == Funnel(
        name="checkout",
        steps=(
            Step("product_viewed"),
            Step("add_to_cart", window_ms=30 * 60_000),
            Step("order_completed", where=(("properties.currency", "USD"),)),
        ),
        window_ms=90 * 60_000,
        ordering="strict",
        exclusions=(Step("cart_emptied", where=(("page_path", "/cart"),)),),
        hold_constant=("properties.product_id", "session_hint"),
        breakdowns=("country",),
    )


@pytest.mark.parametrize(
    ("text", "millis"),
    [("90s", 90_000), ("30m", 1_800_000), ("1h30m", 5_400_000), ("2d", 172_800_000), ("250ms", 250),
     ("1y", None), ("", None), ("h", None), ("1.5h", None), ("30 m", None)],
)  # fmt: skip
def test_durations(text: str, millis: int | None) -> None:
    assert parse_duration(text) == millis


STEPS = [{"event": "a"}, {"event": "b"}]


def one(**fields: Any) -> dict[str, Any]:
    return {"funnel": [{"name": "f", "steps": STEPS, **fields}]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "cfg: no funnel defined (add a [[funnel]] table)"),
        ({"funnels": []}, "cfg: unknown key 'funnels' (expected [[funnel]] tables)"),
        ({"funnel": {"name": "f"}}, "cfg: 'funnel' must be an array of tables ([[funnel]])"),
        ({"funnel": [{"steps": STEPS}]},
         "cfg: funnel #1: 'name' must be letters, digits, '_', '.' or '-', got None"),
        ({"funnel": [{"name": "a|b", "steps": STEPS}]},
         "cfg: funnel #1: 'name' must be letters, digits, '_', '.' or '-', got 'a|b'"),
        ({"funnel": [{"name": "f", "steps": STEPS}, {"name": "f", "steps": STEPS}]},
         "cfg: duplicate funnel name 'f'"),
        (one(order="any"),
         "cfg: funnel 'f': unknown key 'order' (expected: name, steps, ordering, window, exclusions, "
         "hold_constant, breakdowns)"),
        (one(ordering="sorted"),
         "cfg: funnel 'f': unknown ordering mode 'sorted' (choose from ordered, strict, any)"),
        (one(steps=[]), "cfg: funnel 'f': 'steps' must list at least 2 steps, got 0"),
        (one(steps=[{"event": "a"}]), "cfg: funnel 'f': 'steps' must list at least 2 steps, got 1"),
        ({"funnel": [{"name": "f"}]}, "cfg: funnel 'f': 'steps' must list at least 2 steps, got 0"),
        (one(steps=["a", "b"]), "cfg: funnel 'f': step 1 must be a table like { event = \"name\" }"),
        (one(steps=[{"event": "a"}, {"name": "b"}]),
         "cfg: funnel 'f': step 2: unknown key 'name' (expected: event, where, window)"),
        (one(steps=[{"event": "a"}, {"event": ""}]), "cfg: funnel 'f': step 2 needs an 'event' name"),
        (one(steps=[{"event": "a"}, {"event": "b", "where": {"properties.x": 1}}]),
         "cfg: funnel 'f': step 2: 'where' value of properties.x must be a string"),
        (one(steps=[{"event": "a"}, {"event": "b", "where": {"planet": "mars"}}]),
         "cfg: funnel 'f': step 2: unknown attribute 'planet' (use an event field such as country, "
         "device_type, page_path, session_hint, or properties.<key>)"),
        (one(window="1y"),
         "cfg: funnel 'f': window '1y' is not a duration (examples: 90s, 30m, 1h, 1h30m, 2d)"),
        (one(window=3600),
         "cfg: funnel 'f': window 3600 is not a duration (examples: 90s, 30m, 1h, 1h30m, 2d)"),
        (one(window="0s"), "cfg: funnel 'f': window must be positive, got '0s'"),
        (one(steps=[{"event": "a", "window": "5m"}, {"event": "b"}]),
         "cfg: funnel 'f': step 1 cannot have a window (the conversion window starts there)"),
        (one(steps=[{"event": "a"}, {"event": "b", "window": "5x"}]),
         "cfg: funnel 'f': step 2: window '5x' is not a duration (examples: 90s, 30m, 1h, 1h30m, 2d)"),
        (one(ordering="any", steps=[{"event": "a"}, {"event": "b", "window": "5m"}]),
         "cfg: funnel 'f': per-step windows need ordering 'ordered' or 'strict', not 'any'"),
        (one(breakdowns=["planet"]),
         "cfg: funnel 'f': unknown breakdown dimension 'planet' (use an event field such as country, "
         "device_type, page_path, session_hint, or properties.<key>)"),
        (one(breakdowns=["properties."]),
         "cfg: funnel 'f': unknown breakdown dimension 'properties.' (use an event field such as country, "
         "device_type, page_path, session_hint, or properties.<key>)"),
        (one(breakdowns="country"), "cfg: funnel 'f': 'breakdowns' must be a list of names"),
        (one(breakdowns=["country", "country"]),
         "cfg: funnel 'f': 'breakdowns' lists breakdown dimension twice"),
        (one(hold_constant=["ts"]),
         "cfg: funnel 'f': unknown held attribute 'ts' (use an event field such as country, device_type, "
         "page_path, session_hint, or properties.<key>)"),
        (one(exclusions={"event": "x"}),
         "cfg: funnel 'f': 'exclusions' must be a list of { event = \"name\" } tables"),
        (one(exclusions=[{"event": "x", "window": "5m"}]),
         "cfg: funnel 'f': exclusion 1: unknown key 'window' (expected: event, where)"),
        (one(exclusions=[{"event": "b"}]), "cfg: funnel 'f': event 'b' is both a step and an exclusion"),
    ],
)  # fmt: skip
def test_invalid_definitions_are_rejected_with_an_exact_message(
    document: dict[str, Any], message: str
) -> None:
    with pytest.raises(FunnelConfigError) as raised:
        parse_funnels(document, "cfg")
    assert str(raised.value) == message


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(FunnelConfigError) as raised:
        load_funnels(missing)
    assert str(raised.value) == f"funnel definitions file {missing} does not exist"
    broken = tmp_path / "broken.toml"
    broken.write_text("[[funnel]\n")
    with pytest.raises(FunnelConfigError) as raised:
        load_funnels(broken)
    assert str(raised.value).startswith(f"{broken}: not valid TOML (")
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[funnel]]\nname = "x"\nordering = "random"\nsteps = [{ event = "a" }, { event = "b" }]\n'
    )
    with pytest.raises(SettingsError) as settings_error:  # the CLI prints SettingsErrors without a traceback
        FunnelsSettings.from_env({"UXSTREAM_FUNNELS_CONFIG": str(bad)})
    assert str(settings_error.value) == (
        f"{bad}: funnel 'x': unknown ordering mode 'random' (choose from ordered, strict, any)"
    )
