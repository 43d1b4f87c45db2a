"""The content-hash step cache and the fingerprints its keys are made of."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2eai.config import Settings
from e2eai.errors import DataSourceError
from e2eai.pipeline.fingerprints import (
    code_fingerprint,
    directory_fingerprint,
    files_fingerprint,
    source_fingerprint,
)
from e2eai.pipeline.step_cache import StepCache, cache_key, copy_into


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_stored_entry_is_found_by_its_key_with_files_and_summary(tmp_path):
    cache = StepCache(tmp_path / "cache")
    outputs = _tree(tmp_path / "out", {"a.parquet": "A", "sub/b.txt": "B"})
    key = cache_key("prepare", {"source": "abc", "window": ["2013-01-01", "2013-01-31"]})
    assert cache.lookup("prepare", key) is None
    cache.store("prepare", key, {"prepared": outputs}, {"rows": 3})
    entry = cache.lookup("prepare", key)
    assert entry is not None and entry.summary == {"rows": 3}
    assert (entry.file("prepared") / "sub/b.txt").read_text() == "B"
    # A copy, not a reference: later changes to the step's output do not leak into the cache.
    (outputs / "a.parquet").write_text("changed")
    assert (entry.file("prepared") / "a.parquet").read_text() == "A"


def test_keys_change_with_any_input_and_not_with_key_order():
    base = {"source": "abc", "settings": {"start": "2013-01-01", "end": "2013-01-31"}}
    assert cache_key("s", base) == cache_key("s", dict(reversed(list(base.items()))))
    assert cache_key("s", base) != cache_key("t", base)
    changed = {**base, "settings": {"start": "2013-01-02", "end": "2013-01-31"}}
    assert cache_key("s", base) != cache_key("s", changed)


def test_a_disabled_cache_never_hits_and_stores_nothing(tmp_path):
    cache = StepCache(tmp_path / "cache", enabled=False)
    out = _tree(tmp_path / "out", {"x": "1"})
    cache.store("s", "k", {"x": out / "x"}, {})
    assert cache.lookup("s", "k") is None
    assert not (tmp_path / "cache").exists()


def test_an_unfinished_entry_is_not_a_hit(tmp_path):
    cache = StepCache(tmp_path / "cache")
    (tmp_path / "cache" / "s" / "k" / "files").mkdir(parents=True)  # crashed before entry.json
    assert cache.lookup("s", "k") is None


def test_copy_into_replaces_a_directory_whole(tmp_path):
    target = _tree(tmp_path / "target", {"old.txt": "old", "keep.txt": "x"})
    source = _tree(tmp_path / "source", {"new.txt": "new"})
    copy_into(source, target)
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_file_fingerprints_follow_content_not_location(tmp_path):
    a = _tree(tmp_path / "a", {"x.py": "print(1)", "y.yaml": "k: v"})
    b = _tree(tmp_path / "b", {"x.py": "print(1)", "y.yaml": "k: v"})
    assert directory_fingerprint(a) == directory_fingerprint(b)
    (b / "y.yaml").write_text("k: w")
    assert directory_fingerprint(a) != directory_fingerprint(b)
    assert files_fingerprint([a / "x.py"]) != files_fingerprint([a / "y.yaml"])


def test_code_fingerprint_covers_every_module_of_a_package(tmp_path, monkeypatch):
    pkg = _tree(
        tmp_path / "fp_pkg", {"__init__.py": "", "inner/__init__.py": "", "inner/m.py": "A = 1"}
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_fingerprint("fp_pkg")
    (pkg / "inner/m.py").write_text("A = 2")
    assert code_fingerprint("fp_pkg") != before
    with pytest.raises(ModuleNotFoundError):
        code_fingerprint("no_such_package_here")


def test_source_fingerprint_hashes_a_flights_file_by_content(tmp_path):
    flights = tmp_path / "flights.csv"
    flights.write_text("year,month\n2013,1\n")
    settings = Settings(data={"source": str(flights)})
    first = source_fingerprint(settings)
    assert set(first) == {"flights", "weather.csv", "planes.csv", "airlines.csv", "airports.csv"}
    flights.write_text("year,month\n2013,2\n")
    assert source_fingerprint(settings)["flights"] != first["flights"]
    assert source_fingerprint(Settings())["flights.csv.zip"]  # the packaged data


def test_source_fingerprint_names_a_missing_file(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataSourceError, match=r"nope\.csv: no such file"):
        source_fingerprint(Settings(data={"source": str(missing)}))


def test_source_fingerprint_of_an_s3_object_changes_with_its_content(
    s3_bucket, s3_client, s3_server
):
    s3_client.put_object(Bucket=s3_bucket, Key="raw/flights.csv", Body=b"year\n2013\n")
    settings = Settings(
        data={"source": f"s3://{s3_bucket}/raw/flights.csv"},
        artifacts={"uri": f"s3://{s3_bucket}/artifacts", "s3_endpoint_url": s3_server},
    )
    first = source_fingerprint(settings)["flights"]
    s3_client.put_object(Bucket=s3_bucket, Key="raw/flights.csv", Body=b"year\n2014\n")
    assert source_fingerprint(settings)["flights"] != first
    assert json.dumps(first)  # a plain string, fit for a cache key
