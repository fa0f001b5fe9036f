"""Stage 7: turn the front end's results into catalog rows, and write them.

The ``calls`` part is written last: it marks the call as complete.  A crash before it
leaves no ``calls`` row, so the next run processes the call again and overwrites its
parts (same keys), leaving no duplicates.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from data_catalog import Catalog, CatalogError
from data_catalog.schemas import REQUIRED_CALL_PARTS
from data_catalog.store import part_readable
from pipelines.archive import CallEntry
from pipelines.settings import PIPELINE_VERSION
from pipelines.types import Audio, Segment, SpeakerInfo

CALL_TABLES = ("speakers", "segments", "words", "voices", "transcripts", "speaker_disagreements", "emotions",
               "trajectories", "call_features", "qa_pairs", "speaker_baselines", "calls")
log = logging.getLogger("speechfin.tables")


def failure_key(source: str, row: int = 0) -> str:
    """Key of a failure record: the source file and its manifest row."""
    return hashlib.sha256(f"{source}#{row}".encode()).hexdigest()[:16]


@dataclass
class CallResult:
    """Everything the front end produced for one call."""

    entry: CallEntry
    audio: Audio
    speakers: list[SpeakerInfo]
    segments: list[Segment]
    embeddings: dict[str, np.ndarray]
    embedding_model: str
    profile: str
    language: str = "en"
    transcript: dict | None = None           # the ``transcripts`` row (without call_id), if the manifest names one
    disagreements: list[dict] = field(default_factory=list)   # ``speaker_disagreements`` rows (without call_id)


def call_rows(result: CallResult, voice_ids: dict[str, str] | None = None) -> dict[str, pa.Table]:
    """The ``calls``, ``speakers``, ``segments``, ``words`` and ``voices`` rows of one call;
    a speaker not in ``voice_ids`` gets voice_id '' (linked after the batch, ``pipelines.voices``)."""
    cid, e = result.audio.call_id, result.entry
    voice_ids = voice_ids or {}
    now = datetime.now(timezone.utc)
    calls = [{
        "call_id": cid, "event_type": e.event_type, "entity": e.entity, "event_time": e.event_time,
        "language": result.language, "duration_s": round(result.audio.duration_s, 3),
        "source_uri": str(result.audio.path), "title": e.title, "processed_at": now,
        "pipeline_version": PIPELINE_VERSION, "profile": result.profile,
    }]
    speakers = [{"call_id": cid, "speaker": s.speaker, "role": s.role, "name": s.name,
                 "voice_id": voice_ids.get(s.speaker, ""), "talk_time_s": s.talk_time_s,
                 "n_segments": s.n_segments, "affiliation": s.affiliation, "title": s.title} for s in result.speakers]
    segments = [{"call_id": cid, "segment_id": s.segment_id, "speaker": s.speaker, "start_s": s.start_s,
                 "end_s": s.end_s, "section": s.section, "text": s.text, "asr_confidence": s.asr_confidence,
                 "text_source": s.text_source} for s in result.segments]
    words = [{"call_id": cid, "segment_id": w.segment_id, "word": w.word, "start_s": w.start_s,
              "end_s": w.end_s, "score": w.score} for s in result.segments for w in s.words]
    voices = [{"call_id": cid, "speaker": spk, "voice_id": voice_ids.get(spk, ""), "embedding_model": result.embedding_model,
               "embedding": np.asarray(v, np.float32).tolist()} for spk, v in result.embeddings.items()]
    from data_catalog import TABLES

    def table(name: str, rows: list[dict]) -> pa.Table:
        return pa.Table.from_pylist(rows, schema=TABLES[name].schema) if rows else TABLES[name].schema.empty_table()

    out = {"calls": table("calls", calls), "speakers": table("speakers", speakers),
           "segments": table("segments", segments), "words": table("words", words), "voices": table("voices", voices),
           "speaker_disagreements": table("speaker_disagreements", [{"call_id": cid, **d} for d in result.disagreements])}
    out["transcripts"] = table("transcripts", [{"call_id": cid, **result.transcript}] if result.transcript else [])
    return out


def write_call(catalog: Catalog, call_id: str, tables: dict[str, pa.Table]) -> None:
    """Write every table part of a call; ``calls`` last (the completion marker)."""
    for name in sorted(tables, key=lambda n: CALL_TABLES.index(n) if n in CALL_TABLES else 0):
        catalog.write(name, call_id, tables[name])


def is_complete(catalog: Catalog, call_id: str, profile: str) -> bool:
    """The front end is done when the ``calls`` row exists for this pipeline version and profile,
    the call's other required parts exist, and every part of the call has a readable Parquet
    footer (the cheap check: a corrupt part makes the call incomplete, so it is reprocessed)."""
    if not catalog.has("calls", call_id):
        return False
    try:
        row = catalog.read("calls", call_id).to_pylist()
    except CatalogError as exc:
        log.warning("call %s is reprocessed: %s", call_id, exc)
        return False
    if not (row and row[0]["pipeline_version"] == PIPELINE_VERSION and row[0]["profile"] == profile):
        return False
    for table in CALL_TABLES:
        path = catalog.part_path(table, call_id)
        if not path.exists() and catalog.has(table, call_id):
            continue  # compacted (the compacted files are checked by `speechfin catalog verify`)
        if not path.exists():
            if table in REQUIRED_CALL_PARTS:
                log.warning("call %s is reprocessed: %s is missing", call_id, path)
                return False
        elif not part_readable(path):
            log.warning("call %s is reprocessed: %s is not a readable Parquet part", call_id, path)
            return False
    return True


def transcript_current(catalog: Catalog, call_id: str, sha256: str) -> bool:
    """The stored call used the transcript whose hash is ``sha256`` ('' : none): a transcript
    added, changed or removed in the manifest makes the call be processed again."""
    stored = catalog.read("transcripts", call_id).to_pylist() if catalog.has("transcripts", call_id) else []
    return (stored[0]["sha256"] if stored else "") == (sha256 or "")


def emotions_current(catalog: Catalog, call_id: str, model_id: str) -> bool:
    """The emotion tables of ``call_id`` exist and were made by ``model_id``."""
    if not (catalog.has("emotions", call_id) and catalog.has("call_features", call_id)):
        return False
    ids = set(catalog.read("call_features", call_id).column("model_id").to_pylist())
    return ids == {model_id}


def read_call(catalog: Catalog, call_id: str) -> tuple[list[Segment], list[SpeakerInfo]]:
    """The segments (with words) and speakers of a processed call, back as typed values."""
    from pipelines.types import Word

    words: dict[int, list[Word]] = {}
    for w in catalog.read("words", call_id).to_pylist():
        words.setdefault(w["segment_id"], []).append(
            Word(w["word"], w["start_s"], w["end_s"], w["score"], segment_id=w["segment_id"]))
    segments = [Segment(r["segment_id"], r["speaker"], r["start_s"], r["end_s"], r["text"], r["asr_confidence"],
                        r["section"], words.get(r["segment_id"], []), text_source=r.get("text_source") or "asr")
                for r in sorted(catalog.read("segments", call_id).to_pylist(), key=lambda r: r["segment_id"])]
    speakers = [SpeakerInfo(r["speaker"], r["role"], r["name"], r["voice_id"], r["talk_time_s"], r["n_segments"],
                            r.get("affiliation") or "", r.get("title") or "")
                for r in catalog.read("speakers", call_id).to_pylist()]
    return segments, speakers


def record_failure(catalog: Catalog, source: str, stage: str, reason: str, row: int = 0) -> None:
    """Write the failure record of ``source``; a catalog that cannot be written (disk full,
    permissions) raises ``CatalogError`` with one line naming the file."""
    key = failure_key(source, row)
    catalog.write("failures", key, [{"key": key, "source_uri": source, "stage": stage, "reason": reason,
                                     "failed_at": datetime.now(timezone.utc)}])


def clear_failure(catalog: Catalog, source: str, row: int = 0) -> None:
    catalog.delete("failures", failure_key(source, row))
