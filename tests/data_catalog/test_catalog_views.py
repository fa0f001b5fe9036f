"""Views built per connection from the folder: copies and moves read their own data, a killed
write is invisible, a legacy catalog.duckdb does not matter."""

from __future__ import annotations

import shutil

import duckdb
from catalog_rows import segment_rows, word_rows, write_call
from typer.testing import CliRunner

from data_catalog import TABLES, Catalog
from pipelines.cli.main import app


def _calls(cat: Catalog) -> list[tuple[str, str]]:
    return [(r["call_id"], r["entity"]) for r in cat.query("select call_id, entity from calls order by 1").to_pylist()]


def _legacy_views(cat: Catalog) -> None:
    """The catalog.duckdb the previous version wrote: views with the absolute path of ``cat``."""
    con = duckdb.connect(str(cat.root / "catalog.duckdb"))
    for name in ("calls", "segments"):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{cat.root}/tables/{name}/*.parquet')")
    con.close()


def test_a_copied_catalog_reads_its_own_data(tmp_path):
    a = Catalog(tmp_path / "a")
    write_call(a, "aaaa", 3, entity="FOMC")
    _legacy_views(a)
    shutil.copytree(a.root, tmp_path / "b")
    b = Catalog(tmp_path / "b")
    write_call(b, "aaaa", 3, entity="ECB")  # change the copy only
    write_call(b, "bbbb", 4)
    assert _calls(a) == [("aaaa", "FOMC")]
    assert _calls(b) == [("aaaa", "ECB"), ("bbbb", "FOMC")]
    assert b.query("select count(*) n from segments").to_pylist() == [{"n": 7}]
    assert a.query("select count(*) n from segments").to_pylist() == [{"n": 3}]


def test_a_moved_catalog_answers(tmp_path):
    a = Catalog(tmp_path / "a")
    write_call(a, "aaaa", 3)
    _legacy_views(a)
    shutil.move(a.root, tmp_path / "moved")
    r = CliRunner().invoke(app, ["query", "select count(*) n from segments", "-c", str(tmp_path / "moved")])
    assert r.exit_code == 0, r.output
    assert "│ 3 │" in r.stdout


def test_a_garbage_legacy_database_does_not_matter(tmp_path):
    cat = Catalog(tmp_path)
    write_call(cat, "aaaa", 2)
    (cat.root / "catalog.duckdb").write_bytes(b"not a duckdb file" * 100)
    assert _calls(cat) == [("aaaa", "FOMC")]
    cat.refresh_views()  # callers keep working; the legacy file is removed
    assert not (cat.root / "catalog.duckdb").exists()
    assert _calls(cat) == [("aaaa", "FOMC")]


def test_a_killed_write_is_invisible(tmp_path):
    cat = Catalog(tmp_path)
    write_call(cat, "aaaa", 2)
    # killed during "write tables": segments and words written, calls not
    cat.write("segments", "dead", segment_rows("dead", 9))
    cat.write("words", "dead", word_rows("dead", 9))
    (cat.table_dir("speakers") / "dead.parquet").write_bytes(b"PAR1 half a file")
    assert cat.query("select distinct call_id from segments").to_pylist() == [{"call_id": "aaaa"}]
    assert cat.query("select count(*) n from words").to_pylist() == [{"n": 2}]
    assert cat.query("select count(*) n from speakers").to_pylist() == [{"n": 1}]  # the broken part is not read
    assert set(cat.read("segments", complete_only=True).column("call_id").to_pylist()) == {"aaaa"}
    cat.write("speakers", "dead", TABLES["speakers"].schema.empty_table())
    cat.write("voices", "dead", TABLES["voices"].schema.empty_table())
    cat.write("calls", "dead", [dict(r, call_id="dead") for r in cat.read("calls", "aaaa").to_pylist()])
    assert cat.query("select count(*) n from segments").to_pylist() == [{"n": 11}]


def test_empty_tables_have_typed_views(tmp_path):
    cat = Catalog(tmp_path)
    cat.ensure_writable()
    t = cat.query("select * from emotions")
    assert t.num_rows == 0 and "valence" in t.column_names


def test_a_corrupt_part_fails_only_the_queries_that_read_it(tmp_path):
    cat = Catalog(tmp_path)
    write_call(cat, "aaaa", 2)
    write_call(cat, "bbbb", 3)
    cat.part_path("calls", "aaaa").write_bytes(b"garbage")
    cat.part_path("segments", "bbbb").write_bytes(b"garbage")
    assert cat.query("select count(*) n from words").to_pylist() == [{"n": 5}]
    for table, key in (("calls", "aaaa"), ("segments", "bbbb")):
        r = CliRunner().invoke(app, ["query", f"select * from {table}", "-c", str(cat.root)])
        assert r.exit_code == 1
        assert r.stderr.strip().splitlines() == [
            f"error: query failed: Invalid Input Error: File '{cat.part_path(table, key)}' too small to be a Parquet "
            "file (run `speechfin catalog verify --repair`)"]
