"""Brown-Warner simulation: size and power of every event-study test on real index data.

Data: arch's daily S&P 500 (the market, ^GSPC) and NASDAQ Composite (^IXIC), 1999-2018,
on the XNYS calendar.  Market model, estimation window [-250, -30].  Each design draws
``--samples`` samples (default 1,000) of ``--events`` events (default 50) and adds an
abnormal return of 0, +0.5% or +1% to day 0; it prints the rejection rate of each test at
5% (two-sided) for windows [0,0] and [-1,+1].

Designs:

A. real data: the stock is the NASDAQ itself, each event on its own random date (Brown &
   Warner 1985 on one real series; its residuals against the S&P 500 are heteroskedastic).
B. simulated market-model returns, random dates: stock_i = b_i * S&P_t + g_t + e_it with
   b_i ~ U(0.5, 1.5), an industry shock g_t ~ N(0, 0.6%^2) common to all stocks and
   e_it ~ N(0, s_i^2), s_i ~ U(1%, 3%); each event on its own random date, so the common
   shock of one event's day 0 is not the other events'.
C. the same stocks, clustered: all events of a sample on one random date.  They now share
   the industry shock, residuals are cross-correlated (about 0.08), and tests that assume
   independent events over-reject; Kolari-Pynnonen's adjusted BMP (kp_bmp) and the Corrado
   rank test (its variance comes from the time series of mean ranks) keep their size.
   That is why kp_bmp exists.

Size must lie in [3%, 7%]: checked for every test in designs A and B, and for kp_bmp and
corrado in design C.

    .venv/bin/python benchmarks/event_study_size_power.py [--samples 1000] [--events 50] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from tqdm import tqdm

from finance.calendars import get_calendar
from finance.engine import EventStudyConfig, MarketData, event_study, market_data_from_prices
from finance.prices import load_arch_index
from finance.significance import TESTS

EFFECTS = (0.0, 0.005, 0.01)
WINDOWS = ((0, 0), (-1, 1))
INDUSTRY_SD = 0.006


def load() -> MarketData:
    prices = pd.concat([load_arch_index("^GSPC"), load_arch_index("^IXIC")], ignore_index=True)
    cal = get_calendar("XNYS", prices["date"])
    return market_data_from_prices(prices, cal.between(prices["date"].min(), prices["date"].max()), market="^GSPC")


def simulate(base: MarketData, design: str, n_samples: int, n_events: int, seed: int) -> dict:
    """Rejection counts: {(effect, window, test): count}."""
    rng = np.random.default_rng(seed)
    stock = base.returns[base.tickers.index("^IXIC")]
    market = np.nan_to_num(base.market)
    n_days = len(base.dates)
    eligible = np.arange(251, n_days - 2)
    cfg = EventStudyConfig(model="market", estimation=(-250, -30), windows=WINDOWS, min_estimation_obs=100)
    counts: dict = {}
    tickers = [f"S{i}" for i in range(n_events)]
    for _ in tqdm(range(n_samples), desc=f"design {design}", unit="sample", mininterval=2):
        if design == "C":
            day0 = np.full(n_events, rng.choice(eligible))
        else:
            day0 = rng.choice(eligible, n_events, replace=False)
        if design == "A":
            rets = np.tile(stock, (n_events, 1))
        else:
            beta = rng.uniform(0.5, 1.5, (n_events, 1))
            sd = rng.uniform(0.01, 0.03, (n_events, 1))
            rets = beta * market + rng.normal(0.0, INDUSTRY_SD, n_days) + sd * rng.standard_normal((n_events, n_days))
            rets[:, 0] = np.nan
        events = pd.DataFrame({"event_id": tickers, "ticker": tickers, "event_date": base.dates[day0]})
        for effect in EFFECTS:
            r = rets.copy()
            r[np.arange(n_events), day0] += effect
            data = MarketData(base.dates, tickers, r, np.full_like(r, np.nan), base.market)
            res = event_study(events, data, cfg)
            for w in res.windows:
                for name in TESTS:
                    key = (effect, w.window, name)
                    counts[key] = counts.get(key, 0) + int(w.tests[name].p_value < 0.05)
    return counts


def report(design: str, counts: dict, n_samples: int) -> list[str]:
    failures = []
    for window in WINDOWS:
        print(f"\ndesign {design}, window [{window[0]},{window[1]}]: rejection rate at 5% (two-sided), "
              f"{n_samples} samples")
        print(f"{'test':>10} {'size (0)':>10} {'+0.5%':>8} {'+1%':>8}  size in [3%, 7%]")
        for name in TESTS:
            rates = [counts[(e, window, name)] / n_samples for e in EFFECTS]
            ok = 0.03 <= rates[0] <= 0.07
            must = design in ("A", "B") or name in ("kp_bmp", "corrado")
            flag = "yes" if ok else ("NO" if must else "no (expected: clustering)")
            if must and not ok:
                failures.append(f"{design} {window} {name} size {rates[0]:.3f}")
            print(f"{name:>10} {rates[0]:>10.3f} {rates[1]:>8.3f} {rates[2]:>8.3f}  {flag}")
    return failures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--events", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--designs", default="ABC")
    args = ap.parse_args()
    t0 = time.perf_counter()
    base = load()
    failures = []
    for i, design in enumerate(args.designs):
        counts = simulate(base, design, args.samples, args.events, args.seed + i)
        failures += report(design, counts, args.samples)
    print(f"\n{len(args.designs) * args.samples * len(EFFECTS)} event studies of {args.events} events "
          f"in {time.perf_counter() - t0:.0f} s")
    print("all required sizes in [3%, 7%]" if not failures else "OUT OF RANGE: " + "; ".join(failures))


if __name__ == "__main__":
    main()
