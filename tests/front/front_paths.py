"""Paths and helpers the front-end tests share (a module of its own: ``conftest`` names clash across folders)."""

import shutil
from pathlib import Path

from shared_data import SHARED  # noqa: F401  (re-exported)

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "pipelines" / "demo_archive"


def copy_demo_call(dest: Path, date: str = "20181219", rows_extra: list[dict] | None = None,
                   transcript: bool = False, speakers_hint: int | None = None) -> Path:
    """An archive in ``dest`` holding one demo call (and optional extra manifest rows); with
    ``transcript`` also its transcript file and manifest column; ``speakers_hint`` in its row."""
    import csv

    dest.mkdir(parents=True, exist_ok=True)
    with (DEMO / "manifest.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if date in r["file"]]
    for r in rows:
        shutil.copy(DEMO / r["file"], dest / r["file"])
        if transcript and r.get("transcript"):
            (dest / r["transcript"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(DEMO / r["transcript"], dest / r["transcript"])
        elif not transcript:
            r["transcript"] = ""
        if speakers_hint is not None:
            r["speakers_hint"] = str(speakers_hint)
    rows += rows_extra or []
    with (dest / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "event_type", "entity", "event_time", "title", "speakers_hint",
                                          "transcript"])
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in w.fieldnames})
    return dest
