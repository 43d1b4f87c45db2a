"""Where a task file's table comes from: a path, an s3:// URI, or a file inside a package.

``package:<pkg>/<path inside the package>`` finds the installed package's folder with
importlib (without importing it) so that a shipped task reads data that came with a PyPI
package, and nothing downloads. CSV and Parquet go through
:func:`e2eai.data.sources.read_table`; pickled DataFrames (as some data packages ship them)
are read only from inside an installed package, which is as trusted as the package's code.
An s3:// object is fetched once into a temporary file, so that its columns can be listed
before it is read.
"""

from __future__ import annotations

import contextlib
import importlib.util
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pandas as pd

from e2eai.config import ArtifactSettings
from e2eai.data.sources import read_table
from e2eai.errors import DataSourceError

PACKAGE_PREFIX = "package:"
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pkl.compress", ".pkl.xz", ".pkl.gz", ".pkl.bz2")
_MAGIC_COMPRESSION = ((b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b", "gzip"), (b"BZh", "bz2"))


class MissingColumnsError(DataSourceError):
    """The table lacks columns the task declares (``missing``; ``found``: what it has)."""

    def __init__(self, source: str, missing: list[str], found: list[str]) -> None:
        self.missing = missing
        self.found = found
        super().__init__(source, f"missing columns {missing}; found {found[:25]}")


def package_file(source: str) -> Path:
    """The file a ``package:<pkg>/<relative path>`` source names, in the installed package."""
    package, _, relative = source.removeprefix(PACKAGE_PREFIX).partition("/")
    if not package or not relative:
        raise DataSourceError(source, "expected package:<package>/<path inside the package>")
    parts = PurePosixPath(relative).parts
    if PurePosixPath(relative).is_absolute() or ".." in parts:
        raise DataSourceError(source, "the path must stay inside the package (no '..')")
    # find_spec of a top-level name locates the package without running its __init__.
    spec = None if "." in package else importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataSourceError(
            source, f"package {package!r} is not installed (pip install it, or fix the name)"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder).joinpath(*parts)
        if path.is_file():
            return path
    raise DataSourceError(source, f"no file {relative!r} inside package {package!r}")


@contextlib.contextmanager
def local_copy(source: str, artifacts: ArtifactSettings) -> Iterator[Path]:
    """A local file holding ``source``'s bytes (the file itself unless it is on S3)."""
    if source.startswith(PACKAGE_PREFIX):
        yield package_file(source)
        return
    if not source.startswith("s3://"):
        path = Path(source)
        if not path.is_file():
            raise DataSourceError(source, "no such file")
        yield path
        return
    from botocore.exceptions import BotoCoreError, ClientError

    from e2eai.storage import S3ArtifactStore, split_s3_uri

    bucket, key = split_s3_uri(source)
    store = S3ArtifactStore(bucket, "", artifacts.s3_endpoint_url, artifacts.s3_region)
    try:
        data = store.client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise DataSourceError(source, f"cannot read object: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="e2eai-source-") as folder:
        path = Path(folder) / PurePosixPath(key).name
        path.write_bytes(data)
        yield path


def _is_pickle(path: Path) -> bool:
    return path.name.lower().endswith(_PICKLE_SUFFIXES)


def _read_pickle(source: str, path: Path) -> pd.DataFrame:
    with path.open("rb") as handle:
        head = handle.read(6)
    compression = next((name for magic, name in _MAGIC_COMPRESSION if head.startswith(magic)), None)
    try:
        frame = pd.read_pickle(path, compression=compression)
    except Exception as exc:  # unpickling raises whatever the pickled classes raise
        raise DataSourceError(source, f"not a readable pickled table: {exc}") from exc
    if not isinstance(frame, pd.DataFrame):
        raise DataSourceError(source, f"holds a {type(frame).__name__}, not a table")
    if frame.empty:
        raise DataSourceError(source, "the table has no rows")
    return frame.reset_index(drop=True)


def _header(source: str, path: Path) -> list[str]:
    """Column names of a CSV or Parquet file, without reading its rows."""
    name = path.name.lower()
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
        if name.endswith(".parquet") or magic == b"PAR1":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        compression = "zip" if name.endswith(".zip") else "gzip" if name.endswith(".gz") else None
        header = pd.read_csv(path, nrows=0, compression=compression, encoding="utf-8")
        return [str(c) for c in header.columns]
    except pd.errors.EmptyDataError as exc:
        raise DataSourceError(source, "file is empty") from exc
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError, OSError) as exc:
        raise DataSourceError(source, f"not a readable CSV or Parquet table: {exc}") from exc


def _read(
    source: str, path: Path, columns: tuple[str, ...] | None, artifacts: ArtifactSettings
) -> pd.DataFrame:
    if source.startswith(PACKAGE_PREFIX) and _is_pickle(path):
        frame = _read_pickle(source, path)
        found = [str(c) for c in frame.columns]
    elif _is_pickle(path):
        raise DataSourceError(
            source, "pickles are read only from inside an installed package (package:…)"
        )
    else:
        frame, found = None, _header(source, path)
    wanted = tuple(found) if columns is None else columns
    missing = [c for c in wanted if c not in found]
    if missing:
        raise MissingColumnsError(source, missing, found)
    if frame is not None:
        return frame[list(wanted)]
    try:
        return read_table(str(path), wanted, artifacts).reset_index(drop=True)
    except DataSourceError as exc:  # name the source, not the temporary copy
        raise DataSourceError(source, exc.problem) from exc


def read_source_table(
    source: str, columns: tuple[str, ...] | None, artifacts: ArtifactSettings
) -> pd.DataFrame:
    """The table ``source`` names with exactly ``columns`` (None: every column).

    CSV cells are text (see ``read_table``); Parquet and pickled tables keep their types.
    Raises :class:`MissingColumnsError` when some columns are absent, another
    :class:`DataSourceError` when the table cannot be read.
    """
    with local_copy(source, artifacts) as path:
        return _read(source, path, columns, artifacts)
