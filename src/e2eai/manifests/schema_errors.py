"""jsonschema errors as findings whose path ends at the field at fault.

jsonschema reports an unexpected or a missing key at the enclosing object; the path of a
finding names the key itself (``spec.predictor.model.storageURI``), which is what a person
searches the manifest for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from e2eai.manifests.findings import Finding


def error_findings(
    check: str, obj: dict[str, Any], error: Any, prefix: Sequence[Any] = ()
) -> list[Finding]:
    """One finding per field a ``jsonschema.ValidationError`` is about."""
    path = [*prefix, *error.absolute_path]
    instance, schema = error.instance, error.schema
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = set(schema.get("properties") or {})
        unexpected = sorted(k for k in instance if k not in known) or ["?"]
        return [Finding.at(check, obj, [*path, k], "unknown field") for k in unexpected]
    if error.validator == "required" and isinstance(instance, dict):
        missing = [k for k in error.validator_value if k not in instance] or ["?"]
        return [Finding.at(check, obj, [*path, k], "required field is missing") for k in missing]
    return [Finding.at(check, obj, path, _short(error.message))]


def all_error_findings(
    check: str, obj: dict[str, Any], errors: Iterable[Any], prefix: Sequence[Any] = ()
) -> list[Finding]:
    findings: list[Finding] = []
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        findings.extend(error_findings(check, obj, error, prefix))
    return findings


def _short(message: str, limit: int = 300) -> str:
    # A failed anyOf repeats the whole sub-schema; the first line and a bound keep it readable.
    line = message.splitlines()[0] if message else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
