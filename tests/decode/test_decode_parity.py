"""The JVM decoder (the Flink UDF's core) gives every payload the verdict the Python spec gives it.

`jobs.common.contract.decode` is the spec: same reason code for every input, same detail text, same
decoded values. The JVM side runs as one `DecodeCli` process (no Flink), so hypothesis can throw thousands
of generated, mutated and random payloads at both. The one documented difference: an Avro int beyond 32
bits, which fastavro accepts and a SQL INT cannot hold, is undecodable on the JVM.

The event limits (jobs/common/limits.py) have their own edges and generated payloads near each limit, the
JVM's copy of the limits is compared with the module, and the watermark's `ux_event_time` is NULL exactly
for the payloads the decoder rejects.
"""

from __future__ import annotations

import math
import random
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jobs.common import contract, limits

from .support import (
    T0,
    JvmDecoder,
    assert_same_verdict,
    encode_v1,
    encode_v2,
    event,
    has_int32_overflow,
    jvm_constants,
    jvm_event_times,
    payload_of_size,
    python_verdict,
)

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_jvm_rules_use_the_python_constants() -> None:
    jvm = jvm_constants()
    assert jvm["EVENT_TYPES"] == sorted(contract.EVENT_TYPES)
    assert jvm["MIN_TS_MS"] == contract.MIN_TS_MS
    assert jvm["MAX_TS_MS"] == contract.MAX_TS_MS
    assert tuple(jvm["REQUIRED_STRINGS"]) == contract.REQUIRED_STRINGS
    assert tuple(jvm["NON_NEGATIVE_NUMBERS"]) == contract.NON_NEGATIVE_NUMBERS
    assert tuple(jvm["WEB_VITALS"]) == contract.WEB_VITALS
    assert tuple(jvm["REASONS"]) == contract.REASONS
    assert tuple(jvm["READER_FIELDS"]) == contract.event_reader_schema().field_names
    assert jvm["DEAD_LETTER_SCHEMA_ID"] == contract.load_catalog().latest("ux.events.dlq-value").id


def test_the_jvm_limits_are_the_python_limits() -> None:
    """io.uxstream.udf.EventLimits holds a copy of jobs/common/limits.py: the copy must not drift."""
    jvm = jvm_constants()
    assert list(jvm["STRING_LIMITS"].items()) == list(limits.STRING_LIMITS.items())
    assert jvm["MAX_RECORD_BYTES"] == limits.MAX_RECORD_BYTES
    assert jvm["DEFAULT_STRING_LIMIT"] == limits.DEFAULT_STRING_LIMIT
    assert jvm["MAX_PROPERTIES"] == limits.MAX_PROPERTIES
    assert jvm["MAX_PROPERTY_KEY"] == limits.MAX_PROPERTY_KEY
    assert jvm["MAX_PROPERTY_VALUE"] == limits.MAX_PROPERTY_VALUE
    assert jvm["PROPERTIES_FIELD"] == limits.PROPERTIES_FIELD
    # the limits each decoder applies to the reader schema, in the order it checks them
    assert list(jvm["APPLIED_LIMITS"].items()) == list(contract.limit_plan())


# ------------------------------------------------------------------------------- hand-picked edges


def zigzag(n: int) -> bytes:
    value = ((n << 1) ^ (n >> 63)) & (2**64 - 1)
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def text(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return zigzag(len(raw)) + raw


OPTIONAL = contract.event_reader_schema().field_names[7:-1]
"""The v2 fields between received_at and properties: all nullable."""


def body(
    *, user: bytes = b"\x00", anon: bytes = text("a"), ts: bytes = zigzag(T0), **optional: bytes
) -> bytes:
    """A hand-made v2 body of a click event: optional fields null unless given (as union-encoded bytes)."""
    head = text("e1") + text("click") + text("click") + user + anon + ts + zigzag(T0)
    return head + b"".join(optional.get(name, b"\x00") for name in OPTIONAL) + b"\x00"


def framed(schema_id: int, raw: bytes) -> bytes:
    return contract.header(schema_id) + raw


def unknown_type() -> bytes:
    head = text("e1") + text("pageview") + text("x") + b"\x00" + text("a") + zigzag(T0) * 2
    return head + b"\x00" * len(OPTIONAL) + b"\x00"


def cut_inside_double() -> bytes:
    one = struct.pack("<d", 1.5)
    payload = framed(2, body(lcp_ms=b"\x02" + one))
    return payload[: payload.index(one) + 3]


EDGES: list[tuple[str, bytes | None]] = [
    ("tombstone", None),
    ("empty", b""),
    ("four bytes", b"\x00\x00\x00\x00"),
    ("json", b'{"event_id": "x"}'),
    ("magic 0xff", b"\xff" + encode_v2(event())[1:]),
    ("unknown id", framed(99, body())),
    ("id above 2^31", framed(3_000_000_000, body())),
    ("dead letter id", framed(6, body())),
    ("empty body", framed(2, b"")),
    ("valid hand-made", framed(2, body())),
    ("union index -1 (last branch)", framed(2, body(user=b"\x01" + text("uid")))),
    ("union index -2 (first branch)", framed(2, body(user=b"\x03"))),
    ("union index -3", framed(2, body(user=b"\x05"))),
    ("union index 2", framed(2, body(user=b"\x04"))),
    ("over-long varint wraps", framed(2, body(ts=b"\x80" * 10 + b"\x01"))),
    ("over-long varint to MIN", framed(2, body(ts=b"\xff" * 11 + b"\x01"))),
    ("ts = 2^63 - 1", framed(2, body(ts=zigzag(2**63 - 1)))),
    ("ts = -2^63", framed(2, body(ts=zigzag(-(2**63))))),
    ("ts in seconds", framed(2, body(ts=zigzag(T0 // 1000)))),
    ("ts = year 1", framed(2, body(ts=zigzag(-62_135_596_800_000)))),
    ("ts = before year 1", framed(2, body(ts=zigzag(-62_135_596_800_001)))),
    ("ts = -1 ms", framed(2, body(ts=zigzag(-1)))),
    ("ts = year 1 + 999 ms", framed(2, body(ts=zigzag(-62_135_596_799_001)))),
    ("negative string length", framed(2, text("e1") + text("click") + zigzag(-3) + b"abc")),
    ("huge string length", framed(2, text("e1") + zigzag(2**40))),
    ("eof inside a varint", framed(2, text("e1") + b"\x80")),
    ("invalid utf-8", framed(2, body(anon=zigzag(2) + b"\xff\xfe"))),
    ("utf-8 surrogate", framed(2, body(anon=zigzag(3) + b"\xed\xa0\x80"))),
    ("utf-8 cut", framed(2, body(anon=zigzag(3) + b"a\xf0\x9f"))),
    ("utf-8 overlong", framed(2, body(anon=zigzag(2) + b"\xc0\x80"))),
    ("utf-8 above U+10FFFF", framed(2, body(anon=zigzag(4) + b"\xf4\x90\x80\x80"))),
    ("truncated", framed(2, body()[:-3])),
    ("trailing byte", framed(2, body() + b"\x00")),
    ("map block count MIN", framed(2, body()[:-1] + b"\xff" * 9 + b"\x01\x00\x00")),
    ("map block count MIN, cut", framed(2, body()[:-1] + b"\xff" * 9 + b"\x01\x00")),
    ("map negative block", framed(2, body()[:-1] + zigzag(-1) + zigzag(4) + text("k") + text("v") + b"\x00")),
    (
        "map repeated key",
        framed(
            2,
            body()[:-1]
            + zigzag(3)
            + text("k")
            + text("v")
            + text("j")
            + text("x")
            + text("k")
            + text("w")
            + b"\x00",
        ),
    ),
    ("map huge count", framed(2, body()[:-1] + zigzag(2**40))),
    ("screen_width 2^40", framed(2, body(screen_width=b"\x02" + zigzag(2**40)))),
    ("screen_width -2^31", framed(2, body(screen_width=b"\x02" + zigzag(-(2**31))))),
    ("screen_width 2^40, then cut", framed(2, body(screen_width=b"\x02" + zigzag(2**40))[:-3])),
    ("double cut short", cut_inside_double()),
    ("lcp NaN", framed(2, body(lcp_ms=b"\x02" + struct.pack("<d", math.nan)))),
    ("cls -0.0", framed(2, body(cls=b"\x02" + struct.pack("<d", -0.0)))),
    ("cls -1e-320", framed(2, body(cls=b"\x02" + struct.pack("<d", -1e-320)))),
    ("engagement -1", framed(2, body(engagement_time_ms=b"\x02" + zigzag(-1)))),
    ("ip empty", framed(2, body(ip=b"\x02" + text("")))),
    ("ip with quote", framed(2, body(ip=b"\x02" + text("1.2.3.4'\"\\\n\x7f\u00e9\u200b\U0001f600")))),
    (
        "event_type unknown",
        framed(
            2,
            text("e1")
            + text("pageview")
            + text("x")
            + b"\x00"
            + text("a")
            + zigzag(T0) * 2
            + b"\x00" * len(OPTIONAL)
            + b"\x00",
        ),
    ),
]


@pytest.mark.parametrize(("name", "payload"), EDGES, ids=[name for name, _ in EDGES])
def test_edge_payloads_get_the_python_verdict(
    jvm_decoder: JvmDecoder, name: str, payload: bytes | None
) -> None:
    assert_same_verdict(payload, jvm_decoder.decode(payload))


# ------------------------------------------------------------------------------------------- limits


def sized(name: str, length: int, fill: str = "a") -> str:
    """`length` characters for a string field (an IPv6 literal with a zone id for ip, so it can be valid)."""
    head = "fe80::1%" if name == "ip" else ""
    return head + fill * (length - len(head))


def limit_edges() -> list[tuple[str, bytes | None]]:
    """Hand-made payloads at and around every limit and content rule."""
    edges: list[tuple[str, bytes | None]] = []
    for name, limit in limits.STRING_LIMITS.items():
        edges += [
            (f"{name} at {limit}", encode_v2(event(**{name: sized(name, limit)}))),
            (f"{name} at {limit + 1}", encode_v2(event(**{name: sized(name, limit + 1)}))),
            (f"{name} at {limit} x e-acute", encode_v2(event(**{name: sized(name, limit, "é")}))),
            (f"{name} at {limit + 1} x emoji", encode_v2(event(**{name: sized(name, limit + 1, "🎉")}))),
            (f"{name} with NUL", encode_v2(event(**{name: sized(name, 9, "€") + "\x00"}))),
            (f"{name} too long with NUL", encode_v2(event(**{name: "\x00" * (limit + 1)}))),
        ]
    entries = {f"k{i}": "v" for i in range(64)}
    valid = encode_v2(event(page_path="/x"))
    edges += [
        ("v1 page_path 5000", encode_v1(event(page_path="/" + "p" * 4999))),
        ("v1 country 300", encode_v1(event(country="C" * 300))),
        ("v1 NUL in properties", encode_v1(event(properties={"a": "\x00"}))),
        ("properties 64", encode_v2(event(properties=entries))),
        ("properties 65", encode_v2(event(properties={**entries, "k64": "v"}))),
        (
            "properties 64 + 2 repeated keys on the wire",
            encode_v2(event(properties=entries))[:-1] + b"\x04\x04k0\x02w\x04k1\x02w\x00",
        ),
        (
            "properties 64 + a new key in a second block",
            encode_v2(event(properties=entries))[:-1] + b"\x02\x06new\x02w\x00",
        ),
        ("property key 128", encode_v2(event(properties={"k" * 128: "v"}))),
        ("property key 129", encode_v2(event(properties={"a": "b", "k" * 129: "v"}))),
        ("property key 129 emoji", encode_v2(event(properties={"🎉" * 129: "v"}))),
        ("property value 256", encode_v2(event(properties={"k": "v" * 256}))),
        ("property value 257", encode_v2(event(properties={"a": "b", "k": "v" * 257}))),
        ("property value 256 emoji", encode_v2(event(properties={"k": "🎉" * 256}))),
        ("property key NUL", encode_v2(event(properties={"a": "b", "k\x00": "v"}))),
        ("property value NUL", encode_v2(event(properties={"a": "b", "k": "é\x00"}))),
        ("property key too long before its value", encode_v2(event(properties={"k" * 129: "v" * 300}))),
        ("record 32768", payload_of_size(limits.MAX_RECORD_BYTES)),
        ("record 32769", payload_of_size(limits.MAX_RECORD_BYTES + 1)),
        ("record 40001, bad magic", b"\x7b" + b"x" * 40_000),
        ("record 32769, unknown schema id", contract.header(99) + b"\x00" * 32_764),
        ("record 32769, cut body", payload_of_size(limits.MAX_RECORD_BYTES + 300)[:32_769]),
        ("surrogate bytes in page_path", valid.replace(b"\x04/x", b"\x08/\xed\xa0\x80")),
        ("modified UTF-8 NUL in page_path", valid.replace(b"\x04/x", b"\x06/\xc0\x80")),
        (
            "surrogate bytes in a property value",
            encode_v2(event(properties={"k": "vv"})).replace(b"\x04vv", b"\x06\xed\xb0\x80"),
        ),
        (
            "surrogate bytes in a property key",
            encode_v2(event(properties={"kkk": "v"})).replace(b"\x06kkk", b"\x06\xed\xa0\x80"),
        ),
        ("replacement character", encode_v2(event(page_path="/\ufffd"))),
        ("NUL event_id before long page_path", encode_v2(event(event_id="e\x00", page_path="/" * 600))),
        (
            "long ip before 70 properties",
            encode_v2(event(ip="1" * 65, properties={f"k{i}": "v" for i in range(70)})),
        ),
        ("empty event_id and long page_path", encode_v2(event(event_id="", page_path="/" * 513))),
        ("unknown event_type at 32", encode_v2(event(event_type="t" * 32))),
        ("NUL in event_type", encode_v2(event(event_type="click\x00"))),
    ]
    return edges


LIMIT_EDGES = limit_edges()


@pytest.mark.parametrize(("name", "payload"), LIMIT_EDGES, ids=[name for name, _ in LIMIT_EDGES])
def test_limit_edges_get_the_python_verdict(
    jvm_decoder: JvmDecoder, name: str, payload: bytes | None
) -> None:
    assert_same_verdict(payload, jvm_decoder.decode(payload))


def test_the_limit_edges_exercise_every_rule() -> None:
    """The edges above are not vacuous: each rule fires on the JVM and in Python alike."""
    details = [python_verdict(p)["detail"] or "" for _, p in LIMIT_EDGES]
    for needle in ("characters, limit", "NUL (U+0000)", "entries, limit 64", "key #", "value #", "record: "):
        assert any(needle in d for d in details), needle
    assert any("can't decode" in d for d in details)  # encoded surrogates: undecodable, not a limit
    valid = sum(python_verdict(p)["reason"] is None for _, p in LIMIT_EDGES)
    assert valid >= len(limits.STRING_LIMITS) * 2  # at-limit events pass


def test_ux_event_time_is_null_exactly_for_the_payloads_the_decoder_rejects() -> None:
    """The watermark's `ux_event_time(payload)` shares the decoder (and so the limits): a rejected record
    never moves the watermark, a valid one gives its ts."""
    payloads = [p for _, p in [*EDGES, *LIMIT_EDGES] if not has_int32_overflow(p)]
    times = jvm_event_times(payloads)
    assert len(times) == len(payloads)
    for payload, time in zip(payloads, times, strict=True):
        verdict = python_verdict(payload)
        expected = verdict["event"]["ts"] if verdict["reason"] is None else None
        assert time == expected, (payload[:40] if payload else payload, verdict["reason"], verdict["detail"])
    assert sum(t is None for t in times) > len(times) // 3 and sum(t is not None for t in times) > 40


# ------------------------------------------------------------------------------------------- fuzzing

maybe_text = st.one_of(st.none(), st.just(""), st.text(max_size=12))
finite_or_not = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, -1.0, 1e-320, -1e-320, 1e16, 1e22, 0.1, 123456789.125]),
)
timestamps = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-62_135_596_800_000 - 5000, max_value=-62_135_596_800_000 + 5000),
    st.integers(min_value=contract.MIN_TS_MS - 5000, max_value=contract.MIN_TS_MS + 5000),
    st.integers(min_value=contract.MAX_TS_MS - 5, max_value=contract.MAX_TS_MS + 5),
    st.just(T0),
)
ips = st.one_of(
    st.none(),
    st.ip_addresses().map(str),
    st.text(alphabet="0123456789abcdefABCDEF:.%/ ", max_size=40),
    st.sampled_from(
        [
            "",
            "1.2.3.04",
            "256.1.1.1",
            "::",
            "::1",
            "1::",
            ":1",
            "1:",
            "::ffff:1.2.3.4",
            "fe80::1%eth0",
            "fe80::1%",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7::",
            "::1:2:3:4:5:6:7",
            "1:2:3:4:5:6:1.2.3.4",
            "1.2.3",
            "١.٢.٣.٤",
            "example.com",
            "localhost",
            "0x7f.1.1.1",
            "1.2.3.4/24",
        ]
    ),
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    def pick(values: st.SearchStrategy[Any], usual: Any) -> Any:
        return draw(st.one_of(st.just(usual), values))

    return event(
        event_id=pick(maybe_text.map(lambda s: s or ""), "evt-1"),
        event_type=pick(
            st.one_of(st.sampled_from(sorted(contract.EVENT_TYPES)), st.text(max_size=10)), "click"
        ),
        event_name=pick(st.text(max_size=8), "click"),
        user_id=pick(maybe_text, None),
        anonymous_id=pick(st.text(max_size=8), "anon"),
        ts=pick(timestamps, T0),
        received_at=pick(timestamps, T0 + 10),
        page_path=pick(maybe_text, "/p"),
        error_type=pick(maybe_text, None),
        lcp_ms=pick(finite_or_not, None),
        inp_ms=pick(finite_or_not, None),
        cls=pick(finite_or_not, None),
        page_load_ms=pick(finite_or_not, None),
        engagement_time_ms=pick(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), None),
        screen_width=pick(st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)), None),
        ip=pick(ips, None),
        page_title=pick(st.text(), None),
        properties=pick(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3), {}),
    )


encoded = st.tuples(events(), st.booleans()).map(
    lambda pair: encode_v2(pair[0]) if pair[1] else encode_v1(pair[0])
)


@FUZZ
@given(events(), st.booleans())
def test_generated_events_get_the_python_verdict(
    jvm_decoder: JvmDecoder, record: dict[str, Any], v2: bool
) -> None:
    payload = encode_v2(record) if v2 else encode_v1(record)
    assert_same_verdict(payload, jvm_decoder.decode(payload))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(encoded))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]))
        at = draw(st.integers(min_value=0, max_value=max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x7F, 0x80, 0xFF, 0xC0, 0xED]))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del data[at : at + draw(st.integers(min_value=1, max_value=4))]
        elif op == "truncate":
            del data[at:]
        else:
            data += draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


@FUZZ
@given(mutated())
@example(encode_v2(event())[:-1])
def test_mutated_payloads_get_the_python_verdict(jvm_decoder: JvmDecoder, payload: bytes) -> None:
    assert_same_verdict(payload, jvm_decoder.decode(payload))


@FUZZ
@given(st.sampled_from([1, 2, 6, 7]), st.binary(max_size=80))
def test_random_bodies_get_the_python_verdict(jvm_decoder: JvmDecoder, schema_id: int, raw: bytes) -> None:
    payload = framed(schema_id, raw)
    assert_same_verdict(payload, jvm_decoder.decode(payload))


# ------------------------------------------------------------------------------ near the limits, fuzzed

FILLS = ("a", "é", "€", "🎉")
SPRINKLES = ("\x00", "a", "é", "🎉", "\u200b", "\ufffd")


@st.composite
def near_limit(draw: st.DrawFn, limit: int) -> str:
    """A string of limit-2 .. limit+1 characters of a fill character, with a few others sprinkled in."""
    length = draw(st.integers(min_value=max(0, limit - 2), max_value=limit + 1))
    chars = [draw(st.sampled_from(FILLS))] * length
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        if chars:
            chars[draw(st.integers(min_value=0, max_value=len(chars) - 1))] = draw(st.sampled_from(SPRINKLES))
    return "".join(chars)


@st.composite
def near_limit_events(draw: st.DrawFn) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    names = draw(st.lists(st.sampled_from(list(limits.STRING_LIMITS)), min_size=0, max_size=3, unique=True))
    for name in names:
        overrides[name] = draw(near_limit(limits.STRING_LIMITS[name]))
    shape = draw(st.sampled_from(["small", "count", "keys", "values"]))
    if shape == "count":
        count = draw(st.integers(min_value=62, max_value=66))
        overrides["properties"] = {f"k{i}": draw(st.sampled_from(["v", "\x00", "é"])) for i in range(count)}
    elif shape == "keys":
        keys = draw(st.lists(near_limit(limits.MAX_PROPERTY_KEY), min_size=1, max_size=3))
        overrides["properties"] = dict.fromkeys(keys, "v")
    elif shape == "values":
        values = draw(st.lists(near_limit(limits.MAX_PROPERTY_VALUE), min_size=1, max_size=3))
        overrides["properties"] = {f"k{i}": v for i, v in enumerate(values)}
    return event(**overrides)


@FUZZ
@given(near_limit_events(), st.booleans())
def test_events_near_the_limits_get_the_python_verdict(
    jvm_decoder: JvmDecoder, record: dict[str, Any], v2: bool
) -> None:
    payload = encode_v2(record) if v2 else encode_v1(record)
    assert_same_verdict(payload, jvm_decoder.decode(payload))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=limits.MAX_RECORD_BYTES - 3, max_value=limits.MAX_RECORD_BYTES + 3))
def test_records_near_the_size_limit_get_the_python_verdict(jvm_decoder: JvmDecoder, size: int) -> None:
    payload = payload_of_size(size)
    assert_same_verdict(payload, jvm_decoder.decode(payload))


@FUZZ
@given(st.binary(max_size=40))
def test_random_bytes_get_the_python_verdict(jvm_decoder: JvmDecoder, payload: bytes) -> None:
    assert_same_verdict(payload, jvm_decoder.decode(payload))


def test_floats_render_as_python_repr(jvm_decoder: JvmDecoder) -> None:
    """Shortest round-trip digits, Python's notation; every power of two (asymmetric rounding intervals)."""
    rng = random.Random(11)
    noise = [struct.unpack("<d", rng.randbytes(8))[0] for _ in range(3000)]
    values = [
        *(2.0**k for k in range(-1074, 1024)),
        *(abs(v) for v in noise if math.isfinite(v)),
        *(5e-324, 1e-5, 1e-4, 0.001, 1.5, 1e15, 1e16, 1.2345678901234567e16, 1 / 3, 2.5e-7, 1e22, 1e23),
        *(9007199254740993.0, 0.30000000000000004, 123.456, 1e100, 1.7976931348623157e308),
    ]
    verdicts = jvm_decoder.decode_all([encode_v2(event(lcp_ms=v)) for v in values])
    assert [v["event"]["lcp_ms"] for v in verdicts] == [repr(v) for v in values]
    negative = [framed(2, body(lcp_ms=b"\x02" + struct.pack("<d", -v))) for v in values[::50]]
    for payload, verdict in zip(negative, jvm_decoder.decode_all(list(negative)), strict=True):
        assert_same_verdict(payload, verdict)
