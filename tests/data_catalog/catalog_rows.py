"""Synthetic catalog rows for the data_catalog tests (no speech models)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from data_catalog import Catalog
from pipelines.settings import PIPELINE_VERSION


def call_row(call_id: str, entity: str = "FOMC") -> list[dict]:
    return [{"call_id": call_id, "event_type": "press_conference", "entity": entity,
             "event_time": datetime(2019, 1, 30, 19, 30, tzinfo=timezone.utc), "language": "en", "duration_s": 1.0,
             "source_uri": f"{call_id}.wav", "title": "t", "processed_at": datetime.now(timezone.utc),
             "pipeline_version": PIPELINE_VERSION, "profile": "embedded"}]


def segment_rows(call_id: str, n: int = 5) -> list[dict]:
    return [{"call_id": call_id, "segment_id": i, "speaker": f"SPEAKER_{i % 2:02d}", "start_s": float(i),
             "end_s": i + 0.5, "section": "prepared", "text": f"sentence {i}", "asr_confidence": 0.9} for i in range(n)]


def word_rows(call_id: str, n: int = 5) -> list[dict]:
    return [{"call_id": call_id, "segment_id": i, "word": "w", "start_s": float(i), "end_s": i + 0.2, "score": 0.9}
            for i in range(n)]


def speaker_rows(call_id: str) -> list[dict]:
    return [{"call_id": call_id, "speaker": "SPEAKER_00", "role": "chair", "name": "", "voice_id": "v",
             "talk_time_s": 1.0, "n_segments": 3}]


def voice_rows(call_id: str, vec: list[float] | None = None) -> list[dict]:
    return [{"call_id": call_id, "speaker": "SPEAKER_00", "voice_id": f"v_{call_id}",
             "embedding_model": "resemblyzer-ge2e", "embedding": vec or [1.0, 0.0, 0.0]}]


def write_call(cat: Catalog, call_id: str, n_segments: int = 5, entity: str = "FOMC") -> None:
    """Every required part of a call, ``calls`` last (as pipelines.tables.write_call does)."""
    cat.write("speakers", call_id, speaker_rows(call_id))
    cat.write("segments", call_id, segment_rows(call_id, n_segments))
    cat.write("words", call_id, word_rows(call_id, n_segments))
    cat.write("voices", call_id, voice_rows(call_id))
    cat.write("calls", call_id, call_row(call_id, entity))


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes, to show that nothing changed."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
