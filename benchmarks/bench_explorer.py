"""The explorer's figures, measured in the browser (Playwright + Debian chromium) and on the server.

    .venv/bin/python benchmarks/bench_explorer.py              # ~3 min (builds a 10,000-call catalog)
    .venv/bin/python benchmarks/bench_explorer.py --calls 2000

1. The call page of a 60-minute call (1,000 segments, about 10,000 words, a one-hour mp3):
   from navigation start to the page ready to play with the transcript and tables drawn
   (``body[data-ready]``), in the browser, median of 5 loads.
2. Seeking to a segment near the end of that mp3: from the click on its row to the audio
   element's ``playing`` event, median of 5.
3. The calls list on a catalog of ``--calls`` calls: the first request right after start-up
   (it waits for the index, which the server reads when it starts) and later requests
   (median of 5; filtered and sorted).
Ends with name=value lines.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "reports"))   # the synthetic catalog rows of the report tests

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def big_catalog(root: Path, n_calls: int):
    from data_catalog.store import Catalog
    from pipelines.demo import encode
    from reports_synth import synthetic_call

    cat = Catalog(root / "catalog")
    synthetic_call(cat, "0" * 16, n_segments=1000)
    seg = cat.read("segments", "0" * 16).to_pandas()
    # stretch the synthetic call to 60 minutes and give it a one-hour mp3
    scale = 3600.0 / float(seg["end_s"].max())
    seg[["start_s", "end_s"]] *= scale
    cat.write("segments", "0" * 16, seg)
    words = cat.read("words", "0" * 16).to_pandas()
    words[["start_s", "end_s"]] *= scale
    cat.write("words", "0" * 16, words)
    mp3 = root / "call.mp3"
    t = np.arange(16_000 * 3600) / 16_000
    encode((0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), mp3)
    cat.write("calls", "0" * 16, cat.read("calls", "0" * 16).to_pandas().assign(source_uri=str(mp3), duration_s=3600.0))
    calls = cat.read("calls", "0" * 16).to_pandas()
    feats = cat.read("call_features", "0" * 16).to_pandas()
    spk = cat.read("speakers", "0" * 16).to_pandas()
    rng = np.random.default_rng(0)
    for i in range(1, n_calls):
        cid = f"{i:016x}"
        cat.write("calls", cid, calls.assign(call_id=cid, entity=f"T{i % 500}",
                                             event_time=pd.Timestamp("2010-01-01", tz="UTC") + pd.Timedelta(days=int(i))))
        cat.write("call_features", cid, feats.assign(call_id=cid, call_tone=float(rng.normal(0, 0.3))))
        cat.write("speakers", cid, spk.assign(call_id=cid))
    return cat, seg, words


def main() -> None:
    import httpx
    import uvicorn
    from playwright.sync_api import sync_playwright

    from reports.explorer import create_app

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=10_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_explorer_"))
    t0 = time.perf_counter()
    cat, seg, words = big_catalog(tmp, args.calls)
    print(f"catalog of {args.calls} calls; the big call has {len(seg)} segments and {len(words)} words "
          f"({time.perf_counter() - t0:.0f} s to build)", flush=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(cat.root), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    t = time.perf_counter()
    httpx.get(base + "/", timeout=600)
    first_list = time.perf_counter() - t      # the index is read at start-up: this waits for what is left of it
    time.sleep(1)
    warm = []
    for q in ["/", "/?entity=T1&sort=call_tone", "/?date_from=2015-01-01&date_to=2016-12-31", "/?page_no=50", "/?desc=0"]:
        t = time.perf_counter()
        assert httpx.get(base + q, timeout=60).status_code == 200
        warm.append(time.perf_counter() - t)
    chromium = shutil.which("chromium")
    ready, seek = [], []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        page = b.new_page()
        late = seg.sort_values("start_s").iloc[-5]
        for _ in range(5):
            page.goto(f"{base}/calls/{'0' * 16}")
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=60_000)
            ready.append(page.evaluate("performance.now()") / 1000)
            page.evaluate("""() => { const p = document.getElementById('player'); window.__played = null;
                p.addEventListener('playing', () => { window.__played = performance.now(); }, { once: true }); }""")
            t_click = page.evaluate(f"""() => {{ const t = performance.now();
                document.querySelector("#segments tr[data-segment='{int(late.segment_id)}']").click(); return t; }}""")
            page.wait_for_function("window.__played !== null", timeout=30_000)
            seek.append((page.evaluate("window.__played") - t_click) / 1000)
        b.close()
    srv.should_exit = True
    print(f"call page of a 60-minute call ({len(seg)} segments, {len(words)} words) ready to play: median "
          f"{np.median(ready):.3f} s (loads {', '.join(f'{x:.2f}' for x in ready)})")
    print(f"seek to a segment at {late.start_s / 60:.0f} min of the one-hour mp3 until playing: median "
          f"{np.median(seek):.3f} s ({', '.join(f'{x:.2f}' for x in seek)})")
    print(f"calls list of {args.calls} calls: first request {first_list:.2f} s (reads the catalog), warm median "
          f"{np.median(warm):.3f} s (max {max(warm):.3f} s)")
    print(f"call_page_ready_s={np.median(ready):.4f}\nseek_to_playing_s={np.median(seek):.4f}\n"
          f"calls_list_first_s={first_list:.4f}\ncalls_list_warm_s={np.median(warm):.4f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
