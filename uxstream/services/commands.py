"""`uxstream up | down | status [--only kafka|postgres|redis]`: the local services from the command line."""

from __future__ import annotations

import argparse
from typing import Any

SERVICES = ("kafka", "postgres", "redis")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    up = subparsers.add_parser(
        "up",
        help="start the local Kafka broker, PostgreSQL and Redis (idempotent)",
        description="Start the local services on 127.0.0.1 unless they already run. Services pointed "
        "elsewhere through the environment (UXSTREAM_KAFKA_BOOTSTRAP_SERVERS, UXSTREAM_PG_HOST) are only "
        "checked, and so is a Redis named by UXSTREAM_REDIS_URL.",
    )
    _only(up)
    up.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="per service (default 60)")
    up.set_defaults(handler=_up)

    down = subparsers.add_parser("down", help="stop the local services (idempotent)")
    _only(down)
    down.set_defaults(handler=_down)

    status = subparsers.add_parser("status", help="show the services; exit 0 when all are up, else 1")
    _only(status)
    status.set_defaults(handler=_status)


def _only(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", choices=SERVICES, help="act on this service only")


def _selected(args: argparse.Namespace) -> tuple[str, ...]:
    return (args.only,) if args.only else SERVICES


def _up(args: argparse.Namespace) -> int:
    from uxstream.services import ensure_all

    ensure_all(_selected(args), timeout=args.timeout)
    return 0


def _down(args: argparse.Namespace) -> int:
    from uxstream.services import stop_all

    stop_all(_selected(args))
    return 0


def _status(args: argparse.Namespace) -> int:
    from uxstream.services import status_all

    statuses = status_all(_selected(args))
    for status in statuses:
        print(status.line())
    return 0 if all(status.running for status in statuses) else 1
