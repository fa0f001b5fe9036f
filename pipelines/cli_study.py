"""`speechfin study ...` commands. Heavy libraries are imported inside the commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="Event studies and regressions of returns on speech features.", no_args_is_help=True)
