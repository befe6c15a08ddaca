"""The JVM ux.kpi encoder (io.uxstream.udf.EncodeKpiWindow behind `encode_kpi_window`) against its
specification, `contract.frame(id, contract.encode_body(logic.kpi_window_record(...), entry))` (issue 17:
sessionize runs without a Python worker).

Check tier: the JVM side runs as a subprocess (`java … io.uxstream.udf.EncodeKpiWindow`), one JSON array
per record (the key fields, then the schema's other fields in its order, as `job.kpi_topic_insert` passes
them); every record must be the same bytes, for fixed edge cases and for thousands of random records:
every window kind, null and non-null metrics, extreme longs and doubles (negative zero, subnormals, NaN,
infinities), dimension values with quotes, control, astral and non-ASCII characters."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys

from jobs.common import contract, topics
from jobs.sessionize.logic import DOUBLE_KPI_METRICS, KPI_METRICS, kpi_window_record, window_kinds
from tests.decode.support import jvm_classpath

KPI_SUBJECT = topics.value_subject(topics.KPI)

KINDS = window_kinds(60_000, 300_000)
DOUBLES = (0.0, -0.0, 1.0, 0.5, 1e-310, -1e308, 1.7976931348623157e308, math.nan, math.inf, -math.inf)
LONGS = (0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63))
TEXTS = ("", "(none)", "/checkout?step=2", 'say "hi"', "naïve/страница", "\u2028\x00\x1f", "🙂" * 40, "DE")


def java_encoded(rows: list[list[object]]) -> tuple[int, list[str], str]:
    done = subprocess.run(
        ["java", "-Xmx256m", "-cp", jvm_classpath(table=True), "io.uxstream.udf.EncodeKpiWindow"],
        input="".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
        capture_output=True, text=True, encoding="utf-8", timeout=300, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout.split("\n")[:-1], done.stderr


def specified(record: dict[str, object]) -> str:
    entry = contract.load_catalog().latest(KPI_SUBJECT)
    return contract.frame(entry.id, contract.encode_body(record, entry)).hex()


def random_record(rng: random.Random) -> dict[str, object]:
    metrics: dict[str, int | float | None] = {}
    for name in KPI_METRICS:
        if rng.random() < 0.3:
            metrics[name] = None
        elif name in DOUBLE_KPI_METRICS:
            metrics[name] = rng.choice((*DOUBLES, rng.uniform(-1e6, 1e6), rng.random()))
        else:
            metrics[name] = rng.choice((*LONGS, rng.randrange(0, 10**9)))
    start = rng.randrange(0, 253_402_300_799_000)  # up to 9999-12-31
    return kpi_window_record(
        rng.choice(KINDS),
        start,
        start + rng.choice((60_000, 300_000, 86_400_000)),
        rng.choice(("page_path", "country", "device_type", "(all)")),
        rng.choice((*TEXTS, "".join(chr(rng.choice((rng.randrange(32, 0x2FF), 0x1F600))) for _ in range(9)))),
        metrics,
        rng.choice((0, 1, 7, 2**31 - 1)),
    )


def test_every_record_is_the_bytes_of_the_python_specification() -> None:
    rng = random.Random(17)
    extreme: dict[str, int | float | None] = {
        m: (math.nan if m in DOUBLE_KPI_METRICS else 2**63 - 1) for m in KPI_METRICS
    }
    records = [
        kpi_window_record(KINDS[0], 0, 60_000, "page_path", "/", {}, 0),  # every metric null
        kpi_window_record(KINDS[1], 1_700_000_000_000, 1_700_000_300_000, "country", "DE", extreme, 1),
        *(random_record(rng) for _ in range(3000)),
    ]
    code, got, stderr = java_encoded([list(r.values()) for r in records])
    assert code == 0, stderr[-3000:]
    assert len(got) == len(records)
    mismatches = [(i, r) for i, (r, g) in enumerate(zip(records, got, strict=True)) if g != specified(r)]
    assert not mismatches, f"{len(mismatches)} records differ, first: {mismatches[0]}"


def test_a_row_with_the_wrong_number_of_fields_fails_with_the_schema_it_did_not_fit() -> None:
    record = kpi_window_record(KINDS[0], 0, 60_000, "page_path", "/", {}, 0)
    short = list(record.values())[:-1]
    code, got, stderr = java_encoded([short])
    entry = contract.load_catalog().latest(KPI_SUBJECT)
    assert code != 0 and got == []
    fields = len(record) - 5
    assert (
        f"encode_kpi_window: {fields - 1} values after the key fields, but {entry.file} (schema id "
        f"{entry.id}) has {fields} fields after them"
    ) in stderr


if __name__ == "__main__":
    sys.exit("run with pytest")
