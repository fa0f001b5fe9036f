"""Scoring against references: DER (pyannote.metrics) and WER (jiwer + Whisper's normalizer).

DER is computed with no forgiveness collar and with overlapped speech counted
(``collar=0``, ``skip_overlap=False``).  WER normalizes both sides with Whisper's English
text normalizer first, as the Whisper paper does.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from pipelines.types import Turn


class ReferenceError(ValueError):
    """A reference file is missing or malformed."""


def read_rttm(path: str | Path) -> dict[str, list[Turn]]:
    """RTTM ``SPEAKER uri 1 start dur <NA> <NA> label ...`` lines -> turns per uri."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceError(f"{path}: RTTM file not found")
    out: dict[str, list[Turn]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        f = line.split()
        if not f or f[0] != "SPEAKER":
            continue
        if len(f) < 8:
            raise ReferenceError(f"{path}:{n}: malformed RTTM line")
        start, dur = float(f[3]), float(f[4])
        out.setdefault(f[1], []).append(Turn(start, start + dur, f[7]))
    return out


def read_stm(path: str | Path) -> list[tuple[float, float, str, str]]:
    """STM ``uri channel speaker start end [<label>] text`` -> (start, end, speaker, text)."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceError(f"{path}: STM file not found")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith(";;"):
            continue
        f = line.split(maxsplit=5)
        if len(f) < 5:
            raise ReferenceError(f"{path}:{n}: malformed STM line")
        text = f[5] if len(f) > 5 else ""
        if text.startswith("<"):
            text = text.split(">", 1)[1] if ">" in text else ""
        rows.append((float(f[3]), float(f[4]), f[2], text.strip()))
    return rows


def to_annotation(turns: list[Turn], uri: str = "call"):
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=uri)
    for i, t in enumerate(turns):
        if t.end_s > t.start_s:
            ann[Segment(t.start_s, t.end_s), i] = t.speaker
    return ann


@dataclass
class DERResult:
    der: float
    false_alarm: float
    missed: float
    confusion: float
    total: float

    def summary(self) -> str:
        return (f"DER {100 * self.der:.2f}% (false alarm {100 * self.false_alarm:.2f}%, missed "
                f"{100 * self.missed:.2f}%, confusion {100 * self.confusion:.2f}%) over {self.total:.1f} s of speech")


def diarization_error(reference: list[Turn], hypothesis: list[Turn]) -> DERResult:
    """DER with no collar, overlap counted."""
    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref, hyp = to_annotation(reference), to_annotation(hypothesis)
    # scored from the first to the last turn of either side: what pyannote assumes (with a
    # warning) when no uem is given
    turns = reference + hypothesis
    uem = Timeline([Segment(min((t.start_s for t in turns), default=0.0), max((t.end_s for t in turns), default=0.0))])
    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    c = metric(ref, hyp, uem=uem, detailed=True)
    tot = c["total"] or 1.0
    return DERResult(c["diarization error rate"], c["false alarm"] / tot, c["missed detection"] / tot,
                     c["confusion"] / tot, c["total"])


@dataclass
class WERResult:
    wer: float
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    def summary(self) -> str:
        return (f"WER {100 * self.wer:.2f}% (S={self.substitutions} D={self.deletions} I={self.insertions}, "
                f"N={self.reference_words})")


_NORMALIZER = None


def normalize_text(text: str) -> str:
    """Whisper's English text normalizer (``whisper_normalizer.english``)."""
    global _NORMALIZER
    if _NORMALIZER is None:
        from whisper_normalizer.english import EnglishTextNormalizer

        _NORMALIZER = EnglishTextNormalizer()
    return " ".join(_NORMALIZER(text).split())


def word_error(references: list[str], hypotheses: list[str]) -> WERResult:
    """Corpus WER over aligned (reference, hypothesis) pairs, after normalization."""
    import jiwer

    refs = [normalize_text(r) for r in references]
    hyps = [normalize_text(h) for h in hypotheses]
    keep = [i for i, r in enumerate(refs) if r]
    if not keep:
        raise ReferenceError("no reference words to score")
    out = jiwer.process_words([refs[i] for i in keep], [hyps[i] for i in keep])
    n = out.hits + out.substitutions + out.deletions
    return WERResult(out.wer, out.substitutions, out.deletions, out.insertions, n)


def read_labels(path: str | Path, text_filter: str | None = None, where: str | None = None) -> list[tuple[Path, str]]:
    """``labels.csv`` of a clip folder -> (audio path, reference text); ``text_filter``
    keeps rows whose named column is ``1`` (e.g. ``text_aligned``), ``where`` rows with
    ``COLUMN=VALUE``."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceError(f"{path}: labels file not found")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "path" not in rows[0] or "text" not in rows[0]:
        raise ReferenceError(f"{path}: needs columns 'path' and 'text'")
    if text_filter and text_filter not in rows[0]:
        raise ReferenceError(f"{path}: no column {text_filter!r}")
    col, _, val = (where or "").partition("=")
    if col and col not in rows[0]:
        raise ReferenceError(f"{path}: no column {col!r}")
    return [(path.parent / r["path"], r["text"]) for r in rows
            if r["text"].strip() and (not text_filter or r[text_filter].strip() == "1") and (not col or r[col] == val)]
