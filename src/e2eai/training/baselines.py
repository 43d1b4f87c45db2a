"""scikit-learn families: Pipelines that take the raw schema columns.

The first step is a ColumnTransformer over the schema's numeric and categorical columns
(median imputation + scaling / one-hot with unknown categories ignored), so the fitted
pipeline — and its skl2onnx export — accepts exactly what serving sends.
"""

from __future__ import annotations

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from e2eai import schema
from e2eai.errors import TrainingConfigError
from e2eai.training.columns import labels, model_input_frame

SKLEARN_FAMILIES = ("logreg", "hist_gb")


def _one_hot() -> OneHotEncoder:
    return OneHotEncoder(handle_unknown="ignore", sparse_output=False)


def build_pipeline(family: str, seed: int = 13) -> Pipeline:
    """An unfitted Pipeline of ``family`` over the schema columns."""
    numeric, categorical = schema.numeric_features(), schema.categorical_features()
    if family == "logreg":
        prep = ColumnTransformer(
            [
                (
                    "numeric",
                    Pipeline(
                        [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                    ),
                    numeric,
                ),
                ("categorical", _one_hot(), categorical),
            ]
        )
        return Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=1000, C=1.0))])
    if family == "hist_gb":
        # Trees split on NaN themselves; no imputation, so missing stays informative.
        prep = ColumnTransformer(
            [("numeric", "passthrough", numeric), ("categorical", _one_hot(), categorical)]
        )
        model = HistGradientBoostingClassifier(
            max_iter=300,
            learning_rate=0.08,
            max_leaf_nodes=31,
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=20,
            random_state=seed,
        )
        return Pipeline([("prep", prep), ("model", model)])
    raise TrainingConfigError(
        f"unknown scikit-learn family {family!r}; expected {SKLEARN_FAMILIES}"
    )


def fit_pipeline(family: str, train: pd.DataFrame, seed: int = 13, threads: int = 1) -> Pipeline:
    """Fit ``family`` on the raw schema columns of ``train`` with at most ``threads`` threads."""
    from threadpoolctl import threadpool_limits

    pipeline = build_pipeline(family, seed)
    with threadpool_limits(limits=threads):
        pipeline.fit(model_input_frame(train), labels(train))
    return pipeline
