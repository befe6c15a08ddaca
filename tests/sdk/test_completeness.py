"""Duplicates and the snippet's sequence gaps as the collector counts them (collector/completeness.py)."""

from __future__ import annotations

from typing import Any

from uxstream.collector.completeness import Completeness, Observed


def event(event_id: str, load: str | None = None, seq: int | None = None) -> dict[str, Any]:
    properties = {} if load is None else {"uxs_load": load, "uxs_seq": str(seq)}
    return {"event_id": event_id, "properties": properties}


def test_an_event_id_seen_again_is_a_duplicate_and_counts_nothing_else() -> None:
    seen = Completeness()
    assert seen.observe([event("a", "L", 1), event("b", "L", 2)]) == Observed()
    assert seen.observe([event("a", "L", 1), event("b", "L", 2)]) == Observed(duplicates=2)


def test_a_skipped_number_is_a_gap_until_it_arrives() -> None:
    seen = Completeness()
    assert seen.observe([event("1", "L", 1), event("4", "L", 4)]) == Observed(gaps=2)
    assert seen.observe([event("3", "L", 3)]) == Observed(filled=1)
    assert seen.observe([event("3b", "L", 3)]) == Observed()  # not a hole any more
    assert seen.observe([event("5", "L", 5), event("2", "L", 2)]) == Observed(filled=1)


def test_page_loads_are_numbered_separately_and_a_first_event_after_1_is_a_gap() -> None:
    seen = Completeness()
    assert seen.observe([event("a1", "A", 1), event("b3", "B", 3), event("a2", "A", 2)]) == Observed(gaps=2)


def test_events_without_a_sequence_count_only_as_duplicates() -> None:
    seen = Completeness()
    assert seen.observe([event("x"), event("y")]) == Observed()
    assert seen.observe([event("x")]) == Observed(duplicates=1)


def test_memory_is_bounded_the_oldest_forgotten() -> None:
    seen = Completeness(max_ids=2, max_loads=1)
    seen.observe([event("a", "A", 1), event("b", "B", 1), event("c", "B", 2)])
    assert seen.observe([event("a", "A", 3)]) == Observed(gaps=2)  # a and load A were forgotten
