"""Evaluation metrics of SER: UA (unweighted average recall), WA (accuracy), macro-F1, confusion."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts: row = true class, column = predicted class."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return m


@dataclass
class EvalResult:
    """Metrics of predictions against labels; ``summary()`` prints them with the confusion matrix."""

    labels: tuple[str, ...]
    y_true: np.ndarray
    y_pred: np.ndarray
    title: str = "evaluation"
    extra: dict = field(default_factory=dict)

    @property
    def confusion(self) -> np.ndarray:
        return confusion(self.y_true, self.y_pred, len(self.labels))

    @property
    def present(self) -> np.ndarray:
        """Classes with at least one true example (UA and macro-F1 average over these)."""
        return np.flatnonzero(self.confusion.sum(1) > 0)

    @property
    def recall(self) -> np.ndarray:
        m = self.confusion
        return np.diag(m) / np.maximum(m.sum(1), 1)

    @property
    def ua(self) -> float:
        return float(self.recall[self.present].mean())

    @property
    def wa(self) -> float:
        return float((self.y_true == self.y_pred).mean())

    @property
    def macro_f1(self) -> float:
        m = self.confusion
        tp = np.diag(m).astype(float)
        prec = tp / np.maximum(m.sum(0), 1)
        rec = tp / np.maximum(m.sum(1), 1)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0.0)
        return float(f1[self.present].mean())

    def metrics(self) -> dict[str, float]:
        return {"ua": self.ua, "wa": self.wa, "macro_f1": self.macro_f1, "n": int(len(self.y_true))}

    def summary(self) -> str:
        lines = [f"{self.title}: n={len(self.y_true)}  UA={self.ua:.1%}  WA={self.wa:.1%}  "
                 f"macro-F1={self.macro_f1:.1%}"]
        lines += [f"  {k}: {v}" for k, v in self.extra.items()]
        w = max(len(lab) for lab in self.labels) + 1
        short = [lab[:5] for lab in self.labels]
        lines.append("confusion (rows = true, columns = predicted):")
        lines.append(" " * w + " ".join(f"{s:>5}" for s in short) + "  recall")
        for lab, row, r in zip(self.labels, self.confusion, self.recall):
            lines.append(f"{lab:<{w}}" + " ".join(f"{v:5d}" for v in row) + f"  {r:6.1%}")
        return "\n".join(lines)


@dataclass
class CVResult:
    """k-fold cross-validation: one EvalResult per held-out fold plus the pooled one."""

    folds: list[EvalResult]
    fold_speakers: list[Sequence[str]]

    @property
    def pooled(self) -> EvalResult:
        f0 = self.folds[0]
        return EvalResult(f0.labels, np.concatenate([f.y_true for f in self.folds]),
                          np.concatenate([f.y_pred for f in self.folds]), title="pooled out-of-fold")

    def mean(self, metric: str) -> float:
        return float(np.mean([getattr(f, metric) for f in self.folds]))

    def std(self, metric: str) -> float:
        return float(np.std([getattr(f, metric) for f in self.folds], ddof=1)) if len(self.folds) > 1 else 0.0

    def metrics(self) -> dict:
        d = {f"{m}_mean": self.mean(m) for m in ("ua", "wa", "macro_f1")}
        d |= {f"{m}_std": self.std(m) for m in ("ua", "wa", "macro_f1")}
        d |= {f"pooled_{k}": v for k, v in self.pooled.metrics().items()}
        d["folds"] = [f.metrics() | {"speakers": list(s)} for f, s in zip(self.folds, self.fold_speakers)]
        return d

    def summary(self) -> str:
        lines = [f"{len(self.folds)}-fold speaker-independent cross-validation"]
        for i, (f, s) in enumerate(zip(self.folds, self.fold_speakers)):
            lines.append(f"  fold {i + 1} ({s[0]}..{s[-1]}, n={len(f.y_true)}): UA={f.ua:.1%} "
                         f"WA={f.wa:.1%} macro-F1={f.macro_f1:.1%}")
        lines.append(f"mean over folds: UA={self.mean('ua'):.1%} (sd {self.std('ua'):.1%})  "
                     f"WA={self.mean('wa'):.1%}  macro-F1={self.mean('macro_f1'):.1%}")
        lines.append(self.pooled.summary())
        return "\n".join(lines)
