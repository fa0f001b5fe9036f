"""Regressions of event outcomes on speech features (statsmodels).

``fit_regression(data, formula, cov, family)`` fits OLS (or a logit for a 0/1 outcome,
the Hajek & Munk distress-style extension) with a patsy formula; fixed effects are
written ``C(col)``.  Covariance: ``nonrobust``, ``HC0``..``HC3``, or
``cluster:COL[,COL]`` (one- or two-way clustering).  Before fitting it checks that every
column the formula names exists, that the design has full column rank (perfectly
collinear regressors are named) and that there are more observations than coefficients.
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from finance.errors import RegressionError

COEF_COLUMNS = ["term", "estimate", "std_error", "statistic", "p_value"]
_FORMULA_NAMES = {"C", "I", "Q", "np", "center", "standardize", "scale", "Treatment", "Sum", "Poly", "Diff",
                  "Helmert", "log", "exp", "sqrt", "abs", "bs", "cr", "cc", "te", "True", "False", "None"}


@dataclass
class RegressionResults:
    """Fitted regression.  ``coefficients``: term, estimate, std_error, statistic, p_value."""

    formula: str
    family: str
    cov_type: str
    nobs: int
    r2: float  # R-squared (OLS) or McFadden pseudo R-squared (logit)
    adj_r2: float
    coefficients: pd.DataFrame
    text: str

    def summary(self) -> str:
        return self.text

    def to_latex(self, caption: str = "") -> str:
        """A booktabs table: estimates with stars, standard errors in parentheses."""
        def esc(s: str) -> str:
            return re.sub(r"([_&%$#{}])", r"\\\1", s)

        rows, fixed = [], []
        for r in self.coefficients.itertuples():
            if r.term.startswith("C("):
                name = r.term.split(")")[0] + ")"
                fixed += [name] if name not in fixed else []
                continue
            stars = "***" if r.p_value < 0.01 else "**" if r.p_value < 0.05 else "*" if r.p_value < 0.1 else ""
            rows.append(f"{esc(r.term)} & {r.estimate:.4f}{stars} \\\\\n & ({r.std_error:.4f}) \\\\")
        r2_name = "Pseudo $R^2$" if self.family == "logit" else "$R^2$"
        body = "\n".join(rows)
        return (
            "\\begin{table}[htbp]\n\\centering\n"
            + (f"\\caption{{{esc(caption)}}}\n" if caption else "")
            + "\\begin{tabular}{lc}\n\\toprule\n"
            f" & {esc(self.formula.split('~')[0].strip())} \\\\\n\\midrule\n{body}\n\\midrule\n"
            + "".join(f"Fixed effects {esc(f)} & yes \\\\\n" for f in fixed)
            + f"Observations & {self.nobs} \\\\\n{r2_name} & {self.r2:.4f} \\\\\n"
            f"Covariance & {esc(self.cov_type)} \\\\\n\\bottomrule\n\\end{{tabular}}\n"
            "\\par\\footnotesize{* p<0.1, ** p<0.05, *** p<0.01}\n\\end{table}\n"
        )


def formula_columns(formula: str) -> list[str]:
    """Names of the data columns a patsy formula reads (functions such as C, np.log are skipped)."""
    import patsy

    if "~" not in formula:
        raise RegressionError(f"formula {formula!r}: needs 'outcome ~ regressors'")
    try:
        desc = patsy.ModelDesc.from_formula(formula)
    except patsy.PatsyError as exc:
        raise RegressionError(f"formula {formula!r}: {str(exc).splitlines()[0]}") from None
    names: list[str] = []
    for term in desc.lhs_termlist + desc.rhs_termlist:
        for factor in term.factors:
            for node in ast.walk(ast.parse(factor.code, mode="eval")):
                if isinstance(node, ast.Name) and node.id not in _FORMULA_NAMES and node.id not in names:
                    names.append(node.id)
    return names


def _groups(cov: str, frame: pd.DataFrame, origin: str) -> np.ndarray:
    cols = [c.strip() for c in cov.split(":", 1)[1].split(",") if c.strip()]
    if not 1 <= len(cols) <= 2:
        raise RegressionError(f"cov {cov!r}: cluster by one or two columns")
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise RegressionError(f"cov {cov!r}: cluster column(s) {missing} not in {origin}")
    codes = np.column_stack([pd.factorize(frame[c].astype(str))[0] for c in cols])
    return codes[:, 0] if len(cols) == 1 else codes


def fit_regression(data: pd.DataFrame, formula: str, cov: str = "HC1", family: str = "ols",
                   origin: str = "data") -> RegressionResults:
    """Fit ``formula`` on ``data``; ``origin`` names the data in error messages."""
    import patsy
    import statsmodels.api as sm

    if family not in ("ols", "logit"):
        raise RegressionError(f"family {family!r}: use 'ols' or 'logit'")
    if not (cov in ("nonrobust", "HC0", "HC1", "HC2", "HC3") or cov.startswith("cluster:")):
        raise RegressionError(f"cov {cov!r}: use nonrobust, HC0-HC3 or cluster:COL[,COL]")
    missing = [c for c in formula_columns(formula) if c not in data.columns]
    if missing:
        raise RegressionError(
            f"formula {formula!r}: column(s) {missing} not in {origin} (columns: {', '.join(map(str, data.columns))})")
    try:
        y, x = patsy.dmatrices(formula, data, return_type="dataframe", NA_action="drop")
    except patsy.PatsyError as exc:
        raise RegressionError(f"formula {formula!r} on {origin}: {str(exc).splitlines()[0]}") from exc
    if y.shape[1] != 1:
        raise RegressionError(f"formula {formula!r}: the outcome must be one numeric column")
    nobs, ncoef = x.shape
    if nobs <= ncoef:
        raise RegressionError(f"formula {formula!r} on {origin}: underidentified, {nobs} complete observation(s) "
                              f"for {ncoef} coefficient(s)")
    _check_rank(x, formula)
    kwargs: dict = {}
    cov_type = cov
    if cov.startswith("cluster:"):
        kwargs = {"cov_type": "cluster", "cov_kwds": {"groups": _groups(cov, data.loc[x.index], origin)}}
    elif cov != "nonrobust":
        kwargs = {"cov_type": cov}
    yv = y.iloc[:, 0]
    if family == "logit":
        values = set(np.unique(yv))
        if not values <= {0.0, 1.0}:
            raise RegressionError(f"formula {formula!r}: a logit needs a 0/1 outcome; {y.columns[0]!r} has "
                                  f"{len(values)} distinct values")
        res = _fit_logit(sm, yv, x, kwargs, formula)
        r2, adj = float(res.prsquared), float("nan")
    else:
        res = sm.OLS(yv, x).fit(**kwargs)
        r2, adj = float(res.rsquared), float(res.rsquared_adj)
    coef = pd.DataFrame({"term": list(x.columns), "estimate": res.params.to_numpy(), "std_error": res.bse.to_numpy(),
                         "statistic": res.tvalues.to_numpy(), "p_value": res.pvalues.to_numpy()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' summary warns about rank-deficient Wald tests with few clusters
        text = f"{res.summary()}\nCovariance type: {cov_type}\nFormula: {formula}\n"
    return RegressionResults(formula, family, cov_type, int(nobs), r2, adj, coef, text)


def _fit_logit(sm, y, x, kwargs, formula):
    from statsmodels.tools.sm_exceptions import PerfectSeparationError, PerfectSeparationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        try:
            return sm.Logit(y, x).fit(disp=0, **kwargs)
        except (PerfectSeparationError, PerfectSeparationWarning) as exc:
            raise RegressionError(f"formula {formula!r}: perfect separation, the logit has no finite estimate") from exc
        except np.linalg.LinAlgError as exc:
            raise RegressionError(f"formula {formula!r}: logit failed ({exc})") from exc


def _check_rank(x: pd.DataFrame, formula: str) -> None:
    values = x.to_numpy(dtype=float)
    if np.linalg.matrix_rank(values) == values.shape[1]:
        return
    kept: list[int] = []
    for j in range(values.shape[1]):
        if np.linalg.matrix_rank(values[:, kept + [j]]) > len(kept):
            kept.append(j)
            continue
        base = [x.columns[i] for i in kept]
        raise RegressionError(f"formula {formula!r}: perfectly collinear regressors, {x.columns[j]!r} is a linear "
                              f"combination of {base}")
