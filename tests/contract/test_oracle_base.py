"""The oracle base: ground truth → valid events (dedup, future flags) and dead-letter expectations."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from jobs.common.contract import BAD_MAGIC_BYTE, IMPOSSIBLE_VALUE, MISSING_FIELD, DecodedEvent, decode, encode
from jobs.common.oracle import (
    DEFAULT_DEDUP_TTL_MS,
    FUTURE,
    LATE,
    ON_TIME,
    GroundTruthError,
    arrival_counts,
    arrivals,
    clean,
    load,
    parse_truth_line,
)
from uxstream.contract.generator import Generator, GeneratorConfig, truth_line

from .conftest import T0, V2_FIELDS, V3_FIELDS, EventBuilder

HOUR = 3_600_000
TTL = DEFAULT_DEDUP_TTL_MS


def line(seq: int, event: dict[str, Any], schema_id: int = 1, **extra: Any) -> str:
    """A ground-truth event line."""
    return json.dumps(
        {
            "seq": seq,
            "schema_id": schema_id,
            "partition": 0,
            "key": "k",
            "timestamp": event["received_at"],
            "event": event,
            **extra,
        }
    )


def records(*lines: str) -> list[Any]:
    return [parse_truth_line(text, f"truth.jsonl:{n}") for n, text in enumerate(lines, 1)]


def at(page_view: EventBuilder, event_id: str, ts: int, **overrides: Any) -> dict[str, Any]:
    return page_view(event_id=event_id, ts=ts, received_at=ts + 100, **overrides)


# ------------------------------------------------------------------------------------------- dedup


def test_a_resent_event_within_the_ttl_is_a_duplicate(page_view: EventBuilder) -> None:
    first = at(page_view, "e1", T0)
    result = clean(records(line(0, first), line(1, at(page_view, "e2", T0 + HOUR)), line(2, first)))

    assert [(e.event_id, e.duplicate) for e in result.events] == [("e1", False), ("e2", False), ("e1", True)]
    assert [e.event_id for e in result.counted] == ["e1", "e2"]
    assert [e.seq for e in result.duplicates] == [2]


def test_an_event_id_seen_again_after_the_ttl_of_event_time_is_counted_again(page_view: EventBuilder) -> None:
    result = clean(
        records(
            line(0, at(page_view, "e1", T0)),
            line(1, at(page_view, "e2", T0 + TTL)),  # event time reaches first.ts + TTL
            line(2, at(page_view, "e1", T0 + TTL + 1)),
        )
    )

    assert [e.duplicate for e in result.events] == [False, False, False]


def test_the_ttl_is_measured_on_event_time_not_on_the_duplicates_own_ts(page_view: EventBuilder) -> None:
    result = clean(
        records(
            line(0, at(page_view, "e1", T0)),
            line(1, at(page_view, "e2", T0 + TTL - 1)),
            line(2, at(page_view, "e1", T0)),  # an identical re-send: still within the TTL
        )
    )

    assert [e.duplicate for e in result.events] == [False, False, True]


def test_a_future_timestamp_does_not_advance_the_dedup_clock(page_view: EventBuilder) -> None:
    ahead = page_view(event_id="f", ts=T0 + TTL + HOUR, received_at=T0 + 200)
    result = clean(
        records(line(0, at(page_view, "e1", T0)), line(1, ahead), line(2, at(page_view, "e1", T0)))
    )

    assert [(e.event_id, e.future, e.duplicate) for e in result.events] == [
        ("e1", False, False),
        ("f", True, False),
        ("e1", False, True),
    ]
    assert [e.event_id for e in result.on_time] == ["e1"]


def test_the_ttl_is_configurable(page_view: EventBuilder) -> None:
    lines = records(
        line(0, at(page_view, "e1", T0)),
        line(1, at(page_view, "e2", T0 + HOUR)),
        line(2, at(page_view, "e1", T0)),
    )

    assert [e.duplicate for e in clean(lines, dedup_ttl_ms=HOUR).events] == [False, False, False]


# --------------------------------------------------------------------------------- dead letters


def test_invalid_event_lines_become_dead_letters_with_the_rules_reason(page_view: EventBuilder) -> None:
    bad = at(page_view, "e1", T0, cls=-0.5)
    result = clean(records(line(0, bad), line(1, at(page_view, "", T0))))

    assert [(d.seq, d.reason) for d in result.dead_letters] == [(0, IMPOSSIBLE_VALUE), (1, MISSING_FIELD)]
    assert result.dead_letters[0].payload == encode(bad, 1)
    assert result.events == ()


def test_payload_lines_are_dead_letters_with_their_exact_bytes() -> None:
    payload = b"\x7bnot avro"
    text = json.dumps(
        {
            "seq": 0,
            "schema_id": None,
            "partition": 1,
            "key": "k",
            "timestamp": T0,
            "payload_b64": base64.b64encode(payload).decode(),
            "expected_reason": BAD_MAGIC_BYTE,
        }
    )

    (dead,) = clean(records(text)).dead_letters

    assert (dead.payload, dead.reason, dead.partition) == (payload, BAD_MAGIC_BYTE, 1)


def test_an_expected_reason_the_rules_disagree_with_is_an_error(page_view: EventBuilder) -> None:
    with pytest.raises(
        GroundTruthError, match="expected_reason is missing_field but the validity rules give valid"
    ):
        clean(records(line(0, at(page_view, "e1", T0), expected_reason=MISSING_FIELD)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "truth.jsonl:1: not valid JSON"),
        ('{"seq": 0, "timestamp": 1, "payload_b64": "AA=="}', "needs 'expected_reason'"),
        ('{"seq": 0, "timestamp": 1}', "a line needs 'event' or 'payload_b64'"),
        ('{"seq": "0", "timestamp": 1}', "'seq' must be an integer"),
        (
            '{"seq": 0, "timestamp": 1, "schema_id": 1, "event": {"event_id": "x"}}',
            "does not fit ux_event v1",
        ),
    ],
)
def test_a_malformed_ground_truth_line_is_reported_with_its_line(text: str, message: str) -> None:
    with pytest.raises(GroundTruthError, match=message):
        records(text)


# ------------------------------------------------------------------------------------ reader view


def test_v1_events_get_the_v2_defaults_as_decoding_gives_them(page_view: EventBuilder) -> None:
    event = at(page_view, "e1", T0, page_load_ms=1200)  # an int in JSON: Avro gives back a double

    (oracle_event,) = clean(records(line(0, event))).events
    decoded = decode(encode(event, 1))

    assert oracle_event.event == {**event, "page_load_ms": 1200.0, **dict.fromkeys(V2_FIELDS), **V3_FIELDS}
    assert isinstance(decoded, DecodedEvent) and decoded.event == oracle_event.event


# ------------------------------------------------------------------------- with the generator


def test_generated_ground_truth_cleans_into_events_and_the_injected_dead_letters(tmp_path: Path) -> None:
    config = GeneratorConfig(
        events=5_000, seed=3, duplicate_fraction=0.05, malformed_fraction=0.05, future_fraction=0.01
    )
    produced = list(Generator(config).records())
    path = tmp_path / "truth.jsonl"
    path.write_text("".join(truth_line(seq, r[4] or "") for seq, r in enumerate(produced)), encoding="utf-8")

    result = load(path)

    tags = {seq: json.loads(truth_line(seq, r[4] or "")).get("tags", []) for seq, r in enumerate(produced)}
    assert len(result.events) + len(result.dead_letters) == len(produced)
    assert {d.seq for d in result.dead_letters} == {
        s for s, t in tags.items() if any(x.startswith("malformed") for x in t)
    }
    assert {e.seq for e in result.duplicates} == {s for s, t in tags.items() if "duplicate" in t}
    assert {e.seq for e in result.events if e.future} == {s for s, t in tags.items() if "future" in t}
    assert all(produced[d.seq][1] == d.payload for d in result.dead_letters)
    for event in result.events[:500]:
        decoded = decode(produced[event.seq][1])
        assert isinstance(decoded, DecodedEvent) and decoded.event == event.event


def test_a_clean_generated_stream_has_no_dead_letters_and_no_duplicates() -> None:
    config = replace(GeneratorConfig(events=3_000, seed=5), bot_share=0.1)
    produced = list(Generator(config).records())

    result = clean(records(*(truth_line(s, r[4] or "") for s, r in enumerate(produced))))

    assert (len(result.events), result.dead_letters, result.duplicates) == (3_000, (), ())


def _arrival(event_id: str, ts: int, received_at: int | None = None, name: str = "page_view") -> Any:
    """An object with `.event`, as `arrivals` takes (only the fields it reads)."""
    event = {"event_id": event_id, "ts": ts, "received_at": ts if received_at is None else received_at}
    return SimpleNamespace(event={**event, "event_name": name})


def test_arrivals_classify_future_late_and_duplicates_as_the_jobs_do() -> None:
    minute = 60_000
    items = [
        _arrival("a", T0),  # first event: no watermark yet
        _arrival("f", T0 + HOUR, received_at=T0),  # 1 h ahead of its receive time: future
        _arrival("b", T0 + minute),  # the future event did not move the watermark: on time
        _arrival("a", T0 + 2 * minute),  # same id again, on time: occurrence 2
        _arrival("c", T0 + minute - 5_000),  # below the watermark (T0 + 2 min - 5 s): late
        _arrival("x", T0 + 10 * minute, name="js_error"),  # not relevant, but moves the watermark
        _arrival("d", T0 + 5 * minute, name="add_to_cart"),  # below T0 + 10 min - 5 s: late
    ]
    got = [(a.event["event_id"], a.kind, a.watermark, a.occurrence) for a in arrivals(items)]
    assert got == [
        ("a", ON_TIME, None, 1),
        ("f", FUTURE, T0 - 5_000, 0),
        ("b", ON_TIME, T0 - 5_000, 1),
        ("a", ON_TIME, T0 + minute - 5_000, 2),
        ("c", LATE, T0 + 2 * minute - 5_000, 0),
        ("x", ON_TIME, T0 + 2 * minute - 5_000, 1),
        ("d", LATE, T0 + 10 * minute - 5_000, 0),
    ]
    relevant = [a.event["event_id"] for a in arrivals(items, relevant=frozenset({"add_to_cart"}))]
    assert relevant == ["d"]
    assert arrival_counts(arrivals(items)) == {"late_events": 2, "future_events": 1, "duplicates": 1}
