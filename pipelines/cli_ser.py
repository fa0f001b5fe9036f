"""`speechfin ser ...` commands. Heavy libraries are imported inside the commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="Train, evaluate and apply speech-emotion (SER) models.", no_args_is_help=True)
