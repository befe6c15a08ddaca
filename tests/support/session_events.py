"""Run the `session_events` process table function (jvm/udf io.uxstream.udf.SessionEvents) on a Flink
MiniCluster over rows given on the command line, and print what it emits (one JSON line per row).

    python -m tests.support.session_events ROWS_JSON GAP_MS OUT_OF_ORDERNESS_MS FOLDER

ROWS_JSON: [[user_key, ts, packed], ...] in arrival order (packed: a JSON number here); the source's
watermark is `event_time - out-of-orderness`, emitted per record, so the arrival order decides what is late.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jobs.common.connectors import sql_interval
from jobs.common.flink_env import FlinkSettings, create_environments


def main(argv: list[str]) -> int:
    rows, gap_ms, bound_ms, folder = json.loads(argv[0]), int(argv[1]), int(argv[2]), Path(argv[3])
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "events.csv"
    source.write_text("".join(f"{user},{ts},{packed}\n" for user, ts, packed in rows))
    settings = FlinkSettings(state_dir=folder / "state", parallelism=1)
    _, t_env = create_environments(settings, "session-events-check")
    t_env.get_config().set("pipeline.auto-watermark-interval", "0 ms")  # a watermark after every record
    t_env.execute_sql(
        "CREATE TEMPORARY SYSTEM FUNCTION session_events AS 'io.uxstream.udf.SessionEvents' LANGUAGE JAVA"
    )
    t_env.execute_sql(
        f"""CREATE TEMPORARY TABLE events (user_key STRING, ts BIGINT, packed STRING,
  event_time AS TO_TIMESTAMP_LTZ(ts, 3), WATERMARK FOR event_time AS event_time - {sql_interval(bound_ms)})
WITH ('connector' = 'filesystem', 'path' = '{source}', 'format' = 'csv')"""
    )
    query = f"""SELECT user_key, packed FROM session_events(input => TABLE events PARTITION BY user_key,
  on_time => DESCRIPTOR(event_time), gap_ms => CAST({gap_ms} AS BIGINT), uid => 'check_sessions')"""
    with t_env.execute_sql(query).collect() as results:
        for row in results:
            print(json.dumps([row[0], json.loads(row[1])]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
