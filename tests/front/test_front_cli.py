"""The command line: light start-up, clear errors, query output."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from typer.testing import CliRunner

from data_catalog import Catalog
from pipelines.cli import app

HEAVY = {"torch", "whisperx", "prefect", "transformers", "pyannote.audio", "statsmodels", "pandas", "duckdb",
         "faster_whisper", "ctranslate2", "matplotlib", "weasyprint", "resemblyzer", "sklearn"}


def test_cli_import_is_light():
    code = "import sys, pipelines.cli; print(sorted(m for m in %r if m in sys.modules))" % (HEAVY,)
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
