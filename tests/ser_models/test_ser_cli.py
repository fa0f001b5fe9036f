"""`speechfin ser ...`: bad inputs give one clear line and exit code 2; light imports."""

import json
import shutil
import subprocess
import sys

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from pipelines.cli.main import app
from ser_models.checkpoint import EMBEDDED

runner = CliRunner()


def _error_line(res):
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    return lines[0]


def test_cli_modules_do_not_import_heavy_libraries():
    code = "import sys, pipelines.cli.main; print(sorted(m for m in ('torch', 'transformers', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_eval_on_corpus_whose_labels_the_checkpoint_does_not_have(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "labels.csv").write_text("path,speaker,emotion\na.wav,s1,bored\n")
    line = _error_line(runner.invoke(app, ["ser", "eval", "--corpus", str(tmp_path)]))
    assert "labels.csv: no class in common with the checkpoint (corpus: bored;" in line


def test_eval_on_corpus_with_missing_files(tmp_path):
    (tmp_path / "labels.csv").write_text("path,speaker,emotion\nnope.wav,s1,happy\n")
    line = _error_line(runner.invoke(app, ["ser", "eval", "--corpus", str(tmp_path)]))
    assert "1 audio files missing" in line and "nope.wav" in line


def test_checkpoint_whose_card_does_not_match(tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(EMBEDDED, ckpt)
    card = json.loads((ckpt / "card.json").read_text())
    card["config"]["temperature"] = 2.0
    (ckpt / "card.json").write_text(json.dumps(card))
    line = _error_line(runner.invoke(app, ["ser", "eval", "--checkpoint", str(ckpt), "--corpus", str(tmp_path)]))
    assert "card.json: card does not match this code's ModelConfig" in line and "temperature" in line
    line = _error_line(runner.invoke(app, ["ser", "info", "--checkpoint", str(ckpt)]))
    assert "temperature" in line


def test_train_with_bad_config(tmp_path):
    line = _error_line(runner.invoke(app, ["ser", "train", "--config", str(tmp_path / "x.toml"), "--out", str(tmp_path)]))
    assert "x.toml: config file not found" in line
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\npoolin = 'mqmha'\n")
    line = _error_line(runner.invoke(app, ["ser", "train", "--config", str(bad), "--out", str(tmp_path)]))
    assert "bad.toml [model]: unknown fields ['poolin']" in line


def test_info_on_the_embedded_checkpoint():
    res = runner.invoke(app, ["ser", "info"])
    assert res.exit_code == 0, res.output
    assert "CC BY-NC-SA 4.0" in res.output and "non-commercial" in res.output
    assert "neutral, calm, happy, sad, angry, fearful, disgust, surprised" in res.output
