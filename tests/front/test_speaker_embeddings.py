"""CAM++ speaker embeddings: the network's parts against direct computations, the loader with a
tiny random config saved to a temporary folder, and the shipped weights on real voices."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from shared_data import SHARED, needs_shared
from pipelines.speech.campplus import CAMPPlus, CAMPPlusConfig, ContextAwareMask, StatsPool, fbank, load_campplus

TINY = CAMPPlusConfig(feat_dim=16, embedding_size=8, front_channels=4, init_channels=8, growth_rate=4,
                      bottleneck=8, blocks=((2, 3, 1), (2, 3, 2)), segment_frames=10)


def test_context_mask_pools_the_utterance_and_its_segment():
    """The mask's context at frame t is the utterance mean plus the mean of t's segment of
    ``segment_frames`` frames (the last segment is shorter): checked against a loop."""
    torch.manual_seed(0)
    cam = ContextAwareMask(c_bn=6, c_out=3, kernel=3, dilation=1, segment_frames=10).eval()
    x = torch.randn(2, 6, 25)  # 25 frames: segments of 10, 10 and 5
    context = torch.empty_like(x)
    for t in range(25):
        s = t // 10 * 10
        context[..., t] = x.mean(-1) + x[..., s: min(s + 10, 25)].mean(-1)
    mask = torch.sigmoid(cam.linear2(torch.relu(cam.linear1(context))))
    torch.testing.assert_close(cam(x), cam.linear_local(x) * mask)


def test_stats_pool_is_mean_and_standard_deviation():
    x = torch.randn(3, 5, 40)
    out = StatsPool()(x)
    np.testing.assert_allclose(out[:, :5].numpy(), x.numpy().mean(-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 5:].numpy(), x.numpy().std(-1, ddof=1), rtol=1e-5, atol=1e-6)


def test_tiny_config_round_trips_through_a_saved_state_dict(tmp_path):
    torch.manual_seed(1)
    model = CAMPPlus(TINY).eval()
    feats = torch.randn(2, 60, TINY.feat_dim)  # (B, T, F)
    out = model(feats)
    assert out.shape == (2, TINY.embedding_size)
    torch.save(model.state_dict(), tmp_path / "campplus.pt")
    loaded = load_campplus(tmp_path / "campplus.pt", TINY)
    torch.testing.assert_close(loaded(feats), out)
    with pytest.raises(RuntimeError, match="state_dict"):  # another layout is refused, not half-loaded
        load_campplus(tmp_path / "campplus.pt", CAMPPlusConfig())


def test_fbank_frames_mean_and_short_audio():
    x = np.random.default_rng(0).standard_normal(16_000).astype(np.float32) * 0.1
    f = fbank(x)
    assert f.shape == (1 + (16_000 - 400) // 160, 80)  # 25 ms windows every 10 ms
    np.testing.assert_allclose(f.mean(0).numpy(), 0.0, atol=1e-4)
    assert fbank(x[:1000]).shape[0] >= 48  # repeated up to 0.5 s


@needs_shared
def test_shipped_weights_tell_real_voices_apart(models):
    """RAVDESS actors 17-20 (held out where diarization and voice-linking settings were chosen),
    six clips each in different emotions: the verification equal-error rate of cosine scores
    is low, and the embedding ignores the recording level (filterbanks are mean-normalised)."""
    enc = models.encoder
    with (SHARED / "ravdess" / "labels.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["speaker"] in ("ravdess_17", "ravdess_18", "ravdess_19", "ravdess_20")]
    import soundfile as sf

    picked: list[tuple[str, np.ndarray]] = []
    for spk in sorted({r["speaker"] for r in rows}):
        mine = [r for r in rows if r["speaker"] == spk and r["intensity"] == "normal"]
        for r in mine[:: max(1, len(mine) // 6)][:6]:
            x, sr = sf.read(SHARED / "ravdess" / r["path"], dtype="float32")
            assert sr == 16_000
            picked.append((spk, x if x.ndim == 1 else x.mean(1)))
    E = enc.embed_many(x for _, x in picked)
    assert E.shape == (24, 192)
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    who = np.array([s for s, _ in picked])
    S = E @ E.T
    iu = np.triu_indices(len(E), 1)
    same, score = (who[:, None] == who[None])[iu], S[iu]
    # equal-error rate: the threshold where misses and false alarms balance
    eer = min(max(np.mean(score[same] < t), np.mean(score[~same] >= t)) for t in np.unique(score))
    assert eer <= 0.12, eer
    assert score[same].mean() - score[~same].mean() >= 0.3
    # 14 dB quieter: the same voice (not exactly the same vector: Kaldi's log floor bites on
    # the near-silent frames of a studio clip)
    quiet = enc(0.2 * picked[0][1])
    assert float(quiet @ E[0]) >= 0.9
