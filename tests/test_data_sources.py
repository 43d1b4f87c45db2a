"""Unreadable flight sources: a specific error naming the file, a clean CLI exit, no debris."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from conftest import flights_between

from e2eai.config import ArtifactSettings
from e2eai.errors import DataSourceError
from e2eai.tasks.flights.sources import FLIGHT_COLUMNS, RawTables, read_raw_tables

E2EAI = str(Path(sys.executable).with_name("e2eai"))
HEADER = ",".join(FLIGHT_COLUMNS)
ROW = "2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-01-01 10:00:00"


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(4096))


def _latin1(path: Path) -> None:
    # 'São' in latin-1: the byte 0xE3 is not valid UTF-8.
    path.write_bytes(f"{HEADER}\n{ROW.replace('N14228', 'NSão1')}\n".encode("latin-1"))


def _wrong_columns_parquet(path: Path) -> None:
    pd.DataFrame({"flight": [1], "carrier": ["UA"]}).to_parquet(path)


# file name → (how to write it, what the error must say about it)
BAD_SOURCES: dict[str, tuple[Callable[[Path], None], str]] = {
    "garbage.csv": (_garbage, r"not UTF-8 text \(byte \d+\)"),
    "garbage.parquet": (
        lambda p: p.write_bytes(b"PAR1" + random.Random(3).randbytes(512)),
        "not a readable CSV or Parquet table",
    ),
    "empty.csv": (lambda p: p.write_bytes(b""), "file is empty"),
    "blank-lines.csv": (lambda p: p.write_text("\n \n\n"), "file is empty"),
    "header-only.csv": (lambda p: p.write_text(HEADER + "\n"), "file has a header but no rows"),
    "wrong-columns.csv": (
        lambda p: p.write_text("flight,carrier,when\n1545,UA,today\n"),
        r"missing required columns \['year', 'month', 'day'.*found \['flight', 'carrier', 'when'\]",
    ),
    "wrong-columns.parquet": (_wrong_columns_parquet, r"missing required columns \['year'"),
    "latin-1.csv": (_latin1, r"not UTF-8 text \(byte \d+\): wrong encoding"),
}


@pytest.mark.parametrize("name", list(BAD_SOURCES))
def test_unreadable_source_raises_an_error_naming_file_and_problem(
    tmp_path: Path, name: str
) -> None:
    write, problem = BAD_SOURCES[name]
    path = tmp_path / name
    write(path)
    with pytest.raises(DataSourceError, match=problem) as info:
        read_raw_tables(str(path), ArtifactSettings())
    assert info.value.source == str(path)
    assert str(info.value).startswith(f"{path}: ")


def test_latin1_error_points_at_the_offending_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin-1.csv"
    _latin1(path)
    offset = path.read_bytes().index("ã".encode("latin-1"))
    with pytest.raises(DataSourceError, match=rf"\(byte {offset}\)"):
        read_raw_tables(str(path), ArtifactSettings())


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "flights.csv"
    with pytest.raises(DataSourceError, match="no such file") as info:
        read_raw_tables(str(path), ArtifactSettings())
    assert info.value.source == str(path)


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones included) with its bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "E2EAI_HOME": str(home),
        "E2EAI_ARTIFACTS__URI": str(home / "artifacts"),
        "E2EAI_FEATURES__REPO": str(home / "feature_repo"),
        "E2EAI_DATA__START": "2013-01-01",
        "E2EAI_DATA__END": "2013-01-01",
        "COLUMNS": "80",  # a narrow terminal must not break the error line
    }
    env.pop("E2EAI_CONFIG", None)
    return subprocess.run(
        [E2EAI, "data", "prepare", "--no-features", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def test_cli_bad_source_exits_nonzero_with_one_line_and_leaves_the_last_run_intact(
    tmp_path: Path, raw_flight_tables: RawTables
) -> None:
    home = tmp_path / "home"
    good = tmp_path / "jan1.csv"
    flights_between(raw_flight_tables, date(2013, 1, 1), date(2013, 1, 1)).flights.to_csv(
        good, index=False
    )
    first = _cli(home, "--source", str(good), "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["rows_in"] == 842
    assert summary["rows_accepted"] + summary["rows_quarantined"] + summary["rows_excluded"] == 842
    assert Path(summary["quality_report"]).is_file()
    data_before, artifacts_before = _tree(home / "data"), _tree(home / "artifacts")
    assert "prepared/flights.parquet" in data_before

    for name in ("wrong-columns.csv", "garbage.csv"):
        write, problem = BAD_SOURCES[name]
        bad = tmp_path / name
        write(bad)
        failed = _cli(home, "--source", str(bad), "--json")
        assert failed.returncode == 2
        assert failed.stdout == ""  # no half JSON for a script to misread
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1, failed.stderr
        assert lines[0].startswith(f"error: {bad}: ")
        assert "Traceback" not in failed.stderr
        assert re.search(problem, lines[0])
        # Nothing half-written: the previous outputs are byte-for-byte intact, no staging
        # folder is left behind, and no snapshot was added for the unreadable input.
        assert _tree(home / "data") == data_before
        assert sorted(p.name for p in (home / "data").iterdir()) == ["prepared"]
        assert _tree(home / "artifacts") == artifacts_before
