"""Prefect flows: ``process_call`` (one recording) and ``process_archive`` (a manifest).

Every task is a thin wrapper around a plain stage function of ``pipelines``; nothing else
in speechfin imports Prefect.  Models are loaded once per process (``load_models``) and
shared by every call of an archive.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from data_catalog import Catalog
from pipelines import progress
from pipelines.archive import CallEntry, read_manifest
from pipelines.asr import words_of
from pipelines.audio import decode_audio, file_sha256
from pipelines.models import load_emotion, load_models
from pipelines.roles import assign_roles, assign_sections, parse_speakers_hint
from pipelines.settings import Profile, get_profile
from pipelines.speech import diarize_audio, transcribe_audio, voice_activity
from pipelines.tables import (CallResult, call_rows, clear_failure, emotions_current, is_complete, link_voices,
                              read_call, record_failure, write_call)
from pipelines.turns import assign_speakers, build_segments

STAGES = ("decode", "voice activity", "diarize", "transcribe", "speakers & sections", "emotions", "write tables")


class StageError(RuntimeError):
    """A stage failed; ``stage`` names it, the message names the file and the problem."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


@dataclass
class CallOutcome:
    file: str
    status: str  # processed | rescored (emotion tables only) | skipped | failed
    call_id: str = ""
    reason: str = ""
    stage: str = ""
    duration_s: float = 0.0
    wall_s: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    n_speakers: int = 0
    n_segments: int = 0


@dataclass
class ArchiveSummary:
    archive: str
    catalog: str
    outcomes: list[CallOutcome]
    wall_s: float
    model_load_s: float = 0.0

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def audio_hours(self) -> float:
        return sum(o.duration_s for o in self.outcomes if o.status == "processed") / 3600

    @property
    def rtf(self) -> float:
        audio = self.audio_hours * 3600
        return sum(o.wall_s for o in self.outcomes if o.status == "processed") / audio if audio else float("nan")

    @property
    def changed(self) -> bool:
        return any(o.status in ("processed", "rescored") for o in self.outcomes)

    def summary(self) -> str:
        lines = [f"archive {self.archive} -> catalog {self.catalog}",
                 f"processed {self.count('processed')}, emotions recomputed {self.count('rescored')}, "
                 f"skipped {self.count('skipped')} (already in the catalog), "
                 f"failed {self.count('failed')}; audio {self.audio_hours:.3f} h; wall {self.wall_s:.1f} s "
                 f"(model loading {self.model_load_s:.1f} s); real-time factor "
                 + ("n/a (no audio processed)" if math.isnan(self.rtf) else f"{self.rtf:.3f}")]
        for o in self.outcomes:
            if o.status == "failed":
                lines.append(f"  failed: {o.reason}")
        return "\n".join(lines)


def _run_stage(name: str, times: dict[str, float], fn, *args, **kwargs):
    progress.stage_started(name)
    t0 = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    except StageError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised with the stage name
        raise StageError(name, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    finally:
        times[name] = time.perf_counter() - t0
        progress.stage_done()


# ---------------------------------------------------------------------------- tasks
@task(name="decode", cache_policy=NONE)
def decode_task(path: str):
    return decode_audio(path)


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
def speakers_task(asr_segments, diarization, event_type: str, speakers_hint: str):
    words = assign_speakers(words_of(asr_segments), diarization.turns)
    segments = build_segments(words)
    speakers = assign_roles(segments, event_type, parse_speakers_hint(speakers_hint))
    return assign_sections(segments, speakers), speakers


@task(name="emotions", cache_policy=NONE)
def emotions_task(audio, segments, speakers, profile: Profile):
    from pipelines.emotion import score_call_emotions

    return score_call_emotions(audio, segments, speakers, audio.call_id, scorer=load_emotion(profile.ser_checkpoint))


@task(name="write-tables", cache_policy=NONE)
def write_task(catalog_dir: str, result: CallResult, emotions) -> None:
    catalog = Catalog(catalog_dir)
    voice_ids = link_voices(catalog, result.audio.call_id, result.embeddings, result.embedding_model)
    write_call(catalog, result.audio.call_id, call_rows(result, voice_ids) | emotions.tables())
    clear_failure(catalog, result.entry.path, result.entry.row)


@task(name="write-emotion-tables", cache_policy=NONE)
def write_emotions_task(catalog_dir: str, call_id: str, emotions) -> None:
    write_call(Catalog(catalog_dir), call_id, emotions.tables())


# ---------------------------------------------------------------------------- flows
@flow(name="process_call", validate_parameters=False, log_prints=True)
def process_call(entry: CallEntry, catalog_dir: str, profile: Profile | None = None, force: bool = False) -> CallOutcome:
    """Decode, detect speech, diarize, transcribe, attribute words, find roles and sections,
    score emotions, and write the call's tables.

    Incremental: a call already in the catalog (same ``call_id``, pipeline version and
    profile) is skipped, unless ``force``; if only its SER model changed, only the emotion
    tables are recomputed (from the stored segments)."""
    profile = profile or get_profile("embedded")
    logger = get_run_logger()
    catalog = Catalog(catalog_dir)
    if entry.error:
        raise StageError("manifest", entry.error)
    t0 = time.perf_counter()
    progress.call_started(entry.file, len(STAGES))
    call_id = file_sha256(Path(entry.path))[:16] if Path(entry.path).is_file() else ""
    times: dict[str, float] = {}
    if call_id and not force and is_complete(catalog, call_id, profile.name):
        model_id = load_emotion(profile.ser_checkpoint).model_id
        if emotions_current(catalog, call_id, model_id):
            logger.info("%s: skipped, already in the catalog as call %s", entry.file, call_id)
            return CallOutcome(entry.file, "skipped", call_id)
        audio = _run_stage("decode", times, decode_task, entry.path)
        segments, speakers = read_call(catalog, call_id)
        emotions = _run_stage("emotions", times, emotions_task, audio, segments, speakers, profile)
        _run_stage("write tables", times, write_emotions_task, str(catalog.root), call_id, emotions)
        wall = time.perf_counter() - t0
        logger.info("%s: call %s, emotions recomputed with %s in %.1f s", entry.file, call_id, model_id, wall)
        return CallOutcome(entry.file, "rescored", call_id, duration_s=audio.duration_s, wall_s=wall,
                           stage_seconds=times, n_speakers=len(speakers), n_segments=len(segments))
    audio = _run_stage("decode", times, decode_task, entry.path)
    speech = _run_stage("voice activity", times, vad_task, audio, profile)
    hint = parse_speakers_hint(entry.speakers_hint)
    diar = _run_stage("diarize", times, diarize_task, audio, speech, profile, hint.num_speakers)
    asr_segments = _run_stage("transcribe", times, transcribe_task, audio, speech, profile)
    segments, speakers = _run_stage("speakers & sections", times, speakers_task, asr_segments, diar,
                                    entry.event_type, entry.speakers_hint)
    emotions = _run_stage("emotions", times, emotions_task, audio, segments, speakers, profile)
    embedding_model = "pyannote" if load_models(profile).pyannote is not None else "resemblyzer-ge2e"
    result = CallResult(entry, audio, speakers, segments, diar.embeddings, embedding_model, profile.name)
    _run_stage("write tables", times, write_task, str(catalog.root), result, emotions)
    wall = time.perf_counter() - t0
    logger.info("%s: call %s, %.1f s of audio, %d speech regions, %d speakers, %d segments in %.1f s (RTF %.3f); %s",
                entry.file, audio.call_id, audio.duration_s, len(speech), len(speakers), len(segments), wall,
                wall / audio.duration_s, ", ".join(f"{k} {v:.1f}s" for k, v in times.items()))
    return CallOutcome(entry.file, "processed", audio.call_id, duration_s=audio.duration_s, wall_s=wall,
                       stage_seconds=times, n_speakers=len(speakers), n_segments=len(segments))


@flow(name="process_archive", validate_parameters=False, log_prints=True)
def process_archive(archive: str, catalog_dir: str, profile: Profile | None = None, force: bool = False,
                    show_progress: bool = True) -> ArchiveSummary:
    """Map ``process_call`` over the manifest; a failed call is recorded and the batch goes on."""
    profile = profile or get_profile("embedded")
    logger = get_run_logger()
    t0 = time.perf_counter()
    catalog = Catalog(catalog_dir)
    catalog.ensure_writable()
    entries = read_manifest(archive)
    outcomes: list[CallOutcome] = []
    models, load_s = None, 0.0
    with progress.progress_bars(len(entries), enabled=show_progress):
        for entry in entries:
            if models is None and not entry.error:
                t_load = time.perf_counter()
                models = load_models(profile)
                load_emotion(profile.ser_checkpoint)
                load_s = time.perf_counter() - t_load
            state = process_call(entry, str(catalog.root), profile, force, return_state=True)
            if state.is_completed():
                outcomes.append(state.result())
            else:
                exc = state.result(raise_on_failure=False)
                stage = getattr(exc, "stage", "pipeline")
                reason = str(exc) or type(exc).__name__
                if entry.path and entry.path not in reason:
                    reason = f"{entry.path}: {reason}"
                record_failure(catalog, entry.path or f"{archive}/{entry.file}", stage, reason, entry.row)
                logger.warning("%s: failed in %s: %s", entry.file, stage, reason)
                outcomes.append(CallOutcome(entry.file, "failed", reason=reason, stage=stage))
            progress.call_done()
    catalog.refresh_views()
    summary = ArchiveSummary(archive, str(catalog.root), outcomes, time.perf_counter() - t0, load_s)
    logger.info(summary.summary())
    return summary
