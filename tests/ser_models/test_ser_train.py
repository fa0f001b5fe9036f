"""Losses, sampling, training switches, reproducibility, speaker-independent CV."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from ser_models.corpus import speaker_folds
from ser_models.encoders import EncoderConfig
from ser_models.losses import CenterLoss, LossWeights, balanced_sampler, class_weights, ser_loss
from ser_models.model import ModelConfig, SEROutput
from ser_models.train import (MASK_SPAN, Featurizer, SERData, TrainConfig, _random_crop, cross_validate,
                              experiment_from_dict, fit, predict, spec_mask)

from ser_helpers import synthetic_frames

LABELS = ("a", "b", "c")


def _data(text=False, **kw):
    audio, txt, y, spk = synthetic_frames(text_dim=6 if text else None, **kw)
    inputs = {"audio": audio} | ({"text": txt} if text else {})
    gender = np.isin(spk, ["s0", "s2"]).astype(int)
    return SERData(inputs, y, gender, spk)


def _cfg(**kw):
    base = dict(labels=LABELS, audio=EncoderConfig(), audio_dim=16, pooling="mqmha", heads=2, queries=2,
                hidden=16, dropout=0.1)
    return ModelConfig(**(base | kw))


def _output(seed=0, n=6):
    g = torch.Generator().manual_seed(seed)
    return SEROutput(torch.randn(n, 3, generator=g), torch.randn(n, 5, generator=g), None, None,
                     {"audio": torch.randn(n, 3, generator=g), "text": torch.randn(n, 3, generator=g),
                      "gender": torch.randn(n, 2, generator=g)})


def test_class_weights_match_sklearn_balanced():
    y = np.array([0, 0, 0, 0, 1, 1, 2])
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y)
    assert np.allclose(class_weights(y, 3).numpy(), expected)
    assert class_weights(np.array([0, 0, 1]), 3)[2] == 0        # absent class


def test_weighted_smoothed_cross_entropy_matches_formula():
    out, y = _output(), torch.tensor([0, 1, 2, 0, 1, 2])
    w = torch.tensor([1.0, 2.0, 0.5])
    eps = 0.2
    logp = torch.log_softmax(out.logits, -1)
    target = torch.full((6, 3), eps / 3)
    target[torch.arange(6), y] += 1 - eps
    per_row = -(target * logp * w).sum(-1)
    expected = per_row.sum() / w[y].sum()
    got = ser_loss(out, y, None, LossWeights(label_smoothing=eps), weight=w)
    assert torch.allclose(got["ce"], expected) and torch.allclose(got["total"], expected)


def test_center_loss_value_and_total():
    out, y = _output(), torch.tensor([0, 1, 2, 0, 1, 2])
    center = CenterLoss(3, 5)
    expected_center = 0.5 * torch.stack([((out.embedding[i] - center.centers[y[i]]) ** 2).sum()
                                         for i in range(6)]).mean()
    terms = ser_loss(out, y, None, LossWeights(center_loss=0.3), center=center)
    assert torch.allclose(terms["center"], expected_center)
    assert torch.allclose(terms["total"], F.cross_entropy(out.logits, y) + 0.3 * expected_center)
    terms["total"].backward()
    assert center.centers.grad.abs().sum() > 0


def test_aux_modality_and_gender_terms():
    out, y = _output(), torch.tensor([0, 1, 2, 0, 1, 2])
    gender = torch.tensor([0, 1, -1, 1, -1, 0])                     # -1: unknown, ignored
    terms = ser_loss(out, y, gender, LossWeights(aux_modality=0.5, aux_gender=0.25))
    known = gender >= 0
    g_expected = F.cross_entropy(out.aux_logits["gender"][known], gender[known])
    assert torch.allclose(terms["gender"], g_expected)
    expected = (F.cross_entropy(out.logits, y) + 0.5 * (F.cross_entropy(out.aux_logits["audio"], y)
                + F.cross_entropy(out.aux_logits["text"], y)) + 0.25 * g_expected)
    assert torch.allclose(terms["total"], expected)
    off = ser_loss(out, y, gender, LossWeights())
    assert set(off) == {"ce", "total"}


def test_balanced_sampler_equalises_classes():
    y = np.array([0] * 900 + [1] * 90 + [2] * 10)
    counts = np.bincount(y[list(balanced_sampler(y, seed=3))], minlength=3)
    assert counts.sum() == 1000 and np.all(np.abs(counts / 1000 - 1 / 3) < 0.06)
    assert list(balanced_sampler(y, 3)) == list(balanced_sampler(y, 3))   # seeded


def test_random_crop_bounds():
    rng = np.random.default_rng(0)
    x = np.arange(100 * 2, dtype=np.float32).reshape(100, 2)
    lengths = []
    for _ in range(50):
        c = _random_crop(x, 0.6, rng)
        lengths.append(len(c))
        assert np.array_equal(c, x[int(c[0, 0] // 2): int(c[0, 0] // 2) + len(c)])   # contiguous
    assert 60 <= min(lengths) and max(lengths) <= 100 and len(set(lengths)) > 5


def test_spec_mask_shares_spans_and_padding():
    rng = np.random.default_rng(0)
    lengths = [2000, 1500, 5, 0]
    x = torch.ones(4, 3, 2000, 64)                                   # (B, L, T, D)
    mask = torch.zeros(4, 2000, dtype=torch.bool)
    for b, t in enumerate(lengths):
        mask[b, :t] = True
    x[3], mask[3, 0] = 1.0, True                                     # a one-frame example
    batch = {"audio": x, "audio_mask": mask}
    before = mask.clone()
    spec_mask(batch, Featurizer(_cfg(), encoders={}), 0.2, 0.1, rng)
    kept = mask & before
    assert torch.equal(mask, kept)                                   # padding never joins the pooling
    for b in (0, 1):
        t = lengths[b]
        share = 1 - mask[b, :t].float().mean().item()
        assert 0.12 < share < 0.25                                   # 1 - exp(-0.2): 18%, less where spans overlap
        off = np.r_[0, (~mask[b, :t]).numpy().astype(int), 0]
        edges = np.flatnonzero(np.diff(off))
        gaps = edges[1::2] - edges[0::2]                             # lengths of the masked stretches
        assert len(gaps) and (gaps >= MASK_SPAN).all()
        zero = (x[b] == 0).all(dim=(0, 1))                           # (D,) dims zeroed at every layer and frame
        assert 2 <= zero.sum() <= 14 and torch.equal((x[b] == 0).any(dim=(0, 1)), zero)
    assert mask[2, :5].all() and mask[3, 0]                          # shorter than a span: untouched
    assert len(set(tuple(((x[b] == 0).all(dim=(0, 1))).tolist()) for b in (0, 1))) == 2   # per example
    y = torch.ones(2, 50, 8)
    m = torch.ones(2, 50, dtype=torch.bool)
    spec_mask({"audio": y, "audio_mask": m}, Featurizer(_cfg(), encoders={}), 0.0, 0.0, rng)
    assert m.all() and (y == 1).all()                                # shares 0: nothing changes
    m[1] = False                                                     # an example with no frames at all
    spec_mask({"audio": y, "audio_mask": m}, Featurizer(_cfg(), encoders={}), 0.2, 0.1, rng)
    assert not m[1].any()                                            # stays empty (no frame is invented)


def _ua(model, data):
    probs, _ = predict(model, data, Featurizer(model.config, encoders={}))
    return float(np.mean([(probs.argmax(1)[data.y == c] == c).mean() for c in range(3)]))


@pytest.mark.parametrize("switches", [
    {},
    {"class_weights": True, "label_smoothing": 0.1},
    {"balanced_sampling": True, "crop": 0.7},
    {"center_loss": 0.01, "aux_modality": 0.3, "aux_gender": 0.3},
    {"time_mask": 0.2, "feature_mask": 0.1},
])
def test_training_learns_with_each_switch(switches):
    train, test = _data(seed=0), _data(seed=1)
    cfg = _cfg(aux_heads=bool(switches.get("aux_modality")), gender_head=bool(switches.get("aux_gender")))
    tc = TrainConfig(epochs=15, batch_size=8, lr=1e-2, **switches)
    model = fit(cfg, tc, train, Featurizer(cfg, encoders={}), progress=False)
    assert _ua(model, test) >= 0.9


@pytest.mark.parametrize("fusion,pooling", [("concat", "mqmha"), ("gated", "mqmha"),
                                            ("cross_attention", "mqmha"), ("gated", "asp")])
def test_bimodal_training_and_attention_finds_the_hot_frames(fusion, pooling):
    train, test = _data(text=True, seed=0, n_per_class=30), _data(text=True, seed=1)
    cfg = _cfg(text=EncoderConfig(kind="minilm"), text_dim=6, fusion=fusion, pooling=pooling,
               proj_dim=8 if fusion == "cross_attention" else 0)
    model = fit(cfg, TrainConfig(epochs=15, batch_size=16, lr=1e-2), train, Featurizer(cfg, encoders={}),
                progress=False)
    assert _ua(model, test) >= 0.85
    # attention mass on the frames carrying the class bump (~20% of the frames, plus ~7% of
    # noise frames above the threshold) is well above a uniform share
    _, att = predict(model, test, Featurizer(cfg, encoders={}))
    hot = [x[:, c] > 1.5 for x, c in zip(test.inputs["audio"], test.y)]
    uniform = np.mean([h.mean() for h in hot])
    attended = np.mean([w[h].sum() for w, h in zip(att, hot)])
    assert attended > uniform + 0.08


def test_fit_is_reproducible_from_seed():
    data = _data(n_per_class=6)
    cfg = _cfg()
    states = [fit(cfg, TrainConfig(epochs=2, batch_size=8, seed=s, balanced_sampling=True, crop=0.8), data,
                  Featurizer(cfg, encoders={}), progress=False).state_dict() for s in (5, 5, 6)]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_speaker_folds_never_split_a_speaker():
    spk = np.array([f"ravdess_{i:02d}" for i in range(1, 21) for _ in range(3)])
    folds = speaker_folds(spk, 5)
    assert [sorted(set(spk[f])) for f in folds][0] == ["ravdess_01", "ravdess_02", "ravdess_03", "ravdess_04"]
    assert [sorted(set(spk[f]))[0] for f in folds] == ["ravdess_01", "ravdess_05", "ravdess_09", "ravdess_13",
                                                       "ravdess_17"]
    assert sorted(np.concatenate(folds).tolist()) == list(range(60))
    with pytest.raises(ValueError, match="cannot make 30 speaker folds from 20 speakers"):
        speaker_folds(spk, 30)


def test_cross_validation_holds_out_whole_speakers():
    data = _data(n_per_class=12)
    cfg = _cfg()
    cv, oof = cross_validate(cfg, TrainConfig(epochs=10, batch_size=8, lr=1e-2), data,
                             Featurizer(cfg, encoders={}), k=4, progress=False)
    assert [s for s in cv.fold_speakers] == [["s0"], ["s1"], ["s2"], ["s3"]]
    assert sum(len(f.y_true) for f in cv.folds) == len(data)
    assert np.allclose(oof.sum(1), 1.0)
    pooled_acc = (oof.argmax(1) == data.y).mean()
    assert cv.pooled.wa == pytest.approx(pooled_acc)
    assert cv.mean("ua") >= 0.85


def test_experiment_config_parsing():
    exp = experiment_from_dict({"name": "x", "data": {"corpus": "c"},
                                "model": {"pooling": "asp", "text": {"kind": "minilm"}, "audio": "off"},
                                "train": {"epochs": 3}})
    assert exp.model.audio is None and exp.model.text.kind == "minilm" and exp.train.epochs == 3
    with pytest.raises(ValueError, match=r"\[train\]: unknown fields \['epoch'\]"):
        experiment_from_dict({"train": {"epoch": 3}})
    with pytest.raises(ValueError, match=r"\[model.audio\]: unknown fields \['model'\]"):
        experiment_from_dict({"model": {"audio": {"model": "x"}}})


def test_audio_variants_rotate_by_epoch_and_follow_subsets():
    data = _data(n_per_class=4)
    shifted = [a + 1 for a in data.inputs["audio"]]
    data.variants = [shifted]
    assert data.variant(0) is data and data.variant(2) is data
    assert data.variant(1).inputs["audio"] is shifted and np.array_equal(data.variant(1).y, data.y)
    sub = data.subset(np.array([3, 1]))
    assert np.array_equal(sub.variants[0][0], shifted[3]) and np.array_equal(sub.inputs["audio"][1],
                                                                           data.inputs["audio"][1])


def test_training_speaker_scale_trains_every_speaker_at_the_mean_spread():
    """``TrainConfig.speaker_scale``: speaker b says what a says, twice as wide (frames 2A
    against A); the mean spread is 1.5 A's, so training sees both at 1.5 A and gives the model
    trained on a and b both at 1.5 A. Without the switch the two trainings differ."""
    from ser_models.speaker_norm import SPEAKER, Centering

    rng = np.random.default_rng(0)
    items = [rng.normal(0, 1, (int(rng.integers(150, 250)), 16)).astype(np.float32) for _ in range(6)]
    y = np.arange(12) % 3
    spk = np.array(["a"] * 6 + ["b"] * 6)
    cfg = _cfg(speaker_norm="neutral", speaker_scale=True)

    def trained(width_a: float, width_b: float, scale: bool) -> dict:
        frames = [width_a * x for x in items] + [width_b * x for x in items]
        centering = Centering({g: np.zeros(16, np.float32) for g in "ab"}, {g: SPEAKER for g in "ab"}, {})
        data = SERData({"audio": frames}, y, np.zeros(12, int), spk, centering=centering)
        tc = TrainConfig(epochs=2, batch_size=4, seed=0, speaker_scale=scale)
        return fit(cfg, tc, data, Featurizer(cfg, encoders={}), progress=False).state_dict()

    wide, even = trained(1.0, 2.0, True), trained(1.5, 1.5, True)
    for k in wide:
        torch.testing.assert_close(wide[k], even[k], rtol=1e-4, atol=1e-5)
    wide, even = trained(1.0, 2.0, False), trained(1.5, 1.5, False)
    assert max((wide[k] - even[k]).abs().max().item() for k in wide if wide[k].is_floating_point()) > 1e-3


def test_cross_validation_with_speaker_baselines_warns_nothing():
    """A fold's centring holds every speaker; the held-out fold's starting baselines are taken
    over its own speakers only (the others' gave 0/0 and a RuntimeWarning in `ser train --cv`)."""
    import warnings

    from ser_models.speaker_norm import SPEAKER, Centering

    data = _data(n_per_class=12)
    groups = sorted(set(data.speakers))
    data = SERData(data.inputs, data.y, data.gender, data.speakers,
                   centering=Centering({g: np.zeros(16, np.float32) for g in groups}, {g: SPEAKER for g in groups}, {}))
    cfg = _cfg(speaker_norm="neutral")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cv, oof = cross_validate(cfg, TrainConfig(epochs=3, batch_size=8), data, Featurizer(cfg, encoders={}), k=4,
                                 progress=False)
    assert np.isfinite(oof).all() and np.allclose(oof.sum(1), 1.0)
