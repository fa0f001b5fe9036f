"""Columns added in later versions (``TableSchema.optional``): a writer may leave them out
(they are stored as NULL), and parts written before they existed still read, query and verify."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from catalog_rows import call_row, segment_rows, speaker_rows, voice_rows, word_rows
from data_catalog import Catalog
from data_catalog.schemas import TABLES
from data_catalog.verify import verify


def test_optional_columns_are_null_when_left_out_and_old_parts_still_read(tmp_path):
    cat = Catalog(tmp_path / "c")
    cat.write("segments", "new", segment_rows("new"))          # no text_source: stored as NULL
    assert cat.read("segments", "new").column("text_source").null_count == 5
    cat.write("segments", "new", [r | {"text_source": "transcript"} for r in segment_rows("new")])
    # a part of the previous version: the optional column is absent from the file itself
    old = pa.Table.from_pylist(segment_rows("old"))
    path = cat.part_path("segments", "old")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(old, path)
    assert "text_source" not in pq.read_schema(path).names
    for cid in ("new", "old"):
        cat.write("speakers", cid, speaker_rows(cid))
        cat.write("words", cid, word_rows(cid))
        cat.write("voices", cid, voice_rows(cid))
        cat.write("calls", cid, call_row(cid))
    got = cat.query("select call_id, text_source, count(*) n from segments group by all order by 1").to_pylist()
    assert got == [{"call_id": "new", "text_source": "transcript", "n": 5}, {"call_id": "old", "text_source": None, "n": 5}]
    both = cat.read("segments")
    assert both.num_rows == 10 and both.schema.field("text_source").type == pa.string()
    report = verify(cat.root)
    assert not report.problems, report.problems
    assert "text_source" in TABLES["segments"].optional
