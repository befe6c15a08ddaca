"""`epoch_ms` (io.uxstream.udf.EpochMs), the runtime watermark of the arrival classification in epoch
milliseconds (jobs/common/sql/classify.sql) and the funnels job's dead-letter Kafka timestamps: exact for
every instant in every `table.local-time-zone`, where the expression it replaced,
`UNIX_TIMESTAMP(CAST(t AS STRING)) * 1000 + EXTRACT(MILLISECOND FROM t)`, went through a wall-clock string
of the session zone, which names two instants in the hour a daylight-saving zone repeats.

Flink tier: one bounded query on a MiniCluster."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobs.common import decode
from jobs.common.flink_env import FlinkSettings, create_environments

pytestmark = [pytest.mark.services, pytest.mark.flink]


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


INSTANTS = (
    ms("2026-10-25T00:30:00.123"),  # 02:30:00.123 CEST in Europe/Berlin ...
    ms("2026-10-25T01:30:00.123"),  # ... and 02:30:00.123 CET, one hour later: the same wall clock
    ms("2026-03-29T01:00:00.999"),  # 03:00 CEST, right after the skipped hour
    ms("2000-01-01T00:00:00.000"),
    ms("2099-12-31T23:59:59.999"),
    0,
)


def test_epoch_ms_is_exact_where_the_wall_clock_string_round_trip_is_an_hour_off(tmp_path: Path) -> None:
    _, t_env = create_environments(FlinkSettings(state_dir=tmp_path / "state"), "epoch-ms")
    t_env.get_config().set("table.local-time-zone", "Europe/Berlin")
    t_env.execute_sql(
        f"CREATE TEMPORARY SYSTEM FUNCTION epoch_ms AS '{decode.FUNCTIONS['epoch_ms']}' LANGUAGE JAVA"
    )
    values = ", ".join(f"({i}, CAST({v} AS BIGINT))" for i, v in enumerate(INSTANTS))
    query = f"""SELECT i, epoch_ms(t), UNIX_TIMESTAMP(CAST(t AS STRING)) * 1000 + EXTRACT(MILLISECOND FROM t),
  epoch_ms(CAST(NULL AS TIMESTAMP_LTZ(3)))
FROM (SELECT i, TO_TIMESTAMP_LTZ(v, 3) AS t FROM (VALUES {values}) AS x (i, v))"""
    with t_env.execute_sql(query).collect() as results:
        rows = sorted(tuple(r) for r in results)
    assert [r[1] for r in rows] == list(INSTANTS)
    assert [r[3] for r in rows] == [None] * len(INSTANTS)
    # the replaced expression maps both instants of the repeated hour to one of them
    old = [r[2] for r in rows]
    assert old[0] == old[1]
    assert old[2:] == list(INSTANTS[2:])
