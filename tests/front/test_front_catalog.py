"""data_catalog: schemas, atomic parts, DuckDB views, read-only queries."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_catalog import TABLES, Catalog, CatalogError


def _segments(call_id: str, n: int) -> list[dict]:
    return [{"call_id": call_id, "segment_id": i, "speaker": f"SPEAKER_{i % 2:02d}", "start_s": float(i),
             "end_s": i + 0.5, "section": "prepared", "text": f"sentence {i}", "asr_confidence": 0.9} for i in range(n)]


def _call(call_id: str) -> list[dict]:
    """The ``calls`` row that marks a call complete (views only show complete calls)."""
    return [{"call_id": call_id, "event_type": "press_conference", "entity": "FOMC",
             "event_time": datetime(2019, 1, 30, 19, 30, tzinfo=timezone.utc), "language": "en", "duration_s": 1.0,
             "source_uri": "x", "title": "t", "processed_at": datetime.now(timezone.utc), "pipeline_version": "0",
             "profile": "embedded"}]


def test_write_read_round_trip_and_query(tmp_path):
    cat = Catalog(tmp_path / "cat")
    cat.write("segments", "aaaa", _segments("aaaa", 3))
    cat.write("segments", "bbbb", _segments("bbbb", 5))
    back = cat.read("segments", "aaaa").to_pylist()
    assert back == [r | {"text_source": None} for r in _segments("aaaa", 3)]   # an optional column left out: NULL
    assert cat.read("segments").schema.equals(TABLES["segments"].schema)
    cat.write("calls", "aaaa", _call("aaaa"))
    cat.write("calls", "bbbb", _call("bbbb"))
    cat.refresh_views()
    out = cat.query("select call_id, count(*) n, sum(segment_id) s from segments group by 1 order by 1").to_pylist()
    assert out == [{"call_id": "aaaa", "n": 3, "s": 3}, {"call_id": "bbbb", "n": 5, "s": 10}]
    # empty tables still have a typed view
    assert cat.query("select count(*) n from words").to_pylist() == [{"n": 0}]
    assert cat.query("select * from calls").column_names == TABLES["calls"].columns


def test_rewrite_replaces_part_without_duplicates(tmp_path):
    cat = Catalog(tmp_path)
    cat.write("segments", "aaaa", _segments("aaaa", 4))
    cat.write("segments", "aaaa", _segments("aaaa", 2))
    cat.write("calls", "aaaa", _call("aaaa"))
    cat.refresh_views()
    assert cat.query("select count(*) n from segments").to_pylist() == [{"n": 2}]
    assert not [p for p in (tmp_path / "tables" / "segments").iterdir() if p.name.endswith(".tmp")]


def test_crash_during_write_keeps_old_part(tmp_path, monkeypatch):
    cat = Catalog(tmp_path)
    cat.write("segments", "aaaa", _segments("aaaa", 4))

    def boom(table, where, **kw):
        with open(where, "wb") as f:
            f.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError):
        cat.write("segments", "aaaa", _segments("aaaa", 9))
    monkeypatch.undo()
    assert cat.read("segments", "aaaa").num_rows == 4
    assert sorted(p.name for p in (tmp_path / "tables" / "segments").iterdir()) == ["aaaa.parquet"]


def test_schema_errors_are_clear(tmp_path):
    cat = Catalog(tmp_path)
    rows = _segments("aaaa", 1)
    del rows[0]["text"]
    with pytest.raises(CatalogError, match="missing columns \\['text'\\]"):
        cat.write("segments", "aaaa", rows)
    with pytest.raises(CatalogError, match="unknown columns"):
        cat.write("segments", "aaaa", [dict(_segments("aaaa", 1)[0], bogus=1)])
    with pytest.raises(CatalogError, match="rows for"):
        cat.write("segments", "bbbb", _segments("aaaa", 1))
    with pytest.raises(CatalogError, match="invalid partition key"):
        cat.write("segments", "../x", _segments("../x", 1))
    with pytest.raises(CatalogError, match="unknown table"):
        cat.write("nope", "a", [])


def test_query_is_read_only(tmp_path):
    cat = Catalog(tmp_path)
    cat.write("calls", "aaaa", [{
        "call_id": "aaaa", "event_type": "press_conference", "entity": "FOMC",
        "event_time": datetime(2019, 1, 30, 19, 30, tzinfo=timezone.utc), "language": "en", "duration_s": 1.0,
        "source_uri": "x", "title": "t", "processed_at": datetime.now(timezone.utc), "pipeline_version": "0",
        "profile": "embedded"}])
    cat.refresh_views()
    with pytest.raises(CatalogError, match="query failed"):
        cat.query("create table hack as select 1")
    with pytest.raises(CatalogError, match="query failed"):
        cat.query("drop view calls")
    assert cat.query("select entity from calls").to_pylist() == [{"entity": "FOMC"}]


def test_missing_and_read_only_catalog(tmp_path):
    with pytest.raises(CatalogError, match="no catalog here"):
        Catalog(tmp_path / "absent").query("select 1")
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(CatalogError, match="read-only"):
            Catalog(ro).write("segments", "aaaa", _segments("aaaa", 1))
    finally:
        os.chmod(ro, 0o755)


def test_extra_prefixed_columns_allowed_for_emotions(tmp_path):
    cat = Catalog(tmp_path)
    spec = TABLES["emotions"]
    row = {c: None for c in spec.columns}
    row.update(call_id="aaaa", segment_id=0, model_id="m", p_happy=0.25, p_sad=0.75)
    cat.write("emotions", "aaaa", [row])
    t = cat.read("emotions", "aaaa")
    assert t.column("p_sad").to_pylist() == [0.75]
    assert pa.types.is_float64(t.schema.field("p_happy").type)
