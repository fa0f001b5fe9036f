"""The front-end stages composed with a profile's models (plain functions, no Prefect).

The flow's tasks call these; evaluation and benchmarks call them too.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.speech.asr import AsrSegment, transcribe
from pipelines.speech.audio import decode_audio
from pipelines.speech.diarization import Diarization
from pipelines.speech.models import load_models
from pipelines.settings import Profile, get_profile
from pipelines.types import Audio
from pipelines.speech.vad import detect_speech


def _profile(profile: Profile | str) -> Profile:
    return get_profile(profile) if isinstance(profile, str) else profile


def voice_activity(audio: Audio, profile: Profile | str = "embedded") -> list[tuple[float, float]]:
    return detect_speech(audio, load_models(_profile(profile)).vad)


def diarize_audio(audio: Audio, profile: Profile | str = "embedded", num_speakers: int | None = None,
                  speech: list[tuple[float, float]] | None = None) -> Diarization:
    """Diarize with the profile's diarizer; the embedded one keeps to the VAD's ``speech``."""
    prof = _profile(profile)
    models = load_models(prof)
    if speech is None and models.pyannote is None:
        speech = voice_activity(audio, prof)
    return models.diarize(audio, num_speakers, speech)


def transcribe_audio(audio: Audio, profile: Profile | str = "embedded",
                     speech: list[tuple[float, float]] | None = None) -> list[AsrSegment]:
    prof = _profile(profile)
    speech = voice_activity(audio, prof) if speech is None else speech
    return transcribe(audio, speech, load_models(prof).asr)


def diarize_file(path: str | Path, profile: Profile | str = "embedded", num_speakers: int | None = None) -> Diarization:
    return diarize_audio(decode_audio(path), profile, num_speakers)


def transcribe_file(path: str | Path, profile: Profile | str = "embedded") -> str:
    """Transcript text of a recording (VAD + WhisperX chunks, as in the flow)."""
    return " ".join(s.text for s in transcribe_audio(decode_audio(path, min_duration_s=0.1), profile))


def speaker_turns(audio: Audio, transcript_path: str | Path | None = None, profile: Profile | str = "embedded",
                  num_speakers: int | None = None, event_type: str = "earnings_call"):
    """Who spoke when, as the flow's catalog segments say it: VAD, ASR and diarization, then
    the speakers-and-sections stage (``transcripts.call_speech``) with the call's transcript
    aligned, or without one (ASR sentences with the diarized voices, made into turns).
    Returns the ``CallSpeech``; its segments are the speaker turns (a transcript that does not
    belong to the audio falls back to ASR, with ``warning`` set)."""
    from pipelines.speech.asr import words_of
    from pipelines.speech.transcripts import call_speech

    prof = _profile(profile)
    speech = voice_activity(audio, prof)
    diar = diarize_audio(audio, prof, num_speakers, speech)
    words = words_of(transcribe_audio(audio, prof, speech))
    return call_speech(words, diar.turns, diar.embeddings, event_type, "", str(transcript_path or ""))

