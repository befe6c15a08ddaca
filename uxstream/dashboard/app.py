"""The dashboard's web server: a Starlette app over the jobs' tables (read-only sessions) and the "right now"
counters in Redis.

    GET /               the page (uplot + dashboard.js; the data comes from /api/data)
    GET /api/data       everything the charts draw for the query parameters (uxstream.dashboard.params)
    GET /api/realtime   the "right now" figures
    GET /api/uniques    unique users over the selected range (all, and each charted value of the dimension),
                        from the merged HLL sketches of the minute windows (uxstream.uniques)
    GET /api/events     server-sent events: `windows` when new final windows (or alerts) landed, so the page
                        reloads its data without a page reload; `realtime` every half second; `db-error`
                        while the database is unreachable
    GET /static/...     the page's assets, uPlot from the npm package installed by `make setup`

With an access token configured, every request needs it: `Authorization: Bearer <token>`, `?token=<token>`
(the page then keeps it in a cookie for its own requests), or that cookie; otherwise 401.
A malformed query parameter is a 400 with a message; an unreachable database a 503 whose message the page
shows (the server keeps running and recovers when the database is back).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from jobs.common.settings import KafkaSettings, PostgresSettings, Secret
from uxstream import realtime
from uxstream.dashboard import data as dashboard_data
from uxstream.dashboard.deadletters import DeadLetterCounter
from uxstream.dashboard.page import STATIC, UPLOT_DIST, render_page
from uxstream.dashboard.params import BadParameter, Params, parse_params
from uxstream.services.redis import RedisClient, RedisError, RedisSettings

TOKEN_COOKIE = "uxstream_token"


class DatabaseError(Exception):
    """PostgreSQL cannot be reached or refused a query; the message is for the page."""


@dataclass
class Dashboard:
    """The app's state: where to read, how often to look for new windows."""

    pg: PostgresSettings
    redis: RedisSettings | None = None
    token: Secret | None = None
    poll_s: float = 2.0
    realtime_s: float = 0.5
    """Right-now figures are pushed this often (read from Redis once per interval for all pages)."""
    realtime_prefix: str = realtime.DEFAULT_PREFIX
    clock: Callable[[], datetime] = dashboard_data.now_utc
    dead_letter_topic: str | None = None
    """Counted for the pipeline-health chart (the jobs' DLQ topic); None: not counted."""
    kafka: KafkaSettings | None = None
    stopping: bool = False
    """Set when the server shuts down: open event streams end within a tick (no cancelled tasks)."""
    _redis_client: RedisClient | None = field(default=None, init=False, repr=False)
    _dead_letters: DeadLetterCounter | None = field(default=None, init=False, repr=False)
    _marker: tuple[float, str | DatabaseError] | None = field(default=None, init=False, repr=False)
    _marker_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _realtime: tuple[float, dict[str, Any]] | None = field(default=None, init=False, repr=False)
    _redis_lock: anyio.Lock = field(default_factory=anyio.Lock, init=False, repr=False)

    def close(self) -> None:
        """Close the Redis connection and the dead-letter consumer (idempotent)."""
        if self._redis_client is not None:
            self._redis_client.close()
        if self._dead_letters is not None:
            self._dead_letters.close()
            self._dead_letters = None

    # ------------------------------------------------------------------------------------------ reading

    def connect(self) -> Any:
        """A read-only session (default_transaction_read_only): the dashboard never writes. Repeatable
        read: the queries of one page load see one snapshot."""
        import psycopg

        conninfo = (
            f"{self.pg.conninfo()} options='-c default_transaction_read_only=on' "
            "application_name=uxstream-dashboard"
        )
        try:
            conn = psycopg.connect(conninfo, connect_timeout=5)
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            return conn
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot connect to PostgreSQL at {self.pg.describe()}: {first_line(exc)}"
            ) from None

    def read_data(self, params: Params) -> dict[str, Any]:
        import psycopg

        with self.connect() as conn:
            try:
                result = dashboard_data.load(conn, params, self.clock(), self.dead_letters())
                result["marker"] = marker_text(dashboard_data.change_marker(conn))
            except psycopg.Error as exc:
                raise DatabaseError(
                    f"PostgreSQL at {self.pg.describe()} refused a query: {first_line(exc)}"
                ) from None
        return result

    def read_uniques(self, params: Params) -> dict[str, Any]:
        """The unique-users panel's figures alone (the range resolved as for /api/data)."""
        import psycopg

        with self.connect() as conn:
            try:
                start, end = dashboard_data.resolve_window(
                    params, dashboard_data.latest_window_end(conn), self.clock()
                )
                values = dashboard_data.top_values(conn, params, start, end)
                return dashboard_data.unique_users(conn, start, end, params.dimension, values)
            except psycopg.Error as exc:
                raise DatabaseError(
                    f"PostgreSQL at {self.pg.describe()} refused a query: {first_line(exc)}"
                ) from None

    def dead_letters(self) -> dict[str, Any] | None:
        if self.dead_letter_topic is None:
            return None
        if self._dead_letters is None:
            kafka = KafkaSettings.from_env() if self.kafka is None else self.kafka
            self._dead_letters = DeadLetterCounter(kafka, self.dead_letter_topic)
        return self._dead_letters.count()

    def read_marker(self) -> str:
        import psycopg

        with self.connect() as conn:
            try:
                return marker_text(dashboard_data.change_marker(conn))
            except psycopg.Error as exc:
                raise DatabaseError(
                    f"PostgreSQL at {self.pg.describe()} refused a query: {first_line(exc)}"
                ) from None

    def shared_marker(self) -> str:
        """The change marker, read at most once per poll interval however many pages listen."""
        with self._marker_lock:
            now = time.monotonic()
            if self._marker is None or now - self._marker[0] >= self.poll_s * 0.9:
                try:
                    value: str | DatabaseError = self.read_marker()
                except DatabaseError as exc:
                    value = exc
                self._marker = (now, value)
            value = self._marker[1]
        if isinstance(value, DatabaseError):
            raise value
        return value

    def read_realtime(self) -> dict[str, Any]:
        """The "right now" figures, or why there are none."""
        if self.redis is None:
            return {"configured": False, "error": None}
        if self._redis_client is None:
            self._redis_client = RedisClient(self.redis)
        now_ms = int(self.clock().timestamp() * 1000)
        try:
            figures = realtime.read(self._redis_client, now_ms, prefix=self.realtime_prefix)
        except RedisError as exc:
            return {"configured": True, "error": str(exc), "where": self.redis.describe()}
        return {"configured": True, "error": None, "where": self.redis.describe(), **figures.as_json()}

    async def realtime_json(self) -> dict[str, Any]:
        """The figures, read at most once per realtime interval however many pages listen."""
        async with self._redis_lock:  # one connection, one request at a time
            now = time.monotonic()
            if self._realtime is None or now - self._realtime[0] >= self.realtime_s * 0.9:
                self._realtime = (now, await anyio.to_thread.run_sync(self.read_realtime))
            return self._realtime[1]

    # ------------------------------------------------------------------------------------------- routes

    async def page(self, request: Request) -> Response:
        params = parse_params(dict(request.query_params))
        response = HTMLResponse(render_page(params=params.query(), embedded=None))
        token = request.query_params.get("token")
        if token is not None:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    async def api_data(self, request: Request) -> Response:
        params = parse_params(dict(request.query_params))
        try:
            result = await anyio.to_thread.run_sync(self.read_data, params)
        except DatabaseError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        return JSONResponse(result)

    async def api_uniques(self, request: Request) -> Response:
        params = parse_params(dict(request.query_params))
        try:
            result = await anyio.to_thread.run_sync(self.read_uniques, params)
        except DatabaseError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        return JSONResponse(result)

    async def api_realtime(self, request: Request) -> Response:
        parse_params(dict(request.query_params))
        result = await self.realtime_json()
        return JSONResponse(result, status_code=503 if result.get("error") else 200)

    async def api_events(self, request: Request) -> Response:
        parse_params(dict(request.query_params))
        return StreamingResponse(
            self.event_stream(request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def event_stream(self, request: Request) -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        next_poll = 0.0
        while not self.stopping and not await request.is_disconnected():
            now = time.monotonic()
            if now >= next_poll:
                next_poll = now + self.poll_s
                try:
                    marker = await anyio.to_thread.run_sync(self.shared_marker)
                    yield sse("windows", {"marker": marker})
                except DatabaseError as exc:
                    yield sse("db-error", {"error": str(exc)})
            if self.redis is not None:
                yield sse("realtime", await self.realtime_json())
            await anyio.sleep(min(self.poll_s, self.realtime_s))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def marker_text(marker: tuple[Any, ...]) -> str:
    return hashlib.sha256(repr(marker).encode()).hexdigest()[:16]


def sse(event: str, payload: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n"


def token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE)


class TokenMiddleware(BaseHTTPMiddleware):
    """401 unless the request carries the configured token (compared in constant time)."""

    def __init__(self, app: Any, token: Secret | None) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if self.token is not None:
            given = token_of(request)
            if given is None or not hmac.compare_digest(given.encode(), self.token.reveal().encode()):
                return PlainTextResponse(
                    "401 Unauthorized: this dashboard needs its access token "
                    "(open it with ?token=…, or send Authorization: Bearer …)",
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)


async def bad_parameter(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(f"400 Bad Request: {exc}", status_code=400)


def create_app(dashboard: Dashboard, uplot_dist: Path = UPLOT_DIST) -> Starlette:
    routes = [
        Route("/", dashboard.page),
        Route("/api/data", dashboard.api_data),
        Route("/api/realtime", dashboard.api_realtime),
        Route("/api/uniques", dashboard.api_uniques),
        Route("/api/events", dashboard.api_events),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Mount("/static/app", app=StaticFiles(directory=STATIC), name="app"),
        Mount("/static/uplot", app=StaticFiles(directory=uplot_dist), name="uplot"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(TokenMiddleware, token=dashboard.token)],
        exception_handlers={BadParameter: bad_parameter},
    )
