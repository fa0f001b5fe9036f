"""Stage 2a: local speaker segmentation over sliding windows (pyannote PyanNet).

The model bundled in whisperx (``whisperx/assets/pytorch_model.bin``) is pyannote's
original segmentation model: multi-label, up to 3 local speakers per 5 s window,
about 59 frames per second.  It is run once per call; voice activity detection and
diarization both read its output, so the audio goes through it only once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.types import Audio


def bundled_segmentation_path() -> Path:
    """Path of the segmentation checkpoint shipped inside the whisperx wheel."""
    import importlib.util

    spec = importlib.util.find_spec("whisperx")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("whisperx is not installed: no bundled segmentation model")
    return Path(list(spec.submodule_search_locations)[0]) / "assets" / "pytorch_model.bin"


@dataclass
class LocalSegmentation:
    """Frame activations of local speakers per window.

    ``data``: (C, F, K) float32, C windows of ``chunk_duration`` s every ``chunk_step`` s,
    F frames each (``frame_step`` s apart, frame f centred at ``frame_offset + f * frame_step``
    within its window), K local speakers.
    """

    data: np.ndarray
    chunk_duration: float
    chunk_step: float
    frame_step: float
    duration_s: float
    frame_offset: float = 0.0

    @property
    def num_chunks(self) -> int:
        return self.data.shape[0]

    @property
    def num_frames(self) -> int:
        """Frames on the global timeline (resolution ``frame_step``)."""
        return int(np.ceil(self.duration_s / self.frame_step)) + 1

    def global_index(self) -> np.ndarray:
        """(C, F) int: index on the global frame grid of each (window, frame)."""
        C, F, _ = self.data.shape
        t = np.arange(C)[:, None] * self.chunk_step + self.frame_offset + np.arange(F)[None, :] * self.frame_step
        return np.minimum(np.round(t / self.frame_step).astype(np.int64), self.num_frames - 1)

    def aggregate(self, values: np.ndarray) -> np.ndarray:
        """Average (C, F[, ...]) window values onto the global grid: (num_frames[, ...]).

        Frames beyond the end of the audio (the zero-padded tail of the last window) are
        dropped; a global frame covered by no window gets 0.
        """
        idx = self.global_index()
        valid = (idx * self.frame_step) < self.duration_s
        out = np.zeros((self.num_frames,) + values.shape[2:], np.float64)
        cnt = np.zeros(self.num_frames, np.float64)
        np.add.at(out, idx[valid], values[valid])
        np.add.at(cnt, idx[valid], 1.0)
        cnt = np.maximum(cnt, 1.0)
        return (out / cnt.reshape((-1,) + (1,) * (out.ndim - 1))).astype(np.float32)


class SegmentationModel:
    """A pyannote segmentation model (local path or hub id) with its sliding-window runner."""

    def __init__(self, checkpoint: str | Path | None = None, step: float = 1.0, batch_size: int = 32,
                 token: str | None = None):
        import logging

        import torch
        from pyannote.audio import Model

        # the bundled checkpoint is from lightning 1.5: its in-memory upgrade notice is noise
        logging.getLogger("lightning.pytorch.utilities.migration.utils").setLevel(logging.WARNING)
        path = str(checkpoint or bundled_segmentation_path())
        self.model = Model.from_pretrained(path, token=token or os.environ.get("HF_TOKEN"))
        if self.model is None:
            raise FileNotFoundError(f"{path}: cannot load a segmentation model")
        self.model.eval()
        self.duration = float(self.model.specifications.duration)
        self.step = step
        self.batch_size = batch_size
        self._torch = torch

    def __call__(self, audio: Audio) -> LocalSegmentation:
        """Run the model on every ``duration`` s window, every ``step`` s (last window zero-padded)."""
        torch = self._torch
        sr = audio.sample_rate
        win, hop = int(self.duration * sr), int(self.step * sr)
        x = torch.from_numpy(audio.samples)
        n = len(audio.samples)
        starts = list(range(0, max(1, n - win + hop), hop))
        if starts[-1] + win < n:
            starts.append(starts[-1] + hop)
        outs = []
        with torch.inference_mode():
            for b in range(0, len(starts), self.batch_size):
                batch = []
                for s in starts[b : b + self.batch_size]:
                    chunk = x[s : s + win]
                    if len(chunk) < win:
                        chunk = torch.nn.functional.pad(chunk, (0, win - len(chunk)))
                    batch.append(chunk)
                y = self.model(torch.stack(batch)[:, None, :])  # (B, F, K)
                outs.append(y.numpy().astype(np.float32))
        data = np.concatenate(outs)
        rf = self.model.receptive_field  # frame f covers [start + f*step, ... + duration]
        return LocalSegmentation(data, self.duration, self.step, float(rf.step), audio.duration_s,
                                 frame_offset=float(rf.start + rf.duration / 2))


def run_segmentation(audio: Audio, model: SegmentationModel) -> LocalSegmentation:
    """Stage function: local speaker activations of ``audio``."""
    return model(audio)
