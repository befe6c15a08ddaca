"""The PostHog and Snowplow routes of a real collector process against the real local Kafka: the SDK
payloads (fixtures) reach the topic decoded exactly as the mapping + contract say, and each refusal has
the status the SDK retries."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from jobs.common.contract import decode_framed
from jobs.common.settings import KafkaSettings
from tests.collector.running import ORIGIN, WRITE_KEY, RunningCollector, running_collector
from tests.sdk.test_posthog_mapping import EVENTS as POSTHOG_EVENTS
from tests.sdk.test_snowplow_mapping import PAYLOAD as SNOWPLOW_PAYLOAD
from tests.support.kafka import committed_records, end_offset
from tests.support.streams import unique_topic
from uxstream.collector import posthog, snowplow
from uxstream.collector.logic import Accepted, prepare

pytestmark = pytest.mark.services

PING_MS = 5_000


@pytest.fixture(scope="module")
def collector(
    kafka_settings: KafkaSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningCollector]:
    folder = tmp_path_factory.mktemp("sdk-collector")
    env = {"UXSTREAM_COLLECTOR_SNOWPLOW_PING_INTERVAL_MS": str(PING_MS)}
    with running_collector(kafka_settings, folder, unique_topic("test.sdk"), env) as running:
        yield running


def records_after(kafka: KafkaSettings, topic: str, offset: int) -> list[tuple[bytes | None, dict[str, Any]]]:
    return [(r.key, decode_framed(r.value)[1]) for r in committed_records(kafka, topic) if r.offset >= offset]


def expected(mapped: dict[str, Any], written: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The record `prepare` makes of a mapped event, with the collector's received_at and ip."""
    prepared = prepare(mapped, project="shop", received_at=written["received_at"], client_ip=None)
    assert isinstance(prepared, Accepted), prepared
    return prepared.key, {**prepared.record, "ip": written["ip"]}


def test_posthog_js_gzip_batch_reaches_kafka_as_mapped(
    kafka_settings: KafkaSettings, collector: RunningCollector
) -> None:
    start = end_offset(kafka_settings, collector.topic)
    response = httpx.post(
        f"{collector.url}/e/?ip=1&_=1764928800000&ver=1.449.2&compression=gzip-js",
        content=gzip.compress(json.dumps(POSTHOG_EVENTS).encode()),
        headers={"Content-Type": "text/plain", "Origin": ORIGIN}, timeout=30,
    )  # fmt: skip
    assert response.status_code == 200
    assert response.json()["status"] == 1
    assert (response.json()["accepted"], response.json()["rejected"]) == (len(POSTHOG_EVENTS), 0)
    assert response.headers["access-control-allow-origin"] == ORIGIN
    records = records_after(kafka_settings, collector.topic, start)
    assert len(records) == len(POSTHOG_EVENTS)
    for raw, (key, written) in zip(POSTHOG_EVENTS, records, strict=True):
        mapped = posthog.map_event(raw, received_at=written["received_at"])
        assert isinstance(mapped, dict)
        assert (key, written) == expected(mapped, written)
    assert records[0][1]["ip"] == "127.0.0.0"


def test_posthog_unknown_token_is_401_and_nothing_written(
    kafka_settings: KafkaSettings, collector: RunningCollector
) -> None:
    start = end_offset(kafka_settings, collector.topic)
    body = {"api_key": "phc_unknown", "batch": [POSTHOG_EVENTS[0]]}
    response = httpx.post(f"{collector.url}/batch/", json=body, timeout=30)
    assert (response.status_code, response.json()["error"]) == (401, "unauthorized")
    assert records_after(kafka_settings, collector.topic, start) == []


def test_posthog_unplaceable_event_is_rejected_with_its_reason_and_the_rest_written(
    kafka_settings: KafkaSettings, collector: RunningCollector
) -> None:
    start = end_offset(kafka_settings, collector.topic)
    broken = {**POSTHOG_EVENTS[6], "uuid": "broken-1", "timestamp": None}
    good = {**POSTHOG_EVENTS[6], "uuid": "good-1"}
    response = httpx.post(f"{collector.url}/capture/", json=[broken, good], timeout=30)
    assert response.status_code == 200
    assert response.json()["results"] == [
        {
            "status": "rejected", "reason": "missing_field",
            "detail": "field 'timestamp' is missing or empty "
            "(an ISO 8601 time with a zone, or an offset in ms)",
        },
        {"status": "accepted", "event_id": "good-1"},
    ]  # fmt: skip
    assert [r["event_id"] for _, r in records_after(kafka_settings, collector.topic, start)] == ["good-1"]


def test_snowplow_tp2_post_reaches_kafka_as_mapped_and_a_resend_keeps_its_event_ids(
    kafka_settings: KafkaSettings, collector: RunningCollector
) -> None:
    start = end_offset(kafka_settings, collector.topic)
    url = f"{collector.url}{snowplow.POST_PATH}"
    headers = {"Content-Type": "application/json; charset=UTF-8", "Origin": ORIGIN}
    preflight = httpx.options(url, headers={**headers, "Access-Control-Request-Method": "POST"}, timeout=30)
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-credentials"] == "true"
    for _ in range(2):  # the tracker resends a batch whose answer it did not get
        response = httpx.post(url, json=SNOWPLOW_PAYLOAD, headers=headers, timeout=30)
        assert response.status_code == 200
        assert response.json()["accepted"] == len(SNOWPLOW_PAYLOAD["data"])
    records = records_after(kafka_settings, collector.topic, start)
    events = SNOWPLOW_PAYLOAD["data"]
    assert len(records) == 2 * len(events)
    for raw, (key, written) in zip(events + events, records, strict=True):
        mapped = snowplow.map_event(raw, ping_interval_ms=PING_MS)
        assert isinstance(mapped, dict)
        assert (key, written) == expected(mapped, written)
    assert [r["event_id"] for _, r in records[: len(events)]] == [e["eid"] for e in events]
    assert records[1][1]["engagement_time_ms"] == PING_MS


def test_snowplow_pixel_answers_a_gif_and_writes_the_event(
    kafka_settings: KafkaSettings, collector: RunningCollector
) -> None:
    start = end_offset(kafka_settings, collector.topic)
    event = {k: str(v) for k, v in SNOWPLOW_PAYLOAD["data"][0].items()}
    response = httpx.get(f"{collector.url}{snowplow.PIXEL_PATH}", params=event, timeout=30)
    assert (response.status_code, response.headers["content-type"]) == (200, "image/gif")
    assert response.content == snowplow.PIXEL
    [(key, written)] = records_after(kafka_settings, collector.topic, start)
    mapped = snowplow.map_event(event, ping_interval_ms=PING_MS)
    assert isinstance(mapped, dict)
    assert (key, written) == expected(mapped, written)


def test_rate_limit_is_503_for_posthog_and_429_for_snowplow_both_with_retry_after(
    kafka_settings: KafkaSettings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("sdk-limited")
    env = {"UXSTREAM_COLLECTOR_RATE_PER_KEY": "1", "UXSTREAM_COLLECTOR_BURST_PER_KEY": "1"}
    with running_collector(kafka_settings, folder, unique_topic("test.sdk.limited"), env) as limited:
        batch = POSTHOG_EVENTS[:3]
        first = httpx.post(f"{limited.url}/e/", json=batch, timeout=30)
        assert (first.status_code, first.json()["error"]) == (503, "rate_limited")
        assert int(first.headers["retry-after"]) >= 1
        body = {**SNOWPLOW_PAYLOAD, "data": SNOWPLOW_PAYLOAD["data"][:3]}
        second = httpx.post(f"{limited.url}{snowplow.POST_PATH}", json=body, timeout=30)
        assert (second.status_code, second.json()["error"]) == (429, "rate_limited")
        assert int(second.headers["retry-after"]) >= 1
        assert end_offset(kafka_settings, limited.topic) == 0
    assert WRITE_KEY in (folder / "write-keys.json").read_text()


def metric(collector: RunningCollector, name: str) -> float:
    """A counter's value from the collector's /metrics (0 when it has no sample yet)."""
    for line in httpx.get(f"{collector.url}/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_resends_count_as_duplicates_and_snippet_sequence_gaps_are_counted_until_filled(
    kafka_settings: KafkaSettings, collector: RunningCollector
) -> None:
    def native(n: int) -> dict[str, Any]:
        return {
            "event_id": f"seq-{n}", "event_type": "heartbeat", "event_name": "heartbeat",
            "anonymous_id": "anon-seq", "ts": 1_764_928_800_000 + n,
            "properties": {"uxs_load": "load-1", "uxs_seq": str(n)},
        }  # fmt: skip

    def send(*numbers: int) -> None:
        response = httpx.post(
            f"{collector.url}/v1/batch", json=[native(n) for n in numbers],
            headers={"Authorization": f"Bearer {WRITE_KEY}"}, timeout=30,
        )  # fmt: skip
        assert response.status_code == 200 and response.json()["accepted"] == len(numbers)

    names = ("duplicate_events_total", "sequence_gaps_total", "sequence_filled_total")
    before = [metric(collector, f"uxstream_collector_{name}") for name in names]

    def delta() -> list[float]:
        return [metric(collector, f"uxstream_collector_{n}") - b for n, b in zip(names, before, strict=True)]

    send(1, 2, 5)
    assert delta() == [0, 2, 0]  # 3 and 4 missing
    send(4)
    assert delta() == [0, 2, 1]
    send(4, 5)  # a resend
    assert delta() == [2, 2, 1]
    send(3, 6)
    assert delta() == [2, 2, 2]  # nothing missing any more: gaps - filled = 0
