"""Where SER checkpoint cards are found, without loading a model (no torch): reports and
studies read a card by the ``model_id`` stored in the catalog."""

from __future__ import annotations

import json
import os
from importlib.util import find_spec
from pathlib import Path

CARD_PATH_ENV = "SPEECHFIN_SER_CHECKPOINTS"


def checkpoint_dirs() -> list[Path]:
    """Where SER cards are looked up: ``$SPEECHFIN_SER_CHECKPOINTS`` (os.pathsep-separated), then
    the checkpoints shipped in ``ser_models/checkpoints``."""
    dirs = [Path(p) for p in os.environ.get(CARD_PATH_ENV, "").split(os.pathsep) if p]
    spec = find_spec("ser_models")
    if spec is not None and spec.submodule_search_locations:
        dirs.append(Path(list(spec.submodule_search_locations)[0]) / "checkpoints")
    return dirs


def find_card(model_id: str) -> tuple[dict | None, str]:
    """The card.json whose model_id is ``model_id`` (a checkpoint folder, or a folder of them).
    A flow's model id names the voice checkpoint first, then its text heads ('+'-joined): the
    voice checkpoint's card is the one shown."""
    model_id = model_id.split("+")[0]
    for d in checkpoint_dirs():
        for path in [d / "card.json", *sorted(d.glob("*/card.json"))]:
            try:
                card = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if card.get("model_id") == model_id:
                return card, str(path)
    return None, ""
