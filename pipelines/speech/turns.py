"""Stage 5: word-level speaker assignment, merged into speaker turns split at sentences."""

from __future__ import annotations

import bisect
import re

from pipelines.speech.asr import mean_confidence
from pipelines.types import Segment, Turn, Word

_ABBREV = {"mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "inc.", "corp.", "co.", "ltd.", "jr.", "sr.", "no.", "etc.", "e.g.", "i.e."}
_SENT_END = re.compile(r"[.?!][\"')\]]*$")


def assign_speakers(words: list[Word], turns: list[Turn], max_gap_s: float = 1.0) -> list[Word]:
    """Give each word the speaker whose turns overlap it most.

    A word that overlaps no turn takes the nearest turn within ``max_gap_s``, else the
    previous word's speaker (``"UNKNOWN"`` at the very start).
    """
    turns = sorted(turns, key=lambda t: t.start_s)
    starts = [t.start_s for t in turns]
    out: list[Word] = []
    prev = "UNKNOWN"
    for w in words:
        best, best_ov = None, 0.0
        i = bisect.bisect_right(starts, w.end_s)
        j = i - 1
        while j >= 0 and j >= i - 50:  # turns starting before the word ends
            t = turns[j]
            ov = min(w.end_s, t.end_s) - max(w.start_s, t.start_s)
            if ov > best_ov:
                best, best_ov = t.speaker, ov
            j -= 1
        if best is None and turns:
            mid = 0.5 * (w.start_s + w.end_s)
            near = min(turns[max(0, i - 2) : i + 1] or turns, key=lambda t: min(abs(mid - t.start_s), abs(mid - t.end_s)))
            if min(abs(mid - near.start_s), abs(mid - near.end_s)) <= max_gap_s:
                best = near.speaker
        prev = best or prev
        out.append(Word(w.word, w.start_s, w.end_s, w.score, speaker=prev))
    return out


def is_sentence_end(token: str) -> bool:
    t = token.lower()
    if t in _ABBREV or re.fullmatch(r"(?:[a-z]\.)+", t):
        return False
    return bool(_SENT_END.search(token))


def _smooth_runs(words: list[Word], min_words: int = 3, min_s: float = 1.0) -> list[list[Word]]:
    """Split a sentence into same-speaker runs; a run shorter than ``min_words`` words and
    ``min_s`` seconds is diarization jitter at a turn change and joins its neighbour."""
    runs: list[list[Word]] = []
    for w in words:
        if runs and runs[-1][-1].speaker == w.speaker:
            runs[-1].append(w)
        else:
            runs.append([w])
    changed = True
    while changed and len(runs) > 1:
        changed = False
        for i, r in enumerate(runs):
            if len(r) < min_words and r[-1].end_s - r[0].start_s < min_s:
                j = i - 1 if i > 0 else i + 1
                spk = runs[j][0].speaker
                merged = [Word(w.word, w.start_s, w.end_s, w.score, spk) for w in r]
                runs[j] = runs[j] + merged if j < i else merged + runs[j]
                del runs[i]
                changed = True
                break
    return runs


def split_sentences(words: list[Word], max_pause_s: float = float("inf")) -> list[list[Word]]:
    """The word stream cut after sentence-final punctuation, and at pauses longer than ``max_pause_s``."""
    sentences: list[list[Word]] = [[]]
    for w in words:
        if sentences[-1] and w.start_s - sentences[-1][-1].end_s > max_pause_s:
            sentences.append([])
        sentences[-1].append(w)
        if is_sentence_end(w.word):
            sentences.append([])
    return [s for s in sentences if s]


MAX_PAUSE_S = 3.0   # a longer pause ends a sentence (and a speaker's turn)


def build_segments(words: list[Word], max_pause_s: float = MAX_PAUSE_S) -> list[Segment]:
    """Split the word stream into sentences (sentence-final punctuation, or pauses longer
    than ``max_pause_s``), then each sentence at speaker changes, so a segment is one
    speaker's sentence (or part of one).  Sets ``Word.segment_id``."""
    segments: list[Segment] = []
    for sentence in split_sentences(words, max_pause_s):
        for run in _smooth_runs(sentence):
            sid = len(segments)
            ws = [Word(w.word, w.start_s, w.end_s, w.score, w.speaker, sid) for w in run]
            segments.append(Segment(sid, ws[0].speaker, ws[0].start_s, ws[-1].end_s, " ".join(w.word for w in ws),
                                    mean_confidence(ws), words=ws))
    return segments
