"""Load the front-end models of a profile once per process (flows reuse them for every call)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import lru_cache

from pipelines.settings import Profile

log = logging.getLogger("speechfin")


@dataclass
class FrontEndModels:
    profile: Profile
    vad: object  # pipelines.vad.SileroVad
    segmentation: object  # pipelines.segmentation.SegmentationModel
    asr: object  # pipelines.asr.AsrModel
    encoder: object | None = None  # pipelines.diarization.SpeakerEncoder (embedded)
    pyannote: object | None = None  # pipelines.diarization.PyannoteDiarizer (full)
    load_seconds: float = 0.0


@lru_cache(maxsize=4)
def load_models(profile: Profile) -> FrontEndModels:
    """Load (and cache) the models ``profile`` names. Raises with the model id on failure."""
    import torch

    from pipelines.asr import AsrModel
    from pipelines.diarization import PyannoteDiarizer, SpeakerEncoder
    from pipelines.segmentation import SegmentationModel
    from pipelines.vad import SileroVad

    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.perf_counter()
    vad = SileroVad()
    seg = SegmentationModel(profile.segmentation or None, step=profile.segmentation_step)
    if profile.diarizer == "embedded":
        encoder, pyannote = SpeakerEncoder(), None
    else:
        encoder, pyannote = None, PyannoteDiarizer(profile.diarizer)
    asr = AsrModel(profile.asr)
    dt = time.perf_counter() - t0
    log.info("loaded %s profile models (Silero VAD, segmentation, %s diarizer, ASR %s) in %.1f s",
             profile.name, profile.diarizer, asr.model_id, dt)
    return FrontEndModels(profile, vad, seg, asr, encoder, pyannote, dt)


@lru_cache(maxsize=4)
def load_emotion(checkpoint: str = ""):
    """Load (and cache) the SER scorer of ``checkpoint`` ("" = the shipped embedded one)."""
    from pipelines.emotion import load_emotion_scorer

    t0 = time.perf_counter()
    scorer = load_emotion_scorer(checkpoint or None)
    log.info("loaded SER checkpoint %s in %.1f s", scorer.model_id, time.perf_counter() - t0)
    return scorer
