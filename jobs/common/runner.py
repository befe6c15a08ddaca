"""The one runner of every uxstream job: command line, settings, pre-start checks, environments, execution.

A job's `job.py` declares what is its own; the runner does the rest the same way for every job:

    OPTIONS = runner.event_job_options(runner.Option("--input-topic", "input_topic", help="…"), …)
    CHECKS = (runner.ensure_pseudonym_key, *runner.CHECKS)
    OUTPUTS = ("dlq_topic", "kpi_topic")

    JOB = runner.JobSpec(JOB_NAME, __doc__, SessionizeSettings.from_env, pipeline, OPTIONS, CHECKS, OUTPUTS)
    main = runner.entry_point(JOB)  # main(argv=None) -> int: `uxstream run JOB` and `python -m`

`pipeline(settings)` is the job as a list of named steps (jobs/common/pipeline.py); the runner submits it:
a SQL-only job's statement set is executed and waited on, a job with a DataStream part runs with `env`.

`options` is the job's whole command line, in help order: its own `Option`s (each overrides one settings
field when given) and the common ones, which the runner reads the same way for every job: where the input
ends (`INPUT_BOUND`: `--bounded` and `--stop-at-offsets`; or `BOUNDED`: `--bounded` only), restores
(`RESTORE`), the checkpoint interval and the parallelism. `checks` run in their order before Flink starts:
the Kafka transaction timeout (RELIABILITY T22), the output topics, the stop offsets against the input
topic, the local pseudonym key.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar, cast

from jobs.common import privacy, topics
from jobs.common.cli import (
    add_bounded_argument,
    add_input_bound_arguments,
    add_restore_argument,
    input_bound_overrides,
    restored,
)
from jobs.common.connectors import StopOffsets
from jobs.common.flink_env import FlinkSettings
from jobs.common.pipeline import Pipeline
from jobs.common.settings import KafkaSettings, SettingsError

if TYPE_CHECKING:
    pass


class JobSettings(Protocol):
    """What the runner reads of a job's (frozen dataclass) settings."""

    @property
    def kafka(self) -> KafkaSettings: ...

    @property
    def flink(self) -> FlinkSettings: ...


class BoundedInput(JobSettings, Protocol):
    """Settings of a job whose read of its input topic can stop at given offsets (`INPUT_BOUND`)."""

    @property
    def input_topic(self) -> str: ...

    @property
    def stop_offsets(self) -> StopOffsets: ...


S = TypeVar("S", bound=JobSettings)


def _unchanged(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Option:
    """A job's own option: overrides one settings field (`setting`) when given.

    `type` converts on the command line (a failure is argparse's usage error); `to_setting` converts a
    given value for the settings (e.g. `Path`). An empty string counts as not given unless
    `empty_allowed` (e.g. `--kpi-topic ''`: publish nothing)."""

    flag: str
    setting: str
    help: str | None = None
    type: Callable[[str], Any] = str
    empty_allowed: bool = False
    to_setting: Callable[[Any], Any] = _unchanged

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        metavar = self.flag.lstrip("-").replace("-", "_").upper()
        parser.add_argument(
            self.flag, dest=self.setting, metavar=metavar, type=self.type, default=None, help=self.help
        )

    def override(self, args: argparse.Namespace) -> dict[str, Any]:
        value = getattr(args, self.setting)
        if value is None or (value == "" and not self.empty_allowed):
            return {}
        return {self.setting: self.to_setting(value)}


def path_option(flag: str, setting: str, help: str) -> Option:
    """An option whose value is a file path ('' counts as not given)."""
    return Option(flag, setting, help=help, to_setting=Path)


@dataclass(frozen=True)
class CommonOption:
    """Options every job spells and handles the same way; `settings_from_args` knows each of them."""

    name: str
    add_to: Callable[[argparse.ArgumentParser], None]


def _add_checkpoint_interval(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint-interval-ms", type=int, default=None)


def _add_parallelism(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parallelism", type=int, default=None)


INPUT_BOUND = CommonOption("input bound", add_input_bound_arguments)
"""`--bounded` and `--stop-at-offsets` (settings `bounded`, `stop_offsets`: a `BoundedInput` job)."""
BOUNDED = CommonOption("bounded", add_bounded_argument)
"""`--bounded` only (setting `bounded`)."""
RESTORE = CommonOption("restore", add_restore_argument)
"""`--restore PATH|latest`; needs `INPUT_BOUND` (a bounded read cannot be restored)."""
CHECKPOINT_INTERVAL = CommonOption("checkpoint interval", _add_checkpoint_interval)
PARALLELISM = CommonOption("parallelism", _add_parallelism)


def event_job_options(*own: Option) -> tuple[Option | CommonOption, ...]:
    """The command line of a job that reads ux.events: input bound, restore, its own options, Flink."""
    return (INPUT_BOUND, RESTORE, *own, CHECKPOINT_INTERVAL, PARALLELISM)


def check_transactions(spec: JobSpec[Any], settings: JobSettings) -> None:
    """The exactly-once sinks' transaction timeout suits the broker and the checkpoint interval (T22)."""
    topics.check_transactions(settings.kafka, settings.flink.checkpoint_interval_ms)


def ensure_output_topics(spec: JobSpec[Any], settings: JobSettings) -> None:
    """The broker does not auto-create topics: create the job's output topics (idempotent)."""
    outputs = [getattr(settings, name) for name in spec.output_topics]
    topics.ensure_topics(settings.kafka, [topic for topic in outputs if topic])


def check_stop_offsets(spec: JobSpec[Any], settings: JobSettings) -> None:
    """`--stop-at-offsets` names every partition of the input topic, and only those."""
    bound = cast(BoundedInput, settings)
    if bound.stop_offsets:
        topics.check_stop_offsets(bound.kafka, bound.input_topic, bound.stop_offsets)


def ensure_pseudonym_key(spec: JobSpec[Any], settings: JobSettings) -> None:
    """Local runs: a generated pseudonym key unless one is configured."""
    privacy.ensure_key()


CHECKS = (check_transactions, ensure_output_topics, check_stop_offsets)
"""The checks of a job reading ux.events with exactly-once Kafka sinks, in order."""


@dataclass(frozen=True)
class JobSpec(Generic[S]):
    """Everything about a job that is its own; the runner does the rest the same way for every job."""

    name: str
    doc: str
    """The job module's docstring: its first line is the command's description."""
    settings: Callable[..., S]
    """`XSettings.from_env`: called as `settings(None, **overrides)`."""
    pipeline: Callable[[S], Pipeline]
    """The job's steps for its settings (renders SQL only: no pyflink, no Flink)."""
    options: tuple[Option | CommonOption, ...] = event_job_options()
    """The command line in help order (`event_job_options(*own)` for a job reading ux.events)."""
    checks: tuple[Callable[[JobSpec[S], S], None], ...] = CHECKS
    """What to make sure of before Flink starts, in this order (`CHECKS`, `ensure_pseudonym_key`)."""
    output_topics: tuple[str, ...] = ()
    """Settings fields naming the topics the job writes (`ensure_output_topics` creates them); an empty
    name (an output switched off) is skipped."""
    flink: Callable[[S, FlinkSettings], FlinkSettings] = lambda settings, flink: flink
    """Job-specific Flink options on top of the environment's and the command line's."""
    state_layout: int | None = None
    """The version of the job's SQL state layout: its SQL operator uids are `<job>.v<layout>_<id>_<kind>`
    (`uid_format`). Bump it with every change that adds, removes or re-orders stateful SQL operators (the
    planner numbers them in plan order): a checkpoint or savepoint of another layout is then refused at
    start with a clear message (`run`) instead of being mapped onto the wrong operators. None: Flink's
    unversioned `<id>_<transformation>`."""
    layout_variant: Callable[[S], str] = lambda settings: ""
    """A suffix of the state layout's version for settings that plan some operator with other state (the
    heap state backend's dedup: `decode.Dedup`), so that state of one variant is refused by the other at
    start, as state of another layout is, instead of failing on its serializers."""

    @property
    def prog(self) -> str:
        return f"python -m jobs.{self.name}.job"


def parser(spec: JobSpec[Any]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=spec.prog, description=spec.doc.splitlines()[0])
    for option in spec.options:
        option.add_to(parser)
    return parser


def settings_from_args(spec: JobSpec[S], args: argparse.Namespace) -> S:
    """The job's settings: environment, then the command line (options, input bound, Flink, restore)."""
    overrides: dict[str, Any] = {}
    if INPUT_BOUND in spec.options:
        overrides.update(input_bound_overrides(args))
    if BOUNDED in spec.options:
        overrides["bounded"] = args.bounded
    for option in spec.options:
        if isinstance(option, Option):
            overrides.update(option.override(args))
    settings = spec.settings(None, **overrides)
    flink = settings.flink
    if CHECKPOINT_INTERVAL in spec.options and args.checkpoint_interval_ms:
        flink = flink.with_options(checkpoint_interval_ms=args.checkpoint_interval_ms)
    if PARALLELISM in spec.options and args.parallelism:
        flink = flink.with_options(parallelism=args.parallelism)
    if RESTORE in spec.options:
        flink = restored(args, flink, spec.name)
    flink = spec.flink(settings, flink)
    return replace(settings, flink=flink)  # type: ignore[type-var]


UNMAPPED_STATE: Final = "Cannot map checkpoint/savepoint state"
"""What Flink says when restored state has no operator with its uid in the job."""


def uid_format(spec: JobSpec[Any], variant: str = "") -> str | None:
    """`table.exec.uid.format` of the job's state layout and its variant (None: Flink's default)."""
    if spec.state_layout is None:
        return None
    return f"{spec.name}.v{spec.state_layout}{variant}_<id>_<transformation>"


def unrestorable(spec: JobSpec[Any], path: Path, variant: str = "") -> str:
    """The refusal when the state at `path` does not fit the job's operators."""
    layout = "" if spec.state_layout is None else f" (state layout v{spec.state_layout}{variant})"
    return (
        f"{path} holds state that this version of {spec.name}{layout} cannot take over: it was written by "
        "an earlier state layout of the job (see NOTES.md), by the job on another state backend (the heap "
        "backend's dedup keeps other state) or by another job. Start fresh instead: run "
        "without --restore (the source resumes from the offsets the consumer group committed; windows and "
        "sessions open at that point start empty), or backfill: replay the topic from its start into fresh "
        "tables"
    )


def run(spec: JobSpec[S], settings: S) -> None:
    """Check, build and execute the job; returns when it finished (bounded) or never (unbounded)."""
    from jobs.common.flink_env import create_environments

    for check in spec.checks:
        check(spec, settings)
    env, t_env = create_environments(settings.flink, spec.name)
    variant = spec.layout_variant(settings)
    uids = uid_format(spec, variant)
    if uids is not None:
        t_env.get_config().set("table.exec.uid.format", uids)
    try:
        result = spec.pipeline(settings).submit(env, t_env)
        if result is not None:
            result.wait()
        else:
            env.execute(spec.name)
    except Exception as exc:
        restore = settings.flink.restore_path
        if restore is not None and UNMAPPED_STATE in str(exc):
            raise SettingsError(unrestorable(spec, Path(restore), variant)) from None
        raise


def run_job(spec: JobSpec[Any], argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv[1:]), run the job; 0 when it ended normally."""
    args = parser(spec).parse_args(argv)
    run(spec, settings_from_args(spec, args))
    return 0


class Main(Protocol):
    """A job module's `main` (what `uxstream run JOB` and `python -m jobs.JOB.job` call)."""

    def __call__(self, argv: Sequence[str] | None = None) -> int: ...


def entry_point(spec: JobSpec[Any]) -> Main:
    """The job module's `main(argv=None) -> int`: `run_job(spec, argv)`."""

    def main(argv: Sequence[str] | None = None) -> int:
        return run_job(spec, argv)

    main.__doc__ = f"Run the {spec.name} job with the command-line options `argv` (default: sys.argv[1:])."
    return main
