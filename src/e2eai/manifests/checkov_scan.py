"""checkov over the rendered manifests and every Dockerfile of the repository.

checkov lives in its own virtualenv (``.venv-tools``, ``make tools``): it pins boto3,
protobuf and packaging below what the platform needs. It runs without --skip-check: a
failed check on the skip list below is counted as skipped, with its reason, so the report
shows what was waived and where.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2eai.errors import ManifestError
from e2eai.manifests.findings import Finding

CHECK = "checkov"

CHECKOV_SKIPS: dict[str, str] = {
    # Images are overlay parameters (kustomize `images:`) and the repository cannot know the
    # digest of an image it has not built yet; the release pins digests in the overlay
    # (`kustomize edit set image name@sha256:…`, docs/deploy.md).
    "CKV_K8S_43": "image digests are pinned in the overlay at release, not in the repository",
    # Settings are read from E2EAI_* environment variables (pydantic-settings, one typed
    # object); the values come from Secrets by secretKeyRef and never appear in a manifest.
    "CKV_K8S_35": "settings are environment variables by design; values come by secretKeyRef",
}
"""Checks waived everywhere, each with the reason (shown in the report)."""


@dataclass
class CheckovResult:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    findings: list[Finding] = field(default_factory=list)
    waived: dict[str, list[str]] = field(default_factory=dict)  # check id → resources

    def summary(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "skipped": self.skipped,
            "skips": {
                check: {"reason": CHECKOV_SKIPS[check], "resources": sorted(resources)}
                for check, resources in sorted(self.waived.items())
            },
        }


def dockerfiles(project: Path) -> list[Path]:
    """Every Dockerfile of the checkout (virtualenvs and hidden folders left out)."""
    return sorted(
        path
        for path in project.rglob("Dockerfile*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(project).parts)
    )


def run_checkov(checkov: Path, files: list[Path]) -> CheckovResult:
    """Run checkov (kubernetes and dockerfile frameworks) over ``files``."""
    command = [str(checkov), "--framework", "kubernetes", "dockerfile", "-o", "json"]
    # No calls home: the platform's mapping and guidelines are fetched from the vendor's API.
    command += ["--skip-download"]
    for path in files:
        command += ["-f", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    try:
        reports = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"checkov printed no JSON (exit {done.returncode}): {done.stderr.strip()[-500:]}"
        ) from exc
    result = CheckovResult()
    for report in reports if isinstance(reports, list) else [reports]:
        results = report.get("results") or {}
        result.passed += len(results.get("passed_checks") or [])
        result.skipped += len(results.get("skipped_checks") or [])
        for failed in results.get("failed_checks") or []:
            check_id = failed["check_id"]
            where = f"{failed.get('resource')} ({Path(str(failed.get('file_path'))).name})"
            if check_id in CHECKOV_SKIPS:
                result.skipped += 1
                result.waived.setdefault(check_id, []).append(where)
                continue
            result.failed += 1
            lines = failed.get("file_line_range") or []
            result.findings.append(
                Finding(
                    CHECK,
                    str(failed.get("resource")),
                    f"{failed.get('file_path')}:{'-'.join(str(n) for n in lines)}",
                    f"{check_id} {failed.get('check_name')}",
                )
            )
    return result
