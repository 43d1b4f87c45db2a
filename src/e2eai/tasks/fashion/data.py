"""Fashion-MNIST's data stage: IDX files → validated images, with exact accounting.

Both of the dataset's parts (``train``: 60,000 images, ``t10k``: 10,000) are read and pooled;
the platform makes its own stratified train/validation/holdout split by rows. A file that
cannot be read as a whole (truncated, not IDX, records that are not 28×28, image and label
counts that differ) stops the stage with an error naming the file. A readable file's
records are checked one by one and every record ends up in exactly one place:

=======================  ===================================================================
reason code              meaning
=======================  ===================================================================
``pixel_not_finite``     a pixel is NaN or ±inf (float IDX files)
``pixel_out_of_range``   a pixel outside 0–255 or not a whole number
``unknown_label``        a label that is not one of the 10 classes (0–9)
``blank_image``          every pixel has the same value: nothing to learn or predict from
``duplicate_image``      the same pixels as an earlier record (kept once, so that a copy
                         cannot sit in both the training and the holdout part)
=======================  ===================================================================

``rows_in = rows_accepted + rows_quarantined`` always holds (nothing is excluded: every
record has a label). Outputs, published at once: ``rows.parquet`` (one row per accepted
image, its 784 pixels as bytes), ``quarantine.parquet`` (reason code, reason naming the
value, source file and record) and ``quality.json``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from e2eai.config import Settings
from e2eai.data.class_data import accepted_rows, publish_class_data
from e2eai.data.prepare import (
    REASON,
    REASON_CODE,
    SOURCE_ROW,
    PreparedData,
)
from e2eai.data.snapshot import write_snapshot
from e2eai.storage import open_store
from e2eai.tasks.fashion.idx import IdxFormatError, read_idx
from e2eai.tasks.fashion.quality import image_section

HEIGHT = WIDTH = 28
CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""Fashion-MNIST's classes, by label (zalandoresearch/fashion-mnist README)."""

PARTS: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
"""The dataset's parts: (images file, labels file)."""

IMAGE = "image"
LABEL = "label"
IMAGE_ID = "image_id"
SOURCE_FILE = "source_file"


@dataclass(frozen=True)
class RawPart:
    """One part's images and labels as read (any IDX value type), and their files."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    images_file: Path
    labels_file: Path


def read_part(directory: Path, name: str) -> RawPart:
    """Read one part's two IDX files, refusing files that cannot be paired record by record."""
    images_name, labels_name = PARTS[name]
    images = read_idx(directory / images_name)
    labels = read_idx(directory / labels_name)
    if images.values.shape[1:] != (HEIGHT, WIDTH):
        raise IdxFormatError(
            f"{images.path}: records have shape {images.values.shape[1:]}, not "
            f"({HEIGHT}, {WIDTH}): not Fashion-MNIST images (wrong_shape)"
        )
    if labels.values.ndim != 1:
        raise IdxFormatError(
            f"{labels.path}: labels must be one value per record; the file's shape is "
            f"{labels.values.shape} (wrong_shape)"
        )
    if images.records != labels.records:
        raise IdxFormatError(
            f"{images.path} holds {images.records} images but {labels.path} holds "
            f"{labels.records} labels: the files do not pair record by record"
        )
    return RawPart(name, images.values, labels.values, images.path, labels.path)


def record_problems(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reason code, reason) per record; empty strings for a valid record.

    The first problem found wins, in the order of the module's table, so each quarantined
    record carries one code. Duplicates are looked for among the otherwise valid records.
    """
    n = len(images)
    codes = np.full(n, "", dtype=object)
    reasons = np.full(n, "", dtype=object)
    # uint8 (the shipped files) cannot hold a bad pixel: skip the float copy (440 MB at 70k).
    flat = images.reshape(n, -1)
    if flat.dtype != np.uint8:
        flat = flat.astype(np.float64)

    def mark(mask: np.ndarray, code: str, reason_of) -> None:
        for i in np.flatnonzero(mask & (codes == "")):
            codes[i], reasons[i] = code, reason_of(i)

    if flat.dtype != np.uint8:
        finite = np.isfinite(flat)
        mark(~finite.all(axis=1), "pixel_not_finite", lambda i: _pixel_reason(flat[i], "NaN/inf"))
        with np.errstate(invalid="ignore"):
            bad = (flat < 0) | (flat > 255) | (np.floor(flat) != flat)
        mark(bad.any(axis=1), "pixel_out_of_range", lambda i: _pixel_reason(flat[i], "bad"))
    label_values = labels.astype(np.float64)
    known = np.isin(label_values, np.arange(len(CLASSES)))
    mark(
        ~known,
        "unknown_label",
        lambda i: f"label={labels[i].item()} is not a class (0–{len(CLASSES) - 1})",
    )
    with np.errstate(invalid="ignore"):
        blank = flat.max(axis=1) == flat.min(axis=1)
    mark(blank, "blank_image", lambda i: f"every pixel is {float(flat[i, 0]):g}")

    first_seen: dict[bytes, int] = {}
    for i in np.flatnonzero(codes == ""):
        key = hashlib.sha1(images[i].astype(np.uint8).tobytes()).digest()
        if key in first_seen:
            j = first_seen[key]
            codes[i] = "duplicate_image"
            same = "same label" if labels[i] == labels[j] else f"label {labels[j].item()} there"
            reasons[i] = f"same pixels as record {j} ({same})"
        else:
            first_seen[key] = int(i)
    return codes, reasons


def _pixel_reason(pixels: np.ndarray, what: str) -> str:
    """Name the first offending pixel (row, column, value) and how many there are."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(pixels) | (pixels < 0) | (pixels > 255) | (np.floor(pixels) != pixels)
    where = np.flatnonzero(bad)
    first = int(where[0])
    row, col = divmod(first, WIDTH)
    return (
        f"{len(where)} pixel(s) {what}; first at (row {row}, col {col}) = {pixels[first]:g} "
        "(expected whole numbers 0–255)"
    )


def raw_frame(parts: list[RawPart]) -> pd.DataFrame:
    """Every record as read, one row each (the snapshot and the quarantine keep these)."""
    frames = []
    for part in parts:
        n = len(part.images)
        frames.append(
            pd.DataFrame(
                {
                    IMAGE_ID: [f"{part.name}-{i:05d}" for i in range(n)],
                    SOURCE_FILE: part.images_file.name,
                    SOURCE_ROW: np.arange(n, dtype=np.int64),
                    LABEL: part.labels.astype(np.float64),
                    "dtype": str(part.images.dtype),
                    IMAGE: [part.images[i].tobytes() for i in range(n)],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def prepare_fashion(directory: Path, settings: Settings) -> PreparedData:
    """Run the data stage on the IDX files in ``directory``; returns the accounting."""
    parts = [read_part(directory, name) for name in PARTS]
    raw = raw_frame(parts)
    snapshot = write_snapshot({"images": raw}, str(directory), open_store(settings.artifacts))

    # Checked across both parts at once: a test image that copies a training image is a
    # duplicate too (otherwise the pooled split could put one copy on each side).
    images = np.concatenate([p.images for p in parts])  # uint8 unless a file is not
    labels = np.concatenate([p.labels for p in parts])
    codes, reasons = record_problems(images, labels)
    valid = codes == ""

    rows = raw.loc[valid, [IMAGE_ID, SOURCE_FILE, SOURCE_ROW]].reset_index(drop=True)
    rows[LABEL] = labels[valid].astype(np.int64)
    rows["class_name"] = [CLASSES[k] for k in rows[LABEL]]
    rows[IMAGE] = [images[i].astype(np.uint8).tobytes() for i in np.flatnonzero(valid)]
    quarantine = raw.loc[~valid, [IMAGE_ID, SOURCE_FILE, SOURCE_ROW, LABEL, "dtype", IMAGE]]
    quarantine = quarantine.assign(
        **{REASON_CODE: codes[~valid].astype(str), REASON: reasons[~valid].astype(str)}
    ).reset_index(drop=True)
    quarantine[LABEL] = quarantine[LABEL].astype("string")

    return publish_class_data(
        settings,
        snapshot,
        rows,
        quarantine,
        rows_in=len(raw),
        id_column=IMAGE_ID,
        label=LABEL,
        classes=CLASSES,
        report={
            "task": "fashion",
            "source": str(directory),
            "per_file": {
                p.images_file.name: {"records": len(p.images), "labels_file": p.labels_file.name}
                for p in parts
            },
        },
        section=image_section(images[valid].astype(np.uint8), labels[valid], CLASSES),
    )


def prepared_images(settings: Settings) -> pd.DataFrame:
    """The accepted images of the last data run (raises if there is none)."""
    return accepted_rows(settings)


def images_of(frame: pd.DataFrame) -> np.ndarray:
    """The frame's images as uint8 ``[N, 28, 28]`` (from the 784-byte ``image`` cells)."""
    if len(frame) == 0:
        return np.zeros((0, HEIGHT, WIDTH), dtype=np.uint8)
    flat = np.frombuffer(b"".join(frame[IMAGE].tolist()), dtype=np.uint8)
    return flat.reshape(len(frame), HEIGHT, WIDTH)
