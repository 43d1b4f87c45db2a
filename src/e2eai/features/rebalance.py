"""Class rebalancing of training rows (off by default).

Delayed flights are about one in five. Rebalancing changes the base rate the model learns,
so predicted probabilities are no longer calibrated: it is for experiments on ranking
metrics, never applied to validation or holdout rows.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

Method = Literal["none", "undersample", "oversample"]


def rebalance(frame: pd.DataFrame, method: Method, seed: int, label: str) -> pd.DataFrame:
    """Equalise the classes of ``frame[label]``.

    ``undersample`` keeps a random subset of the majority class as large as the minority;
    ``oversample`` draws minority rows with replacement up to the majority's size. Row order
    is the frame's again afterwards (by time for timed tasks: training splits and samplers
    expect it); ``none`` returns ``frame`` unchanged.
    """
    if method == "none":
        return frame
    counts = frame[label].value_counts()
    if len(counts) < 2:
        raise ValueError(f"cannot rebalance: only class {counts.index.tolist()} present")
    rng = np.random.default_rng(seed)
    minority, majority = counts.idxmin(), counts.idxmax()
    small = frame[frame[label] == minority]
    large = frame[frame[label] == majority]
    if method == "undersample":
        large = large.iloc[np.sort(rng.choice(len(large), size=len(small), replace=False))]
    elif method == "oversample":
        extra = rng.choice(len(small), size=len(large) - len(small), replace=True)
        small = pd.concat([small, small.iloc[extra]])
    else:
        raise ValueError(f"unknown rebalancing method {method!r}")
    # The frame's own order (by time for timed tasks): the index, stable for oversampled rows.
    return pd.concat([small, large]).sort_index(kind="stable")
