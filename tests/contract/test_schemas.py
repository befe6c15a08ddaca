"""The schema catalog and its evolution check (`uxstream schema check`)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import fastavro
import pytest

from jobs.common import contract, topics
from jobs.common.contract import CATALOG_FILE, EVENT_SUBJECT, NAMESPACE, SCHEMA_DIR, Catalog, SchemaEntry
from uxstream import paths
from uxstream.cli import main
from uxstream.contract.compat import check_pair, check_schemas, sample_records


def test_the_contract_reads_the_project_schema_folder() -> None:
    assert SCHEMA_DIR == paths.SCHEMAS


def test_the_catalog_lists_every_schema_file_and_nothing_else(catalog: Catalog) -> None:
    listed = sorted(entry.file for entry in catalog.entries)

    assert listed == sorted(path.name for path in SCHEMA_DIR.glob("*.avsc"))


def test_every_schema_file_parses_as_written(catalog: Catalog) -> None:
    for entry in catalog.entries:
        fastavro.parse_schema(json.loads(entry.path.read_text(encoding="utf-8")), named_schemas={})
        assert entry.definition["namespace"] == NAMESPACE, entry.file


def test_ids_are_unique_and_versions_run_from_one(catalog: Catalog) -> None:
    assert len({entry.id for entry in catalog.entries}) == len(catalog.entries)
    for subject in catalog.subjects():
        assert [entry.version for entry in catalog.versions(subject)] == list(
            range(1, len(catalog.versions(subject)) + 1)
        )


def test_subjects_are_the_value_subjects_of_the_topics(catalog: Catalog) -> None:
    assert set(catalog.subjects()) == {topics.value_subject(topic) for topic in topics.ALL}


def test_every_event_version_keeps_properties_last(catalog: Catalog) -> None:
    """A truncated body is only always detected when the last field ends in a varint read (a map)."""
    for entry in catalog.versions(EVENT_SUBJECT):
        last = entry.definition["fields"][-1]
        assert last["name"] == "properties" and last["type"]["type"] == "map", entry.file


def test_every_schema_has_sample_data_that_round_trips(catalog: Catalog) -> None:
    for entry in catalog.entries:
        for record in sample_records(contract.plain_schema(entry.definition)):
            assert contract.encode_body(record, entry)


def test_the_shipped_schemas_pass_the_check() -> None:
    report = check_schemas(SCHEMA_DIR)

    assert report.problems == ()
    assert report.pairs == ("ux_event v1 → v2", "ux_event v2 → v3", "kpi_window v1 → v2")


# ------------------------------------------------------------------------------------ evolution rules


def with_field(schema: dict[str, Any], name: str, /, **changes: Any) -> dict[str, Any]:
    """A copy of `schema` whose field `name` has `changes` applied (`type=`, `default=` …)."""
    changed = copy.deepcopy(schema)
    for spec in changed["fields"]:
        if spec["name"] == name:
            spec.update(changes)
    return changed


def without_field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    changed = copy.deepcopy(schema)
    changed["fields"] = [spec for spec in changed["fields"] if spec["name"] != name]
    return changed


def with_new_field(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(schema)
    changed["fields"].insert(-1, spec)
    return changed


def messages(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [str(problem) for problem in check_pair(old, new, name="ux_event", old_version=1, new_version=2)]


def test_v2_is_backward_and_forward_compatible_with_v1(v1: SchemaEntry, v2: SchemaEntry) -> None:
    assert messages(v1.definition, v2.definition) == []


def test_removing_a_required_field_fails_forward_naming_the_field(v1: SchemaEntry, v2: SchemaEntry) -> None:
    assert messages(v1.definition, without_field(v2.definition, "anonymous_id")) == [
        "ux_event v2 is not forward compatible with v1: field 'anonymous_id' removed without a default"
    ]


def test_changing_a_type_fails_both_ways_naming_the_field(v1: SchemaEntry, v2: SchemaEntry) -> None:
    assert messages(v1.definition, with_field(v2.definition, "event_name", type="int")) == [
        "ux_event v2 is not backward compatible with v1: field 'event_name' changed type from string to int",
        "ux_event v2 is not forward compatible with v1: field 'event_name' changed type from string to int",
    ]


def test_a_nullable_field_that_becomes_another_type_names_both_types(
    v1: SchemaEntry, v2: SchemaEntry
) -> None:
    assert messages(
        v1.definition, with_field(v2.definition, "country", type=["null", "int"], default=None)
    ) == [
        "ux_event v2 is not backward compatible with v1: field 'country' changed type from [null, string] "
        "to [null, int]",
        "ux_event v2 is not forward compatible with v1: field 'country' changed type from [null, string] "
        "to [null, int]",
    ]


def test_adding_a_field_without_a_default_fails_backward(v1: SchemaEntry, v2: SchemaEntry) -> None:
    new = with_new_field(v2.definition, {"name": "tenant", "type": "string"})

    assert messages(v1.definition, new) == [
        "ux_event v2 is not backward compatible with v1: field 'tenant' added without a default"
    ]


def test_making_an_optional_field_required_fails_backward_only(v1: SchemaEntry, v2: SchemaEntry) -> None:
    new = with_field(v2.definition, "referrer", type="string")
    for spec in new["fields"]:
        if spec["name"] == "referrer":
            del spec["default"]

    assert messages(v1.definition, new) == [
        "ux_event v2 is not backward compatible with v1: field 'referrer' changed type from [null, string] "
        "to string"
    ]


def test_a_numeric_promotion_is_compatible_one_way_only(v1: SchemaEntry) -> None:
    old = with_field(v1.definition, "page_load_ms", type=["null", "float"], default=None)
    new = with_field(v1.definition, "page_load_ms", type=["null", "double"], default=None)

    assert messages(old, new) == [
        "ux_event v2 is not forward compatible with v1: field 'page_load_ms' changed type from [null, float] "
        "to [null, double]"
    ]


def test_renaming_the_record_fails(v1: SchemaEntry, v2: SchemaEntry) -> None:
    renamed = {**copy.deepcopy(v2.definition), "name": "UiEvent"}

    assert messages(v1.definition, renamed)[0] == (
        "ux_event v2 is not backward compatible with v1: record name changed from io.uxstream.UxEvent to "
        "io.uxstream.UiEvent"
    )


def test_a_renamed_field_with_an_alias_is_compatible_backward(v1: SchemaEntry) -> None:
    new = with_field(v1.definition, "page_title", name="document_title", aliases=["page_title"])

    assert [m for m in messages(v1.definition, new) if "backward" in m] == []


# ------------------------------------------------------------------------------------------ the CLI


@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "avro"
    shutil.copytree(SCHEMA_DIR, folder)
    return folder


def test_schema_check_passes_on_the_shipped_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "check"]) == 0
    assert "schema check passed: 8 schema versions in 5 subjects" in capsys.readouterr().out


def test_schema_check_fails_with_the_field_when_a_version_breaks_compatibility(
    schema_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v2_file = schema_copy / "ux_event.v2.avsc"
    v2 = json.loads(v2_file.read_text(encoding="utf-8"))
    v2_file.write_text(json.dumps(with_field(v2, "anonymous_id", type="long")), encoding="utf-8")

    code = main(["schema", "check", "--schemas", str(schema_copy)])

    assert code == 1
    err = capsys.readouterr().err
    expected = "not backward compatible with v1: field 'anonymous_id' changed type from string to long"
    assert expected in err


def test_schema_check_reports_an_unlisted_file_and_a_gap_in_versions(
    schema_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(schema_copy / "alert.v1.avsc", schema_copy / "alert.v2.avsc")
    catalog = json.loads((schema_copy / CATALOG_FILE).read_text(encoding="utf-8"))
    catalog["schemas"].append(
        {"id": 9, "subject": "ux.kpi-value", "version": 4, "file": "kpi_window.v1.avsc"}
    )
    (schema_copy / CATALOG_FILE).write_text(json.dumps(catalog), encoding="utf-8")

    assert main(["schema", "check", "--schemas", str(schema_copy)]) == 1
    err = capsys.readouterr().err
    assert "alert.v2.avsc: not listed in" in err
    assert "ux.kpi-value: versions must run 1, 2, … without gaps; found 1, 2, 4" in err


def test_schema_check_reports_a_file_that_is_not_avro(
    schema_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = '{"type": "record", "name": "Alert", "fields": [{"name": "status", "type": "strng"}]}'
    (schema_copy / "alert.v1.avsc").write_text(broken, encoding="utf-8")

    assert main(["schema", "check", "--schemas", str(schema_copy)]) == 1
    assert "alert.v1.avsc: not a valid Avro schema" in capsys.readouterr().err
