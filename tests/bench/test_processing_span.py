"""The processing span of a bounded bench run (issue 17 item 3): from the job being up to its last record,
from the REST samples of the run. Pure: samples in, span out."""

from __future__ import annotations

from uxstream.bench.monitor import Observation, Sample, Span, poll_interval, processing_span

SOURCE = "source-vertex"
SINK = "sink-vertex"


def sample(at: float, source_read: float, sink_read: float, state: str = "RUNNING") -> Sample:
    return Sample(
        at,
        state,
        True,
        {
            SOURCE: {"read-records": source_read, "write-records": source_read},
            SINK: {"read-records": sink_read, "write-records": 0.0},
        },
    )


def observation(*samples: Sample) -> Observation:
    seen = Observation()
    seen.source_vertices = [SOURCE]
    seen.samples = list(samples)
    return seen


def test_the_span_runs_from_the_first_read_to_when_every_count_settled() -> None:
    seen = observation(
        sample(10.0, 0, 0), sample(11.0, 2_000, 1_000), sample(12.0, 10_000, 9_000),
        sample(13.0, 10_000, 10_000), sample(14.0, 10_000, 10_000), sample(15.0, 10_000, 10_000),
    )  # fmt: skip
    # starts midway between 10 and 11 s; the sink still had (1 − 500/10,000) of its input to read then
    assert processing_span(seen, finished=(15.5, 10_000)) == Span(
        start=10.5, end=12.5, end_observed=True, source_records=10_000, records=9_500
    )


def test_a_finish_before_the_last_poll_saw_every_record_ends_the_span_at_the_finish() -> None:
    """The per-job MiniCluster closes with its REST API when the job finishes: on a loaded box the last
    poll saw 8,866 of 10,000 records (CI), and every poll after the finish failed."""
    seen = observation(sample(10.0, 0, 0), sample(11.0, 2_000, 1_000), sample(12.0, 8_866, 8_000))
    # the sources had read 1,000 of the 10,000 midway between the polls at 10 and 11 s: 9,000 in the span
    assert processing_span(seen, finished=(12.7, 10_000)) == Span(
        start=10.5, end=12.7, end_observed=False, source_records=10_000, records=9_000
    )


def test_old_counts_polled_after_the_finish_still_end_the_span_at_the_finish() -> None:
    """Flink's metric fetcher answers a poll from its store and then fetches anew: a poll a quiet interval
    after the one before shows that interval's counts, even after the finish (CI: 3,960 of 10,000)."""
    seen = observation(sample(10.0, 0, 0), sample(11.0, 2_000, 1_000), sample(13.0, 3_960, 3_000))
    assert processing_span(seen, finished=(12.6, 10_000)) == Span(
        start=10.5, end=12.6, end_observed=False, source_records=10_000, records=9_000
    )


def test_without_a_reported_finish_the_last_poll_is_what_was_read() -> None:
    """An unbounded or failed run: what the sources had read at the last poll, nothing assumed."""
    seen = observation(sample(10.0, 0, 0), sample(11.0, 2_000, 1_000), sample(12.0, 8_866, 8_000))
    span = processing_span(seen)
    assert span is not None and (span.source_records, span.end) == (8_866, 11.5)


# ------------------------------------------------------------------------------------- when to poll

FAST, QUIET = 0.1, 1.0


def interval(expected: int | None, *samples: Sample) -> float:
    return poll_interval(observation(*samples), expected, FAST, QUIET)


def test_polls_are_fast_until_the_span_has_started() -> None:
    """The span starts midway between the last poll without reads and the first with: both come fast."""
    assert interval(1_000_000) == FAST
    assert interval(1_000_000, sample(10.0, 0, 0)) == FAST
    assert interval(1_000_000, sample(10.0, 0, 0), sample(10.1, 5_000, 0)) == FAST


def test_polls_are_quiet_in_the_middle_of_a_bounded_run() -> None:
    # 10,000 records/s, 900,000 left: 90 s away
    assert interval(1_000_000, sample(10.0, 90_000, 0), sample(11.0, 100_000, 90_000)) == QUIET


def test_polls_are_fast_again_when_the_sources_finish_within_three_quiet_intervals() -> None:
    # 10,000 records/s: 30,000 left is 3 s away (fast), 31,000 left is 3.1 s away (quiet)
    assert interval(1_000_000, sample(10.0, 960_000, 0), sample(11.0, 970_000, 0)) == FAST
    assert interval(1_000_000, sample(10.0, 959_000, 0), sample(11.0, 969_000, 0)) == QUIET


def test_polls_are_fast_once_the_sources_read_everything_while_the_rest_settles() -> None:
    assert interval(10_000, sample(10.0, 9_000, 0), sample(11.0, 10_000, 5_000)) == FAST
    assert interval(10_000, sample(10.0, 10_000, 5_000), sample(11.0, 10_000, 5_000)) == FAST


def test_polls_are_fast_while_the_sources_stall_and_in_unbounded_runs() -> None:
    """No rate to project the finish from (e.g. back-pressure), or no known end: nothing to skip safely."""
    assert interval(1_000_000, sample(10.0, 100_000, 0), sample(11.0, 100_000, 0)) == FAST
    assert interval(None, sample(10.0, 90_000, 0), sample(11.0, 100_000, 90_000)) == FAST


def test_polls_are_fast_when_a_vertex_is_not_up() -> None:
    down = Sample(11.0, "RUNNING", False, sample(11.0, 100_000, 0).vertices)
    assert interval(1_000_000, sample(10.0, 90_000, 0), down) == FAST
