"""Corpus folders: the real RAVDESS layout and every bad-input case."""

import numpy as np
import pytest
import soundfile as sf

from ser_models.corpus import RAVDESS_LABELS, CorpusError, load_corpus, read_audio

from ser_helpers import RAVDESS
from shared_data import needs_shared


def _corpus(tmp_path, rows, sr=16_000, header="path,speaker,emotion,text,gender"):
    (tmp_path / "audio").mkdir(exist_ok=True)
    lines = [header]
    for i, (speaker, emotion) in enumerate(rows):
        name = f"audio/clip{i}.wav"
        sf.write(tmp_path / name, np.sin(np.arange(sr // 2) / 7).astype(np.float32) * 0.1, sr)
        lines.append(f"{name},{speaker},{emotion},hello there,{'male' if i % 2 else 'female'}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


@needs_shared
def test_ravdess_loads_with_decoded_labels():
    c = load_corpus(RAVDESS, RAVDESS_LABELS)
    assert len(c) == 1200 and c.labels == RAVDESS_LABELS
    counts = np.bincount(c.y, minlength=8)
    assert counts.tolist() == [80] + [160] * 7          # neutral has no strong intensity
    assert len(set(c.speakers)) == 20
    assert set(c.gender) == {0, 1}
    assert set(c.texts) == {"Kids are talking by the door", "Dogs are sitting by the door"}
    sub = load_corpus(RAVDESS, RAVDESS_LABELS, speakers=["ravdess_03"])
    assert len(sub) == 60 and sub.gender.tolist() == [1] * 60          # odd actors are male
    x = read_audio(sub.table["file"][0])
    assert x.dtype == np.float32 and x.ndim == 1 and 2.5 < len(x) / 16000 < 6


def test_unknown_labels_are_an_error_naming_file_label_and_line(tmp_path):
    _corpus(tmp_path, [("a", "happy"), ("a", "bored"), ("b", "sad")])
    with pytest.raises(CorpusError, match=r"labels\.csv: unknown emotion labels \['bored'\] \(lines 3\)"):
        load_corpus(tmp_path, RAVDESS_LABELS)
    c = load_corpus(tmp_path)                  # without a label set: the corpus's own labels
    assert c.labels == ("bored", "happy", "sad")


def test_missing_files_are_an_error_naming_the_file(tmp_path):
    _corpus(tmp_path, [("a", "happy"), ("b", "sad")])
    (tmp_path / "audio" / "clip1.wav").unlink()
    with pytest.raises(CorpusError, match=r"labels\.csv: 1 audio files missing, e\.g\. .*clip1\.wav \(line 3\)"):
        load_corpus(tmp_path, RAVDESS_LABELS)


def test_missing_labels_csv_and_columns(tmp_path):
    with pytest.raises(CorpusError, match=r"labels\.csv: not found"):
        load_corpus(tmp_path)
    _corpus(tmp_path, [("a", "happy")], header="path,who,emotion,text,gender")
    with pytest.raises(CorpusError, match=r"missing columns \['speaker'\]"):
        load_corpus(tmp_path)


def test_empty_label_is_an_error(tmp_path):
    _corpus(tmp_path, [("a", "happy"), ("a", "")])
    with pytest.raises(CorpusError, match=r"1 rows without an emotion label \(lines 3\)"):
        load_corpus(tmp_path)


def test_clip_at_another_sample_rate_is_an_error_naming_the_clip(tmp_path):
    _corpus(tmp_path, [("a", "happy"), ("b", "sad")], sr=44_100)
    c = load_corpus(tmp_path, RAVDESS_LABELS)
    with pytest.raises(CorpusError, match=r"clip0\.wav: sample rate 44100 Hz, expected 16000 Hz"):
        c.audio()
