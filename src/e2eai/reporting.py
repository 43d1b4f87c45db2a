"""HTML reports from the Jinja2 templates in ``e2eai/templates`` (autoescaped).

One environment for every page (the data-quality report, the training report, the
loop's run report) and one way to embed a plot in a self-contained page.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def format_window(window: Mapping[str, Any] | None) -> str:
    """A window of data in words: ``2013-05-01..2013-05-14`` (inclusive days) for a time
    split, ``891 rows (20 %, seed 13)`` for a split by rows."""
    if not window:
        return "–"
    # A dict, or a registry record (TrainingWindow), which reads like one through .get().
    if window.get("start") is not None:
        return f"{window.get('start')}..{window.get('end')}"
    share = window.get("fraction", window.get("pool_fraction"))
    detail = ", ".join(
        part
        for part in (
            f"{share:.0%}" if isinstance(share, float) else "",
            f"seed {window['seed']}" if "seed" in window else "",
        )
        if part
    )
    rows = window.get("rows")
    counted = f"{rows:,} rows" if isinstance(rows, int) else "rows"
    return counted + (f" ({detail})" if detail else "")


def format_metric(value: Any, missing: str = "–") -> str:
    """A metric as four decimals; ``missing`` for None, anything else as it is."""
    if isinstance(value, float):
        return f"{value:.4f}"
    return missing if value is None else str(value)


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("e2eai", "templates"),
        # select_autoescape() alone matches only names ending in .html/.htm/.xml.
        autoescape=select_autoescape(["html", "html.j2"]),
        undefined=StrictUndefined,  # a missing value is a bug in the caller, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["window"] = format_window
    environment.filters["metric"] = format_metric
    return environment


def render(template: str, **context: Any) -> str:
    """The page ``templates/<template>`` rendered with ``context``."""
    return _environment().get_template(template).render(**context)


def png_data_uri(png: str | Path | bytes | None) -> str | None:
    """A PNG (file or bytes) as a ``data:`` URI for a self-contained page; None when the
    file does not exist."""
    if isinstance(png, bytes):
        data = png
    elif png and Path(png).is_file():
        data = Path(png).read_bytes()
    else:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode()


def figure_png(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes (then closed), for :func:`png_data_uri`."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def plot_row_accounting(axes: Any, counts: Mapping[str, int]) -> None:
    """The data stage's accounting (accepted / quarantined / excluded) as annotated bars."""
    axes.bar(list(counts), list(counts.values()), color=["#4c72b0", "#dd8452", "#8c8c8c"])
    axes.set_title("Row accounting")
    for i, value in enumerate(counts.values()):
        axes.annotate(f"{value:,}", (i, value), ha="center", va="bottom", fontsize=8)


ACCOUNTING = ("rows_in", "rows_accepted", "rows_quarantined", "rows_excluded")
"""The data stage's accounting keys: ``rows_in`` = the other three."""


def accounting_counts(report: Mapping[str, Any]) -> dict[str, int]:
    """Accepted / quarantined / excluded rows of a data-stage report (for the plot)."""
    return {
        "accepted": report["rows_accepted"],
        "quarantined": report["rows_quarantined"],
        "excluded": report["rows_excluded"],
    }


def accounting_png(report: Mapping[str, Any]) -> bytes:
    """A data-stage report's accounting and its quarantine reasons, side by side (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.4))
    plot_row_accounting(left, accounting_counts(report))
    reasons = report["quarantined_by_reason"]
    if reasons:
        right.barh(list(reasons), list(reasons.values()), color="#dd8452")
    right.set_title("Quarantined records by reason")
    return figure_png(fig)
