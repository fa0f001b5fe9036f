"""Plain (Prefect-free) compositions of the front-end stages, for evaluation and benchmarks."""

from __future__ import annotations

from pathlib import Path

from pipelines.asr import AsrSegment, transcribe
from pipelines.audio import decode_audio
from pipelines.diarization import Diarization, diarize
from pipelines.models import load_models
from pipelines.segmentation import run_segmentation
from pipelines.settings import get_profile
from pipelines.types import Audio
from pipelines.vad import detect_speech


def diarize_audio(audio: Audio, profile: str = "embedded", num_speakers: int | None = None) -> Diarization:
    prof = get_profile(profile)
    models = load_models(prof)
    if models.pyannote is not None:
        return models.pyannote(audio, num_speakers)
    return diarize(audio, run_segmentation(audio, models.segmentation), models.encoder, num_speakers, prof.diarization)


def diarize_file(path: str | Path, profile: str = "embedded", num_speakers: int | None = None) -> Diarization:
    return diarize_audio(decode_audio(path), profile, num_speakers)


def transcribe_audio(audio: Audio, profile: str = "embedded") -> list[AsrSegment]:
    models = load_models(get_profile(profile))
    speech = detect_speech(run_segmentation(audio, models.segmentation))
    return transcribe(audio, speech, models.asr)


def transcribe_file(path: str | Path, profile: str = "embedded") -> str:
    """Transcript text of a recording (VAD + WhisperX chunks, as in the flow)."""
    return " ".join(s.text for s in transcribe_audio(decode_audio(path, min_duration_s=0.1), profile))
