"""Test streams: generated traffic (with its ground truth) on Kafka, recorded lines produced byte for byte,
records copied between topics."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from jobs.common.contract import is_future
from jobs.common.settings import KafkaSettings
from uxstream.paths import ROOT


def unique_topic(prefix: str) -> str:
    """A topic name no other test (or earlier run) uses: `prefix.<8 hex>`."""
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


def generate(generator_args: Sequence[str], truth_file: Path, topic: str | None = None) -> list[str]:
    """Generate a stream (`uxstream generate`) into `truth_file` and, with `topic`, onto that topic (one
    partition unless the arguments say otherwise); returns the truth file's lines in produce order."""
    target = ["--topic", topic] if topic else ["--partitions", "1", "--dry-run"]
    subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "generate", *generator_args, *target,
         "--output", str(truth_file)],
        cwd=ROOT, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return truth_file.read_text(encoding="utf-8").splitlines(keepends=True)


def generate_truth(generator_args: Sequence[str], truth_file: Path) -> list[str]:
    """Generate a stream into `truth_file` only (no Kafka); its lines, in produce order."""
    return generate(generator_args, truth_file)


def produce(
    truth_lines: Sequence[str], topic: str, folder: Path, name: str, env: Mapping[str, str] | None = None
) -> None:
    """Produce recorded ground-truth lines (`generate --output` format) to `topic`, byte for byte (to the
    broker `env` names, default: this process's)."""
    part = folder / f"{name}.jsonl"
    part.write_text("".join(truth_lines), encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "replay", str(part), "--topic", topic, "--partitions", "1"],
        cwd=ROOT, check=True, capture_output=True, timeout=120, env=None if env is None else dict(env),
    )  # fmt: skip


def copy_records(
    kafka: KafkaSettings, source: str, target: str, start: int = 0, stop: int | None = None
) -> None:
    """Copy records [start, stop) of partition 0 of `source` (to its end without `stop`) to partition 0 of
    `target`, keys and timestamps kept (the generator's bytes, so the oracle's ground truth stays valid)."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from jobs.common.topics import ensure_topics
    from tests.support.kafka import end_offset

    ensure_topics(kafka, {target: 1})
    stop = end_offset(kafka, source) if stop is None else stop
    consumer = Consumer({**kafka.client_config(), "group.id": f"copy-{uuid.uuid4()}"})
    consumer.assign([TopicPartition(source, 0, start)])
    producer = Producer({**kafka.client_config(), "enable.idempotence": True})
    offset = start
    while offset < stop:
        messages = consumer.consume(min(1000, stop - offset), timeout=5)
        assert messages, f"{source} has no records after offset {offset}"
        for m in messages:
            assert m.error() is None and m.offset() == offset
            _, timestamp = m.timestamp()
            producer.produce(target, value=m.value(), key=m.key(), partition=0, timestamp=timestamp)
            offset += 1
            if offset == stop:
                break
        producer.poll(0)
    consumer.close()
    assert producer.flush(30) == 0


LATE_AT_BOUNDARY_MS: Final = (180_000, 150_000)
"""How far behind the partition's maximum event time the two records `with_late_records_at` inserts are:
both are late (the bound is 5 s); a watermark that forgot the maximum (Flink's after a restore) and
restarted from the first of them would take the second for on time."""


def with_late_records_at(truth_lines: Sequence[str], index: int) -> list[str]:
    """The ground-truth lines with two late events inserted at `index` (one partition): copies of the first
    valid, non-future event at or after `index`, with new event ids and event times LATE_AT_BOUNDARY_MS
    behind the greatest valid, non-future event time before `index`. `seq` is renumbered. A recovery test
    that restores exactly at `index` (a savepoint or a checkpoint taken there) then replays a late record
    first, and another right after it."""
    lines = [json.loads(line) for line in truth_lines]

    def on_time_event(line: dict[str, Any]) -> dict[str, Any] | None:
        event = line.get("event")
        if event is None or line.get("expected_reason") is not None:
            return None
        return None if is_future(int(event["ts"]), int(event["received_at"])) else event

    before = [e for e in map(on_time_event, lines[:index]) if e is not None]
    template_line = next(line for line in lines[index:] if on_time_event(line) is not None)
    assert before, "no valid event before the boundary: nothing could be late"
    high = max(int(e["ts"]) for e in before)
    inserted = []
    for n, behind in enumerate(LATE_AT_BOUNDARY_MS):
        event = {**template_line["event"], "event_id": f"late-at-boundary-{n}-{high}", "ts": high - behind}
        inserted.append({**template_line, "event": event, "tags": ["late"]})
    out = [*lines[:index], *inserted, *lines[index:]]
    return [json.dumps({**line, "seq": seq}, separators=(",", ":")) + "\n" for seq, line in enumerate(out)]


HOSTILE_EVENTS: Final[dict[str, tuple[dict[str, Any], str | None]]] = {
    "nul_in_page_path": (
        {"page_path": "/pricing\x00/x"},
        "field 'page_path': NUL (U+0000) at position 8, not allowed",
    ),
    "page_path_5000": ({"page_path": "/" + "p" * 4_999}, "field 'page_path': 5000 characters, limit 512"),
    "country_300": ({"country": "X" * 300}, "field 'country': 300 characters, limit 16"),
    "properties_flood": (
        {"properties": {f"k{i}": "v" for i in range(65)}},
        "field 'properties': 65 entries, limit 64",
    ),
    "record_over_32_kib": (
        {"properties": {f"k{i}": "€" * 256 for i in range(64)}},
        None,  # the record size: depends on the rest of the event (README "Event limits")
    ),
}
"""Events that are valid Avro but break the contract's limits (issue 16): the changes made to an ordinary
event, and the dead-letter detail the contract gives (None: `record: <n> bytes, limit 32768`)."""


def with_hostile_events(truth_lines: Sequence[str], every: int = 97) -> list[str]:
    """The ground-truth lines with one copy of an ordinary event per `HOSTILE_EVENTS` entry inserted after
    every `every` lines, changed as the entry says, with a new event id and expected reason
    `impossible_value`; `seq` is renumbered."""
    lines = [json.loads(line) for line in truth_lines]
    template = next(
        line for line in lines if line.get("event") is not None and line.get("expected_reason") is None
    )
    out: list[dict[str, Any]] = []
    hostile = iter(HOSTILE_EVENTS.items())
    for index, line in enumerate(lines):
        out.append(line)
        if index % every == every - 1:
            entry = next(hostile, None)
            if entry is not None:
                name, (changes, _) = entry
                event = {**template["event"], **changes, "event_id": f"hostile-{name}"}
                out.append(
                    {**template, "event": event, "expected_reason": "impossible_value", "tags": [name]}
                )
    assert next(hostile, None) is None, "the stream is too short for every hostile event"
    return [json.dumps({**line, "seq": seq}, separators=(",", ":")) + "\n" for seq, line in enumerate(out)]


FEEDBACK_SCHEMA_ID: Final = 7
"""ux_event v3, the first version with the feedback fields (schemas/avro/catalog.json)."""

FEEDBACK_ANSWERS: Final[tuple[tuple[tuple[dict[str, Any], ...], str | None], ...]] = (
    (
        (
            {
                "feedback_scale": "0-10",
                "feedback_score": 10,
                "feedback_comment": "Love it! Write me: ana.silva@example.org",
            },
        ),
        None,
    ),
    (({"feedback_scale": "0-10", "feedback_score": 7},), None),
    (
        (
            {
                "feedback_scale": "0-10",
                "feedback_score": 2,
                "feedback_comment": "Checkout failed twice, order 4411 2233, call +1 (555) 010-9999",
            },
            {
                "survey_id": "csat-checkout",
                "feedback_scale": "1-5",
                "feedback_score": 1,
                "feedback_comment": "Slow.",
            },
        ),
        None,
    ),
    (({"survey_id": "csat-checkout", "feedback_scale": "1-5", "feedback_score": 5},), None),
    (
        (
            {
                "survey_id": "csat-checkout",
                "feedback_scale": "1-5",
                "feedback_score": 3,
                "feedback_comment": "",
            },
        ),
        None,
    ),
    (({"feedback_scale": "0-10", "feedback_score": 11},), "impossible_value"),
    (({"survey_id": None, "feedback_scale": "1-5", "feedback_score": 4},), "missing_field"),
)
"""Feedback scenarios (issue 22 item 6) for `with_feedback_events`: per user, the answers given right after
one of their ordinary events (changes to a feedback event of survey `nps-2025q1`), and the reason the
contract rejects them for (None: valid). Both scales, several users, one user answering twice, comments
with an e-mail and numbers to scrub, an empty comment, and two invalid answers."""


def with_feedback_events(truth_lines: Sequence[str]) -> list[str]:
    """The ground-truth lines with `FEEDBACK_ANSWERS` inserted (schema v3): each scenario's answers follow
    an ordinary, on-time page view of a different user, spread over the stream, 1 s, 2 s, … after it
    (so they are on time and join that user's session); `seq` is renumbered."""
    lines = [json.loads(line) for line in truth_lines]
    candidates = [
        index
        for index, line in enumerate(lines)
        if line.get("event") is not None
        and line.get("expected_reason") is None
        and not line.get("tags")
        and line["event"]["event_type"] == "page_view"
    ]
    chosen: dict[int, tuple[tuple[dict[str, Any], ...], str | None]] = {}
    users: set[str] = set()
    scenarios = iter(FEEDBACK_ANSWERS)
    scenario = next(scenarios, None)
    step = max(1, len(candidates) // (len(FEEDBACK_ANSWERS) + 1))
    for index in candidates[step::step]:
        event = lines[index]["event"]
        user = event.get("user_id") or event["anonymous_id"]
        if scenario is None or user in users:
            continue
        users.add(user)
        chosen[index] = scenario
        scenario = next(scenarios, None)
    assert scenario is None, "the stream is too short for every feedback scenario"
    out: list[dict[str, Any]] = []
    for index, line in enumerate(lines):
        out.append(line)
        if index not in chosen:
            continue
        answers, reason = chosen[index]
        template = line["event"]
        for number, changes in enumerate(answers, 1):
            event = {
                **{k: v for k, v in template.items() if k not in ("page_load_ms", "properties")},
                "event_id": f"feedback-{index}-{number}",
                "event_type": "feedback",
                "event_name": "survey_answered",
                "ts": template["ts"] + number * 1_000,
                "received_at": template["received_at"] + number * 1_000,
                "survey_id": "nps-2025q1",
                **changes,
            }
            extra: dict[str, Any] = {"expected_reason": reason} if reason else {}
            out.append(
                {
                    **line,
                    "schema_id": FEEDBACK_SCHEMA_ID,
                    "timestamp": event["received_at"],
                    "event": event,
                    **extra,
                    "tags": ["feedback" if reason is None else "invalid_feedback"],
                }
            )
    return [json.dumps({**line, "seq": seq}, separators=(",", ":")) + "\n" for seq, line in enumerate(out)]


IDENTITY_IDS: Final = {
    "login_device": "identity-anon-login",
    "login_user": "identity-user-login",
    "server_device": "identity-anon-server",
    "anonymous_device": "identity-anon-only",
    "shared_device": "identity-anon-shared",
    "first_user": "identity-user-first",
    "second_user": "identity-user-second",
}
"""The ids of `with_identity_events` (issue 22 item 4; README "Identity: one visitor across a login")."""

_IDENTITY_TIMELINE: Final = (
    # (seconds after the anchor, anonymous id, user id, page path)
    # A visitor browses anonymously, logs in on /welcome and goes on: one session of the user.
    (0, "login_device", None, "/pricing"),
    (20, "login_device", None, "/signup"),
    (40, "login_device", "login_user", "/welcome"),
    (60, "login_device", "login_user", "/dashboard"),
    # The same user's server-side event (the server's own anonymous id): a session of its own, the user's.
    (30, "server_device", "login_user", "/api/orders"),
    # Anonymous throughout: its own session, under the anonymous id.
    (10, "anonymous_device", None, "/pricing"),
    (50, "anonymous_device", None, "/docs"),
    # Two users on one device within one session: the session belongs to the first one identified.
    (5, "shared_device", None, "/"),
    (25, "shared_device", "first_user", "/account"),
    (45, "shared_device", "second_user", "/account"),
)
IDENTITY_RETURN_AFTER_S: Final = 60 + 31 * 60
"""The login device comes back anonymously 31 minutes after its last event (a new session, appended at the
end of the stream so it moves no other event's watermark): it belongs to the user it logged in as."""


def with_identity_events(truth_lines: Sequence[str]) -> list[str]:
    """The ground-truth lines with the identity scenarios of `_IDENTITY_TIMELINE` inserted in event-time
    order after an ordinary, on-time page view in the middle of the stream (their anchor and template),
    and the login device's return appended last; `seq` is renumbered."""
    lines = [json.loads(line) for line in truth_lines]
    candidates = [
        index
        for index, line in enumerate(lines)
        if line.get("event") is not None
        and line.get("expected_reason") is None
        and not line.get("tags")
        and line["event"]["event_type"] == "page_view"
    ]
    anchor_index = candidates[len(candidates) // 2]
    template = lines[anchor_index]
    anchor = int(template["event"]["ts"])

    def scenario_line(
        number: int, seconds: int, device: str | None, user: str | None, path: str
    ) -> dict[str, Any]:
        ts = anchor + seconds * 1_000 + 7  # never the same instant as a generated event
        event = {
            **{k: v for k, v in template["event"].items() if k not in ("properties",)},
            "event_id": f"identity-{number}",
            "anonymous_id": IDENTITY_IDS[device] if device else None,
            "user_id": IDENTITY_IDS[user] if user else None,
            "page_path": path,
            "page_url": f"https://shop.example.com{path}",
            "ts": ts,
            "received_at": ts + 300,
            "properties": {},
        }
        key = event["user_id"] or event["anonymous_id"]
        return {
            **template,
            "key": key,
            "timestamp": event["received_at"],
            "event": event,
            "tags": ["identity"],
        }

    inserted = sorted(
        (scenario_line(n, *step) for n, step in enumerate(_IDENTITY_TIMELINE)), key=lambda x: x["event"]["ts"]
    )
    out = _merged_by_arrival(lines, anchor_index, inserted)
    out.append(
        scenario_line(len(_IDENTITY_TIMELINE), IDENTITY_RETURN_AFTER_S, "login_device", None, "/pricing")
    )
    return [json.dumps({**line, "seq": seq}, separators=(",", ":")) + "\n" for seq, line in enumerate(out)]


def _merged_by_arrival(
    lines: list[dict[str, Any]], anchor_index: int, inserted: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """`lines` with `inserted` (sorted by Kafka timestamp) merged in after `anchor_index`, by arrival."""
    pending = list(inserted)
    out: list[dict[str, Any]] = lines[: anchor_index + 1]
    for line in lines[anchor_index + 1 :]:
        # Arrival order is the Kafka timestamp's (received_at): a future or late record says nothing of it.
        while pending and line["timestamp"] > pending[0]["timestamp"]:
            out.append(pending.pop(0))
        out.append(line)
    out.extend(pending)
    return out


BEHAVIOUR_BOTS: Final = {
    # key: (page views per minute, minutes): the default rule is 30 a minute for 3 consecutive minutes.
    "stealth-crawler": (40, 5),  # a bot from its 110th page view (the 30th of its third minute) on
    "sprinter": (40, 2),  # fast, not sustained: a person
    "fast-reader": (29, 5),  # sustained, below the rate: a person
}
"""The behavioural bot scenarios (README "Bots"): anonymous visitors with an ordinary browser user agent."""
BEHAVIOUR_RESENDS: Final = 3
"""The stealth crawler re-sends its first page views of each minute (duplicates count once)."""


def with_behaviour_bots(truth_lines: Sequence[str]) -> list[str]:
    """The ground-truth lines with the `BEHAVIOUR_BOTS` visitors inserted in arrival order from an ordinary
    on-time page view with a person's user agent early in the stream (their template; each starts on the
    minute after it); `seq` is renumbered."""
    from jobs.common.enrichment import user_agent_verdict

    lines = [json.loads(line) for line in truth_lines]
    candidates = [
        index
        for index, line in enumerate(lines)
        if line.get("event") is not None
        and line.get("expected_reason") is None
        and not line.get("tags")
        and line["event"]["event_type"] == "page_view"
        and line["event"].get("user_agent")
        and not user_agent_verdict(line["event"]["user_agent"]).is_bot
        and "." in (line["event"].get("ip") or "")  # IPv4: a country (the generator's IPv6 has none)
    ]
    anchor_index = candidates[len(candidates) // 8]
    template = lines[anchor_index]
    start = (int(template["event"]["ts"]) // 60_000 + 1) * 60_000
    inserted: list[dict[str, Any]] = []
    for key, (per_minute, minutes) in BEHAVIOUR_BOTS.items():
        step = 60_000 // per_minute
        for n in range(per_minute * minutes):
            ts = start + n * step + 11  # never the same instant as a generated event
            path = f"/catalog/item-{n % 50}"
            event = {
                **{k: v for k, v in template["event"].items() if k not in ("properties",)},
                "event_id": f"{key}-{n}",
                "anonymous_id": key,
                "user_id": None,
                "page_path": path,
                "page_url": f"https://shop.example.com{path}",
                "ts": ts,
                "received_at": ts + 200,
                "properties": {},
            }
            line = {
                **template,
                "key": key,
                "timestamp": event["received_at"],
                "event": event,
                "tags": ["bot"],
            }
            inserted.append(line)
            if key == "stealth-crawler" and n % per_minute < BEHAVIOUR_RESENDS:
                again = {**event, "received_at": ts + 900}
                inserted.append({**line, "timestamp": again["received_at"], "event": again})
    inserted.sort(key=lambda x: x["timestamp"])
    out = _merged_by_arrival(lines, anchor_index, inserted)
    return [json.dumps({**line, "seq": seq}, separators=(",", ":")) + "\n" for seq, line in enumerate(out)]


FUNNEL_CRAWLER_STEPS: Final = ("product_viewed", "add_to_cart", "checkout_started", "order_completed")
"""The checkout steps the funnel crawler and its twin take (config/funnels.toml `checkout`)."""
FUNNEL_CRAWLER: Final = "funnel-crawler"
"""Crawls 40 pages a minute for 4 minutes (a behavioural bot from its 110th page view), then checks out."""
FUNNEL_TWIN: Final = "funnel-twin"
"""Takes the same checkout steps at the same times without crawling: a person with an attempt."""


def with_funnel_crawler(truth_lines: Sequence[str]) -> list[str]:
    """The ground-truth lines with `FUNNEL_CRAWLER` and `FUNNEL_TWIN` inserted in arrival order from an
    ordinary page view with a person's user agent early in the stream; the steps copy the stream's own
    first event of each name (its properties: product_id, currency); `seq` is renumbered."""
    from jobs.common.enrichment import user_agent_verdict

    lines = [json.loads(line) for line in truth_lines]
    plain = [
        index
        for index, line in enumerate(lines)
        if line.get("event") is not None and line.get("expected_reason") is None and not line.get("tags")
    ]
    templates = {
        name: next(lines[i] for i in plain if lines[i]["event"]["event_name"] == name)
        for name in FUNNEL_CRAWLER_STEPS
    }
    anchor_index = next(
        i
        for i in plain[len(plain) // 8 :]
        if lines[i]["event"]["event_type"] == "page_view"
        and lines[i]["event"].get("user_agent")
        and not user_agent_verdict(lines[i]["event"]["user_agent"]).is_bot
    )
    page = lines[anchor_index]
    start = (int(page["event"]["ts"]) // 60_000 + 1) * 60_000
    product = templates["product_viewed"]["event"].get("properties", {})

    def line(template: dict[str, Any], key: str, number: int, ts: int) -> dict[str, Any]:
        event = {
            **template["event"],
            "event_id": f"{key}-{number}",
            "anonymous_id": key,
            "user_id": None,
            "user_agent": page["event"]["user_agent"],
            "ts": ts,
            "received_at": ts + 200,
        }
        if event["event_name"] in FUNNEL_CRAWLER_STEPS:
            event["properties"] = {**(event.get("properties") or {}), **product, "currency": "USD"}
        return {**template, "key": key, "timestamp": event["received_at"], "event": event, "tags": ["bot"]}

    inserted = [line(page, FUNNEL_CRAWLER, n, start + n * 1_500 + 13) for n in range(160)]
    for step, name in enumerate(FUNNEL_CRAWLER_STEPS):
        ts = start + 3 * 60_000 + 10_000 * (step + 1) + 17  # in the crawl's fourth minute, after the flag
        inserted.append(line(templates[name], FUNNEL_CRAWLER, 1_000 + step, ts))
        inserted.append(line(templates[name], FUNNEL_TWIN, step, ts))
    inserted.sort(key=lambda x: x["timestamp"])
    out = _merged_by_arrival(lines, anchor_index, inserted)
    return [json.dumps({**line, "seq": seq}, separators=(",", ":")) + "\n" for seq, line in enumerate(out)]
