"""Confluent wire format: encode/decode, schema resolution to the latest version, and one exact reason code
for every kind of malformed record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.common.contract import (
    BAD_MAGIC_BYTE,
    IMPOSSIBLE_VALUE,
    MISSING_FIELD,
    REASONS,
    TRUNCATED_FRAME,
    UNDECODABLE_AVRO,
    UNKNOWN_SCHEMA_ID,
    Catalog,
    CatalogResolver,
    ContractError,
    DecodedEvent,
    EventDecoder,
    Invalid,
    SchemaEntry,
    SchemaRegistryResolver,
    WriterSchema,
    dead_letter,
    decode,
    encode,
    frame,
    header,
    read_header,
)
from jobs.common.topics import DLQ, EVENTS
from uxstream.contract.generator import avro_long

from .conftest import T0, V2_FIELDS, V3_FIELDS, EventBuilder

V1_ID, V2_ID = 1, 2


def test_reason_codes_are_the_fixed_set() -> None:
    assert REASONS == (
        "bad_magic_byte",
        "truncated_frame",
        "unknown_schema_id",
        "undecodable_avro",
        "missing_field",
        "impossible_value",
    )


def test_a_frame_is_magic_byte_schema_id_and_avro_body(page_view: EventBuilder) -> None:
    payload = encode(page_view(), V2_ID)

    assert payload[:5] == b"\x00\x00\x00\x00\x02"
    assert read_header(payload) == V2_ID


def test_a_v2_event_decodes_to_itself(page_view_v2: EventBuilder) -> None:
    event = page_view_v2()

    decoded = decode(encode(event, V2_ID))

    assert decoded == DecodedEvent(V2_ID, {**event, **V3_FIELDS})


def test_a_v1_event_decodes_with_the_v2_defaults_filled(page_view: EventBuilder) -> None:
    event = page_view()

    decoded = decode(encode(event, V1_ID))

    assert isinstance(decoded, DecodedEvent)
    assert decoded.schema_id == V1_ID
    assert decoded.event == {**event, **dict.fromkeys(V2_FIELDS), **V3_FIELDS}


def test_a_mixed_v1_v2_stream_decodes_completely(page_view: EventBuilder, page_view_v2: EventBuilder) -> None:
    events = [
        (V1_ID, page_view(event_id=f"v1-{i}", ts=T0 + i))
        if i % 3
        else (V2_ID, page_view_v2(event_id=f"v2-{i}"))
        for i in range(300)
    ]

    decoded = [decode(encode(event, schema_id)) for schema_id, event in events]

    assert all(isinstance(d, DecodedEvent) for d in decoded)
    assert [d.event["event_id"] for d in decoded if isinstance(d, DecodedEvent)] == [
        e["event_id"] for _, e in events
    ]
    assert {d.schema_id for d in decoded if isinstance(d, DecodedEvent)} == {V1_ID, V2_ID}


def test_a_newer_writer_version_resolves_to_an_older_reader(
    catalog: Catalog, v1: SchemaEntry, page_view_v2: EventBuilder
) -> None:
    decoder = EventDecoder(CatalogResolver(catalog), reader=v1)

    decoded = decoder.decode(encode(page_view_v2(), V2_ID))

    assert isinstance(decoded, DecodedEvent)
    assert set(decoded.event) == set(v1.field_names)


# ------------------------------------------------------------------------------ malformed records

Corrupt = Callable[[bytes], bytes | None]

MALFORMED: dict[str, tuple[Corrupt, str]] = {
    "null value (tombstone)": (lambda valid: None, TRUNCATED_FRAME),
    "empty value": (lambda valid: b"", TRUNCATED_FRAME),
    "4 header bytes": (lambda valid: valid[:4], TRUNCATED_FRAME),
    "JSON instead of Avro": (lambda valid: b'{"event_id": "e1"}', BAD_MAGIC_BYTE),
    "random bytes": (lambda valid: bytes([0x9C, 0x11, 0xFE, 0x00, 0x42, 0x07]), BAD_MAGIC_BYTE),
    "magic byte 1": (lambda valid: b"\x01" + valid[1:], BAD_MAGIC_BYTE),
    "unregistered schema id": (lambda valid: header(9_999) + valid[5:], UNKNOWN_SCHEMA_ID),
    "schema id 0": (lambda valid: header(0) + valid[5:], UNKNOWN_SCHEMA_ID),
    "id of a non-event schema": (lambda valid: header(3) + valid[5:], UNKNOWN_SCHEMA_ID),
    "header only": (lambda valid: valid[:5], UNDECODABLE_AVRO),
    "body cut short": (lambda valid: valid[:-3], UNDECODABLE_AVRO),
    "trailing garbage": (lambda valid: valid + b"\x00\x01", UNDECODABLE_AVRO),
    "v1 body under the v2 id": (lambda valid: header(V2_ID) + valid[5:], UNDECODABLE_AVRO),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_every_malformed_kind_gets_its_exact_reason(page_view: EventBuilder, kind: str) -> None:
    corrupt, reason = MALFORMED[kind]
    valid = encode(page_view(), V1_ID)

    result = decode(corrupt(valid))

    assert isinstance(result, Invalid)
    assert result.reason == reason, result.detail


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"event_id": ""}, MISSING_FIELD),
        ({"ts": 1_736_121_600}, IMPOSSIBLE_VALUE),
        ({"cls": -0.2}, IMPOSSIBLE_VALUE),
    ],
)
def test_valid_avro_with_invalid_content_gets_a_content_reason_and_its_schema_id(
    page_view: EventBuilder, overrides: dict[str, Any], reason: str
) -> None:
    result = decode(encode(page_view(**overrides), V1_ID))

    assert isinstance(result, Invalid)
    assert (result.reason, result.schema_id) == (reason, V1_ID)


@pytest.mark.parametrize("schema_id", [V1_ID, V2_ID])
def test_a_body_truncated_at_any_byte_is_undecodable(page_view_v2: EventBuilder, schema_id: int) -> None:
    """`properties` (a map) is the last field of every version, so every cut ends in a failed read."""
    event = page_view_v2()
    if schema_id == V1_ID:
        event = {k: v for k, v in event.items() if k not in V2_FIELDS}
    valid = encode(event, schema_id)

    reasons = {cut: decode(valid[:cut]) for cut in range(5, len(valid))}

    assert {cut: r.reason for cut, r in reasons.items() if isinstance(r, Invalid)} == dict.fromkeys(
        range(5, len(valid)), UNDECODABLE_AVRO
    )


def test_an_int_beyond_32_bits_is_undecodable_as_the_avro_specification_says(
    page_view_v2: EventBuilder,
) -> None:
    valid = encode(page_view_v2(screen_width=2**31 - 1), V2_ID)
    too_wide = valid.replace(avro_long(2**31 - 1), avro_long(2**31), 1)

    assert isinstance(decode(valid), DecodedEvent)
    assert decode(too_wide) == Invalid(
        UNDECODABLE_AVRO,
        "field 'screen_width' holds 2147483648, which does not fit in 32 bits (Avro int)",
        V2_ID,
    )


def test_details_name_what_is_wrong(page_view: EventBuilder) -> None:
    valid = encode(page_view(), V1_ID)

    assert decode(b"\x7b" + valid[1:]) == Invalid(
        BAD_MAGIC_BYTE, "first byte is 0x7b, expected 0x00 (Confluent wire format)"
    )
    assert decode(header(77) + valid[5:]) == Invalid(UNKNOWN_SCHEMA_ID, "schema id 77 is not registered", 77)
    assert decode(valid + b"!") == Invalid(
        UNDECODABLE_AVRO, "1 trailing byte(s) after the record (schema id 1)", V1_ID
    )


# ------------------------------------------------------------------------------------- resolvers


class OneSchemaResolver:
    """A resolver that knows a single id (shows the SchemaResolver protocol)."""

    def __init__(self, schema_id: int, entry: SchemaEntry) -> None:
        self.known = WriterSchema(schema_id, entry.full_name, entry.parsed)
        self.asked: list[int] = []

    def resolve(self, schema_id: int) -> WriterSchema | None:
        self.asked.append(schema_id)
        return self.known if schema_id == self.known.id else None


def test_a_custom_resolver_is_asked_once_per_id(v1: SchemaEntry, page_view: EventBuilder) -> None:
    resolver = OneSchemaResolver(501, v1)
    decoder = EventDecoder(resolver)
    payload = frame(501, encode(page_view(), V1_ID)[5:])

    results = [decoder.decode(payload) for _ in range(3)]

    assert all(isinstance(r, DecodedEvent) and r.schema_id == 501 for r in results)
    assert resolver.asked == [501]
    assert decoder.decode(encode(page_view(), V1_ID)) == Invalid(
        UNKNOWN_SCHEMA_ID, "schema id 1 is not registered", V1_ID
    )


def test_the_schema_registry_resolver_says_which_extra_is_missing() -> None:
    try:
        import confluent_kafka.schema_registry  # noqa: F401
    except ImportError:
        with pytest.raises(ContractError, match=r"confluent-kafka\[schemaregistry\].*catalog resolver"):
            SchemaRegistryResolver("http://127.0.0.1:1")
    else:
        SchemaRegistryResolver("http://127.0.0.1:1")  # constructing does not contact the registry


def test_a_dead_letter_record_fits_the_dead_letter_schema(catalog: Catalog, page_view: EventBuilder) -> None:
    payload = b"\x01garbage"
    invalid = decode(payload)
    assert isinstance(invalid, Invalid)
    entry = catalog.latest(f"{DLQ}-value")

    record = dead_letter(
        invalid,
        payload=payload,
        key=b"usr_1",
        topic=EVENTS,
        partition=2,
        offset=41,
        timestamp_ms=T0,
        job="sessionize",
    )
    written = encode(record, entry.id)

    assert written[:5] == header(entry.id)
    assert record["reason"] == BAD_MAGIC_BYTE and record["original"] == payload


# --------------------------------------------------------------------------------------- round trip

NO_NUL = st.characters(codec="utf-8", exclude_characters="\x00")
"""Valid events contain no NUL (jobs/common/limits.py): every other character may appear."""
text = st.text(NO_NUL, max_size=40)
optional_text = st.none() | text
optional_number = st.none() | st.floats(min_value=0, max_value=1e7, allow_nan=False)


@st.composite
def events(draw: st.DrawFn) -> tuple[int, dict[str, Any]]:
    schema_id = draw(st.sampled_from([V1_ID, V2_ID]))
    event: dict[str, Any] = {
        "event_id": draw(st.text(NO_NUL, min_size=1, max_size=36)),
        "event_type": draw(
            st.sampled_from(["page_view", "click", "error", "web_vital", "heartbeat", "custom"])
        ),
        "event_name": draw(st.text(NO_NUL, min_size=1, max_size=20)),
        "user_id": draw(optional_text),
        "anonymous_id": draw(st.text(NO_NUL, min_size=1, max_size=36)),
        "ts": draw(st.integers(min_value=946_684_800_000, max_value=4_102_444_800_000)),
        "received_at": draw(st.integers(min_value=946_684_800_000, max_value=4_102_444_800_000)),
        "page_url": draw(optional_text),
        "page_path": draw(st.text(NO_NUL, min_size=1, max_size=30)),
        "page_title": draw(optional_text),
        "referrer": draw(optional_text),
        "utm_source": draw(optional_text),
        "utm_medium": draw(optional_text),
        "utm_campaign": draw(optional_text),
        "device_type": draw(st.none() | st.sampled_from(["desktop", "mobile", "tablet"])),
        "os": draw(optional_text),
        "browser": draw(optional_text),
        "user_agent": draw(optional_text),
        "country": draw(st.none() | st.text(NO_NUL, min_size=2, max_size=2)),
        "app_version": draw(optional_text),
        "lcp_ms": draw(optional_number),
        "inp_ms": draw(optional_number),
        "cls": draw(st.floats(min_value=0, max_value=5)),
        "error_type": draw(st.text(NO_NUL, min_size=1, max_size=20)),
        "error_message": draw(optional_text),
        "page_load_ms": draw(optional_number),
        "properties": draw(st.dictionaries(text, text, max_size=5)),
    }
    if schema_id == V2_ID:
        event |= {
            "session_hint": draw(optional_text),
            "engagement_time_ms": draw(st.none() | st.integers(min_value=0, max_value=2**40)),
            "consent": draw(st.none() | st.sampled_from(["granted", "denied"])),
            "screen_width": draw(st.none() | st.integers(min_value=0, max_value=2**31 - 1)),
            "screen_height": draw(st.none() | st.integers(min_value=0, max_value=2**31 - 1)),
            "ip": draw(st.none() | st.ip_addresses().map(str)),
        }
    return schema_id, event


@settings(max_examples=300, deadline=None)
@given(events())
def test_any_valid_event_survives_encode_then_decode(case: tuple[int, dict[str, Any]]) -> None:
    schema_id, event = case

    decoded = decode(encode(event, schema_id))

    assert isinstance(decoded, DecodedEvent), decoded
    assert decoded.schema_id == schema_id
    assert decoded.event == {**dict.fromkeys(V2_FIELDS), **V3_FIELDS, **event}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_and_get_a_reason(payload: bytes) -> None:
    result = decode(payload)

    assert isinstance(result, DecodedEvent) or result.reason in REASONS
