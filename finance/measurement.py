"""Regressions on a machine-measured emotion: multiple imputation of the true regressor.

A call-level voice tone is built from per-segment classifier posteriors.  Used as a
regressor it is measured with error: each segment's class is uncertain, and the classifier
confuses classes systematically (its posteriors are calibrated for the training corpus's
class balance, not for the calls').  OLS on the measured tone is biased (toward zero when
the segment noise dominates) and its standard errors ignore the measurement error.

``mi_regression`` replaces the measured regressor by draws of the true one and combines
the fits with Rubin's rules (Rubin 1987; small-sample degrees of freedom after Barnard &
Rubin 1999).  The imputations are *proper* (Cole, Chu & Greenland 2006, "Multiple imputation
for measurement-error correction"): they come from the posterior of a model of the truth, the
measurement and the outcome, so the draws condition on the outcome as well.

The model (a data-augmentation Gibbs sampler, Tanner & Wong 1987), for calls i and their
scored segments s:

    pi_i ~ Dirichlet(alpha * prior)                  the call's own mix of valence groups
    z_s | pi_i ~ Categorical(pi_i)                   true group of segment s (negative, neutral, positive)
    evidence_s | z_s ~ likelihood[s, z_s]            = posterior_s(z) / prior(z) for a calibrated classifier
    x_ik = sum_s weight[s, k] * value[z_s]           the K emotion features of the call (linear)
    y_i | x_i ~ Normal(fixed_i @ theta_f + x_i @ theta_x, sigma^2)

with flat priors on (theta, log sigma).  One sweep draws (theta, sigma^2) | z, each pi_i | z,
and each z_s | the rest (segments of different calls at once, one segment position after
the other).  After ``burn_in`` sweeps every ``thin``-th sweep gives one imputed data set; the
study's own regression (its formula and covariance) is fitted on each.  The "group" of a
segment is its valence (``value`` = -1, 0, +1): the true-tone feature is then the
duration-weighted mean of the true valences, which is what the measured tone
``p(pos) - p(neg)`` estimates segment by segment.

Shapes: S segments, N calls, G groups, K imputed features, P design columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from finance.errors import RegressionError
from finance.regress import RegressionResults, fit_regression

GROUPS = ("negative", "neutral", "positive")
GROUP_VALUES = np.array([-1.0, 0.0, 1.0])


@dataclass
class SegmentEvidence:
    """What the classifier says about each segment, and how segments make the features.

    call_ids:   (N,) call ids
    call_index: (S,) index of each segment's call in ``call_ids``
    likelihood: (S, G) p(evidence | true group), up to a factor per segment
    prior:      (G,) population prior of the groups (the classifier's training balance)
    weights:    (S, K) weight of each segment in each feature (0 outside the feature's cell)
    defined:    (N, K) whether the feature exists for the call (NaN in call_features when not)
    features:   the K feature names
    values:     (G,) numeric value of each group in the features
    """

    call_ids: np.ndarray
    call_index: np.ndarray
    likelihood: np.ndarray
    prior: np.ndarray
    weights: np.ndarray
    defined: np.ndarray
    features: list[str]
    values: np.ndarray = field(default_factory=lambda: GROUP_VALUES.copy())

    def measured(self) -> np.ndarray:
        """(N, K) the features from the posterior means (what OLS uses); NaN where undefined."""
        post = self.likelihood * self.prior
        post = post / post.sum(1, keepdims=True)
        seg = post @ self.values                                   # (S,) posterior-mean value
        out = np.zeros((len(self.call_ids), len(self.features)))
        np.add.at(out, self.call_index, self.weights * seg[:, None])
        return np.where(self.defined, out, np.nan)


class EvidenceSource(Protocol):
    """Gives the segment evidence of calls (``pipelines.study_inputs.CatalogEvidence`` reads the catalog)."""

    imputable: tuple[str, ...]   # the features it can build from segments

    def __call__(self, call_ids: Sequence[str], features: Sequence[str], model_id: str | None) -> SegmentEvidence: ...


@dataclass(frozen=True)
class MIConfig:
    m: int = 50                 # imputations
    burn_in: int = 100          # sweeps before the first imputation
    thin: int = 4               # sweeps between imputations
    alpha: float = 2.0          # Dirichlet concentration of a call's mix around the prior
    seed: int = 0

    def __post_init__(self):
        if self.m < 2:
            raise RegressionError(f"multiple imputation needs m >= 2 imputations (got {self.m}): "
                                  f"Rubin's rules estimate the between-imputation variance")
        if self.burn_in < 0 or self.thin < 1:
            raise RegressionError(f"MI: burn_in >= 0 and thin >= 1 (got {self.burn_in}, {self.thin})")


@dataclass
class MIResults:
    """Rubin-combined regression.  ``coefficients``: term, estimate, std_error, statistic,
    p_value, df, fmi (fraction of missing information), riv (relative increase in variance),
    naive_estimate, naive_std_error (OLS on the measured features)."""

    formula: str
    cov_type: str
    imputed: list[str]
    config: MIConfig
    nobs: int
    coefficients: pd.DataFrame
    naive: RegressionResults
    estimates: np.ndarray        # (M, P) the per-imputation estimates
    variances: np.ndarray        # (M, P) their squared standard errors

    @property
    def m(self) -> int:
        return len(self.estimates)

    def summary(self) -> str:
        c = self.coefficients
        lines = [f"Multiple imputation of {', '.join(self.imputed)} (M = {self.m}, Rubin's rules), {self.formula}, "
                 f"N = {self.nobs}, cov {self.cov_type}",
                 f"{'term':<32}{'naive':>10}{'(se)':>10}{'MI':>10}{'(se)':>10}{'p':>8}{'fmi':>7}"]
        for r in c.itertuples():
            lines.append(f"{r.term:<32}{r.naive_estimate:>10.4f}{r.naive_std_error:>10.4f}{r.estimate:>10.4f}"
                         f"{r.std_error:>10.4f}{r.p_value:>8.3f}{r.fmi:>7.2f}")
        return "\n".join(lines)


def rubin(estimates: np.ndarray, variances: np.ndarray, df_complete: float) -> pd.DataFrame:
    """Rubin's rules for (M, P) estimates and squared standard errors: the combined estimate,
    its total variance T = W + (1 + 1/M) B, Barnard-Rubin degrees of freedom, the relative
    increase in variance and the fraction of missing information."""
    q, u = np.asarray(estimates, float), np.asarray(variances, float)
    m = len(q)
    qbar, w = q.mean(0), u.mean(0)
    b = q.var(0, ddof=1)
    t = w + (1 + 1 / m) * b
    with np.errstate(divide="ignore", invalid="ignore"):
        riv = (1 + 1 / m) * b / w
        gamma = (1 + 1 / m) * b / t
        df_rubin = (m - 1) / gamma ** 2
        df_obs = (df_complete + 1) / (df_complete + 3) * df_complete * (1 - gamma)
        df = 1 / (1 / df_rubin + 1 / df_obs)
        fmi = (riv + 2 / (df + 3)) / (riv + 1)
        stat = qbar / np.sqrt(t)
    p = 2 * stats.t.sf(np.abs(stat), df)
    return pd.DataFrame({"estimate": qbar, "std_error": np.sqrt(t), "statistic": stat, "p_value": p, "df": df,
                         "fmi": fmi, "riv": riv, "within": w, "between": b})


def _design(frame: pd.DataFrame, formula: str, imputed: list[str]):
    import patsy

    y, x = patsy.dmatrices(formula, frame, return_type="dataframe", NA_action="drop")
    cols = list(x.columns)
    for f in imputed:
        if f not in cols:
            raise RegressionError(f"formula {formula!r}: MI needs {f!r} as a plain linear term")
        if any(f in c and c != f for c in cols):
            raise RegressionError(f"formula {formula!r}: MI needs {f!r} as a plain linear term, not inside "
                                  f"{[c for c in cols if f in c and c != f]}")
    return y.iloc[:, 0], x


def impute(evidence: SegmentEvidence, y: np.ndarray, fixed: np.ndarray, in_sample: np.ndarray,
           config: MIConfig) -> list[np.ndarray]:
    """``config.m`` draws (N, K) of the true features given the evidence and the outcome.

    y: (N,) outcome (ignored where ``in_sample`` is False); fixed: (N, P - K) the design's
    other columns; in_sample: (N,) calls in the regression (complete outcome and design)."""
    rng = np.random.default_rng(config.seed)
    ev = evidence
    n, k, g = len(ev.call_ids), len(ev.features), len(ev.prior)
    # Internal order: calls by segment count (descending), segments by (position in call, call).
    # Step r then updates the r-th segment of the first n_r calls: contiguous slices, no gathers.
    counts = np.bincount(ev.call_index, minlength=n)
    perm = np.argsort(-counts, kind="stable")                      # internal call j = original perm[j]
    pos = np.empty(n, int)
    pos[perm] = np.arange(n)
    ci = pos[ev.call_index]
    first = np.zeros(n + 1, int)
    np.cumsum(counts[perm], out=first[1:])
    by_call = np.argsort(ci, kind="stable")
    rank = np.empty(len(ci), int)
    rank[by_call] = np.arange(len(ci)) - first[ci[by_call]]
    seg = np.lexsort((ci, rank))                                    # segments in step order
    n_active = np.array([(counts > r).sum() for r in range(int(counts.max()) if n else 0)], int)
    offsets = np.concatenate([[0], np.cumsum(n_active)])
    ll = np.log(np.clip(ev.likelihood[seg], 1e-300, None))          # (S, G) in step order
    w = ev.weights[seg]                                             # (S, K)
    vals = ev.values
    z = (ll + np.log(ev.prior)).argmax(1)                           # start: the most likely group
    x = np.zeros((n, k))
    np.add.at(x, ci[seg], w * vals[z][:, None])
    defined = ev.defined[perm]
    inn = (in_sample[perm] & defined.all(1))
    yy, ff = y[perm], fixed[perm]
    ys, fs = yy[inn], ff[inn]
    use = inn.astype(float)[:, None]
    draws = []
    for sweep in range(config.burn_in + config.m * config.thin):
        # (theta, sigma^2) | z, y: flat prior
        design = np.column_stack([fs, x[inn]])
        xtx_inv = np.linalg.pinv(design.T @ design)
        beta = xtx_inv @ design.T @ ys
        resid = ys - design @ beta
        sigma2 = float(resid @ resid) / rng.chisquare(max(len(ys) - design.shape[1], 1))
        # eigh: a draw can make the design singular (an imputed feature equal in every call), and
        # the covariance is then only semi-definite, which Cholesky refuses
        theta = rng.multivariate_normal(beta, sigma2 * xtx_inv, method="eigh")
        th_f, th_x = theta[:fixed.shape[1]], theta[fixed.shape[1]:]
        resid0 = (yy - ff @ th_f)[:, None]                          # y minus the fixed part of the prediction
        # pi_i | z
        cnt = np.zeros((n, g))
        np.add.at(cnt, (ci[seg], z), 1.0)
        logpi = np.log(np.clip(rng.gamma(config.alpha * ev.prior + cnt), 1e-300, None))
        logpi -= np.log(np.exp(logpi).sum(1, keepdims=True))
        noise = rng.gumbel(size=ll.shape) + ll
        # z_s | the rest, one position of every call at a time
        for r, n_r in enumerate(n_active):
            a, b = offsets[r], offsets[r + 1]
            cand = x[:n_r, None, :] + w[a:b, None, :] * (vals[None, :, None] - vals[z[a:b]][:, None, None])
            logit = logpi[:n_r] + noise[a:b] - use[:n_r] * (resid0[:n_r] - cand @ th_x) ** 2 / (2 * sigma2)
            new = logit.argmax(1)
            z[a:b] = new
            x[:n_r] = cand[np.arange(n_r), new]
        if sweep >= config.burn_in and (sweep - config.burn_in) % config.thin == config.thin - 1:
            out = np.empty((n, k))
            out[perm] = np.where(defined, x, np.nan)
            draws.append(out)
    return draws


def mi_regression(frame: pd.DataFrame, formula: str, evidence: SegmentEvidence, cov: str = "HC1",
                  config: MIConfig = MIConfig(), origin: str = "data") -> MIResults:
    """Fit ``formula`` on ``frame`` (one row per event, with ``call_id``) naively and with the
    features ``evidence.features`` multiply imputed; OLS only."""
    imputed = list(evidence.features)
    missing = [f for f in imputed if f not in frame.columns]
    if missing:
        raise RegressionError(f"MI: feature(s) {missing} not in {origin}")
    naive = fit_regression(frame, formula, cov, "ols", origin)
    pos = pd.Series(np.arange(len(evidence.call_ids)), index=pd.Index(evidence.call_ids))
    rows = frame["call_id"].map(pos)
    if rows.isna().any():
        raise RegressionError(f"MI: {int(rows.isna().sum())} event(s) of {origin} have no segment posteriors "
                              f"(calls {sorted(frame.loc[rows.isna(), 'call_id'].astype(str))[:3]})")
    if rows.duplicated().any():
        raise RegressionError(f"MI: several events of {origin} share a call; MI imputes one call once")
    rows = rows.to_numpy(int)
    yv, x = _design(frame, formula, imputed)
    fixed_cols = [c for c in x.columns if c not in imputed]
    n = len(evidence.call_ids)
    y, fixed, in_sample = np.zeros(n), np.zeros((n, len(fixed_cols))), np.zeros(n, bool)
    sel = rows[frame.index.get_indexer(x.index)]
    y[sel], fixed[sel], in_sample[sel] = yv.to_numpy(float), x[fixed_cols].to_numpy(float), True
    draws = impute(evidence, y, fixed, in_sample, config)
    est, var = [], []
    for d in draws:
        fm = frame.copy()
        fm[imputed] = d[rows]
        r = fit_regression(fm, formula, cov, "ols", origin)
        est.append(r.coefficients["estimate"].to_numpy())
        var.append(r.coefficients["std_error"].to_numpy() ** 2)
    est, var = np.array(est), np.array(var)
    comb = rubin(est, var, df_complete=naive.nobs - len(naive.coefficients))
    coef = pd.concat([naive.coefficients[["term"]].reset_index(drop=True), comb], axis=1)
    coef["naive_estimate"] = naive.coefficients["estimate"].to_numpy()
    coef["naive_std_error"] = naive.coefficients["std_error"].to_numpy()
    return MIResults(formula, naive.cov_type, imputed, config, naive.nobs, coef, naive, est, var)
