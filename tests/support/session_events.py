"""Run the `session_events` process table function (jvm/udf io.uxstream.udf.SessionEvents) on a Flink
MiniCluster over rows in a JSON file, and print what it emits (one JSON line per row).

    python -m tests.support.session_events SPEC_JSON FOLDER

SPEC_JSON: {"rows": [[user_key, ts, packed], ...] in arrival order (packed: a JSON value), "gap_ms",
"bound_ms", "calls": [{"name", "max_duration_ms", "timezone"}, ...]}. The source's watermark is
`event_time - bound`, emitted per record, so the arrival order decides what is late. Every call of the
function reads the same rows; each output line is [call name, user_key, packed events, end_reason,
rowtime in epoch ms].
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from jobs.common.connectors import sql_interval, sql_literal
from jobs.common.flink_env import FlinkSettings, create_environments


def main(argv: list[str]) -> int:
    spec, folder = json.loads(Path(argv[0]).read_text()), Path(argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "events.csv"
    source.write_text("".join(f"{user},{ts},{packed}\n" for user, ts, packed in spec["rows"]))
    settings = FlinkSettings(state_dir=folder / "state", parallelism=1)
    _, t_env = create_environments(settings, "session-events-check")
    t_env.get_config().set("pipeline.auto-watermark-interval", "0 ms")  # a watermark after every record
    t_env.get_config().set("table.local-time-zone", "UTC")
    t_env.execute_sql(
        "CREATE TEMPORARY SYSTEM FUNCTION session_events AS 'io.uxstream.udf.SessionEvents' LANGUAGE JAVA"
    )
    bound = sql_interval(spec["bound_ms"])
    t_env.execute_sql(
        f"""CREATE TEMPORARY TABLE events (user_key STRING, ts BIGINT, packed STRING,
  event_time AS TO_TIMESTAMP_LTZ(ts, 3), WATERMARK FOR event_time AS event_time - {bound})
WITH ('connector' = 'filesystem', 'path' = '{source}', 'format' = 'csv')"""
    )
    query = "\nUNION ALL\n".join(
        f"""SELECT {sql_literal(call["name"])}, user_key, packed, end_reason,
  DATE_FORMAT(rowtime, 'yyyy-MM-dd HH:mm:ss.SSS')
FROM session_events(input => TABLE events PARTITION BY user_key, on_time => DESCRIPTOR(event_time),
  gap_ms => CAST({spec["gap_ms"]} AS BIGINT), max_duration_ms => CAST({call["max_duration_ms"]} AS BIGINT),
  timezone => {sql_literal(call["timezone"])}, uid => {sql_literal("check_" + call["name"])})"""
        for call in spec["calls"]
    )
    with t_env.execute_sql(query).collect() as results:
        for row in results:
            rowtime = datetime.strptime(row[4], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
            at = int(rowtime.timestamp() * 1000)
            print(json.dumps([row[0], row[1], json.loads(row[2]), row[3], at]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
