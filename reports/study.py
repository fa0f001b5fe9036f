"""The study report: sample, CAAR with confidence bands, test statistics, regression tables
in the finance layout, and a reproducibility block.

    data = load_study(catalog, "press_conferences")          # or a spec file: checked against the catalog
    ctx = study_context(data)                                # figures and rows for templates/study.html.j2

Everything is read from the tables ``run_study`` writes (``events, abnormal_returns, car,
study_dropped, study_results``, see finance/README.md) plus ``calls`` and ``prices`` for
the provenance of the sample; nothing is re-estimated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from data_catalog import Catalog
from reports.common import Figure, ReportError, git_commit, has_part, new_figure, read_part, to_figure

STUDY_PARTS = ("events", "abnormal_returns", "car", "study_dropped", "study_results")
TEST_NAMES = {"t": "t (cross-sectional)", "patell": "Patell Z", "bmp": "BMP (Boehmer et al.)",
              "kp_bmp": "Kolari–Pynnönen adjusted BMP", "corrado": "Corrado rank", "gen_sign": "generalized sign",
              "wilcoxon": "Wilcoxon signed rank"}
OUTCOME_NAMES = {"car": "CAR", "bhar": "BHAR", "abnormal_volatility": "abnormal volatility",
                 "abnormal_volume": "abnormal volume"}
MAX_DROPPED_ROWS = 200
BAND = 0.95


@dataclass
class StudyData:
    """The catalog rows of one study (``spec`` set when the report was asked for by spec file)."""

    study_id: str
    results: pd.DataFrame
    events: pd.DataFrame
    dropped: pd.DataFrame
    car: pd.DataFrame
    calls: pd.DataFrame      # the sample's calls: call_id, pipeline_version, profile, processed_at
    prices: pd.DataFrame     # per ticker of the study: source, first and last date, days
    spec_path: str = ""
    people: pd.DataFrame = field(default_factory=pd.DataFrame)   # speaker_baselines of the sample's calls
    pairs: pd.DataFrame = field(default_factory=pd.DataFrame)    # qa_pairs of the sample's calls

    @property
    def meta(self) -> dict[str, str]:
        m = self.results[self.results["kind"] == "meta"]
        return dict(zip(m["name"], m["value"].fillna("")))

    def kind(self, kind: str) -> pd.DataFrame:
        return self.results[self.results["kind"] == kind]


def _window(label: str) -> str:
    a, b = label.split(":")
    return f"[{a}, {b}]"


def _label(w) -> str:
    return f"{int(w[0])}:{int(w[1])}"


def _call_feature_columns(catalog: Catalog, call_ids) -> set[str]:
    cols: set[str] = set()
    for cid in call_ids:
        if catalog.has("call_features", cid):
            cols.update(catalog.read("call_features", cid).column_names)
    return cols


def check_spec(catalog: Catalog, spec, results: pd.DataFrame, call_ids) -> None:
    """A spec given for a report must name known columns and windows, and be the spec the study ran with."""
    from finance.errors import FinanceError

    try:
        needed = [c for c in spec.regressors if c not in {f.name for f in spec.qa_features}]
    except FinanceError as exc:
        raise ReportError(f"{spec.origin}: {exc}") from None
    known = _call_feature_columns(catalog, call_ids)
    unknown = [c for c in needed if c not in known]
    if unknown:
        raise ReportError(f"{spec.origin}: unknown column(s) {', '.join(unknown)}: not in the catalog's call_features "
                          f"(it has {', '.join(sorted(known - {'call_id', 'model_id'})[:12]) or 'no rows'}, ...)")
    have = set(results.loc[results["kind"] == "test", "window"])
    for w in [*spec.config.windows, *(r.window for r in spec.regressions)]:
        if _label(w) not in have:
            raise ReportError(f"{spec.origin}: window {list(w)} has no results in study {spec.study_id!r} of "
                              f"{catalog.root} (windows there: {', '.join(sorted(have)) or 'none'}); "
                              f"run `speechfin study run {spec.origin} --catalog {catalog.root}` first")
    ran = results.loc[(results["kind"] == "meta") & (results["name"] == "spec_text"), "value"]
    if len(ran) and ran.iloc[0].strip() != spec.text.strip():
        raise ReportError(f"{spec.origin}: differs from the spec study {spec.study_id!r} was run with; "
                          f"run `speechfin study run {spec.origin} --catalog {catalog.root}` first")


def load_study(catalog: Catalog, study_id_or_spec: str | Path) -> StudyData:
    """Read a study by id, or by spec file (``*.toml``, also the bundled names such as
    ``press_conferences.toml``), which is then checked against the catalog."""
    spec = None
    arg = str(study_id_or_spec)
    if arg.endswith(".toml") or Path(arg).is_file():
        from finance.errors import FinanceError
        from finance.studies import load_spec

        try:
            spec = load_spec(study_id_or_spec)
        except FinanceError as exc:
            raise ReportError(str(exc)) from None
        study_id = spec.study_id
    else:
        study_id = arg
    if not has_part(catalog, "study_results", study_id):
        ids = catalog.keys("study_results")
        run = f"; run `speechfin study run {spec.origin} --catalog {catalog.root}` first" if spec else ""
        raise ReportError(f"{catalog.root}: unknown study {study_id!r}, not in table 'study_results' "
                          f"(studies: {', '.join(ids) or 'none'}){run}")
    results = catalog.read("study_results", study_id).to_pandas()
    events = read_part(catalog, "events", study_id)
    if spec is not None:
        check_spec(catalog, spec, results, events["call_id"].dropna().unique())
    ids = events["call_id"].dropna().unique()
    calls = _sample_calls(catalog, ids)
    return StudyData(study_id, results, events, read_part(catalog, "study_dropped", study_id),
                     read_part(catalog, "car", study_id), calls, _price_coverage(catalog, events, results),
                     spec.origin if spec else "", _call_parts(catalog, "speaker_baselines", ids),
                     _call_parts(catalog, "qa_pairs", ids))


def _call_parts(catalog: Catalog, table: str, call_ids) -> pd.DataFrame:
    parts = [catalog.read(table, c).to_pandas() for c in call_ids if catalog.has(table, c)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _sample_calls(catalog: Catalog, call_ids) -> pd.DataFrame:
    import pyarrow as pa

    cols = ["call_id", "pipeline_version", "profile", "processed_at"]
    parts = [catalog.read("calls", c).select(cols) for c in call_ids if catalog.has("calls", c)]
    return pa.concat_tables(parts).to_pandas() if parts else pd.DataFrame(columns=cols)


def _price_coverage(catalog: Catalog, events: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    meta = results[results["kind"] == "meta"].set_index("name")["value"]
    tickers = sorted(set(events["ticker"].dropna()) | ({meta["market"]} if meta.get("market") else set()))
    rows = []
    for t in tickers:
        if not has_part(catalog, "prices", t):
            continue
        p = catalog.read("prices", t).to_pandas()
        rows.append(p[["ticker", "source", "date"]])
    if not rows:
        return pd.DataFrame(columns=["source", "tickers", "first", "last", "rows"])
    p = pd.concat(rows, ignore_index=True)
    return (p.groupby("source").agg(tickers=("ticker", "nunique"), first=("date", "min"), last=("date", "max"),
                                    rows=("date", "size")).reset_index())


# -- tables ------------------------------------------------------------------------------------------


def test_rows(data: StudyData) -> list[dict]:
    t = data.kind("test")
    rows = []
    for w in dict.fromkeys(t["window"]):
        g = t[(t["window"] == w) & (t["name"] != "avg_cross_correlation")]
        r = t[(t["window"] == w) & (t["name"] == "avg_cross_correlation")]
        for x in g.itertuples(index=False):
            rows.append({"window": _window(w), "test": TEST_NAMES.get(x.name, x.name), "key": x.name,
                         "caar": x.estimate, "statistic": x.statistic, "p_value": x.p_value, "n": x.n,
                         "r": r["estimate"].iloc[0] if len(r) else None})
    return rows


def outcome_rows(data: StudyData) -> list[dict]:
    return [{"window": _window(x.window), "outcome": OUTCOME_NAMES.get(x.name, x.name), "key": x.name,
             "mean": x.estimate, "se": x.std_error, "t": x.statistic, "p_value": x.p_value, "n": x.n}
            for x in data.kind("outcome").itertuples(index=False)]


@dataclass
class RegressionColumn:
    name: str
    outcome: str
    window: str
    family: str
    cov_type: str
    status: str
    nobs: float | None
    r2: float | None
    adj_r2: float | None
    coefs: dict[str, tuple[float, float, float]]   # term -> (estimate, std_error, p_value)


def regression_table(data: StudyData) -> tuple[list[RegressionColumn], list[str]]:
    """One column per regression (in spec order) and the union of terms, intercept last."""
    fit, reg = data.kind("regression_fit"), data.kind("regression")
    cols = []
    for name in dict.fromkeys(fit["group"]):
        f = fit[fit["group"] == name]
        val = dict(zip(f["name"], f["value"]))
        est = dict(zip(f["name"], f["estimate"]))
        r = reg[reg["group"] == name]
        formula = str(val.get("formula") or "")
        cols.append(RegressionColumn(
            name, formula.split("~")[0].strip(), _window(f["window"].iloc[0]), str(val.get("family") or "ols"),
            str(val.get("cov_type") or ""), str(val.get("status") or ""), est.get("nobs"), est.get("r2"),
            est.get("adj_r2"), {x.name: (x.estimate, x.std_error, x.p_value) for x in r.itertuples(index=False)}))
    terms = list(dict.fromkeys(t for c in cols for t in c.coefs))
    terms = [t for t in terms if t != "Intercept"] + (["Intercept"] if "Intercept" in terms else [])
    return cols, terms


def corrected_rows(data: StudyData) -> list[dict]:
    """Naive and measurement-error-corrected (multiple imputation) estimates side by side, one
    row per regression and term (study_results kinds regression, regression_mi, regression_mi_fmi)."""
    mi = data.kind("regression_mi")
    if mi.empty:
        return []
    naive, fmi, fit = data.kind("regression"), data.kind("regression_mi_fmi"), data.kind("regression_fit")
    rows = []
    for x in mi.itertuples(index=False):
        n = naive[(naive["group"] == x.group) & (naive["name"] == x.name)]
        f = fmi[(fmi["group"] == x.group) & (fmi["name"] == x.name)]
        v = fit[(fit["group"] == x.group)]
        val = dict(zip(v["name"], v["value"]))
        rows.append({"regression": x.group, "term": x.name, "imputed": x.name in str(val.get("mi_imputed", "")).split(", "),
                     "naive": n["estimate"].iloc[0] if len(n) else np.nan,
                     "naive_se": n["std_error"].iloc[0] if len(n) else np.nan,
                     "naive_p": n["p_value"].iloc[0] if len(n) else np.nan,
                     "mi": x.estimate, "mi_se": x.std_error, "mi_p": x.p_value,
                     "fmi": f["estimate"].iloc[0] if len(f) else np.nan, "m": val.get("mi_m", "")})
    return rows


MAX_PEOPLE_ROWS = 60


def people_rows(data: StudyData) -> list[dict]:
    """The sample's people against their own earlier calls (table speaker_baselines), in time order."""
    p = data.people
    if p.empty:
        return []
    p = p[p["role"] != "operator"].sort_values(["event_time", "role", "person_id"])
    return [{"date": pd.Timestamp(r.event_time).strftime("%Y-%m-%d"), "person": r.name or r.person_id, "role": r.role,
             "tone": r.voice_tone, "n_prior": r.n_prior_calls, "mean": r.voice_base_mean, "sd": r.voice_base_sd,
             "z": r.abnormal_voice_tone, "status": r.baseline_status}
            for r in p.head(MAX_PEOPLE_ROWS).itertuples(index=False)]


def pair_rows(data: StudyData) -> list[dict]:
    """Per call of the sample: its question-answer pairs (table qa_pairs) summarised."""
    q = data.pairs
    if q.empty:
        return []
    dates = data.events.set_index("call_id")["event_date"].to_dict() if len(data.events) else {}
    rows = []
    for cid, g in q.groupby("call_id", sort=False):
        rows.append({"call_id": cid, "date": str(pd.Timestamp(dates[cid]).date()) if cid in dates else "",
                     "questions": len(g), "answered": int(g["answered"].sum()), "non_answers": int(g["non_answer"].sum()),
                     "latency": g["latency_s"].median(), "q_tone": g["q_fused_tone"].mean(),
                     "a_tone": g["a_fused_tone"].mean(), "change": g["answer_tone_change"].mean()})
    return sorted(rows, key=lambda r: r["date"])


def dropped_groups(data: StudyData) -> list[dict]:
    d = data.dropped
    if d.empty:
        return []
    g = d.groupby(["stage", "reason"], sort=False).size().reset_index(name="n").sort_values("n", ascending=False)
    return g.to_dict("records")


# -- figures -----------------------------------------------------------------------------------------


def fig_caar(data: StudyData) -> Figure | None:
    """CAAR over the event period with a 95% band (t quantile with N-1 degrees of freedom)."""
    from scipy import stats

    c = data.kind("caar").sort_values("rel_day")
    if c.empty:
        return None
    a = data.kind("aar").sort_values("rel_day")
    x = c["rel_day"].to_numpy(dtype=float)
    n = c["n"].to_numpy(dtype=float)
    q = stats.t.ppf(0.5 + BAND / 2, np.maximum(n - 1, 1))
    est, se = c["estimate"].to_numpy() * 100, c["std_error"].to_numpy() * 100
    fig = new_figure(9, 3.6)
    ax = fig.add_subplot()
    if len(a):
        ax.bar(a["rel_day"], a["estimate"] * 100, width=0.6, color="#c9d6ea", label="AAR", zorder=1)
    ax.fill_between(x, est - q * se, est + q * se, color="#1f4e8c", alpha=0.18, lw=0, label=f"{BAND:.0%} band", zorder=2)
    ax.plot(x, est, color="#1f4e8c", marker="o", ms=3.5, lw=1.8, label="CAAR", zorder=3)
    ax.axhline(0, color="#555555", lw=0.6)
    ax.axvline(0, color="#8b0000", lw=0.8, ls="--")
    ax.set(xlabel="trading days relative to the event (day 0)", ylabel="percent")
    ax.legend(fontsize=8, frameon=False, loc="best")
    period = c["window"].iloc[0]
    return to_figure(fig, "fig-caar", "Cumulative average abnormal return",
                     f"CAAR from the first day of the event period [{period.replace(':', ', ')}] with a {BAND:.0%} "
                     f"confidence band: CAAR ± t(0.975, N−1) × cross-sectional standard error (study_results kind "
                     f"caar; N = {int(n.max())} events); bars are the daily average abnormal returns.")


def fig_sample(data: StudyData) -> Figure | None:
    """Events per year, kept and dropped; and the CAR distribution per window."""
    from matplotlib.ticker import MaxNLocator

    ev = data.events
    if ev.empty:
        return None
    fig = new_figure(9, 3.0)
    a, b = fig.subplots(1, 2, width_ratios=[1, 1.2])
    year = pd.to_datetime(ev["event_date"].fillna(ev["event_time"].dt.date)).dt.year
    counts = pd.crosstab(year, ev["kept"]).reindex(columns=[True, False], fill_value=0)
    a.bar(counts.index, counts[True], color="#1f4e8c", label="kept")
    a.bar(counts.index, counts[False], bottom=counts[True], color="#d64545", label="dropped")
    a.set(xlabel="year of day 0", ylabel="events", ylim=(0, 1.12 * max(1, counts.sum(axis=1).max())),
          xlim=(counts.index.min() - 0.8, counts.index.max() + 0.8))
    a.legend(fontsize=8, frameon=False, loc="lower left", bbox_to_anchor=(0, 1), ncols=2)
    if len(counts) <= 12:
        a.set_xticks(list(counts.index))
    else:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    a.yaxis.set_major_locator(MaxNLocator(integer=True))
    for w, g in data.car.groupby("window", sort=False):
        vals = g["car"].dropna() * 100
        if len(vals):
            b.hist(vals, bins=min(40, max(5, int(math.sqrt(len(vals))))), histtype="step", lw=1.5,
                   label=f"CAR {_window(w)}")
    b.set(xlabel="CAR, percent", ylabel="events")
    b.yaxis.set_major_locator(MaxNLocator(integer=True))
    b.legend(fontsize=8, frameon=False, loc="lower left", bbox_to_anchor=(0, 1), ncols=3)
    return to_figure(fig, "fig-sample", "Events per year and CAR distribution",
                     "Left: events per year of day 0, kept or dropped. Right: distribution of the events' CAR per "
                     "event window (table car).")


# -- context -----------------------------------------------------------------------------------------


def study_context(data: StudyData) -> dict:
    m = data.meta
    ev = data.events
    figures = [f for f in (fig_sample(data), fig_caar(data)) if f is not None]
    cols, terms = regression_table(data)
    sample = [("events in the sample", m.get("n_sample", str(len(ev)))), ("kept", m.get("n_events", "")),
              ("dropped", m.get("n_dropped", str(len(data.dropped)))),
              ("day 0 of kept events", f"{m.get('date_min', '')} to {m.get('date_max', '')}"),
              ("event type", m.get("event_type", "")), ("tickers", str(ev["ticker"].nunique())),
              ("timing of day 0", ", ".join(f"{k} {v}" for k, v in ev["timing"].value_counts().items())),
              ("expected returns", f"{m.get('model', '')} model, estimation window {_window(m['estimation'])} "
                                   f"(at least {m.get('min_estimation_obs', '')} days)" if m.get("estimation") else ""),
              ("event windows", ", ".join(_window(w.strip()) for w in m.get("windows", "").split(",") if w.strip())),
              ("market", m.get("market") or "–"), ("calendar", m.get("calendar", "")), ("status", m.get("status", ""))]
    versions = data.calls.groupby(["pipeline_version", "profile"]).size() if len(data.calls) else pd.Series(dtype=int)
    repro = [("study id", data.study_id), ("spec", m.get("spec_origin", "")),
             ("study run at", m.get("run_at", "")), ("speechfin git commit (report)", git_commit()),
             ("SER model ids (call_features)", m.get("model_ids", "") or "none"),
             ("speech pipeline versions of the sample's calls",
              ", ".join(f"{v} ({p}): {n} calls" for (v, p), n in versions.items()) or "–"),
             ("calls processed", " to ".join(pd.Timestamp(t).strftime("%Y-%m-%d %H:%M UTC") for t in
                                             (data.calls["processed_at"].min(), data.calls["processed_at"].max()))
                                 if len(data.calls) else "–"),
             ("price source (spec)", m.get("price_source", "")), ("price sources used", m.get("price_sources_used", "")),
             ("factors", m.get("factors") or "–"), ("calendar", m.get("calendar", "")),
             ("event dates", f"{m.get('date_min', '')} to {m.get('date_max', '')}")]
    return {
        "title": m.get("title") or data.study_id, "study_id": data.study_id, "meta": m, "sample": sample,
        "figures": {f.id: f for f in figures}, "dropped_groups": dropped_groups(data),
        "dropped": data.dropped.head(MAX_DROPPED_ROWS).to_dict("records"), "n_dropped": len(data.dropped),
        "max_dropped": MAX_DROPPED_ROWS, "tests": test_rows(data), "outcomes": outcome_rows(data),
        "reg_cols": cols, "reg_terms": terms, "corrected": corrected_rows(data), "people": people_rows(data),
        "pairs": pair_rows(data), "max_people": MAX_PEOPLE_ROWS, "repro": repro, "spec_text": m.get("spec_text", ""),
        "prices": data.prices.to_dict("records"), "spec_path": data.spec_path,
    }

