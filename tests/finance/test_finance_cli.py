"""`speechfin study car` and `speechfin study regress` on files, including every bad-input
case of the issue: each gets a clear message, or its event is listed in dropped.csv."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from fin_synth import synthetic_market
from finance.calendars import get_calendar
from pipelines.cli import study as cli_study

TESTS = ["t", "patell", "bmp", "kp_bmp", "corrado", "gen_sign", "wilcoxon"]


def run(*args):
    return CliRunner().invoke(cli_study.app, [str(a) for a in args])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("car")
    sessions = get_calendar("XNYS").between("2016-01-04", "2019-12-31")
    prices, _, dates = synthetic_market(n_tickers=10, seed=4, dates=sessions)
    gap_day, est_gap_day = dates[600], dates[500]
    prices = prices[~((prices.ticker == "S3") & (prices.date == gap_day))]        # gap on an event day
    prices = prices[~((prices.ticker == "S4") & (prices.date == est_gap_day))]    # gap in an estimation window
    prices.to_csv(tmp / "prices.csv", index=False)
    rows = [(f"OK{i}", f"S{i % 10}", dates[300 + 30 * i].date().isoformat()) for i in range(20)]
    rows += [("UNKNOWN", "ZZZZ", dates[500].date().isoformat()),
             ("SHORT", "S1", dates[80].date().isoformat()),
             ("GAP", "S3", gap_day.date().isoformat()),
             ("ESTGAP", "S4", dates[600].date().isoformat()),
             ("OUTSIDE", "S2", "2020-06-01"),
             ("WEEKEND", "S5", "2019-03-09")]  # a Saturday
    pd.DataFrame(rows, columns=["event_id", "ticker", "event_date"]).to_csv(tmp / "events.csv", index=False)
    out = tmp / "out"
    res = run("car", "--events", tmp / "events.csv", "--prices", tmp / "prices.csv", "--market", "MKT",
              "--model", "market", "--estimation", "-250:-30", "--window", "-1:1", "--window", "0:1",
              "--window", "2:30", "--out", out)
    assert res.exit_code == 0, res.output
    return tmp, out, dates


def test_car_writes_the_documented_files(files):
    _, out, _ = files
    ar = pd.read_parquet(out / "abnormal_returns.parquet")
    assert list(ar.columns) == ["event_id", "rel_day", "date", "ret", "expected_ret", "ar"]
    car = pd.read_parquet(out / "car.parquet")
    for col in ("event_id", "window", "car", "bhar", "n_estimation", "sigma_estimation"):
        assert col in car.columns
    kept = sorted(car["event_id"].unique())
    assert kept == sorted([f"OK{i}" for i in range(20)] + ["ESTGAP", "WEEKEND"])
    assert len(car) == 3 * len(kept) and sorted(car["window"].unique()) == ["-1:1", "0:1", "2:30"]
    assert len(ar) == 32 * len(kept) and ar["rel_day"].min() == -1 and ar["rel_day"].max() == 30
    # CAR of a window is the sum of the event's ARs over it
    one = ar[(ar.event_id == "OK3") & ar.rel_day.between(0, 1)]["ar"].sum()
    assert car[(car.event_id == "OK3") & (car.window == "0:1")]["car"].iloc[0] == pytest.approx(one, abs=1e-12)
    assert np.allclose(ar["ret"] - ar["expected_ret"], ar["ar"], atol=1e-15)


def test_tests_json_matches_the_car_file(files):
    _, out, _ = files
    tests = json.loads((out / "tests.json").read_text())
    car = pd.read_parquet(out / "car.parquet")
    assert [t["window"] for t in tests] == ["-1:1", "0:1", "2:30"]
    for t in tests:
        cars = car[car.window == t["window"]]["car"].to_numpy()
        assert t["n"] == len(cars) == 22
        assert t["caar"] == pytest.approx(cars.mean(), abs=1e-15)
        ref = stats.ttest_1samp(cars, 0)
        assert t["t"]["statistic"] == pytest.approx(ref.statistic, rel=1e-10)
        assert t["t"]["p_value"] == pytest.approx(ref.pvalue, rel=1e-10)
        assert t["wilcoxon"]["p_value"] == pytest.approx(stats.wilcoxon(cars).pvalue, rel=1e-10)
        for name in TESTS:
            assert set(t[name]) == {"statistic", "p_value"} and 0 <= t[name]["p_value"] <= 1


def test_bad_events_are_dropped_with_reasons(files):
    _, out, dates = files
    dropped = pd.read_csv(out / "dropped.csv").set_index("event_id")
    assert sorted(dropped.index) == ["GAP", "OUTSIDE", "SHORT", "UNKNOWN"]
    assert "unknown ticker 'ZZZZ'" in dropped.loc["UNKNOWN", "reason"] and dropped.loc["UNKNOWN", "stage"] == "prices"
    assert dropped.loc["SHORT", "reason"].startswith("too few estimation days: ")
    n_short = int(dropped.loc["SHORT", "reason"].split(":")[1].split("<")[0])
    assert n_short == 80 - 30 + 1 - 1  # days 1..50 before the window end have a return (day 0 has none)
    assert "missing return in event window -1:30" in dropped.loc["GAP", "reason"]
    assert dates[600].date().isoformat() in dropped.loc["GAP", "reason"] and "gap in prices" in dropped.loc["GAP", "reason"]
    assert "event outside the price range" in dropped.loc["OUTSIDE", "reason"]
    assert "ends after the last price of S2 (2019-12-31)" in dropped.loc["OUTSIDE", "reason"]


def test_gap_in_estimation_window_costs_two_returns(files):
    _, out, _ = files
    car = pd.read_parquet(out / "car.parquet")
    assert car[car.event_id == "ESTGAP"]["n_estimation"].iloc[0] == 221 - 2
    assert car[car.event_id == "OK1"]["n_estimation"].iloc[0] == 221


def test_weekend_event_date_rolls_forward(files):
    _, out, _ = files
    car = pd.read_parquet(out / "car.parquet")
    row = car[car.event_id == "WEEKEND"].iloc[0]
    assert pd.Timestamp(row["event_date"]) == pd.Timestamp("2019-03-11") and row["timing"] == "rolled"


def test_duplicate_dates_in_prices_stop_with_a_clear_message(files, tmp_path):
    tmp, _, _ = files
    prices = pd.read_csv(tmp / "prices.csv")
    dup = prices.iloc[[100]].assign(adj_close=prices.iloc[100]["adj_close"] * 1.01)
    pd.concat([prices, dup]).to_csv(tmp_path / "dup.csv", index=False)
    res = run("car", "--events", tmp / "events.csv", "--prices", tmp_path / "dup.csv", "--market", "MKT",
              "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert "dup.csv: MKT has duplicate dates with different prices" in res.output
    assert not (tmp_path / "o").exists()


def test_empty_events_file(files, tmp_path):
    tmp, _, _ = files
    (tmp_path / "header.csv").write_text("event_id,ticker,event_date\n")
    (tmp_path / "zero.csv").write_text("")
    for name, msg in (("header.csv", "no events (the file has no rows)"), ("zero.csv", "events file is empty")):
        res = run("car", "--events", tmp_path / name, "--prices", tmp / "prices.csv", "--market", "MKT",
                  "--out", tmp_path / "o")
        assert res.exit_code == 2 and f"{name}: {msg}" in res.output


def test_unknown_market_ticker_and_missing_factors(files, tmp_path):
    tmp, _, _ = files
    res = run("car", "--events", tmp / "events.csv", "--prices", tmp / "prices.csv", "--market", "SPX",
              "--out", tmp_path / "o")
    assert res.exit_code == 2 and "market ticker 'SPX'" in res.output and "unknown ticker 'SPX'" in res.output
    res = run("car", "--events", tmp / "events.csv", "--prices", tmp / "prices.csv", "--model", "ff3",
              "--out", tmp_path / "o")
    assert res.exit_code == 2 and "needs --factors FILE" in res.output


def test_regress_joins_features_and_writes_tables(files, tmp_path):
    tmp, out, _ = files
    car = pd.read_parquet(out / "car.parquet")
    ids = sorted(car["event_id"].unique())
    rng = np.random.default_rng(1)
    feats = pd.DataFrame({"event_id": ids, "tone": rng.normal(size=len(ids)), "lm": rng.normal(size=len(ids))})
    feats.to_csv(tmp_path / "features.csv", index=False)
    res = run("regress", "--data", out / "car.parquet", "--features", tmp_path / "features.csv", "--window", "0:1",
              "--formula", "car ~ tone + lm", "--cov", "HC1", "--out", tmp_path / "reg")
    assert res.exit_code == 0, res.output
    coef = pd.read_csv(tmp_path / "reg" / "coefficients.csv")
    assert list(coef.columns) == ["term", "estimate", "std_error", "statistic", "p_value"]
    merged = car[car.window == "0:1"].merge(feats, on="event_id")
    x = np.column_stack([np.ones(len(merged)), merged["tone"], merged["lm"]])
    beta = np.linalg.lstsq(x, merged["car"].to_numpy(), rcond=None)[0]
    assert coef["estimate"].to_numpy() == pytest.approx(beta, abs=1e-12)
    assert "Covariance type: HC1" in (tmp_path / "reg" / "summary.txt").read_text()
    assert "\\begin{tabular}" in (tmp_path / "reg" / "table.tex").read_text()


def test_regress_bad_formulas(files, tmp_path):
    tmp, out, _ = files
    car = pd.read_parquet(out / "car.parquet")
    ids = sorted(car["event_id"].unique())
    pd.DataFrame({"event_id": ids, "tone": np.arange(len(ids), dtype=float)}).assign(
        tone_x2=lambda d: 2 * d["tone"]).to_csv(tmp_path / "f.csv", index=False)
    base = ["regress", "--data", out / "car.parquet", "--features", tmp_path / "f.csv", "--window", "0:1",
            "--out", tmp_path / "reg"]
    res = run(*base, "--formula", "car ~ tone + gloom")
    assert res.exit_code == 2 and "column(s) ['gloom'] not in car.parquet + f.csv" in res.output
    res = run(*base, "--formula", "car ~ tone + tone_x2")
    assert res.exit_code == 2 and "perfectly collinear regressors, 'tone_x2'" in res.output
    res = run("regress", "--data", out / "car.parquet", "--formula", "car ~ 1", "--out", tmp_path / "reg")
    assert res.exit_code == 2 and "choose one with --window" in res.output
    assert not (tmp_path / "reg").exists()


def test_regress_joins_call_features_from_the_catalog(files, tmp_path):
    from data_catalog.store import Catalog

    _, out, _ = files
    car = pd.read_parquet(out / "car.parquet")
    ids = sorted(car["event_id"].unique())
    cat = Catalog(tmp_path / "catalog")
    rng = np.random.default_rng(5)
    tone = dict(zip(ids, rng.normal(size=len(ids))))
    for cid in ids:  # the events are calls: event_id is the call_id
        from data_catalog import TABLES

        row = {c: None for c in TABLES["call_features"].columns}
        cat.write("call_features", cid, [row | {"call_id": cid, "model_id": "ser-a", "executive_qa_tone": tone[cid]}])
    res = run("regress", "--data", out / "car.parquet", "--window", "-1:1", "--catalog", tmp_path / "catalog",
              "--formula", "car ~ executive_qa_tone", "--cov", "nonrobust", "--out", tmp_path / "reg")
    assert res.exit_code == 0, res.output
    sub = car[car.window == "-1:1"]
    x = np.column_stack([np.ones(len(sub)), sub["event_id"].map(tone)])
    beta = np.linalg.lstsq(x, sub["car"].to_numpy(), rcond=None)[0]
    assert pd.read_csv(tmp_path / "reg" / "coefficients.csv")["estimate"].to_numpy() == pytest.approx(beta, abs=1e-12)


def test_monthly_ff3_study_with_arch_french_factors(tmp_path):
    """arch's monthly French file as the factor file, monthly prices, calendar 'data'."""
    from pathlib import Path

    import arch.data.frenchdata as fd
    import statsmodels.api as sm

    from finance.factors import load_arch_factors

    f = load_arch_factors().data.loc["1980":"2018"]
    month_ends = f.index + pd.offsets.MonthEnd(0)
    rng = np.random.default_rng(6)
    frames = []
    for k in range(4):
        r = f["rf"] + 0.002 + 1.1 * f["mkt_rf"] + 0.4 * f["smb"] - 0.3 * f["hml"] + rng.normal(0, 0.03, len(f))
        frames.append(pd.DataFrame({"ticker": f"M{k}", "date": month_ends, "adj_close": 20 * np.cumprod(1 + r.to_numpy())}))
    pd.concat(frames).to_csv(tmp_path / "monthly.csv", index=False)
    day0 = rng.integers(130, len(f) - 3, 12)
    events = pd.DataFrame({"event_id": [f"m{i}" for i in range(12)], "ticker": [f"M{i % 4}" for i in range(12)],
                           "event_date": month_ends[day0].strftime("%Y-%m-%d")})
    events.to_csv(tmp_path / "events.csv", index=False)
    french = Path(fd.__file__).parent / "frenchdata.csv.gz"
    res = run("car", "--events", tmp_path / "events.csv", "--prices", tmp_path / "monthly.csv", "--model", "ff3",
              "--factors", french, "--calendar", "data", "--estimation", "-120:-3", "--window", "0:0",
              "--window", "0:2", "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    car = pd.read_parquet(tmp_path / "out" / "car.parquet").set_index(["event_id", "window"])
    assert len(car) == 24 and (car["n_estimation"] == 118).all()
    prices = pd.concat(frames).pivot(index="date", columns="ticker", values="adj_close").pct_change()
    for i in (0, 5, 11):
        r = prices[f"M{i % 4}"].to_numpy()
        y = r - f["rf"].to_numpy()
        x = sm.add_constant(f[["mkt_rf", "smb", "hml"]].to_numpy())
        est = np.arange(day0[i] - 120, day0[i] - 2)
        b = sm.OLS(y[est], x[est]).fit().params
        assert car.loc[(f"m{i}", "0:0"), "car"] == pytest.approx(y[day0[i]] - x[day0[i]] @ b, abs=1e-12)


def _events(path, rows):
    pd.DataFrame(rows, columns=["event_id", "ticker", "event_date"]).to_csv(path, index=False)
    return path


def test_summary_counts_every_drop_by_reason(files, tmp_path):
    tmp, _, dates = files
    rows = [(f"OK{i}", f"S{i}", dates[300 + 30 * i].date().isoformat()) for i in range(4)]
    rows += [("UNKNOWN", "ZZZZ", dates[500].date().isoformat()), ("LATE", "S1", "2099-01-05")]
    events = _events(tmp_path / "events.csv", rows)
    res = run("car", "--events", events, "--prices", tmp / "prices.csv", "--market", "MKT", "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output
    assert "4 events kept, 2 dropped" in res.output
    assert "  dropped     1: no prices for the ticker (prices)" in res.output
    assert "  dropped     1: event date outside the XNYS calendar (align)" in res.output
    dropped = pd.read_csv(tmp_path / "o" / "dropped.csv")
    assert sorted(dropped["event_id"]) == ["LATE", "UNKNOWN"]


def test_no_event_left_is_a_one_line_error(files, tmp_path):
    tmp, _, dates = files
    rows = [(f"E{i}", "NOPE", dates[300 + i % 500].date().isoformat()) for i in range(10_000)]
    events = _events(tmp_path / "events.csv", rows)
    out = tmp_path / "o"
    res = run("car", "--events", events, "--prices", tmp / "prices.csv", "--market", "MKT", "--out", out)
    assert res.exit_code == 1, res.output
    assert res.output.strip().splitlines() == [
        f"error: {events}: no event left (10000 dropped: 10000 no prices for the ticker (prices)); "
        f"see {out / 'dropped.csv'}"]
    assert len(pd.read_csv(out / "dropped.csv")) == 10_000
    assert not (out / "tests.json").exists() and not (out / "car.parquet").exists()


@pytest.mark.parametrize("value", ["01/05/2019", "5 Jan 2019", "2019-13-01"])
def test_day_first_or_ambiguous_event_dates_are_refused(files, tmp_path, value):
    tmp, _, dates = files
    events = _events(tmp_path / "events.csv", [("A", "S1", dates[300].date().isoformat()), ("B", "S2", value)])
    res = run("car", "--events", events, "--prices", tmp / "prices.csv", "--market", "MKT", "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        f"error: {events}: line 3: event_date {value!r} is not an ISO 8601 date (use YYYY-MM-DD, e.g. 2019-05-01; "
        f"orders such as 01/05/2019 are ambiguous)"]


def test_iso_event_times_are_accepted(files, tmp_path):
    tmp, _, dates = files
    rows = [(f"T{i}", f"S{i}", dates[300 + 30 * i].date().isoformat() + t)
            for i, t in enumerate(["T14:30:00Z", "T14:30:00+00:00", " 15:00:00", ""])]
    pd.DataFrame(rows, columns=["event_id", "ticker", "event_time"]).to_csv(tmp_path / "ev.csv", index=False)
    res = run("car", "--events", tmp_path / "ev.csv", "--prices", tmp / "prices.csv", "--market", "MKT",
              "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output
    assert "4 events kept, 0 dropped" in res.output


def test_day_first_price_dates_are_refused(files, tmp_path):
    tmp, _, _ = files
    prices = pd.read_csv(tmp / "prices.csv")
    prices["date"] = prices["date"].astype(object)
    prices.loc[7, "date"] = "05/01/2016"
    prices.to_csv(tmp_path / "p.csv", index=False)
    res = run("car", "--events", tmp / "events.csv", "--prices", tmp_path / "p.csv", "--market", "MKT",
              "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        f"error: {tmp_path / 'p.csv'}: line 9: date '05/01/2016' is not an ISO 8601 date (use YYYY-MM-DD, "
        f"e.g. 2019-05-01; orders such as 01/05/2019 are ambiguous)"]
