"""ONNX export: the contract's signature, parity with the framework (NaN, unknown and missing
categories included), the parity gate, int8 quantisation and registry attachment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
from synthetic import flight_task, small_training_settings, synthetic_frame

from e2eai.config import ExportSettings
from e2eai.errors import ExportParityError
from e2eai.export import export_model
from e2eai.export.explanation import read_explanation
from e2eai.export.quantize import decide_quantization, session
from e2eai.export.signature import onnx_feed, onnx_proba
from e2eai.registry import ModelRegistry
from e2eai.storage import sha256_file
from e2eai.training.families import family as family_named
from e2eai.training.families import load_model
from e2eai.training.launcher import train_torch
from e2eai.training.model_io import write_info
from e2eai.training.split import time_split
from e2eai.training.tabular_spec import MLPParams, TabularSpec
from e2eai.training.torch_job import TorchJob
from e2eai.training.torch_training import write_inputs

TORCH_ONNX = "torch_mlp"
TASK = flight_task()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Trained models of all three families and a holdout with awkward values."""
    tmp = tmp_path_factory.mktemp("export")
    frame = synthetic_frame(3000, days=75, seed=7)
    split = time_split(frame, TASK, date(2013, 1, 1), date(2013, 2, 28), 10, 14)
    train_path, validation_path = write_inputs(split.train, split.validation, tmp / "data")
    spec = TabularSpec.fit(split.train, MLPParams(batch_size=256, hidden_width=64), TASK)
    job = TorchJob(
        str(train_path),
        str(validation_path),
        str(spec.save(tmp / "spec.json")),
        str(tmp / "torch"),
        spec.params,
        label=TASK.label,
        family=TORCH_ONNX,
        epochs=3,
        patience=3,
    )
    train_torch(job, workers=1)
    dirs = {TORCH_ONNX: tmp / "torch" / "model"}
    write_info(dirs[TORCH_ONNX], TORCH_ONNX, TASK, {})
    for name in ("logreg", "hist_gb"):
        sklearn_family = family_named(name)
        pipeline = sklearn_family.fit_pipeline(split.train, TASK)
        dirs[name] = sklearn_family.save(pipeline, tmp / name, TASK)

    holdout = split.holdout.copy()
    n = len(holdout)
    holdout.loc[holdout.index[:20], "carrier"] = "ZZ"  # never seen in training
    holdout.loc[holdout.index[20:40], "dest"] = None  # missing category
    holdout.loc[holdout.index[40:60], "engine_type"] = "Electric"
    for column in ("temp", "distance", "route_delay_rate_24h"):  # NaN where training had none
        holdout.loc[holdout.index[np.arange(60, n, 7)], column] = np.nan
    return tmp, dirs, holdout


@pytest.fixture(scope="module")
def exported(workspace):
    tmp, dirs, holdout = workspace
    return {
        name: export_model(model_dir, holdout, tmp / "onnx" / name, ExportSettings(), TASK)
        for name, model_dir in dirs.items()
    }


@pytest.mark.parametrize("family", [TORCH_ONNX, "logreg", "hist_gb"])
def test_graph_follows_the_onnx_contract(exported, family):
    model = onnx.load(exported[family].onnx_path)
    inputs = [(i.name, i.type.tensor_type) for i in model.graph.input]
    features = TASK.features
    assert [name for name, _ in inputs] == [f.name for f in features]
    for (_, tensor), feature in zip(inputs, features, strict=True):
        expected = onnx.TensorProto.FLOAT if feature.kind == "numeric" else onnx.TensorProto.STRING
        assert tensor.elem_type == expected, feature.name
        assert len(tensor.shape.dim) == 2 and tensor.shape.dim[1].dim_value == 1
        assert not tensor.shape.dim[0].HasField("dim_value")  # dynamic batch axis
    output, *explained = model.graph.output
    assert output.name == "probability"
    assert output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # The Wide & Deep graph also explains itself; the scikit-learn graphs do not.
    assert [o.name for o in explained] == (["contributions"] if family == TORCH_ONNX else [])


@pytest.mark.parametrize("family", [TORCH_ONNX, "logreg", "hist_gb"])
def test_parity_with_framework_including_nan_and_unknown(workspace, exported, family):
    _, dirs, holdout = workspace
    result = exported[family]
    assert result.parity.rows == len(holdout)
    assert result.parity.max_abs_diff <= 1e-4
    # Independently: the awkward rows (unknown/missing categories, NaN) agree too.
    awkward = holdout.iloc[:80]
    framework = load_model(dirs[family]).predict_proba(awkward)
    ort = onnx_proba(session(result.fp32_path), awkward, TASK)
    assert np.isfinite(ort).all()
    np.testing.assert_allclose(ort, framework, atol=1e-4)
    # Unknown categories really change the input (not silently dropped rows).
    assert len(ort) == 80


def test_torch_lookup_maps_unknown_to_index_zero(workspace, exported):
    _, _dirs, holdout = workspace
    sess = session(exported[TORCH_ONNX].fp32_path)
    row = holdout.iloc[[100]].copy()
    as_unknown, as_missing = row.copy(), row.copy()
    as_unknown["carrier"] = "never-seen"
    as_missing["carrier"] = None
    assert onnx_proba(sess, as_unknown, TASK) == pytest.approx(
        onnx_proba(sess, as_missing, TASK), abs=1e-7
    )
    assert onnx_proba(sess, as_unknown, TASK) != pytest.approx(
        onnx_proba(sess, row, TASK), abs=1e-7
    )


def _explained(path: Path, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    (probability, contributions) = session(path).run(
        ["probability", "contributions"], onnx_feed(frame, TASK)
    )
    return np.asarray(probability, np.float64).reshape(-1), np.asarray(contributions, np.float64)


def test_torch_terms_add_up_to_the_forward_logit(workspace):
    """The split is the model's own arithmetic: terms + bias is forward, to float32 rounding."""
    _, dirs, holdout = workspace
    model = load_model(dirs[TORCH_ONNX])
    numeric, indices = model.spec.encode(holdout)
    with torch.no_grad():
        args = torch.from_numpy(numeric), torch.from_numpy(indices)
        logit = model.module(*args).double().numpy()
        terms = model.module.terms(*args).double().numpy()
    bias = float(model.module.wide_dense.bias.detach())
    np.testing.assert_allclose(terms.sum(axis=1) + bias, logit, atol=1e-5)
    assert terms.shape[1] == len(model.spec.numeric) + len(model.spec.categorical) + 1


@pytest.mark.parametrize("served", ["fp32", "served"])
def test_contributions_plus_base_value_are_the_logit(workspace, exported, served):
    """Faithfulness: base_value + Σ contributions == logit(probability) on every holdout row,
    unknown and missing categories and NaN included, for the fp32 and the served graph."""
    _, _dirs, holdout = workspace
    result = exported[TORCH_ONNX]
    path = result.fp32_path if served == "fp32" else result.onnx_path
    model = onnx.load(path)
    explanation = read_explanation(
        {p.key: p.value for p in model.metadata_props}, {o.name for o in model.graph.output}
    )
    assert explanation is not None
    assert explanation.features[-1] == "deep"
    assert set(explanation.features[:-1]) == {f.name for f in TASK.features}
    probability, contributions = _explained(path, holdout)
    logit = np.log(probability) - np.log1p(-probability)
    reconstructed = explanation.base_value + contributions.sum(axis=1)
    assert np.abs(reconstructed - logit).max() <= 1e-4
    # Centred on the reference rows: the base value is the mean logit there, so the
    # contributions average to about zero over the holdout they were sampled from.
    assert abs(contributions.sum(axis=1).mean()) < 0.05
    # They are not all in one column: several inputs move the logit.
    spread = np.abs(contributions).mean(axis=0)
    assert (spread > 0.01).sum() >= 3


def test_changing_one_input_changes_its_own_contribution(workspace, exported):
    """A contribution belongs to its input: another carrier moves the carrier term (and the
    deep part, and its crosses), never the terms of inputs that were left alone."""
    _, _dirs, holdout = workspace
    path = exported[TORCH_ONNX].fp32_path
    names = read_explanation(
        {p.key: p.value for p in onnx.load(path).metadata_props}, {"contributions"}
    ).features
    rows = holdout.iloc[100:140].copy()
    other = rows.copy()
    other["carrier"] = "never-seen"
    _, before = _explained(path, rows)
    _, after = _explained(path, other)
    moved = np.abs(after - before).max(axis=0) > 1e-6
    crossed = {n for pair in (TASK.crosses or []) if "carrier" in pair for n in pair}
    allowed = {"carrier", "deep", *crossed}
    assert moved[names.index("carrier")]
    assert {n for n, m in zip(names, moved, strict=True) if m} <= allowed


def test_parity_gate_fails_with_the_numbers(workspace, tmp_path):
    _, dirs, holdout = workspace
    with pytest.raises(ExportParityError) as info:
        export_model(dirs["logreg"], holdout, tmp_path, ExportSettings(parity_atol=1e-12), TASK)
    assert info.value.max_abs_diff > 1e-12
    assert info.value.rows == len(holdout)
    assert "parity_atol" in str(info.value) and "logreg" in str(info.value)


def test_quantisation_report_and_decision(exported):
    report = exported[TORCH_ONNX].quantization
    assert report is not None
    assert report.int8_bytes < report.fp32_bytes  # MatMul weights became int8
    assert report.auc_loss == pytest.approx(report.fp32_roc_auc - report.int8_roc_auc)
    expected = decide_quantization(
        report.fp32_roc_auc, report.int8_roc_auc, report.fp32_bytes, report.int8_bytes, 0.005
    )
    assert report.keep is expected.keep
    served = exported[TORCH_ONNX].onnx_path.read_bytes()
    chosen = report.int8_path if report.keep else exported[TORCH_ONNX].fp32_path
    assert served == chosen.read_bytes()
    # Trees have no weights to quantise: never kept.
    assert exported["hist_gb"].quantization.keep is False


@pytest.mark.parametrize(
    ("fp32_auc", "int8_auc", "sizes", "keep"),
    [
        (0.750, 0.748, (1000, 400), True),  # small loss, smaller file
        (0.750, 0.740, (1000, 400), False),  # loses 0.01 > 0.005
        (0.750, 0.752, (1000, 400), True),  # int8 even better
        (0.750, 0.750, (1000, 1010), False),  # nothing was quantised
    ],
)
def test_decide_quantization(fp32_auc, int8_auc, sizes, keep):
    decision = decide_quantization(fp32_auc, int8_auc, *sizes, max_auc_loss=0.005)
    assert decision.keep is keep
    assert decision.reason


def test_cli_exports_a_registered_version(workspace, tmp_path):
    """``e2eai export --json --version V`` converts, checks parity and attaches model.onnx."""
    _, dirs, holdout = workspace
    settings = small_training_settings(tmp_path)
    holdout_path = tmp_path / "holdout.parquet"
    holdout.to_parquet(holdout_path)
    model_dir = dirs["hist_gb"]
    with ModelRegistry.from_settings(settings) as registry:
        version = registry.register(
            name=settings.serving.model_name,
            family="hist_gb",
            artifacts={
                "model.joblib": model_dir / "model.joblib",
                "model_info.json": model_dir / "model_info.json",
                "holdout.parquet": holdout_path,
            },
            metrics={"roc_auc": 0.7},
            params={},
            lineage={"feature_service": "x"},
        ).version
    env = {
        **os.environ,
        "E2EAI_HOME": str(tmp_path),
        "E2EAI_REGISTRY__DATABASE_URL": settings.registry.database_url,
        "E2EAI_ARTIFACTS__URI": settings.artifacts.uri,
    }
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("e2eai")),
            "export",
            "--json",
            "--version",
            str(version),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["model_version"] == version
    assert out["parity_max_abs_diff"] <= 1e-4
    assert out["quantized"] is False
    assert out["sha256"] == sha256_file(Path(out["onnx_path"]))
    with ModelRegistry.from_settings(settings) as registry:
        assert registry.get(version).artifacts["model.onnx"].sha256 == out["sha256"]
    assert pd.read_parquet(holdout_path).shape == holdout.shape
