"""The behavioural bot rule (issue 22 item 3; README "Bots"): a user key whose page views reach N per minute
in K consecutive event-time minutes is a bot from the page view that completes the run on, until a day
(event time) after it. Decided in arrival order per Kafka partition, so a replay decides the same.

The rule's specification is `jobs.common.enrichment.BotBehaviour` (the oracles' copy); the jobs run
io.uxstream.udf.BotBehaviour in the partition watermark's OVER aggregate. Check tier: the JVM side runs as a
subprocess (EnrichCli --bot-behaviour), fed the same arrivals; random streams must get the same verdict
for every row."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from jobs.common import decode
from jobs.common.enrichment import BOT_MEMORY_MS, BotBehaviour, EnrichmentSettings
from jobs.common.settings import SettingsError
from tests.decode.support import require_jar
from tests.enrichment.support import enrich_cli_command

MINUTE = 60_000
T0 = 1_790_000_040_000  # a minute boundary (UTC)
BOUND = 5_000


@dataclass(frozen=True)
class Row:
    """One valid arrival: its Kafka partition, user key (None: future or erased, not looked at), id,
    whether it is a page view, and its event time."""

    partition: int
    key: str | None
    event_id: str
    page_view: bool
    ts: int

    def event(self) -> dict[str, object]:
        return {
            "user_id": None,
            "anonymous_id": self.key,
            "event_id": self.event_id,
            "event_type": "page_view" if self.page_view else "click",
            "ts": self.ts,
        }


def python_verdicts(rows: Sequence[Row], per_minute: int = 30, minutes: int = 3) -> list[bool]:
    rule = BotBehaviour(per_minute, minutes, BOUND)
    return [False if r.key is None else rule.verdict(r.partition, r.event()) for r in rows]


def jvm_verdicts(rows: Sequence[Row], per_minute: int = 30, minutes: int = 3) -> list[bool]:
    require_jar()
    lines = "".join(f"{r.partition}\t{r.key or ''}\t{r.event_id}\t{int(r.page_view)}\t{r.ts}\n" for r in rows)
    done = subprocess.run(
        enrich_cli_command("--bot-behaviour", str(per_minute), str(minutes), str(BOUND)),
        input=lines,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [line == "true" for line in done.stdout.splitlines()]


def views(key: str, per_minute: int, minutes: int, start: int = T0, prefix: str = "") -> list[Row]:
    """`per_minute` page views evenly spread over each of `minutes` minutes from `start`."""
    step = MINUTE // per_minute
    return [
        Row(0, key, f"{prefix or key}-{m}-{i}", True, start + m * MINUTE + i * step)
        for m in range(minutes)
        for i in range(per_minute)
    ]


def first_flagged(verdicts: Sequence[bool]) -> int | None:
    return next((i for i, v in enumerate(verdicts) if v), None)


def test_thirty_page_views_a_minute_for_three_minutes_flag_the_key_from_the_view_completing_the_run() -> None:
    rows = [*views("crawler", 30, 4), Row(0, "crawler", "click-1", False, T0 + 4 * MINUTE + 5)]
    verdicts = python_verdicts(rows)
    assert first_flagged(verdicts) == 89  # the 30th page view of the third minute
    assert all(verdicts[89:])  # and every later event of the key, whatever its type


def test_twenty_nine_a_minute_for_ten_minutes_is_a_person() -> None:
    assert not any(python_verdicts(views("fast-reader", 29, 10)))


def test_the_minutes_must_be_consecutive() -> None:
    rows = [*views("k", 30, 2), *views("k", 29, 1, start=T0 + 2 * MINUTE, prefix="k-b"),
            *views("k", 30, 2, start=T0 + 3 * MINUTE, prefix="k-c")]  # fmt: skip
    assert not any(python_verdicts(rows))
    rows.extend(views("k", 30, 1, start=T0 + 5 * MINUTE, prefix="k-d"))  # minutes 3, 4, 5: a run
    assert first_flagged(python_verdicts(rows)) == len(rows) - 1


def test_a_resent_page_view_counts_once() -> None:
    rows = views("k", 30, 3)
    resent = [*rows[:89], rows[88], *rows[89:]]  # the 29th of the third minute arrives twice
    verdicts = python_verdicts(resent)
    assert first_flagged(verdicts) == 90
    flat = [*views("k", 29, 3), *[Row(0, "k", "k-2-0", True, T0 + 2 * MINUTE)] * 5]
    assert not any(python_verdicts(flat))


def test_a_run_completed_in_its_middle_minute_flags_at_that_arrival() -> None:
    first, middle, last = (
        views("k", 30, 1),
        views("k", 30, 1, T0 + MINUTE, "m"),
        views("k", 30, 1, T0 + 2 * MINUTE, "l"),
    )
    rows = [*first, *last, *middle]  # out of event-time order, within the bound's reach
    verdicts = python_verdicts(rows)
    assert first_flagged(verdicts) == len(rows) - 1


def test_keys_and_partitions_count_apart() -> None:
    rows = [
        *views("a", 30, 2),
        *views("b", 30, 3, prefix="b"),
        *(Row(1, "a", f"a-p1-{i}", True, T0 + 2 * MINUTE + i) for i in range(30)),
    ]
    verdicts = python_verdicts(rows)
    assert not any(verdicts[:60]) and not any(verdicts[150:])  # a: two minutes in partition 0, one in 1
    assert first_flagged(verdicts[60:150]) == 89


def test_page_views_far_behind_the_newest_do_not_count() -> None:
    """A key keeps minutes + ⌈bound / 1 min⌉ minutes behind its newest page view: older ones are ignored."""
    late = views("k", 30, 3, start=T0 - 10 * MINUTE, prefix="old")
    rows = [Row(0, "k", "new", True, T0), *late]
    assert not any(python_verdicts(rows))


def test_a_flag_holds_for_a_day_of_event_time_then_the_key_starts_afresh() -> None:
    rows = views("k", 30, 3)
    rows.append(Row(0, "k", "later", False, T0 + BOT_MEMORY_MS - 1))
    rows.append(Row(0, "k", "next-day", False, rows[89].ts + BOT_MEMORY_MS))
    verdicts = python_verdicts(rows)
    assert verdicts[-2] is True and verdicts[-1] is False


def test_rows_without_a_key_are_not_looked_at() -> None:
    rows = [Row(0, None, f"x{i}", True, T0 + i * 100) for i in range(400)]
    assert not any(python_verdicts(rows)) and not any(jvm_verdicts(rows))


def random_rows(rng: random.Random, n: int) -> list[Row]:
    """Keys that burst at 20–70 page views a minute, people, duplicates, out-of-order and old arrivals,
    unlooked-at rows, two partitions, spread over a day and a half (so some flags lapse)."""
    rows: list[Row] = []
    keys = [f"key-{i}" for i in range(12)]
    clock = {k: T0 + rng.randrange(0, 20) * MINUTE for k in keys}
    rate = {k: rng.choice((5, 20, 28, 31, 45, 70)) for k in keys}
    for i in range(n):
        k = rng.choice(keys)
        if rng.random() < 0.002:
            clock[k] += BOT_MEMORY_MS // 2
        clock[k] += rng.randrange(1, 2 * MINUTE // rate[k])
        ts = clock[k] - (rng.randrange(0, 8 * MINUTE) if rng.random() < 0.05 else rng.randrange(0, BOUND))
        page_view = rng.random() < 0.85
        if rows and rng.random() < 0.03:
            rows.append(rows[rng.randrange(len(rows))])  # a resend of an earlier arrival
            continue
        key: str | None = None if rng.random() < 0.01 else k
        rows.append(Row(int(k.split("-")[1]) % 2, key, f"e{i}", page_view, ts))
    return rows


@pytest.mark.parametrize(("per_minute", "minutes"), [(30, 3), (25, 1), (40, 4)])
def test_the_jvm_rule_gives_every_row_the_verdict_of_the_specification(per_minute: int, minutes: int) -> None:
    rng = random.Random(per_minute * 100 + minutes)
    rows = random_rows(rng, 20_000)
    want = python_verdicts(rows, per_minute, minutes)
    assert 0.05 * len(rows) < sum(want) < 0.9 * len(rows)  # the streams flag and spare keys
    got = jvm_verdicts(rows, per_minute, minutes)
    mismatches = [(i, rows[i], got[i], want[i]) for i in range(len(rows)) if got[i] != want[i]]
    assert not mismatches, mismatches[:5]


def test_the_settings_read_the_environment_and_refuse_nonsense() -> None:
    default = EnrichmentSettings.from_env({"UXSTREAM_GEOIP_DB": "off"})
    assert (default.bot_page_views_per_minute, default.bot_minutes) == (30, 3)
    off = EnrichmentSettings.from_env({"UXSTREAM_GEOIP_DB": "off", "UXSTREAM_BOT_PAGE_VIEWS_PER_MINUTE": "0"})
    assert BotBehaviour.of(off, BOUND) is None
    assert decode.acts_bot_sql(off, BOUND) == "FALSE"
    with pytest.raises(SettingsError, match="UXSTREAM_BOT_MINUTES=0 must be between 1 and 60"):
        EnrichmentSettings.from_env({"UXSTREAM_GEOIP_DB": "off", "UXSTREAM_BOT_MINUTES": "0"})
    with pytest.raises(SettingsError, match="UXSTREAM_BOT_PAGE_VIEWS_PER_MINUTE=-1 must be between 0"):
        EnrichmentSettings.from_env({"UXSTREAM_GEOIP_DB": "off", "UXSTREAM_BOT_PAGE_VIEWS_PER_MINUTE": "-1"})


def test_the_rule_runs_in_the_partition_watermarks_window_and_makes_is_bot() -> None:
    """Same OVER window as partition_watermark (one operator, partition order), erased and future rows
    not looked at; is_bot = agent_bot (user agent) OR acts_bot (behaviour)."""
    from jobs.common.settings import PostgresSettings

    sql = "\n".join(
        decode.classify_statements("src", 300_000, BOUND, PostgresSettings(), bots=EnrichmentSettings())
    )
    window = "PARTITION BY kafka_partition ORDER BY arrival ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
    assert sql.count(window) == 2
    assert (
        "bot_behaviour(user_key, is_future, is_erased, event_id, event_type, ts, 30, 3, CAST(5000 AS BIGINT))"
        in sql
    )
    assert "agent_bot OR acts_bot AS is_bot" in sql
