"""The explorer as a user uses it: Playwright for Python driving Debian's Chromium against a
running ``speechfin explore`` server (uvicorn in a thread) on a catalog with a real recording.
Screenshots go to tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from data_catalog.store import Catalog
from reports_browser import ARTIFACTS, CHROMIUM, needs_chromium
from reports_synth import synthetic_call

CALL = "5a1e5f0c0ffee000"
pytestmark = needs_chromium


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from reports.explorer import create_app

    root = tmp_path_factory.mktemp("explore_browser")
    cat = Catalog(root / "catalog")
    synthetic_call(cat, CALL, n_segments=60)
    seg = cat.read("segments", CALL).to_pandas().sort_values("start_s")
    words = cat.read("words", CALL).to_pandas()
    end = float(seg["end_s"].max())
    wav = root / "call.wav"   # a tone as long as the call, so every segment can be played
    t = np.arange(int(16_000 * (end + 1))) / 16_000
    sf.write(wav, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16_000)
    cat.write("calls", CALL, cat.read("calls", CALL).to_pandas().assign(source_uri=str(wav)))
    for i, ent in enumerate(["BOLT", "CORE"]):
        cid = f"c{i:015d}"
        synthetic_call(cat, cid, n_segments=10, seed=i + 1)
        cat.write("calls", cid, cat.read("calls", cid).to_pandas().assign(entity=ent))
    days = np.arange(-5, 6)
    cat.write("study_results", "s1", pd.DataFrame({
        "study_id": "s1", "kind": ["meta"] + ["caar"] * len(days), "group": "", "name": ["title"] + [str(d) for d in days],
        "window": "-5:5", "rel_day": [None] + [int(d) for d in days], "estimate": [np.nan] + list(0.001 * days),
        "std_error": [np.nan] + [0.002] * len(days), "statistic": np.nan, "p_value": np.nan, "n": 30,
        "value": ["A study"] + [None] * len(days)}))
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(cat.root), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", cat, seg, words
    srv.should_exit = True
    th.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required",
                                                              "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
        yield b
        b.close()


def test_call_page_seeks_and_highlights_words(server, browser):
    base, cat, seg, words = server
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{base}/calls/{CALL}")
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)
    target = seg.iloc[len(seg) // 2]
    page.click(f"#segments tr[data-segment='{int(target.segment_id)}']")
    page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {target.start_s}) < 0.05",
                           timeout=5_000)
    page.wait_for_selector("#segments tr.current", timeout=5_000)
    assert page.get_attribute("#segments tr.current", "data-segment") == str(int(target.segment_id))
    # play: the highlighted word moves on
    page.evaluate("document.getElementById('player').play()")
    page.wait_for_selector(".w.spoken", timeout=5_000)
    first = page.inner_text(".w.spoken") + page.evaluate("document.getElementById('player').currentTime.toString()")
    page.wait_for_timeout(1500)
    t_now = page.evaluate("document.getElementById('player').currentTime")
    assert t_now > target.start_s + 0.5, "the audio did not play"
    later = page.inner_text(".w.spoken") + str(t_now)
    spoken = words[(words["start_s"] > target.start_s) & (words["start_s"] <= t_now)]
    if len(spoken) > 1:
        assert later != first
    # the trajectory chart: drawn (uPlot, served locally), and a click on it seeks
    assert int(page.get_attribute("#chart", "data-series")) >= 3
    page.evaluate("document.getElementById('player').pause()")
    page.locator("#chart .u-over").scroll_into_view_if_needed()
    box = page.locator("#chart .u-over").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2)
    duration = max(float(cat.read("calls", CALL).to_pandas()["duration_s"].iloc[0]), float(seg["end_s"].max()))
    page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {0.25 * duration}) < "
                           f"{0.03 * duration}", timeout=5_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explore_call.png"), full_page=False)
    assert all(u.startswith(base) for u in requests), [u for u in requests if not u.startswith(base)]   # offline
    page.close()


def test_filter_the_list_and_run_queries(server, browser):
    base, *_ = server
    page = browser.new_page()
    page.goto(base + "/")
    assert page.locator("#calls tbody tr").count() == 3
    page.fill("input[name=entity]", "bolt")
    page.click("#apply")
    page.wait_for_load_state()
    assert page.locator("#calls tbody tr").count() == 1 and page.inner_text("#calls tbody td") == "BOLT"
    page.screenshot(path=str(ARTIFACTS / "explore_calls.png"))
    page.goto(base + "/sql")
    page.fill("#q", "select entity, count(*) as n from calls group by 1 order by 1")
    page.click("#run")
    page.wait_for_selector("#result")
    assert page.locator("#result tbody tr").count() == 3
    for q in ["COPY (select 1) TO '/tmp/x.csv'", "select * from read_text('/etc/passwd')"]:
        page.fill("#q", q)
        page.click("#run")
        page.wait_for_selector("#message")
        msg = page.inner_text("#message")
        assert "refused" in msg or "Permission" in msg or "disabled" in msg.lower(), msg
    page.screenshot(path=str(ARTIFACTS / "explore_sql.png"))
    page.close()


def test_hotspots_speaker_and_study_charts(server, browser):
    base, cat, seg, _ = server
    page = browser.new_page()
    page.goto(f"{base}/calls/{CALL}")
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)
    from ser_models.cards import find_card

    emo = cat.read("emotions", CALL).to_pandas()
    thr = find_card(str(emo["model_id"].iloc[0]))[0]["calibration"]["hotspot_threshold"]
    want = int((emo["attention_top15_share"] >= thr).sum())
    assert want > 0 and page.locator("#lanes .block.hotspot").count() == want
    voice = cat.read("speakers", CALL).to_pandas()["voice_id"].iloc[0]
    page.goto(f"{base}/speakers/{voice}")
    page.wait_for_selector("#speaker-chart[data-drawn='1']", timeout=5_000)
    page.goto(f"{base}/studies/s1")
    page.wait_for_selector("#caar-chart[data-drawn='1']", timeout=5_000)
    assert page.locator("#caar tbody tr").count() == 11
    page.screenshot(path=str(ARTIFACTS / "explore_study.png"))
    page.close()
