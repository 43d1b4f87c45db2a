"""Wide & Deep with a GRU over a sequence of numeric inputs (a plane's earlier legs of the day).

The task names the sequence (``Task.sequence``): steps of numeric inputs, the earliest first,
each step the same fields (for flights: the gap, delays and slack of each earlier leg). A GRU
reads the steps that are present (a step with every field missing, a leg the plane did not
fly, leaves the state as it was) and its final state joins the deep part's inputs beside the
numerics and embeddings; the wide part sees the same columns as any other numeric. So the
model contains the Wide & Deep model, and the exported graph keeps its contract: one input
per task feature (the steps' columns are ordinary inputs), ``probability`` out.

Each step's fields enter as the Wide & Deep model normalises them (imputed, clipped to the
training range, standardised), with missing ones set to 0 and flagged by an indicator.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from e2eai.errors import TrainingConfigError
from e2eai.training.mlp import TabularMLP
from e2eai.training.tabular_spec import MLPParams, TabularSpec


@dataclass(frozen=True)
class RecurrentSpec:
    """The Wide & Deep inputs, the sequence's steps (numeric input names) and the GRU's size."""

    tabular: TabularSpec
    steps: list[list[str]]
    hidden: int

    def __post_init__(self) -> None:
        if not self.steps:
            raise TrainingConfigError("a recurrent model needs a sequence: the task names none")
        widths = {len(step) for step in self.steps}
        unknown = sorted({n for step in self.steps for n in step} - set(self.tabular.numeric))
        if len(widths) != 1 or unknown:
            raise TrainingConfigError(
                "the task's sequence must be steps of the same number of numeric inputs"
                + (f"; not numeric inputs: {', '.join(unknown)}" if unknown else "")
            )

    def step_columns(self) -> list[list[int]]:
        """Positions of each step's fields among the numeric inputs."""
        return [[self.tabular.numeric.index(name) for name in step] for step in self.steps]

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: Path) -> RecurrentSpec:
        raw = json.loads(path.read_text())
        tabular = raw["tabular"]
        tabular["params"] = MLPParams(**tabular["params"])
        return cls(tabular=TabularSpec(**tabular), steps=raw["steps"], hidden=raw["hidden"])


class RecurrentWideDeep(TabularMLP):
    """:class:`TabularMLP` whose deep part also reads a GRU's final state over the steps."""

    step_columns: torch.Tensor  # [steps, fields]: positions among the numeric inputs

    def __init__(self, spec: RecurrentSpec) -> None:
        super().__init__(spec.tabular, extra_deep_width=spec.hidden)
        self.register_buffer(
            "step_columns", torch.tensor(spec.step_columns(), dtype=torch.int64), persistent=False
        )
        self.gru = nn.GRUCell(2 * len(spec.steps[0]), spec.hidden)

    def deep_extras(self, numeric: torch.Tensor, normalised: torch.Tensor) -> list[torch.Tensor]:
        state = numeric.new_zeros(numeric.shape[0], self.gru.hidden_size)
        for columns in self.step_columns:  # a fixed, small number of steps: unrolled on export
            missing = torch.isnan(numeric.index_select(1, columns))
            values = torch.where(missing, 0.0, normalised.index_select(1, columns))
            step = torch.cat([values, missing.to(values.dtype)], dim=1)
            present = (~missing).any(dim=1, keepdim=True)
            state = torch.where(present, self.gru(step, state), state)
        return [state]

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(wide and GRU, deep MLP): the GRU learns at the wide part's rate, not the deep's
        reduced one, or its state would barely move in a short run."""
        wide = [p for n, p in self.named_parameters() if n.startswith(("wide_", "gru."))]
        deep = [p for n, p in self.named_parameters() if not n.startswith(("wide_", "gru."))]
        return wide, deep


def build_recurrent(spec: RecurrentSpec, seed: int) -> RecurrentWideDeep:
    """A freshly initialised model; the seed makes the initial weights reproducible."""
    torch.manual_seed(seed)
    return RecurrentWideDeep(spec)


def load_recurrent(
    model_dir: Path, weights: str, spec_file: str
) -> tuple[RecurrentWideDeep, RecurrentSpec]:
    """The model and spec saved in ``model_dir`` (eval mode)."""
    spec = RecurrentSpec.load(model_dir / spec_file)
    model = RecurrentWideDeep(spec)
    model.load_state_dict(torch.load(model_dir / weights, weights_only=True))
    model.eval()
    return model, spec
