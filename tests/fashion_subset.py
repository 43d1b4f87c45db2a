"""A small real Fashion-MNIST folder for tests: the first rows of Debian's IDX files."""

from __future__ import annotations

from pathlib import Path

from e2eai.tasks.fashion import DEBIAN_DIR
from e2eai.tasks.fashion.data import PARTS
from e2eai.tasks.fashion.idx import read_idx, write_idx

INSTALLED = (DEBIAN_DIR / PARTS["train"][0]).is_file()
NOT_INSTALLED = (
    f"Debian package dataset-fashion-mnist is not installed ({DEBIAN_DIR}); "
    "`make system-deps` installs it"
)


def subset_folder(folder: Path, rows: dict[str, int]) -> Path:
    """Write the first ``rows[part]`` records of each part's IDX files into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for part, count in rows.items():
        for name in PARTS[part]:
            write_idx(folder / name, read_idx(DEBIAN_DIR / name).values[:count])
    return folder
