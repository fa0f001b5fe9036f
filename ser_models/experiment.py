"""What ``speechfin ser train / cv / eval`` do: corpus -> features -> CV -> final model ->
checkpoint with its card; checkpoint + corpus -> metrics."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ser_models.calibration import Calibration, apply_temperature, fit_temperature
from ser_models.checkpoint import NONCOMMERCIAL_NOTE, Card, corpus_licence, save_checkpoint
from ser_models.corpus import load_corpus
from ser_models.features import tone, top_share
from ser_models.inference import EmotionScorer
from ser_models.metrics import CVResult, EvalResult
from ser_models.train import Experiment, Featurizer, SERData, cross_validate, fit, predict, predict_speakers

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
    data = featurizer.prepare(corpus, progress=progress, packings=exp.train.packings, augment=exp.train.augment)
    if exp.model.nuisance_dims:
        if not exp.train.nuisance_corpus:
            raise ValueError("[model] nuisance_dims needs [train] nuisance_corpus (unlabelled speech of the target domain)")
        data.nuisance = nuisance_from_corpus(featurizer, exp.train.nuisance_corpus, exp.model.nuisance_dims, progress)
    return with_frame_dims(exp, featurizer, data), featurizer, data, corpus_dir


def tone_by_class(probs: np.ndarray, y: np.ndarray, labels) -> dict[str, float]:
    """Mean tone of the clips of each true class (held-out predictions: is neutral about 0?)."""
    t = tone(probs, labels)
    return {lab: float(np.nanmean(t[y == i])) for i, lab in enumerate(labels) if (y == i).any()}


def nuisance_from_corpus(featurizer: Featurizer, corpus_dir, k: int, progress: bool = True,
                         speakers=None) -> np.ndarray:
    """The nuisance basis (k, D) of an unlabelled corpus (audio packed per speaker, as ``ser
    predict`` does); labels and text are not read."""
    from ser_models.speaker_norm import nuisance_basis

    corpus = load_corpus(corpus_dir, None, speakers, require_labels=False)
    plain = Featurizer(replace(featurizer.config, speaker_norm="none", speaker_scale=False),
                       encoders=featurizer.encoders)
    frames = plain.prepare(corpus, progress=progress).inputs["audio"]
    basis, share = nuisance_basis(frames, corpus.speakers, k)
    log.info("nuisance subspace: %d directions from %d clips of %d speakers (%s) hold %.0f%% of their "
             "within-speaker variance", k, len(corpus), len(set(corpus.speakers)), Path(corpus_dir).name,
             100 * share[:k].sum())
    return basis


@dataclass
class TrainReport:
    card: Card
    cv: CVResult | None
    train_fit: EvalResult
    seconds: float
    calibration: Calibration | None = None
    cv_tone: dict | None = None

    def summary(self) -> str:
        lines = [f"checkpoint {self.card.model_id}: {', '.join(self.card.raw['encoders'].values())}, "
                 f"pooling={self.card.config.pooling}, fusion={self.card.config.fusion}"]
        if self.cv is not None:
            lines.append(self.cv.summary())
        if self.calibration is not None:
            lines.append("calibration (out-of-fold): " + self.calibration.summary())
        if self.cv_tone:
            lines.append("mean tone of held-out clips by true class (calibrated): "
                         + ", ".join(f"{k} {v:+.2f}" for k, v in self.cv_tone.items()))
        lines.append(f"fit on the training data (optimistic): UA={self.train_fit.ua:.1%} WA={self.train_fit.wa:.1%}")
        lines.append(f"corpus licence: {self.card.raw['corpus']['licence']}")
        lines.append(f"done in {self.seconds:.0f} s")
        return "\n".join(lines)


def train_experiment(exp: Experiment, out_dir: str | Path, corpus_dir: str | Path | None = None,
                     cv_folds: int = 0, cache_dir=None, progress: bool = True) -> TrainReport:
    """Optionally cross-validate, then train on the whole corpus and save a checkpoint."""
    t0 = time.time()
    exp, featurizer, data, corpus_dir = prepare(exp, corpus_dir, cache_dir, progress)
    cv, calibration, cv_tone = None, None, None
    if cv_folds:
        cv, oof = cross_validate(exp.model, exp.train, data, featurizer, cv_folds, progress)
        calibration = fit_temperature(oof, data.y)
        cv_tone = tone_by_class(apply_temperature(oof, calibration.temperature), data.y, exp.model.labels)
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
        "metrics": {"cv": cv.metrics() if cv else None, "train_fit": train_fit.metrics(),
                    "cv_tone_by_class": cv_tone},
        "calibration": {"hotspot_threshold": float(np.quantile(shares, HOTSPOT_QUANTILE)) if shares else 0.5,
                        "hotspot_quantile": HOTSPOT_QUANTILE, "top_fraction": 0.15,
                        "temperature": calibration.temperature if calibration else 1.0,
                        "temperature_fit": calibration.to_dict() if calibration else None},
    }
    card = save_checkpoint(out_dir, model, exp.name, card_extra, featurizer.encoders)
    return TrainReport(card, cv, train_fit, time.time() - t0, calibration, cv_tone)


def cv_experiment(exp: Experiment, corpus_dir=None, folds: int = 5, cache_dir=None, progress=True) -> CVResult:
    exp, featurizer, data, _ = prepare(exp, corpus_dir, cache_dir, progress)
    return cross_validate(exp.model, exp.train, data, featurizer, folds, progress)[0]


def parse_label_map(spec: str | None, known: tuple[str, ...]) -> dict[str, str]:
    """``"anger=angry,happiness=happy"`` -> {"anger": "angry", ...}; every target must be a
    class of the checkpoint (one-line error otherwise)."""
    out: dict[str, str] = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise ValueError(f"--label-map: {item.strip()!r} is not CORPUS_LABEL=MODEL_CLASS")
        src, dst = (x.strip().lower() for x in item.split("=", 1))
        if dst not in known:
            raise ValueError(f"--label-map: {src}={dst}: the checkpoint has no class {dst!r} "
                             f"(its classes: {', '.join(known)})")
        out[src] = dst
    return out


def evaluate_checkpoint(checkpoint: str | Path | None, corpus_dir: str | Path, speakers=None,
                        cache_dir=None, progress: bool = True, label_map: str | None = None) -> EvalResult:
    """Metrics of a checkpoint on a labelled corpus.

    The corpus labels are mapped onto the checkpoint's classes (``label_map``, else by equal
    names); clips whose label maps to no class of the checkpoint are dropped (counted in the
    result's title); the prediction is the most likely of the classes both sides share, and
    UA averages the recall of those classes.  Audio is packed and normalised per value of
    the ``speaker`` column, as in the flow."""
    from ser_models.corpus import CorpusError

    scorer = EmotionScorer.load(checkpoint, cache_dir, use_cache=True)
    labels = scorer.labels
    mapping = parse_label_map(label_map, labels)
    corpus = load_corpus(corpus_dir, None, speakers)
    mapped = corpus.table["emotion"].map(lambda e: mapping.get(e, e if e in labels else None))
    shared = sorted(set(mapped.dropna()), key=labels.index)
    if not shared:
        raise CorpusError(f"{Path(corpus_dir) / 'labels.csv'}: no class in common with the checkpoint "
                          f"(corpus: {', '.join(corpus.labels)}; checkpoint: {', '.join(labels)}); "
                          f"give --label-map CORPUS_LABEL=MODEL_CLASS,...")
    keep = np.flatnonzero(mapped.notna().to_numpy())
    dropped = corpus.table["emotion"][mapped.isna()].value_counts()
    if len(dropped):
        log.warning("%d clips dropped: their labels have no class in the checkpoint (%s)", int(dropped.sum()),
                    ", ".join(f"{k}: {v}" for k, v in dropped.items()))
    corpus = corpus.subset(keep)
    corpus.table["label"] = mapped.iloc[keep].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    corpus = replace(corpus, labels=labels)
    data = scorer.featurizer.prepare(corpus, progress=progress, population=_population(scorer), label_baseline=False)
    probs, _, _ = predict_speakers(scorer.model, data, scorer.featurizer, temperature=scorer.temperature)
    allowed = np.array([lab in shared for lab in labels])
    pred = np.where(allowed, probs, -1).argmax(1)
    title = (f"{scorer.model_id} on {Path(corpus_dir).name}: {len(keep)} clips, classes scored: {', '.join(shared)}"
             + (f"; {int(dropped.sum())} clips dropped (no shared class)" if len(dropped) else ""))
    return EvalResult(labels, data.y, pred, title=title, extra={"dropped": {k: int(v) for k, v in dropped.items()}})


def _population(scorer: EmotionScorer) -> np.ndarray | None:
    return scorer.population_center(mixed=False) if scorer.speaker_norm else None


def predict_corpus(checkpoint: str | Path | None, corpus_dir: str | Path, cache_dir=None, progress: bool = True,
                   text_heads: dict | None = None):
    """One row per clip of a folder with labels.csv (``path, speaker``; emotion labels not
    needed): path, speaker, p_<class>, tone, tone_abs, norm_basis, arousal, valence and, where
    the corpus has text, text_tone, hawkish, fused_tone and the Loughran-McDonald columns.
    Each speaker's clips are packed into 30 s windows and normalised to that speaker, as
    the flow does with a call's speakers."""
    import pandas as pd

    from ser_models.features import arousal_valence, fused_tone, lm_scores, stance

    scorer = EmotionScorer.load(checkpoint, cache_dir, use_cache=True, text_heads=text_heads)
    corpus = load_corpus(corpus_dir, None, require_labels=False)
    data = scorer.featurizer.prepare(corpus, progress=progress, population=_population(scorer), label_baseline=False)
    probs, _, centering = predict_speakers(scorer.model, data, scorer.featurizer, temperature=scorer.temperature)
    probs_abs = probs
    if data.centering is not None:
        probs_abs, _ = predict(scorer.model, data.absolute(_population(scorer)), scorer.featurizer,
                               temperature=scorer.temperature)
    labels = scorer.labels
    ar, va = arousal_valence(probs, labels)
    root = Path(corpus_dir).resolve()
    df = pd.DataFrame({"path": [str(Path(f).resolve().relative_to(root)) for f in corpus.table["file"]],
                       "speaker": corpus.speakers})
    df = df.assign(**{f"p_{lab}": probs[:, i] for i, lab in enumerate(labels)})
    df["tone"], df["tone_abs"] = tone(probs, labels), tone(probs_abs, labels)
    df["norm_basis"] = [centering.basis[s] for s in corpus.speakers] if centering else "none"
    df["arousal"], df["valence"] = ar, va
    texts = corpus.texts
    if any(t.strip() for t in texts):
        heads = scorer.score_texts(texts)
        df["text_tone"] = tone(heads["sentiment"], scorer.text_heads["sentiment"].labels) if "sentiment" in heads \
            else np.nan
        df["hawkish"] = stance(heads["fomc"], scorer.text_heads["fomc"].labels) if "fomc" in heads else np.nan
        df["fused_tone"] = fused_tone(df["tone"].to_numpy(float), df["text_tone"].to_numpy(float))
        lm = pd.DataFrame([lm_scores(t) for t in texts])
        df = pd.concat([df, lm], axis=1)
    return df, centering
