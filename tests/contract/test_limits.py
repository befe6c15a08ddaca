"""Event limits (jobs/common/limits.py): at the limit an event passes, one over it is dead-lettered with
reason `impossible_value` and a detail naming field, measure and limit; NUL and lone surrogates are refused
in every string; the record size is checked first. The JVM decoder's agreement is in
tests/decode/test_decode_parity.py."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from jobs.common import contract, limits, oracle
from jobs.common.contract import IMPOSSIBLE_VALUE, Invalid, decode, limits_problem, validate
from tests.decode.support import encode_v2, event, payload_of_size

from .conftest import EventBuilder

LIMITS_OF_THE_BRIEF = {
    "country": 16,
    "event_type": 32,
    "device_type": 32,
    "consent": 32,
    "os": 64,
    "browser": 64,
    "app_version": 64,
    "ip": 64,
    "event_id": 128,
    "event_name": 128,
    "anonymous_id": 128,
    "error_type": 128,
    "session_hint": 128,
    "user_id": 256,
    "utm_source": 256,
    "utm_medium": 256,
    "utm_campaign": 256,
    "page_path": 512,
    "page_title": 1024,
    "user_agent": 1024,
    "page_url": 2048,
    "referrer": 2048,
    "error_message": 4096,
    "survey_id": 128,
    "feedback_scale": 8,
    "feedback_comment": 1000,
}
"""Issue 16 item 1, in code points; the feedback fields of schema v3 (issue 22 item 6)."""


def string_fields(entry: contract.SchemaEntry) -> list[str]:
    names = []
    for spec in entry.definition["fields"]:
        types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
        if "string" in types:
            names.append(spec["name"])
    return names


def limit_of(name: str) -> int:
    return limits.STRING_LIMITS[name]


def at(name: str, length: int, char: str = "a") -> str:
    """A value of `length` characters for a string field (an IPv6 literal with a zone id for ip)."""
    if name == "ip":
        head = "fe80::1%"
        return head + char * (length - len(head))
    return char * length


# ------------------------------------------------------------------------------------------ the table


def test_every_string_field_of_the_latest_schema_has_an_explicit_limit_in_schema_order() -> None:
    latest = contract.event_reader_schema()

    assert list(limits.STRING_LIMITS) == string_fields(latest)
    assert limits.STRING_LIMITS == LIMITS_OF_THE_BRIEF
    assert (limits.MAX_PROPERTIES, limits.MAX_PROPERTY_KEY, limits.MAX_PROPERTY_VALUE) == (64, 128, 256)
    assert limits.MAX_RECORD_BYTES == 32_768
    assert limits.string_limit("a_field_of_v4") == limits.DEFAULT_STRING_LIMIT == 1024


def test_the_check_order_is_the_reader_schema_with_properties_last() -> None:
    plan = contract.limit_plan()

    assert [name for name, _ in plan] == [*limits.STRING_LIMITS, "properties"]
    assert dict(plan[:-1]) == limits.STRING_LIMITS
    assert plan[-1] == ("properties", -1)


def test_the_limits_module_imports_nothing_of_the_project() -> None:
    source = Path(limits.__file__).read_text(encoding="utf-8")
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]

    assert imports == ["from __future__ import annotations", "from typing import Final"]


# ------------------------------------------------------------------------------------- string fields


@pytest.mark.parametrize("name", list(LIMITS_OF_THE_BRIEF))
def test_a_string_at_its_limit_passes_and_one_character_more_is_an_impossible_value(
    page_view_v2: EventBuilder, name: str
) -> None:
    limit = limit_of(name)

    assert limits_problem(page_view_v2(**{name: at(name, limit)})) is None
    assert limits_problem(page_view_v2(**{name: at(name, limit + 1)})) == Invalid(
        IMPOSSIBLE_VALUE, f"field '{name}': {limit + 1} characters, limit {limit}"
    )
    assert validate(page_view_v2(**{name: at(name, limit + 1)})) == Invalid(
        IMPOSSIBLE_VALUE, f"field '{name}': {limit + 1} characters, limit {limit}"
    )


@pytest.mark.parametrize("name", [n for n in LIMITS_OF_THE_BRIEF if n not in ("event_type", "ip")])
def test_a_whole_event_at_a_limit_is_valid(page_view_v2: EventBuilder, name: str) -> None:
    assert validate(page_view_v2(**{name: at(name, limit_of(name))})) is None


def test_the_page_path_country_and_nul_of_the_issue_go_to_the_dlq(page_view_v2: EventBuilder) -> None:
    """Issue 16: each of these decoded fine and then failed every PostgreSQL write."""
    cases = {
        "page_path": ("/" + "p" * 4999, "field 'page_path': 5000 characters, limit 512"),
        "country": ("C" * 300, "field 'country': 300 characters, limit 16"),
    }
    for name, (value, detail) in cases.items():
        result = decode(contract.encode(page_view_v2(**{name: value}), 2))
        assert result == Invalid(IMPOSSIBLE_VALUE, detail, 2)
    nul = decode(contract.encode(page_view_v2(page_path="/a\x00b"), 2))
    assert nul == Invalid(IMPOSSIBLE_VALUE, "field 'page_path': NUL (U+0000) at position 2, not allowed", 2)


@pytest.mark.parametrize(
    ("char", "units"),
    [("é", "2 UTF-8 bytes"), ("€", "3 UTF-8 bytes"), ("🎉", "4 UTF-8 bytes, 2 UTF-16 units")],
)
def test_lengths_count_code_points_not_bytes_or_utf16_units(
    page_view_v2: EventBuilder, char: str, units: str
) -> None:
    assert limits_problem(page_view_v2(page_path="/" + char * 511)) is None, units
    payload = contract.encode(page_view_v2(page_path="/" + char * 511), 2)
    assert isinstance(decode(payload), contract.DecodedEvent)
    over = decode(contract.encode(page_view_v2(page_path="/" + char * 512), 2))
    assert over == Invalid(IMPOSSIBLE_VALUE, "field 'page_path': 513 characters, limit 512", 2)


@pytest.mark.parametrize("name", list(LIMITS_OF_THE_BRIEF))
def test_a_nul_character_in_any_string_field_is_refused_with_its_position(
    page_view_v2: EventBuilder, name: str
) -> None:
    value = "abc\x00z"

    assert validate(page_view_v2(**{name: value})) == Invalid(
        IMPOSSIBLE_VALUE, f"field '{name}': NUL (U+0000) at position 3, not allowed"
    )


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("/a\ud800", "lone surrogate U+D800 at position 2"),
        ("/\udfff/x", "lone surrogate U+DFFF at position 1"),
        ("/\ud83d\ude00", "lone surrogate U+D83D at position 1"),  # a UTF-16 pair is two lone surrogates here
        ("/🎉\udc80", "lone surrogate U+DC80 at position 2"),  # as surrogateescape decoding leaves them
    ],
)
def test_a_lone_surrogate_is_refused(page_view_v2: EventBuilder, value: str, detail: str) -> None:
    assert validate(page_view_v2(page_path=value)) == Invalid(
        IMPOSSIBLE_VALUE, f"field 'page_path': {detail}, not allowed"
    )


def test_nul_surrogate_and_replacement_characters_on_the_wire() -> None:
    """Avro strings are strict UTF-8 in both decoders: an encoded surrogate is undecodable before any limit
    applies, and U+FFFD (what lenient decoders substitute) is an ordinary, allowed character."""
    surrogate = encode_v2(event(page_path="/x")).replace(b"\x04/x", b"\x08/\xed\xa0\x80")
    result = decode(surrogate)
    assert isinstance(result, Invalid) and result.reason == contract.UNDECODABLE_AVRO
    assert "can't decode byte 0xed" in result.detail
    assert isinstance(decode(encode_v2(event(page_path="/\ufffd"))), contract.DecodedEvent)


# --------------------------------------------------------------------------------------- properties


def test_properties_at_64_entries_pass_and_65_are_too_many(page_view_v2: EventBuilder) -> None:
    entries = {f"k{i}": "v" for i in range(64)}

    assert validate(page_view_v2(properties=entries)) is None
    assert validate(page_view_v2(properties={**entries, "k64": "v"})) == Invalid(
        IMPOSSIBLE_VALUE, "field 'properties': 65 entries, limit 64"
    )


def test_repeated_keys_on_the_wire_count_once() -> None:
    payload = encode_v2(event(properties={f"k{i}": "v" for i in range(64)}))
    # the map block of 64 entries, plus a second block repeating two keys: 66 entries on the wire
    repeated = payload[:-1] + bytes([4]) + b"\x04k0\x02w" + b"\x04k1\x02w" + b"\x00"
    result = decode(repeated)

    assert isinstance(result, contract.DecodedEvent)
    assert len(result.event["properties"]) == 64 and result.event["properties"]["k0"] == "w"


@pytest.mark.parametrize(
    ("properties", "detail"),
    [
        ({"a": "1", "k" * 129: "v"}, "key #1: 129 characters, limit 128"),
        ({"a": "1", "b": "v" * 257}, "value #1: 257 characters, limit 256"),
        ({"a\x00": "v"}, "key #0: NUL (U+0000) at position 1, not allowed"),
        ({"a": "v\x00"}, "value #0: NUL (U+0000) at position 1, not allowed"),
        ({"a": "1", "\ud800": "v"}, "key #1: lone surrogate U+D800 at position 0, not allowed"),
        ({"a": "🎉" * 257}, "value #0: 257 characters, limit 256"),
        ({"k" * 129: "v" * 300}, "key #0: 129 characters, limit 128"),  # the key before its value
        ({"a": "v" * 300, "k" * 129: "v"}, "value #0: 300 characters, limit 256"),  # map order
    ],
)
def test_a_property_key_or_value_over_its_limit_or_with_a_bad_character_is_refused(
    page_view_v2: EventBuilder, properties: dict[str, str], detail: str
) -> None:
    assert validate(page_view_v2(properties=properties)) == Invalid(
        IMPOSSIBLE_VALUE, f"field 'properties': {detail}"
    )


def test_property_keys_and_values_at_their_limits_pass(page_view_v2: EventBuilder) -> None:
    assert validate(page_view_v2(properties={"k" * 128: "v" * 256, "🎉" * 128: "🎉" * 256})) is None


# -------------------------------------------------------------------------------------- record size


def test_a_record_of_32768_bytes_passes_and_one_byte_more_is_refused_before_decoding() -> None:
    at_limit = payload_of_size(limits.MAX_RECORD_BYTES)
    over = payload_of_size(limits.MAX_RECORD_BYTES + 1)

    assert isinstance(decode(at_limit), contract.DecodedEvent)
    assert decode(over) == Invalid(IMPOSSIBLE_VALUE, "record: 32769 bytes, limit 32768", None)


def test_the_record_size_is_checked_before_the_header() -> None:
    garbage = b"\x7b" + b"x" * 40_000

    assert decode(garbage) == Invalid(IMPOSSIBLE_VALUE, "record: 40001 bytes, limit 32768", None)
    assert decode(garbage[:100]).reason == contract.BAD_MAGIC_BYTE  # type: ignore[union-attr]
    assert contract.record_size_problem(32_768) is None


# --------------------------------------------------------------------------------------------- order


def test_limits_come_before_the_other_rules(page_view_v2: EventBuilder) -> None:
    problem = validate(page_view_v2(event_id="", page_path="/" * 513, ts=0))

    assert problem == Invalid(IMPOSSIBLE_VALUE, "field 'page_path': 513 characters, limit 512")


def test_fields_are_checked_in_schema_order_length_before_content(page_view_v2: EventBuilder) -> None:
    assert validate(page_view_v2(event_id="e\x00", page_path="/" * 600)) == Invalid(
        IMPOSSIBLE_VALUE, "field 'event_id': NUL (U+0000) at position 1, not allowed"
    )
    assert validate(page_view_v2(page_path="/\x00" + "/" * 600)) == Invalid(
        IMPOSSIBLE_VALUE, "field 'page_path': 602 characters, limit 512"
    )
    assert validate(page_view_v2(ip="1" * 65, properties={f"k{i}": "v" for i in range(70)})) == Invalid(
        IMPOSSIBLE_VALUE, "field 'ip': 65 characters, limit 64"
    )


def test_a_json_event_without_optional_keys_or_with_non_strings_is_judged_on_its_strings() -> None:
    sparse = {k: v for k, v in event().items() if v is not None and k != "properties"}
    assert validate(sparse) is None
    assert limits_problem({**sparse, "page_title": 12, "properties": {"n": 3}}) is None


# ---------------------------------------------------------------------------------- oracle and truth


def truth_line(seq: int, event: dict[str, Any], **extra: Any) -> str:
    line = {"seq": seq, "schema_id": 2, "partition": 0, "key": "k", "timestamp": event["received_at"]}
    return json.dumps({**line, "event": event, **extra}) + "\n"


def test_the_oracle_dead_letters_events_beyond_the_limits(tmp_path: Path, page_view_v2: EventBuilder) -> None:
    big = payload_of_size(limits.MAX_RECORD_BYTES + 1)
    big_event = contract.decode_framed(big)[1]
    path = tmp_path / "truth.jsonl"
    path.write_text(
        truth_line(0, page_view_v2())
        + truth_line(1, page_view_v2(event_id="e1", page_path="/" + "p" * 4999))
        + truth_line(2, page_view_v2(event_id="e2", country="C" * 300), expected_reason="impossible_value")
        + truth_line(3, page_view_v2(event_id="e3", page_title="a\x00"))
        + truth_line(4, big_event)
    )

    clean = oracle.load(path)

    assert [e.seq for e in clean.events] == [0]
    assert [(d.seq, d.reason, d.detail) for d in clean.dead_letters] == [
        (1, IMPOSSIBLE_VALUE, "field 'page_path': 5000 characters, limit 512"),
        (2, IMPOSSIBLE_VALUE, "field 'country': 300 characters, limit 16"),
        (3, IMPOSSIBLE_VALUE, "field 'page_title': NUL (U+0000) at position 1, not allowed"),
        (4, IMPOSSIBLE_VALUE, "record: 32769 bytes, limit 32768"),
    ]
    for dead in clean.dead_letters:  # what the decoder says about the same bytes
        assert decode(dead.payload) == Invalid(
            IMPOSSIBLE_VALUE, dead.detail or "", None if dead.seq == 4 else 2
        )


def test_the_oracle_refuses_an_oversized_payload_line_expecting_another_reason(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    payload = base64.b64encode(b"\x01" * 40_000).decode()
    line = {"seq": 0, "schema_id": None, "partition": 0, "key": None, "timestamp": 1, "payload_b64": payload}
    path.write_text(json.dumps({**line, "expected_reason": "bad_magic_byte"}) + "\n")

    with pytest.raises(oracle.GroundTruthError, match="record: 40000 bytes, limit 32768"):
        oracle.load(path)
    path.write_text(json.dumps({**line, "expected_reason": "impossible_value"}) + "\n")
    assert [d.reason for d in oracle.load(path).dead_letters] == [IMPOSSIBLE_VALUE]
