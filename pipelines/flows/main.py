"""The main job (``speechfin run``): archive -> speech and emotions -> studies -> reports.

It composes the archive flow (``pipelines.flows.calls``) with the study and report refresh of the
scheduled flow (``pipelines.flows.serve``), so a manual run and a scheduled run do the same
work: studies are re-run and reports re-rendered only when the catalog data behind them
changed (or they are missing).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, get_run_logger

from data_catalog import Catalog, CatalogError
from pipelines.flows.calls import ArchiveSummary, process_archive
from pipelines.flows.serve import StudyOutcome, StudyStatus, WatchSummary, refresh_reports, refresh_studies
from pipelines.flows.runners import RunnerConfig
from pipelines.settings import Profile


@dataclass
class MainJobSummary:
    archive: ArchiveSummary
    studies: dict[str, StudyOutcome] = field(default_factory=dict)  # study id -> what happened
    reports: list[str] = field(default_factory=list)  # paths written
    failures: list[str] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        """Studies and reports that failed (calls are counted in ``archive``)."""
        return sum(o.status == StudyStatus.FAILED for o in self.studies.values()) + len(self.failures)

    def after_archive(self) -> list[str]:
        """The lines about studies, reports and stage times (the archive has its own summary)."""
        lines = [f"study {k}: {v}" for k, v in self.studies.items()]
        lines += [f"report written: {r}" for r in self.reports]
        lines += [f"report failed: {r}" for r in self.failures]
        lines.append("stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.stage_seconds.items()))
        return lines

    def summary(self) -> str:
        return "\n".join([self.archive.summary(), *self.after_archive()])


@flow(name="speechfin_main", validate_parameters=False, log_prints=True)
def main_job(archive: str, catalog_dir: str, profile: Profile | None = None, studies: tuple[str, ...] = (),
             write_reports: bool = True, force: bool = False, show_progress: bool = True,
             retries: int = 2, retry_backoff_s: float = 2.0, runner: RunnerConfig | None = None) -> MainJobSummary:
    """Process the archive, refresh the studies on the catalog, render the call and study
    reports into ``CATALOG/reports``; each stage says how long it took."""
    logger = get_run_logger()
    times: dict[str, float] = {}
    t = time.perf_counter()
    summary = process_archive(archive, catalog_dir, profile, force, show_progress, runner)
    times["speech and emotions"] = time.perf_counter() - t
    times["of which model loading"] = summary.model_load_s
    catalog = Catalog(catalog_dir)
    refreshed = WatchSummary(archive, str(catalog.root))
    if summary.error is not None:  # the run stopped (bad manifest, model, catalog): nothing to refresh
        out = MainJobSummary(summary, stage_seconds=times)
        logger.info(out.summary())
        return out
    try:  # a catalog write that fails (disk full, permissions; also recording a failure) stops the job
        t = time.perf_counter()
        refresh_studies(catalog, list(studies), retries, retry_backoff_s, refreshed)
        times["studies"] = time.perf_counter() - t
        if write_reports:
            t = time.perf_counter()
            refresh_reports(catalog, Path(archive), list(studies), catalog.root / "reports", ["html"], refreshed)
            times["reports"] = time.perf_counter() - t
        catalog.refresh_views()
    except CatalogError as exc:
        summary.error = exc
    out = MainJobSummary(summary, refreshed.studies, refreshed.reports, refreshed.report_failures, times)
    logger.info(out.summary())
    return out
