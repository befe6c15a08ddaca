"""The dashboard's pure parts: query parameters, the shaping of rows into chart data, the right-now tier's
Redis commands, the RESP encoding and the Redis URL. Nothing is started."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.common.settings import SettingsError
from uxstream import realtime
from uxstream.dashboard.data import resolve_window, shape_funnels, shape_series, uniques_note
from uxstream.dashboard.params import BadParameter, Params, parse_params
from uxstream.realtime import AckedEvent, read_commands, right_now_of, write_commands
from uxstream.services.redis import RedisSettings, encode_command

T0 = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


# ------------------------------------------------------------------------------------------- parameters


def test_no_parameters_mean_global_last_two_hours_to_the_newest_window_in_utc() -> None:
    assert parse_params({}) == Params("global", "2h", None, False, "UTC", 5)


def test_every_parameter_is_read() -> None:
    params = parse_params(
        {
            "dimension": "country",
            "range": "7d",
            "end": "2026-12-05T15:00:00+01:00",
            "tz": "Europe/Berlin",
            "top": "3",
        }
    )
    assert params == Params("country", "7d", T0, False, "Europe/Berlin", 3)
    assert params.span == timedelta(days=7)
    assert params.query() == {
        "dimension": "country",
        "range": "7d",
        "end": "2026-12-05T14:00:00+00:00",
        "tz": "Europe/Berlin",
        "top": "3",
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"dimension": "browser"}, "dimension='browser': expected one of global, page_path, country, device_type"),  # noqa: E501
        ({"range": "2 hours"}, "range='2 hours': expected a number and a unit m, h or d, e.g. 2h or 7d"),
        ({"range": "0h"}, "range='0h': expected a number and a unit m, h or d, e.g. 2h or 7d"),
        ({"range": "91d"}, "range='91d': at most 90d"),
        ({"end": "yesterday"}, "end='yesterday': expected latest, now or an ISO 8601 instant such as 2026-12-05T14:00:00Z"),  # noqa: E501
        ({"end": "2026-12-05T14:00:00"}, "end='2026-12-05T14:00:00': give the offset (Z or +01:00), the instant is ambiguous"),  # noqa: E501
        ({"tz": "Mars/Olympus"}, "tz='Mars/Olympus': expected an IANA time zone such as UTC or Europe/Berlin"),  # noqa: E501
        ({"tz": "../../etc/passwd"}, "tz='../../etc/passwd': expected an IANA time zone such as UTC or Europe/Berlin"),  # noqa: E501
        ({"top": "11"}, "top='11': expected a whole number from 1 to 10"),
        ({"top": "-1"}, "top='-1': expected a whole number from 1 to 10"),
        ({"dimensoin": "global"}, "unknown parameter 'dimensoin': the dashboard takes dimension, end, range, token, top, tz"),  # noqa: E501
    ],
)  # fmt: skip
def test_a_malformed_parameter_is_refused_with_a_message_naming_it(
    query: dict[str, str], message: str
) -> None:
    with pytest.raises(BadParameter) as error:
        parse_params(query)
    assert str(error.value) == message


def test_the_range_ends_at_the_newest_window_at_now_or_at_the_given_instant() -> None:
    latest, now = T0, T0 + timedelta(hours=5)
    assert resolve_window(parse_params({"range": "1h"}), latest, now) == (T0 - timedelta(hours=1), T0)
    assert resolve_window(parse_params({"range": "1h"}), None, now) == (now - timedelta(hours=1), now)
    assert resolve_window(parse_params({"range": "15m", "end": "now"}), latest, now) == (
        now - 15 * MINUTE,
        now,
    )
    given = parse_params({"range": "1d", "end": "2026-12-01T00:00:00Z"})
    assert resolve_window(given, latest, now) == (
        datetime(2026, 11, 30, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )


# ---------------------------------------------------------------------------------------------- shaping


def test_series_share_one_time_axis_with_gaps_where_a_value_had_no_window() -> None:
    rows = [
        (T0, "DE", 3, 0.5),
        (T0, "US", 5, None),
        (T0 + MINUTE, "US", 7, 0.25),
        (T0 + 2 * MINUTE, "DE", 1, 0.0),
    ]
    shaped = shape_series(rows, ["US", "DE"], ("users", "rate"))
    t0 = int(T0.timestamp())
    assert shaped == {
        "times": [t0, t0 + 60, t0 + 120],
        "values": ["US", "DE"],
        "series": {
            "US": {"users": [5, 7, None], "rate": [None, 0.25, None]},
            "DE": {"users": [3, None, 1], "rate": [0.5, None, 0.0]},
        },
    }


def test_funnel_steps_are_summed_over_windows_and_rates_recomputed_from_the_sums() -> None:
    windows = [
        ("checkout", "global", "(all)", 10, 2, 8, 1),
        ("checkout", "device_type", "mobile", 4, 0, 4, 0),
    ]
    steps = [
        ("checkout", "global", "(all)", 1, "product_viewed", 10),
        ("checkout", "global", "(all)", 2, "add_to_cart", 5),
        ("checkout", "global", "(all)", 3, "order_completed", 2),
        ("checkout", "device_type", "mobile", 1, "product_viewed", 4),
        ("checkout", "device_type", "mobile", 2, "add_to_cart", 0),
    ]
    alert = {"source": "funnel", "metric": "checkout.conversion_rate"}
    other = {"source": "kpi", "metric": "error_rate"}
    [checkout] = shape_funnels(windows, steps, [alert, other])
    assert checkout["funnel"] == "checkout"
    assert checkout["alerts"] == [alert]
    global_, mobile = checkout["segments"]
    assert (global_["dimension"], global_["entered"], global_["converted"], global_["conversion_rate"]) == (
        "global",
        10,
        2,
        0.2,
    )
    assert global_["steps"] == [
        {"step": 1, "name": "product_viewed", "reached": 10, "conversion_from_previous": None, "drop_off": 5},
        {"step": 2, "name": "add_to_cart", "reached": 5, "conversion_from_previous": 0.5, "drop_off": 3},
        {
            "step": 3,
            "name": "order_completed",
            "reached": 2,
            "conversion_from_previous": 0.4,
            "drop_off": None,
        },
    ]
    assert mobile["steps"][1] == {
        "step": 2,
        "name": "add_to_cart",
        "reached": 0,
        "conversion_from_previous": 0.0,
        "drop_off": None,
    }


# ------------------------------------------------------------------------------------------- right now


def test_the_writer_adds_each_user_to_the_minute_key_of_every_segment_and_counts_the_events() -> None:
    now_ms = 1_800_000_123_456  # minute 30_000_002, second 1_800_000_123
    events = [
        AckedEvent("u1", "/home", "DE", "mobile"),
        AckedEvent("u2", "/home", None, "desktop"),
        AckedEvent("u1", "/cart", "DE", "mobile"),
    ]
    assert write_commands(events, now_ms, prefix="p") == [
        ("PFADD", "p:u:30000002:country:(none)", "u2"),
        ("EXPIRE", "p:u:30000002:country:(none)", 900),
        ("PFADD", "p:u:30000002:country:DE", "u1"),
        ("EXPIRE", "p:u:30000002:country:DE", 900),
        ("PFADD", "p:u:30000002:device_type:desktop", "u2"),
        ("EXPIRE", "p:u:30000002:device_type:desktop", 900),
        ("PFADD", "p:u:30000002:device_type:mobile", "u1"),
        ("EXPIRE", "p:u:30000002:device_type:mobile", 900),
        ("PFADD", "p:u:30000002:global:(all)", "u1", "u2"),
        ("EXPIRE", "p:u:30000002:global:(all)", 900),
        ("PFADD", "p:u:30000002:page_path:/cart", "u1"),
        ("EXPIRE", "p:u:30000002:page_path:/cart", 900),
        ("PFADD", "p:u:30000002:page_path:/home", "u1", "u2"),
        ("EXPIRE", "p:u:30000002:page_path:/home", 900),
        ("INCRBY", "p:e:1800000123", 3),
        ("EXPIRE", "p:e:1800000123", 600),
        ("SET", "p:seen", now_ms),
    ]
    assert write_commands([], now_ms) == []


def test_an_event_is_keyed_by_user_id_else_anonymous_id() -> None:
    assert AckedEvent.from_event({"user_id": "u", "anonymous_id": "a", "country": ""}) == AckedEvent("u")
    assert AckedEvent.from_event({"user_id": None, "anonymous_id": "a", "page_path": "/x"}) == AckedEvent(
        "a", "/x"
    )


def test_the_reader_merges_this_and_the_previous_minute_for_1_min_and_six_buckets_for_5_min() -> None:
    now_ms = 1_800_000_123_456
    assert read_commands(now_ms, "country", "DE", prefix="p") == [
        ("PFCOUNT", "p:u:30000002:country:DE", "p:u:30000001:country:DE"),
        ("PFCOUNT", *(f"p:u:{m}:country:DE" for m in range(30000002, 29999996, -1))),
        ("MGET", *(f"p:e:{s}" for s in range(1800000118, 1800000123))),
        ("GET", "p:seen"),
    ]


def test_figures_from_the_replies_and_whether_a_collector_feeds_them() -> None:
    now_ms = 1_800_000_123_456
    fed = right_now_of([4, 9, [b"10", None, b"5", b"0", b"10"], str(now_ms - 1000).encode()], now_ms)
    assert (fed.active_users_1m, fed.active_users_5m, fed.events_per_second, fed.fed) == (4, 9, 5.0, True)
    stale = right_now_of([0, 0, [None] * 5, str(now_ms - realtime.FEED_STALE_MS - 1).encode()], now_ms)
    assert stale.fed is False
    assert right_now_of([0, 0, [None] * 5, None], now_ms).fed is False


def test_commands_are_resp_arrays_of_bulk_strings() -> None:
    assert (
        encode_command(("PFADD", "k", "ü", 12))
        == b"*4\r\n$5\r\nPFADD\r\n$1\r\nk\r\n$2\r\n\xc3\xbc\r\n$2\r\n12\r\n"
    )


def test_the_redis_url_names_host_port_database_and_password() -> None:
    settings = RedisSettings.from_env({"UXSTREAM_REDIS_URL": "redis://:s%40cret@cache.internal:6380/2"})
    assert (settings.host, settings.port, settings.db, settings.external) == ("cache.internal", 6380, 2, True)
    assert settings.password is not None and settings.password.reveal() == "s@cret"
    assert settings.describe() == "redis://cache.internal:6380/2"
    assert RedisSettings.from_env({}) == RedisSettings("127.0.0.1", 16379, 0, None, False)
    with pytest.raises(SettingsError, match="is not a redis://host"):
        RedisSettings.from_env({"UXSTREAM_REDIS_URL": "http://x"})


# ------------------------------------------------------------------------------------------ unique users


def test_the_unique_users_note_says_when_there_is_no_sketch_to_merge() -> None:
    def row(windows: int, missing: int = 0) -> dict[str, object]:
        return {
            "dimension": "global",
            "value": "(all)",
            "windows": windows,
            "windows_without_sketch": missing,
        }

    assert uniques_note({"rows": [row(120), row(7)]}) == ""
    assert uniques_note({"rows": [row(0)]}) == "No final windows with a user sketch in this range yet."
    assert uniques_note({"rows": [row(0, 5)]}) == (
        "No final windows with a user sketch in this range yet (5 written before migration V0010 have none)."
    )
    assert uniques_note({"rows": [row(100, 20), row(3, 2)]}) == (
        "20 window(s) of the range have no sketch (written before V0010) and are not counted."
    )
