"""`speechfin report ...` commands. Heavy libraries are imported inside the commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="Render call and study research reports (HTML/PDF).", no_args_is_help=True)
