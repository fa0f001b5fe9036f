"""Event-study significance tests, vectorized over events.

Notation (one event window W of L days, N events, event i):

- ``car[i]``   CAR_i = sum of AR_it over W.
- ``scar[i]``  CAR_i / sd(CAR_i): the prediction-error-corrected standardized CAR,
  sd(CAR_i)^2 = s_i^2 (L + g_i' (X_i'X_i)^{-1} g_i), g_i = sum over W of the regressors
  (Campbell, Lo & MacKinlay 1997, ch. 4).  Under H0 it is t with d_i = M_i - k degrees
  of freedom (M_i estimation days, k parameters; the market-adjusted model has d_i = M_i - 1).
- ``est_ar``   (N, M) estimation-window abnormal returns (NaN where missing).

Tests (two-sided p-values):

- ``t``        cross-sectional t: mean CAR / (sd(CAR)/sqrt N), t(N-1).
- ``patell``   Patell (1976) Z: sum SCAR_i / sqrt(sum d_i/(d_i-2)), N(0,1).
- ``bmp``      Boehmer, Musumeci & Poulsen (1991): mean SCAR / (sd(SCAR)/sqrt N), t(N-1).
- ``kp_bmp``   Kolari & Pynnonen (2010): BMP * sqrt((1-r)/(1+(N-1)r)), r = the average
  pairwise correlation of estimation-window abnormal returns aligned in event time, t(N-1).
  ``r`` is computed from the unit-norm demeaned residual vectors z_i (missing days set to 0):
  r = (|sum z_i|^2 - sum |z_i|^2) / (N(N-1)), exact Pearson correlations when nothing is missing.
- ``corrado``  Corrado (1989) rank test with the Corrado & Zivney (1992) standardized ranks
  U_it = K_it/(M_i+1) - 1/2, ranked over the estimation days and the whole event period
  (the span of all windows, as in Corrado's combined estimation and event period), and
  Cowan's (1992) multi-day form: Z = sum over W of Ubar_t / (sqrt(L) S_U),
  S_U^2 = mean over all ranked days of Ubar_t^2, N(0,1).
- ``gen_sign`` Cowan (1992) generalized sign: (w - N p) / sqrt(N p (1-p)), w = #(CAR_i > 0),
  p = mean over events of the estimation-window fraction of positive AR, N(0,1).
- ``wilcoxon`` Wilcoxon signed-rank test of the CARs (scipy; statistic = W+, the rank sum
  of positive CARs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

TESTS = ("t", "patell", "bmp", "kp_bmp", "corrado", "gen_sign", "wilcoxon")
_NAN = float("nan")


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p_value: float

    def as_dict(self) -> dict[str, float | None]:
        return {"statistic": _json_float(self.statistic), "p_value": _json_float(self.p_value)}


def _json_float(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _t_result(stat: float, df: int) -> TestResult:
    if not np.isfinite(stat) or df < 1:
        return TestResult(_NAN, _NAN)
    return TestResult(float(stat), float(2 * stats.t.sf(abs(stat), df)))


def _z_result(stat: float) -> TestResult:
    if not np.isfinite(stat):
        return TestResult(_NAN, _NAN)
    return TestResult(float(stat), float(2 * stats.norm.sf(abs(stat))))


def _mean_t(x: np.ndarray) -> float:
    n = len(x)
    if n < 2:
        return _NAN
    sd = x.std(ddof=1)
    return x.mean() / (sd / np.sqrt(n)) if sd > 0 else _NAN


def cross_sectional_t(car: np.ndarray) -> TestResult:
    return _t_result(_mean_t(car), len(car) - 1)


def patell_z(scar: np.ndarray, dof: np.ndarray) -> TestResult:
    if len(scar) == 0:
        return TestResult(_NAN, _NAN)
    return _z_result(scar.sum() / np.sqrt(np.sum(dof / (dof - 2.0))))


def bmp_t(scar: np.ndarray) -> TestResult:
    return _t_result(_mean_t(scar), len(scar) - 1)


def average_cross_correlation(est_ar: np.ndarray) -> float:
    """Average pairwise correlation of the rows of ``est_ar`` (N, M), NaN = missing."""
    n = est_ar.shape[0]
    if n < 2:
        return _NAN
    ok = np.isfinite(est_ar)
    cnt = ok.sum(axis=1, keepdims=True)
    mean = np.where(ok, est_ar, 0.0).sum(axis=1, keepdims=True) / np.maximum(cnt, 1)
    z = np.where(ok, est_ar - mean, 0.0)
    norm = np.sqrt((z * z).sum(axis=1, keepdims=True))
    z = np.divide(z, norm, out=np.zeros_like(z), where=norm > 0)
    total = z.sum(axis=0)
    return float((total @ total - (z * z).sum()) / (n * (n - 1)))


def kp_bmp_t(scar: np.ndarray, r: float) -> TestResult:
    """Kolari-Pynnonen adjusted BMP; ``r`` = ``average_cross_correlation`` of the estimation ARs."""
    n = len(scar)
    t = _mean_t(scar)
    if not np.isfinite(r) or not np.isfinite(t) or 1 + (n - 1) * r <= 0:
        return TestResult(_NAN, _NAN)
    return _t_result(t * np.sqrt((1 - r) / (1 + (n - 1) * r)), n - 1)


def rank_rows(a: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties share their mean rank) within each row; NaN stays NaN."""
    n, d = a.shape
    order = np.argsort(a, axis=1)  # NaN sorts last
    s = np.take_along_axis(a, order, axis=1)
    ranks = np.empty((n, d))
    if not (s[:, 1:] == s[:, :-1]).any():  # no ties (the usual case): ranks are positions
        np.put_along_axis(ranks, order, np.broadcast_to(np.arange(1.0, d + 1), (n, d)), axis=1)
        ranks[np.isnan(a)] = np.nan
        return ranks
    cols = np.broadcast_to(np.arange(d), (n, d))
    start = np.ones((n, d), bool)
    start[:, 1:] = s[:, 1:] != s[:, :-1]
    end = np.ones((n, d), bool)
    end[:, :-1] = start[:, 1:]
    first = np.maximum.accumulate(np.where(start, cols, 0), axis=1)
    last = np.flip(np.minimum.accumulate(np.flip(np.where(end, cols, d - 1), axis=1), axis=1), axis=1)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=1)
    ranks[np.isnan(a)] = np.nan
    return ranks


def mean_standardized_ranks(ar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corrado-Zivney U_it = K_it/(M_i+1) - 1/2 of the rows of ``ar`` (N, D), NaN = missing,
    averaged over events: returns (Ubar_t, N_t), each (D,)."""
    n, d = ar.shape
    finite = np.isfinite(ar)
    m = finite.sum(axis=1)
    n_t = finite.sum(axis=0)
    order = np.argsort(ar, axis=1)  # NaN sorts last
    s = np.take_along_axis(ar, order, axis=1)
    if (s[:, 1:] == s[:, :-1]).any():  # ties: average ranks
        u = np.where(finite, rank_rows(ar) / (m[:, None] + 1.0) - 0.5, 0.0)
        return u.sum(axis=0) / np.maximum(n_t, 1), n_t
    pos = np.arange(1.0, d + 1)
    if (m == d).all():  # nothing missing: the same weights K/(D+1) in every row
        w = np.broadcast_to(pos / (d + 1.0), (n, d))
    else:
        w = np.where(pos[None, :] <= m[:, None], pos[None, :] / (m[:, None] + 1.0), 0.0)
    sums = np.bincount(order.ravel(), weights=w.ravel(), minlength=d)  # sum over events of K/(M+1), by day
    return (sums - 0.5 * n_t) / np.maximum(n_t, 1), n_t


def corrado_rank(ubar: np.ndarray, n_t: np.ndarray, in_window: np.ndarray) -> TestResult:
    """``ubar``, ``n_t``: ``mean_standardized_ranks`` over the estimation days and the event
    period; ``in_window``: (D,) bool, True for the L days of the window."""
    if not n_t.any():
        return TestResult(_NAN, _NAN)
    s_u = np.sqrt(np.mean(ubar[n_t > 0] ** 2))
    length = int(in_window.sum())
    if s_u == 0 or length == 0:
        return TestResult(_NAN, _NAN)
    return _z_result(ubar[in_window].sum() / (np.sqrt(length) * s_u))


def positive_fraction(est_ar: np.ndarray) -> float:
    """Mean over events of the fraction of positive estimation-window ARs (gen. sign's p)."""
    ok = np.isfinite(est_ar)
    return float(np.mean((np.where(ok, est_ar, 0.0) > 0).sum(axis=1) / ok.sum(axis=1))) if len(est_ar) else _NAN


def generalized_sign_z(car: np.ndarray, p: float) -> TestResult:
    """``p``: expected fraction of positive ARs (``positive_fraction`` of the estimation ARs)."""
    n = len(car)
    if n == 0 or not np.isfinite(p):
        return TestResult(_NAN, _NAN)
    if p <= 0 or p >= 1:
        return TestResult(_NAN, _NAN)
    w = np.sum(car > 0)
    return _z_result((w - n * p) / np.sqrt(n * p * (1 - p)))


def wilcoxon_signed_rank(car: np.ndarray) -> TestResult:
    nz = car[car != 0]
    if len(nz) < 2:
        return TestResult(_NAN, _NAN)
    ranks = stats.rankdata(np.abs(nz))
    w_plus = float(ranks[nz > 0].sum())
    p = float(stats.wilcoxon(nz, zero_method="wilcox").pvalue)
    return TestResult(w_plus, p)
