"""`speechfin serve`: serve the archive-watching flow as a Prefect deployment with a schedule.

Only typer and the standard library at module level; Prefect is imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pipelines.exitcodes import ExitCode, fail, run_code


def serve(
    archive: Path = typer.Option(..., "--archive", "-a", help="Folder with recordings and manifest.csv to watch."),
    catalog: Optional[Path] = typer.Option(None, "--catalog", "-c", help="Catalog folder (default: $SPEECHFIN_CATALOG or ./speechfin_catalog)."),
    cron: str = typer.Option("0 6 * * *", "--cron", help="When to look for new recordings (cron, UTC)."),
    reports: Optional[Path] = typer.Option(None, "--reports", help="Folder for the reports (default: CATALOG/reports)."),
    study: list[str] = typer.Option([], "--study", help="Study spec to refresh when its sample changes (repeatable)."),
    fmt: list[str] = typer.Option(["html"], "--format", help="Report format: html or pdf (repeatable)."),
    profile: str = typer.Option("embedded", "--profile", "-p", help="embedded (offline) or full."),
    name: Optional[str] = typer.Option(None, "--name", help="Deployment name (default: watch-<archive folder name>)."),
    once: bool = typer.Option(False, "--once", help="Run the flow once now and exit, without a schedule."),
    runner: str = typer.Option("sequential", "--runner", help="Where calls run: sequential, dask or ray."),
    workers: int = typer.Option(0, "--workers", help="Workers of a local Dask/Ray cluster (default: the cores)."),
    address: str = typer.Option("", "--address", help="Join this Dask scheduler or Ray cluster (host:port)."),
) -> None:
    """Serve the flows as a Prefect deployment on a schedule: each run processes the recordings added
    since the last one, refreshes the affected studies and reports, and logs a run summary."""
    if not (archive / "manifest.csv").is_file():
        fail(f"{archive}: no manifest.csv here (need an archive folder with columns file, event_type, entity, event_time)", ExitCode.USAGE)
    bad = [f for f in fmt if f not in ("html", "pdf")]
    if bad:
        fail(f"--format {bad[0]!r}: use html or pdf", ExitCode.USAGE)
    from pipelines.cli.main import quiet_prefect

    quiet_prefect()
    from data_catalog import Catalog, CatalogError
    from finance.errors import FinanceError
    from finance.studies import load_spec
    from pipelines.archive import ManifestError
    from pipelines.flows.serve import ArchiveGoneError, check_cron, watch_archive
    from pipelines.flows.supervisor import serve_archive
    from pipelines.speech.models import ModelLoadError
    from pipelines.flows.runners import RunnerError, runner_config
    from pipelines.settings import default_catalog, get_profile

    cat = (catalog or default_catalog()).expanduser()
    try:
        get_profile(profile)
        runner_config(runner, workers, address)
        for spec in study:
            load_spec(spec)
        if once:
            summary = watch_archive(str(archive), str(cat), str(reports or ""), list(study), profile, list(fmt),
                                    runner=runner, workers=workers, address=address)
            typer.echo(summary.summary())
            raise typer.Exit(int(run_code(len(summary.processed), len(summary.failed))))
        try:
            check_cron(cron)
        except ValueError as exc:
            fail(exc, ExitCode.USAGE)
        typer.echo(f"serving {archive} -> {Catalog(cat).root} on '{cron}' (UTC); stop with Ctrl-C")
        serve_archive(archive, cat, cron, reports, list(study), profile, list(fmt), name, runner=runner,
                      workers=workers, address=address)
    except (ArchiveGoneError, CatalogError) as exc:
        fail(exc, ExitCode.FAILED)
    except (ManifestError, FinanceError, ModelLoadError, RunnerError, ValueError) as exc:
        fail(exc, ExitCode.USAGE)
