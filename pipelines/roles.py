"""Stage 6: speaker roles and call sections.

Roles come from what people say and how much they talk:

* earnings calls: the *operator* says "our next question comes from ...", "thank you for
  standing by", "welcome to the ... conference call"; *analysts* are introduced by the
  operator or introduce themselves ("this is Jane Doe from Goldman"), and ask questions;
  *executives* are the others with substantial talk time.
* press conferences: the *chair* talks most (opening statement and every answer);
  *journalists* introduce themselves ("Howard Schneider with Reuters") and ask questions;
  a *moderator* who only calls on people ("Howard.", "Okay. Jeanna.") is the *operator*.

Sections: ``prepared`` until the first question-and-answer cue (an operator announcing
questions, or the first analyst/journalist turn after the opening), then ``qa``.

``speakers_hint`` overrides: ``"5"`` (number of speakers) or ``"Name (role); Name (role); ..."``
in order of first appearance (the count of entries is the number of speakers).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from pipelines.types import Segment, SpeakerInfo

ROLES = {"operator", "executive", "analyst", "chair", "journalist", "unknown"}
EVENT_TYPES = {"earnings_call", "press_conference"}

_OPERATOR = re.compile(
    r"(next question|first question|our question|comes from the line|question comes from|open (?:up )?the (?:line|floor)"
    r"|standing by|conference call|instructions|press star|star one|question-and-answer session|q&a session"
    r"|this concludes|you may now disconnect|i would now like to turn|i will now turn|please go ahead)", re.I)
_QA_START = re.compile(r"(question-and-answer|q&a|take (?:your|some) questions|open (?:it )?up for questions|first question"
                       r"|happy to take|glad to take|questions)", re.I)
_NAME = r"([A-Z][a-z'\-]+(?: [A-Z][a-z'\-]+){1,2})"
# "Howard Schneider with Reuters", "this is Jane Doe from Goldman", "Steve Liesman, CNBC."
_SELF_INTRO = re.compile(
    rf"^(?i:(?:hi|hello|yes|thanks|thank you|good afternoon|good morning)[,.!]?\s+)?(?i:this is |it's |i'm |my name is )?{_NAME}"
    r"(?: with | from | at | of |, (?=[A-Z][\w&.\- ]{1,40}[.!]?$))")
_NOT_NAMES = {"after", "last", "go", "thank", "thanks", "good", "so", "and", "but", "well", "yes", "the", "our",
              "this", "that", "we", "i", "let", "okay", "great", "first", "next", "chair", "mr", "ms", "mrs"}


@dataclass(frozen=True)
class SpeakerHint:
    num_speakers: int | None
    entries: tuple[tuple[str, str], ...]  # (name, role) in order of first appearance


class HintError(ValueError):
    pass


def parse_speakers_hint(text: str | None) -> SpeakerHint:
    """Parse the manifest's ``speakers_hint`` column (see module doc)."""
    text = (text or "").strip()
    if not text:
        return SpeakerHint(None, ())
    if text.isdigit():
        n = int(text)
        if n < 1:
            raise HintError(f"speakers_hint {text!r}: need at least one speaker")
        return SpeakerHint(n, ())
    entries = []
    for part in [p.strip() for p in text.split(";") if p.strip()]:
        m = re.fullmatch(r"(.*?)\s*\((\w+)\)", part)
        name, role = (m.group(1).strip(), m.group(2).lower()) if m else (part, "")
        if role and role not in ROLES:
            raise HintError(f"speakers_hint {text!r}: unknown role {role!r} (use {', '.join(sorted(ROLES))})")
        if name.lower() in ROLES and not role:
            name, role = "", name.lower()
        entries.append((name, role))
    return SpeakerHint(len(entries), tuple(entries))


def _is_question(text: str) -> bool:
    return "?" in text


def find_name(texts: list[str]) -> str:
    """A self-introduction in the first sentences of a speaker ("Howard Schneider with Reuters")."""
    for t in texts[:3]:
        m = _SELF_INTRO.search(t.strip())
        if m and not any(w.lower() in _NOT_NAMES for w in m.group(1).split()):
            return m.group(1)
    return ""


def assign_roles(segments: list[Segment], event_type: str, hint: SpeakerHint = SpeakerHint(None, ())) -> list[SpeakerInfo]:
    """Stage function: one :class:`SpeakerInfo` per speaker."""
    by: dict[str, list[Segment]] = defaultdict(list)
    for s in segments:
        by[s.speaker].append(s)
    order = sorted(by, key=lambda spk: by[spk][0].start_s)
    talk = {spk: sum(s.duration_s for s in by[spk]) for spk in order}
    total = sum(talk.values()) or 1.0
    infos: dict[str, SpeakerInfo] = {}
    main = max(order, key=lambda s: talk[s]) if order else None
    for spk in order:
        segs = by[spk]
        texts = [s.text for s in segs]
        n_op = sum(bool(_OPERATOR.search(t)) for t in texts)
        n_q = sum(_is_question(t) for t in texts)
        mean_len = sum(len(t.split()) for t in texts) / max(1, len(texts))
        share = talk[spk] / total
        if event_type == "press_conference":
            if spk == main:
                role = "chair"
            elif share < 0.03 and mean_len <= 4:
                role = "operator"  # moderator calling on reporters
            else:
                role = "journalist"
        else:
            if n_op >= 1 and share < 0.15:
                role = "operator"
            elif n_q >= 1 and (share < 0.2 or spk != main) and find_name(texts):
                role = "analyst"
            elif n_q > len(texts) / 3 and spk != main:
                role = "analyst"
            else:
                role = "executive"
        infos[spk] = SpeakerInfo(spk, role, name=find_name(texts), talk_time_s=round(talk[spk], 3), n_segments=len(segs))
    for spk, (name, role) in zip(order, hint.entries):
        infos[spk].name = name or infos[spk].name
        infos[spk].role = role or infos[spk].role
    return [infos[s] for s in order]


def assign_sections(segments: list[Segment], speakers: list[SpeakerInfo]) -> list[Segment]:
    """Stage function: mark each segment ``prepared`` or ``qa`` (Q&A starts at the first cue)."""
    role = {s.speaker: s.role for s in speakers}
    roles = [role.get(s.speaker, "unknown") for s in segments]
    qa_start = None
    for i, r in enumerate(roles):
        if r in ("analyst", "journalist"):
            qa_start = i
            break
        if r == "operator" and i > 0:
            nxt = next((x for x in roles[i + 1 :] if x != "operator"), None)
            if nxt in ("analyst", "journalist") or _QA_START.search(segments[i].text):
                qa_start = i
                break
    for i, s in enumerate(segments):
        s.section = "qa" if qa_start is not None and i >= qa_start else "prepared"
    return segments
