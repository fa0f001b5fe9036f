"""The vectorized engine against a straightforward per-event reference (statsmodels OLS per
event, numpy/scipy loops), written here independently, on random data: agreement to 1e-8."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from fin_synth import random_events, synthetic_market
from finance.engine import EventStudyConfig, event_study, market_data_from_prices
from finance.factors import factors_from_frame

WINDOWS = ((-1, 1), (0, 1), (2, 30))
EST = (-250, -30)
TOL = 1e-8


@pytest.fixture(scope="module")
def world():
    prices, factors, dates = synthetic_market(n_tickers=15, n_days=650, seed=11)
    # a few missing prices in estimation windows: the engine must skip those days like the reference
    rng = np.random.default_rng(5)
    holes = prices[(prices.ticker != "MKT")].sample(40, random_state=3).index
    prices = prices.drop(holes)
    events = random_events(dates, 60, 15, seed=7)
    fac = factors_from_frame(factors.assign(date=factors.date.dt.strftime("%Y-%m-%d")), "synthetic", units="decimal")
    data = market_data_from_prices(prices, dates, market="MKT", factors=fac)
    wide = prices.pivot(index="date", columns="ticker", values="adj_close").reindex(dates)
    vol = prices.pivot(index="date", columns="ticker", values="volume").reindex(dates)
    return dict(data=data, events=events, ret=wide.pct_change(fill_method=None), vol=vol,
                factors=factors.set_index("date"), dates=dates, rng=rng)


def _reference(world, model):
    """Per-event loop. Returns per-event dicts and the event ids kept."""
    ret, fac, dates = world["ret"], world["factors"], world["dates"]
    out = []
    for ev in world["events"].itertuples():
        i0 = dates.get_loc(ev.event_date)
        r = ret[ev.ticker].to_numpy()
        m = ret["MKT"].to_numpy()
        cols = {"constant": [], "market_adjusted": [], "market": None,
                "ff3": ["mkt_rf", "smb", "hml"], "carhart": ["mkt_rf", "smb", "hml", "mom"]}[model]
        if model == "market":
            xfull = np.column_stack([np.ones(len(r)), m])
        elif model in ("ff3", "carhart"):
            xfull = np.column_stack([np.ones(len(r)), fac[cols].to_numpy()])
        else:
            xfull = np.ones((len(r), 1))
        base = {"ff3": fac["rf"].to_numpy(), "carhart": fac["rf"].to_numpy(), "market_adjusted": m}.get(model, np.zeros(len(r)))
        y = r - base
        est_idx = np.arange(i0 + EST[0], i0 + EST[1] + 1)
        ev_idx = np.arange(i0 - 1, i0 + 31)
        if not np.isfinite(y[ev_idx]).all():
            continue
        ok = est_idx[np.isfinite(y[est_idx]) & np.isfinite(xfull[est_idx]).all(axis=1)]
        if model == "market_adjusted":
            ar_est = y[ok]
            s2, dof, cov, params = np.var(ar_est, ddof=1), len(ok) - 1, None, None
            ar = lambda idx: y[idx]  # noqa: E731
        else:
            fit = sm.OLS(y[ok], xfull[ok]).fit()
            s2, dof, cov, params = fit.scale, fit.df_resid, fit.cov_params(), fit.params
            ar_est = fit.resid
            ar = lambda idx, p=params: y[idx] - xfull[idx] @ p  # noqa: E731
        rec = {"event_id": ev.event_id, "ar_est": dict(zip(ok - i0, ar_est)), "dof": dof, "s": np.sqrt(s2), "n": len(ok),
               "ar_ev": dict(zip(ev_idx - i0, ar(ev_idx)))}
        for a, b in WINDOWS:
            idx = np.arange(i0 + a, i0 + b + 1)
            car = ar(idx).sum()
            var = len(idx) * s2 + (0.0 if cov is None else xfull[idx].sum(axis=0) @ cov @ xfull[idx].sum(axis=0))
            expected = r[idx] - ar(idx)
            rv_post = np.sqrt(np.mean(r[idx] ** 2))
            rv_pre = np.sqrt(np.mean(r[ok] ** 2))
            lv = np.log1p(world["vol"][ev.ticker].to_numpy())
            rec[(a, b)] = dict(car=car, scar=car / np.sqrt(var), bhar=np.prod(1 + r[idx]) - np.prod(1 + expected),
                               abnormal_volatility=np.log(rv_post / rv_pre), abnormal_volume=lv[idx].mean() - lv[ok].mean())
        out.append(rec)
    return out


def _ref_tests(recs, window):
    a, b = window
    car = np.array([r[window]["car"] for r in recs])
    scar = np.array([r[window]["scar"] for r in recs])
    dof = np.array([r["dof"] for r in recs], float)
    n = len(recs)
    res = {}
    t = stats.ttest_1samp(car, 0.0)
    res["t"] = (t.statistic, t.pvalue)
    z = scar.sum() / np.sqrt(sum(d / (d - 2) for d in dof))
    res["patell"] = (z, 2 * stats.norm.sf(abs(z)))
    t = stats.ttest_1samp(scar, 0.0)
    res["bmp"] = (t.statistic, t.pvalue)
    # Kolari-Pynnonen: mean pairwise correlation of estimation ARs aligned in event time
    days = sorted(set().union(*[r["ar_est"].keys() for r in recs]))
    mat = np.array([[r["ar_est"].get(d, np.nan) for d in days] for r in recs])
    zs = []
    for row in mat:
        okr = np.isfinite(row)
        zr = np.where(okr, row - row[okr].mean(), 0.0)
        zs.append(zr / np.linalg.norm(zr))
    pairs = [zs[i] @ zs[j] for i in range(n) for j in range(i + 1, n)]
    rbar = float(np.mean(pairs))
    tk = t.statistic * np.sqrt((1 - rbar) / (1 + (n - 1) * rbar))
    res["kp_bmp"] = (tk, 2 * stats.t.sf(abs(tk), n - 1))
    # Corrado rank (Corrado-Zivney standardized ranks over estimation + event period, Cowan multi-day)
    per_day: dict[int, list[float]] = {}
    for r in recs:
        vals = dict(r["ar_est"])
        vals.update(r["ar_ev"])
        keys = list(vals)
        ranks = stats.rankdata([vals[k] for k in keys])
        for k_, rk in zip(keys, ranks):
            per_day.setdefault(k_, []).append(rk / (len(keys) + 1) - 0.5)
    ubar = {d: np.mean(v) for d, v in per_day.items()}
    s_u = np.sqrt(np.mean([u ** 2 for u in ubar.values()]))
    zc = sum(ubar[d] for d in range(a, b + 1)) / (np.sqrt(b - a + 1) * s_u)
    res["corrado"] = (zc, 2 * stats.norm.sf(abs(zc)))
    # generalized sign
    p = np.mean([np.mean(np.array(list(r["ar_est"].values())) > 0) for r in recs])
    w = np.sum(car > 0)
    zg = (w - n * p) / np.sqrt(n * p * (1 - p))
    res["gen_sign"] = (zg, 2 * stats.norm.sf(abs(zg)))
    # Wilcoxon signed rank, normal approximation (n > 50, no ties)
    rk = stats.rankdata(np.abs(car))
    w_plus = rk[car > 0].sum()
    zw = (w_plus - n * (n + 1) / 4) / np.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    res["wilcoxon"] = (w_plus, 2 * stats.norm.sf(abs(zw)))
    return res, car.mean()


def _close(a, b):
    return abs(a - b) <= TOL * max(1.0, abs(b))


@pytest.mark.parametrize("model", ["constant", "market_adjusted", "market", "ff3", "carhart"])
def test_engine_matches_per_event_reference(world, model):
    res = event_study(world["events"], world["data"], EventStudyConfig(model=model, estimation=EST, windows=WINDOWS,
                                                                          min_estimation_obs=100))
    recs = _reference(world, model)
    assert len(recs) > 50
    assert list(res.events["event_id"]) == [r["event_id"] for r in recs]
    assert res.events["n_estimation"].tolist() == [r["n"] for r in recs]
    assert np.allclose(res.events["sigma_estimation"], [r["s"] for r in recs], rtol=0, atol=TOL)
    car = res.car.set_index(["event_id", "window"])
    for r in recs:
        for w in WINDOWS:
            row = car.loc[(r["event_id"], f"{w[0]}:{w[1]}")]
            for name in ("car", "scar", "bhar", "abnormal_volatility", "abnormal_volume"):
                assert _close(row[name], r[w][name]), (model, r["event_id"], w, name, row[name], r[w][name])
    ar = res.abnormal_returns.set_index(["event_id", "rel_day"])["ar"]
    for r in recs:
        for d, v in r["ar_ev"].items():
            assert _close(ar.loc[(r["event_id"], d)], v)
    for wres in res.windows:
        ref, caar = _ref_tests(recs, wres.window)
        assert _close(wres.caar, caar)
        for name, (stat, p) in ref.items():
            got = wres.tests[name]
            assert _close(got.statistic, stat), (model, wres.window, name, got.statistic, stat)
            assert abs(got.p_value - p) <= TOL, (model, wres.window, name, got.p_value, p)


def test_caar_by_day_matches_loop(world):
    res = event_study(world["events"], world["data"], EventStudyConfig(model="market", windows=WINDOWS))
    recs = _reference(world, "market")
    for row in res.caar.itertuples():
        cum = np.array([sum(r["ar_ev"][d] for d in range(-1, row.rel_day + 1)) for r in recs])
        assert row.n == len(recs)
        assert _close(row.caar, cum.mean())
        assert _close(row.std_error, cum.std(ddof=1) / np.sqrt(len(cum)))
        assert _close(row.statistic, stats.ttest_1samp(cum, 0).statistic)


def test_ranks_with_ties_and_missing_match_scipy():
    from finance.significance import mean_standardized_ranks, rank_rows

    rng = np.random.default_rng(8)
    a = np.round(rng.normal(size=(40, 60)), 1)  # many ties
    a[rng.random(a.shape) < 0.1] = np.nan
    ref = stats.rankdata(a, axis=1, nan_policy="omit")
    assert np.allclose(rank_rows(a), ref, equal_nan=True)
    m = np.isfinite(a).sum(axis=1, keepdims=True)
    u = ref / (m + 1) - 0.5
    ubar, n_t = mean_standardized_ranks(a)
    assert np.allclose(ubar, np.nanmean(u, axis=0), atol=1e-14) and (n_t == np.isfinite(a).sum(axis=0)).all()
    b = rng.normal(size=(40, 60))  # no ties: the bincount path
    ubar_b, _ = mean_standardized_ranks(b)
    assert np.allclose(ubar_b, (stats.rankdata(b, axis=1) / 61 - 0.5).mean(axis=0), atol=1e-14)


def test_average_cross_correlation_is_the_mean_pairwise_correlation():
    from finance.significance import average_cross_correlation

    rng = np.random.default_rng(9)
    common = rng.normal(size=120)
    e = 0.5 * common + rng.normal(size=(25, 120))
    corr = np.corrcoef(e)
    assert average_cross_correlation(e) == pytest.approx(corr[np.triu_indices(25, 1)].mean(), abs=1e-12)
