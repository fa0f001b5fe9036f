"""BimodalSER: fusion variants, modality switches, layer mixing, masking."""

import pytest
import torch

from ser_models.encoders import EncoderConfig, pad_frames
from ser_models.model import BimodalSER, LayerMix, ModelConfig

LABELS = ("neutral", "happy", "sad", "angry")
TEXT = EncoderConfig(kind="minilm")


def _cfg(**kw):
    base = dict(labels=LABELS, audio=EncoderConfig(), text=TEXT, audio_dim=12, text_dim=10, proj_dim=8,
                pooling="mqmha", heads=2, queries=2, hidden=16, dropout=0.0)
    return ModelConfig(**(base | kw))


def _inputs(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, am = pad_frames([torch.randn(t, 12, generator=g) for t in (7, 4, 9)][:b])
    t, tm = pad_frames([torch.randn(n, 10, generator=g) for n in (3, 5, 0)][:b])
    return dict(audio=a, audio_mask=am, text=t, text_mask=tm)


@pytest.mark.parametrize("fusion", ["concat", "cross_attention", "gated"])
def test_fusions_shapes_and_padding_invariance(fusion):
    torch.manual_seed(0)
    model = BimodalSER(_cfg(fusion=fusion)).eval()
    x = _inputs()
    out = model(**x)
    assert out.logits.shape == (3, 4) and out.embedding.shape == (3, 16)
    assert out.audio_weights.shape == (3, 4, 9) and out.text_weights.shape == (3, 4, 5)
    assert torch.isfinite(out.logits).all()          # example 3 has an empty transcript
    # extra padding with garbage must not change anything
    padded = {k: torch.cat([v, torch.full_like(v[:, :3], 7.0) if v.dtype != torch.bool
                            else torch.zeros_like(v[:, :3])], dim=1) for k, v in x.items()}
    assert torch.allclose(model(**padded).logits, out.logits, atol=1e-5)
    # each example alone gives the same logits as in the batch
    for i in range(3):
        one = {k: v[i:i + 1] for k, v in x.items()}
        assert torch.allclose(model(**one).logits[0], out.logits[i], atol=1e-5)


def test_concat_width_is_sum_of_pooled_sizes():
    model = BimodalSER(_cfg(fusion="concat", pooling="stats"))
    assert model.head[1].in_features == 2 * 8 + 2 * 8


@pytest.mark.parametrize("off", ["audio", "text"])
def test_one_modality_switched_off(off):
    model = BimodalSER(_cfg(**{off: None})).eval()
    assert list(model.branches) == [m for m in ("audio", "text") if m != off]
    x = {k: v for k, v in _inputs().items() if not k.startswith(off)}
    out = model(**x)
    assert out.logits.shape == (3, 4)
    assert (out.audio_weights is None) == (off == "audio") and (out.text_weights is None) == (off == "text")


def test_missing_branch_input_equals_empty_branch():
    model = BimodalSER(_cfg()).eval()
    x = _inputs()
    empty = dict(x, text=torch.zeros(3, 1, 10), text_mask=torch.zeros(3, 1, dtype=torch.bool))
    without = {k: v for k, v in x.items() if not k.startswith("text")}
    assert torch.allclose(model(**empty).logits, model(**without).logits)


def test_aux_and_gender_heads():
    model = BimodalSER(_cfg(aux_heads=True, gender_head=True))
    out = model(**_inputs())
    assert set(out.aux_logits) == {"audio", "text", "gender"}
    assert out.aux_logits["audio"].shape == (3, 4) and out.aux_logits["gender"].shape == (3, 2)


def test_layer_mix_is_softmax_weighted_sum():
    mix = LayerMix(3)
    with torch.no_grad():
        mix.logits.copy_(torch.tensor([0.0, 1.0, 2.0]))
    x = torch.randn(2, 3, 5, 4)
    w = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0)
    expected = w[0] * x[:, 0] + w[1] * x[:, 1] + w[2] * x[:, 2]
    assert torch.allclose(mix(x), expected, atol=1e-6)
    assert torch.equal(mix(x[:, 0]), x[:, 0])       # one layer: passed through


def test_model_with_layered_frames_learns_layer_weights():
    model = BimodalSER(_cfg(text=None, audio_layers=3))
    a = torch.randn(2, 3, 6, 12)
    out = model(audio=a, audio_mask=torch.ones(2, 6, dtype=torch.bool))
    out.logits.sum().backward()
    assert model.branches["audio"].mix.logits.grad.abs().sum() > 0


def test_frame_norm_standardises():
    model = BimodalSER(_cfg(text=None))
    frames = torch.randn(500, 12) * 5 + 3
    model.branches["audio"].norm.fit(frames)
    z = model.branches["audio"].norm(frames)
    assert torch.allclose(z.mean(0), torch.zeros(12), atol=1e-5)
    assert torch.allclose(z.std(0), torch.ones(12), atol=1e-4)


def test_config_checks():
    with pytest.raises(ValueError, match="both modalities"):
        ModelConfig(audio=None, text=None)
    with pytest.raises(ValueError, match="proj_dim"):
        ModelConfig(text=TEXT, fusion="cross_attention", proj_dim=0)
    with pytest.raises(ValueError, match="unknown fusion"):
        ModelConfig(fusion="sum")
    with pytest.raises(ValueError, match="not an audio encoder"):
        ModelConfig(audio=TEXT)
    with pytest.raises(KeyError, match="unknown \\['extra'\\]"):
        ModelConfig.from_dict(ModelConfig().to_dict() | {"extra": 1})
    assert ModelConfig.from_dict(_cfg().to_dict()) == _cfg()
