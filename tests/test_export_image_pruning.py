"""Structured pruning of the fashion CNN on real Fashion-MNIST images: the weight surgery is
exact, the pruned network and its ONNX graph are smaller, the keep decision follows its
numbers, and the fp32 / int8 / pruned report holds all three.

One module-scoped CNN is trained through the platform's torch worker on 2,000 real training
images (2 epochs, one process), validated on 500 more, scored on the first 1,000 test images;
its pruned copy is fine-tuned for one epoch. Each ONNX export costs seconds, so there are few.
The last tests run the same CNN through the export the platform calls (``export.prune``).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
from fashion_subset import INSTALLED, NOT_INSTALLED

from e2eai.config import ExportSettings, TrainingSettings
from e2eai.errors import TrainingConfigError
from e2eai.export.image_onnx import (
    MAX_ACCURACY_LOSS,
    export_image_classifier,
    export_image_model_dir,
    onnx_probabilities,
    quantize_and_decide,
    session,
)
from e2eai.export.image_pruning import (
    PruningPolicy,
    compression_report,
    decide_pruned,
    fit_cnn_on_arrays,
    prune_and_decide,
    prune_cnn,
    strongest_filters,
)
from e2eai.export.model_export import export_model
from e2eai.tasks.fashion import DEBIAN_DIR, FashionTask
from e2eai.tasks.fashion.data import PARTS
from e2eai.tasks.fashion.idx import read_idx
from e2eai.training.cnn import FashionCnn
from e2eai.training.cnn_family import CnnModel, CnnParams
from e2eai.training.image_families import MODEL_FILE, PixelLogisticRegressionFamily
from e2eai.training.model_io import write_info

pytestmark = pytest.mark.skipif(not INSTALLED, reason=NOT_INSTALLED)

TRAIN, VALIDATION, HOLDOUT = 2000, 500, 1000
TRAINING = TrainingSettings(epochs=2, workers=1, seed=5)


def _part(name: str, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (read_idx(DEBIAN_DIR / file).values for file in PARTS[name])
    return images[start:stop], labels[start:stop].astype(np.int64)


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """uint8 pixels [N, 28, 28] and labels: train / validation from the training file,
    holdout from the test file."""
    return {
        "train": _part("train", 0, TRAIN),
        "validation": _part("train", TRAIN, TRAIN + VALIDATION),
        "holdout": _part("t10k", 0, HOLDOUT),
    }


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> CnnModel:
    work = tmp_path_factory.mktemp("cnn")
    params = CnnParams()
    module, _ = fit_cnn_on_arrays(
        params, 10, *data["train"], *data["validation"], work / "run", TRAINING
    )
    return CnnModel("cnn", work / "run" / "model", module, params, 10)


@pytest.fixture(scope="module")
def pruned_report(data, trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("pruned")
    fp32 = export_image_classifier(trained.module, out / "model.onnx", trained.params, 10)
    holdout = data["holdout"][0].astype(np.float32)[:, None] / 255
    report = prune_and_decide(
        trained,
        fp32,
        out,
        *data["train"],
        *data["validation"],
        holdout,
        data["holdout"][1],
        TRAINING,
        PruningPolicy(keep_fraction=0.5, finetune_epochs=1),
    )
    return report, holdout


def _real_batch(rows: int = 64) -> torch.Tensor:
    pixels = read_idx(DEBIAN_DIR / PARTS["t10k"][0]).values[:rows]
    return torch.from_numpy(pixels.astype(np.float32) / 255)[:, None]


# -- the surgery ---------------------------------------------------------------------------


def test_keeping_every_filter_rebuilds_an_identical_network(trained) -> None:
    """Before any fine-tuning, keep-fraction 1.0 gives bit-identical outputs."""
    x = _real_batch()
    full = prune_cnn(trained.module, trained.params, 1.0, 10)
    assert full.params.channels == trained.params.channels
    with torch.no_grad():
        assert torch.equal(full.module(x), trained.module.eval()(x))


def test_a_pruned_network_computes_the_original_with_dropped_channels_silenced(trained) -> None:
    """Zeroing the dropped channels' batch-norm scale and shift in the original (their
    activations become 0 after ReLU, so the next layer and the head ignore them) must give
    what the rebuilt network computes: every copied slice is the right one."""
    x = _real_batch()
    pruned = prune_cnn(trained.module, trained.params, 0.5, 10)
    assert pruned.params.channels == (8, 16)
    silenced = copy.deepcopy(trained.module).eval()
    norms = [m for m in silenced.features if isinstance(m, torch.nn.BatchNorm2d)]
    for norm, kept in zip(norms, pruned.kept_filters, strict=True):
        dropped = [i for i in range(norm.num_features) if i not in kept]
        norm.weight.data[dropped] = 0.0
        norm.bias.data[dropped] = 0.0
    with torch.no_grad():
        torch.testing.assert_close(pruned.module(x), silenced(x), atol=1e-5, rtol=0)


def test_the_kept_filters_are_those_of_largest_l1_norm() -> None:
    conv = torch.nn.Conv2d(1, 4, 3)
    with torch.no_grad():
        conv.weight.copy_(
            torch.tensor([1.0, -4.0, 2.0, 3.0])[:, None, None, None].expand(4, 1, 3, 3)
        )
    assert strongest_filters(conv, 0.5) == [1, 3]
    assert strongest_filters(conv, 0.01) == [1]  # at least one filter survives
    with pytest.raises(ValueError, match="keep_fraction"):
        prune_cnn(FashionCnn(CnnParams(), 10), CnnParams(), 0.0, 10)


# -- pruned, fine-tuned, exported, decided ---------------------------------------------------


def test_the_pruned_model_has_fewer_parameters_and_a_smaller_onnx_file(pruned_report) -> None:
    report, _ = pruned_report
    assert report.channels_before == (16, 32) and report.channels_after == (8, 16)
    assert report.parameters_after < report.parameters_before / 2
    # Every dropped weight is a float32 initialiser gone: the file shrinks by 4 bytes a
    # parameter (within 2 %: the exporter folds batch norm into the convolutions).
    saved = report.fp32.bytes - report.pruned.bytes
    assert saved == pytest.approx(
        4 * (report.parameters_before - report.parameters_after), rel=0.02
    )
    assert report.pruned.bytes < 0.6 * report.fp32.bytes
    graph = onnx.load(report.pruned.path).graph
    conv_out = [
        init.dims[0] for init in graph.initializer if len(init.dims) == 4
    ]  # conv weights [out, in, 3, 3]
    assert sorted(conv_out) == [8, 16]
    assert report.parity_max_abs_diff <= 1e-4
    assert report.pruned.latency_ms_batch1 > 0 and report.fp32.latency_ms_batch1 > 0


def test_fine_tuning_runs_through_the_worker_and_the_decision_follows_the_numbers(
    pruned_report,
) -> None:
    report, _ = pruned_report
    assert report.finetune_epochs == 1 and report.finetune_best_epoch in (0, 1)
    assert report.accuracy_loss == pytest.approx(report.fp32.accuracy - report.pruned.accuracy)
    expected = decide_pruned(
        report.fp32.accuracy, report.pruned.accuracy, report.fp32.bytes, report.pruned.bytes, 0.01
    )
    assert (report.keep, report.reason) == (expected.keep, expected.reason)
    # The same graphs judged against a loss they exceed are refused.
    if report.accuracy_loss > 0:
        stricter = decide_pruned(
            report.fp32.accuracy,
            report.pruned.accuracy,
            report.fp32.bytes,
            report.pruned.bytes,
            report.accuracy_loss / 2,
        )
        assert not stricter.keep and "accuracy points" in stricter.reason


def test_the_pruning_decision_refuses_a_loss_beyond_one_point() -> None:
    kept = decide_pruned(0.9000, 0.8920, 100_000, 40_000)
    assert kept.keep and "by -0.80 points" in kept.reason and "2.5× smaller" in kept.reason
    refused = decide_pruned(0.9000, 0.8880, 100_000, 40_000)
    assert not refused.keep and "1.20 accuracy points" in refused.reason
    assert not decide_pruned(0.9, 0.9, 40_000, 40_000).keep  # not smaller: nothing gained


def test_the_compression_report_sets_fp32_int8_and_pruned_side_by_side(
    data, pruned_report, tmp_path
) -> None:
    report, holdout = pruned_report
    calibration = data["train"][0][:300].astype(np.float32)[:, None] / 255
    quantization = quantize_and_decide(
        Path(report.fp32.path),
        calibration,
        holdout,
        data["holdout"][1],
    )
    compression = compression_report(quantization, report, holdout, rounds=2, repeats=20)
    by_name = {v.name: v for v in compression.variants}
    assert list(by_name) == ["fp32", "int8", "pruned"]
    assert by_name["int8"].kept == quantization.keep
    assert by_name["pruned"].kept == report.keep
    assert by_name["pruned"].accuracy == report.pruned.accuracy
    assert all(v.latency_ms_batch1 > 0 and v.bytes > 0 for v in compression.variants)
    kept = [v for v in compression.variants if v.kept]
    assert compression.edge_choice == min(kept, key=lambda v: v.bytes).name
    written = json.loads(compression.save(tmp_path / "compression_report.json").read_text())
    assert [v["name"] for v in written["variants"]] == ["fp32", "int8", "pruned"]
    assert written["edge_choice"] == compression.edge_choice


# -- in the export: ``export.prune`` -------------------------------------------------------

TASK = FashionTask.from_directory(DEBIAN_DIR)


def _frame(pixels: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """An image task's frame: each image as its 784 pixel bytes, and the label."""
    return pd.DataFrame({"image": [p.tobytes() for p in pixels], "label": labels})


def _rule(variants: dict[str, dict]) -> str:
    """The stated rule, recomputed: the smallest graph smaller than fp32 whose holdout
    accuracy is within its own bound of fp32's; fp32 when there is none."""
    fp32 = variants["fp32"]
    eligible = [fp32] + [
        v
        for v in variants.values()
        if v["name"] != "fp32"
        and v["bytes"] < fp32["bytes"]
        and fp32["accuracy"] - v["accuracy"] <= v["max_accuracy_loss"] + 1e-12
    ]
    return min(eligible, key=lambda v: v["bytes"])["name"]


def test_export_with_prune_serves_the_smallest_variant_within_its_bound(
    data, trained, tmp_path
) -> None:
    """``export_model`` with ``prune=True``: the CNN is pruned, fine-tuned on the training
    (calibration) rows, and fp32 / int8 / pruned / pruned int8 are compared in the report;
    the served file is the one the rule picks. Without ``prune`` nothing of it appears."""
    model_dir = shutil.copytree(trained.model_dir, tmp_path / "model")
    write_info(model_dir, "cnn", TASK, {})
    holdout = _frame(*data["holdout"])
    calibration = _frame(*data["train"])  # training rows only, as reference.parquet holds
    settings = ExportSettings(prune=True, pruning=PruningPolicy(finetune_epochs=1))
    out = tmp_path / "pruned"
    result = export_model(model_dir, holdout, out, settings, TASK, calibration, TRAINING)

    summary = result.summary()
    json.dumps(summary)  # what `e2eai export --json` prints
    pruning = summary["pruning"]
    assert pruning["applied"] is True
    variants = {v["name"]: v for v in pruning["compression"]["variants"]}
    assert list(variants) == ["fp32", "int8", "pruned", "pruned_int8"]
    for v in variants.values():
        assert v["bytes"] > 0 and v["latency_ms_batch1"] > 0 and 0 < v["accuracy"] <= 1
        assert isinstance(v["kept"], bool) and v["reason"]
    fp32, pruned = variants["fp32"], variants["pruned"]
    assert pruned["bytes"] < fp32["bytes"]
    assert pruned["parameters"] < fp32["parameters"] == variants["int8"]["parameters"]
    assert variants["int8"]["max_accuracy_loss"] == MAX_ACCURACY_LOSS
    assert pruned["max_accuracy_loss"] == variants["pruned_int8"]["max_accuracy_loss"] == 0.01
    assert fp32["accuracy"] == summary["quantization"]["fp32"]["accuracy"]
    assert pruning["pruning"]["finetune_epochs"] == 1
    assert pruning["pruning"]["channels_after"] == [8, 16]

    chosen = _rule(variants)
    assert pruning["served"] == pruning["compression"]["edge_choice"] == chosen
    assert result.onnx_path.read_bytes() == Path(variants[chosen]["path"]).read_bytes()
    assert summary["quantized"] == (chosen in ("int8", "pruned_int8"))
    images = data["holdout"][0][:32].astype(np.float32)[:, None] / 255
    probabilities = onnx_probabilities(session(result.onnx_path), images)
    assert probabilities.shape == (32, 10) and (probabilities >= 0).all()
    # An int8 graph's output is quantised too (uint8 steps of 1/255): its rows sum to 1 only
    # within a few steps.
    atol = 0.02 if chosen in ("int8", "pruned_int8") else 1e-5
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=atol)
    assert not (out / "pruning_run").exists()  # the fine-tuning run is not shipped

    plain = export_model(
        model_dir, holdout, tmp_path / "plain", ExportSettings(), TASK, calibration, TRAINING
    )
    assert "pruning" not in plain.summary() and plain.pruning is None
    assert not list((tmp_path / "plain").glob("*pruned*"))
    q = plain.quantization
    served = q.int8.path if q is not None and q.keep else plain.fp32_path
    assert plain.onnx_path.read_bytes() == Path(served).read_bytes()


def _linear_export(self, model, out_path, task, reference=None) -> Path:
    """pixel_logreg's standardise → logistic regression as one linear layer (the same map)."""
    scale, logistic = model.pipeline.named_steps["scale"], model.pipeline.named_steps["model"]
    weight = logistic.coef_ / scale.scale_
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
        bias = logistic.intercept_ - weight @ scale.mean_
        linear.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
    module = torch.nn.Sequential(torch.nn.Flatten(), linear).eval()
    return export_image_classifier(module, out_path, classes=weight.shape[0])


def test_prune_does_not_apply_to_pixel_logreg_and_says_so(data, tmp_path, monkeypatch) -> None:
    """The pixel baseline has no filters to prune. Its own exporter refuses it (evaluated,
    not served) with ``prune`` as without; given an exporter, it exports as without
    ``prune`` and the report says pruning does not apply."""
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pixels, labels = data["train"][0][:600], data["train"][1][:600]
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("model", LogisticRegression(C=0.01, max_iter=200))]
    ).fit(pixels.reshape(len(pixels), -1).astype(np.float32) / 255, labels)
    model_dir = tmp_path / "pixel"
    model_dir.mkdir()
    joblib.dump(pipeline, model_dir / MODEL_FILE)
    write_info(model_dir, "pixel_logreg", TASK, {"C": 0.01})
    holdout = _frame(data["holdout"][0][:300], data["holdout"][1][:300])
    calibration = _frame(pixels, labels)
    settings = ExportSettings(prune=True, pruning=PruningPolicy(finetune_epochs=1))
    for export_settings in (ExportSettings(), settings):
        with pytest.raises(TrainingConfigError, match="evaluated, not served"):
            export_image_model_dir(
                model_dir, holdout, tmp_path / "refused", export_settings, TASK, calibration
            )

    monkeypatch.setattr(PixelLogisticRegressionFamily, "export_onnx", _linear_export)
    out = tmp_path / "onnx"
    result = export_image_model_dir(model_dir, holdout, out, settings, TASK, calibration, TRAINING)
    summary = result.summary()
    assert summary["pruning"]["applied"] is False
    assert "pruning does not apply to pixel_logreg" in summary["pruning"]["reason"]
    assert summary["pruning"]["compression"] is None and summary["pruning"]["pruning"] is None
    q = result.quantization
    assert q is not None  # int8 decided as without prune
    assert summary["pruning"]["served"] == ("int8" if q.keep else "fp32")
    assert summary["quantized"] == q.keep
    served = q.int8.path if q.keep else result.fp32_path
    assert result.onnx_path.read_bytes() == Path(served).read_bytes()
    assert not list(out.glob("*pruned*")) and not (out / "pruning_run").exists()
    assert result.parity.max_abs_diff <= 1e-4
