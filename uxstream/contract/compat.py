"""Schema evolution check: every version of a subject must be FULL compatible with the previous one.

`backward`: the new schema reads data written with the old one (consumers upgrade first).
`forward`: the old schema reads data written with the new one (producers upgrade first).

Two independent checks per direction:

1. **Structural**, following the Avro specification's schema-resolution rules field by field, so the
   message names the field: `ux_event v2 is not backward compatible with v1: field 'country' changed type
   from string to int`, `... not forward compatible with v1: field 'anonymous_id' removed without a
   default`.
2. **Real resolution**: sample records of the writer schema (every optional value set, and every optional
   value null) are written with fastavro and read back with the reader schema. A failure there that the
   structural check did not explain is reported with fastavro's message.

`check_schemas(directory)` also checks the catalog itself: it parses, lists every `.avsc` of the folder,
file names match `<name>.v<version>.avsc`, and each subject's versions run 1, 2, … without gaps.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import fastavro

from jobs.common.contract import (
    CATALOG_FILE,
    ContractError,
    SchemaEntry,
    full_name,
    plain_schema,
    read_catalog,
)

Direction = Literal["backward", "forward"]

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
PROMOTIONS = {
    # writer type → reader types that can read it (Avro specification, "Schema Resolution")
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}

_FILE_NAME = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.avsc$")


@dataclass(frozen=True)
class Incompatibility:
    """One reason why `new` cannot replace `old`."""

    name: str
    old_version: int
    new_version: int
    direction: Direction
    field: str | None
    problem: str

    def __str__(self) -> str:
        return (
            f"{self.name} v{self.new_version} is not {self.direction} compatible with v{self.old_version}: "
            f"{self.problem}"
        )


@dataclass(frozen=True)
class CheckReport:
    """Outcome of `check_schemas`."""

    directory: Path
    schema_count: int
    subjects: tuple[str, ...]
    pairs: tuple[str, ...]
    """Checked evolution steps, e.g. `ux_event v1 → v2`."""
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


# ------------------------------------------------------------------------------------ type helpers


class _Names:
    """Named types (records, enums, fixed) of one schema, by full and short name."""

    def __init__(self, schema: Any) -> None:
        self.types: dict[str, dict[str, Any]] = {}
        self._collect(schema, None)

    def _collect(self, schema: Any, namespace: str | None) -> None:
        if isinstance(schema, list):
            for branch in schema:
                self._collect(branch, namespace)
        elif isinstance(schema, dict):
            kind = schema.get("type")
            if kind in ("record", "error", "enum", "fixed"):
                name = full_name(
                    {"name": schema.get("name"), "namespace": schema.get("namespace", namespace)}
                )
                self.types[name] = schema
                self.types.setdefault(name.rsplit(".", 1)[-1], schema)
                inner = name.rsplit(".", 1)[0] if "." in name else namespace
                for item in schema.get("fields", ()) if kind in ("record", "error") else ():
                    self._collect(item.get("type"), inner)
            elif kind == "array":
                self._collect(schema.get("items"), namespace)
            elif kind == "map":
                self._collect(schema.get("values"), namespace)
            elif isinstance(kind, (dict, list)):
                self._collect(kind, namespace)

    def deref(self, schema: Any) -> Any:
        """The definition behind a name reference; `{"type": "string", …}` → `"string"`."""
        if isinstance(schema, str):
            return self.types.get(schema, schema)
        if isinstance(schema, dict):
            kind = schema.get("type")
            if isinstance(kind, str) and kind in PRIMITIVES:
                return kind
            if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind in self.types):
                return self.deref(kind)
        return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    return str(schema.get("type"))


def _show(schema: Any, names: _Names) -> str:
    schema = names.deref(schema)
    if isinstance(schema, list):
        return "[" + ", ".join(_show(branch, names) for branch in schema) + "]"
    if isinstance(schema, str):
        return schema
    kind = schema.get("type")
    if kind == "array":
        return f"array<{_show(schema.get('items'), names)}>"
    if kind == "map":
        return f"map<{_show(schema.get('values'), names)}>"
    if kind in ("record", "error", "enum", "fixed"):
        return f"{kind} {schema.get('name')}"
    return str(kind)


# --------------------------------------------------------------------------------- structural check


class _Resolution:
    """Avro schema resolution of `writer` data by `reader`, collecting (field, problem) pairs."""

    def __init__(self, reader_names: _Names, writer_names: _Names, direction: Direction) -> None:
        self.reader_names = reader_names
        self.writer_names = writer_names
        self.direction = direction
        self.problems: list[tuple[str | None, str]] = []

    @classmethod
    def of(cls, reader: Any, writer: Any, direction: Direction) -> _Resolution:
        resolution = cls(_Names(reader), _Names(writer), direction)
        resolution.match(reader, writer, "")
        return resolution

    def type_change(self, path: str, reader: Any, writer: Any) -> str:
        shown_reader = _show(reader, self.reader_names)
        shown_writer = _show(writer, self.writer_names)
        old, new = (
            (shown_writer, shown_reader) if self.direction == "backward" else (shown_reader, shown_writer)
        )
        return f"field '{path}' changed type from {old} to {new}"

    def readable(self, reader: Any, writer: Any) -> bool:
        """Can every value of `writer` be read as `reader`? (no problem recording)"""
        probe = _Resolution(self.reader_names, self.writer_names, self.direction)
        probe.match(reader, writer, "")
        return not probe.problems

    def match(self, reader: Any, writer: Any, path: str) -> None:
        reader = self.reader_names.deref(reader)
        writer = self.writer_names.deref(writer)
        reader_kind, writer_kind = _kind(reader), _kind(writer)
        if writer_kind == "union":
            if not all(self.readable(reader, branch) for branch in writer):
                self.problems.append((path, self.type_change(path, reader, writer)))
            return
        if reader_kind == "union":
            if not any(self.readable(branch, writer) for branch in reader):
                self.problems.append((path, self.type_change(path, reader, writer)))
            return
        if reader_kind in PRIMITIVES or writer_kind in PRIMITIVES:
            if reader_kind != writer_kind and reader_kind not in PROMOTIONS.get(writer_kind, ()):
                self.problems.append((path, self.type_change(path, reader, writer)))
            return
        if reader_kind != writer_kind:
            self.problems.append((path, self.type_change(path, reader, writer)))
            return
        if reader_kind in ("record", "error", "enum", "fixed") and not self._same_name(reader, writer):
            self.problems.append(
                (path or None, f"{_where(path)}record name changed from {self._names(reader, writer)}")
            )
            return
        if reader_kind in ("record", "error"):
            self.records(reader, writer, path)
        elif reader_kind == "enum":
            self.enums(reader, writer, path)
        elif reader_kind == "fixed":
            if reader.get("size") != writer.get("size"):
                self.problems.append((path, self.type_change(path, reader, writer)))
        elif reader_kind == "array":
            self.match(reader.get("items"), writer.get("items"), path)
        elif reader_kind == "map":
            self.match(reader.get("values"), writer.get("values"), path)

    def _same_name(self, reader: Mapping[str, Any], writer: Mapping[str, Any]) -> bool:
        writer_name = full_name(writer)
        aliases = {
            full_name({"name": a, "namespace": reader.get("namespace")}) for a in reader.get("aliases", ())
        }
        return full_name(reader) == writer_name or writer_name in aliases

    def _names(self, reader: Mapping[str, Any], writer: Mapping[str, Any]) -> str:
        old, new = (writer, reader) if self.direction == "backward" else (reader, writer)
        return f"{full_name(old)} to {full_name(new)}"

    def records(self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str) -> None:
        writer_fields = {f["name"]: f for f in writer.get("fields", ())}
        for reader_field in reader.get("fields", ()):
            name = reader_field["name"]
            field_path = f"{path}.{name}" if path else name
            candidates = [name, *reader_field.get("aliases", ())]
            writer_field = next((writer_fields[c] for c in candidates if c in writer_fields), None)
            if writer_field is None:
                if "default" not in reader_field:
                    change = "added" if self.direction == "backward" else "removed"
                    self.problems.append((field_path, f"field '{field_path}' {change} without a default"))
                continue
            self.match(reader_field.get("type"), writer_field.get("type"), field_path)

    def enums(self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str) -> None:
        if "default" in reader:
            return
        known = set(reader.get("symbols", ()))
        for symbol in writer.get("symbols", ()):
            if symbol not in known:
                change = "removed" if self.direction == "backward" else "added"
                self.problems.append(
                    (path, f"{_where(path)}enum symbol '{symbol}' {change} and the enum has no default")
                )


def _where(path: str) -> str:
    return f"field '{path}': " if path else ""


# ----------------------------------------------------------------------------------- real resolution


def sample_records(schema: Any) -> Iterator[Any]:
    """Deterministic data of a schema: one value with every optional part set, one with every one null."""
    names = _Names(schema)
    for populated in (True, False):
        yield _sample(schema, names, populated, depth=0)


def _sample(schema: Any, names: _Names, populated: bool, depth: int) -> Any:
    schema = names.deref(schema)
    kind = _kind(schema)
    if kind == "union":
        branches = list(schema)
        nulls = [b for b in branches if names.deref(b) == "null"]
        others = [b for b in branches if names.deref(b) != "null"]
        if others and (populated or not nulls) and depth < 8:
            return _sample(others[0], names, populated, depth + 1)
        return _sample(nulls[0] if nulls else branches[0], names, populated, depth + 1)
    primitive_values: dict[str, Any] = {
        "null": None,
        "boolean": True,
        "int": 7,
        "long": 1_736_121_600_000,
        "float": 1.5,
        "double": 2.5,
        "bytes": b"\x00\x01",
        "string": "sample",
    }
    if kind in primitive_values:
        return primitive_values[kind]
    if kind in ("record", "error"):
        return {
            f["name"]: _sample(f.get("type"), names, populated, depth + 1) for f in schema.get("fields", ())
        }
    if kind == "enum":
        return schema["symbols"][0]
    if kind == "fixed":
        return b"\x00" * int(schema.get("size", 0))
    if kind == "array":
        return [_sample(schema.get("items"), names, populated, depth + 1)] if populated and depth < 8 else []
    if kind == "map":
        return {"key": _sample(schema.get("values"), names, populated, depth + 1)} if populated else {}
    raise ContractError(f"cannot build sample data for type {kind!r}")


def _resolution_error(reader: Any, writer: Any) -> str | None:
    """Write samples with `writer`, read them with `reader` via fastavro; the first failure, if any."""
    try:
        parsed_writer = fastavro.parse_schema(plain_schema(writer), named_schemas={})
        parsed_reader = fastavro.parse_schema(plain_schema(reader), named_schemas={})
        for record in sample_records(plain_schema(writer)):
            buffer = io.BytesIO()
            fastavro.schemaless_writer(buffer, parsed_writer, record)
            buffer.seek(0)
            fastavro.schemaless_reader(buffer, parsed_writer, parsed_reader)
            if buffer.tell() != len(buffer.getvalue()):
                return "the reader left bytes of the record unread"
    except Exception as exc:  # fastavro's SchemaResolutionError and friends
        return f"Avro schema resolution failed ({type(exc).__name__}: {exc})"
    return None


# ------------------------------------------------------------------------------------------- checks


def check_pair(
    old: Any, new: Any, *, name: str = "schema", old_version: int = 1, new_version: int = 2
) -> list[Incompatibility]:
    """Backward and forward compatibility of two schema definitions (JSON-like). Empty when compatible."""
    found: list[Incompatibility] = []
    steps: tuple[tuple[Direction, Any, Any], ...] = (("backward", new, old), ("forward", old, new))
    for direction, reader, writer in steps:
        problems = _Resolution.of(reader, writer, direction).problems
        if not problems:
            error = _resolution_error(reader, writer)
            if error is not None:
                problems = [(None, error)]
        for field_path, problem in problems:
            found.append(Incompatibility(name, old_version, new_version, direction, field_path, problem))
    return found


def check_entries(old: SchemaEntry, new: SchemaEntry) -> list[Incompatibility]:
    """`check_pair` for two catalog entries of the same subject."""
    return check_pair(
        old.definition, new.definition, name=new.name, old_version=old.version, new_version=new.version
    )


def check_schemas(directory: Path | str) -> CheckReport:
    """Check a schema folder (catalog + `.avsc` files) and every evolution step in it."""
    directory = Path(directory)
    if not directory.is_dir():
        return CheckReport(directory, 0, (), (), (f"{directory}: not a directory",))
    try:
        catalog = read_catalog(directory)
    except ContractError as exc:
        return CheckReport(directory, 0, (), (), (str(exc),))
    problems: list[str] = []
    listed = {entry.file for entry in catalog.entries}
    for path in sorted(directory.glob("*.avsc")):
        if path.name not in listed:
            problems.append(
                f"{path}: not listed in {directory / CATALOG_FILE} (give it an id, subject, version)"
            )
    pairs: list[str] = []
    for subject in catalog.subjects():
        versions = catalog.versions(subject)
        numbers = [entry.version for entry in versions]
        if numbers != list(range(1, len(numbers) + 1)):
            problems.append(
                f"{subject}: versions must run 1, 2, … without gaps; found {', '.join(map(str, numbers))}"
            )
        for entry in versions:
            match = _FILE_NAME.match(entry.file)
            if match is None or int(match["version"]) != entry.version or match["name"] != versions[0].name:
                problems.append(
                    f"{entry.file}: file name must be {versions[0].name}.v{entry.version}.avsc "
                    f"(subject {subject} version {entry.version})"
                )
        for old, new in itertools.pairwise(versions):
            pairs.append(f"{new.name} v{old.version} → v{new.version}")
            problems.extend(str(problem) for problem in check_entries(old, new))
    return CheckReport(directory, len(catalog.entries), catalog.subjects(), tuple(pairs), tuple(problems))
