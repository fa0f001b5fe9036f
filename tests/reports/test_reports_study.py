"""The study report of a synthetic earnings-call study run by the finance engine: DOM numbers against
the catalog and against independent computations (CAAR, t test, OLS with HC1), PDF, screenshot, bad specs."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from data_catalog import Catalog
from reports_browser import (check_self_contained, dom, needs_chromium, needs_poppler, number, page_footers,
                             pdf_pages, pdf_text, png_size, screenshot, table_rows)
from reports_synth import synthetic_study

N_EVENTS = 300


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from finance.studies import run_study
    from reports import render_study_report

    base = tmp_path_factory.mktemp("study")
    cat = Catalog(base / "catalog")
    spec = synthetic_study(cat, base / "spec", n_events=N_EVENTS)
    run_study(spec, cat)
    html = render_study_report(cat, "synthetic_earnings", base / "out" / "study.html")
    pdf = render_study_report(cat, spec, base / "out" / "study.pdf")
    res = cat.read("study_results", "synthetic_earnings").to_pandas()
    return dict(cat=cat, spec=spec, html=html, pdf=pdf, res=res, base=base,
                car=cat.read("car", "synthetic_earnings").to_pandas(),
                events=cat.read("events", "synthetic_earnings").to_pandas(),
                dropped=cat.read("study_dropped", "synthetic_earnings").to_pandas())


@pytest.fixture(scope="module")
def page(study):
    """The DOM of the HTML report as headless Chromium loaded it (only used by @needs_chromium tests)."""
    return dom(study["html"])


def rel(a: float, b: float, digits: int = 4) -> bool:
    """``a`` (shown with ``digits`` significant digits) equals ``b``."""
    return abs(a - b) <= 0.51 * 10 ** (math.floor(math.log10(abs(b))) - digits + 1) if b else a == 0


@needs_chromium
def test_figures_and_self_contained(page):
    figs = page.find_all("figure")
    assert [f["id"] for f in figs] == ["fig-sample", "fig-caar"]
    for f in figs:
        img = f.find("img")
        assert png_size(img["src"]) == (int(img["width"]), int(img["height"]))
    assert "CAAR ± t(0.975, N−1)" in page.find(id="fig-caar").find("figcaption").get_text()
    check_self_contained(page)


@needs_chromium
def test_sample_and_dropped_events(page, study):
    ev, dropped = study["events"], study["dropped"]
    sample = dict(table_rows(page, "sample"))
    assert sample["events in the sample"] == str(len(ev)) == str(N_EVENTS)
    assert sample["kept"] == str(int(ev["kept"].sum())) == str(N_EVENTS - 5)
    assert sample["dropped"] == "5" and sample["event windows"] == "[0, 0], [0, 1], [2, 10]"
    kept = pd.to_datetime(ev.loc[ev["kept"], "event_date"])
    assert sample["day 0 of kept events"] == f"{kept.min():%Y-%m-%d} to {kept.max():%Y-%m-%d}"
    reasons = {(r[1], r[2]): int(r[0]) for r in table_rows(page, "dropped-reasons")}
    assert reasons == dropped.groupby(["stage", "reason"]).size().to_dict()
    assert sum(n for (stage, reason), n in reasons.items() if "unknown ticker 'ZZZZ'" in reason) == 3
    assert sum(n for (stage, reason), n in reasons.items() if reason.startswith("too few estimation days")) == 2
    assert sorted(r[0] for r in table_rows(page, "dropped")) == sorted(dropped["event_id"])


@needs_chromium
def test_test_statistics_against_independent_computation(page, study):
    car, res = study["car"], study["res"]
    trs = page.find("table", id="tests").select("tbody tr")
    tests = res[(res["kind"] == "test") & (res["name"] != "avg_cross_correlation")]
    assert len(trs) == len(tests) == 3 * 7
    for tr in trs:
        cells = [td.get_text(strip=True) for td in tr.find_all("td")]
        w = tr["data-window"].strip("[]").replace(", ", ":")
        x = car.loc[car["window"] == w, "car"].dropna()
        assert rel(number(cells[2]), x.mean())                                  # CAAR = mean CAR, recomputed
        assert int(cells[6]) == len(x) == N_EVENTS - 5
        row = tests[(tests["window"] == w) & (tests["name"] == tr["data-test"])].iloc[0]
        assert rel(number(cells[3]), row["statistic"])
        p = row["p_value"]
        assert cells[4] == ("<0.001" if p < 0.001 else f"{p:.3f}")
        assert cells[5] == ("***" if p < 0.01 else "**" if p < 0.05 else "*" if p < 0.1 else "")
        if tr["data-test"] == "t":                                              # cross-sectional t, recomputed
            assert rel(number(cells[3]), x.mean() / (x.std(ddof=1) / np.sqrt(len(x))))
    outcomes = {(tr["data-window"], tr["data-outcome"]): tr for tr in page.find("table", id="outcomes").select("tbody tr")}
    vol = car.loc[car["window"] == "0:1", "abnormal_volatility"].dropna()
    cells = [td.get_text(strip=True) for td in outcomes[("[0, 1]", "abnormal_volatility")].find_all("td")]
    assert rel(number(cells[2]), vol.mean()) and rel(number(cells[3]), vol.std(ddof=1) / np.sqrt(len(vol)), 3)


@needs_chromium
def test_regression_table_against_statsmodels(page, study):
    import statsmodels.formula.api as smf

    cat, car = study["cat"], study["car"]
    feats = pd.concat([cat.read("call_features", c).to_pandas() for c in study["events"]["call_id"]])
    data = car[car["window"] == "0:1"].merge(study["events"][["event_id", "call_id"]], on="event_id").merge(feats, on="call_id")
    ols = smf.ols("car ~ executive_qa_tone + tone_change_prepared_to_qa", data).fit(cov_type="HC1")
    table = page.find("table", id="regressions")
    heads = [th.get_text(strip=True) for th in table.find("thead").find_all("tr")[1].find_all("th")[1:]]
    assert heads == ["car_0_1", "volatility_0_1", "negative_car_logit"]
    coef = {tr["data-term"]: tr for tr in table.select("tr.coef")}
    se = {tr["data-term"]: tr for tr in table.select("tr.se")}
    assert list(coef) == ["executive_qa_tone", "tone_change_prepared_to_qa", "Intercept"]   # intercept last
    for term in coef:
        shown = coef[term].find_all("td")[0].get_text(strip=True)
        assert rel(number(shown), ols.params[term])
        p = ols.pvalues[term]
        stars = "***" if p < 0.01 else "**" if p < 0.05 else "*" if p < 0.1 else ""
        assert len(shown) - len(shown.rstrip("*")) == len(stars)
        se_text = se[term].find_all("td")[0].get_text(strip=True)
        assert se_text[0] + se_text[-1] == "()" and rel(number(se_text), ols.bse[term], 3)
    assert coef["executive_qa_tone"].find_all("td")[0].get_text(strip=True).endswith("***")    # the planted effect
    assert coef["tone_change_prepared_to_qa"].find_all("td")[1].get_text(strip=True) == ""      # not in model (2)
    fit = {tr["data-fit"]: [td.get_text(strip=True) for td in tr.find_all("td")] for tr in table.select("tr.fit")}
    assert fit["nobs"] == [str(int(ols.nobs))] * 3 and int(ols.nobs) == N_EVENTS - 5
    assert number(fit["r2"][0]) == pytest.approx(ols.rsquared, abs=5e-4)
    assert fit["cov_type"] == ["HC1", "cluster:ticker", "HC1"] and fit["family"] == ["OLS", "OLS", "logit"]
    assert fit["outcome"] == ["car [0, 1]", "abnormal_volatility [0, 1]", "car_negative [0, 1]"]
    assert fit["adj_r2"][2] == "–" and fit["status"] == ["ok"] * 3


@needs_chromium
def test_reproducibility_block(page, study):
    repro = dict(table_rows(page, "repro"))
    assert repro["study id"] == "synthetic_earnings" and repro["spec"] == str(study["spec"])
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?|speechfin .*", repro["speechfin git commit (report)"])
    assert repro["SER model ids (call_features)"].startswith("embedded-")
    assert repro["speech pipeline versions of the sample's calls"] == f"0.1.0 (embedded): {N_EVENTS} calls"
    assert repro["price sources used"] == "file:prices.parquet"
    assert page.find("pre", id="spec-text").get_text() == study["spec"].read_text()
    prices = table_rows(page, "prices")
    assert len(prices) == 1 and prices[0][0] == "file:prices.parquet" and prices[0][1] == "51"


@needs_chromium
def test_screenshot(study):
    im = screenshot(study["html"], "report_study", height=7000)
    assert im.width == 1280 and im.height > 2500
    assert len(im.resize((320, im.height // 4)).getcolors(1 << 16) or []) > 100


@needs_poppler
def test_pdf_pages_and_numbers(study):
    text = pdf_text(study["pdf"])
    n = pdf_pages(study["pdf"])
    assert 2 <= n <= 12 and page_footers(text) == [(k, n) for k in range(1, n + 1)]
    caar = study["car"].loc[study["car"]["window"] == "0:0", "car"].mean()
    r2 = study["res"].query("kind == 'regression_fit' and group == 'car_0_1' and name == 'r2'")["estimate"].iloc[0]
    for needle in ("Synthetic earnings calls", "synthetic_earnings", "Kolari–Pynnönen", f"{r2:.3f}",
                   f"{caar:.{3 - math.floor(math.log10(abs(caar)))}f}", str(N_EVENTS - 5), "unknown ticker 'ZZZZ'"):
        assert needle in text, needle


# -- bad specs and ids ---------------------------------------------------------------------------------


@pytest.fixture
def out(tmp_path):
    p = tmp_path / "study.html"
    p.write_text("previous report")
    return p


def _edit(study, tmp_path, old: str, new: str):
    text = study["spec"].read_text()
    assert old in text
    p = tmp_path / "edited.toml"
    p.write_text(text.replace(old, new))
    return p


@pytest.mark.parametrize("old, new, message", [
    ('regressors = ["executive_qa_tone"]', 'regressors = ["ceo_pitch_jitter"]',
     r"edited.toml: unknown column\(s\) ceo_pitch_jitter: not in the catalog's call_features"),
    ("windows = [[0, 0], [0, 1], [2, 10]]", "windows = [[0, 0], [0, 1], [2, 10], [-5, 5]]",
     r"edited.toml: window \[-5, 5\] has no results in study 'synthetic_earnings'.*\(windows there: 0:0, 0:1, 2:10\); "
     r"run `speechfin study run"),
    ('window = [0, 1]\nregressors = ["executive_qa_tone"]', 'window = [0, 3]\nregressors = ["executive_qa_tone"]',
     r"edited.toml: regression 2 window \[0, 3\] is not one of \[model\] windows"),
    ('cov = "cluster:ticker"', 'cov = "HC3"', r"edited.toml: differs from the spec study 'synthetic_earnings' was run with"),
    ('name = "synthetic_earnings"', 'name = "never_run"', r"unknown study 'never_run'.*\(studies: synthetic_earnings\); run"),
])
def test_bad_spec(study, tmp_path, out, old, new, message):
    from reports import ReportError, render_study_report

    spec = _edit(study, tmp_path, old, new)
    n_reports = study["cat"].read("reports").num_rows
    with pytest.raises(ReportError, match=message):
        render_study_report(study["cat"], spec, out)
    assert out.read_text() == "previous report" and study["cat"].read("reports").num_rows == n_reports
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edited.toml", "study.html"]


def test_unknown_study_and_missing_spec(study, out):
    from reports import ReportError, render_study_report

    with pytest.raises(ReportError, match=r"unknown study 'press_conference', not in table 'study_results' "
                                          r"\(studies: synthetic_earnings\)$"):
        render_study_report(study["cat"], "press_conference", out)
    with pytest.raises(ReportError, match=r"nope.toml: spec file not found"):
        render_study_report(study["cat"], "nope.toml", out)
    assert out.read_text() == "previous report"


def test_cli(study, tmp_path, out):
    from pipelines.cli.main import app

    spec = _edit(study, tmp_path, 'regressors = ["executive_qa_tone"]', 'regressors = ["ceo_pitch_jitter"]')
    r = CliRunner().invoke(app, ["report", "study", str(spec), "--catalog", str(study["cat"].root), "--out", str(out)])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1  # bad input (pipelines/exitcodes.py)
    assert r.stderr.startswith(f"error: {spec}: unknown column(s) ceo_pitch_jitter")
    assert out.read_text() == "previous report"
    r = CliRunner().invoke(app, ["report", "study", "synthetic_earnings", "-c", str(study["cat"].root), "-o", str(out)])
    assert r.exit_code == 0 and "synthetic_earnings" in out.read_text()
