"""Fixtures for the speech front end: real models, real reference data, a real Prefect."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from front_paths import DEMO, REPO, SHARED  # noqa: F401  (re-exported for the fixtures)


def pyannote_sample() -> Path:
    import pyannote.audio

    return Path(pyannote.audio.__file__).parent / "sample"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return pyannote_sample()


@pytest.fixture(scope="session")
def models():
    """The embedded profile's real models (bundled VAD/segmentation, CAM++, tiny.en)."""
    from pipelines.speech.models import load_models
    from pipelines.settings import get_profile

    return load_models(get_profile("embedded"))


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """A real, temporary Prefect API (``prefect_test_harness``) for the whole session."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
