"""Checkpoints: ``model.safetensors`` (head weights) + ``card.json`` (everything else).

The card holds the label set, the ModelConfig (encoder ids, pooling, fusion, ...), the
training config, the training corpus with its licence, the metrics, the git commit and
the calibration used by the flow (hotspot threshold).  Fine-tuned encoders are saved
beside them with ``save_pretrained`` under ``encoders/<modality>/``; frozen encoders are
not saved (they come from packages or the hub).

Loading checks the card against this code: unknown or missing config fields, another
format version, or tensors that do not fit the config are errors naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path


from ser_models.model import BimodalSER, ModelConfig

FORMAT = "speechfin-ser-checkpoint/1"
CARD, WEIGHTS = "card.json", "model.safetensors"
EMBEDDED = Path(__file__).resolve().parent / "checkpoints" / "embedded"
CHECKPOINT_PREFIX = "@checkpoint/"
NONCOMMERCIAL_NOTE = ("Trained on data licensed for non-commercial use only; this checkpoint is a "
                      "derived work under the same terms.")

# Licences of corpora we know by folder name (the data folder has no licence file per corpus).
KNOWN_LICENCES = {
    "ravdess": "CC BY-NC-SA 4.0 (Livingstone & Russo 2018, The Ryerson Audio-Visual Database of "
               "Emotional Speech and Song, https://doi.org/10.5281/zenodo.1188976)",
}


def shipped_text_heads() -> dict[str, Path]:
    """The text heads shipped beside the embedded checkpoint (name -> folder), those present."""
    from ser_models.inference import TEXT_HEADS

    root = EMBEDDED.parent
    return {name: root / folder for name, folder in TEXT_HEADS.items() if (root / folder / CARD).is_file()}


class CheckpointError(ValueError):
    """A checkpoint folder is unusable; the message names the file and the problem."""


@dataclass
class Card:
    """Parsed card.json (``raw`` keeps every field)."""

    model_id: str
    config: ModelConfig
    raw: dict

    @property
    def labels(self) -> tuple[str, ...]:
        return self.config.labels

    @property
    def hotspot_threshold(self) -> float:
        return float(self.raw.get("calibration", {}).get("hotspot_threshold", 0.5))


def corpus_licence(corpus_dir: str | Path) -> str:
    """The licence of a corpus folder: a LICENSE*/LICENCE* file's first line, else a known
    corpus by name, else 'unknown'."""
    corpus_dir = Path(corpus_dir)
    for f in sorted(corpus_dir.glob("LICEN[SC]E*")):
        first = next((ln.strip() for ln in f.read_text(errors="replace").splitlines() if ln.strip()), "")
        if first:
            return first
    for key, lic in KNOWN_LICENCES.items():
        if key in corpus_dir.resolve().name.lower():
            return lic
    return "unknown: check the corpus licence before using this checkpoint"


def git_commit(path: Path = Path(__file__).resolve().parent) -> str:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_checkpoint(out_dir: str | Path, model: BimodalSER, name: str, card_extra: dict,
                    encoders: dict | None = None) -> Card:
    """Write model.safetensors + card.json (and fine-tuned encoders) to ``out_dir``.

    card_extra: corpus / metrics / train / calibration entries for the card.
    encoders: modality -> FrameEncoder; the fine-tuned ones are saved with save_pretrained.
    """
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = model.config
    for m, enc in (encoders or {}).items():
        if getattr(config, m).finetune:
            enc.save(out_dir / "encoders" / m)
            config = replace(config, **{m: replace(getattr(config, m), name=f"{CHECKPOINT_PREFIX}encoders/{m}")})
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(prefix=".tmp", suffix=".safetensors", dir=out_dir)
    os.close(fd)
    save_file(state, tmp, metadata={"format": FORMAT})
    os.chmod(tmp, 0o644)
    digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
    os.replace(tmp, out_dir / WEIGHTS)
    model_id = f"{name}-{digest[:8]}"
    card = {
        "format": FORMAT,
        "model_id": model_id,
        "labels": list(config.labels),
        "encoders": {m: getattr(config, m).encoder_id for m in config.modalities},
        "pooling": config.pooling,
        "fusion": config.fusion,
        "config": config.to_dict(),
        "git_commit": git_commit(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "weights_sha256": digest,
        **card_extra,
    }
    tmp_card = out_dir / f".{CARD}.tmp"
    tmp_card.write_text(json.dumps(card, indent=2, default=_json_default) + "\n")
    os.replace(tmp_card, out_dir / CARD)
    return Card(model_id, config, card)


def _json_default(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot store {type(o).__name__} in a card")


def read_card(ckpt_dir: str | Path) -> Card:
    ckpt_dir = Path(ckpt_dir)
    path = ckpt_dir / CARD
    if not ckpt_dir.is_dir():
        raise CheckpointError(f"{ckpt_dir}: checkpoint folder not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: not found (a checkpoint folder holds {CARD} and {WEIGHTS})")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    if raw.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {raw.get('format')!r}, this code reads {FORMAT!r}")
    try:
        config = ModelConfig.from_dict(dict(raw["config"]))
    except KeyError as exc:
        raise CheckpointError(f"{path}: card does not match this code's ModelConfig: {exc.args[0]}") from exc
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: card does not match this code's config: {exc}") from exc
    if list(config.labels) != list(raw.get("labels", [])):
        raise CheckpointError(f"{path}: 'labels' {raw.get('labels')} differ from config labels {list(config.labels)}")
    for m in config.modalities:   # fine-tuned encoders saved inside the checkpoint
        enc = getattr(config, m)
        if enc.name.startswith(CHECKPOINT_PREFIX):
            local = ckpt_dir / enc.name[len(CHECKPOINT_PREFIX):]
            config = replace(config, **{m: replace(enc, name=str(local))})
    return Card(raw.get("model_id", ckpt_dir.name), config, raw)


def load_checkpoint(ckpt_dir: str | Path | None = None) -> tuple[BimodalSER, Card]:
    """The model and card of a checkpoint folder (default: the shipped embedded one)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    ckpt_dir = Path(ckpt_dir) if ckpt_dir is not None else EMBEDDED
    card = read_card(ckpt_dir)
    path = ckpt_dir / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{path}: not found")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    model = BimodalSER(card.config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise CheckpointError(f"{path}: tensors do not match the card's config: missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}, shape mismatches {shapes[:3]}")
    model.load_state_dict(state)
    model.eval()
    return model, card
