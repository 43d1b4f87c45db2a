"""Core Kubernetes kinds, strictly, against the API's own schemas (kubernetes-validate)."""

from __future__ import annotations

from typing import Any

from e2eai.manifests.findings import Finding
from e2eai.manifests.schema_errors import error_findings

KUBERNETES_VERSION = "1.32"
"""The Kubernetes version the manifests are checked for (KServe 0.21 and Kubeflow 1.10+)."""

CHECK = "kubernetes-schema"


def is_core(obj: dict[str, Any]) -> bool:
    """Kinds of the Kubernetes API itself: no group (v1), a dot-less group (apps, batch,
    policy, autoscaling) or a ``*.k8s.io`` group."""
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def core_findings(
    obj: dict[str, Any],
    version: str = KUBERNETES_VERSION,
    *,
    owner: dict[str, Any] | None = None,
    prefix: tuple[Any, ...] = (),
) -> list[Finding]:
    """Strict validation (unknown fields are errors) of one core object.

    ``owner`` and ``prefix`` report an object embedded in another (a Katib trial's Job) under
    the object that carries it, at its path there.
    """
    import kubernetes_validate

    report = owner if owner is not None else obj
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return error_findings(CHECK, report, error, prefix)
    except kubernetes_validate.SchemaNotFoundError as error:
        return [
            Finding.at(
                CHECK,
                report,
                [*prefix, "apiVersion"],
                f"{obj.get('apiVersion')}/{obj.get('kind')} is not in Kubernetes {version}: "
                f"{error}",
            )
        ]
    return []
