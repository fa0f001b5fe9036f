"""Losses and sampling of the training recipes in ``../shared/seeds`` (001, 004).

total = CE(logits, y; class weights, label smoothing)
      + aux_modality * sum_m CE(aux_logits[m], y)         (a head per modality, multi-task)
      + aux_gender   * CE(gender_logits, gender)          (rows with unknown gender ignored)
      + center_loss  * 1/2 mean_i ||e_i - c_{y_i}||^2     (Wen et al. 2016, on the head embedding)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ser_models.model import SEROutput


class CenterLoss(nn.Module):
    """1/2 mean ||e_i - c_{y_i}||^2 with learnable class centres c (C, dim)."""

    def __init__(self, n_classes: int, dim: int):
        super().__init__()
        self.centers = nn.Parameter(torch.randn(n_classes, dim) * 0.1)

    def forward(self, embedding: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((embedding - self.centers[y]) ** 2).sum(-1).mean()


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights n / (C * n_c), as sklearn's 'balanced' (absent classes: 0)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def balanced_sampler(y: np.ndarray, seed: int) -> torch.utils.data.WeightedRandomSampler:
    """Draws len(y) rows per epoch with replacement, every class equally likely."""
    counts = np.bincount(y)
    weights = 1.0 / counts[y]
    gen = torch.Generator().manual_seed(seed)
    return torch.utils.data.WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), len(y),
                                                  replacement=True, generator=gen)


@dataclass
class LossWeights:
    label_smoothing: float = 0.0
    aux_modality: float = 0.0
    aux_gender: float = 0.0
    center_loss: float = 0.0


def ser_loss(out: SEROutput, y: torch.Tensor, gender: torch.Tensor | None, w: LossWeights,
             weight: torch.Tensor | None = None, center: CenterLoss | None = None) -> dict[str, torch.Tensor]:
    """Each term and their weighted sum (``total``)."""
    terms = {"ce": F.cross_entropy(out.logits, y, weight=weight, label_smoothing=w.label_smoothing)}
    total = terms["ce"]
    if w.aux_modality:
        for m in ("audio", "text"):
            if m in out.aux_logits:
                terms[f"aux_{m}"] = F.cross_entropy(out.aux_logits[m], y, weight=weight,
                                                    label_smoothing=w.label_smoothing)
                total = total + w.aux_modality * terms[f"aux_{m}"]
    if w.aux_gender and "gender" in out.aux_logits and gender is not None and (gender >= 0).any():
        terms["gender"] = F.cross_entropy(out.aux_logits["gender"], gender, ignore_index=-1)
        total = total + w.aux_gender * terms["gender"]
    if w.center_loss and center is not None:
        terms["center"] = center(out.embedding, y)
        total = total + w.center_loss * terms["center"]
    terms["total"] = total
    return terms
