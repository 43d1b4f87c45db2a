"""Two operating-system processes using one registry database (SQLite, PostgreSQL) at once."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2eai.registry import ModelRegistry, Stage
from e2eai.storage import LocalArtifactStore


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return request.getfixturevalue("postgres_url")


# Each worker opens the registry (the first use of a fresh database, so table creation races
# too), waits for the start signal, then registers or promotes as fast as it can.
_WORKER = r"""
import json, sys, time
from pathlib import Path
from e2eai.registry import ModelRegistry
from e2eai.storage import LocalArtifactStore

url, store_root, go_file, tag, action, count = sys.argv[1:7]
artifact = Path(store_root).parent / f"{tag}.bin"
artifact.write_bytes(tag.encode() * 100)
print("ready", flush=True)
while not Path(go_file).exists():
    time.sleep(0.002)
registry = ModelRegistry(url, LocalArtifactStore(Path(store_root)))
done = []
if action == "register":
    for i in range(int(count)):
        mv = registry.register(name="flight-delay", family="logreg",
                               artifacts={"model": artifact}, metrics={"i": i},
                               params={"writer": tag}, lineage={})
        done.append(mv.version)
else:  # promote each listed version in turn
    for version in map(int, count.split(",")):
        registry.transition(version, "champion", reason=f"promoted by {tag}")
        done.append(version)
print(json.dumps(done), flush=True)
"""


def _run_pair(tmp_path: Path, url: str, jobs: list[tuple[str, str, str]]) -> list[list[int]]:
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, str(tmp_path / "store"), str(go), *job],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for job in jobs
    ]
    for process in processes:  # both are imported and waiting before either starts
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    go.touch()
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    return results


def test_two_processes_registering_at_once_get_distinct_increasing_versions(
    tmp_path: Path, database_url: str
) -> None:
    per_process = 6
    started = time.perf_counter()
    first, second = _run_pair(
        tmp_path,
        database_url,
        [("alpha", "register", str(per_process)), ("beta", "register", str(per_process))],
    )
    elapsed = time.perf_counter() - started

    assert first == sorted(first) and second == sorted(second)
    assert not set(first) & set(second)
    assert sorted(first + second) == list(range(1, 2 * per_process + 1)), elapsed

    with ModelRegistry(database_url, LocalArtifactStore(tmp_path / "store")) as reg:
        versions = reg.list()
        assert [v.version for v in versions] == list(range(1, 2 * per_process + 1))
        for mv in versions:
            writer = mv.params["writer"]
            assert mv.version in (first if writer == "alpha" else second)
            # Each version's artifact holds exactly what its own writer uploaded.
            assert reg.verify(mv.version).ok
            path = reg.fetch_artifact(mv.version, "model", tmp_path / "check" / str(mv.version))
            assert path.read_bytes() == writer.encode() * 100


def test_two_processes_promoting_at_once_leave_exactly_one_champion(
    tmp_path: Path, database_url: str
) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    artifact = tmp_path / "m.bin"
    artifact.write_bytes(b"m")
    with ModelRegistry(database_url, store) as reg:
        versions = [
            reg.register(
                name="flight-delay",
                family="logreg",
                artifacts={"model": artifact},
                metrics={},
                params={},
                lineage={},
            ).version
            for _ in range(10)
        ]
    odd, even = versions[::2], versions[1::2]

    _run_pair(
        tmp_path,
        database_url,
        [
            ("alpha", "promote", ",".join(map(str, odd))),
            ("beta", "promote", ",".join(map(str, even))),
        ],
    )

    with ModelRegistry(database_url, store) as reg:
        final = reg.list()
        assert sorted(mv.stage for mv in final).count(Stage.CHAMPION) == 1
        assert all(mv.stage in (Stage.CHAMPION, Stage.ARCHIVED) for mv in final)
        champion = reg.champion("flight-delay")
        assert champion is not None
        # Every promotion happened (each version was champion once) and every one but the
        # last was archived by the next promotion, which names itself in the reason.
        archived_by = {}
        for mv in final:
            moves = [(t.from_stage, t.to_stage) for t in mv.transitions]
            assert moves[:2] == [(None, Stage.CANDIDATE), (Stage.CANDIDATE, Stage.CHAMPION)]
            if mv.version != champion.version:
                assert moves[2:] == [(Stage.CHAMPION, Stage.ARCHIVED)]
                archived_by[mv.version] = mv.transitions[-1].reason
        assert len(archived_by) == len(versions) - 1
        # The champion periods do not overlap: ordered by promotion time, each version was
        # archived no earlier than the next one became champion.
        promoted_at = sorted((mv.transitions[1].at, mv.version) for mv in final)
        assert promoted_at[-1][1] == champion.version
        for (_, earlier), (later_at, later) in itertools.pairwise(promoted_at):
            assert f"v{later} as champion" in archived_by[earlier]
            assert reg.get(earlier).transitions[-1].at == later_at  # one instant
