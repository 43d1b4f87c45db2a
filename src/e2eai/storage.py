"""The artifact store: content-verified blobs in a local directory or an S3 bucket.

Keys are POSIX-style relative paths (``snapshots/ab12…/flights.parquet``). The same code
serves a laptop (local directory) and a cluster (S3/MinIO through boto3); which one is a
setting (``artifacts.uri``), never a code change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlparse

from e2eai.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactStoreError,
    InvalidArtifactKeyError,
)

if TYPE_CHECKING:
    from e2eai.config import ArtifactSettings

_CHUNK = 1 << 20
# Suffix of files being written; they are renamed into place when complete, never listed.
_PARTIAL_SUFFIX = ".partial"


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative POSIX path, else raise InvalidArtifactKeyError.

    Both backends apply the same rule, so a key that works locally works on S3 and vice versa:
    no absolute paths, no ``.``/``..``/empty segments, no backslashes, and not a name this
    module uses for half-written files.
    """
    if not isinstance(key, str) or not key:
        raise InvalidArtifactKeyError(f"artifact key must be a non-empty string, got {key!r}")
    if "\\" in key or "\x00" in key:
        raise InvalidArtifactKeyError(
            f"artifact key {key!r} contains a backslash or NUL; use '/'-separated names"
        )
    if key.startswith("/"):
        raise InvalidArtifactKeyError(f"artifact key {key!r} is absolute; keys are relative")
    segments = key.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise InvalidArtifactKeyError(
            f"artifact key {key!r} has an empty, '.' or '..' segment (it could escape the store)"
        )
    if segments[-1].endswith(_PARTIAL_SUFFIX):
        raise InvalidArtifactKeyError(
            f"artifact key {key!r} ends with {_PARTIAL_SUFFIX!r}, reserved for half-written files"
        )
    return key


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class ArtifactStore(Protocol):
    """What every artifact backend offers."""

    def uri(self, key: str) -> str: ...
    def put_file(self, key: str, path: Path) -> str: ...
    def put_bytes(self, key: str, data: bytes) -> str: ...
    def get_bytes(self, key: str) -> bytes: ...
    def download(self, key: str, dest: Path) -> Path: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str = "") -> list[str]: ...


def _temp_path_beside(target: Path) -> Path:
    """A new, unique, hidden file name next to ``target`` (same filesystem ⇒ atomic rename)."""
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=_PARTIAL_SUFFIX, dir=target.parent
    )
    os.close(fd)
    return Path(name)


def fetch_verified(
    store: ArtifactStore, key: str, dest: Path, expected_sha256: str, *, label: str | None = None
) -> Path:
    """Download ``key`` to ``dest`` and refuse it unless its sha256 matches the record.

    The bytes land in a temporary file beside ``dest`` and are renamed to ``dest`` only after
    the hash matches, so a modified artifact never appears at ``dest`` (and a good file already
    there is not clobbered by a bad one). ``label`` names the artifact in the error message.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path_beside(dest)
    try:
        store.download(key, tmp)
        actual = sha256_file(tmp)
        if actual != expected_sha256:
            raise ArtifactIntegrityError(
                f"{label or 'artifact'} at {store.uri(key)}: sha256 is {actual}, but "
                f"{expected_sha256} was recorded; the stored bytes were modified or corrupted, "
                "refusing to load them"
            )
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


@dataclass(frozen=True)
class LocalArtifactStore:
    """Artifacts as files under one directory.

    The root is made absolute when the store is created, so a later change of working
    directory does not silently move the store.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    def _path(self, key: str) -> Path:
        validate_key(key)
        path = (self.root / key).resolve()
        # resolve() follows symlinks: a link inside the root that points outside is refused too.
        if path == self.root or not path.is_relative_to(self.root):
            raise InvalidArtifactKeyError(
                f"artifact key {key!r} escapes the store root {self.root}"
            )
        return path

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def put_file(self, key: str, path: Path) -> str:
        target = self._path(key)
        if not Path(path).is_file():
            raise ArtifactNotFoundError(f"cannot store {key!r}: {path} is not a file")
        target.parent.mkdir(parents=True, exist_ok=True)
        # A unique temporary name per writer: two processes writing the same key never
        # interleave bytes in one file; the rename is atomic, readers never see half a file.
        tmp = _temp_path_beside(target)
        try:
            shutil.copyfile(path, tmp)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        return self.uri(key)

    def put_bytes(self, key: str, data: bytes) -> str:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_path_beside(target)
        try:
            tmp.write_bytes(data)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise ArtifactNotFoundError(f"no artifact at {path}")
        return path.read_bytes()

    def download(self, key: str, dest: Path) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise ArtifactNotFoundError(f"no artifact at {path}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.resolve() != path:
            shutil.copyfile(path, dest)
        return dest

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.exists():
            return []
        keys = (
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and not p.name.endswith(_PARTIAL_SUFFIX)
        )
        return sorted(k for k in keys if k.startswith(prefix))


class S3ArtifactStore:
    """Artifacts as objects under ``s3://bucket/prefix`` (AWS, MinIO, moto)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )

    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _failure(self, key: str, action: str, exc: Exception) -> Exception:
        """NotFound for a missing object; a store error naming the object for anything else."""
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            return ArtifactNotFoundError(f"no artifact at {self.uri(key)}")
        return ArtifactStoreError(f"cannot {action} {self.uri(key)}: {exc}")

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def put_file(self, key: str, path: Path) -> str:
        from boto3.exceptions import S3UploadFailedError

        if not Path(path).is_file():
            raise ArtifactNotFoundError(f"cannot store {key!r}: {path} is not a file")
        try:
            self.client.upload_file(str(path), self.bucket, self._key(key))
        except S3UploadFailedError as exc:
            raise ArtifactStoreError(f"cannot upload {path} to {self.uri(key)}: {exc}") from exc
        return self.uri(key)

    def put_bytes(self, key: str, data: bytes) -> str:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except ClientError as exc:
            raise self._failure(key, "write", exc) from exc
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            raise self._failure(key, "read", exc) from exc
        return response["Body"].read()

    def download(self, key: str, dest: Path) -> Path:
        from botocore.exceptions import ClientError

        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(self.bucket, self._key(key), str(dest))
        except ClientError as exc:
            raise self._failure(key, "download", exc) from exc
        return dest

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            failure = self._failure(key, "look up", exc)
            if not isinstance(failure, ArtifactNotFoundError):
                raise failure from exc
            # HEAD answers a bare 404 for a missing bucket too; a misconfigured bucket must not
            # masquerade as a missing artifact.
            self._check_bucket()
            return False
        return True

    def _check_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            raise ArtifactStoreError(f"cannot use bucket s3://{self.bucket}: {exc}") from exc

    def list(self, prefix: str = "") -> list[str]:
        from botocore.exceptions import ClientError

        # The listing prefix is a plain string prefix (it may end mid-name or with '/'), so
        # it is not validated as a key; only the store's own prefix is prepended.
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        except ClientError as exc:
            raise ArtifactStoreError(f"cannot list s3://{self.bucket}/{full}: {exc}") from exc
        return sorted(keys)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` → ``("bucket", "a/b")``."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise InvalidArtifactKeyError(f"not an s3://bucket[/prefix] URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def open_store(settings: ArtifactSettings) -> ArtifactStore:
    """The artifact store the settings name."""
    if settings.uri.startswith("s3://"):
        bucket, prefix = split_s3_uri(settings.uri)
        return S3ArtifactStore(bucket, prefix, settings.s3_endpoint_url, settings.s3_region)
    return LocalArtifactStore(Path(settings.uri))
