"""Thin Flink adapters of the anomaly job: the keyed detector function and the output row type.

The key is one Kafka message key of ux.kpi / ux.funnel (`window_kind|dimension|dimension_value`, or
`funnel|dimension|dimension_value`), prefixed with the source: every record of a key holds the windows of
all configured metrics of that segment. Per key, ValueState `series` holds the `SeriesState` of each
metric and MapState `slots` the seasonal slots (`<metric>|<hour of week>` → samples), so an update
rewrites one slot, not a week of history.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from jobs.anomaly.logic import Alert, Detector, SeriesKey, SeriesState, series_windows
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
                out.extend(detector.observe(key, state, slots, window))
            self.series.update(states)
            for alert in out:
                yield Row(*output_values(alert, self.schema_id))

    return DetectAnomalies()
