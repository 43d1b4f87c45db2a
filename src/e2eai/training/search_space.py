"""Hyper-parameter search spaces, defined once as data.

A family's ``search_space`` is a tuple of ``ParamSpec``; ``SEARCH_SPACE`` is the torch_mlp
family's, ``TEXT_SEARCH_SPACE`` the text encoder's. Optuna samples from it here; on a
cluster the same specs render as the ``parameters`` of a Katib Experiment
(``katib_parameters``), so the two searches cannot drift apart. Names are fields of
``TrainingSettings`` (and of the family's parameters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class ParamSpec:
    """One searched hyper-parameter: a float/int range (optionally log-scaled) or choices."""

    name: str
    kind: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: int | None = None
    choices: tuple[Any, ...] = ()


SEARCH_SPACE: tuple[ParamSpec, ...] = (
    ParamSpec("learning_rate", "float", 1e-4, 3e-2, log=True),
    ParamSpec("hidden_width", "int", 32, 256, step=32),
    ParamSpec("depth", "int", 1, 4),
    ParamSpec("dropout", "float", 0.0, 0.5),
    ParamSpec("optimizer", "categorical", choices=("adam", "sgd", "rmsprop")),
    ParamSpec("batch_size", "categorical", choices=(256, 512, 1024, 2048)),
    ParamSpec("weight_decay", "float", 1e-6, 1e-1, log=True),
    ParamSpec("embedding_dim", "int", 2, 16),
    ParamSpec("lr_schedule", "categorical", choices=("constant", "cosine", "onecycle")),
    # Wide & Deep: how fast the MLP may move next to the linear part. (numeric_bins is not
    # searched: its edges are learned with the spec, once, before the trials.)
    ParamSpec("deep_lr_factor", "float", 0.03, 1.0, log=True),
)


TEXT_SEARCH_SPACE: tuple[ParamSpec, ...] = (
    # Fine-tuning a pre-trained encoder: rates around 5e-5, a few epochs (each costs minutes
    # on CPU), and how much of a message is read (tweets fit in 64 word pieces).
    ParamSpec("learning_rate", "float", 1e-5, 2e-4, log=True),
    ParamSpec("epochs", "int", 1, 3),
    ParamSpec("max_length", "categorical", choices=(32, 48, 64)),
)
"""The ``minilm_finetune`` family's space (names of its ``MiniLmParams``)."""


CNN_SEARCH_SPACE: tuple[ParamSpec, ...] = (
    # The CNN's optimiser and regularisation, and whether to augment (off by default: it
    # helped none of the short runs measured; a search with more epochs may say otherwise).
    ParamSpec("learning_rate", "float", 5e-4, 5e-3, log=True),
    ParamSpec("dropout", "float", 0.1, 0.5),
    ParamSpec("weight_decay", "float", 1e-5, 1e-3, log=True),
    ParamSpec("augment", "categorical", choices=(False, True)),
)
"""The ``cnn`` family's space (names of its ``CnnParams``), searched at random."""


def suggest(trial: Any, space: tuple[ParamSpec, ...] = SEARCH_SPACE) -> dict[str, Any]:
    """Sample one point of ``space`` with an Optuna trial."""
    params: dict[str, Any] = {}
    for spec in space:
        if spec.kind == "float":
            params[spec.name] = trial.suggest_float(spec.name, spec.low, spec.high, log=spec.log)
        elif spec.kind == "int":
            params[spec.name] = trial.suggest_int(
                spec.name, int(spec.low), int(spec.high), step=spec.step or 1
            )
        else:
            params[spec.name] = trial.suggest_categorical(spec.name, list(spec.choices))
    return params


def katib_parameters(space: tuple[ParamSpec, ...] = SEARCH_SPACE) -> list[dict[str, Any]]:
    """The space as Katib ``spec.parameters`` (parameterType + feasibleSpace)."""
    rendered = []
    for spec in space:
        if spec.kind == "categorical":
            feasible = {"list": [str(choice) for choice in spec.choices]}
            kind = "categorical"
        else:
            feasible = {"min": str(spec.low), "max": str(spec.high)}
            if spec.step:
                feasible["step"] = str(spec.step)
            if spec.log:
                feasible["distribution"] = "logUniform"
            kind = "double" if spec.kind == "float" else "int"
        rendered.append({"name": spec.name, "parameterType": kind, "feasibleSpace": feasible})
    return rendered
