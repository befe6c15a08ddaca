"""CPU cost of the SDK mappings, one core (not a test; nothing asserted):
`.venv/bin/python -m tests.sdk.mapping_bench`. Prints events/s of `posthog.map_event`,
`snowplow.map_event`, `logic.prepare` on the mapped events (what every native event costs too) and of
decoding a gzip posthog-js body, over the hand-written fixtures."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from uxstream.collector import posthog, snowplow
from uxstream.collector.logic import BodyLimits, prepare

FIXTURES = Path(__file__).parent / "fixtures"
RECEIVED = 1_764_929_000_000


def rate(fn: Callable[[Any], object], events: Sequence[Any], n: int = 50_000) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(events[i % len(events)])
    return n / (time.perf_counter() - start)


def main() -> None:
    ph = json.loads((FIXTURES / "posthog_events.json").read_text("utf-8"))
    sp = json.loads((FIXTURES / "snowplow_payload.json").read_text("utf-8"))["data"]
    limits = BodyLimits(1 << 20, 4 << 20, 100, 500)
    mapped = [posthog.map_event(e, received_at=RECEIVED) for e in ph]
    ph_rate = rate(lambda e: posthog.map_event(e, received_at=RECEIVED), ph)
    sp_rate = rate(lambda e: snowplow.map_event(e, ping_interval_ms=10_000), sp)
    print(f"posthog.map_event   {ph_rate:>10,.0f} ev/s")
    print(f"snowplow.map_event  {sp_rate:>10,.0f} ev/s")
    prepared = rate(lambda e: prepare(e, project="shop", received_at=RECEIVED, client_ip=None), mapped)
    print(f"prepare (mapped)    {prepared:>10,.0f} ev/s")
    body = gzip.compress(json.dumps(ph * 50).encode())
    start = time.perf_counter()
    for _ in range(200):
        posthog.decode_request(
            body, query={}, content_type="text/plain", content_encoding=None, limits=limits
        )
    print(f"posthog gzip decode {200 * len(ph) * 50 / (time.perf_counter() - start):>10,.0f} ev/s")


if __name__ == "__main__":
    main()
