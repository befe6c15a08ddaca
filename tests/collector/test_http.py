"""POST /v1/batch against a real collector process and the real local Kafka: what is accepted is on the
topic exactly as the contract says, and every rejection path answers its exact status and body without
writing anything."""

from __future__ import annotations

import gzip
import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from jobs.common.contract import decode_framed, load_catalog
from jobs.common.settings import KafkaSettings
from tests.collector.builders import T0, click, feedback, page_view
from tests.collector.running import (
    ORIGIN,
    OTHER_KEY,
    REVOKED_KEY,
    WRITE_KEY,
    RunningCollector,
    running_collector,
)
from tests.support.kafka import committed_records, end_offset
from tests.support.streams import unique_topic
from uxstream.collector.logic import content_event_id

pytestmark = pytest.mark.services

AUTH = {"Authorization": f"Bearer {WRITE_KEY}"}
JWT_SECRET = "test-jwt-secret-0123456789abcdef-0123456789"


@pytest.fixture(scope="module")
def collector(
    kafka_settings: KafkaSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningCollector]:
    folder = tmp_path_factory.mktemp("collector")
    env = {
        "UXSTREAM_COLLECTOR_MAX_BODY_BYTES": "20000",
        "UXSTREAM_COLLECTOR_MAX_DECOMPRESSED_BYTES": "100000",
        "UXSTREAM_COLLECTOR_MAX_GZIP_RATIO": "20",
        "UXSTREAM_COLLECTOR_MAX_BATCH_EVENTS": "50",
        "UXSTREAM_COLLECTOR_TRUSTED_PROXIES": "127.0.0.1/32",
        "UXSTREAM_COLLECTOR_JWT_SECRET": JWT_SECRET,
    }
    with running_collector(kafka_settings, folder, unique_topic("test.collector"), env) as running:
        yield running


def post(
    collector: RunningCollector, body: Any, headers: dict[str, str] | None = None, **kw: Any
) -> httpx.Response:
    kind = "content" if isinstance(body, bytes) else "json"
    return httpx.post(
        f"{collector.url}/v1/batch", headers={**AUTH, **(headers or {})}, timeout=30, **{kind: body}, **kw
    )


def records_after(
    kafka: KafkaSettings, topic: str, offset: int
) -> list[tuple[bytes | None, int, dict[str, Any]]]:
    return [
        (r.key, r.timestamp, decode_framed(r.value)[1])
        for r in committed_records(kafka, topic)
        if r.offset >= offset
    ]


def full_record(event: dict[str, Any], **collector_fields: Any) -> dict[str, Any]:
    """`event` as the reader schema holds it: every field, the collector's fields set."""
    fields = load_catalog().latest("ux.events-value").field_names
    record: dict[str, Any] = {name: None for name in fields}
    record["properties"] = {}
    record.update(event)
    record.update(collector_fields)
    return record


# ----------------------------------------------------------------------------------------- accepted


def test_a_batch_is_answered_per_event_and_only_its_valid_events_are_on_kafka(
    kafka_settings: KafkaSettings, collector: RunningCollector
) -> None:
    start = end_offset(kafka_settings, collector.topic)
    with_id = page_view("anon-1", T0, "/pricing", event_id="client-id-1", properties={"plan": "pro"})
    without_id = click("anon-1", T0 + 1000)
    bad = page_view("anon-2", T0, path="")  # page_view without page_path
    old = click("anon-2", 946_684_799_999)  # before 2000
    before = int(time.time() * 1000)
    response = post(collector, [with_id, bad, without_id, old, "not an object"])
    after = int(time.time() * 1000)
    generated = content_event_id("shop", without_id)
    assert response.status_code == 200
    assert response.json() == {
        "accepted": 2,
        "rejected": 3,
        "skipped": 0,
        "results": [
            {"status": "accepted", "event_id": "client-id-1"},
            {
                "status": "rejected",
                "reason": "missing_field",
                "detail": "field 'page_path' is missing or empty (required for page_view)",
            },
            {"status": "accepted", "event_id": generated},
            {
                "status": "rejected",
                "reason": "impossible_value",
                "detail": "field 'ts' is 1999-12-31T23:59:59.999Z, before 2000-01-01",
            },
            {
                "status": "rejected",
                "reason": "impossible_value",
                "detail": "an event must be a JSON object, got a JSON string",
            },
        ],
    }
    records = records_after(kafka_settings, collector.topic, start)
    assert [(key, value["event_id"]) for key, _, value in records] == [
        (b"anon-1", "client-id-1"),
        (b"anon-1", generated),
    ]
    received_at = records[0][2]["received_at"]
    assert before <= received_at <= after
    assert [timestamp for _, timestamp, _ in records] == [
        received_at,
        received_at,
    ]  # Kafka time = received_at
    assert records[0][2] == full_record(with_id, received_at=received_at, ip="127.0.0.0")
    assert records[1][2] == full_record(
        without_id, event_id=generated, received_at=received_at, ip="127.0.0.0"
    )


def test_feedback_events_follow_the_contract_and_reach_kafka_with_their_comment_scrubbed(
    kafka_settings: KafkaSettings, collector: RunningCollector
) -> None:
    """issue 22 item 6: feedback (schema v3) through /v1/batch: the contract's feedback rule answers each
    event; an accepted comment is on Kafka PII-scrubbed (README "Feedback")."""
    start = end_offset(kafka_settings, collector.topic)
    nps = feedback(
        "anon-7", T0, event_id="fb-1", feedback_comment="Mail me at bo@example.com, +44 20 7946 0958"
    )
    csat = feedback("anon-7", T0 + 1, scale="1-5", score=4, event_id="fb-2")
    response = post(
        collector,
        [
            nps,
            feedback("anon-8", T0, score=11),
            feedback("anon-8", T0, scale="1-5", score=0),
            feedback("anon-8", T0, scale="stars"),
            feedback("anon-8", T0, survey_id=""),
            feedback("anon-8", T0, score="9"),
            csat,
        ],
    )

    assert response.status_code == 200
    assert response.json() == {
        "accepted": 2,
        "rejected": 5,
        "skipped": 0,
        "results": [
            {"status": "accepted", "event_id": "fb-1"},
            {
                "status": "rejected",
                "reason": "impossible_value",
                "detail": "field 'feedback_score' is 11, outside the 0-10 scale",
            },
            {
                "status": "rejected",
                "reason": "impossible_value",
                "detail": "field 'feedback_score' is 0, outside the 1-5 scale",
            },
            {
                "status": "rejected",
                "reason": "impossible_value",
                "detail": "field 'feedback_scale' is 'stars', not one of 0-10, 1-5",
            },
            {
                "status": "rejected",
                "reason": "missing_field",
                "detail": "field 'survey_id' is missing or empty (required for feedback)",
            },
            {
                "status": "rejected",
                "reason": "impossible_value",
                "detail": "field 'feedback_score' is a JSON string, expected an integer",
            },
            {"status": "accepted", "event_id": "fb-2"},
        ],
    }
    records = records_after(kafka_settings, collector.topic, start)
    received_at = records[0][2]["received_at"]
    assert [value for _, _, value in records] == [
        full_record(
            nps, feedback_comment="Mail me at [email], [number]", received_at=received_at, ip="127.0.0.0"
        ),
        full_record(csat, received_at=received_at, ip="127.0.0.0"),
    ]


def test_a_resent_batch_without_event_ids_gets_the_same_ids(collector: RunningCollector) -> None:
    batch = [click("anon-3", T0 + n) for n in range(3)]
    first = post(collector, batch).json()["results"]
    again = post(collector, batch).json()["results"]
    assert first == again
    assert len({r["event_id"] for r in first}) == 3


def test_a_gzip_body_is_accepted(kafka_settings: KafkaSettings, collector: RunningCollector) -> None:
    body = gzip.compress(json.dumps([click("gz", event_id="gz-1")]).encode())
    response = post(collector, body, {"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json()["results"] == [{"status": "accepted", "event_id": "gz-1"}]


def test_a_signed_jwt_is_a_credential(collector: RunningCollector) -> None:
    token = jwt.encode(
        {"project": "backend", "aud": "uxstream", "exp": int(time.time()) + 60}, JWT_SECRET, "HS256"
    )
    response = post(collector, [click("srv-1", event_id="jwt-1")], {"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json()["accepted"] == 1
    expired = jwt.encode(
        {"project": "backend", "aud": "uxstream", "exp": int(time.time()) - 60}, JWT_SECRET, "HS256"
    )
    response = post(collector, [click("srv-1")], {"Authorization": f"Bearer {expired}"})
    assert (response.status_code, response.json()) == (
        401,
        {"error": "unauthorized", "detail": "invalid token (ExpiredSignatureError)"},
    )


def test_behind_a_trusted_proxy_the_forwarded_client_address_is_truncated_and_never_logged(
    kafka_settings: KafkaSettings, collector: RunningCollector
) -> None:
    start = end_offset(kafka_settings, collector.topic)
    response = post(
        collector,
        [click("proxied", event_id="xff-1")],
        {"X-Forwarded-For": "203.0.113.77", "X-Forwarded-Proto": "https"},
    )
    assert response.status_code == 200
    ((_, _, record),) = records_after(kafka_settings, collector.topic, start)
    assert record["ip"] == "203.0.113.0"
    v6 = post(
        collector,
        [click("proxied", event_id="xff-2")],
        {"X-Forwarded-For": "2001:db8:85a3:8d3:1319:8a2e:370:7348"},
    )
    assert v6.status_code == 200
    assert records_after(kafka_settings, collector.topic, start)[1][2]["ip"] == "2001:db8:85a3::"
    log = collector.log_text()
    assert "203.0.113.77" not in log
    assert "127.0.0.1" not in log
    assert WRITE_KEY not in log and JWT_SECRET not in log


# --------------------------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({"Authorization": "Bearer wk_unknown"}, "unknown or revoked write key"),
        ({"Authorization": f"Bearer {REVOKED_KEY}"}, "unknown or revoked write key"),
        ({"Authorization": ""}, "no write key (Authorization: Bearer <key> or ?write_key=)"),
    ],
    ids=["unknown", "revoked", "missing"],
)
def test_an_unknown_revoked_or_missing_key_is_401_and_nothing_is_written(
    kafka_settings: KafkaSettings, collector: RunningCollector, headers: dict[str, str], detail: str
) -> None:
    start = end_offset(kafka_settings, collector.topic)
    response = post(collector, [click("intruder")], headers)
    assert (response.status_code, response.json()) == (401, {"error": "unauthorized", "detail": detail})
    assert end_offset(kafka_settings, collector.topic) == start


def test_the_write_key_may_come_as_a_header_or_a_query_parameter(collector: RunningCollector) -> None:
    by_header = httpx.post(f"{collector.url}/v1/batch", json=[click("q")], headers={"X-Write-Key": OTHER_KEY})
    by_query = httpx.post(f"{collector.url}/v1/batch?write_key={OTHER_KEY}", json=[click("q")])
    assert (by_header.status_code, by_query.status_code) == (200, 200)


def test_an_origin_outside_the_allow_list_is_403_and_an_allowed_one_gets_cors_headers(
    kafka_settings: KafkaSettings, collector: RunningCollector
) -> None:
    start = end_offset(kafka_settings, collector.topic)
    bad = post(collector, [click("x")], {"Origin": "https://evil.example"})
    assert (bad.status_code, bad.json()) == (
        403,
        {"error": "origin_not_allowed", "detail": "origin 'https://evil.example' is not allowed"},
    )
    assert end_offset(kafka_settings, collector.topic) == start
    preflight = httpx.options(
        f"{collector.url}/v1/batch",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert preflight.headers["access-control-allow-methods"] == "POST"
    assert (
        preflight.headers["access-control-allow-headers"]
        == "authorization, content-type, content-encoding, x-write-key"
    )
    bad_preflight = httpx.options(f"{collector.url}/v1/batch", headers={"Origin": "https://evil.example"})
    assert bad_preflight.status_code == 403
    good = post(collector, [click("x")], {"Origin": ORIGIN})
    assert good.status_code == 200
    assert good.headers["access-control-allow-origin"] == ORIGIN


@pytest.mark.parametrize(
    ("body", "status", "error", "detail"),
    [
        (b"[{", 400, "malformed_json", "the body is not valid JSON (Input data was truncated)"),
        (
            b"not json",
            400,
            "malformed_json",
            "the body is not valid JSON (JSON is malformed: invalid character (byte 4))",
        ),
        (
            b'{"event_type": "click"}',
            400,
            "not_an_array",
            "expected a JSON array of events, got a JSON object",
        ),
        (b"[" + b",".join([b"{}"] * 51) + b"]", 413, "batch_too_large", "51 events in one batch, limit 50"),
        (b"[" + b" " * 20_001 + b"]", 413, "body_too_large", "request body over 20000 bytes (20003 read)"),
    ],
    ids=["truncated", "not-json", "object", "51-events", "oversized-body"],
)
def test_a_body_that_is_not_a_batch_is_refused_whole(
    kafka_settings: KafkaSettings,
    collector: RunningCollector,
    body: bytes,
    status: int,
    error: str,
    detail: str,
) -> None:
    start = end_offset(kafka_settings, collector.topic)
    response = post(collector, body, {"Content-Type": "application/json"})
    assert (response.status_code, response.json()) == (status, {"error": error, "detail": detail})
    assert end_offset(kafka_settings, collector.topic) == start


def test_gzip_bombs_are_refused_by_decompressed_size_and_by_ratio(collector: RunningCollector) -> None:
    bomb = gzip.compress(b"[" + b" " * 10_000_000 + b"]")  # 10 MB of JSON in ~10 KB
    response = post(collector, bomb, {"Content-Encoding": "gzip"})
    assert len(bomb) < 20_000
    assert (response.status_code, response.json()) == (
        413,
        {"error": "decompressed_too_large", "detail": "gzip body decompresses to more than 100000 bytes"},
    )
    small_bomb = gzip.compress(b"[" + b" " * 60_000 + b"]")  # within 100 kB, but ~500:1
    response = post(collector, small_bomb, {"Content-Encoding": "gzip"})
    assert (response.status_code, response.json()) == (
        413,
        {
            "error": "compression_ratio_too_high",
            "detail": f"gzip body of {len(small_bomb)} bytes expands more than 20 times",
        },
    )
    response = post(collector, b"\x1f\x8b garbage", {"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_gzip"
    response = post(collector, b"[]", {"Content-Encoding": "br"})
    assert (response.status_code, response.json()) == (
        415,
        {"error": "unsupported_content_encoding", "detail": "Content-Encoding 'br': send identity or gzip"},
    )


def test_do_not_track_and_denied_consent_are_honoured_by_writing_nothing(
    kafka_settings: KafkaSettings, collector: RunningCollector
) -> None:
    start = end_offset(kafka_settings, collector.topic)
    dnt = post(collector, [click("dnt"), click("dnt", T0 + 1)], {"DNT": "1"})
    assert dnt.json() == {
        "accepted": 0, "rejected": 0, "skipped": 2,
        "results": [{"status": "skipped", "reason": "do_not_track"}] * 2,
    }  # fmt: skip
    gpc = post(collector, [click("gpc")], {"Sec-GPC": "1"})
    assert gpc.json()["results"] == [{"status": "skipped", "reason": "do_not_track"}]
    consent = post(
        collector, [click("c", consent="denied"), click("c", consent="granted", event_id="consented")]
    )
    assert consent.json()["results"] == [
        {"status": "skipped", "reason": "consent_denied"},
        {"status": "accepted", "event_id": "consented"},
    ]
    assert [value["event_id"] for _, _, value in records_after(kafka_settings, collector.topic, start)] == [
        "consented"
    ]


def test_health_readiness_and_metrics(collector: RunningCollector) -> None:
    assert httpx.get(f"{collector.url}/healthz").json() == {"status": "alive"}
    assert httpx.get(f"{collector.url}/readyz").json() == {"status": "ready"}
    post(collector, [click("m", event_id="metric-1"), page_view("m", path="")])
    post(collector, [click("m")], {"Authorization": "Bearer nope"})
    metrics = httpx.get(f"{collector.url}/metrics").text
    assert 'uxstream_collector_requests_total{endpoint="http",status="200"}' in metrics
    assert 'uxstream_collector_requests_total{endpoint="http",status="401"}' in metrics
    assert 'uxstream_collector_events_total{reason="missing_field",result="rejected"}' in metrics
    assert "uxstream_collector_produce_latency_seconds_bucket" in metrics
    assert "uxstream_collector_queue_depth " in metrics
    assert "uxstream_collector_kafka_up 1.0" in metrics


# --------------------------------------------------------------------------------- limits (own runs)


def test_over_the_write_key_rate_is_429_with_retry_after(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """1 event/s, burst 20: the first 20 events empty the bucket; 10 more need 10 s of refill, so they
    are refused even when a loaded machine takes seconds between the two requests (9 s or more fails
    with that reason, never passes), and Retry-After says how long until they would fit."""
    env = {"UXSTREAM_COLLECTOR_RATE_PER_KEY": "1", "UXSTREAM_COLLECTOR_BURST_PER_KEY": "20"}
    with running_collector(kafka_settings, tmp_path, unique_topic("test.collector.rate"), env) as collector:
        emptied = time.monotonic()
        assert post(collector, [click("r", T0 + n) for n in range(20)]).status_code == 200
        start = end_offset(kafka_settings, collector.topic)
        response = post(collector, [click("r", T0 + n) for n in range(10)])
        refilled = time.monotonic() - emptied  # an upper bound of the tokens that came back (1 per s)
        assert refilled < 9, f"the two requests took {refilled:.1f} s: too slow to test the limit"
        assert (response.status_code, response.json()) == (
            429,
            {"error": "rate_limited", "detail": "write key over 1 events/s (burst 20)"},
        )
        # 10 tokens missing less what came back meanwhile, rounded up to whole seconds
        assert 10 - math.ceil(refilled) <= int(response.headers["retry-after"]) <= 10
        assert end_offset(kafka_settings, collector.topic) == start
        time.sleep(1.0)
        assert post(collector, [click("r", T0)]).status_code == 200  # a token came back


def test_over_the_client_address_rate_is_429_with_retry_after(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """The address limit holds across write keys (same margins as the write-key test above)."""
    env = {"UXSTREAM_COLLECTOR_RATE_PER_IP": "1", "UXSTREAM_COLLECTOR_BURST_PER_IP": "20"}
    with running_collector(kafka_settings, tmp_path, unique_topic("test.collector.rate"), env) as collector:
        emptied = time.monotonic()
        assert post(collector, [click("r", T0 + n) for n in range(20)]).status_code == 200
        response = post(
            collector, [click("r", T0 + n) for n in range(10)], {"Authorization": f"Bearer {OTHER_KEY}"}
        )
        refilled = time.monotonic() - emptied
        assert refilled < 9, f"the two requests took {refilled:.1f} s: too slow to test the limit"
        assert (response.status_code, response.json()) == (
            429,
            {"error": "rate_limited", "detail": "client address over 1 events/s (burst 20)"},
        )
        assert 10 - math.ceil(refilled) <= int(response.headers["retry-after"]) <= 10


def test_past_the_queue_high_water_mark_is_503_with_retry_after_and_not_ready(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """A batch waits 3 s in the producer (linger.ms): meanwhile the queue is past its mark of 2 records."""
    env = {"UXSTREAM_COLLECTOR_QUEUE_HIGH_WATER": "2", "UXSTREAM_COLLECTOR_LINGER_MS": "3000"}
    with running_collector(kafka_settings, tmp_path, unique_topic("test.collector.queue"), env) as collector:
        first: list[httpx.Response] = []
        sender = threading.Thread(
            target=lambda: first.append(post(collector, [click("q", T0 + n) for n in range(3)]))
        )
        sender.start()
        time.sleep(1.0)
        response = post(collector, [click("q2")])
        ready = httpx.get(f"{collector.url}/readyz")
        sender.join()
        assert (response.status_code, response.json()) == (
            503,
            {"error": "overloaded", "detail": "3 records waiting for Kafka, high-water mark 2"},
        )
        assert response.headers["retry-after"] == "1"
        assert (ready.status_code, ready.json()["error"]) == (503, "overloaded")
        assert first[0].status_code == 200
        assert first[0].json()["accepted"] == 3
        assert httpx.get(f"{collector.url}/readyz").status_code == 200


def test_x_forwarded_for_from_a_peer_that_is_no_trusted_proxy_is_ignored(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    with running_collector(kafka_settings, tmp_path, unique_topic("test.collector.xff")) as collector:
        response = post(collector, [click("spoof", event_id="spoof-1")], {"X-Forwarded-For": "198.51.100.9"})
        assert response.status_code == 200
        ((_, _, record),) = records_after(kafka_settings, collector.topic, 0)
    assert record["ip"] == "127.0.0.0"  # the peer's address, not the header's
