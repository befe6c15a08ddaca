"""`pack_session_event` (io.uxstream.udf.PackSessionEvent), one event of a gap-session as the JSON array of
its SESSION_EVENT_FIELDS (jobs/sessionize/job.py `session_input`): the same values as the
`JSON_ARRAY(... NULL ON NULL)` it replaced, for any text (quotes, backslashes, control characters, CJK,
astral characters, empty strings, NULL) and any number, as SessionRows and logic.unpack_session read it.

Flink tier: one bounded query on a MiniCluster, both expressions over the same rows."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from jobs.common.connectors import sql_literal
from jobs.common.flink_env import FlinkSettings, create_environments
from jobs.sessionize.logic import SESSION_EVENT_FIELDS

pytestmark = [pytest.mark.services, pytest.mark.flink]

NUMBERS = {"ts": "BIGINT", "engagement_time_ms": "BIGINT", "feedback_score": "INT"}
ALPHABET = ['"', "\\", "\n", "\t", "\r", "\b", "\f", "\x00", "\x01", "\x1f", "\x7f", "/", "'", "a", "Z", " ",
            "é", "ß", "用", "户", "\u2028", "\uff21", "😀", "𝄞", ","]  # fmt: skip


def text_sql(value: str | None) -> str:
    """A STRING expression for `value`: literals, with control characters as CHR(n)."""
    if value is None:
        return "CAST(NULL AS STRING)"
    parts: list[str] = []
    run = ""
    for char in value:
        if ord(char) < 0x20:
            if run:
                parts.append(sql_literal(run))
                run = ""
            parts.append(f"CHR({ord(char)})")
        else:
            run += char
    if run or not parts:
        parts.append(sql_literal(run))
    return "CAST(" + " || ".join(parts) + " AS STRING)"


def random_row(rng: random.Random) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for field in SESSION_EVENT_FIELDS:
        if rng.random() < 0.15:
            row[field] = None
        elif field in NUMBERS:
            bound = 2**31 - 1 if NUMBERS[field] == "INT" else 2**63 - 1
            row[field] = rng.choice([0, 1, -1, bound, -bound - 1, rng.randrange(-bound, bound)])
        else:
            row[field] = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 12)))
    return row


def value_sql(field: str, value: Any) -> str:
    if field in NUMBERS:
        return f"CAST({'NULL' if value is None else value} AS {NUMBERS[field]})"
    return text_sql(value)


def test_pack_session_event_gives_the_values_json_array_gives(tmp_path: Path) -> None:
    rng = random.Random(17)
    rows = [random_row(rng) for _ in range(80)]
    rows.append({f: None for f in SESSION_EVENT_FIELDS})
    _, t_env = create_environments(FlinkSettings(state_dir=tmp_path / "state"), "pack-session-event")
    t_env.execute_sql(
        "CREATE TEMPORARY SYSTEM FUNCTION pack_session_event "
        "AS 'io.uxstream.udf.PackSessionEvent' LANGUAGE JAVA"
    )
    fields = ", ".join(SESSION_EVENT_FIELDS)
    selects = " UNION ALL ".join(
        f"SELECT {i} AS i, " + ", ".join(f"{value_sql(f, row[f])} AS {f}" for f in SESSION_EVENT_FIELDS)
        for i, row in enumerate(rows)
    )
    query = f"""SELECT i, pack_session_event({fields}), JSON_ARRAY({fields} NULL ON NULL)
FROM ({selects})"""
    with t_env.execute_sql(query).collect() as results:
        got = sorted((r[0], r[1], r[2]) for r in results)

    assert [i for i, _, _ in got] == list(range(len(rows)))
    for i, packed, json_array in got:
        expected = [rows[i][f] for f in SESSION_EVENT_FIELDS]
        assert json.loads(packed) == expected, packed
        assert json.loads(json_array) == expected
    # even the text is the same: Jackson's escapes, no spaces
    assert [packed for _, packed, _ in got] == [json_array for _, _, json_array in got]
