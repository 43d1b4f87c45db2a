"""Drift of a model input that is one tensor or one string: per-item statistics plus an
embedding's principal components, tested as columns.

Images and messages have no columns the tabular check can compare, so each modality
summarises every item by a few statistics (:mod:`e2eai.monitoring.image_drift`,
:mod:`e2eai.monitoring.text_drift`) and by an embedding ``[N, D]``. The embedding is
projected on its first :data:`EMBEDDING_COMPONENTS` principal components, fitted on the
reference only, so the current window is expressed in the reference's axes; each component
is then one more numeric column of :func:`e2eai.monitoring.drift.check_drift`.

A reference embedding costs what the encoder costs (MiniLM: ~18 ms a message on one shared
core), and it is the same for every window judged against one version, so callers may pass
it computed once (:func:`e2eai.monitoring.class_window.reference_embedding` caches it with
the version's scored reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from e2eai.monitoring.drift import DriftSettings, GroupedDriftReport, check_drift

EMBEDDING_COMPONENTS = 4


@dataclass(frozen=True)
class EmbeddingProjection:
    """Principal axes of the reference's embeddings; ``project`` expresses any window in them."""

    mean: np.ndarray
    components: np.ndarray  # [k, D], unit rows
    explained_variance_ratio: np.ndarray  # [k]

    @classmethod
    def fit(
        cls, reference: np.ndarray, components: int = EMBEDDING_COMPONENTS
    ) -> EmbeddingProjection:
        """The first ``components`` principal axes of ``reference`` ``[N, D]`` (randomized SVD,
        seeded: the same reference gives the same axes)."""
        from sklearn.utils.extmath import randomized_svd
        from threadpoolctl import threadpool_limits

        mean = reference.mean(axis=0)
        centred = reference - mean
        k = max(1, min(components, *centred.shape))
        # One BLAS thread: on shared cores OpenBLAS's threads spin-wait. At 1,000 × 1,568 on a
        # busy 2-core machine a full SVD took 19 s on two threads, 1.9 s on one; this, 0.25 s.
        with threadpool_limits(limits=1):
            _, singular, axes = randomized_svd(centred, k, random_state=0)
        total = float((centred**2).sum())
        ratio = singular**2 / total if total > 0 else np.zeros(k)
        return cls(mean, axes, ratio)

    def project(self, embedding: np.ndarray) -> pd.DataFrame:
        scores = (embedding - self.mean) @ self.components.T
        return pd.DataFrame(
            scores, columns=[f"embedding_pc{i + 1}" for i in range(scores.shape[1])]
        )


@dataclass(frozen=True)
class EmbeddingDriftReport(GroupedDriftReport):
    """A window's drift over per-item statistics and embedding components: Evidently's
    per-column evidence, which group moved, and where the embedding came from."""

    statistics: tuple[str, ...] = ()
    """The per-item statistics' columns."""
    embedding_columns: tuple[str, ...] = ()
    embedding_source: str | None = None
    """What the embedding is (``"penultimate"``, ``"probabilities"``, ``"minilm"``); None:
    none was compared."""
    explained_variance_ratio: tuple[float, ...] = ()
    """Share of the reference embedding's variance each component carries."""

    statistics_group: ClassVar[str] = "statistics"
    """The summary's name for the statistics' group (``<group>_drifted``)."""

    def column_groups(self) -> dict[str, tuple[str, ...]]:
        return {self.statistics_group: self.statistics, "embedding": self.embedding_columns}

    def summary_details(self) -> dict[str, Any]:
        return {
            "embedding_source": self.embedding_source,
            "explained_variance_ratio": list(self.explained_variance_ratio),
        }

    @classmethod
    def check(
        cls,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        embeddings: tuple[np.ndarray, np.ndarray] | None = None,
        embedding_source: str | None = None,
        *,
        components: int = EMBEDDING_COMPONENTS,
        settings: DriftSettings | None = None,
    ) -> Self:
        """Test every statistic column of ``current`` against ``reference`` and, given the
        two sides' ``embeddings`` (reference ``[N, D]``, current ``[M, D]``), their first
        ``components`` principal components in the reference's axes, all as numeric columns
        of :func:`~e2eai.monitoring.drift.check_drift`. Raises ValueError when the reference
        embedding does not have a row per reference item."""
        statistics = tuple(reference.columns)
        embedding_columns: tuple[str, ...] = ()
        ratio: tuple[float, ...] = ()
        if embeddings is not None:
            ref_embedding, cur_embedding = embeddings
            if len(ref_embedding) != len(reference):
                raise ValueError(
                    f"the reference embedding has {len(ref_embedding)} rows for "
                    f"{len(reference)} reference items: pass one row per item"
                )
            projection = EmbeddingProjection.fit(ref_embedding, components)
            ref_scores = projection.project(ref_embedding)
            reference = pd.concat([reference, ref_scores], axis=1)
            current = pd.concat([current, projection.project(cur_embedding)], axis=1)
            embedding_columns = tuple(ref_scores.columns)
            ratio = tuple(float(r) for r in projection.explained_variance_ratio)
        kinds = dict.fromkeys(reference.columns, "numeric")
        return cls(
            check_drift(reference, current, kinds, settings=settings),
            statistics=statistics,
            embedding_columns=embedding_columns,
            embedding_source=embedding_source if embeddings is not None else None,
            explained_variance_ratio=ratio,
        )
