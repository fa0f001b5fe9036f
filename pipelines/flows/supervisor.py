"""Serving ``watch_archive`` (``speechfin serve``): the process supervision, apart from the flow.

``serve_archive`` serves the flow's deployment (``pipelines.flows.serve.build_deployment``)
with a cron schedule.  Without a configured Prefect API (``PREFECT_API_URL``) it starts a
local Prefect server as a subprocess for the schedule (``prefect_api``), since Prefect's
temporary server runs no scheduler.  A watcher thread stops serving (SIGINT to this process)
when the archive folder is deleted, and ``serve_archive`` then raises ``ArchiveGoneError``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from data_catalog import Catalog
from pipelines.flows.serve import DEFAULT_CRON, ArchiveGoneError, build_deployment, check_inputs

log = logging.getLogger("speechfin.serve")

def free_port(preferred: int = 4200) -> int:
    """``preferred`` if it is free, else a port the kernel picks."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return s.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port for a local Prefect server")


STARTUP_TIMEOUT_S = 120


def start_temporary_server() -> None:
    """Without a configured API, give Prefect's temporary server a port the kernel picked (as
    Prefect's own test harness does). Prefect draws one from 8000-8999 at random, so two runs
    started together can draw the same one; Prefect then retries, but the loser's uvicorn has
    already printed a bind error and a traceback into the run's output.

    The server is then started here, one process at a time (a lock file in ``PREFECT_HOME``):
    each temporary server migrates the SQLite database there when it starts, and two
    migrations at once on a new database fail (``duplicate column name``, ``table ... already
    exists``) or time out.

    Prefect waits 20 s for the server (``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``); on
    two busy cores a first start, which creates and migrates the database, took 26 s, and a
    start there timed out while other work ran. So this waits at least ``STARTUP_TIMEOUT_S``."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import (PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED,
                                  PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)

    server = SubprocessASGIServer()  # the instance Prefect's client starts when it needs one
    if PREFECT_API_URL.value() or server.running or server.port is not None:
        return
    server.port = free_port(0)
    if PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        with server_start_lock():
            server.start(timeout=max(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value(), STARTUP_TIMEOUT_S))


@contextmanager
def server_start_lock():
    """Held while a Prefect server (temporary or ``prefect server start``) starts and migrates the
    database in ``PREFECT_HOME``: one process at a time."""
    import fcntl

    from prefect.settings import PREFECT_HOME

    home = Path(PREFECT_HOME.value())
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "speechfin-server-start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextmanager
def prefect_api(timeout_s: float = 90.0):
    """The configured Prefect API, else a local ``prefect server start`` for the lifetime of the block
    (Prefect's temporary server has no scheduler, so a schedule would never fire)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield PREFECT_API_URL.value()
        return
    with server_start_lock():  # the port is chosen and the database migrated one process at a time
        port = free_port()
        url = f"http://127.0.0.1:{port}/api"
        log.warning("no PREFECT_API_URL: starting a local Prefect server at http://127.0.0.1:%d (UI there); "
                    "it stops with `speechfin serve`", port)
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _wait_healthy(proc, url, timeout_s)
        except BaseException:
            proc.kill()
            raise
    try:
        os.environ["PREFECT_API_URL"] = url  # for the flow-run subprocesses
        with temporary_settings({PREFECT_API_URL: url}):
            yield url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_healthy(proc: subprocess.Popen, url: str, timeout_s: float) -> None:
    import httpx

    t0 = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"local Prefect server exited ({(proc.stderr.read() or '').strip()[-300:]})")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"local Prefect server did not answer on {url} within {timeout_s:.0f} s")
        time.sleep(0.5)


def _watch_folder(archive: Path, gone: threading.Event, stop: threading.Event, poll_s: float) -> None:
    """Interrupt the served process when ``archive`` disappears."""
    while not stop.wait(poll_s):
        if not (archive / "manifest.csv").is_file():
            gone.set()
            os.kill(os.getpid(), signal.SIGINT)
            return


def serve_archive(archive: Path, catalog_dir: Path, cron: str = DEFAULT_CRON, reports_dir: Path | None = None,
                  studies: list[str] | None = None, profile: str = "embedded", formats: list[str] | None = None,
                  name: str | None = None, poll_s: float = 2.0, runner: str = "sequential", workers: int = 0,
                  address: str = "") -> None:
    """Serve ``watch_archive`` on ``cron`` until interrupted; raise ArchiveGoneError if the archive
    folder disappears meanwhile."""
    from prefect import serve

    check_inputs(archive, Catalog(catalog_dir))
    deployment = build_deployment(archive, catalog_dir, cron, reports_dir, studies, profile, formats, name,
                                  runner, workers, address)
    gone, stop = threading.Event(), threading.Event()
    watcher = threading.Thread(target=_watch_folder, args=(archive, gone, stop, poll_s), daemon=True)
    with prefect_api():
        watcher.start()
        try:
            serve(deployment)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
    if gone.is_set():
        raise ArchiveGoneError(f"{archive}: archive folder was deleted while being served; stopped serving")
