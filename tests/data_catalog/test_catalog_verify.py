"""speechfin catalog verify [--repair], and the cheap check a run does for each call."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from catalog_rows import segment_rows, voice_rows, write_call
from typer.testing import CliRunner

from data_catalog import Catalog
from pipelines.cli.main import app
from pipelines.tables import is_complete
from pipelines.voices import link_voices_catalog


def _verify(cat: Catalog, *args: str):
    return CliRunner().invoke(app, ["catalog", "verify", "-c", str(cat.root), *args])


def _age(*paths, seconds: float = 7200) -> None:
    t = time.time() - seconds
    for p in paths:
        os.utime(p, (t, t))


def test_a_corrupt_part_is_found_repaired_and_reprocessed(tmp_path):
    cat = Catalog(tmp_path)
    write_call(cat, "aaaa")
    write_call(cat, "bbbb")
    assert is_complete(cat, "aaaa", "embedded")
    r = _verify(cat)
    assert r.exit_code == 0 and r.stdout.strip() == f"{cat.root}: 10 parts checked, 0 problem(s)"

    seg = cat.part_path("segments", "aaaa")
    seg.write_bytes(seg.read_bytes()[:-40])  # the footer is gone
    assert not is_complete(cat, "aaaa", "embedded")  # so the run reprocesses it
    assert is_complete(cat, "bbbb", "embedded")
    r = _verify(cat)
    assert r.exit_code == 1
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith(f"{seg}: unreadable Parquet (")
    assert lines[1:] == [f"{cat.root}: 10 parts checked, 1 problem(s)",
                         "run `speechfin catalog verify --repair` to drop what is broken"]

    r = _verify(cat, "--repair")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().splitlines()[0].endswith("; dropped call aaaa: the next run reprocesses it")
    assert "10 parts checked, 1 problem(s), 1 repaired" in r.stdout
    assert cat.keys("calls") == ["bbbb"] and not seg.exists() and cat.keys("words") == ["bbbb"]
    assert _verify(cat).exit_code == 0
    assert cat.query("select count(*) n from segments").to_pylist() == [{"n": 5}]


def test_wrong_schema_and_wrong_key_are_found(tmp_path):
    cat = Catalog(tmp_path)
    write_call(cat, "aaaa")
    write_call(cat, "bbbb")
    t = pa.Table.from_pylist(segment_rows("aaaa", 2))
    pq.write_table(t.set_column(1, "segment_id", pa.array(["0", "1"])), cat.part_path("segments", "aaaa"))
    pq.write_table(pa.Table.from_pylist(segment_rows("aaaa", 2), schema=t.schema), cat.part_path("segments", "bbbb"))
    r = _verify(cat)
    assert r.exit_code == 1
    assert f"{cat.part_path('segments', 'aaaa')}: column 'segment_id' is string, not int64" in r.stdout
    assert f"{cat.part_path('segments', 'bbbb')}: rows for ['aaaa'] in the part of 'bbbb'" in r.stdout
    assert "2 problem(s)" in r.stdout


def test_other_broken_parts_and_leftovers_are_dropped(tmp_path):
    cat = Catalog(tmp_path)
    write_call(cat, "aaaa")
    prices = cat.table_dir("prices") / "SPY.parquet"
    prices.parent.mkdir(parents=True)
    prices.write_bytes(b"garbage")
    (cat.root / "catalog.duckdb").write_bytes(b"garbage")
    old_tmp = cat.table_dir("segments") / ".aaaa.parquet.abc.tmp"
    old_tmp.write_bytes(b"half")
    cat.write("segments", "dead", segment_rows("dead"))  # killed before its calls part, two hours ago
    cat.write("segments", "live", segment_rows("live"))  # a run writing now
    _age(old_tmp, cat.part_path("segments", "dead"))
    r = _verify(cat, "--repair")
    assert r.exit_code == 1  # the live run's parts are left alone
    out = r.stdout
    assert f"{prices}: unreadable Parquet" in out and "; dropped" in out
    assert f"{cat.root / 'catalog.duckdb'}: view database of an older version (not read any more); removed" in out
    assert f"{old_tmp}: temporary file of a killed writer; removed" in out
    assert "incomplete call dead (1 part(s), no calls part): invisible to queries; removed" in out
    assert "incomplete call live (1 part(s), no calls part): invisible to queries, written in the last hour" in out
    assert "5 problem(s), 4 repaired" in out
    assert not prices.exists() and not old_tmp.exists() and not (cat.root / "catalog.duckdb").exists()
    assert cat.keys("segments") == ["aaaa", "live"]


def test_a_complete_call_missing_a_part_is_incomplete(tmp_path):
    cat = Catalog(tmp_path)
    write_call(cat, "aaaa")
    cat.delete("words", "aaaa")
    assert not is_complete(cat, "aaaa", "embedded")
    r = _verify(cat, "--repair")
    assert (f"{cat.part_path('calls', 'aaaa')}: complete call without its words part(s); dropped call aaaa: "
            "the next run reprocesses it") in r.stdout
    assert r.exit_code == 0 and cat.keys("calls") == []


def test_an_unreadable_emotion_part_makes_the_call_incomplete(tmp_path):
    cat = Catalog(tmp_path)
    write_call(cat, "aaaa")
    (cat.table_dir("call_features")).mkdir(parents=True)
    cat.part_path("call_features", "aaaa").write_bytes(b"PAR1")
    assert not is_complete(cat, "aaaa", "embedded")


def test_a_corrupt_voices_part_does_not_fail_voice_linking(tmp_path, caplog):
    cat = Catalog(tmp_path)
    write_call(cat, "aaaa")
    write_call(cat, "bbbb")
    cat.write("voices", "bbbb", voice_rows("bbbb", [0.0, 1.0, 0.0]))
    write_call(cat, "cccc")
    cat.write("voices", "cccc", [dict(voice_rows("cccc", [0.0, 0.9, 0.1])[0], voice_id=""),
                                 dict(voice_rows("cccc", [1.0, 0.0, 0.0])[0], speaker="SPEAKER_01", voice_id="")])
    cat.part_path("voices", "aaaa").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        links = link_voices_catalog(cat)
    assert (links.speakers, links.joined) == (2, 1)
    ids = {r["speaker"]: r["voice_id"] for r in cat.read("voices", "cccc").to_pylist()}
    assert ids == {"SPEAKER_00": "v_bbbb", "SPEAKER_01": "v_cccc_SPEAKER_01"}
    assert cat.read("speakers", "cccc").to_pylist()[0]["voice_id"] == "v_bbbb"
    assert any("voices/aaaa.parquet: unreadable Parquet part" in m for m in caplog.messages)


def test_a_part_this_user_cannot_read_is_left_alone(tmp_path, monkeypatch):
    cat = Catalog(tmp_path)
    write_call(cat, "aaaa")
    seg = cat.part_path("segments", "aaaa")
    monkeypatch.setattr("data_catalog.verify.os.access", lambda p, mode: Path(p) != seg)
    r = _verify(cat, "--repair")
    assert r.exit_code == 1
    assert f"{seg}: not readable by this user (permission denied); left alone" in r.stdout
    assert seg.exists() and cat.keys("calls") == ["aaaa"]
