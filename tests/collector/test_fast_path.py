"""The collector's fast path gives exactly what the reference path gives (issue 18, CPU per event).

`logic.prepare` builds a well-typed record with generated straight-line code and defers everything else
to `logic.prepare_reference` (the field-by-field loop); `logic.encode_record` is a generated per-schema
encoder; the contract's `limits_problem` is an unrolled scan that defers to `_first_limit_problem`. Over
a fixed corpus (generator traffic, and hostile events: NUL, lone surrogates, oversize strings, property
floods, wrong and borderline types, non-objects), each must give the same verdict, reason code, detail,
record (values and field order) and bytes as its reference: fastavro for the bytes.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from jobs.common import contract
from jobs.common.contract import encode_body, event_reader_schema
from jobs.common.limits import (
    MAX_PROPERTIES,
    MAX_PROPERTY_KEY,
    MAX_PROPERTY_VALUE,
    MAX_RECORD_BYTES,
    STRING_LIMITS,
)
from tests.collector.builders import T0, click, page_view
from uxstream.bench.collector import generator_batches
from uxstream.collector import logic
from uxstream.collector.logic import Accepted, Rejected, prepare, prepare_reference
from uxstream.collector.service import BatchResult, prepare_batch

NOW = 1_764_936_000_000
FRAME = b"\x00\x00\x00\x00\x02"


class Text(str):
    """A str subclass (not what JSON parsing gives; the gRPC and SDK mappings could)."""


class Number(int):
    pass


class Props(dict[str, Any]):
    pass


def _client_fields() -> list[tuple[str, str]]:
    return [(spec.name, spec.kind) for spec in logic.field_specs() if spec.name not in ("received_at", "ip")]


def hostile() -> list[Any]:
    """Events no well-behaved client sends, one broken thing each (plus a few borderline valid ones)."""
    base = page_view(
        "anon-1", T0, "/pricing", page_title="Prices – €", properties={"plan": "pro"}, event_id="e-1"
    )
    events: list[Any] = [None, 1, "event", [base], True, 1.5, {}]
    wrong_values: list[Any] = [1, -1, 1.5, True, False, "x", "", [], ["a"], {}, {"a": 1}, Text("t")]
    for name, kind in _client_fields():
        for value in wrong_values:
            events.append({**base, name: value})
        if kind == "string":
            limit = STRING_LIMITS.get(name, 1024)
            events += [
                {**base, name: "a" * limit},
                {**base, name: "a" * (limit + 1)},
                {**base, name: "é" * limit},
                {**base, name: "a\x00b"},
                {**base, name: "\x00"},
                {**base, name: "a\ud800"},
                {**base, name: "\udfff€"},
                {**base, name: "😀" * limit},
            ]
        elif kind in ("int", "long"):
            events += [{**base, name: v} for v in (2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63, -(2**63))]
            events.append({**base, name: Number(7)})
        elif kind == "double":
            events += [{**base, name: v} for v in (0, 0.0, -0.0, -1.0, 1e308, float("nan"), float("inf"))]
    flood = {f"k{i}": "v" for i in range(MAX_PROPERTIES + 1)}
    events += [
        {**base, "properties": flood},
        {**base, "properties": dict(list(flood.items())[:MAX_PROPERTIES])},
        {**base, "properties": {"k" * (MAX_PROPERTY_KEY + 1): "v"}},
        {**base, "properties": {"k": "v" * (MAX_PROPERTY_VALUE + 1)}},
        {**base, "properties": {"k\x00": "v"}},
        {**base, "properties": {"k": "v\ud83d"}},
        {**base, "properties": {"ok": "v", "k": 1}},
        {**base, "properties": Props(a="b")},
        {**base, "properties": {"k": Text("v")}},
        # within every field limit, but over the record size (4-byte characters)
        {**base, "properties": {f"{i:03d}": "😀" * MAX_PROPERTY_VALUE for i in range(MAX_PROPERTIES)}},
        Props(base),
        {**base, "event_id": ""},
        {**base, "event_id": None},
        {**base, "consent": "denied"},
        {**base, "event_type": "nope"},
        {**base, "ts": 5},
        {**base, "user_id": None, "anonymous_id": None},
        {**base, "user_id": "u-1", "anonymous_id": None},
        {**base, "unknown_field": "x", "another": [1, 2]},
        {**base, "received_at": 1, "ip": "not an ip"},
        click("a", T0, page_load_ms=-5),
        click("a", T0, cls=float("-inf")),
        {"event_type": "web_vital", "event_name": "lcp", "anonymous_id": "a", "ts": T0},
        {"event_type": "error", "event_name": "e", "anonymous_id": "a", "ts": T0, "error_type": ""},
    ]
    # Through JSON as well: what msgspec makes of escaped NUL and surrogates.
    for text in ('"a\\u0000b"', '"\\ud800x"', '"\\ud83d\\ude00"', '"\\udc00"'):
        try:
            value = msgspec.json.decode(text.encode())
        except msgspec.DecodeError:
            continue
        events.append({**base, "page_path": value})
        events.append({**base, "properties": {"p": value}})
    return events


def corpus() -> list[Any]:
    traffic = [event for body in generator_batches(100, 6, seed=11) for event in json.loads(body)]
    return traffic + hostile()


CORPUS = corpus()
IPS = ("203.0.113.0", "2001:db8::", None)


def test_the_corpus_covers_every_verdict_and_reason() -> None:
    verdicts = {type(prepare(e, project="p", received_at=NOW, client_ip=IPS[0])).__name__ for e in CORPUS}
    assert verdicts == {"Accepted", "Rejected", "Skipped"}
    reasons = {
        p.reason
        for e in CORPUS
        if isinstance(p := prepare(e, project="p", received_at=NOW, client_ip=IPS[0]), Rejected)
    }
    assert reasons == {"impossible_value", "missing_field"}
    assert len(CORPUS) > 1000


@pytest.mark.parametrize("ip", IPS)
def test_prepare_gives_what_the_reference_gives_for_every_event(ip: str | None) -> None:
    for event in CORPUS:
        fast = prepare(event, project="p", received_at=NOW, client_ip=ip)
        reference = prepare_reference(event, project="p", received_at=NOW, client_ip=ip)
        assert fast == reference, event
        if isinstance(fast, Accepted):
            assert isinstance(reference, Accepted)
            assert list(fast.record) == list(reference.record), "same field order"


def test_do_not_track_skips_on_both_paths() -> None:
    for event in CORPUS[:50] + hostile()[:20]:
        kw: dict[str, Any] = {"project": "p", "received_at": NOW, "client_ip": None, "do_not_track": True}
        assert prepare(event, **kw) == prepare_reference(event, **kw) == logic.Skipped(logic.SKIP_DNT)


def test_the_generated_encoder_writes_the_bytes_fastavro_writes_for_every_accepted_event() -> None:
    entry = event_reader_schema()
    accepted = [
        p
        for e in CORPUS
        for ip in IPS
        if isinstance(p := prepare(e, project="p", received_at=NOW, client_ip=ip), Accepted)
    ]
    assert len(accepted) > 600
    for one in accepted:
        assert logic.encode_record(one.record) == encode_body(one.record, entry), one.record


def test_a_batch_gives_the_reference_results_and_bytes() -> None:
    """`prepare_batch` (the loop of `Collector.ingest`) against a loop over the reference functions."""
    entry = event_reader_schema()
    batch = BatchResult()
    produced: list[tuple[bytes, bytes]] = []
    prepare_batch(
        CORPUS, batch, project="p", received_at=NOW, client_ip="203.0.113.0", do_not_track=False,
        header=FRAME, produce=lambda key, value: produced.append((key, value)),
    )  # fmt: skip
    results: list[dict[str, str]] = []
    expected: list[tuple[bytes, bytes]] = []
    for event in CORPUS:
        ref = prepare_reference(event, project="p", received_at=NOW, client_ip="203.0.113.0")
        if isinstance(ref, Accepted):
            value = FRAME + encode_body(ref.record, entry)
            if len(value) <= MAX_RECORD_BYTES:
                expected.append((ref.key, value))
                results.append({"status": "accepted", "event_id": ref.event_id})
                continue
            too_big = contract.record_size_problem(len(value))
            assert too_big is not None
            ref = Rejected(too_big.reason, too_big.detail)
        if isinstance(ref, Rejected):
            results.append({"status": "rejected", "reason": ref.reason, "detail": ref.detail})
        else:
            results.append({"status": "skipped", "reason": ref.reason})
    assert batch.results == results
    assert produced == expected
    assert batch.produced == len(expected)
    assert any(r.get("detail", "").startswith("record: ") for r in results), "a record over the size limit"


def test_the_contracts_limit_scan_names_the_same_first_problem_as_the_exact_walk() -> None:
    records: list[Any] = [e for e in CORPUS if isinstance(e, dict)]
    records += [
        r.record
        for e in CORPUS
        if isinstance(r := prepare(e, project="p", received_at=NOW, client_ip=IPS[0]), Accepted)
    ]
    for record in records:
        assert contract.limits_problem(record) == contract._first_limit_problem(record), record


def test_the_cached_ip_rule_is_ipaddresss_verdict() -> None:
    base = {**page_view("a", T0), "event_id": "e", "received_at": NOW}
    for ip in ("203.0.113.0", "2001:db8::", "::ffff:1.2.3.4", "1.2.3", "x", "", "1.2.3.4 ", 3232235777):
        problem = contract.validate({**base, "ip": ip})
        try:
            __import__("ipaddress").ip_address(ip)
            assert problem is None, ip
        except ValueError:
            assert problem == contract.Invalid(
                "impossible_value", f"field 'ip' is {ip!r}, not an IPv4 or IPv6 address"
            ), ip


def test_the_unrolled_varint_is_the_avro_long_of_every_size() -> None:
    def reference(value: int) -> bytes:
        n = (value << 1) ^ (value >> 63)
        out = bytearray()
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        return bytes(out + bytes((n,)))

    edges = [0, 1, 2**63 - 1, -(2**63), T0, NOW, -T0]
    for bits in range(1, 64):
        edges += [2**bits, 2**bits - 1, -(2**bits), -(2**bits) - 1, 2**bits + 12345 % 2**bits]
    for value in edges:
        assert logic._varint(value) == reference(value), value


def proto_corpus() -> list[Any]:
    """Every corpus event a gRPC client can send (its values fit the .proto's types), as the server reads
    it: serialized and parsed again. The corpus' wrong types, unknown fields and lone surrogates cannot be
    sent over gRPC, so they are left out; NUL characters, oversized strings and maps, missing ids and
    consent are in."""
    from uxstream.collector.proto import collector_pb2 as pb

    names = {field.name for field in pb.Event.DESCRIPTOR.fields}
    out = []
    for event in CORPUS:
        if not isinstance(event, dict) or not set(event) <= names:
            continue
        try:
            message = pb.Event(**{k: v for k, v in event.items() if v is not None})
            out.append(pb.Event.FromString(message.SerializeToString()))
        except (TypeError, ValueError):
            continue
    return out


def test_the_grpc_path_gives_what_the_json_path_gives_for_every_event_grpc_can_carry() -> None:
    from uxstream.collector.grpc_server import event_dict, prepare_proto

    events = proto_corpus()
    assert len(events) > 800
    verdicts: set[str] = set()
    for ip in IPS:
        for dnt in (False, True):
            for event in events:
                kw: dict[str, Any] = {"project": "p", "received_at": NOW, "do_not_track": dnt}
                direct = prepare_proto(event, client_ip=ip, truncate=True, **kw)
                json_path = prepare(event_dict(event), client_ip=ip, **kw)
                assert direct == json_path, event
                if isinstance(direct, Accepted):
                    assert isinstance(json_path, Accepted)
                    assert list(direct.record) == list(json_path.record), "same field order"
                verdicts.add(type(direct).__name__)
    assert verdicts == {"Accepted", "Rejected", "Skipped"}
    missing_id = [e for e in events if not e.event_id and e.event_type == "page_view"]
    assert missing_id, "content ids are covered"


def test_the_grpc_ack_lists_every_result_in_order() -> None:
    from uxstream.collector.grpc_server import ack_message
    from uxstream.collector.proto import collector_pb2 as pb
    from uxstream.collector.service import Outcome

    results = [
        {"status": "accepted", "event_id": "e-1"},
        {"status": "rejected", "reason": "missing_field", "detail": "field 'ts' is missing"},
        {"status": "skipped", "reason": "consent_denied"},
        {"status": "accepted", "event_id": "c-0123"},
    ]
    ack = pb.Ack.FromString(ack_message("b-7", Outcome(results, 2, 1, 1)).SerializeToString())
    assert (ack.batch_id, ack.status, ack.credits, ack.accepted, ack.rejected, ack.skipped) == (
        "b-7", 200, 1, 2, 1, 1,
    )  # fmt: skip
    assert [(r.status, r.event_id, r.reason, r.detail) for r in ack.results] == [
        (pb.ACCEPTED, "e-1", "", ""),
        (pb.REJECTED, "", "missing_field", "field 'ts' is missing"),
        (pb.SKIPPED, "", "consent_denied", ""),
        (pb.ACCEPTED, "c-0123", "", ""),
    ]
