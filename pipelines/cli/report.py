"""`speechfin report ...` commands. Heavy libraries are imported inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pipelines.exitcodes import ExitCode, fail

app = typer.Typer(help="Render call and study research reports (HTML/PDF).", no_args_is_help=True)

CATALOG_HELP = "Catalog folder (default: $SPEECHFIN_CATALOG or ./speechfin_catalog)."
OUT_HELP = "Output file: .html (self-contained) or .pdf."


def _render(fn, catalog: Optional[Path], out: Path) -> None:
    """Run ``fn(catalog)``; a bad input becomes a one-line error and exit 2, a catalog or
    disk failure exit 1 (``pipelines.exitcodes``)."""
    import logging

    from data_catalog import CatalogError
    from reports import ReportError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if catalog is None:
        from pipelines.settings import default_catalog

        catalog = default_catalog()
    try:
        path = fn(catalog)
    except ReportError as exc:
        fail(exc, ExitCode.USAGE)
    except CatalogError as exc:
        fail(exc, ExitCode.FAILED)
    except OSError as exc:
        fail(f"{exc.filename or out}: {exc.strerror or exc}", ExitCode.FAILED)
    typer.echo(f"wrote {path}")


@app.command("call")
def call(
    call_id: str = typer.Argument(..., help="call_id (see `speechfin query \"select call_id, title from calls\"`)."),
    out: Path = typer.Option(..., "--out", "-o", help=OUT_HELP),
    catalog: Optional[Path] = typer.Option(None, "--catalog", "-c", help=CATALOG_HELP),
    model_id: Optional[str] = typer.Option(None, "--model-id", help="SER model whose scores to show (if several)."),
) -> None:
    """Per-call report: speakers, emotion trajectories, extremes, hotspots, text vs voice tone, model card."""
    from reports import render_call_report

    _render(lambda cat: render_call_report(cat, call_id, out, model_id), catalog, out)


@app.command("study")
def study(
    spec: str = typer.Argument(..., help="study id, or the spec (TOML) the study was run with."),
    out: Path = typer.Option(..., "--out", "-o", help=OUT_HELP),
    catalog: Optional[Path] = typer.Option(None, "--catalog", "-c", help=CATALOG_HELP),
) -> None:
    """Study report: sample, CAAR with bands, test statistics, regression tables, reproducibility."""
    from reports import render_study_report

    _render(lambda cat: render_study_report(cat, spec, out), catalog, out)
