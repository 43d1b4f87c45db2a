"""The data-quality report of one preparation run, as JSON and as an HTML page with a plot."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from e2eai.schema import LABEL


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


def _plot_png(profile: pd.DataFrame, counts: dict[str, int]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    left.bar(list(counts), list(counts.values()), color=["#4c72b0", "#dd8452", "#8c8c8c"])
    left.set_title("Row accounting")
    for i, value in enumerate(counts.values()):
        left.annotate(f"{value:,}", (i, value), ha="center", va="bottom", fontsize=8)
    if not profile.empty:
        right.bar(profile["month"], profile["flights"], color="#4c72b0", alpha=0.6)
        right.set_ylabel("flights")
        right.tick_params(axis="x", rotation=60, labelsize=7)
        twin = right.twinx()
        twin.plot(profile["month"], profile["delay_rate"], color="#c44e52", marker="o")
        twin.set_ylabel("delay rate", color="#c44e52")
    right.set_title("Accepted flights and delay rate by month")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _table(rows: dict[str, Any] | pd.DataFrame) -> str:
    if isinstance(rows, pd.DataFrame):
        return rows.to_html(index=False, border=0, classes="t")
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table class='t'>{body}</table>"


def write_quality_report(report: dict[str, Any], flights: pd.DataFrame, out_dir: Path) -> Path:
    """Write ``quality.json`` and ``quality.html`` into ``out_dir``; return the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    profile = monthly_profile(flights)
    report = {**report, "monthly": profile.to_dict(orient="records")}
    (out_dir / "quality.json").write_text(json.dumps(report, indent=2, default=str))

    counts = {
        "accepted": report["rows_accepted"],
        "quarantined": report["rows_quarantined"],
        "excluded": report["rows_excluded"],
    }
    sections = [
        (
            "Row accounting",
            _table(
                {
                    k: report[k]
                    for k in ("rows_in", "rows_accepted", "rows_quarantined", "rows_excluded")
                }
            ),
        ),
        ("Quarantined by reason", _table(report["quarantined_by_reason"])),
        ("Excluded by rule", _table(report["excluded_by_reason"])),
        ("Missing values in accepted flights (share)", _table(report["missing_share"])),
        (
            "Weather cleaning",
            _table(
                {
                    "outliers set to missing": report["weather"]["outliers_nulled"],
                    "values filled": report["weather"]["values_filled"],
                    "duplicate hours dropped": report["weather"]["duplicates_dropped"],
                }
            ),
        ),
        ("Missing-value policy", _table(report["missing_policy"])),
        ("By month", _table(profile)),
    ]
    body = "".join(f"<h2>{html.escape(t)}</h2>{content}" for t, content in sections)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>e2eai data quality — snapshot {html.escape(report["snapshot"][:12])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em}}
table.t{{border-collapse:collapse;margin:.5em 0}} .t td,.t th{{padding:.2em .8em;
border-bottom:1px solid #ddd;text-align:left}}</style></head><body>
<h1>Data quality</h1><p>Source <code>{html.escape(str(report["source"]))}</code>,
snapshot <code>{html.escape(report["snapshot"])}</code>, window {report["window"]["start"]}
… {report["window"]["end"]}.</p>
<img alt="row accounting and monthly delay rate"
 src="data:image/png;base64,{_plot_png(profile, counts)}">{body}</body></html>"""
    path = out_dir / "quality.html"
    path.write_text(page)
    return path
