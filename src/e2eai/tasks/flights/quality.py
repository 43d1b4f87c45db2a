"""The flight data stage's quality report: JSON and an HTML page with a monthly plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from e2eai import jsonable
from e2eai.reporting import (
    ACCOUNTING,
    accounting_counts,
    figure_png,
    plot_row_accounting,
    png_data_uri,
    render,
)
from e2eai.tasks.flights.schema import LABEL


def monthly_profile(flights: pd.DataFrame) -> pd.DataFrame:
    """Accepted flights and delay rate per month of scheduled departure (local date)."""
    if flights.empty:
        return pd.DataFrame(columns=["month", "flights", "delay_rate"])
    month = (
        flights["year"].astype(int).astype(str)
        + "-"
        + flights["month"].astype(int).astype(str).str.zfill(2)
    )
    grouped = flights.groupby(month)[LABEL]
    return pd.DataFrame(
        {
            "month": grouped.size().index,
            "flights": grouped.size().values,
            "delay_rate": grouped.mean().round(4).values,
        }
    )


def _plot_png(profile: pd.DataFrame, counts: dict[str, int]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    plot_row_accounting(left, counts)
    if not profile.empty:
        right.bar(profile["month"], profile["flights"], color="#4c72b0", alpha=0.6)
        right.set_ylabel("flights")
        right.tick_params(axis="x", rotation=60, labelsize=7)
        twin = right.twinx()
        twin.plot(profile["month"], profile["delay_rate"], color="#c44e52", marker="o")
        twin.set_ylabel("delay rate", color="#c44e52")
    right.set_title("Accepted flights and delay rate by month")
    return figure_png(fig)


def write_quality_report(report: dict[str, Any], flights: pd.DataFrame, out_dir: Path) -> Path:
    """Write ``quality.json`` and ``quality.html`` into ``out_dir``; return the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    profile = monthly_profile(flights)
    report = {**report, "monthly": profile.to_dict(orient="records")}
    (out_dir / "quality.json").write_text(jsonable.dumps(report, indent=2))

    counts = accounting_counts(report)
    weather = report["weather"]
    sections = {
        "Row accounting": {k: report[k] for k in ACCOUNTING},
        "Quarantined by reason": report["quarantined_by_reason"],
        "Excluded by rule": report["excluded_by_reason"],
        "Missing values in accepted flights (share)": report["missing_share"],
        "Weather cleaning": {
            "outliers set to missing": weather["outliers_nulled"],
            "values filled": weather["values_filled"],
            "duplicate hours dropped": weather["duplicates_dropped"],
        },
        "Missing-value policy": report["missing_policy"],
    }
    page = render(
        "data_quality.html.j2",
        report=report,
        plot=png_data_uri(_plot_png(profile, counts)),
        sections=sections.items(),
        monthly={"columns": list(profile.columns), "rows": profile.values.tolist()},
    )
    path = out_dir / "quality.html"
    path.write_text(page)
    return path
