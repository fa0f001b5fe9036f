"""Progress bars for long work: one bar over calls, one over the stages of the current call."""

from __future__ import annotations

from contextlib import contextmanager

_BAR = None  # the active rich Progress, if any
_TASKS: dict[str, int] = {}


@contextmanager
def progress_bars(total_calls: int, enabled: bool = True):
    """Show a "calls" bar and a "stage" bar while the block runs (no-op when disabled)."""
    global _BAR
    if not enabled:
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<42}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=False) as bar:
        _BAR = bar
        _TASKS["calls"] = bar.add_task("calls", total=total_calls)
        _TASKS["stage"] = bar.add_task("stage", total=1)
        try:
            yield
        finally:
            _BAR = None
            _TASKS.clear()


def call_started(name: str, n_stages: int) -> None:
    if _BAR is not None:
        _BAR.update(_TASKS["calls"], description=f"call {name[:36]}")
        _BAR.reset(_TASKS["stage"], total=n_stages, description="stage: decode")


def stage_started(name: str) -> None:
    if _BAR is not None:
        _BAR.update(_TASKS["stage"], description=f"stage: {name}")


def stage_done() -> None:
    if _BAR is not None:
        _BAR.advance(_TASKS["stage"])


def call_done() -> None:
    if _BAR is not None:
        _BAR.advance(_TASKS["calls"])
