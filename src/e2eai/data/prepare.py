"""The data stage: ingest → snapshot → validate → clean, with exact row accounting.

``rows_in = rows_accepted + rows_quarantined + rows_excluded`` always holds; every row that
is not accepted is written with its reason. Outputs appear all at once (a staging folder
renamed into place), so a failed run leaves the previous outputs untouched.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from e2eai.config import Settings
from e2eai.data.cleaning import (
    FLIGHT_MISSING_POLICY,
    PLANE_MISSING_POLICY,
    WEATHER_MISSING_POLICY,
    clean_flights,
    clean_planes,
    clean_weather,
)
from e2eai.data.quality import write_quality_report
from e2eai.data.snapshot import Snapshot, write_snapshot
from e2eai.data.sources import RawTables, read_raw_tables
from e2eai.data.validation import (
    REASON,
    REASON_CODE,
    SOURCE_ROW,
    References,
    known_airports,
    validate_flights,
)
from e2eai.storage import open_store

PREPARED = "prepared"


@dataclass(frozen=True)
class PreparedData:
    """Where the prepared tables of a run are, and how every input row was accounted for."""

    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    rows_excluded: int
    quarantined_by_reason: dict[str, int]
    excluded_by_reason: dict[str, int]
    snapshot: str
    snapshot_manifest: str
    directory: Path
    quality_report: Path

    @property
    def flights_path(self) -> Path:
        return self.directory / "flights.parquet"

    @property
    def weather_path(self) -> Path:
        return self.directory / "weather.parquet"

    @property
    def planes_path(self) -> Path:
        return self.directory / "planes.parquet"

    def summary(self) -> dict[str, object]:
        return {
            "rows_in": self.rows_in,
            "rows_accepted": self.rows_accepted,
            "rows_quarantined": self.rows_quarantined,
            "rows_excluded": self.rows_excluded,
            "quarantined_by_reason": self.quarantined_by_reason,
            "excluded_by_reason": self.excluded_by_reason,
            "snapshot": self.snapshot,
            "snapshot_manifest": self.snapshot_manifest,
            "prepared_dir": str(self.directory),
            "quality_report": str(self.quality_report),
        }


def _outside_window(valid: pd.DataFrame, settings: Settings) -> pd.Series:
    day = pd.to_datetime(
        {"year": valid["year"], "month": valid["month"], "day": valid["day"]}
    ).dt.date
    return (day < settings.data.start) | (day > settings.data.end)


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows set aside keep their values as text: one schema for every reason."""
    out = frame.copy()
    for column in out.columns:
        if column not in (SOURCE_ROW,):
            out[column] = out[column].astype("string")
    return out


def prepare_data(settings: Settings, raw: RawTables | None = None) -> PreparedData:
    """Run the data stage for ``settings.data`` and return the accounting and output paths."""
    raw = raw if raw is not None else read_raw_tables(settings.data.source, settings.artifacts)
    snapshot: Snapshot = write_snapshot(raw, open_store(settings.artifacts))

    refs = References(frozenset(raw.airlines["carrier"].dropna()), known_airports(raw.airports))
    outcome = validate_flights(raw.flights, settings.data, refs)
    outside = _outside_window(outcome.valid, settings)
    in_window = outcome.valid[~outside]
    window_excluded = outcome.valid[outside].copy()
    window_excluded[REASON_CODE] = "outside_window"
    window_excluded[REASON] = f"outside data window {settings.data.start}..{settings.data.end}"

    cleaned = clean_flights(in_window, settings.data)
    weather = clean_weather(raw.weather, settings.data)
    planes = clean_planes(raw.planes)

    keep = [*raw.flights.columns, REASON_CODE, REASON, SOURCE_ROW]
    quarantine = pd.concat(
        [_as_text(outcome.rejected), _as_text(cleaned.duplicates)[keep]], ignore_index=True
    )
    excluded = pd.concat([window_excluded, cleaned.excluded])
    excluded[SOURCE_ROW] = excluded.index.astype("int64")
    excluded = _as_text(excluded[keep]).reset_index(drop=True)

    rows_in = len(raw.flights)
    accounted = len(cleaned.flights) + len(quarantine) + len(excluded)
    if accounted != rows_in:  # an invariant, not an input problem: fail loudly
        raise AssertionError(f"row accounting broken: {rows_in} in, {accounted} accounted for")

    final = settings.data_dir / PREPARED
    staging = settings.data_dir / f".staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        cleaned.flights.to_parquet(staging / "flights.parquet", index=False)
        quarantine.to_parquet(staging / "quarantine.parquet", index=False)
        excluded.to_parquet(staging / "excluded.parquet", index=False)
        weather.weather.to_parquet(staging / "weather.parquet", index=False)
        planes.to_parquet(staging / "planes.parquet", index=False)
        report = {
            "source": raw.source,
            "snapshot": snapshot.id,
            "window": {"start": settings.data.start, "end": settings.data.end},
            "rows_in": rows_in,
            "rows_accepted": len(cleaned.flights),
            "rows_quarantined": len(quarantine),
            "rows_excluded": len(excluded),
            "quarantined_by_reason": quarantine[REASON_CODE].value_counts().to_dict(),
            "excluded_by_reason": excluded[REASON_CODE].value_counts().to_dict(),
            "missing_share": cleaned.flights.isna().mean().round(5).loc[lambda s: s > 0].to_dict(),
            "weather": {
                "rows": len(weather.weather),
                "outliers_nulled": weather.outliers_nulled,
                "values_filled": weather.values_filled,
                "duplicates_dropped": weather.duplicates_dropped,
            },
            "planes": {"rows": len(planes)},
            "missing_policy": {
                **{f"flights: {k}": v for k, v in FLIGHT_MISSING_POLICY.items()},
                **{f"weather: {k}": v for k, v in WEATHER_MISSING_POLICY.items()},
                **{f"planes: {k}": v for k, v in PLANE_MISSING_POLICY.items()},
            },
        }
        write_quality_report(report, cleaned.flights, staging)
        (staging / "manifest.json").write_text(
            json.dumps({"snapshot": snapshot.id, "manifest": snapshot.manifest_uri}, indent=2)
        )
        if final.exists():
            retired = settings.data_dir / f".retired-{uuid.uuid4().hex[:8]}"
            final.rename(retired)
            shutil.rmtree(retired)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    return PreparedData(
        rows_in=rows_in,
        rows_accepted=len(cleaned.flights),
        rows_quarantined=len(quarantine),
        rows_excluded=len(excluded),
        quarantined_by_reason={k: int(v) for k, v in report["quarantined_by_reason"].items()},
        excluded_by_reason={k: int(v) for k, v in report["excluded_by_reason"].items()},
        snapshot=snapshot.id,
        snapshot_manifest=snapshot.manifest_uri,
        directory=final,
        quality_report=final / "quality.html",
    )


def load_prepared(settings: Settings) -> dict[str, Path]:
    """Paths of the prepared tables of the last data run (raises if there is none)."""
    from e2eai.errors import E2eaiError

    directory = settings.data_dir / PREPARED
    if not (directory / "manifest.json").is_file():
        raise E2eaiError(f"no prepared data under {directory}: run `e2eai data prepare` first")
    return {name: directory / f"{name}.parquet" for name in ("flights", "weather", "planes")}
