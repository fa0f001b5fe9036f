"""The main job as a real Prefect run: exact rows, idempotent re-runs, bad files, a kill."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from front_paths import REPO, copy_demo_call
from data_catalog import TABLES, Catalog


def _bad_rows(archive: Path) -> list[dict]:
    (archive / "zero.wav").write_bytes(b"")
    (archive / "notes.wav").write_text("not audio at all\n" * 50)
    sf.write(archive / "silence.wav", np.zeros(16_000 * 3, np.float32), 16_000)
    base = {"event_type": "press_conference", "entity": "FOMC", "event_time": "2018-12-19T19:30:00Z"}
    return [dict(base, file="zero.wav"), dict(base, file="notes.wav"), dict(base, file="silence.wav"),
            dict(base, file="missing.wav"), dict(base, file="../escape.wav"),
            dict(base, file="zero.wav", event_time="last tuesday"), dict(base, file="zero.wav", event_type="gala")]


def _parts(cat: Path) -> dict[str, float]:
    return {str(p.relative_to(cat)): p.stat().st_mtime_ns for p in (cat / "tables").rglob("*.parquet")}


@pytest.fixture(scope="module")
def processed(tmp_path_factory, prefect_harness, models):
    from pipelines.flows.calls import process_archive

    # the call's six synthetic voices, given as its speakers_hint (CAM++ hears some espeak-ng
    # variants as one voice: test_front_speech.test_der_on_demo_archive)
    archive = copy_demo_call(tmp_path_factory.mktemp("archive"), speakers_hint=6)
    extra = _bad_rows(archive)
    copy_demo_call(archive, rows_extra=extra, speakers_hint=6)  # rewrite the manifest with the bad rows
    cat = tmp_path_factory.mktemp("catalog")
    summary = process_archive(str(archive), str(cat), show_progress=False)
    shutil.copytree(cat, _pristine(cat))  # before other tests change it (e.g. another SER model)
    return archive, cat, summary


def _pristine(cat: Path) -> Path:
    return cat.parent / f"{cat.name}_as_first_processed"


def test_archive_run_counts_and_failures(processed):
    archive, cat, summary = processed
    assert summary.count("processed") == 1
    assert summary.count("failed") == 7 and summary.count("skipped") == 0
    reasons = [o.reason for o in summary.outcomes if o.status == "failed"]
    for needle in ["zero.wav: empty file (0 bytes)", "notes.wav: not a readable audio file", "silence.wav: silent audio",
                   "missing.wav: file not found", "points outside the archive", "bad event_time 'last tuesday'",
                   "unknown event_type 'gala'"]:
        assert sum(needle in r for r in reasons) == 1, (needle, reasons)
    assert all("\n" not in r for r in reasons)
    c = Catalog(cat)
    failures = c.read("failures").to_pylist()
    assert len(failures) == 7  # one record per failed manifest row
    assert {f["stage"] for f in failures} >= {"decode", "manifest"}


def test_catalog_rows_are_consistent(processed):
    _, cat, summary = processed
    out = next(o for o in summary.outcomes if o.status == "processed")
    c = Catalog(cat)
    q = lambda sql: c.query(sql).to_pylist()  # noqa: E731
    assert q("select count(*) n from calls") == [{"n": 1}]
    call = q("select * from calls")[0]
    assert call["call_id"] == out.call_id and call["event_type"] == "press_conference" and call["profile"] == "embedded"
    assert call["duration_s"] == pytest.approx(out.duration_s)
    assert q("select count(*) n from segments") == [{"n": out.n_segments}]
    assert q("select count(*) n from speakers") == [{"n": out.n_speakers}]
    from front_paths import DEMO
    from pipelines.speech.evaluation import read_rttm

    ref = next(iter(read_rttm(DEMO / "reference" / "fomc_press_conference_20181219.rttm").values()))
    voices = {t.speaker for t in ref}
    assert out.n_speakers == len(voices)  # one speaker per synthetic voice: the hint is honoured exactly
    roles = q("select role, count(*) n from speakers group by 1 order by 1")
    assert roles[0] == {"role": "chair", "n": 1}
    assert sum(r["n"] for r in roles[1:]) == len(voices) - 1
    assert {r["role"] for r in roles[1:]} <= {"journalist", "operator"}
    chair = q("select speaker from speakers where role = 'chair'")[0]["speaker"]
    first = q("select speaker, section from segments order by segment_id limit 1")[0]
    assert first == {"speaker": chair, "section": "prepared"}
    assert q("select count(distinct section) n from segments") == [{"n": 2}]
    # every word lies inside its segment, every segment's speaker is a known speaker
    assert q("""select count(*) n from words w join segments s using (call_id, segment_id)
                where w.start_s < s.start_s - 1e-6 or w.end_s > s.end_s + 1e-6""") == [{"n": 0}]
    assert q("select count(*) n from segments where speaker not in (select speaker from speakers)") == [{"n": 0}]
    assert q("""select count(*) n from segments s where text <> (select string_agg(word, ' ' order by start_s)
                from words w where w.call_id = s.call_id and w.segment_id = s.segment_id)""") == [{"n": 0}]
    assert q("select count(*) n from segments where end_s < start_s or asr_confidence not between 0 and 1") == [{"n": 0}]
    for name in ("calls", "speakers", "segments", "words"):
        got = c.query(f"select * from {name} limit 0").schema
        assert got.names[: len(TABLES[name].columns)] == TABLES[name].columns


def test_rerun_is_idempotent(processed, prefect_harness):
    from pipelines.flows.calls import process_archive

    archive, cat, first = processed
    before = _parts(cat)
    summary = process_archive(str(archive), str(cat), show_progress=False)
    assert summary.count("skipped") == 1 and summary.count("processed") == 0 and summary.count("failed") == 7
    after = _parts(cat)
    changed = [p for p in after if before.get(p) != after[p] and not p.startswith("tables/failures")]
    assert changed == []


def test_crash_in_the_middle_then_rerun(tmp_path, sample_dir, prefect_harness, models):
    """SIGKILL the run right after the ``words`` part is written: no ``calls`` row is left,
    and a re-run completes the call with no duplicate rows."""
    from pipelines.flows.calls import process_archive

    archive = tmp_path / "archive"
    archive.mkdir()
    shutil.copy(sample_dir / "sample.wav", archive / "sample call.wav")
    (archive / "manifest.csv").write_text(
        "file,event_type,entity,event_time\nsample call.wav,earnings_call,ACME,2018-06-01T12:00:00Z\n")
    cat = tmp_path / "catalog"
    script = textwrap.dedent(f"""
        import os, signal
        from data_catalog import store
        real = store.Catalog.write
        def write(self, table, key, data):
            path = real(self, table, key, data)
            if table == "words":
                os.kill(os.getpid(), signal.SIGKILL)
            return path
        store.Catalog.write = write
        from pipelines.flows.calls import process_archive
        process_archive({str(archive)!r}, {str(cat)!r}, show_progress=False)
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    log = tmp_path / "killed_run.log"
    with log.open("w") as out:  # a file, not a pipe: the run's Prefect server child outlives it
        proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=out, stderr=out, start_new_session=True)
        try:
            code = proc.wait(timeout=600)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the run's own children (temporary Prefect server)
            except ProcessLookupError:
                pass
    assert code == -signal.SIGKILL, log.read_text()[-2000:]
    c = Catalog(cat)
    assert c.keys("calls") == [] and len(c.keys("words")) == 1 and len(c.keys("segments")) == 1
    summary = process_archive(str(archive), str(cat), show_progress=False)
    assert summary.count("processed") == 1
    out = summary.outcomes[0]
    assert c.query("select count(*) n from calls").to_pylist() == [{"n": 1}]
    assert c.query("select count(*) n, count(distinct segment_id) d from segments").to_pylist() == [
        {"n": out.n_segments, "d": out.n_segments}]
    assert not list((cat / "tables").rglob("*.tmp"))


def test_emotion_tables_match_segments(processed):
    _, cat, summary = processed
    out = next(o for o in summary.outcomes if o.status == "processed")
    c = Catalog(cat)
    q = lambda sql: c.query(sql).to_pylist()  # noqa: E731
    assert q("select count(*) n, count(distinct segment_id) d from emotions") == [{"n": out.n_segments, "d": out.n_segments}]
    assert q("select count(*) n from emotions e anti join segments s using (call_id, segment_id)") == [{"n": 0}]
    feats = q("select * from call_features")
    assert len(feats) == 1 and feats[0]["call_id"] == out.call_id
    from pipelines.speech.models import load_emotion

    assert feats[0]["model_id"] == load_emotion("").model_id
    # probabilities of scored segments sum to one
    pcols = [n for n in c.query("select * from emotions limit 0").column_names if n.startswith("p_")]
    assert len(pcols) >= 4
    sums = q(f"select {' + '.join(pcols)} as s from emotions where {pcols[0]} is not null")
    assert sums and all(abs(r["s"] - 1) < 1e-4 for r in sums)


def test_qa_pairs_and_baselines_of_a_processed_call(processed):
    """The demo call's question-answer pairs against its reference turns (measured: 4 of 5
    matched; the bound leaves one more miss), and the baseline step's rows."""
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from qa_pairs_demo import match, reference_pairs

    _, cat, summary = processed
    out = next(o for o in summary.outcomes if o.status == "processed")
    c = Catalog(cat)
    pairs = c.read("qa_pairs", out.call_id).to_pandas()
    ref = reference_pairs(REPO / "pipelines" / "demo_archive" / "reference" / "fomc_press_conference_20181219.stm")
    assert len(ref) == 5 and sum(match(ref, pairs, tolerance=0.5)) >= 3
    assert set(pairs.loc[pairs["answered"], "answerer_role"]) == {"chair"}
    voices = c.read("speakers", out.call_id).to_pandas().set_index("speaker")["voice_id"]
    assert (pairs["asker_voice_id"] == pairs["asker_speaker"].map(voices)).all()   # filled when the call is written
    base = c.read("speaker_baselines", out.call_id).to_pandas()
    spk = c.read("speakers", out.call_id).to_pandas()
    assert len(base) == (spk["role"] != "operator").sum() and set(base["baseline_status"]) == {"first_call"}
    feats = c.read("call_features", out.call_id).to_pandas()
    assert feats["n_persons_with_baseline"].tolist() == [0] and feats["chair_abnormal_tone"].isna().all()


def test_changed_ser_model_recomputes_only_emotion_tables(processed, prefect_harness, tmp_path):
    import dataclasses
    import json

    from pipelines.flows.calls import process_archive
    from pipelines.settings import get_profile
    from ser_models.checkpoint import EMBEDDED

    archive, cat, _ = processed
    ckpt = tmp_path / "ser-v2"
    shutil.copytree(EMBEDDED, ckpt)
    card = json.loads((ckpt / "card.json").read_text())
    card["model_id"] = "embedded-retrained-v2"
    (ckpt / "card.json").write_text(json.dumps(card))
    profile = dataclasses.replace(get_profile("embedded"), ser_checkpoint=str(ckpt))
    before = _parts(cat)
    summary = process_archive(str(archive), str(cat), profile, show_progress=False)
    assert summary.count("rescored") == 1 and summary.count("processed") == 0
    after = _parts(cat)
    changed = sorted({p.split("/")[1] for p in after if before.get(p) != after[p]} - {"failures"})
    assert changed == ["call_features", "emotions", "qa_pairs", "speaker_baselines", "trajectories"]
    c = Catalog(cat)
    ids = c.query("select distinct model_id from emotions").column(0).to_pylist()
    assert len(ids) == 1 and ids[0].split("+")[0] == "embedded-retrained-v2"      # then the text heads' ids
    again = process_archive(str(archive), str(cat), profile, show_progress=False)
    assert again.count("skipped") == 1 and not again.changed


def _copy_processed(processed, tmp_path) -> tuple[Path, Path]:
    """A copy of the processed archive and catalog, to change without touching the module's."""
    archive, cat, _ = processed
    shutil.copytree(archive, tmp_path / "archive")
    shutil.copytree(_pristine(cat), tmp_path / "catalog")
    return tmp_path / "archive", tmp_path / "catalog"


def _write_manifest(archive: Path, rows: list[dict]) -> None:
    import csv

    with (archive / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "event_type", "entity", "event_time", "title", "speakers_hint"])
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in w.fieldnames})


def test_manifest_corrections_update_the_calls_row(processed, prefect_harness, tmp_path):
    """A corrected entity, event_time and title reach the ``calls`` row without reprocessing
    the audio ("metadata updated"); the same audio listed again with other metadata is a
    warning in the summary, not a silent skip."""
    from datetime import datetime, timezone

    from pipelines.flows.calls import CallStatus, process_archive

    archive, cat = _copy_processed(processed, tmp_path)
    call = "fomc_press_conference_20181219.m4a"
    shutil.copy(archive / call, archive / "again.m4a")
    row = {"file": call, "event_type": "press_conference", "entity": "FOMC-corrected",
           "event_time": "2018-12-19T20:00:00Z", "title": "corrected title"}
    _write_manifest(archive, [row, dict(row, file="again.m4a", entity="ECB")])
    c = Catalog(cat)
    (old,) = c.query("select * from calls").to_pylist()
    before = _parts(cat)
    summary = process_archive(str(archive), str(cat), show_progress=False)
    first, dup = summary.outcomes
    assert first.status == CallStatus.METADATA_UPDATED and str(first.status) == "metadata updated"
    assert first.call_id == old["call_id"] and first.duration_s == 0  # no audio decoded
    assert first.reason == (f"entity 'FOMC' -> 'FOMC-corrected'; event_time 2018-12-19 19:30:00+00:00 -> "
                            f"2018-12-19 20:00:00+00:00; title {old['title']!r} -> 'corrected title'")
    (new,) = c.query("select * from calls").to_pylist()
    assert (new["entity"], new["title"], new["event_type"]) == ("FOMC-corrected", "corrected title", "press_conference")
    assert new["event_time"] == datetime(2018, 12, 19, 20, 0, tzinfo=timezone.utc)
    assert {k: new[k] for k in ("duration_s", "source_uri", "processed_at", "profile")} == \
           {k: old[k] for k in ("duration_s", "source_uri", "processed_at", "profile")}
    after = _parts(cat)
    changed = sorted({p.split("/")[1] for p in after if before.get(p) != after[p]})
    # no audio work: speakers, segments, words, emotions untouched; the person baselines follow the new event_time
    assert changed == ["calls", "speaker_baselines"]
    assert dup.status == CallStatus.SKIPPED and dup.call_id == old["call_id"]
    assert dup.warning == (f"{archive.resolve() / 'again.m4a'} (manifest row 3): same audio as manifest row 2 "
                           f"({call}, call {old['call_id']}), with different entity; kept row 2's metadata, "
                           f"this row is ignored")
    text = summary.summary()
    assert "metadata updated 1," in text and f"  warning: {dup.warning}" in text
    assert f"  metadata updated: {call} (call {old['call_id']}): entity 'FOMC' -> 'FOMC-corrected'" in text
    again = process_archive(str(archive), str(cat), show_progress=False)  # now in step: skipped
    assert [o.status for o in again.outcomes] == [CallStatus.SKIPPED, CallStatus.SKIPPED]


def test_manifest_failures_are_keyed_like_clear_failure(processed, prefect_harness, tmp_path):
    """A manifest error's record is keyed on the resolved file and the row, so fixing the row
    replaces it (one record per row, not one more); no ``ARCHIVE//abs/path`` sources."""
    from pipelines.flows.calls import process_archive
    from pipelines.tables import failure_key

    archive, cat = _copy_processed(processed, tmp_path)
    (tmp_path / "outside.wav").write_bytes(b"")
    base = {"event_type": "press_conference", "entity": "FOMC", "event_time": "2018-12-19T19:30:00Z"}
    rows = [dict(base, file=str(tmp_path / "outside.wav")), dict(base, file="../outside.wav"),
            dict(base, file="zero.wav", event_time="19/12/2018")]
    _write_manifest(archive, rows)
    shutil.rmtree(cat / "tables" / "failures")
    process_archive(str(archive), str(cat), show_progress=False)
    c = Catalog(cat)
    got = {f["source_uri"]: f for f in c.read("failures").to_pylist()}
    outside, zero = str((tmp_path / "outside.wav").resolve()), str((archive / "zero.wav").resolve())
    assert sorted(got) == sorted([outside, zero]) and c.keys("failures") == sorted(
        [failure_key(outside, 2), failure_key(outside, 3), failure_key(zero, 4)])
    assert got[zero]["stage"] == "manifest" and "bad event_time '19/12/2018'" in got[zero]["reason"]
    _write_manifest(archive, rows[:2] + [dict(rows[2], event_time="2018-12-19T19:30:00Z")])  # fix row 4
    process_archive(str(archive), str(cat), show_progress=False)
    assert len(c.keys("failures")) == 3
    fixed = c.read("failures", failure_key(zero, 4)).to_pylist()[0]
    assert fixed["stage"] == "decode" and fixed["reason"] == f"{zero}: empty file (0 bytes)"


def test_run_exit_codes(processed, prefect_harness, tmp_path, monkeypatch):
    """3 when some calls failed and others were processed or skipped; 1 with one line when a
    catalog write fails even to record the failure (disk full)."""
    from typer.testing import CliRunner

    from data_catalog import CatalogError
    from pipelines.flows import calls as flows
    from pipelines.cli.main import app

    archive, cat = _copy_processed(processed, tmp_path)
    args = ["run", str(archive), "--catalog", str(cat), "--no-study", "--no-report", "--no-progress"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 3, r.output  # the demo call skipped, the 7 bad rows failed
    assert "skipped 1 (already in the catalog), failed 7" in r.output

    def full_disk(catalog, *a, **k):
        raise CatalogError(f"{catalog.root}/tables/failures: no space left on device")

    monkeypatch.setattr(flows, "record_failure", full_disk)
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 1
    assert r.stderr.strip().splitlines() == [f"error: {cat.resolve()}/tables/failures: no space left on device"]
    assert "Traceback" not in r.output


def test_corrected_event_type_reassigns_roles_from_stored_words(processed, prefect_harness, tmp_path):
    from pipelines.flows.calls import CallStatus, process_archive

    archive, cat = _copy_processed(processed, tmp_path)
    call = "fomc_press_conference_20181219.m4a"
    _write_manifest(archive, [{"file": call, "event_type": "earnings_call", "entity": "FOMC",
                               "event_time": "2018-12-19T19:30:00Z",
                               "title": "FOMC press conference 2018-12-19 (real text, SYNTHETIC espeak-ng voices)"}])
    c = Catalog(cat)
    words, voices = c.read("words").to_pylist(), c.query("select speaker, voice_id from speakers order by 1").to_pylist()
    before = _parts(cat)
    (out,) = process_archive(str(archive), str(cat), show_progress=False).outcomes
    assert out.status == CallStatus.METADATA_UPDATED
    assert out.reason == ("event_type 'press_conference' -> 'earnings_call' (roles, sections and emotion tables "
                          "recomputed from the stored words)")
    assert set(out.stage_seconds) == {"write tables", "decode", "speakers & sections", "emotions"}
    assert c.query("select event_type from calls").to_pylist() == [{"event_type": "earnings_call"}]
    roles = {r["role"] for r in c.read("speakers").to_pylist()}
    assert roles and roles <= {"executive", "analyst", "operator"}, roles  # no chair, no journalist left
    assert c.query("select speaker, voice_id from speakers order by 1").to_pylist() == voices
    assert c.read("words").to_pylist() == words
    changed = sorted({p.split("/")[1] for p in _parts(cat) if before.get(p) != _parts(cat)[p]})
    assert changed == ["call_features", "calls", "emotions", "qa_pairs", "segments", "speaker_baselines", "speakers",
                       "trajectories"]
