"""Study specs (TOML) and ``run_study``: from the catalog's calls and features to results.

A spec names the sample, the prices, the expected-return model, windows, outcomes,
regressors and covariance (see ``finance/specs/*.toml`` and ``finance/README.md``).
``run_study(spec, catalog)`` writes, under ``study_id`` (the spec's ``name``):

- ``events``           every sample event with day 0, timing and whether it was kept;
- ``abnormal_returns`` event x relative day over the event period (ret, expected_ret, ar, car);
- ``car``              event x window outcomes (car, bhar, scar, car_se, abnormal volatility/volume);
- ``study_dropped``    dropped events with the stage and the reason;
- ``study_results``    rows by ``kind``: ``meta`` (spec text, sources, model ids, date range,
  status: text in ``value``), ``test`` (per window and test: estimate = CAAR, statistic,
  p_value, n), ``outcome`` (mean outcome per window with std_error, t statistic),
  ``caar`` and ``aar`` (per ``rel_day``: estimate, std_error, statistic, p_value, n),
  ``regression`` (per term: estimate, std_error, statistic, p_value, n; ``group`` =
  regression name) and ``regression_fit`` (r2, adj_r2, nobs, cov_type, formula, family,
  status per regression; with MI also mi_m, mi_imputed, mi_status), and with
  ``[uncertainty] method = "mi"``: ``regression_mi`` (per term, Rubin-combined estimate,
  std_error, statistic, p_value) and ``regression_mi_fmi`` (per term: estimate = fraction of
  missing information).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from data_catalog.store import CatalogError
from finance import significance as sig
from finance.calendars import DEFAULT_CALENDAR
from finance.engine import OUTCOMES, EventStudyConfig, EventStudyResult, window_label
from finance.errors import EventsError, FinanceError, RegressionError, SpecError
from finance.events import DROPPED_COLUMNS
from finance.pipeline import PipelineResult, calendar_for, require_events, run_event_study
from finance.prices import ArchPriceSource, ComposedPriceSource, FilePriceSource, PriceSource, YFinancePriceSource
from finance.measurement import EvidenceSource, MIConfig, MIResults, mi_regression
from finance.regress import RegressionResults, fit_regression

log = logging.getLogger("speechfin.finance")

SPEC_DIR = Path(__file__).parent / "specs"
_NAME_RE = re.compile(r"[^A-Za-z0-9_.=\-]+")


@dataclass(frozen=True)
class RegressionSpec:
    name: str
    window: tuple[int, int]
    formula: str
    cov: str = "HC1"
    family: str = "ols"


QA_AGGS = ("mean", "median", "sum", "count", "share")


@dataclass(frozen=True)
class QAFeatureSpec:
    """``[[features.qa]]``: a call-level regressor aggregated from the catalog's ``qa_pairs``.
    ``agg`` of column ``value`` over the call's pairs that pass the filters: ``answerer_role``,
    ``asker_role``, and ``most_negative`` (a pairs column, e.g. ``q_fused_tone``: keep the
    ``share`` of the call's questions with the lowest values, at least one).  ``share`` as an
    agg is the mean of a 0/1 column (e.g. ``non_answer``); ``count`` counts pairs (0 when none)."""

    name: str
    value: str = "a_fused_tone"
    agg: str = "mean"
    answerer_role: str = ""
    asker_role: str = ""
    most_negative: str = ""
    share: float = 1.0


@dataclass(frozen=True)
class UncertaintySpec:
    """``[uncertainty]``: how the measurement error of the emotion regressors is treated.
    method "none" (naive OLS only) or "mi" (multiple imputation, ``finance.measurement``);
    features: the regressors to impute (default: every voice-tone feature among them)."""

    method: str = "none"
    m: int = 50
    features: tuple[str, ...] = ()
    seed: int = 0


@dataclass(frozen=True)
class StudySpec:
    name: str
    title: str
    event_type: str
    entities: tuple[str, ...]
    ticker: str | None
    start: str | None
    end: str | None
    price_source: str
    price_path: Path | None
    calendar: str
    config: EventStudyConfig
    market: str | None
    factors: Path | None
    factor_units: str
    model_id: str | None
    regressions: tuple[RegressionSpec, ...]
    text: str
    origin: str
    uncertainty: UncertaintySpec = UncertaintySpec()
    qa_features: tuple[QAFeatureSpec, ...] = ()

    @property
    def study_id(self) -> str:
        return self.name

    @property
    def regressors(self) -> list[str]:
        from finance.regress import formula_columns

        own = set(OUTCOMES) | {"scar", "car_negative", "event_id", "call_id", "ticker", "entity", "year", "quarter",
                               "timing", "event_date"}
        return sorted({c for r in self.regressions for c in formula_columns(r.formula)} - own)


def load_spec(spec: str | Path | dict) -> StudySpec:
    """Parse a spec from a TOML path, a TOML string or a dict."""
    if isinstance(spec, dict):
        import json

        raw, text, origin, base = spec, json.dumps(spec, indent=2, default=str), "spec dict", Path.cwd()
    else:
        path = Path(spec)
        if not path.exists() and (SPEC_DIR / path.name).exists():
            path = SPEC_DIR / path.name
        if not path.exists():
            raise SpecError(f"{spec}: spec file not found (examples: {', '.join(p.name for p in SPEC_DIR.glob('*.toml'))})")
        text, origin, base = path.read_text(), str(path), path.parent
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{path}: not valid TOML ({exc})") from exc
    try:
        return _spec_from_dict(raw, text, origin, base)
    except SpecError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, FinanceError):
            raise SpecError(f"{origin}: {exc}") from exc
        raise SpecError(f"{origin}: bad or missing field ({type(exc).__name__}: {exc})") from exc


def _spec_from_dict(raw: dict, text: str, origin: str, base: Path) -> StudySpec:
    name = _NAME_RE.sub("_", str(raw.get("name") or Path(origin).stem)).strip("_")
    sample, prices, model = raw.get("sample", {}), raw.get("prices", {}), raw.get("model", {})
    if "event_type" not in sample:
        raise SpecError(f"{origin}: [sample] needs event_type (earnings_call or press_conference)")
    for key in ("start", "end"):
        if isinstance(sample.get(key), str):
            try:
                date.fromisoformat(sample[key])
            except ValueError:
                raise SpecError(f"{origin}: [sample] {key} {sample[key]!r} is not an ISO 8601 date "
                                f"(use YYYY-MM-DD; orders such as 01/05/2019 are ambiguous)") from None
    cfg = EventStudyConfig(
        model=model.get("expected", "market"),
        estimation=tuple(model.get("estimation", (-250, -30))),
        windows=tuple(tuple(w) for w in model.get("windows", [(-1, 1)])),
        min_estimation_obs=int(model.get("min_estimation_obs", 100)),
    )
    source = prices.get("source", "yfinance")
    if source not in ("arch", "yfinance", "file"):
        raise SpecError(f"{origin}: [prices] source {source!r}: use arch, yfinance or file")
    if source == "file" and "path" not in prices:
        raise SpecError(f"{origin}: [prices] source 'file' needs a path")
    if cfg.model in ("market", "market_adjusted") and not model.get("market"):
        raise SpecError(f"{origin}: model {cfg.model!r} needs [model] market (e.g. '^GSPC')")
    if cfg.model in ("ff3", "carhart") and not model.get("factors"):
        raise SpecError(f"{origin}: model {cfg.model!r} needs [model] factors (a factor file)")
    regs = []
    for i, r in enumerate(raw.get("regressions", [])):
        window = tuple(r.get("window", cfg.windows[0]))
        if window not in cfg.windows:
            raise SpecError(f"{origin}: regression {i + 1} window {list(window)} is not one of [model] windows")
        formula = r.get("formula") or f"{r['outcome']} ~ {' + '.join(r['regressors'])}"
        reg_name = r.get("name") or f"{formula.split('~')[0].strip()}_{window[0]}_{window[1]}".replace("-", "m")
        regs.append(RegressionSpec(reg_name, window, formula, r.get("cov", "HC1"), r.get("family", "ols")))
    unc = raw.get("uncertainty", {})
    method = str(unc.get("method", "none"))
    if method not in ("none", "mi"):
        raise SpecError(f"{origin}: [uncertainty] method {method!r}: use 'none' or 'mi'")
    if method == "mi" and int(unc.get("m", 50)) < 2:
        raise SpecError(f"{origin}: [uncertainty] m = {unc.get('m')}: multiple imputation needs m >= 2")
    uncertainty = UncertaintySpec(method, int(unc.get("m", 50)), tuple(unc.get("features", ())), int(unc.get("seed", 0)))
    qa = []
    for i, q in enumerate(raw.get("features", {}).get("qa", [])):
        f = QAFeatureSpec(**q)
        if f.agg not in QA_AGGS:
            raise SpecError(f"{origin}: [[features.qa]] {i + 1} ({f.name}): agg {f.agg!r}: use one of {', '.join(QA_AGGS)}")
        if not 0 < f.share <= 1:
            raise SpecError(f"{origin}: [[features.qa]] {i + 1} ({f.name}): share {f.share} must be in (0, 1]")
        qa.append(f)
    return StudySpec(
        name=name, title=raw.get("title", name), event_type=sample["event_type"],
        entities=tuple(sample.get("entities", ())), ticker=sample.get("ticker"),
        start=sample.get("start"), end=sample.get("end"), price_source=source,
        price_path=(base / prices["path"]) if "path" in prices else None,
        calendar=prices.get("calendar", DEFAULT_CALENDAR), config=cfg, market=model.get("market"),
        factors=(base / model["factors"]) if model.get("factors") else None,
        factor_units=model.get("factor_units", "percent"),
        model_id=raw.get("features", {}).get("model_id"), regressions=tuple(regs), text=text, origin=origin,
        uncertainty=uncertainty, qa_features=tuple(qa))


def make_source(spec: StudySpec) -> PriceSource:
    if spec.price_source == "arch":
        return ArchPriceSource()
    if spec.price_source == "file":
        return FilePriceSource(spec.price_path)
    return YFinancePriceSource()


# -- run_study ------------------------------------------------------------------------------------


@dataclass
class StudyResults:
    """Results of ``run_study``; everything here is also written to the catalog."""

    spec: StudySpec
    event_study: EventStudyResult
    events: pd.DataFrame
    dropped: pd.DataFrame
    regressions: dict[str, RegressionResults | str] = field(default_factory=dict)  # name -> results or status
    seconds: float = 0.0
    corrected: dict[str, MIResults | str] = field(default_factory=dict)  # name -> MI results or why not

    @property
    def study_id(self) -> str:
        return self.spec.study_id

    def sample_line(self) -> str:
        """'sample N event(s), K kept, D dropped (S s)'."""
        return (f"sample {len(self.events)} event(s), {len(self.event_study.events)} kept, {len(self.dropped)} dropped "
                f"({self.seconds:.1f} s)")

    def summary(self) -> str:
        es = self.event_study
        lines = [f"Study {self.study_id}: {self.spec.title}", self.sample_line()]
        for r in self.dropped.itertuples():
            lines.append(f"  dropped {r.event_id} ({r.ticker}): {r.reason}")
        lines += ["", es.summary(), ""]
        for name, reg in self.regressions.items():
            if isinstance(reg, str):
                lines.append(f"Regression {name}: not estimated ({reg})")
            else:
                lines += [f"Regression {name}: {reg.formula}, N = {reg.nobs}, R2 = {reg.r2:.4f}, cov {reg.cov_type}",
                          reg.coefficients.to_string(index=False), ""]
            mi = self.corrected.get(name)
            if isinstance(mi, MIResults):
                lines += [mi.summary(), ""]
            elif mi:
                lines += [f"Regression {name}: no measurement-error correction ({mi})", ""]
        return "\n".join(lines)


def _sample(spec: StudySpec, catalog) -> tuple[pd.DataFrame, pd.DataFrame]:
    calls = catalog.read("calls").to_pandas()
    origin = f"catalog {catalog.root} table 'calls'"
    sel = calls[calls["event_type"] == spec.event_type]
    if spec.entities:
        sel = sel[sel["entity"].isin(spec.entities)]
    times = pd.to_datetime(sel["event_time"], utc=True)
    if spec.start:
        sel = sel[times >= pd.Timestamp(spec.start, tz="UTC")]
    if spec.end:
        sel = sel[pd.to_datetime(sel["event_time"], utc=True) < pd.Timestamp(spec.end, tz="UTC") + pd.Timedelta(days=1)]
    if sel.empty:
        raise EventsError(f"{origin}: no calls with event_type={spec.event_type!r}"
                          + (f", entity in {list(spec.entities)}" if spec.entities else "") + f" for study {spec.name!r}")
    feats = catalog.read("call_features").to_pandas()
    if spec.model_id:
        feats = feats[feats["model_id"] == spec.model_id]
    feats = feats[feats["call_id"].isin(sel["call_id"])]
    if spec.qa_features:
        feats = feats.merge(qa_features(spec, catalog, feats["call_id"]), on="call_id", how="left")
    need = spec.regressors
    missing = [c for c in need if c not in feats.columns]
    if missing:
        raise SpecError(f"{spec.origin}: regressor(s) {missing} not in catalog table 'call_features' "
                        f"(columns: {', '.join(c for c in feats.columns if c not in ('call_id', 'model_id'))})")
    if feats["call_id"].duplicated().any():
        raise SpecError(f"{spec.origin}: call_features has several rows per call (model_ids "
                        f"{sorted(feats['model_id'].unique())}); choose one with [features] model_id")
    events = pd.DataFrame({"event_id": sel["call_id"].astype(str), "call_id": sel["call_id"].astype(str),
                           "ticker": spec.ticker or sel["entity"].astype(str), "entity": sel["entity"].astype(str),
                           "event_type": sel["event_type"], "event_time": pd.to_datetime(sel["event_time"], utc=True)})
    return events.reset_index(drop=True), feats


def qa_features(spec: StudySpec, catalog, call_ids: pd.Series) -> pd.DataFrame:
    """One row per call of ``call_ids``: the spec's ``[[features.qa]]`` aggregates of ``qa_pairs``."""
    pairs = catalog.read("qa_pairs", complete_only=True).to_pandas()
    if spec.model_id:
        pairs = pairs[pairs["model_id"] == spec.model_id]
    pairs = pairs[pairs["call_id"].isin(call_ids)]
    out = pd.DataFrame({"call_id": pd.Series(call_ids).astype(str).unique()})
    for f in spec.qa_features:
        for col in (f.value, f.most_negative):
            if col and col not in pairs.columns:
                raise SpecError(f"{spec.origin}: [[features.qa]] {f.name}: {col!r} is not a qa_pairs column "
                                f"(columns: {', '.join(c for c in pairs.columns if c not in ('call_id', 'model_id'))})")
        p = pairs
        if f.answerer_role:
            p = p[p["answerer_role"] == f.answerer_role]
        if f.asker_role:
            p = p[p["asker_role"] == f.asker_role]
        if f.most_negative:
            p = p[p[f.most_negative].notna()]
            rank = p.groupby("call_id")[f.most_negative].rank(method="first")
            size = p.groupby("call_id")[f.most_negative].transform("size")
            p = p[rank <= np.maximum(1, np.floor(f.share * size))]
        g = p.groupby("call_id")[f.value]
        agg = {"mean": g.mean, "median": g.median, "sum": g.sum, "count": g.size,
               "share": lambda: p.assign(v=p[f.value].astype(float)).groupby("call_id")["v"].mean()}[f.agg]()
        out[f.name] = out["call_id"].map(agg)
        if f.agg == "count":
            out[f.name] = out[f.name].fillna(0)
    return out


def run_study(spec_path_or_dict: str | Path | dict, catalog, price_source: PriceSource | None = None,
              evidence: EvidenceSource | None = None) -> StudyResults:
    """Run a whole study from a spec and write it into ``catalog`` under the spec's name.
    ``evidence`` gives the segment posteriors of the calls, for ``[uncertainty] method = "mi"``
    (``pipelines.study_inputs.CatalogEvidence``)."""
    t0 = time.perf_counter()
    spec = load_spec(spec_path_or_dict)
    events, feats = _sample(spec, catalog)
    imputed = _imputed_features(spec, evidence)
    log.info("study %s: %d event(s) in the sample", spec.name, len(events))
    factors = None
    if spec.factors is not None:
        from finance.factors import load_factors

        factors = load_factors(spec.factors, spec.factor_units)
    sessions = calendar_for(events, spec.calendar).sessions if spec.calendar.lower() != "data" else pd.DatetimeIndex([])
    source = ComposedPriceSource(catalog, price_source or make_source(spec), sessions)
    market = spec.market if spec.config.model in ("market", "market_adjusted") else None
    pipe = run_event_study(events, source, spec.config, spec.calendar, market, factors)
    res = pipe.result
    regs: dict[str, RegressionResults | str] = {}
    for r in spec.regressions:
        frame = regression_frame(res, pipe.aligned, feats, r.window)
        try:
            regs[r.name] = fit_regression(frame, r.formula, r.cov, r.family, origin=f"study {spec.name} data")
        except RegressionError as exc:
            log.warning("study %s: regression %s not estimated: %s", spec.name, r.name, exc)
            regs[r.name] = str(exc)
    corrected = _corrected(spec, regs, imputed, evidence, res, pipe, feats)
    out = StudyResults(spec, res, events, pipe.dropped, regs, time.perf_counter() - t0, corrected)
    _write(out, catalog, pipe, feats)
    log.info("study %s: %d kept, %d dropped, %d regression(s) in %.2f s", spec.name, len(res.events),
             len(pipe.dropped), len(regs), out.seconds)
    require_events(pipe, f"study {spec.name} ({spec.origin})", f"table study_dropped of {catalog.root}")
    return out


def _imputed_features(spec: StudySpec, evidence: EvidenceSource | None) -> dict[str, list[str]]:
    """Regression name -> the regressors to impute (checked before any price is read)."""
    if spec.uncertainty.method != "mi":
        return {}
    if evidence is None:
        raise SpecError(f"{spec.origin}: [uncertainty] method 'mi' needs the segment posteriors of the catalog; "
                        f"run the study with `speechfin study run`")
    from finance.regress import formula_columns

    asked = list(spec.uncertainty.features)
    bad = [f for f in asked if f not in evidence.imputable]
    if bad:
        raise SpecError(f"{spec.origin}: [uncertainty] features {bad} are not emotion features that MI can impute "
                        f"(these can: {', '.join(evidence.imputable)})")
    out = {}
    for r in spec.regressions:
        cols = formula_columns(r.formula)
        feats = [c for c in cols if c in (asked or evidence.imputable)]
        if feats and r.family == "ols":
            out[r.name] = feats
    named = {f for fs in out.values() for f in fs}
    unused = [f for f in asked if f not in named]
    if unused:
        raise SpecError(f"{spec.origin}: [uncertainty] features {unused} are not regressors of any OLS regression")
    if not out:
        raise SpecError(f"{spec.origin}: [uncertainty] method 'mi': no OLS regression has an emotion feature among its "
                        f"regressors (imputable: {', '.join(evidence.imputable)})")
    return out


def _corrected(spec: StudySpec, regs: dict, imputed: dict[str, list[str]], evidence: EvidenceSource | None,
               res: EventStudyResult, pipe: PipelineResult, feats: pd.DataFrame) -> dict[str, MIResults | str]:
    out: dict[str, MIResults | str] = {}
    cfg = spec.uncertainty
    for r in spec.regressions:
        if cfg.method != "mi":
            continue
        if r.name not in imputed:
            out[r.name] = "not an OLS regression on an emotion feature" if r.family == "ols" else "MI is for OLS only"
            continue
        if isinstance(regs.get(r.name), str):
            out[r.name] = f"the naive regression failed: {regs[r.name]}"
            continue
        frame = regression_frame(res, pipe.aligned, feats, r.window)
        t0 = time.perf_counter()
        try:
            ev = evidence(frame["call_id"].astype(str).tolist(), imputed[r.name], spec.model_id)
            out[r.name] = mi_regression(frame, r.formula, ev, r.cov, MIConfig(m=cfg.m, seed=cfg.seed),
                                        origin=f"study {spec.name} data")
            log.info("study %s: regression %s: %s imputed %d times in %.1f s", spec.name, r.name,
                     ", ".join(imputed[r.name]), cfg.m, time.perf_counter() - t0)
        except (RegressionError, ValueError) as exc:
            log.warning("study %s: regression %s: no MI correction: %s", spec.name, r.name, exc)
            out[r.name] = str(exc)
    return out


def regression_frame(res: EventStudyResult, aligned: pd.DataFrame, feats: pd.DataFrame,
                     window: tuple[int, int]) -> pd.DataFrame:
    """Outcomes of one window joined with event attributes and call features (one row per event)."""
    car = res.car[res.car["window"] == window_label(window)].drop(columns=["window", "window_start", "window_end"])
    car = car.assign(car_negative=(car["car"] < 0).astype(float))
    ev = aligned.drop(columns=[c for c in ("event_time",) if c in aligned.columns])
    ev = ev.assign(year=ev["event_date"].dt.year, quarter=ev["event_date"].dt.to_period("Q").astype(str))
    frame = car.merge(ev, on="event_id", how="left")
    if "call_id" in frame.columns and len(feats):
        frame = frame.merge(feats.drop(columns=["model_id"], errors="ignore"), on="call_id", how="left")
    return frame


def _write(out: StudyResults, catalog, pipe: PipelineResult, feats: pd.DataFrame) -> None:
    sid = out.study_id
    res = out.event_study
    kept = set(res.events["event_id"])
    ev = pd.DataFrame({
        "study_id": sid, "event_id": out.events["event_id"], "call_id": out.events["call_id"],
        "ticker": out.events["ticker"], "event_time": out.events["event_time"]})
    ev = ev.merge(pipe.aligned[["event_id", "event_date", "timing"]], on="event_id", how="left")
    ev["event_date"] = ev["event_date"].dt.date
    ev["timing"] = ev["timing"].fillna("unaligned")
    ev["kept"] = ev["event_id"].isin(kept)
    catalog.write("events", sid, ev)
    ar = res.abnormal_returns.assign(study_id=sid)
    ar["date"] = pd.to_datetime(ar["date"]).dt.date
    catalog.write("abnormal_returns", sid, ar)
    catalog.write("car", sid, res.car.assign(study_id=sid))
    dropped = pipe.dropped.assign(study_id=sid)
    dropped["event_date"] = pd.to_datetime(dropped["event_date"]).dt.date
    catalog.write("study_dropped", sid, dropped[["study_id"] + DROPPED_COLUMNS])
    catalog.write("study_results", sid, study_result_rows(out, pipe, feats))
    try:
        catalog.refresh_views()
    except CatalogError as exc:  # the Parquet tables are written; the DuckDB views are a convenience
        log.warning("study %s: tables written, DuckDB views not refreshed (%s)", sid, exc)


def _row(sid, kind, name, *, group="", window="", rel_day=None, estimate=np.nan, std_error=np.nan,
         statistic=np.nan, p_value=np.nan, n=None, value=None) -> dict:
    return dict(study_id=sid, kind=kind, group=group, name=name, window=window, rel_day=rel_day,
                estimate=estimate, std_error=std_error, statistic=statistic, p_value=p_value, n=n, value=value)


def study_result_rows(out: StudyResults, pipe: PipelineResult, feats: pd.DataFrame) -> pd.DataFrame:
    sid, spec, res = out.study_id, out.spec, out.event_study
    kept_dates = res.events["event_date"] if len(res.events) else pd.Series(dtype="datetime64[ns]")
    status = "ok" if len(res.events) else "no events left after dropping (see study_dropped)"
    meta = {
        "spec_name": spec.name, "title": spec.title, "spec_origin": spec.origin, "spec_text": spec.text,
        "event_type": spec.event_type, "model": spec.config.model, "estimation": window_label(spec.config.estimation),
        "min_estimation_obs": str(spec.config.min_estimation_obs),
        "windows": ", ".join(window_label(w) for w in spec.config.windows), "calendar": pipe.calendar.name,
        "price_source": spec.price_source + (f" ({spec.price_path})" if spec.price_path else ""),
        "price_sources_used": ", ".join(sorted(pipe.prices["source"].unique())) if len(pipe.prices) else "",
        "market": spec.market or "", "factors": str(spec.factors or ""),
        "model_ids": ", ".join(sorted(feats["model_id"].astype(str).unique())) if len(feats) else "",
        "date_min": str(kept_dates.min().date()) if len(kept_dates) else "",
        "date_max": str(kept_dates.max().date()) if len(kept_dates) else "",
        "n_sample": str(len(out.events)), "n_events": str(len(res.events)), "n_dropped": str(len(out.dropped)),
        "status": status, "run_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    rows = [_row(sid, "meta", k, value=v) for k, v in meta.items()]
    for w in res.windows:
        lab = window_label(w.window)
        for name in sig.TESTS:
            t = w.tests[name]
            rows.append(_row(sid, "test", name, group="car", window=lab, estimate=w.caar, statistic=t.statistic,
                             p_value=t.p_value, n=w.n))
        rows.append(_row(sid, "test", "avg_cross_correlation", group="car", window=lab, estimate=w.cross_correlation, n=w.n))
        for name, (mean, se, n) in w.mean_outcomes.items():
            stat = mean / se if se and np.isfinite(se) and se > 0 else np.nan
            p = sig._t_result(stat, n - 1).p_value
            rows.append(_row(sid, "outcome", name, group=name, window=lab, estimate=mean, std_error=se, statistic=stat,
                             p_value=p, n=n))
    period = window_label(spec.config.event_period)
    for r in res.caar.itertuples():
        rows.append(_row(sid, "caar", str(r.rel_day), window=period, rel_day=r.rel_day, estimate=r.caar,
                         std_error=r.std_error, statistic=r.statistic, p_value=r.p_value, n=r.n))
        rows.append(_row(sid, "aar", str(r.rel_day), window=period, rel_day=r.rel_day, estimate=r.aar, n=r.n))
    for rs in spec.regressions:
        reg = out.regressions.get(rs.name)
        lab = window_label(rs.window)
        fit = {"formula": rs.formula, "family": rs.family, "cov_type": rs.cov}
        if isinstance(reg, RegressionResults):
            for c in reg.coefficients.itertuples():
                rows.append(_row(sid, "regression", c.term, group=rs.name, window=lab, estimate=c.estimate,
                                 std_error=c.std_error, statistic=c.statistic, p_value=c.p_value, n=reg.nobs))
            rows += [_row(sid, "regression_fit", "r2", group=rs.name, window=lab, estimate=reg.r2, n=reg.nobs),
                     _row(sid, "regression_fit", "adj_r2", group=rs.name, window=lab, estimate=reg.adj_r2, n=reg.nobs),
                     _row(sid, "regression_fit", "nobs", group=rs.name, window=lab, estimate=float(reg.nobs), n=reg.nobs)]
            fit["status"] = "ok"
        else:
            fit["status"] = reg or "not run"
        mi = out.corrected.get(rs.name)
        if isinstance(mi, MIResults):
            for c in mi.coefficients.itertuples():
                rows.append(_row(sid, "regression_mi", c.term, group=rs.name, window=lab, estimate=c.estimate,
                                 std_error=c.std_error, statistic=c.statistic, p_value=c.p_value, n=mi.nobs))
                rows.append(_row(sid, "regression_mi_fmi", c.term, group=rs.name, window=lab, estimate=c.fmi,
                                 n=mi.nobs))
            fit |= {"mi_m": str(mi.m), "mi_imputed": ", ".join(mi.imputed), "mi_status": "ok"}
        elif mi:
            fit["mi_status"] = mi
        rows += [_row(sid, "regression_fit", k, group=rs.name, window=lab, value=v) for k, v in fit.items()]
    return pd.DataFrame(rows)
