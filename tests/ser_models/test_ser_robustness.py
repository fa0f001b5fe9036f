"""Channel augmentation, speaker normalisation and calibration: each against an independent
computation of what it must do."""

import numpy as np
import pytest
import torch

from ser_models.augment import CODECS, Channel, add_noise, augment_by_speaker, change_speed, mp3, mulaw, telephone
from ser_models.calibration import adapt_prior, apply_temperature, ece, fit_temperature
from ser_models.model import LayerMix
from ser_models.speaker_norm import MIN_SPEECH_S, POPULATION, SPEAKER, Centering, center, speaker_centering

SR = 16_000


def _band_energy(x, lo, hi):
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return spec[(f >= lo) & (f < hi)].sum()


def _tones(freqs, seconds=1.0):
    t = np.arange(int(seconds * SR)) / SR
    return (sum(np.sin(2 * np.pi * f * t) for f in freqs) / (2 * len(freqs))).astype(np.float32)


def test_codecs_remove_what_the_real_channels_remove():
    x = _tones([1000, 6500])                                   # one tone in every band, one above 5.5 kHz
    for fn, cut in ((telephone, 3400), (mulaw, 4000), (mp3, 5512)):
        y = fn(x)
        assert len(y) == len(x)
        above = _band_energy(y, cut + 300, 8000) / _band_energy(x, cut + 300, 8000)
        kept = _band_energy(y, 900, 1100) / _band_energy(x, 900, 1100)
        assert above < 0.01, (fn.__name__, above)             # the 6.5 kHz tone is gone
        assert 0.5 < kept < 1.5, (fn.__name__, kept)          # the 1 kHz tone stays


def test_mulaw_quantisation_noise_is_that_of_8_bit_g711():
    x = _tones([440])
    y = mulaw(x)
    err = y[800:-800] - x[800:-800]
    snr = 10 * np.log10(np.mean(x[800:-800] ** 2) / np.mean(err ** 2))
    assert 25 < snr < 45        # 8-bit mu-law on a -9 dBFS tone: ~35-38 dB


def test_noise_speed_and_one_channel_per_speaker():
    x = _tones([300, 1200], 2.0)
    y = add_noise(x, 20.0, np.random.default_rng(0))
    assert 10 * np.log10(np.mean(x ** 2) / np.mean((y - x) ** 2)) == pytest.approx(20.0, abs=0.01)
    assert len(change_speed(x, 1.1)) == pytest.approx(len(x) / 1.1, abs=2)
    waves = [x, x * 0.5, x]
    out, channels = augment_by_speaker(waves, ["a", "b", "a"], seed=3)
    assert set(channels) == {"a", "b"} and all(c.codec in CODECS for c in channels.values())
    np.testing.assert_array_equal(out[0], channels["a"].apply(x))          # a's clips through a's channel
    np.testing.assert_array_equal(out[0], out[2])
    again, _ = augment_by_speaker(waves, ["a", "b", "a"], seed=3)
    np.testing.assert_array_equal(out[1], again[1])                         # seeded
    assert Channel().apply(x) is not x and np.array_equal(Channel().apply(x), x)


def test_speaker_centering_is_each_speakers_mean_and_commutes_with_the_layer_mix():
    rng = np.random.default_rng(0)
    hop = 0.02
    n_long = int(MIN_SPEECH_S / hop) + 10
    frames = [rng.normal(2.0, 1, (3, n_long // 2, 4)), rng.normal(-1, 1, (3, n_long - n_long // 2, 4)),
              rng.normal(5.0, 1, (3, 20, 4))]                                  # (L, T, D); the last: 0.4 s
    groups = ["a", "a", "b"]
    pop = np.full((3, 4), 7.0)
    c = speaker_centering(frames, groups, hop, population=pop)
    expect_a = np.concatenate(frames[:2], axis=1).mean(axis=1)
    np.testing.assert_allclose(c.centers["a"], expect_a, rtol=1e-5)
    assert c.basis == {"a": SPEAKER, "b": POPULATION} and c.speech_s["b"] == pytest.approx(0.4)
    np.testing.assert_allclose(c.centers["b"], pop)
    assert "1 speaker(s) with less than 8 s" in c.note() and "b (0.4 s)" in c.note()
    out = center(frames, groups, c)
    np.testing.assert_allclose(np.concatenate(out[:2], axis=1).mean(axis=1), 0, atol=1e-5)
    # centring the (L, T, D) frames then mixing == mixing then centring on the mixed mean
    mix = LayerMix(3)
    with torch.no_grad():
        mix.logits.copy_(torch.tensor([0.3, -1.0, 2.0]))
        mixed = [mix(torch.tensor(f, dtype=torch.float32)[None])[0].numpy() for f in frames[:2]]
        after = center(mixed, groups[:2], speaker_centering(mixed, groups[:2], hop))
        before = [mix(torch.tensor(f)[None])[0].numpy() for f in out[:2]]
    for a, b in zip(after, before):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_temperature_scaling_recovers_a_known_overconfidence():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, (4000, 5))
    p_true = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(5, p=p) for p in p_true])
    over = apply_temperature(p_true, 1 / 2.5)                 # the model's logits are 2.5x too large
    cal = fit_temperature(over, y)
    assert cal.temperature == pytest.approx(2.5, rel=0.1)
    assert cal.nll_after < cal.nll_before and cal.ece_after < cal.ece_before / 3
    assert ece(p_true, y) < 0.03                              # the true probabilities are calibrated


def test_prior_em_recovers_a_shifted_class_prior():
    """Three 1-D Gaussian classes; the exact posteriors under a uniform prior are computed from
    the densities, the items are drawn from a skewed prior.  EM must find that prior, and its
    posteriors must be the exact ones under it (Bayes' rule, computed independently)."""
    rng = np.random.default_rng(1)
    means, true_prior = np.array([-2.0, 0.0, 2.0]), np.array([0.7, 0.2, 0.1])
    y = rng.choice(3, size=20_000, p=true_prior)
    x = rng.normal(means[y], 1.0)
    dens = np.exp(-0.5 * (x[:, None] - means[None]) ** 2)     # (N, 3), up to a constant
    uniform_post = dens / dens.sum(1, keepdims=True)
    est = adapt_prior(uniform_post)
    np.testing.assert_allclose(est.prior, true_prior, atol=0.015)
    exact = dens * est.prior / (dens * est.prior).sum(1, keepdims=True)
    np.testing.assert_allclose(est.probs, exact, atol=1e-6)
    assert (est.probs.argmax(1) == y).mean() > (uniform_post.argmax(1) == y).mean() + 0.02
    balanced = rng.choice(3, size=20_000)                     # no shift: the prior stays put
    xb = rng.normal(means[balanced], 1.0)
    db = np.exp(-0.5 * (xb[:, None] - means[None]) ** 2)
    np.testing.assert_allclose(adapt_prior(db / db.sum(1, keepdims=True)).prior, 1 / 3, atol=0.015)
    few = adapt_prior(uniform_post[:8], pseudo_count=1e6)    # a strong Dirichlet keeps the source prior
    np.testing.assert_allclose(few.prior, 1 / 3, atol=1e-4)
    np.testing.assert_allclose(few.probs, uniform_post[:8], atol=1e-4)
    src = np.array([0.5, 0.25, 0.25])                         # posteriors that assume another prior
    post_src = dens * src / (dens * src).sum(1, keepdims=True)
    np.testing.assert_allclose(adapt_prior(post_src, src).prior, true_prior, atol=0.015)


def test_iterative_normalisation_finds_the_neutral_register():
    """Busso et al.'s IFN: from the all-speech mean, the centre moves to the mean of the
    items the model calls neutral, weighted by their length."""
    from ser_models.speaker_norm import iterative_centering

    rng = np.random.default_rng(1)
    means = np.r_[rng.normal(0.0, 0.1, (8, 2)), rng.normal(5.0, 0.1, (4, 2))]     # 8 neutral items, 4 emotional
    lengths = np.r_[np.full(8, 100.0), np.full(4, 150.0)]
    groups = ["s"] * 12
    start = speaker_centering([np.repeat(m[None], int(n), 0) for m, n in zip(means, lengths)], groups, 0.02)
    assert start.centers["s"][0] == pytest.approx(means[:, 0] @ lengths / lengths.sum(), rel=1e-4)   # ~2.1 here

    def score(centers):          # a 'model' that calls an item neutral when it is near the centre
        d = np.linalg.norm(means - centers["s"], axis=1)
        p_neutral = (d < 3.5).astype(float)                   # at the start: 3.0 from neutral, 4.1 from emotional
        return np.c_[p_neutral, 1 - p_neutral]

    cen, probs = iterative_centering(means, lengths, groups, start, score, np.array([True, False]))
    np.testing.assert_allclose(cen.centers["s"], means[:8].mean(0), atol=1e-6)
    assert probs[:8, 0].all() and not probs[8:, 0].any()


def test_speaker_scaling_gives_each_speaker_the_reference_spread_after_the_mix():
    """``frame_std`` is the per-feature spread of a speaker's mixed frames over all its items;
    ``scaled_to`` scales the (L, T, D) frames so that, mixed, each long speaker has the
    reference spread, and leaves a speaker on the population centre alone."""
    from ser_models.model import BimodalSER, ModelConfig
    from ser_models.encoders import EncoderConfig
    from ser_models.speaker_norm import frame_std
    from ser_models.train import SERData, mixer, scaled_to

    rng = np.random.default_rng(2)
    cfg = ModelConfig(audio=EncoderConfig(kind="whisper", name="x", layers="all"), text=None, audio_dim=4,
                      audio_layers=3, labels=("neutral", "sad"), speaker_norm="neutral")
    model = BimodalSER(cfg)
    with torch.no_grad():
        model.branches["audio"].mix.logits.copy_(torch.tensor([0.5, -0.5, 1.0]))
    spread = np.array([1.0, 2.0, 0.5, 3.0])
    frames = [rng.normal(0, 1, (3, 400, 4)) * spread, rng.normal(0, 1, (3, 300, 4)) * spread,
              rng.normal(0, 1, (3, 50, 4))]
    groups = np.array(["a", "a", "b"])
    mix = mixer(model)
    std = frame_std(frames, groups, mix)
    direct = np.concatenate([mix(f) for f in frames[:2]]).std(axis=0)
    np.testing.assert_allclose(std["a"], direct, rtol=1e-4)
    np.testing.assert_allclose(frame_std([mix(f) for f in frames], groups)["a"], direct, rtol=1e-4)  # (T, D) items
    ref = np.array([0.7, 0.7, 0.7, 0.7], np.float32)
    centering = Centering({"a": np.zeros((3, 4)), "b": np.zeros((3, 4))}, {"a": SPEAKER, "b": POPULATION},
                          {"a": 14.0, "b": 1.0})
    data = SERData({"audio": frames}, np.zeros(3, int), np.full(3, -1), groups, centering=centering)
    out = scaled_to(model, data, ref).inputs["audio"]
    np.testing.assert_allclose(frame_std(out[:2], groups[:2], mix)["a"], ref, rtol=1e-3)
    np.testing.assert_array_equal(out[2], frames[2])


def test_speaker_scale_scores_alike_in_the_flow_and_in_ser_predict():
    """With ``speaker_scale`` the flow's path (``EmotionScorer.score_frames`` on a call's
    mixed (T, D) frames) and ``ser predict``'s (``predict_speakers`` on (L, T, D) frames)
    give the same probabilities, and the stored spread does change them."""
    from types import SimpleNamespace

    from ser_models.encoders import EncoderConfig
    from ser_models.inference import EmotionScorer
    from ser_models.model import BimodalSER, ModelConfig
    from ser_models.train import Featurizer, SERData, mixer, predict_speakers

    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    labels = ("neutral", "calm", "sad", "happy")
    cfg = ModelConfig(audio=EncoderConfig(kind="whisper", name="x", layers="all"), text=None, audio_dim=8,
                      audio_layers=3, labels=labels, speaker_norm="neutral", speaker_scale=True)
    model = BimodalSER(cfg).eval()
    with torch.no_grad():
        model.branches["audio"].spread.copy_(torch.linspace(0.5, 2.0, 8))
    hop = 0.02
    frames = [rng.normal(m, s, (3, int(rng.integers(150, 300)), 8)).astype(np.float32)
              for m, s in [(0.5, 1.0)] * 3 + [(-1.0, 3.0)] * 3]
    speakers = np.array(["a"] * 3 + ["b"] * 3)
    scorer = EmotionScorer(model, SimpleNamespace(labels=labels, raw={}), Featurizer(cfg, encoders={"audio": None}))
    layered = scorer.score_frames(frames, speakers=speakers, hop_s=hop)
    mix = mixer(model)
    mixed = scorer.score_frames([mix(f) for f in frames], speakers=speakers, hop_s=hop)
    assert layered.basis == ["speaker"] * 6
    np.testing.assert_allclose(mixed.probs, layered.probs, atol=1e-4)
    start = speaker_centering(frames, speakers, hop)
    data = SERData({"audio": center(frames, speakers, start)}, np.zeros(6, int), np.full(6, -1), speakers,
                   centering=start)
    np.testing.assert_allclose(predict_speakers(model, data, scorer.featurizer)[0], layered.probs, atol=1e-4)
    with torch.no_grad():
        model.branches["audio"].spread.mul_(3.0)
    assert np.abs(scorer.score_frames(frames, speakers=speakers, hop_s=hop).probs - layered.probs).max() > 1e-3
