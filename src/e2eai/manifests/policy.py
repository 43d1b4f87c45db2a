"""The platform's hardening policy, over every container of every kind — custom resources
included, which checkov does not read: requests and limits, non-root, no privilege
escalation, all capabilities dropped, a read-only root filesystem, probes on servers;
secrets only by reference; images only as overlay parameters."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from e2eai.manifests.findings import Finding

CHECK_CONTAINER = "container-policy"
CHECK_SECRET = "inline-secret"
CHECK_IMAGE = "image-parameter"

SERVER_KINDS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "ServingRuntime", "InferenceService"}
)
"""Kinds whose containers serve until stopped: they need liveness and readiness probes.
The others run to completion (Job, CronJob, TrainJob, PyTorchJob, Katib trials)."""

_SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL", re.IGNORECASE
)
# A variable that says where a secret is (a mounted file) carries no secret itself.
_SECRET_LOCATION = re.compile(r"_(PATH|FILE|DIR)$", re.IGNORECASE)
_URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@")


@dataclass(frozen=True)
class ContainerSite:
    """A container somewhere in an object, with what governs it."""

    path: tuple[Any, ...]
    container: dict[str, Any]
    pod: dict[str, Any]  # the pod-level spec around it (securityContext)
    resources_key: str = "resources"
    probes_required: bool = False


def container_sites(obj: dict[str, Any]) -> Iterator[ContainerSite]:
    """Every container of ``obj``: pod templates at any depth, a ServingRuntime's, an
    InferenceService's transformer and predictor model, a TrainJob's trainer."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    server = kind in SERVER_KINDS
    if kind == "TrainJob":
        yield from _trainjob_sites(spec)
        return
    if kind == "InferenceService":
        predictor = spec.get("predictor") or {}
        if isinstance(predictor.get("model"), dict):
            # Its probes are the ServingRuntime's container's, checked there.
            yield ContainerSite(("spec", "predictor", "model"), predictor["model"], predictor)
    for path, pod in _pod_specs(spec, ("spec",)):
        for key in ("initContainers", "containers"):
            for i, container in enumerate(pod.get(key) or []):
                if isinstance(container, dict):
                    yield ContainerSite(
                        (*path, key, i),
                        container,
                        pod,
                        probes_required=server and key == "containers",
                    )


def _pod_specs(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], dict]]:
    if isinstance(node, dict):
        if isinstance(node.get("containers"), list):
            yield path, node
        for key, value in node.items():
            if key != "containers":
                yield from _pod_specs(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _pod_specs(value, (*path, i))


def _trainjob_sites(spec: dict[str, Any]) -> Iterator[ContainerSite]:
    # The trainer's container is the runtime's "node"; the TrainJob hardens it through a
    # runtime patch, which is where its securityContext lives.
    trainer = spec.get("trainer")
    if not isinstance(trainer, dict):
        return
    pod: dict[str, Any] = {}
    container = dict(trainer)
    for patch in spec.get("runtimePatches") or []:
        jobs = ((patch.get("trainingRuntimeSpec") or {}).get("template") or {}).get("spec") or {}
        for job in jobs.get("replicatedJobs") or []:
            pod_spec = (((job.get("template") or {}).get("spec") or {}).get("template") or {}).get(
                "spec"
            ) or {}
            for patched in pod_spec.get("containers") or []:
                if patched.get("name") == "node":
                    pod = pod_spec
                    container["securityContext"] = patched.get("securityContext") or {}
    yield ContainerSite(("spec", "trainer"), container, pod, resources_key="resourcesPerNode")


def container_findings(obj: dict[str, Any]) -> list[Finding]:
    """Hardening violations of every container of ``obj``."""
    findings = []
    for site in container_sites(obj):
        findings += _site_findings(obj, site)
    return findings


def _site_findings(obj: dict[str, Any], site: ContainerSite) -> list[Finding]:
    c, path = site.container, site.path
    found: list[tuple[tuple[Any, ...], str]] = []
    resources = c.get(site.resources_key) or {}
    for part in ("requests", "limits"):
        amounts = resources.get(part)
        if not isinstance(amounts, dict) or not amounts:
            found.append(((site.resources_key, part), f"missing: set CPU and memory {part}"))
            continue
        for resource in ("cpu", "memory"):
            if resource not in amounts:
                found.append(((site.resources_key, part, resource), f"missing {resource} {part}"))
    security = c.get("securityContext") or {}
    pod_security = site.pod.get("securityContext") or {}
    if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is not True:
        found.append((("securityContext", "runAsNonRoot"), "must be true (here or in the pod)"))
    if security.get("runAsUser", pod_security.get("runAsUser")) == 0:
        found.append((("securityContext", "runAsUser"), "must not be 0 (root)"))
    if security.get("allowPrivilegeEscalation") is not False:
        found.append((("securityContext", "allowPrivilegeEscalation"), "must be false"))
    if security.get("privileged") is True:
        found.append((("securityContext", "privileged"), "must not be true"))
    if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
        found.append((("securityContext", "capabilities", "drop"), "must drop ALL"))
    if security.get("readOnlyRootFilesystem") is not True:
        found.append(
            (
                ("securityContext", "readOnlyRootFilesystem"),
                "must be true (mount an emptyDir where the process writes)",
            )
        )
    if site.probes_required:
        for probe in ("livenessProbe", "readinessProbe"):
            if not c.get(probe):
                found.append(((probe,), "missing: a server needs liveness and readiness probes"))
    return [Finding.at(CHECK_CONTAINER, obj, [*path, *rel], message) for rel, message in found]


def secret_findings(obj: dict[str, Any]) -> list[Finding]:
    """Secret values written into the manifests instead of referenced."""
    findings = []
    if obj.get("kind") == "Secret":
        for key in ("data", "stringData"):
            if obj.get(key):
                findings.append(
                    Finding.at(
                        CHECK_SECRET,
                        obj,
                        [key],
                        "Secret values do not belong in the manifests: create the Secret out "
                        "of band (docs/deploy.md) and refer to it by name",
                    )
                )
    if obj.get("kind") == "ConfigMap":
        for key in obj.get("data") or {}:
            if _SECRET_NAME.search(key) and not _SECRET_LOCATION.search(key):
                findings.append(
                    Finding.at(
                        CHECK_SECRET,
                        obj,
                        ["data", key],
                        "looks like a secret: put it in a Secret and use valueFrom.secretKeyRef",
                    )
                )
    for path, env in _env_vars(obj, ()):
        name, value = str(env.get("name", "")), env.get("value")
        if value is not None and _SECRET_NAME.search(name) and not _SECRET_LOCATION.search(name):
            findings.append(
                Finding.at(
                    CHECK_SECRET,
                    obj,
                    [*path, "value"],
                    f"inline secret value for {name}: use valueFrom.secretKeyRef",
                )
            )
    for path, text in _strings(obj, ()):
        if _URL_WITH_PASSWORD.search(text):
            findings.append(
                Finding.at(
                    CHECK_SECRET,
                    obj,
                    path,
                    "a URL with a password: keep the URL in a "
                    "Secret and use valueFrom.secretKeyRef",
                )
            )
    return findings


def _env_vars(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], dict]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, dict):
                        yield (*path, key, i), item
            else:
                yield from _env_vars(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _env_vars(value, (*path, i))


def _strings(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, (*path, i))


def image_references(obj: dict[str, Any]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every ``image`` string of ``obj`` (containers, a TrainJob's trainer, nested
    templates), with its path."""
    for path, text in _strings(obj, ()):
        if path and path[-1] == "image":
            yield path, text


def split_image(reference: str) -> tuple[str, str | None]:
    """``registry/repo:tag`` or ``…@sha256:…`` → (repository, tag-or-digest or None)."""
    if "@" in reference:
        repository, digest = reference.split("@", 1)
        return repository, digest
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1 :]
    return reference, None


def image_findings(obj: dict[str, Any], overlay_images: set[str]) -> list[Finding]:
    """Rendered images must be pinned (tag or digest) and be one the overlay sets."""
    findings = []
    for path, reference in image_references(obj):
        repository, pin = split_image(reference)
        if pin is None:
            findings.append(
                Finding.at(
                    CHECK_IMAGE,
                    obj,
                    path,
                    f"{reference!r} has no tag or digest: set it in the overlay's `images:`",
                )
            )
        elif repository not in overlay_images:
            findings.append(
                Finding.at(
                    CHECK_IMAGE,
                    obj,
                    path,
                    f"{repository!r} is not an image the overlay "
                    f"sets (images: {sorted(overlay_images)})",
                )
            )
    return findings


def hardcoded_tag_findings(obj: dict[str, Any]) -> list[Finding]:
    """In the base, an image names a repository only: tags are the overlays' to choose."""
    return [
        Finding.at(
            CHECK_IMAGE,
            obj,
            path,
            f"{reference!r} hard-codes a tag or digest in the "
            "base: move it to the overlays' `images:`",
        )
        for path, reference in image_references(obj)
        if split_image(reference)[1] is not None
    ]
