"""Kafka stopped under a collector (a broker of the test's own, SIGKILLed and restarted): the collector is
not ready and acknowledges nothing that is not on Kafka; a client retrying on 503 gets every batch
acknowledged in the end, and after Kafka returns every acknowledged event is on the topic, exactly once
after dedup by event_id."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from jobs.common.contract import decode_framed
from jobs.common.topics import ensure_topics
from tests.collector.builders import T0, click
from tests.collector.running import WRITE_KEY, running_collector
from tests.support.kafka import committed_records
from tests.support.private import private_kafka
from tests.support.streams import unique_topic

pytestmark = pytest.mark.services

BATCHES = 60
EVENTS_PER_BATCH = 10


def test_kafka_outage_not_ready_nothing_acknowledged_that_is_not_on_kafka(tmp_path: Path) -> None:
    topic = unique_topic("test.collector.outage")
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    acknowledged: list[str] = []
    with private_kafka(tmp_path) as broker:
        ensure_topics(broker.settings, {topic: 1})
        env = {"UXSTREAM_COLLECTOR_DELIVERY_TIMEOUT_MS": "3000"}
        with running_collector(broker.settings, tmp_path, topic, env) as collector:

            def client() -> None:
                """Sends the batches in order, each until acknowledged (after Retry-After, shortened)."""
                with httpx.Client(
                    base_url=collector.url, headers={"Authorization": f"Bearer {WRITE_KEY}"}
                ) as http:
                    for n in range(BATCHES):
                        batch = [
                            click(f"user-{n % 7}", T0 + n * 100 + i, event_id=f"o-{n}-{i}") for i in range(10)
                        ]
                        while True:
                            try:
                                response = http.post("/v1/batch", json=batch, timeout=30)
                            except httpx.TransportError:
                                statuses[0] += 1
                                continue
                            statuses[response.status_code] += 1
                            if response.status_code == 200:
                                acknowledged.extend(r["event_id"] for r in response.json()["results"])
                                break
                            assert response.status_code == 503, response.text
                            assert response.headers["retry-after"] in ("1", "5")
                            errors[response.json()["error"]] += 1
                            time.sleep(0.2)
                        time.sleep(0.05)

            sender = threading.Thread(target=client)
            sender.start()
            time.sleep(1.0)
            acknowledged_before = len(acknowledged)
            broker.kill()
            collector.wait_ready(ready=False, timeout=15)
            readiness = httpx.get(f"{collector.url}/readyz").json()
            time.sleep(3.0)
            acknowledged_during = len(acknowledged)
            broker.start()
            collector.wait_ready(timeout=60)
            sender.join(120)
            assert not sender.is_alive()
        on_kafka = Counter(
            decode_framed(r.value)[1]["event_id"] for r in committed_records(broker.settings, topic)
        )
    print(f"\nstatuses {dict(statuses)}, errors {dict(errors)}, acknowledged {len(acknowledged)}, "
          f"records {sum(on_kafka.values())}, distinct {len(on_kafka)}")  # fmt: skip
    assert readiness == {
        "status": "not ready",
        "error": "kafka_unavailable",
        "detail": "Kafka is unreachable",
    }
    assert acknowledged_before > 0
    assert statuses[503] > 0  # the outage was seen by the client
    assert acknowledged_during - acknowledged_before <= 2 * EVENTS_PER_BATCH  # batches in flight at the kill
    all_ids = [f"o-{n}-{i}" for n in range(BATCHES) for i in range(EVENTS_PER_BATCH)]
    assert sorted(acknowledged) == sorted(all_ids)  # each event acknowledged once, in the end
    assert set(on_kafka) == set(all_ids)  # every acknowledged event is on Kafka: exactly once after dedup
