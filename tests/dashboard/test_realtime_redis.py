"""The right-now tier against the real redis-server: the writer's HyperLogLogs answer within Redis's
documented error (standard error 0.81 %) of the exact distinct counts, per minute and merged over minutes,
and the reader gives the events per second; the local server is a service like Kafka and PostgreSQL."""

from __future__ import annotations

import io
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.common.enrichment import EnrichmentSettings
from jobs.common.oracle import load
from jobs.sessionize.oracle import expected
from tests.support.streams import generate_truth
from uxstream import realtime
from uxstream.realtime import AckedEvent, Recorder, read, record, users_in
from uxstream.services.redis import LocalRedis, RedisClient, RedisSettings, ensure_redis, redis_status

pytestmark = pytest.mark.services

MINUTE_MS = 60_000
BOUND = 3 * realtime.HLL_STANDARD_ERROR
"""Three standard errors: a count outside this is a bug, not bad luck (p < 0.3 %)."""


@pytest.fixture
def client(redis_settings: RedisSettings) -> Iterator[RedisClient]:
    with RedisClient(redis_settings) as redis:
        yield redis


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex[:8]}"


def test_per_minute_and_five_minute_users_equal_the_exact_windows_of_the_oracle(
    client: RedisClient, prefix: str, tmp_path: Path
) -> None:
    """Every on-time event recorded as if acknowledged at its event time: each minute bucket's PFCOUNT is
    the kpi_1m window's exact active users and five merged buckets the sliding 5-minute window's, within
    the HyperLogLog bound (small sets are exact in practice), for every segment of every dimension."""
    generate_truth(
        ["--events", "3000", "--duration", "20m", "--seed", "5", "--partitions", "1"], tmp_path / "t.jsonl"
    )
    truth = load(tmp_path / "t.jsonl")
    # The collector counts what it acknowledges as the client sent it: no derived country or device, bots
    # included (README "Dashboard": the "right now" tier is not enriched); the oracle's windows likewise.
    as_sent = EnrichmentSettings(user_agents=False, geoip_db=None, exclude_bots=False)
    rows = expected(truth.events, cumulative_step_ms=86_400_000, enrichment=as_sent)
    by_ts: dict[int, list[AckedEvent]] = defaultdict(list)
    for event in truth.events:
        by_ts[int(event.event["ts"])].append(AckedEvent.from_event(event.event))
    for ts, events in sorted(by_ts.items()):
        record(client, events, ts, prefix)
    assert rows["kpi_1m"] and rows["kpi_sliding_5m"]

    def off(count: int, exact: int) -> float:
        return abs(count - exact) / exact

    worst = 0.0
    for row in rows["kpi_1m"]:
        minute = row["window_start"] // MINUTE_MS
        got = users_in(client, minute, minute, row["dimension"], row["dimension_value"], prefix)
        worst = max(worst, off(got, row["active_users"]))
    for row in rows["kpi_sliding_5m"]:
        first, last = row["window_start"] // MINUTE_MS, row["window_end"] // MINUTE_MS - 1
        got = users_in(client, first, last, row["dimension"], row["dimension_value"], prefix)
        worst = max(worst, off(got, row["active_users"]))
    assert worst <= BOUND, f"worst relative error {worst:.4f} > {BOUND:.4f}"


def test_a_large_audience_is_counted_within_the_documented_error(client: RedisClient, prefix: str) -> None:
    """50,000 distinct users over five minutes, 20,000 of them twice: the dense HyperLogLog's estimate."""
    now_ms = 1_800_000_000_000
    users = [f"user-{i}" for i in range(50_000)]
    for minute in range(5):
        chunk = users[minute * 10_000 : (minute + 1) * 10_000] + users[:4_000]
        record(
            client, [AckedEvent(u, "/p", "DE", "mobile") for u in chunk], now_ms + minute * MINUTE_MS, prefix
        )
    first = now_ms // MINUTE_MS
    five = users_in(client, first, first + 4, prefix=prefix)
    one = users_in(client, first + 4, first + 4, "country", "DE", prefix)
    assert abs(five - 50_000) / 50_000 <= BOUND, five
    assert abs(one - 14_000) / 14_000 <= BOUND, one


def test_the_reader_gives_the_last_minutes_users_and_events_per_second(
    client: RedisClient, prefix: str
) -> None:
    now_ms = 1_800_000_130_500  # second 1_800_000_130, minute 30_000_002 (started at ..._120_000)
    record(client, [AckedEvent("a"), AckedEvent("b")], now_ms - 65_000, prefix)  # previous minute bucket
    record(client, [AckedEvent("b"), AckedEvent("c")], now_ms - 3_000, prefix)
    record(client, [AckedEvent("d")] * 8, now_ms - 1_000, prefix)
    record(client, [AckedEvent("e")], now_ms, prefix)  # the current second is not complete: not counted
    figures = read(client, now_ms, prefix=prefix)
    assert (figures.active_users_1m, figures.active_users_5m) == (5, 5)
    assert figures.events_per_second == (2 + 8) / 5  # 3 s and 1 s ago are in the last 5 complete seconds
    assert (figures.last_write_ms, figures.fed) == (now_ms, True)
    assert read(client, now_ms, prefix=f"{prefix}-empty").fed is False


def test_keys_expire(client: RedisClient, prefix: str) -> None:
    now_ms = 1_800_000_000_000
    record(client, [AckedEvent("a", "/p")], now_ms, prefix)
    user_ttl = client.execute("TTL", realtime.users_key(prefix, now_ms // MINUTE_MS, "page_path", "/p"))
    event_ttl = client.execute("TTL", realtime.events_key(prefix, now_ms // 1000))
    assert user_ttl == realtime.USERS_TTL_S and event_ttl == realtime.EVENTS_TTL_S


def test_redis_is_a_local_service_started_once(redis_settings: RedisSettings, tmp_path: Path) -> None:
    """A second start finds the running server; an own instance starts, answers and stops."""
    if not redis_settings.external:
        before = redis_status(redis_settings).pid
        out = io.StringIO()
        ensure_redis(redis_settings, out=out)
        assert out.getvalue() == f"redis already running on 127.0.0.1:16379 (pid {before})\n"
    from uxstream.services.common import free_port
    from uxstream.services.redis import stop_redis

    local = LocalRedis(home=tmp_path / "redis", port=free_port())
    ensure_redis(local=local, out=io.StringIO())
    try:
        status = redis_status(local=local)
        assert status.running and status.pid is not None
        with RedisClient(local.settings()) as own:
            assert own.execute("PING") == "PONG"
    finally:
        stop_redis(local=local, out=io.StringIO())
    assert redis_status(local=local).running is False


def test_the_collectors_recorder_counts_acknowledged_events_and_survives_a_redis_outage(
    redis_settings: RedisSettings, prefix: str
) -> None:
    now_ms = 1_800_000_000_000
    events = [
        {"user_id": None, "anonymous_id": f"a{i}", "page_path": "/home", "country": "FR"} for i in range(3)
    ]
    with RedisClient(redis_settings) as client:
        recorder = Recorder(client, prefix, clock_ms=lambda: now_ms)
        assert recorder.acknowledged(events) is True
        assert users_in(client, now_ms // MINUTE_MS, now_ms // MINUTE_MS, "country", "FR", prefix) == 3
    from uxstream.services.common import free_port

    with RedisClient(RedisSettings(port=free_port()), timeout=0.5) as nowhere:
        down = Recorder(nowhere, prefix, clock_ms=lambda: now_ms)
        assert down.acknowledged(events) is False and down.failures == 1
