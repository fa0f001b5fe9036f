"""Two writer processes and a 20 Hz query loop on one catalog: nothing lost or duplicated,
no reader error, every answer consistent (only complete calls)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data_catalog import Catalog

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
N = 60



@pytest.mark.parametrize("compacting", [False, True], ids=["parts", "compacting"])
def test_two_writers_and_a_query_loop(tmp_path, compacting):
    """With ``compacting``, a third process compacts the catalog in a loop meanwhile (full
    compactions too): still nothing lost or duplicated and no reader error."""
    root, stop = tmp_path / "cat", tmp_path / "stop"
    Catalog(root).ensure_writable()
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{HERE}")
    script = str(HERE / "catalog_workers.py")

    def spawn(*args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, script, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    reader = spawn("reader", str(root), str(stop))
    compactor = spawn("compactor", str(root), str(stop)) if compacting else None
    writers = [spawn("writer", str(root), name, str(N)) for name in ("a", "b")]
    for w in writers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
    stop.touch()
    if compactor is not None:
        out, err = compactor.communicate(timeout=300)
        assert compactor.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["passes"] >= 2
        files = list((root / "tables" / "segments" / "_compacted").glob("*.parquet"))
        assert files, "the compactor never compacted anything"
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["n_errors"] == 0, seen["errors"]
    assert seen["inconsistent"] == []
    assert seen["queries"] >= 5
    assert seen["sizes"] >= 3  # the loop saw the catalog grow while the writers wrote

    cat = Catalog(root)
    row = cat.query("select count(*) c, count(distinct call_id) d from calls").to_pylist()
    assert row == [{"c": 2 * N + 1, "d": 2 * N + 1}]
    assert cat.query("select count(*) n, count(distinct (call_id, segment_id)) u from segments").to_pylist() == [
        {"n": 5 * (2 * N + 1), "u": 5 * (2 * N + 1)}]
    assert sorted(cat.keys("calls")) == sorted([f"{w}{i:03d}" for w in "ab" for i in range(N)] + ["shared"])
    assert list(root.rglob("*.tmp")) == []
