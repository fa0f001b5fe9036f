"""Transcript-aware processing: the user's transcript gives the words, the speakers, their
roles and the Q&A marker; the audio gives the times.

Stage functions:

* ``read_transcript(path, event_type)`` -> ``Transcript``: ``transcript_formats.py`` (the
  shapes it accepts are listed there).
* ``align_transcript(transcript, asr_words, config, diarization_turns)`` -> ``Alignment``: the
  transcript's tokens (lowercase letters and digits) against the ASR tokens with a
  Levenshtein alignment (``rapidfuzz``), a change of speaker being one more token on each
  side (transcript turns; diarized voices); matched runs are anchors and take the ASR words' times; stretches
  between anchors are interpolated by character length.  A stretch that would have to be
  spoken faster than ``max_tokens_per_s``, or more than ``max_edge_tokens`` tokens before
  the first or after the last anchor, is not in the audio: its tokens are dropped (a
  speaker who never speaks, a written statement).  ``asr_coverage`` is the share of ASR
  tokens matched: below ``min_asr_coverage`` the transcript does not belong to the audio.
* ``transcript_call(transcript, alignment, asr_words, diarization_turns, event_type)`` ->
  ``TranscriptResult``: segments (one per transcript sentence, ``text_source = transcript``;
  a turn's sentences tile it, and its outer edges follow the diarized voice: ``_fit_turns``),
  speakers (names, roles, affiliations from the transcript; each linked to the diarized
  voice it overlaps most, for the cross-call voice link), the ASR words after the transcript
  ends (``text_source = asr``, the operator's closing), and the places where the diarized
  voice disagrees with the transcript's speaker.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from pipelines.speech.audio import file_sha256
from pipelines.roles import assign_roles, assign_sections
from pipelines.speech.transcript_formats import Transcript, TranscriptError, read_transcript
from pipelines.speech.turns import MAX_PAUSE_S, assign_speakers, build_segments, split_sentences
from pipelines.types import Segment, SpeakerInfo, Turn, Word


class TranscriptStatus(str, Enum):
    NONE = "none"                      # the manifest row has no transcript
    ALIGNED = "aligned"                # speakers and text from the transcript
    UNLABELLED = "aligned_unlabelled"  # text from the transcript, speakers from diarization
    REJECTED = "rejected"              # not used (empty, unreadable, another call): ASR only


@dataclass(frozen=True)
class TranscriptConfig:
    min_asr_coverage: float = 0.5      # below: the transcript is not of this audio
    max_tokens_per_s: float = 8.0      # an interpolated stretch faster than this is not in the audio
    max_edge_tokens: int = 12          # unanchored tokens allowed before the first / after the last anchor
    min_tail_words: int = 3            # ASR words after the last anchor: the audio's own tail (the operator's closing)
    change_weight: int = 3             # a change of speaker counts as this many tokens in the alignment (see below)
    snap_s: float = 0.5                # a turn's first / last edge moves to its diarized voice's edge this close
    # without a transcript, diarized speech that no sentence covers (the ASR gave no words there) becomes a
    # segment with no text when at least this long (chosen on the calibration calls of transcript_real.py)
    untranscribed_min_s: float = 0.5


# -- alignment ----------------------------------------------------------------------------------

def tokens(text: str) -> list[str]:
    """Lowercase letters and digits, '%' read as 'percent'."""
    return re.findall(r"[a-z0-9]+", text.lower().replace("%", " percent ").replace("’", "").replace("'", ""))


@dataclass
class Alignment:
    start: np.ndarray          # (T,) time of each transcript token (NaN: not in the audio)
    end: np.ndarray
    anchored: np.ndarray       # (T,) bool: matched to an ASR token
    asr_matched: np.ndarray    # (A,) bool per ASR token
    asr_word: np.ndarray       # (A,) index of the ASR word of each ASR token
    transcript_coverage: float
    asr_coverage: float
    seconds: float

    def summary(self) -> str:
        return (f"{self.anchored.sum()} of {len(self.anchored)} transcript tokens anchored "
                f"({self.transcript_coverage:.0%}), {self.asr_coverage:.0%} of the ASR tokens matched")


CHANGE = "\x00"   # a change of speaker, on both sides of the alignment (no text gives this token)


def align_transcript(transcript: Transcript, asr_words: list[Word], config: TranscriptConfig = TranscriptConfig(),
                     turns: list[Turn] | None = None) -> Alignment:
    """Transcript tokens timed by the ASR tokens they match (a Levenshtein alignment over
    normalised tokens; runs of equal tokens are anchors), the rest interpolated.

    With the diarized ``turns``, a change of speaker is one more token on each side (between
    transcript turns of different speakers; between ASR words of different diarized voices).
    Where the text repeats itself (one sentence said by several speakers, or "thank you" in
    every turn) many alignments cost the same, and these tokens make the one that keeps each
    sentence in its speaker's turn the cheapest; where the ASR repeats a sentence that was
    said once (a Whisper repetition loop), they keep the next speaker's words from filling the
    repeats. A change weighs ``config.change_weight`` tokens: moving a word or two across a
    diarized boundary (which is often that far off) stays cheaper than keeping it, a
    sentence does not. They are never anchors."""
    from rapidfuzz.distance import Levenshtein

    t0 = time.perf_counter()
    ref, turn_of, ref_seq, ref_pos = [], [], [], []
    for i, turn in enumerate(transcript.turns):
        toks = tokens(turn.text)
        if turns and toks and ref and transcript.turns[turn_of[-1]].speaker != turn.speaker:
            ref_seq += [CHANGE] * config.change_weight
            ref_pos += [-1] * config.change_weight
        for tok in toks:
            ref_seq.append(tok)
            ref_pos.append(len(ref))
            ref.append(tok)
            turn_of.append(i)
    voices = [w.speaker for w in assign_speakers(asr_words, turns)] if turns else [""] * len(asr_words)
    hyp, hyp_word, hs, he, hyp_seq, hyp_pos = [], [], [], [], [], []
    for i, w in enumerate(asr_words):
        toks = tokens(w.word)
        if toks and hyp and voices[i] != voices[hyp_word[-1]]:
            hyp_seq += [CHANGE] * config.change_weight
            hyp_pos += [-1] * config.change_weight
        for k, tok in enumerate(toks):           # a word of several tokens shares its time evenly
            d = (w.end_s - w.start_s) / len(toks)
            hyp_seq.append(tok)
            hyp_pos.append(len(hyp))
            hyp.append(tok)
            hyp_word.append(i)
            hs.append(w.start_s + k * d)
            he.append(w.start_s + (k + 1) * d)
    n = len(ref)
    turn_of = np.array(turn_of, int)
    start, end = np.full(n, np.nan), np.full(n, np.nan)
    anchored = np.zeros(n, bool)
    matched = np.zeros(len(hyp), bool)
    for op in Levenshtein.opcodes(ref_seq, hyp_seq) if ref and hyp else []:
        if op.tag != "equal":
            continue
        pairs = [(ref_pos[op.src_start + k], hyp_pos[op.dest_start + k]) for k in range(op.src_end - op.src_start)]
        pairs = [(i, j) for i, j in pairs if i >= 0]
        if len(pairs) == 1 and len(ref[pairs[0][0]]) < 4:     # a lone short word matches anywhere
            continue
        for i, j in pairs:
            start[i], end[i], anchored[i], matched[j] = hs[j], he[j], True, True
    _interpolate(ref, start, end, anchored, config, turn_of)
    return Alignment(start, end, anchored, matched, np.array(hyp_word, int), float(anchored.mean()) if n else 0.0,
                     float(matched.mean()) if len(hyp) else 0.0, time.perf_counter() - t0)


def _interpolate(ref: list[str], start: np.ndarray, end: np.ndarray, anchored: np.ndarray, cfg: TranscriptConfig,
                 turn_of: np.ndarray) -> None:
    """Times for the unanchored tokens between anchors; stretches that cannot have been spoken
    there stay NaN.  Inside one turn a stretch is spread by character length; a stretch across
    turns keeps each end with its own anchor (the pause between turns belongs to nobody)."""
    idx = np.flatnonzero(anchored)
    if not len(idx):
        return
    step = 0.3                                # seconds per token where a stretch is pinned to one anchor
    gaps = [(-1, idx[0])] + list(zip(idx[:-1], idx[1:])) + [(idx[-1], len(ref))]
    for a, b in gaps:
        inner = np.arange(a + 1, b)
        if not len(inner):
            continue
        if a < 0 or b >= len(ref):           # before the first / after the last anchor
            if len(inner) <= cfg.max_edge_tokens:
                _pin(inner, end[a] if a >= 0 else start[b], step, a >= 0, start, end)
            continue
        t_a, t_b = end[a], start[b]
        span = max(t_b - t_a, 0.0)
        if turn_of[a] == turn_of[b] or turn_of[inner[0]] != turn_of[a] and turn_of[inner[-1]] != turn_of[b]:
            if len(inner) > 3 and len(inner) / max(span, 1e-6) > cfg.max_tokens_per_s:
                continue                      # not spoken here
            weights = np.array([len(ref[i]) + 1 for i in inner], float)
            edges = t_a + span * np.concatenate([[0], np.cumsum(weights)]) / weights.sum()
            start[inner], end[inner] = edges[:-1], edges[1:]
            continue
        pace = min(step, span / len(inner))
        head = inner[turn_of[inner] == turn_of[a]]
        tail = inner[turn_of[inner] == turn_of[b]]
        mid = inner[(turn_of[inner] != turn_of[a]) & (turn_of[inner] != turn_of[b])]
        _pin(head, t_a, pace, True, start, end)
        _pin(tail, t_b, pace, False, start, end)
        if len(mid):
            lo, hi = t_a + pace * len(head), t_b - pace * len(tail)
            if hi > lo and len(mid) / (hi - lo) <= cfg.max_tokens_per_s:
                edges = np.linspace(lo, hi, len(mid) + 1)
                start[mid], end[mid] = edges[:-1], edges[1:]


def _pin(tokens_: np.ndarray, edge: float, pace: float, forward: bool, start: np.ndarray, end: np.ndarray) -> None:
    """Place ``tokens_`` one ``pace`` each after (forward) or before ``edge``."""
    n = len(tokens_)
    if not n:
        return
    k = np.arange(n)
    if forward:
        start[tokens_], end[tokens_] = edge + k * pace, edge + (k + 1) * pace
    else:
        start[tokens_], end[tokens_] = np.maximum(0.0, edge - (n - k) * pace), np.maximum(0.0, edge - (n - k - 1) * pace)


# -- segments, speakers, checks --------------------------------------------------------------------

@dataclass
class TranscriptResult:
    status: TranscriptStatus
    segments: list[Segment]
    speakers: list[SpeakerInfo]
    voice_of: dict[str, str]            # transcript speaker label -> the diarized speaker it overlaps most
    disagreements: list[dict] = field(default_factory=list)
    turns_not_spoken: int = 0
    tail_s: float = 0.0                 # seconds of ASR speech after the transcript ends
    reason: str = ""


def _words_of_turns(transcript: Transcript, al: Alignment) -> list[tuple[int, Word]]:
    """Transcript words with times: (turn index, Word); words of dropped tokens are left out."""
    out = []
    k = 0
    for ti, turn in enumerate(transcript.turns):
        for raw in turn.text.split():
            n = len(tokens(raw))
            if n == 0:                        # punctuation only: glue to the previous word
                if out and out[-1][0] == ti:
                    w = out[-1][1]
                    out[-1] = (ti, Word(w.word + raw, w.start_s, w.end_s, w.score))
                continue
            s, e = al.start[k:k + n], al.end[k:k + n]
            if not np.isnan(s).all():
                score = float(al.anchored[k:k + n].mean())
                out.append((ti, Word(raw, float(np.nanmin(s)), float(np.nanmax(e)), score)))
            k += n
    return out


def transcript_call(transcript: Transcript, al: Alignment, asr_words: list[Word], turns: list[Turn],
                    event_type: str, config: TranscriptConfig = TranscriptConfig()) -> TranscriptResult:
    """Segments and speakers of a call from its aligned transcript (see the module doc)."""
    tw = _words_of_turns(transcript, al)
    last = int(al.asr_word[al.asr_matched].max()) if al.asr_matched.any() else -1
    tail = asr_words[last + 1:]
    if len(tail) < config.min_tail_words:
        tail = []
    tail_s = float(sum(w.end_s - w.start_s for w in tail))
    if not transcript.labelled:
        words = assign_speakers([w for _, w in tw] + tail, turns)
        segments = [_with_source(s, "transcript") for s in build_segments(words)]
        _fit_diarized(segments, turns, config.snap_s)
        speakers = assign_roles(segments, event_type)
        return TranscriptResult(TranscriptStatus.UNLABELLED, assign_sections(segments, speakers), speakers, {},
                                tail_s=tail_s)
    names = list(dict.fromkeys(t.speaker for t in transcript.turns))
    label = {name: f"T{i:02d}" for i, name in enumerate(names)}
    spoken = {ti for ti, _ in tw}
    not_spoken = len(transcript.turns) - len(spoken)
    segments: list[Segment] = []
    turn_of: list[int] = []                    # the transcript turn of each segment
    for ti, turn in enumerate(transcript.turns):
        ws = [w for i, w in tw if i == ti]
        for sentence in split_sentences(ws):
            sid = len(segments)
            turn_of.append(ti)
            words = [Word(w.word, w.start_s, w.end_s, w.score, label[turn.speaker], sid) for w in sentence]
            segments.append(Segment(sid, label[turn.speaker], words[0].start_s, words[-1].end_s,
                                    " ".join(w.word for w in words), float(np.mean([w.score for w in words])),
                                    "qa" if turn.qa else "prepared", words, text_source="transcript"))
    voice_of, disagreements = _link_voices(segments, turns)
    _fit_turns(segments, turn_of, turns, voice_of, config.snap_s)
    # the audio after the transcript ends: ASR words, with the diarized voices mapped back to transcript speakers
    if tail:
        back = {}
        for t_lab, d_lab in voice_of.items():
            back.setdefault(d_lab, t_lab)
        tail_segments = build_segments(assign_speakers(tail, turns))
        _fit_diarized(tail_segments, turns, config.snap_s)
        for s in tail_segments:
            sid = len(segments)
            spk = back.get(s.speaker, s.speaker)
            segments.append(Segment(sid, spk, s.start_s, s.end_s, s.text, s.asr_confidence, "qa" if segments and
                                    segments[-1].section == "qa" else "prepared",
                                    [Word(w.word, w.start_s, w.end_s, w.score, spk, sid) for w in s.words],
                                    text_source="asr"))
    _renumber(segments)
    speakers = _speakers(transcript, label, segments, event_type)
    if not transcript.has_qa_marker:
        segments = assign_sections(segments, speakers)
    return TranscriptResult(TranscriptStatus.ALIGNED, segments, speakers, voice_of, disagreements, not_spoken, tail_s)


def _fit_turns(segments: list[Segment], turn_of: list[int], turns: list[Turn], voice_of: dict[str, str],
               snap_s: float) -> None:
    """Segment times from word times, made into turns (in place).

    A transcript turn is one speaker holding the floor, so its sentences tile it: each ends
    where the next begins (the pause between two sentences is the speaker's, as in a
    turn-level reference). Word times from the ASR are good to a few tenths of a second; the
    diarizer's turn edges come from frame-level speaker activity. So the turn's first start and
    last end move out to the nearest start / end of a diarized turn of the speaker's own voice
    when one is within ``snap_s`` (turns of two speakers may then overlap, where the diarizer
    heard both); never inwards, so every word stays inside its segment. Word times are not
    changed."""
    starts: dict[str, list[float]] = {}
    ends: dict[str, list[float]] = {}
    for t in turns:
        starts.setdefault(t.speaker, []).append(t.start_s)
        ends.setdefault(t.speaker, []).append(t.end_s)

    def nearest(edges: list[float] | None, x: float) -> float:
        if not edges:
            return x
        e = np.asarray(edges)
        i = int(np.argmin(np.abs(e - x)))
        return float(e[i]) if abs(e[i] - x) <= snap_s else x

    k = 0
    while k < len(segments):
        j = k
        while j + 1 < len(segments) and turn_of[j + 1] == turn_of[k]:
            j += 1
        for a, b in zip(segments[k:j], segments[k + 1:j + 1]):
            a.end_s = max(a.end_s, b.start_s)
        voice = voice_of.get(segments[k].speaker)
        first, last = segments[k], segments[j]
        start, end = nearest(starts.get(voice), first.start_s), nearest(ends.get(voice), last.end_s)
        first.start_s = min(first.start_s, start)
        last.end_s = max(last.end_s, end)
        k = j + 1


def _fit_diarized(segments: list[Segment], turns: list[Turn], snap_s: float) -> None:
    """``_fit_turns`` for segments labelled with the diarized voices (no transcript turns): a
    turn is a run of one voice's consecutive segments with pauses under ``MAX_PAUSE_S``."""
    turn_of, k = [], 0
    for i, s in enumerate(segments):
        if i and (s.speaker != segments[i - 1].speaker or s.start_s - segments[i - 1].end_s >= MAX_PAUSE_S):
            k += 1
        turn_of.append(k)
    _fit_turns(segments, turn_of, turns, {s.speaker: s.speaker for s in segments}, snap_s)


def _untranscribed(segments: list[Segment], turns: list[Turn], min_s: float) -> list[Segment]:
    """Segments with no text for the diarized speech that no segment covers and that lasts at
    least ``min_s``: speech the ASR gave no words for (a stretch it skipped, a short reply). Their
    voice is scored like any segment's; their text tones are empty."""
    covered = sorted((s.start_s, s.end_s) for s in segments)
    out: list[Segment] = []
    for t in turns:
        pieces, a = [], t.start_s
        for s0, s1 in covered:
            if s1 <= a or s0 >= t.end_s:
                continue
            pieces.append((a, s0))
            a = max(a, s1)
        pieces.append((a, t.end_s))
        out += [Segment(-1, t.speaker, x, y, "", 0.0) for x, y in pieces if y - x >= min_s]
    return out


def _renumber(segments: list[Segment]) -> list[Segment]:
    """Sorted by start, ``segment_id`` (and each word's) set to the position."""
    segments.sort(key=lambda s: s.start_s)
    for i, s in enumerate(segments):
        s.segment_id = i
        for w in s.words:
            w.segment_id = i
    return segments


def _with_source(s: Segment, source: str) -> Segment:
    s.text_source = source
    return s


def _speakers(transcript: Transcript, label: dict[str, str], segments: list[Segment], event_type: str) -> list[SpeakerInfo]:
    """Names, roles and affiliations from the transcript; a speaker whose role the transcript does
    not give takes the role speechfin's heuristics find; diarized speakers of the tail keep theirs."""
    first, affiliation = {}, {}
    for t in transcript.turns:
        first.setdefault(t.speaker, t)
        if t.affiliation:
            affiliation.setdefault(t.speaker, t.affiliation)
    heuristic = {s.speaker: s.role for s in assign_roles(segments, event_type)}
    talk: dict[str, list[float]] = {}
    for s in segments:
        talk.setdefault(s.speaker, []).append(s.duration_s)
    out = []
    for name, lab in label.items():
        if lab not in talk:
            continue                          # in the transcript, never heard in the audio
        t = first[name]
        out.append(SpeakerInfo(lab, t.role or heuristic.get(lab, "unknown"), name, "", float(sum(talk[lab])),
                               len(talk[lab]), affiliation=affiliation.get(name, ""), title=t.title))
    for spk in talk:
        if spk not in label.values():
            out.append(SpeakerInfo(spk, heuristic.get(spk, "unknown"), "", "", float(sum(talk[spk])), len(talk[spk])))
    return out


def _link_voices(segments: list[Segment], turns: list[Turn]) -> tuple[dict[str, str], list[dict]]:
    """Each transcript speaker's diarized voice (most overlap), and the stretches where the
    diarized voice of a word is another speaker's voice."""
    if not turns:
        return {}, []
    words = [w for s in segments for w in s.words]
    diar = assign_speakers([Word(w.word, w.start_s, w.end_s, w.score) for w in words], turns)
    overlap: dict[str, dict[str, float]] = {}
    for w, d in zip(words, diar):
        overlap.setdefault(w.speaker, {}).setdefault(d.speaker, 0.0)
        overlap[w.speaker][d.speaker] += w.end_s - w.start_s
    voice_of = {t: max(v, key=v.get) for t, v in overlap.items()}
    out: list[dict] = []
    for w, d in zip(words, diar):
        if voice_of.get(w.speaker) == d.speaker:
            continue
        if out and out[-1]["transcript_speaker"] == w.speaker and out[-1]["diarized_speaker"] == d.speaker and \
                w.start_s - out[-1]["end_s"] < 1.0:
            out[-1]["end_s"], out[-1]["n_words"] = w.end_s, out[-1]["n_words"] + 1
        else:
            out.append({"start_s": w.start_s, "end_s": w.end_s, "transcript_speaker": w.speaker,
                        "diarized_speaker": d.speaker, "n_words": 1})
    return voice_of, out


# -- the flow's stage ---------------------------------------------------------------------------------

@dataclass
class CallSpeech:
    """What the speakers-and-sections stage gives the rest of the flow."""

    segments: list[Segment]
    speakers: list[SpeakerInfo]
    embeddings: dict[str, np.ndarray]        # per speaker label of ``speakers`` (for the cross-call voice link)
    transcript: dict | None = None           # the ``transcripts`` row, if the manifest names a transcript
    disagreements: list[dict] = field(default_factory=list)
    warning: str = ""


def segments_from_asr(asr_words: list[Word], turns: list[Turn], event_type: str, speakers_hint: str = "",
                      config: TranscriptConfig = TranscriptConfig()) -> tuple[list[Segment], list[SpeakerInfo]]:
    """The speakers-and-sections stage without a transcript: diarized words -> sentences (made
    into turns: ``_fit_diarized``), plus the diarized speech with no words (``_untranscribed``)
    -> roles and sections."""
    from pipelines.roles import parse_speakers_hint

    segments = build_segments(assign_speakers(asr_words, turns))
    _fit_diarized(segments, turns, config.snap_s)
    segments = _renumber(segments + _untranscribed(segments, turns, config.untranscribed_min_s))
    speakers = assign_roles(segments, event_type, parse_speakers_hint(speakers_hint))
    return assign_sections(segments, speakers), speakers


def call_speech(asr_words: list[Word], turns: list[Turn], embeddings: dict[str, np.ndarray], event_type: str,
                speakers_hint: str = "", transcript_path: str = "",
                config: TranscriptConfig = TranscriptConfig()) -> CallSpeech:
    """Segments and speakers of a call: from its transcript when the manifest names one that
    belongs to the audio, else (and as the fallback, with a warning) from ASR and diarization."""
    if not transcript_path:
        return CallSpeech(*segments_from_asr(asr_words, turns, event_type, speakers_hint, config), embeddings)
    t0 = time.perf_counter()
    row = {"path": transcript_path, "sha256": file_sha256(Path(transcript_path)),
           "status": TranscriptStatus.REJECTED.value,
           "reason": "", "shape": "", "encoding": "", "n_turns": 0, "n_speakers": 0, "transcript_coverage": float("nan"),
           "asr_coverage": float("nan"), "turns_not_spoken": 0, "tail_s": 0.0, "seconds": 0.0}
    try:
        tr = read_transcript(transcript_path, event_type)
        al = align_transcript(tr, asr_words, config, turns)
        row |= {"shape": tr.shape, "encoding": tr.encoding, "n_turns": len(tr.turns),
                "n_speakers": len({t.speaker for t in tr.turns}) if tr.labelled else 0,
                "transcript_coverage": al.transcript_coverage, "asr_coverage": al.asr_coverage}
        if al.asr_coverage < config.min_asr_coverage:
            raise TranscriptError(f"{transcript_path}: does not match the audio: {al.asr_coverage:.0%} of the "
                                  f"transcribed words are in it (at least {config.min_asr_coverage:.0%} needed); "
                                  f"is it the transcript of another call?")
        res = transcript_call(tr, al, asr_words, turns, event_type, config)
    except TranscriptError as exc:
        segments, speakers = segments_from_asr(asr_words, turns, event_type, speakers_hint, config)
        row |= {"reason": str(exc), "seconds": time.perf_counter() - t0}
        return CallSpeech(segments, speakers, embeddings, row, [], f"transcript not used, ASR instead: {exc}")
    row |= {"status": res.status.value, "turns_not_spoken": res.turns_not_spoken, "tail_s": res.tail_s,
            "seconds": time.perf_counter() - t0,
            "reason": "; ".join(x for x in (
                f"{res.turns_not_spoken} turn(s) not found in the audio" if res.turns_not_spoken else "",
                f"{res.tail_s:.1f} s of speech after the transcript ends (ASR text)" if res.tail_s else "") if x)}
    emb = {spk: embeddings[d] for spk, d in res.voice_of.items() if d in embeddings}
    emb |= {s.speaker: embeddings[s.speaker] for s in res.speakers if s.speaker in embeddings and s.speaker not in emb}
    return CallSpeech(res.segments, res.speakers, emb, row, res.disagreements, "")
