"""Training, prediction and speaker-independent cross-validation of ``BimodalSER``.

An experiment is a TOML file (see ``ser_models/configs/*.toml``)::

    name = "embedded"
    [data]
    corpus = "../shared/data/ravdess"      # folder with labels.csv
    [model]                                # ModelConfig fields
    pooling = "mqmha"
    text = "off"                           # switch a modality off
    [model.audio]                          # EncoderConfig fields
    kind = "whisper_ct2"
    [train]                                # TrainConfig fields
    epochs = 40

Frozen encoders: every clip is encoded once (on-disk cache) and training runs on the cached
frames.  Fine-tuned encoders (``finetune = true``) run inside each training step.
"""

from __future__ import annotations

import logging
import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from ser_models.corpus import Corpus, speaker_folds
from ser_models.encoders import EncoderConfig, FrameEncoder, build_encoder, encode_packed, pad_frames
from ser_models.losses import CenterLoss, LossWeights, balanced_sampler, class_weights, ser_loss
from ser_models.metrics import CVResult, EvalResult
from ser_models.model import BimodalSER, ModelConfig
from ser_models.speaker_norm import (BASELINE_CLASSES, SPEAKER, Centering, frame_std, item_means, iterative_centering,
                                     population_center, scale, speaker_centering)

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Optimisation and loss switches (each one is tested in tests/ser_models/test_train.py).

    class_weights: inverse-frequency weights in the cross-entropy.
    label_smoothing: cross-entropy label smoothing.
    balanced_sampling: draw every class equally often (with replacement).
    center_loss / aux_modality / aux_gender: weights of those loss terms (0 = off).
    crop: random time crop keeping at least this fraction of the frames (1.0 = off).
    encoder_lr: learning rate of fine-tuned encoders.
    packings: number of random packings of the training clips into call-like windows,
        used in turn by successive epochs (augmentation; needs an audio encoder with pack_s > 0).
    augment: "" (none) or "channel": packings after the first put each speaker's clips through
        one random channel (codec, noise, reverberation, gain, speed; ``ser_models.augment``).
    nuisance_corpus: an unlabelled folder (labels.csv with path, speaker) of the speech the
        model is for, whose within-speaker variation estimates the nuisance subspace of
        ``ModelConfig.nuisance_dims``; its audio only, never its text or ids as labels.
    threads: torch intra-op threads while training (0 = torch's default); small heads on
        cached frames train fastest on one thread, especially on a shared machine.
    time_mask / feature_mask: SpecAugment-style masking of cached frames in training (Park et
        al. 2019, as wav2vec 2.0 fine-tuning masks its features): about this share of each
        example's frames is left out of the pooling, in spans of ``MASK_SPAN`` frames, and this
        share of its feature dimensions is set to 0 (the speaker's centre) at every frame.
    speaker_scale: with ``ModelConfig.speaker_scale``, scale the training speakers' frames
        too: every epoch, each speaker's centred frames go to the speakers' mean spread through
        the current layer mix (the whole per-speaker z-normalisation in training, as the model
        gets it at inference), instead of the spread each actor happens to have.
    """

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    encoder_lr: float = 1e-5
    weight_decay: float = 1e-2
    seed: int = 0
    class_weights: bool = False
    label_smoothing: float = 0.0
    balanced_sampling: bool = False
    center_loss: float = 0.0
    aux_modality: float = 0.0
    aux_gender: float = 0.0
    crop: float = 1.0
    packings: int = 1
    augment: str = ""
    nuisance_corpus: str = ""
    threads: int = 0
    speaker_scale: bool = False
    time_mask: float = 0.0
    feature_mask: float = 0.0

    def __post_init__(self):
        if self.augment not in ("", "channel"):
            raise ValueError(f"augment={self.augment!r}: use '' or 'channel'")

    @property
    def loss_weights(self) -> LossWeights:
        return LossWeights(self.label_smoothing, self.aux_modality, self.aux_gender, self.center_loss)


@dataclass
class Experiment:
    name: str = "ser"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    corpus: str = ""
    speakers: list[str] | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "model": self.model.to_dict(), "train": asdict(self.train),
                "corpus": self.corpus, "speakers": self.speakers}


def _checked(allowed, d: dict, where: str) -> dict:
    """``d`` unchanged if all its keys are in ``allowed`` (names or a dataclass), else an error."""
    names = {f.name for f in fields(allowed)} if hasattr(allowed, "__dataclass_fields__") else set(allowed)
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{where}: unknown fields {unknown}; known: {', '.join(sorted(names))}")
    return d


def experiment_from_dict(d: dict, where: str = "config") -> Experiment:
    """Build an Experiment from TOML-like nested dicts (unknown keys are errors)."""
    _checked({"name", "model", "train", "data"}, d, where)
    m = dict(d.get("model", {}))
    for mod in ("audio", "text"):
        v = m.get(mod, {} if mod == "audio" else None)
        if v in ("off", "none", False, None):
            m[mod] = None
        else:
            m[mod] = EncoderConfig(**_checked(EncoderConfig, v, f"{where} [model.{mod}]"))
    model = ModelConfig(**_checked(ModelConfig, m, f"{where} [model]"))
    train = TrainConfig(**_checked(TrainConfig, d.get("train", {}), f"{where} [train]"))
    data = _checked({"corpus", "speakers"}, d.get("data", {}), f"{where} [data]")
    return Experiment(d.get("name", "ser"), model, train, data.get("corpus", ""), data.get("speakers"))


def load_experiment(path: str | Path) -> Experiment:
    path = Path(path)
    try:
        d = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ValueError(f"{path}: config file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    return experiment_from_dict(d, str(path))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class SERData:
    """Model inputs of N examples: per modality either cached frames ((T, D) or (L, T, D)
    arrays, frozen encoders) or raw inputs (waveforms / texts, fine-tuned encoders).

    ``variants``: alternative audio frames of the same examples (other random packings of
    the clips into windows), used in turn by successive training epochs.
    ``centering``: with speaker normalisation, the speaker centres taken off the audio frames
    of ``inputs`` (None otherwise)."""

    inputs: dict[str, list]
    y: np.ndarray
    gender: np.ndarray
    speakers: np.ndarray
    variants: list[list] = field(default_factory=list)
    centering: Centering | None = None
    nuisance: np.ndarray | None = None          # (k, D) basis for the model's nuisance projection

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> "SERData":
        return SERData({m: [v[i] for i in idx] for m, v in self.inputs.items()},
                       self.y[idx], self.gender[idx], self.speakers[idx], [[v[i] for i in idx] for v in self.variants],
                       self.centering, self.nuisance)

    def variant(self, k: int) -> "SERData":
        """The data with audio variant k (0 = ``inputs`` itself)."""
        k %= 1 + len(self.variants)
        if k == 0:
            return self
        return SERData(self.inputs | {"audio": self.variants[k - 1]}, self.y, self.gender, self.speakers,
                       centering=self.centering, nuisance=self.nuisance)

    def recentered(self, centers: dict) -> "SERData":
        """The data with each speaker's audio frames centred on ``centers[speaker]`` instead
        of the centre they carry (``centering``)."""
        if self.centering is None:
            return self
        shift = {g: (c - centers[g]).astype(np.float32) for g, c in self.centering.centers.items()}
        audio = [(np.asarray(f, np.float32) + shift[g][..., None, :]).astype(np.asarray(f).dtype)
                 for f, g in zip(self.inputs["audio"], self.speakers)]
        return SERData(self.inputs | {"audio": audio}, self.y, self.gender, self.speakers,
                       centering=Centering(dict(centers), dict(self.centering.basis), dict(self.centering.speech_s)))

    def absolute(self, population: np.ndarray) -> "SERData":
        """The data with audio frames centred on ``population`` instead of each speaker's own
        centre (the absolute score of a speaker-normalised model)."""
        if self.centering is None:
            return self
        return self.recentered({g: population for g in self.centering.centers})


class Featurizer:
    """The encoders of a ModelConfig; turns corpora into SERData and batches into tensors."""

    def __init__(self, config: ModelConfig, cache_dir: str | Path | None = None,
                 encoders: dict[str, FrameEncoder] | None = None):
        self.config = config
        if encoders is None:
            encoders = {m: build_encoder(getattr(config, m), cache_dir) for m in config.modalities}
        self.encoders = encoders

    def finetuned(self, m: str) -> bool:
        return getattr(self.config, m).finetune

    def prepare(self, corpus: Corpus, progress: bool = True, packings: int = 1, augment: str = "",
                population: np.ndarray | None = None, label_baseline: bool = True) -> SERData:
        """Encode a corpus.  Audio clips are encoded as the flow encodes a call when the
        audio encoder has ``pack_s > 0``: the clips of each speaker are joined into windows
        of ``pack_s`` seconds and sliced back out (``packings`` different random packings:
        the first is ``inputs``, the others ``variants``; with ``augment="channel"`` every
        packing after the first puts each speaker through a random channel).

        With ``speaker_norm`` each packing's audio frames are centred per speaker
        (``population``: the fallback centre for speakers with too little speech); for
        "neutral", on the speaker's neutral and calm clips when ``label_baseline`` and every
        clip is labelled (training), else on all of the speaker's speech (the start of
        ``predict_speakers``'s iterations)."""
        raw, centering = {}, None
        if "audio" in self.encoders:
            raw["audio"] = corpus.audio()
        if "text" in self.encoders:
            raw["text"] = corpus.texts
        inputs, variants = {}, []
        for m, items in raw.items():
            t0 = time.time()
            enc = self.encoders[m]
            if self.finetuned(m):
                inputs[m] = items
            elif m == "audio" and self.config.audio.pack_s > 0:
                packed = []
                for k in range(max(1, packings)):
                    waves = items
                    if augment and k > 0:
                        from ser_models.augment import augment_by_speaker

                        waves = augment_by_speaker(items, corpus.speakers, seed=k)[0]
                    frames = encode_packed(enc, waves, corpus.speakers, self.config.audio.pack_s, seed=k,
                                           progress=progress)
                    frames, c = self._speaker_normed(frames, corpus.speakers, population,
                                                     self._baseline_weights(corpus.y) if label_baseline else None)
                    centering = centering if k else c
                    packed.append(frames)
                inputs[m], variants = packed[0], packed[1:]
            else:
                inputs[m] = enc.encode(items, progress=progress)
            log.info("%s: %d inputs ready in %.1f s (%s)", m, len(items), time.time() - t0,
                     "raw, fine-tuned encoder" if self.finetuned(m) else enc.encoder_id)
        if centering is not None and centering.note():
            log.info("%s", centering.note())
        return SERData(inputs, corpus.y, corpus.gender, corpus.speakers, variants, centering)

    def _baseline_weights(self, y: np.ndarray) -> np.ndarray | None:
        """1 for the clips of the neutral classes, 0 for the others ("neutral" norm, labelled corpora)."""
        if self.config.speaker_norm != "neutral" or (np.asarray(y) < 0).any():
            return None
        base = [i for i, lab in enumerate(self.config.labels) if lab in BASELINE_CLASSES]
        return np.isin(y, base).astype(float) if base else None

    def _speaker_normed(self, frames: list, speakers, population, weights=None) -> tuple[list, Centering | None]:
        """Frames as float16 (as the disk cache keeps them, so a first run and a cached run
        agree), centred per speaker with a ``speaker_norm``."""
        if self.config.speaker_norm == "none":
            return [np.asarray(f, np.float16) for f in frames], None
        c = speaker_centering(frames, speakers, self.encoders["audio"].hop_s, population, weights=weights)
        return [(np.asarray(f, np.float32) - c.centers[g][..., None, :]).astype(np.float16)
                for f, g in zip(frames, speakers)], c

    def batch(self, data: SERData, idx: Sequence[int], grad: bool = False,
              crop: float = 1.0, rng: np.random.Generator | None = None) -> dict[str, torch.Tensor]:
        out = {}
        for m, items in data.inputs.items():
            sel = [items[i] for i in idx]
            if self.finetuned(m):
                x, mask = self.encoders[m].frames(sel, grad=grad)
            else:
                if crop < 1.0 and rng is not None:
                    sel = [_random_crop(a, crop, rng) for a in sel]
                x, mask = pad_frames(sel)
            out[m], out[f"{m}_mask"] = x, mask
        return out


def _random_crop(frames: np.ndarray, keep_min: float, rng: np.random.Generator) -> np.ndarray:
    t = frames.shape[-2]
    n = max(1, int(round(t * rng.uniform(keep_min, 1.0))))
    a = int(rng.integers(0, t - n + 1))
    return frames[..., a: a + n, :]


MASK_SPAN = 10   # frames (0.2 s of Whisper frames), wav2vec 2.0's mask length


def spec_mask(batch: dict, featurizer: "Featurizer", time_share: float, feature_share: float,
              rng: np.random.Generator) -> None:
    """Mask the cached-frame branches of a training batch in place: spans of ``MASK_SPAN``
    frames leave the pooling mask (about ``time_share`` of each example's frames; at least one
    frame stays), and ``feature_share`` of the feature dimensions of each example are zeroed.
    x: (B, [L,] T, D), mask: (B, T)."""
    for m in [k for k in batch if not k.endswith("_mask") and not featurizer.finetuned(k)]:
        x, mask = batch[m], batch[f"{m}_mask"]
        for b in range(x.shape[0]):
            t = int(mask[b].sum())
            n_spans = rng.binomial(t // MASK_SPAN, time_share) if t > MASK_SPAN else 0
            for a in rng.integers(0, t - MASK_SPAN + 1, size=n_spans):
                mask[b, a: a + MASK_SPAN] = False
            if n_spans and not mask[b].any():
                mask[b, int(rng.integers(0, t))] = True
            if feature_share:
                x[b, ..., torch.as_tensor(rng.random(x.shape[-1]) < feature_share)] = 0.0


def fit_norms(model: BimodalSER, data: SERData, featurizer: Featurizer, max_items: int = 256) -> None:
    """Standardisation statistics of each branch from (at most ``max_items``) training examples."""
    idx = np.unique(np.linspace(0, len(data) - 1, min(len(data), max_items)).astype(int))  # spread over speakers
    batch = featurizer.batch(data, idx)
    with torch.no_grad():
        for m, branch in model.branches.items():
            x = branch.frames(batch[m])[batch[f"{m}_mask"]]            # (N_frames, D)
            if len(x) > 1:
                branch.norm.fit(x)


@contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch intra-op threads (0: leave as is)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit(config: ModelConfig, tc: TrainConfig, data: SERData, featurizer: Featurizer,
        progress: bool = True, desc: str = "train") -> BimodalSER:
    """Train a BimodalSER on ``data``; reproducible from ``tc.seed``."""
    with torch_threads(tc.threads):
        return _fit(config, tc, data, featurizer, progress, desc)


def _fit(config, tc, data, featurizer, progress, desc) -> BimodalSER:
    seed_everything(tc.seed)
    model = BimodalSER(config)
    if data.centering is not None and hasattr(model.branches["audio"], "center"):
        train_speakers = set(data.speakers.tolist())
        own = Centering({g: c for g, c in data.centering.centers.items() if g in train_speakers},
                        {g: b for g, b in data.centering.basis.items() if g in train_speakers}, {})
        model.branches["audio"].center.copy_(torch.as_tensor(population_center(own)))
    if config.nuisance_dims:
        if data.nuisance is None or data.nuisance.shape[0] != config.nuisance_dims:
            raise ValueError(f"nuisance_dims = {config.nuisance_dims} needs a nuisance basis: give [train] "
                             f"nuisance_corpus")
        model.branches["audio"].nuisance.copy_(torch.as_tensor(data.nuisance))
    scaled = tc.speaker_scale and config.speaker_scale and data.centering is not None

    def seen(d: SERData) -> SERData:
        """What the model trains on: with ``tc.speaker_scale`` every speaker at the speakers' mean
        spread (``population_spread``, measured in the pass that scales)."""
        if not scaled:
            return d
        return replace(d, inputs=d.inputs | {"audio": scale(d.inputs["audio"], d.speakers, None, d.centering.basis,
                                                             mixer(model))})

    fit_norms(model, seen(data), featurizer)
    n_classes = len(config.labels)
    center = CenterLoss(n_classes, config.hidden) if tc.center_loss else None
    groups = [{"params": list(model.parameters()) + (list(center.parameters()) if center else []), "lr": tc.lr}]
    for m, enc in featurizer.encoders.items():
        if featurizer.finetuned(m):
            enc.ensure_loaded()
            if hasattr(enc, "reset_adapter"):      # minilm_lora: fresh seeded adapters for every run
                enc.reset_adapter(tc.seed)
            enc._model.train(True)
            groups.append({"params": [p for p in enc.parameters() if p.requires_grad], "lr": tc.encoder_lr})
    opt = torch.optim.AdamW(groups, weight_decay=tc.weight_decay)
    steps_per_epoch = int(np.ceil(len(data) / tc.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups],
                                                total_steps=max(1, tc.epochs * steps_per_epoch), pct_start=0.1)
    weight = class_weights(data.y, n_classes) if tc.class_weights else None
    gen = torch.Generator().manual_seed(tc.seed)
    rng = np.random.default_rng(tc.seed)
    sampler = balanced_sampler(data.y, tc.seed) if tc.balanced_sampling else None
    epochs = range(tc.epochs)
    if progress:
        from tqdm import tqdm

        epochs = tqdm(epochs, desc=desc, unit="epoch", leave=False)
    t0 = time.time()
    for epoch in epochs:
        model.train()
        order = torch.tensor(list(sampler)) if sampler else torch.randperm(len(data), generator=gen)
        current = seen(data.variant(epoch))
        total = 0.0
        for a in range(0, len(order), tc.batch_size):
            idx = order[a: a + tc.batch_size].numpy()
            batch = featurizer.batch(current, idx, grad=True, crop=tc.crop, rng=rng)
            if tc.time_mask or tc.feature_mask:
                spec_mask(batch, featurizer, tc.time_mask, tc.feature_mask, rng)
            out = model(**batch)
            terms = ser_loss(out, torch.as_tensor(data.y[idx]), torch.as_tensor(data.gender[idx]),
                             tc.loss_weights, weight, center)
            opt.zero_grad()
            terms["total"].backward()
            opt.step()
            sched.step()
            total += terms["total"].item() * len(idx)
        if progress:
            epochs.set_postfix(loss=f"{total / len(order):.3f}")
    for m, enc in featurizer.encoders.items():
        if featurizer.finetuned(m):
            enc._model.train(False)
    model.eval()
    if config.speaker_scale and data.centering is not None:
        model.branches["audio"].spread.copy_(torch.as_tensor(population_spread(model, data)))
    log.info("%s: %d examples, %d epochs in %.1f s", desc, len(data), tc.epochs, time.time() - t0)
    return model


def population_spread(model: BimodalSER, data: SERData) -> np.ndarray:
    """(D,) mean over the training speakers of their frames' spread (``frame_std``) through the
    trained layer mix: the reference of ``ModelConfig.speaker_scale``."""
    return np.mean(list(frame_std(data.inputs["audio"], data.speakers, mixer(model)).values()), axis=0)


@torch.no_grad()
def predict(model: BimodalSER, data: SERData, featurizer: Featurizer,
            batch_size: int = 16, temperature: float = 1.0) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Class probabilities (N, C) = softmax(logits / temperature) and, per example, the audio
    attention over its frames (T_i,), averaged over the K attention distributions (None
    without an audio branch).

    Small batches: pooling holds several (B, T, D) intermediates, so a batch of 64 windows
    of 20 s costs about 470 MB at its peak, a batch of 16 about 170 MB, at the same speed."""
    model.eval()
    probs, weights = [], []
    for a in range(0, len(data), batch_size):
        idx = np.arange(a, min(a + batch_size, len(data)))
        batch = featurizer.batch(data, idx)
        out = model(**batch)
        probs.append(torch.softmax(out.logits / temperature, -1).numpy())
        for j in range(len(idx)):
            if out.audio_weights is None:
                weights.append(None)
            else:
                n = int(batch["audio_mask"][j].sum())
                weights.append(out.audio_weights[j, :, :n].mean(0).numpy())
    return np.concatenate(probs), weights


def mixer(model: BimodalSER) -> Callable[[np.ndarray], np.ndarray]:
    """(L, T, D) frames -> (T, D) through the model's learned audio layer mix."""
    mix = model.branches["audio"].mix

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return mix(torch.from_numpy(np.asarray(x, np.float32))[None])[0].numpy()
    return run


def scaled_to(model: BimodalSER, data: SERData, reference_std: np.ndarray | None) -> SERData:
    """``data`` (audio centred per speaker) with each speaker's frames scaled, feature by
    feature, so that their standard deviation after the layer mix is ``reference_std`` (D,)
    (speakers on the population centre are left as they are; ``ModelConfig.speaker_scale``)."""
    if reference_std is None or data.centering is None:
        return data
    frames = scale(data.inputs["audio"], data.speakers, reference_std, data.centering.basis, mixer(model))
    return replace(data, inputs=data.inputs | {"audio": frames})


def predict_speakers(model: BimodalSER, data: SERData, featurizer: Featurizer, temperature: float = 1.0,
                     reference_std: np.ndarray | None = None) -> tuple[np.ndarray, list, Centering | None]:
    """``predict`` with the speaker baselines of the model's ``speaker_norm``: for "neutral",
    label-free iterative feature normalisation (``speaker_norm.iterative_centering``) from
    the all-speech mean of each speaker.  Returns probabilities, attention and the centring.
    ``reference_std``: also scale each speaker's frames to this spread (``scaled_to``);
    default: the model's own ``spread`` with ``speaker_scale``."""
    if reference_std is None and model.config.speaker_scale:
        reference_std = model.branches["audio"].spread.numpy()

    def predict_scaled(model, data, featurizer, temperature):
        return predict(model, scaled_to(model, data, reference_std), featurizer, temperature=temperature)

    if data.centering is None or model.config.speaker_norm != "neutral" or "audio" not in data.inputs:
        probs, att = predict_scaled(model, data, featurizer, temperature=temperature)
        return probs, att, data.centering
    frames = data.inputs["audio"]
    means = item_means(frames, data.speakers, data.centering)
    lengths = np.array([np.asarray(f).shape[-2] for f in frames], dtype=float)
    start = dict(data.centering.centers)
    for g in start:
        sel = data.speakers == g
        if data.centering.basis[g] == SPEAKER and sel.any():   # (a CV fold's centring also holds the other folds' speakers)
            start[g] = (lengths[sel].reshape(-1, *([1] * (means.ndim - 1))) * means[sel]).sum(0) / lengths[sel].sum()
    first = Centering(start, dict(data.centering.basis), dict(data.centering.speech_s))
    baseline = np.array([lab in BASELINE_CLASSES for lab in model.config.labels])
    centering, _ = iterative_centering(
        means, lengths, data.speakers, first,
        lambda c: predict_scaled(model, data.recentered(c), featurizer, temperature=temperature)[0], baseline)
    probs, att = predict_scaled(model, data.recentered(centering.centers), featurizer, temperature=temperature)
    return probs, att, centering


def evaluate(model: BimodalSER, data: SERData, featurizer: Featurizer, title: str = "evaluation") -> EvalResult:
    probs, _, _ = predict_speakers(model, data, featurizer)
    return EvalResult(model.config.labels, data.y, probs.argmax(1), title=title)


def cross_validate(config: ModelConfig, tc: TrainConfig, data: SERData, featurizer: Featurizer,
                   k: int = 5, progress: bool = True) -> tuple[CVResult, np.ndarray]:
    """Speaker-independent k-fold CV (folds = contiguous groups of sorted speakers).
    Returns the result and the out-of-fold probabilities (N, C)."""
    folds = speaker_folds(data.speakers, k)
    oof = np.zeros((len(data), len(config.labels)))
    results, held = [], []
    for i, test_idx in enumerate(folds):
        train_idx = np.setdiff1d(np.arange(len(data)), test_idx)
        model = fit(config, tc, data.subset(train_idx), featurizer, progress, desc=f"fold {i + 1}/{k}")
        test = data.subset(test_idx)
        probs, _, _ = predict_speakers(model, test, featurizer)       # held-out speakers: label-free baselines
        oof[test_idx] = probs
        spk = sorted(set(test.speakers.tolist()))
        results.append(EvalResult(config.labels, test.y, probs.argmax(1), title=f"fold {i + 1}"))
        held.append(spk)
        log.info("fold %d/%d (%s..%s): UA=%.3f", i + 1, k, spk[0], spk[-1], results[-1].ua)
    return CVResult(results, held), oof
