"""S3ArtifactStore against moto's S3 server on the loopback (boto3 over real HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2eai.config import ArtifactSettings
from e2eai.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactStoreError,
    InvalidArtifactKeyError,
)
from e2eai.storage import S3ArtifactStore, fetch_verified, open_store, sha256_bytes


@pytest.fixture
def store(s3_artifact_settings: ArtifactSettings) -> S3ArtifactStore:
    opened = open_store(s3_artifact_settings)
    assert isinstance(opened, S3ArtifactStore)
    return opened


def test_put_list_exists_get_under_the_prefix(
    store: S3ArtifactStore, s3_client, s3_bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "model.onnx"
    source.write_bytes(b"onnx-bytes")
    uri = store.put_file("models/m/v1/model.onnx", source)
    store.put_bytes("models/m/v1/metrics.json", b"{}")
    store.put_bytes("snapshots/s/flights.parquet", b"pq")

    assert uri == f"s3://{s3_bucket}/artifacts/models/m/v1/model.onnx"
    assert store.list("models/") == ["models/m/v1/metrics.json", "models/m/v1/model.onnx"]
    assert store.list() == [
        "models/m/v1/metrics.json",
        "models/m/v1/model.onnx",
        "snapshots/s/flights.parquet",
    ]
    assert store.exists("models/m/v1/model.onnx")
    assert not store.exists("models/m/v2/model.onnx")
    assert store.get_bytes("models/m/v1/model.onnx") == b"onnx-bytes"
    assert store.download("models/m/v1/model.onnx", tmp_path / "d" / "x").read_bytes() == (
        b"onnx-bytes"
    )
    # The objects really are in the bucket, under the configured prefix.
    raw = s3_client.get_object(Bucket=s3_bucket, Key="artifacts/models/m/v1/model.onnx")
    assert raw["Body"].read() == b"onnx-bytes"


def test_list_prefix_is_a_plain_string_prefix_like_the_local_store(
    store: S3ArtifactStore, tmp_path: Path
) -> None:
    from e2eai.storage import LocalArtifactStore

    local = LocalArtifactStore(tmp_path / "local")
    for backend in (store, local):
        for key in ("models/a/v1/m.bin", "models/ab/v1/m.bin", "models/b/v1/m.bin"):
            backend.put_bytes(key, b"x")
    for prefix in ("models/a", "models/a/", "models/", "nothing/"):
        assert store.list(prefix) == local.list(prefix), prefix
    assert store.list("models/a") == ["models/a/v1/m.bin", "models/ab/v1/m.bin"]


def test_missing_object_is_not_found(store: S3ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFoundError, match=r"models/none\.bin"):
        store.get_bytes("models/none.bin")
    with pytest.raises(ArtifactNotFoundError, match=r"models/none\.bin"):
        store.download("models/none.bin", tmp_path / "none.bin")


def test_missing_bucket_is_a_store_error_not_a_missing_artifact(s3_server: str) -> None:
    store = S3ArtifactStore("no-such-bucket-here", endpoint_url=s3_server)
    with pytest.raises(ArtifactStoreError) as info:
        store.exists("a.bin")
    assert not isinstance(info.value, ArtifactNotFoundError)
    assert "no-such-bucket-here" in str(info.value)
    with pytest.raises(ArtifactStoreError, match="no-such-bucket-here"):
        store.list()


def test_keys_are_validated_like_the_local_store(store: S3ArtifactStore) -> None:
    with pytest.raises(InvalidArtifactKeyError):
        store.put_bytes("../escape.bin", b"x")
    with pytest.raises(InvalidArtifactKeyError):
        store.exists("/abs.bin")


def test_fetch_verified_refuses_an_object_changed_in_the_bucket(
    store: S3ArtifactStore, s3_client, s3_bucket: str, tmp_path: Path
) -> None:
    store.put_bytes("m.bin", b"weights")
    recorded = sha256_bytes(b"weights")
    assert fetch_verified(store, "m.bin", tmp_path / "ok" / "m.bin", recorded).read_bytes() == (
        b"weights"
    )
    s3_client.put_object(Bucket=s3_bucket, Key="artifacts/m.bin", Body=b"weightz")
    with pytest.raises(ArtifactIntegrityError, match=recorded):
        fetch_verified(store, "m.bin", tmp_path / "bad" / "m.bin", recorded)
    assert list((tmp_path / "bad").iterdir()) == []
