"""Catalog writes: full disk and permissions give one line, modes follow the umask, stale
temporary files are cleaned up."""

from __future__ import annotations

import errno
import os
import time

import pyarrow.parquet as pq
import pytest
from catalog_rows import segment_rows, write_call
from typer.testing import CliRunner

from data_catalog import Catalog, CatalogError, CatalogIOError
from pipelines.cli.main import app
from pipelines.tables import record_failure


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_on_write_is_one_line_and_keeps_the_old_part(tmp_path, monkeypatch):
    cat = Catalog(tmp_path)
    cat.write("segments", "aaaa", segment_rows("aaaa", 4))
    monkeypatch.setattr(pq, "write_table", _enospc)
    with pytest.raises(CatalogError) as info:
        cat.write("segments", "aaaa", segment_rows("aaaa", 9))
    path = cat.part_path("segments", "aaaa")
    assert str(info.value) == f"{path}: cannot write (No space left on device)"
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert cat.read("segments", "aaaa").num_rows == 4
    assert sorted(p.name for p in path.parent.iterdir()) == ["aaaa.parquet"]


def test_recording_a_failure_on_a_full_disk_is_one_line(tmp_path, monkeypatch):
    cat = Catalog(tmp_path)
    monkeypatch.setattr(pq, "write_table", _enospc)
    with pytest.raises(CatalogError) as info:
        record_failure(cat, "/archive/x.wav", "decode", "x.wav: no space left on device")
    assert len(str(info.value).splitlines()) == 1
    assert str(info.value).startswith(f"{cat.root}/tables/failures/")
    assert str(info.value).endswith(".parquet: cannot write (No space left on device)")


def test_permission_denied_is_one_line(tmp_path, monkeypatch):
    cat = Catalog(tmp_path)

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", denied)
    with pytest.raises(CatalogIOError, match=r"segments/aaaa.parquet: cannot write \(Permission denied\)$"):
        cat.write("segments", "aaaa", segment_rows("aaaa", 1))


def test_query_out_on_a_full_disk_is_one_line(tmp_path, monkeypatch):
    cat = Catalog(tmp_path / "cat")
    write_call(cat, "aaaa")
    monkeypatch.setattr(pq, "ParquetWriter", _enospc)
    out = tmp_path / "o.parquet"
    r = CliRunner().invoke(app, ["query", "select * from segments", "-c", str(cat.root), "-o", str(out)])
    assert r.exit_code == 1
    assert r.stderr.strip().splitlines() == [f"error: {out}: cannot write (No space left on device)"]
    assert "Traceback" not in r.output and not out.exists() and list(tmp_path.glob(".o.parquet*")) == []


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_parts_follow_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        path = Catalog(tmp_path).write("segments", "aaaa", segment_rows("aaaa", 1))
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == oct(mode)


def test_stale_temporary_files_are_removed_fresh_ones_kept(tmp_path):
    cat = Catalog(tmp_path / "cat")
    d = cat.table_dir("segments")
    d.mkdir(parents=True)
    old, fresh = d / ".aaaa.parquet.x1.tmp", d / ".bbbb.parquet.x2.tmp"
    for p in (old, fresh):
        p.write_bytes(b"PAR1 half")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    cat.write("segments", "cccc", segment_rows("cccc", 1))  # the first write of this process for this catalog
    assert not old.exists() and fresh.exists()
    assert (d / "cccc.parquet").exists()


def test_an_unreadable_part_is_a_one_line_error(tmp_path):
    cat = Catalog(tmp_path)
    cat.write("segments", "aaaa", segment_rows("aaaa", 1))
    cat.part_path("segments", "aaaa").write_bytes(b"garbage")
    with pytest.raises(CatalogError, match=r"segments/aaaa.parquet: unreadable Parquet part .*verify --repair`$"):
        cat.read("segments", "aaaa")
