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
