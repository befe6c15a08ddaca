"""Completeness of what clients send, measured at the collector (issue 19 item 5), pure: no I/O.

- Duplicates: an accepted event whose `event_id` this collector acknowledged recently (a client resend
  after a lost answer, or the same event sent twice). It is still written (the jobs drop it by its id);
  the count says how often clients resend.
- Sequence gaps: uxstream.js numbers its events per page load (`properties.uxs_load`, `uxs_seq` from 1).
  For each page load the highest number acknowledged is kept; an event numbered beyond the next expected
  one adds the numbers skipped to `gaps`; an event filling an earlier hole (it arrived late, e.g. after a
  retry) adds one to `filled`. So `gaps - filled` is the number of snippet events still missing between
  the browser and Kafka (as seen by this collector instance; behind a load balancer sum the instances:
  a page load's batches may go to different instances, which then see gaps the other filled).

Memory is bounded: the least recently seen ids and page loads are forgotten beyond their limits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

LOAD_PROPERTY: Final = "uxs_load"
SEQ_PROPERTY: Final = "uxs_seq"


@dataclass(frozen=True, slots=True)
class Observed:
    duplicates: int = 0
    gaps: int = 0
    filled: int = 0


class Completeness:
    def __init__(self, max_ids: int = 200_000, max_loads: int = 50_000) -> None:
        self._max_ids = max_ids
        self._max_loads = max_loads
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._loads: OrderedDict[str, tuple[int, set[int]]] = OrderedDict()
        """page load → (highest number seen, the numbers below it not seen yet)."""

    def observe(self, records: Sequence[Mapping[str, Any]]) -> Observed:
        """Account for the acknowledged records of one batch."""
        duplicates = gaps = filled = 0
        for record in records:
            event_id = record["event_id"]
            if event_id in self._ids:
                self._ids.move_to_end(event_id)
                duplicates += 1
                continue
            self._ids[event_id] = None
            if len(self._ids) > self._max_ids:
                self._ids.popitem(last=False)
            properties = record.get("properties") or {}
            load, seq = properties.get(LOAD_PROPERTY), properties.get(SEQ_PROPERTY)
            if not load or not isinstance(seq, str) or not seq.isdigit():
                continue
            number = int(seq)
            highest, missing = self._loads.pop(load, (0, set()))
            if number > highest:
                skipped = range(highest + 1, number)
                gaps += len(skipped)
                missing.update(skipped)
                highest = number
            elif number in missing:
                missing.discard(number)
                filled += 1
            self._loads[load] = (highest, missing)
            if len(self._loads) > self._max_loads:
                self._loads.popitem(last=False)
        return Observed(duplicates, gaps, filled)
