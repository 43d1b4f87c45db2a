"""LocalArtifactStore and fetch_verified on a real directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2eai.config import ArtifactSettings
from e2eai.errors import ArtifactIntegrityError, ArtifactNotFoundError, InvalidArtifactKeyError
from e2eai.storage import (
    LocalArtifactStore,
    fetch_verified,
    open_store,
    sha256_bytes,
    sha256_file,
    split_s3_uri,
    validate_key,
)


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "store")


def test_put_get_list_exists_round_trip(store: LocalArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "model.onnx"
    source.write_bytes(b"onnx-bytes")
    store.put_file("models/m/v1/model.onnx", source)
    store.put_bytes("models/m/v1/metrics.json", b"{}")
    store.put_bytes("snapshots/abc/flights.parquet", b"pq")

    assert store.get_bytes("models/m/v1/model.onnx") == b"onnx-bytes"
    assert store.exists("models/m/v1/metrics.json")
    assert not store.exists("models/m/v2/model.onnx")
    assert store.list("models/") == ["models/m/v1/metrics.json", "models/m/v1/model.onnx"]
    assert store.list() == [
        "models/m/v1/metrics.json",
        "models/m/v1/model.onnx",
        "snapshots/abc/flights.parquet",
    ]
    copy = store.download("models/m/v1/model.onnx", tmp_path / "out" / "copy.onnx")
    assert copy.read_bytes() == b"onnx-bytes"


def test_overwrite_replaces_content_and_leaves_no_temporary_files(
    store: LocalArtifactStore,
) -> None:
    store.put_bytes("a/b.bin", b"first")
    store.put_bytes("a/b.bin", b"second")
    assert store.get_bytes("a/b.bin") == b"second"
    on_disk = sorted(p.name for p in (store.root / "a").iterdir())
    assert on_disk == ["b.bin"]


def test_half_written_files_are_not_listed(store: LocalArtifactStore) -> None:
    store.put_bytes("a/real.bin", b"x")
    # What a writer that crashed before its rename leaves behind.
    (store.root / "a" / ".real.bin.x1y2.partial").write_bytes(b"half")
    assert store.list() == ["a/real.bin"]


@pytest.mark.parametrize(
    "key",
    ["../outside.bin", "a/../../outside.bin", "/etc/passwd", "", ".", "a//b", "a\\..\\b", "a/./b"],
)
def test_keys_escaping_or_malformed_are_rejected(
    store: LocalArtifactStore, tmp_path: Path, key: str
) -> None:
    with pytest.raises(InvalidArtifactKeyError):
        store.put_bytes(key, b"x")
    with pytest.raises(InvalidArtifactKeyError):
        store.exists(key)
    assert not (tmp_path / "outside.bin").exists()


def test_key_through_a_symlink_out_of_the_root_is_rejected(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    store.root.mkdir(parents=True)
    (store.root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidArtifactKeyError, match="escapes the store root"):
        store.put_bytes("link/stolen.bin", b"x")
    assert list(outside.iterdir()) == []


def test_partial_suffix_is_reserved() -> None:
    with pytest.raises(InvalidArtifactKeyError, match="reserved"):
        validate_key("models/m/v1/model.partial")
    assert validate_key("models/m/v1/model.onnx") == "models/m/v1/model.onnx"


def test_missing_artifact_is_a_specific_error(store: LocalArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFoundError, match=r"nope\.bin"):
        store.get_bytes("nope.bin")
    with pytest.raises(ArtifactNotFoundError, match=r"nope\.bin"):
        store.download("nope.bin", tmp_path / "x")
    with pytest.raises(ArtifactNotFoundError, match="not a file"):
        store.put_file("a.bin", tmp_path / "does-not-exist.bin")


def test_root_is_fixed_when_the_store_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = LocalArtifactStore(Path("relative-root"))
    store.put_bytes("k.bin", b"1")
    monkeypatch.chdir(tmp_path.parent)  # a later chdir must not move the store
    assert store.get_bytes("k.bin") == b"1"
    assert store.root == (tmp_path / "relative-root").resolve()


def test_fetch_verified_returns_file_when_hash_matches(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    store.put_bytes("m.bin", b"weights")
    dest = fetch_verified(store, "m.bin", tmp_path / "out" / "m.bin", sha256_bytes(b"weights"))
    assert dest.read_bytes() == b"weights"
    assert sha256_file(dest) == sha256_bytes(b"weights")
    assert sorted(p.name for p in dest.parent.iterdir()) == ["m.bin"]


def test_fetch_verified_refuses_modified_bytes_and_leaves_nothing(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    store.put_bytes("m.bin", b"weights")
    recorded = sha256_bytes(b"weights")
    (store.root / "m.bin").write_bytes(b"weightz")  # tampered in place
    out = tmp_path / "out"
    with pytest.raises(ArtifactIntegrityError) as info:
        fetch_verified(store, "m.bin", out / "m.bin", recorded, label="model 'm'")
    message = str(info.value)
    assert recorded in message
    assert sha256_bytes(b"weightz") in message
    assert "model 'm'" in message
    assert list(out.iterdir()) == []


def test_fetch_verified_does_not_clobber_a_good_copy_with_a_bad_one(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    store.put_bytes("m.bin", b"tampered")
    dest = tmp_path / "m.bin"
    dest.write_bytes(b"good")
    with pytest.raises(ArtifactIntegrityError):
        fetch_verified(store, "m.bin", dest, sha256_bytes(b"good"))
    assert dest.read_bytes() == b"good"


def test_fetch_verified_onto_the_stored_file_itself_keeps_it(store: LocalArtifactStore) -> None:
    # Verifying a store file in place must never delete the stored artifact on a mismatch.
    store.put_bytes("m.bin", b"bytes")
    stored = store.root / "m.bin"
    with pytest.raises(ArtifactIntegrityError):
        fetch_verified(store, "m.bin", stored, sha256_bytes(b"other"))
    assert stored.read_bytes() == b"bytes"


def test_open_store_picks_backend_from_settings(tmp_path: Path) -> None:
    local = open_store(ArtifactSettings(uri=str(tmp_path / "arts")))
    assert isinstance(local, LocalArtifactStore)
    assert local.root == (tmp_path / "arts").resolve()


def test_split_s3_uri() -> None:
    assert split_s3_uri("s3://bucket/a/b") == ("bucket", "a/b")
    assert split_s3_uri("s3://bucket") == ("bucket", "")
    with pytest.raises(InvalidArtifactKeyError):
        split_s3_uri("s3:///no-bucket")
