"""Where the calls of a batch run: in the flow's process, or on a Dask or Ray cluster.

``speechfin run --runner sequential|dask|ray [--workers N] [--address ADDR]``:

- ``sequential``: each call is a Prefect subflow in this process (stages are Prefect tasks).
- ``dask``: ``distributed.Client(ADDR)``, or a ``LocalCluster`` of N single-threaded worker
  processes (default: one per core), each with a memory limit of 80% of RAM / N, past which
  the nanny restarts it.
- ``ray``: ``ray.init(address=ADDR)``, or a local Ray instance with N CPUs, one per call.  Ray
  caps no worker's memory (only its node monitor kills the largest one when the machine is
  nearly full), so on a local instance each worker watches its own RSS and exits past the same
  80% of RAM / N: the call is then retried, as a Dask nanny's restart would have it.

Under Dask and Ray a call is one task, ``pipelines.flows.calls.run_call``: the same stage functions,
called directly (the Prefect flow that submits them records the batch; workers make no API
calls).  A worker process keeps the models it loaded (``pipelines.speech.models`` caches them per
process), so each worker loads them once.  Every result carries the worker's name and peak
RSS, which the run summary reports.

A worker that dies in the middle of a call (killed, out of memory) loses nothing: a call's
rows become visible only with its ``calls`` part, written last.  The call is retried once on
another worker, then recorded as failed.  A cluster address that cannot be reached is one
line, within seconds (a TCP check before the client connects).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("speechfin.runners")
CONNECT_TIMEOUT_S = 5.0
RETRIES = 1  # a call whose worker died is tried once more, on another worker


class RunnerKind(str, enum.Enum):
    SEQUENTIAL = "sequential"
    DASK = "dask"
    RAY = "ray"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RunnerConfig:
    kind: RunnerKind = RunnerKind.SEQUENTIAL
    workers: int | None = None  # local cluster size (default: the cores)
    address: str | None = None  # join this cluster instead of starting one

    @property
    def n_workers(self) -> int:
        return max(1, self.workers or os.cpu_count() or 1)

    def describe(self) -> str:
        if self.kind == RunnerKind.SEQUENTIAL:
            return "sequential"
        if self.address:
            return f"{self.kind} cluster at {self.address}"
        return (f"{self.kind} local cluster, {self.n_workers} workers, memory limit "
                f"{worker_memory_limit(self.n_workers) / 2**30:.1f} GB each")


class RunnerError(RuntimeError):
    """The cluster cannot be used (unreachable address, bad option); one line."""


def runner_config(kind: str = "sequential", workers: int | None = None, address: str | None = None) -> RunnerConfig:
    """A ``RunnerConfig`` from the options of ``speechfin run``/``serve`` and deployment parameters."""
    try:
        k = RunnerKind(kind)
    except ValueError:
        raise RunnerError(f"--runner {kind!r}: use sequential, dask or ray") from None
    if workers is not None and workers < 0:
        raise RunnerError(f"--workers {workers}: give a positive number")
    if k == RunnerKind.SEQUENTIAL and address:
        raise RunnerError("--address needs --runner dask or --runner ray")
    return RunnerConfig(k, workers or None, address or None)


class WorkerDied(RuntimeError):
    """The worker process running a call died (killed, out of memory), also on the retry."""


def check_reachable(address: str, kind: RunnerKind, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """A TCP connection to ``address`` (``tcp://host:port``, ``ray://host:port`` or ``host:port``)
    within ``timeout_s``, else ``RunnerError`` (clients retry for minutes before failing)."""
    rest = address.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise RunnerError(f"--address {address!r}: expected host:port (e.g. tcp://10.0.0.5:8786 for Dask, "
                          f"10.0.0.5:6379 for Ray)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__ if not isinstance(exc, TimeoutError) else f"no answer in {timeout_s:g} s"
        raise RunnerError(f"cannot reach the {kind} cluster at {address}: {reason}") from None


def within(connect: Callable[[], Any], cfg: RunnerConfig, timeout_s: float = 2 * CONNECT_TIMEOUT_S) -> Any:
    """``connect()`` (a client joining ``cfg.address``), or ``RunnerError`` if it has not
    answered within ``timeout_s``: a port that accepts connections but is not a scheduler
    leaves Dask's handshake waiting for minutes.  (The waiting thread is left behind; the
    run stops.)"""
    import threading

    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = connect()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise RunnerError(f"cannot join the {cfg.kind} cluster at {cfg.address}: no answer in {timeout_s:g} s "
                          f"(is it a {cfg.kind} scheduler?)")
    if "error" in out:
        raise out["error"]
    return out["value"]


def _status_kb(key: str) -> int:
    """A ``/proc/self/status`` field in kB (``VmRSS``, ``VmHWM``), 0 where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def worker_stats() -> tuple[str, float]:
    """This process's name (host:pid) and peak RSS in MB: ``VmHWM``, the peak of its own
    address space (``ru_maxrss`` carries the parent's peak across fork and exec, so a worker
    spawned by a process holding the models reported the parent's 2.3 GB)."""
    peak = _status_kb("VmHWM") / 1024
    if not peak:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return f"{socket.gethostname()}:{os.getpid()}", peak


def worker_memory_limit(n_workers: int) -> int:
    """Bytes a worker of a local cluster may hold: 80% of RAM shared by ``n_workers``."""
    import psutil

    return int(psutil.virtual_memory().total * 0.8 / max(1, n_workers))


_CAPPED: list[int] = []  # the limit this process's watchdog enforces (started once per process)


def cap_memory(limit_bytes: int, interval_s: float = 0.2) -> None:
    """Exit this worker process (code 137) once its RSS passes ``limit_bytes``: a daemon
    thread polls ``VmRSS`` every ``interval_s``.  The cluster sees a dead worker and retries
    the call elsewhere, as a Dask nanny does past its ``memory_limit``."""
    if _CAPPED or limit_bytes <= 0:
        return
    import threading

    _CAPPED.append(limit_bytes)

    def watch() -> None:
        while True:
            rss = _status_kb("VmRSS") * 1024
            if rss > limit_bytes:
                sys.stderr.write(f"speechfin worker {os.getpid()}: RSS {rss / 2**20:,.0f} MB is over its limit "
                                 f"of {limit_bytes / 2**20:,.0f} MB; exiting\n")
                os._exit(137)
            time.sleep(interval_s)

    threading.Thread(target=watch, name="speechfin-memory-cap", daemon=True).start()


def run_capped(fn: Callable, limit_bytes: int, item: Any, *args: Any) -> Any:
    """``fn(item, *args)`` in a worker whose memory is capped at ``limit_bytes`` (0: no cap)."""
    cap_memory(limit_bytes)
    return fn(item, *args)


@dataclass
class Done:
    """One finished task: its item, and its result or the exception it ended with."""

    item: Any
    result: Any = None
    error: BaseException | None = None


class DaskPool:
    def __init__(self, cfg: RunnerConfig, memory_limit: int | None = None):
        """``memory_limit``: bytes per worker of a local cluster (default 80% of RAM / N),
        enforced by its nanny; a joined cluster keeps its own."""
        import dask
        from distributed import Client, LocalCluster

        dask.config.set({"distributed.scheduler.allowed-failures": RETRIES})
        for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.worker"):
            logging.getLogger(name).setLevel(logging.ERROR)  # start-up and shut-down chatter
        self._cluster = None
        if cfg.address:
            check_reachable(cfg.address, cfg.kind)
            self.client = within(lambda: Client(cfg.address, timeout=f"{CONNECT_TIMEOUT_S}s"), cfg)
        else:
            self._cluster = LocalCluster(n_workers=cfg.n_workers, threads_per_worker=1, processes=True,
                                         memory_limit=memory_limit or worker_memory_limit(cfg.n_workers), dashboard_address=None,
                                         silence_logs=logging.ERROR)
            self.client = Client(self._cluster)

    def run(self, fn: Callable, items: list, args: tuple) -> Iterator[Done]:
        from distributed import as_completed

        futures = {self.client.submit(fn, item, *args, pure=False, key=f"call-{i}"): item
                   for i, item in enumerate(items)}
        for fut in as_completed(futures):
            item = futures[fut]
            try:
                yield Done(item, fut.result())
            except Exception as exc:  # noqa: BLE001 - every outcome is reported
                yield Done(item, error=_dask_error(exc))

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def _dask_error(exc: BaseException) -> BaseException:
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        return WorkerDied("the worker died while processing it, also on the retry (killed, or out of memory)")
    return exc


class RayPool:
    def __init__(self, cfg: RunnerConfig, memory_limit: int | None = None):
        """``memory_limit``: bytes per worker on a local instance (default 80% of RAM / N);
        a joined cluster keeps its own policy."""
        import ray

        self.memory_limit = 0 if cfg.address else (memory_limit or worker_memory_limit(cfg.n_workers))
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))}
        if cfg.address:
            check_reachable(cfg.address, cfg.kind)
            within(lambda: ray.init(address=cfg.address, logging_level=logging.ERROR, log_to_driver=False,
                                    runtime_env={"env_vars": env}), cfg)
        else:
            ray.init(num_cpus=cfg.n_workers, include_dashboard=False, logging_level=logging.ERROR,
                     log_to_driver=False, runtime_env={"env_vars": env})

    def run(self, fn: Callable, items: list, args: tuple) -> Iterator[Done]:
        import ray

        remote = ray.remote(num_cpus=1, max_retries=RETRIES)(run_capped)
        refs = {remote.remote(fn, self.memory_limit, item, *args): item for item in items}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            ref = ready[0]
            try:
                yield Done(refs[ref], ray.get(ref))
            except Exception as exc:  # noqa: BLE001 - every outcome is reported
                yield Done(refs[ref], error=_ray_error(exc))

    def close(self) -> None:
        import ray

        ray.shutdown()


def _ray_error(exc: BaseException) -> BaseException:
    import ray.exceptions as rex

    if isinstance(exc, (rex.WorkerCrashedError, rex.NodeDiedError)) or "worker died" in str(exc).lower():
        return WorkerDied("the worker died while processing it, also on the retry (killed, or out of memory)")
    if isinstance(exc, rex.RayTaskError) and exc.cause is not None:
        return exc.cause
    return exc


@contextlib.contextmanager
def open_pool(cfg: RunnerConfig, memory_limit: int | None = None) -> Iterator[DaskPool | RayPool]:
    """A Dask or Ray pool for ``cfg`` (not for the sequential runner), closed afterwards;
    ``memory_limit`` (bytes per local worker) replaces the default 80% of RAM / N."""
    t0 = time.perf_counter()
    try:
        pool = (DaskPool if cfg.kind == RunnerKind.DASK else RayPool)(cfg, memory_limit)
    except ImportError as exc:
        raise RunnerError(f"--runner {cfg.kind} needs a package that is missing ({exc}); reinstall the "
                          f"environment from requirements.lock") from None
    except RunnerError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. a listener that is not a scheduler: garbage, or silence
        what = f"join the {cfg.kind} cluster at {cfg.address}" if cfg.address else f"start a local {cfg.kind} cluster"
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise RunnerError(f"cannot {what}: {detail}"
                          + (f" (is it a {cfg.kind} scheduler?)" if cfg.address else "")) from None
    log.info("%s ready in %.1f s", cfg.describe(), time.perf_counter() - t0)
    try:
        yield pool
    finally:
        pool.close()
