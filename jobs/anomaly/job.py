"""anomaly: scores finalized KPI and funnel windows and keeps an alert lifecycle per series.

    python -m jobs.anomaly.job --bounded     # read what is in ux.kpi / ux.funnel now, then finish
    python -m jobs.anomaly.job               # run unbounded (clusters)

Topology: Kafka ux.kpi (+ ux.funnel when it exists), read_committed, raw bytes ─► event time = window
end, watermark = greatest window end − EXPIRY_WATERMARK_DELAY_MS (only the series-expiry timers use it)
─► key by message key (one series group per key) ─► Python KeyedProcessFunction (thread mode;
`logic.Detector` per metric, state in ValueState + MapState, warm start from kpi_1m, series expiry on
event-time timers) ─► alert messages ─► anomalies table (JDBC upsert) and ux.alerts (framed alert.v1,
EXACTLY_ONCE); expired rows ─► the counter anomaly_series_expired only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.anomaly.logic import EXPIRED, OPEN, RESOLVED
from jobs.anomaly.settings import AnomalySettings
from jobs.common import connectors, counters, decode, runner, tables, topics
from jobs.common.flink_env import FlinkSettings
from jobs.common.pipeline import Flow, Pipeline, Step

if TYPE_CHECKING:
    from pyflink.datastream import DataStream

JOB_NAME = "anomaly"
SQL = Path(__file__).with_name("anomaly.sql")
DETECT_UID = "anomaly.detect.v1"
EVENT_TIME_UID = "anomaly.event_time.v1"
EXPIRY_WATERMARK_DELAY_MS = 24 * 60 * 60 * 1000
"""How far the watermark stays behind the greatest window end read. Windows of different keys arrive out
of order (funnel windows are final only an hour or more after KPI windows of the same end); a key's
expiry timer must not fire before a window of that key that is still to come within the TTL. The delay
costs nothing but a later clean-up: outputs never depend on when a timer fires (functions.py)."""

OPTIONS = (
    runner.BOUNDED,
    runner.Option(
        "--kpi-topic", "kpi_topic", help="default: UXSTREAM_ANOMALY_KPI_TOPIC or ux.kpi", empty_allowed=True
    ),
    runner.Option("--funnel-topic", "funnel_topic", help="'' to ignore funnel windows", empty_allowed=True),
    runner.Option("--alerts-topic", "alerts_topic", empty_allowed=True),
    runner.Option("--transactional-id-prefix", "transactional_id_prefix", empty_allowed=True),
    runner.CHECKPOINT_INTERVAL,
    runner.Option("--warm-start-days", "warm_start_days", type=int),
)
"""The job's command line: it reads windows, not ux.events, so `--bounded` is its only input bound (no
`--stop-at-offsets`, `--restore` or `--parallelism`); an empty value is passed on to the settings (which
refuse an empty KPI or alerts topic)."""
CHECKS = (runner.check_transactions, runner.ensure_output_topics)
"""Before Flink starts (no stop offsets to check, no user keys to pseudonymise)."""
OUTPUTS = ("kpi_topic", "alerts_topic")
"""Settings fields naming the topics the job uses: ux.kpi is read, but created when missing."""

_TS = "to_utc(TO_TIMESTAMP_LTZ({}, 3))"
_IF_OPENING = "CASE WHEN has_opening THEN {0} ELSE CAST(NULL AS DOUBLE) END"
"""The opening columns are NULL for an alert opened before they existed (restored from older state)."""
ANOMALIES_INSERT = f"""INSERT INTO anomalies_sink
SELECT alert_id, {_TS.format("opened_window_start")}, {_TS.format("opened_at")},
  CASE WHEN resolved_at < 0 THEN CAST(NULL AS TIMESTAMP(3)) ELSE {_TS.format("resolved_at")} END,
  status, source, metric, window_kind, dimension, dimension_value,
  {_TS.format("last_window_start")}, {_TS.format("last_window_end")},
  CASE WHEN has_value THEN `value` ELSE CAST(NULL AS DOUBLE) END,
  baseline, baseline_method, mad, z_score, peak_z, threshold, severity, anomalous_windows,
  {_IF_OPENING.format("peak_value")}, {_IF_OPENING.format("opened_baseline")},
  {_IF_OPENING.format("opened_z")}
FROM detector_output
WHERE count_when('{counters.ALERTS_OPENED}', message_status = '{OPEN}')
  AND count_when('{counters.ALERTS_RESOLVED}', message_status = '{RESOLVED}')
  AND count_when('{counters.ANOMALY_SERIES_EXPIRED}', message_status = '{EXPIRED}')
    = (message_status <> '{EXPIRED}')"""
"""Every conjunct but the last is always TRUE. The last counts the expired rows and leaves them out in ONE
comparison (count_when is TRUE, so it keeps exactly the rows that are not `expired`): written as
`count_when(…) AND message_status <> 'expired'`, the planner evaluated the filter first and the counter
never moved (measured: the unbounded e2e run)."""
ALERTS_INSERT = f"""INSERT INTO alerts_topic
SELECT CAST(series AS BYTES), payload, TO_TIMESTAMP_LTZ(last_window_end, 3)
FROM detector_output
WHERE message_status <> '{EXPIRED}'"""


def source_options(settings: AnomalySettings, topic: str) -> dict[str, str]:
    options = connectors.kafka_source_options(
        settings.kafka,
        connectors.KafkaSourceSpec(topic, f"uxstream-{JOB_NAME}", settings.bounded, value_format="raw"),
    )
    options.update({"key.format": "raw", "key.fields": "kafka_key", "value.fields-include": "EXCEPT_KEY"})
    return options


def alerts_options(settings: AnomalySettings) -> dict[str, str]:
    options = connectors.kafka_exactly_once_sink_options(
        settings.kafka,
        settings.alerts_topic,
        f"{settings.transactional_id_prefix}-alerts",
        value_format="raw",
    )
    options.update({"key.format": "raw", "key.fields": "kafka_key", "value.fields-include": "EXCEPT_KEY"})
    return options


def transform(windows: DataStream, settings: AnomalySettings) -> DataStream:
    """(kafka_key, payload, source) rows ─► alert message rows (functions.OUTPUT_FIELDS)."""
    from pyflink.common import Duration, Types
    from pyflink.common.watermark_strategy import WatermarkStrategy

    from jobs.anomaly.functions import detect_function, output_type, window_time_assigner

    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(EXPIRY_WATERMARK_DELAY_MS)
    ).with_timestamp_assigner(window_time_assigner())
    return (
        windows.assign_timestamps_and_watermarks(strategy)
        .name("event time = window end")
        .uid(EVENT_TIME_UID)
        .key_by(lambda row: f"{row[2]}|{bytes(row[0]).decode()}", key_type=Types.STRING())
        .process(detect_function(settings), output_type=output_type())
        .name("detect anomalies")
        .uid(DETECT_UID)
    )


def reads_funnels(settings: AnomalySettings) -> bool:
    """True when a funnel topic is configured and exists (the funnels job creates it)."""
    return bool(settings.funnel_topic) and bool(
        topics.partition_counts(settings.kafka, [settings.funnel_topic])
    )


def sources_and_sinks(settings: AnomalySettings, read_funnels: bool) -> list[str]:
    """The job's recipe (anomaly.sql): the ux.kpi (and ux.funnel) sources and the sinks."""
    return connectors.render_sql(
        SQL,
        kpi_source_options=connectors.with_clause(source_options(settings, settings.kpi_topic)),
        funnel_source_options=connectors.with_clause(
            source_options(settings, settings.funnel_topic) if read_funnels else {"connector": "datagen"}
        ),
        anomalies_options=connectors.with_clause(
            connectors.jdbc_upsert_options(settings.postgres, tables.ANOMALIES, flush_rows=100)
        ),
        alerts_options=connectors.with_clause(alerts_options(settings)),
    )


def detect(settings: AnomalySettings, read_funnels: bool) -> Callable[[Flow], None]:
    """Windows from the sources ─► the detector ─► the view detector_output (alert messages and
    `expired` rows)."""

    def step(flow: Flow) -> None:
        query = "SELECT kafka_key, payload, 'kpi' AS source FROM kpi_source"
        if read_funnels:
            query += " UNION ALL SELECT kafka_key, payload, 'funnel' AS source FROM funnel_source"
        alerts = transform(flow.t_env.to_data_stream(flow.t_env.sql_query(query)), settings)
        flow.t_env.create_temporary_view("detector_output", flow.t_env.from_data_stream(alerts))

    return step


def pipeline(settings: AnomalySettings) -> Pipeline:
    """The job: ux.kpi (+ ux.funnel) → detector (Python, keyed by series) → anomalies table and ux.alerts."""
    read_funnels = reads_funnels(settings)
    return Pipeline(
        steps=(
            decode.functions_step(),  # count_when: the job's alert counters
            Step("sources and sinks", tuple(sources_and_sinks(settings, read_funnels))),
            Step("detect", stream=detect(settings, read_funnels)),
            Step("alerts", (ANOMALIES_INSERT, ALERTS_INSERT)),
        ),
    )


def python_bundle(settings: AnomalySettings, flink: FlinkSettings) -> FlinkSettings:
    """Small Python bundles: an alert leaves the detector within `python_bundle_ms` (latency, NOTES.md)."""
    bundle = (
        ("python.fn-execution.bundle.time", str(settings.python_bundle_ms)),
        ("python.fn-execution.bundle.size", "1000"),
    )
    return flink.with_options(extra_config=(*bundle, *flink.extra_config))


JOB = runner.JobSpec(
    JOB_NAME, __doc__, AnomalySettings.from_env, pipeline, OPTIONS, CHECKS, OUTPUTS, python_bundle
)
main = runner.entry_point(JOB)

if __name__ == "__main__":
    sys.exit(main())
