"""The one runner of every uxstream job: command line, settings, pre-start checks, environments, execution.

A job's `job.py` declares what is its own and hands it to `run_job`:

    JOB = JobSpec(
        name="sessionize", doc=__doc__, settings=SessionizeSettings.from_env, build=build,
        options=(Option("--input-topic", "input_topic", help="…"), …),
        output_topics=lambda s: (s.dlq_topic, s.kpi_topic), pseudonyms=True,
    )

    def main(argv=None) -> int:
        return run_job(JOB, argv)

`build(env, t_env, settings)` attaches the job's sources and sinks; it returns the `TableResult` of a
statement set it executed itself (the runner waits for it) or None (the runner executes `env`). Every
job gets the same options for where its input ends (`--bounded`, and with `offsets=True`
`--stop-at-offsets`), for restores (`--restore`, with `restore=True`), the checkpoint interval and the
parallelism, and the same checks before Flink starts: the Kafka transaction timeout (RELIABILITY T22), the
output topics, the stop offsets against the input topic, the local pseudonym key.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from jobs.common import privacy, topics
from jobs.common.cli import add_input_bound_arguments, add_restore_argument, input_bound_overrides, restored
from jobs.common.flink_env import FlinkSettings
from jobs.common.settings import KafkaSettings

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment
    from pyflink.table.table_result import TableResult


class JobSettings(Protocol):
    """What the runner reads of a job's (frozen dataclass) settings."""

    @property
    def kafka(self) -> KafkaSettings: ...

    @property
    def flink(self) -> FlinkSettings: ...


S = TypeVar("S", bound=JobSettings)


@dataclass(frozen=True)
class Option:
    """A job option that overrides one settings field (`setting`) when given.

    An empty string counts as not given unless `empty_allowed` (e.g. `--kpi-topic ''`: publish nothing)."""

    flag: str
    setting: str
    help: str | None = None
    type: Callable[[str], Any] = str
    empty_allowed: bool = False

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        metavar = self.flag.lstrip("-").replace("-", "_").upper()
        parser.add_argument(
            self.flag, dest=self.setting, metavar=metavar, type=self.type, default=None, help=self.help
        )

    def override(self, args: argparse.Namespace) -> tuple[str, Any] | None:
        value = getattr(args, self.setting)
        if value is None or (value == "" and not self.empty_allowed):
            return None
        return self.setting, value


@dataclass(frozen=True)
class JobSpec(Generic[S]):
    """Everything about a job that is its own; the runner does the rest the same way for every job."""

    name: str
    doc: str
    """The job module's docstring: its first line is the command's description."""
    settings: Callable[..., S]
    """`XSettings.from_env`: called as `settings(None, **overrides)`."""
    build: Callable[[StreamExecutionEnvironment, StreamTableEnvironment, S], TableResult | None]
    options: tuple[Option, ...] = ()
    output_topics: tuple[str, ...] = ()
    """Settings fields naming the topics the job writes: created before it starts (the broker does not
    auto-create topics); an empty name (an output switched off) is skipped."""
    offsets: bool = True
    """`--stop-at-offsets` and `--restore` (jobs reading ux.events); without: `--bounded` only."""
    pseudonyms: bool = False
    """The job pseudonymises user keys: make sure a local key exists (privacy.ensure_key)."""
    flink: Callable[[S, FlinkSettings], FlinkSettings] = lambda settings, flink: flink
    """Job-specific Flink options on top of the environment's and the command line's."""
    extra_checks: tuple[Callable[[S], None], ...] = field(default=())

    @property
    def prog(self) -> str:
        return f"python -m jobs.{self.name}.job"


def parser(spec: JobSpec[Any]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=spec.prog, description=spec.doc.splitlines()[0])
    if spec.offsets:
        add_input_bound_arguments(parser)
        add_restore_argument(parser)
    else:
        parser.add_argument("--bounded", action="store_true", help="stop at the end offsets present at start")
    for option in spec.options:
        option.add_to(parser)
    parser.add_argument("--checkpoint-interval-ms", type=int, default=None)
    parser.add_argument("--parallelism", type=int, default=None)
    return parser


def settings_from_args(spec: JobSpec[S], args: argparse.Namespace) -> S:
    """The job's settings: environment, then the command line (options, input bound, Flink, restore)."""
    overrides: dict[str, Any] = (
        input_bound_overrides(args) if spec.offsets else {"bounded": bool(args.bounded)}
    )
    for option in spec.options:
        found = option.override(args)
        if found is not None:
            overrides[found[0]] = found[1]
    settings = spec.settings(None, **overrides)
    flink = settings.flink
    if args.checkpoint_interval_ms:
        flink = flink.with_options(checkpoint_interval_ms=args.checkpoint_interval_ms)
    if args.parallelism:
        flink = flink.with_options(parallelism=args.parallelism)
    if spec.offsets:
        flink = restored(args, flink, spec.name)
    flink = spec.flink(settings, flink)
    return replace(settings, flink=flink)  # type: ignore[type-var]


def check_before_start(spec: JobSpec[S], settings: S) -> None:
    """Fail fast, with a clear message, on what would otherwise fail inside Flink (or not at all)."""
    topics.check_transactions(settings.kafka, settings.flink.checkpoint_interval_ms)
    outputs = [getattr(settings, name) for name in spec.output_topics]
    topics.ensure_topics(settings.kafka, [topic for topic in outputs if topic])
    stop_offsets = getattr(settings, "stop_offsets", ())
    if stop_offsets:
        topics.check_stop_offsets(settings.kafka, settings.input_topic, stop_offsets)  # type: ignore[attr-defined]
    for check in spec.extra_checks:
        check(settings)
    if spec.pseudonyms:
        privacy.ensure_key()  # local runs: a generated pseudonym key unless one is configured


def run(spec: JobSpec[S], settings: S) -> None:
    """Check, build and execute the job; returns when it finished (bounded) or never (unbounded)."""
    from jobs.common.flink_env import create_environments

    check_before_start(spec, settings)
    env, t_env = create_environments(settings.flink, spec.name)
    result = spec.build(env, t_env, settings)
    if result is not None:
        result.wait()
    else:
        env.execute(spec.name)


def run_job(spec: JobSpec[Any], argv: Sequence[str] | None = None) -> int:
    """The job's `main`: parse `argv`, run the job, 0 when it ended normally."""
    args = parser(spec).parse_args(argv)
    run(spec, settings_from_args(spec, args))
    return 0


def entry_point(spec: JobSpec[Any]) -> Callable[..., int]:
    """The job module's `main(argv=None) -> int` (what `uxstream run JOB` and `python -m` call)."""

    def main(argv: Sequence[str] | None = None) -> int:
        return run_job(spec, argv)

    main.__doc__ = f"Run the {spec.name} job with the command-line options `argv` (default: sys.argv)."
    return main


def path_option(flag: str, setting: str, help: str) -> Option:
    """An option whose value is a file path."""
    return Option(flag, setting, help=help, type=Path)
