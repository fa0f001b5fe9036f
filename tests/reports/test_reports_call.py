"""The call report, read as a reader would: Chromium's DOM and a screenshot, pdftotext on the PDF.
Numbers are checked against the catalog rows and against independent pandas computations."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from data_catalog import Catalog
from reports_browser import (check_self_contained, dom, needs_chromium, needs_poppler, number, page_footers,
                             pdf_pages, pdf_text, png_size, screenshot, table_rows)
from reports_synth import shipped_card, synthetic_call


def mmss(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


@pytest.fixture(scope="module")
def call(tmp_path_factory):
    from reports import render_call_report

    base = tmp_path_factory.mktemp("call")
    cat = Catalog(base / "catalog")
    synth = synthetic_call(cat)
    html = render_call_report(cat, synth.call_id, base / "out" / "call.html")
    pdf = render_call_report(cat, synth.call_id, base / "out" / "call.pdf")
    seg = cat.read("segments", synth.call_id).to_pandas()
    emo = cat.read("emotions", synth.call_id).to_pandas()
    spk = cat.read("speakers", synth.call_id).to_pandas()
    df = seg.merge(emo, on=["call_id", "segment_id"]).merge(spk[["speaker", "role"]], on="speaker")
    df["w"] = df["end_s"] - df["start_s"]
    scored = df[(df["skip_reason"] == "") & (df["role"] != "operator")]
    return dict(cat=cat, synth=synth, html=html, pdf=pdf, seg=seg, emo=emo, spk=spk, scored=scored,
                feats=cat.read("call_features", synth.call_id).to_pylist()[0], base=base)


@pytest.fixture(scope="module")
def page(call):
    """The DOM of the HTML report as headless Chromium loaded it (only used by @needs_chromium tests)."""
    return dom(call["html"])


@needs_chromium
def test_figures_are_embedded_and_nothing_is_fetched(page):
    figs = page.find_all("figure")
    assert [f["id"] for f in figs] == ["fig-tone", "fig-probs", "fig-text-voice"]
    for f in figs:
        img = f.find("img")
        assert png_size(img["src"]) == (int(img["width"]), int(img["height"]))
        assert f.find("figcaption").get_text(strip=True)
    check_self_contained(page)


@needs_chromium
def test_metadata_and_speakers(page, call):
    meta = dict(table_rows(page, "call-meta"))
    n_skip = int((call["emo"]["skip_reason"] != "").sum())
    assert meta["call id"] == call["synth"].call_id and meta["entity"] == "ACME"
    assert meta["segments"] == f"500 ({500 - n_skip} scored, {n_skip} skipped)" and n_skip == 5
    assert meta["SER model"] == shipped_card()["model_id"]
    rows = table_rows(page, "speakers")
    spk = call["spk"].sort_values("talk_time_s", ascending=False)
    assert [r[0] for r in rows] == list(spk["speaker"]) and [r[1] for r in rows] == list(spk["role"])
    assert [r[4] for r in rows] == [mmss(t) for t in spk["talk_time_s"]]
    sc = call["scored"]
    for r in rows:
        mine = sc[sc["speaker"] == r[0]]
        if r[1] == "operator":
            assert r[8] == "–" and r[7] == "0"
        else:
            assert int(r[7]) == len(mine)
            assert number(r[8]) == pytest.approx(np.average(mine["tone"], weights=mine["w"]), abs=5e-4)


@needs_chromium
def test_most_negative_and_positive_segments(page, call):
    sc = call["scored"].sort_values(["tone", "segment_id"])
    for table, expected in (("tone-negative", sc.head(10)), ("tone-positive", sc.iloc[::-1].head(10))):
        trs = page.find("table", id=table).select("tbody tr")
        assert [int(tr["data-segment"]) for tr in trs] == list(expected["segment_id"])
        shown = [number(tr.find_all("td")[3].get_text()) for tr in trs]
        assert shown == pytest.approx(list(expected["tone"]), abs=5e-4)
        assert trs[0].find_all("td")[6].get_text(strip=True)[:20] == expected["text"].iloc[0][:20]
    assert max(number(tr.find_all("td")[3].get_text()) for tr in page.find("table", id="tone-negative").select("tbody tr")) < \
        min(number(tr.find_all("td")[3].get_text()) for tr in page.find("table", id="tone-positive").select("tbody tr"))


@needs_chromium
def test_hotspots_words_and_times(page, call):
    sc, thr = call["scored"], call["synth"].threshold
    hot = sc[sc["attention_top15_share"] >= thr].sort_values("attention_top15_share", ascending=False)
    assert len(hot) == call["feats"]["n_hotspots"] > 25
    note = page.find(id="hotspots-section").find("p").get_text(" ", strip=True)
    assert f"{len(hot)} hotspot(s)" in note and f"n_hotspots = {len(hot)}" in note
    trs = page.find("table", id="hotspots").select("tbody tr")
    assert [int(tr["data-segment"]) for tr in trs] == list(hot["segment_id"].head(25))
    words = call["cat"].read("words", call["synth"].call_id).to_pandas()
    for tr, (_, h) in zip(trs[:5], hot.head(5).iterrows()):
        assert number(tr.find_all("td")[3].get_text()) == pytest.approx(h["attention_top15_share"], abs=5e-4)
        spans = [s.get_text() for s in tr.find_all("span", class_="word")]
        expected = []
        for w in h["top_words"].split("|"):
            first = words[(words["segment_id"] == h["segment_id"]) & (words["word"] == w)]["start_s"].min()
            expected.append(f"{w} ({mmss(first)})")
        assert spans == expected


@needs_chromium
def test_text_tone_beside_voice_tone_and_features(page, call):
    f = call["feats"]
    tone = dict(table_rows(page, "tone-call"))
    assert number(tone["voice tone of the call (call_tone)"]) == pytest.approx(f["call_tone"], abs=5e-5)
    assert number(tone["text tone of the call (lm_tone)"]) == pytest.approx(f["lm_tone"], abs=5e-5)
    grid = {(r[0], r[1]): r for r in table_rows(page, "feature-grid")}
    assert number(grid[("executive", "Q&A")][2]) == pytest.approx(f["executive_qa_tone"], abs=5e-5)
    assert number(grid[("executive", "prepared remarks")][2]) == pytest.approx(f["executive_prepared_tone"], abs=5e-5)
    assert ("chair", "Q&A") not in grid  # absent roles are not shown
    feats = dict(table_rows(page, "call-features"))
    assert feats["n_hotspots"] == str(f["n_hotspots"]) and feats["n_segments_scored"] == "495"
    rows = {r[0]: r for r in table_rows(page, "tone-speakers")}
    sc = call["scored"]
    jane = sc[(sc["speaker"] == "S1") & (sc["lm_positive"] + sc["lm_negative"] > 0)]
    assert number(rows["Jane Roe"][3]) == pytest.approx(jane["lm_tone"].mean(), abs=5e-4)
    assert int(rows["Jane Roe"][4]) == len(jane) > 100


@needs_chromium
def test_model_card_and_licence(page):
    card = shipped_card()
    rows = dict(table_rows(page, "card"))
    assert rows["model id"] == card["model_id"] and rows["labels"] == ", ".join(card["labels"])
    assert rows["weights sha256"] == card["weights_sha256"]
    licence = page.find(id="licence").get_text(" ", strip=True)
    assert card["corpus"]["licence"] in licence and "Non-commercial use only" in licence


@needs_chromium
def test_screenshot(call):
    im = screenshot(call["html"], "report_call")
    assert im.width == 1280 and im.height > 3000           # the whole page, several screens long
    colors = im.resize((320, im.height // 4)).getcolors(1 << 16)
    assert colors is not None and len(colors) > 200        # figures rendered, not a blank page


@needs_poppler
def test_pdf_pages_and_numbers(call):
    text = pdf_text(call["pdf"])
    n = pdf_pages(call["pdf"])
    assert 3 <= n <= 15
    assert page_footers(text) == [(k, n) for k in range(1, n + 1)]
    f = call["feats"]
    for needle in (call["synth"].call_id, shipped_card()["model_id"], "CC BY-NC-SA 4.0", "Non-commercial use only",
                   f"{f['call_tone']:+.4f}", f"{f['lm_tone']:+.4f}", "ACME Q1 2018 earnings call"):
        assert needle in text, needle
    worst = call["scored"].sort_values("tone").iloc[0]
    assert f"{worst['tone']:+.3f}" in text


def test_call_without_emotion_scores(tmp_path):
    """A call the emotion stage has not scored yet still gets a report (metadata, speakers)."""
    from bs4 import BeautifulSoup

    from reports import render_call_report

    cat = Catalog(tmp_path / "catalog")
    synth = synthetic_call(cat, n_segments=40)
    for table in ("emotions", "trajectories", "call_features"):
        cat.delete(table, synth.call_id)
    soup = BeautifulSoup(render_call_report(cat, synth.call_id, tmp_path / "c.html").read_text(), "html.parser")
    assert not soup.find_all("figure") and soup.find("table", id="speakers")
    assert "No emotion scores for this call" in soup.get_text() and soup.find("table", id="card") is None


def test_model_choice_among_several(tmp_path):
    from reports import ReportError
    from reports.call import load_call

    cat = Catalog(tmp_path / "catalog")
    synth = synthetic_call(cat, n_segments=60)
    emo = cat.read("emotions", synth.call_id).to_pandas()
    other = emo.assign(model_id="retrained-0000", tone=-emo["tone"])
    cat.write("emotions", synth.call_id, pd.concat([emo, other]))
    assert load_call(cat, synth.call_id).model_id == synth.model_id          # the shipped checkpoint's scores
    d = load_call(cat, synth.call_id, "retrained-0000")
    assert d.model_id == "retrained-0000" and d.other_models == [synth.model_id] and d.card is None
    assert d.emotions["tone"].tolist() == pytest.approx((-emo["tone"]).tolist(), nan_ok=True)
    with pytest.raises(ReportError, match=r"no emotions of model 'nope'.*models: embedded-"):
        load_call(cat, synth.call_id, "nope")


# -- bad input -----------------------------------------------------------------------------------


@pytest.fixture
def small(tmp_path):
    cat = Catalog(tmp_path / "catalog")
    synth = synthetic_call(cat, n_segments=30)
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    out.write_text("previous report")
    return cat, synth, out


def _untouched(out: Path, cat: Catalog) -> None:
    assert out.read_text() == "previous report"
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]   # no temporary file left
    assert cat.keys("reports") == []


@pytest.mark.parametrize("call_id, message", [
    ("0000000000000000", r"unknown call_id '0000000000000000', not in table 'calls' \(1 calls in the catalog\)"),
    ("5a1e5f0c0ffee001", r"unknown call_id '5a1e5f0c0ffee001'.*did you mean 5a1e5f0c0ffee000\?"),
    ("../../etc/passwd", r"unknown call_id '../../etc/passwd'"),
])
def test_unknown_call(small, call_id, message):
    from reports import ReportError, render_call_report

    cat, _, out = small
    with pytest.raises(ReportError, match=message):
        render_call_report(cat, call_id, out)
    _untouched(out, cat)


def test_missing_catalog_or_not_a_catalog(small, tmp_path):
    from reports import ReportError, render_call_report

    _, synth, out = small
    with pytest.raises(ReportError, match=r"absent: catalog folder not found"):
        render_call_report(Catalog(tmp_path / "absent"), synth.call_id, out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match=r"empty: not a speechfin catalog"):
        render_call_report(tmp_path / "empty", synth.call_id, out)
    assert out.read_text() == "previous report"


def test_read_only_catalog(small):
    from reports import ReportError, render_call_report

    cat, synth, out = small
    os.chmod(cat.root, 0o555)
    try:
        with pytest.raises(ReportError, match=r"catalog folder is read-only"):
            render_call_report(cat, synth.call_id, out)
    finally:
        os.chmod(cat.root, 0o755)
    _untouched(out, cat)


def test_bad_output_paths(small, tmp_path):
    from reports import ReportError, render_call_report

    cat, synth, out = small
    with pytest.raises(ReportError, match=r"report.docx: the output file must end in .html or .pdf"):
        render_call_report(cat, synth.call_id, out.with_suffix(".docx"))
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    try:
        with pytest.raises(ReportError, match=r"cannot write here"):
            render_call_report(cat, synth.call_id, ro / "r.html")
    finally:
        os.chmod(ro, 0o755)
    _untouched(out, cat)


def test_crash_while_writing_the_pdf_leaves_the_old_file(small, monkeypatch):
    import weasyprint

    from reports import render_call_report

    cat, synth, out = small
    pdf = out.with_suffix(".pdf")
    pdf.write_text("previous report")
    out.unlink()

    def half_written(self, target, *a, **k):
        Path(target).write_bytes(b"%PDF-1.7\n% half")
        raise MemoryError("killed while printing")

    monkeypatch.setattr(weasyprint.HTML, "write_pdf", half_written)
    with pytest.raises(MemoryError):
        render_call_report(cat, synth.call_id, pdf)
    _untouched(pdf, cat)


def test_cli(small):
    from pipelines.cli.main import app

    cat, synth, out = small
    r = CliRunner().invoke(app, ["report", "call", "ffffffffffffffff", "--catalog", str(cat.root), "--out", str(out)])
    assert r.exit_code == 2  # bad input (pipelines/exitcodes.py)
    assert r.stderr.strip().splitlines() == [f"error: {cat.root}: unknown call_id 'ffffffffffffffff', not in table "
                                             f"'calls' (1 calls in the catalog)"]
    _untouched(out, cat)
    r = CliRunner().invoke(app, ["report", "call", synth.call_id, "-c", str(cat.root), "-o", str(out)])
    assert r.exit_code == 0 and r.stdout.strip().endswith(f"wrote {out}")
    assert synth.call_id in out.read_text() and cat.read("reports").num_rows == 1
