"""`uxstream cluster up|down|status|submit|savepoint|stop|upgrade`: uxstream's jobs on a Flink cluster.

    uxstream cluster up                          # JobManager + TaskManager on 127.0.0.1 (REST :18081)
    uxstream cluster submit sessionize -- --input-topic ux.events
    uxstream cluster savepoint sessionize        # the job keeps running
    uxstream cluster upgrade sessionize          # stop with a savepoint, resubmit restoring from it
    uxstream cluster stop sessionize [--drain]   # stop with a savepoint
    uxstream cluster down

Options after `--` go to the job (`uxstream run JOB --help` lists them). The cluster's settings are
flink-conf/config.yaml; UXSTREAM_FLINK_REST_URL points the commands at another cluster.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from uxstream.run import JOBS


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cluster",
        help="a local standalone Flink cluster; submit, savepoint, stop and upgrade jobs on a cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="cluster_command", metavar="SUBCOMMAND")
    commands.required = True

    commands.add_parser("up", help="start JobManager + TaskManager on 127.0.0.1 (idempotent)").set_defaults(
        handler=_up
    )
    commands.add_parser("down", help="stop the local cluster (idempotent)").set_defaults(handler=_down)
    commands.add_parser("status", help="exit 0 when it answers, else 1").set_defaults(handler=_status)

    submit = commands.add_parser("submit", help="submit a job (`flink run -pym`, detached)")
    _job(submit)
    submit.add_argument("--from-savepoint", metavar="PATH", help="restore the job from this savepoint")
    submit.set_defaults(handler=_submit)

    savepoint = commands.add_parser("savepoint", help="take a savepoint of a running job")
    _job(savepoint, with_args=False)
    savepoint.add_argument("--target", type=Path, help="folder (default .local/flink-cluster/savepoints/JOB)")
    savepoint.set_defaults(handler=_savepoint)

    stop = commands.add_parser("stop", help="stop a running job with a savepoint")
    _job(stop, with_args=False)
    stop.add_argument("--drain", action="store_true", help="fire every window and timer first (final stop)")
    stop.add_argument("--target", type=Path, help="folder (default .local/flink-cluster/savepoints/JOB)")
    stop.set_defaults(handler=_stop)

    upgrade = commands.add_parser("upgrade", help="stop a job with a savepoint and resubmit it restoring it")
    _job(upgrade)
    upgrade.set_defaults(handler=_upgrade)


def _job(parser: argparse.ArgumentParser, with_args: bool = True) -> None:
    parser.add_argument("job", help=f"one of {', '.join(sorted(JOBS))}")
    if with_args:
        parser.add_argument("job_args", nargs=argparse.REMAINDER, help="the job's options, after `--`")


def _job_args(args: argparse.Namespace) -> list[str]:
    job_args = list(args.job_args)
    return job_args[1:] if job_args[:1] == ["--"] else job_args


def _cluster() -> Any:
    from uxstream.cluster.config import LocalCluster

    return LocalCluster.from_env()


def _up(args: argparse.Namespace) -> int:
    from uxstream.cluster import local

    print(local.up(_cluster()))
    return 0


def _down(args: argparse.Namespace) -> int:
    from uxstream.cluster import local

    print(local.down(_cluster()))
    return 0


def _status(args: argparse.Namespace) -> int:
    from uxstream.cluster import local

    running, line = local.status(_cluster())
    print(line)
    return 0 if running else 1


def _submit(args: argparse.Namespace) -> int:
    from uxstream.cluster import submit

    result = submit.submit(_cluster(), args.job, _job_args(args), savepoint=args.from_savepoint)
    print(f"submitted {result.job} as job {result.job_id}")
    return 0


def _savepoint(args: argparse.Namespace) -> int:
    from uxstream.cluster import submit

    print(f"savepoint of {args.job}: {submit.savepoint(_cluster(), args.job, args.target)}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    from uxstream.cluster import submit

    location = submit.stop(_cluster(), args.job, args.target, drain=args.drain)
    print(f"stopped {args.job} with savepoint {location}")
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    from uxstream.cluster import submit

    location, result = submit.upgrade(_cluster(), args.job, _job_args(args))
    print(f"stopped {args.job} with savepoint {location}; resubmitted as job {result.job_id} restoring it")
    return 0
