"""ModelRegistry with its artifacts in S3 (moto's server on the loopback, boto3 over HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2eai.config import ArtifactSettings, RegistrySettings, Settings
from e2eai.errors import ArtifactIntegrityError, ArtifactStoreError
from e2eai.registry import ModelRegistry
from e2eai.storage import S3ArtifactStore, sha256_bytes


@pytest.fixture
def registry(tmp_path: Path, s3_artifact_settings: ArtifactSettings):
    settings = Settings(
        registry=RegistrySettings(database_url=f"sqlite:///{tmp_path / 'registry.db'}"),
        artifacts=s3_artifact_settings,
    )
    with ModelRegistry.from_settings(settings) as opened:
        assert isinstance(opened.store, S3ArtifactStore)
        yield opened


def _model(tmp_path: Path, content: bytes, name: str = "model.onnx") -> Path:
    path = tmp_path / "src" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    return path


def _register(registry: ModelRegistry, path: Path):
    return registry.register(
        name="flight-delay",
        family="torch_mlp",
        artifacts={"model.onnx": path},
        metrics={"roc_auc": 0.7},
        params={},
        lineage={},
    )


def test_artifacts_go_to_the_bucket_and_come_back_verified(
    registry: ModelRegistry, s3_client, s3_bucket: str, tmp_path: Path
) -> None:
    mv = _register(registry, _model(tmp_path, b"onnx graph"))
    key = f"artifacts/models/flight-delay/v{mv.version}/model.onnx"
    assert s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read() == b"onnx graph"
    fetched = registry.fetch_artifact(mv.version, "model.onnx", tmp_path / "serve")
    assert fetched.read_bytes() == b"onnx graph"
    assert registry.verify(mv.version).ok


def test_object_replaced_in_the_bucket_is_refused(
    registry: ModelRegistry, s3_client, s3_bucket: str, tmp_path: Path
) -> None:
    mv = _register(registry, _model(tmp_path, b"onnx graph"))
    key = f"artifacts/{mv.artifacts['model.onnx'].key}"
    s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"onnx graph, backdoored")

    with pytest.raises(ArtifactIntegrityError) as info:
        registry.fetch_artifact(mv.version, "model.onnx", tmp_path / "serve")
    message = str(info.value)
    assert "'model.onnx'" in message
    assert mv.artifacts["model.onnx"].sha256 in message
    assert sha256_bytes(b"onnx graph, backdoored") in message
    assert f"s3://{s3_bucket}/{key}" in message
    assert not (tmp_path / "serve" / "model.onnx").exists()

    (check,) = registry.verify(mv.version).artifacts
    assert check.status == "modified"
    assert check.actual_size == len(b"onnx graph, backdoored")


def test_deleted_object_is_reported_missing(
    registry: ModelRegistry, s3_client, s3_bucket: str, tmp_path: Path
) -> None:
    mv = _register(registry, _model(tmp_path, b"x"))
    s3_client.delete_object(Bucket=s3_bucket, Key=f"artifacts/{mv.artifacts['model.onnx'].key}")
    report = registry.verify(mv.version)
    assert not report.ok
    assert report.artifacts[0].status == "missing"


def test_failed_upload_burns_the_version_number_and_records_nothing(
    tmp_path: Path, s3_server: str, s3_client
) -> None:
    settings = Settings(
        registry=RegistrySettings(database_url=f"sqlite:///{tmp_path / 'registry.db'}"),
        artifacts=ArtifactSettings(uri="s3://bucket-created-later/a", s3_endpoint_url=s3_server),
    )
    with ModelRegistry.from_settings(settings) as registry:
        with pytest.raises(ArtifactStoreError, match="bucket-created-later"):
            _register(registry, _model(tmp_path, b"x"))
        assert registry.list() == []
        s3_client.create_bucket(Bucket="bucket-created-later")
        try:
            # Number 1 was handed out to the failed attempt (its key may hold stray bytes):
            # never reusing it means no later version can be confused with that upload.
            assert _register(registry, _model(tmp_path, b"y")).version == 2
        finally:
            for obj in s3_client.list_objects_v2(Bucket="bucket-created-later")["Contents"]:
                s3_client.delete_object(Bucket="bucket-created-later", Key=obj["Key"])
            s3_client.delete_bucket(Bucket="bucket-created-later")
