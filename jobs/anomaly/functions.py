"""Thin Flink adapters of the anomaly job: the keyed detector function and the output row type.

The key is one Kafka message key of ux.kpi / ux.funnel (`window_kind|dimension|dimension_value`, or
`funnel|dimension|dimension_value`), prefixed with the source: every record of a key holds the windows of
all configured metrics of that segment. Per key, ValueState `series` holds the `SeriesState` of each
metric and MapState `slots` the seasonal slots (`<metric>|<hour of week>` → samples), so an update
rewrites one slot, not a week of history.

Series expiry (logic.py "Series expiry"): one event-time timer per key at last window end + TTL
(re-registered on each window, the previous one deleted); when it fires, or when a window arrives that
finds the key expired (whether or not the timer has fired: that depends on other keys' watermarks), the
open alerts are resolved, both states are cleared and an `expired` row is emitted, which the job's SQL
counts (`uxstream.anomaly_series_expired`) and does not write. No new state descriptor: timers only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from jobs.anomaly.logic import (
    EXPIRED,
    Alert,
    Detector,
    SeriesKey,
    SeriesState,
    arrives_expired,
    expire_group,
    expires_at,
    group_last_end,
    series_windows,
)
from jobs.anomaly.settings import AnomalySettings
from jobs.anomaly.warm import DAY_MS, WARM_WINDOW_KIND, history_from_rows, read_kpi_history
from jobs.common.contract import decode_framed, encode, load_catalog
from jobs.common.topics import value_subject

if TYPE_CHECKING:
    from pyflink.common.typeinfo import TypeInformation
    from pyflink.datastream import KeyedProcessFunction

OUTPUT_FIELDS: Final = (
    ("series", "STRING"),
    ("message_status", "STRING"),
    ("payload", "BYTES"),
    ("alert_id", "STRING"),
    ("opened_window_start", "LONG"),
    ("opened_at", "LONG"),
    ("resolved_at", "LONG"),
    ("status", "STRING"),
    ("source", "STRING"),
    ("metric", "STRING"),
    ("window_kind", "STRING"),
    ("dimension", "STRING"),
    ("dimension_value", "STRING"),
    ("last_window_start", "LONG"),
    ("last_window_end", "LONG"),
    ("value", "DOUBLE"),
    ("has_value", "BOOLEAN"),
    ("baseline", "DOUBLE"),
    ("baseline_method", "STRING"),
    ("mad", "DOUBLE"),
    ("z_score", "DOUBLE"),
    ("peak_z", "DOUBLE"),
    ("threshold", "DOUBLE"),
    ("severity", "STRING"),
    ("anomalous_windows", "INT"),
    ("peak_value", "DOUBLE"),
    ("opened_baseline", "DOUBLE"),
    ("opened_z", "DOUBLE"),
    ("has_opening", "BOOLEAN"),
)
"""Columns of the detector's output stream (no NULLs: `resolved_at` −1, `has_value` and `has_opening`
stand for them)."""


def output_type() -> TypeInformation:
    from pyflink.common import Types

    kinds = {
        "STRING": Types.STRING(),
        "LONG": Types.LONG(),
        "DOUBLE": Types.DOUBLE(),
        "BOOLEAN": Types.BOOLEAN(),
        "INT": Types.INT(),
        "BYTES": Types.PRIMITIVE_ARRAY(Types.BYTE()),
    }
    return Types.ROW_NAMED([n for n, _ in OUTPUT_FIELDS], [kinds[k] for _, k in OUTPUT_FIELDS])


def alert_schema_id() -> int:
    from jobs.common.topics import ALERTS

    return load_catalog().latest(value_subject(ALERTS)).id


def output_values(alert: Alert, schema_id: int) -> list[Any]:
    """The output row of one lifecycle message (order of OUTPUT_FIELDS)."""
    key = SeriesKey(alert.source, alert.metric, alert.window_kind, alert.dimension, alert.dimension_value)
    row = alert.row()
    has_value = not math.isnan(alert.value)
    has_opening = not (math.isnan(alert.opened_baseline) or math.isnan(alert.peak_value))
    return [
        key.text(),
        alert.status,
        encode(alert.message(), schema_id),
        row["alert_id"],
        row["opened_window_start"],
        row["opened_at"],
        -1 if row["resolved_at"] is None else row["resolved_at"],
        row["status"],
        row["source"],
        row["metric"],
        row["window_kind"],
        row["dimension"],
        row["dimension_value"],
        row["last_window_start"],
        row["last_window_end"],
        row["value"] if has_value else 0.0,
        has_value,
        row["baseline"],
        row["baseline_method"],
        row["mad"],
        row["z_score"],
        row["peak_z"],
        row["threshold"],
        row["severity"],
        row["anomalous_windows"],
        row["peak_value"] if has_opening else 0.0,
        row["opened_baseline"] if has_opening else 0.0,
        row["opened_z"] if has_opening else 0.0,
        has_opening,
    ]


def expired_values(group: str) -> list[Any]:
    """The row that counts an expired group (`message_status` EXPIRED; the SQL writes it nowhere)."""
    values: dict[str, Any] = {
        "STRING": "", "LONG": -1, "DOUBLE": 0.0, "BOOLEAN": False, "INT": 0, "BYTES": b""
    }  # fmt: skip
    row = [values[kind] for _, kind in OUTPUT_FIELDS]
    row[0], row[1] = group, EXPIRED
    return row


def window_time(payload: bytes) -> int:
    """Event time of a ux.kpi / ux.funnel message: the end of its window (the watermark's basis)."""
    _, record = decode_framed(payload)
    return int(record["window_end"])


def window_time_assigner() -> Any:
    """A TimestampAssigner stamping each (kafka_key, payload, source) row with its window end."""
    from pyflink.common.watermark_strategy import TimestampAssigner

    class WindowEnd(TimestampAssigner):  # type: ignore[misc]
        def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
            return window_time(bytes(value[1]))

    return WindowEnd()


class _MapSlots:
    """`logic.Slots` over the MapState of the current key (entries `<metric>|<slot>`)."""

    def __init__(self, state: Any, metric: str) -> None:
        self._state = state
        self._prefix = metric + "|"

    def get(self, slot: int, default: Any = None, /) -> Any:
        value = self._state.get(self._prefix + str(slot))
        return default if value is None else value

    def __setitem__(self, slot: int, samples: list[tuple[int, float]], /) -> None:
        self._state.put(self._prefix + str(slot), samples)


def detect_function(settings: AnomalySettings) -> KeyedProcessFunction:
    """The keyed detector (uid `anomaly.detect.v1`)."""
    from pyflink.common import Types
    from pyflink.datastream import KeyedProcessFunction, RuntimeContext
    from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

    detector_settings = settings.detector
    pg = settings.postgres
    warm_days = settings.warm_start_days
    ttl_ms = settings.series_ttl_ms

    class DetectAnomalies(KeyedProcessFunction):  # type: ignore[misc]
        def open(self, runtime_context: RuntimeContext) -> None:
            self.series = runtime_context.get_state(
                ValueStateDescriptor("series", Types.PICKLED_BYTE_ARRAY())
            )
            self.slots = runtime_context.get_map_state(
                MapStateDescriptor("slots", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
            )
            self.detectors = {spec: Detector(detector_settings, spec) for spec in detector_settings.metrics}
            self.schema_id = alert_schema_id()

        def process_element(self, value: Any, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
            from pyflink.common import Row

            source = str(value[2])
            _, record = decode_framed(bytes(value[1]))
            states: dict[str, SeriesState] = self.series.value() or {}
            timers = ctx.timer_service()
            last_end = group_last_end(states.values())
            rows: list[list[Any]] = []
            if arrives_expired(last_end, int(record["window_end"]), ttl_ms):
                assert last_end is not None
                rows.extend(self.expire(states, last_end, str(ctx.get_current_key())))
                timers.delete_event_time_timer(expires_at(last_end, ttl_ms))
                states, last_end = {}, None
            out: list[Alert] = []
            history: list[dict[str, Any]] | None = None  # this segment's kpi_1m rows, read once
            for spec, key, window in series_windows(source, record, detector_settings.metrics):
                slots = _MapSlots(self.slots, key.metric)
                state = states.get(key.metric)
                detector = self.detectors[spec]
                if state is None:
                    state = states[key.metric] = SeriesState()
                    if warm_days and source == "kpi" and key.window_kind == WARM_WINDOW_KIND:
                        if history is None:
                            since = window.start - warm_days * DAY_MS
                            history = read_kpi_history(
                                pg, key.dimension, key.dimension_value, since, window.start
                            )
                        for past in history_from_rows(history, spec, window.start, warm_days):
                            detector.observe(key, state, slots, past, alerts=False)
                state.key = key
                out.extend(detector.observe(key, state, slots, window))
            if states:  # a key without a configured metric keeps no state and no timer
                self.series.update(states)
                new_end = group_last_end(states.values())
                if new_end is not None and new_end != last_end:
                    if last_end is not None:
                        timers.delete_event_time_timer(expires_at(last_end, ttl_ms))
                    timers.register_event_time_timer(expires_at(new_end, ttl_ms))
            for row in rows:
                yield Row(*row)
            for alert in out:
                yield Row(*output_values(alert, self.schema_id))

        def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
            from pyflink.common import Row

            states: dict[str, SeriesState] = self.series.value() or {}
            last_end = group_last_end(states.values())
            if last_end is None or timestamp < expires_at(last_end, ttl_ms):
                return  # a stale timer: a newer window came
            for row in self.expire(states, last_end, str(ctx.get_current_key())):
                yield Row(*row)

        def expire(self, states: dict[str, SeriesState], last_end: int, group: str) -> list[list[Any]]:
            """Resolve the key's open alerts, clear its state; the rows to emit."""
            at = expires_at(last_end, ttl_ms)
            messages = expire_group(states.values(), at, detector_settings.threshold)
            self.series.clear()
            self.slots.clear()
            return [*(output_values(m, self.schema_id) for m in messages), expired_values(group)]

    return DetectAnomalies()
