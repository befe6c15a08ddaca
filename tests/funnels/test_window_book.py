"""The funnel window stage (jobs/funnels/logic.py `WindowBook`): a window is written once its end + the
conversion window has passed, and an attempt that reaches it later (an anonymous visit the identity stage
held until its login or the visit's end: README "Identity in funnels") rewrites it complete, with the next
revision, never with the late attempts alone; after the retention the row stays as written."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jobs.funnels.logic import WINDOW_RETENTION_MS, Funnel, Step, Summary, WindowBook, WindowRow

HOUR = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z, a window start
FUNNEL = Funnel(name="checkout", steps=(Step("view"), Step("buy")), window_ms=HOUR)


class Store:
    """The MapState operations the book uses, over a dict."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value

    def remove(self, key: str) -> None:
        del self.data[key]

    def items(self) -> Iterable[tuple[str, Any]]:
        return list(self.data.items())


CONVERTED: Summary = ("converted", 2, 60_000, ())
DROPPED: Summary = ("dropped", 1, None, ())


def global_row(rows: list[WindowRow]) -> tuple[int, int, int, int]:
    (row,) = [r for r in rows if r.dimension == "global"]
    return (row.entered, row.converted, row.dropped, row.revision)


def test_a_window_is_written_once_when_its_end_plus_the_conversion_window_passes() -> None:
    book = WindowBook(FUNNEL, HOUR, Store())
    final = T0 + 2 * HOUR
    assert book.add("a1", T0 + 10, CONVERTED, None) == final
    assert book.add("a2", T0 + 20, DROPPED, None) == final
    assert book.fire(final - 1) == ([], [])
    rows, timers = book.fire(final)
    assert global_row(rows) == (2, 1, 1, 1)
    assert timers == [final + WINDOW_RETENTION_MS]
    assert book.fire(final + 1) == ([], [])  # written: nothing new


def test_a_late_attempt_rewrites_the_window_complete_with_the_next_revision() -> None:
    book = WindowBook(FUNNEL, HOUR, Store())
    final = T0 + 2 * HOUR
    book.add("a1", T0 + 10, CONVERTED, None)
    book.fire(final)
    # A held anonymous visit's attempt reaches the stage 40 minutes after the window was written.
    assert book.add("late", T0 + 30, CONVERTED, final + 40 * 60_000) == final  # fires at the next watermark
    rows, timers = book.fire(final + 40 * 60_000 + 1)
    assert global_row(rows) == (2, 2, 0, 2)  # both attempts, not the late one alone
    assert timers == []
    book.add("later", T0 + 40, DROPPED, final + HOUR)
    assert global_row(book.fire(final + HOUR)[0]) == (3, 2, 1, 3)


def test_after_the_retention_the_window_is_forgotten_and_a_later_attempt_changes_no_row() -> None:
    store = Store()
    book = WindowBook(FUNNEL, HOUR, store)
    final = T0 + 2 * HOUR
    book.add("a1", T0 + 10, CONVERTED, None)
    book.fire(final)
    assert book.fire(final + WINDOW_RETENTION_MS) == ([], [])
    assert store.data == {}  # the window's attempts and revision are gone
    assert book.add("too-late", T0 + 20, CONVERTED, final + WINDOW_RETENTION_MS) is None
    assert store.data == {}


def test_windows_are_final_each_at_their_own_time() -> None:
    book = WindowBook(FUNNEL, HOUR, Store())
    book.add("a1", T0 + 10, CONVERTED, None)
    book.add("b1", T0 + HOUR + 10, DROPPED, None)
    rows, _ = book.fire(T0 + 2 * HOUR)
    assert {r.window_start for r in rows} == {T0}
    rows, _ = book.fire(T0 + 3 * HOUR)
    assert {r.window_start for r in rows} == {T0 + HOUR}
