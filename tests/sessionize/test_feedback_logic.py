"""Feedback in sessions and KPI windows (issue 22 item 6, README "Feedback"): the session state machine
(logic) and the batch oracle agree, sessions list the feedback given next to their errors, and the KPI
oracle counts responses, score sums and NPS parts per window and dimension. Check tier: no service."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from jobs.common.contract import event_reader_schema, scrub_comment
from jobs.common.enrichment import EnrichmentSettings
from jobs.common.oracle import reader_view
from jobs.sessionize.logic import (
    MAX_SESSION_FEEDBACK,
    SessionEvent,
    SessionRow,
    SessionRules,
    sessionize_batch,
)
from jobs.sessionize.oracle import expected, expected_sessions

USER = "user-1"
SECOND = 1_000
MINUTE = 60 * SECOND
T0 = int(datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp() * 1000)  # a Monday, 09:00 UTC


def ev(ts: int, event_type: str = "page_view", n: int = 0, **kw: Any) -> SessionEvent:
    return SessionEvent(
        ts=ts,
        event_id=f"e{ts}-{n}",
        event_type=event_type,
        event_name="survey_answered" if event_type == "feedback" else event_type,
        page_path="/checkout" if event_type == "page_view" else None,
        **kw,
    )


def answer(ts: int, scale: str, score: int, comment: str | None = None, n: int = 0) -> SessionEvent:
    return ev(
        ts,
        "feedback",
        n,
        survey_id=f"survey-{scale}",
        feedback_scale=scale,
        feedback_score=score,
        feedback_comment=comment,
    )


def rows_and_oracle(events: list[SessionEvent]) -> list[dict[str, Any]]:
    """The logic's rows (feedback JSON parsed, as PostgreSQL's JSONB gives it back), checked against the
    oracle's."""
    rows = sessionize_batch(USER, SessionRules(), events)
    got = [
        {**dataclasses.asdict(r), "feedback": None if r.feedback is None else json.loads(r.feedback)}
        for r in rows
    ]
    dicts = [{**dataclasses.asdict(e), "anonymous_id": USER, "user_id": None} for e in events]
    assert got == expected_sessions(dicts)
    return got


def test_a_low_score_reads_next_to_the_errors_of_the_same_session() -> None:
    comment = scrub_comment("Payment failed twice, card 4111 1111 1111 1111, mail me: a.b@example.com")
    (row,) = rows_and_oracle(
        [
            ev(T0),
            ev(T0 + 5 * SECOND, "error"),
            ev(T0 + 9 * SECOND, "error"),
            answer(T0 + MINUTE, "0-10", 2, comment),
        ]
    )

    assert row["error_count"] == 2
    assert row["feedback_responses"] == 1
    assert row["feedback"] == [
        {
            "ts": T0 + MINUTE,
            "survey_id": "survey-0-10",
            "scale": "0-10",
            "score": 2,
            "comment": "Payment failed twice, card [number], mail me: [email]",
        }
    ]


def test_feedback_is_listed_in_time_order_whatever_the_arrival_order() -> None:
    (row,) = rows_and_oracle(
        [answer(T0 + 2 * MINUTE, "1-5", 4), ev(T0), answer(T0 + MINUTE, "0-10", 9, "top")]
    )

    assert [(f["scale"], f["score"], f["comment"]) for f in row["feedback"]] == [
        ("0-10", 9, "top"),
        ("1-5", 4, None),
    ]


def test_a_session_lists_its_first_twenty_answers_and_counts_them_all() -> None:
    answers = [answer(T0 + i * SECOND, "1-5", 1 + i % 5, n=i) for i in range(25)]
    (row,) = rows_and_oracle([ev(T0), *answers])

    assert row["feedback_responses"] == 25
    assert len(row["feedback"]) == MAX_SESSION_FEEDBACK == 20
    assert [f["ts"] for f in row["feedback"]] == [T0 + i * SECOND for i in range(20)]


def test_a_session_without_feedback_has_none() -> None:
    (row,) = rows_and_oracle([ev(T0), ev(T0 + SECOND, "click")])

    assert (row["feedback_responses"], row["feedback"]) == (0, None)


def test_feedback_in_separate_sessions_stays_with_its_session() -> None:
    rows = rows_and_oracle(
        [ev(T0), answer(T0 + SECOND, "0-10", 10), ev(T0 + 40 * MINUTE), answer(T0 + 41 * MINUTE, "0-10", 0)]
    )

    assert [[f["score"] for f in r["feedback"]] for r in rows] == [[10], [0]]


def test_the_session_row_lists_the_v0014_columns_then_the_v0015_column_last() -> None:
    names = [f.name for f in dataclasses.fields(SessionRow)]
    assert names[-3:] == ["feedback_responses", "feedback", "device_key"]


# ------------------------------------------------------------------------------------- KPI windows


def oracle_event(seq: int, **fields: Any) -> SimpleNamespace:
    base = {
        "event_id": f"k{seq}",
        "event_name": "survey_answered",
        "anonymous_id": f"visitor-{seq}",
        "ts": T0 + seq * SECOND,
        "received_at": T0 + seq * SECOND,
        "country": "DE",
        "device_type": "mobile",
    }
    event = reader_view({**base, **fields}, event_reader_schema())
    return SimpleNamespace(seq=seq, partition=0, event=event)


def nps(seq: int, score: int) -> SimpleNamespace:
    return oracle_event(
        seq, event_type="feedback", survey_id="nps", feedback_scale="0-10", feedback_score=score
    )


def csat(seq: int, score: int) -> SimpleNamespace:
    return oracle_event(
        seq, event_type="feedback", survey_id="csat", feedback_scale="1-5", feedback_score=score
    )


NO_ENRICHMENT = EnrichmentSettings(user_agents=False, geoip_db=None)


def kpi_1m(events: list[SimpleNamespace]) -> dict[tuple[int, str, str], dict[str, Any]]:
    rows = expected(events, enrichment=NO_ENRICHMENT, dimensions=("country",))["kpi_1m"]
    return {(r["window_start"], r["dimension"], r["dimension_value"]): r for r in rows}


FEEDBACK_COLUMNS = (
    "feedback_responses", "nps_responses", "nps_score_sum", "nps_promoters", "nps_passives",
    "nps_detractors", "nps", "csat_responses", "csat_score_sum",
)  # fmt: skip


def test_nps_is_100_times_promoters_minus_detractors_over_responses() -> None:
    scores = [10, 9, 9, 8, 7, 6, 3, 0, 10, 5]  # 4 promoters, 2 passives, 4 detractors
    events = [oracle_event(0, event_type="page_view", page_path="/")]
    events += [nps(i + 1, s) for i, s in enumerate(scores)]
    events += [csat(11, 5), csat(12, 2), csat(13, 4)]

    row = kpi_1m(events)[(T0, "global", "(all)")]

    assert {c: row[c] for c in FEEDBACK_COLUMNS} == {
        "feedback_responses": 13,
        "nps_responses": 10,
        "nps_score_sum": 67,
        "nps_promoters": 4,
        "nps_passives": 2,
        "nps_detractors": 4,
        "nps": 0.0,
        "csat_responses": 3,
        "csat_score_sum": 11,
    }
    assert row["events"] == 14


def test_a_window_without_nps_answers_has_a_null_nps_and_zero_sums() -> None:
    row = kpi_1m([csat(0, 3), oracle_event(1, event_type="click")])[(T0, "country", "DE")]

    assert {c: row[c] for c in FEEDBACK_COLUMNS} == {
        "feedback_responses": 1,
        "nps_responses": 0,
        "nps_score_sum": 0,
        "nps_promoters": 0,
        "nps_passives": 0,
        "nps_detractors": 0,
        "nps": None,
        "csat_responses": 1,
        "csat_score_sum": 3,
    }


def test_nps_per_window_uses_only_that_windows_answers() -> None:
    rows = kpi_1m([nps(0, 10), nps(1, 2), nps(2, 9), nps(61, 1)])  # the last one a minute later

    assert rows[(T0, "global", "(all)")]["nps"] == 100 * (2 - 1) / 3
    assert rows[(T0 + MINUTE, "global", "(all)")]["nps"] == -100.0
