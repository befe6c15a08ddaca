"""Enrichment end to end (issue 22 items 1–3): a bot-heavy stream whose events carry only a user agent and
an IP (no device type, OS, browser or country, as real SDK traffic), sessionized twice: with bots excluded
(the default) and with UXSTREAM_EXCLUDE_BOTS=false. Every table equals the oracle exactly in both runs: the
oracle enriches from the user-agent corpus and the same .mmdb (jobs/common/enrichment.py).

The stream also holds visitors with a person's user agent that behave like bots or nearly so
(`streams.BEHAVIOUR_BOTS`): the behavioural rule (README "Bots") flags the stealth crawler from the page
view that completes its third minute at 30 a minute, and spares the others."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from jobs.common import tables
from jobs.common.enrichment import BotBehaviour, EnrichmentSettings, enrich
from jobs.common.oracle import arrivals
from jobs.common.settings import KafkaSettings, PostgresSettings
from jobs.sessionize.oracle import expected
from tests.support import streams
from tests.support.db import assert_table_equals, fresh_database
from tests.support.kafka import committed_decoded
from tests.support.sessionize import (
    PSEUDONYM,
    Run,
    drop,
    prepare,
    run_job,
)
from uxstream.db import connect

pytestmark = [pytest.mark.services, pytest.mark.flink]

GENERATOR_ARGS = (
    "--events", "1200", "--duration", "12m", "--seed", "22", "--partitions", "1",
    "--bot-share", "0.3", "--user-agent-only", "--duplicate-fraction", "0.03",
)  # fmt: skip
INCLUDED = EnrichmentSettings(exclude_bots=False)


@pytest.fixture(scope="module")
def runs(
    kafka_settings: KafkaSettings, pg_settings: PostgresSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Run, Run]]:
    """(bots excluded, bots included): one topic, two databases, two bounded runs of the job."""
    folder = tmp_path_factory.mktemp("enrichment")
    excluded = prepare(pg_settings, folder, GENERATOR_ARGS, rewrite=streams.with_behaviour_bots)
    run_job(excluded)
    included = Run(
        excluded.topic,
        fresh_database(pg_settings, f"uxstream_test_sessionize_{excluded.topic.rsplit('.', 1)[1]}_bots"),
        excluded.truth,
        INCLUDED,  # the job's environment gets UXSTREAM_EXCLUDE_BOTS=false (Run.job_env)
    )
    run_job(included, {"UXSTREAM_SESSIONIZE_TRANSACTIONAL_ID_PREFIX": f"{included.topic}-b"})
    yield excluded, included
    drop(pg_settings, excluded)
    drop(pg_settings, included)


def oracle(run: Run) -> dict[str, list[dict[str, Any]]]:
    return expected(run.truth.events, pseudonym=PSEUDONYM, enrichment=run.enrichment)


def test_the_stream_sends_no_device_or_country_and_has_many_bots(runs: tuple[Run, Run]) -> None:
    events = [e.event for e in runs[0].truth.events]
    assert events and all(
        e.get(f) is None for e in events for f in ("device_type", "os", "browser", "country")
    )
    bots = sum(1 for e in events if enrich(e)[1])
    assert 0.2 * len(events) < bots < 0.9 * len(events)


@pytest.mark.parametrize("table", tables.SESSIONIZE_TABLES)
def test_with_bots_excluded_every_table_equals_the_oracle(runs: tuple[Run, Run], table: str) -> None:
    assert_table_equals(runs[0].pg, table, oracle(runs[0])[table])


@pytest.mark.parametrize("table", tables.SESSIONIZE_TABLES)
def test_with_bots_included_every_table_equals_the_oracle(runs: tuple[Run, Run], table: str) -> None:
    assert runs[1].enrichment.exclude_bots is False
    assert_table_equals(runs[1].pg, table, oracle(runs[1])[table])


def test_sessions_get_device_browser_and_country_from_user_agent_and_ip(runs: tuple[Run, Run]) -> None:
    with connect(runs[0].pg) as conn:
        rows = conn.execute(f"SELECT device_type, browser, country FROM {tables.SESSIONS}").fetchall()
    assert rows and all(d in ("desktop", "mobile", "tablet") and b for d, b, _ in rows)
    assert sum(1 for *_, c in rows if c) > len(rows) // 2  # the generator's documentation-range IPv6 has none


def test_bot_events_are_counted_the_same_with_and_without_exclusion_and_only_there(
    runs: tuple[Run, Run],
) -> None:
    query = f"SELECT sum(bot_events), sum(events) FROM {tables.KPI_1M} WHERE dimension = 'global'"
    with connect(runs[0].pg) as conn:
        bots_excluded, events_excluded = conn.execute(query).fetchone()
    with connect(runs[1].pg) as conn:
        bots_included, events_included = conn.execute(query).fetchone()
    assert bots_excluded == bots_included > 0
    assert events_included == events_excluded + bots_included


def test_the_kpi_topic_carries_the_bot_events_of_the_tumbling_windows(
    runs: tuple[Run, Run], kafka_settings: KafkaSettings
) -> None:
    """issue 22: ux.kpi (kpi_window.v2) carries `bot_events` of the tumbling windows, null on the sliding
    and cumulative windows. (Both runs publish to the run's one KPI topic and count bots the same; the
    values equal the oracle in the shared sessionize run's topic test.)"""
    excluded, _ = runs
    records = [r for _, r in committed_decoded(kafka_settings, excluded.kpi_topic, "ux.kpi-value")]
    tumbling = [r for r in records if r["window_kind"].startswith("tumbling_") and r["dimension"] == "global"]
    assert sum(r["bot_events"] for r in tumbling) > 0
    assert all(r["bot_events"] is None for r in records if not r["window_kind"].startswith("tumbling_"))


def test_the_behavioural_rule_flags_the_stealth_crawler_from_the_page_view_completing_its_run(
    runs: tuple[Run, Run],
) -> None:
    """The crawler sends 40 page views a minute (each minute's first three twice): its 110th distinct page
    view is the 30th of its third minute. The sprinter (2 minutes) and the fast reader (29 a minute) stay
    people. Every table equal to the oracle (above) proves the jobs decide the same."""
    flagged: dict[str, set[str]] = {key: set() for key in streams.BEHAVIOUR_BOTS}
    for arrival in arrivals(runs[0].truth.events, bots=BotBehaviour.of(EnrichmentSettings(), 5_000)):
        key = arrival.event.get("anonymous_id")
        if key in flagged and arrival.acts_bot:
            flagged[key].add(arrival.event["event_id"])
    assert flagged == {
        "stealth-crawler": {f"stealth-crawler-{n}" for n in range(109, 200)},
        "sprinter": set(),
        "fast-reader": set(),
    }
    query = f"SELECT sum(page_views) FROM {tables.SESSIONS} WHERE user_key = %s"
    for run, crawled in ((runs[0], 109), (runs[1], 200)):
        with connect(run.pg) as conn:
            for key, (per_minute, minutes) in streams.BEHAVIOUR_BOTS.items():
                (views,) = conn.execute(query, (PSEUDONYM(key),)).fetchone()
                assert views == (crawled if key == "stealth-crawler" else per_minute * minutes), key
