"""Reading the transcripts users have: a file -> ``Transcript`` (speakers, roles, text,
the Q&A marker).  Aligning it to the audio is ``pipelines/speech/transcripts.py``.

* ``read_transcript(path, event_type)`` -> ``Transcript`` (``TranscriptError`` when it has no
  text).  Accepted shapes:
  - plain text, one turn per paragraph: ``Name: text`` or ``Name (role): text`` (role one of
    speechfin's roles); unlabelled lines continue the current turn, and lines before the
    first label (a title, a date, "Presentation") are the document's header, left out;
  - vendor style: a ``Name - Company - Title`` line (or ``Operator`` alone), then the text;
    also Thomson Reuters StreetEvents' ``Name,  Company - Title  [n]`` / ``Operator  [n]``
    lines between rules of ``=`` or ``-``;
    the title decides the role (CEO, CFO, President, Chief ..., Investor Relations ->
    executive; Analyst or an analyst's firm -> analyst; Operator -> operator);
  - participant lists, as in Seeking Alpha's transcripts: headed lists ``Executives`` /
    ``Company Participants`` and ``Analysts`` / ``Conference Call Participants`` of
    ``Name - Title`` (or ``Name - Company``, ``Name - Company - Title``) lines, then each
    turn starts with a line holding a listed name alone (or ``Operator``); the list says
    the role (an executives' list -> executive, an analysts' list -> analyst: a bank's
    "Managing Director" is an analyst there) and gives the title or firm (shape
    ``participants``);
  - a CSV or JSON list of turns with ``speaker``, ``text`` (or ``sentence``) and optional
    ``role``;
  - plain text with no speaker labels at all: its words are used, the speakers come from
    diarization.
  A line ``Question-and-Answer Session`` (or ``Questions and Answers``, ``Q&A``) starts the
  Q&A.  Text is read as UTF-8 (with or without a BOM), else as Windows-1252 / Latin-1 (the
  encoding is recorded).  Press conferences: a ``CHAIR...`` speaker is the chair, other
  named speakers are journalists, whose outlet is read from their self-introduction
  ("Steve Liesman with CNBC").
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from pipelines.roles import ROLES


class TranscriptError(ValueError):
    """A transcript that cannot be used at all (unreadable, empty): one line naming the file."""


@dataclass(frozen=True)
class TranscriptTurn:
    speaker: str          # the name as the transcript gives it ('' when unlabelled)
    text: str
    role: str = ""        # '' when the transcript does not say
    affiliation: str = ""
    title: str = ""
    qa: bool = False      # after the Q&A marker


@dataclass
class Transcript:
    path: str
    turns: list[TranscriptTurn]
    encoding: str
    shape: str            # text | vendor | participants | csv | json | unlabelled
    has_qa_marker: bool

    @property
    def labelled(self) -> bool:
        return self.shape != "unlabelled"


# -- reading ------------------------------------------------------------------------------------

_QA_MARKER = re.compile(r"^\s*(question[- ]and[- ]answer(?: session)?|questions and answers|q\s*&\s*a(?: session)?)\s*:?\s*$",
                        re.I)
_LABEL = re.compile(r"^(?P<name>[A-Z][\w.'’\-]*(?:\s+[\w.'’\-]+){0,5}?)\s*(?:\((?P<role>[A-Za-z]+)\))?\s*:\s*(?P<text>.*)$")
_VENDOR = re.compile(r"^(?P<name>[^\s\-–—:][^\-–—:]{1,60}?)\s+[-–—]\s+(?P<company>[^\-–—]{1,80}?)\s+[-–—]\s+(?P<title>[^\-–—]{1,80})$")
# Thomson Reuters StreetEvents: "Tim Cook,  Apple Inc. - CEO  [2]" or "Operator  [1]", between rule lines
_STREETEVENTS = re.compile(r"^(?P<name>[A-Z][^,\[\]]{0,60}?)(?:,\s+(?P<company>[^\[\]]{1,80}?)\s+[-–—]\s+"
                           r"(?P<title>[^\[\]]{1,80}?))?\s+\[\d+\]$")
_RULE = re.compile(r"^[=\-_*]{5,}$")
_EXEC_TITLE = re.compile(r"\b(ceo|cfo|coo|cto|chief|president|officer|chair(?:man|woman)?|director|investor relations|ir|"
                         r"treasurer|vice president|vp|svp|evp|head of|founder|controller|secretary|executive)\b", re.I)


def _decode(raw: bytes, path: Path) -> tuple[str, str]:
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return raw.decode("utf-16"), "utf-16"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace"), "cp1252"


def _display(name: str) -> str:
    name = " ".join(name.split()).strip(" .")
    return name.title() if name.isupper() else name


def infer_role(name: str, title: str, company: str, event_type: str) -> str:
    """The speechfin role of a transcript speaker from its name, title and company ('' if unknown)."""
    low = f"{name} {title}".lower()
    if name.strip().lower() == "operator" or "operator" in title.lower():
        return "operator"
    if event_type == "press_conference":
        if re.match(r"^\s*(chair|chairman|chairwoman|vice chair)\b", name, re.I) or "chair" in title.lower():
            return "chair"
        return "journalist" if name.strip() else ""
    if "analyst" in low:
        return "analyst"
    if title and _EXEC_TITLE.search(title):
        return "executive"
    if company and title:
        return "analyst"
    return ""


def _outlet(name: str, text: str) -> str:
    """A journalist's outlet from their self-introduction: "Harriet Torry with the Wall Street
    Journal", "Steve Liesman, CNBC", "Nick Timiraos of the Wall Street Journal" ('' if none)."""
    surname = name.split()[-1] if name.split() else ""
    if not surname:
        return ""
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip())[:3]:
        m = re.search(rf"{re.escape(surname)}\s*(?:,|\bwith\b|\bfrom\b|\bof\b|\bat\b)\s+(?:the\s+)?"
                      rf"(?P<outlet>[A-Z][\w&.'’\-]*(?:\s+[A-Z][\w&.'’\-]*){{0,4}})", sentence, re.I)
        if m and m.group("outlet")[0].isupper():
            return m.group("outlet").strip(" .,")
    return ""


def _turns_from_rows(rows: list[dict], path: Path) -> list[TranscriptTurn]:
    out = []
    for i, r in enumerate(rows):
        low = {str(k).strip().lower(): v for k, v in r.items() if k is not None}
        text = str(low.get("text", low.get("sentence", "")) or "").strip()
        if "speaker" not in low or not ("text" in low or "sentence" in low):
            raise TranscriptError(f"{path}: turn {i + 1} needs 'speaker' and 'text' fields (has {sorted(low)})")
        role = str(low.get("role", "") or "").strip().lower()
        out.append(TranscriptTurn(str(low["speaker"] or "").strip(), text, role if role in ROLES else ""))
    return out


def read_transcript(path: str | Path, event_type: str = "earnings_call") -> Transcript:
    """Parse a transcript file (shapes: module doc)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TranscriptError(f"{path}: cannot read the transcript ({exc.strerror or exc})") from None
    text, encoding = _decode(raw, path)
    if not text.strip():
        raise TranscriptError(f"{path}: the transcript is empty")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".json"):
        try:
            rows = json.loads(text) if suffix == ".json" else list(csv.DictReader(io.StringIO(text)))
        except (json.JSONDecodeError, csv.Error) as exc:
            raise TranscriptError(f"{path}: not a valid {suffix[1:].upper()} list of turns ({exc})") from None
        rows = rows.get("turns", rows) if isinstance(rows, dict) else rows
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise TranscriptError(f"{path}: expected a list of turns with speaker and text")
        turns, shape, marker = _turns_from_rows(rows, path), suffix[1:], False
    else:
        turns, shape, marker = _parse_text(text)
    turns = [_complete(t, event_type) for t in turns if t.text.strip()]
    if not turns:
        raise TranscriptError(f"{path}: the transcript has no text")
    return Transcript(str(path), turns, encoding, shape, marker)


def _complete(t: TranscriptTurn, event_type: str) -> TranscriptTurn:
    name = _display(t.speaker)
    role = t.role or infer_role(name, t.title, t.affiliation, event_type)
    affiliation = t.affiliation or (_outlet(name, t.text) if role == "journalist" else "")
    return TranscriptTurn(name, " ".join(t.text.split()), role, affiliation, t.title, t.qa)


_LIST_HEAD = re.compile(r"^\s*(?:(?P<exec>executives|company participants|corporate participants|company representatives)|"
                        r"(?P<analyst>analysts|conference call participants|call participants))\s*:?\s*$", re.I)
_PARTICIPANT = re.compile(r"^[*•\-]?\s*(?P<name>[A-Z][\w.'’\-]*(?:\s+[\w.'’\-]+){0,4}?)\s+[-–—]\s+(?P<rest>\S.{0,120})$")


def _name_key(text: str) -> str:
    """A name as the participant lists and the turn lines are matched: spaces collapsed,
    lowercase, no trailing colon."""
    return " ".join(text.split()).lower().rstrip(":").strip()


def _participants(lines: list[str]) -> tuple[dict[str, dict], set[int]]:
    """Listed participants, name key -> speaker, role, affiliation, title (empty if the
    document has no headed participant list), and the indices of the list lines (headings,
    entries and the blank lines between them).  A list ends at its first line that is not a
    ``Name - ...`` entry (a blank line does not end it)."""
    out: dict[str, dict] = {}
    in_lists: set[int] = set()
    group = ""
    for i, ln in enumerate(lines):
        head = _LIST_HEAD.match(ln)
        if head:
            group = "executive" if head.group("exec") else "analyst"
            in_lists.add(i)
            continue
        if not group:
            continue
        m = _PARTICIPANT.match(ln) if ln else None
        if ln and not m:
            group = ""
            continue
        in_lists.add(i)
        if m:
            parts = [x.strip() for x in re.split(r"\s+[-–—]\s+", m.group("rest"))]
            company, title = (parts[0], parts[-1]) if len(parts) > 1 else \
                (("", parts[0]) if group == "executive" else (parts[0], ""))
            out[_name_key(m.group("name"))] = dict(speaker=m.group("name"), role=group, affiliation=company, title=title)
    return out, in_lists


def _parse_text(text: str) -> tuple[list[TranscriptTurn], str, bool]:
    lines = [ln.strip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    listed, in_lists = _participants(lines)
    if listed and any(_name_key(ln) in listed for i, ln in enumerate(lines) if i not in in_lists):
        return _parse_participants(lines, listed, in_lists)
    # a StreetEvents turn header stands right after a rule line (a footnote mark "[1]" in text does not)
    rule = [bool(_RULE.match(ln)) for ln in lines]
    header = [_VENDOR.match(ln) or (_STREETEVENTS.match(ln) if i and rule[i - 1] else None)
              for i, ln in enumerate(lines)]
    header = [h for h, r in zip(header, rule) if not r]
    lines = [ln for ln, r in zip(lines, rule) if not r]
    vendor = sum(h is not None for h in header)
    labels = sum(bool(_LABEL.match(ln)) and not _QA_MARKER.match(ln) for ln in lines)
    shape = "vendor" if vendor >= 1 and vendor >= labels / 2 else "text" if labels else "unlabelled"
    turns: list[dict] = []
    qa = marker = False
    for ln, m in zip(lines, header):
        if not ln:
            continue
        if _QA_MARKER.match(ln):
            qa = marker = True
            continue
        if shape == "vendor":
            if m or ln.lower() == "operator":
                turns.append(dict(speaker=m.group("name") if m else "Operator", text="", qa=qa,
                                  affiliation=((m.group("company") or "").strip() if m else ""),
                                  title=((m.group("title") or "").strip() if m else "")))
                continue
        elif shape == "text":
            label = _LABEL.match(ln)
            if label:
                role = (label.group("role") or "").lower()
                turns.append(dict(speaker=label.group("name"), text=label.group("text"), qa=qa,
                                  role=role if role in ROLES else ""))
                continue
        if not turns:
            if shape != "unlabelled":
                continue                      # a labelled document's header (title, date, "Presentation")
            turns.append(dict(speaker="", text="", qa=qa))
        turns[-1]["text"] += " " + ln
    return [TranscriptTurn(**t) for t in turns], shape, marker


def _parse_participants(lines: list[str], listed: dict[str, dict], in_lists: set[int],
                        ) -> tuple[list[TranscriptTurn], str, bool]:
    """Turns of a document with participant lists: a line holding a listed name alone (or
    ``Operator``) starts a turn; the lists (``in_lists``) and the lines before the first turn
    are the header."""
    turns: list[dict] = []
    qa = marker = False
    for i, ln in enumerate(lines):
        if i in in_lists or not ln:
            continue
        if _QA_MARKER.match(ln):
            qa = marker = True
            continue
        key = _name_key(ln)
        if key in listed or key == "operator":
            who = listed.get(key, dict(speaker="Operator", role="operator", affiliation="", title=""))
            turns.append(dict(who, text="", qa=qa))
            continue
        if turns:
            turns[-1]["text"] += " " + ln
    return [TranscriptTurn(**t) for t in turns], "participants", marker
