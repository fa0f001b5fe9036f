"""File-to-file event studies and regressions: the work behind ``speechfin study car`` and
``speechfin study regress``.

``study car`` writes to its output folder:

- ``abnormal_returns.parquet``: event_id, rel_day, date, ret, expected_ret, ar (event period);
- ``car.parquet``: event_id, window, car, bhar, n_estimation, sigma_estimation, and also
  scar, car_se, abnormal_volatility, abnormal_volume, ticker, event_date, timing[, call_id];
- ``tests.json``: a list with one object per window: window, n, caar, and for each test
  (t, patell, bmp, kp_bmp, corrado, gen_sign, wilcoxon) its statistic and p_value;
- ``caar.csv``: rel_day, n, aar, caar, std_error, statistic, p_value;
- ``dropped.csv``: event_id, ticker, event_date, stage, reason.

With no event left, only ``dropped.csv`` is written and :class:`NoEventsError` is raised.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from finance.engine import EventStudyConfig, EventStudyResult, parse_window
from finance.errors import EventsError, FinanceError, RegressionError
from finance.events import read_events
from finance.pipeline import require_events, run_event_study
from finance.prices import FilePriceSource
from finance.regress import fit_regression
from finance.tables import read_table

AR_COLUMNS = ["event_id", "rel_day", "date", "ret", "expected_ret", "ar"]


def car_from_files(events: Path, prices: Path, out: Path, *, market: str | None = None, model: str = "market",
                   factors: Path | None = None, factor_units: str = "percent", estimation: str = "-250:-30",
                   windows: list[str] = ("-1:1",), calendar: str = "XNYS",
                   min_estimation_obs: int = 100) -> EventStudyResult:
    cfg = EventStudyConfig(model=model, estimation=parse_window(estimation),
                           windows=tuple(parse_window(w) for w in windows), min_estimation_obs=min_estimation_obs)
    if model in ("market", "market_adjusted") and not market:
        raise FinanceError(f"model {model!r} needs --market TICKER (a ticker of {prices})")
    if model in ("ff3", "carhart") and factors is None:
        raise FinanceError(f"model {model!r} needs --factors FILE")
    fac = None
    if factors is not None:
        from finance.factors import load_factors

        fac = load_factors(factors, factor_units)
    ev = read_events(events)
    pipe = run_event_study(ev, FilePriceSource(Path(prices)), cfg, calendar,
                           market if model in ("market", "market_adjusted") else None, fac)
    res = pipe.result
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pipe.dropped.to_csv(out / "dropped.csv", index=False)
    require_events(pipe, str(events), f"{out / 'dropped.csv'}")
    res.abnormal_returns[AR_COLUMNS].to_parquet(out / "abnormal_returns.parquet", index=False)
    attrs = [c for c in ("ticker", "event_date", "timing", "call_id") if c in pipe.aligned.columns]
    res.car.merge(pipe.aligned[["event_id"] + attrs], on="event_id", how="left").to_parquet(out / "car.parquet", index=False)
    (out / "tests.json").write_text(json.dumps(res.tests_json(), indent=2) + "\n")
    res.caar.to_csv(out / "caar.csv", index=False)
    return res


def _join(frame: pd.DataFrame, feats: pd.DataFrame, origin: str) -> pd.DataFrame:
    key = "event_id" if "event_id" in feats.columns and "event_id" in frame.columns else "call_id"
    if key not in feats.columns:
        raise RegressionError(f"{origin}: needs an event_id or call_id column to join on")
    if key not in frame.columns:
        frame = frame.assign(call_id=frame["event_id"])
    if feats[key].duplicated().any():
        raise RegressionError(f"{origin}: several rows per {key} (first {feats[key][feats[key].duplicated()].iloc[0]!r})")
    feats = feats.drop(columns=[c for c in feats.columns if c in frame.columns and c != key])
    return frame.merge(feats.assign(**{key: feats[key].astype(str)}), on=key, how="left")


def regress_files(data: Path, formula: str, out: Path, *, features: Path | None = None, cov: str = "HC1",
                  family: str = "ols", window: str | None = None, catalog=None,
                  model_id: str | None = None, mi: int = 0, evidence=None):
    """Fit ``formula`` on a data file joined with features; with ``mi`` >= 2 and an
    ``evidence`` source, also the multiple-imputation correction of its voice-tone
    regressors (returns ``MIResults``, whose ``naive`` is the plain fit)."""
    frame = read_table(data, "data")
    origin = [Path(data).name]
    if "window" in frame.columns:
        wins = sorted(frame["window"].astype(str).unique())
        if window is None and len(wins) > 1:
            raise RegressionError(f"{data}: holds windows {wins}; choose one with --window")
        if window is not None:
            if window not in wins:
                raise RegressionError(f"{data}: no window {window!r} (it has {wins})")
            frame = frame[frame["window"].astype(str) == window]
    for col in ("event_id", "call_id"):
        if col in frame.columns:
            frame[col] = frame[col].astype(str)
    if features is not None:
        frame = _join(frame, read_table(features, "features"), str(features))
        origin.append(Path(features).name)
    if catalog is not None:
        feats = catalog.read("call_features").to_pandas()
        if model_id:
            feats = feats[feats["model_id"] == model_id]
        if feats.empty:
            raise EventsError(f"catalog {catalog.root}: no call_features rows" + (f" for model_id {model_id!r}" if model_id else ""))
        frame = _join(frame, feats.drop(columns=["model_id"]), f"catalog {catalog.root} call_features")
        origin.append("catalog call_features")
    res = fit_regression(frame, formula, cov, family, origin=" + ".join(origin))
    corrected = None
    if mi:
        corrected = _mi(frame, formula, cov, family, mi, evidence, model_id, " + ".join(origin))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res.coefficients.to_csv(out / "coefficients.csv", index=False)
    (out / "summary.txt").write_text(res.summary() + (f"\n{corrected.summary()}\n" if corrected else ""))
    (out / "table.tex").write_text(res.to_latex())
    if corrected is not None:
        corrected.coefficients.to_csv(out / "mi_coefficients.csv", index=False)
        return corrected
    return res


def _mi(frame: pd.DataFrame, formula: str, cov: str, family: str, m: int, evidence, model_id, origin: str):
    from finance.measurement import MIConfig, mi_regression
    from finance.regress import formula_columns

    if family != "ols":
        raise RegressionError(f"--uncertainty mi: multiple imputation is for OLS regressions (family {family!r})")
    cols = formula_columns(formula)
    feats = [c for c in cols if c in evidence.imputable]
    if not feats:
        raise RegressionError(f"formula {formula!r}: no regressor is a voice-tone feature that MI can impute "
                              f"({', '.join(evidence.imputable)})")
    if "call_id" not in frame.columns:
        raise RegressionError(f"{origin}: MI needs a call_id column to find the segments of each event")
    try:
        ev = evidence(frame["call_id"].astype(str).tolist(), feats, model_id)
    except ValueError as exc:
        raise RegressionError(str(exc)) from None
    return mi_regression(frame, formula, ev, cov, MIConfig(m=m), origin)
