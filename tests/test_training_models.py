"""Models learn on synthetic data; the MLP's lookup, imputation and early stopping behave."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from synthetic import flight_task, synthetic_frame

from e2eai.errors import TrainingDataError
from e2eai.tasks.flights import schema
from e2eai.training.columns import model_input_frame
from e2eai.training.families import family, load_model
from e2eai.training.launcher import train_torch
from e2eai.training.split import time_split
from e2eai.training.tabular_spec import MLPParams, TabularSpec
from e2eai.training.torch_job import TorchJob
from e2eai.training.torch_training import write_inputs

TASK = flight_task()


@pytest.fixture(scope="module")
def split():
    frame = synthetic_frame(4000, days=75, seed=1)
    return time_split(frame, TASK, date(2013, 1, 1), date(2013, 2, 28), 10, 14)


def _randomised(model):
    """Random weights everywhere: a fresh Wide & Deep model starts with both logits at 0."""
    import torch

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model.eval()


def _job(split, tmp_path, params: MLPParams, epochs: int, patience: int) -> TorchJob:
    train_path, validation_path = write_inputs(split.train, split.validation, tmp_path / "data")
    spec = TabularSpec.fit(split.train, params, TASK)
    return TorchJob(
        train_path=str(train_path),
        validation_path=str(validation_path),
        spec_path=str(spec.save(tmp_path / "spec.json")),
        run_dir=str(tmp_path / "run"),
        params=params,
        label=TASK.label,
        family="torch_mlp",
        epochs=epochs,
        patience=patience,
    )


def test_time_split_is_ordered_and_disjoint(split):
    ts = schema.EVENT_TIMESTAMP
    assert split.train[ts].max() < split.validation[ts].min()
    assert split.validation[ts].max() < split.holdout[ts].min()
    assert split.validation[ts].min() >= pd.Timestamp("2013-02-19", tz="UTC")
    assert split.holdout[ts].max() < pd.Timestamp("2013-03-15", tz="UTC")


def test_time_split_names_the_empty_part():
    frame = synthetic_frame(500, days=59)  # ends on Feb 28: nothing after the window
    with pytest.raises(TrainingDataError, match=r"holdout part \(2013-03-01\.\.2013-03-14\)"):
        time_split(frame, TASK, date(2013, 1, 1), date(2013, 2, 28), 10, 14)


def test_missing_feature_column_is_named():
    frame = synthetic_frame(200, days=10).drop(columns=["visib"])
    with pytest.raises(TrainingDataError, match="visib"):
        model_input_frame(frame, TASK)


@pytest.mark.parametrize("name", ["logreg", "hist_gb"])
def test_sklearn_families_learn_and_round_trip(split, name, tmp_path):
    train = pd.concat([split.train, split.validation])
    sklearn_family = family(name)
    pipeline = sklearn_family.fit_pipeline(train, TASK)
    assert pipeline.steps[0][0] == "prep"  # ColumnTransformer over raw task columns first
    loaded = load_model(sklearn_family.save(pipeline, tmp_path / name, TASK))
    assert loaded.family == name
    assert loaded.input_kinds == {f.name: f.kind for f in TASK.features}
    p = loaded.predict_proba(split.holdout)
    assert roc_auc_score(split.holdout[schema.LABEL], p) > 0.6


def test_mlp_learns_in_single_process_mode(split, tmp_path):
    job = _job(split, tmp_path, MLPParams(batch_size=256, hidden_width=64), epochs=6, patience=3)
    summary = train_torch(job, workers=1)
    assert summary.world_size == 1 and summary.epochs_run >= 1
    model = load_model(_with_info(summary.model_dir))
    auc = roc_auc_score(split.holdout[schema.LABEL], model.predict_proba(split.holdout))
    assert auc > 0.6
    # The validation AUC history starts near chance and the best epoch beats it.
    assert summary.best_validation_auc > summary.history[0]["validation_auc"] + 0.05
    assert (tmp_path / "run" / "tensorboard").is_dir()
    assert any((tmp_path / "run" / "tensorboard").iterdir())


def _with_info(model_dir):
    from pathlib import Path

    from e2eai.training.model_io import write_info

    write_info(Path(model_dir), "torch_mlp", TASK, {})
    return Path(model_dir)


def test_early_stopping_stops_when_validation_auc_stalls(split, tmp_path):
    # SGD with learning rate 0 never changes the weights: AUC cannot improve after epoch 0.
    params = MLPParams(batch_size=512, hidden_width=16, optimizer="sgd", learning_rate=0.0)
    summary = train_torch(_job(split, tmp_path, params, epochs=20, patience=2), workers=1)
    assert summary.stopped_early
    assert summary.epochs_run == 2
    assert summary.best_epoch == 0


def test_spec_maps_unknown_and_missing_categories_to_zero(split):
    spec = TabularSpec.fit(split.train, MLPParams(), TASK)
    rows = split.holdout.head(3).copy()
    rows["carrier"] = ["ZZ", None, spec.vocab["carrier"][0]]
    rows.loc[rows.index[0], "temp"] = np.nan
    numeric, indices = spec.encode(rows)
    j = spec.categorical.index("carrier")
    assert indices[:, j].tolist() == [0, 0, 1]
    assert np.isnan(numeric[0, spec.numeric.index("temp")])  # imputation happens in the model


def test_spec_extension_keeps_old_indices(split):
    spec = TabularSpec.fit(split.train, MLPParams(), TASK)
    newer = split.holdout.copy()
    newer.loc[newer.index[:5], "carrier"] = "QX"
    extended = spec.extended_with(newer)
    assert extended.vocab["carrier"][: len(spec.vocab["carrier"])] == spec.vocab["carrier"]
    assert extended.vocab["carrier"][-1] == "QX"


def test_mlp_imputes_nan_inside_the_module(split, tmp_path):
    import torch

    from e2eai.training.mlp import TabularMLP

    spec = TabularSpec.fit(split.train, MLPParams(hidden_width=8), TASK)
    model = _randomised(TabularMLP(spec))
    numeric, indices = spec.encode(split.holdout.head(4))
    filled = numeric.copy()
    numeric[:, 0] = np.nan
    filled[:, 0] = spec.fill[0]
    with torch.no_grad():
        a = model(torch.from_numpy(numeric), torch.from_numpy(indices))
        b = model(torch.from_numpy(filled), torch.from_numpy(indices))
    assert torch.isfinite(a).all()
    assert torch.allclose(a, b)


def test_hist_gb_early_stops_on_the_later_validation_part(split):
    from sklearn.metrics import log_loss

    pipeline = family("hist_gb").fit_pipeline(split.train, TASK, validation=split.validation)
    model = pipeline.named_steps["model"]
    # The early-stopping score is the (negative) log-loss on exactly the validation frame
    # we passed (the last days of the window), not on a random slice of the training part.
    p = pipeline.predict_proba(model_input_frame(split.validation, TASK))[:, 1]
    expected = -log_loss(split.validation[schema.LABEL], p)
    assert model.validation_score_[-1] == pytest.approx(expected, rel=1e-6)
    # Categories are ordinal codes (one column each; exportable), not a one-hot block.
    width = pipeline.named_steps["prep"].transform(model_input_frame(split.holdout.head(3), TASK))
    assert width.shape[1] == len(TASK.features)


def test_mlp_clips_numeric_inputs_to_the_training_range(split):
    import torch

    from e2eai.training.mlp import TabularMLP

    spec = TabularSpec.fit(split.train, MLPParams(hidden_width=8), TASK)
    model = _randomised(TabularMLP(spec))
    j = spec.numeric.index("month")
    assert spec.upper[j] == split.train["month"].max()
    numeric, indices = spec.encode(split.holdout.head(4))
    at_edge, beyond = numeric.copy(), numeric.copy()
    at_edge[:, j], beyond[:, j] = spec.upper[j], 12.0  # a month training never saw
    with torch.no_grad():
        a = model(torch.from_numpy(at_edge), torch.from_numpy(indices))
        b = model(torch.from_numpy(beyond), torch.from_numpy(indices))
    assert torch.allclose(a, b)  # flat beyond the range, like a tree; no extrapolation
    # The same for the hashed cross carrier × dep_hour and the quantile bins of the wide path.
    h = spec.numeric.index("dep_hour")
    at_edge[:, h], beyond[:, h] = spec.upper[h], spec.upper[h] + 3
    with torch.no_grad():
        a = model(torch.from_numpy(at_edge), torch.from_numpy(indices))
        b = model(torch.from_numpy(beyond), torch.from_numpy(indices))
    assert torch.allclose(a, b)


def test_mlp_sees_missingness_of_columns_that_had_gaps(split):
    import torch

    from e2eai.training.mlp import TabularMLP

    spec = TabularSpec.fit(split.train, MLPParams(hidden_width=8), TASK)
    j = spec.numeric.index("plane_year")  # NaN in the synthetic training part
    assert spec.missing_indicator[j] and not spec.missing_indicator[0]
    model = _randomised(TabularMLP(spec))
    numeric, indices = spec.encode(split.holdout.head(4))
    filled = numeric.copy()
    numeric[:, j], filled[:, j] = np.nan, spec.fill[j]
    with torch.no_grad():
        a = model(torch.from_numpy(numeric), torch.from_numpy(indices))
        b = model(torch.from_numpy(filled), torch.from_numpy(indices))
    assert not torch.allclose(a, b)  # the indicator column tells "missing" from "median"


def test_spec_saved_before_the_numeric_transform_loads_neutral(split, tmp_path):
    import json

    spec = TabularSpec.fit(split.train, MLPParams(), TASK)
    raw = json.loads(spec.save(tmp_path / "spec.json").read_text())
    for key in ("lower", "upper", "log1p", "missing_indicator"):
        raw.pop(key)
    for key in ("weight_decay", "lr_schedule"):
        raw["params"].pop(key)
    (tmp_path / "old.json").write_text(json.dumps(raw))
    old = TabularSpec.load(tmp_path / "old.json").numeric_transform()
    assert old["lower"][0] == -np.inf and old["upper"][0] == np.inf
    assert not any(old["log1p"]) and not any(old["missing_indicator"])


def test_spec_saved_before_wide_and_deep_loads_as_a_plain_mlp(split, tmp_path):
    import json

    import torch

    from e2eai.training.mlp import TabularMLP

    plain = TabularSpec.fit(split.train, MLPParams(hidden_width=8, wide=False), TASK)
    old_state = TabularMLP(plain).state_dict()
    raw = json.loads(plain.save(tmp_path / "spec.json").read_text())
    for key in ("crosses", "bin_edges"):
        raw.pop(key)
    for key in ("wide", "cross_buckets", "deep_lr_factor", "numeric_bins"):
        raw["params"].pop(key)
    (tmp_path / "old.json").write_text(json.dumps(raw))
    old = TabularSpec.load(tmp_path / "old.json")
    assert old.params.wide is False
    model = TabularMLP(old)
    model.load_state_dict(old_state)  # strict: a champion saved before keeps loading
    assert not any(name.startswith("wide_") for name, _ in model.named_parameters())
    assert isinstance(
        model(*map(torch.from_numpy, old.encode(split.holdout.head(3)))), torch.Tensor
    )


def test_wide_path_reads_categories_crosses_and_numeric_bins(split):
    import torch

    from e2eai.training.mlp import TabularMLP

    spec = TabularSpec.fit(split.train, MLPParams(hidden_width=8, numeric_bins=8), TASK)
    assert tuple(spec.crosses[0]) == ("carrier", "origin")
    model = TabularMLP(spec).eval()
    numeric, indices = (torch.from_numpy(a) for a in spec.encode(split.holdout.head(64)))
    with torch.no_grad():
        assert torch.equal(model(numeric, indices), torch.zeros(64))  # both logits start at 0
        # One carrier's wide weight moves exactly that carrier's rows by exactly that much.
        c = spec.categorical.index("carrier")
        target = int(indices[0, c])
        model.wide_embeddings[c].weight[target] = 0.5
        hit = indices[:, c] == target
        assert torch.allclose(model(numeric, indices), hit.float() * 0.5)
        model.wide_embeddings[c].weight.zero_()
        # A cross bucket: only rows of that (carrier, origin) pair share it (no collision).
        keys = indices[:, c] * 7919 + indices[:, spec.categorical.index("origin")]
        bucket = int(keys[0] % spec.params.cross_buckets)
        model.wide_crosses[0].weight[bucket] = 1.0
        assert torch.allclose(model(numeric, indices), (keys == keys[0]).float())
        model.wide_crosses[0].weight.zero_()
        # Numeric bins: distance above its last edge lands in the last bin of distance.
        j = spec.numeric.index("distance")
        n_bins = model.bin_edges.shape[1] + 1
        model.wide_bins.weight[j * n_bins + n_bins - 1] = 2.0
        far = numeric.clone()
        far[:, j] = spec.upper[j]
        assert torch.allclose(model(far, indices), torch.full((64,), 2.0))


def test_resize_grows_both_paths_with_the_unknown_row(split):
    import torch

    from e2eai.training.mlp import TabularMLP, resize_embeddings

    spec = TabularSpec.fit(split.train, MLPParams(hidden_width=8), TASK)
    newer = split.holdout.copy()
    newer.loc[newer.index[:5], "carrier"] = "QX"
    grown = spec.extended_with(newer)
    state = _randomised(TabularMLP(spec)).state_dict()
    resized = resize_embeddings(state, spec, grown)
    c = spec.categorical.index("carrier")
    for key in (f"embeddings.{c}.weight", f"wide_embeddings.{c}.weight"):
        assert resized[key].shape[0] == state[key].shape[0] + 1
        assert torch.equal(resized[key][-1], state[key][0])
    TabularMLP(grown).load_state_dict(resized)  # strict: every new table fits
