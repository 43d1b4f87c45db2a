"""The model families e2eai can train, by name, and loading a model directory by its family.

Built in: ``torch_mlp`` (Wide & Deep MLP, DDP, HPO, warm start), ``torch_gru`` (Wide & Deep
with a GRU over a task's sequence, DDP), ``hist_gb`` and ``logreg``
(scikit-learn); for image tasks ``cnn`` (DDP) and its baseline ``pixel_logreg``; for text
tasks ``minilm_finetune`` (DDP, HPO, warm start) and its baselines ``tfidf_logreg`` and
``minilm_frozen_logreg``.
``register_family`` adds one (a text encoder): every stage then trains, evaluates, exports
and warm-starts it through the :class:`Family` interface.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from e2eai.errors import ModelArtifactError, TrainingConfigError
from e2eai.training.family import Family, LoadedModel
from e2eai.training.model_io import INFO_FILE, read_info
from e2eai.training.torch_family import TorchFamily

BUILTIN: tuple[str, ...] = (
    "e2eai.training.mlp_family:WideDeepFamily",
    "e2eai.training.gru_family:RecurrentWideDeepFamily",
    "e2eai.training.sklearn_families:HistGradientBoostingFamily",
    "e2eai.training.sklearn_families:LogisticRegressionFamily",
    "e2eai.training.cnn_family:CnnFamily",
    "e2eai.training.image_families:PixelLogisticRegressionFamily",
    "e2eai.training.minilm_families:MiniLmFinetuneFamily",
    "e2eai.training.minilm_families:FrozenMiniLmLogisticFamily",
    "e2eai.training.text_families:TfidfLogisticRegressionFamily",
)
"""The built-in families, by where they live: loaded on the first lookup, so the registry
stands below the families (and the DDP worker they train with) instead of beside them."""

_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Make ``family`` available under ``family.name`` (replacing one of that name)."""
    _FAMILIES[family.name] = family
    return family


def _registry() -> dict[str, Family]:
    if not _BUILTIN_LOADED:
        for path in BUILTIN:
            module, _, name = path.partition(":")
            built_in: Family = getattr(importlib.import_module(module), name)()
            _FAMILIES.setdefault(built_in.name, built_in)  # a registered one of that name wins
        _BUILTIN_LOADED.append(True)
    return _FAMILIES


_BUILTIN_LOADED: list[bool] = []


def registered_families() -> list[str]:
    """Every name ``training.family`` accepts."""
    return sorted(_registry())


def family(name: str) -> Family:
    """The family registered as ``name`` (TrainingConfigError naming the families if none)."""
    try:
        return _registry()[name]
    except KeyError:
        raise TrainingConfigError(
            f"training.family {name!r} is not a model family; registered families: "
            f"{', '.join(registered_families())}"
        ) from None


def torch_family(name: str) -> TorchFamily:
    """The family ``name``, which must train with the DDP worker."""
    found = family(name)
    if not isinstance(found, TorchFamily):
        raise TrainingConfigError(f"the {name} family does not train with torch")
    return found


def searchable_families() -> list[str]:
    """Families with a hyper-parameter search space."""
    return [name for name in registered_families() if _registry()[name].search_space is not None]


def warm_startable_families() -> list[str]:
    """Families that can continue from a registered version."""
    return [name for name in registered_families() if _registry()[name].supports_warm_start]


def model_files() -> tuple[str, ...]:
    """Files that can make up a model directory of any family (``model_info.json`` first)."""
    files = [INFO_FILE]
    for registered in _registry().values():
        files += [name for name in registered.model_files if name not in files]
    return tuple(files)


def load_model(model_dir: Path) -> LoadedModel:
    """Load the model saved in ``model_dir`` with the family its ``model_info.json`` names."""
    name = read_info(model_dir)["family"]
    if name not in _registry():
        raise ModelArtifactError(
            f"{model_dir / INFO_FILE}: unknown model family {name!r}; registered families: "
            f"{', '.join(registered_families())}"
        )
    return _FAMILIES[name].load(model_dir)
