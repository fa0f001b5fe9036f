"""A simulated study with a known truth, for the measurement-error correction.

Each call has a latent tone u_i ~ N(0, 1) that shifts its mix of the 8 RAVDESS classes
toward the positive or the negative ones; its segments (durations 2-20 s) get true classes
from that mix.  The true call tone T_i is the duration-weighted mean of the true valences
(+1 happy/surprised, 0 neutral/calm, -1 sad/angry/fearful/disgust).  The outcome is
``car_i = 0.002 + beta * T_i + e_i``.  The classifier sees each segment through a confusion
matrix ``C[true, predicted]`` and reports the posterior of a calibrated classifier trained
with balanced classes: ``p(c | predicted) ~ prior(c) C[c, predicted]``.  The measured
call tone is the duration-weighted mean of ``p(pos) - p(neg)``: what ``call_features``
holds.

``confusion(ua, rng)`` builds an 8-class confusion with the given unweighted accuracy and
RAVDESS's usual error pattern (neutral-calm, calm-sad, happy-surprised, angry-disgust,
fearful-sad/surprised); a measured out-of-fold confusion can be passed instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from finance.measurement import GROUP_VALUES, SegmentEvidence

CLASSES = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
VALENCE = np.array([0, 0, 1, -1, -1, -1, -1, 1])        # per class
GROUP_OF = VALENCE + 1                                   # 0 negative, 1 neutral, 2 positive
NEIGHBOURS = {"neutral": ["calm", "sad"], "calm": ["neutral", "sad"], "happy": ["surprised", "calm"],
              "sad": ["calm", "fearful", "neutral"], "angry": ["disgust", "happy"], "fearful": ["sad", "surprised"],
              "disgust": ["angry", "sad"], "surprised": ["happy", "fearful"]}


def confusion(ua: float, rng: np.random.Generator | None = None, spill: float = 0.25) -> np.ndarray:
    """(8, 8) row-stochastic confusion with diagonal ``ua`` on average: the errors of each
    class go to its usual neighbours, a share ``spill`` to any class."""
    rng = rng or np.random.default_rng(0)
    k = len(CLASSES)
    c = np.zeros((k, k))
    for i, name in enumerate(CLASSES):
        acc = float(np.clip(ua + rng.normal(0, 0.05), 0.3, 0.97))
        err = 1 - acc
        nb = [CLASSES.index(n) for n in NEIGHBOURS[name]]
        c[i, nb] += err * (1 - spill) / len(nb)
        others = [j for j in range(k) if j != i]
        c[i, others] += err * spill / len(others)
        c[i, i] += acc
    return c / c.sum(1, keepdims=True)


@dataclass
class SimulatedStudy:
    frame: pd.DataFrame          # one row per call: call_id, car, call_tone (measured), true_tone
    evidence: SegmentEvidence    # what the classifier says about the segments
    beta: float


def simulate(conf: np.ndarray, n_calls: int = 200, segments: tuple[int, int] = (15, 60), beta: float = 0.05,
             noise_sd: float = 0.02, spread: float = 1.0, seed: int = 0) -> SimulatedStudy:
    rng = np.random.default_rng(seed)
    k = conf.shape[0]
    prior = np.full(k, 1 / k)                         # balanced training: the posterior's prior
    base = rng.normal(0, 0.3, k)                      # the calls' typical mix (not the prior)
    rows, call_index, post, weights = [], [], [], []
    for i in range(n_calls):
        u = rng.normal()
        mix = np.exp(base + spread * u * VALENCE)
        mix /= mix.sum()
        n = int(rng.integers(segments[0], segments[1] + 1))
        dur = rng.uniform(2, 20, n)
        w = dur / dur.sum()
        true = rng.choice(k, n, p=mix)
        pred = np.array([rng.choice(k, p=conf[t]) for t in true])
        p = prior[None, :] * conf[:, pred].T          # (n, k) posterior given the predicted class
        p /= p.sum(1, keepdims=True)
        tone_meas = float(w @ (p[:, VALENCE > 0].sum(1) - p[:, VALENCE < 0].sum(1)))
        t_true = float(w @ VALENCE[true])
        rows.append({"call_id": f"c{i:05d}", "true_tone": t_true, "call_tone": tone_meas})
        call_index.append(np.full(n, i))
        post.append(p)
        weights.append(w)
    frame = pd.DataFrame(rows)
    frame["car"] = 0.002 + beta * frame["true_tone"] + rng.normal(0, noise_sd, n_calls)
    p = np.concatenate(post)
    group_post = np.stack([p[:, GROUP_OF == g].sum(1) for g in range(3)], 1)
    group_prior = np.array([prior[GROUP_OF == g].sum() for g in range(3)])
    ev = SegmentEvidence(call_ids=frame["call_id"].to_numpy(), call_index=np.concatenate(call_index),
                         likelihood=group_post / group_prior, prior=group_prior,
                         weights=np.concatenate(weights)[:, None], defined=np.ones((n_calls, 1), bool),
                         features=["call_tone"], values=GROUP_VALUES.copy())
    return SimulatedStudy(frame, ev, beta)
