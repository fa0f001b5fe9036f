"""Regressions of outcomes on features: estimates and standard errors against independent
numpy computations; the bad-input cases of the issue (missing column, collinearity)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finance.errors import RegressionError
from finance.regress import fit_regression, formula_columns


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(3)
    n = 240
    df = pd.DataFrame({"tone": rng.normal(size=n), "lm": rng.normal(size=n),
                       "firm": rng.choice(list("ABCDEFGHIJ"), n), "quarter": rng.choice(["q1", "q2", "q3", "q4", "q5"], n)})
    fe = df["firm"].map({c: i * 0.01 for i, c in enumerate("ABCDEFGHIJ")})
    df["car"] = 0.02 * df["tone"] - 0.01 * df["lm"] + fe + rng.normal(0, 0.03, n) * (1 + df["tone"].abs())
    df["neg"] = (df["car"] + rng.logistic(0, 0.02, n) < 0.03).astype(float)
    return df


def _ols(df):
    x = np.column_stack([np.ones(len(df)), df["tone"], df["lm"]])
    y = df["car"].to_numpy()
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    return x, y, beta, y - x @ beta


def test_ols_estimates_and_hc1_against_numpy(frame):
    res = fit_regression(frame, "car ~ tone + lm", cov="HC1")
    x, y, beta, e = _ols(frame)
    n, k = x.shape
    bread = np.linalg.inv(x.T @ x)
    hc1 = bread @ (x.T * e ** 2) @ x @ bread * n / (n - k)
    assert res.coefficients["term"].tolist() == ["Intercept", "tone", "lm"]
    assert np.allclose(res.coefficients["estimate"], beta, atol=1e-12)
    assert np.allclose(res.coefficients["std_error"], np.sqrt(np.diag(hc1)), atol=1e-12)
    assert res.r2 == pytest.approx(1 - e @ e / np.sum((y - y.mean()) ** 2))
    assert res.nobs == n and res.cov_type == "HC1"


def test_one_way_cluster_against_numpy(frame):
    res = fit_regression(frame, "car ~ tone + lm", cov="cluster:firm")
    x, _, _, e = _ols(frame)
    n, k = x.shape
    bread = np.linalg.inv(x.T @ x)
    meat = sum(np.outer(x[g].T @ e[g], x[g].T @ e[g]) for g in frame.groupby("firm").indices.values())
    g = frame["firm"].nunique()
    v = bread @ meat @ bread * g / (g - 1) * (n - 1) / (n - k)
    assert np.allclose(res.coefficients["std_error"], np.sqrt(np.diag(v)), atol=1e-12)


def test_two_way_cluster_is_firm_plus_quarter_minus_intersection(frame):
    two = fit_regression(frame, "car ~ tone + lm", cov="cluster:firm,quarter")
    df = frame.assign(both=frame["firm"] + "/" + frame["quarter"])
    v = {c: fit_regression(df, "car ~ tone + lm", cov=f"cluster:{c}").coefficients["std_error"].to_numpy() ** 2
         for c in ("firm", "quarter", "both")}
    # two-way clustering is V_firm + V_quarter - V_firm-and-quarter (Cameron, Gelbach & Miller 2011),
    # each one-way part with its own small-sample factor
    got = two.coefficients["std_error"].to_numpy() ** 2
    assert got == pytest.approx(v["firm"] + v["quarter"] - v["both"], rel=1e-10)


def test_fixed_effects_match_within_estimator(frame):
    res = fit_regression(frame, "car ~ tone + lm + C(firm)", cov="nonrobust")
    demean = frame[["car", "tone", "lm"]] - frame.groupby("firm")[["car", "tone", "lm"]].transform("mean")
    beta = np.linalg.lstsq(demean[["tone", "lm"]].to_numpy(), demean["car"].to_numpy(), rcond=None)[0]
    coef = res.coefficients.set_index("term")["estimate"]
    assert coef[["tone", "lm"]].to_numpy() == pytest.approx(beta, abs=1e-12)
    assert sum(t.startswith("C(firm)") for t in coef.index) == 9


def test_logit_against_newton_raphson(frame):
    res = fit_regression(frame, "neg ~ tone + lm", cov="nonrobust", family="logit")
    x = np.column_stack([np.ones(len(frame)), frame["tone"], frame["lm"]])
    y = frame["neg"].to_numpy()
    b = np.zeros(3)
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ b))
        hess = (x.T * (p * (1 - p))) @ x
        b = b + np.linalg.solve(hess, x.T @ (y - p))
    p = 1 / (1 + np.exp(-x @ b))
    se = np.sqrt(np.diag(np.linalg.inv((x.T * (p * (1 - p))) @ x)))
    assert np.allclose(res.coefficients["estimate"], b, atol=1e-7)
    assert np.allclose(res.coefficients["std_error"], se, atol=1e-7)
    with pytest.raises(RegressionError, match="a logit needs a 0/1 outcome"):
        fit_regression(frame, "car ~ tone", family="logit")


def test_latex_table_holds_estimates_and_fixed_effects(frame):
    res = fit_regression(frame, "car ~ tone + C(firm)", cov="HC3")
    tex = res.to_latex()
    tone = res.coefficients.set_index("term").loc["tone"]
    assert f"tone & {tone.estimate:.4f}" in tex and f"({tone.std_error:.4f})" in tex
    assert "Fixed effects C(firm) & yes" in tex and "Observations & 240" in tex and "HC3" in tex
    assert "C(firm)[T" not in tex


def test_formula_naming_a_missing_column(frame):
    assert formula_columns("car ~ tone + np.log(lm + 1) + C(firm)") == ["car", "tone", "lm", "firm"]
    with pytest.raises(RegressionError, match=r"column\(s\) \['gloom'\] not in car\.parquet"):
        fit_regression(frame, "car ~ tone + gloom", origin="car.parquet")


def test_perfectly_collinear_regressors_are_named(frame):
    df = frame.assign(tone2=2 * frame["tone"] - frame["lm"])
    with pytest.raises(RegressionError, match=r"perfectly collinear regressors, 'tone2' is a linear combination of "
                                              r"\['Intercept', 'tone', 'lm'\]"):
        fit_regression(df, "car ~ tone + lm + tone2")


def test_underidentified_and_bad_cov(frame):
    with pytest.raises(RegressionError, match=r"underidentified, 2 complete observation\(s\) for 3 coefficient"):
        fit_regression(frame.head(2), "car ~ tone + lm")
    with pytest.raises(RegressionError, match="cov 'HC9'"):
        fit_regression(frame, "car ~ tone", cov="HC9")
    with pytest.raises(RegressionError, match=r"cluster column\(s\) \['nope'\]"):
        fit_regression(frame, "car ~ tone", cov="cluster:nope")
