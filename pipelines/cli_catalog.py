"""``speechfin catalog``: check and repair a catalog folder (``data_catalog.verify``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pipelines.exitcodes import ExitCode, fail

app = typer.Typer(help="Check and repair a catalog folder.", no_args_is_help=True)


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
