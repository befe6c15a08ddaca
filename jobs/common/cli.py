"""Command-line options the jobs share (`jobs.common.runner` adds and reads them)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jobs.common.connectors import StopOffsets, parse_stop_offsets
from jobs.common.flink_env import FlinkSettings, latest_checkpoint
from jobs.common.settings import SettingsError


def _stop_offsets(text: str) -> StopOffsets:
    try:
        return parse_stop_offsets(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_bounded_argument(parser: argparse.ArgumentParser) -> None:
    """`--bounded`: read up to the end offsets present at start, then finish (default: never finish)."""
    parser.add_argument("--bounded", action="store_true", help="stop at the end offsets present at start")


def add_input_bound_arguments(parser: argparse.ArgumentParser) -> None:
    """`--bounded` and `--stop-at-offsets`: where a job's read of its input topic ends (default: never)."""
    add_bounded_argument(parser)
    parser.add_argument(
        "--stop-at-offsets",
        type=_stop_offsets,
        default=(),
        metavar="PARTITION:OFFSET[,...]",
        help="bounded: read every partition of the input topic up to its offset (exclusive), waiting for "
        "records not produced yet, then finish",
    )


def input_bound_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The settings overrides (`bounded`, `stop_offsets`) of the options `add_input_bound_arguments` added."""
    return {"bounded": args.bounded or bool(args.stop_at_offsets), "stop_offsets": args.stop_at_offsets}


def add_restore_argument(parser: argparse.ArgumentParser) -> None:
    """`--restore`: start a job from a retained checkpoint or a savepoint."""
    parser.add_argument(
        "--restore",
        default=None,
        metavar="PATH|latest",
        help="start from this checkpoint or savepoint folder (the one with _metadata), or from the newest "
        "checkpoint a run of this job retained ('latest'): e.g. after the whole machine went down",
    )


def restored(args: argparse.Namespace, flink: FlinkSettings, job_name: str) -> FlinkSettings:
    """`flink` with the restore path `--restore` asked for (unchanged without it)."""
    if not args.restore:
        return flink
    if args.bounded or args.stop_at_offsets:
        raise SettingsError(
            "--restore cannot be combined with --bounded or --stop-at-offsets: a bounded Kafka source "
            "restored from a checkpoint never finishes (FLINK-31006); restore an unbounded run"
        )
    path = latest_checkpoint(flink, job_name) if args.restore == "latest" else Path(args.restore)
    restored_settings = flink.with_options(restore_path=path)
    restored_settings.check()
    return restored_settings
