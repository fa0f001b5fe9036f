"""The command line: light start-up, clear errors, query output."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from typer.testing import CliRunner

from data_catalog import Catalog
from pipelines.cli.main import app

HEAVY = {"torch", "whisperx", "prefect", "transformers", "pyannote.audio", "statsmodels", "pandas", "duckdb",
         "faster_whisper", "ctranslate2", "matplotlib", "weasyprint", "sklearn"}


def test_cli_import_is_light():
    code = "import sys, pipelines.cli.main; print(sorted(m for m in %r if m in sys.modules))" % (HEAVY,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_lists_commands():
    r = CliRunner().invoke(app, ["--help"])
    assert r.exit_code == 0
    for cmd in ("run", "query", "eval", "ser", "study", "report"):
        assert cmd in r.output
    for sub in (["run", "--help"], ["query", "--help"], ["eval", "diarization", "--help"], ["eval", "asr", "--help"]):
        assert CliRunner().invoke(app, sub).exit_code == 0


def test_bad_arguments_are_one_line_errors(tmp_path):
    r = CliRunner().invoke(app, ["run", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "nowhere: no manifest.csv here" in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = CliRunner().invoke(app, ["run", "--profile", "huge"])
    assert r.exit_code == 2
    r = CliRunner().invoke(app, ["query", "select 1", "--catalog", str(tmp_path / "nocat")])
    assert r.exit_code == 2 and "no catalog here" in r.output
    r = CliRunner().invoke(app, ["query", "select 1", "--out", str(tmp_path / "x.xlsx")])
    assert r.exit_code == 2 and "must end in .parquet or .csv" in r.output
    r = CliRunner().invoke(app, ["eval", "asr"])
    assert r.exit_code == 2 and "give --audio and --stm, or --labels" in r.output


def test_query_prints_and_writes_files(tmp_path):
    cat = Catalog(tmp_path / "cat")
    rows = [{"call_id": "c1", "segment_id": i, "speaker": "SPEAKER_00", "start_s": i * 1.0, "end_s": i + 0.5,
             "section": "qa" if i > 2 else "prepared", "text": f"t{i}", "asr_confidence": 0.5} for i in range(6)]
    cat.write("segments", "c1", rows)
    cat.write("calls", "c1", [{"call_id": "c1", "event_type": "press_conference", "entity": "FOMC",
                               "event_time": None, "language": "en", "duration_s": 6.0, "source_uri": "c1.wav",
                               "title": "", "processed_at": None, "pipeline_version": "0", "profile": "embedded"}])
    cat.refresh_views()  # views show complete calls only: those with a calls part
    r = CliRunner().invoke(app, ["query", "select section, count(*) n from segments group by 1 order by 1",
                                 "--catalog", str(cat.root)])
    assert r.exit_code == 0 and "prepared" in r.output and "2 rows" in r.output
    out = tmp_path / "qa.parquet"
    r = CliRunner().invoke(app, ["query", "select * from segments where section = 'qa'", "-c", str(cat.root), "-o", str(out)])
    assert r.exit_code == 0 and "wrote 3 rows" in r.output
    assert pq.read_table(out).column("segment_id").to_pylist() == [3, 4, 5]
    out = tmp_path / "all.csv"
    CliRunner().invoke(app, ["query", "select segment_id, text from segments order by 1", "-c", str(cat.root), "-o", str(out)])
    assert pcsv.read_csv(out).column("text").to_pylist() == [f"t{i}" for i in range(6)]
    r = CliRunner().invoke(app, ["query", "select nope from segments", "-c", str(cat.root)])
    assert r.exit_code == 2 and "query failed" in r.output


def _run_cli(args: list[str], tmp_path, env_extra: dict | None = None, timeout: int = 600):
    """``speechfin ARGS`` in a fresh process (its own temporary Prefect server): exit code and
    everything it printed, stdout and stderr together, as a user sees it."""
    import os
    import signal

    from front_paths import REPO

    env = dict(os.environ, PYTHONPATH=str(REPO), **(env_extra or {}))
    log = tmp_path / "cli.log"
    with log.open("w") as out:  # a file, not a pipe: the Prefect server child may outlive the run
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], env=env, stdout=out, stderr=out,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return code, log.read_text()


def test_run_of_bad_files_prints_one_line_reasons(tmp_path):
    """A corrupt file and 20 s of white noise: each failed call is one line (no Prefect
    traceback, no ERROR line); no speech is a failure, not a call with 0 speakers."""
    import numpy as np
    import soundfile as sf

    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "notes.wav").write_text("not audio at all\n" * 50)
    noise = 0.3 * np.random.default_rng(0).standard_normal(16_000 * 20)
    sf.write(archive / "noise.wav", noise.astype(np.float32), 16_000)
    (archive / "manifest.csv").write_text("file,event_type,entity,event_time\n"
                                          "notes.wav,earnings_call,ACME,2019-01-30T19:30:00Z\n"
                                          "noise.wav,earnings_call,ACME,2019-01-31T19:30:00Z\n"
                                          "missing.wav,earnings_call,ACME,2019-02-01T19:30:00Z\n"
                                          "noise.wav,earnings_call,ACME,01/05/2019\n")
    cat = tmp_path / "catalog"
    code, out = _run_cli(["run", str(archive), "-c", str(cat), "--no-study", "--no-report", "--no-progress"], tmp_path)
    assert code == 1, out  # nothing processed: every call failed
    assert "Traceback" not in out and "ERROR" not in out and "Encountered exception" not in out, out
    assert "Warning:" not in out, out  # the models loaded without a library warning (torchcodec, TF32, pkg_resources)
    root = archive.resolve()
    assert f"  failed: {root}/notes.wav: not a readable audio file" in out
    assert f"  failed: {root}/noise.wav: no speech found (20.0 s of audio, no voice activity)\n" in out
    assert f"  failed: {root}/missing.wav: file not found (manifest row 4)\n" in out
    assert f"  failed: {root}/manifest.csv:5: bad event_time '01/05/2019' (use ISO 8601" in out
    failures = {(f["source_uri"], f["stage"]) for f in Catalog(cat).read("failures").to_pylist()}
    assert failures == {(f"{root}/notes.wav", "decode"), (f"{root}/noise.wav", "voice activity"),
                        (f"{root}/missing.wav", "manifest"), (f"{root}/noise.wav", "manifest")}
    assert Catalog(cat).keys("calls") == []


def test_full_profile_offline_is_one_line(tmp_path):
    """HF_HUB_OFFLINE=1 (as the suite sets it) and no hub model in the cache: one line naming
    the model and the local-folder options, exit 2 (configuration), nothing downloaded."""
    from front_paths import copy_demo_call

    archive = copy_demo_call(tmp_path / "archive")
    code, out = _run_cli(["run", str(archive), "-c", str(tmp_path / "cat"), "--profile", "full", "--no-progress"],
                         tmp_path, {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert code == 2, out
    assert "Traceback" not in out and "Could not download" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert errors == ["error: diarizer 'pyannote/speaker-diarization-community-1' cannot be loaded: not in the local "
                      "model cache, and HF_HUB_OFFLINE is set (An error happened while trying to locate the file on "
                      "the Hub and we cannot find the requested files in the local cache); give local folders with "
                      "--asr-model DIR, --diarizer DIR (or --diarizer embedded) and --align-model DIR "
                      "(or --align-model '' for none)"], out
    assert out.strip().splitlines() == errors  # nothing else: no summary of a run that never started
    assert not (tmp_path / "hf").exists() or not any((tmp_path / "hf").rglob("*.bin"))


def test_exit_code_policy_is_one_documented_enum():
    import re

    from front_paths import REPO
    from pipelines.exitcodes import ExitCode, run_code

    assert {c.name: int(c) for c in ExitCode} == {"OK": 0, "FAILED": 1, "USAGE": 2, "PARTIAL": 3}
    readme = (REPO / "README.md").read_text()
    documented = [int(c) for c in re.findall(r"^- `(\d)`: ", readme.split("Exit codes")[1], re.M)]
    assert documented == [0, 1, 2, 3]
    assert [run_code(3, 0), run_code(2, 1), run_code(0, 2), run_code(0, 0)] == [0, 3, 1, 0]
    for mod in ("main", "catalog", "study", "report", "serve", "ser"):  # every command uses it
        assert "exitcodes import" in (REPO / "pipelines" / "cli" / f"{mod}.py").read_text(), mod


def test_eval_with_full_profile_offline_is_one_line(tmp_path, monkeypatch):
    from front_paths import DEMO

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    call = "fomc_press_conference_20181219"
    r = CliRunner().invoke(app, ["eval", "diarization", "--audio", str(DEMO / f"{call}.m4a"),
                                 "--rttm", str(DEMO / "reference" / f"{call}.rttm"), "--profile", "full"])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: diarizer 'pyannote/speaker-diarization-community-1' cannot be loaded: not in the local model cache")
    assert lines[0].endswith("--align-model DIR (or --align-model '' for none)")


def test_eval_diarization_takes_one_kind_of_segments(tmp_path):
    """--transcript and --segments together: a one-line error naming the transcript, before any work."""
    t = tmp_path / "call.txt"
    t.write_text("Jerome Powell: Good afternoon.\n")
    r = CliRunner().invoke(app, ["eval", "diarization", "--audio", str(tmp_path / "a.wav"), "--rttm",
                                 str(tmp_path / "a.rttm"), "--transcript", str(t), "--segments"])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert lines == [f"error: {t}: --transcript and --segments score different segments; give one of them"]
