"""Structured pruning of the fashion CNN on real Fashion-MNIST images: the weight surgery is
exact, the pruned network and its ONNX graph are smaller, the keep decision follows its
numbers, and the fp32 / int8 / pruned report holds all three.

One module-scoped CNN is trained through the platform's torch worker on 2,000 real training
images (2 epochs, one process), validated on 500 more, scored on the first 1,000 test images;
its pruned copy is fine-tuned for one epoch. Each ONNX export costs seconds, so there are two.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from fashion_subset import INSTALLED, NOT_INSTALLED

from e2eai.config import TrainingSettings
from e2eai.export.image_onnx import export_image_classifier, quantize_and_decide
from e2eai.export.image_pruning import (
    PruningPolicy,
    compression_report,
    decide_pruned,
    fit_cnn_on_arrays,
    prune_and_decide,
    prune_cnn,
    strongest_filters,
)
from e2eai.tasks.fashion import DEBIAN_DIR
from e2eai.tasks.fashion.data import PARTS
from e2eai.tasks.fashion.idx import read_idx
from e2eai.training.cnn import FashionCnn
from e2eai.training.cnn_family import CnnModel, CnnParams

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
