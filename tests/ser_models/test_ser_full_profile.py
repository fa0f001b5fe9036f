"""Full profile (W2V-BERT 2.0 + DeBERTa-v3) end to end, with tiny randomly initialised models
of exactly those classes saved to tmp_path and loaded back through ``from_pretrained``.

The recipe is ``ser_models/configs/full.toml`` with only the two model names replaced by
the tiny local folders (what a user with the real weights changes: ids or paths).  The
DeBERTa tokenizer is a real ``DebertaV2Tokenizer`` over a small SentencePiece model trained
here, offline, on RAVDESS and FOMC sentences.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ser_models.checkpoint import load_checkpoint, save_checkpoint
from ser_models.corpus import load_corpus
from ser_models.inference import EmotionScorer
from ser_models.train import Featurizer, fit, load_experiment, predict

from pipelines.speech.emotion import score_call_emotions

from ser_helpers import RAVDESS, SHARED, fake_call
from shared_data import needs_shared

pytestmark = needs_shared

FULL = Path(__file__).resolve().parents[2] / "ser_models" / "configs" / "full.toml"
EMOTIONS = ("neutral", "happy", "sad", "angry")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    import sentencepiece as spm
    from transformers import (DebertaV2Config, DebertaV2Model, DebertaV2Tokenizer, SeamlessM4TFeatureExtractor,
                              Wav2Vec2BertConfig, Wav2Vec2BertModel)

    root = tmp_path_factory.mktemp("tiny_models")
    torch.manual_seed(0)
    w2v = root / "w2v-bert-2.0-tiny"
    Wav2Vec2BertModel(Wav2Vec2BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=64, output_hidden_size=32,
                                         conv_depthwise_kernel_size=5)).save_pretrained(w2v)
    SeamlessM4TFeatureExtractor().save_pretrained(w2v)

    deberta = root / "deberta-v3-tiny"
    lines = [ln.split(",")[3] for ln in (RAVDESS / "labels.csv").read_text().splitlines()[1:3]]
    fomc = sorted((SHARED / "fomc_hawkish_dovish").rglob("*.csv"))[0].read_text(errors="ignore").splitlines()[:400]
    corpus = root / "spm.txt"
    corpus.write_text("\n".join(lines * 20 + fomc))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(root / "spm"), vocab_size=300,
                                   pad_id=0, unk_id=3, bos_id=1, eos_id=2, minloglevel=2)
    tok = DebertaV2Tokenizer(vocab_file=str(root / "spm.model"))
    tok.save_pretrained(deberta)
    DebertaV2Model(DebertaV2Config(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=64, max_position_embeddings=128, relative_attention=True,
                                   position_buckets=16, pos_att_type=["p2c", "c2p"])).save_pretrained(deberta)
    return w2v, deberta


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """16 real RAVDESS clips: 4 actors x 4 emotions (labels.csv with absolute paths)."""
    import csv

    root = tmp_path_factory.mktemp("corpus")
    keep = []
    with open(RAVDESS / "labels.csv") as f:
        for r in csv.DictReader(f):
            _, _, _, intensity, statement, rep, actor = Path(r["path"]).stem.split("-")
            if (int(actor) <= 4 and r["emotion"] in EMOTIONS and statement == "01" and rep == "01"
                    and (intensity == "02" or r["emotion"] == "neutral")):
                keep.append(",".join([str(RAVDESS / r["path"]), r["speaker"], r["emotion"], r["text"], r["gender"]]))
    (root / "labels.csv").write_text("\n".join(["path,speaker,emotion,text,gender"] + keep) + "\n")
    return root


def _full_experiment(w2v, deberta, audio_finetune):
    exp = load_experiment(FULL)
    assert exp.model.audio.name == "facebook/w2v-bert-2.0" and exp.model.text.name == "microsoft/deberta-v3-base"
    model = replace(exp.model, labels=EMOTIONS,
                    audio=replace(exp.model.audio, name=str(w2v), finetune=audio_finetune),
                    text=replace(exp.model.text, name=str(deberta)))
    return replace(exp, model=model, train=replace(exp.train, epochs=2, batch_size=8))


def test_tiny_models_load_through_from_pretrained(tiny_models):
    from transformers import AutoFeatureExtractor, AutoModel, AutoTokenizer

    w2v, deberta = tiny_models
    assert type(AutoModel.from_pretrained(w2v)).__name__ == "Wav2Vec2BertModel"
    assert type(AutoFeatureExtractor.from_pretrained(w2v)).__name__ == "SeamlessM4TFeatureExtractor"
    assert type(AutoModel.from_pretrained(deberta)).__name__ == "DebertaV2Model"
    assert "DebertaV2Tokenizer" in type(AutoTokenizer.from_pretrained(deberta)).__name__


def test_full_profile_train_finetune_and_checkpoint_round_trip(tiny_models, small_corpus, tmp_path):
    exp = _full_experiment(*tiny_models, audio_finetune=True)
    corpus = load_corpus(small_corpus, EMOTIONS)
    assert len(corpus) == 16
    featurizer = Featurizer(exp.model, cache_dir=tmp_path / "cache")
    data = featurizer.prepare(corpus, progress=False)
    assert isinstance(data.inputs["audio"][0], np.ndarray) and data.inputs["audio"][0].ndim == 1   # raw waves
    assert data.inputs["text"][0].shape[-1] == 32                                                  # cached frames
    from ser_models.experiment import with_frame_dims

    exp = with_frame_dims(exp, featurizer, data)
    assert exp.model.audio_layers == 3 and exp.model.audio_dim == 32          # 2 layers + embeddings, all kept
    before = {k: v.clone() for k, v in featurizer.encoders["audio"]._model.state_dict().items()}
    model = fit(exp.model, exp.train, data, featurizer, progress=False)
    after = featurizer.encoders["audio"]._model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)          # backward reached the encoder
    assert model.branches["audio"].mix.logits.detach().abs().sum() > 0         # learned layer weights
    probs, _ = predict(model, data, featurizer)

    card = save_checkpoint(tmp_path / "ckpt", model, "full-tiny", {"corpus": {"licence": "test"}}, featurizer.encoders)
    assert (tmp_path / "ckpt" / "encoders" / "audio" / "model.safetensors").exists()
    loaded, card2 = load_checkpoint(tmp_path / "ckpt")
    assert card2.config.audio.name == str(tmp_path / "ckpt" / "encoders" / "audio")
    scorer = EmotionScorer.load(tmp_path / "ckpt")
    waves, texts = corpus.audio(), corpus.texts
    scores = scorer.score_clips(waves, texts)
    p2, att = scores.probs, scores.attention
    assert np.allclose(p2, probs, atol=1e-5)                                  # identical after the round trip
    assert len(att) == 16 and all(abs(a.sum() - 1) < 1e-5 for a in att)
    assert card.model_id == card2.model_id

    # the flow's emotion stage with the bimodal checkpoint (text branch on the transcripts)
    audio, segments, speakers, truth = fake_call()
    out = score_call_emotions(audio, segments, speakers, checkpoint=tmp_path / "ckpt")
    e = out.emotions.set_index("segment_id")
    scored = e[e["skip_reason"] == ""]
    assert len(scored) == 6 and np.allclose(scored[[f"p_{c}" for c in EMOTIONS]].sum(axis=1), 1.0)
    assert e.loc[7, "skip_reason"] == "" and np.isfinite(e.loc[7, "tone"])    # empty transcript: text pools to 0
    assert out.model_id.split("+")[0] == card.model_id and len(out.call_features) == 1   # + the shipped text heads


def test_full_profile_frozen_cli_train(tiny_models, small_corpus, tmp_path):
    """`speechfin ser train` on the full recipe (frozen encoders; ids replaced by the tiny
    folders), then `ser eval` on its checkpoint."""
    from typer.testing import CliRunner

    from pipelines.cli.main import app

    w2v, deberta = tiny_models
    text = (FULL.read_text().replace("facebook/w2v-bert-2.0", str(w2v)).replace("microsoft/deberta-v3-base", str(deberta))
            .replace("epochs = 25", "epochs = 2").replace('pooling = "mqmha"', f"labels = {list(EMOTIONS)}\npooling = \"mqmha\""))
    path = tmp_path / "full_tiny.toml"
    path.write_text(text.replace("'", '"'))
    runner = CliRunner()
    res = runner.invoke(app, ["ser", "train", "--config", str(path), "--out", str(tmp_path / "ck"),
                              "--corpus", str(small_corpus), "--cv", "2", "--cache", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    assert "2-fold speaker-independent cross-validation" in res.output and "UA=" in res.output
    res = runner.invoke(app, ["ser", "eval", "--checkpoint", str(tmp_path / "ck"), "--corpus", str(small_corpus),
                              "--cache", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    assert "confusion (rows = true" in res.output and "n=16" in res.output
