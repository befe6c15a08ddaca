"""The decode step on a real broker and a Flink MiniCluster: poison pills go to the DLQ, nothing else does.

One job run (`jobs.common.decode_check_job`, restarts disabled, watermark on the source) reads a
two-partition topic where valid v1 and v2 events are interleaved with a poison pill of every kind and a
few hundred corrupted (fuzzed) payloads. Then:

- the DLQ topic (read_committed) holds exactly the invalid records, each byte for byte the dead letter
  `contract.encode(contract.dead_letter(...))` makes of the same input: original bytes and key, source
  topic/partition/offset, Kafka timestamp, and the reason and detail `contract.decode` gives;
- the valid events come out unchanged: every field equal to what the Python decoder decodes;
- 1-minute tumbling windows over `event_time` count exactly the valid events, and the watermark never
  runs ahead of the valid non-future events (invalid records and future timestamps do not move it);
- the job ends FINISHED with zero restarts.
"""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import fastavro
import pytest

from jobs.common import contract
from jobs.common.settings import KafkaSettings
from jobs.common.topics import ensure_topics
from uxstream.paths import ROOT

from .support import (
    T0,
    encode_v1,
    encode_v2,
    event,
    has_int32_overflow,
    require_jar,
    without_addresses,
)

pytestmark = [pytest.mark.services, pytest.mark.flink]

JOB = "decode-test"
PARTITIONS = 2
VALID_PER_PARTITION = 150
GAP_MS = 1_000
"""Event-time spacing of the valid events of one partition (in order: none is ever late)."""
WATERMARK_DELAY_MS = 5_000
WATERMARK = f"ux_event_time(payload, {contract.DEFAULT_MAX_FUTURE_SKEW_MS}) - INTERVAL '5' SECOND"
"""The recommended watermark: valid, non-future events only (SEMANTICS.md, Time), 5 s out of order."""


@dataclass(frozen=True)
class Record:
    partition: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    kind: str


def poison_pills() -> list[tuple[str, bytes | None, str]]:
    """(kind, payload, expected reason): every kind of bad input, each at least once."""
    good = encode_v2(event(event_id="pill-base"))
    future = T0 + 80 * 365 * 86_400_000  # year ~2105: must not move the watermark
    return [
        ("tombstone", None, contract.TRUNCATED_FRAME),
        ("truncated frame", good[:3], contract.TRUNCATED_FRAME),
        (
            "random bytes",
            bytes(random.Random(1).randrange(1, 256) for _ in range(40)),  # first byte never 0x00
            contract.BAD_MAGIC_BYTE,
        ),
        ("json", b'{"event_id": "e1", "event_type": "click"}', contract.BAD_MAGIC_BYTE),
        ("wrong magic byte", b"\x01" + good[1:], contract.BAD_MAGIC_BYTE),
        ("unknown schema id", contract.header(99) + good[5:], contract.UNKNOWN_SCHEMA_ID),
        ("not an event schema", contract.header(6) + good[5:], contract.UNKNOWN_SCHEMA_ID),
        ("truncated avro", good[:-7], contract.UNDECODABLE_AVRO),
        ("trailing garbage", good + b"\x00\xff\x13", contract.UNDECODABLE_AVRO),
        ("invalid utf-8", good.replace(b"pill-base", b"pill-\xff\xfese"), contract.UNDECODABLE_AVRO),
        ("empty event_id", encode_v2(event(event_id="", ts=future)), contract.MISSING_FIELD),
        ("no user key", encode_v1(event(user_id=None, anonymous_id="")), contract.MISSING_FIELD),
        ("page_view without path", encode_v2(event(page_path=None)), contract.MISSING_FIELD),
        (
            "web_vital without vitals",
            encode_v2(event(event_type="web_vital", lcp_ms=None, inp_ms=None, cls=None)),
            contract.MISSING_FIELD,
        ),
        ("ts in seconds", encode_v2(event(ts=T0 // 1000)), contract.IMPOSSIBLE_VALUE),
        ("negative cls", encode_v1(event(cls=-0.5)), contract.IMPOSSIBLE_VALUE),
        ("NaN lcp", encode_v2(event(lcp_ms=float("nan"))), contract.IMPOSSIBLE_VALUE),
        ("unknown event type", encode_v2(event(event_type="pageview", ts=future)), contract.IMPOSSIBLE_VALUE),
        ("not an ip", encode_v2(event(ip="10.0.0.256")), contract.IMPOSSIBLE_VALUE),
    ]


def fuzzed(rng: random.Random, base: list[bytes], count: int) -> list[bytes]:
    """Invalid mutations of valid payloads (flip, overwrite, insert, delete, truncate)."""
    out: list[bytes] = []
    while len(out) < count:
        data = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(data)) if data else 0
            op = rng.choice(("flip", "set", "insert", "delete", "truncate"))
            if op == "flip" and data:
                data[at] ^= 1 << rng.randrange(8)
            elif op == "set" and data:
                data[at] = rng.choice((0x00, 0x01, 0x03, 0x80, 0xFF, 0xED))
            elif op == "insert":
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3)))
            elif op == "delete":
                del data[at : at + rng.randint(1, 3)]
            else:
                del data[at:]
        payload = bytes(data)
        result = contract.decode(payload)
        # Only the corrupt ones: a mutation that still decodes is a valid event with an arbitrary ts, which
        # would legitimately move the watermark (test_decode_parity covers those). Python's dead letter
        # cannot hold a schema id beyond 2^31 - 1, and the JVM rejects ints beyond 32 bits (the documented
        # difference): keep the fuzz inside what both sides express identically.
        if not isinstance(result, contract.Invalid) or (result.schema_id or 0) >= 2**31:
            continue
        if has_int32_overflow(payload):
            continue
        out.append(payload)
    return out


def valid_event(rng: random.Random, partition: int, i: int) -> dict[str, Any]:
    ts = T0 + i * GAP_MS + partition * 7
    kind = rng.choice(("page_view", "click", "error", "web_vital", "heartbeat", "custom"))
    return event(
        event_id=f"evt-{partition}-{i}",
        event_type=kind,
        event_name={"custom": "add_to_cart"}.get(kind, kind),
        user_id=rng.choice((None, f"usr_{rng.randrange(20)}")),
        anonymous_id=f"anon-{rng.randrange(50)}",
        ts=ts,
        received_at=ts + rng.randrange(2_000),
        page_title=rng.choice(("Pricing – Example", "Über uns", "価格", "")),
        error_type="TypeError" if kind == "error" else None,
        error_message="x is undefined" if kind == "error" else None,
        lcp_ms=rng.choice((None, 1234.5, 0.0, 2500.125)),
        cls=rng.choice((None, 0.0, 0.1, 1e-9)),
        inp_ms=None if kind != "web_vital" else 88.0,
        engagement_time_ms=rng.choice((None, 0, 15_000)),
        screen_width=rng.choice((None, 390, 2**31 - 1)),
        ip=rng.choice((None, "203.0.113.9", "2001:db8::1", "::ffff:192.0.2.1")),
        properties=rng.choice(({}, {"plan": "pro"}, {"k": "v", "ü": "✓", "": ""})),
    )


def build_stream(seed: int = 5) -> list[Record]:
    rng = random.Random(seed)
    records: list[Record] = []
    bases: list[bytes] = []
    pills = poison_pills()
    for partition in range(PARTITIONS):
        stream: list[Record] = []
        for i in range(VALID_PER_PARTITION):
            record = valid_event(rng, partition, i)
            v2 = i % 2 == 0
            payload = encode_v2(record) if v2 else encode_v1(record)
            bases.append(payload)
            key = record["user_id"] or record["anonymous_id"]
            stream.append(
                Record(partition, key.encode(), payload, record["received_at"], "v2" if v2 else "v1")
            )
        ahead = event(event_id=f"future-{partition}", ts=T0 + 3 * 3_600_000, received_at=T0 + 2_000)
        assert contract.is_future(ahead["ts"], ahead["received_at"])  # valid, but must not move the watermark
        stream.insert(2, Record(partition, b"ahead", encode_v2(ahead), ahead["received_at"], "future"))
        for n, (kind, pill, _) in enumerate(pills):  # interleaved, the far-future ones early
            at = 1 + (n * 7 + partition * 3) % (len(stream) - 1)
            stream.insert(at, Record(partition, rng.choice((None, b"pill")), pill, T0 + at * GAP_MS, kind))
        records.extend(stream)
    for payload in fuzzed(rng, bases, 240):
        partition = rng.randrange(PARTITIONS)
        same = [i for i, r in enumerate(records) if r.partition == partition]
        at = rng.choice(same[1:])
        records.insert(at, Record(partition, b"fuzz", payload, records[at].timestamp, "fuzz"))
    return records


def produce(kafka: KafkaSettings, topic: str, records: list[Record]) -> list[tuple[Record, int]]:
    """Produce in order; returns each record with its offset."""
    from confluent_kafka import Producer

    producer = Producer({**kafka.client_config(), "enable.idempotence": True, "linger.ms": 5})
    offsets: dict[int, int] = {}
    for record in records:
        producer.produce(
            topic, value=record.value, key=record.key, partition=record.partition, timestamp=record.timestamp
        )
    assert producer.flush(30) == 0
    placed: list[tuple[Record, int]] = []
    for record in records:  # idempotent producer, one partition each: offsets follow produce order
        offset = offsets.get(record.partition, 0)
        offsets[record.partition] = offset + 1
        placed.append((record, offset))
    return placed


def read_committed(kafka: KafkaSettings, topic: str, partitions: int) -> list[Any]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": f"decode-test-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    messages: list[Any] = []
    idle = 0
    while idle < 6:
        batch = consumer.consume(1000, timeout=0.5)
        if not batch:
            idle += 1
            continue
        idle = 0
        for message in batch:
            assert message.error() is None, message.error()
            messages.append(message)
    consumer.close()
    return messages


def iso_ms(text: str) -> int:
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def run_check_job(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.common.decode_check_job", "--job", JOB, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"decode check job failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout


def test_poison_pills_go_to_the_dlq_exactly_and_valid_events_pass_unchanged(
    kafka_settings: KafkaSettings,
) -> None:
    require_jar()
    suffix = uuid.uuid4().hex[:8]
    source, dlq, valid, windows = (
        f"test.decode.{name}.{suffix}" for name in ("in", "dlq", "valid", "windows")
    )
    ensure_topics(kafka_settings, {source: PARTITIONS, dlq: 1, valid: 1, windows: 1})
    placed = produce(kafka_settings, source, build_stream())
    verdicts = {(r.partition, offset): (r, contract.decode(r.value)) for r, offset in placed}
    for kind, payload, reason in poison_pills():  # the pills are what they claim to be
        verdict = contract.decode(payload)
        assert isinstance(verdict, contract.Invalid) and verdict.reason == reason, (kind, verdict)

    stdout = run_check_job(
        "--source-topic",
        source,
        "--dlq-topic",
        dlq,
        "--valid-topic",
        valid,
        "--window-topic",
        windows,
        "--watermark",
        WATERMARK,
    )
    assert "JOB FINISHED" in stdout

    # --- dead letters: exactly the invalid records, byte for byte what Python would write
    dead_letter_id = contract.load_catalog().latest("ux.events.dlq-value").id
    expected_dlq = {
        where: contract.encode(
            contract.dead_letter(
                without_addresses(verdict),
                payload=record.value,
                key=record.key,
                topic=source,
                partition=where[0],
                offset=where[1],
                timestamp_ms=record.timestamp,
                job=JOB,
            ),
            dead_letter_id,
        )
        for where, (record, verdict) in verdicts.items()
        if isinstance(verdict, contract.Invalid)
    }
    dead_letters = read_committed(kafka_settings, dlq, 1)
    entry = contract.load_catalog()[dead_letter_id]
    got_dlq: dict[tuple[int, int], bytes] = {}
    for message in dead_letters:
        letter = fastavro.schemaless_reader(io.BytesIO(message.value()[5:]), entry.parsed)
        assert isinstance(letter, dict)
        where = (int(letter["source_partition"]), int(letter["source_offset"]))
        assert where not in got_dlq, f"dead letter for {where} written twice"
        got_dlq[where] = message.value()
        original = verdicts[where][0]
        assert message.key() == original.key
        assert message.timestamp()[1] == original.timestamp
    assert set(got_dlq) == set(expected_dlq)
    for where, value in got_dlq.items():
        assert value == expected_dlq[where], (where, verdicts[where])
    reasons = Counter(v.reason for _, v in verdicts.values() if isinstance(v, contract.Invalid))
    assert set(reasons) == set(contract.REASONS), reasons  # every reason code exercised

    # --- valid events: every field as the Python decoder decodes it
    rows = [json.loads(m.value()) for m in read_committed(kafka_settings, valid, 1)]
    expected_valid = {w: (r, v) for w, (r, v) in verdicts.items() if isinstance(v, contract.DecodedEvent)}
    got_valid = {(row["kafka_partition"], row["kafka_offset"]): row for row in rows}
    assert len(got_valid) == len(rows), "a valid event was written twice"
    assert set(got_valid) == set(expected_valid)
    schema_ids: Counter[int] = Counter()
    for where, row in got_valid.items():
        record, decoded = expected_valid[where]
        assert {k: row[k] for k in decoded.event} == decoded.event, where
        assert row["schema_id"] == decoded.schema_id
        assert row["kafka_topic"] == source
        assert iso_ms(row["kafka_timestamp"]) == record.timestamp
        assert iso_ms(row["event_time"]) == decoded.ts
        schema_ids[decoded.schema_id] += 1
    assert schema_ids[1] > 0 and schema_ids[2] > 0  # a v1/v2 mix decoded completely

    # --- event time on top: the watermark follows valid events only, windows count them all
    max_valid_ts = max(
        d.ts for _, d in expected_valid.values() if not contract.is_future(d.ts, d.event["received_at"])
    )
    watermarks = [iso_ms(row["watermark_at_arrival"]) for row in rows if row["watermark_at_arrival"]]
    assert watermarks, "no watermark reached the valid events"
    assert max(watermarks) <= max_valid_ts - WATERMARK_DELAY_MS
    counts = Counter((d.ts // 60_000) * 60_000 for _, d in expected_valid.values())
    window_rows = [json.loads(m.value()) for m in read_committed(kafka_settings, windows, 1)]
    got_counts = {iso_ms(w["window_start"] + "Z"): w["events"] for w in window_rows}
    assert got_counts == dict(counts)
