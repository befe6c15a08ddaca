"""`uxstream run JOB [job options]`: run a uxstream Flink job on a local MiniCluster.

Unbounded by default (a long-running job, as on a cluster); `--bounded` reads up to the end offsets
present at start and finishes (tests, backfills). The job's own options follow its name:
`uxstream run sessionize --help`.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from uxstream.errors import UserError

JOBS = {
    "sessionize": "jobs.sessionize.job",
    "funnels": "jobs.funnels.job",
    "smoke": "jobs.smoke.job",
    "anomaly": "jobs.anomaly.job",
}
"""Job name → module with a `main(argv) -> int`."""


def _cmd_run(args: argparse.Namespace) -> int:
    module = JOBS.get(args.job)
    if module is None:
        raise UserError(f"unknown job {args.job!r}: choose one of {', '.join(sorted(JOBS))}")
    code: int = importlib.import_module(module).main(args.job_args)
    return code


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="run a job on a local MiniCluster (unbounded unless --bounded)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("job", help=f"one of {', '.join(sorted(JOBS))}")
    p.add_argument("job_args", nargs=argparse.REMAINDER, help="the job's options (`uxstream run JOB --help`)")
    p.set_defaults(handler=_cmd_run)
