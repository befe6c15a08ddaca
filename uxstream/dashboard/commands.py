"""`uxstream dashboard` (the live dashboard server) and `uxstream report` (the static HTML report)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from jobs.common import topics

DEFAULT_PORT = 8050
TOKEN_ENV = "UXSTREAM_DASHBOARD_TOKEN"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "dashboard",
        help="serve the live dashboard (charts of the final windows, alerts, the right-now tier)",
        description="Serve the dashboard page on http://HOST:PORT/: live charts of the jobs' final windows "
        "(PostgreSQL settings UXSTREAM_PG_*, read-only sessions), updated over server-sent events, and the "
        '"right now" counters in Redis (UXSTREAM_REDIS_URL, default the local one). '
        f"Access token: {TOKEN_ENV} "
        f"or {TOKEN_ENV}_FILE. Exits with 2 when the database (or Redis) cannot be reached at start.",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument(
        "--dlq-topic",
        default=topics.DLQ,
        help=f"dead-letter topic counted in the pipeline-health chart (default {topics.DLQ}; '' = none)",
    )
    p.add_argument("--no-realtime", action="store_true", help="run without Redis (no right-now panel)")
    p.add_argument(
        "--poll", type=float, default=2.0, metavar="SECONDS", help="look for new windows every (default 2)"
    )
    p.set_defaults(handler=_cmd_dashboard)

    r = subparsers.add_parser(
        "report",
        help="write the dashboard as one static HTML file (data embedded, opens offline)",
    )
    r.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    r.add_argument("--range", default="2h", help="time range ending at the newest final window (default 2h)")
    r.add_argument("--tz", default="UTC", help="time zone of the axes (default UTC)")
    r.set_defaults(handler=_cmd_report)


def build_dashboard(no_realtime: bool, poll: float = 2.0, dlq_topic: str | None = None) -> Any:
    from jobs.common.settings import PostgresSettings, env_secret
    from uxstream.dashboard.app import Dashboard
    from uxstream.services.redis import RedisSettings

    return Dashboard(
        pg=PostgresSettings.from_env(role="reader"),
        redis=None if no_realtime else RedisSettings.from_env(),
        token=env_secret(os.environ, TOKEN_ENV),
        poll_s=poll,
        dead_letter_topic=dlq_topic or None,
    )


def check_start(dashboard: Any) -> None:
    """The start-up checks: uPlot installed, the database answers, Redis answers (UserError otherwise)."""
    from uxstream.dashboard.app import DatabaseError
    from uxstream.dashboard.page import uplot_missing
    from uxstream.errors import UserError
    from uxstream.services.redis import REDIS_URL_ENV, ping

    missing = uplot_missing()
    if missing:
        raise UserError(missing)
    try:
        dashboard.read_marker()
    except DatabaseError as exc:
        raise UserError(f"{exc} (start it with `make up`, or set UXSTREAM_PG_*)") from None
    if dashboard.redis is not None:
        ok, reason = ping(dashboard.redis)
        if not ok:
            raise UserError(
                f"{reason} (start it with `uxstream up --only redis`, set {REDIS_URL_ENV}, "
                "or pass --no-realtime)"
            )


def _cmd_dashboard(args: argparse.Namespace) -> int:
    import uvicorn

    from uxstream.dashboard.app import create_app

    dashboard = build_dashboard(args.no_realtime, args.poll, args.dlq_topic)
    check_start(dashboard)
    if args.host not in ("127.0.0.1", "localhost", "::1") and dashboard.token is None:
        print(f"warning: serving on {args.host} without an access token (set {TOKEN_ENV})", file=sys.stderr)
    print(
        f"uxstream dashboard on http://{args.host}:{args.port}/ (reading {dashboard.pg.describe()})",
        flush=True,
    )
    config = uvicorn.Config(
        create_app(dashboard),
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=3,
    )

    received: list[int] = []

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            received.append(sig)
            dashboard.stopping = True  # end the event streams first: shutdown then finds no open request
            super().handle_exit(sig, frame)

    try:
        Server(config).run()
    finally:
        dashboard.close()
    if signal.SIGINT in received:
        # uvicorn re-raises a captured SIGINT after shutting down, but not always (seen under load):
        # report Ctrl-C like every command either way (exit 130).
        raise KeyboardInterrupt
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from uxstream.dashboard.params import parse_params
    from uxstream.dashboard.report import write_report

    params = parse_params({"range": args.range, "tz": args.tz})
    dashboard = build_dashboard(no_realtime=True)
    check_start(dashboard)
    try:
        path = write_report(dashboard, params, args.out)
    finally:
        dashboard.close()
    print(f"report: {path.resolve()}")
    return 0
