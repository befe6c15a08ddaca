"""The user-agent corpus (issue 22): the jar's enrichment gives exactly the checked-in verdicts, and the
corpus covers what the oracles need. Check tier: the JVM side runs as a subprocess (EnrichCli), no Flink."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from jobs.common import enrichment
from tests.enrichment.support import run_enrich_cli
from uxstream.contract import generator

CORPUS: list[dict[str, Any]] = json.loads(enrichment.USER_AGENT_CORPUS.read_text(encoding="utf-8"))[
    "user_agents"
]
FIELDS = ("device_class", "device_type", "os", "browser", "is_bot")


def test_the_jar_gives_every_corpus_user_agent_exactly_its_verdict() -> None:
    code, verdicts = run_enrich_cli([row["user_agent"] for row in CORPUS], "--user-agents")
    assert code == 0
    got = [
        {"user_agent": row["user_agent"], **{k: v[k] for k in FIELDS}}
        for row, v in zip(CORPUS, verdicts, strict=True)
    ]
    mismatches = [(want, have) for want, have in zip(CORPUS, got, strict=True) if want != have]
    assert mismatches == []


def test_the_corpus_has_200_real_user_agents_of_every_kind() -> None:
    agents = [row["user_agent"] for row in CORPUS]
    assert len(agents) >= 200 and len(set(agents)) == len(agents)
    classes = Counter(row["device_class"] for row in CORPUS)
    assert classes["Desktop"] >= 50 and classes["Phone"] >= 50 and classes["Tablet"] >= 25
    assert classes["TV"] + classes["Set-top box"] >= 10
    assert sum(1 for row in CORPUS if row["is_bot"]) >= 40


@pytest.mark.parametrize(
    ("user_agent", "device_type", "os", "browser", "is_bot"),
    [
        (generator.MOBILE_AGENTS[0][2], "mobile", "iOS 17", "Safari 17", False),
        (generator.TABLET_AGENTS[0][2], "tablet", "iOS 17", "Safari 17", False),
        (generator.DESKTOP_AGENTS[4][2], "desktop", "Linux", "Firefox 133", False),
        (generator.BOT_AGENTS[0][2], "desktop", "Linux", "Chrome 120", True),  # HeadlessChrome: a pattern
        (generator.BOT_AGENTS[1][2], None, "Cloud", "ScraperBot 2", True),  # YAUAA: Robot
        ("curl/8.5.0", None, "Cloud", "Curl 8", True),
    ],
)
def test_verdicts_a_reader_can_check_by_eye(
    user_agent: str, device_type: str | None, os: str, browser: str, is_bot: bool
) -> None:
    assert enrichment.user_agent_verdict(user_agent) == enrichment.UserAgentVerdict(
        device_type, os, browser, is_bot
    )


def test_the_bot_patterns_do_not_flag_phones_whose_names_contain_bot() -> None:
    """CUBOT phones and German 'Angebot' were false positives of a plain `bot` pattern."""
    cubot = [row for row in CORPUS if "CUBOT" in row["user_agent"]]
    angebot = [row for row in CORPUS if "angebot" in row["user_agent"]]
    assert cubot and angebot
    assert not any(row["is_bot"] for row in cubot + angebot)


def test_every_user_agent_the_generator_draws_is_in_the_corpus() -> None:
    drawn = [
        a[2]
        for a in (
            *generator.DESKTOP_AGENTS,
            *generator.MOBILE_AGENTS,
            *generator.TABLET_AGENTS,
            *generator.BOT_AGENTS,
        )
    ]
    assert [ua for ua in drawn if ua not in enrichment.user_agent_corpus()] == []


def test_the_oracle_refuses_to_judge_a_user_agent_outside_the_corpus() -> None:
    with pytest.raises(enrichment.UnknownUserAgent, match=r"not in user_agents\.json"):
        enrichment.enrich({"user_agent": "Mozilla/5.0 (NotInTheCorpus)"})


def test_client_sent_fields_win_and_only_missing_ones_are_derived() -> None:
    ua = generator.MOBILE_AGENTS[0][2]
    sent = {
        "user_agent": ua,
        "device_type": "tablet",
        "os": "",
        "browser": None,
        "country": "FR",
        "ip": "8.8.8.8",
    }
    event, bot = enrichment.enrich(sent)
    assert (event["device_type"], event["os"], event["browser"], event["country"], bot) == (
        "tablet",
        "iOS 17",
        "Safari 17",
        "FR",
        False,
    )
