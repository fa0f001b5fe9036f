"""``speechfin catalog``: check and repair a catalog folder (``data_catalog.verify``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pipelines.exitcodes import ExitCode, fail

app = typer.Typer(help="Check, describe, compact and repair a catalog folder.", no_args_is_help=True)


@app.command("verify")
def verify(
    catalog: Optional[Path] = typer.Option(None, "--catalog", "-c", help="Catalog folder (default: as for `speechfin run`)."),
    repair: bool = typer.Option(False, "--repair", help="Drop broken parts (and their call's calls part, so the next run reprocesses the call), stale temporary files and killed writes."),
) -> None:
    """Check every part: readable Parquet, expected schema, partition key = file name, complete calls."""
    from data_catalog import CatalogError
    from data_catalog.verify import verify as verify_catalog
    from pipelines.settings import default_catalog

    try:
        report = verify_catalog((catalog or default_catalog()).expanduser(), repair)
    except CatalogError as exc:
        fail(exc, ExitCode.USAGE)
    for p in report.problems:
        typer.echo(p.line())
    typer.echo(report.summary())
    if report.n_left:
        if not repair:
            typer.echo("run `speechfin catalog verify --repair` to drop what is broken")
        raise typer.Exit(1)


@app.command("stats")
def stats(
    catalog: Optional[Path] = typer.Option(None, "--catalog", "-c", help="Catalog folder (default: as for `speechfin run`)."),
) -> None:
    """Rows, calls, pending parts, compacted files and size per table."""
    from data_catalog import CatalogError
    from data_catalog.stats import catalog_stats
    from pipelines.settings import default_catalog

    try:
        typer.echo(catalog_stats((catalog or default_catalog()).expanduser()).summary())
    except CatalogError as exc:
        fail(exc, ExitCode.USAGE)


@app.command("compact")
def compact(
    catalog: Optional[Path] = typer.Option(None, "--catalog", "-c", help="Catalog folder (default: as for `speechfin run`)."),
    full: bool = typer.Option(False, "--full", help="Also merge the older compacted files into one per table."),
) -> None:
    """Merge the per-call parts of complete calls into large files (safe while runs and queries go on)."""
    import time

    from data_catalog import Catalog, CatalogError
    from pipelines.settings import default_catalog

    root = (catalog or default_catalog()).expanduser()
    if not (root / "tables").is_dir():
        fail(CatalogError(f"{root}: no catalog here (no tables/ folder)"), ExitCode.USAGE)
    t0 = time.perf_counter()
    try:
        results = Catalog(root).compact(full=full)
    except CatalogError as exc:
        fail(exc, ExitCode.FAILED)
    for r in results:
        typer.echo(r.line())
    typer.echo(f"compacted {root} in {time.perf_counter() - t0:.1f} s")
