"""Flink adapter of the sessionize job: the scalar function that encodes final KPI windows as kpi_window.v2
records for the ux.kpi topic. (Gap-sessions become rows in the JVM: io.uxstream.udf.SplitSessions, the twin
of logic.split_gap_session.)"""

from __future__ import annotations

from datetime import UTC, datetime

from pyflink.table import DataTypes
from pyflink.table.udf import FunctionContext, ScalarFunction, udf

from jobs.common import contract, topics
from jobs.sessionize.logic import (
    DOUBLE_KPI_METRICS,
    KPI_METRICS,
    kpi_window_record,
)

KPI_SUBJECT = f"{topics.KPI}-value"
"""Catalog subject of the KPI window records (schemas/avro/catalog.json), whatever the topic is called."""


def _epoch_ms(utc_wall_clock: datetime) -> int:
    """A `to_utc(...)` TIMESTAMP (naive, UTC wall clock) as epoch milliseconds."""
    return int(utc_wall_clock.replace(tzinfo=UTC).timestamp() * 1000)


class EncodeKpiWindow(ScalarFunction):  # type: ignore[misc]
    """(window kind, UTC start/end, dimension, value, the metrics of KPI_METRICS, revision) → the
    Confluent-framed kpi_window.v2 record. Called once per final window row, not per event."""

    def open(self, function_context: FunctionContext) -> None:
        self.entry = contract.load_catalog().latest(KPI_SUBJECT)

    def eval(
        self,
        window_kind: str,
        window_start: datetime,
        window_end: datetime,
        dimension: str,
        dimension_value: str,
        *values: int | float | None,
    ) -> bytes:
        *metrics, revision = values
        record = kpi_window_record(
            window_kind,
            _epoch_ms(window_start),
            _epoch_ms(window_end),
            dimension,
            dimension_value,
            dict(zip(KPI_METRICS, metrics, strict=True)),
            int(revision or 0),
        )
        return contract.frame(self.entry.id, contract.encode_body(record, self.entry))


def encode_kpi_window() -> object:
    """The scalar function to register as `encode_kpi_window`."""
    input_types = [
        DataTypes.STRING(),
        DataTypes.TIMESTAMP(3),
        DataTypes.TIMESTAMP(3),
        DataTypes.STRING(),
        DataTypes.STRING(),
        *(DataTypes.DOUBLE() if m in DOUBLE_KPI_METRICS else DataTypes.BIGINT() for m in KPI_METRICS),
        DataTypes.INT(),
    ]
    return udf(EncodeKpiWindow(), input_types=input_types, result_type=DataTypes.BYTES())
