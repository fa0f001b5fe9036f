"""The exit codes of every ``speechfin`` command, in one place (documented in README.md, Usage).

- ``OK`` (0): everything asked for was done;
- ``FAILED`` (1): nothing was done: every call failed, a study had no event left, or a
  runtime failure (disk full, permissions, network);
- ``USAGE`` (2): bad usage or bad input: bad arguments, a missing manifest, a bad spec or
  input file, a model the profile needs that is not available (typer's own usage errors
  are 2 too);
- ``PARTIAL`` (3): some calls (or studies, or reports) failed, the others were processed
  or skipped.

Only typer and the standard library here: every CLI module imports it, and ``--help``
must stay fast.
"""

from __future__ import annotations

import enum
from typing import NoReturn

import typer


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    PARTIAL = 3


def one_line(message: object) -> str:
    """The first line of a message or an exception's text (its type name if it has none)."""
    return (str(message).splitlines() or [type(message).__name__])[0]


def fail(message: object, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    """Print a one-line error (the first line of ``message``) on stderr and exit with ``code``."""
    typer.secho(f"error: {one_line(message)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(int(code))


def run_code(n_done: int, n_failed: int) -> ExitCode:
    """The exit code of a batch: ``n_done`` items processed or skipped, ``n_failed`` failed."""
    if not n_failed:
        return ExitCode.OK
    return ExitCode.PARTIAL if n_done else ExitCode.FAILED
