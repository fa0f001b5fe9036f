"""The ``speechfin`` command line.

Only typer and the standard library are imported at module level, so ``--help`` and
argument errors answer at once; each command imports what it needs.
"""

from __future__ import annotations

import typer

from pipelines import cli_report, cli_ser, cli_study

app = typer.Typer(
    help="speechfin: financial speech analytics (diarization, transcription, speech emotion, event studies).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(cli_ser.app, name="ser")
app.add_typer(cli_study.app, name="study")
app.add_typer(cli_report.app, name="report")


def main() -> None:  # pragma: no cover - console entry point
    app()
