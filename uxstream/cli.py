"""The `uxstream` command line.

Each feature module owns its sub-commands through a `register(subparsers)` function that adds parsers
whose `handler` default takes the parsed namespace and returns an exit code. Heavy imports (pyflink,
great_expectations) happen inside handlers so `uxstream --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from jobs.common.settings import SettingsError
from uxstream.errors import UserError

# Modules that contribute sub-commands, in help order.
COMMAND_MODULES = (
    "uxstream.services.commands",
    "uxstream.db",
    "uxstream.smoke",
    "uxstream.demo",
    "uxstream.run",
    "uxstream.contract.commands",
    "uxstream.quality",
    "uxstream.bench.commands",
    "uxstream.cluster.commands",
    "uxstream.anomaly",
    "uxstream.privacy",
    "uxstream.collector.commands",
    "uxstream.uniques",
    "uxstream.dashboard.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uxstream",
        description="Real-time UX metrics on Apache Flink: local services, event contract tools and jobs.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except (UserError, SettingsError) as exc:
        print(f"uxstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
