"""Size and content limits of a ux.events record: the one place they are defined.

Pure constants (no imports beyond typing), so everything that judges or produces events can import them:
the validity rules (`jobs.common.contract.validate` and the decoder), the oracles through them, the
generator, and the collector to come. The JVM decoder (`io.uxstream.udf.EventLimits`) holds a copy that
`tests/decode/test_decode_parity.py` compares with this module (`DecodeCli --constants`).

Why: the sinks have hard limits. PostgreSQL rejects a NUL character in text ("invalid byte sequence for
encoding UTF8: 0x00") and a value longer than its column; a record that decodes but cannot be written
would fail the job and restart it forever. Such records are dead-lettered instead, with reason
`impossible_value` and a detail naming the field, the measure and the limit
(`field 'page_path': 5000 characters, limit 512`).

Rules (SEMANTICS.md, "Validity and duplicates"; README, "Event limits"), in the order they are checked
(the first failing one decides the detail):

1. `MAX_RECORD_BYTES`: the Kafka record value, Confluent header included, before the header is read
   (a larger record is never parsed; its dead letter has no schema id).
2. Then every field of the reader schema, in schema order:
   - a string field: at most `STRING_LIMITS[name]` characters (`DEFAULT_STRING_LIMIT` for a string field
     not listed), then no NUL (U+0000), then no lone surrogate (U+D800..U+DFFF);
   - `properties`: at most `MAX_PROPERTIES` entries, then per entry in map order (first occurrence of a
     key; a repeated key keeps its first position and its last value): key length (`MAX_PROPERTY_KEY`),
     key content, value length (`MAX_PROPERTY_VALUE`), value content.
3. Then the other validity rules (required fields, event types, timestamps, measures, ip).

Lengths count Unicode code points (Python's `len(str)`), not UTF-16 units or bytes: an emoji is one
character. Strings decoded from Avro are strict UTF-8 in both decoders (an encoded surrogate, an overlong
form or a cut sequence is `undecodable_avro` before any limit applies), so the surrogate rule only ever
fires for events given as Python objects (JSON ground truth, the collector); U+FFFD is a valid character.
"""

from __future__ import annotations

from typing import Final

MAX_RECORD_BYTES: Final[int] = 32_768
"""Largest Kafka record value (bytes, the 5-byte Confluent header included)."""

DEFAULT_STRING_LIMIT: Final[int] = 1_024
"""Limit of a string field not listed in `STRING_LIMITS` (a field a future schema version adds)."""

STRING_LIMITS: Final[dict[str, int]] = {
    "event_id": 128,
    "event_type": 32,
    "event_name": 128,
    "user_id": 256,
    "anonymous_id": 128,
    "page_url": 2_048,
    "page_path": 512,
    "page_title": 1_024,
    "referrer": 2_048,
    "utm_source": 256,
    "utm_medium": 256,
    "utm_campaign": 256,
    "device_type": 32,
    "os": 64,
    "browser": 64,
    "user_agent": 1_024,
    "country": 16,
    "app_version": 64,
    "error_type": 128,
    "error_message": 4_096,
    "session_hint": 128,
    "consent": 32,
    "ip": 64,
    "survey_id": 128,
    "feedback_scale": 8,
    "feedback_comment": 1_000,
}
"""Most characters (code points) of each string field of the ux_event schemas, in schema order. Every
string field of the latest version is listed (a test checks it)."""

MAX_PROPERTIES: Final[int] = 64
"""Most entries of the `properties` map (distinct keys)."""
MAX_PROPERTY_KEY: Final[int] = 128
"""Most characters of a `properties` key."""
MAX_PROPERTY_VALUE: Final[int] = 256
"""Most characters of a `properties` value."""

PROPERTIES_FIELD: Final[str] = "properties"
"""The map field the property limits apply to."""

FORBIDDEN_CHARACTERS: Final[str] = "NUL (U+0000) and lone surrogates (U+D800..U+DFFF)"
"""What no string, property key or value may contain (for messages and docs)."""


def string_limit(field: str) -> int:
    """The character limit of a string field (`DEFAULT_STRING_LIMIT` when it is not listed)."""
    return STRING_LIMITS.get(field, DEFAULT_STRING_LIMIT)
