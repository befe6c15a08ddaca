"""The collector's HTTP endpoints (Starlette): POST /v1/batch, WebSocket /v1/stream, /healthz, /readyz,
/metrics. Request flow: origin (403) → write key (401) → body size, gzip caps (413) → JSON (400, 413) →
`Collector.ingest` (429/503 with Retry-After, or 200 with a result per event)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping
from typing import Any, Final

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from uxstream.collector.logic import (
    Refusal,
    body_too_large,
    origin_allowed,
    parse_batch,
    read_body,
)
from uxstream.collector.service import Collector, Outcome, Principal

_ENCODE: Final = msgspec.json.Encoder().encode
CORS_ALLOW_HEADERS: Final = "authorization, content-type, content-encoding, x-write-key"
WRITE_KEY_HEADER: Final = "x-write-key"


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(_ENCODE(body), status, headers=dict(headers or {}), media_type="application/json")


def refusal_response(refusal: Refusal, headers: dict[str, str]) -> Response:
    if refusal.retry_after is not None:
        headers["Retry-After"] = str(refusal.retry_after)
    return json_response(refusal.status, refusal.body(), headers)


def credential(conn: HTTPConnection) -> str | None:
    """Authorization: Bearer <key or JWT>, else X-Write-Key, else ?write_key= (beacons, WebSockets)."""
    auth = conn.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None
    return conn.headers.get(WRITE_KEY_HEADER) or conn.query_params.get("write_key")


def do_not_track(conn: HTTPConnection) -> bool:
    return conn.headers.get("dnt") == "1" or conn.headers.get("sec-gpc") == "1"


class HttpEndpoints:
    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.settings = collector.settings
        self.metrics = collector.metrics
        self._proxies = tuple(ipaddress.ip_network(p, strict=False) for p in self.settings.trusted_proxies)

    # ---------------------------------------------------------------------------------- helpers

    def client_ip(self, conn: HTTPConnection) -> str | None:
        """The peer address; behind a trusted proxy the right-most X-Forwarded-For address it did not add."""
        peer = conn.client.host if conn.client else None
        if peer is None or not self._proxies or not self._trusted(peer):
            return peer
        forwarded = [a.strip() for a in conn.headers.get("x-forwarded-for", "").split(",") if a.strip()]
        for address in reversed(forwarded):
            if not self._trusted(address):
                return address
        return forwarded[0] if forwarded else peer

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._proxies)

    def cors(self, conn: HTTPConnection) -> dict[str, str] | Refusal:
        origin = conn.headers.get("origin")
        if origin is None:
            return {}
        if not origin_allowed(origin, self.settings.allowed_origins):
            return Refusal(403, "origin_not_allowed", f"origin {origin!r} is not allowed")
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    async def read_limited(self, request: Request) -> bytes | Refusal:
        limits = self.settings.body
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
            return body_too_large(limits, int(declared))
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_body_bytes:
                return body_too_large(limits, size)
            chunks.append(chunk)
        return b"".join(chunks)

    # -------------------------------------------------------------------------------- endpoints

    async def batch(self, request: Request) -> Response:
        response = await self._batch(request)
        self.metrics.request("http", response.status_code)
        return response

    async def _batch(self, request: Request) -> Response:
        headers = self.cors(request)
        if isinstance(headers, Refusal):
            return refusal_response(headers, {})
        if request.method == "OPTIONS":
            headers.update({
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
                "Access-Control-Max-Age": "600",
            })  # fmt: skip
            return Response(status_code=204, headers=headers)
        principal = self.collector.authenticate(credential(request))
        if isinstance(principal, Refusal):
            return refusal_response(principal, headers)
        raw = await self.read_limited(request)
        if isinstance(raw, Refusal):
            return refusal_response(raw, headers)
        body = read_body(raw, request.headers.get("content-encoding"), self.settings.body)
        if isinstance(body, Refusal):
            return refusal_response(body, headers)
        events = parse_batch(body, self.settings.body)
        if isinstance(events, Refusal):
            return refusal_response(events, headers)
        outcome = await self.collector.ingest(
            events, principal, self.client_ip(request), do_not_track(request)
        )
        if isinstance(outcome, Refusal):
            return refusal_response(outcome, headers)
        return json_response(200, outcome.body(), headers)

    async def healthz(self, request: Request) -> Response:
        """Alive unless the producer failed for good (a fatal librdkafka error): then restart me."""
        if self.collector.sink.fatal is not None:
            return json_response(503, {"status": "failed", "detail": "the Kafka producer failed"})
        return json_response(200, {"status": "alive"})

    async def readyz(self, request: Request) -> Response:
        not_ready = self.collector.readiness()
        if not_ready is not None:
            return json_response(503, {"status": "not ready", **not_ready.body()})
        return json_response(200, {"status": "ready"})

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -------------------------------------------------------------------------------- WebSocket

    async def stream(self, websocket: WebSocket) -> None:
        """The batch/ack/credit protocol in JSON (README, "Collector"): after `hello` (the credits), the
        client sends `{"type": "batch", "id": …, "events": […]}` while it has credits; each batch is
        answered by one `ack` with the batch's status and results, returning one credit. The server reads
        no further batch while `credits` are unacknowledged, so a client that stops reading acks stops."""
        headers = self.cors(websocket)
        principal = (
            None if isinstance(headers, Refusal) else self.collector.authenticate(credential(websocket))
        )
        refused = headers if isinstance(headers, Refusal) else principal
        if isinstance(refused, Refusal):
            self.metrics.request("websocket", refused.status)
            await websocket.send_denial_response(refusal_response(refused, {}))
            return
        assert isinstance(principal, Principal)
        await websocket.accept()
        credits = self.settings.stream_credits
        await websocket.send_bytes(_ENCODE({"type": "hello", "credits": credits}))
        window = asyncio.Semaphore(credits)
        client_ip = self.client_ip(websocket)
        dnt = do_not_track(websocket)
        tasks: set[asyncio.Task[None]] = set()
        send_lock = asyncio.Lock()

        async def answer(message: bytes | str) -> None:
            try:
                ack = await self._stream_batch(message, principal, client_ip, dnt)
                async with send_lock:
                    await websocket.send_bytes(_ENCODE(ack))
            finally:
                window.release()

        try:
            while True:
                await window.acquire()
                received = await websocket.receive()
                if received["type"] == "websocket.disconnect":
                    break
                message = received.get("bytes") or received.get("text") or b""
                task = asyncio.create_task(answer(message))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except WebSocketDisconnect:
            pass
        finally:
            for task in list(tasks):
                task.cancel()

    async def _stream_batch(
        self, message: bytes | str, principal: Principal, client_ip: str | None, dnt: bool
    ) -> dict[str, Any]:
        data = message.encode() if isinstance(message, str) else message
        batch_id: Any = None
        try:
            frame = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            refusal = Refusal(400, "malformed_json", f"the message is not valid JSON ({exc})")
            return self._stream_ack(batch_id, refusal)
        if isinstance(frame, dict):
            batch_id = frame.get("id")
        if (
            not isinstance(frame, dict)
            or frame.get("type") != "batch"
            or not isinstance(frame.get("events"), list)
        ):
            refusal = Refusal(400, "not_a_batch", 'expected {"type": "batch", "id": …, "events": [...]}')
            return self._stream_ack(batch_id, refusal)
        events = frame["events"]
        if len(events) > self.settings.body.max_batch_events:
            detail = f"{len(events)} events in one batch, limit {self.settings.body.max_batch_events}"
            return self._stream_ack(batch_id, Refusal(413, "batch_too_large", detail))
        outcome = await self.collector.ingest(events, principal, client_ip, dnt)
        return self._stream_ack(batch_id, outcome)

    def _stream_ack(self, batch_id: Any, outcome: Outcome | Refusal) -> dict[str, Any]:
        if isinstance(outcome, Refusal):
            self.metrics.request("websocket", outcome.status)
            ack: dict[str, Any] = {"type": "ack", "id": batch_id, "status": outcome.status, **outcome.body()}
            if outcome.retry_after is not None:
                ack["retry_after"] = outcome.retry_after
        else:
            self.metrics.request("websocket", 200)
            ack = {"type": "ack", "id": batch_id, "status": 200, **outcome.body()}
        ack["credits"] = 1
        return ack


def create_app(collector: Collector) -> Starlette:
    endpoints = HttpEndpoints(collector)
    routes: list[Any] = [
        Route("/v1/batch", endpoints.batch, methods=["POST", "OPTIONS"]),
        WebSocketRoute("/v1/stream", endpoints.stream),
        Route("/healthz", endpoints.healthz, methods=["GET"]),
        Route("/readyz", endpoints.readyz, methods=["GET"]),
    ]
    from uxstream.collector.sdk_http import sdk_routes  # it imports this module's helpers

    routes += sdk_routes(endpoints)
    if collector.settings.metrics:
        routes.append(Route("/metrics", endpoints.metrics_endpoint, methods=["GET"]))
    return Starlette(routes=routes)
