"""The event-study engine: expected-return models, AR, CAR, BHAR, outcomes and tests.

Everything is computed for all events at once on an (events x relative days) panel;
there is no per-event Python loop.  Relative days count trading days of the calendar.

Expected-return models (k = number of estimated parameters):

- ``constant``         E[R_t] = mu                                       (k = 1)
- ``market_adjusted``  E[R_t] = R_mt                                     (k = 0)
- ``market``           E[R_t] = a + b R_mt, OLS                          (k = 2)
- ``ff3``              E[R_t] = rf_t + a + b' (mkt_rf, smb, hml)_t       (k = 4)
- ``carhart``          E[R_t] = rf_t + a + b' (mkt_rf, smb, hml, mom)_t  (k = 5)

The estimation window (default [-250, -30]) must hold ``min_estimation_obs`` days with a
return (and market/factor data); otherwise the event is dropped with that reason.  An
event is also dropped when any return, market or factor value in its event windows is
missing (gaps in prices) or the windows fall outside the ticker's price range.

Outcomes per event and window W: ``car``, ``bhar`` (prod(1+R) - prod(1+E[R])), ``scar``
(see ``finance.significance``), ``abnormal_volatility`` = log(RV_W / RV_est) with
RV = sqrt(mean R_t^2) of the raw returns, and ``abnormal_volume`` = mean log(1+V) over W
minus its mean over the estimation window.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy import stats

from finance import significance as sig
from finance.errors import FinanceError

log = logging.getLogger("speechfin.finance")

MODELS = ("constant", "market_adjusted", "market", "ff3", "carhart")
FACTOR_COLUMNS = ["mkt_rf", "smb", "hml", "rf", "mom"]
OUTCOMES = ("car", "bhar", "abnormal_volatility", "abnormal_volume")


def parse_window(text: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``"-1:1"`` or ``[-1, 1]`` -> (-1, 1)."""
    if isinstance(text, (tuple, list)):
        a, b = (int(x) for x in text)
    else:
        try:
            a, b = (int(x) for x in str(text).split(":"))
        except ValueError:
            raise FinanceError(f"window {text!r}: write it as START:END, e.g. -1:1") from None
    if a > b:
        raise FinanceError(f"window {text!r}: start {a} is after end {b}")
    return a, b


def window_label(w: tuple[int, int]) -> str:
    return f"{w[0]}:{w[1]}"


@dataclass(frozen=True)
class EventStudyConfig:
    """What to compute. Windows are in trading days relative to day 0 (inclusive)."""

    model: str = "market"
    estimation: tuple[int, int] = (-250, -30)
    windows: tuple[tuple[int, int], ...] = ((-1, 1),)
    min_estimation_obs: int = 100

    def __post_init__(self):
        if self.model not in MODELS:
            raise FinanceError(f"unknown model {self.model!r}; use one of {', '.join(MODELS)}")
        est = parse_window(self.estimation)
        wins = tuple(parse_window(w) for w in self.windows)
        if not wins:
            raise FinanceError("at least one event window is needed")
        period = (min(w[0] for w in wins), max(w[1] for w in wins))
        if period[0] <= est[1] and period[1] >= est[0]:
            raise FinanceError(f"event windows {', '.join(window_label(w) for w in wins)} overlap the estimation "
                               f"window {window_label(est)}")
        if self.min_estimation_obs < self.n_params + 3:
            raise FinanceError(f"min_estimation_obs must be at least {self.n_params + 3} for model {self.model!r}")
        object.__setattr__(self, "estimation", est)
        object.__setattr__(self, "windows", wins)

    @property
    def n_params(self) -> int:
        return {"constant": 1, "market_adjusted": 0, "market": 2, "ff3": 4, "carhart": 5}[self.model]

    @property
    def event_period(self) -> tuple[int, int]:
        return min(w[0] for w in self.windows), max(w[1] for w in self.windows)

    @property
    def span(self) -> tuple[int, int]:
        lo, hi = self.event_period
        return min(lo, self.estimation[0]), max(hi, self.estimation[1])


@dataclass
class MarketData:
    """Returns on a trading-day axis.

    ``returns``/``volume``: (n_tickers, T); ``market``: (T,); ``factors``: (T, 5) with
    columns ``FACTOR_COLUMNS`` (NaN where absent).  NaN means missing.
    """

    dates: pd.DatetimeIndex
    tickers: list[str]
    returns: np.ndarray
    volume: np.ndarray
    market: np.ndarray | None = None
    factors: np.ndarray | None = None
    price_range: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=dict)
    market_ticker: str | None = None


def market_data_from_prices(prices: pd.DataFrame, dates: pd.DatetimeIndex, market: str | None = None,
                            factors=None) -> MarketData:
    """Pivot long prices (ticker, date, adj_close, volume) onto ``dates`` and compute simple
    returns of the adjusted close.  A missing day leaves that day's and the next day's
    return missing.  ``factors``: a ``finance.factors.Factors`` or None."""
    dates = pd.DatetimeIndex(dates)
    off = ~prices["date"].isin(dates)
    if off.any():
        log.warning("prices: %d row(s) on days that are not trading days of the calendar were ignored "
                    "(first: %s %s)", int(off.sum()), prices.loc[off, "ticker"].iloc[0], prices.loc[off, "date"].iloc[0].date())
        prices = prices[~off]
    px = prices.pivot(index="date", columns="ticker", values="adj_close").reindex(dates)
    vol = prices.pivot(index="date", columns="ticker", values="volume").reindex(index=dates, columns=px.columns)
    p = px.to_numpy(dtype=float).T
    ret = np.full_like(p, np.nan)
    ret[:, 1:] = p[:, 1:] / p[:, :-1] - 1.0
    tickers = [str(t) for t in px.columns]
    rng = prices.groupby("ticker")["date"].agg(["min", "max"])
    m = None
    if market is not None:
        if market not in tickers:
            raise FinanceError(f"market ticker {market!r} has no prices")
        m = ret[tickers.index(market)]
    f = None
    if factors is not None:
        cols = [c for c in FACTOR_COLUMNS if c in factors.data.columns]
        f = np.full((len(dates), len(FACTOR_COLUMNS)), np.nan)
        f[:, [FACTOR_COLUMNS.index(c) for c in cols]] = factors.align(dates, cols)
    return MarketData(dates, tickers, ret, vol.to_numpy(dtype=float).T, m, f,
                      {t: (r["min"], r["max"]) for t, r in rng.iterrows()}, market)


@dataclass
class WindowResult:
    """Tests and mean outcomes of one event window."""

    window: tuple[int, int]
    n: int
    caar: float
    tests: dict[str, sig.TestResult]
    mean_outcomes: dict[str, tuple[float, float, int]]  # name -> (mean, std_error, n)
    cross_correlation: float

    def as_dict(self) -> dict:
        d = {"window": window_label(self.window), "start": self.window[0], "end": self.window[1], "n": self.n,
             "caar": sig._json_float(self.caar), "avg_cross_correlation": sig._json_float(self.cross_correlation)}
        d.update({name: self.tests[name].as_dict() for name in sig.TESTS})
        return d


@dataclass
class EventStudyResult:
    config: EventStudyConfig
    events: pd.DataFrame            # kept events: event_id, ticker, event_date, n_estimation, sigma_estimation, dof
    dropped: pd.DataFrame           # event_id, ticker, event_date, stage, reason
    abnormal_returns: pd.DataFrame  # event_id, rel_day, date, ret, expected_ret, ar, car (event period)
    car: pd.DataFrame               # event_id x window: car, bhar, scar, car_se, abnormal_volatility, abnormal_volume, ...
    windows: list[WindowResult]
    caar: pd.DataFrame              # rel_day, n, aar, caar, std_error, statistic, p_value
    seconds: float = 0.0

    def tests_json(self) -> list[dict]:
        return [w.as_dict() for w in self.windows]

    def summary(self) -> str:
        cfg = self.config
        lines = [f"Event study: model {cfg.model}, estimation {window_label(cfg.estimation)} "
                 f"(min {cfg.min_estimation_obs} days), {len(self.events)} events kept, {len(self.dropped)} dropped"]
        for (stage, kind), cnt in drop_counts(self.dropped).items():
            lines.append(f"  dropped {cnt:>5}: {kind} ({stage})")
        head = f"{'window':>9} {'N':>6} {'CAAR':>10} " + " ".join(f"{t:>17}" for t in sig.TESTS)
        lines += ["", head, f"{'':>27} " + " ".join(f"{'stat':>8} {'p':>8}" for _ in sig.TESTS)]
        for w in self.windows:
            cells = " ".join(f"{w.tests[t].statistic:8.3f} {w.tests[t].p_value:8.4f}" for t in sig.TESTS)
            lines.append(f"{window_label(w.window):>9} {w.n:>6} {w.caar:10.5f} {cells}")
        return "\n".join(lines)


def drop_kind(stage: str, reason: str) -> str:
    """The kind of a drop reason, without the event's details (ticker, dates, counts):
    ``too few estimation days: 80 < 100 in -250:-30`` -> ``too few estimation days``."""
    if stage == "prices":
        return "no prices for the ticker"
    head = re.sub(r" \(.*$", "", str(reason).split(":")[0])
    return re.sub(r" in event window .*$", " in the event window", head)


def drop_counts(dropped: pd.DataFrame) -> dict[tuple[str, str], int]:
    """Dropped events counted by (stage, kind of reason), most frequent first; every row counts."""
    if not len(dropped):
        return {}
    return dict(Counter((st, drop_kind(st, r)) for st, r in
                        zip(dropped["stage"].astype(str), dropped["reason"].astype(str))).most_common())


def describe_drops(dropped: pd.DataFrame) -> str:
    """``3 dropped: 2 no prices for the ticker (prices), 1 too few estimation days (event_study)``."""
    parts = [f"{n} {kind} ({stage})" for (stage, kind), n in drop_counts(dropped).items()]
    return f"{len(dropped)} dropped" + (": " + ", ".join(parts) if parts else "")


# -- the computation --------------------------------------------------------------------------


def _windows(matrix: np.ndarray, rows: np.ndarray | None, start: np.ndarray, length: int) -> np.ndarray:
    """Rows of ``matrix`` (R, T) (or a (T,) vector when ``rows`` is None) over the day ranges
    [start_i, start_i + length): (n, length), NaN outside [0, T)."""
    m2 = matrix[None, :] if rows is None else matrix
    n_days = m2.shape[1]
    rows = np.zeros(len(start), dtype=int) if rows is None else rows
    inside = (start >= 0) & (start + length <= n_days)
    if length <= n_days and inside.all():
        return sliding_window_view(m2, length, axis=1)[rows, start]
    out = np.full((len(start), length), np.nan)
    if length <= n_days and inside.any():
        out[inside] = sliding_window_view(m2, length, axis=1)[rows[inside], start[inside]]
    for j in np.flatnonzero(~inside):  # windows running off the data (rare)
        idx = start[j] + np.arange(length)
        ok = (idx >= 0) & (idx < n_days)
        out[j, ok] = m2[rows[j], idx[ok]]
    return out


@dataclass
class _Span:
    """One stretch of relative days for all events.  E[R] = base + b0 (if ``intercept``) + b' z.

    ret, y = ret - base, valid: (n, L); z: (n, kz, L), the regressors besides the intercept.
    """

    ret: np.ndarray
    y: np.ndarray
    z: np.ndarray
    valid: np.ndarray
    intercept: bool

    @property
    def k(self) -> int:
        return self.z.shape[1] + self.intercept

    def take(self, keep: np.ndarray) -> "_Span":
        return _Span(self.ret[keep], self.y[keep], self.z[keep], self.valid[keep], self.intercept)

    def fitted(self, beta: np.ndarray) -> np.ndarray:
        """b0 + b' z for beta (n, k): (n, L)."""
        bz = beta[:, int(self.intercept):]
        out = np.matmul(bz[:, None, :], self.z)[:, 0, :] if bz.shape[1] else np.zeros_like(self.y)
        return out + beta[:, :1] if self.intercept else out

    def design_sums(self, cols: slice) -> np.ndarray:
        """Sum of the regressors (1, z) over the days ``cols``: (n, k)."""
        g = self.z[:, :, cols].sum(axis=2)
        if self.intercept:
            g = np.concatenate([np.full((len(g), 1), float(cols.stop - cols.start)), g], axis=1)
        return g

    def normal_equations(self) -> tuple[np.ndarray, np.ndarray]:
        """X'X (n, k, k) and X'y (n, k) over the valid days."""
        vz = np.where(self.valid[:, None, :], self.z, 0.0)                 # (n, kz, L)
        vy = np.where(self.valid, self.y, 0.0)                              # (n, L)
        zz = np.matmul(vz, vz.transpose(0, 2, 1))                           # (n, kz, kz)
        zy = np.matmul(vz, vy[..., None])[..., 0]                           # (n, kz)
        if not self.intercept:
            return zz, zy
        n, kz = zy.shape
        sz = vz.sum(axis=2)
        xtx = np.empty((n, kz + 1, kz + 1))
        xtx[:, 0, 0] = self.valid.sum(axis=1)
        xtx[:, 0, 1:] = sz
        xtx[:, 1:, 0] = sz
        xtx[:, 1:, 1:] = zz
        return xtx, np.concatenate([vy.sum(axis=1)[:, None], zy], axis=1)


def _span(cfg: EventStudyConfig, data: MarketData, tick: np.ndarray, start: np.ndarray, length: int) -> _Span:
    """Returns and the expected-return design of the model over one stretch of days."""
    n = len(start)
    ret = _windows(data.returns, tick, start, length)
    if cfg.model == "constant":
        y, z, intercept = ret, np.zeros((n, 0, length)), True
    elif cfg.model in ("market_adjusted", "market"):
        if data.market is None:
            raise FinanceError(f"model {cfg.model!r} needs a market ticker")
        m = _windows(data.market, None, start, length)
        if cfg.model == "market_adjusted":
            y, z, intercept = ret - m, np.zeros((n, 0, length)), False
        else:
            y, z, intercept = ret, m[:, None, :], True
    else:
        if data.factors is None:
            raise FinanceError(f"model {cfg.model!r} needs a factor file")
        cols = ["mkt_rf", "smb", "hml"] + (["mom"] if cfg.model == "carhart" else [])
        f = [_windows(data.factors[:, FACTOR_COLUMNS.index(c)], None, start, length) for c in ["rf"] + cols]
        y, z, intercept = ret - f[0], np.stack(f[1:], axis=1), True
    valid = np.isfinite(y)
    if z.shape[1]:
        valid &= np.isfinite(z).all(axis=1)
    return _Span(ret, y, z, valid, intercept)


def _fmt(d) -> str:
    return pd.Timestamp(d).date().isoformat()


def event_study(events: pd.DataFrame, data: MarketData, cfg: EventStudyConfig) -> EventStudyResult:
    """Run the event study for ``events`` (event_id, ticker, event_date = day 0 session)."""
    t0 = time.perf_counter()
    (e0, e1), (p0, p1) = cfg.estimation, cfg.event_period
    prel = np.arange(p0, p1 + 1)
    ev_cols = np.zeros(len(prel), bool)
    for a, b in cfg.windows:
        ev_cols[a - p0:b - p0 + 1] = True

    events = events.reset_index(drop=True)
    reasons = np.full(len(events), None, dtype=object)
    tick = events["ticker"].map({t: i for i, t in enumerate(data.tickers)})
    reasons[tick.isna().to_numpy()] = "no prices for the ticker"
    day0 = data.dates.get_indexer(pd.DatetimeIndex(events["event_date"]))
    reasons[(day0 < 0) & (reasons == None)] = "event date is not a trading day of the price data"  # noqa: E711
    live = np.flatnonzero(reasons == None)  # noqa: E711
    tick_i, d0 = tick.to_numpy()[live].astype(int), day0[live]
    est = _span(cfg, data, tick_i, d0 + e0, e1 - e0 + 1)
    per = _span(cfg, data, tick_i, d0 + p0, len(prel))
    k = est.k

    # -- drop reasons in order: price range, event-window gaps, estimation size -----------------
    n_est = est.valid.sum(axis=1)
    for j in np.flatnonzero(~per.valid[:, ev_cols].all(axis=1) | (n_est < cfg.min_estimation_obs)):
        reasons[live[j]] = _drop_reason(events.iloc[live[j]], d0[j], data, per.ret[j], per.valid[j], ev_cols,
                                        int(n_est[j]), cfg, prel)

    # -- estimation: OLS for every event at once ---------------------------------------------------
    xtx, xty = est.normal_equations()                                      # (n, k, k), (n, k)
    if k:
        good = reasons[live] == None  # noqa: E711
        cond = np.full(len(live), np.inf)
        cond[good] = np.linalg.cond(xtx[good]) if good.any() else cond[good]
        for j in np.flatnonzero(good & ~(cond < 1e12)):
            reasons[live[j]] = "singular estimation design (constant market or factor returns)"
    keep = reasons[live] == None  # noqa: E711
    if not keep.all():
        live, tick_i, d0, xtx, xty, n_est = (v[keep] for v in (live, tick_i, d0, xtx, xty, n_est))
        est, per = est.take(keep), per.take(keep)
    xtx_inv = np.linalg.inv(xtx) if k and len(live) else np.zeros((len(live), k, k))
    beta = np.matmul(xtx_inv, xty[..., None])[..., 0]                      # (n, k)
    resid = est.y - est.fitted(beta)
    est_ar = np.where(est.valid, resid, np.nan)                            # (n, Le)
    ar = per.y - per.fitted(beta)                                          # (n, Lp)
    dof = n_est - max(k, 1)
    if k:
        s2 = np.where(est.valid, resid * resid, 0.0).sum(axis=1) / dof
    else:
        s2 = np.nanvar(est_ar, axis=1, ddof=1) if len(live) else np.zeros(0)
    expected = per.ret - ar

    # -- outcomes and tests per window -------------------------------------------------------------
    logv_est = np.log1p(_windows(data.volume, tick_i, d0 + e0, e1 - e0 + 1))
    logv = np.log1p(_windows(data.volume, tick_i, d0 + p0, len(prel)))
    has_v = est.valid & np.isfinite(logv_est)
    with np.errstate(invalid="ignore", divide="ignore"):  # events without volume give NaN, as they should
        est_logv = np.where(has_v, logv_est, 0.0).sum(axis=1) / has_v.sum(axis=1)
        rv_est = np.sqrt(np.where(est.valid, est.ret * est.ret, 0.0).sum(axis=1) / n_est)
    ids = pd.array(events["event_id"].to_numpy()[live], dtype="str")
    ubar, n_t = sig.mean_standardized_ranks(np.concatenate([est_ar, ar], axis=1))
    r_bar = sig.average_cross_correlation(est_ar)
    p_pos = sig.positive_fraction(est_ar)
    car_rows, window_results = [], []
    for w in cfg.windows:
        cols = slice(w[0] - p0, w[1] - p0 + 1)
        length = w[1] - w[0] + 1
        car = ar[:, cols].sum(axis=1)
        g = per.design_sums(cols)
        var_car = s2 * (length + np.matmul(g[:, None, :], np.matmul(xtx_inv, g[..., None]))[:, 0, 0])
        scar = car / np.sqrt(var_car)
        bhar = np.prod(1 + per.ret[:, cols], axis=1) - np.prod(1 + expected[:, cols], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            abn_vol = np.log(np.sqrt(np.mean(per.ret[:, cols] ** 2, axis=1)) / rv_est)
            abn_volume = np.nanmean(logv[:, cols], axis=1) - est_logv
        abn_vol[~np.isfinite(abn_vol)] = np.nan
        car_rows.append(pd.DataFrame({
            "event_id": ids, "window": window_label(w), "window_start": w[0], "window_end": w[1],
            "car": car, "bhar": bhar, "scar": scar, "car_se": np.sqrt(var_car),
            "abnormal_volatility": abn_vol, "abnormal_volume": abn_volume,
            "n_estimation": n_est, "sigma_estimation": np.sqrt(s2)}))
        in_window = np.zeros(len(ubar), bool)
        in_window[est_ar.shape[1] + w[0] - p0:est_ar.shape[1] + w[1] - p0 + 1] = True
        tests = {
            "t": sig.cross_sectional_t(car),
            "patell": sig.patell_z(scar, dof.astype(float)),
            "bmp": sig.bmp_t(scar),
            "kp_bmp": sig.kp_bmp_t(scar, r_bar),
            "corrado": sig.corrado_rank(ubar, n_t, in_window),
            "gen_sign": sig.generalized_sign_z(car, p_pos),
            "wilcoxon": sig.wilcoxon_signed_rank(car),
        }
        means = {name: _mean_se(v) for name, v in
                 (("car", car), ("bhar", bhar), ("abnormal_volatility", abn_vol), ("abnormal_volume", abn_volume))}
        window_results.append(WindowResult(w, len(live), float(car.mean()) if len(live) else np.nan, tests, means, r_bar))

    # -- event-period AR table and CAAR by relative day ------------------------------------------
    cum = np.cumsum(ar, axis=1)
    date_idx = np.clip(d0[:, None] + prel[None, :], 0, len(data.dates) - 1)
    ar_table = pd.DataFrame({
        "event_id": ids.take(np.repeat(np.arange(len(ids)), len(prel))), "rel_day": np.tile(prel, len(ids)),
        "date": data.dates.to_numpy()[date_idx].ravel(), "ret": per.ret.ravel(),
        "expected_ret": expected.ravel(), "ar": ar.ravel(), "car": cum.ravel()})
    caar = _caar_table(prel, ar, cum)

    kept = events.iloc[live].reset_index(drop=True).assign(
        n_estimation=n_est, sigma_estimation=np.sqrt(s2), dof=dof)
    bad = reasons != None  # noqa: E711
    dropped = pd.DataFrame({"event_id": events.loc[bad, "event_id"], "ticker": events.loc[bad, "ticker"],
                            "event_date": events.loc[bad, "event_date"], "stage": "event_study",
                            "reason": reasons[bad]}).reset_index(drop=True)
    seconds = time.perf_counter() - t0
    log.info("event study: %d events kept, %d dropped, model %s, %d window(s) in %.2f s",
             len(kept), len(dropped), cfg.model, len(cfg.windows), seconds)
    car_df = pd.concat(car_rows, ignore_index=True)
    return EventStudyResult(cfg, kept, dropped, ar_table, car_df, window_results, caar, seconds)


def _mean_se(v: np.ndarray) -> tuple[float, float, int]:
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return (np.nan, np.nan, 0)
    return (float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else np.nan, len(v))


def _caar_table(prel: np.ndarray, ar: np.ndarray, cum: np.ndarray) -> pd.DataFrame:
    """AAR and CAAR per relative day with the cross-sectional standard error and t test."""
    n = np.isfinite(cum).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # days without events give NaN
        caar = np.nanmean(cum, axis=0)
        se = np.nanstd(cum, axis=0, ddof=1) / np.sqrt(n)
        stat = caar / se
        aar = np.nanmean(ar, axis=0)
    stat[~np.isfinite(stat)] = np.nan
    p = np.where(n > 1, 2 * stats.t.sf(np.abs(stat), np.maximum(n - 1, 1)), np.nan)
    return pd.DataFrame({"rel_day": prel, "n": n, "aar": aar, "caar": caar, "std_error": se,
                         "statistic": stat, "p_value": p})


def _drop_reason(ev: pd.Series, day0: int, data: MarketData, ret: np.ndarray, valid: np.ndarray,
                 ev_cols: np.ndarray, n_est: int, cfg: EventStudyConfig, prel: np.ndarray) -> str:
    """Why one event cannot be used (``ret``/``valid``: its event-period rows, (Lp,))."""
    first, last = data.price_range.get(ev["ticker"], (None, None))
    ev_idx = day0 + prel[ev_cols]
    n_days = len(data.dates)
    lo_day, hi_day = (data.dates[int(np.clip(i, 0, n_days - 1))] for i in (ev_idx.min(), ev_idx.max()))
    window = f"{window_label(cfg.event_period)} ({_fmt(lo_day)}..{_fmt(hi_day)})"
    if first is None:
        return f"event outside the price range: no prices of {ev['ticker']}"
    if ev_idx.max() >= n_days or hi_day > last:
        return (f"event outside the price range: event window {window} ends after the last price of "
                f"{ev['ticker']} ({_fmt(last)})")
    if ev_idx.min() < 0 or lo_day < first:
        return (f"event outside the price range: event window {window} starts before the first price of "
                f"{ev['ticker']} ({_fmt(first)})")
    if not valid[ev_cols].all():
        what = "return" if (ev_cols & ~np.isfinite(ret)).any() else "market/factor return"
        days = ", ".join(_fmt(data.dates[day0 + r]) for r in prel[ev_cols & ~valid][:3])
        return f"missing {what} in event window {window} on {days} (gap in prices)"
    return f"too few estimation days: {n_est} < {cfg.min_estimation_obs} in {window_label(cfg.estimation)}"
