"""Speed of the event-study engine against a per-event statsmodels loop (same process).

10,000 events, 281-day windows (estimation [-250,-30], event windows [-1,1], [0,1],
[2,30]), market model, all seven tests.  Prints both times and the ratio.
Target: at least 20x faster than the loop and under 5 s on 2 cores.

    .venv/bin/python benchmarks/bench_event_study.py [--events 10000] [--loop-events 10000]

``--loop-events`` below ``--events`` times the loop on a subset and scales it linearly
(the loop's cost per event is constant).  Both sides report the best of ``--repeat`` runs,
so that other work on a shared machine disturbs the ratio as little as possible.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from finance.engine import EventStudyConfig, event_study, market_data_from_prices

WINDOWS = ((-1, 1), (0, 1), (2, 30))


def make_data(n_tickers: int, n_days: int, n_events: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2000-01-03", periods=n_days)
    m = rng.normal(3e-4, 0.01, n_days)
    beta = rng.uniform(0.5, 1.5, n_tickers)
    r = 2e-4 + beta[:, None] * m[None, :] + rng.normal(0, 0.02, (n_tickers, n_days))
    px = 50 * np.cumprod(1 + np.vstack([m, r]), axis=1)
    tickers = ["MKT"] + [f"S{i}" for i in range(n_tickers)]
    prices = pd.DataFrame({"ticker": np.repeat(tickers, n_days), "date": np.tile(dates, len(tickers)),
                           "adj_close": px.ravel(), "volume": rng.lognormal(13, 0.4, px.size)})
    day0 = rng.integers(260, n_days - 35, n_events)
    events = pd.DataFrame({"event_id": [f"E{i}" for i in range(n_events)],
                           "ticker": [f"S{t}" for t in rng.integers(0, n_tickers, n_events)], "event_date": dates[day0]})
    return prices, events, dates


def statsmodels_loop(events: pd.DataFrame, ret: pd.DataFrame, vol: pd.DataFrame, dates: pd.DatetimeIndex) -> dict:
    """The same outputs, one event at a time: statsmodels OLS market model, ARs over the event
    period, CAR/BHAR/SCAR/abnormal volatility/abnormal volume per window, then all tests."""
    m = ret["MKT"].to_numpy()
    pos = {d: i for i, d in enumerate(dates)}
    out = {w: {k: [] for k in ("car", "scar", "bhar", "vol", "volume")} for w in WINDOWS}
    est_ars, dofs, u_rows, ar_rows = [], [], [], []
    for ev in events.itertuples():
        i0 = pos[ev.event_date]
        r = ret[ev.ticker].to_numpy()
        lv = np.log1p(vol[ev.ticker].to_numpy())
        est = np.arange(i0 - 250, i0 - 29)
        fit = sm.OLS(r[est], sm.add_constant(m[est])).fit()
        cov = fit.cov_params()
        period = np.arange(i0 - 1, i0 + 31)
        xp = sm.add_constant(m[period], has_constant="add")
        ar = r[period] - fit.predict(xp)
        est_ars.append(fit.resid)
        dofs.append(fit.df_resid)
        ar_rows.append(ar)
        ranks = stats.rankdata(np.concatenate([fit.resid, ar]))
        u_rows.append(ranks / (len(ranks) + 1) - 0.5)
        for a, b in WINDOWS:
            sel = slice(a + 1, b + 2)
            car = ar[sel].sum()
            g = xp[sel].sum(axis=0)
            out[(a, b)]["car"].append(car)
            out[(a, b)]["scar"].append(car / np.sqrt((b - a + 1) * fit.scale + g @ cov @ g))
            out[(a, b)]["bhar"].append(np.prod(1 + r[period][sel]) - np.prod(1 + r[period][sel] - ar[sel]))
            out[(a, b)]["vol"].append(np.log(np.sqrt(np.mean(r[period][sel] ** 2)) / np.sqrt(np.mean(r[est] ** 2))))
            out[(a, b)]["volume"].append(lv[period][sel].mean() - lv[est].mean())
    e = np.array(est_ars)
    z = (e - e.mean(axis=1, keepdims=True))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(e)
    r_bar = (z.sum(axis=0) @ z.sum(axis=0) - n) / (n * (n - 1))
    ubar = np.mean(u_rows, axis=0)
    p_pos = np.mean((e > 0).mean(axis=1))
    res = {}
    for (a, b), o in out.items():
        car, scar = np.array(o["car"]), np.array(o["scar"])
        t_bmp = stats.ttest_1samp(scar, 0).statistic
        res[(a, b)] = dict(
            t=stats.ttest_1samp(car, 0), patell=scar.sum() / np.sqrt(np.sum(np.array(dofs) / (np.array(dofs) - 2))),
            bmp=t_bmp, kp=t_bmp * np.sqrt((1 - r_bar) / (1 + (n - 1) * r_bar)),
            corrado=ubar[221 + a + 1:221 + b + 2].sum() / (np.sqrt(b - a + 1) * np.sqrt(np.mean(ubar ** 2))),
            sign=((car > 0).sum() - n * p_pos) / np.sqrt(n * p_pos * (1 - p_pos)), wilcoxon=stats.wilcoxon(car))
    cum = np.cumsum(ar_rows, axis=1)
    res["caar"] = stats.ttest_1samp(cum, 0, axis=0)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--loop-events", type=int, default=10_000)
    ap.add_argument("--tickers", type=int, default=500)
    ap.add_argument("--days", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    prices, events, dates = make_data(args.tickers, args.days, args.events)
    t = time.perf_counter()
    data = market_data_from_prices(prices, dates, market="MKT")
    t_prep = time.perf_counter() - t
    cfg = EventStudyConfig(model="market", estimation=(-250, -30), windows=WINDOWS)
    n_loop = min(args.loop_events, args.events)
    ret = prices.pivot(index="date", columns="ticker", values="adj_close").reindex(dates).pct_change(fill_method=None)
    vol = prices.pivot(index="date", columns="ticker", values="volume").reindex(dates)
    t_engine = t_loop = float("inf")
    for _ in range(args.repeat):
        t = time.perf_counter()
        res = event_study(events, data, cfg)
        t_engine = min(t_engine, time.perf_counter() - t)
        t = time.perf_counter()
        statsmodels_loop(events.head(n_loop), ret, vol, dates)
        t_loop = min(t_loop, (time.perf_counter() - t) * args.events / n_loop)
    span = cfg.span[1] - cfg.span[0] + 1
    print(f"events: {args.events} ({len(res.events)} kept), {span}-day windows, market model, "
          f"{len(WINDOWS)} windows x 7 tests")
    print(f"price pivot + returns (once per study): {t_prep:.2f} s")
    print(f"engine (panel, OLS, AR/CAR/BHAR/SCAR, outcomes, all tests, CAAR), best of {args.repeat}: {t_engine:.2f} s")
    check = statsmodels_loop(events.head(200), ret, vol, dates)[(0, 1)]["bmp"]
    small = event_study(events.head(200), data, cfg).windows[1].tests["bmp"].statistic
    print(f"check on 200 events, BMP [0,1]: engine {small:.10f}, loop {check:.10f}")
    print(f"statsmodels per-event loop, best of {args.repeat}: {t_loop:.2f} s" + (f" (timed on {n_loop} events, scaled)" if n_loop < args.events else ""))
    print(f"speed-up: {t_loop / t_engine:.1f}x (target >= 20x); engine under 5 s: {'yes' if t_engine < 5 else 'NO'}")


if __name__ == "__main__":
    main()
