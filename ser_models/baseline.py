"""Linear-probe baseline: frozen encoder frames, mean+std pooled, into a logistic regression.

This is the reference the attention-pooled models must beat (issue 3: tiny.en frames give
UA 70.2% on RAVDESS actors 01-20, 5 speaker folds).  Same folds as ``train.cross_validate``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ser_models.corpus import speaker_folds
from ser_models.metrics import CVResult, EvalResult


def mean_std(frames: Sequence[np.ndarray]) -> np.ndarray:
    """(N, 2D): per example the mean and (population) standard deviation of its (T, D) frames."""
    return np.stack([np.concatenate([f.astype(np.float64).mean(0), f.astype(np.float64).std(0)])
                     for f in frames])


def linear_probe_cv(frames: Sequence[np.ndarray], y: np.ndarray, speakers: np.ndarray,
                    labels: Sequence[str], k: int = 5, c: float = 1.0) -> CVResult:
    """The probe on frames: mean+std pooled, then ``probe_cv``."""
    return probe_cv(mean_std(frames), y, speakers, labels, k, c)


def probe_cv(x: np.ndarray, y: np.ndarray, speakers: np.ndarray, labels: Sequence[str], k: int = 5,
             c: float = 1.0) -> CVResult:
    """Standardise + multinomial logistic regression (L2, C=c) on utterance features x (N, F),
    speaker-independent k folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    results, held = [], []
    for i, test_idx in enumerate(speaker_folds(speakers, k)):
        train_idx = np.setdiff1d(np.arange(len(y)), test_idx)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
        clf.fit(x[train_idx], y[train_idx])
        results.append(EvalResult(tuple(labels), y[test_idx], clf.predict(x[test_idx]), title=f"fold {i + 1}"))
        held.append(sorted(set(speakers[test_idx].tolist())))
    return CVResult(results, held)
