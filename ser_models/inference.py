"""``EmotionScorer``: a checkpoint plus its encoders, loaded once and used to score clips
or the frames of a long recording."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ser_models.checkpoint import Card, load_checkpoint
from ser_models.encoders import CHUNK_S, SAMPLE_RATE, build_encoder
from ser_models.model import BimodalSER
from ser_models.train import Featurizer, SERData, predict

log = logging.getLogger(__name__)


@dataclass
class EmotionScorer:
    model: BimodalSER
    card: Card
    featurizer: Featurizer

    @classmethod
    def load(cls, checkpoint: str | Path | None = None, cache_dir: str | Path | None = None,
             use_cache: bool = False) -> "EmotionScorer":
        """Load a checkpoint (default: the shipped embedded one) and build its encoders.

        Encoders load lazily on first use.  ``use_cache`` keeps encoder frames on disk (useful
        for corpora scored repeatedly; off by default for calls)."""
        t0 = time.time()
        model, card = load_checkpoint(checkpoint)
        # at inference every encoder is frozen (fine-tuned ones are loaded from the checkpoint)
        cfg = replace(card.config, **{m: replace(getattr(card.config, m), finetune=False)
                                      for m in card.config.modalities})
        encoders = {m: build_encoder(getattr(cfg, m), cache_dir, use_cache=use_cache) for m in cfg.modalities}
        log.info("loaded SER checkpoint %s (%s) in %.1f s", card.model_id, ", ".join(card.raw["encoders"].values()),
                 time.time() - t0)
        return cls(model, card, Featurizer(cfg, encoders=encoders))

    @property
    def model_id(self) -> str:
        return self.card.model_id

    @property
    def labels(self) -> tuple[str, ...]:
        return self.card.labels

    @property
    def audio_encoder(self):
        return self.featurizer.encoders.get("audio")

    def encode_recording(self, samples: np.ndarray) -> np.ndarray:
        """Audio frames (T, D) float16 of a whole recording: encoded in CHUNK_S windows, a
        batch of windows at a time; several hidden layers are mixed at once with the model's
        learned layer weights, so an hour of audio holds one (T, D) array, not (L, T, D), and
        in float16 (as the training cache stores frames): 138 MB per hour for tiny.en."""
        enc = self.audio_encoder
        step = int(CHUNK_S * SAMPLE_RATE)
        chunks = [samples[a: a + step] for a in range(0, len(samples), step)]
        mix = self.model.branches["audio"].mix
        out = []
        bs = max(1, enc.config.batch_size)
        for a in range(0, len(chunks), bs):
            for f in enc.encode(chunks[a: a + bs]):
                if f.ndim == 3:
                    with torch.no_grad():
                        f = mix(torch.from_numpy(f.astype(np.float32))[None])[0].numpy()
                out.append(f.astype(np.float16))
        return np.concatenate(out, axis=0) if out else np.zeros((0, self.model.config.audio_dim), np.float16)

    def encode_text(self, texts: Sequence[str]) -> list | None:
        return self.featurizer.encoders["text"].encode(list(texts)) if "text" in self.featurizer.encoders else None

    def score_frames(self, audio_frames: Sequence[np.ndarray] | None,
                     texts: Sequence[str] | None = None) -> tuple[np.ndarray, list]:
        """Probabilities (N, C) and audio attention per example (T_i,), from audio frames
        already encoded (e.g. slices of a whole call) and raw texts."""
        inputs = {}
        n = len(audio_frames) if audio_frames is not None else len(texts)
        if n == 0:
            return np.zeros((0, len(self.labels))), []
        if "audio" in self.featurizer.encoders:
            if audio_frames is None:
                raise ValueError(f"{self.model_id}: this model needs audio frames")
            inputs["audio"] = list(audio_frames)
        if "text" in self.featurizer.encoders:
            inputs["text"] = self.encode_text(texts if texts is not None else [""] * n)
        data = SERData(inputs, np.zeros(n, dtype=int), np.full(n, -1), np.array([""] * n))
        return predict(self.model, data, self.featurizer)

    def score_clips(self, waves: Sequence[np.ndarray], texts: Sequence[str] | None = None) -> tuple[np.ndarray, list]:
        """Probabilities and attention of whole clips (each encoded on its own)."""
        frames = self.audio_encoder.encode(list(waves)) if self.audio_encoder else None
        return self.score_frames(frames, texts)
