"""The TOML task file: its format, parsed and checked before any work starts.

A task file declares one binary-classification task on one CSV or Parquet table (see
``docs/tasks.md``). :func:`read_task_file` turns it into a :class:`TaskFileSpec` or raises a
:class:`~e2eai.tasks.TaskError` naming the file, the key and the problem: a syntax error
(with its line), an unknown key, an unknown kind, a range whose minimum exceeds its maximum,
a duplicate column, feature-store columns without an entity, … Checks that need the data
(is the label column there?) are :func:`check_columns_present`, run by the data stage
before it reads a single row into a snapshot.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from e2eai.tasks import TaskError
from e2eai.tasks.base import FAMILIES

GENERATED_KEY = "row_key"
"""Column name of a generated row key when ``[entity]`` names none."""
LABEL = "label"
"""Column of the prepared and training frames holding the 0/1 label."""
ROW_ID = "row_id"
"""Row id of timed tasks: ``<key>@<timestamp>`` (a key may have many events)."""
EVENT_TIMESTAMP = "event_timestamp"
"""Timestamp column of the Feast sources and entity frames."""
RESERVED = frozenset({LABEL, ROW_ID, EVENT_TIMESTAMP})

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TASK_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


Names = Annotated[tuple[str, ...], Field(strict=False)]
"""A TOML array of strings (strict models take no list for a tuple unless told)."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class DataSpec(_Strict):
    source: str = Field(
        description="CSV/Parquet path, s3:// URI, or package:<pkg>/<path inside the package>."
    )


class GatesSpec(_Strict):
    """The task's own gate margins (``[gates]``); the settings' ``gates.*`` win when set."""

    baseline_margin: float | None = Field(
        None, description="ROC-AUC lead over the first baseline a candidate needs."
    )
    champion_tolerance: float | None = Field(
        None, ge=0, description="How far a candidate may trail the champion's ROC-AUC."
    )


class LabelSpec(_Strict):
    column: str
    positive: Names | None = None
    negative: Names | None = None
    threshold: float | None = None
    positive_name: str | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> LabelSpec:
        if (self.positive is None) == (self.threshold is None):
            raise ValueError(
                "give exactly one rule: positive = [...] (categories) or threshold = <number>"
            )
        if self.negative is not None and self.positive is None:
            raise ValueError("negative = [...] only goes with positive = [...]")
        if self.positive is not None and not self.positive:
            raise ValueError("positive = [] names no category")
        both = set(self.positive or ()) & set(self.negative or ())
        if both:
            raise ValueError(f"{sorted(both)} are both positive and negative")
        return self

    @property
    def rule(self) -> str:
        """What 1 means, in words."""
        if self.threshold is not None:
            return f"{self.column} >= {self.threshold:g}"
        positive = list(self.positive or ())
        if len(positive) == 1:
            return f"{self.column} == {positive[0]!r}"
        return f"{self.column} in {positive}"


class EntitySpec(_Strict):
    key: str | None = None
    generate: Literal["row_number"] | None = None
    description: str = ""

    @model_validator(mode="after")
    def _key_or_generated(self) -> EntitySpec:
        if self.key is None and self.generate is None:
            raise ValueError('name the key column (key = "...") or generate = "row_number"')
        return self

    @property
    def column(self) -> str:
        return self.key or GENERATED_KEY


class ColumnSpec(_Strict):
    name: str
    kind: Literal["numeric", "categorical"]
    source: Literal["request", "feature_store"] = "request"
    minimum: float | None = None
    maximum: float | None = None
    categories: Names | None = None
    nullable: bool = False
    description: str = ""


class TaskFileSpec(_Strict):
    """A parsed, checked task file."""

    name: str
    description: str = ""
    timestamp: str | None = None
    slices: Names = ()
    families: Names = FAMILIES
    data: DataSpec
    label: LabelSpec
    entity: EntitySpec | None = None
    gates: GatesSpec | None = None
    columns: Annotated[tuple[ColumnSpec, ...], Field(min_length=1, strict=False)]

    @property
    def key_column(self) -> str:
        """The column identifying a row's entity (given, or generated from row numbers)."""
        return self.entity.column if self.entity else GENERATED_KEY

    @property
    def generated_key(self) -> bool:
        return self.entity is None or self.entity.generate is not None

    @property
    def row_id(self) -> str:
        """Untimed tasks: the key; timed tasks: ``row_id`` (``<key>@<timestamp>``)."""
        return ROW_ID if self.timestamp else self.key_column

    @property
    def store_columns(self) -> tuple[ColumnSpec, ...]:
        return tuple(c for c in self.columns if c.source == "feature_store")

    @property
    def request_columns(self) -> tuple[ColumnSpec, ...]:
        return tuple(c for c in self.columns if c.source == "request")

    def data_columns(self) -> list[tuple[str, str]]:
        """(column in the data, task-file key declaring it), for the presence check."""
        out = [(self.label.column, "label.column")]
        if self.entity and self.entity.key and not self.entity.generate:
            out.append((self.entity.key, "entity.key"))
        if self.timestamp:
            out.append((self.timestamp, "timestamp"))
        out += [(c.name, f"columns[{i}].name") for i, c in enumerate(self.columns)]
        return out


def _key(loc: Iterable[int | str]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else part)
    return key or "(top level)"


_EXPECTED = {
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": 'a string (in quotes: "...")',
    "bool_type": "true or false",
    "tuple_type": "an array ([...])",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _problem(error: Any) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"unknown value {value!r} (expected {expected})"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {value!r}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind.endswith(("_type", "_parsing")):
        return f"{message[:1].lower()}{message[1:]}, got {value!r}"
    return message


def _fail(path: Path, key: str, problem: str) -> TaskError:
    return TaskError(f"{path}: {key}: {problem}")


def _check_identifier(path: Path, key: str, name: str) -> None:
    if not _IDENTIFIER.match(name):
        raise _fail(
            path,
            key,
            f"{name!r} is not a plain column name (letters, digits, _; not starting with a "
            "digit): rename the column in the data",
        )


def _check_columns(path: Path, spec: TaskFileSpec) -> None:
    taken = {spec.label.column: "label.column"}
    if spec.timestamp:
        _check_identifier(path, "timestamp", spec.timestamp)
        if spec.timestamp in taken:
            raise _fail(path, "timestamp", f"{spec.timestamp!r} is also the label column")
        taken[spec.timestamp] = "timestamp"
    if spec.entity:
        _check_identifier(path, "entity.key", spec.key_column)
        if spec.key_column in taken:
            raise _fail(path, "entity.key", f"{spec.key_column!r} is also {taken[spec.key_column]}")
        taken[spec.key_column] = "entity.key"
    # The label column may be called ``label`` (its 0/1 version replaces it) and the
    # timestamp ``event_timestamp``; the key may be ``row_id`` unless the task is timed.
    reserved = {
        "timestamp": {LABEL, ROW_ID},
        "entity.key": {LABEL, EVENT_TIMESTAMP, *([ROW_ID] if spec.timestamp else [])},
    }
    for name, key in taken.items():
        if name in reserved.get(key, ()):
            raise _fail(path, key, f"{name!r} is a reserved column name")
    for i, column in enumerate(spec.columns):
        key = f"columns[{i}]"
        _check_identifier(path, f"{key}.name", column.name)
        if column.name in RESERVED or (column.name == GENERATED_KEY and spec.entity is None):
            raise _fail(path, f"{key}.name", f"{column.name!r} is a reserved column name")
        if column.name in taken:
            what = taken[column.name]
            problem = (
                f"duplicate column {column.name!r} (also {what})"
                if what.startswith("columns[")
                else f"{column.name!r} is {what}: it cannot also be a model input"
            )
            raise _fail(path, f"{key}.name", problem)
        taken[column.name] = key
        _check_column(path, key, column)


def _check_column(path: Path, key: str, column: ColumnSpec) -> None:
    if column.kind == "numeric":
        if column.categories is not None:
            raise _fail(path, f"{key}.categories", "a numeric column has no categories")
        lo, hi = column.minimum, column.maximum
        if lo is not None and hi is not None and lo > hi:
            raise _fail(path, f"{key}.minimum", f"minimum {lo:g} is greater than maximum {hi:g}")
        return
    for bound in ("minimum", "maximum"):
        if getattr(column, bound) is not None:
            raise _fail(path, f"{key}.{bound}", f"a categorical column has no {bound}")
    if column.categories is not None:
        if not column.categories:
            raise _fail(path, f"{key}.categories", "categories = [] allows no value")
        seen: set[str] = set()
        for value in column.categories:
            if value in seen:
                raise _fail(path, f"{key}.categories", f"category {value!r} is listed twice")
            seen.add(value)


def _check_task(path: Path, spec: TaskFileSpec) -> None:
    if not _TASK_NAME.match(spec.name):
        raise _fail(
            path, "name", f"{spec.name!r}: use lowercase letters, digits, _ or -, a letter first"
        )
    _check_columns(path, spec)
    if spec.store_columns and spec.entity is None:
        names = ", ".join(c.name for c in spec.store_columns)
        raise _fail(
            path,
            "entity",
            f"columns from the feature store ({names}) need an entity: add [entity] with "
            'key = "<id column>" or generate = "row_number"',
        )
    kinds = {c.name: c.kind for c in spec.columns}
    for i, name in enumerate(spec.slices):
        if name not in kinds:
            raise _fail(path, f"slices[{i}]", f"{name!r} is not a declared column")
        if kinds[name] != "categorical":
            raise _fail(path, f"slices[{i}]", f"{name!r} is numeric; slices are categorical")
    for i, family in enumerate(spec.families):
        if family not in FAMILIES:
            raise _fail(
                path, f"families[{i}]", f"unknown family {family!r} (known: {', '.join(FAMILIES)})"
            )
    if not spec.families:
        raise _fail(path, "families", "families = [] leaves nothing to train")


def read_task_file(path: Path) -> TaskFileSpec:
    """Parse and check a task file; any problem is a TaskError naming file, key, problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskError(f"{path}: task file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError(f"{path}: cannot read the task file: {exc}") from exc
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaskError(f"{path}: TOML syntax error: {exc}") from exc
    try:
        spec = TaskFileSpec.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _fail(path, _key(first["loc"]), _problem(first)) from None
    _check_task(path, spec)
    return spec


def check_columns_present(path: Path, spec: TaskFileSpec, found: Iterable[str]) -> None:
    """Every column the task file declares is in the data (else a TaskError naming the key)."""
    found = list(found)
    present = set(found)
    for column, key in spec.data_columns():
        if column not in present:
            shown = ", ".join(found[:30]) + (" …" if len(found) > 30 else "")
            raise _fail(
                path,
                key,
                f"column {column!r} is not in the data {spec.data.source} (its columns: {shown})",
            )
