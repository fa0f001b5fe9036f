"""Scheduled operation: the ``watch_archive`` flow, served as a Prefect deployment with a schedule.

Each run of ``watch_archive(archive, catalog_dir, ...)``:

1. checks the archive folder and the catalog (a vanished archive or a read-only catalog
   fails the run with one line, before anything is written);
2. finds the manifest rows added or changed since the last run (table ``watched_files``:
   file, manifest row, size, mtime); with none, it loads no model and processes nothing;
3. otherwise loads the models (retried with exponential backoff: a model load can fail
   transiently) and runs ``process_archive`` (calls already in the catalog are skipped,
   a failed call is recorded in ``failures`` and the batch goes on), then records the
   archive's files;
4. re-runs the configured studies whose sample gained or changed calls since they last
   ran, or whose spec changed (``run_study``, retried on price-download errors);
5. renders the reports that are missing or stale (their catalog parts changed since
   they were rendered: ``reports`` table) for the archive's calls and the studies;
6. logs the run summary and returns it (``WatchSummary``).

``build_deployment`` makes the deployment; serving it (a Prefect server subprocess, a watcher
thread) is ``pipelines.flows.supervisor``.  ``prefect.yaml`` at the repo root declares the
same flow for users who run a Prefect server and work pools.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.tasks import exponential_backoff

from data_catalog import Catalog, CatalogError
from pipelines.archive import CallEntry, ManifestError, read_manifest
from pipelines.exitcodes import one_line
from pipelines.flows.calls import CallStatus, process_archive
from pipelines.flows.runners import RunnerKind, runner_config
from pipelines.speech.models import load_emotion, load_models
from pipelines.settings import get_profile
from pipelines.tables import clear_failure, record_failure

log = logging.getLogger("speechfin.serve")

DEFAULT_CRON = "0 6 * * *"
FORMATS = ("html", "pdf")


class ArchiveGoneError(RuntimeError):
    """The watched archive folder (or its manifest) is not there."""


# ---------------------------------------------------------------------------- stages (plain functions)
def check_inputs(archive: Path, catalog: Catalog) -> None:
    """The archive must hold a manifest and the catalog must be writable; one-line errors otherwise."""
    if not archive.is_dir():
        raise ArchiveGoneError(f"{archive}: archive folder not found (deleted or moved while being served?)")
    if not (archive / "manifest.csv").is_file():
        raise ArchiveGoneError(f"{archive / 'manifest.csv'}: manifest not found")
    from reports.common import is_read_only

    if catalog.root.exists() and is_read_only(catalog.root):
        raise CatalogError(f"{catalog.root}: catalog folder is read-only")
    catalog.ensure_writable()


def archive_key(archive: Path) -> str:
    return hashlib.sha256(str(archive.resolve()).encode()).hexdigest()[:16]


def _row_sha(e: CallEntry) -> str:
    fields = (e.file, e.event_type, e.entity, str(e.event_time), e.title, e.speakers_hint, e.error)
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()[:16]


def _stat(e: CallEntry) -> tuple[int, int]:
    try:
        st = os.stat(e.path) if e.path else None
    except OSError:
        st = None
    return (st.st_size, st.st_mtime_ns) if st else (-1, -1)


def file_states(archive: Path, catalog: Catalog) -> tuple[list[CallEntry], set[tuple]]:
    """The manifest's entries, and the (file, row, size, mtime) of those seen by the last run."""
    entries = read_manifest(archive)
    key = archive_key(archive)
    seen = set()
    if catalog.has("watched_files", key):
        for r in catalog.read("watched_files", key).to_pylist():
            seen.add((r["file"], r["manifest_row"], r["size"], r["mtime_ns"]))
    return entries, seen


def new_entries(entries: list[CallEntry], seen: set[tuple]) -> list[CallEntry]:
    """Entries added or changed (file contents, or manifest row) since the last run."""
    return [e for e in entries if (e.file, _row_sha(e), *_stat(e)) not in seen]


def record_files(archive: Path, catalog: Catalog, entries: list[CallEntry], outcomes: list) -> None:
    """Remember the archive's files as of this run (outcomes in manifest order, from process_archive)."""
    by_pos = len(outcomes) == len(entries)
    by_file = {o.file: o for o in outcomes}
    now = datetime.now(timezone.utc)
    rows = []
    for i, e in enumerate(entries):
        o = outcomes[i] if by_pos else by_file.get(e.file)
        size, mtime = _stat(e)
        rows.append({"archive_key": archive_key(archive), "archive": str(archive.resolve()), "file": e.file,
                     "manifest_row": _row_sha(e), "size": size, "mtime_ns": mtime,
                     "status": str(o.status) if o else "failed", "call_id": o.call_id if o else "", "seen_at": now})
    catalog.write("watched_files", archive_key(archive), rows)


def archive_calls(catalog: Catalog, archive: Path) -> list[str]:
    """call_ids of the catalog's calls whose audio is inside ``archive``."""
    calls = catalog.read("calls").to_pylist()
    root = archive.resolve()
    return [c["call_id"] for c in calls if c["source_uri"] and Path(c["source_uri"]).is_relative_to(root)]


def study_staleness(catalog: Catalog, spec) -> str:
    """Why the study should be re-run ('' when up to date, 'no calls' when its sample is empty)."""
    calls = [c for c in catalog.read("calls").to_pylist() if c["event_type"] == spec.event_type
             and (not spec.entities or c["entity"] in spec.entities)]
    if not calls:
        return "no calls"
    if not catalog.has("study_results", spec.study_id):
        return "not run yet"
    results = catalog.read("study_results", spec.study_id).to_pandas()
    ran = results.loc[(results["kind"] == "meta") & (results["name"] == "spec_text"), "value"]
    if not len(ran) or ran.iloc[0].strip() != spec.text.strip():
        return "spec changed"
    ran_at = catalog.stamp("study_results", spec.study_id) or 0
    for c in calls:
        for table in ("calls", "call_features"):
            if (catalog.stamp(table, c["call_id"]) or 0) > ran_at:
                return "calls added or changed"
    return ""


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: network/price-source errors and I/O errors other than missing files,
    permissions and a full or read-only disk (a retry minutes later meets the same disk)."""
    import errno

    from finance.errors import PriceSourceError

    permanent = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
    full = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
    return isinstance(exc, (PriceSourceError, ConnectionError, TimeoutError)) or (
        isinstance(exc, OSError) and not isinstance(exc, permanent) and exc.errno not in full)


def _retry_if_transient(task, task_run, state) -> bool:
    return is_transient(state.result(raise_on_failure=False))


class StudyStatus(str, enum.Enum):
    UP_TO_DATE = "up to date"
    NO_CALLS = "no calls in its sample yet"
    REFRESHED = "refreshed"
    FAILED = "failed"


@dataclass(frozen=True)
class StudyOutcome:
    """What a refresh did to one study: a status value, and the detail printed after it
    (why it was re-run and its sample line, or the failure)."""

    status: StudyStatus
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.status.value}: {self.detail}" if self.detail else self.status.value


@dataclass
class WatchSummary:
    archive: str
    catalog: str
    n_files: int = 0
    new_files: list[str] = field(default_factory=list)
    processed: list[tuple[str, str]] = field(default_factory=list)   # (file, call_id)
    failed: list[tuple[str, str]] = field(default_factory=list)      # (file, reason)
    studies: dict[str, StudyOutcome] = field(default_factory=dict)   # study -> what happened
    reports: list[str] = field(default_factory=list)
    report_failures: list[str] = field(default_factory=list)
    model_load_s: float = 0.0
    wall_s: float = 0.0

    @property
    def did_nothing(self) -> bool:
        return not (self.new_files or self.reports or self.report_failures
                    or any(o.status in (StudyStatus.REFRESHED, StudyStatus.FAILED) for o in self.studies.values()))

    def summary(self) -> str:
        head = f"watch {self.archive} -> catalog {self.catalog}: "
        if self.did_nothing:
            return head + (f"nothing new ({self.n_files} file(s) known); studies and reports up to date; "
                           f"{self.wall_s:.1f} s")
        lines = [head + f"{len(self.new_files)} new or changed file(s) of {self.n_files}; processed "
                 f"{len(self.processed)}, failed {len(self.failed)}; {len(self.reports)} report(s) written; "
                 f"wall {self.wall_s:.1f} s (model loading {self.model_load_s:.1f} s)"]
        lines += [f"  processed: {f} -> call {c}" for f, c in self.processed]
        lines += [f"  failed: {r}" for _, r in self.failed]
        lines += [f"  study {s}: {what}" for s, what in self.studies.items()]
        lines += [f"  report: {r}" for r in self.reports]
        lines += [f"  report failed: {r}" for r in self.report_failures]
        return "\n".join(lines)


# ---------------------------------------------------------------------------- tasks
@task(name="load-models", cache_policy=NONE, retry_condition_fn=_retry_if_transient)
def load_models_task(profile_name: str) -> float:
    """Load (and cache for process_archive) the front-end models and the SER scorer of the profile."""
    t0 = time.perf_counter()
    profile = get_profile(profile_name)
    load_models(profile)
    load_emotion(profile.ser_checkpoint)
    return time.perf_counter() - t0


@task(name="run-study", cache_policy=NONE, retry_condition_fn=_retry_if_transient)
def study_task(spec: str, catalog_dir: str) -> str:
    from finance.studies import run_study
    from pipelines.study_inputs import CatalogEvidence

    catalog = Catalog(catalog_dir)
    return run_study(spec, catalog, evidence=CatalogEvidence(catalog)).sample_line()


@task(name="render-report", cache_policy=NONE)
def report_task(kind: str, subject: str, catalog_dir: str, out: str) -> str:
    from reports import render_call_report, render_study_report

    fn = render_call_report if kind == "call" else render_study_report
    return str(fn(Catalog(catalog_dir), subject, Path(out)))


def _retrying(t, retries: int, backoff_s: float):
    return t.with_options(retries=retries, retry_delay_seconds=exponential_backoff(backoff_factor=backoff_s))


def refresh_studies(catalog: Catalog, studies: list[str], retries: int, backoff_s: float,
                    summary: WatchSummary) -> None:
    from finance.errors import FinanceError
    from finance.studies import load_spec

    for spec_path in studies:
        try:
            spec = load_spec(spec_path)
        except FinanceError as exc:
            summary.studies[str(spec_path)] = StudyOutcome(StudyStatus.FAILED, str(exc))
            record_failure(catalog, f"study:{spec_path}", "study", str(exc))
            continue
        why = study_staleness(catalog, spec)
        if not why or why == "no calls":
            summary.studies[spec.study_id] = StudyOutcome(StudyStatus.NO_CALLS if why else StudyStatus.UP_TO_DATE)
            continue
        state = _retrying(study_task, retries, backoff_s)(spec_path, str(catalog.root), return_state=True)
        if state.is_completed():
            summary.studies[spec.study_id] = StudyOutcome(StudyStatus.REFRESHED, f"{why}; {state.result()}")
            clear_failure(catalog, f"study:{spec_path}")
        else:
            reason = one_line(state.result(raise_on_failure=False))
            summary.studies[spec.study_id] = StudyOutcome(StudyStatus.FAILED, reason)
            record_failure(catalog, f"study:{spec_path}", "study", reason)


def refresh_reports(catalog: Catalog, archive: Path, studies: list[str], reports_dir: Path, formats: list[str],
                    summary: WatchSummary) -> None:
    from reports import call_report_inputs, is_stale, study_report_inputs

    from finance.errors import FinanceError
    from finance.studies import load_spec

    jobs = [("call", cid, cid, call_report_inputs(catalog, cid)) for cid in archive_calls(catalog, archive)]
    for spec_path in studies:
        try:
            sid = load_spec(spec_path).study_id
        except FinanceError:
            continue  # already reported by refresh_studies
        if catalog.has("study_results", sid):
            jobs.append(("study", sid, spec_path, study_report_inputs(catalog, sid)))
    for kind, sid, subject, inputs in jobs:
        for fmt in formats:
            out = reports_dir / f"{kind}_{sid}.{fmt}"
            if not is_stale(catalog, kind, sid, out, inputs):
                continue
            state = report_task(kind, str(subject), str(catalog.root), str(out), return_state=True)
            if state.is_completed():
                summary.reports.append(state.result())
                clear_failure(catalog, f"report:{out}")
            else:
                reason = one_line(state.result(raise_on_failure=False))
                summary.report_failures.append(f"{out}: {reason}")
                record_failure(catalog, f"report:{out}", "report", reason)


# ---------------------------------------------------------------------------- flow
@flow(name="watch_archive", log_prints=True)
def watch_archive(archive: str, catalog_dir: str, reports_dir: str = "", studies: list[str] | None = None,
                  profile: str = "embedded", formats: list[str] | None = None, retries: int = 3,
                  retry_backoff_s: float = 10.0, runner: str = "sequential", workers: int = 0,
                  address: str = "") -> WatchSummary:
    """Pick up the recordings added to ``archive`` since the last run, process them, refresh the
    affected studies and reports, and log a run summary.  ``reports_dir`` defaults to
    ``<catalog>/reports``; ``studies`` are spec files (or bundled spec names); ``runner``,
    ``workers`` and ``address`` as for ``speechfin run`` (``pipelines.flows.runners``)."""
    t0 = time.perf_counter()
    logger = get_run_logger()
    root, catalog = Path(archive), Catalog(catalog_dir)
    studies, formats = list(studies or []), list(formats or ["html"])
    out_dir = Path(reports_dir) if reports_dir else catalog.root / "reports"
    check_inputs(root, catalog)
    summary = WatchSummary(str(root), str(catalog.root))
    try:
        entries, seen = file_states(root, catalog)
    except ManifestError as exc:
        raise ArchiveGoneError(str(exc)) from None
    fresh = new_entries(entries, seen)
    summary.n_files, summary.new_files = len(entries), [e.file for e in fresh]
    if fresh:
        logger.info("%s: %d new or changed file(s): %s", root, len(fresh), ", ".join(summary.new_files[:10]))
        run_on = runner_config(runner, workers, address)
        if run_on.kind == RunnerKind.SEQUENTIAL:  # on a cluster, each worker loads its own
            summary.model_load_s = _retrying(load_models_task, retries, retry_backoff_s)(profile)
        result = process_archive(str(root), str(catalog.root), get_profile(profile), False, False, run_on)
        if not root.is_dir():  # deleted while processing: what was processed is complete, the rest is not
            raise ArchiveGoneError(f"{root}: archive folder was deleted during the run "
                                   f"({result.count('processed')} call(s) processed before); stopping")
        summary.processed = [(o.file, o.call_id) for o in result.outcomes
                             if o.status in (CallStatus.PROCESSED, CallStatus.RESCORED, CallStatus.METADATA_UPDATED)]
        summary.failed = [(o.file, o.reason) for o in result.outcomes if o.status == CallStatus.FAILED]
        if result.error is not None:
            summary.failed.append((str(root), one_line(result.error)))
        record_files(root, catalog, entries, result.outcomes)
    refresh_studies(catalog, studies, retries, retry_backoff_s, summary)
    refresh_reports(catalog, root, studies, out_dir, formats, summary)
    if summary.reports:
        catalog.refresh_views()
    summary.wall_s = time.perf_counter() - t0
    logger.info(summary.summary())
    return summary


# ---------------------------------------------------------------------------- serving
def check_cron(cron: str) -> None:
    """ValueError with a one-line reason if ``cron`` is not a cron schedule Prefect accepts."""
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=cron, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"--cron {cron!r}: not a valid cron schedule ({str(exc).splitlines()[-1].strip()})") from None


def build_deployment(archive: Path, catalog_dir: Path, cron: str = DEFAULT_CRON, reports_dir: Path | None = None,
                     studies: list[str] | None = None, profile: str = "embedded", formats: list[str] | None = None,
                     name: str | None = None, runner: str = "sequential", workers: int = 0, address: str = ""):
    """The deployment ``speechfin serve`` serves: ``watch_archive`` on a cron schedule (UTC)."""
    params = {"archive": str(archive.resolve()), "catalog_dir": str(catalog_dir.resolve()),
              "reports_dir": str(reports_dir.resolve()) if reports_dir else "", "studies": list(studies or []),
              "profile": profile, "formats": list(formats or ["html"]), "runner": runner, "workers": workers,
              "address": address}
    return watch_archive.to_deployment(name=name or f"watch-{archive.resolve().name}", cron=cron, parameters=params,
                                       tags=["speechfin"], description=f"Process new recordings of {archive} "
                                                                       f"into {catalog_dir} ({cron}, UTC)")
