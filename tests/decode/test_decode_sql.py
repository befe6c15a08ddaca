"""The decode step's SQL as jobs get it: rendered from jobs/common/sql/decode.sql, no Flink needed."""

from __future__ import annotations

import dataclasses
import re
import zipfile

import pytest

from jobs.common import contract, decode, topics
from jobs.common.connectors import parse_stop_offsets
from jobs.common.settings import KafkaSettings

from .support import require_jar

SPEC = decode.DecodeSpec(job="sessionize", kafka=KafkaSettings(), bounded=True)


def statement(statements: list[str], starts: str) -> str:
    (found,) = [s for s in statements if s.startswith(starts)]
    return found


def test_the_functions_are_the_jar_classes() -> None:
    with zipfile.ZipFile(require_jar()) as jar:
        names = set(jar.namelist())
    for cls in decode.FUNCTIONS.values():
        assert cls.replace(".", "/") + ".class" in names
    for ddl in decode.function_ddl():
        assert ddl.startswith("CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS") and ddl.endswith(
            "LANGUAGE JAVA"
        )


def test_the_raw_source_reads_bytes_with_kafka_coordinates_and_no_watermark_by_default() -> None:
    statements = decode.statements(SPEC)
    source = statement(statements, "CREATE TEMPORARY TABLE `ux_events_raw`")
    for column in (
        "kafka_key BYTES",
        "payload BYTES",
        "kafka_partition INT METADATA FROM 'partition' VIRTUAL",
        "kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL",
        "event_time AS ux_event_time(payload)",
    ):
        assert column in source
    assert "WATERMARK" not in source
    options = decode.source_options(SPEC)
    assert options["topic"] == topics.EVENTS
    assert (options["key.format"], options["value.format"]) == ("raw", "raw")
    assert options["value.fields-include"] == "EXCEPT_KEY"
    assert options["scan.bounded.mode"] == "latest-offset"
    assert options["properties.isolation.level"] == "read_committed"


def test_stop_offsets_bound_the_read_at_explicit_offsets_instead_of_the_end_at_start() -> None:
    spec = dataclasses.replace(SPEC, stop_offsets=parse_stop_offsets("1:980, 0:2600"))
    assert spec.stop_offsets == ((0, 2600), (1, 980))
    options = decode.source_options(spec)
    assert options["scan.bounded.mode"] == "specific-offsets"
    assert options["scan.bounded.specific-offsets"] == "partition:0,offset:2600;partition:1,offset:980"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0-5", "stop offsets '0-5': '0-5' is not PARTITION:OFFSET (two non-negative integers)"),
        ("0:5,1:", "stop offsets '0:5,1:': '1:' is not PARTITION:OFFSET (two non-negative integers)"),
        ("0:-1", "stop offsets '0:-1': '0:-1' is not PARTITION:OFFSET (two non-negative integers)"),
        ("0:5,0:6", "stop offsets '0:5,0:6': partition 0 is listed twice"),
    ],
)
def test_malformed_stop_offsets_are_refused_naming_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_stop_offsets(text)
    assert str(raised.value) == message


def test_a_job_declares_its_watermark_on_the_source_table() -> None:
    spec = decode.DecodeSpec(
        job="j",
        watermark="event_time - INTERVAL '5' SECOND",
        source_options={"scan.watermark.idle-timeout": "30 s"},
    )
    source = statement(decode.statements(spec), "CREATE TEMPORARY TABLE `ux_events_raw`")
    assert "WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND" in source
    assert "'scan.watermark.idle-timeout' = '30 s'" in source


def test_the_valid_view_has_every_event_field_in_schema_order_then_the_kafka_columns_then_agent_bot() -> None:
    view = statement(decode.statements(SPEC), "CREATE TEMPORARY VIEW `ux_events` AS")
    aliases = re.findall(r"AS `?(\w+)`?,?\n", view.split("FROM")[0] + "\n")
    assert tuple(aliases[: len(decode.event_columns())]) == contract.event_reader_schema().field_names
    assert decode.valid_columns()[-7:] == (
        "schema_id",
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        "event_time",
        "agent_bot",  # the user-agent bot verdict (jobs/common/enrichment.py); is_bot adds behaviour
    )
    assert "WHERE decoded.reason IS NULL" in view


def test_dead_letters_go_exactly_once_as_raw_bytes_keyed_like_the_source() -> None:
    statements = decode.statements(SPEC)
    assert "WHERE decoded.reason IS NOT NULL" in statement(
        statements, "CREATE TEMPORARY VIEW `ux_events_invalid`"
    )
    options = decode.dlq_options(SPEC)
    assert options["topic"] == topics.DLQ
    assert options["sink.delivery-guarantee"] == "exactly-once"
    assert options["sink.transactional-id-prefix"] == "sessionize-dlq"
    assert options["properties.transaction.timeout.ms"] == "900000"  # 15 min: a default broker's maximum
    assert (options["key.format"], options["key.fields"], options["value.format"]) == (
        "raw",
        "kafka_key",
        "raw",
    )
    insert = decode.dlq_insert(decode.DecodeSpec(job="it's"))
    assert insert.startswith("INSERT INTO `ux_events_dlq`")
    assert "'it''s'" in insert and "FROM `ux_events_invalid`" in insert


def test_names_can_be_changed_to_decode_two_topics_in_one_job() -> None:
    names = decode.DecodeNames(
        source_table="a_raw",
        decoded_view="a_decoded",
        valid_view="a",
        invalid_view="a_invalid",
        dlq_table="a_dlq",
    )
    statements = decode.statements(decode.DecodeSpec(job="j", names=names))
    assert [s.split("(")[0].split(" AS")[0].split()[-1] for s in statements[len(decode.FUNCTIONS) :]] == [
        "`a_raw`",
        "`a_decoded`",
        "`a`",
        "`a_invalid`",
        "`a_dlq`",
    ]
