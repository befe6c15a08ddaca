"""One job run for `uxstream bench`, in its own process (the harness watches it from outside).

    python -m uxstream.bench.jobrun --job sessionize --input-topic T --dlq-topic D --bounded --rest-port P
    python -m uxstream.bench.jobrun --job bare ...

Jobs:

- `sessionize`: the real job (`jobs.sessionize.job.pipeline`), unchanged topology and settings, with
  benchmark-only settings: the transactional-id prefix of its exactly-once sinks (DLQ, KPI topic) is
  `sessionize-bench-<run id>`, so a benchmark run never fences a sessionize job or test running beside it
  on the same broker; its KPI windows go to the run's own `--kpi-topic`; and `--tumble-ms` may shorten the
  1-minute KPI window (latency smoke runs only).
- `funnels`: the real funnels job (`jobs.funnels.job.pipeline`) with the shipped definitions
  (config/funnels.toml), its own DLQ and ux.funnel topics (`--dlq-topic`, `--funnel-topic`) and the same
  benchmark-only transactional-id prefix scheme.
- `bare`: the bare Flink SQL pipeline: sessionize's own decode step (same Kafka raw source, same
  watermark and source options, the Java decode UDF, the DLQ insert) with the valid events going to a
  blackhole sink instead of sessionize's topology. The ceiling a job built on the decode step can reach.
- `floor`: the least any exact sessionize design does per event: sessionize's decode step, enrichment and
  events view (`jobs.sessionize.job.events_view`, the columns it reads and the packed session fields), then
  its two keys (duplicates are found by event id, sessions by device key): a hash exchange of those rows by
  bucket of event ids (`dedup_bucket`, sessionize's dedup key on the heap backend) and one keyed-state
  update per event that passes on the device key and the packed fields, a hash exchange of those by device
  key and one more keyed-state update (io.uxstream.udf.KeyedFloor: process table functions that count
  each key's rows; the last emits nothing). Neither remembers event ids nor buffers events: the floor is
  below what any exact design pays. What sessionize does beyond it
  (the work itself: classification, dedup, KPI windows, sessions, sinks) is what a faster core could save
  (issue 17).

The MiniCluster's REST endpoint listens on `--rest-port` (127.0.0.1) with fast metric refresh, a long
checkpoint history and flame graphs enabled, so the harness can read progress, per-vertex busy time,
checkpoint statistics and stack samples while the job runs (the MiniCluster, and its REST endpoint, stop
with the job). One JSON object per line on stdout reports the job id and the end of the job.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from pyflink.table import StatementSet, StreamTableEnvironment
    from pyflink.table.table_result import TableResult

    from jobs.sessionize.settings import SessionizeSettings

JOBS: Final = ("sessionize", "bare", "floor", "funnels")
FUNNELS_PYTHON_VERTEX: Final = "funnels: identity per device"
"""Name fragment of the funnels vertex that first receives events in Python (its records in = the events
that reached Python): since state layout v5 the identity stage, ahead of the per-user attempts."""


def monitoring_options(rest_port: int, flame_samples: int = 100) -> tuple[tuple[str, str], ...]:
    """Flink options that let the harness watch the job through the MiniCluster's REST endpoint."""
    return (
        ("rest.port", str(rest_port)),
        ("rest.bind-port", str(rest_port)),
        ("metrics.fetcher.update-interval", "200"),
        ("web.checkpoints.history", "1000"),
        ("rest.flamegraph.enabled", "true"),
        ("rest.flamegraph.num-samples", str(flame_samples)),
        ("rest.flamegraph.delay-between-samples", "20 ms"),  # 100 samples in 2 s (default: 50 ms)
    )


def parse_option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SystemExit(f"--flink-option {text!r}: expected KEY=VALUE")
    return key.strip(), value.strip()


def emit(event: str, **fields: Any) -> None:
    """One progress line for the harness (JSON on stdout)."""
    print(json.dumps({"event": event, "time": time.time(), **fields}), flush=True)


def build_bare(t_env: StreamTableEnvironment, settings: SessionizeSettings, job: str) -> TableResult:
    """sessionize's decode step → blackhole (valid events) and the DLQ (dead letters)."""
    from jobs.common import decode
    from jobs.sessionize.job import decode_spec
    from uxstream.bench.decode import blackhole_insert

    spec = replace(decode_spec(settings), job=job)
    names = decode.create(t_env, spec)
    statements = t_env.create_statement_set()
    statements.add_insert_sql(
        blackhole_insert(t_env, "bench_valid_sink", f"SELECT * FROM {decode.quote(names.valid_view)}")
    )
    statements.add_insert_sql(decode.dlq_insert(spec))
    return statements.execute()


FLOOR_UIDS: Final = ("bench_floor_by_event", "bench_floor_by_device")
"""The uids of the floor run's keyed operators (io.uxstream.udf.KeyedFloor: by bucket of event ids, by
device key)."""


def floor_statements(t_env: StreamTableEnvironment, settings: SessionizeSettings, job: str) -> StatementSet:
    """The floor run's tables and views in `t_env` and its statement set: sessionize's decode step and events
    view → exchange by bucket of event ids (sessionize's dedup key on the heap backend) → one keyed-state
    update per event, passing on the device key and the packed session fields → exchange by device key →
    one keyed-state update per event; dead letters to the DLQ."""
    from jobs.common import decode
    from jobs.sessionize import job as sessionize
    from uxstream.bench.decode import blackhole_insert

    spec = replace(sessionize.decode_spec(settings), job=job)
    names = decode.create(t_env, spec)
    t_env.execute_sql(sessionize.PACK_FUNCTION)
    t_env.execute_sql(sessionize.events_view() + decode.quote(names.valid_view))
    for name, java in (("keyed_floor", "KeyedFloor"), ("keyed_floor_forward", "KeyedFloor$Forward")):
        t_env.execute_sql(
            f"CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS {name} AS 'io.uxstream.udf.{java}' LANGUAGE JAVA"
        )
    t_env.execute_sql(
        f"CREATE TEMPORARY VIEW floor_input AS SELECT *, {decode.DEVICE_KEY} AS device_key, "
        f"dedup_bucket(event_id) AS dedup_bucket FROM {sessionize.EVENTS_VIEW}"
    )
    t_env.execute_sql(
        "CREATE TEMPORARY VIEW floor_by_event AS SELECT * FROM keyed_floor_forward("
        f"input => TABLE floor_input PARTITION BY dedup_bucket, uid => '{FLOOR_UIDS[0]}')"
    )
    query = (
        "SELECT * FROM keyed_floor(input => TABLE floor_by_event PARTITION BY device_key, "
        f"uid => '{FLOOR_UIDS[1]}')"
    )
    statements = t_env.create_statement_set()
    statements.add_insert_sql(blackhole_insert(t_env, "bench_floor_sink", query))
    statements.add_insert_sql(decode.dlq_insert(spec))
    return statements


def build_floor(t_env: StreamTableEnvironment, settings: SessionizeSettings, job: str) -> TableResult:
    """The floor run (`floor_statements`), submitted."""
    return floor_statements(t_env, settings, job).execute()


def build_sessionize(t_env: StreamTableEnvironment, settings: SessionizeSettings, job: str) -> TableResult:
    """The sessionize job exactly as `jobs.sessionize.job.run` builds it."""
    from jobs.sessionize import job as sessionize

    result = sessionize.pipeline(settings).submit(None, t_env)
    assert result is not None, "sessionize is a SQL-only job: its statement set is executed"
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m uxstream.bench.jobrun", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--job", choices=JOBS, required=True)
    parser.add_argument("--input-topic", required=True)
    parser.add_argument("--dlq-topic", required=True)
    parser.add_argument("--kpi-topic", default="", help="sessionize's KPI window topic ('': not published)")
    parser.add_argument("--funnel-topic", default="", help="the funnels job's window topic")
    parser.add_argument("--bounded", action="store_true", help="stop at the end offsets present at start")
    parser.add_argument("--rest-port", type=int, required=True)
    parser.add_argument("--run-id", required=True, help="makes the transactional-id prefix unique")
    parser.add_argument("--state-dir", type=Path, required=True, help="checkpoints go below this folder")
    parser.add_argument("--checkpoint-interval-ms", type=int, default=None, help="default: the job's own")
    parser.add_argument("--tumble-ms", type=int, default=None, help="sessionize KPI tumble (default 1 min)")
    parser.add_argument("--flame-samples", type=int, default=100, help="stack samples per flame graph")
    parser.add_argument(
        "--flink-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Flink option (repeatable)",
    )
    return parser.parse_args(argv)


def run_funnels(args: argparse.Namespace) -> Any:
    """The funnels job exactly as `jobs.funnels.job.run` builds it, submitted asynchronously."""
    from jobs.common import privacy, topics
    from jobs.common.flink_env import create_environments
    from jobs.funnels.job import pipeline
    from jobs.funnels.settings import FunnelsSettings

    settings = FunnelsSettings.from_env(
        None,
        input_topic=args.input_topic,
        dlq_topic=args.dlq_topic,
        funnel_topic=args.funnel_topic or f"{args.input_topic}.funnel.{args.run_id}",
        transactional_id_prefix=f"funnels-bench-{args.run_id}",
        bounded=args.bounded,
    )
    settings = replace(settings, flink=bench_flink(settings.flink, args))
    topics.ensure_topics(settings.kafka, {settings.dlq_topic: 1, settings.funnel_topic: 1})
    privacy.ensure_key()
    env, t_env = create_environments(settings.flink, "bench-funnels")
    pipeline(settings).submit(env, t_env)
    return env.execute_async(f"funnels-bench-{args.run_id}")


def bench_flink(flink: Any, args: argparse.Namespace) -> Any:
    """The job's Flink settings plus the monitoring options and the run's state folder."""
    flink = flink.with_options(
        state_dir=args.state_dir,
        extra_config=(
            *flink.extra_config,
            *monitoring_options(args.rest_port, args.flame_samples),
            *(parse_option(o) for o in args.flink_option),
        ),
    )
    if args.checkpoint_interval_ms:
        flink = flink.with_options(checkpoint_interval_ms=args.checkpoint_interval_ms)
    return flink


def run_sql_job(args: argparse.Namespace) -> Any:
    """sessionize, the bare pipeline or the floor run; their JobClient."""
    from jobs.common import privacy, topics
    from jobs.common.flink_env import create_environments
    from jobs.sessionize.settings import SessionizeSettings

    overrides: dict[str, object] = {
        "input_topic": args.input_topic,
        "dlq_topic": args.dlq_topic,
        "kpi_topic": args.kpi_topic,
        "bounded": args.bounded,
        "transactional_id_prefix": f"{args.job}-bench-{args.run_id}",
    }
    if args.tumble_ms:
        overrides["tumble_ms"] = args.tumble_ms
    settings = SessionizeSettings.from_env(None, **overrides)
    settings = replace(settings, flink=bench_flink(settings.flink, args))
    job_name = f"{args.job}-bench-{args.run_id}"
    topics.ensure_topics(settings.kafka, {t: 1 for t in (settings.dlq_topic, settings.kpi_topic) if t})
    privacy.ensure_key()
    _, t_env = create_environments(settings.flink, f"bench-{args.job}")
    build = {"sessionize": build_sessionize, "bare": build_bare, "floor": build_floor}[args.job]
    result = build(t_env, settings, job_name)
    client = result.get_job_client()
    assert client is not None
    return client


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    client = run_funnels(args) if args.job == "funnels" else run_sql_job(args)
    emit("submitted", job_id=str(client.get_job_id()))
    try:
        execution = client.get_job_execution_result().result()
    except Exception as exc:  # py4j wraps the JobCancellationException of a cancelled (unbounded) run
        if "cancel" in str(exc).lower():
            emit("cancelled")
            return 0
        raise
    # The MiniCluster of a per-job run closes with its REST API as soon as the job finishes, so the
    # harness may not see the last records-read figure of a fast finish: it counts the run as complete
    # from this event (runner.JobProcess.run_record).
    emit("finished", net_runtime_ms=int(execution.get_net_runtime()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
