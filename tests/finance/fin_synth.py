"""Synthetic prices, factors and events for the finance tests (known truth, fixed seeds)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def synthetic_market(n_tickers: int = 20, n_days: int = 700, seed: int = 0, start: str = "2005-01-03",
                     dates: pd.DatetimeIndex | None = None):
    """Daily prices of ``MKT`` and ``S0..S{n-1}`` on business days (or ``dates``), plus daily factors.

    Stock returns follow rf + a + b' (mkt_rf, smb, hml, mom) + noise, so every model of
    the engine has something to fit.  Returns (prices long frame, factors frame, dates).
    """
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=n_days) if dates is None else pd.DatetimeIndex(dates)
    n_days = len(dates)
    f = pd.DataFrame({
        "date": dates, "mkt_rf": rng.normal(3e-4, 0.01, n_days), "smb": rng.normal(0, 0.005, n_days),
        "hml": rng.normal(0, 0.005, n_days), "rf": rng.uniform(0, 2e-4, n_days), "mom": rng.normal(0, 0.006, n_days)})
    mkt = f["rf"] + f["mkt_rf"]
    frames = [_long("MKT", dates, mkt.to_numpy(), rng)]
    for i in range(n_tickers):
        b = rng.normal([1.0, 0.3, -0.2, 0.1], 0.3)
        r = (f["rf"] + 2e-4 + b[0] * f["mkt_rf"] + b[1] * f["smb"] + b[2] * f["hml"] + b[3] * f["mom"]
             + rng.normal(0, rng.uniform(0.01, 0.03), n_days))
        frames.append(_long(f"S{i}", dates, r.to_numpy(), rng))
    return pd.concat(frames, ignore_index=True), f, dates


def _long(ticker: str, dates: pd.DatetimeIndex, ret: np.ndarray, rng) -> pd.DataFrame:
    px = 40.0 * np.cumprod(1 + ret)
    return pd.DataFrame({"ticker": ticker, "date": dates, "adj_close": px, "close": px,
                         "volume": rng.lognormal(13, 0.4, len(dates))})


def random_events(dates: pd.DatetimeIndex, n_events: int, n_tickers: int, seed: int = 1,
                  lo: int = 260, hi_margin: int = 35) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    day0 = rng.integers(lo, len(dates) - hi_margin, n_events)
    return pd.DataFrame({"event_id": [f"E{i:03d}" for i in range(n_events)],
                         "ticker": [f"S{t}" for t in rng.integers(0, n_tickers, n_events)],
                         "event_date": dates[day0]})
