"""speechfin query: one read-only statement on a sandboxed, streaming DuckDB connection."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from catalog_rows import snapshot, write_call
from typer.testing import CliRunner

from data_catalog import Catalog, CatalogError
from data_catalog.query import check_query, open_query
from pipelines.cli.main import app

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def cat(tmp_path) -> Catalog:
    c = Catalog(tmp_path / "cat")
    write_call(c, "aaaa", 6)
    return c


def _query(cat: Catalog, *args: str):
    return CliRunner().invoke(app, ["query", "--catalog", str(cat.root), *args])


def test_a_select_answers(cat):
    r = _query(cat, "select call_id, count(*) n from segments group by 1")
    assert r.exit_code == 0, r.output
    assert "aaaa" in r.stdout and "│ 6 " in r.stdout
    assert r.stdout.strip().endswith("1 rows")


@pytest.mark.parametrize("sql, word", [
    ("COPY (SELECT 1 AS x) TO '{outside}'", "COPY"),
    ("COPY segments TO '{root}/tables/segments/aaaa.parquet'", "COPY"),
    ("COPY (SELECT * FROM calls) TO '{root}/tables/calls/fake.parquet'", "COPY"),
    ("ATTACH '{outside}.db' AS x", "ATTACH"),
    ("INSTALL httpfs", "INSTALL"),
    ("LOAD httpfs", "LOAD"),
    ("SET threads = 8", "SET"),
    ("CREATE TEMP TABLE t AS SELECT 1", "CREATE"),
    ("PRAGMA version", "PRAGMA"),
])
def test_writes_and_settings_are_refused(cat, tmp_path, sql, word):
    outside = tmp_path / "outside.csv"
    outside.write_text("keep me\n")
    before = snapshot(cat.root)
    r = _query(cat, sql.format(outside=outside, root=cat.root))
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [
        f"error: query failed: {word} statements are refused; the catalog is read-only "
        "(one SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW or SUMMARIZE query)"]
    assert outside.read_text() == "keep me\n" and not Path(f"{outside}.db").exists()
    assert snapshot(cat.root) == before


def test_several_statements_are_refused(cat, tmp_path):
    target = tmp_path / "hidden.csv"
    before = snapshot(cat.root)
    r = _query(cat, f"COPY (SELECT 1) TO '{target}'; SELECT * FROM calls")
    assert r.exit_code == 2
    assert r.stderr.strip() == "error: query failed: give exactly one statement, not 2"
    assert not target.exists() and snapshot(cat.root) == before


def test_select_cannot_reach_other_files_or_objects(cat, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    for sql in (f"select * from read_csv('{secret}')", f"select * from read_parquet('{cat.root}/../secret.csv')",
                "select * from glob('/etc/*')", "select * from read_text('/etc/hostname')"):
        with pytest.raises(CatalogError, match="Permission Error"):
            cat.query(sql)
    local_table = cat.read("calls")  # noqa: F841 - a Python object a replacement scan could find
    with pytest.raises(CatalogError, match="local_table does not exist"):
        cat.query("select * from local_table")


def test_a_reused_connection_is_still_sandboxed_and_sees_new_writes(cat, tmp_path):
    """Queries of an unchanged catalog reuse one connection (``_cached_connect``); the reuse keeps
    the sandbox, and a write in between gives a fresh connection with the new rows."""
    from data_catalog import query

    sql = "select count(*) n from calls"
    n = cat.query(sql).to_pylist()[0]["n"]
    con = query._cached_connect(cat.root, query.DEFAULT_MEMORY_LIMIT, query.DEFAULT_THREADS, ["calls"])
    assert con.execute(sql).fetchone()[0] == n  # the cached one, as a cursor
    with pytest.raises(Exception, match="Permission Error"):
        con.execute("select * from read_text('/etc/hostname')")
    with pytest.raises(Exception, match="lock_configuration|locked"):
        con.execute("SET enable_external_access = true")
    write_call(Catalog(cat.root), "zzzz_new")
    assert cat.query(sql).to_pylist() == [{"n": n + 1}]
    with pytest.raises(CatalogError, match="Permission Error"):
        cat.query("select * from read_text('/etc/hostname')")


def test_sandbox_settings_hold(cat):
    row = cat.query("select current_setting('enable_external_access') ext, current_setting('lock_configuration') "
                    "lock, current_setting('autoload_known_extensions') autoload, "
                    "current_setting('autoinstall_known_extensions') autoinstall, current_setting('threads') th",
                    threads=1).to_pylist()
    assert row == [{"ext": False, "lock": True, "autoload": False, "autoinstall": False, "th": 1}]
    assert check_query("  with x as (select 1) select * from x ;").strip().startswith("with x")


def test_time_limit_holds(cat):
    t0 = time.monotonic()
    with pytest.raises(CatalogError, match="time limit of 1 s reached"):
        cat.query("select count(*) from range(1000000000000)", timeout_s=1)
    assert time.monotonic() - t0 < 10
    t0 = time.monotonic()
    r = _query(cat, "select * from range(1000000000000) order by 1 desc", "--timeout", "1")
    assert r.exit_code == 1 and r.stderr.strip() == "error: query stopped: time limit of 1 s reached"
    assert time.monotonic() - t0 < 15


def test_memory_limit_holds(cat):
    with pytest.raises(CatalogError, match="Out of Memory"):
        cat.query("select * from range(50000000) order by random()", memory_limit="64MB")


def test_row_limit_holds(cat, tmp_path):
    with open_query(cat.root, "select * from range(100000)", max_rows=7) as res:
        t = res.read_all()
    assert t.num_rows == 7 and res.truncated
    with open_query(cat.root, "select * from range(7)", max_rows=7) as res:
        assert res.read_all().num_rows == 7 and not res.truncated
    out = tmp_path / "o.parquet"
    r = _query(cat, "select * from range(100000)", "--out", str(out), "--max-rows", "1000")
    assert r.exit_code == 0 and "wrote 1000 rows" in r.stdout and "stopped at --max-rows 1000" in r.stdout
    assert pq.read_table(out).num_rows == 1000


def test_out_streams_to_parquet_and_csv(cat, tmp_path):
    for name in ("big.parquet", "big.csv"):
        out = tmp_path / "sub" / name
        r = _query(cat, "select range as i, range * 2 as j from range(300000)", "--out", str(out))
        assert r.exit_code == 0 and f"wrote 300000 rows to {out}" in r.stdout
        if name.endswith(".parquet"):
            t = pq.read_table(out)
            assert t.num_rows == 300000 and t.column("j").to_pylist()[-1] == 599998
        else:
            assert out.read_text().count("\n") == 300001
        assert [p.name for p in out.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_out_refuses_the_catalog_tables(cat):
    before = snapshot(cat.root)
    r = _query(cat, "select * from calls", "--out", str(cat.root / "tables" / "calls" / "fake.parquet"))
    assert r.exit_code == 2 and "refusing to write into the catalog's tables" in r.stderr
    assert snapshot(cat.root) == before


MEASURE = """
import resource, sys
from typer.testing import CliRunner
from pipelines.cli.main import app
runner = CliRunner()
assert runner.invoke(app, ["query", "-c", sys.argv[1], "select * from range(1000)"]).exit_code == 0  # warm imports
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r = runner.invoke(app, ["query", "-c", sys.argv[1], "select * from range(100000000)"])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(r.exit_code, (after - before) // 1024, r.stdout.strip().splitlines()[-1])
"""


def test_printing_the_first_rows_does_not_materialise_the_result(cat):
    # 1e8 BIGINT rows materialised are 800 MB; streamed, the first batches cost a few MB
    out = subprocess.run([sys.executable, "-c", MEASURE, str(cat.root)], capture_output=True, text=True,
                         cwd=REPO, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    code, growth_mb, last = out.stdout.strip().split(" ", 2)
    assert code == "0", out.stderr
    assert last == "first 50 rows shown; the result has more (--out FILE writes them all)"
    assert int(growth_mb) < 250, f"peak RSS grew by {growth_mb} MB"
