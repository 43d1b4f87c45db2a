"""The data-quality report of a task file's data stage: ``quality.json`` and ``quality.html``.

The accounting and reasons, a profile of every declared column over the accepted rows
(missing share, range or most common categories) and the first quarantined rows, with a
plot of the accounting and the quarantine reasons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from e2eai import jsonable
from e2eai.data.prepare import REASON, REASON_CODE, SOURCE_ROW
from e2eai.reporting import (
    ACCOUNTING,
    accounting_counts,
    figure_png,
    plot_row_accounting,
    png_data_uri,
    render,
)
from e2eai.tasks.task_file import TaskFileSpec

_SHOWN_QUARANTINE = 20


def column_profile(rows: pd.DataFrame, spec: TaskFileSpec) -> list[dict[str, Any]]:
    """Per declared column of the accepted rows: kind, source, missing share, values seen."""
    profile = []
    for column in spec.columns:
        values = rows[column.name]
        entry: dict[str, Any] = {
            "column": column.name,
            "kind": column.kind,
            "source": column.source,
            "missing_share": round(float(values.isna().mean()), 5) if len(values) else 0.0,
        }
        if column.kind == "numeric":
            entry["min"] = None if values.isna().all() else float(values.min())
            entry["max"] = None if values.isna().all() else float(values.max())
            entry["mean"] = None if values.isna().all() else round(float(values.mean()), 4)
        else:
            counts = values.value_counts().head(8)
            entry["distinct"] = int(values.nunique())
            entry["most_common"] = {str(k): int(v) for k, v in counts.items()}
        profile.append(entry)
    return profile


def _plot_png(counts: dict[str, int], reasons: dict[str, int]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.4))
    plot_row_accounting(left, counts)
    if reasons:
        right.barh(list(reasons), list(reasons.values()), color="#dd8452")
    right.set_title("Quarantined rows by reason")
    return figure_png(fig)


def write_tabular_quality_report(
    report: dict[str, Any],
    rows: pd.DataFrame,
    quarantine: pd.DataFrame,
    spec: TaskFileSpec,
    out_dir: Path,
) -> Path:
    """Write ``quality.json`` and ``quality.html`` into ``out_dir``; return the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    profile = column_profile(rows, spec)
    report = {**report, "columns": profile}
    (out_dir / "quality.json").write_text(jsonable.dumps(report, indent=2))

    counts = accounting_counts(report)
    sections = {
        "Row accounting": {k: report[k] for k in ACCOUNTING},
        "Quarantined by reason": report["quarantined_by_reason"],
        "Excluded by rule": report["excluded_by_reason"],
    }
    profile_columns = ["column", "kind", "source", "missing_share", "values"]
    profile_rows = [
        [
            p["column"],
            p["kind"],
            p["source"],
            p["missing_share"],
            f"{p['min']} … {p['max']} (mean {p['mean']})"
            if p["kind"] == "numeric"
            else ", ".join(f"{k} ({v})" for k, v in p["most_common"].items()),
        ]
        for p in profile
    ]
    shown = quarantine[[SOURCE_ROW, REASON_CODE, REASON]].head(_SHOWN_QUARANTINE)
    page = render(
        "tabular_quality.html.j2",
        report=report,
        plot=png_data_uri(_plot_png(counts, report["quarantined_by_reason"])),
        sections=sections.items(),
        profile={"columns": profile_columns, "rows": profile_rows},
        quarantine={"columns": list(shown.columns), "rows": shown.values.tolist()},
    )
    path = out_dir / "quality.html"
    path.write_text(page)
    return path
