"""``BimodalSER``: audio and text frames -> pooled per branch -> fusion -> MLP head.

    audio frames (B, [La,] Ta, Da) ─ LayerMix ─ FrameNorm ─ proj ─ pooling ─┐
                                                                           fusion ─ MLP ─ logits (B, C)
    text frames  (B, [Lt,] Tt, Dt) ─ LayerMix ─ FrameNorm ─ proj ─ pooling ─┘

Fusion: ``concat`` of the pooled vectors (default, as in Leygue et al. 2025), ``cross_attention``
(each branch's frames attend to the other's before pooling, residual + LayerNorm, as in
AMRWC), or ``gated`` (g = sigmoid(W [a; t]), z = g * a' + (1 - g) * t').  Either branch can be
switched off (``audio=None`` or ``text=None`` in the config).  Optional auxiliary heads: one
classifier per modality on its pooled vector, and a gender classifier on the fused embedding
(multi-task with a gender prior, seed 004).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
from torch import nn

from ser_models.corpus import RAVDESS_LABELS
from ser_models.encoders import EncoderConfig
from ser_models.pooling import build_pooling

FUSIONS = ("concat", "cross_attention", "gated")
SPEAKER_NORMS = ("none", "mean", "neutral")


@dataclass
class ModelConfig:
    """Architecture of a ``BimodalSER``; saved in the checkpoint card.

    audio / text: encoder configs (None switches the modality off).
    audio_dim / text_dim: frame size D of each encoder; audio_layers / text_layers: number L
        of hidden layers the encoder returns (1 = no learned layer mix).
    proj_dim: frames are projected to this size (Linear + GELU) before pooling (0 = keep D;
        cross-attention fusion needs it).
    pooling: one of ``pooling.POOLING_METHODS``; heads/queries/pool_hidden: its H, Q, MLP size.
    fusion: one of FUSIONS; hidden: MLP head width; dropout: on the head input and hidden layer.
    aux_heads: a classifier per modality; gender_head: a 2-way gender classifier.
    speaker_norm: "none"; "mean": audio frames arrive minus their speaker's mean frame;
        "neutral": minus their speaker's neutral register (``ser_models.speaker_norm``).  The
        audio branch then keeps the population centre (mean of the training speakers'
        centres, (La, Da)) for absolute scores.
    nuisance_dims: k > 0 removes a k-dimensional nuisance subspace from the audio frames
        (``Branch``), estimated before training from ``TrainConfig.nuisance_corpus``.
    speaker_scale: at inference, also scale each speaker's centred audio frames, feature by
        feature, to the training speakers' mean spread after the layer mix (``Da``, kept in
        the audio branch as ``spread``; ``ser_models.train.scaled_to``).  Needs a speaker_norm.
    """

    labels: tuple[str, ...] = RAVDESS_LABELS
    audio: EncoderConfig | None = field(default_factory=EncoderConfig)
    text: EncoderConfig | None = None
    audio_dim: int = 384
    text_dim: int = 384
    audio_layers: int = 1
    text_layers: int = 1
    proj_dim: int = 0
    pooling: str = "mqmha"
    heads: int = 4
    queries: int = 2
    pool_hidden: int = 32
    fusion: str = "concat"
    hidden: int = 256
    dropout: float = 0.3
    aux_heads: bool = False
    gender_head: bool = False
    speaker_norm: str = "none"
    nuisance_dims: int = 0
    speaker_scale: bool = False

    def __post_init__(self):
        self.labels = tuple(self.labels)
        if isinstance(self.audio, dict):
            self.audio = EncoderConfig(**self.audio)
        if isinstance(self.text, dict):
            self.text = EncoderConfig(**self.text)
        if self.audio is None and self.text is None:
            raise ValueError("ModelConfig: both modalities are switched off")
        if self.audio is not None and self.audio.modality != "audio":
            raise ValueError(f"ModelConfig.audio: {self.audio.kind!r} is not an audio encoder")
        if self.text is not None and self.text.modality != "text":
            raise ValueError(f"ModelConfig.text: {self.text.kind!r} is not a text encoder")
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; choose one of {', '.join(FUSIONS)}")
        if self.speaker_norm not in SPEAKER_NORMS:
            raise ValueError(f"unknown speaker_norm {self.speaker_norm!r}; choose one of {', '.join(SPEAKER_NORMS)}")
        if self.speaker_scale and self.speaker_norm == "none":
            raise ValueError("speaker_scale needs a speaker_norm (the spread is measured around each speaker's centre)")
        if self.fusion == "cross_attention" and self.audio and self.text and not self.proj_dim:
            raise ValueError("cross_attention fusion needs proj_dim > 0 (a common frame size)")

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in ("audio", "text") if getattr(self, m) is not None)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["labels"] = list(self.labels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(d) - names), sorted(names - set(d))
        if unknown or missing:
            raise KeyError(f"config fields do not match this code: unknown {unknown}, missing {missing}")
        return cls(**d)


@dataclass
class SEROutput:
    logits: torch.Tensor                     # (B, C)
    embedding: torch.Tensor                  # (B, hidden): the head's hidden layer
    audio_weights: torch.Tensor | None       # (B, K, Ta) pooling weights of the audio branch
    text_weights: torch.Tensor | None        # (B, K, Tt)
    aux_logits: dict[str, torch.Tensor]      # "audio"/"text": (B, C); "gender": (B, 2)


class LayerMix(nn.Module):
    """Learned softmax-weighted sum over hidden layers: (B, L, T, D) -> (B, T, D)."""

    def __init__(self, n_layers: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            return x
        w = torch.softmax(self.logits, dim=0)
        return torch.einsum("bltd,l->btd", x, w)


class FrameNorm(nn.Module):
    """Per-feature standardisation with statistics of the training frames (buffers, saved
    with the checkpoint); identity until ``fit``."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, frames: torch.Tensor) -> None:
        """frames: (N, D) real frames (after layer mixing)."""
        self.mean.copy_(frames.mean(0))
        self.std.copy_(frames.std(0).clamp_min(1e-4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Branch(nn.Module):
    """One modality: layer mix -> nuisance projection -> norm -> optional projection ->
    (fusion hook) -> pooling.

    The nuisance projection (audio, ``nuisance_dims`` > 0) removes a fixed k-dimensional
    subspace U (k, D) from every frame, x - (x U^T) U (nuisance attribute projection,
    Campbell et al. 2006): the directions along which a speaker's neutral business speech
    varies from sentence to sentence (``ser_models.speaker_norm.nuisance_basis``).  One U for
    every hidden layer, so it commutes with the layer mix."""

    def __init__(self, dim: int, n_layers: int, cfg: ModelConfig, nuisance_dims: int = 0):
        super().__init__()
        self.mix = LayerMix(n_layers)
        self.register_buffer("nuisance", torch.zeros(nuisance_dims, dim) if nuisance_dims else None)
        self.norm = FrameNorm(dim)
        self.proj = nn.Sequential(nn.Linear(dim, cfg.proj_dim), nn.GELU()) if cfg.proj_dim else nn.Identity()
        d = cfg.proj_dim or dim
        self.pool = build_pooling(cfg.pooling, d, cfg.heads, cfg.queries, cfg.pool_hidden)
        self.frame_dim = d
        self.out_dim = self.pool.out_dim

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """(B, [L,] T, D) -> (B, T, D): layers mixed, nuisance subspace removed."""
        x = self.mix(x)
        if self.nuisance is not None:
            x = x - (x @ self.nuisance.T) @ self.nuisance
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(self.frames(x)))              # (B, T, d)


class CrossAttention(nn.Module):
    """x' = LayerNorm(x + MHA(x, y, y)); rows where y has no frame keep x."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.att = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x, y, y_mask):
        out, _ = self.att(x, y, y, key_padding_mask=~y_mask, need_weights=False)
        out = torch.nan_to_num(out) * y_mask.any(1)[:, None, None]
        return self.norm(x + out)


class BimodalSER(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = cfg = config
        self.branches = nn.ModuleDict()
        if cfg.audio is not None:
            self.branches["audio"] = Branch(cfg.audio_dim, cfg.audio_layers, cfg, cfg.nuisance_dims)
            if cfg.speaker_norm != "none":   # population centre of the speaker-relative frames
                shape = (cfg.audio_layers, cfg.audio_dim) if cfg.audio_layers > 1 else (cfg.audio_dim,)
                self.branches["audio"].register_buffer("center", torch.zeros(shape))
            if cfg.speaker_scale:            # the training speakers' mean spread after the layer mix
                self.branches["audio"].register_buffer("spread", torch.ones(cfg.audio_dim))
        if cfg.text is not None:
            self.branches["text"] = Branch(cfg.text_dim, cfg.text_layers, cfg)
        pooled = {m: b.out_dim for m, b in self.branches.items()}
        both = len(self.branches) == 2
        if both and cfg.fusion == "cross_attention":
            heads = cfg.heads if cfg.proj_dim % cfg.heads == 0 else 1
            self.cross = nn.ModuleDict({m: CrossAttention(cfg.proj_dim, heads) for m in self.branches})
        if both and cfg.fusion == "gated":
            self.gate_proj = nn.ModuleDict({m: nn.Linear(d, cfg.hidden) for m, d in pooled.items()})
            self.gate = nn.Linear(2 * cfg.hidden, cfg.hidden)
            fused_dim = cfg.hidden
        else:
            fused_dim = sum(pooled.values())
        n_classes = len(cfg.labels)
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(fused_dim, cfg.hidden), nn.GELU(),
                                  nn.Dropout(cfg.dropout))
        self.classifier = nn.Linear(cfg.hidden, n_classes)
        self.aux = nn.ModuleDict()
        if cfg.aux_heads:
            for m, d in pooled.items():
                self.aux[m] = nn.Linear(d, n_classes)
        if cfg.gender_head:
            self.aux["gender"] = nn.Linear(cfg.hidden, 2)

    def forward(self, audio: torch.Tensor | None = None, audio_mask: torch.Tensor | None = None,
                text: torch.Tensor | None = None, text_mask: torch.Tensor | None = None) -> SEROutput:
        """audio: (B, [La,] Ta, Da) frames with audio_mask (B, Ta); text likewise.
        A branch the config has but the call omits is treated as empty (pooled to zeros)."""
        inputs = {"audio": (audio, audio_mask), "text": (text, text_mask)}
        batch = next(x.shape[0] for x, _ in inputs.values() if x is not None)
        frames, masks = {}, {}
        for m, branch in self.branches.items():
            x, mask = inputs[m]
            if x is None:
                x = torch.zeros(batch, 1, getattr(self.config, f"{m}_dim"))
                mask = torch.zeros(batch, 1, dtype=torch.bool)
            frames[m], masks[m] = branch.embed(x), mask
        if hasattr(self, "cross"):
            a, t = frames["audio"], frames["text"]
            frames = {"audio": self.cross["audio"](a, t, masks["text"]),
                      "text": self.cross["text"](t, a, masks["audio"])}
        pooled, weights = {}, {}
        for m, branch in self.branches.items():
            pooled[m], weights[m] = branch.pool(frames[m], masks[m])  # (B, P_m), (B, K, T_m)
        if hasattr(self, "gate"):
            a, t = (self.gate_proj[m](pooled[m]) for m in ("audio", "text"))
            g = torch.sigmoid(self.gate(torch.cat([a, t], dim=-1)))
            fused = g * a + (1 - g) * t                                  # (B, hidden)
        else:
            fused = torch.cat([pooled[m] for m in self.branches], dim=-1)
        emb = self.head(fused)                                           # (B, hidden)
        aux = {m: self.aux[m](pooled[m]) for m in pooled if m in self.aux}
        if "gender" in self.aux:
            aux["gender"] = self.aux["gender"](emb)
        return SEROutput(self.classifier(emb), emb, weights.get("audio"), weights.get("text"), aux)
