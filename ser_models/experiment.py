"""What ``speechfin ser train / cv / eval`` do: corpus -> features -> CV -> final model ->
checkpoint with its card; checkpoint + corpus -> metrics."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ser_models.checkpoint import NONCOMMERCIAL_NOTE, Card, corpus_licence, save_checkpoint
from ser_models.corpus import load_corpus
from ser_models.features import top_share
from ser_models.inference import EmotionScorer
from ser_models.metrics import CVResult, EvalResult
from ser_models.train import Experiment, Featurizer, SERData, cross_validate, evaluate, fit, predict

log = logging.getLogger(__name__)
HOTSPOT_QUANTILE = 0.9


def with_frame_dims(exp: Experiment, featurizer: Featurizer, data: SERData) -> Experiment:
    """Set audio_dim/text_dim and *_layers of the model config from the encoders' frames."""
    changes = {}
    for m in exp.model.modalities:
        first = data.inputs[m][0]
        arr = featurizer.encoders[m].encode([first])[0] if featurizer.finetuned(m) else first
        changes[f"{m}_dim"] = int(arr.shape[-1])
        changes[f"{m}_layers"] = int(arr.shape[0]) if arr.ndim == 3 else 1
    model = replace(exp.model, **changes)
    featurizer.config = model
    return replace(exp, model=model)


def prepare(exp: Experiment, corpus_dir: str | Path | None = None, cache_dir=None,
            progress: bool = True) -> tuple[Experiment, Featurizer, SERData, Path]:
    corpus_dir = Path(corpus_dir or exp.corpus)
    if not str(corpus_dir) or str(corpus_dir) == ".":
        raise ValueError("no corpus: give --corpus or [data] corpus in the config")
    corpus = load_corpus(corpus_dir, exp.model.labels, exp.speakers)
    featurizer = Featurizer(exp.model, cache_dir)
    data = featurizer.prepare(corpus, progress=progress, packings=exp.train.packings)
    return with_frame_dims(exp, featurizer, data), featurizer, data, corpus_dir


@dataclass
class TrainReport:
    card: Card
    cv: CVResult | None
    train_fit: EvalResult
    seconds: float

    def summary(self) -> str:
        lines = [f"checkpoint {self.card.model_id}: {', '.join(self.card.raw['encoders'].values())}, "
                 f"pooling={self.card.config.pooling}, fusion={self.card.config.fusion}"]
        if self.cv is not None:
            lines.append(self.cv.summary())
        lines.append(f"fit on the training data (optimistic): UA={self.train_fit.ua:.1%} WA={self.train_fit.wa:.1%}")
        lines.append(f"corpus licence: {self.card.raw['corpus']['licence']}")
        lines.append(f"done in {self.seconds:.0f} s")
        return "\n".join(lines)


def train_experiment(exp: Experiment, out_dir: str | Path, corpus_dir: str | Path | None = None,
                     cv_folds: int = 0, cache_dir=None, progress: bool = True) -> TrainReport:
    """Optionally cross-validate, then train on the whole corpus and save a checkpoint."""
    t0 = time.time()
    exp, featurizer, data, corpus_dir = prepare(exp, corpus_dir, cache_dir, progress)
    cv = None
    if cv_folds:
        cv, _ = cross_validate(exp.model, exp.train, data, featurizer, cv_folds, progress)
    model = fit(exp.model, exp.train, data, featurizer, progress, desc="final model")
    probs, att = predict(model, data, featurizer)
    train_fit = EvalResult(exp.model.labels, data.y, probs.argmax(1), title="training fit")
    shares = [top_share(w) for w in att if w is not None]
    licence = corpus_licence(corpus_dir)
    card_extra = {
        "name": exp.name,
        "corpus": {"path": str(corpus_dir), "name": Path(corpus_dir).resolve().name, "licence": licence,
                   "n_examples": len(data), "speakers": sorted(set(data.speakers.tolist())),
                   "class_counts": {lab: int((data.y == i).sum()) for i, lab in enumerate(exp.model.labels)}},
        "noncommercial": "NC" in licence,
        "note": NONCOMMERCIAL_NOTE if "NC" in licence else "",
        "train": exp.to_dict()["train"],
        "metrics": {"cv": cv.metrics() if cv else None, "train_fit": train_fit.metrics()},
        "calibration": {"hotspot_threshold": float(np.quantile(shares, HOTSPOT_QUANTILE)) if shares else 0.5,
                        "hotspot_quantile": HOTSPOT_QUANTILE, "top_fraction": 0.15},
    }
    card = save_checkpoint(out_dir, model, exp.name, card_extra, featurizer.encoders)
    return TrainReport(card, cv, train_fit, time.time() - t0)


def cv_experiment(exp: Experiment, corpus_dir=None, folds: int = 5, cache_dir=None, progress=True) -> CVResult:
    exp, featurizer, data, _ = prepare(exp, corpus_dir, cache_dir, progress)
    return cross_validate(exp.model, exp.train, data, featurizer, folds, progress)[0]


def evaluate_checkpoint(checkpoint: str | Path | None, corpus_dir: str | Path, speakers=None,
                        cache_dir=None, progress: bool = True) -> EvalResult:
    """Metrics of a checkpoint on a labelled corpus (labels must be in its label set)."""
    scorer = EmotionScorer.load(checkpoint, cache_dir, use_cache=True)
    corpus = load_corpus(corpus_dir, scorer.labels, speakers)
    data = scorer.featurizer.prepare(corpus, progress=progress)
    return evaluate(scorer.model, data, scorer.featurizer, title=f"{scorer.model_id} on {Path(corpus_dir).name}")
