"""The flight task's data stage: flights, weather, planes → validated, cleaned tables.

Validates every flight (types, ranges, calendar dates, references to airlines and
airports), de-duplicates, applies the per-column missing-value policy, and publishes the
accepted flights, the quarantine, the excluded rows and the reference tables at once.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from e2eai.config import Settings
from e2eai.data.prepare import (
    PREPARED,
    REASON,
    REASON_CODE,
    SOURCE_ROW,
    PreparedData,
    as_text,
    check_accounting,
    load_prepared,
    publishing,
    write_manifest,
)
from e2eai.data.snapshot import Snapshot, write_snapshot
from e2eai.storage import open_store
from e2eai.tasks.flights.cleaning import (
    FLIGHT_MISSING_POLICY,
    PLANE_MISSING_POLICY,
    WEATHER_MISSING_POLICY,
    clean_flights,
    clean_planes,
    clean_weather,
)
from e2eai.tasks.flights.quality import write_quality_report
from e2eai.tasks.flights.sources import RawTables, read_raw_tables
from e2eai.tasks.flights.validation import References, known_airports, validate_flights

TABLES = ("flights", "weather", "planes")


def _outside_window(valid: pd.DataFrame, settings: Settings) -> pd.Series:
    day = pd.to_datetime(
        {"year": valid["year"], "month": valid["month"], "day": valid["day"]}
    ).dt.date
    return (day < settings.data.start) | (day > settings.data.end)


def prepare_flights(settings: Settings, raw: RawTables | None = None) -> PreparedData:
    """Run the flight data stage for ``settings.data``: the accounting and output paths."""
    raw = raw if raw is not None else read_raw_tables(settings.data.source, settings.artifacts)
    snapshot: Snapshot = write_snapshot(raw.as_dict(), raw.source, open_store(settings.artifacts))

    refs = References(frozenset(raw.airlines["carrier"].dropna()), known_airports(raw.airports))
    outcome = validate_flights(raw.flights, settings.data, refs)
    rows_in, raw_columns = len(raw.flights), list(raw.flights.columns)
    # Each intermediate is let go once the next exists: at ten years of flights, the raw
    # text, the typed rows and the cleaned rows held at once were most of the peak memory.
    raw = dataclasses.replace(raw, flights=raw.flights.iloc[:0])
    rejected = outcome.rejected
    outside = _outside_window(outcome.valid, settings)
    in_window = outcome.valid[~outside]
    window_excluded = outcome.valid[outside].copy()
    del outcome, outside
    window_excluded[REASON_CODE] = "outside_window"
    window_excluded[REASON] = f"outside data window {settings.data.start}..{settings.data.end}"

    cleaned = clean_flights(in_window, settings.data)
    del in_window
    weather = clean_weather(raw.weather, settings.data)
    planes = clean_planes(raw.planes)

    keep = [*raw_columns, REASON_CODE, REASON, SOURCE_ROW]
    quarantine = pd.concat(
        [as_text(rejected), as_text(cleaned.duplicates)[keep]], ignore_index=True
    )
    excluded = pd.concat([window_excluded, cleaned.excluded])
    excluded[SOURCE_ROW] = excluded.index.astype("int64")
    excluded = as_text(excluded[keep]).reset_index(drop=True)

    check_accounting(rows_in, len(cleaned.flights), len(quarantine), len(excluded))
    with publishing(settings) as staging:
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
        write_manifest(staging, snapshot.id, snapshot.manifest_uri)
    final = settings.data_dir / PREPARED

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


def load_prepared_flights(settings: Settings) -> dict[str, pd.DataFrame]:
    """The prepared flight, weather and plane tables of the last data run."""
    return {name: pd.read_parquet(path) for name, path in load_prepared(settings, TABLES).items()}
