"""Text heads: corpora loaders and their bad inputs, dictionary rules, the LoRA adapter
encoder, the shipped checkpoints, and a small train/CV run against the dictionary."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from ser_models.text_corpora import (FOMC_LABELS, FOMC_SEEDS, FPB_LABELS, TextCorpusError, fomc_file, load_fomc,
                                     load_phrasebank, load_text_corpus, not_english)
from ser_models.inference import EmotionScorer
from ser_models.text_heads import (SHIPPED, cross_validate_text, dictionary_baseline, evaluate_model,
                                   fomc_dictionary, hawk_dove_score, lm_sentiment, load_recipe)

from shared_data import SHARED, needs_shared

FPB = SHARED / "financial_phrasebank"
FOMC = SHARED / "fomc_hawkish_dovish"


# --- loaders on the real corpora ----------------------------------------------------------

@needs_shared
def test_phrasebank_counts_are_the_published_ones():
    raw = (FPB / "Sentences_50Agree.txt").read_bytes().decode("iso-8859-1").splitlines()
    independent = pd.Series([line.rsplit("@", 1)[1] for line in raw if line.strip()]).value_counts().to_dict()
    assert independent == {"neutral": 2879, "positive": 1363, "negative": 604}
    kept = load_phrasebank(FPB, non_english="keep", quiet=True)
    assert kept.counts() == {"negative": 604, "neutral": 2879, "positive": 1363} and len(kept) == 4846
    assert kept.labels == FPB_LABELS and kept.texts[0].startswith("According to Gran")
    c = load_phrasebank(FPB, quiet=True)          # default: the one German sentence is skipped
    assert c.skipped == {"empty": 0, "not_english": 1}
    assert c.counts() == {"negative": 604, "neutral": 2878, "positive": 1363}
    assert "line 2992" not in c.ids and "line 2991" in c.ids


@needs_shared
@pytest.mark.parametrize("seed", FOMC_SEEDS)
def test_fomc_split_sizes_and_labels(seed):
    for part, n in (("train", 1903), ("test", 476)):
        c = load_fomc(FOMC, seed, part, quiet=True)
        df = pd.read_csv(fomc_file(FOMC, seed, part))
        assert len(c) == len(df) == n and c.labels == FOMC_LABELS
        assert np.array_equal(c.y, df["label"].to_numpy())          # 0 dovish, 1 hawkish, 2 neutral
        assert c.skipped == {"empty": 0, "not_english": 0}
    assert "_labeled" not in fomc_file(FOMC, seed, "test").name


# --- bad inputs -------------------------------------------------------------------------

def _csv(tmp_path, rows, name="labels.csv"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(tmp_path / name, index=False)
    return tmp_path


def test_empty_sentences_are_skipped_with_a_count(tmp_path, capsys):
    root = _csv(tmp_path, [("Profit rose sharply.", "positive"), ("", "neutral"), ("   ", "negative"),
                           ("Sales fell by 10 % .", "negative")])
    c = load_text_corpus(root, FPB_LABELS)
    assert c.texts == ["Profit rose sharply.", "Sales fell by 10 % ."] and list(c.y) == [2, 0]
    assert c.skipped["empty"] == 2 and c.ids == ["line 2", "line 5"]
    err = capsys.readouterr().err
    assert "labels.csv: skipped 2 empty sentences (line 3, line 4)" in err


def test_phrasebank_file_with_empty_sentence(tmp_path, capsys):
    f = tmp_path / "Sentences_50Agree.txt"
    f.write_bytes("Operating profit rose .@positive\n@neutral\nNet sales decreased .@negative\n".encode("iso-8859-1"))
    c = load_phrasebank(f)
    assert len(c) == 2 and c.skipped["empty"] == 1 and "skipped 1 empty sentences (line 2)" in capsys.readouterr().err


def test_non_english_sentences_are_skipped_with_a_count(tmp_path, capsys):
    rows = [("Operating profit rose to EUR 13.1 mn from EUR 8.7 mn .", "positive"),
            ("Yhtiön liikevaihto kasvoi viime vuonna ja tulos parani selvästi .", "positive"),
            ("Der Umsatz ist im Jahr um zehn Prozent gestiegen und das Ergebnis auch .", "positive"),
            ("Операционная прибыль выросла на 5 процентов .", "positive"),
            ("Supported Nokia phones include : N96 , N95 , E71 .", "neutral"),        # a list: kept
            ("Barclays Plc ( LSE : BARC ) ( NYSE : BCS )", "neutral")]                 # tickers: kept
    c = load_text_corpus(_csv(tmp_path, rows), FPB_LABELS)
    assert len(c) == 3 and c.skipped["not_english"] == 3
    assert "skipped 3 non-English sentences (line 3, line 4, line 5)" in capsys.readouterr().err
    assert not_english("Le chiffre d'affaires a augmenté de 5 % pour la société .")
    assert not not_english("Inflation pressures remain elevated , and the Committee will raise rates .")


def test_unknown_labels_error_names_file_labels_and_lines(tmp_path):
    root = _csv(tmp_path, [("a rose", "positive"), ("b fell", "bearish"), ("c flat", "neutral"), ("d", "Bullish")])
    with pytest.raises(TextCorpusError) as e:
        load_text_corpus(root, FPB_LABELS)
    msg = str(e.value)
    assert "\n" not in msg and str(root / "labels.csv") in msg
    assert "['bearish', 'bullish']" in msg and "line 3, line 5" in msg
    c = load_text_corpus(root, FPB_LABELS, label_map={"bearish": "negative", "bullish": "positive"})
    assert list(c.y) == [2, 0, 1, 2]


def test_corpus_with_no_class_in_common_is_one_line_error(tmp_path):
    root = _csv(tmp_path, [("rates up", "hawkish"), ("rates down", "dovish")])
    with pytest.raises(TextCorpusError, match=r"labels\.csv: no class in common with the model: corpus labels "
                                              r"\['dovish', 'hawkish'\], model labels \['negative', 'neutral', "
                                              r"'positive'\]$"):
        load_text_corpus(root, FPB_LABELS)
    f = tmp_path / "fpb.txt"
    f.write_text("Profit rose .@hawkish\n")
    with pytest.raises(TextCorpusError, match="fpb.txt: no class in common"):
        load_phrasebank(f)


def test_missing_file_and_columns(tmp_path):
    with pytest.raises(TextCorpusError, match="labels.csv: not found"):
        load_text_corpus(tmp_path, FPB_LABELS)
    pd.DataFrame({"sentence": ["x"], "label": ["positive"]}).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(TextCorpusError, match=r"missing columns \['text'\]"):
        load_text_corpus(tmp_path, FPB_LABELS)


# --- dictionary rules -------------------------------------------------------------------

def test_hawk_dove_rule_on_hand_written_sentences():
    hawkish = ["The Committee decided to raise the target range for the federal funds rate.",
               "Inflation pressures remain elevated and wage growth is strong.",
               "Further tightening of monetary policy may be appropriate.",
               "Participants agreed that removal of policy accommodation should continue."]
    dovish = ["The Committee decided to lower the target range for the federal funds rate.",
              "Inflation has been running below our objective and growth is slowing.",
              "Policy will remain accommodative; downside risks to the outlook have increased.",
              "Unemployment has risen sharply."]
    neutral = ["The meeting was held in Washington.", "Members discussed the staff presentation."]
    assert [hawk_dove_score(t) > 0 for t in hawkish] == [True] * 4
    assert [hawk_dove_score(t) < 0 for t in dovish] == [True] * 4
    assert [hawk_dove_score(t) for t in neutral] == [0, 0]
    assert list(fomc_dictionary(hawkish[:1] + dovish[:1] + neutral[:1])) == [1, 0, 2]   # FOMC label ids


def test_lm_rule_and_label_order():
    texts = ["Operating profit improved strongly and the outlook is excellent .",
             "The company reported a loss and warned of weak demand .", "The company is based in Espoo ."]
    assert list(lm_sentiment(texts)) == [2, 0, 1]
    name, pred = dictionary_baseline(("positive", "negative", "neutral"), texts)      # another label order
    assert name.startswith("Loughran") and list(pred) == [0, 1, 2]


# --- the LoRA adapter encoder -----------------------------------------------------------

def test_lora_adapter_starts_as_frozen_minilm_and_round_trips(tmp_path):
    from ser_models.encoders import EncoderConfig, build_encoder

    texts = ["Inflation remains elevated.", "Profit fell.", ""]
    frozen = build_encoder(EncoderConfig(kind="minilm", layers="all"), tmp_path / "c").encode(texts)
    enc = build_encoder(EncoderConfig(kind="minilm_lora", layers="all", finetune=True, name="top=2,r=4"),
                        tmp_path / "c")
    enc.reset_adapter(3)
    fresh = enc.encode(texts)
    assert fresh[2].shape == (7, 0, 384)                                     # empty text: no frame
    for a, b in zip(frozen[:2], fresh[:2]):       # B = 0: the adapter changes nothing (float16 caches)
        assert a.shape == b.shape and np.abs(a.astype(np.float32) - b).max() < 0.05
    n_params = sum(p.numel() for p in enc.parameters())
    assert n_params == 2 * 4 * (4 * (384 + 384) + (384 + 1536) + (1536 + 384))
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
    tuned = enc.encode(texts[:2])
    assert np.abs(tuned[0][:5] - fresh[0][:5]).max() == 0 and np.abs(tuned[0][5:] - fresh[0][5:]).max() > 1e-3
    enc.save(tmp_path / "adapter")
    back = build_encoder(EncoderConfig(kind="minilm_lora", layers="all", name=str(tmp_path / "adapter")),
                         tmp_path / "c")
    assert np.allclose(back.encode(texts[:2])[0], tuned[0], atol=1e-5)
    with torch.no_grad():                    # a training run on a saved adapter starts from it (warm start)
        for p in back.parameters():
            p.zero_()
    assert np.abs(back.encode(texts[:2])[0][5:] - fresh[0][5:]).max() < 1e-5
    back.reset_adapter(7)
    assert np.allclose(back.encode(texts[:2])[0], tuned[0], atol=1e-5)
    assert json.loads((tmp_path / "adapter" / "adapter.json").read_text())["r"] == 4
    assert back.encoder_id != enc.encoder_id                  # heads with other adapters never share it


def test_contrastive_adaptation_learns_and_leaves_the_encoder_deterministic(tmp_path):
    """SimCSE on the adapter: two dropout views of a sentence must find each other in the batch.
    The loss must fall well below its start, the adapter must move off the frozen model, and
    encoding afterwards must be deterministic again (dropout off)."""
    from ser_models.encoders import EncoderConfig, build_encoder
    from ser_models.text_adapter import contrastive_adapt

    texts = [f"The Committee expects {w} to {v} over the coming {p}." for w in ("inflation", "unemployment",
             "growth", "the funds rate") for v in ("rise", "fall") for p in ("months", "year")]
    enc = build_encoder(EncoderConfig(kind="minilm_lora", layers="all", finetune=True, name="top=1,r=4"),
                        tmp_path / "c")
    frozen = enc.encode(texts[:2])
    losses = contrastive_adapt(enc, texts + [""], epochs=12, batch_size=8, lr=2e-3, temperature=0.05, seed=0)
    assert len(losses) == 12 * 2                              # 16 non-empty texts, batches of 8
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4])
    after = enc.encode(texts[:2])
    assert np.abs(after[0][-1] - frozen[0][-1]).max() > 1e-2 and np.abs(after[0][:6] - frozen[0][:6]).max() < 0.05
    assert np.array_equal(enc.encode(texts[:2])[0], after[0])
    with pytest.raises(ValueError, match="at least 2 non-empty texts"):
        contrastive_adapt(enc, ["only one", " "])


def test_masked_lm_adaptation_learns_the_domain_and_drops_its_head(tmp_path):
    """MLM on the adapter: on a handful of repeated sentences the masked tokens become
    predictable, so the loss must fall far below that of a fresh head (about ln V); the lower
    hidden states must not move and encoding must be deterministic afterwards."""
    from ser_models.encoders import EncoderConfig, build_encoder
    from ser_models.text_adapter import masked_lm_adapt

    texts = [f"The Committee decided to {v} the target range for the federal funds rate." for v in
             ("raise", "lower", "maintain", "keep")] * 8
    enc = build_encoder(EncoderConfig(kind="minilm_lora", layers="all", finetune=True, name="top=1,r=4"),
                        tmp_path / "c")
    frozen = enc.encode(texts[:1])
    losses = masked_lm_adapt(enc, texts + ["  "], epochs=15, batch_size=8, lr=2e-3, seed=0)
    assert len(losses) == 15 * 4                              # 32 non-empty texts, batches of 8
    assert np.mean(losses[:2]) > 8 and np.mean(losses[-8:]) < 0.35 * np.mean(losses[:2])   # (ln 30522 = 10.3)
    after = enc.encode(texts[:1])
    assert np.abs(after[0][-1] - frozen[0][-1]).max() > 1e-2 and np.abs(after[0][:6] - frozen[0][:6]).max() < 0.05
    assert np.array_equal(enc.encode(texts[:1])[0], after[0])
    with pytest.raises(ValueError, match="at least one non-empty text"):
        masked_lm_adapt(enc, ["", " "])


# --- training on a few hundred sentences beats the dictionary ----------------------------

@needs_shared
def test_small_cv_beats_the_lm_dictionary():
    from dataclasses import replace

    r = load_recipe("ser_models/configs/text_sentiment.toml")
    r.corpus = str(FPB)
    c = load_phrasebank(FPB, quiet=True)
    idx = np.random.default_rng(0).choice(len(c), 450, replace=False)
    small = c.subset(idx)
    r.exp = replace(r.exp, train=replace(r.exp.train, epochs=12))
    rep = cross_validate_text(r, small, k=3)
    assert sum(len(f.y_true) for f in rep.cv.folds) == 450
    for f in rep.cv.folds:                           # stratified folds: class shares kept
        assert abs(np.mean(f.y_true == 1) - np.mean(small.y == 1)) < 0.02
    dict_f1 = np.mean([d.macro_f1 for d in rep.dictionary])
    # the rule's per-fold accuracy, recomputed on sklearn's stratified folds
    from sklearn.model_selection import StratifiedKFold

    rule = dictionary_baseline(FPB_LABELS, small.texts)[1]
    folds = StratifiedKFold(3, shuffle=True, random_state=r.cv_seed).split(np.zeros(450), small.y)
    assert [d.wa for d in rep.dictionary] == pytest.approx([np.mean(rule[t] == small.y[t]) for _, t in folds])
    assert rep.cv.mean("macro_f1") > dict_f1 + 0.1 and rep.cv.mean("wa") > 0.7


# --- the shipped checkpoints ----------------------------------------------------------------

def test_sentiment_checkpoint_scores_clear_sentences():
    head = EmotionScorer.load(SHIPPED["sentiment"])
    assert head.labels == FPB_LABELS and head.card.raw["noncommercial"] is True
    assert "CC BY-NC-SA 3.0" in head.card.raw["corpus"]["licence"]
    pos = ["Operating profit rose 35 % to EUR 12 million , beating expectations .",
           "The company's net sales increased strongly and its order backlog hit a record high .",
           "Earnings per share doubled compared with last year ."]
    neg = ["Operating loss widened to EUR 5 million as net sales fell by 20 % .",
           "The company announced it will lay off 300 employees after orders collapsed .",
           "Pre-tax profit decreased sharply and the company issued a profit warning ."]
    p = head.text_probs(pos + neg + [""])
    assert list(p[:3].argmax(1)) == [2, 2, 2] and list(p[3:6].argmax(1)) == [0, 0, 0]
    assert (p[:3, 2] > 0.6).all() and (p[3:6, 0] > 0.6).all()
    assert np.isnan(p[6]).all() and np.allclose(p[:6].sum(1), 1)
    assert head.card.raw["metrics"]["cv"]["wa_mean"] >= 0.82


@needs_shared
def test_fomc_checkpoint_on_its_own_test_split():
    head = EmotionScorer.load(SHIPPED["fomc"])
    seed = head.card.raw["data"]["seed"]
    assert head.labels == FOMC_LABELS and "CC BY-NC 4.0" in head.card.raw["corpus"]["licence"]
    test = load_fomc(FOMC, seed, "test", quiet=True)
    sub = test.subset(np.arange(0, len(test), 3))                  # 159 of the 476 sentences
    res = evaluate_model(head.model, head.featurizer, sub, "fomc")
    measured = head.card.raw["metrics"]["splits"][str(seed)]["macro_f1"]
    assert res.model.macro_f1 >= min(0.5, measured - 0.12)
    assert res.model.macro_f1 > res.dictionary.macro_f1
