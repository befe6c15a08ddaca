"""Prometheus metrics of the collector (one registry per collector, served at /metrics)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "uxstream_collector_requests",
            "Requests (HTTP batches, WebSocket and gRPC batches) by endpoint and status code",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.events = Counter(
            "uxstream_collector_events",
            "Events by result (accepted, rejected, skipped) and reason",
            ["result", "reason"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "uxstream_collector_duplicate_events",
            "Accepted events whose event_id this collector acknowledged recently (client resends; the jobs "
            "drop them)",
            registry=self.registry,
        )
        self.sequence_gaps = Counter(
            "uxstream_collector_sequence_gaps",
            "uxstream.js events skipped in a page load's sequence numbers when a later one arrived",
            registry=self.registry,
        )
        self.sequence_filled = Counter(
            "uxstream_collector_sequence_filled",
            "uxstream.js events that arrived after a later one (filling a counted gap)",
            registry=self.registry,
        )
        self.produce_latency = Histogram(
            "uxstream_collector_produce_latency_seconds",
            "From the first record of a batch produced to the last delivery report",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "uxstream_collector_queue_depth", "Records waiting for Kafka delivery", registry=self.registry
        )
        self.kafka_up = Gauge(
            "uxstream_collector_kafka_up",
            "1 when the topic's partitions have leaders",
            registry=self.registry,
        )

    def bind(self, queue_depth: Callable[[], float], kafka_up: Callable[[], float]) -> None:
        self.queue_depth.set_function(queue_depth)
        self.kafka_up.set_function(kafka_up)

    def request(self, endpoint: str, status: int) -> None:
        self.requests.labels(endpoint, str(status)).inc()


def exported_names() -> frozenset[str]:
    """Every sample name the collector's /metrics serves (for the dashboards' checks)."""
    metrics = Metrics()
    metrics.bind(lambda: 0.0, lambda: 0.0)
    metrics.requests.labels("http", "200")
    metrics.events.labels("accepted", "")
    return frozenset(sample.name for family in metrics.registry.collect() for sample in family.samples)
