"""Question-answer pairs of one call's Q&A section.

Inputs (pandas):
  segments: segment_id, speaker, role, section ('prepared'|'qa'), start_s, end_s, text
  emotions: segment_id, tone, text_tone, fused_tone, skip_reason ('' when scored)
  speakers: speaker, role, name, voice_id

Rules of ``qa_pairs``:
- Only ``section == 'qa'`` segments are used, sorted by start_s, then segment_id.  Consecutive
  segments of one speaker form a turn.
- A turn's kind comes from its role: asker (``QAConfig.asker_roles``: analyst, journalist),
  answer (``QAConfig.answer_roles``: executive, chair), operator, or other ('unknown' and any
  other role).  Other turns are skipped over everywhere: never part of a question or of an
  answer, and they end neither.
- A question is an asker turn.  Turns of the same asker with nothing but skipped turns
  between them (no answer turn yet) are one question.
- The answer is every following answer turn up to the next asker turn (a new question, also a
  follow-up by the same asker once an answer has started) or the next operator turn.  Answer
  turns with no open question (e.g. after an operator turn) belong to no pair.
- status (``QAStatus``): 'answered' (at least one answer turn), 'unanswered' (the next question
  or operator turn came first), 'unanswered_end_of_call' (nothing but skipped turns after the
  question).

Columns (one row per question, in order of the call's questions):
  pair_id                 0, 1, ... in order of the questions
  asker_speaker, asker_role, asker_name, asker_voice_id
  answerer_speaker        the answer-role speaker with the most answer time ('' if unanswered;
                          ties go to the first to answer); answerer_role, answerer_name,
                          answerer_voice_id likewise ('' if unanswered)
  answerers, n_answerers  answer speakers '|'-joined in order of first answer, and their number
  q_start_s, q_end_s      first start and last end of the question's segments
  a_start_s, a_end_s      the same for the answer (NaN if unanswered)
  latency_s               a_start_s - q_end_s; negative when the answer starts before the question
                          ends (overlap), not clipped
  answer_s                answer speech seconds: sum of end_s - start_s over the answer segments
  answer_words            whitespace-separated words of the answer text
  q_voice_tone, q_text_tone, q_fused_tone, a_voice_tone, a_text_tone, a_fused_tone
                          duration-weighted means of tone / text_tone / fused_tone over the
                          question's (answer's) scored segments; a segment is scored when its
                          emotions row has skip_reason '' (no row: not scored); NaN values of a
                          measure are left out; NaN if nothing is left
  answer_tone_change      a_voice_tone minus the answerer's duration-weighted mean voice tone over
                          their scored prepared-section segments of this call (NaN if none)
  non_answer              the answer text matches a phrase of ``NON_ANSWER_PHRASES``
  non_answer_phrases      matched phrases, '|'-joined in list order ('' if none)
  non_answer_categories   their categories, '|'-joined, unique, in list order ('' if none)
  answered                status == 'answered'
  status                  a ``QAStatus`` value

Non-answers follow the idea of Gow, Larcker & Zakolyukina (2021), "Non-answers during
conference calls", Journal of Accounting Research 59(4): a phrase list in three categories
(refusal, inability, deferral).  Text and phrases are normalised alike (``normalise_text``):
lowercase, curly and other apostrophes to "'", contractions expanded ("don't" -> "do not",
"can't"/"cannot" -> "can not", "won't" -> "will not", "we'll" -> "we will", "aren't" -> "are not",
...), whitespace collapsed; a phrase matches only at word boundaries.  Phrases are reported as
listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache

import numpy as np
import pandas as pd

from ser_models.call_tone import weighted_mean
from ser_models.people import TONES

ASKER_ROLES = ("analyst", "journalist")
ANSWER_ROLES = ("executive", "chair")
OPERATOR = "operator"


class QAStatus(str, Enum):
    ANSWERED = "answered"
    UNANSWERED = "unanswered"
    UNANSWERED_END_OF_CALL = "unanswered_end_of_call"


# (phrase, category), in the spirit of Gow, Larcker & Zakolyukina (2021), Table 2.
NON_ANSWER_PHRASES: tuple[tuple[str, str], ...] = (
    ("we don't provide guidance", "refusal"),
    ("we don't give guidance", "refusal"),
    ("not going to provide guidance", "refusal"),
    ("we don't disclose", "refusal"),
    ("we haven't disclosed", "refusal"),
    ("not going to disclose", "refusal"),
    ("not going to comment", "refusal"),
    ("won't comment", "refusal"),
    ("can't comment", "refusal"),
    ("we don't comment", "refusal"),
    ("decline to comment", "refusal"),
    ("we don't break out", "refusal"),
    ("not going to break out", "refusal"),
    ("not going to get into", "refusal"),
    ("prefer not to", "refusal"),
    ("not in a position to", "refusal"),
    ("too early to say", "inability"),
    ("too early to tell", "inability"),
    ("too soon to say", "inability"),
    ("hard to say", "inability"),
    ("difficult to say", "inability"),
    ("hard to predict", "inability"),
    ("difficult to predict", "inability"),
    ("can't predict", "inability"),
    ("don't know yet", "inability"),
    ("don't have that information", "inability"),
    ("don't have that in front of me", "inability"),
    ("talk about that later", "deferral"),                 # also "we'll talk about that later"
    ("later in the call", "deferral"),
    ("offline", "deferral"),
    ("get back to you", "deferral"),
    ("come back to you", "deferral"),
    ("follow up with you", "deferral"),
)

COLUMNS: dict[str, str] = {
    "pair_id": "int64",
    **{f"asker_{k}": "object" for k in ("speaker", "role", "name", "voice_id")},
    **{f"answerer_{k}": "object" for k in ("speaker", "role", "name", "voice_id")},
    "answerers": "object", "n_answerers": "int64",
    "q_start_s": "float64", "q_end_s": "float64", "a_start_s": "float64", "a_end_s": "float64",
    "latency_s": "float64", "answer_s": "float64", "answer_words": "int64",
    **{f"{p}_{m}_tone": "float64" for p in ("q", "a") for m in TONES},
    "answer_tone_change": "float64",
    "non_answer": "bool", "non_answer_phrases": "object", "non_answer_categories": "object",
    "answered": "bool", "status": "object",
}

_APOSTROPHES = re.compile("[\u2019\u2018\u02bc\u0060\u00b4\u2032]")
_CONTRACTIONS = (          # expanded, in this order: "aren't going to" still matches "not going to"
    (r"\bcan't\b|\bcannot\b", "can not"), (r"\bwon't\b", "will not"), (r"n't\b", " not"),
    (r"'ll\b", " will"), (r"'re\b", " are"), (r"'ve\b", " have"),
)


@dataclass(frozen=True)
class QAConfig:
    asker_roles: tuple[str, ...] = ASKER_ROLES
    answer_roles: tuple[str, ...] = ANSWER_ROLES
    non_answer_phrases: tuple[tuple[str, str], ...] = field(default=NON_ANSWER_PHRASES)


@dataclass
class _Turn:
    speaker: str
    role: str
    rows: pd.DataFrame           # the turn's segments, with the emotion columns


@dataclass
class _Pair:
    question: list[_Turn]
    answer: list[_Turn] = field(default_factory=list)
    status: QAStatus = QAStatus.UNANSWERED_END_OF_CALL


def normalise_text(text: str) -> str:
    """Lowercase, apostrophes unified, contractions expanded, whitespace collapsed."""
    t = _APOSTROPHES.sub("'", str(text).lower())
    for pattern, repl in _CONTRACTIONS:
        t = re.sub(pattern, repl, t)
    return " ".join(t.split())


@lru_cache(maxsize=8)
def _phrase_patterns(phrases: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str, re.Pattern], ...]:
    out = []
    for phrase, category in phrases:
        body = r"\s+".join(re.escape(w) for w in normalise_text(phrase).split())
        out.append((phrase, category, re.compile(rf"(?<!\w){body}(?!\w)")))
    return tuple(out)


def find_non_answers(text: str,
                     phrases: tuple[tuple[str, str], ...] = NON_ANSWER_PHRASES) -> tuple[list[str], list[str]]:
    """Matched phrases and their unique categories, both in list order."""
    norm = normalise_text(text)
    hits = [(p, c) for p, c, rx in _phrase_patterns(tuple(phrases)) if rx.search(norm)]
    return [p for p, _ in hits], list(dict.fromkeys(c for _, c in hits))


def _weighted(rows: pd.DataFrame, column: str) -> float:
    """Duration-weighted mean of ``column`` over scored rows with a value (NaN if none)."""
    scored = rows[rows["scored"]]
    return weighted_mean(scored[column], scored["w"].clip(lower=0.0))


def _prepare(segments: pd.DataFrame, emotions: pd.DataFrame) -> pd.DataFrame:
    emo = emotions.reindex(columns=["segment_id", "skip_reason", *TONES.values()]).copy()
    emo["skip_reason"] = emo["skip_reason"].fillna("").astype(str)
    df = segments.merge(emo, on="segment_id", how="left")
    df["scored"] = df["skip_reason"].eq("")               # no emotions row: NaN -> not scored
    df["w"] = (df["end_s"] - df["start_s"]).astype(float)
    df["speaker"] = df["speaker"].astype(str)
    df["role"] = df["role"].fillna("unknown").astype(str)
    df["text"] = df["text"].fillna("").astype(str)
    return df.sort_values(["start_s", "segment_id"], kind="mergesort").reset_index(drop=True)


def _turns(qa: pd.DataFrame) -> list[_Turn]:
    new_turn = qa["speaker"].ne(qa["speaker"].shift())
    return [_Turn(str(g["speaker"].iat[0]), str(g["role"].iat[0]), g) for _, g in qa.groupby(new_turn.cumsum())]


def _pairs(turns: list[_Turn], cfg: QAConfig) -> list[_Pair]:
    pairs: list[_Pair] = []
    open_pair: _Pair | None = None
    for turn in turns:
        if turn.role in cfg.asker_roles:
            if open_pair is not None and not open_pair.answer and open_pair.question[-1].speaker == turn.speaker:
                open_pair.question.append(turn)
                continue
            if open_pair is not None and not open_pair.answer:
                open_pair.status = QAStatus.UNANSWERED
            open_pair = _Pair([turn])
            pairs.append(open_pair)
        elif turn.role in cfg.answer_roles and open_pair is not None:
            open_pair.answer.append(turn)
            open_pair.status = QAStatus.ANSWERED
        elif turn.role == OPERATOR and open_pair is not None:
            if not open_pair.answer:
                open_pair.status = QAStatus.UNANSWERED
            open_pair = None
    return pairs


def _lookup(speakers: pd.DataFrame) -> dict[str, dict[str, str]]:
    sp = speakers.reindex(columns=["speaker", "name", "voice_id"]).fillna("").astype(str)
    return {r.speaker: {"name": r.name, "voice_id": r.voice_id} for r in sp.drop_duplicates("speaker").itertuples()}


def _answerers(answer: list[_Turn]) -> tuple[list[str], dict[str, float], dict[str, str]]:
    """Answer speakers in order of first answer, their answer seconds, and their roles."""
    order: list[str] = []
    secs: dict[str, float] = {}
    roles: dict[str, str] = {}
    for t in answer:
        if t.speaker not in secs:
            order.append(t.speaker)
            secs[t.speaker] = 0.0
            roles[t.speaker] = t.role
        secs[t.speaker] += float(t.rows["w"].sum())
    return order, secs, roles


def _row(pair_id: int, pair: _Pair, prepared: pd.DataFrame, people: dict[str, dict[str, str]],
         cfg: QAConfig) -> dict:
    q = pd.concat([t.rows for t in pair.question])
    a = pd.concat([t.rows for t in pair.answer]) if pair.answer else q.iloc[:0]
    asker = pair.question[0]
    order, secs, roles = _answerers(pair.answer)
    top = max(order, key=lambda s: secs[s]) if order else ""    # max keeps the first of ties
    none = {"name": "", "voice_id": ""}
    phrases, categories = find_non_answers(" ".join(a["text"]), cfg.non_answer_phrases) if len(a) else ([], [])
    row = {"pair_id": pair_id,
           "asker_speaker": asker.speaker, "asker_role": asker.role,
           "asker_name": people.get(asker.speaker, none)["name"],
           "asker_voice_id": people.get(asker.speaker, none)["voice_id"],
           "answerer_speaker": top, "answerer_role": roles.get(top, ""),
           "answerer_name": people.get(top, none)["name"], "answerer_voice_id": people.get(top, none)["voice_id"],
           "answerers": "|".join(order), "n_answerers": len(order),
           "q_start_s": float(q["start_s"].min()), "q_end_s": float(q["end_s"].max()),
           "a_start_s": float(a["start_s"].min()) if len(a) else np.nan,
           "a_end_s": float(a["end_s"].max()) if len(a) else np.nan,
           "answer_s": float(a["w"].sum()), "answer_words": int(sum(len(t.split()) for t in a["text"])),
           **{f"q_{m}_tone": _weighted(q, c) for m, c in TONES.items()},
           **{f"a_{m}_tone": _weighted(a, c) for m, c in TONES.items()},
           "non_answer": bool(phrases), "non_answer_phrases": "|".join(phrases),
           "non_answer_categories": "|".join(categories),
           "answered": pair.status is QAStatus.ANSWERED, "status": pair.status.value}
    row["latency_s"] = row["a_start_s"] - row["q_end_s"]
    base = _weighted(prepared[prepared["speaker"] == top], "tone") if top else np.nan
    row["answer_tone_change"] = row["a_voice_tone"] - base
    return row


def qa_pairs(segments: pd.DataFrame, emotions: pd.DataFrame, speakers: pd.DataFrame,
             config: QAConfig = QAConfig()) -> pd.DataFrame:
    """One row per question of the call's Q&A section (columns and rules: module docstring)."""
    df = _prepare(segments, emotions)
    qa = df[df["section"] == "qa"].reset_index(drop=True)
    prepared = df[df["section"] == "prepared"]
    people = _lookup(speakers)
    rows = [_row(i, p, prepared, people, config) for i, p in enumerate(_pairs(_turns(qa), config))]
    return pd.DataFrame(rows, columns=list(COLUMNS)).astype(COLUMNS)
