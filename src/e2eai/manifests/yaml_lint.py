"""yamllint over the manifests' sources, with ``manifests/.yamllint.yaml``."""

from __future__ import annotations

from pathlib import Path

from e2eai.manifests.findings import Finding

CHECK = "yamllint"
CONFIG_FILE = ".yamllint.yaml"


def yaml_files(manifests: Path) -> list[Path]:
    return sorted(p for p in manifests.rglob("*.y*ml") if p.is_file() and p.name != CONFIG_FILE)


def lint_findings(manifests: Path) -> tuple[int, list[Finding]]:
    """(files linted, one finding per problem: file, line:column, rule and description)."""
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    config = YamlLintConfig(file=str(manifests / CONFIG_FILE))
    files = yaml_files(manifests)
    findings = []
    for path in files:
        for problem in linter.run(path.read_text(), config, str(path)):
            findings.append(
                Finding(
                    CHECK,
                    str(path.relative_to(manifests.parent)),
                    f"line {problem.line}:{problem.column}",
                    f"{problem.level}: {problem.desc} ({problem.rule})",
                )
            )
    return len(files), findings
