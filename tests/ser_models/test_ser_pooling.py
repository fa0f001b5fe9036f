"""Pooling layers: shapes, a direct loop implementation of each equation, masking."""

import math

import pytest
import torch

from ser_models.pooling import POOLING_METHODS, build_pooling

B, T, D = 3, 9, 8
LENGTHS = [9, 5, 1]


def _batch(seed=0, pad_value=0.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    mask = torch.arange(T)[None, :] < torch.tensor(LENGTHS)[:, None]
    x = torch.where(mask[..., None], x, torch.full_like(x, pad_value))
    return x, mask


def _layer(method, heads=2, queries=3):
    torch.manual_seed(1)
    layer = build_pooling(method, D, heads=heads, queries=queries, hidden=5).double()
    # non-trivial biases so the reference must use them
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return layer


def _softmax(scores):
    m = max(scores)
    e = [math.exp(s - m) for s in scores]
    return [v / sum(e) for v in e]


def _mean_std(rows, weights):
    d = len(rows[0])
    mu = [sum(w * r[j] for r, w in zip(rows, weights)) for j in range(d)]
    sd = [math.sqrt(sum(w * (r[j] - mu[j]) ** 2 for r, w in zip(rows, weights))) for j in range(d)]
    return mu, sd


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def reference(method, layer, rows, heads=2, queries=3):
    """Loop implementation of each layer on the real frames ``rows`` (list of lists)."""
    n = len(rows)
    if method == "max":
        return [max(r[j] for r in rows) for j in range(D)]
    if method == "mean":
        return [sum(r[j] for r in rows) / n for j in range(D)]
    if method == "stats":
        mu, sd = _mean_std(rows, [1 / n] * n)
        return mu + sd
    if method == "attention":
        u = layer.u.weight[0].tolist()
        a = _softmax([_dot(u, r) for r in rows])
        return [sum(w * r[j] for r, w in zip(rows, a)) for j in range(D)]
    if method == "asp":
        lin1, lin2 = layer.score[0], layer.score[2]
        scores = []
        for r in rows:
            h = [math.tanh(_dot(w, r) + b) for w, b in zip(lin1.weight.tolist(), lin1.bias.tolist())]
            scores.append(_dot(lin2.weight[0].tolist(), h) + lin2.bias.item())
        mu, sd = _mean_std(rows, _softmax(scores))
        return mu + sd
    d = D // heads
    out = []
    if method == "mha":
        for h in range(heads):
            sub = [r[h * d:(h + 1) * d] for r in rows]
            a = _softmax([_dot(layer.u[h].tolist(), s) / math.sqrt(d) for s in sub])
            out += [sum(w * s[j] for s, w in zip(sub, a)) for j in range(d)]
        return out
    if method == "mqmha":
        for h in range(heads):
            sub = [r[h * d:(h + 1) * d] for r in rows]
            for q in range(queries):
                w1, b1, v = layer.w1[h, q], layer.b1[h, q], layer.v[h, q]
                scores = []
                for s in sub:
                    hid = [math.tanh(sum(s[i] * w1[i, k].item() for i in range(d)) + b1[k].item())
                           for k in range(w1.shape[1])]
                    scores.append(_dot(v.tolist(), hid))
                mu, sd = _mean_std(sub, _softmax(scores))
                out += mu + sd
        return out
    raise AssertionError(method)


EXPECTED_DIM = {"max": D, "mean": D, "stats": 2 * D, "attention": D, "asp": 2 * D, "mha": D,
                "mqmha": 2 * 3 * D}
EXPECTED_K = {"mha": 2, "mqmha": 2 * 3}


@pytest.mark.parametrize("method", POOLING_METHODS)
def test_shapes_and_weights(method):
    layer = _layer(method)
    x, mask = _batch()
    pooled, w = layer(x, mask)
    assert pooled.shape == (B, EXPECTED_DIM[method]) == (B, layer.out_dim)
    assert w.shape == (B, EXPECTED_K.get(method, 1), T)
    assert torch.allclose(w.sum(-1), torch.ones(B, w.shape[1], dtype=w.dtype))
    assert (w[~mask[:, None, :].expand_as(w)] == 0).all()


@pytest.mark.parametrize("method", POOLING_METHODS)
def test_matches_loop_reference(method):
    layer = _layer(method)
    x, mask = _batch()
    pooled, _ = layer(x, mask)
    for b, n in enumerate(LENGTHS):
        ref = reference(method, layer, x[b, :n].tolist())
        # sigma = sqrt(var + 1e-10): a 1-frame example has sigma = 1e-5 instead of 0
        assert torch.allclose(pooled[b], torch.tensor(ref, dtype=torch.float64), atol=1.1e-5), (method, b)


@pytest.mark.parametrize("method", POOLING_METHODS)
def test_padding_does_not_change_result(method):
    layer = _layer(method)
    x, mask = _batch(pad_value=0.0)
    x_garbage, _ = _batch(pad_value=1e3)
    p1, w1 = layer(x, mask)
    p2, w2 = layer(x_garbage, mask)
    assert torch.allclose(p1, p2, atol=1e-12) and torch.allclose(w1, w2)
    # the same example alone, without padding
    for b, n in enumerate(LENGTHS):
        alone, _ = layer(x[b:b + 1, :n], mask[b:b + 1, :n])
        assert torch.allclose(alone[0], p1[b], atol=1e-12)


@pytest.mark.parametrize("method", POOLING_METHODS)
def test_empty_row_pools_to_zeros_with_finite_gradients(method):
    layer = _layer(method)
    x, mask = _batch()
    mask[2] = False
    x.requires_grad_(True)
    pooled, w = layer(x, mask)
    assert torch.equal(pooled[2], torch.zeros_like(pooled[2])) and torch.equal(w[2], torch.zeros_like(w[2]))
    pooled.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in layer.parameters())


@pytest.mark.parametrize("heads,queries", [(1, 1), (2, 4), (4, 2), (8, 1)])
def test_mqmha_output_is_2QD(heads, queries):
    layer = build_pooling("mqmha", D, heads=heads, queries=queries).double()
    pooled, w = layer(*_batch())
    assert pooled.shape == (B, 2 * queries * D) and w.shape == (B, heads * queries, T)


def test_heads_must_divide_dim():
    with pytest.raises(ValueError, match="not divisible"):
        build_pooling("mqmha", 10, heads=4)
    with pytest.raises(ValueError, match="unknown pooling"):
        build_pooling("median", 8)
