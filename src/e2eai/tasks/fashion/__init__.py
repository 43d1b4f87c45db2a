"""The ``fashion`` task: which of 10 garments a 28×28 grayscale photo shows (Fashion-MNIST).

Data: Debian's ``dataset-fashion-mnist`` (``make system-deps`` installs it), IDX files under
``/usr/share/datasets/fashion-mnist``: 70,000 images, 10 balanced classes, MIT-licensed by
Zalando Research. The model's one input is the image, a float32 tensor ``[N, 1, 28, 28]``
with intensities in [0, 1] (pixel / 255); the label is the class 0–9. There is no entity,
no timestamp and no feature store: the split is stratified by rows, and the families are a
CNN (``cnn``) and the pixel baseline (``pixel_logreg``), trained by
:mod:`e2eai.training.image_run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from e2eai.schema import Feature, RequestField
from e2eai.tasks.base import WholeInputTask
from e2eai.tasks.fashion.data import (
    CLASSES,
    HEIGHT,
    IMAGE,
    IMAGE_ID,
    LABEL,
    WIDTH,
    prepare_fashion,
    prepared_images,
)

if TYPE_CHECKING:
    import pandas as pd

    from e2eai.config import Settings
    from e2eai.data.prepare import PreparedData

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where ``dataset-fashion-mnist`` installs the IDX files (``dpkg -L dataset-fashion-mnist``)."""

TRAINING_ROWS = 12_000
"""Default cap on the training part (a stratified, seeded subset of its ~47,000 images).

On two shared CPU cores the CNN trains at roughly 1,000 images a second; 12,000 images keep
``e2eai train`` to a few minutes. Validation (~8,400) and holdout (~14,000) stay whole.
``E2EAI_TRAINING__POOL_FRACTION`` shrinks the pool further; the cap is the task's field."""


def _image_feature() -> Feature:
    return Feature(
        name=IMAGE,
        kind="numeric",
        source="request",
        description=f"The photo: float32 [N, 1, {HEIGHT}, {WIDTH}], intensities in [0, 1] "
        "(pixel / 255, 0 = black background).",
        minimum=0.0,
        maximum=1.0,
    )


@dataclass(frozen=True)
class FashionTask(WholeInputTask):
    """Fashion-MNIST classification: one image in, one of ten classes out."""

    directory: Path = DEBIAN_DIR
    """Folder holding the four IDX files (``train-*``, ``t10k-*``; gzip or plain)."""
    classes: tuple[str, ...] = CLASSES
    image_shape: tuple[int, int, int] = (1, HEIGHT, WIDTH)
    training_rows: int | None = TRAINING_ROWS
    """Cap on the training part (stratified subset); None: all of it."""

    modality: ClassVar[str] = "image"

    @classmethod
    def from_directory(
        cls, directory: Path = DEBIAN_DIR, training_rows: int | None = TRAINING_ROWS
    ) -> FashionTask:
        """The task over the IDX files in ``directory`` (tests pass a folder of subsets)."""
        return cls(
            name="fashion",
            description="Which of 10 garments a 28×28 grayscale photo shows (Fashion-MNIST).",
            source=str(directory),
            label=LABEL,
            label_rule="class 0–9: " + ", ".join(f"{i}={c}" for i, c in enumerate(CLASSES)),
            row_id=IMAGE_ID,
            timestamp=None,
            features=(_image_feature(),),
            request_fields=(
                RequestField(
                    name=IMAGE,
                    type="float",
                    description="The photo as FP32 [N, 1, 28, 28] in [0, 1].",
                    minimum=0.0,
                    maximum=1.0,
                ),
            ),
            families=("cnn", "pixel_logreg"),
            baselines=("pixel_logreg",),
            # Accuracy points a candidate must gain on the pixel baseline: a CNN that does not
            # clear plain logistic regression by one point (~84 %) has learnt nothing spatial.
            gates=(("baseline_margin", 0.01), ("champion_tolerance", 0.0)),
            positive_name="class",
            directory=Path(directory),
            training_rows=training_rows,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> FashionTask:
        """Debian's files, or the folder ``data.source`` names when it is one (IDX files
        with the same names: a subset, another copy)."""
        source = Path(settings.data.source)
        return cls.from_directory(source if source.is_dir() else DEBIAN_DIR)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        described.update(
            {
                "modality": self.modality,
                "classes": list(self.classes),
                "input": {"name": IMAGE, "datatype": "FP32", "shape": [-1, *self.image_shape]},
                "training_rows": self.training_rows,
            }
        )
        return described

    def data_sources(self, settings: Settings) -> dict[str, str]:
        from e2eai.tasks.fashion.data import PARTS

        return {
            f"{part}_{kind}": str(self.directory / file)
            for part, files in PARTS.items()
            for kind, file in zip(("images", "labels"), files, strict=True)
        }

    def prepare_data(self, settings: Settings) -> PreparedData:
        return prepare_fashion(self.directory, settings)

    def training_set(
        self, settings: Settings, start: date | None = None, end: date | None = None
    ) -> pd.DataFrame:
        """Every accepted image (id, label, class name, source, 784 pixel bytes)."""
        return prepared_images(settings)
