"""Dask and Ray runners: the same rows as a sequential run, a worker killed mid-call, an
unreachable cluster address."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from front_paths import DEMO, REPO
from data_catalog import Catalog

CALLS = ("20151216", "20181219")  # two demo calls: one per worker
TABLES = {"segments": ["segment_id"], "words": ["segment_id", "start_s"], "speakers": ["speaker"],
          "emotions": ["segment_id"], "voices": ["speaker"], "call_features": []}


def _archive(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    with (DEMO / "manifest.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if any(d in r["file"] for d in CALLS)]
    for r in rows:
        shutil.copy(DEMO / r["file"], dest / r["file"])
        r["transcript"] = ""
    with (dest / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return dest


def _rows(cat: Path) -> dict[str, list[dict]]:
    c = Catalog(cat)
    out = {}
    for table, order in TABLES.items():
        df = c.read(table, complete_only=True).to_pandas()
        out[table] = df.sort_values(["call_id", *order]).reset_index(drop=True)
    return out


def _same(a: dict, b: dict) -> None:
    import pandas as pd

    for table in TABLES:
        pd.testing.assert_frame_equal(a[table], b[table], check_exact=False, rtol=1e-5, atol=1e-6, obj=table)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory, prefect_harness, models):
    from pipelines.flows.calls import process_archive

    archive = _archive(tmp_path_factory.mktemp("archive"))
    cat = tmp_path_factory.mktemp("seq")
    summary = process_archive(str(archive), str(cat), show_progress=False)
    assert summary.count("processed") == 2, summary.summary()
    return archive, cat, _rows(cat)


@pytest.mark.parametrize("kind", ["dask", "ray"])
def test_a_cluster_gives_the_rows_of_a_sequential_run(sequential, tmp_path, kind):
    """Segments, words, speakers, emotions, voices (with their cross-call ids) and call features
    are the same on 2 workers; each worker loaded the models once and reports its peak RSS."""
    from pipelines.flows.calls import process_archive
    from pipelines.flows.runners import RunnerConfig, RunnerKind

    archive, _, expected = sequential
    summary = process_archive(str(archive), str(tmp_path / "cat"), show_progress=False,
                              runner=RunnerConfig(RunnerKind(kind), workers=2))
    assert summary.error is None and summary.count("processed") == 2, summary.summary()
    _same(_rows(tmp_path / "cat"), expected)
    import psutil

    cap_gb = psutil.virtual_memory().total * 0.8 / 2 / 2**30
    assert summary.runner == f"{kind} local cluster, 2 workers, memory limit {cap_gb:.1f} GB each"
    rss = summary.worker_peak_rss_mb()
    assert 1 <= len(rss) <= 2 and all(300 < v < 8000 for v in rss.values()), rss
    assert all(o.worker.split(":")[-1] != str(os.getpid()) for o in summary.outcomes)
    assert all(o.stage_seconds for o in summary.outcomes)


def _worker_pids() -> list[int]:
    """Dask worker processes of a local cluster: children of this process (their nannies live
    in this process) started by multiprocessing's spawn."""
    import psutil

    out = []
    for p in psutil.Process().children():
        try:
            if "spawn_main" in " ".join(p.cmdline()):
                out.append(p.pid)
        except psutil.Error:  # ended meanwhile
            pass
    return out


def test_a_dask_worker_killed_mid_call_is_retried_and_leaves_no_partial_rows(sequential, tmp_path):
    """A worker is killed (SIGKILL) a few seconds into its call: its nanny starts a new one, the
    call runs again and the catalog holds exactly the sequential rows.  (A call whose worker
    dies on every try: ``test_a_task_whose_worker_always_dies_is_a_worker_died_outcome``.)"""
    from pipelines.flows.calls import process_archive
    from pipelines.flows.runners import RunnerConfig, RunnerKind

    archive, _, expected = sequential
    cat = tmp_path / "cat"
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            pids = _worker_pids()
            if len(pids) == 2 and (cat / "tables").exists():  # the workers are up and working
                time.sleep(4.0)
                pid = _worker_pids()[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.2)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    summary = process_archive(str(archive), str(cat), show_progress=False,
                              runner=RunnerConfig(RunnerKind.DASK, workers=2))
    t.join()
    assert killed, "no worker was killed"
    assert summary.count("processed") == 2, summary.summary()
    assert not {o.worker.split(":")[-1] for o in summary.outcomes} & {str(p) for p in killed}
    _same(_rows(cat), expected)


def _die(item: int) -> int:
    if item == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return item * 10


@pytest.mark.parametrize("kind", ["dask", "ray"])
def test_a_task_whose_worker_always_dies_is_a_worker_died_outcome(kind):
    from pipelines.flows.runners import RunnerConfig, RunnerKind, WorkerDied, open_pool

    with open_pool(RunnerConfig(RunnerKind(kind), workers=2)) as pool:
        done = {d.item: d for d in pool.run(_die, [0, 1, 2], ())}
    assert done[0].result == 0 and done[2].result == 20
    assert isinstance(done[1].error, WorkerDied)
    assert "worker died" in str(done[1].error) and "\n" not in str(done[1].error)


def _hog(item: int) -> int:
    if item == 1:
        block = b"x" * (1200 * 2**20)  # written, so resident
        time.sleep(5)
        return len(block)
    return item * 10


@pytest.mark.parametrize("kind", ["dask", "ray"])
def test_a_worker_over_its_memory_limit_is_stopped_and_the_others_go_on(kind):
    """A local worker's memory is capped (Dask: its nanny; Ray: the worker's own RSS watchdog):
    a call holding 1.2 GB in workers capped at 600 MB ends as a worker-died outcome, on the
    retry too, and the other calls complete."""
    from pipelines.flows.runners import RunnerConfig, RunnerKind, WorkerDied, open_pool

    with open_pool(RunnerConfig(RunnerKind(kind), workers=2), memory_limit=600 * 2**20) as pool:
        done = {d.item: d for d in pool.run(_hog, [0, 1, 2], ())}
    assert done[0].result == 0 and done[2].result == 20
    assert isinstance(done[1].error, WorkerDied), done[1]  # uncapped, it returns 1.2 GB's length


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def silent_listener():
    """A TCP port that accepts connections and never says a word (not a scheduler)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"tcp://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join()
    for c in held:
        c.close()
    srv.close()


@pytest.mark.parametrize("case", ["refused", "silent"])
def test_an_unreachable_cluster_is_one_line_within_seconds(tmp_path, case, request):
    address = f"tcp://127.0.0.1:{_closed_port()}" if case == "refused" else request.getfixturevalue("silent_listener")
    archive = _archive(tmp_path / "archive")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(archive), "-c", str(tmp_path / "cat"),
                        "--runner", "dask", "--address", address, "--no-progress"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - t0
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    expected = "cannot reach the dask cluster at" if case == "refused" else "cannot join the dask cluster at"
    assert len(lines) == 1 and f"{expected} {address}" in lines[0], r.stderr
    assert elapsed < 60, elapsed  # the Prefect flow starts first; the check itself gives up after 10 s
    assert not (tmp_path / "cat" / "tables" / "calls").exists()
