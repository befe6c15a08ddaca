"""Run sessionize's minute KPI rows two ways on a Flink MiniCluster (parallelism 2) over the JSON-lines
files of a folder and print both (one JSON line per row): the job's own `kpi_minutes` view
(jobs/sessionize/job.py `kpi_minutes_views`, io.uxstream.udf.KpiCells unnested) and REFERENCE, the GROUPING
SETS query with Flink's built-in filtered aggregates that it replaced (until state layout 9; issue 17).

    python -m tests.support.kpi_cells EVENTS_FOLDER FOLDER

Each event line has the `clean` view's columns the KPI windows read (ts in epoch ms; see RAW_COLUMNS),
within an hour: the watermark lags an hour, so no event is late and every window fires at the end. Two
configurations run in the same job: the default settings (every dimension, bots excluded) and VARIANT (two
dimensions in another order, bots counted). Output lines: [configuration, "job" | "reference", window start
in epoch ms, dimension, dimension value, metrics in METRICS order, people as [users, anonymous, links]].
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from jobs.common import tables
from jobs.common.contract import CSAT_SCALE, FEEDBACK, NPS_DETRACTOR_MAX, NPS_PROMOTER_MIN, NPS_SCALE
from jobs.common.flink_env import create_environments
from jobs.sessionize import job
from jobs.sessionize.settings import SessionizeSettings

RAW_COLUMNS = (
    ("ts", "BIGINT"), ("occurrence", "BIGINT"), ("is_bot", "BOOLEAN"), ("event_type", "STRING"),
    ("event_name", "STRING"), ("user_id", "STRING"), ("anonymous_id", "STRING"), ("page_path", "STRING"),
    ("country", "STRING"), ("device_type", "STRING"), ("lcp_ms", "DOUBLE"), ("inp_ms", "DOUBLE"),
    ("cls", "DOUBLE"), ("feedback_scale", "STRING"), ("feedback_score", "INT"),
)  # fmt: skip
METRICS = (
    "events", "page_views", "error_events", "conversions", "duplicates", "bot_events", "lcp_p75", "inp_p75",
    "cls_p75", "feedback_responses", "nps_responses", "nps_score_sum", "nps_promoters", "nps_passives",
    "nps_detractors", "csat_responses", "csat_score_sum",
)  # fmt: skip


def variant(settings: SessionizeSettings) -> SessionizeSettings:
    """Two dimensions in another order than DIMENSIONS', bots counted like people."""
    enrichment = dataclasses.replace(settings.flink.enrichment, exclude_bots=False)
    return dataclasses.replace(
        settings,
        dimensions=("device_type", "page_path"),
        flink=dataclasses.replace(settings.flink, enrichment=enrichment),
    )


def reference(settings: SessionizeSettings) -> str:
    """The minute rows as the job computed them before kpi_cells: GROUPING SETS, one filtered aggregate per
    metric (Flink's COUNT, SUM and PERCENTILE, io.uxstream.udf.UserSet's user_set)."""
    columns = [f"dim_{d}" for d in settings.dimensions]
    sets = ", ".join(["()", *(f"({c})" for c in columns)])
    name = " ".join(
        f"WHEN GROUPING({c}) = 0 THEN '{d}'" for c, d in zip(columns, settings.dimensions, strict=True)
    )
    value = " ".join(f"WHEN GROUPING({c}) = 0 THEN {c}" for c in columns)
    human = "NOT is_bot" if settings.flink.enrichment.exclude_bots else "TRUE"
    first = f"occurrence = 1 AND {human}"
    vital = f"{first} AND event_type = 'web_vital'"
    feedback = f"{first} AND event_type = '{FEEDBACK}'"
    nps = f"{feedback} AND feedback_scale = '{NPS_SCALE}'"
    csat = f"{feedback} AND feedback_scale = '{CSAT_SCALE}'"
    conversions = ", ".join(f"'{n}'" for n in settings.conversion_events)
    return f"""SELECT window_start AS minute_start,
  CASE {name} ELSE '{tables.DIM_GLOBAL}' END AS dimension,
  CASE {value} ELSE '{tables.ALL_VALUE}' END AS dimension_value,
  COUNT(*) FILTER (WHERE {first}) AS events,
  COUNT(*) FILTER (WHERE {first} AND event_type = 'page_view') AS page_views,
  COUNT(*) FILTER (WHERE {first} AND event_type = 'error') AS error_events,
  COUNT(*) FILTER (WHERE {first} AND event_name IN ({conversions})) AS conversions,
  COUNT(*) FILTER (WHERE occurrence > 1 AND {human}) AS duplicates,
  COUNT(*) FILTER (WHERE occurrence = 1 AND is_bot) AS bot_events,
  PERCENTILE(lcp_ms, 0.75) FILTER (WHERE {vital}) AS lcp_p75,
  PERCENTILE(inp_ms, 0.75) FILTER (WHERE {vital}) AS inp_p75,
  PERCENTILE(cls, 0.75) FILTER (WHERE {vital}) AS cls_p75,
  COUNT(*) FILTER (WHERE {feedback}) AS feedback_responses,
  COUNT(*) FILTER (WHERE {nps}) AS nps_responses,
  SUM(CAST(feedback_score AS BIGINT)) FILTER (WHERE {nps}) AS nps_score_sum,
  COUNT(*) FILTER (WHERE {nps} AND feedback_score >= {NPS_PROMOTER_MIN}) AS nps_promoters,
  COUNT(*) FILTER (WHERE {nps} AND feedback_score > {NPS_DETRACTOR_MAX}
    AND feedback_score < {NPS_PROMOTER_MIN}) AS nps_passives,
  COUNT(*) FILTER (WHERE {nps} AND feedback_score <= {NPS_DETRACTOR_MAX}) AS nps_detractors,
  COUNT(*) FILTER (WHERE {csat}) AS csat_responses,
  SUM(CAST(feedback_score AS BIGINT)) FILTER (WHERE {csat}) AS csat_score_sum,
  user_set(user_id, anonymous_id) FILTER (WHERE {first}) AS people
FROM TABLE(TUMBLE(TABLE clean, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, window_time, GROUPING SETS ({sets})"""


def epoch_ms(start: datetime) -> int:
    """A window start collected as a wall-clock TIMESTAMP in the job's UTC zone."""
    return int(start.replace(tzinfo=UTC).timestamp() * 1000)


def main(argv: list[str]) -> int:
    events, folder = Path(argv[0]), Path(argv[1])
    settings = job.JOB.settings(None)
    flink = dataclasses.replace(settings.flink, state_dir=folder / "state", parallelism=2)
    _, t_env = create_environments(flink, "kpi-cells")
    t_env.get_config().set("table.local-time-zone", "UTC")
    for name, cls in (
        ("kpi_cells", "io.uxstream.udf.KpiCells"),
        ("user_set", "io.uxstream.udf.UserSet$Collect"),
    ):
        t_env.execute_sql(f"CREATE TEMPORARY SYSTEM FUNCTION {name} AS '{cls}' LANGUAGE JAVA")
    columns = ", ".join(f"{name} {kind}" for name, kind in RAW_COLUMNS)
    t_env.execute_sql(
        f"""CREATE TEMPORARY TABLE raw_events ({columns},
  event_time AS TO_TIMESTAMP_LTZ(ts, 3),
  WATERMARK FOR event_time AS event_time - INTERVAL '1' HOUR)
WITH ('connector' = 'filesystem', 'path' = '{events}', 'format' = 'json')"""
    )
    t_env.execute_sql(
        "CREATE TEMPORARY VIEW clean AS SELECT *, COALESCE(page_path, '(none)') AS dim_page_path, "
        "COALESCE(country, '(none)') AS dim_country, COALESCE(device_type, '(none)') AS dim_device_type "
        "FROM raw_events"
    )
    metrics = ", ".join(METRICS)
    selects = []
    for configuration, chosen in (("default", settings), ("variant", variant(settings))):
        for statement in job.kpi_minutes_views(chosen):  # the job's views, named per configuration
            t_env.execute_sql(statement.replace("kpi_minute", f"{configuration}_kpi_minute"))
        selects.append(
            f"SELECT '{configuration}', 'job', minute_start, dimension, dimension_value, {metrics}, people "
            f"FROM {configuration}_kpi_minutes"
        )
        selects.append(
            f"SELECT '{configuration}', 'reference', minute_start, dimension, dimension_value, {metrics}, "
            f"people FROM ({reference(chosen)})"
        )
    with t_env.execute_sql("\nUNION ALL\n".join(selects)).collect() as results:
        for row in results:
            people = row[-1]
            links = sorted((people[2] or {}).items())
            print(
                json.dumps([
                    row[0], row[1], epoch_ms(row[2]), *row[3:-1],
                    [list(people[0]), list(people[1]), links],
                ]),
                flush=True,
            )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
