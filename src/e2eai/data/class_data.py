"""Publishing a class-labelled data stage (images, messages): its tables and its quality
report, all at once, with exact accounting.

A whole-input task's data stage (:mod:`e2eai.tasks.fashion.data`,
:mod:`e2eai.tasks.support_triage.data`) reads and validates its records its own way, then
hands the accepted rows and the quarantine here. Published together into the prepared
folder (:func:`e2eai.data.prepare.publishing`: all of it or, on any error, none):
``rows.parquet``, ``quarantine.parquet``, an empty ``excluded.parquet`` (nothing is
excluded: ``rows_in = rows_accepted + rows_quarantined``), ``quality.json``,
``quality.html`` and the snapshot's ``manifest.json``.

``quality.html`` shows the record accounting and quarantine reasons as a plot, the task's
per-class section (:class:`ClassSection`: a picture and a table, e.g. one example image per
class, or message lengths by class) and the first quarantined records with the reason
naming the value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from e2eai.data.prepare import (
    PREPARED,
    REASON,
    REASON_CODE,
    ROWS,
    SOURCE_ROW,
    PreparedData,
    check_accounting,
    load_prepared,
    publishing,
    reason_counts,
    write_manifest,
)
from e2eai.reporting import accounting_png, png_data_uri, render

if TYPE_CHECKING:
    from e2eai.config import Settings
    from e2eai.data.snapshot import Snapshot

SHOWN_QUARANTINE = 20
"""Quarantined records the page lists."""


@dataclass(frozen=True)
class ClassSection:
    """The quality page's per-class part."""

    items: str
    """What a record is, plural ("images", "messages")."""
    note: str
    """One sentence on what the section shows."""
    picture: bytes
    """A PNG (e.g. one example per class, a histogram per class)."""
    picture_alt: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    """One row per class."""


def publish_class_data(
    settings: Settings,
    snapshot: Snapshot,
    rows: pd.DataFrame,
    quarantine: pd.DataFrame,
    *,
    rows_in: int,
    id_column: str,
    label: str,
    classes: tuple[str, ...],
    report: dict[str, Any],
    section: ClassSection,
) -> PreparedData:
    """Publish the accepted ``rows`` (``label`` the class index) and the ``quarantine``
    (with its reason code and reason) of ``rows_in`` records read from ``snapshot``.

    ``report`` is what ``quality.json`` says first (the task, the source, anything of the
    task's own); the accounting, the quarantine reasons and the class counts follow.
    Raises AssertionError when the accounting does not add up.
    """
    check_accounting(rows_in, len(rows), len(quarantine), 0)
    by_reason = reason_counts(quarantine)
    counts = rows[label].value_counts().sort_index()
    quality = {
        **report,
        "snapshot": snapshot.id,
        "rows_in": rows_in,
        "rows_accepted": len(rows),
        "rows_quarantined": len(quarantine),
        "rows_excluded": 0,
        "quarantined_by_reason": by_reason,
        "excluded_by_reason": {},
        "per_class": {classes[int(k)]: int(v) for k, v in counts.items()},
    }
    with publishing(settings) as staging:
        rows.to_parquet(staging / f"{ROWS}.parquet", index=False)
        quarantine.to_parquet(staging / "quarantine.parquet", index=False)
        pd.DataFrame(columns=[id_column, REASON_CODE, REASON]).to_parquet(
            staging / "excluded.parquet", index=False
        )
        (staging / "quality.json").write_text(json.dumps(quality, indent=1))
        write_class_quality_report(quality, section, quarantine, staging)
        write_manifest(staging, snapshot.id, snapshot.manifest_uri)
    final = settings.data_dir / PREPARED
    return PreparedData(
        rows_in=rows_in,
        rows_accepted=len(rows),
        rows_quarantined=len(quarantine),
        rows_excluded=0,
        quarantined_by_reason=by_reason,
        excluded_by_reason={},
        snapshot=snapshot.id,
        snapshot_manifest=snapshot.manifest_uri,
        directory=final,
        quality_report=final / "quality.json",
    )


def write_class_quality_report(
    report: dict[str, Any], section: ClassSection, quarantine: pd.DataFrame, out_dir: Path
) -> Path:
    """Write ``quality.html`` into ``out_dir``; return its path."""
    shown = quarantine[[SOURCE_ROW, REASON_CODE, REASON]].head(SHOWN_QUARANTINE)
    page = render(
        "class_quality.html.j2",
        report=report,
        plot=png_data_uri(accounting_png(report)),
        section=section,
        picture=png_data_uri(section.picture),
        quarantine={"columns": list(shown.columns), "rows": shown.values.tolist()},
    )
    path = out_dir / "quality.html"
    path.write_text(page)
    return path


def accepted_rows(settings: Settings) -> pd.DataFrame:
    """The accepted rows of the last data run, the raw snapshot's id in ``attrs``
    (raises if there is none)."""
    path = load_prepared(settings, (ROWS,))[ROWS]
    frame = pd.read_parquet(path)
    manifest = json.loads((path.parent / "manifest.json").read_text())
    frame.attrs["raw_snapshot"] = manifest["snapshot"]
    return frame
