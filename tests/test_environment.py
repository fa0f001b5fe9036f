"""The environment is the lock: every distribution of requirements.lock at its exact version."""

import sysconfig
from importlib import metadata
from pathlib import Path


LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def test_installed_distributions_are_the_locked_versions():
    """A venv that drifted from the lock (a hand-installed package, an old setuptools that
    still had pkg_resources) passes here and fails on a fresh machine: catch it here."""
    locked = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            locked[_canonical(name)] = version.strip()
    assert len(locked) > 200
    # the venv's own site-packages only: once pkg_resources is imported, setuptools puts its
    # vendored copies (packaging, wheel, ...) on sys.path, and they are not installed packages
    site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    installed = {_canonical(d.metadata["Name"]): d.version for d in metadata.distributions(path=site)}
    wrong = {n: (v, installed.get(n)) for n, v in locked.items() if installed.get(n) != v}
    assert wrong == {}, f"installed versions differ from {LOCK.name} (locked, installed): {wrong}"

