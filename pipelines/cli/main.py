"""The ``speechfin`` command line.

Only typer and the standard library are imported at module level, so ``--help`` and
argument errors answer at once; each command imports what it needs.
"""

from __future__ import annotations

import enum
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from pipelines import exitcodes
from pipelines.cli import catalog, report, ser, serve, study
from pipelines.exitcodes import ExitCode

app = typer.Typer(
    help="speechfin: financial speech analytics (diarization, transcription, speech emotion, event studies).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(ser.app, name="ser")
app.add_typer(study.app, name="study")
app.add_typer(report.app, name="report")
app.add_typer(catalog.app, name="catalog")
app.command("serve")(serve.serve)
eval_app = typer.Typer(help="Score diarization (DER) and transcription (WER) against references.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

DEMO_ARCHIVE = Path(__file__).resolve().parents[1] / "demo_archive"
DEMO_STUDIES = ["press_conferences.toml", "research_designs.toml"]   # run on the demo archive by default


class ProfileName(str, enum.Enum):
    embedded = "embedded"
    full = "full"


def fail(message: str, code: int = ExitCode.USAGE) -> None:
    """Print a one-line error and exit (codes: ``pipelines.exitcodes``)."""
    exitcodes.fail(message, code)


def quiet_prefect() -> None:
    """Keep Prefect's own logging to warnings so the progress bars stay readable."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def _catalog_dir(catalog: Optional[Path]) -> Path:
    from pipelines.settings import default_catalog

    return (catalog or default_catalog()).expanduser()


@app.command()
def run(
    archive: Optional[Path] = typer.Argument(None, help="Folder with audio files and manifest.csv (default: the bundled demo archive)."),
    catalog: Optional[Path] = typer.Option(None, "--catalog", "-c", help="Catalog folder (default: $SPEECHFIN_CATALOG or ./speechfin_catalog)."),
    profile: ProfileName = typer.Option(ProfileName.embedded, "--profile", "-p", help="embedded (offline) or full (hub models, HF_TOKEN)."),
    asr_model: Optional[str] = typer.Option(None, help="faster-whisper model id or local folder (overrides the profile)."),
    diarizer: Optional[str] = typer.Option(None, help="'embedded' or a pyannote pipeline id / local folder."),
    align_model: Optional[str] = typer.Option(None, help="WhisperX alignment model id or folder ('' for none)."),
    study: Optional[list[str]] = typer.Option(None, "--study", "-s", help="Study spec to run after processing (repeatable; bundled: press_conferences.toml, earnings_calls.toml, research_designs.toml). Default for the demo archive: press_conferences.toml and research_designs.toml."),
    no_study: bool = typer.Option(False, "--no-study", help="Skip the studies."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip the call and study reports."),
    force: bool = typer.Option(False, "--force", help="Reprocess calls already in the catalog."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    runner: str = typer.Option("sequential", "--runner", help="Where calls run: sequential (this process), dask or ray (one task per call)."),
    workers: int = typer.Option(0, "--workers", help="Workers of a local Dask/Ray cluster (default: one per core)."),
    address: str = typer.Option("", "--address", help="Join this Dask scheduler (tcp://host:8786) or Ray cluster (host:6379) instead of starting one."),
) -> None:
    """Process every recording of an archive into the catalog, run the studies, write the reports."""
    studies = [] if no_study else list(study or (DEMO_STUDIES if archive is None else []))
    archive = archive or DEMO_ARCHIVE
    if not (archive / "manifest.csv").is_file():
        fail(f"{archive}: no manifest.csv here (need columns file, event_type, entity, event_time)")
    quiet_prefect()
    from data_catalog import CatalogError
    from finance.errors import FinanceError
    from pipelines.archive import ManifestError
    from pipelines.flows.calls import CallStatus
    from pipelines.flows.main import main_job
    from pipelines.flows.supervisor import start_temporary_server
    from pipelines.speech.models import ModelLoadError
    from pipelines.settings import get_profile
    from reports import ReportError

    from pipelines.flows.runners import RunnerError, runner_config

    prof = get_profile(profile.value).with_overrides(asr_model, diarizer, align_model)
    cat = _catalog_dir(catalog)
    try:
        run_on = runner_config(runner, workers, address)
    except RunnerError as exc:
        fail(str(exc))
    start_temporary_server()  # after the argument checks: a bad runner or address fails without it
    try:
        result = main_job(str(archive), str(cat), prof, tuple(studies), not no_report, force, not no_progress,
                          runner=run_on)
    except (ManifestError, FinanceError, ReportError) as exc:
        fail(str(exc))
    except CatalogError as exc:
        fail(str(exc), ExitCode.FAILED)
    summary = result.archive
    if isinstance(summary.error, (ManifestError, ModelLoadError, RunnerError)):  # nothing ran: bad input or configuration
        fail(str(summary.error))
    _print_summary(summary)
    for line in result.after_archive():
        typer.echo(line)
    if summary.error is not None:  # a catalog write failed (disk full, permissions): stopped
        fail(str(summary.error), ExitCode.FAILED)
    done = sum(summary.count(s) for s in CallStatus if s != CallStatus.FAILED)
    if summary.outcomes and all(o.status == CallStatus.SKIPPED for o in summary.outcomes):
        typer.echo("nothing to do: every call is already in the catalog")
    code = exitcodes.run_code(done, summary.count(CallStatus.FAILED))
    if code == ExitCode.OK and result.n_failed:
        code = ExitCode.PARTIAL  # every call went through, a study or a report failed
    raise typer.Exit(int(code))


def _wide_console(min_width: int):
    """A rich console at least ``min_width`` columns wide: a log or a pipe gets 80 columns
    by default, which squeezes table cells to a few characters."""
    from rich.console import Console

    return Console(width=max(min_width, Console().width))


def _print_summary(summary) -> None:
    from rich.table import Table

    t = Table(title=f"speechfin run: {summary.archive}")
    for col in ("file", "status", "call_id", "audio s", "wall s", "RTF", "speakers", "segments", "reason"):
        t.add_column(col, overflow="fold")
    for o in summary.outcomes:
        rtf = f"{o.wall_s / o.duration_s:.3f}" if o.duration_s else ""
        t.add_row(o.file, str(o.status), o.call_id, f"{o.duration_s:.1f}" if o.duration_s else "",
                  f"{o.wall_s:.1f}" if o.wall_s else "", rtf, str(o.n_speakers or ""), str(o.n_segments or ""), o.reason)
    _wide_console(160).print(t)
    for o in summary.outcomes:
        if o.stage_seconds:
            typer.echo(f"{o.file}: " + ", ".join(f"{k} {v:.1f} s" for k, v in o.stage_seconds.items()))
    typer.echo(summary.summary())


@app.command()
def query(
    sql: str = typer.Argument(..., help="One read-only query (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE) over the catalog views (calls, speakers, segments, words, emotions, ...)."),
    catalog: Optional[Path] = typer.Option(None, "--catalog", "-c", help="Catalog folder (default: as for `speechfin run`)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the result to .parquet or .csv instead of printing."),
    limit: int = typer.Option(50, help="Rows to print (not applied to --out)."),
    max_rows: Optional[int] = typer.Option(None, "--max-rows", help="Stop after this many rows (also with --out)."),
    timeout: float = typer.Option(120.0, "--timeout", help="Stop the query after this many seconds."),
) -> None:
    """Answer one read-only SQL query on a sandboxed connection to the catalog; the result streams."""
    if out is not None and out.suffix not in (".parquet", ".csv"):
        fail(f"{out}: --out must end in .parquet or .csv")
    from data_catalog import CatalogError
    from data_catalog.query import BadQuery, open_query, write_result

    try:
        with open_query(_catalog_dir(catalog), sql, timeout_s=timeout, max_rows=max_rows) as result:
            if out is not None:
                n = write_result(result, out)
                typer.echo(f"wrote {n} rows to {out}" + (f" (stopped at --max-rows {max_rows})" if result.truncated else ""))
                return
            head, more = result.head(max(0, limit))
    except BadQuery as exc:
        fail(str(exc), 2)
    except CatalogError as exc:  # disk full, permissions, time or memory limit, unreadable part
        fail(str(exc), 1)
    from rich.table import Table

    t = Table(show_lines=False)
    for name in head.column_names:
        t.add_column(name, overflow="fold")
    for row in head.to_pylist():
        t.add_row(*["" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)) for v in row.values()])
    _wide_console(120).print(t)
    typer.echo(f"first {head.num_rows} rows shown; the result has more (--out FILE writes them all)" if more
               else f"{head.num_rows} rows")


@app.command()
def explore(
    catalog: Optional[Path] = typer.Option(None, "--catalog", "-c", help="Catalog folder (default: as for `speechfin run`)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (0.0.0.0 makes the catalog visible to the network)."),
    port: int = typer.Option(8050, help="Port."),
    token: Optional[str] = typer.Option(None, "--token", help="Require this access token on every request "
                                                              "(or set SPEECHFIN_EXPLORE_TOKEN)."),
) -> None:
    """Browse the catalog in the browser: calls, a call page with audio, transcript and scores in sync,
    speakers, studies and a read-only SQL console (offline; reads the catalog, computes nothing)."""
    import os

    import uvicorn

    from reports.explorer import TOKEN_ENV, create_app

    cat = _catalog_dir(catalog)
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(f"warning: binding {host}: anyone who can reach this machine can read the catalog"
                    + ("" if token or os.environ.get(TOKEN_ENV) else " (no --token given)"), fg=typer.colors.YELLOW,
                    err=True)
    typer.echo(f"speechfin explorer on http://{host}:{port}/ (catalog {cat}); stop with Ctrl-C")
    uvicorn.run(create_app(cat, token), host=host, port=port, log_level="warning")


@eval_app.command("diarization")
def eval_diarization(
    audio: Path = typer.Option(..., "--audio", help="Recording to diarize."),
    rttm: Path = typer.Option(..., "--rttm", help="Reference RTTM."),
    num_speakers: Optional[int] = typer.Option(None, help="Known number of speakers (else estimated)."),
    profile: ProfileName = typer.Option(ProfileName.embedded, "--profile", "-p"),
    out_rttm: Optional[Path] = typer.Option(None, "--out-rttm", help="Write the hypothesis RTTM here."),
    transcript: Optional[Path] = typer.Option(
        None, "--transcript", help="The call's transcript (any shape the manifest accepts): score the speaker turns "
                                   "the flow makes with it (its segments) instead of the diarizer's alone."),
    segments: bool = typer.Option(
        False, "--segments", help="Score the speaker turns of the segments the flow writes for a call without a "
                                  "transcript (ASR sentences with the diarized voices) instead of the diarizer's."),
) -> None:
    """DER (pyannote.metrics, no collar, overlap counted) of the profile's diarization, or of the
    speaker turns of the catalog's segments: with --transcript, those the flow gives a call with
    that transcript; with --segments, those it gives a call without one."""
    if transcript and segments:
        fail(f"{transcript}: --transcript and --segments score different segments; give one of them")
    for p in (audio, rttm) + ((transcript,) if transcript else ()):
        if not p.is_file():
            fail(f"{p}: file not found")
    from pipelines.speech.evaluation import ReferenceError, diarization_error, read_rttm
    from pipelines.speech.audio import AudioError, decode_audio
    from pipelines.speech.models import ModelLoadError
    from pipelines.speech.frontend import diarize_file, speaker_turns
    from pipelines.types import Turn

    try:
        refs = read_rttm(rttm)
        if transcript:
            cs = speaker_turns(decode_audio(audio), transcript, profile.value, num_speakers)
            names = {k.speaker: k.name or k.speaker for k in cs.speakers}
            hyp = [Turn(s.start_s, s.end_s, names.get(s.speaker, s.speaker)) for s in cs.segments]
            said = (f"{len(cs.segments)} segments, {len(names)} speakers ({', '.join(sorted(names.values()))}); "
                    f"transcript {cs.transcript['status']}" + (f"; {cs.warning}" if cs.warning else ""))
        elif segments:
            cs = speaker_turns(decode_audio(audio), None, profile.value, num_speakers)
            hyp = [Turn(s.start_s, s.end_s, s.speaker) for s in cs.segments]
            said = (f"{len(cs.segments)} segments ({sum(not s.text for s in cs.segments)} without words), "
                    f"{len({s.speaker for s in cs.segments})} speakers; no transcript")
        else:
            diar = diarize_file(audio, profile.value, num_speakers)
            hyp, said = diar.turns, diar.summary()
    except (ReferenceError, AudioError, ModelLoadError) as exc:
        fail(str(exc))
    ref = [t for turns in refs.values() for t in turns]
    result = diarization_error(ref, hyp)
    if out_rttm:
        from pipelines.demo import write_rttm

        write_rttm(out_rttm, audio.stem, [(t.start_s, t.duration_s, t.speaker) for t in hyp])
    typer.echo(f"{audio}: {said}")
    typer.echo(f"{audio}: {result.summary()}")


@eval_app.command("asr")
def eval_asr(
    audio: Optional[Path] = typer.Option(None, "--audio", help="Recording to transcribe (with --stm)."),
    stm: Optional[Path] = typer.Option(None, "--stm", help="Reference STM transcript."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="labels.csv of a clip folder (path, text)."),
    only: Optional[str] = typer.Option(None, "--only", help="With --labels: keep rows whose column is 1, e.g. text_aligned."),
    where: Optional[str] = typer.Option(None, "--where", help="With --labels: keep rows whose COLUMN=VALUE, e.g. call=Twitter_Inc._20170209."),
    profile: ProfileName = typer.Option(ProfileName.embedded, "--profile", "-p"),
) -> None:
    """WER (jiwer, after Whisper's English normalizer) of the profile's transcription."""
    if labels is None and (audio is None or stm is None):
        fail("give --audio and --stm, or --labels")
    for p in (audio, stm, labels):
        if p is not None and not p.is_file():
            fail(f"{p}: file not found")
    from pipelines.speech.audio import AudioError
    from pipelines.speech.evaluation import ReferenceError, read_labels, read_stm, word_error
    from pipelines.speech.models import ModelLoadError
    from pipelines.speech.frontend import transcribe_file

    try:
        if labels is not None:
            pairs = read_labels(labels, only, where)
            refs, hyps = [], []
            from tqdm import tqdm

            for path, text in tqdm(pairs, desc="transcribing clips", unit="clip"):
                refs.append(text)
                hyps.append(transcribe_file(path, profile.value))
            name = labels
        else:
            refs = [" ".join(r[3] for r in read_stm(stm))]
            hyps = [transcribe_file(audio, profile.value)]
            name = audio
    except (ReferenceError, AudioError, ModelLoadError) as exc:
        fail(str(exc))
    typer.echo(f"{name}: {word_error(refs, hyps).summary()} over {len(refs)} item(s)")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
