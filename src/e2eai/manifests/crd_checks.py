"""Custom resources against their CRD's ``openAPIV3Schema`` (closed objects, see
:mod:`e2eai.crd_schema`), and Katib Experiments against the typed models of the Katib API
as well, because the Experiment CRD's schema accepts any field."""

from __future__ import annotations

import functools
import re
import typing
from pathlib import Path
from typing import Any

from e2eai.manifests.core_checks import core_findings
from e2eai.manifests.findings import Finding
from e2eai.manifests.schema_errors import all_error_findings

CHECK = "crd-schema"
KATIB_CHECK = "katib-model"

CRD_FILES: dict[tuple[str, str], str] = {
    ("serving.kserve.io", "InferenceService"): "serving.kserve.io_inferenceservices.yaml",
    ("serving.kserve.io", "ServingRuntime"): "serving.kserve.io_servingruntimes.yaml",
    ("serving.kserve.io", "ClusterServingRuntime"): "serving.kserve.io_clusterservingruntimes.yaml",
    ("trainer.kubeflow.org", "TrainJob"): "trainer.kubeflow.org_trainjobs.yaml",
    ("trainer.kubeflow.org", "TrainingRuntime"): "trainer.kubeflow.org_trainingruntimes.yaml",
    ("trainer.kubeflow.org", "ClusterTrainingRuntime"): (
        "trainer.kubeflow.org_clustertrainingruntimes.yaml"
    ),
    ("kubeflow.org", "PyTorchJob"): "kubeflow.org_pytorchjobs.yaml",
    ("kubeflow.org", "Experiment"): "kubeflow.org_experiments.yaml",
    ("argoproj.io", "Application"): "argoproj.io_applications.yaml",
    ("feast.dev", "FeatureStore"): "feast.dev_featurestores.yaml",
}
"""The CRD file (in the shared CRD folder) of every custom kind the manifests may hold."""


@functools.cache
def _crd_validators(path: Path) -> dict[str, Any]:
    """A validator per served version of the CRD in ``path``."""
    import jsonschema
    import yaml

    from e2eai.crd_schema import openapi_to_json_schema

    # The InferenceService CRD is ~40k lines: the C loader, once per process.
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return {
        v["name"]: jsonschema.Draft7Validator(
            openapi_to_json_schema(v["schema"]["openAPIV3Schema"])
        )
        for v in crd["spec"]["versions"]
        if v.get("served")
    }


def crd_findings(obj: dict[str, Any], crds_dir: Path) -> list[Finding]:
    """Every schema violation of a custom resource, or why it could not be checked."""
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    kind = str(obj.get("kind", ""))
    filename = CRD_FILES.get((group, kind))
    if filename is None:
        return [Finding.at(CHECK, obj, ["kind"], f"no CRD is known for {group}/{kind}")]
    path = crds_dir / filename
    if not path.is_file():
        return [Finding.at(CHECK, obj, ["apiVersion"], f"CRD file {path} is missing")]
    validators = _crd_validators(path)
    if version not in validators:
        return [
            Finding.at(
                CHECK,
                obj,
                ["apiVersion"],
                f"{group}/{version} is not a served version of {kind} "
                f"(served: {', '.join(sorted(validators))})",
            )
        ]
    findings = all_error_findings(CHECK, obj, validators[version].iter_errors(obj))
    if (group, kind) == ("kubeflow.org", "Experiment"):
        findings += katib_findings(obj)
    return findings


# -- Katib ---------------------------------------------------------------------------------


def katib_findings(experiment: dict[str, Any]) -> list[Finding]:
    """The Experiment against ``kubeflow_katib_api``'s V1beta1 models (closed: unknown fields
    are errors, types strict), its trial Job against the Kubernetes schema, and the trial
    parameters against the search space they refer to."""
    from kubeflow_katib_api.models import V1beta1Experiment

    findings = _unknown_fields(experiment, V1beta1Experiment, experiment, [])
    findings += _typed_errors(experiment)
    spec = experiment.get("spec") or {}
    trial = (spec.get("trialTemplate") or {}).get("trialSpec")
    if isinstance(trial, dict):
        prefix = ("spec", "trialTemplate", "trialSpec")
        findings += core_findings(trial, owner=experiment, prefix=prefix)
    findings += _trial_parameter_findings(experiment, spec)
    return findings


def _model_of(annotation: Any) -> tuple[type | None, bool]:
    """(the pydantic model inside ``annotation``, whether it is a list of them)."""
    from pydantic import BaseModel

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return _model_of(inner[0]) if len(inner) == 1 else (None, False)
    if origin in (list, typing.List) and args:  # noqa: UP006 (the models use typing.List)
        model, _ = _model_of(args[0])
        return model, True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def _unknown_fields(
    value: Any, model: type, experiment: dict[str, Any], path: list[Any]
) -> list[Finding]:
    # The generated models ignore unknown keys; Katib's webhook would too, silently.
    if not isinstance(value, dict):
        return []
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}  # type: ignore[attr-defined]
    findings = [
        Finding.at(KATIB_CHECK, experiment, [*path, key], "unknown field")
        for key in value
        if key not in fields
    ]
    for key, field in fields.items():
        if key not in value:
            continue
        inner, is_list = _model_of(field.annotation)
        if inner is None:
            continue
        if is_list and isinstance(value[key], list):
            for i, item in enumerate(value[key]):
                findings += _unknown_fields(item, inner, experiment, [*path, key, i])
        elif not is_list:
            findings += _unknown_fields(value[key], inner, experiment, [*path, key])
    return findings


def _typed_errors(experiment: dict[str, Any]) -> list[Finding]:
    from kubeflow_katib_api.models import V1beta1Experiment
    from pydantic import ValidationError

    try:
        V1beta1Experiment.model_validate(experiment)
    except ValidationError as error:
        return [
            Finding.at(KATIB_CHECK, experiment, list(e["loc"]), e["msg"]) for e in error.errors()
        ]
    return []


_TRIAL_REFERENCE = re.compile(r"\$\{trialParameters\.([A-Za-z0-9_-]+)\}")


def _trial_parameter_findings(experiment: dict[str, Any], spec: dict[str, Any]) -> list[Finding]:
    """Each trial parameter refers to a searched parameter; the trial uses only declared
    trial parameters (a typo leaves ``${trialParameters.x}`` in the pod verbatim)."""
    template = spec.get("trialTemplate") or {}
    searched = {p.get("name") for p in spec.get("parameters") or []}
    declared = set()
    findings = []
    for i, parameter in enumerate(template.get("trialParameters") or []):
        declared.add(parameter.get("name"))
        if parameter.get("reference") not in searched:
            findings.append(
                Finding.at(
                    KATIB_CHECK,
                    experiment,
                    ["spec", "trialTemplate", "trialParameters", i, "reference"],
                    f"{parameter.get('reference')!r} is not one of spec.parameters",
                )
            )
    used = set(_TRIAL_REFERENCE.findall(repr(template.get("trialSpec"))))
    findings += [
        Finding.at(
            KATIB_CHECK,
            experiment,
            ["spec", "trialTemplate", "trialSpec"],
            f"${{trialParameters.{name}}} is not declared in trialParameters",
        )
        for name in sorted(used - declared)
    ]
    return findings
