"""The repository root first on sys.path: once tests/ is on it (tests/conftest.py), tests/reports
(no __init__.py) would shadow the `reports` package that the served flow uses."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
if getattr(sys.modules.get("reports"), "__file__", "") is None:  # imported as that namespace already
    del sys.modules["reports"]
