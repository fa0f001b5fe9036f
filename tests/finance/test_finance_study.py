"""run_study: from the catalog's calls and call_features to the study tables, with the
shipped example specs; results checked against independent pandas/numpy computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from data_catalog.store import Catalog
from fin_synth import synthetic_market
from finance.calendars import get_calendar
from finance.errors import NoEventsError, SpecError
from finance.prices import load_arch_index
from finance.studies import SPEC_DIR, run_study
from pipelines.cli import study as cli_study

FOMC = ["2011-04-27", "2011-06-22", "2011-11-02", "2012-01-25", "2012-04-25", "2012-06-20", "2012-09-13",
        "2012-12-12", "2013-03-20", "2013-06-19", "2013-09-18", "2013-12-18", "2014-03-19", "2014-06-18",
        "2014-09-17", "2014-12-17", "2015-03-18", "2015-06-17", "2015-09-17", "2015-12-16", "2016-03-16",
        "2016-06-15", "2016-09-21", "2016-12-14", "2017-03-15", "2017-06-14", "2017-09-20", "2017-12-13",
        "2018-03-21", "2018-06-13", "2018-09-26", "2018-12-19"]


def feature_row(call_id: str, model_id: str, **values) -> dict:
    """A ``call_features`` row: every documented column (NaN where not given) plus ``values``."""
    from data_catalog import TABLES

    row = {c: None for c in TABLES["call_features"].columns}
    return row | {"call_id": call_id, "model_id": model_id} | values


def add_calls(cat: Catalog, rows: list[tuple[str, str, str, pd.Timestamp]], features: dict[str, dict]) -> None:
    """rows: (call_id, event_type, entity, event_time UTC)."""
    for call_id, event_type, entity, when in rows:
        cat.write("calls", call_id, [dict(
            call_id=call_id, event_type=event_type, entity=entity, event_time=when, language="en", duration_s=3000.0,
            source_uri=f"file:///{call_id}.wav", title=call_id, processed_at=pd.Timestamp("2024-01-01", tz="UTC"),
            pipeline_version="test", profile="embedded")])
        cat.write("call_features", call_id, [feature_row(call_id, "ser-test", **features[call_id])])


def fomc_catalog(path, dates, seed=0) -> Catalog:
    cat = Catalog(path)
    rng = np.random.default_rng(seed)
    rows, feats = [], {}
    for i, d in enumerate(dates):
        cid = f"fomc{i:03d}"
        rows.append((cid, "press_conference", "FOMC", pd.Timestamp(f"{d} 14:30", tz="America/New_York").tz_convert("UTC")))
        feats[cid] = {"chair_qa_tone": rng.normal(), "chair_prepared_tone": rng.normal(), "lm_tone": rng.normal()}
    add_calls(cat, rows, feats)
    return cat


def results(cat: Catalog, study: str) -> pd.DataFrame:
    return cat.read("study_results", study).to_pandas()


@pytest.fixture(scope="module")
def fomc(tmp_path_factory):
    cat = fomc_catalog(tmp_path_factory.mktemp("fomc") / "catalog", FOMC)
    return cat, run_study(SPEC_DIR / "press_conferences.toml", cat)


def test_press_conferences_against_independent_computation(fomc):
    cat, res = fomc
    assert res.study_id == "press_conferences" and len(res.event_study.events) == 32 and len(res.dropped) == 0
    sp = load_arch_index("^GSPC").set_index("date")["adj_close"].pct_change()
    sessions = list(sp.index)
    ar0, vol01 = [], []
    for d in FOMC:
        i = sessions.index(pd.Timestamp(d))
        est = sp.iloc[i - 250:i - 29]
        ar0.append(sp.iloc[i] - est.mean())
        vol01.append(np.log(np.sqrt(np.mean(sp.iloc[i:i + 2] ** 2)) / np.sqrt(np.mean(est ** 2))))
    r = results(cat, "press_conferences")
    t = r[(r.kind == "test") & (r.window == "0:0")].set_index("name")
    assert t.loc["t", "estimate"] == pytest.approx(np.mean(ar0), abs=1e-14)
    from scipy import stats
    assert t.loc["t", "statistic"] == pytest.approx(stats.ttest_1samp(ar0, 0).statistic, rel=1e-9)
    assert set(t.index) >= {"t", "patell", "bmp", "kp_bmp", "corrado", "gen_sign", "wilcoxon"}
    assert (t.loc[["t", "bmp"], "n"] == 32).all()
    vol = r[(r.kind == "outcome") & (r.name == "abnormal_volatility") & (r.window == "0:1")].iloc[0]
    assert vol.estimate == pytest.approx(np.mean(vol01), abs=1e-12)
    # the regression of day-0 returns on chair tone
    feats = cat.read("call_features").to_pandas().sort_values("call_id")
    x = np.column_stack([np.ones(32), feats["chair_qa_tone"], feats["chair_prepared_tone"]])
    beta = np.linalg.lstsq(x, np.array(ar0), rcond=None)[0]
    reg = r[(r.kind == "regression") & (r.group == "return_day0")].set_index("name")
    assert reg.loc[["Intercept", "chair_qa_tone", "chair_prepared_tone"], "estimate"].to_numpy() == pytest.approx(beta, abs=1e-12)
    fit = r[(r.kind == "regression_fit") & (r.group == "return_day0")].set_index("name")
    assert fit.loc["cov_type", "value"] == "HC1" and fit.loc["status", "value"] == "ok" and fit.loc["nobs", "estimate"] == 32


def test_press_conferences_tables_for_the_report(fomc):
    cat, _ = fomc
    ev = cat.read("events", "press_conferences").to_pandas()
    assert len(ev) == 32 and set(ev["timing"]) == {"intraday"} and ev["kept"].all()
    assert sorted(pd.to_datetime(ev["event_date"]).dt.strftime("%Y-%m-%d")) == FOMC
    ar = cat.read("abnormal_returns", "press_conferences").to_pandas()
    assert len(ar) == 32 * 2 and set(ar["rel_day"]) == {0, 1}
    r = results(cat, "press_conferences")
    caar = r[r.kind == "caar"].sort_values("rel_day")
    day1 = ar[ar.rel_day == 1]["car"].to_numpy()
    assert caar["rel_day"].tolist() == [0, 1]
    assert caar.iloc[1]["estimate"] == pytest.approx(day1.mean(), abs=1e-14)
    assert caar.iloc[1]["std_error"] == pytest.approx(day1.std(ddof=1) / np.sqrt(32), rel=1e-10)
    meta = r[r.kind == "meta"].set_index("name")["value"]
    assert meta["status"] == "ok" and meta["price_sources_used"] == "arch" and meta["model_ids"] == "ser-test"
    assert meta["date_min"] == "2011-04-27" and meta["date_max"] == "2018-12-19" and meta["model"] == "constant"
    assert 'name = "press_conferences"' in meta["spec_text"] and meta["calendar"] == "XNYS"
    assert cat.has("prices", "^GSPC") and cat.read("study_dropped", "press_conferences").num_rows == 0


def test_no_event_left_is_an_error_after_writing_the_drops(tmp_path):
    cat = fomc_catalog(tmp_path / "catalog", ["2019-01-30", "2022-06-15"])
    with pytest.raises(NoEventsError) as err:
        run_study(SPEC_DIR / "press_conferences.toml", cat)
    assert str(err.value) == (f"study press_conferences ({SPEC_DIR / 'press_conferences.toml'}): no event left "
                              f"(2 dropped: 2 event outside the price range (event_study)); "
                              f"see table study_dropped of {cat.root}")
    dropped = cat.read("study_dropped", "press_conferences").to_pandas()
    assert len(dropped) == 2
    assert all("ends after the last price of ^GSPC (2018-12-31)" in r for r in dropped["reason"])
    r = results(cat, "press_conferences")
    meta = r[r.kind == "meta"].set_index("name")["value"]
    assert meta["status"].startswith("no events left") and meta["n_dropped"] == "2"
    status = r[(r.kind == "regression_fit") & (r.name == "status")]["value"].tolist()
    assert len(status) == 2 and all("underidentified, 0 complete observation" in s for s in status)
    ev = cat.read("events", "press_conferences").to_pandas()
    assert ev["timing"].tolist() == ["intraday", "intraday"] and not ev["kept"].any()


def test_a_handful_of_events_reports_an_underidentified_regression(tmp_path):
    cat = fomc_catalog(tmp_path / "catalog", ["2018-06-13", "2018-09-26", "2018-12-19"])
    res = run_study(SPEC_DIR / "press_conferences.toml", cat)
    r = results(cat, "press_conferences")
    t = r[(r.kind == "test") & (r.window == "0:0") & (r.name == "t")].iloc[0]
    assert t.n == 3 and np.isfinite(t.statistic)
    status = r[(r.kind == "regression_fit") & (r.name == "status")].set_index("group")["value"]
    assert "underidentified, 3 complete observation(s) for 3 coefficient(s)" in status["return_day0"]
    assert isinstance(res.regressions["return_day0"], str)


def test_missing_regressor_fails_clearly(tmp_path):
    cat = fomc_catalog(tmp_path / "catalog", FOMC[:5])
    spec = (SPEC_DIR / "press_conferences.toml").read_text().replace('"chair_prepared_tone"', '"chair_gloom"')
    path = tmp_path / "spec.toml"
    path.write_text(spec)
    with pytest.raises(SpecError, match=r"spec\.toml: regressor\(s\) \['chair_gloom'\] not in catalog table 'call_features'"):
        run_study(path, cat)
    assert not cat.has("study_results", "press_conferences")


class NoNetwork:
    name = "yfinance"

    def fetch(self, ticker, start, end):
        raise AssertionError(f"price source called for {ticker}: the catalog should have answered")


def test_earnings_calls_from_catalog_prices_with_two_way_clusters(tmp_path):
    sessions = get_calendar("XNYS").between("2016-01-04", "2019-12-31")
    prices, _, dates = synthetic_market(n_tickers=8, seed=9, dates=sessions)
    cat = Catalog(tmp_path / "catalog")
    for ticker, rows in prices.replace({"ticker": {"MKT": "^GSPC"}}).groupby("ticker"):
        rows = rows.assign(date=rows["date"].dt.date, open=np.nan, high=np.nan, low=np.nan, source="test")
        cat.write("prices", ticker, rows[["ticker", "date", "open", "high", "low", "close", "adj_close", "volume", "source"]])
    rng = np.random.default_rng(2)
    calls, feats = [], {}
    for i in range(48):
        day = dates[300 + 12 * i]
        hour = "16:30" if i % 2 else "08:00"  # after the close / before the open
        cid = f"ec{i:03d}"
        calls.append((cid, "earnings_call", f"S{i % 8}", pd.Timestamp(f"{day.date()} {hour}", tz="America/New_York").tz_convert("UTC")))
        feats[cid] = {"executive_qa_tone": rng.normal(), "tone_change_prepared_to_qa": rng.normal(),
                      "executive_prepared_tone": rng.normal()}
    add_calls(cat, calls, feats)
    res = run_study(SPEC_DIR / "earnings_calls.toml", cat, price_source=NoNetwork())
    assert len(res.event_study.events) == 48
    ev = cat.read("events", "earnings_calls").to_pandas().sort_values("event_id")
    day0 = pd.to_datetime(ev["event_date"])
    called = pd.to_datetime(ev["event_time"]).dt.tz_convert("America/New_York").dt.tz_localize(None).dt.normalize()
    assert (ev["timing"] == np.where(np.arange(48) % 2, "amc", "bmo")).all()
    assert (day0[ev["timing"] == "bmo"] == called[ev["timing"] == "bmo"]).all()
    assert (day0[ev["timing"] == "amc"] > called[ev["timing"] == "amc"]).all()
    r = results(cat, "earnings_calls")
    fit = r[r.kind == "regression_fit"].pivot(index="group", columns="name", values="value")
    assert fit.loc["car_0_1", "cov_type"] == "cluster:ticker,quarter" and fit.loc["car_0_1", "status"] == "ok"
    assert fit.loc["negative_car_logit", "family"] == "logit"
    coef = r[(r.kind == "regression") & (r.group == "car_0_1")]
    assert coef["name"].tolist() == ["Intercept", "executive_qa_tone", "tone_change_prepared_to_qa"]
    assert (coef["std_error"] > 0).all() and (coef["n"] == 48).all()


def test_study_run_with_no_event_left_exits_1(tmp_path):
    fomc_catalog(tmp_path / "catalog", ["2019-01-30", "2022-06-15"])
    out = CliRunner().invoke(cli_study.app, ["run", "press_conferences.toml", "--catalog", str(tmp_path / "catalog")])
    assert out.exit_code == 1
    assert out.output.strip().splitlines()[-1] == (
        f"error: study press_conferences ({SPEC_DIR / 'press_conferences.toml'}): no event left (2 dropped: "
        f"2 event outside the price range (event_study)); see table study_dropped of {tmp_path / 'catalog'}")


def test_study_run_command(tmp_path):
    cat = fomc_catalog(tmp_path / "catalog", FOMC[-6:])
    out = CliRunner().invoke(cli_study.app, ["run", "press_conferences.toml", "--catalog", str(tmp_path / "catalog")])
    assert out.exit_code == 0, out.output
    assert "Study press_conferences" in out.output and "6 kept" in out.output
    assert cat.read("events", "press_conferences").num_rows == 6
    bad = CliRunner().invoke(cli_study.app, ["run", "nope.toml", "--catalog", str(tmp_path / "catalog")])
    assert bad.exit_code == 2 and "nope.toml: spec file not found" in bad.output


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace('event_type = "press_conference"', ""), r"\[sample\] needs event_type"),
    (lambda s: s.replace("window = [0, 0]", "window = [0, 5]"), r"regression 1 window \[0, 5\] is not one of"),
    (lambda s: s.replace('expected = "constant"', 'expected = "market"'), r"model 'market' needs \[model\] market"),
    (lambda s: s.replace('expected = "constant"', 'expected = "capm"'), r"unknown model 'capm'"),
    (lambda s: s.replace("windows = [[0, 0], [0, 1]]", "windows = [[-40, 1]]"), r"event windows -40:1 overlap the estimation window -250:-30"),
    (lambda s: s.replace('source = "arch"', 'source = "bloomberg"'), r"\[prices\] source 'bloomberg'"),
    (lambda s: s + "\n[[oops", r"not valid TOML"),
    (lambda s: s.replace('entities = ["FOMC"]', 'entities = ["FOMC"]\nstart = "01/05/2012"'),
     r"\[sample\] start '01/05/2012' is not an ISO 8601 date \(use YYYY-MM-DD"),
])
def test_bad_specs_fail_clearly(tmp_path, edit, message):
    path = tmp_path / "bad.toml"
    path.write_text(edit((SPEC_DIR / "press_conferences.toml").read_text()))
    cat = fomc_catalog(tmp_path / "catalog", FOMC[:3])
    with pytest.raises(SpecError, match=r"bad\.toml: " + message):
        run_study(path, cat)


def test_unreachable_market_stops_before_other_tickers(tmp_path):
    class Offline:
        name = "yfinance"

        def __init__(self):
            self.calls = []

        def fetch(self, ticker, start, end):
            from finance.errors import PriceSourceError

            self.calls.append(ticker)
            raise PriceSourceError(f"yfinance: {ticker!r} failed after 4 attempts (ConnectionError)")

    cat = Catalog(tmp_path / "catalog")
    when = pd.Timestamp("2018-05-01 16:30", tz="America/New_York").tz_convert("UTC")
    add_calls(cat, [("c1", "earnings_call", "AAA", when), ("c2", "earnings_call", "BBB", when)],
              {c: {"executive_qa_tone": 0.1, "tone_change_prepared_to_qa": 0.0} for c in ("c1", "c2")})
    src = Offline()
    with pytest.raises(Exception, match=r"market ticker '\^GSPC': yfinance: '\^GSPC' failed after 4 attempts"):
        run_study(SPEC_DIR / "earnings_calls.toml", cat, price_source=src)
    assert src.calls == ["^GSPC"]
