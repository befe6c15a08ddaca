"""End to end in a real headless browser (Debian's Chromium driven by Playwright): a local test page loads
the real posthog-js, the real Snowplow browser tracker and uxstream's snippet (sdk/node_modules, pinned by
sdk/package-lock.json, served by a local static server), a scripted visit produces page views, clicks, an
error, web vitals and heartbeats, all three clients send to one real collector, and ONE bounded sessionize
run reads the topic. Every test of this module asserts on that visit and that run:

- for the first seconds every request is refused as an overloaded collector refuses it (503 on the PostHog
  routes, 429 elsewhere, Retry-After), so each client must keep and resend its events;
- every event the page sent (decoded from the requests the browser made, by the collector's own decoders)
  is on the topic once or more, and nothing else is: nothing lost between the browser and Kafka;
- each client produced the kinds of event the visit implies;
- every sessionize table equals the oracle fed from the topic's records.

Set UXSTREAM_SAVE_SDK_FIXTURES=1 to write the captured request bodies to tests/sdk/fixtures/captured/
(the mapping tests then run on them too).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from jobs.common import tables
from jobs.common.contract import decode_framed
from jobs.common.enrichment import EnrichmentSettings
from jobs.common.settings import KafkaSettings, PostgresSettings
from tests.collector.running import WRITE_KEY, running_collector
from tests.support.db import assert_table_equals
from tests.support.kafka import committed_records, end_offset
from tests.support.sessionize import Run, drop, fresh_run, run_job
from tests.support.streams import unique_topic
from uxstream.collector import posthog, snowplow
from uxstream.collector.logic import BodyLimits
from uxstream.paths import ROOT
from uxstream.services.common import free_port

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.flink]

PAGE_DIR = Path(__file__).parent / "page"
CAPTURED_DIR = Path(__file__).parent / "fixtures" / "captured"
LIMITS = BodyLimits(1_048_576, 4_194_304, 100, 500)


class _Handler(SimpleHTTPRequestHandler):
    """/page/… from tests/sdk/page, /sdk/… from sdk/ (the snippet and node_modules); nothing else."""

    def translate_path(self, path: str) -> str:
        clean = urlsplit(path).path
        for prefix, folder in (("/page/", PAGE_DIR), ("/sdk/", ROOT / "sdk")):
            if clean.startswith(prefix):
                return str(folder / clean[len(prefix) :])
        return str(PAGE_DIR / "missing")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def static_site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), functools.partial(_Handler))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Sent:
    """One request the browser made to the collector."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int | None


@dataclass(frozen=True)
class Visit:
    run: Run
    sent: list[Sent]
    written: list[dict[str, Any]]


def client_of(request: Sent) -> str:
    if request.path in posthog.ROUTES or request.path.rstrip("/") + "/" in posthog.ROUTES:
        return "posthog"
    if request.path in (snowplow.POST_PATH, snowplow.PIXEL_PATH):
        return "snowplow"
    return "uxstream" if request.path == "/v1/batch" else "other"


def sent_event_ids(request: Sent) -> list[str]:
    """The event ids a request carried, decoded as the collector decodes it (None: no id sent)."""
    client = client_of(request)
    if request.method != "POST" and not (client == "snowplow" and request.method == "GET"):
        return []
    if client == "posthog":
        decoded = posthog.decode_request(
            request.body, query=request.query, content_type=request.headers.get("content-type"),
            content_encoding=request.headers.get("content-encoding"), limits=LIMITS,
        )  # fmt: skip
        assert isinstance(decoded, posthog.CaptureRequest), decoded
        return [str(event["uuid"]) for event in decoded.events]
    if client == "snowplow":
        if request.method == "GET":
            return [request.query["eid"]]
        return [str(event["eid"]) for event in json.loads(request.body)["data"]]
    if client == "uxstream":
        return [str(event["event_id"]) for event in json.loads(request.body)]
    return []


def wait_for_quiet_topic(kafka: KafkaSettings, topic: str, quiet_s: float = 3.0, limit_s: float = 60) -> None:
    """Until the topic's end offset stayed the same for `quiet_s` (beacons land after the page is gone)."""
    deadline = time.monotonic() + limit_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = end_offset(kafka, topic)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.5)


HIDE_PAGE = """() => {
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
    Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
    document.dispatchEvent(new Event("visibilitychange"));
    window.dispatchEvent(new PageTransitionEvent("pagehide", { persisted: false }));
}"""


RECORD_BEACONS = """
(() => {
    // The browser reports no body for a sendBeacon request: keep a copy of each one the page hands over.
    const send = navigator.sendBeacon.bind(navigator);
    window.uxsBeacons = [];
    navigator.sendBeacon = (url, data) => {
        window.uxsBeacons.push([String(url), data]);
        return send(url, data);
    };
})();
"""
READ_BEACONS = """async () => Promise.all(window.uxsBeacons.map(async ([url, data]) => {
    const blob = data instanceof Blob ? data : new Blob([data === undefined || data === null ? "" : data]);
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let binary = "";
    bytes.forEach((b) => { binary += String.fromCharCode(b); });
    return [url, blob.type, btoa(binary)];
}))"""


REFUSE_S = 4.0
"""For the first seconds of the visit every request to the collector is refused with the status the
collector answers when overloaded or over a rate limit (503 on the PostHog routes, 429 elsewhere, with
Retry-After: 1): the SDKs must keep their events and send them again after it."""
VISIT_S = 10


def refusal_status(path: str) -> int:
    return 503 if client_of(Sent("POST", path, {}, {}, b"", None)) == "posthog" else 429


def scripted_visit(site: str, collector_url: str) -> list[Sent]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium is not None, "chromium is not installed: run `make setup`"
    sent: list[Sent] = []
    pending: dict[Any, Sent] = {}

    def on_request(request: Any) -> None:
        if request.url.startswith(collector_url):
            parts = urlsplit(request.url)
            pending[request] = Sent(
                request.method, parts.path, dict(parse_qsl(parts.query)), dict(request.headers),
                request.post_data_buffer or b"", None,
            )  # fmt: skip

    def on_finished(request: Any, failed: bool = False) -> None:
        if request in pending:
            response = None if failed else request.response()
            entry = pending.pop(request)
            if request.resource_type == "ping":  # a beacon: its body comes from RECORD_BEACONS
                return
            sent.append(Sent(**{**entry.__dict__, "status": response.status if response else None}))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_init_script(RECORD_BEACONS)
        page = context.new_page()
        started = time.monotonic()

        ended: list[bool] = []

        def refuse_at_first(route: Any) -> None:
            request = route.request
            if ended:  # the visit's requests are all recorded: what the closing page sends is not sent
                route.abort()
                return
            if request.method == "OPTIONS" or time.monotonic() - started > REFUSE_S:
                route.continue_()
                return
            headers = {
                "Retry-After": "1", "Access-Control-Allow-Origin": site,
                "Access-Control-Allow-Credentials": "true", "Content-Type": "application/json",
            }  # fmt: skip
            status = refusal_status(urlsplit(request.url).path)
            route.fulfill(status=status, headers=headers, body='{"error": "overloaded"}')

        page.route(f"{collector_url}/**", refuse_at_first)
        page.on("request", on_request)
        page.on("requestfinished", on_finished)
        page.on("requestfailed", lambda request: on_finished(request, failed=True))
        page.goto(f"{site}/page/index.html?utm_source=newsletter&collector={collector_url}&key={WRITE_KEY}")
        page.wait_for_function("window.posthog && window.posthog.__loaded", timeout=15_000)
        page.mouse.move(50, 50)
        page.click("#buy")
        page.click("#docs")
        page.click("#boom")
        for step in range(VISIT_S):  # Snowplow pings need activity, the snippet's heartbeats a visible page
            page.mouse.move(100 + 10 * step, 100 + 10 * step)
            page.wait_for_timeout(1000)
        # Page hide while the page still lives (so that the browser's requests are still seen here): the
        # clients flush their queues with sendBeacon, posthog-js sends $pageleave, web-vitals reports.
        page.evaluate(HIDE_PAGE)
        page.wait_for_timeout(3000)
        # The visit ends here: closing the page would make posthog-js send a second $pageleave, by a
        # beacon that can no longer be read (the route's abort below does not always catch it).
        page.evaluate("() => window.posthog.set_config({ capture_pageleave: false })")
        for url, content_type, body in page.evaluate(READ_BEACONS):
            parts = urlsplit(url)
            headers = {"content-type": content_type} if content_type else {}
            query = dict(parse_qsl(parts.query))
            sent.append(Sent("POST", parts.path, query, headers, base64.b64decode(body), 200))
        ended.append(True)
        context.close()
        browser.close()
    return sent


@pytest.fixture(scope="module")
def visit(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Visit]:
    folder = tmp_path_factory.mktemp("sdk-browser")
    topic = unique_topic("test.sdk.browser")
    with static_site() as site:
        env = {
            "UXSTREAM_COLLECTOR_ALLOWED_ORIGINS": site,
            "UXSTREAM_COLLECTOR_SNOWPLOW_PING_INTERVAL_MS": "1000",
        }
        with running_collector(kafka_settings, folder, topic, env) as collector:
            sent = scripted_visit(site, collector.url)
            wait_for_quiet_topic(kafka_settings, topic)
    if os.environ.get("UXSTREAM_SAVE_SDK_FIXTURES") == "1":
        save_fixtures(sent)
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
    # The visit's user agent is the installed Chromium's (not in the corpus the oracle judges user agents
    # by, and a headless browser: a bot): this test is about the SDKs, so user-agent enrichment is off.
    run = replace(fresh_run(pg_settings, truth, topic), enrichment=EnrichmentSettings(user_agents=False))
    run_job(run, {"FLINK_LOG_DIR": str(folder / "flink-log")})
    yield Visit(run, sent, written)
    drop(pg_settings, run)


def save_fixtures(sent: list[Sent]) -> None:
    CAPTURED_DIR.mkdir(parents=True, exist_ok=True)
    for n, request in enumerate(r for r in sent if r.method in ("POST", "GET") and sent_event_ids(r)):
        entry = {
            "client": client_of(request), "method": request.method, "path": request.path,
            "query": request.query, "status": request.status,
            "content_type": request.headers.get("content-type"),
            "content_encoding": request.headers.get("content-encoding"),
            "body_base64": base64.b64encode(request.body).decode(),
        }  # fmt: skip
        (CAPTURED_DIR / f"{n:02d}-{client_of(request)}.json").write_text(json.dumps(entry, indent=1) + "\n")


def test_every_event_the_page_sent_is_on_the_topic_and_nothing_else(visit: Visit) -> None:
    sent = {event_id for request in visit.sent for event_id in sent_event_ids(request)}
    written = {record["event_id"] for record in visit.written}
    assert sent, "the page sent nothing: the test would prove nothing"
    assert written == sent


@pytest.mark.parametrize("client", ["posthog", "snowplow", "uxstream"])
def test_events_refused_at_first_were_sent_again_and_accepted(visit: Visit, client: str) -> None:
    """The refusal window (503 for posthog-js, 429 for the others) hit every client; each refused event
    came again in a request the collector accepted: nothing was lost on the client."""
    requests = [r for r in visit.sent if client_of(r) == client and sent_event_ids(r)]
    refused = [r for r in requests if r.status != 200]
    assert refused, f"{client}: no request was refused: the test would prove nothing"
    assert {r.status for r in refused} == {503 if client == "posthog" else 429}
    accepted = {event_id for r in requests if r.status == 200 for event_id in sent_event_ids(r)}
    assert {event_id for r in refused for event_id in sent_event_ids(r)} <= accepted


@pytest.mark.parametrize("client", ["posthog", "snowplow", "uxstream"])
def test_each_client_sent_the_visits_events(visit: Visit, client: str) -> None:
    ids = {event_id for r in visit.sent if client_of(r) == client for event_id in sent_event_ids(r)}
    kinds = {record["event_type"] for record in visit.written if record["event_id"] in ids}
    want = {
        "posthog": {"page_view", "click", "error", "heartbeat", "web_vital"},
        "snowplow": {"page_view", "click", "error", "heartbeat", "web_vital"},
        "uxstream": {"page_view", "click", "error", "heartbeat", "web_vital"},
    }[client]
    assert want <= kinds, f"{client} sent {sorted(kinds)}"


@pytest.mark.parametrize("table", tables.SESSIONIZE_TABLES)
def test_every_table_equals_the_oracle(visit: Visit, table: str) -> None:
    assert_table_equals(visit.run.pg, table, visit.run.expected()[table])


def test_the_oracle_has_sessions_and_kpi_rows(visit: Visit) -> None:
    expected = visit.run.expected()
    assert expected[tables.SESSIONS], "no sessions: the comparison would prove nothing"
