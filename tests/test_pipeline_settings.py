"""Settings of a pipeline run: environment, JSON overrides and the run's parameters."""

from __future__ import annotations

from datetime import date

import pytest

from e2eai.errors import PipelineError
from e2eai.pipeline.run_settings import resolve_run_settings, settings_from_json, settings_to_json


def test_overrides_merge_with_the_environment_section_by_section(monkeypatch):
    monkeypatch.setenv("E2EAI_TRAINING__EPOCHS", "3")
    settings = settings_from_json('{"training": {"workers": 1}}')
    assert settings.training.epochs == 3  # from the environment
    assert settings.training.workers == 1  # from the overrides


def test_parameters_win_and_empty_ones_keep_the_setting():
    settings = resolve_run_settings(
        '{"training": {"family": "torch_mlp"}, "data": {"end": "2013-06-30"}}',
        data_start="2013-02-01",
        family="logreg",
        hpo_trials=-1,
    )
    assert settings.training.family == "logreg"
    assert settings.data.start == date(2013, 2, 1)
    assert settings.data.end == date(2013, 6, 30)
    assert settings.training.hpo_trials == 0  # the default: -1 kept it


def test_resolved_settings_round_trip_through_json():
    settings = resolve_run_settings("{}", family="hist_gb", hpo_trials=4)
    assert settings_from_json(settings_to_json(settings)) == settings


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "settings_json is not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"training": {"family": "x g"}}', "training.family"),
        ('{"data": {"start": "2013-05-01", "end": "2013-01-01"}}', "is before data.start"),
    ],
)
def test_bad_overrides_name_what_is_wrong(text, message):
    with pytest.raises(PipelineError, match=message):
        settings_from_json(text)


def test_an_unregistered_family_is_refused_before_any_step_runs():
    from e2eai.pipeline.steps import configure_step

    with pytest.raises(PipelineError, match=r"training\.family: .*xgboost.*torch_mlp"):
        configure_step("{}", "", "", "", "", "xgboost", -1)


def test_a_bad_parameter_names_its_field():
    with pytest.raises(PipelineError, match=r"training\.train_start"):
        resolve_run_settings("{}", train_start="2013-13-01")


def test_the_task_parameter_chooses_the_task_and_wins_over_the_overrides() -> None:
    from e2eai.pipeline.steps import configure_step

    settings = resolve_run_settings('{"task": "credit"}', task="fashion")
    assert settings.task == "fashion"
    assert resolve_run_settings('{"task": "credit"}').task == "credit"
    with pytest.raises(PipelineError, match="unknown task 'nope'"):
        configure_step("{}", "", "", "", "", "", -1, "nope")


def test_a_familys_own_epoch_budget_survives_the_runs_frozen_settings():
    """Each step rebuilds the settings from the run's full JSON, where every field looks set:
    an epoch budget left to the family must stay left to it (minilm_finetune trains 2 epochs
    by default, the other torch families 6), and a set one must win."""
    from e2eai.config import DEFAULT_EPOCHS, Settings

    frozen = settings_from_json(settings_to_json(Settings(task="support-triage")))
    assert frozen.training.epochs is None
    assert frozen.training.epochs_or(2) == 2 and frozen.training.epochs_or() == DEFAULT_EPOCHS
    chosen = settings_from_json(settings_to_json(Settings(training={"epochs": 3})))
    assert chosen.training.epochs_or(2) == 3
