"""Temperature scaling (Guo et al. 2017): one scalar T > 0 so that softmax(logits / T)
means what it says, fitted on held-out predictions (the out-of-fold probabilities of the
speaker-independent CV), never on the data the model was fitted on.

    p_T = softmax(log p / T)         (log p = logits - logsumexp(logits): the shift cancels)
    T   = argmin_T  - mean_i log p_T(y_i | x_i)

Expected calibration error (ECE): the frame of Naeini et al. (2015) / Guo et al. (2017),
15 equal-width confidence bins, sum over bins of |accuracy - mean confidence| * bin share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """(N, C) probabilities -> probabilities at temperature T."""
    z = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))


def ece(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for a, b in zip(edges[:-1], edges[1:]):
        sel = (conf > a) & (conf <= b)
        if sel.any():
            total += sel.mean() * abs((pred[sel] == y[sel]).mean() - conf[sel].mean())
    return float(total)


@dataclass
class Calibration:
    temperature: float
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    n: int

    def summary(self) -> str:
        return (f"temperature {self.temperature:.2f} on {self.n} held-out predictions: "
                f"NLL {self.nll_before:.3f} -> {self.nll_after:.3f}, ECE {self.ece_before:.1%} -> {self.ece_after:.1%}")

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> Calibration:
    """The NLL-minimising temperature of held-out probabilities (bounded search over log T)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(y)
    res = minimize_scalar(lambda lt: nll(apply_temperature(probs, float(np.exp(lt))), y),
                          bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    t = float(np.exp(res.x))
    after = apply_temperature(probs, t)
    return Calibration(t, nll(probs, y), nll(after, y), ece(probs, y), ece(after, y), len(y))


@dataclass
class PriorShift:
    """The class prior of a set of items, re-estimated without labels (Saerens, Latinne &
    Decaestecker 2002), and the posteriors under it."""
    probs: np.ndarray          # (N, C) posteriors under the estimated prior
    prior: np.ndarray          # (C,) the estimated prior
    source_prior: np.ndarray   # (C,) the prior the input posteriors assume
    iterations: int

    def summary(self) -> str:
        return (f"class prior re-estimated on {len(self.probs)} items in {self.iterations} EM iterations: "
                + " ".join(f"{p:.2f}" for p in self.prior))


def adapt_prior(probs: np.ndarray, source_prior: np.ndarray | None = None, pseudo_count: float = 0.0,
                tol: float = 1e-6, max_iter: int = 200) -> PriorShift:
    """EM for a new class prior (Saerens et al. 2002): posteriors q_i(y) that assume the prior
    ``source_prior`` (default uniform, what inverse-frequency class weights train for) are
    re-weighted to p_i(y) ~ q_i(y) pi(y) / pi_s(y), and pi is the mean of the p_i, until it
    stops moving.  ``pseudo_count`` a > 0 makes it a MAP estimate with a Dirichlet prior of a
    items spread as pi_s: pi = (sum_i p_i + a pi_s) / (N + a), so that a few items cannot move
    the prior far.  (N, C) calibrated probabilities in, :class:`PriorShift` out."""
    q = np.asarray(probs, dtype=float)
    c = q.shape[1]
    ps = np.full(c, 1.0 / c) if source_prior is None else np.asarray(source_prior, dtype=float) / np.sum(source_prior)
    pi, p, it = ps.copy(), q, 0
    for it in range(1, max_iter + 1):
        w = q * (pi / ps)
        p = w / w.sum(1, keepdims=True)
        new = (p.sum(0) + pseudo_count * ps) / (len(q) + pseudo_count)
        done = np.abs(new - pi).max() < tol
        pi = new
        if done:
            break
    w = q * (pi / ps)
    return PriorShift(w / w.sum(1, keepdims=True), pi, ps, it)
