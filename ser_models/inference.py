"""``EmotionScorer``: a checkpoint plus its encoders, loaded once and used to score clips
or the frames of a long recording.

A checkpoint trained with ``speaker_norm = "mean"`` scores each item twice
(``ser_models.speaker_norm``): against its speaker's own mean frame (``probs``: speaker-relative)
and against the population centre stored in the checkpoint (``probs_abs``: absolute).  Both
are calibrated with the checkpoint's temperature (``ser_models.calibration``)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ser_models.checkpoint import Card, load_checkpoint
from ser_models.encoders import CHUNK_S, SAMPLE_RATE, build_encoder
from ser_models.model import BimodalSER
from ser_models.speaker_norm import (BASELINE_CLASSES, Centering, center, item_means, iterative_centering, scale,
                                     speaker_centering)
from ser_models.train import Featurizer, SERData, mixer, predict

log = logging.getLogger(__name__)


@dataclass
class Scores:
    """Scores of N items.  Without speaker normalisation ``probs_abs`` is ``probs`` and every
    basis is "none"."""

    probs: np.ndarray                     # (N, C) speaker-relative (calibrated)
    probs_abs: np.ndarray                 # (N, C) against the population centre (calibrated)
    attention: list                       # (T_i,) audio attention per item, or None
    basis: list[str] = field(default_factory=list)   # per item: "speaker", "population" or "none"
    centering: Centering | None = None


# Text heads scored beside the voice model in the flow: name -> checkpoint folder under
# ser_models/checkpoints/ (trained on financial text; see ser_models/README.md).
TEXT_HEADS = {"sentiment": "text_sentiment", "fomc": "text_fomc"}


@dataclass
class EmotionScorer:
    """A checkpoint with its encoders; ``text_heads``: text-only scorers (financial
    sentiment, FOMC stance) applied to the same segments' text."""

    model: BimodalSER
    card: Card
    featurizer: Featurizer
    text_heads: dict = field(default_factory=dict)

    @classmethod
    def load(cls, checkpoint: str | Path | None = None, cache_dir: str | Path | None = None,
             use_cache: bool = False, text_heads: dict[str, str | Path] | None = None) -> "EmotionScorer":
        """Load a checkpoint (default: the shipped embedded one) and build its encoders.

        Encoders load lazily on first use.  ``use_cache`` keeps encoder frames on disk (useful
        for corpora scored repeatedly; off by default for calls).  ``text_heads``: name ->
        checkpoint folder of text heads to load beside it (heads sharing an encoder share one
        instance)."""
        t0 = time.time()
        model, card = load_checkpoint(checkpoint)
        # at inference every encoder is frozen (fine-tuned ones are loaded from the checkpoint)
        cfg = replace(card.config, **{m: replace(getattr(card.config, m), finetune=False)
                                      for m in card.config.modalities})
        encoders = {m: build_encoder(getattr(cfg, m), cache_dir, use_cache=use_cache) for m in cfg.modalities}
        heads: dict = {}
        shared = {e.encoder_id: e for e in encoders.values()}
        for name, folder in (text_heads or {}).items():
            h_model, h_card = load_checkpoint(folder)
            h_cfg = replace(h_card.config, text=replace(h_card.config.text, finetune=False))
            enc = shared.setdefault(h_cfg.text.encoder_id + h_cfg.text.layers,
                                    build_encoder(h_cfg.text, cache_dir, use_cache=use_cache))
            heads[name] = cls(h_model, h_card, Featurizer(h_cfg, encoders={"text": enc}))
        log.info("loaded SER checkpoint %s (%s)%s in %.1f s", card.model_id, ", ".join(card.raw["encoders"].values()),
                 "".join(f", text head {n} {h.card.model_id}" for n, h in heads.items()), time.time() - t0)
        return cls(model, card, Featurizer(cfg, encoders=encoders), heads)

    def warm_up(self) -> None:
        """Load every encoder now (they load lazily on first use) and the Loughran-McDonald
        lists, so that the first call scored pays no loading (4-6 s on the embedded profile)."""
        from ser_models.features import _lm

        for enc in [*self.featurizer.encoders.values(),
                    *(e for h in self.text_heads.values() for e in h.featurizer.encoders.values())]:
            enc.ensure_loaded()
        _lm()

    @property
    def model_id(self) -> str:
        """The checkpoint's id, followed by its text heads' ids ('+'-joined)."""
        return "+".join([self.card.model_id] + [h.card.model_id for h in self.text_heads.values()])

    @property
    def labels(self) -> tuple[str, ...]:
        return self.card.labels

    @property
    def audio_encoder(self):
        return self.featurizer.encoders.get("audio")

    @property
    def temperature(self) -> float:
        return float(self.card.raw.get("calibration", {}).get("temperature", 1.0))

    @property
    def speaker_norm(self) -> bool:
        return self.model.config.speaker_norm != "none" and "audio" in self.model.branches

    def population_center(self, mixed: bool) -> np.ndarray:
        """The stored population centre: (L, D) as trained, or (D,) through the layer mix."""
        c = self.model.branches["audio"].center
        if not mixed or c.dim() == 1:
            return c.numpy()
        return mixer(self.model)(c.numpy()[:, None, :])[0]

    def encode_recording(self, samples: np.ndarray) -> np.ndarray:
        """Audio frames (T, D) float16 of a whole recording: encoded in CHUNK_S windows, a
        batch of windows at a time; several hidden layers are mixed at once with the model's
        learned layer weights, so an hour of audio holds one (T, D) array, not (L, T, D), and
        in float16 (as the training cache stores frames): 138 MB per hour for tiny.en."""
        enc = self.audio_encoder
        step = int(CHUNK_S * SAMPLE_RATE)
        chunks = [samples[a: a + step] for a in range(0, len(samples), step)]
        mix = mixer(self.model)
        out = []
        bs = max(1, enc.config.batch_size)
        for a in range(0, len(chunks), bs):
            for f in enc.encode(chunks[a: a + bs]):
                out.append((mix(f) if f.ndim == 3 else f).astype(np.float16))
        return np.concatenate(out, axis=0) if out else np.zeros((0, self.model.config.audio_dim), np.float16)

    def encode_text(self, texts: Sequence[str]) -> list | None:
        return self.featurizer.encoders["text"].encode(list(texts)) if "text" in self.featurizer.encoders else None

    def score_frames(self, audio_frames: Sequence[np.ndarray] | None, texts: Sequence[str] | None = None,
                     speakers: Sequence | None = None, hop_s: float | None = None) -> Scores:
        """Scores of items from audio frames already encoded (e.g. slices of a whole call,
        (T_i, D) mixed or (L, T_i, D)) and raw texts.  ``speakers``: the speaker of each item,
        for speaker-relative scores (None: all items one speaker)."""
        n = len(audio_frames) if audio_frames is not None else len(texts)
        if n == 0:
            empty = np.zeros((0, len(self.labels)))
            return Scores(empty, empty, [], [])
        if "audio" in self.featurizer.encoders and audio_frames is None:
            raise ValueError(f"{self.model_id}: this model needs audio frames")
        text_frames = None
        if "text" in self.featurizer.encoders:
            text_frames = self.encode_text(texts if texts is not None else [""] * n)
        speakers = np.asarray(list(speakers) if speakers is not None else [""] * n)

        def run(frames):
            inputs = {"audio": list(frames)} if frames is not None and "audio" in self.featurizer.encoders else {}
            if text_frames is not None:
                inputs["text"] = text_frames
            data = SERData(inputs, np.zeros(n, dtype=int), np.full(n, -1), speakers)
            return predict(self.model, data, self.featurizer, temperature=self.temperature)

        if not self.speaker_norm or audio_frames is None:
            probs, att = run(audio_frames)
            return Scores(probs, probs, att, ["none"] * n)
        mixed = np.asarray(audio_frames[0]).ndim == 2 and self.model.config.audio_layers > 1
        pop = self.population_center(mixed)
        centering = speaker_centering(audio_frames, speakers, hop_s or self.audio_encoder.hop_s, population=pop)
        if centering.note():
            log.info("%s", centering.note())
        basis = dict(centering.basis)
        spread = self.model.branches["audio"].spread.numpy() if self.model.config.speaker_scale else None
        mix = mixer(self.model)

        def relative(centers: dict):
            centred = center(audio_frames, speakers, Centering(centers, basis, {}))
            if spread is not None:      # each speaker's spread to the training speakers'
                centred = scale(centred, speakers, spread, basis, mix)
            return run(centred)

        if self.model.config.speaker_norm == "neutral":    # label-free iterations towards the neutral register
            lengths = np.array([np.asarray(f).shape[-2] for f in audio_frames], dtype=float)
            baseline = np.array([lab in BASELINE_CLASSES for lab in self.labels])
            centering, _ = iterative_centering(
                item_means(audio_frames, speakers, None), lengths, speakers, centering,
                lambda c: relative(c)[0], baseline)
        probs, att = relative(centering.centers)
        absolute = Centering({g: pop for g in centering.centers}, {}, {})
        probs_abs, _ = run(center(audio_frames, speakers, absolute))
        return Scores(probs, probs_abs, att, [centering.basis[g] for g in speakers], centering)

    def text_probs(self, texts: Sequence[str]) -> np.ndarray:
        """(N, C) probabilities of this (text-only) checkpoint for ``texts``; NaN rows for
        empty texts."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        if not texts:
            return np.zeros((0, len(self.labels)))
        p = self.score_frames(None, texts).probs.astype(float)
        p[[not t.strip() for t in texts]] = np.nan
        return p

    def score_texts(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Probabilities (N, C_head) of each text head for ``texts`` (an empty text: NaN)."""
        return {name: head.text_probs(texts) for name, head in self.text_heads.items()}

    def score_clips(self, waves: Sequence[np.ndarray], texts: Sequence[str] | None = None,
                    speakers: Sequence | None = None) -> Scores:
        """Scores of whole clips (each encoded on its own)."""
        frames = self.audio_encoder.encode(list(waves)) if self.audio_encoder else None
        return self.score_frames(frames, texts, speakers)
