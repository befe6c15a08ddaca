"""Command-line options the jobs share (their `parse_args` / `settings_from_args` call these)."""

from __future__ import annotations

import argparse

from jobs.common.connectors import StopOffsets, parse_stop_offsets


def _stop_offsets(text: str) -> StopOffsets:
    try:
        return parse_stop_offsets(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_input_bound_arguments(parser: argparse.ArgumentParser) -> None:
    """`--bounded` and `--stop-at-offsets`: where a job's read of its input topic ends (default: never)."""
    parser.add_argument("--bounded", action="store_true", help="stop at the end offsets present at start")
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
