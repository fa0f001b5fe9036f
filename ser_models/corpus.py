"""Labelled emotional-speech corpora: a folder with ``labels.csv`` (``path, speaker,
emotion`` and optionally ``text, gender``), paths relative to the folder, 16 kHz audio.

``../shared/data/ravdess`` is one.  Loading checks everything up front and fails with one
line naming the file and the problem: missing ``labels.csv`` or columns, unknown emotion
labels, missing audio files, audio at another sample rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

SAMPLE_RATE = 16_000
RAVDESS_LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
GENDERS = ("female", "male")
REQUIRED_COLUMNS = ("path", "speaker", "emotion")


class CorpusError(ValueError):
    """A corpus folder is unusable; the message names the file and the problem."""


def read_audio(path: str | Path) -> np.ndarray:
    """Mono float32 samples at 16 kHz; another sample rate is an error (no silent resampling)."""
    import soundfile as sf

    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as exc:   # soundfile.LibsndfileError is a RuntimeError
        raise CorpusError(f"{path}: cannot read audio ({exc})") from exc
    if sr != SAMPLE_RATE:
        raise CorpusError(f"{path}: sample rate {sr} Hz, expected {SAMPLE_RATE} Hz "
                          f"(resample first, e.g. `sox in.wav -r 16000 out.flac`)")
    return x.mean(axis=1)


@dataclass
class Corpus:
    """Rows of a labels.csv with absolute ``file`` paths and integer ``label``/``gender_id``."""

    root: Path
    table: pd.DataFrame
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.table)

    @property
    def y(self) -> np.ndarray:
        return self.table["label"].to_numpy()

    @property
    def speakers(self) -> np.ndarray:
        return self.table["speaker"].to_numpy()

    @property
    def texts(self) -> list[str]:
        return self.table["text"].tolist()

    @property
    def gender(self) -> np.ndarray:
        return self.table["gender_id"].to_numpy()

    def audio(self) -> list[np.ndarray]:
        return [read_audio(p) for p in self.table["file"]]

    def subset(self, index: np.ndarray | Sequence[int]) -> "Corpus":
        return Corpus(self.root, self.table.iloc[np.asarray(index)].reset_index(drop=True), self.labels)


def is_text_corpus(root: str | Path) -> bool:
    """A folder whose labels.csv has ``text`` and ``label`` columns and no audio ``path``, a
    Financial PhraseBank folder or file, or an FOMC split file (``ser_models.text_corpora``)."""
    root = Path(root)
    if root.name.startswith(("Sentences_", "lab-manual-")) or (root / "Sentences_50Agree.txt").is_file():
        return True
    csv = root / "labels.csv"
    if not csv.is_file():
        return False
    header = pd.read_csv(csv, nrows=0).columns
    return "text" in header and "label" in header and "path" not in header


def load_corpus(root: str | Path, labels: Sequence[str] | None = None,
                speakers: Sequence[str] | None = None, require_labels: bool = True) -> Corpus:
    """Read and check ``root/labels.csv``.

    labels:   the allowed label set, in model order (None: the sorted labels of the corpus).
    speakers: keep only these speakers (e.g. RAVDESS actors 01-20).
    require_labels: False for prediction: the ``emotion`` column may be absent or empty
        (label -1); the labels that are given must still be known.
    """
    root = Path(root)
    csv = root / "labels.csv"
    if not csv.is_file():
        raise CorpusError(f"{csv}: not found (a corpus folder needs labels.csv with path, speaker, emotion)")
    try:
        df = pd.read_csv(csv, dtype={"path": str, "speaker": str, "emotion": str}, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{csv}: not a readable CSV ({exc})") from exc
    if not require_labels and "emotion" not in df.columns:
        df["emotion"] = ""
    missing_cols = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing_cols:
        raise CorpusError(f"{csv}: missing columns {missing_cols} (need {', '.join(REQUIRED_COLUMNS)})")
    df["line"] = np.arange(len(df)) + 2          # line in the file (header is line 1)
    if speakers is not None:
        df = df[df["speaker"].isin(list(speakers))]
    if df.empty:
        raise CorpusError(f"{csv}: no rows" + (" for the selected speakers" if speakers is not None else ""))
    emotions = df["emotion"].str.strip().str.lower()
    if require_labels and (emotions == "").any():
        lines = df.loc[emotions == "", "line"].tolist()
        raise CorpusError(f"{csv}: {len(lines)} rows without an emotion label (lines {_few(lines)})")
    label_set = tuple(labels) if labels is not None else tuple(sorted(set(emotions) - {""}))
    unknown = sorted(set(emotions) - set(label_set) - {""})
    if unknown:
        lines = df.loc[emotions.isin(unknown), "line"].tolist()
        raise CorpusError(f"{csv}: unknown emotion labels {unknown} (lines {_few(lines)}); "
                          f"known: {', '.join(label_set)}")
    files = [root / p for p in df["path"]]
    absent = [(f, line) for f, line in zip(files, df["line"]) if not f.is_file()]
    if absent:
        raise CorpusError(f"{csv}: {len(absent)} audio files missing, e.g. {absent[0][0]} (line {absent[0][1]})")
    gender = df["gender"].str.lower() if "gender" in df.columns else pd.Series("", index=df.index)
    table = pd.DataFrame({
        "file": [str(f) for f in files],
        "speaker": df["speaker"].to_numpy(),
        "emotion": emotions.to_numpy(),
        "label": emotions.map({lab: i for i, lab in enumerate(label_set)}).fillna(-1).astype(int).to_numpy(),
        "text": df["text"].fillna("").astype(str).to_numpy() if "text" in df.columns else "",
        "gender_id": gender.map({g: i for i, g in enumerate(GENDERS)}).fillna(-1).astype(int).to_numpy(),
    })
    return Corpus(root, table.reset_index(drop=True), label_set)


def _few(items: list, n: int = 5) -> str:
    head = ", ".join(str(i) for i in items[:n])
    return head + (f", ... ({len(items)} in all)" if len(items) > n else "")


def speaker_folds(speakers: Sequence[str], k: int) -> list[np.ndarray]:
    """Speaker-independent k folds: the sorted distinct speakers are cut into k contiguous
    groups (RAVDESS actors 01-20, k=5: 01-04, 05-08, ...).  Returns, per fold, the indices
    of the rows whose speaker is held out.  Never splits a speaker across folds."""
    speakers = np.asarray(speakers)
    distinct = sorted(set(speakers.tolist()))
    if k < 2 or k > len(distinct):
        raise ValueError(f"cannot make {k} speaker folds from {len(distinct)} speakers "
                         f"(need 2 <= k <= number of speakers)")
    groups = np.array_split(np.array(distinct, dtype=object), k)
    return [np.flatnonzero(np.isin(speakers, g)) for g in groups]
