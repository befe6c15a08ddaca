"""`uxstream replay` (file → records, exact error messages) and the generate/replay commands without Kafka."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from jobs.common.contract import DecodedEvent, decode
from jobs.common.oracle import load
from uxstream.cli import main
from uxstream.contract.replay import ReplayError, load_lines, to_records

from .conftest import T0


def write(tmp_path: Path, *lines: Any) -> Path:
    """A JSON Lines file: dicts are dumped, strings written as they are."""
    path = tmp_path / "events.jsonl"
    path.write_text(
        "".join((json.dumps(item) if not isinstance(item, str) else item) + "\n" for item in lines),
        encoding="utf-8",
    )
    return path


def minimal(**fields: Any) -> dict[str, Any]:
    """The smallest event a user can write by hand."""
    return {
        "event_id": "e1",
        "event_type": "page_view",
        "event_name": "page_view",
        "anonymous_id": "a1",
        "ts": T0,
        "page_path": "/",
        **fields,
    }


def error_of(path: Path, schema_version: int | None = None) -> str:
    with pytest.raises(ReplayError) as caught:
        load_lines(path, schema_version=schema_version)
    return str(caught.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "{not json",
            "events.jsonl:2: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        ),
        ("[1, 2]", "events.jsonl:2: expected a JSON object (one event per line), got list"),
        (
            minimal(ts="yesterday"),
            "events.jsonl:2: field 'ts' must be an integer (epoch ms) or ISO-8601 timestamp",
        ),
        (minimal(ts=True), "events.jsonl:2: field 'ts' must be an integer (epoch ms) or ISO-8601 timestamp"),
        (
            minimal(ts="2025-01-06T09:30:00"),
            "events.jsonl:2: field 'ts' has no UTC offset: write it as 2025-01-06T09:30:00Z or with +01:00",
        ),
        (
            minimal(received_at=1.5),
            "events.jsonl:2: field 'received_at' must be an integer (epoch ms) or ISO-8601 timestamp",
        ),
        (
            {k: v for k, v in minimal().items() if k != "event_id"},
            "events.jsonl:2: field 'event_id' is required",
        ),
        (minimal(cuntry="DE"), "events.jsonl:2: unknown field 'cuntry' (ux_event v3 has no such field)"),
        (minimal(page_path=7), "events.jsonl:2: field 'page_path' must be a string or null"),
        (minimal(event_type=None), "events.jsonl:2: field 'event_type' must be a string"),
        (minimal(lcp_ms="fast"), "events.jsonl:2: field 'lcp_ms' must be a number or null"),
        (
            minimal(screen_width=2**40),
            "events.jsonl:2: field 'screen_width' must be an integer (int) or null",
        ),
        (
            minimal(properties={"plan": 3}),
            "events.jsonl:2: field 'properties' must be an object with string values",
        ),
    ],
)
def test_a_bad_line_is_reported_with_its_number_and_what_is_wrong(
    tmp_path: Path, line: Any, message: str
) -> None:
    path = write(tmp_path, minimal(), line)

    assert error_of(path) == f"{tmp_path}/{message}"


def test_a_v2_field_in_a_v1_replay_says_which_version_has_it(tmp_path: Path) -> None:
    path = write(tmp_path, minimal(consent="granted"))

    assert error_of(path, schema_version=1) == (
        f"{tmp_path}/events.jsonl:1: field 'consent' is not in ux_event v1 "
        "(it is in ux_event v2: use --schema-version 2)"
    )


def test_nothing_is_produced_when_a_later_line_is_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, minimal(), minimal(), "oops")
    output = tmp_path / "truth.jsonl"

    code = main(["replay", str(path), "--dry-run", "--output", str(output)])

    assert code == 2
    assert (
        capsys.readouterr().err
        == f"uxstream replay: error: {path}:3: not valid JSON (Expecting value at column 1)\n"
    )
    assert not output.exists()


def test_hand_written_events_get_defaults_and_iso_timestamps(tmp_path: Path) -> None:
    path = write(tmp_path, minimal(ts="2025-01-06T09:30:00Z"), minimal(user_id="usr_1", received_at=T0 + 5))

    first, second = load_lines(path)

    assert first.event is not None and second.event is not None
    assert (first.event["ts"], first.event["received_at"], first.timestamp) == (T0, T0, T0)
    assert (second.key, second.event["anonymous_id"], second.timestamp) == ("usr_1", "a1", T0 + 5)
    decoded = decode(first.value)
    assert isinstance(decoded, DecodedEvent) and decoded.event["properties"] == {}


def test_invalid_but_encodable_events_are_replayed_for_the_dead_letter_path(tmp_path: Path) -> None:
    (line,) = load_lines(write(tmp_path, minimal(event_id="", cls=-1.0)))

    result = decode(line.value)
    assert getattr(result, "reason", None) == "missing_field"


def test_a_replayed_ground_truth_reproduces_the_generated_records(tmp_path: Path) -> None:
    generated = tmp_path / "generated.jsonl"
    replayed = tmp_path / "replayed.jsonl"
    knobs = shlex.split("--events 3000 --seed 9 --duplicate-fraction 0.05 --malformed-fraction 0.05")
    assert main(["generate", *knobs, "--dry-run", "--output", str(generated)]) == 0

    assert main(["replay", str(generated), "--dry-run", "--output", str(replayed)]) == 0

    assert replayed.read_text(encoding="utf-8") == generated.read_text(encoding="utf-8")
    clean = load(replayed)
    payloads = {r[1] for r in to_records(load_lines(generated), 4)}
    assert {d.payload for d in clean.dead_letters} <= payloads


def test_generate_dry_run_reports_what_it_made(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["generate", "--events", "2000", "--duplicate-fraction", "0.1", "--dry-run"])

    out = capsys.readouterr()
    assert code == 0
    assert out.out.startswith("generated 2,000 records (dry run: nothing produced) in ")
    assert " duplicate" in out.out
    assert "generate: 2,000/2,000 records (100%)" in out.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duplicate-fraction", "0.7"], "uxstream generate: error: --duplicate-fraction must be below 0.5"),
        (
            ["--late-min-delay", "1s"],
            "uxstream generate: error: --late-min-delay/--late-max-delay must satisfy",
        ),
        (
            ["--bot-share", "0.6", "--stealth-bot-share", "0.5"],
            "uxstream generate: error: --bot-share + --stealth-bot-share must not exceed 1",
        ),
        (
            ["--anomaly", "error_spike:planet=Mars:1m:1m"],
            "uxstream generate: error: anomaly 'error_spike:planet=Mars:1m:1m'",
        ),
    ],
)
def test_generate_rejects_bad_knobs_by_option_name(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "--events", "10", "--dry-run", *args]) == 2
    assert capsys.readouterr().err.startswith(message)


def test_every_generate_and_replay_option_is_documented() -> None:
    from uxstream.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name in ("generate", "replay"):
        for action in commands.choices[name]._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
