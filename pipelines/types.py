"""Typed values passed between the stages of the speech front end.

Light on purpose (numpy + dataclasses only): every stage is a plain function taking and
returning these, and a Prefect task is a thin wrapper around that function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000


@dataclass
class Audio:
    """Decoded mono audio at 16 kHz. ``samples``: float32 array of shape (N,)."""

    path: Path
    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE
    sha256: str = ""
    warning: str = ""  # one line about a usable but damaged recording (e.g. truncated)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def call_id(self) -> str:
        return self.sha256[:16]

    def slice(self, start_s: float, end_s: float) -> np.ndarray:
        a = max(0, int(round(start_s * self.sample_rate)))
        b = min(len(self.samples), int(round(end_s * self.sample_rate)))
        return self.samples[a:b]


@dataclass(frozen=True)
class Turn:
    """A stretch of time attributed to one speaker label."""

    start_s: float
    end_s: float
    speaker: str

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class Word:
    word: str
    start_s: float
    end_s: float
    score: float
    speaker: str = ""
    segment_id: int = -1


@dataclass
class Segment:
    """A speaker turn, split at sentence boundaries (one row of the ``segments`` table)."""

    segment_id: int
    speaker: str
    start_s: float
    end_s: float
    text: str
    asr_confidence: float
    section: str = "prepared"
    words: list[Word] = field(default_factory=list)
    text_source: str = "asr"          # 'asr' or 'transcript' (the user's transcript, aligned to the audio)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class SpeakerInfo:
    speaker: str
    role: str
    name: str = ""
    voice_id: str = ""
    talk_time_s: float = 0.0
    n_segments: int = 0
    affiliation: str = ""             # company or outlet, from a transcript
    title: str = ""                   # job title, from a vendor transcript
