"""Content fingerprints of step inputs: raw sources, files, and the code that processes them.

A step's cache key is made of these, so a changed byte in the data, a changed setting or a
changed line of the step's code all make the step run again.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from e2eai.config import Settings
from e2eai.errors import DataSourceError
from e2eai.storage import sha256_file

if TYPE_CHECKING:
    from e2eai.tasks import Task

# The reference tables always come from the packaged data (see e2eai.data.sources).


def files_fingerprint(paths: Iterable[Path], root: Path | None = None) -> str:
    """sha256 over (name, content sha256) of ``paths``, in name order.

    Names are taken relative to ``root`` when given, so the same files at another place
    fingerprint the same.
    """
    digest = hashlib.sha256()
    named = sorted((str(p.relative_to(root)) if root else p.name, p) for p in paths)
    for name, path in named:
        digest.update(f"{name}:{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def directory_fingerprint(directory: Path, pattern: str = "*") -> str:
    """Fingerprint of the files matching ``pattern`` directly in ``directory``."""
    return files_fingerprint((p for p in directory.glob(pattern) if p.is_file()), directory)


def code_fingerprint(*modules: str) -> str:
    """sha256 of the source files of ``modules`` (packages: every .py file below them)."""
    files: list[Path] = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(name)
        if spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                files.extend(Path(location).rglob("*.py"))
        else:
            files.append(Path(spec.origin))
    digest = hashlib.sha256()
    for path in sorted(set(files)):
        digest.update(f"{path.name}:{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def _s3_fingerprint(uri: str, settings: Settings) -> str:
    """An S3 object's ETag and size: content-derived, without downloading the object."""
    from botocore.exceptions import BotoCoreError, ClientError

    from e2eai.storage import S3ArtifactStore, split_s3_uri

    bucket, key = split_s3_uri(uri)
    store = S3ArtifactStore(
        bucket, "", settings.artifacts.s3_endpoint_url, settings.artifacts.s3_region
    )
    try:
        head = store.client.head_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as exc:
        raise DataSourceError(uri, f"cannot read object metadata: {exc}") from exc
    return f"etag:{head['ETag']}:size:{head['ContentLength']}"


def source_fingerprint(settings: Settings, task: Task | None = None) -> dict[str, str]:
    """What the data step reads, by content: every source the task names (path or s3://)."""
    from e2eai.tasks import load_task

    prints = {}
    for name, uri in (task or load_task(settings)).data_sources(settings).items():
        if uri.startswith("s3://"):
            prints[name] = _s3_fingerprint(uri, settings)
        else:
            path = Path(uri)
            if not path.is_file():
                raise DataSourceError(uri, "no such file")
            prints[name] = sha256_file(path)
    return prints
