"""Paths and helpers the front-end tests share (a module of its own: ``conftest`` names clash across folders)."""

import shutil
from pathlib import Path

from shared_data import SHARED  # noqa: F401  (re-exported)

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "pipelines" / "demo_archive"


def copy_demo_call(dest: Path, date: str = "20181219", rows_extra: list[dict] | None = None) -> Path:
    """An archive in ``dest`` holding one demo call (and optional extra manifest rows)."""
    import csv

    dest.mkdir(parents=True, exist_ok=True)
    with (DEMO / "manifest.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if date in r["file"]]
    for r in rows:
        shutil.copy(DEMO / r["file"], dest / r["file"])
    rows += rows_extra or []
    with (dest / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "event_type", "entity", "event_time", "title", "speakers_hint"])
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in w.fieldnames})
    return dest
