"""Unique users over any range: merge the HLL sketches of `kpi_1m.users_sketch` (README "Unique users over any
range"). Used by `uxstream uniques` and the dashboard (/api/uniques).

    uxstream uniques --from 2026-12-01T00:00Z --to 2026-12-08T00:00Z [--dimension country --value DE] [--json]

The range selects the minute windows whose start lies in [from, to) (the dashboard's rule); their sketches
(one per window and dimension value, each of the pseudonyms of that minute's users) are merged by an HLL
union, whose estimate counts a user active in many minutes once. Bounds are `sketches.BOUND_STD_DEVS`
standard deviations of the sketch (lg_k and type: jobs.common.sketches). Windows written before V0010 have no
sketch: they are counted and reported, the estimate then covers only the windows that have one.

`merge` is pure (bytes in, figures out); `query` reads one segment, `query_values` every value of a
dimension, through a connection the caller opened (read-only, as the reader role).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jobs.common import sketches, tables
from jobs.sessionize.settings import DIMENSIONS
from uxstream.errors import UserError

SEGMENT_DIMENSIONS = (tables.DIM_GLOBAL, *DIMENSIONS)
"""What --dimension accepts: global or a KPI dimension of sessionize."""


@dataclass(frozen=True)
class Segment:
    """One series of kpi_1m: a dimension and one of its values ('(all)' for global)."""

    dimension: str
    value: str

    @classmethod
    def of(cls, dimension: str, value: str | None) -> Segment:
        """Validated; UserError names what is wrong and what is allowed."""
        if dimension not in SEGMENT_DIMENSIONS:
            raise UserError(f"--dimension {dimension!r}: expected one of {', '.join(SEGMENT_DIMENSIONS)}")
        if dimension == tables.DIM_GLOBAL:
            if value not in (None, tables.ALL_VALUE):
                raise UserError(f"--value {value!r}: the global dimension has no values (omit --value)")
            return cls(dimension, tables.ALL_VALUE)
        if value is None or value == "":
            raise UserError(
                f"--dimension {dimension} needs --value (e.g. --value DE; '(none)' = events without it)"
            )
        return cls(dimension, value)

    def describe(self) -> str:
        return "global" if self.dimension == tables.DIM_GLOBAL else f"{self.dimension}={self.value}"


@dataclass(frozen=True)
class TimeRange:
    """[start, end) in UTC; windows whose start lies in it are merged."""

    start: datetime
    end: datetime

    @classmethod
    def of(cls, start: datetime, end: datetime) -> TimeRange:
        if start.tzinfo is None or end.tzinfo is None:
            raise UserError("the range's instants need a time zone (an offset such as Z or +01:00)")
        if end <= start:
            raise UserError(f"empty or reversed range: --to {iso(end)} is not after --from {iso(start)}")
        return cls(start.astimezone(UTC), end.astimezone(UTC))


def parse_instant(text: str, option: str) -> datetime:
    """An ISO 8601 date or instant; without an offset it is UTC (a date alone: its midnight, UTC)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(
            f"{option} {text!r}: expected an ISO 8601 date or instant, e.g. 2026-12-01 or 2026-12-01T08:00Z"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Uniques:
    """The merged estimate of a segment over a range."""

    estimate: float
    lower_bound: float
    upper_bound: float
    windows: int
    """Windows merged (those with a sketch)."""
    windows_without_sketch: int = 0
    """Windows of the range written before V0010 (no sketch; not in the estimate)."""

    @property
    def empty(self) -> bool:
        return self.windows == 0

    def as_json(self) -> dict[str, Any]:
        return {
            "estimate": self.estimate,
            "lower_bound": self.lower_bound,
            "upper_bound": self.upper_bound,
            "std_devs": sketches.BOUND_STD_DEVS,
            "windows": self.windows,
            "windows_without_sketch": self.windows_without_sketch,
        }


def merge(sketch_bytes: Iterable[bytes | None]) -> Uniques:
    """The union of the serialized sketches (None: a window without one, counted apart)."""
    import datasketches  # on use: it loads numpy (`uxstream --help` stays fast)

    union = datasketches.hll_union(sketches.LG_K)
    merged = missing = 0
    for data in sketch_bytes:
        if data is None:
            missing += 1
            continue
        union.update(datasketches.hll_sketch.deserialize(bytes(data)))
        merged += 1
    if merged == 0:
        return Uniques(0.0, 0.0, 0.0, 0, missing)
    std = sketches.BOUND_STD_DEVS
    return Uniques(
        float(union.get_estimate()),
        float(union.get_lower_bound(std)),
        float(union.get_upper_bound(std)),
        merged,
        missing,
    )


def query(conn: Any, span: TimeRange, segment: Segment) -> Uniques:
    """Unique users of one segment over the range (the sketches of its windows, merged)."""
    rows = conn.execute(
        f"SELECT users_sketch FROM {tables.KPI_1M} WHERE dimension = %s AND dimension_value = %s "
        "AND window_start >= %s AND window_start < %s",
        (segment.dimension, segment.value, span.start, span.end),
    ).fetchall()
    return merge(r[0] for r in rows)


def query_values(conn: Any, span: TimeRange, dimension: str, limit: int | None = None) -> dict[str, Uniques]:
    """Unique users of every value of `dimension` over the range, largest estimate first (`limit` values)."""
    rows = conn.execute(
        f"SELECT dimension_value, users_sketch FROM {tables.KPI_1M} WHERE dimension = %s "
        "AND window_start >= %s AND window_start < %s",
        (dimension, span.start, span.end),
    ).fetchall()
    by_value: dict[str, list[bytes | None]] = defaultdict(list)
    for value, data in rows:
        by_value[value].append(data)
    merged = {value: merge(data) for value, data in by_value.items()}
    ordered = sorted(merged.items(), key=lambda item: (-item[1].estimate, item[0]))
    return dict(ordered[:limit] if limit is not None else ordered)


# --------------------------------------------------------------------------------------------- command


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "uniques",
        help="unique users over any range and segment, from the KPI windows' merged HLL sketches",
        description="Merge the DataSketches HLL sketches of the minute windows (kpi_1m.users_sketch) whose "
        "start lies in [FROM, TO) and print the estimated unique users with lower/upper bounds "
        f"({sketches.BOUND_STD_DEVS} standard deviations) and the number of windows merged. Reads "
        "PostgreSQL (UXSTREAM_PG_*) as the reader role, read-only. Exit 2 on a bad range or dimension.",
    )
    p.add_argument("--from", dest="start", required=True, metavar="ISO", help="start (inclusive)")
    p.add_argument("--to", dest="end", required=True, metavar="ISO", help="end (exclusive)")
    p.add_argument(
        "--dimension",
        default=tables.DIM_GLOBAL,
        help=f"one of {', '.join(SEGMENT_DIMENSIONS)} (default {tables.DIM_GLOBAL})",
    )
    p.add_argument("--value", default=None, help="the dimension's value (needed unless global), e.g. DE")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_cmd_uniques)


def connect_reader() -> Any:
    """A read-only session as the reader role (the dashboard's settings)."""
    import psycopg

    from jobs.common.settings import PostgresSettings

    pg = PostgresSettings.from_env(role="reader")
    read_only = "options='-c default_transaction_read_only=on' application_name=uxstream-uniques"
    try:
        return psycopg.connect(f"{pg.conninfo()} {read_only}", connect_timeout=5)
    except psycopg.Error as exc:
        raise UserError(
            f"cannot connect to PostgreSQL at {pg.describe()}: {first_line(exc)} (start it with `make up`, "
            "or set UXSTREAM_PG_*)"
        ) from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cmd_uniques(args: argparse.Namespace) -> int:
    import psycopg

    span = TimeRange.of(parse_instant(args.start, "--from"), parse_instant(args.end, "--to"))
    segment = Segment.of(args.dimension, args.value)
    with connect_reader() as conn:
        try:
            result = query(conn, span, segment)
        except psycopg.Error as exc:
            raise UserError(
                f"PostgreSQL refused the query: {first_line(exc)} (is the database migrated? "
                "`uxstream db migrate`; kpi_1m.users_sketch comes with V0010)"
            ) from None
    print(render_json(span, segment, result) if args.json else render_text(span, segment, result))
    return 0


def render_json(span: TimeRange, segment: Segment, result: Uniques) -> str:
    return json.dumps(
        {
            "from": iso(span.start),
            "to": iso(span.end),
            "dimension": segment.dimension,
            "value": segment.value,
            **result.as_json(),
            "lg_k": sketches.LG_K,
            "hll_type": sketches.HLL_TYPE,
        }
    )


def render_text(span: TimeRange, segment: Segment, result: Uniques) -> str:
    where = f"{segment.describe()}, {iso(span.start)} to {iso(span.end)}"
    missing = (
        f"\nnote: {result.windows_without_sketch} window(s) of the range have no sketch (written before "
        "migration V0010) and are not counted"
        if result.windows_without_sketch
        else ""
    )
    if result.empty:
        return f"no KPI windows with a sketch for {where}: 0 windows merged{missing}"
    return (
        f"unique users, {where}: ≈ {result.estimate:,.0f} "
        f"({result.lower_bound:,.0f} to {result.upper_bound:,.0f} at {sketches.BOUND_STD_DEVS} standard "
        f"deviations; {result.windows:,} window(s) merged){missing}"
    )


if __name__ == "__main__":  # pragma: no cover
    from uxstream.cli import main

    sys.exit(main(["uniques", *sys.argv[1:]]))
