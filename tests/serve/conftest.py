"""Serve tests: the repository root first on sys.path, and one Prefect test API for the session.

Once tests/ is on sys.path (tests/conftest.py), tests/reports (no __init__.py) would shadow the
`reports` package that the served flow uses, as an empty namespace package."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
if getattr(sys.modules.get("reports"), "__file__", "") is None:  # imported as that namespace already
    del sys.modules["reports"]


@pytest.fixture(scope="session")
def prefect_api():
    """A real, temporary Prefect API (prefect_test_harness) shared by the serve tests; yields its URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()
