"""Kubernetes manifests: render the Kustomize overlays, validate them offline, regenerate."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from e2eai.cli.output import JsonOption, console, emit, user_errors

app = typer.Typer(no_args_is_help=True)

OverlayOption = Annotated[
    list[str] | None,
    typer.Option("--overlay", help="dev or prod (repeatable; default: every overlay)."),
]
ProjectOption = Annotated[
    Path | None,
    typer.Option("--project-dir", help="Checkout holding manifests/ (default: found)."),
]


@app.command()
def render(
    overlay: Annotated[str, typer.Option("--overlay", help="dev or prod.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write DIR/<overlay>.yaml instead of stdout."),
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="Only objects of this kind (repeatable).")
    ] = None,
    exclude_kind: Annotated[
        list[str] | None,
        typer.Option("--exclude-kind", help="Leave out objects of this kind (repeatable)."),
    ] = None,
    project_dir: ProjectOption = None,
) -> None:
    """Render an overlay with kustomize (the kubectl of this virtualenv).

    Without Argo CD: ``e2eai manifests render --overlay dev --exclude-kind Application |
    kubectl apply -f -``.
    """
    from e2eai.manifests.paths import overlay_dir
    from e2eai.manifests.render import dump_objects, kustomize, load_objects, write_rendered

    with user_errors():
        text = kustomize(overlay_dir(overlay, project_dir))
        if kind or exclude_kind:
            text = dump_objects(
                o
                for o in load_objects(text)
                if (not kind or o.get("kind") in kind) and o.get("kind") not in (exclude_kind or [])
            )
        if output is None:
            sys.stdout.write(text)
            return
        path = write_rendered(text, output, overlay)
    console.print(f"{len(load_objects(text))} objects → {path}", highlight=False)


@app.command()
def validate(
    overlay: OverlayOption = None,
    crds: Annotated[
        Path | None,
        typer.Option("--crds", help="CRD folder (default: ../shared/crds beside the checkout)."),
    ] = None,
    kubernetes_version: Annotated[
        str | None, typer.Option("--kubernetes-version", help="Schemas of this version.")
    ] = None,
    checkov: Annotated[
        bool, typer.Option("--checkov/--no-checkov", help="Run checkov (manifests, Dockerfiles).")
    ] = True,
    project_dir: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate the rendered overlays offline; exit 1 on any failure.

    Core kinds strictly against Kubernetes' schemas, custom resources against their CRDs
    (Katib Experiments against the Katib API models too), the hardening policy, secrets by
    reference only, images as overlay parameters, checkov (with the justified skips),
    yamllint, and generated files up to date.
    """
    from e2eai.manifests.core_checks import KUBERNETES_VERSION
    from e2eai.manifests.paths import OVERLAYS
    from e2eai.manifests.validate import validate_manifests

    with user_errors():
        report = validate_manifests(
            tuple(overlay or OVERLAYS),
            project=project_dir,
            crds_dir=crds,
            kubernetes_version=kubernetes_version or KUBERNETES_VERSION,
            run_checkov=checkov,
        )
    summary = report.summary()
    if as_json:
        emit(summary, as_json=True)
    else:
        for failure in summary["failures"]:
            console.print(f"[red]✗[/] {failure}", highlight=False, soft_wrap=True)
        counts = ", ".join(f"{k} {v}" for k, v in summary["objects_per_overlay"].items())
        console.print(f"objects: {summary['objects']} ({counts})", highlight=False)
        console.print(f"kinds: {len(summary['kinds'])}", highlight=False)
        if summary["checkov"]:
            c = summary["checkov"]
            console.print(
                f"checkov: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped",
                highlight=False,
            )
        verdict = "[green]valid[/]" if report.ok else f"[red]{len(summary['failures'])} failures[/]"
        console.print(verdict)
    if not report.ok:
        raise typer.Exit(code=1)


@app.command()
def generate(project_dir: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Rewrite the generated manifests (the Katib search space, from the Optuna one)."""
    from e2eai.manifests.generate import write_generated
    from e2eai.manifests.paths import manifests_dir

    with user_errors():
        written = write_generated(manifests_dir(project_dir))
    emit({"written": [str(p) for p in written]}, as_json, "generated")
