"""The SDK protocol endpoints (PostHog capture, Snowplow tracker) on the collector's HTTP app.

Each request is decoded and mapped by the pure modules (`posthog`, `snowplow`), then the mapped events go
through `Collector.ingest` like a native batch: same admission, validation, Kafka acknowledgement.
Status codes follow what each SDK retries (issue 19): posthog-js retries 5xx but not 429, so every
refusal the client should retry (rate limit, overload, Kafka trouble) is 503 + Retry-After on the PostHog
routes; the Snowplow tracker retries every non-2xx but 400/401/403/410/422, so it gets 429 for a rate
limit and 503 for overload/Kafka trouble, with Retry-After. An event the mapping cannot place is counted
rejected (metric `uxstream_collector_events{result="rejected"}` with its reason) and not retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from uxstream.collector import posthog, snowplow
from uxstream.collector.http import HttpEndpoints, credential, do_not_track, json_response
from uxstream.collector.logic import Refusal, Rejected
from uxstream.collector.sdk_common import UNKNOWN_PROJECT_TOKEN
from uxstream.collector.service import Outcome, Principal

SDK_ALLOW_HEADERS: Final = "content-type, content-encoding, x-write-key, authorization"
Mapped = dict[str, Any] | Rejected


class SdkEndpoints:
    def __init__(self, http: HttpEndpoints) -> None:
        self.http = http
        self.collector = http.collector
        self.settings = http.settings

    # ------------------------------------------------------------------------------------ shared

    def _cors(self, request: Request) -> dict[str, str] | Refusal:
        headers = self.http.cors(request)
        if isinstance(headers, dict) and headers:
            headers["Access-Control-Allow-Credentials"] = "true"  # the Snowplow tracker sends cookies
        return headers

    def _preflight(self, headers: dict[str, str], methods: str) -> Response:
        headers.update({
            "Access-Control-Allow-Methods": methods,
            "Access-Control-Allow-Headers": SDK_ALLOW_HEADERS,
            "Access-Control-Max-Age": "600",
        })  # fmt: skip
        return Response(status_code=204, headers=headers)

    async def _ingest(
        self, mapped: Sequence[Mapped], principal: Principal, request: Request
    ) -> Outcome | Refusal:
        """The mapped events through `Collector.ingest`; the mapping's rejections merged in, in order."""
        placed = [event for event in mapped if not isinstance(event, Rejected)]
        outcome = await self.collector.ingest(
            placed, principal, self.http.client_ip(request), do_not_track(request)
        )
        if isinstance(outcome, Refusal):
            return outcome
        results = iter(outcome.results)
        merged: list[dict[str, str]] = []
        for event in mapped:
            if isinstance(event, Rejected):
                self.http.metrics.events.labels("rejected", event.reason).inc()
                merged.append({"status": "rejected", "reason": event.reason, "detail": event.detail})
            else:
                merged.append(next(results))
        rejected = len(mapped) - len(placed)
        return Outcome(merged, outcome.accepted, outcome.rejected + rejected, outcome.skipped)

    def _refused(self, refusal: Refusal, headers: dict[str, str], endpoint: str) -> Response:
        if refusal.retry_after is not None:
            headers["Retry-After"] = str(refusal.retry_after)
        self.http.metrics.request(endpoint, refusal.status)
        return json_response(refusal.status, refusal.body(), headers)

    # ----------------------------------------------------------------------------------- PostHog

    async def posthog_capture(self, request: Request) -> Response:
        headers = self._cors(request)
        if isinstance(headers, Refusal):
            return self._refused(headers, {}, "posthog")
        if request.method == "OPTIONS":
            return self._preflight(headers, "POST")
        raw = await self.http.read_limited(request)
        if isinstance(raw, Refusal):
            return self._refused(raw, headers, "posthog")
        decoded = posthog.decode_request(
            raw,
            query=request.query_params,
            content_type=request.headers.get("content-type"),
            content_encoding=request.headers.get("content-encoding"),
            limits=self.settings.body,
        )
        if isinstance(decoded, Refusal):
            return self._refused(decoded, headers, "posthog")
        principal = self.collector.authenticate(credential(request) or decoded.token)
        if isinstance(principal, Refusal):
            return self._refused(principal, headers, "posthog")
        received_at = int(self.collector.now() * 1000)
        mapped: list[Mapped] = []
        for event in decoded.events:
            token = posthog.event_token(event)
            if token is not None and decoded.token is not None and token != decoded.token:
                detail = "the event names another project token than its request"
                mapped.append(Rejected(UNKNOWN_PROJECT_TOKEN, detail))
            else:
                mapped.append(posthog.map_event(event, received_at=received_at))
        outcome = await self._ingest(mapped, principal, request)
        if isinstance(outcome, Refusal):
            if outcome.status == 429:  # posthog-js drops a 429: make it a retried 503
                outcome = Refusal(503, outcome.error, outcome.detail, outcome.retry_after or 1)
            return self._refused(outcome, headers, "posthog")
        self.http.metrics.request("posthog", 200)
        return json_response(200, {"status": 1, **outcome.body()}, headers)

    # ---------------------------------------------------------------------------------- Snowplow

    async def snowplow_post(self, request: Request) -> Response:
        headers = self._cors(request)
        if isinstance(headers, Refusal):
            return self._refused(headers, {}, "snowplow")
        if request.method == "OPTIONS":
            return self._preflight(headers, "POST")
        raw = await self.http.read_limited(request)
        if isinstance(raw, Refusal):
            return self._refused(raw, headers, "snowplow")
        events = snowplow.decode_post(raw, request.headers.get("content-encoding"), self.settings.body)
        if isinstance(events, Refusal):
            return self._refused(events, headers, "snowplow")
        return await self._snowplow(request, events, headers, pixel=False)

    async def snowplow_pixel(self, request: Request) -> Response:
        headers = self._cors(request)
        if isinstance(headers, Refusal):
            return self._refused(headers, {}, "snowplow")
        event = dict(request.query_params)
        return await self._snowplow(request, [event], headers, pixel=True)

    async def _snowplow(
        self, request: Request, events: list[Any], headers: dict[str, str], *, pixel: bool
    ) -> Response:
        principal = self.collector.authenticate(credential(request) or snowplow.app_id(events))
        if isinstance(principal, Refusal):
            return self._refused(principal, headers, "snowplow")
        interval = self.settings.snowplow_ping_interval_ms
        mapped = [snowplow.map_event(event, ping_interval_ms=interval) for event in events]
        outcome = await self._ingest(mapped, principal, request)
        if isinstance(outcome, Refusal):
            return self._refused(outcome, headers, "snowplow")
        self.http.metrics.request("snowplow", 200)
        if pixel:
            return Response(snowplow.PIXEL, 200, headers=headers, media_type="image/gif")
        return json_response(200, outcome.body(), headers)


def sdk_routes(http: HttpEndpoints) -> list[Any]:
    from starlette.routing import Route

    endpoints = SdkEndpoints(http)
    routes: list[Any] = []
    for path in posthog.ROUTES:
        for variant in (path, path.rstrip("/")):
            routes.append(Route(variant, endpoints.posthog_capture, methods=["POST", "OPTIONS"]))
    routes.append(Route(snowplow.POST_PATH, endpoints.snowplow_post, methods=["POST", "OPTIONS"]))
    routes.append(Route(snowplow.PIXEL_PATH, endpoints.snowplow_pixel, methods=["GET"]))
    return routes
