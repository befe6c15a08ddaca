"""The collector's pure rules (no service): bodies and gzip caps, batches, event preparation against the
one contract, rate limits, settings, log redaction, and the .proto kept in step with the Avro schema."""

from __future__ import annotations

import filecmp
import gzip
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jobs.common.contract import event_reader_schema, validate
from jobs.common.limits import MAX_RECORD_BYTES
from jobs.common.settings import SettingsError
from tests.collector.builders import T0, click, page_view
from uxstream.collector import logic
from uxstream.collector.commands import redact
from uxstream.collector.logic import (
    Accepted,
    BodyLimits,
    Limit,
    RateLimiter,
    Refusal,
    Rejected,
    Skipped,
    TokenBucket,
    content_event_id,
    parse_batch,
    prepare,
    read_body,
)
from uxstream.collector.protogen import GENERATED, OUT_DIR, generate
from uxstream.collector.settings import CollectorSettings, WriteKeys
from uxstream.paths import ROOT

LIMITS = BodyLimits(max_body_bytes=1000, max_decompressed_bytes=5000, max_ratio=10, max_batch_events=3)
NOW = 1_764_936_000_000


def prepared(event: Any, **kw: Any) -> logic.Prepared:
    return prepare(event, project="shop", received_at=NOW, client_ip=kw.pop("ip", "203.0.113.77"), **kw)


# ---------------------------------------------------------------------------------------------- bodies


def test_a_plain_body_passes_unchanged() -> None:
    assert read_body(b"[]", None, LIMITS) == b"[]"


def test_a_body_over_the_limit_is_413() -> None:
    assert read_body(b" " * 1001, None, LIMITS) == Refusal(
        413, "body_too_large", "request body over 1000 bytes (1001 read)"
    )


def test_gzip_within_the_caps_is_decompressed() -> None:
    text = json.dumps([click(f"u{n}") for n in range(3)]).encode()
    assert read_body(gzip.compress(text), "gzip", LIMITS) == text


def test_a_gzip_bomb_stops_at_the_decompressed_cap_without_inflating_it_all() -> None:
    bomb = gzip.compress(b" " * 50_000_000)
    assert len(bomb) < 1000 * 60
    limits = BodyLimits(
        max_body_bytes=100_000, max_decompressed_bytes=5000, max_ratio=10_000, max_batch_events=3
    )
    assert read_body(bomb, "gzip", limits) == Refusal(
        413, "decompressed_too_large", "gzip body decompresses to more than 5000 bytes"
    )


def test_a_gzip_body_expanding_beyond_the_ratio_is_413() -> None:
    body = gzip.compress(b" " * 3000)
    assert read_body(body, "gzip", LIMITS) == Refusal(
        413, "compression_ratio_too_high", f"gzip body of {len(body)} bytes expands more than 10 times"
    )


def test_truncated_gzip_and_unknown_encodings_are_refused() -> None:
    body = gzip.compress(json.dumps([click("u")]).encode())
    assert read_body(body[:-12], "gzip", LIMITS) == Refusal(400, "bad_gzip", "the gzip body is truncated")
    assert read_body(b"[]", "deflate", LIMITS) == Refusal(
        415, "unsupported_content_encoding", "Content-Encoding 'deflate': send identity or gzip"
    )


@pytest.mark.parametrize(
    ("body", "refusal"),
    [
        (b"{}", Refusal(400, "not_an_array", "expected a JSON array of events, got a JSON object")),
        (b"1", Refusal(400, "not_an_array", "expected a JSON array of events, got a JSON number")),
        (b"[{}, {}, {}, {}]", Refusal(413, "batch_too_large", "4 events in one batch, limit 3")),
        (b"[", Refusal(400, "malformed_json", "the body is not valid JSON (Input data was truncated)")),
    ],
)
def test_a_body_that_is_no_batch_is_refused(body: bytes, refusal: Refusal) -> None:
    assert parse_batch(body, LIMITS) == refusal


# ---------------------------------------------------------------------------------------------- events


def test_an_accepted_event_carries_the_collector_fields_and_the_user_key() -> None:
    event = page_view("anon-1", T0, "/a", user_id="user-7", event_id="e-1", ip="198.51.100.1", received_at=5)
    result = prepared(event)
    assert isinstance(result, Accepted)
    assert (result.event_id, result.key) == ("e-1", b"user-7")
    assert result.record["received_at"] == NOW  # never the client's
    assert result.record["ip"] == "203.0.113.0"  # the connection's address, truncated: never the client's
    assert result.record["properties"] == {}
    assert set(result.record) == set(event_reader_schema().field_names)
    assert validate(result.record) is None


def test_ipv6_is_truncated_to_48_bits_and_no_address_leaves_ip_empty() -> None:
    v6 = prepared(click("u"), ip="2001:db8:85a3:8d3:1319:8a2e:370:7348")
    assert isinstance(v6, Accepted) and v6.record["ip"] == "2001:db8:85a3::"
    none = prepared(click("u"), ip=None)
    assert isinstance(none, Accepted) and none.record["ip"] is None


def test_an_event_without_id_gets_a_content_hash_that_a_resend_reproduces() -> None:
    event = click("anon-1", T0)
    first, again = prepared(event), prepared(dict(event))
    assert isinstance(first, Accepted) and isinstance(again, Accepted)
    assert first.event_id == again.event_id == content_event_id("shop", event)
    assert first.event_id.startswith("c-") and len(first.event_id) == 34
    other_project = prepare(event, project="blog", received_at=NOW, client_ip=None)
    assert isinstance(other_project, Accepted) and other_project.event_id != first.event_id
    later = prepared(click("anon-1", T0 + 1))
    assert isinstance(later, Accepted) and later.event_id != first.event_id


@pytest.mark.parametrize(
    ("event", "reason", "detail"),
    [
        ({"event_type": "click"}, "missing_field", "field 'event_name' is missing or empty"),
        (click("", event_id="x"), "missing_field",
         "field 'anonymous_id' is missing or empty and 'user_id' is null: no user key"),
        ({**click("u"), "ts": None}, "missing_field", "field 'ts' is missing or empty"),
        ({**click("u"), "ts": "2025-01-01"}, "impossible_value",
         "field 'ts' is a JSON string, expected an integer"),
        ({**click("u"), "ts": True}, "impossible_value", "field 'ts' is a JSON boolean, expected an integer"),
        ({**click("u"), "screen_width": 2**31}, "impossible_value",
         "field 'screen_width' is a JSON number, expected a 32-bit integer"),
        ({**click("u"), "lcp_ms": "fast"}, "impossible_value",
         "field 'lcp_ms' is a JSON string, expected a number"),
        ({**click("u"), "properties": {"a": 1}}, "impossible_value",
         "field 'properties' is a JSON object, expected an object of strings"),
        ({**click("u"), "event_type": "swipe"}, "impossible_value",
         "field 'event_type' is 'swipe', not one of click, custom, error, feedback, heartbeat, page_view, "
         "web_vital"),
        ({**click("u"), "cls": -0.1, "event_type": "web_vital"}, "impossible_value",
         "field 'cls' is -0.1, must be a finite number >= 0"),
        (page_view("u", path="/" + "x" * 600), "impossible_value",
         "field 'page_path': 601 characters, limit 512"),
        ({**click("u"), "country": "D\x00E"}, "impossible_value",
         "field 'country': NUL (U+0000) at position 1, not allowed"),
        ([1, 2], "impossible_value", "an event must be a JSON object, got a JSON list"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None,
)  # fmt: skip
def test_an_invalid_event_is_rejected_with_the_contracts_reason(event: Any, reason: str, detail: str) -> None:
    assert prepared(event) == Rejected(reason, detail)


def test_a_record_over_the_size_limit_is_rejected_after_encoding() -> None:
    assert logic.size_problem(b"x" * MAX_RECORD_BYTES) is None
    assert logic.size_problem(b"x" * (MAX_RECORD_BYTES + 1)) == Rejected(
        "impossible_value", f"record: {MAX_RECORD_BYTES + 1} bytes, limit {MAX_RECORD_BYTES}"
    )


def test_do_not_track_skips_every_event_and_denied_consent_skips_the_event() -> None:
    assert prepared(click("u"), do_not_track=True) == Skipped("do_not_track")
    assert prepared({"not": "even valid"}, do_not_track=True) == Skipped("do_not_track")
    assert prepared(click("u", consent="denied")) == Skipped("consent_denied")
    assert isinstance(prepared(click("u", consent="granted")), Accepted)


# ---------------------------------------------------------------------------------------- rate limits


def test_a_token_bucket_grants_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(rate=10, burst=20, tokens=20, updated=0.0)
    assert bucket.take(20, 0.0) == 0.0
    assert bucket.take(5, 0.0) == 0.5  # 5 tokens at 10/s
    assert bucket.take(5, 0.5) == 0.0
    assert bucket.take(21, 100.0) == math.inf  # more than a burst: never
    assert logic.retry_after(0.5) == 1 and logic.retry_after(2.01) == 3 and logic.retry_after(math.inf) == 60


def test_the_rate_limiter_keeps_buckets_per_name_and_forgets_the_least_recent() -> None:
    limiter = RateLimiter(Limit(rate=1, burst=2), max_names=2)
    assert limiter.take("a", 2, 0.0) == 0.0
    assert limiter.take("a", 1, 0.0) == 1.0
    assert limiter.take("b", 2, 0.0) == 0.0
    assert limiter.take("c", 2, 0.0) == 0.0  # forgets "a"
    assert limiter.take("a", 2, 0.0) == 0.0
    assert RateLimiter(Limit(rate=0, burst=0)).take("x", 10**9, 0.0) == 0.0  # 0 = no limit


def test_origins_match_exactly_or_by_wildcard() -> None:
    assert logic.origin_allowed("https://shop.example", ("https://shop.example",))
    assert logic.origin_allowed("https://shop.example/", ("https://shop.example",))
    assert not logic.origin_allowed("https://shop.example.evil", ("https://shop.example",))
    assert not logic.origin_allowed("http://shop.example", ("https://shop.example",))
    assert logic.origin_allowed("https://any.example", ("*",))


# ---------------------------------------------------------------------------------------------- settings


def test_write_keys_are_kept_as_digests_and_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(
        '{"keys": [{"project": "shop", "key": "s3cret-key"}, '
        '{"project": "x", "key": "old", "revoked": true}]}'
    )
    keys = WriteKeys.parse_file(path)
    assert keys.lookup("s3cret-key") is not None and keys.lookup("s3cret-key").project == "shop"  # type: ignore[union-attr]
    assert keys.lookup("old") is None and keys.lookup("nope") is None
    settings = CollectorSettings(write_keys=keys)
    assert "s3cret-key" not in repr(settings) and "s3cret-key" not in repr(keys)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "no write keys: set UXSTREAM_COLLECTOR_WRITE_KEYS (project:key,…) or "
             "UXSTREAM_COLLECTOR_WRITE_KEYS_FILE, "
             "or UXSTREAM_COLLECTOR_JWT_SECRET / UXSTREAM_COLLECTOR_JWT_PUBLIC_KEY_FILE"),
        ({"UXSTREAM_COLLECTOR_WRITE_KEYS": "nokey"},
         "UXSTREAM_COLLECTOR_WRITE_KEYS: entry #1 is not 'project:key'"),
        ({"UXSTREAM_COLLECTOR_WRITE_KEYS": "a:b", "UXSTREAM_COLLECTOR_PORT": "http"},
         "UXSTREAM_COLLECTOR_PORT='http' is not a whole number"),
        ({"UXSTREAM_COLLECTOR_WRITE_KEYS": "a:b", "UXSTREAM_COLLECTOR_QUEUE_HIGH_WATER": "0"},
         "UXSTREAM_COLLECTOR_QUEUE_HIGH_WATER=0 must be positive"),
        ({"UXSTREAM_COLLECTOR_WRITE_KEYS": "a:b", "UXSTREAM_COLLECTOR_HONOR_DNT": "maybe"},
         "UXSTREAM_COLLECTOR_HONOR_DNT='maybe': use true or false"),
        ({"UXSTREAM_COLLECTOR_JWT_SECRET": "short"},
         "UXSTREAM_COLLECTOR_JWT_SECRET must have at least 32 characters"),
    ],
)  # fmt: skip
def test_bad_configuration_is_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as error:
        CollectorSettings.from_env(env)
    assert str(error.value) == message


def test_the_command_exits_2_with_the_message_and_no_secret(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "UXSTREAM_COLLECTOR_WRITE_KEYS": "shop:topsecret-value"}
    proc = subprocess.run(
        [sys.executable, "-m", "uxstream.cli", "collect", "--certfile", str(tmp_path / "missing.pem"),
         "--keyfile", str(tmp_path / "k.pem")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert (
        proc.stderr
        == f"uxstream collect: error: {tmp_path / 'missing.pem'}: no such file (TLS certificate/key)\n"
    )
    assert "topsecret" not in proc.stdout + proc.stderr


def test_log_lines_carry_truncated_addresses_only() -> None:
    line = '203.0.113.77:5123 - "WebSocket /v1/stream" [accepted] from 2001:db8:85a3:8d3::7348 at 12:30:01'
    assert (
        redact(line)
        == '203.0.113.0:5123 - "WebSocket /v1/stream" [accepted] from 2001:db8:85a3:: at 12:30:01'
    )
    assert redact("version 1.2.3.4.5 ok") == "version 1.2.3.4.5 ok"


# ----------------------------------------------------------------------------------------------- proto

_PROTO_TYPES = {"string": "string", "long": "int64", "int": "int32", "double": "double"}


def test_the_proto_event_has_every_avro_field_but_the_collectors_with_its_type() -> None:
    from uxstream.collector.proto import collector_pb2 as pb

    proto = {f.name: f for f in pb.Event.DESCRIPTOR.fields}
    for spec in logic.field_specs():
        if spec.name in ("received_at", "ip"):
            assert spec.name not in proto
            continue
        field = proto.pop(spec.name)
        if spec.kind == "map":
            assert field.message_type.GetOptions().map_entry
        else:
            type_name = {9: "string", 3: "int64", 5: "int32", 1: "double"}[field.type]
            assert type_name == _PROTO_TYPES[spec.kind], spec.name
    assert proto == {}


def test_the_generated_grpc_modules_are_what_the_proto_gives(tmp_path: Path) -> None:
    generate(tmp_path)
    for name in GENERATED:
        assert filecmp.cmp(tmp_path / name, OUT_DIR / name, shallow=False), (
            f"{name}: run python -m uxstream.collector.protogen"
        )


def test_the_fast_encoder_writes_the_bytes_fastavro_writes() -> None:
    from jobs.common.contract import encode_body

    entry = event_reader_schema()
    samples = [
        page_view("anon", T0, "/ä/€", user_id="u" * 200, properties={"k": "v", "ü": "😀"}, lcp_ms=0.0),
        {
            **click("a", -1 + T0),
            "screen_width": -(2**31),
            "screen_height": 2**31 - 1,
            "engagement_time_ms": 2**40,
        },
        {**click("a"), "cls": 1e-300, "inp_ms": 12345.678, "consent": "granted", "properties": {}},
    ]
    for n, event in enumerate(samples):
        result = prepare(event, project="p", received_at=NOW + n, client_ip="2001:db8::1")
        assert isinstance(result, Accepted)
        assert logic.encode_record(result.record) == encode_body(result.record, entry)
