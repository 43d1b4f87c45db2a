"""Reading raw tables: CSV or Parquet from a local path or an s3:// URI.

Every failure to read names the file and the problem (``DataSourceError``); nothing here
guesses or silently repairs a table. Row-level problems are the validator's business.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from e2eai.config import ArtifactSettings
from e2eai.errors import DataSourceError


def _read_bytes(uri: str, artifacts: ArtifactSettings) -> bytes:
    if uri.startswith("s3://"):
        from botocore.exceptions import BotoCoreError, ClientError

        from e2eai.storage import S3ArtifactStore, split_s3_uri

        bucket, key = split_s3_uri(uri)
        store = S3ArtifactStore(bucket, "", artifacts.s3_endpoint_url, artifacts.s3_region)
        try:
            return store.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise DataSourceError(uri, f"cannot read object: {exc}") from exc
    path = Path(uri)
    if not path.is_file():
        raise DataSourceError(uri, "no such file")
    return path.read_bytes()


def read_table(uri: str, columns: tuple[str, ...], artifacts: ArtifactSettings) -> pd.DataFrame:
    """Read one CSV (optionally .zip/.gz) or Parquet table and check it has ``columns``.

    CSV cells are read as text so that a malformed value fails its own row in validation
    instead of turning a whole column into ``object``.
    """
    data = _read_bytes(uri, artifacts)
    if not data.strip():
        raise DataSourceError(uri, "file is empty")
    name = uri.lower()
    try:
        if name.endswith(".parquet") or data[:4] == b"PAR1":
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            compression = (
                "zip" if name.endswith(".zip") else "gzip" if name.endswith(".gz") else None
            )
            frame = pd.read_csv(
                io.BytesIO(data), dtype=str, compression=compression, encoding="utf-8",
                keep_default_na=True, na_values=["NA"],
            )  # fmt: skip
    except UnicodeDecodeError as exc:
        raise DataSourceError(uri, f"not UTF-8 text (byte {exc.start}): wrong encoding?") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataSourceError(uri, "file has no header and no rows") from exc
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        raise DataSourceError(uri, f"not a readable CSV or Parquet table: {exc}") from exc
    if frame.empty and len(frame.columns) == 0:
        raise DataSourceError(uri, "file has no columns")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataSourceError(
            uri,
            f"missing required columns {missing}; found {list(frame.columns)[:25]}",
        )
    if frame.empty:
        raise DataSourceError(uri, "file has a header but no rows")
    return frame[list(columns)]
