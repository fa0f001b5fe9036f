"""Stage 2b: voice activity detection from the local segmentation.

Speech probability per frame = the largest local-speaker activation, averaged over the
overlapping windows; hysteresis thresholds (whisperx defaults: onset 0.5, offset 0.363)
turn it into speech regions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.segmentation import LocalSegmentation


@dataclass(frozen=True)
class VadConfig:
    onset: float = 0.5
    offset: float = 0.363
    min_duration_on: float = 0.1
    min_duration_off: float = 0.1


def binarize(p: np.ndarray, frame_step: float, onset: float, offset: float,
             min_duration_on: float = 0.0, min_duration_off: float = 0.0) -> list[tuple[float, float]]:
    """Hysteresis thresholding of a (T,) score into ``(start_s, end_s)`` regions.

    A region starts where ``p > onset`` and ends where ``p < offset``; gaps shorter than
    ``min_duration_off`` are filled, then regions shorter than ``min_duration_on`` dropped.
    """
    regions: list[list[float]] = []
    active, start = False, 0
    for t, v in enumerate(p):
        if not active and v > onset:
            active, start = True, t
        elif active and v < offset:
            regions.append([start * frame_step, t * frame_step])
            active = False
    if active:
        regions.append([start * frame_step, len(p) * frame_step])
    merged: list[list[float]] = []
    for r in regions:
        if merged and r[0] - merged[-1][1] < min_duration_off:
            merged[-1][1] = r[1]
        else:
            merged.append(r)
    return [(a, b) for a, b in merged if b - a >= min_duration_on]


def detect_speech(seg: LocalSegmentation, config: VadConfig = VadConfig()) -> list[tuple[float, float]]:
    """Stage function: speech regions ``(start_s, end_s)`` of a call."""
    prob = seg.aggregate(seg.data.max(axis=2, keepdims=True))[:, 0]
    regions = binarize(prob, seg.frame_step, config.onset, config.offset,
                       config.min_duration_on, config.min_duration_off)
    return [(a, min(b, seg.duration_s)) for a, b in regions if a < seg.duration_s]
