"""Corrections of an already processed call from its manifest row, with no transcription.

A changed entity, event_time or title is copied into the ``calls`` row
(:func:`update_call_metadata`); a changed event_type also re-derives the roles and
sections from the stored segments (:func:`reassign_roles`), after which the flow recomputes
the emotion tables.  ``pipelines.flows.calls`` wraps these stages in Prefect tasks.
"""

from __future__ import annotations

from dataclasses import replace

from data_catalog import Catalog
from pipelines.archive import CallEntry
from pipelines.roles import assign_roles, assign_sections, parse_speakers_hint
from pipelines.types import Segment, SpeakerInfo


def update_call_metadata(catalog: Catalog, call_id: str, entry: CallEntry) -> dict[str, tuple[object, object]]:
    """Copy the manifest's metadata (``archive.METADATA``) into the ``calls`` row of an
    already processed call; returns ``{field: (old, new)}`` for the fields that changed."""
    row = catalog.read("calls", call_id).to_pylist()[0]
    new = entry.metadata()
    changes = {k: (row[k], v) for k, v in new.items() if row[k] != v}
    if changes:
        catalog.write("calls", call_id, [row | new])
    return changes


def describe_changes(changes: dict[str, tuple[object, object]]) -> str:
    """``entity 'FOMC' -> 'ECB'; event_time 2019-01-30 19:30:00+00:00 -> ...``"""
    return "; ".join(f"{k} {a!s} -> {b!s}" if k == "event_time" else f"{k} {a!r} -> {b!r}"
                     for k, (a, b) in changes.items())


def reassign_roles(segments: list[Segment], speakers: list[SpeakerInfo], event_type: str,
                   speakers_hint: str) -> tuple[list[Segment], list[SpeakerInfo]]:
    """Roles and sections of a processed call for another ``event_type``, from its stored
    segments (voice ids kept)."""
    voice = {s.speaker: s.voice_id for s in speakers}
    new = assign_roles(segments, event_type, parse_speakers_hint(speakers_hint))
    new = [replace(s, voice_id=voice.get(s.speaker, s.voice_id)) for s in new]
    return assign_sections(segments, new), new
