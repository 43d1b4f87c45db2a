"""Lineage records and the code version they carry."""

from __future__ import annotations

import subprocess
from datetime import date, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from e2eai.registry import Lineage, code_version
from e2eai.registry.lineage import CODE_VERSION_ENV, _git_commit


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_git_commit_of_a_checkout_and_dirty_marker(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    assert _git_commit(repo) is None  # not a repository
    _git(repo, "init", "-q")
    assert _git_commit(repo) is None  # a repository without commits
    (repo / "train.py").write_text("print(1)\n")
    _git(repo, "add", "train.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "c")
    sha = _git(repo, "rev-parse", "HEAD")
    assert _git_commit(repo) == sha
    (repo / "train.py").write_text("print(2)\n")
    assert _git_commit(repo) == f"{sha}-dirty"


def test_code_version_prefers_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    code_version.cache_clear()
    monkeypatch.setenv(CODE_VERSION_ENV, "0123abcd")
    try:
        assert code_version() == "0123abcd"
        assert Lineage().code_version == "0123abcd"
    finally:
        code_version.cache_clear()
    monkeypatch.delenv(CODE_VERSION_ENV)
    assert code_version() != "0123abcd" and code_version()


def test_lineage_validates_its_fields() -> None:
    lineage = Lineage(
        raw_snapshot="0f" * 32,
        feature_service="flight_delay_v1",
        training_window={"start": datetime(2013, 1, 1, 0, 0), "end": "2013-04-30"},
        code_version="abc",
        parent_version=3,
    )
    assert lineage.training_window.start == date(2013, 1, 1)
    assert lineage["parent_version"] == 3
    assert lineage.get("nope", "default") == "default"
    with pytest.raises(KeyError):
        lineage["nope"]
    for bad in (
        {"raw_snapshot": "0F" * 32},  # not lowercase hex
        {"parent_version": 0},
        {"training_window": {"start": "2013-02-01", "end": "2013-01-01"}},
        {"unknown_key": 1},
    ):
        with pytest.raises(ValidationError):
            Lineage(**bad)
