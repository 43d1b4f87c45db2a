"""Offline validation of custom resources against their CRD's ``openAPIV3Schema``.

No API server is needed: the CRD's schema (Kubernetes' OpenAPI v3 dialect) is turned into a
JSON Schema — objects with ``properties`` are closed unless they preserve unknown fields,
``x-kubernetes-int-or-string`` becomes integer-or-string, ``nullable`` admits null — and
checked with ``jsonschema``. Used for every generated InferenceService, TrainJob, PyTorchJob.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any


def openapi_to_json_schema(node: Any) -> Any:
    """OpenAPI v3 (Kubernetes dialect) → JSON Schema: closed objects, int-or-string, nullable."""
    if isinstance(node, list):
        return [openapi_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: openapi_to_json_schema(v)
        for k, v in node.items()
        if not k.startswith("x-kubernetes-") and k != "nullable"
    }
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        "properties" in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in node
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(path: Path) -> Any:
    """A ``jsonschema`` validator for the storage version of the CRD in ``path``."""
    import jsonschema
    import yaml

    # The InferenceService CRD is ~40k lines: the C loader parses it in a fraction of the time,
    # and one cached validator avoids re-checking the schema against the meta-schema per call.
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    return jsonschema.Draft7Validator(openapi_to_json_schema(version["schema"]["openAPIV3Schema"]))
