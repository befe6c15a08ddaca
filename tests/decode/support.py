"""Helpers of the decode tests: the JVM decoder as a subprocess, Python's verdicts in the same shape,
event builders and payload mutations.

The JVM side is `io.uxstream.udf.DecodeCli` from the uxstream-udf jar (the pure decoder behind the Flink
UDF, no Flink needed): one payload in hex per stdin line, one JSON verdict per stdout line.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Final

from jobs.common import contract
from jobs.common.flink_env import FLINK_LIB_JARS

UDF_JAR: Final = FLINK_LIB_JARS / "uxstream-udf-0.1.0.jar"

_ADDRESS = re.compile(r" at 0x[0-9a-f]+>")

Verdict = dict[str, Any]
"""{"reason", "detail", "schema_id", "event"}: what both decoders say about one payload."""

INT32_OVERFLOW: Final = "does not fit in 32 bits"
"""The JVM's detail for an Avro int beyond 32 bits, which fastavro (and so Python) accepts."""


def require_jar() -> Path:
    if not UDF_JAR.is_file():
        raise AssertionError(f"{UDF_JAR} is missing: run `make jars` (builds jvm/udf)")
    return UDF_JAR


def jvm_classpath(*, table: bool = False) -> str:
    """The UDF jar plus Flink's dist jar (slf4j for Avro), from the apache-flink wheel; with `table`, the
    Table API jars too (to call the Flink functions themselves, without a Flink runtime)."""
    import pyflink

    lib = Path(pyflink.__file__).parent / "lib"
    patterns = [
        "flink-dist-*.jar",
        *(["flink-table-api-java-uber-*.jar", "flink-table-runtime-*.jar"] * table),
    ]
    jars = [jar for pattern in patterns for jar in sorted(lib.glob(pattern))]
    return ":".join(str(p) for p in [require_jar(), *jars])


class JvmDecoder:
    """A running `DecodeCli`: decode payloads with the JVM decoder, one round trip each."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            ["java", "-Xmx256m", "-cp", jvm_classpath(), "io.uxstream.udf.DecodeCli"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )

    @property
    def _pipes(self) -> tuple[IO[str], IO[str]]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        return self._proc.stdin, self._proc.stdout

    def decode(self, payload: bytes | None) -> Verdict:
        stdin, stdout = self._pipes
        stdin.write(("-" if payload is None else payload.hex()) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise AssertionError(f"the JVM decoder died (exit code {self._proc.wait()})")
        verdict: Verdict = json.loads(line)
        return verdict

    def decode_all(self, payloads: list[bytes | None], batch: int = 32) -> list[Verdict]:
        """Verdicts of many payloads, pipelined in small batches (a pipe holds ~64 KB: never fill both)."""
        stdin, stdout = self._pipes
        verdicts: list[Verdict] = []
        for start in range(0, len(payloads), batch):
            chunk = payloads[start : start + batch]
            stdin.write("".join(("-" if p is None else p.hex()) + "\n" for p in chunk))
            stdin.flush()
            verdicts.extend(json.loads(stdout.readline()) for _ in chunk)
        return verdicts

    def close(self) -> None:
        stdin, _ = self._pipes
        stdin.close()
        self._proc.wait(timeout=30)


def jvm_constants() -> dict[str, Any]:
    out = subprocess.run(
        ["java", "-cp", jvm_classpath(), "io.uxstream.udf.DecodeCli", "--constants"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    constants: dict[str, Any] = json.loads(out)
    return constants


# ------------------------------------------------------------------------------------ Python's verdict


def without_addresses(invalid: contract.Invalid) -> contract.Invalid:
    """The verdict with Python object addresses removed from its detail (the JVM cannot know them)."""
    return dataclasses.replace(invalid, detail=_ADDRESS.sub(">", invalid.detail))


def plain(value: Any) -> Any:
    """A decoded value as the JVM CLI renders it (floats as their repr)."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def python_verdict(payload: bytes | None) -> Verdict:
    """contract.decode's verdict in the CLI's shape (object addresses stripped from details)."""
    result = contract.decode(payload)
    if isinstance(result, contract.Invalid):
        return {
            "reason": result.reason,
            "detail": without_addresses(result).detail,
            "schema_id": result.schema_id,
            "event": None,
        }
    return {
        "reason": None,
        "detail": None,
        "schema_id": result.schema_id,
        "event": {k: plain(v) for k, v in result.event.items()},
    }


def int_fields() -> tuple[str, ...]:
    """Reader fields of Avro type int (a nullable int included)."""
    reader = contract.event_reader_schema()
    names = []
    for f in reader.definition["fields"]:
        types = f["type"] if isinstance(f["type"], list) else [f["type"]]
        if "int" in types:
            names.append(f["name"])
    return tuple(names)


def has_int32_overflow(payload: bytes | None) -> bool:
    """True when Python decodes the record and an int field holds more than 32 bits."""
    decoded = contract.default_decoder().decode_record(payload)
    if isinstance(decoded, contract.Invalid):
        return False
    _, record = decoded
    return any(isinstance(record.get(n), int) and not -(2**31) <= record[n] < 2**31 for n in int_fields())


def assert_same_verdict(payload: bytes | None, jvm: Verdict) -> None:
    """The JVM's verdict equals Python's, but for the one documented difference (ints beyond 32 bits)."""
    python = python_verdict(payload)
    if jvm["reason"] == contract.UNDECODABLE_AVRO and INT32_OVERFLOW in (jvm["detail"] or ""):
        assert python["reason"] == contract.UNDECODABLE_AVRO or has_int32_overflow(payload), (
            payload,
            python,
            jvm,
        )
        return
    assert jvm == python, f"payload {payload!r}:\n python {python}\n jvm    {jvm}"


# ------------------------------------------------------------------------------------------ builders

T0: Final = 1_736_155_800_000
"""2025-01-06T09:30:00Z."""

V2_ONLY: Final = ("session_hint", "engagement_time_ms", "consent", "screen_width", "screen_height", "ip")
V3_ONLY: Final = ("survey_id", "feedback_scale", "feedback_score", "feedback_comment")
V3_SCHEMA_ID: Final = 7
"""ux_event v3 (the feedback fields, issue 22 item 6)."""


def event(**overrides: Any) -> dict[str, Any]:
    """A valid v2 page view with every field set; `overrides` replace fields."""
    base: dict[str, Any] = {
        "event_id": "evt-0001",
        "event_type": "page_view",
        "event_name": "page_view",
        "user_id": "usr_42",
        "anonymous_id": "anon-9d2c",
        "ts": T0,
        "received_at": T0 + 150,
        "page_url": "https://shop.example.com/pricing?utm_source=newsletter",
        "page_path": "/pricing",
        "page_title": "Pricing – Example Shop",
        "referrer": "https://www.google.com/",
        "utm_source": "newsletter",
        "utm_medium": "email",
        "utm_campaign": "weekly",
        "device_type": "mobile",
        "os": "iOS 17",
        "browser": "Safari 17",
        "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X)",
        "country": "DE",
        "app_version": "web-2025.01.2",
        "lcp_ms": 1834.5,
        "inp_ms": 120.0,
        "cls": 0.031,
        "error_type": None,
        "error_message": None,
        "page_load_ms": 912.25,
        "session_hint": "s-77",
        "engagement_time_ms": 15000,
        "consent": "granted",
        "screen_width": 390,
        "screen_height": 844,
        "ip": "203.0.113.7",
        "properties": {"plan": "pro", "ab": "B", "emoji": "🎉"},
    }
    base.update(overrides)
    return base


def v1_event(**overrides: Any) -> dict[str, Any]:
    """The same event as v1 writes it (without the v2-only fields)."""
    return {k: v for k, v in event(**overrides).items() if k not in V2_ONLY}


def encode_v1(record: Mapping[str, Any]) -> bytes:
    return contract.encode({k: v for k, v in record.items() if k not in V2_ONLY and k not in V3_ONLY}, 1)


def encode_v2(record: Mapping[str, Any]) -> bytes:
    """v2, or v3 when the record sets a v3-only (feedback) field."""
    if any(record.get(name) is not None for name in V3_ONLY):
        return contract.encode(record, V3_SCHEMA_ID)
    return contract.encode({k: v for k, v in record.items() if k not in V3_ONLY}, 2)


def encode_v3(record: Mapping[str, Any]) -> bytes:
    return contract.encode(record, V3_SCHEMA_ID)


def feedback_event(**overrides: Any) -> dict[str, Any]:
    """A valid v3 feedback event (NPS 9 with a comment); `overrides` replace fields."""
    values: dict[str, Any] = {
        "event_type": "feedback",
        "event_name": "survey_answered",
        "survey_id": "nps-2025q1",
        "feedback_scale": "0-10",
        "feedback_score": 9,
        "feedback_comment": "Great, mail me at jane.doe@example.com or call +49 170 1234567",
    }
    values.update(overrides)
    return event(**values)


def same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def payload_of_size(size: int) -> bytes:
    """A valid v2 event framed in exactly `size` bytes (about 12 KB to the limit and a bit beyond): long
    page fields, then properties entries (every string 64+ characters, so each length prefix is two bytes
    and a record grows one byte per added character; fewer than 64 entries, so the block count is 1 byte)."""
    base = event(
        error_message="m" * 4096,
        page_url="u" * 2048,
        referrer="r" * 2048,
        page_title="t" * 1024,
        user_agent="a" * 1024,
        properties={},
    )
    entries: dict[str, str] = {}
    while (rest := size - len(encode_v2(base | {"properties": entries}))) > 380:
        step = min(388, rest - 200)  # an entry of key + value + 4 prefix bytes, leaving 200+ for the last
        entries[f"p{len(entries):03d}".ljust(128, "k")] = "v" * (step - 132)
    extra = rest - 132  # the last entry: a 64-character key and value take 132 bytes
    value = 64 + min(192, extra)
    key = "q" * (64 + extra - (value - 64))
    payload = encode_v2(base | {"properties": {**entries, key: "v" * value}})
    if len(payload) != size or len(entries) >= 63 or len(key) > 128:
        raise AssertionError(f"no padding gives {size} bytes ({len(payload)}, {len(entries)} entries)")
    return payload


def jvm_event_times(payloads: list[bytes | None]) -> list[int | None]:
    """`ux_event_time(payload)` of the Flink UDF per payload (DecodeCli --event-time, no Flink runtime)."""
    lines = "".join(("-" if p is None else p.hex()) + "\n" for p in payloads)
    out = subprocess.run(
        ["java", "-Xmx256m", "-cp", jvm_classpath(table=True), "io.uxstream.udf.DecodeCli", "--event-time"],
        input=lines,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [json.loads(line)["event_time"] for line in out.splitlines()]


def jvm_scrub(texts: list[str]) -> list[str]:
    """`io.uxstream.udf.CommentScrub` over each text (`DecodeCli --scrub`: hex UTF-8 lines in and out)."""
    out = subprocess.run(
        ["java", "-cp", jvm_classpath(), "io.uxstream.udf.DecodeCli", "--scrub"],
        input="".join(text.encode().hex() + "\n" for text in texts),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [bytes.fromhex(line).decode() for line in out.splitlines()]
