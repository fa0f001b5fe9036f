"""Prefect flows: ``process_call`` (one recording) and ``process_archive`` (a manifest).

Every task is a thin wrapper around a plain stage function of ``pipelines``; nothing else
in speechfin imports Prefect.  Models are loaded once per process (``load_models``) and
shared by every call of an archive.

With a Dask or Ray runner (``pipelines.flows.runners``) each call is one task on a worker,
``run_call``: the same stages, called directly rather than as Prefect tasks.  After the batch
come the catalog-wide steps: voice identities across calls (``pipelines.voices``), then the
per-person baselines (``pipelines.baselines``).
"""

from __future__ import annotations

import contextvars
import enum
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from data_catalog import Catalog, CatalogError
from pipelines.flows import progress
from pipelines.archive import CallEntry, ManifestError, read_manifest
from pipelines.speech.asr import words_of
from pipelines.speech.audio import AudioError, decode_audio, file_sha256
from pipelines.baselines import update_baselines
from pipelines.exitcodes import one_line
from pipelines.corrections import describe_changes, reassign_roles, update_call_metadata
from pipelines.speech.models import ModelLoadError, load_emotion, load_models
from pipelines.roles import parse_speakers_hint
from pipelines.flows.runners import RunnerConfig, RunnerError, RunnerKind, WorkerDied, open_pool, worker_stats
from pipelines.settings import Profile, get_profile
from pipelines.speech.frontend import diarize_audio, transcribe_audio, voice_activity
from pipelines.tables import (CallResult, call_rows, clear_failure, emotions_current, is_complete, read_call,
                              record_failure, transcript_current, write_call)
from pipelines.speech.transcripts import call_speech
from pipelines.voices import link_voices_catalog

# False in ``run_call`` (a Dask or Ray worker): stages are called directly, not as Prefect tasks
TRACKED: contextvars.ContextVar[bool] = contextvars.ContextVar("speechfin_tracked", default=True)

STAGES = ("decode", "voice activity", "diarize", "transcribe", "speakers & sections", "emotions", "write tables")


class StageError(RuntimeError):
    """A stage failed; ``stage`` names it, the message names the file and the problem."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


class CallStatus(str, enum.Enum):
    """What happened to one manifest row (the value is the word the run summary prints)."""

    PROCESSED = "processed"
    RESCORED = "rescored"  # emotion tables only (the SER model changed)
    METADATA_UPDATED = "metadata updated"  # a corrected manifest row: the calls row only, no audio work
    SKIPPED = "skipped"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


@dataclass
class CallOutcome:
    file: str
    status: CallStatus
    call_id: str = ""
    reason: str = ""
    stage: str = ""
    duration_s: float = 0.0
    wall_s: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    n_speakers: int = 0
    n_segments: int = 0
    warning: str = ""  # one line: the call is in the catalog, but something about it needs a look
    worker: str = ""  # host:pid of the process that ran it
    peak_rss_mb: float = 0.0  # that process's peak RSS when the call ended
    model_load_s: float = 0.0  # models loaded by that process for this call (its first one)


@dataclass
class ArchiveSummary:
    archive: str
    catalog: str
    outcomes: list[CallOutcome]
    wall_s: float
    model_load_s: float = 0.0
    error: Exception | None = None  # the run stopped: bad manifest, a model that cannot load, a catalog write
    runner: str = "sequential"
    voices: str = ""  # what the voice-linking step did

    def count(self, status: CallStatus) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def audio_hours(self) -> float:
        return sum(o.duration_s for o in self.outcomes if o.status == CallStatus.PROCESSED) / 3600

    @property
    def rtf(self) -> float:
        audio = self.audio_hours * 3600
        return sum(o.wall_s for o in self.outcomes if o.status == CallStatus.PROCESSED) / audio if audio else float("nan")

    @property
    def changed(self) -> bool:
        return changed(self.outcomes)

    def worker_peak_rss_mb(self) -> dict[str, float]:
        """Peak RSS of each process that ran calls (MB)."""
        out: dict[str, float] = {}
        for o in self.outcomes:
            if o.worker:
                out[o.worker] = max(out.get(o.worker, 0.0), o.peak_rss_mb)
        return out

    def summary(self) -> str:
        rss = self.worker_peak_rss_mb()
        lines = [f"archive {self.archive} -> catalog {self.catalog} ({self.runner}"
                 + (f"; peak RSS per worker {', '.join(f'{v:,.0f}' for v in rss.values())} MB" if rss else "") + ")",
                 f"processed {self.count(CallStatus.PROCESSED)}, emotions recomputed {self.count(CallStatus.RESCORED)}, "
                 f"metadata updated {self.count(CallStatus.METADATA_UPDATED)}, "
                 f"skipped {self.count(CallStatus.SKIPPED)} (already in the catalog), "
                 f"failed {self.count(CallStatus.FAILED)}; audio {self.audio_hours:.3f} h; wall {self.wall_s:.1f} s "
                 f"(model loading {self.model_load_s:.1f} s); real-time factor "
                 + ("n/a (no audio processed)" if math.isnan(self.rtf) else f"{self.rtf:.3f}")]
        for o in self.outcomes:
            if o.status == CallStatus.FAILED:
                lines.append(f"  failed: {o.reason}")
            elif o.status == CallStatus.METADATA_UPDATED:
                lines.append(f"  metadata updated: {o.file} (call {o.call_id}): {o.reason}")
            if o.warning:
                lines.append(f"  warning: {o.warning}")
        if self.voices:
            lines.append(f"  voices: {self.voices}")
        if self.error is not None:
            lines.append(f"  stopped: {one_line(self.error)}")
        return "\n".join(lines)


def _run_stage(name: str, times: dict[str, float], fn, *args, **kwargs):
    if not TRACKED.get():
        fn = fn.fn  # on a Dask or Ray worker: the stage function itself, no Prefect API calls
    progress.stage_started(name)
    t0 = time.perf_counter()
    try:
        out = fn(*args, **kwargs)
    except StageError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised with the stage name (Prefect has logged the task's traceback)
        raise StageError(name, one_line(exc)) from exc
    finally:
        times[name] = time.perf_counter() - t0
        progress.stage_done()
    if isinstance(out, EXPECTED_ERRORS):
        raise StageError(name, one_line(out))
    return out


# ---------------------------------------------------------------------------- tasks
# Expected failures (a bad recording, a full disk) are returned as values, not raised: Prefect
# logs every exception raised in a task as a crash, with a traceback, and these are one-line
# reasons of the run summary.  ``_run_stage`` turns them into a ``StageError``.
EXPECTED_ERRORS = (AudioError, CatalogError)


@task(name="decode", cache_policy=NONE)
def decode_task(path: str):
    try:
        return decode_audio(path)
    except AudioError as exc:
        return exc


@task(name="voice-activity", cache_policy=NONE)
def vad_task(audio, profile: Profile):
    return voice_activity(audio, profile)


@task(name="diarize", cache_policy=NONE)
def diarize_task(audio, speech, profile: Profile, num_speakers: int | None):
    return diarize_audio(audio, profile, num_speakers, speech)


@task(name="transcribe", cache_policy=NONE)
def transcribe_task(audio, speech, profile: Profile):
    return transcribe_audio(audio, profile, speech)


@task(name="speakers-and-sections", cache_policy=NONE)
def speakers_task(asr_segments, diarization, entry: CallEntry):
    return call_speech(words_of(asr_segments), diarization.turns, diarization.embeddings, entry.event_type,
                       entry.speakers_hint, entry.transcript)


@task(name="emotions", cache_policy=NONE)
def emotions_task(audio, segments, speakers, profile: Profile, event_type: str):
    from pipelines.speech.emotion import score_call_emotions

    return score_call_emotions(audio, segments, speakers, audio.call_id, scorer=load_emotion(profile.ser_checkpoint),
                               event_type=event_type)


@task(name="write-tables", cache_policy=NONE)
def write_task(catalog_dir: str, result: CallResult, emotions) -> CatalogError | None:
    """The call's tables; its voices get their cross-call ids after the batch (``link_voices_catalog``)."""
    catalog = Catalog(catalog_dir)
    try:
        write_call(catalog, result.audio.call_id, call_rows(result) | emotions.tables())
    except CatalogError as exc:
        return exc
    return None


@task(name="write-emotion-tables", cache_policy=NONE)
def write_emotions_task(catalog_dir: str, call_id: str, emotions) -> CatalogError | None:
    try:
        write_call(Catalog(catalog_dir), call_id, emotions.tables())
    except CatalogError as exc:
        return exc
    return None


@task(name="reassign-roles", cache_policy=NONE)
def roles_task(segments, speakers, event_type: str, speakers_hint: str):
    return reassign_roles(segments, speakers, event_type, speakers_hint)


@task(name="write-role-tables", cache_policy=NONE)
def write_roles_task(catalog_dir: str, result: CallResult, emotions) -> CatalogError | None:
    """The ``speakers`` and ``segments`` parts (words are unchanged), the emotion tables, and ``calls``."""
    try:
        voice_ids = {s.speaker: s.voice_id for s in result.speakers}
        rows = call_rows(result, voice_ids)
        write_call(Catalog(catalog_dir), result.audio.call_id,
                   {k: rows[k] for k in ("speakers", "segments", "calls")} | emotions.tables(voice_ids))
    except CatalogError as exc:
        return exc
    return None


@task(name="update-metadata", cache_policy=NONE)
def metadata_task(catalog_dir: str, call_id: str, entry: CallEntry) -> dict | CatalogError:
    try:
        return update_call_metadata(Catalog(catalog_dir), call_id, entry)
    except CatalogError as exc:
        return exc


# ---------------------------------------------------------------------------- flows
@flow(name="process_call", validate_parameters=False, log_prints=True)
def process_call(entry: CallEntry, catalog_dir: str, profile: Profile | None = None, force: bool = False) -> CallOutcome:
    """Decode, detect speech, diarize, transcribe, attribute words, find roles and sections,
    score emotions, and write the call's tables.

    Incremental: a call already in the catalog (same ``call_id``, pipeline version and
    profile) is skipped, unless ``force``; if its manifest metadata changed, only its
    ``calls`` row is updated; if only its SER model changed, only the emotion tables are
    recomputed (from the stored segments).

    An expected failure (a bad manifest row, a bad recording, no speech, a catalog write)
    is a ``failed`` outcome with a one-line reason, not an exception: the flow run completes."""
    if entry.error:
        return CallOutcome(entry.file, CallStatus.FAILED, reason=entry.error, stage="manifest")
    t0 = time.perf_counter()
    times: dict[str, float] = {}
    try:
        return _process_call(entry, Catalog(catalog_dir), profile or get_profile("embedded"), force, t0, times)
    except StageError as exc:
        reason = str(exc) if entry.path in str(exc) else f"{entry.path}: {exc}"
        return CallOutcome(entry.file, CallStatus.FAILED, reason=reason, stage=exc.stage,
                           wall_s=time.perf_counter() - t0, stage_seconds=times)


def _process_call(entry: CallEntry, catalog: Catalog, profile: Profile, force: bool, t0: float,
                  times: dict[str, float]) -> CallOutcome:
    logger = _logger()
    progress.call_started(entry.file, len(STAGES))
    call_id = file_sha256(Path(entry.path))[:16] if Path(entry.path).is_file() else ""
    if call_id and not force and is_complete(catalog, call_id, profile.name) and \
            transcript_current(catalog, call_id, entry.transcript and file_sha256(Path(entry.transcript))):
        changes = _run_stage("write tables", times, metadata_task, str(catalog.root), call_id, entry)
        model_id = load_emotion(profile.ser_checkpoint).model_id
        if "event_type" in changes:  # roles and sections depend on it, and the emotion features on them
            return _reassign_roles(entry, catalog, profile, call_id, changes, t0, times)
        if emotions_current(catalog, call_id, model_id):
            if changes:
                logger.info("%s: call %s, metadata updated: %s", entry.file, call_id, describe_changes(changes))
                return CallOutcome(entry.file, CallStatus.METADATA_UPDATED, call_id, reason=describe_changes(changes))
            logger.info("%s: skipped, already in the catalog as call %s", entry.file, call_id)
            return CallOutcome(entry.file, CallStatus.SKIPPED, call_id)
        audio = _run_stage("decode", times, decode_task, entry.path)
        segments, speakers = read_call(catalog, call_id)
        emotions = _run_stage("emotions", times, emotions_task, audio, segments, speakers, profile, entry.event_type)
        _run_stage("write tables", times, write_emotions_task, str(catalog.root), call_id, emotions)
        wall = time.perf_counter() - t0
        logger.info("%s: call %s, emotions recomputed with %s in %.1f s", entry.file, call_id, model_id, wall)
        return CallOutcome(entry.file, CallStatus.RESCORED, call_id, duration_s=audio.duration_s, wall_s=wall,
                           stage_seconds=times, n_speakers=len(speakers), n_segments=len(segments),
                           reason=describe_changes(changes), warning=audio.warning)
    audio = _run_stage("decode", times, decode_task, entry.path)
    speech = _run_stage("voice activity", times, vad_task, audio, profile)
    if not speech:
        raise StageError("voice activity", f"{entry.path}: no speech found ({audio.duration_s:.1f} s of audio, "
                                           f"no voice activity)")
    hint = parse_speakers_hint(entry.speakers_hint)
    diar = _run_stage("diarize", times, diarize_task, audio, speech, profile, hint.num_speakers)
    asr_segments = _run_stage("transcribe", times, transcribe_task, audio, speech, profile)
    speech_ = _run_stage("speakers & sections", times, speakers_task, asr_segments, diar, entry)
    segments, speakers = speech_.segments, speech_.speakers
    if speech_.warning:
        logger.warning("%s: %s", entry.file, speech_.warning)
    if not segments or not speakers:
        raise StageError("transcribe", f"{entry.path}: no speech found ({audio.duration_s:.1f} s of audio, "
                                       f"no words transcribed)")
    emotions = _run_stage("emotions", times, emotions_task, audio, segments, speakers, profile, entry.event_type)
    embedding_model = load_models(profile).embedding_model
    result = CallResult(entry, audio, speakers, segments, speech_.embeddings, embedding_model, profile.name,
                        transcript=speech_.transcript, disagreements=speech_.disagreements)
    _run_stage("write tables", times, write_task, str(catalog.root), result, emotions)
    wall = time.perf_counter() - t0
    logger.info("%s: call %s, %.1f s of audio, %d speech regions, %d speakers, %d segments in %.1f s (RTF %.3f); %s",
                entry.file, audio.call_id, audio.duration_s, len(speech), len(speakers), len(segments), wall,
                wall / audio.duration_s, ", ".join(f"{k} {v:.1f}s" for k, v in times.items()))
    return CallOutcome(entry.file, CallStatus.PROCESSED, audio.call_id, duration_s=audio.duration_s, wall_s=wall,
                       stage_seconds=times, n_speakers=len(speakers), n_segments=len(segments),
                       warning="; ".join(w for w in (audio.warning, speech_.warning) if w))


def _logger():
    """The Prefect run logger inside a flow run, else the module's (on a Dask or Ray worker)."""
    return get_run_logger() if TRACKED.get() else logging.getLogger("speechfin.flows")


def run_call(entry: CallEntry, catalog_dir: str, profile: Profile, force: bool = False) -> CallOutcome:
    """``process_call`` without Prefect: the task a Dask or Ray worker runs for one call.  The
    outcome names the worker and its peak RSS."""
    token = TRACKED.set(False)
    t0 = time.perf_counter()
    try:
        load_models(profile)  # cached per process: a worker loads them for its first call only
        load_emotion(profile.ser_checkpoint)
        load_s = time.perf_counter() - t0
        outcome = process_call.fn(entry, catalog_dir, profile, force)
    finally:
        TRACKED.reset(token)
    outcome.worker, outcome.peak_rss_mb = worker_stats()
    outcome.model_load_s = load_s
    return outcome


def _reassign_roles(entry: CallEntry, catalog: Catalog, profile: Profile, call_id: str, changes: dict,
                    t0: float, times: dict[str, float]) -> CallOutcome:
    """A corrected event_type: roles and sections again from the stored segments, then the
    emotion tables (decode and SER; no voice activity, diarization or transcription)."""
    audio = _run_stage("decode", times, decode_task, entry.path)
    segments, speakers = _run_stage("speakers & sections", times, roles_task, *read_call(catalog, call_id),
                                    entry.event_type, entry.speakers_hint)
    emotions = _run_stage("emotions", times, emotions_task, audio, segments, speakers, profile, entry.event_type)
    result = CallResult(entry, audio, speakers, segments, {}, "", profile.name)
    _run_stage("write tables", times, write_roles_task, str(catalog.root), result, emotions)
    reason = f"{describe_changes(changes)} (roles, sections and emotion tables recomputed from the stored words)"
    _logger().info("%s: call %s, metadata updated: %s", entry.file, call_id, reason)
    return CallOutcome(entry.file, CallStatus.METADATA_UPDATED, call_id, reason=reason,
                       wall_s=time.perf_counter() - t0, stage_seconds=times, n_speakers=len(speakers),
                       n_segments=len(segments), warning=audio.warning)


@flow(name="process_archive", validate_parameters=False, log_prints=True)
def process_archive(archive: str, catalog_dir: str, profile: Profile | None = None, force: bool = False,
                    show_progress: bool = True, runner: RunnerConfig | None = None) -> ArchiveSummary:
    """Map ``process_call`` over the manifest (in this process, or as ``run_call`` tasks on a
    Dask or Ray cluster: ``runner``); a failed call is recorded and the batch goes on.  Then the
    catalog-wide steps: voice identities, per-person baselines, compaction of a large batch.

    What stops the whole run (a bad manifest, a model that cannot load, a catalog that
    cannot be written, even to record a failure, a cluster that cannot be reached) is returned
    in ``ArchiveSummary.error``, not raised, so that it reads as one line."""
    profile = profile or get_profile("embedded")
    runner = runner or RunnerConfig()
    logger = get_run_logger()
    t0 = time.perf_counter()
    catalog = Catalog(catalog_dir)
    outcomes: list[CallOutcome] = []
    position: dict[int, int] = {}  # id(outcome) -> its manifest row's position: the summary lists them in that order
    load_s, voices = 0.0, ""

    def done(error: Exception | None = None) -> ArchiveSummary:
        in_order = sorted(outcomes, key=lambda o: position[id(o)])
        summary = ArchiveSummary(archive, str(catalog.root), in_order, time.perf_counter() - t0, load_s, error,
                                 runner.describe(), voices)
        logger.info(summary.summary())
        return summary

    def record(entry: CallEntry, outcome: CallOutcome) -> None:
        outcomes.append(outcome)
        position[id(outcome)] = index[id(entry)]
        if outcome.status == CallStatus.FAILED:
            record_failure(catalog, entry.source, outcome.stage, outcome.reason, entry.row)
            logger.warning("%s: failed in %s: %s", entry.file, outcome.stage, outcome.reason)
        else:
            clear_failure(catalog, entry.source, entry.row)
        progress.call_done()

    try:
        catalog.ensure_writable()
        entries = read_manifest(archive)
    except (CatalogError, ManifestError) as exc:
        return done(exc)
    index = {id(e): i for i, e in enumerate(entries)}
    first: dict[str, CallEntry] = {}  # call_id -> the first row listing that audio
    todo: list[CallEntry] = []
    with progress.progress_bars(len(entries), enabled=show_progress):
        try:
            for entry in entries:  # bad rows and repeated audio are settled here, the rest is work
                outcome = _duplicate(entry, first)
                if outcome is None and entry.error:
                    outcome = CallOutcome(entry.file, CallStatus.FAILED, reason=entry.error, stage="manifest")
                if outcome is not None:
                    record(entry, outcome)
                else:
                    todo.append(entry)
            if runner.kind == RunnerKind.SEQUENTIAL:
                for entry in todo:
                    if not load_s:
                        t_load = time.perf_counter()
                        load_models(profile)
                        load_emotion(profile.ser_checkpoint)
                        load_s = time.perf_counter() - t_load
                    state = process_call(entry, str(catalog.root), profile, force, return_state=True)
                    # an unexpected exception: Prefect has logged its traceback
                    record(entry, state.result() if state.is_completed() else
                           _crashed(entry, state.result(raise_on_failure=False)))
            elif todo:
                with open_pool(runner) as pool:
                    for d in pool.run(run_call, todo, (str(catalog.root), profile, force)):
                        if isinstance(d.error, ModelLoadError):
                            raise d.error
                        record(d.item, d.result if d.error is None else _crashed(d.item, d.error))
                load_s = max((o.model_load_s for o in outcomes), default=0.0)  # the slowest worker's
        except (ModelLoadError, CatalogError, RunnerError) as exc:
            return done(exc)
    try:
        voices = link_voices_catalog(catalog).line()  # quick when no call is unlinked
        # a run that changed nothing leaves the baselines as they are (unless a catalog has none yet)
        if changed(outcomes) or set(catalog.keys("calls")) - set(catalog.keys("speaker_baselines")):
            update_baselines(catalog)
        if catalog.pending_calls() >= COMPACT_AFTER_CALLS:
            for r in catalog.compact():
                logger.info("compacted %s", r.line())
        catalog.refresh_views()
    except CatalogError as exc:
        return done(exc)
    return done()


COMPACT_AFTER_CALLS = 64  # a batch leaving this many calls not compacted compacts the catalog


def _crashed(entry: CallEntry, exc: BaseException) -> CallOutcome:
    """The outcome of a call that ended in an unexpected exception or a dead worker."""
    reason = one_line(exc)
    stage = "worker" if isinstance(exc, WorkerDied) else getattr(exc, "stage", "pipeline")
    return CallOutcome(entry.file, CallStatus.FAILED, stage=stage,
                       reason=reason if entry.path and entry.path in reason else f"{entry.path or entry.source}: {reason}")


def changed(outcomes: list[CallOutcome]) -> bool:
    """Did any call of the batch change the catalog (processed, rescored or metadata updated)?"""
    return any(o.status in (CallStatus.PROCESSED, CallStatus.RESCORED, CallStatus.METADATA_UPDATED) for o in outcomes)


def _duplicate(entry: CallEntry, first: dict[str, CallEntry]) -> CallOutcome | None:
    """A ``skipped`` outcome, with a warning when the metadata differ, if ``entry`` lists the
    same audio (same content hash) as an earlier row; else None (and ``entry`` is remembered)."""
    if entry.error or not Path(entry.path).is_file():
        return None
    call_id = file_sha256(Path(entry.path))[:16]
    if call_id not in first:
        first[call_id] = entry
        return None
    prev = first[call_id]
    same = f"same audio as manifest row {prev.row} ({prev.file}, call {call_id})"
    diff = [k for k, v in entry.metadata().items() if prev.metadata()[k] != v]
    if not diff:
        return CallOutcome(entry.file, CallStatus.SKIPPED, call_id, reason=same)
    return CallOutcome(entry.file, CallStatus.SKIPPED, call_id, reason=same,
                       warning=f"{entry.source} (manifest row {entry.row}): {same}, with different "
                               f"{', '.join(diff)}; kept row {prev.row}'s metadata, this row is ignored")
