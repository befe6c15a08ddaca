"""Funnel definitions: the TOML file (default `config/funnels.toml`), parsed and validated.

    [[funnel]]
    name = "checkout"                   # letters, digits, _ . - (unique)
    ordering = "ordered"                # ordered (default) | strict | any
    window = "1h"                       # conversion window from entry (default 1h): 90s, 30m, 1h30m, 2d
    hold_constant = ["properties.product_id"]
    breakdowns = ["device_type", "country"]
    exclusions = [{ event = "cart_emptied" }]
    steps = [
      { event = "product_viewed" },
      { event = "add_to_cart", window = "30m" },      # per-step window: at most 30m after the previous step
      { event = "order_completed", where = { "properties.currency" = "USD" } },
    ]

Attributes (`where` keys, `hold_constant`, `breakdowns`) are string fields of the ux_event schema
(`country`, `device_type`, `page_path`, `session_hint`, …) or `properties.<key>`. Every error names the
file and the funnel, and says what is allowed; `FunnelConfigError` is a `SettingsError`, so the command
line prints it without a traceback.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Final

from jobs.common.contract import event_reader_schema
from jobs.common.settings import SettingsError
from jobs.funnels.logic import DEFAULT_WINDOW_MS, ORDERINGS, PROPERTIES_PREFIX, Funnel, Step

FUNNEL_KEYS: Final = ("name", "steps", "ordering", "window", "exclusions", "hold_constant", "breakdowns")
STEP_KEYS: Final = ("event", "where", "window")
EXCLUSION_KEYS: Final = ("event", "where")
NAME = re.compile(r"[A-Za-z0-9_.-]+")
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNITS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class FunnelConfigError(SettingsError):
    """The funnel definitions are invalid; the message names the file, the funnel and the problem."""


@cache
def event_attributes() -> tuple[str, ...]:
    """Event columns usable as attributes: the string fields of the latest ux_event schema."""

    def is_string(avro_type: Any) -> bool:
        if isinstance(avro_type, list):
            return [t for t in avro_type if t != "null"] == ["string"]
        return bool(avro_type == "string")

    fields = event_reader_schema().definition["fields"]
    return tuple(f["name"] for f in fields if is_string(f["type"]))


def parse_duration(text: str) -> int | None:
    """`90s`, `30m`, `1h30m`, `2d`, `250ms` → milliseconds; None when `text` is not such a duration."""
    position, total = 0, 0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            return None
        total += int(match[1]) * _UNITS[match[2]]
        position = match.end()
    return total if text and position == len(text) else None


def load_funnels(path: Path | str) -> tuple[Funnel, ...]:
    """Read and validate a definitions file. Raises FunnelConfigError."""
    path = Path(path)
    if not path.is_file():
        raise FunnelConfigError(f"funnel definitions file {path} does not exist")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise FunnelConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_funnels(document, str(path))


def parse_funnels(document: Mapping[str, Any], where: str = "funnel definitions") -> tuple[Funnel, ...]:
    """Validate a parsed document (`{"funnel": [...]}`); `where` prefixes every error message."""
    unknown = sorted(set(document) - {"funnel"})
    if unknown:
        raise FunnelConfigError(f"{where}: unknown key '{unknown[0]}' (expected [[funnel]] tables)")
    tables = document.get("funnel")
    if not tables:
        raise FunnelConfigError(f"{where}: no funnel defined (add a [[funnel]] table)")
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise FunnelConfigError(f"{where}: 'funnel' must be an array of tables ([[funnel]])")
    funnels: list[Funnel] = []
    for number, table in enumerate(tables, 1):
        funnel = _funnel(table, where, number)
        if any(f.name == funnel.name for f in funnels):
            raise FunnelConfigError(f"{where}: duplicate funnel name '{funnel.name}'")
        funnels.append(funnel)
    return tuple(funnels)


def _unknown_keys(table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise FunnelConfigError(f"{where}: unknown key '{unknown[0]}' (expected: {', '.join(allowed)})")


def _duration(value: Any, what: str, where: str) -> int:
    millis = parse_duration(value) if isinstance(value, str) else None
    if millis is None:
        raise FunnelConfigError(
            f"{where}: {what} {value!r} is not a duration (examples: 90s, 30m, 1h, 1h30m, 2d)"
        )
    if millis <= 0:
        raise FunnelConfigError(f"{where}: {what} must be positive, got {value!r}")
    return millis


def _attribute(name: Any, what: str, where: str) -> str:
    if isinstance(name, str):
        if name.startswith(PROPERTIES_PREFIX) and len(name) > len(PROPERTIES_PREFIX):
            return name
        if name in event_attributes():
            return name
    raise FunnelConfigError(
        f"{where}: unknown {what} {name!r} (use an event field such as country, device_type, page_path, "
        f"session_hint, or properties.<key>)"
    )


def _attributes(value: Any, key: str, what: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise FunnelConfigError(f"{where}: '{key}' must be a list of names")
    names = tuple(_attribute(v, what, where) for v in value)
    if len(set(names)) != len(names):
        raise FunnelConfigError(f"{where}: '{key}' lists {what} twice")
    return names


def _step(table: Any, what: str, where: str, keys: Sequence[str]) -> Step:
    if not isinstance(table, dict):
        raise FunnelConfigError(f'{where}: {what} must be a table like {{ event = "name" }}')
    _unknown_keys(table, keys, f"{where}: {what}")
    event = table.get("event")
    if not isinstance(event, str) or not event:
        raise FunnelConfigError(f"{where}: {what} needs an 'event' name")
    filters = table.get("where", {})
    if not isinstance(filters, dict):
        raise FunnelConfigError(f"{where}: {what}: 'where' must be a table of attribute = \"value\"")
    pairs = []
    for name, value in filters.items():
        attribute = _attribute(name, "attribute", f"{where}: {what}")
        if not isinstance(value, str):
            raise FunnelConfigError(f"{where}: {what}: 'where' value of {name} must be a string")
        pairs.append((attribute, value))
    window = _duration(table["window"], "window", f"{where}: {what}") if "window" in table else None
    return Step(event=event, where=tuple(sorted(pairs)), window_ms=window)


def _funnel(table: Mapping[str, Any], prefix: str, number: int) -> Funnel:
    name = table.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise FunnelConfigError(
            f"{prefix}: funnel #{number}: 'name' must be letters, digits, '_', '.' or '-', got {name!r}"
        )
    where = f"{prefix}: funnel '{name}'"
    _unknown_keys(table, FUNNEL_KEYS, where)
    ordering = table.get("ordering", "ordered")
    if ordering not in ORDERINGS:
        raise FunnelConfigError(
            f"{where}: unknown ordering mode {ordering!r} (choose from {', '.join(ORDERINGS)})"
        )
    raw_steps = table.get("steps")
    if not isinstance(raw_steps, list) or len(raw_steps) < 2:
        count = len(raw_steps) if isinstance(raw_steps, list) else 0
        raise FunnelConfigError(f"{where}: 'steps' must list at least 2 steps, got {count}")
    steps = tuple(_step(s, f"step {i}", where, STEP_KEYS) for i, s in enumerate(raw_steps, 1))
    if steps[0].window_ms is not None:
        raise FunnelConfigError(f"{where}: step 1 cannot have a window (the conversion window starts there)")
    if ordering == "any" and any(s.window_ms is not None for s in steps):
        raise FunnelConfigError(f"{where}: per-step windows need ordering 'ordered' or 'strict', not 'any'")
    window = _duration(table["window"], "window", where) if "window" in table else DEFAULT_WINDOW_MS
    raw_exclusions = table.get("exclusions", [])
    if not isinstance(raw_exclusions, list):
        raise FunnelConfigError(f"{where}: 'exclusions' must be a list of {{ event = \"name\" }} tables")
    exclusions = tuple(
        _step(x, f"exclusion {i}", where, EXCLUSION_KEYS) for i, x in enumerate(raw_exclusions, 1)
    )
    clash = sorted({x.event for x in exclusions} & {s.event for s in steps})
    if clash:
        raise FunnelConfigError(f"{where}: event '{clash[0]}' is both a step and an exclusion")
    return Funnel(
        name=name,
        steps=steps,
        window_ms=window,
        ordering=ordering,
        exclusions=exclusions,
        hold_constant=_attributes(table.get("hold_constant", []), "hold_constant", "held attribute", where),
        breakdowns=_attributes(table.get("breakdowns", []), "breakdowns", "breakdown dimension", where),
    )
