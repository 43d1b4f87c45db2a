"""The fashion task's data stage on real Fashion-MNIST subsets: IDX reading, accounting,
quarantine with reasons, refused files named, the stratified split and the task's registration.

The subsets are the first records of Debian's ``dataset-fashion-mnist`` files, rewritten as
IDX files in a temporary folder (corrupted on purpose where a test says so).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from e2eai.config import Settings
from e2eai.tasks import load_task, registered_tasks
from e2eai.tasks.fashion import DEBIAN_DIR, FashionTask
from e2eai.tasks.fashion.data import CLASSES, PARTS, images_of, prepared_images
from e2eai.tasks.fashion.idx import IdxFormatError, read_idx, write_idx
from e2eai.training.image_run import stratified_class_split

pytestmark = pytest.mark.skipif(
    not (DEBIAN_DIR / PARTS["train"][0]).is_file(),
    reason=f"Debian package dataset-fashion-mnist is not installed ({DEBIAN_DIR}); "
    "`make system-deps` installs it",
)

TRAIN_ROWS, TEST_ROWS = 2000, 500


@pytest.fixture(scope="module")
def real_subset() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The first records of each part, as read from the Debian files."""
    out = {}
    for part, rows in (("train", TRAIN_ROWS), ("t10k", TEST_ROWS)):
        images_file, labels_file = PARTS[part]
        images = read_idx(DEBIAN_DIR / images_file).values[:rows]
        labels = read_idx(DEBIAN_DIR / labels_file).values[:rows]
        out[part] = (images.copy(), labels.copy())
    return out


def _write_parts(folder: Path, parts: dict[str, tuple[np.ndarray, np.ndarray]], **types) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for part, (images, labels) in parts.items():
        images_file, labels_file = PARTS[part]
        write_idx(folder / images_file, images, types.get(part, 0x08))
        write_idx(folder / labels_file, labels, 0x08)
    return folder


def test_the_debian_files_hold_70000_labelled_28x28_images() -> None:
    counts = {}
    for part, (images_file, labels_file) in PARTS.items():
        images, labels = read_idx(DEBIAN_DIR / images_file), read_idx(DEBIAN_DIR / labels_file)
        assert images.values.shape[1:] == (28, 28) and images.values.dtype == np.uint8
        assert images.records == labels.records
        counts[part] = images.records
    assert counts == {"train": 60000, "t10k": 10000}


def test_a_clean_subset_is_accepted_whole_with_exact_accounting(real_subset, tmp_path) -> None:
    folder = _write_parts(tmp_path / "idx", real_subset)
    settings = Settings(home=tmp_path / "home", task="fashion")
    prepared = FashionTask.from_directory(folder).prepare_data(settings)

    assert prepared.rows_in == TRAIN_ROWS + TEST_ROWS
    assert prepared.rows_accepted + prepared.rows_quarantined == prepared.rows_in
    assert prepared.rows_excluded == 0
    rows = prepared_images(settings)
    assert len(rows) == prepared.rows_accepted
    assert rows["image_id"].is_unique
    # The pixels come through unchanged, record by record.
    first = rows.set_index("image_id").loc["t10k-00000"]
    np.testing.assert_array_equal(
        images_of(pd.DataFrame([first])), real_subset["t10k"][0][:1].astype(np.uint8)
    )
    assert first["class_name"] == CLASSES[int(real_subset["t10k"][1][0])]
    report = json.loads(prepared.quality_report.read_text())
    assert report["rows_in"] == prepared.rows_in
    assert sum(report["per_class"].values()) == prepared.rows_accepted
    # The page people read: the accounting, each class's images and their mean intensity.
    page = (prepared.directory / "quality.html").read_text()
    assert f"{prepared.rows_in} records in: {prepared.rows_accepted} accepted" in page
    assert "<th>mean intensity</th>" in page and page.count("data:image/png;base64,") == 2
    for name, count in report["per_class"].items():
        assert f"<td>{name}</td><td>{count}</td>" in page


def test_corrupt_records_are_quarantined_with_a_reason_naming_the_value(
    real_subset, tmp_path
) -> None:
    images, labels = real_subset["train"]
    images = images.astype(np.int16)  # a type that can hold what uint8 cannot
    labels = labels.copy()
    images[3, 4, 5] = 300
    images[5, 0, 0] = -1
    labels[7] = 12
    images[9] = 0  # blank
    images[11] = images[0]  # a copy of an earlier record
    folder = _write_parts(tmp_path / "idx", {**real_subset, "train": (images, labels)}, train=0x0B)
    settings = Settings(home=tmp_path / "home", task="fashion")
    prepared = FashionTask.from_directory(folder).prepare_data(settings)

    assert prepared.rows_in == TRAIN_ROWS + TEST_ROWS
    assert prepared.rows_quarantined == 5
    assert prepared.rows_accepted == prepared.rows_in - 5
    assert prepared.quarantined_by_reason == {
        "pixel_out_of_range": 2,
        "unknown_label": 1,
        "blank_image": 1,
        "duplicate_image": 1,
    }
    quarantine = pd.read_parquet(prepared.directory / "quarantine.parquet").set_index("image_id")
    assert "(row 4, col 5) = 300" in quarantine.loc["train-00003", "reason"]
    assert "= -1" in quarantine.loc["train-00005", "reason"]
    assert quarantine.loc["train-00007", "reason"].startswith("label=12")
    assert quarantine.loc["train-00011", "reason"].startswith("same pixels as record 0")
    assert quarantine.loc["train-00003", "source_file"] == "train-images-idx3-ubyte.gz"
    accepted = set(prepared_images(settings)["image_id"])
    assert accepted.isdisjoint(quarantine.index)


def test_non_finite_pixels_of_a_float_file_are_quarantined(real_subset, tmp_path) -> None:
    images, labels = real_subset["t10k"]
    images = images.astype(np.float32)
    images[2, 10, 10] = np.nan
    folder = _write_parts(tmp_path / "idx", {**real_subset, "t10k": (images, labels)}, t10k=0x0D)
    settings = Settings(home=tmp_path / "home", task="fashion")
    prepared = FashionTask.from_directory(folder).prepare_data(settings)
    assert prepared.quarantined_by_reason == {"pixel_not_finite": 1}


def test_a_truncated_gzip_file_is_refused_naming_it(real_subset, tmp_path) -> None:
    folder = _write_parts(tmp_path / "idx", real_subset)
    path = folder / PARTS["train"][0]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    settings = Settings(home=tmp_path / "home", task="fashion")
    with pytest.raises(IdxFormatError, match=r"train-images-idx3-ubyte\.gz: damaged or truncated"):
        FashionTask.from_directory(folder).prepare_data(settings)
    assert not (settings.data_dir / "prepared").exists()  # nothing half-published


def test_a_truncated_payload_is_refused_with_the_counts(real_subset, tmp_path) -> None:
    folder = _write_parts(tmp_path / "idx", real_subset)
    path = folder / PARTS["t10k"][0]
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[: 16 + 784 * 100 + 17]))
    with pytest.raises(IdxFormatError) as caught:
        read_idx(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"declares {TEST_ROWS} records" in message and "(100 whole records)" in message


def test_files_that_are_not_fashion_mnist_images_are_refused(real_subset, tmp_path) -> None:
    settings = Settings(home=tmp_path / "home", task="fashion")
    images, labels = real_subset["t10k"]
    wide = np.zeros((len(images), 32, 32), dtype=np.uint8)
    folder = _write_parts(tmp_path / "wide", {**real_subset, "t10k": (wide, labels)})
    with pytest.raises(IdxFormatError, match=r"t10k-images-idx3-ubyte\.gz: records have shape"):
        FashionTask.from_directory(folder).prepare_data(settings)

    folder = _write_parts(tmp_path / "short", {**real_subset, "t10k": (images, labels[:-3])})
    with pytest.raises(IdxFormatError, match=f"holds {TEST_ROWS} images but .* holds"):
        FashionTask.from_directory(folder).prepare_data(settings)

    (folder / PARTS["train"][1]).write_bytes(b"\x08\x03\x00\x00 not an idx file")
    with pytest.raises(IdxFormatError, match=r"train-labels-idx1-ubyte\.gz: not an IDX file"):
        FashionTask.from_directory(folder).prepare_data(settings)


def test_the_split_is_stratified_disjoint_seeded_and_capped(real_subset, tmp_path) -> None:
    folder = _write_parts(tmp_path / "idx", real_subset)
    settings = Settings(home=tmp_path / "home", task="fashion")
    FashionTask.from_directory(folder).prepare_data(settings)
    frame = prepared_images(settings)

    def split(seed: int, cap: int | None = None):
        return stratified_class_split(
            frame.sample(frac=1, random_state=seed), "label", "image_id", 0.2, 0.15, 7, 1.0, cap
        )

    a, b = split(1), split(2)  # same seed, frames in different orders: same parts
    for part in ("train", "validation", "holdout"):
        pd.testing.assert_frame_equal(getattr(a, part), getattr(b, part))
    ids = [set(getattr(a, p)["image_id"]) for p in ("train", "validation", "holdout")]
    assert sum(map(len, ids)) == len(frame) and len(set().union(*ids)) == len(frame)
    overall = frame["label"].value_counts(normalize=True)
    held = a.holdout["label"].value_counts(normalize=True)
    assert (held - overall).abs().max() < 0.01  # every class held out in its own share

    capped = split(1, cap=600)
    assert 590 <= len(capped.train) <= 600
    assert set(capped.train["image_id"]) <= ids[0]  # a smaller part is a subset
    pd.testing.assert_frame_equal(capped.holdout, a.holdout)  # the holdout does not move


def test_fashion_is_a_registered_task_with_an_image_input(tmp_path) -> None:
    assert "fashion" in registered_tasks()
    task = load_task(Settings(home=tmp_path, task="fashion"))
    assert isinstance(task, FashionTask) and task.modality == "image"
    described = task.describe()
    assert described["classes"] == list(CLASSES)
    assert described["input"] == {"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}
    assert described["split"] == "stratified"
    assert task.families == ("cnn", "pixel_logreg") and task.baselines == ("pixel_logreg",)
