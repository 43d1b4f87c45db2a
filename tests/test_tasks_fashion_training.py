"""The fashion task's models on a real Fashion-MNIST subset: augmentation on training batches
only, the CNN and its pixel baseline through ``run_training``, gates, the registry entry, the
ONNX export's parity and the int8 static-quantisation decision with its numbers.

One module-scoped run trains both families on 2,500 real images (3 epochs, one process);
the tests read what it produced.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
from fashion_subset import INSTALLED, NOT_INSTALLED, subset_folder

from e2eai.config import Settings, TrainingSettings
from e2eai.export.image_onnx import (
    INPUT_NAME,
    OUTPUT_NAME,
    decide_int8,
    export_image_model,
    onnx_probabilities,
    session,
)
from e2eai.tasks.fashion import DEBIAN_DIR, FashionTask
from e2eai.tasks.fashion.data import PARTS
from e2eai.tasks.fashion.idx import read_idx
from e2eai.training.cnn import FashionCnn, ImageAugmentation
from e2eai.training.cnn_family import CnnFamily, CnnParams
from e2eai.training.families import load_model
from e2eai.training.family import FitRequest
from e2eai.training.image_families import frame_images, frame_labels
from e2eai.training.image_run import stratified_class_split

pytestmark = pytest.mark.skipif(not INSTALLED, reason=NOT_INSTALLED)

SUBSET = {"train": 2000, "t10k": 500}


@pytest.fixture(scope="module")
def subset_task(tmp_path_factory) -> tuple[FashionTask, Settings]:
    root = tmp_path_factory.mktemp("fashion")
    task = FashionTask.from_directory(subset_folder(root / "idx", SUBSET), training_rows=None)
    settings = Settings(
        home=root / "home",
        task="fashion",
        training=TrainingSettings(epochs=3, workers=1, seed=5),
    )
    task.prepare_data(settings)
    return task, settings


@pytest.fixture(scope="module")
def trained(subset_task):
    from e2eai.training.run import run_training

    task, settings = subset_task
    return run_training(settings, task=task)


# -- augmentation: training batches only --------------------------------------------------


def _real_images(rows: int = 64) -> torch.Tensor:
    pixels = read_idx(DEBIAN_DIR / PARTS["t10k"][0]).values[:rows]
    return torch.from_numpy(pixels.astype(np.float32) / 255)[:, None]


def test_augmentation_is_the_identity_in_eval_mode_and_random_in_training() -> None:
    x = _real_images()
    layer = ImageAugmentation(padding=2, flip=True, noise_std=0.03)
    assert torch.equal(layer.eval()(x), x)
    torch.manual_seed(0)
    out = layer.train()(x)
    assert out.shape == x.shape and not torch.equal(out, x)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0  # noise clipped to [0, 1]


def test_each_crop_is_a_shift_of_its_own_image_and_each_flip_a_mirror() -> None:
    x = _real_images()
    torch.manual_seed(1)
    out = ImageAugmentation(padding=2, flip=True, noise_std=0.0).train()(x)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    shifts, flips = set(), 0
    for i in range(len(x)):
        found = None
        for dy in range(5):
            for dx in range(5):
                crop = padded[i, :, dy : dy + 28, dx : dx + 28]
                if torch.equal(out[i], crop):
                    found = (dy, dx, False)
                elif torch.equal(out[i], crop.flip(-1)):
                    found = (dy, dx, True)
        assert found is not None, f"image {i} is not a shifted (mirrored) copy of itself"
        shifts.add(found[:2])
        flips += found[2]
    assert len(shifts) > 5  # offsets drawn per image, not one per batch
    assert 10 < flips < 54  # about half mirrored


@pytest.mark.slow
def test_the_worker_augments_training_batches_and_never_evaluation(subset_task, tmp_path) -> None:
    """Every ImageAugmentation call of a real training run, recorded by a forward hook."""
    task, settings = subset_task
    from e2eai.tasks.fashion.data import prepared_images

    frame = prepared_images(settings)
    split = stratified_class_split(frame, "label", "image_id", 0.2, 0.15, 5, 1.0, 800)
    calls: list[tuple[bool, bool, int]] = []

    def record(module, inputs, output) -> None:
        if isinstance(module, ImageAugmentation):
            calls.append((module.training, not torch.equal(inputs[0], output), len(output)))

    training = TrainingSettings(epochs=1, workers=1, seed=5)
    request = FitRequest(
        task, split.train, split.validation, training, tmp_path, overrides={"augment": True}
    )
    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        CnnFamily().fit(request)
    finally:
        handle.remove()
    in_training = [c for c in calls if c[0]]
    in_eval = [c for c in calls if not c[0]]
    assert sum(n for _, _, n in in_training) == len(split.train)  # one pass over the epoch
    assert all(changed for _, changed, _ in in_training)
    # Evaluation (epoch 0 and epoch 1 on validation) sees the images untouched.
    assert sum(n for _, _, n in in_eval) == 2 * len(split.validation)
    assert not any(changed for _, changed, _ in in_eval)


# -- training, gates, registry -------------------------------------------------------------


@pytest.mark.slow
def test_cnn_and_pixel_baseline_are_trained_scored_and_gated(trained) -> None:
    metrics = trained.metrics
    assert set(metrics) == {"model", "pixel_logreg"}
    for name in ("model", "pixel_logreg"):
        m = metrics[name]
        assert m["rows"] == 500  # the stratified holdout: 20 % of 2,500
        assert 0.6 < m["accuracy"] <= 1.0 and 0.5 < m["macro_f1"] <= 1.0
        assert np.asarray(m["confusion_matrix"]).sum() == m["rows"]
        assert len(m["recall_by_class"]) == 10
    gate = next(g for g in trained.gates if g.name.startswith("beats_"))
    lead = metrics["model"]["accuracy"] - metrics["pixel_logreg"]["accuracy"]
    assert gate.observed["lead"] == pytest.approx(lead)
    assert gate.passed == (lead >= gate.threshold)
    assert gate.threshold == 0.01
    assert trained.family == "cnn" and trained.torch_summary.epochs_run >= 1
    assert trained.plots["confusion_matrix"].is_file()


@pytest.mark.slow
def test_the_candidate_is_registered_and_loads_back_identically(subset_task, trained) -> None:
    from e2eai.training.champion import fetch_model_dir, open_registry
    from e2eai.training.registration import register_candidate

    task, settings = subset_task
    registry = open_registry(settings)
    try:
        version = register_candidate(settings, trained, registry=registry, task=task)
        record = registry.get(version.version)
        assert record.name == "fashion" and record.family == "cnn"
        assert record.stage == "candidate"
        assert {"cnn.pt", "cnn_spec.json", "model_info.json", "holdout.parquet"} <= set(
            record.artifacts
        )
        assert (
            record.metrics["holdout"]["model"]["accuracy"] == trained.metrics["model"]["accuracy"]
        )
        assert record.lineage["task"] == "fashion"
        fetched = fetch_model_dir(registry, record.version, settings.home / "fetched")
    finally:
        registry.close()
    holdout = pd.read_parquet(trained.holdout_path)
    images = frame_images(holdout)
    again = load_model(fetched).class_probabilities(images)
    np.testing.assert_array_equal(again, load_model(trained.model_dir).class_probabilities(images))


@pytest.mark.slow
def test_a_retrained_model_is_gated_against_the_registered_champion(
    subset_task, trained, tmp_path
) -> None:
    from e2eai.training.champion import open_registry
    from e2eai.training.registration import register_candidate
    from e2eai.training.run import run_training

    task, settings = subset_task
    registry = open_registry(settings)
    try:
        version = register_candidate(settings, trained, registry=registry, task=task).version
        registry.transition(version, "champion", reason="first fashion model (test)")
    finally:
        registry.close()
    again = run_training(settings, task=task, run_dir=tmp_path / "retrain")
    # The champion is re-scored on the new run's holdout: the same rows, so the same figure.
    assert again.champion_version == version
    assert again.metrics["champion"]["accuracy"] == trained.metrics["model"]["accuracy"]
    gate = next(g for g in again.gates if g.name == "not_worse_than_champion")
    gap = again.metrics["model"]["accuracy"] - again.metrics["champion"]["accuracy"]
    assert gate.observed["gap"] == pytest.approx(gap)
    assert gate.passed == (gap >= -gate.threshold)
    assert f"champion v{version}" in gate.message


# -- export: parity and int8 ---------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(subset_task, trained, tmp_path_factory):
    task, _ = subset_task
    holdout = pd.read_parquet(trained.holdout_path)
    train = pd.read_parquet(trained.run_dir / "reference.parquet")  # training rows only
    model = load_model(trained.model_dir)
    report = export_image_model(
        model,
        tmp_path_factory.mktemp("onnx"),
        calibration_images=frame_images(train)[:500],
        images=frame_images(holdout),
        y=frame_labels(holdout, task.label, 10),
    )
    return model, report, holdout


@pytest.mark.slow
def test_the_onnx_graph_takes_fp32_images_and_matches_torch(exported) -> None:
    model, report, holdout = exported
    graph = onnx.load(report.onnx_path).graph
    (image,) = graph.input
    assert image.name == INPUT_NAME
    assert image.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = image.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 28, 28]
    assert [o.name for o in graph.output] == [OUTPUT_NAME]
    # No random op: the augmentation layer is the identity in the exported (eval) graph.
    assert not {n.op_type for n in graph.node} & {"RandomNormalLike", "RandomUniformLike"}
    assert report.parity.max_abs_diff <= 1e-4 and report.parity.rows == 10 * len(holdout)
    sess = session(Path(report.onnx_path))
    images = frame_images(holdout)
    for batch in (1, 7):
        np.testing.assert_allclose(
            onnx_probabilities(sess, images[:batch]),
            model.class_probabilities(images[:batch]),
            atol=1e-4,
        )


@pytest.mark.slow
def test_int8_static_quantisation_is_decided_on_its_numbers(exported) -> None:
    _, report, _ = exported
    q = report.quantization
    assert q is not None and q.calibration_images == 500
    assert q.int8.bytes < q.fp32.bytes
    assert q.fp32.latency_ms_batch1 > 0 and q.int8.latency_ms_batch1 > 0
    assert q.accuracy_loss == pytest.approx(q.fp32.accuracy - q.int8.accuracy)
    expected = decide_int8(q.fp32.accuracy, q.int8.accuracy, q.fp32.bytes, q.int8.bytes)
    assert (q.keep, q.reason) == (expected.keep, expected.reason)
    assert q.top1_agreement > 0.9
    graph = onnx.load(q.int8.path).graph
    assert "QuantizeLinear" in {n.op_type for n in graph.node}
    assert report.served_path == (q.int8.path if q.keep else report.onnx_path)


def test_the_int8_decision_refuses_a_loss_beyond_half_a_point() -> None:
    kept = decide_int8(0.9000, 0.8960, 100_000, 30_000)
    assert kept.keep and "by -0.40 points" in kept.reason and "3.3× smaller" in kept.reason
    refused = decide_int8(0.9000, 0.8940, 100_000, 30_000)
    assert not refused.keep and "0.60 accuracy points" in refused.reason
    assert not decide_int8(0.9, 0.9, 30_000, 30_000).keep  # not smaller: nothing gained


def test_params_reject_unknown_names() -> None:
    with pytest.raises(Exception, match="unknown cnn parameter"):
        CnnParams.from_dict({"chanels": [8, 16]})
    module = FashionCnn(CnnParams(channels=(4, 8)), classes=10)
    assert module(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


# -- random search --------------------------------------------------------------------------


def test_the_cnn_is_tuned_by_seeded_random_search_over_its_space(subset_task) -> None:
    """``training.hpo_trials`` runs a random search (the seed's example) over the CNN's space:
    the points tried are exactly a seeded RandomSampler's, inside the space, and the model
    is trained with the best one."""
    import optuna

    from e2eai.training.run import run_training
    from e2eai.training.search_space import CNN_SEARCH_SPACE, suggest

    task, settings = subset_task
    training = settings.training.model_copy(update={"hpo_trials": 3, "epochs": 1, "seed": 21})
    tuned = settings.model_copy(update={"training": training})
    result = run_training(tuned, task=task)
    trials = pd.read_csv(result.model_dir / "hpo_trials.csv")
    assert len(trials) == 3
    expected = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=21))
    for row in trials.itertuples():
        point = suggest(expected.ask(), CNN_SEARCH_SPACE)
        assert row.params_learning_rate == pytest.approx(point["learning_rate"])
        assert row.params_augment == point["augment"]
        assert 0.1 <= row.params_dropout <= 0.5
    best = trials.loc[trials["value"].idxmax()]
    assert result.params["learning_rate"] == pytest.approx(best["params_learning_rate"])
