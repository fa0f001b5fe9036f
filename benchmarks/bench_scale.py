"""One 8-call archive run sequentially, on a local Dask cluster and on a local Ray cluster.

    .venv/bin/python benchmarks/bench_scale.py             # ~12 min on 2 cores
    .venv/bin/python benchmarks/bench_scale.py --workers 2

The archive is the 4 demo calls and 4 copies of them at 0.9x gain (other bytes, so other
call_ids; 18 min of audio in all).  Each runner processes it into a fresh catalog
(``process_archive``, as ``speechfin run --runner ...`` does); a cluster is started for its
run, and its workers load the models for their first call, which is counted in the wall
time (the sequential run's model loading is printed apart, and left out of its wall time as
it would be in a long batch).

Printed per runner: wall time, audio hours per wall hour, the ratio to sequential, peak RSS
per worker.  Then an estimate for 10,000 one-hour calls on 16 and 64 workers from the
measured per-call cost (worker seconds per audio second on one core), the model loading per
worker, the catalog write per call and the voice-linking step, and which of them limits.
Ends with name=value lines.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def build_archive(dest: Path) -> Path:
    import soundfile as sf

    from pipelines.speech.audio import decode_audio
    from pipelines.demo import DEMO_ARCHIVE as DEMO_DIR

    dest.mkdir(parents=True, exist_ok=True)
    with (DEMO_DIR / "manifest.csv").open() as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        shutil.copy(DEMO_DIR / r["file"], dest / r["file"])
        out.append(dict(r, transcript=""))
        x = decode_audio(DEMO_DIR / r["file"]).samples * 0.9
        name = Path(r["file"]).stem + "_copy.flac"
        sf.write(dest / name, x, 16_000)
        out.append(dict(r, file=name, transcript="", title=r["title"] + " (copy at 0.9x gain)"))
    with (dest / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(out[0]))
        w.writeheader()
        w.writerows(out)
    return dest


def run(archive: Path, kind: str, workers: int) -> dict:
    from pipelines.flows.calls import process_archive
    from pipelines.flows.runners import RunnerConfig, RunnerKind

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s = process_archive(str(archive), str(Path(tmp) / "cat"), show_progress=False,
                            runner=RunnerConfig(RunnerKind(kind), workers=workers))
        wall = time.perf_counter() - t0
    assert s.error is None and s.count("processed") == 8, s.summary()
    if kind == "sequential":
        wall -= s.model_load_s
    audio = sum(o.duration_s for o in s.outcomes)
    busy = sum(o.wall_s for o in s.outcomes)  # worker seconds spent in calls
    writes = [o.stage_seconds.get("write tables", 0.0) for o in s.outcomes]
    loads = [o.model_load_s for o in s.outcomes if o.model_load_s > 0.5]
    rss = s.worker_peak_rss_mb()
    if not rss:
        import resource

        rss = {"this process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    return {"wall": wall, "audio": audio, "busy": busy, "write": float(np.median(writes)),
            "model_load": float(np.mean(loads)) if loads else s.model_load_s, "rss": rss}


def linking_seconds_per_comparison(n_known: int = 20_000, n_new: int = 2_000) -> float:
    """Seconds per (new speaker x identity) comparison of ``assign_voices``, on random 256-d
    embeddings (all distinct voices: the worst case, every speaker starts an identity)."""
    import pandas as pd

    from pipelines.voices import assign_voices

    rng = np.random.default_rng(0)
    known = pd.DataFrame({"voice_id": [f"k{i}" for i in range(n_known)], "embedding_model": "m",
                          "embedding": list(rng.normal(size=(n_known, 256)).astype("float32"))})
    new = pd.DataFrame({"call_id": [f"c{i // 8:06d}" for i in range(n_new)], "speaker": [f"S{i % 8}" for i in range(n_new)],
                        "embedding_model": "m", "embedding": list(rng.normal(size=(n_new, 256)).astype("float32"))})
    t0 = time.perf_counter()
    assign_voices(known, new)
    return (time.perf_counter() - t0) / (n_new * (n_known + n_new / 2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        archive = build_archive(Path(tmp) / "archive")
        results = {}
        for kind in ("sequential", "dask", "ray"):
            r = results[kind] = run(archive, kind, args.workers)
            speed = r["audio"] / r["wall"]
            print(f"{kind:<10}: wall {r['wall']:6.1f} s for {r['audio'] / 60:.1f} min of audio -> "
                  f"{speed:.2f} audio h per wall h ({speed / (results['sequential']['audio'] / results['sequential']['wall']):.2f}x "
                  f"sequential); peak RSS per worker "
                  + ", ".join(f"{v:,.0f} MB" for v in r["rss"].values())
                  + f"; model loading {r['model_load']:.1f} s per worker", flush=True)
            figures[f"{kind}_audio_h_per_wall_h"] = speed
            figures[f"{kind}_ratio"] = speed / (results["sequential"]["audio"] / results["sequential"]["wall"])
            figures[f"{kind}_peak_rss_mb"] = max(r["rss"].values())
    d = results["dask"]
    rtf_worker = d["busy"] / d["audio"]  # worker seconds per audio second, one core per worker
    calls, hours = 10_000, 1.0
    per_call = rtf_worker * hours * 3600
    print(f"per call on one worker core: {rtf_worker:.3f} x real time ({per_call / 60:.1f} min for a one-hour call; "
          f"catalog write {d['write']:.2f} s per call, model loading {d['model_load']:.1f} s per worker)")
    per_cmp = linking_seconds_per_comparison()
    speakers = calls * 8  # about 8 speakers a call
    # voice linking after one batch of all calls: each new speaker against every identity so far
    link = per_cmp * speakers * speakers / 2
    print(f"voice linking: {per_cmp * 1e9:.1f} ns per speaker-identity comparison -> {link / 60:.0f} min for "
          f"{speakers:,} speakers linked in one batch (daily batches of 100 calls: {per_cmp * 800 * speakers:.1f} s each)")
    for n in (16, 64):
        compute = calls * per_call / n
        load = d["model_load"]
        total = compute + load + link
        limit = max((("compute (diarization, ASR, SER)", compute), ("model loading", load),
                     ("voice linking", link)), key=lambda kv: kv[1])[0]
        print(f"10,000 one-hour calls on {n} workers: {total / 3600:.0f} h wall ({compute / 3600:.0f} h compute, "
              f"{load:.0f} s model loading, ~{link / 3600:.1f} h voice linking in one batch); limit: {limit}; "
              f"catalog writes in parallel on the workers ({d['write']:.2f} s per call)")
        figures[f"estimate_{n}_workers_h"] = total / 3600
    figures["worker_rtf"] = rtf_worker
    for k, v in figures.items():
        print(f"{k}={v:.4f}")


if __name__ == "__main__":
    main()
