"""The data stage reading flights from, and writing its snapshot to, a real S3 endpoint
(moto's server on the loopback, boto3 over HTTP)."""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from conftest import flight_settings, flights_between

from e2eai.config import Settings
from e2eai.errors import DataSourceError
from e2eai.storage import sha256_bytes
from e2eai.tasks.flights.prepare import prepare_flights
from e2eai.tasks.flights.sources import RawTables

DAY = date(2013, 1, 1)


@pytest.fixture
def flights_csv(raw_flight_tables: RawTables) -> bytes:
    """One real day of flights as CSV text, with one row repeated (a duplicate)."""
    flights = flights_between(raw_flight_tables, DAY, DAY).flights
    flights = pd.concat([flights, flights.iloc[[5]]], ignore_index=True)
    return flights.to_csv(index=False).encode()


def _s3_settings(home: Path, source: str, bucket: str, endpoint: str) -> Settings:
    base = flight_settings(home, DAY, DAY, source=source)
    return base.model_copy(
        update={
            "artifacts": base.artifacts.model_copy(
                update={"uri": f"s3://{bucket}/artifacts", "s3_endpoint_url": endpoint}
            )
        }
    )


def test_prepare_from_s3_with_the_snapshot_in_the_bucket(
    tmp_path: Path, s3_server: str, s3_bucket: str, s3_client, flights_csv: bytes
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="incoming/flights.csv", Body=flights_csv)
    settings = _s3_settings(
        tmp_path, f"s3://{s3_bucket}/incoming/flights.csv", s3_bucket, s3_server
    )
    prepared = prepare_flights(settings)

    rows = flights_csv.count(b"\n") - 1  # minus the header
    assert prepared.rows_in == rows == 843
    assert prepared.rows_accepted + prepared.rows_quarantined + prepared.rows_excluded == rows
    assert prepared.quarantined_by_reason == {"duplicate": 1}
    assert set(prepared.excluded_by_reason) == {"cancelled", "diverted"}

    prefix = f"artifacts/snapshots/{prepared.snapshot[:16]}/"
    assert prepared.snapshot_manifest == f"s3://{s3_bucket}/{prefix}manifest.json"
    listed = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=prefix)["Contents"]
    keys = sorted(obj["Key"].removeprefix(prefix) for obj in listed)
    tables = ("airlines", "airports", "flights", "planes", "weather")
    assert keys == sorted(["manifest.json", *(f"{t}.parquet" for t in tables)])
    manifest = json.loads(
        s3_client.get_object(Bucket=s3_bucket, Key=f"{prefix}manifest.json")["Body"].read()
    )
    assert manifest["id"] == prepared.snapshot
    assert manifest["source"] == f"s3://{s3_bucket}/incoming/flights.csv"
    for table in manifest["tables"]:
        blob = s3_client.get_object(Bucket=s3_bucket, Key=f"artifacts/{table['key']}")
        data = blob["Body"].read()
        assert sha256_bytes(data) == table["sha256"], table["name"]
        assert len(data) == table["bytes"], table["name"]
    flights_table = next(t for t in manifest["tables"] if t["name"] == "flights")
    assert flights_table["rows"] == rows
    # The snapshot holds what was read, as read: the same rows, cells still text.
    snap = pd.read_parquet(
        io.BytesIO(
            s3_client.get_object(Bucket=s3_bucket, Key=f"artifacts/{flights_table['key']}")[
                "Body"
            ].read()
        )
    )
    assert len(snap) == rows and snap["dep_delay"].dtype == object


def test_same_input_same_snapshot_wherever_it_comes_from(
    tmp_path: Path, s3_server: str, s3_bucket: str, s3_client, flights_csv: bytes
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="a/flights.csv", Body=flights_csv)
    s3_client.put_object(Bucket=s3_bucket, Key="b/copy.csv", Body=flights_csv)
    first = prepare_flights(
        _s3_settings(tmp_path / "1", f"s3://{s3_bucket}/a/flights.csv", s3_bucket, s3_server)
    )
    manifest_key = f"artifacts/snapshots/{first.snapshot[:16]}/manifest.json"
    stamp = s3_client.head_object(Bucket=s3_bucket, Key=manifest_key)["LastModified"]
    again = prepare_flights(
        _s3_settings(tmp_path / "2", f"s3://{s3_bucket}/b/copy.csv", s3_bucket, s3_server)
    )
    assert again.snapshot == first.snapshot
    # Content addressing: the existing snapshot was reused, not written a second time.
    assert s3_client.head_object(Bucket=s3_bucket, Key=manifest_key)["LastModified"] == stamp
    snapshots = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="artifacts/snapshots/")
    assert {obj["Key"].split("/")[2] for obj in snapshots["Contents"]} == {first.snapshot[:16]}

    # The same bytes from a local file give the same id; one changed byte gives another.
    local = tmp_path / "flights.csv"
    local.write_bytes(flights_csv)
    from_disk = prepare_flights(flight_settings(tmp_path / "3", DAY, DAY, source=str(local)))
    assert from_disk.snapshot == first.snapshot
    local.write_bytes(flights_csv.replace(b"N14228", b"N14229", 1))
    changed = prepare_flights(flight_settings(tmp_path / "4", DAY, DAY, source=str(local)))
    assert changed.snapshot != first.snapshot


def test_missing_s3_object_is_a_data_source_error(
    tmp_path: Path, s3_server: str, s3_bucket: str
) -> None:
    uri = f"s3://{s3_bucket}/nothing/here.csv"
    with pytest.raises(DataSourceError, match="cannot read object") as info:
        prepare_flights(_s3_settings(tmp_path, uri, s3_bucket, s3_server))
    assert info.value.source == uri
