"""End to end: clients → the collector's three endpoints → ux.events → the sessionize job → PostgreSQL.

One generated stream (duplicates, late events; no malformed records: those are not JSON events) is split
by user key into three disjoint user sets, each sent through one endpoint at the same time: HTTP
POST /v1/batch, the WebSocket stream, the gRPC stream, in batches of 20. One bounded sessionize run reads
the topic they fed (one partition), and every test of this module asserts on that run:

- the topic holds exactly what the clients sent, per endpoint (received_at = the collector's clock and
  Kafka timestamp, ip = the client address truncated, consent-denied events not written);
- every table of the job equals the oracle computed from the topic's records in arrival order, and the
  sessions of each endpoint's users equal the oracle's for those users.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from websockets.sync.client import connect

from jobs.common import tables
from jobs.common.contract import decode_framed
from jobs.common.settings import KafkaSettings, PostgresSettings
from tests.collector.running import WRITE_KEY, RunningCollector, running_collector
from tests.support.db import assert_table_equals
from tests.support.kafka import committed_records
from tests.support.sessionize import PSEUDONYM, Run, drop, fresh_run, run_job
from tests.support.streams import generate_truth, unique_topic
from uxstream.collector.grpc_server import collector_stub
from uxstream.collector.proto import collector_pb2 as pb

pytestmark = [pytest.mark.services, pytest.mark.flink]

GENERATOR_ARGS = (
    "--events", "1500", "--duration", "20m", "--seed", "23", "--partitions", "1",
    "--duplicate-fraction", "0.03", "--late-fraction", "0.02", "--malformed-fraction", "0",
    "--future-fraction", "0",
)  # fmt: skip
ENDPOINTS = ("http", "websocket", "grpc")
BATCH = 20
COLLECTOR_FIELDS = ("received_at", "ip")


def batches(events: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(events), BATCH):
        yield list(events[start : start + BATCH])


def send_http(collector: RunningCollector, events: Sequence[dict[str, Any]]) -> None:
    with httpx.Client(base_url=collector.url, headers={"Authorization": f"Bearer {WRITE_KEY}"}) as http:
        for batch in batches(events):
            response = http.post("/v1/batch", json=batch, timeout=30)
            assert response.status_code == 200, response.text


def send_websocket(collector: RunningCollector, events: Sequence[dict[str, Any]]) -> None:
    with connect(f"ws://127.0.0.1:{collector.port}/v1/stream?write_key={WRITE_KEY}") as ws:
        credits = json.loads(ws.recv())["credits"]
        pending = 0
        for n, batch in enumerate(batches(events)):
            if pending == credits:
                assert json.loads(ws.recv())["status"] == 200
                pending -= 1
            ws.send(json.dumps({"type": "batch", "id": n, "events": batch}))
            pending += 1
        for _ in range(pending):
            assert json.loads(ws.recv())["status"] == 200


def send_grpc(collector: RunningCollector, events: Sequence[dict[str, Any]]) -> None:
    stub = collector_stub(grpc.insecure_channel(collector.grpc_target))
    requests = (
        pb.Batch(
            batch_id=str(n), events=[pb.Event(**{k: v for k, v in e.items() if v is not None}) for e in batch]
        )
        for n, batch in enumerate(batches(events))
    )
    acks = list(stub.Stream(requests, metadata=(("authorization", f"Bearer {WRITE_KEY}"),), timeout=120))
    assert all(ack.status == 200 for ack in acks)


SENDERS: dict[str, Callable[[RunningCollector, Sequence[dict[str, Any]]], None]] = {
    "http": send_http,
    "websocket": send_websocket,
    "grpc": send_grpc,
}


@dataclass(frozen=True)
class Fed:
    run: Run
    sent: dict[str, list[dict[str, Any]]]
    """Events as each endpoint's client sent them."""
    written: list[dict[str, Any]]
    """The topic's records, decoded, in offset order."""
    timestamps: list[int]


def endpoint_of(user: str) -> str:
    return ENDPOINTS[zlib.crc32(user.encode()) % len(ENDPOINTS)]


def user_of(event: dict[str, Any]) -> str:
    return str(event.get("user_id") or event["anonymous_id"])


@pytest.fixture(scope="module")
def fed(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fed]:
    folder = tmp_path_factory.mktemp("collector-e2e")
    lines = [json.loads(line) for line in generate_truth(GENERATOR_ARGS, folder / "generated.jsonl")]
    sent: dict[str, list[dict[str, Any]]] = {name: [] for name in ENDPOINTS}
    for line in lines:
        event = {k: v for k, v in line["event"].items() if k not in COLLECTOR_FIELDS}
        sent[endpoint_of(user_of(event))].append(event)
    topic = unique_topic("test.collector.e2e")
    with running_collector(kafka_settings, folder, topic) as collector:
        senders = [threading.Thread(target=SENDERS[name], args=(collector, sent[name])) for name in ENDPOINTS]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join(300)
    records = committed_records(kafka_settings, topic)
    framed = [decode_framed(r.value) for r in records]  # (writer schema: the collector's latest, event)
    written = [event for _, event in framed]
    truth = folder / "truth.jsonl"
    truth.write_text(
        "".join(
            json.dumps({"seq": n, "schema_id": schema.id, "partition": 0,
                        "key": r.key.decode() if r.key else None, "timestamp": r.timestamp,
                        "event": value}) + "\n"
            for n, (r, (schema, value)) in enumerate(zip(records, framed, strict=True))
        ),
        encoding="utf-8",
    )  # fmt: skip
    run = fresh_run(pg_settings, truth, topic)
    run_job(run, {"FLINK_LOG_DIR": str(folder / "flink-log")})
    yield Fed(run, sent, written, [r.timestamp for r in records])
    drop(pg_settings, run)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_topic_holds_exactly_what_each_endpoint_client_sent(fed: Fed, endpoint: str) -> None:
    users = {user_of(e) for e in fed.sent[endpoint]}
    want = [e for e in fed.sent[endpoint] if e.get("consent") != "denied"]
    got = [r for r in fed.written if user_of(r) in users]
    assert want, "no events for this endpoint: the test would prove nothing"
    assert len(want) < len(fed.sent[endpoint])  # some consent-denied events were sent, and not written
    assert [{k: v for k, v in r.items() if k not in COLLECTOR_FIELDS} for r in got] == [
        {**{k: None for k in r if k not in COLLECTOR_FIELDS}, "properties": {}, **e}
        for e, r in zip(want, got, strict=True)
    ]
    assert {r["ip"] for r in got} == {"127.0.0.0"}


def test_received_at_is_the_collector_clock_and_the_kafka_timestamp(fed: Fed) -> None:
    assert [r["received_at"] for r in fed.written] == fed.timestamps
    assert min(fed.timestamps) > max(e["ts"] for events in fed.sent.values() for e in events)


@pytest.mark.parametrize("table", tables.SESSIONIZE_TABLES)
def test_every_table_equals_the_oracle(fed: Fed, table: str) -> None:
    assert_table_equals(fed.run.pg, table, fed.run.expected()[table])


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_sessions_of_each_endpoints_users_equal_the_oracle(fed: Fed, endpoint: str) -> None:
    keys = sorted({PSEUDONYM(user_of(e)) for e in fed.sent[endpoint]})
    want = [row for row in fed.run.expected()[tables.SESSIONS] if row["user_key"] in keys]
    quoted = ", ".join(f"'{key}'" for key in keys)
    assert_table_equals(fed.run.pg, tables.SESSIONS, want, where=f" WHERE user_key IN ({quoted})")


def test_the_stream_has_duplicates_and_late_events(fed: Fed) -> None:
    """The situations the oracle comparison covers are in the stream."""
    assert fed.run.truth.duplicates
    assert fed.run.expected()[tables.LATE_EVENTS]
