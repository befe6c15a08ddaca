"""The streaming endpoints against a real collector and Kafka: WebSocket /v1/stream (JSON) and gRPC
(SendBatch, Stream) with the same batch/ack/credit protocol; a client that stops reading acks is slowed by
the credits and the collector's memory stays bounded."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from jobs.common.contract import decode_framed
from jobs.common.settings import KafkaSettings
from tests.collector.builders import T0, click, page_view
from tests.collector.running import ORIGIN, WRITE_KEY, RunningCollector, running_collector
from tests.support.kafka import committed_records, end_offset
from tests.support.streams import unique_topic
from uxstream.collector.grpc_server import collector_stub
from uxstream.collector.proto import collector_pb2 as pb

pytestmark = pytest.mark.services

METADATA = (("authorization", f"Bearer {WRITE_KEY}"),)
CREDITS = 4


@pytest.fixture(scope="module")
def collector(
    kafka_settings: KafkaSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningCollector]:
    folder = tmp_path_factory.mktemp("collector-streams")
    env = {"UXSTREAM_COLLECTOR_STREAM_CREDITS": str(CREDITS)}
    with running_collector(kafka_settings, folder, unique_topic("test.collector.streams"), env) as running:
        yield running


def ws_url(collector: RunningCollector, key: str = WRITE_KEY) -> str:
    return f"ws://127.0.0.1:{collector.port}/v1/stream?write_key={key}"


def event_ids_after(kafka: KafkaSettings, topic: str, offset: int) -> list[str]:
    return [
        decode_framed(r.value)[1]["event_id"] for r in committed_records(kafka, topic) if r.offset >= offset
    ]


def stub(collector: RunningCollector) -> Any:
    return collector_stub(grpc.insecure_channel(collector.grpc_target))


# ------------------------------------------------------------------------------------------ WebSocket


def test_websocket_hello_then_one_ack_per_batch_once_on_kafka(
    kafka_settings: KafkaSettings, collector: RunningCollector
) -> None:
    start = end_offset(kafka_settings, collector.topic)
    with connect(ws_url(collector), origin=Origin(ORIGIN)) as ws:
        assert json.loads(ws.recv()) == {"type": "hello", "credits": CREDITS}
        ws.send(
            json.dumps(
                {
                    "type": "batch",
                    "id": "b1",
                    "events": [click("ws-1", event_id="ws-a"), page_view("ws-1", path="")],
                }
            )
        )
        ws.send(json.dumps({"type": "batch", "id": "b2", "events": [click("ws-1", T0 + 1, event_id="ws-b")]}))
        acks = {ack["id"]: ack for ack in (json.loads(ws.recv()) for _ in range(2))}
        ws.send("{")
        malformed = json.loads(ws.recv())
    assert acks == {
        "b1": {
            "type": "ack", "id": "b1", "status": 200, "accepted": 1, "rejected": 1, "skipped": 0,
            "credits": 1,
            "results": [
                {"status": "accepted", "event_id": "ws-a"},
                {"status": "rejected", "reason": "missing_field",
                 "detail": "field 'page_path' is missing or empty (required for page_view)"},
            ],
        },
        "b2": {
            "type": "ack", "id": "b2", "status": 200, "accepted": 1, "rejected": 0, "skipped": 0,
            "credits": 1,
            "results": [{"status": "accepted", "event_id": "ws-b"}],
        },
    }  # fmt: skip
    assert malformed == {
        "type": "ack", "id": None, "status": 400, "error": "malformed_json",
        "detail": "the message is not valid JSON (Input data was truncated)", "credits": 1,
    }  # fmt: skip
    assert sorted(event_ids_after(kafka_settings, collector.topic, start)) == ["ws-a", "ws-b"]


@pytest.mark.parametrize(
    ("key", "origin", "status", "body"),
    [
        ("wk_unknown", ORIGIN, 401, {"error": "unauthorized", "detail": "unknown or revoked write key"}),
        (WRITE_KEY, "https://evil.example", 403,
         {"error": "origin_not_allowed", "detail": "origin 'https://evil.example' is not allowed"}),
    ],
    ids=["bad-key", "bad-origin"],
)  # fmt: skip
def test_websocket_handshake_refused_for_a_bad_key_or_origin(
    collector: RunningCollector, key: str, origin: str, status: int, body: dict[str, str]
) -> None:
    with pytest.raises(InvalidStatus) as refused, connect(ws_url(collector, key), origin=Origin(origin)):
        pass
    assert refused.value.response.status_code == status
    assert json.loads(refused.value.response.body or b"") == body


# ----------------------------------------------------------------------------------------------- gRPC


def test_grpc_send_batch_answers_per_event(
    kafka_settings: KafkaSettings, collector: RunningCollector
) -> None:
    start = end_offset(kafka_settings, collector.topic)
    batch = pb.Batch(
        batch_id="g1",
        events=[
            pb.Event(event_type="click", event_name="click", anonymous_id="grpc-1", ts=T0, event_id="g-a",
                     properties={"button": "buy"}),
            pb.Event(event_type="click", event_name="click", anonymous_id="grpc-1", ts=946_684_799_999),
        ],
    )  # fmt: skip
    ack = stub(collector).SendBatch(batch, metadata=METADATA, timeout=30)
    assert ack == pb.Ack(
        batch_id="g1", status=200, credits=1, accepted=1, rejected=1,
        results=[
            pb.EventResult(status=pb.ACCEPTED, event_id="g-a"),
            pb.EventResult(status=pb.REJECTED, reason="impossible_value",
                           detail="field 'ts' is 1999-12-31T23:59:59.999Z, before 2000-01-01"),
        ],
    )  # fmt: skip
    ((record),) = [
        decode_framed(r.value)[1]
        for r in committed_records(kafka_settings, collector.topic)
        if r.offset >= start
    ]
    assert (record["event_id"], record["properties"], record["ip"]) == ("g-a", {"button": "buy"}, "127.0.0.0")


def test_grpc_refuses_a_bad_key_with_unauthenticated(
    kafka_settings: KafkaSettings, collector: RunningCollector
) -> None:
    start = end_offset(kafka_settings, collector.topic)
    with pytest.raises(grpc.RpcError) as refused:
        stub(collector).SendBatch(
            pb.Batch(events=[pb.Event(event_type="click")]), metadata=(("authorization", "Bearer x"),)
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == "unauthorized: unknown or revoked write key"
    with pytest.raises(grpc.RpcError) as refused:
        list(stub(collector).Stream(iter([pb.Batch()]), metadata=(("authorization", "Bearer x"),)))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert end_offset(kafka_settings, collector.topic) == start


def batches(prefix: str, size: int = 20) -> Iterator[Any]:
    for n in itertools.count():
        yield pb.Batch(
            batch_id=f"{prefix}-{n}",
            events=[
                pb.Event(event_type="click", event_name="click", anonymous_id=f"{prefix}-user", ts=T0 + i,
                         event_id=f"{prefix}-{n}-{i}")
                for i in range(size)
            ],
        )  # fmt: skip


def test_grpc_stream_hello_then_one_ack_per_batch(
    kafka_settings: KafkaSettings, collector: RunningCollector
) -> None:
    start = end_offset(kafka_settings, collector.topic)
    replies = list(
        stub(collector).Stream(itertools.islice(batches("s", 3), 10), metadata=METADATA, timeout=60)
    )
    assert replies[0] == pb.Ack(status=200, credits=CREDITS)
    assert sorted(a.batch_id for a in replies[1:]) == [f"s-{n}" for n in range(10)]
    assert all((a.status, a.accepted, a.credits) == (200, 3, 1) for a in replies[1:])
    assert sorted(event_ids_after(kafka_settings, collector.topic, start)) == sorted(
        f"s-{n}-{i}" for n in range(10) for i in range(3)
    )


def test_a_grpc_client_that_stops_reading_acks_is_slowed_and_memory_stays_bounded(
    kafka_settings: KafkaSettings, collector: RunningCollector
) -> None:
    """The client offers batches of 20 forever and never reads an ack. The collector reads no batch beyond
    its credits of unacknowledged ones; once the acks fill the client's receive window, the collector's
    writes wait, it reads no more batches, and the client's sends block. Measured: batches taken from the
    client after 4 s and 6 s, the collector's resident memory, against a client that reads its acks.

    The channel turns off gRPC's BDP probing: with it, grpc-core grows the receive window on its own and
    buffers acks in the client's memory for an application that does not read them (the collector's
    memory stays flat either way; the client's does not)."""
    rss_before = collector.rss_kib()
    pulled = itertools.count()

    def offered(prefix: str) -> Iterator[Any]:
        for batch in batches(prefix):
            next(pulled)
            yield batch

    channel = grpc.insecure_channel(collector.grpc_target, options=[("grpc.http2.bdp_probe", 0)])
    call = collector_stub(channel).Stream(offered("slow"), metadata=METADATA)  # acks never read
    time.sleep(4.0)
    stalled = next(pulled)
    time.sleep(2.0)
    stalled_later = next(pulled) - 1
    rss_after = collector.rss_kib()
    call.cancel()

    reading = itertools.count()

    def reader() -> None:
        for _ in stub(collector).Stream(
            itertools.islice(batches("fast"), 600), metadata=METADATA, timeout=60
        ):
            next(reading)

    started = time.monotonic()
    thread = threading.Thread(target=reader)
    thread.start()
    thread.join(60)
    fast_seconds = time.monotonic() - started
    print(
        f"\nslow client: {stalled} batches taken in 4 s, {stalled_later} in 6 s; "
        f"RSS {rss_before} → {rss_after} KiB; a reading client: 600 batches in {fast_seconds:.1f} s"
    )
    assert stalled_later - stalled <= 5, "the collector kept reading from a client that reads no acks"
    assert stalled < 1_000  # credits + what HTTP/2's fixed windows hold (measured: 266 batches of 20)
    assert next(reading) == 601  # hello + 600 acks
    assert rss_after - rss_before < 30_000
