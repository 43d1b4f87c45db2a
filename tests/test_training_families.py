"""Model families as objects: the registry, its errors, and a new family with no new branches."""

from __future__ import annotations

import dataclasses
import json

import onnx
import pytest
from synthetic import flight_task, small_training_settings, synthetic_frame

from e2eai.config import Settings
from e2eai.errors import ModelArtifactError, TrainingConfigError
from e2eai.export.registered import export_local
from e2eai.training import run_training
from e2eai.training.families import (
    family,
    load_model,
    model_files,
    register_family,
    registered_families,
    searchable_families,
    warm_startable_families,
)
from e2eai.training.sklearn_families import LogisticRegressionFamily
from e2eai.training.torch_family import TorchFamily

TASK = flight_task()


@pytest.fixture(scope="module")
def frame():
    return synthetic_frame(2500, days=75, seed=9)


def test_builtin_families_say_how_they_train():
    assert {"hist_gb", "logreg", "torch_mlp"} <= set(registered_families())
    mlp = family("torch_mlp")
    assert isinstance(mlp, TorchFamily) and mlp.trains_with_ddp and mlp.supports_warm_start
    assert mlp.search_space is not None
    for name in ("hist_gb", "logreg"):
        assert not family(name).trains_with_ddp and family(name).search_space is None
    assert searchable_families() == ["cnn", "minilm_finetune", "torch_mlp"]
    assert {"minilm_finetune", "torch_mlp"} <= set(warm_startable_families())
    assert model_files()[0] == "model_info.json"
    assert {"model.pt", "model_spec.json", "model.joblib"} <= set(model_files())


def test_an_unknown_family_is_refused_when_training_starts(tmp_path, frame):
    settings = small_training_settings(tmp_path, family="xgboost")  # a str: checked at use
    registered = r"registered families: (\w+, )*hist_gb, logreg"
    with pytest.raises(TrainingConfigError, match=registered) as info:
        run_training(settings, frame, task=TASK)
    assert "'xgboost'" in str(info.value)


def test_family_names_must_look_like_names():
    with pytest.raises(ValueError, match=r"training\.family"):
        Settings(training={"family": "no spaces please"})


def test_a_family_the_task_does_not_list_is_refused(tmp_path, frame):
    task = dataclasses.replace(TASK, families=("hist_gb", "logreg"))
    settings = small_training_settings(tmp_path, family="torch_mlp")
    with pytest.raises(TrainingConfigError, match="does not apply to task 'flights'"):
        run_training(settings, frame, task=task)


def test_warm_start_and_search_need_a_family_that_has_them(tmp_path, frame):
    with pytest.raises(TrainingConfigError, match=r"warm start applies to .*torch_mlp"):
        run_training(small_training_settings(tmp_path, family="hist_gb"), frame, 1, task=TASK)
    with pytest.raises(
        TrainingConfigError, match="families with one: cnn, minilm_finetune, torch_mlp"
    ):
        run_training(
            small_training_settings(tmp_path, family="logreg", hpo_trials=2), frame, task=TASK
        )


def test_a_model_of_an_unknown_family_is_refused_on_load(tmp_path):
    (tmp_path / "model_info.json").write_text(json.dumps({"family": "vit", "params": {}}))
    with pytest.raises(ModelArtifactError, match="unknown model family 'vit'"):
        load_model(tmp_path)
    with pytest.raises(ModelArtifactError, match=r"model_info\.json is missing"):
        load_model(tmp_path / "nothing")


class _StrongLogisticRegression(LogisticRegressionFamily):
    """A new family by subclassing: less regularised logistic regression."""

    name = "logreg_c10"
    title = "strong logistic regression"

    def pipeline(self, task, seed):
        pipeline = super().pipeline(task, seed)
        pipeline.named_steps["model"].set_params(C=10.0)
        return pipeline


def test_a_registered_family_trains_evaluates_and_exports_with_no_new_branches(tmp_path, frame):
    register_family(_StrongLogisticRegression())
    task = dataclasses.replace(TASK, families=(*TASK.families, "logreg_c10"))
    settings = small_training_settings(tmp_path, family="logreg_c10")
    result = run_training(settings, frame, task=task)
    assert result.family == "logreg_c10" and result.params["C"] == 10.0
    assert set(result.metrics) == {"logreg", "hist_gb", "model"}
    assert load_model(result.model_dir).family == "logreg_c10"
    exported = export_local(settings, result.model_dir, task=task)
    assert exported.family == "logreg_c10"
    assert [i.name for i in onnx.load(exported.onnx_path).graph.input] == task.feature_names
