"""Scheduled operation: the deployment's flow (watch_archive) under a real Prefect API
(prefect_test_harness), run on a watched archive to which a real recording is added."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from data_catalog import Catalog, CatalogError
from serve_helpers import SAMPLE_ROW, acme_study, add_sample_call, pyannote_sample, write_manifest


@pytest.fixture(scope="module")
def harness(prefect_api):
    return prefect_api


def _study(status: str, detail: str = ""):
    from pipelines.flows.serve import StudyOutcome, StudyStatus

    return StudyOutcome(StudyStatus[status], detail)


def _parts(cat: Path) -> dict[str, int]:
    return {str(p.relative_to(cat)): p.stat().st_mtime_ns for p in (cat / "tables").rglob("*.parquet")}


def _reports(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*")} if folder.exists() else {}


@pytest.fixture(scope="module")
def watched(tmp_path_factory, harness):
    """Trigger 0 on an empty archive; add the sample call; trigger 1; trigger 2 with nothing new."""
    from pipelines.speech.audio import file_sha256
    from pipelines.flows.serve import watch_archive

    base = tmp_path_factory.mktemp("serve")
    archive, cat, out = base / "archive", base / "catalog", base / "reports"
    spec = acme_study(base / "study")
    write_manifest(archive, [])
    run = lambda: watch_archive(str(archive), str(cat), str(out), [str(spec)], "embedded", ["html"],  # noqa: E731
                                retry_backoff_s=0.0)
    s0 = run()
    add_sample_call(archive)
    s1 = run()
    state1 = (_parts(cat), _reports(out))
    s2 = run()
    state2 = (_parts(cat), _reports(out))
    return dict(archive=archive, cat=cat, out=out, spec=spec, s0=s0, s1=s1, s2=s2, state1=state1, state2=state2,
                call_id=file_sha256(archive / "sample.wav")[:16], run=run)


def test_empty_archive_does_nothing(watched):
    s0 = watched["s0"]
    assert s0.did_nothing and s0.n_files == 0 and s0.new_files == []
    assert s0.studies == {"acme_calls": _study("NO_CALLS")}


def test_added_file_is_processed_and_reported(watched):
    s1, cat, out, call_id = watched["s1"], Catalog(watched["cat"]), watched["out"], watched["call_id"]
    assert s1.new_files == ["sample.wav"]
    assert s1.processed == [("sample.wav", call_id)] and s1.failed == []
    assert cat.keys("calls") == [call_id]                       # exactly that call was added
    row = cat.read("calls", call_id).to_pylist()[0]
    assert (row["entity"], row["event_type"]) == ("ACME", "earnings_call")
    assert row["event_time"] == pd.Timestamp(SAMPLE_ROW["event_time"])
    assert cat.read("segments", call_id).num_rows > 0 and cat.read("emotions", call_id).num_rows > 0
    # the affected study was re-run on the new call, and both reports were written
    assert s1.studies["acme_calls"].status.name == "REFRESHED"
    assert s1.studies["acme_calls"].detail.startswith("not run yet;")
    ev = cat.read("events", "acme_calls").to_pylist()
    assert [(e["call_id"], str(e["event_date"]), e["kept"]) for e in ev] == [(call_id, "2018-06-01", True)]
    assert sorted(Path(p).name for p in s1.reports) == [f"call_{call_id}.html", "study_acme_calls.html"]
    html = (out / f"call_{call_id}.html").read_text()
    assert call_id in html and "ACME sample call" in html and 'id="fig-tone"' in html
    assert "acme_calls" in (out / "study_acme_calls.html").read_text()
    recorded = cat.read("reports").to_pandas()
    assert sorted(zip(recorded["kind"], recorded["subject"])) == [("call", call_id), ("study", "acme_calls")]
    files = cat.read("watched_files").to_pylist()
    assert [(f["file"], f["status"], f["call_id"]) for f in files] == [("sample.wav", "processed", call_id)]
    assert "processed 1, failed 0" in s1.summary() and "2 report(s) written" in s1.summary()


def test_second_trigger_with_nothing_new_does_nothing(watched):
    s2 = watched["s2"]
    assert s2.did_nothing and s2.new_files == [] and s2.processed == [] and s2.reports == []
    assert s2.studies == {"acme_calls": _study("UP_TO_DATE")}
    assert watched["state2"] == watched["state1"]              # no Parquet part and no report rewritten
    assert "nothing new (1 file(s) known)" in s2.summary()


def test_bad_new_file_fails_alone_and_is_recorded(watched, tmp_path):
    """A third trigger after adding a broken file: it fails with its reason, the rest is untouched."""
    archive, cat = watched["archive"], Catalog(watched["cat"])
    (archive / "broken.wav").write_bytes(b"")
    write_manifest(archive, [SAMPLE_ROW, dict(SAMPLE_ROW, file="broken.wav", title="broken")])
    before = _parts(watched["cat"])
    s3 = watched["run"]()
    assert s3.new_files == ["broken.wav"] and s3.processed == []
    assert [f for f, _ in s3.failed] == ["broken.wav"] and "empty file (0 bytes)" in s3.failed[0][1]
    assert "failed: " in s3.summary() and "broken.wav" in s3.summary()
    assert cat.keys("calls") == [watched["call_id"]]
    fails = cat.read("failures").to_pylist()
    assert [(Path(f["source_uri"]).name, f["stage"]) for f in fails] == [("broken.wav", "decode")]
    after = _parts(watched["cat"])
    changed = {k for k in after if after[k] != before.get(k)}
    assert all(k.split("/")[1] in ("failures", "watched_files") for k in changed), changed
    assert s3.studies == {"acme_calls": _study("UP_TO_DATE")} and s3.reports == []


def test_deleted_archive_fails_clearly_and_writes_nothing(harness, tmp_path):
    from pipelines.flows.serve import ArchiveGoneError, watch_archive

    cat = tmp_path / "catalog"
    with pytest.raises(ArchiveGoneError, match=r"gone: archive folder not found"):
        watch_archive(str(tmp_path / "gone"), str(cat))
    assert not cat.exists()


def test_archive_deleted_during_the_run_stops_before_recording(harness, tmp_path, monkeypatch):
    """The folder vanishes while process_archive runs: the run stops with one line, and the archive's
    state is not recorded (what was processed is complete; the rest is picked up if it comes back)."""
    import pipelines.flows.serve as fs
    from pipelines.flows.calls import ArchiveSummary

    archive = tmp_path / "archive"
    add_sample_call(archive)

    def vanishing(archive_dir, catalog_dir, *args):
        shutil.rmtree(archive_dir)
        return ArchiveSummary(archive_dir, catalog_dir, [], 0.0)

    monkeypatch.setattr(fs, "process_archive", vanishing)
    monkeypatch.setattr(fs, "load_models_task", lambda *a, **k: 0.0)
    monkeypatch.setattr(fs, "_retrying", lambda t, *a: t)
    cat = tmp_path / "catalog"
    with pytest.raises(fs.ArchiveGoneError, match="archive folder was deleted during the run"):
        fs.watch_archive(str(archive), str(cat))
    assert not Catalog(cat).keys("watched_files") and not Catalog(cat).keys("reports")


def test_read_only_catalog_fails_before_writing(harness, tmp_path):
    from pipelines.flows.serve import watch_archive

    archive, cat = tmp_path / "archive", tmp_path / "catalog"
    write_manifest(archive, [])
    cat.mkdir()
    os.chmod(cat, 0o555)
    try:
        with pytest.raises(CatalogError, match="catalog folder is read-only"):
            watch_archive(str(archive), str(cat))
        assert list(cat.iterdir()) == []
    finally:
        os.chmod(cat, 0o755)


def test_study_download_retried_with_backoff_then_recorded(harness, tmp_path, monkeypatch):
    """A transient price-source error is retried; a permanent one is not, and lands in `failures`."""
    import finance.studies
    from finance.errors import EventsError, PriceSourceError
    from pipelines.flows.serve import watch_archive

    archive, cat = tmp_path / "archive", Catalog(tmp_path / "catalog")
    write_manifest(archive, [])
    cat.write("calls", "0123456789abcdef", [dict(
        call_id="0123456789abcdef", event_type="earnings_call", entity="ACME", language="en", duration_s=30.0,
        event_time=pd.Timestamp("2018-06-01 12:00", tz="UTC"), source_uri=str(archive / "x.wav"), title="x",
        processed_at=pd.Timestamp.now(tz="UTC"), pipeline_version="0.1.0", profile="embedded")])
    spec = acme_study(tmp_path / "study")
    real, calls = finance.studies.run_study, []

    def flaky(spec_path, catalog, *a, **k):
        calls.append(spec_path)
        if len(calls) < 3:
            raise PriceSourceError("yahoo: HTTP 503 (rate limited)")
        return real(spec_path, catalog, *a, **k)

    monkeypatch.setattr(finance.studies, "run_study", flaky)
    s = watch_archive(str(archive), str(cat.root), "", [str(spec)], retries=3, retry_backoff_s=0.0)
    assert len(calls) == 3 and s.studies["acme_calls"].status.name == "REFRESHED"
    assert cat.keys("failures") == []

    def broken(spec_path, catalog, *a, **k):
        calls.append(spec_path)
        raise EventsError("catalog table 'calls': no calls for study 'acme_calls'")

    monkeypatch.setattr(finance.studies, "run_study", broken)
    calls.clear()
    (tmp_path / "study" / "acme_calls.toml").write_text(spec.read_text() + "\n# edited\n")  # spec changed: re-run
    s = watch_archive(str(archive), str(cat.root), "", [str(spec)], retries=3, retry_backoff_s=0.0)
    assert len(calls) == 1 and s.studies["acme_calls"] == _study(
        "FAILED", "catalog table 'calls': no calls for study 'acme_calls'")
    fails = cat.read("failures").to_pylist()
    assert [(f["stage"], f["reason"]) for f in fails] == [("study", "catalog table 'calls': no calls for study 'acme_calls'")]


def test_transient_errors():
    from finance.errors import PriceSourceError, SpecError
    from pipelines.flows.serve import is_transient

    assert is_transient(PriceSourceError("x")) and is_transient(ConnectionResetError()) and is_transient(TimeoutError())
    assert is_transient(OSError(5, "Input/output error"))
    assert not is_transient(SpecError("x")) and not is_transient(FileNotFoundError("x")) and not is_transient(ValueError())
    from data_catalog.store import CatalogIOError

    full = CatalogIOError("/cat/tables/calls/x.parquet", OSError(28, "No space left on device"))
    assert isinstance(full, OSError) and full.errno == 28 and not is_transient(full)  # a retry meets the same disk
    assert not is_transient(OSError(30, "Read-only file system"))


def test_sample_is_the_pyannote_recording():
    assert pyannote_sample().stat().st_size > 900_000  # 30 s of 16 kHz 16-bit audio
