"""Propose a task file from the data: kinds, observed ranges, categories, key, timestamp.

``e2eai tasks infer DATA --label COL`` prints what :func:`infer_task_file` writes: a complete
TOML task file (``docs/tasks.md``) with comments where a person should decide (the ranges
are the observed ones; the positive class is a guess; every column is a request column).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from e2eai.config import ArtifactSettings
from e2eai.tasks import TaskError
from e2eai.tasks.table_source import PACKAGE_PREFIX, read_source_table
from e2eai.tasks.task_file import RESERVED

MAX_CATEGORIES = 50
"""Text columns with more distinct values get no category list (likely free text)."""
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ID_NAMES = frozenset({"id", "rownames", "index", "row", "row_id", "key"})


@dataclass(frozen=True)
class InferredColumn:
    name: str
    kind: str  # numeric | categorical | timestamp | key
    nullable: bool
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] | None = None
    distinct: int = 0
    note: str = ""


def _toml(value: object) -> str:
    """A TOML literal: JSON's strings, numbers and arrays are TOML's too."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return json.dumps(value, ensure_ascii=False)


def _numbers(values: pd.Series) -> pd.Series | None:
    """The column as numbers, if every present value is one."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return None
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.astype(float)
    present = values.dropna()
    parsed = pd.to_numeric(present, errors="coerce")
    if present.empty or parsed.isna().any():
        return None
    return pd.to_numeric(values, errors="coerce")


def _timestamps(values: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return True
    present = values.dropna()
    if present.empty or not pd.api.types.is_object_dtype(present.dtype):
        return False
    text = present.astype(str)
    if not text.str.contains(r"^\d{4}-\d{2}-\d{2}", regex=True).all():
        return False
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    return bool(parsed.notna().all())


def _looks_like_id(name: str) -> bool:
    """``id``, ``customer_id``, ``CustomerID``, ``rownames``… (not ``paid``)."""
    return name.lower() in _ID_NAMES or name.lower().endswith("_id") or name.endswith(("Id", "ID"))


def infer_column(name: str, values: pd.Series) -> InferredColumn:
    """What one column looks like: its kind, nulls, range or categories."""
    nullable = bool(values.isna().any())
    present = values.dropna()
    distinct = int(present.nunique())
    unique = distinct == len(values) and not nullable
    if _timestamps(values):
        return InferredColumn(name, "timestamp", nullable, distinct=distinct)
    numbers = _numbers(values)
    if numbers is not None:
        finite = numbers[numbers.map(lambda v: math.isfinite(v) if pd.notna(v) else False)]
        integral = bool((finite == finite.round()).all())
        if unique and integral and _looks_like_id(name):
            return InferredColumn(name, "key", False, distinct=distinct)
        lo = float(finite.min()) if len(finite) else None
        hi = float(finite.max()) if len(finite) else None
        return InferredColumn(name, "numeric", nullable, lo, hi, distinct=distinct)
    text = present.astype(str)
    if unique and _looks_like_id(name):
        return InferredColumn(name, "key", False, distinct=distinct)
    if distinct <= MAX_CATEGORIES:
        ordered = tuple(str(v) for v in text.value_counts().index)
        return InferredColumn(name, "categorical", nullable, categories=ordered, distinct=distinct)
    return InferredColumn(
        name,
        "categorical",
        nullable,
        distinct=distinct,
        note=f"{distinct} distinct values: no category list (free text? an id?)",
    )


def _task_name(uri: str) -> str:
    stem = Path(uri.removeprefix(PACKAGE_PREFIX).split("?", 1)[0]).name.split(".", 1)[0]
    name = re.sub(r"[^a-z0-9_-]+", "_", stem.lower()).strip("_-")
    return name if re.match(r"^[a-z]", name) else f"task_{name}".rstrip("_")


def _label_rule(label: str, values: pd.Series) -> list[str]:
    present = values.dropna()
    if present.empty:
        raise TaskError(f"--label {label!r}: the column has no values")
    numbers = _numbers(values)
    if numbers is not None:
        seen = set(numbers.dropna().unique())
        if seen <= {0.0, 1.0}:
            return ["threshold = 1  # 1 is positive, 0 negative"]
        median = float(numbers.median())
        return [f"threshold = {_toml(median)}  # {label} >= this is positive; the median: edit it"]
    counts = present.astype(str).value_counts()
    if len(counts) > MAX_CATEGORIES:
        raise TaskError(
            f"--label {label!r}: {len(counts)} distinct values; a label has a few categories"
        )
    positive, negative = [counts.index[-1]], list(counts.index[:-1])
    return [
        f"positive = {_toml(positive)}  # the rarest value: make it the class you predict",
        f"negative = {_toml(negative)}  # other values are quarantined (drop to accept any)",
    ]


def _column_lines(column: InferredColumn) -> list[str]:
    lines = ["", "[[columns]]", f"name = {_toml(column.name)}", f'kind = "{column.kind}"']
    if column.minimum is not None:
        lines.append(f"minimum = {_toml(column.minimum)}  # observed: widen to what is valid")
    if column.maximum is not None:
        lines.append(f"maximum = {_toml(column.maximum)}")
    if column.categories is not None:
        lines.append(f"categories = {_toml(list(column.categories))}")
    if column.nullable:
        lines.append("nullable = true")
    if column.note:
        lines.append(f"# {column.note}")
    lines.append('description = ""')
    return lines


def infer_task_file(uri: str, label: str, artifacts: ArtifactSettings) -> str:
    """A proposed task file (TOML text) for the table at ``uri`` with label column ``label``."""
    frame = read_source_table(uri, None, artifacts)
    found = [str(c) for c in frame.columns]
    if label not in found:
        raise TaskError(f"{uri}: --label {label!r} is not a column (columns: {', '.join(found)})")
    source = uri
    if not uri.startswith(("s3://", PACKAGE_PREFIX)):
        source = str(Path(uri).resolve())

    skipped: list[str] = []
    timestamp: str | None = None
    key: str | None = None
    columns: list[InferredColumn] = []
    for name in found:
        if name == label:
            continue
        if not _IDENTIFIER.match(name) or name in RESERVED:
            skipped.append(f"{name!r}: not a plain column name (rename it in the data)")
            continue
        column = infer_column(name, frame[name])
        if column.kind == "timestamp":
            if timestamp is None:
                timestamp = name
            else:
                skipped.append(f"{name!r}: a second timestamp")
        elif column.kind == "key":
            if key is None:
                key = name
            else:
                skipped.append(f"{name!r}: unique values, an id")
        elif column.distinct <= 1:
            skipped.append(f"{name!r}: a single value, nothing to learn from")
        else:
            columns.append(column)
    if not columns:
        raise TaskError(f"{uri}: no column besides the label can be a model input")

    lines = [
        f"# Proposed by `e2eai tasks infer` from {uri} ({len(frame):,} rows).",
        "# Review every value, then run `e2eai --task-file <this file> data prepare`.",
        "# Format: docs/tasks.md.",
        "",
        f"name = {_toml(_task_name(uri))}",
        f"description = {_toml(f'Predict {label} from {Path(uri).name}.')}",
    ]
    if timestamp:
        lines.append(f"timestamp = {_toml(timestamp)}  # event time: time-based split")
    else:
        lines.append("# No timestamp column found: the split is stratified on the label.")
    lines += ["", "[data]", f"source = {_toml(source)}", "", "[label]", f"column = {_toml(label)}"]
    lines += _label_rule(label, frame[label])
    lines.append("")
    if key:
        lines += [
            "[entity]",
            f"key = {_toml(key)}",
            'description = ""',
            '# Move columns to the feature store with source = "feature_store".',
        ]
    else:
        lines += [
            "# No id column found. To serve some columns from the feature store, add:",
            "# [entity]",
            '# generate = "row_number"',
        ]
    for column in columns:
        lines += _column_lines(column)
    if skipped:
        lines += ["", "# Columns left out:"] + [f"#   {s}" for s in skipped]
    return "\n".join(lines) + "\n"
