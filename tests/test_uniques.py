"""`uxstream uniques` without a database: the range and segment rules, the merge, the messages.

The database path (a sessionize run's sketches, 1 and 7 days against the exact count) is
tests/sessionize/test_uniques_e2e.py; the JVM bytes are tests/sessionize/test_user_sketch.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from jobs.common import sketches
from uxstream import uniques
from uxstream.cli import main
from uxstream.errors import UserError

T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2026-12-01", T0),
        ("2026-12-01T08:30", T0 + timedelta(hours=8, minutes=30)),
        ("2026-12-01T08:30:00Z", T0 + timedelta(hours=8, minutes=30)),
        ("2026-12-01T09:30:00+01:00", T0 + timedelta(hours=8, minutes=30)),
    ],
)
def test_instants_are_iso_8601_and_utc_without_an_offset(text: str, want: datetime) -> None:
    assert uniques.parse_instant(text, "--from") == want


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("yesterday", "2026-12-02", "--from 'yesterday': expected an ISO 8601 date or instant"),
        ("2026-12-01", "2026-13-01", "--to '2026-13-01': expected an ISO 8601 date or instant"),
        (
            "2026-12-02",
            "2026-12-01",
            "empty or reversed range: --to 2026-12-01T00:00:00Z is not after --from",
        ),
        ("2026-12-01T10:00Z", "2026-12-01T10:00Z", "empty or reversed range"),
    ],
)
def test_a_bad_range_exits_2_with_a_message(
    start: str, end: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["uniques", "--from", start, "--to", end]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("dimension", "value", "message"),
    [
        ("city", "Berlin", "--dimension 'city': expected one of global, page_path, country, device_type"),
        ("country", None, "--dimension country needs --value"),
        ("global", "DE", "--value 'DE': the global dimension has no values (omit --value)"),
    ],
)
def test_a_bad_segment_exits_2_with_a_message(
    dimension: str, value: str | None, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["uniques", "--from", "2026-12-01", "--to", "2026-12-02", "--dimension", dimension]
    assert main([*args, *(["--value", value] if value is not None else [])]) == 2
    assert f"uxstream uniques: error: {message}" in capsys.readouterr().err


def test_segments_and_ranges_are_normalized() -> None:
    assert uniques.Segment.of("global", None) == uniques.Segment("global", "(all)")
    assert uniques.Segment.of("country", "(none)").describe() == "country=(none)"
    berlin = timezone(timedelta(hours=1))
    span = uniques.TimeRange.of(datetime(2026, 12, 1, 1, tzinfo=berlin), datetime(2026, 12, 2, tzinfo=UTC))
    assert span == uniques.TimeRange(T0, T0 + timedelta(days=1))
    with pytest.raises(UserError, match="need a time zone"):
        uniques.TimeRange.of(datetime(2026, 12, 1), T0)


def test_merging_no_sketch_is_an_empty_answer_and_missing_sketches_are_counted_apart() -> None:
    assert uniques.merge([]) == uniques.Uniques(0.0, 0.0, 0.0, 0, 0)
    assert uniques.merge([None, None]) == uniques.Uniques(0.0, 0.0, 0.0, 0, 2)
    one = uniques.merge(
        [sketches.user_sketch_bytes(["a", "b"]), None, sketches.user_sketch_bytes(["b", "c"])]
    )
    assert (one.windows, one.windows_without_sketch) == (2, 1)
    assert one.lower_bound <= 3 <= one.upper_bound
    assert round(one.estimate) == 3


def test_the_text_says_the_estimate_the_bounds_and_the_windows_or_that_the_range_is_empty() -> None:
    span = uniques.TimeRange(T0, T0 + timedelta(days=7))
    segment = uniques.Segment("country", "DE")
    result = uniques.Uniques(1234.4, 1195.2, 1274.9, 10080, 0)
    assert uniques.render_text(span, segment, result) == (
        "unique users, country=DE, 2026-12-01T00:00:00Z to 2026-12-08T00:00:00Z: ≈ 1,234 (1,195 to 1,275 at "
        "2 standard deviations; 10,080 window(s) merged)"
    )
    empty = uniques.Uniques(0.0, 0.0, 0.0, 0, 3)
    assert uniques.render_text(span, segment, empty) == (
        "no KPI windows with a sketch for country=DE, 2026-12-01T00:00:00Z to 2026-12-08T00:00:00Z: "
        "0 windows merged\nnote: 3 window(s) of the range have no sketch (written before migration V0010) "
        "and are not counted"
    )
