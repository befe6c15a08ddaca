"""Feedback events (issue 22 item 6, schema v3): the contract's rules, the comment scrubbing, and the JVM
decoder agreeing with both (check tier: the JVM decoder runs as a subprocess, no Flink, no services)."""

from __future__ import annotations

from typing import Any

import pytest

from jobs.common import contract, limits
from jobs.common.contract import (
    IMPOSSIBLE_VALUE,
    MISSING_FIELD,
    DecodedEvent,
    Invalid,
    decode,
    scrub_comment,
    validate,
)
from tests.decode.support import (
    V3_SCHEMA_ID,
    JvmDecoder,
    assert_same_verdict,
    encode_v2,
    encode_v3,
    event,
    feedback_event,
    jvm_constants,
    jvm_scrub,
)

# ------------------------------------------------------------------------------------------ scrubbing

SCRUB_CASES: list[tuple[str, str]] = [
    ("", ""),
    ("Loved it!", "Loved it!"),
    ("mail jane.doe@example.com please", "mail [email] please"),
    ("JANE_DOE+shop@Mail.Example.co.uk.", "[email]."),
    ("two: a@b.io,c.d@e-f.org", "two: [email],[email]"),
    ("not an email: user@localhost", "not an email: user@localhost"),
    ("@handle and foo@ and @bar.com", "@handle and foo@ and @bar.com"),
    ("call +49 170 1234567 now", "call [number] now"),
    ("(555) 123-4567", "[number]"),
    ("card 4111 1111 1111 1111, exp 12/29", "card [number], exp [number]"),
    ("order #12345678", "order #[number]"),
    ("123 is fine, 1234 is not", "123 is fine, [number] is not"),
    ("1.2.3 release, 10.0.0.1 host", "1.2.3 release, [number] host"),
    ("12 34", "[number]"),
    ("1 2", "1 2"),
    ("12 3 4", "[number]"),
    ("1 - 2 - 3 - 4", "1 - 2 - 3 - 4"),
    ("1--2--3--4", "[number]"),
    ("iban DE89 3704 0044 0532 0130 00", "iban DE[number]"),
    ("on 2025-01-06 at 09:30", "on [number] at 09:30"),
    ("user42@example.com 5551234", "[email] [number]"),
    ("Arabic digits ١٢٣٤٥ stay", "Arabic digits ١٢٣٤٥ stay"),
    ("full-width １２３４ stays", "full-width １２３４ stays"),
    ("emoji 🎉 1234🎉", "emoji 🎉 [number]🎉"),
    ("naïve café, été 9999", "naïve café, été [number]"),
    ("ümlaut@exämple.de", "ümlaut@exämple.de"),
    ("line\nbreak 0800\n5550100", "line\nbreak [number]\n[number]"),
    ("tab\t1234\t", "tab\t[number]\t"),
    ("$1,299.00 total", "$1,[number] total"),
    ("$1,299 total", "$1,299 total"),
    ("+1234", "[number]"),
    ("x" * 70 + "@example.com", "xxxxxx[email]"),  # a local part beyond RFC 5321's 64 characters
    ("a" * 900 + "@", "a" * 900 + "@"),
    ("(1234)", "[number])"),
]
"""Tricky strings and what the rule makes of them (README "Feedback": the scrubbing rule)."""


@pytest.mark.parametrize(("text", "expected"), SCRUB_CASES)
def test_the_python_scrubber_masks_emails_then_numbers(text: str, expected: str) -> None:
    assert scrub_comment(text) == expected


def test_the_jvm_scrubber_gives_the_same_text_for_every_tricky_string() -> None:
    texts = [text for text, _ in SCRUB_CASES]
    assert jvm_scrub(texts) == [scrub_comment(text) for text in texts]


def test_the_jvm_scrubs_with_the_python_patterns_and_scales() -> None:
    jvm = jvm_constants()
    assert jvm["EMAIL_PATTERN"] == contract.EMAIL_PATTERN.pattern
    assert jvm["NUMBER_PATTERN"] == contract.NUMBER_PATTERN.pattern
    assert jvm["FEEDBACK_SCALES"] == list(contract.FEEDBACK_SCALES)
    assert jvm["FEEDBACK_BOUNDS"] == [list(b) for b in contract.FEEDBACK_SCALES.values()]


# ---------------------------------------------------------------------------------------- validity


def test_a_valid_feedback_event_decodes_with_its_comment_scrubbed() -> None:
    sent = feedback_event()

    decoded = decode(encode_v3(sent))

    assert isinstance(decoded, DecodedEvent)
    assert decoded.schema_id == V3_SCHEMA_ID
    assert decoded.event == {**sent, "feedback_comment": "Great, mail me at [email] or call [number]"}


def test_older_producers_keep_working_without_the_feedback_fields() -> None:
    decoded = decode(encode_v2(event()))

    assert isinstance(decoded, DecodedEvent)
    assert [decoded.event[n] for n in ("survey_id", "feedback_scale", "feedback_score")] == [None] * 3


INVALID_FEEDBACK: list[tuple[dict[str, Any], Invalid]] = [
    (
        {"survey_id": None},
        Invalid(MISSING_FIELD, "field 'survey_id' is missing or empty (required for feedback)"),
    ),
    (
        {"survey_id": ""},
        Invalid(MISSING_FIELD, "field 'survey_id' is missing or empty (required for feedback)"),
    ),
    (
        {"feedback_scale": None},
        Invalid(MISSING_FIELD, "field 'feedback_scale' is missing or empty (required for feedback)"),
    ),
    (
        {"feedback_score": None},
        Invalid(MISSING_FIELD, "field 'feedback_score' is missing (required for feedback)"),
    ),
    (
        {"feedback_scale": "1-10"},
        Invalid(IMPOSSIBLE_VALUE, "field 'feedback_scale' is '1-10', not one of 0-10, 1-5"),
    ),
    (
        {"feedback_score": 11},
        Invalid(IMPOSSIBLE_VALUE, "field 'feedback_score' is 11, outside the 0-10 scale"),
    ),
    (
        {"feedback_score": -1},
        Invalid(IMPOSSIBLE_VALUE, "field 'feedback_score' is -1, outside the 0-10 scale"),
    ),
    (
        {"feedback_scale": "1-5", "feedback_score": 0},
        Invalid(IMPOSSIBLE_VALUE, "field 'feedback_score' is 0, outside the 1-5 scale"),
    ),
    (
        {"feedback_scale": "1-5", "feedback_score": 6},
        Invalid(IMPOSSIBLE_VALUE, "field 'feedback_score' is 6, outside the 1-5 scale"),
    ),
    (
        {"survey_id": "s" * 129},
        Invalid(IMPOSSIBLE_VALUE, "field 'survey_id': 129 characters, limit 128"),
    ),
    (
        {"feedback_comment": "c" * 1001},
        Invalid(IMPOSSIBLE_VALUE, "field 'feedback_comment': 1001 characters, limit 1000"),
    ),
    (
        {"feedback_comment": "ok\x00"},
        Invalid(IMPOSSIBLE_VALUE, "field 'feedback_comment': NUL (U+0000) at position 2, not allowed"),
    ),
]


@pytest.mark.parametrize(("overrides", "expected"), INVALID_FEEDBACK)
def test_an_invalid_feedback_event_is_rejected_with_its_reason(
    overrides: dict[str, Any], expected: Invalid
) -> None:
    sent = feedback_event(**overrides)

    assert validate(sent) == expected
    assert decode(encode_v3(sent)) == Invalid(expected.reason, expected.detail, V3_SCHEMA_ID)


@pytest.mark.parametrize(("scale", "score"), [("0-10", 0), ("0-10", 10), ("1-5", 1), ("1-5", 5)])
def test_the_ends_of_each_scale_are_valid(scale: str, score: int) -> None:
    assert validate(feedback_event(feedback_scale=scale, feedback_score=score)) is None


def test_feedback_fields_on_other_event_types_are_not_checked() -> None:
    assert validate(event(feedback_scale="stars", feedback_score=99)) is None


def test_the_comment_limit_applies_to_the_comment_as_sent() -> None:
    at_limit = "x1234" * 200  # 1,000 characters: 200 numbers, each masked into 8 characters
    decoded = decode(encode_v3(feedback_event(feedback_comment=at_limit)))

    assert limits.STRING_LIMITS["feedback_comment"] == 1000
    assert isinstance(decoded, DecodedEvent)
    assert decoded.event["feedback_comment"] == "x[number]" * 200


# --------------------------------------------------------------------------------- JVM parity

PARITY_CASES: list[dict[str, Any]] = [
    feedback_event(),
    feedback_event(feedback_scale="1-5", feedback_score=3, feedback_comment=None),
    feedback_event(feedback_comment="call 0049-170-1234567 or x@y.zz, ref 12/2025 🎉"),
    feedback_event(feedback_comment="x1234" * 200),
    event(feedback_comment="a page view's comment 555-0100 is scrubbed too"),
    *(feedback_event(**overrides) for overrides, _ in INVALID_FEEDBACK),
    feedback_event(feedback_scale="", feedback_score=None, survey_id=None),
    feedback_event(event_type="feedback", page_path=None, user_id=None, anonymous_id="a-1"),
]


@pytest.mark.parametrize("record", PARITY_CASES, ids=range(len(PARITY_CASES)))
def test_the_jvm_decoder_gives_feedback_events_the_python_verdict(
    jvm_decoder: JvmDecoder, record: dict[str, Any]
) -> None:
    payload = encode_v3(record)
    assert_same_verdict(payload, jvm_decoder.decode(payload))
