"""Run the `session_events` process table function (jvm/udf io.uxstream.udf.SessionEvents) on a Flink
MiniCluster over rows in a JSON file, and print what it emits (one JSON line per row).

    python -m tests.support.session_events SPEC_JSON FOLDER

SPEC_JSON: {"rows": [[device_key, ts, packed, user_id or null], ...] in arrival order (packed: a JSON
value without commas), "gap_ms", "bound_ms", "calls": [{"name", "max_duration_ms", "timezone",
"identity_ttl_ms"}, ...]}. The source's watermark is `event_time - bound`, emitted per record, so the
arrival order decides what is late. Every call of the function reads the same rows; each output line is
[call name, device_key, packed events, end_reason, rowtime in epoch ms, linked_user, linked_ts].
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
    source.write_text(
        "".join(
            f"{row[0]},{row[1]},{row[3] if len(row) > 3 and row[3] else '-'},{row[2]}\n"
            for row in spec["rows"]
        )
    )
    settings = FlinkSettings(state_dir=folder / "state", parallelism=1)
    _, t_env = create_environments(settings, "session-events-check")
    t_env.get_config().set("pipeline.auto-watermark-interval", "0 ms")  # a watermark after every record
    t_env.get_config().set("table.local-time-zone", "UTC")
    t_env.execute_sql(
        "CREATE TEMPORARY SYSTEM FUNCTION session_events AS 'io.uxstream.udf.SessionEvents' LANGUAGE JAVA"
    )
    bound = sql_interval(spec["bound_ms"])
    t_env.execute_sql(
        f"""CREATE TEMPORARY TABLE raw_events (device_key STRING, ts BIGINT, user_mark STRING, packed STRING,
  event_time AS TO_TIMESTAMP_LTZ(ts, 3), WATERMARK FOR event_time AS event_time - {bound})
WITH ('connector' = 'filesystem', 'path' = '{source}', 'format' = 'csv')"""
    )
    t_env.execute_sql(
        "CREATE TEMPORARY VIEW events AS SELECT device_key, ts, NULLIF(user_mark, '-') AS user_id, packed, "
        "event_time FROM raw_events"
    )
    query = "\nUNION ALL\n".join(
        f"""SELECT {sql_literal(call["name"])}, device_key, packed, end_reason,
  DATE_FORMAT(rowtime, 'yyyy-MM-dd HH:mm:ss.SSS'), linked_user, linked_ts
FROM session_events(input => TABLE events PARTITION BY device_key, on_time => DESCRIPTOR(event_time),
  gap_ms => CAST({spec["gap_ms"]} AS BIGINT), max_duration_ms => CAST({call["max_duration_ms"]} AS BIGINT),
  timezone => {sql_literal(call["timezone"])},
  identity_ttl_ms => CAST({call.get("identity_ttl_ms", 30 * 86_400_000)} AS BIGINT),
  uid => {sql_literal("check_" + call["name"])})"""
        for call in spec["calls"]
    )
    with t_env.execute_sql(query).collect() as results:
        for row in results:
            rowtime = datetime.strptime(row[4], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
            at = int(rowtime.timestamp() * 1000)
            print(json.dumps([row[0], row[1], json.loads(row[2]), row[3], at, row[5], row[6]]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
