"""`speechfin study ...` commands. Heavy libraries are imported inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pipelines.exitcodes import ExitCode, fail

app = typer.Typer(help="Event studies and regressions of returns on speech features.", no_args_is_help=True)

MODELS = "constant|market_adjusted|market|ff3|carhart"


def _call(fn, *args, **kwargs):
    """Run a finance function; its errors become one line and the exit code of the policy
    (``pipelines.exitcodes``): no event left, a price source or catalog failure -> 1, bad input -> 2."""
    from data_catalog.store import CatalogError
    from finance.errors import FinanceError, NoEventsError, PriceSourceError

    try:
        return fn(*args, **kwargs)
    except (NoEventsError, PriceSourceError, CatalogError) as exc:
        fail(exc, ExitCode.FAILED)
    except FinanceError as exc:
        fail(exc, ExitCode.USAGE)


def _logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")


def _catalog(path: Optional[Path]):
    from data_catalog.store import Catalog

    if path is None:
        try:
            from pipelines.settings import default_catalog
        except ImportError:
            raise typer.BadParameter("give --catalog DIR (no default catalog is configured)") from None
        path = default_catalog()
    return Catalog(path)


@app.command("car")
def car(
    events: Path = typer.Option(..., help="CSV/Parquet: event_id, ticker, event_date or event_time (UTC)"),
    prices: Path = typer.Option(..., help="CSV/Parquet: ticker, date, close|adj_close[, volume]"),
    market: Optional[str] = typer.Option(None, help="market ticker in the prices file (market, market_adjusted)"),
    model: str = typer.Option("market", help=MODELS),
    factors: Optional[Path] = typer.Option(None, help="factor file for ff3/carhart (date, mkt_rf, smb, hml, rf[, mom])"),
    factor_units: str = typer.Option("percent", help="percent (French's files) or decimal"),
    estimation: str = typer.Option("-250:-30", help="estimation window START:END in trading days"),
    window: list[str] = typer.Option(["-1:1"], help="event window START:END; repeat for several"),
    calendar: str = typer.Option("XNYS", help="exchange_calendars code, or 'data' for the dates in the prices file"),
    min_estimation_obs: int = typer.Option(100, help="minimum estimation days with a return"),
    out: Path = typer.Option(..., help="output folder"),
) -> None:
    """Abnormal returns, CAR/BHAR per event and all tests per window, from files."""
    from finance.files import car_from_files

    _logging()
    result = _call(car_from_files, events, prices, out, market=market, model=model, factors=factors,
                   factor_units=factor_units, estimation=estimation, windows=window, calendar=calendar,
                   min_estimation_obs=min_estimation_obs)
    typer.echo(result.summary())
    typer.echo(f"wrote {out}/abnormal_returns.parquet, car.parquet, tests.json, caar.csv, dropped.csv")


@app.command("regress")
def regress(
    data: Path = typer.Option(..., help="car.parquet (from `study car`) or any CSV/Parquet table"),
    formula: str = typer.Option(..., help='e.g. "car ~ tone + C(ticker)"'),
    out: Path = typer.Option(..., help="output folder"),
    features: Optional[Path] = typer.Option(None, help="CSV/Parquet joined on event_id (or call_id)"),
    cov: str = typer.Option("HC1", help="nonrobust | HC0..HC3 | cluster:COL[,COL]"),
    family: str = typer.Option("ols", help="ols | logit (0/1 outcome)"),
    window: Optional[str] = typer.Option(None, help="window of car.parquet to use (needed if it holds several)"),
    catalog: Optional[Path] = typer.Option(None, help="join the catalog's call_features on call_id"),
    model_id: Optional[str] = typer.Option(None, help="call_features model_id (if several)"),
    uncertainty: str = typer.Option("none", help="none | mi:M (multiple imputation of the voice-tone regressors from "
                                                 "the catalog's segment posteriors, M imputations; needs --catalog)"),
) -> None:
    """OLS or logit of event outcomes on features (statsmodels); writes coefficients.csv, summary.txt, table.tex
    (and with --uncertainty mi:M, mi_coefficients.csv: naive and corrected side by side)."""
    from finance.files import regress_files

    cat = _catalog(catalog) if catalog is not None else None
    mi = _parse_uncertainty(uncertainty, cat is not None)
    evidence = None
    if mi:
        from pipelines.study_inputs import CatalogEvidence

        evidence = CatalogEvidence(cat)
    res = _call(regress_files, data, formula, out, features=features, cov=cov, family=family, window=window,
                catalog=cat, model_id=model_id, mi=mi, evidence=evidence)
    typer.echo(res.summary())
    typer.echo(f"wrote {out}/coefficients.csv, summary.txt, table.tex" + (", mi_coefficients.csv" if mi else ""))


def _parse_uncertainty(text: str, has_catalog: bool) -> int:
    """'none' -> 0, 'mi:M' -> M (>= 2)."""
    if text == "none":
        return 0
    kind, _, m = text.partition(":")
    if kind != "mi" or not m.isdigit():
        fail(f"--uncertainty {text!r}: use 'none' or 'mi:M' (e.g. mi:50)", ExitCode.USAGE)
    if int(m) < 2:
        fail(f"--uncertainty {text!r}: multiple imputation needs M >= 2 (Rubin's rules estimate the variance "
             f"between imputations)", ExitCode.USAGE)
    if not has_catalog:
        fail("--uncertainty mi:M needs --catalog (the segment posteriors are read from it)", ExitCode.USAGE)
    return int(m)


@app.command("run")
def run(
    spec: Path = typer.Argument(..., help="study spec (TOML); bundled examples: earnings_calls.toml, press_conferences.toml"),
    catalog: Optional[Path] = typer.Option(None, help="catalog folder (default: the configured catalog)"),
) -> None:
    """Run a whole study from a spec into the catalog (events, abnormal_returns, car, study_results, study_dropped)."""
    from finance.studies import run_study
    from pipelines.study_inputs import CatalogEvidence

    _logging()
    cat = _catalog(catalog)
    res = _call(run_study, spec, cat, evidence=CatalogEvidence(cat))
    typer.echo(res.summary())
