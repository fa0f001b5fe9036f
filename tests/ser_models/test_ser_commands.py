"""`speechfin ser eval --label-map` and `speechfin ser predict` on corpora that are not the
checkpoint's: mapped and shared classes only, speaker-relative scores, documented fallbacks."""

import re
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app

from ser_helpers import RAVDESS, RAVDESS_CODES
from shared_data import needs_shared

pytestmark = needs_shared
runner = CliRunner()
# another lab's names for four RAVDESS emotions, and one emotion the checkpoint does not have
FOREIGN = {"angry": "anger", "happy": "happiness", "sad": "sadness", "neutral": "boredom"}
LABEL_MAP = "anger=angry,happiness=happy,sadness=sad"


def _error_line(res):
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    return lines[0]


@pytest.fixture(scope="module")
def foreign_corpus(tmp_path_factory):
    """Actors 19 and 20 (held out of nothing: a mechanics test), 4 clips per emotion, with
    another corpus's label names; 'boredom' has no class in the checkpoint."""
    root = tmp_path_factory.mktemp("foreign")
    rows = []
    for actor in (19, 20):
        for emo, name in FOREIGN.items():
            intensity = "01" if emo == "neutral" else "02"
            for stmt in ("01", "02"):
                for rep in ("01", "02"):
                    f = f"03-01-{RAVDESS_CODES[emo]}-{intensity}-{stmt}-{rep}-{actor:02d}.flac"
                    shutil.copy(RAVDESS / "audio" / f"Actor_{actor:02d}" / f, root / f)
                    rows.append({"path": f, "speaker": f"a{actor}", "emotion": name})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


def test_eval_with_a_label_map_scores_the_shared_classes_only(foreign_corpus, tmp_path):
    res = runner.invoke(app, ["ser", "eval", "--corpus", str(foreign_corpus), "--label-map", LABEL_MAP,
                              "--cache", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    assert "8 clips dropped" in res.output and "dropped: {'boredom': 8}" in res.output
    assert "classes scored: happy, sad, angry" in res.output and "n=24" in res.output
    ua = float(re.search(r"UA=([\d.]+)%", res.output).group(1)) / 100
    # independently: the probabilities of the kept clips (the dropped ones take no part in their
    # speakers' baselines either), the most likely of the three shared classes, mean recall
    kept = tmp_path / "kept"
    shutil.copytree(foreign_corpus, kept)
    table = pd.read_csv(kept / "labels.csv")
    table[table["emotion"] != "boredom"].to_csv(kept / "labels.csv", index=False)
    res = runner.invoke(app, ["ser", "predict", "--corpus", str(kept), "--out", str(tmp_path / "p.csv"),
                              "--cache", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    p = pd.read_csv(tmp_path / "p.csv")
    truth = pd.read_csv(kept / "labels.csv")["emotion"].map({v: k for k, v in FOREIGN.items()})
    keep = truth != "neutral"
    shared = ["happy", "sad", "angry"]
    pred = np.array(shared)[p.loc[keep, [f"p_{c}" for c in shared]].to_numpy().argmax(1)]
    recall = [np.mean(pred[truth[keep].to_numpy() == c] == c) for c in shared]
    assert ua == pytest.approx(np.mean(recall), abs=0.0005)


def test_predict_rows_tones_and_speaker_bases(foreign_corpus, tmp_path):
    out = tmp_path / "preds.csv"
    res = runner.invoke(app, ["ser", "predict", "--corpus", str(foreign_corpus), "--out", str(out),
                              "--cache", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    p = pd.read_csv(out)
    labels = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    assert len(p) == 32 and list(p.columns[:2]) == ["path", "speaker"]
    pc = p[[f"p_{c}" for c in labels]]
    assert np.allclose(pc.sum(axis=1), 1.0, atol=1e-5)
    expect = pc[["p_happy", "p_surprised"]].sum(axis=1) - pc[["p_sad", "p_angry", "p_fearful", "p_disgust"]].sum(axis=1)
    assert np.allclose(p["tone"], expect, atol=1e-6)
    assert (p["norm_basis"] == "speaker").all()                  # 16 clips (~55 s) per speaker
    assert not np.allclose(p["tone"], p["tone_abs"])             # relative and absolute differ
    m = re.search(r"top class negative .* for ([\d.]+)%; mean tone ([+-][\d.]+)", res.output)
    neg = pc.to_numpy().argmax(1) >= 3
    neg &= pc.to_numpy().argmax(1) <= 6
    assert float(m.group(1)) / 100 == pytest.approx(neg.mean(), abs=0.0005)
    assert float(m.group(2)) == pytest.approx(p["tone"].mean(), abs=0.0005)


def test_a_speaker_with_one_short_clip_falls_back_to_the_population(foreign_corpus, tmp_path):
    root = tmp_path / "short"
    shutil.copytree(foreign_corpus, root)
    import soundfile as sf

    x, sr = sf.read(root / pd.read_csv(root / "labels.csv")["path"][0], dtype="float32")
    sf.write(root / "short.flac", x[sr: sr + sr // 2], sr)             # 0.5 s
    with open(root / "labels.csv", "a") as f:
        f.write("short.flac,newcomer,anger\n")
    res = runner.invoke(app, ["ser", "predict", "--corpus", str(root), "--out", str(tmp_path / "p.csv"),
                              "--cache", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    assert "1 speaker(s) with less than 8 s of speech scored against the population baseline" in res.output
    assert "newcomer (0.5 s)" in res.output
    p = pd.read_csv(tmp_path / "p.csv").set_index("speaker")
    assert p.loc["newcomer", "norm_basis"] == "population"
    assert p.loc["newcomer", "tone"] == pytest.approx(p.loc["newcomer", "tone_abs"], abs=1e-6)


def test_label_map_to_an_unknown_class(foreign_corpus):
    line = _error_line(runner.invoke(app, ["ser", "eval", "--corpus", str(foreign_corpus),
                                           "--label-map", "anger=furious"]))
    assert "--label-map: anger=furious: the checkpoint has no class 'furious'" in line


def test_corpus_with_no_class_in_common(tmp_path, foreign_corpus):
    root = tmp_path / "none"
    root.mkdir()
    df = pd.read_csv(foreign_corpus / "labels.csv").head(4)
    for f in df["path"]:
        shutil.copy(foreign_corpus / f, root / f)
    df.assign(emotion="boredom").to_csv(root / "labels.csv", index=False)
    line = _error_line(runner.invoke(app, ["ser", "eval", "--corpus", str(root)]))
    assert "labels.csv: no class in common with the checkpoint (corpus: boredom;" in line and "--label-map" in line


def test_nuisance_basis_from_an_unlabelled_corpus_with_the_shipped_recipe(foreign_corpus, tmp_path):
    """``[train] nuisance_corpus`` with the shipped recipe (speaker-relative and scaled): the
    basis comes from the corpus's raw frames (no labels read), one orthonormal row per
    direction, the within-speaker directions of largest variance first. It raised
    "speaker_scale needs a speaker_norm" once speaker scaling shipped."""
    from ser_models.experiment import nuisance_from_corpus
    from ser_models.speaker_norm import item_means
    from pipelines.speech.emotion import load_emotion_scorer

    unlabelled = pd.read_csv(foreign_corpus / "labels.csv")[["path", "speaker"]]
    unlabelled.to_csv(tmp_path / "labels.csv", index=False)
    for f in unlabelled["path"]:
        shutil.copy(foreign_corpus / f, tmp_path / f)
    fz = load_emotion_scorer().featurizer
    assert fz.config.speaker_norm != "none" and fz.config.speaker_scale
    u = nuisance_from_corpus(fz, tmp_path, 4, progress=False)
    assert u.shape == (4, fz.config.audio_dim)
    np.testing.assert_allclose(u @ u.T, np.eye(4), atol=1e-4)
    # the same directions from the deviations of each clip's mean frame from its speaker's mean
    from dataclasses import replace
    from ser_models.corpus import load_corpus
    from ser_models.train import Featurizer

    corpus = load_corpus(tmp_path, None, None, require_labels=False)
    frames = Featurizer(replace(fz.config, speaker_norm="none", speaker_scale=False),
                        encoders=fz.encoders).prepare(corpus, progress=False).inputs["audio"]
    means = item_means(frames, np.asarray(corpus.speakers, dtype=object), None)
    dev = np.concatenate([means[np.asarray(corpus.speakers) == s] - means[np.asarray(corpus.speakers) == s].mean(0)
                          for s in set(corpus.speakers)]).reshape(-1, u.shape[1])
    var = ((dev @ u.T) ** 2).mean(0)
    assert np.all(np.diff(var) <= 1e-6 * var[0])                   # largest first
    rand = np.linalg.qr(np.random.default_rng(0).normal(size=(u.shape[1], 4)))[0].T
    assert var.sum() > 5 * ((dev @ rand.T) ** 2).mean(0).sum()      # far above a random 4-d subspace

