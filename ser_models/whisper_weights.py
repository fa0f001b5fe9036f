"""The bundled CTranslate2 Whisper encoder as a PyTorch ``WhisperEncoder``.

CTranslate2 only returns the last encoder layer.  To read every hidden layer (and to
fine-tune), the weights of ``model.bin`` are read and loaded into transformers'
``WhisperEncoder``.  ``model.bin`` layout (ctranslate2/specs/model_spec.py, ``_serialize``):
uint32 version, string name, uint32 revision, uint32 n; n x (string name, uint8 rank,
rank x uint32 dims, uint8 dtype id, uint32 n_bytes, bytes); strings are uint16 length
(including a final NUL) + UTF-8 bytes.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import torch

# ctranslate2 DataType order (include/ctranslate2/types.h)
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16)


def read_ct2_variables(path: str | Path) -> dict[str, np.ndarray]:
    """All variables of a CTranslate2 ``model.bin`` (aliases are not needed here)."""
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return vals[0]

    def string():
        nonlocal pos
        n = take("H")
        s = data[pos: pos + n - 1].decode("utf-8")
        pos += n
        return s

    take("I")          # binary version
    string()           # spec name
    take("I")          # revision
    out = {}
    for _ in range(take("I")):
        name = string()
        dims = [take("I") for _ in range(take("B"))]
        dtype = _DTYPES[take("B")]
        n_bytes = take("I")
        out[name] = np.frombuffer(data, dtype=dtype, count=n_bytes // np.dtype(dtype).itemsize, offset=pos).reshape(dims)
        pos += n_bytes
    return out


def whisper_encoder_from_ct2(model_dir: str | Path):
    """transformers ``WhisperEncoder`` (float32) with the encoder weights of a CTranslate2
    Whisper model folder."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    v = read_ct2_variables(Path(model_dir) / "model.bin")
    n_layers = 1 + max(int(m.group(1)) for k in v if (m := re.match(r"encoder/layer_(\d+)/", k)))
    d = v["encoder/conv1/weight"].shape[0]
    cfg = WhisperConfig(d_model=d, encoder_layers=n_layers, encoder_attention_heads=int(v["encoder/num_heads"]),
                        encoder_ffn_dim=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
                        num_mel_bins=v["encoder/conv1/weight"].shape[1],
                        max_source_positions=v["encoder/position_encodings/encodings"].shape[0])
    enc = WhisperEncoder(cfg)

    def t(name):
        return torch.from_numpy(v[name].astype(np.float32))

    state = {"conv1.weight": t("encoder/conv1/weight"), "conv1.bias": t("encoder/conv1/bias"),
             "conv2.weight": t("encoder/conv2/weight"), "conv2.bias": t("encoder/conv2/bias"),
             "embed_positions.weight": t("encoder/position_encodings/encodings"),
             "layer_norm.weight": t("encoder/layer_norm/gamma"), "layer_norm.bias": t("encoder/layer_norm/beta")}
    for i in range(n_layers):
        src, dst = f"encoder/layer_{i}", f"layers.{i}"
        qkv_w, qkv_b = t(f"{src}/self_attention/linear_0/weight"), t(f"{src}/self_attention/linear_0/bias")
        state |= {
            f"{dst}.self_attn.q_proj.weight": qkv_w[:d], f"{dst}.self_attn.q_proj.bias": qkv_b[:d],
            f"{dst}.self_attn.k_proj.weight": qkv_w[d:2 * d],          # Whisper keys have no bias
            f"{dst}.self_attn.v_proj.weight": qkv_w[2 * d:], f"{dst}.self_attn.v_proj.bias": qkv_b[2 * d:],
            f"{dst}.self_attn.out_proj.weight": t(f"{src}/self_attention/linear_1/weight"),
            f"{dst}.self_attn.out_proj.bias": t(f"{src}/self_attention/linear_1/bias"),
            f"{dst}.self_attn_layer_norm.weight": t(f"{src}/self_attention/layer_norm/gamma"),
            f"{dst}.self_attn_layer_norm.bias": t(f"{src}/self_attention/layer_norm/beta"),
            f"{dst}.fc1.weight": t(f"{src}/ffn/linear_0/weight"), f"{dst}.fc1.bias": t(f"{src}/ffn/linear_0/bias"),
            f"{dst}.fc2.weight": t(f"{src}/ffn/linear_1/weight"), f"{dst}.fc2.bias": t(f"{src}/ffn/linear_1/bias"),
            f"{dst}.final_layer_norm.weight": t(f"{src}/ffn/layer_norm/gamma"),
            f"{dst}.final_layer_norm.bias": t(f"{src}/ffn/layer_norm/beta"),
        }
    enc.load_state_dict(state)
    return enc.eval()
