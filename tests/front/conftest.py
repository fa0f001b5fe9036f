"""Fixtures for the speech front end: real models, real reference data, a real Prefect."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
DEMO = REPO / "pipelines" / "demo_archive"


def pyannote_sample() -> Path:
    import pyannote.audio

    return Path(pyannote.audio.__file__).parent / "sample"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return pyannote_sample()


@pytest.fixture(scope="session")
def models():
    """The embedded profile's real models (bundled VAD/segmentation, resemblyzer, tiny.en)."""
    from pipelines.models import load_models
    from pipelines.settings import get_profile

    return load_models(get_profile("embedded"))


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """A real, temporary Prefect API (``prefect_test_harness``) for the whole session."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


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
