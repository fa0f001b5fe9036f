"""Compaction of per-call tables: the same rows before and after, a pending part overrides its
compacted rows, deletes reach compacted rows, a write during a compaction is never lost, a
broken compacted file is found and repaired, a newer manifest is refused."""

from __future__ import annotations

import contextlib
import json

import pyarrow.parquet as pq
import pytest
from catalog_rows import segment_rows, write_call

from data_catalog import Catalog, CatalogError, compacted
from data_catalog.stats import catalog_stats
from data_catalog.verify import verify

QUERY = "select call_id, segment_id, text from segments order by call_id, segment_id"


def _catalog(tmp_path, n=12) -> Catalog:
    cat = Catalog(tmp_path / "cat")
    for i in range(n):
        write_call(cat, f"c{i:03d}", n_segments=3 + i % 4)
    return cat


def _parts(cat: Catalog, table: str) -> list[str]:
    return sorted(p.stem for p in cat.table_dir(table).glob("*.parquet"))


def test_compaction_keeps_every_row_and_removes_the_parts(tmp_path):
    cat = _catalog(tmp_path)
    cat.write("segments", "zz_incomplete", segment_rows("zz_incomplete", 2))  # no calls part: not compacted
    before = {t: cat.query(f"select * from {t} order by all").to_pylist() for t in ("calls", "segments", "words")}
    one = cat.read("segments", "c005").to_pylist()
    results = {r.table: r for r in cat.compact()}
    assert results["segments"].calls_compacted == 12 and results["segments"].parts_removed == 12
    assert _parts(cat, "segments") == ["zz_incomplete"] and _parts(cat, "calls") == []
    after = {t: cat.query(f"select * from {t} order by all").to_pylist() for t in ("calls", "segments", "words")}
    assert after == before
    assert cat.read("segments", "c005").to_pylist() == one  # one call out of the compacted file
    assert cat.has("segments", "c005") and cat.keys("calls") == [f"c{i:03d}" for i in range(12)]
    assert cat.stamp("segments", "c005") is not None
    assert cat.read("segments", complete_only=True).num_rows == sum(3 + i % 4 for i in range(12))
    stats = {t.table: t for t in catalog_stats(cat.root).tables}
    assert stats["segments"].rows == sum(3 + i % 4 for i in range(12))
    assert (stats["segments"].parts, stats["segments"].compacted_files) == (1, 1)
    # the file is sorted by call, so one call's lookup reads few row groups
    f = next((cat.table_dir("segments") / "_compacted").glob("*.parquet"))
    ids = pq.read_table(f).column("call_id").to_pylist()
    assert ids == sorted(ids)


def test_a_rewritten_call_overrides_its_compacted_rows_and_a_delete_reaches_them(tmp_path):
    cat = _catalog(tmp_path)
    cat.compact()
    cat.write("segments", "c003", segment_rows("c003", 9))  # re-processed after compaction
    assert cat.query("select count(*) n from segments where call_id = 'c003'").to_pylist() == [{"n": 9}]
    assert cat.read("segments", "c003").num_rows == 9
    cat.compact()
    assert _parts(cat, "segments") == []
    assert cat.query("select count(*) n from segments where call_id = 'c003'").to_pylist() == [{"n": 9}]
    m = cat.manifest("segments")
    assert [f.live() for f in m.files if "c003" in f.stamps and "c003" in f.removed]  # the older file's copy is dead
    assert cat.delete("calls", "c007") and cat.delete("segments", "c007")
    assert "c007" not in cat.keys("calls") and not cat.has("segments", "c007")
    assert cat.query("select count(*) n from segments where call_id = 'c007'").to_pylist() == [{"n": 0}]
    with pytest.raises(CatalogError, match="no 'segments' rows"):
        cat.read("segments", "c007")


def test_full_compaction_merges_the_files_and_removes_old_ones_later(tmp_path):
    cat = _catalog(tmp_path, n=4)
    before = cat.query(QUERY).to_pylist()
    for i in range(4, 7):
        cat.compact()
        write_call(cat, f"c{i:03d}")
        before += [r for r in cat.query(QUERY).to_pylist() if r["call_id"] == f"c{i:03d}"]
    cat.compact()
    assert len(cat.manifest("segments").files) == 4
    cat.compact(full=True)
    folder = cat.table_dir("segments") / "_compacted"
    assert len(cat.manifest("segments").files) == 1
    assert len(list(folder.glob("*.parquet"))) == 5  # the merged ones stay for readers that listed them
    assert cat.query(QUERY).to_pylist() == sorted(before, key=lambda r: (r["call_id"], r["segment_id"]))
    compacted.compact_table(cat.table_dir("segments"), set(cat.keys("calls")), stale_age_s=0)
    assert len(list(folder.glob("*.parquet"))) == 1


def test_a_write_during_compaction_is_never_lost(tmp_path, monkeypatch):
    """The part is rewritten after the compaction read it and before it removes it: it stays
    and wins; a part deleted meanwhile does not come back from the compacted file."""
    cat = _catalog(tmp_path, n=3)
    real = compacted.write_lock

    @contextlib.contextmanager
    def racing_lock(table_dir, exclusive=False):
        if exclusive and table_dir.name == "segments":
            cat.write("segments", "c001", segment_rows("c001", 11))
            (table_dir / "c002.parquet").unlink()
        with real(table_dir, exclusive):
            yield

    monkeypatch.setattr(compacted, "write_lock", racing_lock)
    res = {r.table: r for r in cat.compact(tables=["segments"])}["segments"]
    monkeypatch.undo()
    assert (res.parts_removed, res.parts_kept) == (1, 2)
    assert _parts(cat, "segments") == ["c001"]
    counts = cat.query("select call_id, count(*) n from segments group by all order by all").to_pylist()
    assert counts == [{"call_id": "c000", "n": 3}, {"call_id": "c001", "n": 11}]


def test_verify_finds_a_broken_compacted_file_and_repair_drops_its_calls(tmp_path):
    cat = _catalog(tmp_path, n=5)
    cat.compact()
    assert verify(cat.root).problems == []
    f = next((cat.table_dir("words") / "_compacted").glob("*.parquet"))
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    report = verify(cat.root)
    assert [p.path for p in report.problems] == [f] and "unreadable" in report.problems[0].problem
    repaired = verify(cat.root, repair=True)
    assert repaired.n_left == 0 and "dropped 5 call(s)" in repaired.problems[0].repair
    assert cat.keys("calls") == []  # the next run reprocesses them
    assert cat.query("select count(*) n from segments").to_pylist() == [{"n": 0}]


def test_a_manifest_of_a_newer_format_is_refused_with_one_line(tmp_path):
    cat = _catalog(tmp_path, n=2)
    cat.compact()
    path = cat.table_dir("calls") / "_compacted" / "manifest.json"
    raw = json.loads(path.read_text())
    path.write_text(json.dumps(raw | {"format": 99}))
    with pytest.raises(CatalogError, match=r"manifest format 99.*upgrade speechfin") as info:
        cat.query("select count(*) from calls")
    assert "\n" not in str(info.value)
