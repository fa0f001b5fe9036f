"""Archives: a folder of recordings with a ``manifest.csv``.

Columns: ``file, event_type, entity, event_time`` (required) and ``title, speakers_hint,
transcript`` (optional).  ``file`` and ``transcript`` (the call's transcript; its shapes:
``pipelines/speech/transcript_formats.py``) are relative to the archive folder and must stay inside it;
``event_type`` is ``earnings_call`` or ``press_conference``; ``event_time`` is ISO 8601
(``2019-01-30T19:30:00Z``; a time without a zone is taken as UTC).

A bad manifest (missing file, missing columns) is an error for the whole archive; a bad
row is reported as a failed entry and the other rows are still processed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pipelines.roles import EVENT_TYPES, HintError, parse_speakers_hint

REQUIRED = ("file", "event_type", "entity", "event_time")
METADATA = ("event_type", "entity", "event_time", "title")  # copied into the call's ``calls`` row
AUDIO_EXTS = {".wav", ".flac", ".mp3", ".m4a", ".mp4", ".ogg", ".aac", ".webm"}


class ManifestError(ValueError):
    """The manifest as a whole cannot be read."""


@dataclass(frozen=True)
class CallEntry:
    """One manifest row, validated; ``error`` is set (and the row skipped) when invalid."""

    row: int
    file: str
    path: str
    event_type: str
    entity: str
    event_time: datetime | None
    title: str = ""
    speakers_hint: str = ""
    transcript: str = ""   # resolved path of the call's transcript ('' for none)
    error: str = ""
    source: str = ""  # key of the row's failure record: the resolved file path (or manifest), with ``row``

    def metadata(self) -> dict[str, object]:
        """The fields of the ``calls`` row this entry sets, and that a corrected manifest may change."""
        return {k: getattr(self, k) for k in METADATA}


def parse_event_time(value: str) -> datetime:
    v = value.strip()
    if not v:
        raise ValueError("empty event_time")
    dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _validate(archive: Path, n: int, row: dict[str, str]) -> CallEntry:
    file = (row.get("file") or "").strip()
    base = dict(row=n, file=file, path="", event_type=(row.get("event_type") or "").strip(),
                entity=(row.get("entity") or "").strip(), event_time=None,
                title=(row.get("title") or "").strip(), speakers_hint=(row.get("speakers_hint") or "").strip())
    where = f"{archive / 'manifest.csv'}:{n}"
    base["source"] = str((archive / file).resolve() if file else (archive / "manifest.csv").resolve())
    if not file:
        return CallEntry(**base, error=f"{where}: empty 'file'")
    path = (archive / file).resolve()
    if Path(file).is_absolute() or not path.is_relative_to(archive.resolve()):
        return CallEntry(**base, error=f"{where}: file {file!r} points outside the archive")
    base["path"] = str(path)
    if not path.is_file():
        return CallEntry(**base, error=f"{path}: file not found (manifest row {n})")
    if base["event_type"] not in EVENT_TYPES:
        return CallEntry(**base, error=f"{where}: unknown event_type {base['event_type']!r} "
                                       f"(use {' or '.join(sorted(EVENT_TYPES))})")
    if not base["entity"]:
        return CallEntry(**base, error=f"{where}: empty 'entity'")
    try:
        base["event_time"] = parse_event_time(row.get("event_time") or "")
    except ValueError:
        return CallEntry(**base, error=f"{where}: bad event_time {row.get('event_time')!r} (use ISO 8601, e.g. 2019-01-30T19:30:00Z)")
    try:
        parse_speakers_hint(base["speakers_hint"])
    except HintError as exc:
        return CallEntry(**base, error=f"{where}: {exc}")
    transcript = (row.get("transcript") or "").strip()
    if transcript:
        tpath = (archive / transcript).resolve()
        if Path(transcript).is_absolute() or not tpath.is_relative_to(archive.resolve()):
            return CallEntry(**base, error=f"{where}: transcript {transcript!r} points outside the archive")
        if not tpath.is_file():
            return CallEntry(**base, error=f"{tpath}: transcript not found (manifest row {n})")
        base["transcript"] = str(tpath)
    return CallEntry(**base)


def read_manifest(archive: str | Path) -> list[CallEntry]:
    """All rows of ``archive/manifest.csv``, each validated."""
    archive = Path(archive)
    if not archive.is_dir():
        raise ManifestError(f"{archive}: archive folder not found")
    mpath = archive / "manifest.csv"
    if not mpath.is_file():
        raise ManifestError(f"{mpath}: manifest not found")
    try:
        with mpath.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise ManifestError(f"{mpath}: missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED)})")
            reader.fieldnames = header
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{mpath}: not UTF-8 text") from exc
    except csv.Error as exc:
        raise ManifestError(f"{mpath}: malformed CSV ({exc})") from exc
    return [_validate(archive, n, r) for n, r in enumerate(rows, start=2)]
