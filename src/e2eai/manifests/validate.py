"""``e2eai manifests validate``: every check over the rendered overlays, one report.

Per object: core kinds strictly against Kubernetes' schemas, custom resources against their
CRDs (Katib Experiments against the typed Katib models too), the hardening policy, secrets
only by reference, images only as overlay parameters. Over the sources: the generated files
are current, the base pins no image, yamllint is clean. Over the rendered files and every
Dockerfile: checkov.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2eai.manifests import paths
from e2eai.manifests.core_checks import KUBERNETES_VERSION, core_findings, is_core
from e2eai.manifests.crd_checks import crd_findings
from e2eai.manifests.findings import Finding
from e2eai.manifests.generate import stale_generated
from e2eai.manifests.policy import (
    container_findings,
    hardcoded_tag_findings,
    image_findings,
    secret_findings,
)
from e2eai.manifests.render import kustomize, load_objects, render_objects


def object_findings(
    obj: dict[str, Any],
    crds_dir: Path,
    overlay_images: set[str] | None = None,
    kubernetes_version: str = KUBERNETES_VERSION,
) -> list[Finding]:
    """Every per-object check of one rendered object."""
    if is_core(obj):
        findings = core_findings(obj, kubernetes_version)
    else:
        findings = crd_findings(obj, crds_dir)
    findings += container_findings(obj)
    findings += secret_findings(obj)
    if overlay_images is not None:
        findings += image_findings(obj, overlay_images)
    return findings


def overlay_images(overlay: Path) -> set[str]:
    """The repositories an overlay's ``images:`` sets (newName, else name)."""
    import yaml

    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text()) or {}
    return {i.get("newName") or i["name"] for i in kustomization.get("images") or []}


@dataclass
class ValidationReport:
    """What ``validate`` prints: counts, kinds, every failure, checkov's tally."""

    kubernetes_version: str
    objects: dict[str, int] = field(default_factory=dict)
    kinds: Counter = field(default_factory=Counter)
    failures: list[Finding] = field(default_factory=list)
    checkov: dict[str, Any] | None = None
    yamllint: dict[str, int] | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> dict[str, Any]:
        return {
            "kubernetes_version": self.kubernetes_version,
            "objects": sum(self.objects.values()),
            "objects_per_overlay": dict(self.objects),
            "kinds": dict(sorted(self.kinds.items())),
            "failures": [str(f) for f in self.failures],
            "checkov": self.checkov,
            "yamllint": self.yamllint,
        }


def validate_manifests(
    overlays: tuple[str, ...] = paths.OVERLAYS,
    *,
    project: Path | None = None,
    crds_dir: Path | None = None,
    kubernetes_version: str = KUBERNETES_VERSION,
    run_checkov: bool = True,
    run_yamllint: bool = True,
) -> ValidationReport:
    """Render ``overlays`` and run every check; failures are collected, not raised."""
    project = project or paths.project_dir()
    manifests = paths.manifests_dir(project)
    crds = crds_dir or paths.default_crds_dir(project)
    report = ValidationReport(kubernetes_version)
    report.failures += [
        Finding(
            "generated",
            str(path.relative_to(project)),
            "<file>",
            "stale: run `e2eai manifests generate`",
        )
        for path in stale_generated(manifests)
    ]
    for obj in render_objects(manifests / "base"):
        report.failures += hardcoded_tag_findings(obj)
    with tempfile.TemporaryDirectory() as tmp:
        rendered_files = []
        for overlay in overlays:
            directory = paths.overlay_dir(overlay, project)
            text = kustomize(directory)
            rendered = Path(tmp) / f"{overlay}.yaml"
            rendered.write_text(text)
            rendered_files.append(rendered)
            objects = load_objects(text)
            report.objects[overlay] = len(objects)
            report.kinds.update(str(o.get("kind")) for o in objects)
            images = overlay_images(directory)
            for obj in objects:
                report.failures += object_findings(obj, crds, images, kubernetes_version)
        if run_checkov:
            from e2eai.manifests.checkov_scan import dockerfiles
            from e2eai.manifests.checkov_scan import run_checkov as checkov_run

            files = dockerfiles(project)
            result = checkov_run(paths.checkov_binary(project), rendered_files + files)
            report.failures += result.findings
            report.checkov = {
                **result.summary(),
                "dockerfiles": [str(p.relative_to(project)) for p in files],
            }
    if run_yamllint:
        from e2eai.manifests.yaml_lint import lint_findings

        linted, problems = lint_findings(manifests)
        report.failures += problems
        report.yamllint = {"files": linted, "problems": len(problems)}
    return report
