"""`uxstream schema check`, `uxstream generate`, `uxstream replay`."""

from __future__ import annotations

import argparse
import contextlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from jobs.common import topics
from jobs.common.settings import KafkaSettings
from uxstream.contract.generator import (
    ANOMALY_DIMENSIONS,
    ANOMALY_KINDS,
    CONVERSION_EVENTS,
    DEFAULT_START,
    FUNNELS,
    MALFORMED_KINDS,
    Anomaly,
    Generator,
    GeneratorConfig,
    parse_duration_ms,
    parse_time_ms,
)
from uxstream.errors import UserError
from uxstream.paths import SCHEMAS

# -------------------------------------------------------------------------------------- arg types


def _paragraphs(*texts: str) -> str:
    """Help text of separately wrapped paragraphs (for RawDescriptionHelpFormatter)."""
    return "\n\n".join(textwrap.fill(text, width=100) for text in texts)


def _argtype(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{text} is not between 0 and 1")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"{text} is not a whole number >= 1")
    return value


def _count(text: str) -> int:
    value = int(text.replace("_", ""))
    if value < 0:
        raise ValueError(f"{text} is not a whole number >= 0")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError(f"{text} is not a positive number")
    return value


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(kind.strip() for kind in text.split(",") if kind.strip())
    unknown = [kind for kind in kinds if kind not in MALFORMED_KINDS]
    if unknown or not kinds:
        raise ValueError(
            f"unknown kind(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(MALFORMED_KINDS)}"
        )
    return kinds


fraction = _argtype(_fraction)
duration = _argtype(parse_duration_ms)
timestamp = _argtype(parse_time_ms)


# ----------------------------------------------------------------------------------- registration


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    _register_schema(subparsers)
    _register_generate(subparsers)
    _register_replay(subparsers)


def _register_schema(subparsers: argparse._SubParsersAction[Any]) -> None:
    schema = subparsers.add_parser(
        "schema",
        help="event contract schemas (compatibility check)",
        description="Tools for the Avro schemas of schemas/avro (catalog.json + .avsc files).",
    )
    schema_commands = schema.add_subparsers(dest="schema_command", metavar="SUBCOMMAND")
    schema_commands.required = True
    check = schema_commands.add_parser(
        "check",
        help="check the catalog and that every schema version is backward and forward compatible",
        description="Check a schema folder: catalog.json parses and lists every .avsc file, each file is "
        "a valid Avro schema, versions of each subject run 1, 2, … and every version is backward compatible "
        "(reads data of the previous version) and forward compatible (the previous version reads its data), "
        "by Avro schema resolution. Exit status 0 when everything passes, 1 with one line per problem "
        "otherwise (use it to gate schema changes in CI).",
    )
    check.add_argument(
        "--schemas", type=Path, default=SCHEMAS, metavar="DIR", help=f"schema folder (default {SCHEMAS})"
    )
    check.set_defaults(handler=_schema_check)


def _register_generate(subparsers: argparse._SubParsersAction[Any]) -> None:
    funnels = "; ".join(f"{name}: {' → '.join(steps)}" for name, steps in FUNNELS.items())
    p = subparsers.add_parser(
        "generate",
        help="produce deterministic simulated UX traffic (and its ground truth) to Kafka",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_paragraphs(
            "Simulate users browsing a shop (sessions, page flows, clicks, heartbeats, errors, web vitals, "
            "funnel journeys that convert or drop, bots) and produce the events, Confluent-framed Avro, "
            "to Kafka with an idempotent producer: key = user key, Kafka timestamp = received_at. The same "
            "seed and options give the same bytes.",
            f"Funnel journeys: {funnels}. Conversion events: {', '.join(CONVERSION_EVENTS)}.",
            "--output writes the ground truth: one JSON line per produced record, in produce order "
            "(format: jobs/common/oracle.py). A progress line on stderr shows the achieved rate.",
        ),
        epilog="example: uxstream generate --events 100000 --duplicate-fraction 0.05 --output truth.jsonl",
    )
    volume = p.add_argument_group("volume and time")
    volume.add_argument(
        "--events",
        type=_argtype(_count),
        metavar="N",
        help="records to produce in total, duplicates and malformed ones included "
        "(default: RATE × DURATION with --rate, else 100000)",
    )
    volume.add_argument(
        "--rate",
        type=_argtype(_rate),
        metavar="PER_SECOND",
        help="produce at most this many records per wall-clock second (default: as fast as possible)",
    )
    volume.add_argument(
        "--duration",
        type=duration,
        default=3_600_000,
        metavar="DURATION",
        help="event-time span the traffic is spread over, e.g. 90s, 10m, 1h30m, 3d (default 1h)",
    )
    volume.add_argument(
        "--start",
        type=timestamp,
        default=parse_time_ms(DEFAULT_START),
        metavar="TIME",
        help=f"event time of the first session: ISO-8601 with offset, or 'now' (default {DEFAULT_START})",
    )
    volume.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    population = p.add_argument_group("population")
    population.add_argument(
        "--users",
        type=_argtype(_positive_int),
        metavar="N",
        help="simulated users (default EVENTS / 25, at least 50)",
    )
    population.add_argument(
        "--anonymous-share",
        type=fraction,
        default=0.4,
        metavar="F",
        help="share of anonymous users (default 0.4)",
    )
    population.add_argument(
        "--user-agent-only",
        action="store_true",
        help="send the user agent and IP only, no device type/OS/browser/country (the jobs derive them)",
    )
    population.add_argument(
        "--bot-share",
        type=fraction,
        default=0.01,
        metavar="F",
        help="share of users that are bots: headless agents, a page view every 0.4-2 s (default 0.01)",
    )
    population.add_argument(
        "--stealth-bot-share",
        type=fraction,
        default=0.0,
        metavar="F",
        help="share of users that are stealth bots: a browser user agent from the human mix, anonymous, only "
        "page views, one every 0.5-1.5 s for 6.5-10 min (>= 40 per minute); ground-truth tag stealth_bot "
        "(default 0)",
    )
    population.add_argument(
        "--login-share",
        type=fraction,
        default=0.0,
        metavar="F",
        help="share of the sessions of identified users that start anonymous (anonymous_id only, keyed by "
        "it) and log in mid-session on /account, from where events carry user_id + the same anonymous_id "
        "(keyed by user_id); ground-truth tag login on that page view (default 0)",
    )
    population.add_argument(
        "--hot-user-share",
        type=fraction,
        default=0.0,
        metavar="F",
        help="share of sessions that belong to one single user, a hot key (default 0)",
    )
    population.add_argument(
        "--error-rate",
        type=fraction,
        default=0.02,
        metavar="F",
        help="probability of a JS error event per page view (default 0.02)",
    )
    faults = p.add_argument_group("delivery and faults (fractions of all records)")
    faults.add_argument(
        "--out-of-order",
        type=duration,
        default=2_000,
        metavar="DURATION",
        help="each event reaches the collector 0..DURATION after its event time; records are produced in "
        "that order, so out of order by up to DURATION (default 2s, inside the 5 s watermark bound)",
    )
    faults.add_argument(
        "--late-fraction",
        type=fraction,
        default=0.0,
        metavar="F",
        help="events delivered late, LATE_MIN_DELAY..LATE_MAX_DELAY after their event time (default 0)",
    )
    faults.add_argument(
        "--late-min-delay", type=duration, default=10_000, metavar="DURATION", help="(default 10s)"
    )
    faults.add_argument(
        "--late-max-delay", type=duration, default=600_000, metavar="DURATION", help="(default 10m)"
    )
    faults.add_argument(
        "--duplicate-fraction",
        type=fraction,
        default=0.0,
        metavar="F",
        help="records that re-send an earlier event: same event_id and content, new received_at, up to "
        "DUPLICATE_MAX_DELAY later (default 0)",
    )
    faults.add_argument(
        "--duplicate-max-delay", type=duration, default=60_000, metavar="DURATION", help="(default 1m)"
    )
    faults.add_argument(
        "--malformed-fraction",
        type=fraction,
        default=0.0,
        metavar="F",
        help="records that must be dead-lettered (default 0), of the kinds in --malformed-kinds",
    )
    faults.add_argument(
        "--malformed-kinds",
        type=_argtype(_kinds),
        default=tuple(MALFORMED_KINDS),
        metavar="K1,K2",
        help="comma-separated, each → expected reason: "
        + ", ".join(f"{kind} → {reason}" for kind, reason in MALFORMED_KINDS.items())
        + " (default: all)",
    )
    faults.add_argument(
        "--future-fraction",
        type=fraction,
        default=0.0,
        metavar="F",
        help="events whose device clock is 6 min to 6 h ahead: ts > received_at + 5 min (default 0)",
    )
    versions = p.add_argument_group("schema versions")
    versions.add_argument(
        "--v2-share",
        type=fraction,
        default=0.5,
        metavar="F",
        help="share of users whose SDK writes ux_event v2 (the rest write v1) (default 0.5)",
    )
    versions.add_argument(
        "--feedback-share",
        type=fraction,
        default=0.0,
        metavar="F",
        help="share of the sessions of v2 users that end with a survey answer, a ux_event v3 feedback event "
        "(NPS 0-10 or CSAT 1-5, some comments with fake e-mails/numbers the jobs scrub) (default 0)",
    )
    versions.add_argument(
        "--v2-from",
        metavar="TIME",
        help="before this event time every event is v1 (a producer switching mid-stream): ISO-8601, or an "
        "offset from --start such as 30m",
    )
    anomalies = p.add_argument_group("injected anomalies")
    anomalies.add_argument(
        "--anomaly",
        action="append",
        default=[],
        metavar="KIND:SEGMENT:AT:FOR[:MAGNITUDE]",
        help="repeatable. KIND: "
        + ", ".join(f"{kind} (default magnitude {m:g})" for kind, m in ANOMALY_KINDS.items())
        + "; magnitudes: error_spike multiplies the error probability, traffic_drop is the share of "
        "traffic kept, latency_spike multiplies page load, LCP and INP. SEGMENT: global or DIMENSION=VALUE "
        f"with DIMENSION one of {', '.join(ANOMALY_DIMENSIONS[1:])}. AT: offset from --start (30m) or "
        "ISO-8601; FOR: a duration. Example: error_spike:country=DE:30m:10m:8",
    )
    _output_options(p, "generate")
    p.add_argument(
        "--partitions",
        type=_argtype(_positive_int),
        default=4,
        metavar="N",
        help="partitions of the topic when it is created (an existing topic keeps its own); with --dry-run, "
        "the partition count for the ground truth (default 4)",
    )
    p.set_defaults(handler=_generate)


def _output_options(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("--topic", default=topics.EVENTS, help=f"topic to produce to (default {topics.EVENTS})")
    p.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="write the ground truth (JSON Lines, one line per produced record, produce order) to FILE",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help=f"{command} and encode everything but produce nothing (no Kafka needed)",
    )


def _register_replay(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "replay",
        help="produce a JSON Lines file of events to Kafka",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_paragraphs(
            "Produce the events of FILE (one JSON object per line, field names as in the event schema) "
            "to Kafka, in file order, Confluent-framed Avro, key = user key, Kafka timestamp = received_at.",
            "ts and received_at are epoch milliseconds or ISO-8601 timestamps with an offset; received_at "
            'defaults to ts, anonymous_id to "" and optional fields to their schema default. Lines '
            "written by `generate --output` or `replay --output` are accepted too and reproduce the "
            "recorded records byte for byte.",
            "Every line is checked before anything is produced; a bad line stops the replay with "
            "FILE:LINE and what is wrong. Events that break the validity rules are produced anyway: the "
            "jobs dead-letter them.",
        ),
        epilog="example: uxstream replay recorded.jsonl --output truth.jsonl",
    )
    p.add_argument("file", type=Path, metavar="FILE", help="JSON Lines file of events")
    p.add_argument(
        "--schema-version",
        type=_argtype(_positive_int),
        metavar="N",
        help="event schema version to write plain events with (default: the latest)",
    )
    p.add_argument(
        "--rate",
        type=_argtype(_rate),
        metavar="PER_SECOND",
        help="produce at most this many records per second (default: as fast as possible)",
    )
    p.add_argument(
        "--partitions",
        type=_argtype(_positive_int),
        default=4,
        metavar="N",
        help="partitions of the topic when it is created; with --dry-run, the partition count for the "
        "ground truth (default 4)",
    )
    _output_options(p, "replay")
    p.set_defaults(handler=_replay)


# ----------------------------------------------------------------------------------------- handlers


def _schema_check(args: argparse.Namespace) -> int:
    from uxstream.contract.compat import check_schemas

    report = check_schemas(args.schemas)
    if not report.ok:
        for problem in report.problems:
            print(problem, file=sys.stderr)
        print(f"schema check failed: {len(report.problems)} problem(s) in {args.schemas}", file=sys.stderr)
        return 1
    steps = ", ".join(report.pairs) if report.pairs else "no evolution steps"
    print(
        f"schema check passed: {report.schema_count} schema versions in {len(report.subjects)} subjects; "
        f"backward and forward compatible: {steps}"
    )
    return 0


@contextlib.contextmanager
def _truth_file(path: Path | None) -> Iterator[TextIO | None]:
    if path is None:
        yield None
        return
    try:
        handle = open(path, "w", encoding="utf-8", buffering=1 << 20)  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}") from None
    with handle:
        yield handle


def _kafka(args: argparse.Namespace, partitions: int) -> tuple[KafkaSettings | None, int]:
    """Kafka settings (None for --dry-run) and the topic's partition count (created when missing)."""
    if args.dry_run:
        return None, partitions
    settings = KafkaSettings.from_env()
    try:
        counts = topics.ensure_topics(settings, {args.topic: partitions})
    except topics.TopicError as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:  # confluent_kafka.KafkaException: broker unreachable …
        raise UserError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}") from None
    return settings, counts[args.topic]


_KNOB_OPTIONS = {
    "stealth_bot_share": "--stealth-bot-share",
    "bot_share": "--bot-share",
    "duplicate_fraction": "--duplicate-fraction",
    "malformed_fraction": "--malformed-fraction",
    "late_fraction": "--late-fraction",
    "future_fraction": "--future-fraction",
    "late_min_delay": "--late-min-delay",
    "late_max_delay": "--late-max-delay",
    "out_of_order": "--out-of-order",
    "late delays": "--late-min-delay/--late-max-delay",
}


def _config_error(exc: ValueError) -> UserError:
    message = str(exc)
    for name, option in _KNOB_OPTIONS.items():
        message = message.replace(name, option)
    return UserError(message)


def generator_config(args: argparse.Namespace, partitions: int) -> GeneratorConfig:
    """The GeneratorConfig of parsed `generate` arguments."""
    try:
        anomalies = tuple(Anomaly.parse(spec, args.start) for spec in args.anomaly)
        v2_from = None
        if args.v2_from:
            v2_from = (
                parse_time_ms(args.v2_from)
                if "T" in args.v2_from
                else args.start + parse_duration_ms(args.v2_from)
            )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    events = args.events
    if events is None:
        events = round(args.rate * args.duration / 1000) if args.rate else 100_000
    config = GeneratorConfig(
        events=events,
        seed=args.seed,
        start_ms=args.start,
        duration_ms=args.duration,
        users=args.users,
        partitions=partitions,
        anonymous_share=args.anonymous_share,
        bot_share=args.bot_share,
        stealth_bot_share=args.stealth_bot_share,
        login_share=args.login_share,
        user_agent_only=args.user_agent_only,
        hot_user_share=args.hot_user_share,
        error_rate=args.error_rate,
        out_of_order_ms=args.out_of_order,
        late_fraction=args.late_fraction,
        late_min_delay_ms=args.late_min_delay,
        late_max_delay_ms=args.late_max_delay,
        duplicate_fraction=args.duplicate_fraction,
        duplicate_max_delay_ms=args.duplicate_max_delay,
        malformed_fraction=args.malformed_fraction,
        malformed_kinds=args.malformed_kinds,
        future_fraction=args.future_fraction,
        v2_share=args.v2_share,
        feedback_share=args.feedback_share,
        v2_from_ms=v2_from,
        anomalies=anomalies,
    )
    try:
        config.check()
    except ValueError as exc:
        raise _config_error(exc) from None
    return config


def _summary(verb: str, args: argparse.Namespace, partitions: int, result: Any) -> str:
    target = "(dry run: nothing produced)" if args.dry_run else f"to {args.topic} ({partitions} partitions)"
    parts = ", ".join(f"{count:,} {name}" for name, count in result.counts.items() if count)
    truth = f"; ground truth in {args.output}" if args.output else ""
    return (
        f"{verb} {result.records:,} records {target} in {result.seconds:.1f} s: "
        f"{result.rate:,.0f} records/s ({parts or 'none'}){truth}"
    )


def _generate(args: argparse.Namespace) -> int:
    from uxstream.contract.replay import Progress, produce

    config = generator_config(args, args.partitions)  # checks the knobs before touching Kafka
    settings, partitions = _kafka(args, args.partitions)
    if partitions != config.partitions:
        config = generator_config(args, partitions)
    generator = Generator(config, truth=args.output is not None)
    with _truth_file(args.output) as truth:
        result = produce(
            generator.batches(),
            total=config.events,
            settings=settings,
            topic=args.topic,
            truth=truth,
            rate=args.rate,
            progress=Progress("generate", config.events),
        )
    print(_summary("generated", args, partitions, result))
    return 0


def _replay(args: argparse.Namespace) -> int:
    from uxstream.contract.replay import Progress, load_lines, produce, to_records

    lines = load_lines(args.file, schema_version=args.schema_version)
    settings, partitions = _kafka(args, args.partitions)
    records = to_records(lines, partitions, truth=args.output is not None)
    with _truth_file(args.output) as truth:
        result = produce(
            [records],
            total=len(records),
            settings=settings,
            topic=args.topic,
            truth=truth,
            rate=args.rate,
            progress=Progress("replay", len(records)),
        )
    print(_summary("replayed", args, partitions, result))
    return 0
