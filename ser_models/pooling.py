"""Pooling layers: frame-level features -> one utterance-level vector.

Every layer takes

    x:    (B, T, D) float frames (padded)
    mask: (B, T)    bool, True on real frames

and returns ``(pooled, weights)``:

    pooled:  (B, out_dim)
    weights: (B, K, T)  the frame weights of each of the K attention distributions
             (K = 1 for single-distribution layers, K = H * Q for MQMHA); every row sums
             to 1 over the real frames and is 0 on padding.

A row whose mask is all False (an empty input, e.g. an empty transcript) pools to zeros
with zero weights instead of NaN.  Padding never changes the result: padded frames get
no weight and are excluded from every sum.

Equations (see ``../shared/seeds/000_*``):
    mean       mu_b    = sum_t M_bt X_bt / sum_t M_bt                             (eq. 2)
    statistics [mu_b, sigma_b], sigma_b = sqrt(sum_t M_bt (X_bt - mu_b)^2 / sum_t M_bt) (eq. 3)
    max        Y_b     = max_{t: M_bt} X_bt                                        (eq. 1, masked)
    attention  (Mirsamadi et al. 2017)  a_t = softmax_t(u^T x_t),  z = sum_t a_t x_t
    ASP        (Okabe et al. 2018)      e_t = v^T tanh(W x_t + b), a = softmax(e),
                                        [sum a x, sqrt(sum a x^2 - (sum a x)^2)]
    multi-head (India et al. 2019)      x split into H heads of D/H; one u_h per head
    MQMHA      (Zhao et al. 2022, Leygue et al. 2025) x split into H heads of d = D/H;
               head h has Q queries, each an MLP score e_hqt = v_hq^T tanh(W_hq x_ht + b_hq);
               a_hq = softmax_t(e_hq); output [mu_hq, sigma_hq] for all (h, q): size 2 Q D.
"""

from __future__ import annotations

import torch
from torch import nn

POOLING_METHODS = ("max", "mean", "stats", "attention", "asp", "mha", "mqmha")
_EPS = 1e-10


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis (T) of ``scores`` (..., T), ignoring masked-out frames.

    ``mask`` (B, T) broadcasts against ``scores`` (B, ..., T).  Rows with no real frame
    give all-zero weights.
    """
    m = mask.view(mask.shape[0], *([1] * (scores.dim() - 2)), mask.shape[-1])
    scores = scores.masked_fill(~m, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return torch.nan_to_num(weights, nan=0.0) * m


def weighted_stats(x: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean and standard deviation over T.

    x: (B, T, D) or (B, H, T, d); weights: (B, K, T) or (B, H, Q, T).
    Returns mu, sigma of shape (B, K, D) or (B, H, Q, d).
    """
    mu = weights @ x                                   # (..., K, D)
    second = weights @ (x * x)
    var = (second - mu * mu).clamp_min(0.0)
    return mu, torch.sqrt(var + _EPS) * (weights.sum(-1, keepdim=True) > 0)


def uniform_weights(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, T) mask -> (B, 1, T) weights 1/n on the n real frames."""
    m = mask.to(dtype)
    return (m / m.sum(-1, keepdim=True).clamp_min(1.0)).unsqueeze(1)


class MaxPooling(nn.Module):
    """Masked max over time (eq. 1).  ``weights``: share of the D channels whose maximum
    is reached at each frame."""

    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        filled = x.masked_fill(~mask.unsqueeze(-1), float("-inf"))      # (B, T, D)
        pooled, arg = filled.max(dim=1)                                   # (B, D)
        has = mask.any(dim=1, keepdim=True)
        pooled = torch.where(has, pooled, torch.zeros_like(pooled))
        counts = torch.zeros(x.shape[0], x.shape[1], device=x.device, dtype=x.dtype)
        counts.scatter_add_(1, arg, torch.ones_like(pooled))
        weights = (counts / x.shape[2]) * has
        return pooled, weights.unsqueeze(1)


class MeanPooling(nn.Module):
    """Masked average over time (eq. 2); uniform weights."""

    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = uniform_weights(mask, x.dtype)                      # (B, 1, T)
        return (w @ x).squeeze(1), w


class StatisticsPooling(nn.Module):
    """Masked mean and standard deviation (eq. 2-3): output 2D."""

    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = 2 * dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = uniform_weights(mask, x.dtype)
        mu, sigma = weighted_stats(x, w)               # (B, 1, D) each
        return torch.cat([mu, sigma], dim=-1).squeeze(1), w


class AttentionPooling(nn.Module):
    """Single-head attention pooling of Mirsamadi et al. (2017): a_t = softmax(u^T x_t)."""

    def __init__(self, dim: int):
        super().__init__()
        self.u = nn.Linear(dim, 1, bias=False)
        self.out_dim = dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = masked_softmax(self.u(x).transpose(1, 2), mask)   # (B, 1, T)
        return (w @ x).squeeze(1), w


class AttentiveStatisticsPooling(nn.Module):
    """ASP (Okabe et al. 2018): tanh-MLP scores, attention-weighted mean and std (2D)."""

    def __init__(self, dim: int, hidden: int = 128):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.out_dim = 2 * dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = masked_softmax(self.score(x).transpose(1, 2), mask)   # (B, 1, T)
        mu, sigma = weighted_stats(x, w)
        return torch.cat([mu, sigma], dim=-1).squeeze(1), w


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, T, D) -> (B, H, T, D/H)."""
    b, t, d = x.shape
    if d % heads:
        raise ValueError(f"feature size {d} is not divisible by {heads} heads")
    return x.view(b, t, heads, d // heads).transpose(1, 2)


class MultiHeadAttentionPooling(nn.Module):
    """Multi-head attention pooling (India et al. 2019): the D features are split into H
    heads; head h scores its sub-vectors with its own query u_h.  Output: D (the H
    attention-weighted head means, concatenated)."""

    def __init__(self, dim: int, heads: int = 4):
        super().__init__()
        if dim % heads:
            raise ValueError(f"feature size {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.u = nn.Parameter(torch.randn(heads, dim // heads) * (dim // heads) ** -0.5)
        self.out_dim = dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xh = split_heads(x, self.heads)                               # (B, H, T, d)
        scores = torch.einsum("bhtd,hd->bht", xh, self.u) / xh.shape[-1] ** 0.5
        w = masked_softmax(scores, mask)                              # (B, H, T)
        pooled = (w.unsqueeze(2) @ xh).squeeze(2)                     # (B, H, d)
        return pooled.flatten(1), w


class MQMHAPooling(nn.Module):
    """Multi-query multi-head attentive statistics pooling.

    The D features are split into H heads of d = D/H.  Each head has Q queries; query
    (h, q) scores frame t with a small MLP on the head's sub-vector,
    e_hqt = v_hq^T tanh(W_hq x_ht + b_hq) (hidden size ``hidden``), normalised over
    the real frames.  Each (h, q) gives an attention-weighted mean and standard deviation
    of size d, so the output has 2 * Q * H * d = 2 * Q * D features.
    """

    def __init__(self, dim: int, heads: int = 4, queries: int = 2, hidden: int = 32):
        super().__init__()
        if dim % heads:
            raise ValueError(f"feature size {dim} is not divisible by {heads} heads")
        d = dim // heads
        self.heads, self.queries = heads, queries
        self.w1 = nn.Parameter(torch.randn(heads, queries, d, hidden) * d ** -0.5)
        self.b1 = nn.Parameter(torch.zeros(heads, queries, hidden))
        self.v = nn.Parameter(torch.randn(heads, queries, hidden) * hidden ** -0.5)
        self.out_dim = 2 * queries * dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xh = split_heads(x, self.heads)                               # (B, H, T, d)
        h, q, d, k = self.w1.shape
        w1 = self.w1.permute(0, 2, 1, 3).reshape(h, d, q * k)           # (H, d, Q*k)
        hid = torch.tanh((xh @ w1).unflatten(-1, (q, k)) + self.b1[:, None])   # (B, H, T, Q, k)
        scores = (hid * self.v[:, None]).sum(-1).transpose(-1, -2)    # (B, H, Q, T)
        w = masked_softmax(scores, mask)
        mu, sigma = weighted_stats(xh, w)                             # (B, H, Q, d)
        pooled = torch.cat([mu, sigma], dim=-1).flatten(1)            # (B, H*Q*2d)
        return pooled, w.flatten(1, 2)                                # weights (B, H*Q, T)


def build_pooling(method: str, dim: int, heads: int = 4, queries: int = 2,
                  hidden: int = 64) -> nn.Module:
    """A pooling layer by name (one of ``POOLING_METHODS``)."""
    if method == "max":
        return MaxPooling(dim)
    if method == "mean":
        return MeanPooling(dim)
    if method == "stats":
        return StatisticsPooling(dim)
    if method == "attention":
        return AttentionPooling(dim)
    if method == "asp":
        return AttentiveStatisticsPooling(dim, hidden)
    if method == "mha":
        return MultiHeadAttentionPooling(dim, heads)
    if method == "mqmha":
        return MQMHAPooling(dim, heads, queries, hidden)
    raise ValueError(f"unknown pooling {method!r}; choose one of {', '.join(POOLING_METHODS)}")
