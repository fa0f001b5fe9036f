"""benchmarks/ser_validity.py's seed ensemble of saved runs, checked against an independent
computation, and its one-line refusals of files that are not saved runs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from ser_validity import ensemble  # noqa: E402

LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]


def saved_run(path: Path, seed: int) -> Path:
    """A --save-probs file: 10 speakers x 16 clips (each class twice), 6 call clips, 5 fold models."""
    rng = np.random.default_rng(seed)
    speakers = np.repeat([f"a{i:02d}" for i in range(10)], 16)
    y = np.tile(np.repeat(np.arange(8), 2), 10)
    probs = lambda n: rng.dirichlet(np.ones(8), n)  # noqa: E731
    np.savez(path, y=y, speakers=speakers, call_names=np.array(["amzn"] * 2 + ["twtr"] * 4),
             m0_oof=probs(160), m0_mp3=probs(160), m0_mulaw=probs(160),
             m0_earn=np.stack([probs(6) for _ in range(5)]), m0_earn_abs=np.stack([probs(6) for _ in range(5)]))
    return path


def test_ensemble_of_saved_runs_is_their_mean_scored_per_fold(tmp_path):
    paths = [saved_run(tmp_path / f"s{i}.npz", i) for i in range(3)]
    row = ensemble([str(p) for p in paths], LABELS)
    runs = [np.load(p) for p in paths]
    mean = np.mean([r["m0_oof"] for r in runs], axis=0)
    y = runs[0]["y"]
    # independent: folds are speaker pairs (a00-a01, ...), UA = balanced accuracy of the mean's argmax
    want = [balanced_accuracy_score(y[f], mean[f].argmax(1)) for f in np.arange(160).reshape(5, 32)]
    assert row["ua_folds"] == pytest.approx(want, abs=1e-12)
    assert row["ua"] == pytest.approx(np.mean(want), abs=1e-12)
    single = ensemble([str(paths[0])], LABELS)
    assert single["ua"] == pytest.approx(np.mean(
        [balanced_accuracy_score(y[f], runs[0]["m0_oof"][f].argmax(1)) for f in np.arange(160).reshape(5, 32)]))
    assert single["ua"] != pytest.approx(row["ua"])
    # the calls: the share of negative top classes of the mean probabilities, over the fold models
    neg = np.isin(np.array(LABELS), ["sad", "angry", "fearful", "disgust"])
    earn = np.mean([r["m0_earn"] for r in runs], axis=0)          # (5 fold models, 6 clips, 8)
    want_share = np.mean([neg[m.argmax(1)].mean() for m in earn])  # temperature scaling keeps the argmax
    assert row["earnings"]["all"]["neg_top_share"] == pytest.approx(want_share)


def test_files_that_are_not_saved_runs_stop_with_one_line(tmp_path):
    good = saved_run(tmp_path / "good.npz", 0)
    np.savez(tmp_path / "partial.npz", y=np.arange(3))
    (tmp_path / "text.npz").write_text("not numpy\n")
    for name, want in (("missing.npz", "no such file"), ("partial.npz", "missing speakers, call_names, m0_oof"),
                       ("text.npz", "not a .npz file")):
        with pytest.raises(SystemExit) as e:
            ensemble([str(good), str(tmp_path / name)], LABELS)
        msg = str(e.value)
        assert msg.startswith(str(tmp_path / name)) and want in msg and "\n" not in msg
    other = tmp_path / "other.npz"
    d = dict(np.load(good))
    d["y"] = (d["y"] + 1) % 8
    np.savez(other, **d)
    with pytest.raises(SystemExit, match="not all runs are on the same clips"):
        ensemble([str(good), str(other)], LABELS)
