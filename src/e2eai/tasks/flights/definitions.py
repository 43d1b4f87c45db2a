"""What the Feast repo declares, derived from the schema (so the two cannot disagree)."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from e2eai.config import Settings, get_settings
from e2eai.tasks.flights.schema import view_features, view_state

if TYPE_CHECKING:
    from feast import Field

SOURCES_DIR = "data"

_APPLYING: contextvars.ContextVar[Settings | None] = contextvars.ContextVar(
    "flight_definitions_settings", default=None
)


@contextlib.contextmanager
def definitions_for(settings: Settings) -> Iterator[None]:
    """The repo files describe ``settings`` (windows, source bucket) while this is active.

    Feast imports the repo's files without arguments: outside this block (``feast apply`` on
    the command line) they read the process's settings.
    """
    token = _APPLYING.set(settings)
    try:
        yield
    finally:
        _APPLYING.reset(token)


def _settings() -> Settings:
    return _APPLYING.get() or get_settings()


def source_file(view: str) -> str:
    """Parquet file of a feature view's source, relative to the feature repo."""
    return f"{SOURCES_DIR}/{view}.parquet"


def source_path(view: str, repo_dir: Path) -> str:
    """Where Feast reads a feature view's source: the repo's data folder, or the bucket
    named by ``features.source_uri`` on a cluster.

    Absolute, because Feast's DuckDB offline store resolves relative paths against the
    process's working directory rather than the repo.
    """
    uri = _settings().features.source_uri
    if uri:
        return f"{uri.rstrip('/')}/{view}.parquet"
    return str((repo_dir / source_file(view)).resolve())


def feast_schema(view: str) -> list[Field]:
    """Feast fields of a feature view: Float32 for numeric features, String for categorical,
    then its stored fields that are not model inputs (``schema.view_state``) in their dtype."""
    from feast import Field
    from feast.types import Float32, Int64, String

    windows = _settings().features.windows_hours
    inputs = [
        Field(
            name=f.name, dtype=Float32 if f.kind == "numeric" else String, description=f.description
        )
        for f in view_features(view, windows)
    ]
    stored = [
        Field(
            name=s.name, dtype=Int64 if s.dtype == "int64" else Float32, description=s.description
        )
        for s in view_state(view)
    ]
    return inputs + stored
