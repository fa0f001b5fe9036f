"""The catalog at archive scale: writes, the analyst's join, a one-call lookup, a words scan.

    .venv/bin/python benchmarks/bench_catalog.py --calls 10000          # ~25 min, ~8 GB of disk
    .venv/bin/python benchmarks/bench_catalog.py --calls 1000 --delta   # also the Delta Lake candidate

A synthetic catalog at realistic size: per call 300 segments, 9,000 words, 300 emotion rows,
8 speakers and the calls row, written through ``pipelines.tables.write_call`` (the pipeline's
own write path).  Then, in one run, each through ``Catalog.query`` (the sandboxed read-only
path of ``speechfin query``):

1. per-call parts, as written (the format before compaction);
2. after ``Catalog.compact()`` (speechfin's format: compacted files + pending parts);
3. with one call re-written after the compaction (a pending part overriding compacted rows);
4. the baseline: the same rows in one Parquet file per table, queried by plain DuckDB, as
   views over the files (``naive_compacted_*``) and with the small ``speakers`` table read into
   memory first, as speechfin does for joins (``compacted_*``: the baseline of the ratios).

``--delta`` adds Delta Lake (``deltalake``) as a second candidate on the first
``--delta-calls`` calls: a per-call replace (``predicate="call_id = ..."``), then
``optimize.compact()``, queried by DuckDB over its Arrow dataset.  DuckLake cannot be
compared here: its extension wheel (``duckdb-extension-ducklake`` 1.5.5) requires
duckdb==1.5.5, and speechfin's lock pins duckdb 2.0.1.

Ends with one ``name=value`` line per figure (seconds unless named otherwise).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

SEGMENTS, WORDS, SPEAKERS = 300, 9000, 8
ROLES = ["operator", "executive", "executive", "analyst", "analyst", "analyst", "analyst", "analyst"]
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")

ANALYST_JOIN = """
SELECT sp.role, s.section, count(*) AS n, avg(e.tone) AS tone, avg(e.p_fearful) AS fearful,
       sum(s.end_s - s.start_s) AS seconds
FROM segments s
JOIN emotions e ON e.call_id = s.call_id AND e.segment_id = s.segment_id
JOIN speakers sp ON sp.call_id = s.call_id AND sp.speaker = s.speaker
GROUP BY ALL ORDER BY ALL"""
LOOKUP = "SELECT * FROM segments WHERE call_id = '{cid}' ORDER BY segment_id"
WORDS_SCAN = "SELECT count(*) AS n, avg(end_s - start_s) AS d, count(DISTINCT word) AS v FROM words"


def call_tables(i: int, rng: np.random.Generator) -> dict[str, pa.Table]:
    """One synthetic call's tables (the columns the pipeline writes; values random but typed)."""
    from datetime import datetime, timedelta, timezone

    from pipelines.settings import PIPELINE_VERSION

    cid = f"{i:016x}"
    seg_id = np.arange(SEGMENTS)
    start = np.cumsum(rng.uniform(4, 14, SEGMENTS))
    speaker = rng.integers(0, SPEAKERS, SEGMENTS)
    section = np.where(seg_id < SEGMENTS // 3, "prepared", "qa")
    t = datetime(2008, 1, 1, tzinfo=timezone.utc) + timedelta(days=int(i % 6000), hours=int(i % 24))
    calls = pa.table({"call_id": [cid], "event_type": ["earnings_call"], "entity": [f"T{i % 500:03d}"],
                      "event_time": [t], "language": ["en"], "duration_s": [float(start[-1] + 10)],
                      "source_uri": [f"/archive/{cid}.mp3"], "title": [f"call {i}"],
                      "processed_at": [datetime.now(timezone.utc)], "pipeline_version": [PIPELINE_VERSION],
                      "profile": ["embedded"]})
    speakers = pa.table({"call_id": [cid] * SPEAKERS, "speaker": [f"SPEAKER_{k:02d}" for k in range(SPEAKERS)],
                         "role": ROLES, "name": [f"person {i % 3000}-{k}" for k in range(SPEAKERS)],
                         "voice_id": [f"v{(i * 7 + k) % 20000:05d}" for k in range(SPEAKERS)],
                         "talk_time_s": rng.uniform(10, 900, SPEAKERS), "n_segments": rng.integers(1, 80, SPEAKERS)})
    segments = pa.table({"call_id": [cid] * SEGMENTS, "segment_id": seg_id,
                         "speaker": [f"SPEAKER_{k:02d}" for k in speaker], "start_s": start,
                         "end_s": start + rng.uniform(2, 10, SEGMENTS), "section": section,
                         "text": [f"sentence {k} of call {i} about revenue guidance margins" for k in seg_id],
                         "asr_confidence": rng.uniform(0.6, 1, SEGMENTS), "text_source": ["asr"] * SEGMENTS})
    w_seg = np.sort(rng.integers(0, SEGMENTS, WORDS))
    w_start = start[w_seg] + rng.uniform(0, 2, WORDS)
    vocab = np.array([f"w{k}" for k in range(5000)])
    words = pa.table({"call_id": [cid] * WORDS, "segment_id": w_seg, "word": vocab[rng.integers(0, 5000, WORDS)],
                      "start_s": w_start, "end_s": w_start + 0.3, "score": rng.uniform(0.3, 1, WORDS)})
    p = rng.dirichlet(np.ones(len(EMOTIONS)), SEGMENTS)
    emo = {"call_id": [cid] * SEGMENTS, "segment_id": seg_id, "model_id": ["embedded-bench"] * SEGMENTS}
    for c in ("arousal", "valence", "tone", "tone_abs", "text_tone", "hawkish", "fused_tone",
              "attention_top15_share", "lm_positive", "lm_negative", "lm_uncertainty", "lm_tone"):
        emo[c] = rng.normal(size=SEGMENTS)
    emo |= {"norm_basis": ["call"] * SEGMENTS, "top_words": ["guidance margin"] * SEGMENTS,
            "n_windows": rng.integers(1, 10, SEGMENTS), "skip_reason": [""] * SEGMENTS}
    emo |= {f"p_{e}": p[:, k] for k, e in enumerate(EMOTIONS)}
    voices = pa.table({"call_id": [cid] * SPEAKERS, "speaker": [f"SPEAKER_{k:02d}" for k in range(SPEAKERS)],
                       "voice_id": speakers.column("voice_id"), "embedding_model": ["campplus-cn-en-common"] * SPEAKERS,
                       "embedding": [rng.normal(size=256).astype("float32").tolist() for _ in range(SPEAKERS)]})
    return {"speakers": speakers, "segments": segments, "words": words, "voices": voices,
            "emotions": pa.table(emo), "calls": calls}


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def queries(run, ids: list[str], label: str, figures: dict[str, float], prefix: str) -> object:
    """The three queries through ``run(sql)``; lookups are the median over 7 random calls."""
    t_join, join = timed(lambda: run(ANALYST_JOIN), 2)
    lookups = [timed(lambda c=c: run(LOOKUP.format(cid=c)))[0] for c in ids]
    t_scan, scan = timed(lambda: run(WORDS_SCAN))
    figures[f"{prefix}analyst_join_s"] = t_join
    figures[f"{prefix}one_call_lookup_s"] = statistics.median(lookups)
    figures[f"{prefix}words_scan_s"] = t_scan
    print(f"{label}: analyst join {t_join:.3f} s, one-call lookup {statistics.median(lookups) * 1000:.1f} ms "
          f"(median of {len(ids)}), words scan {t_scan:.2f} s ({scan.to_pylist()[0]['n']:,} rows)", flush=True)
    return join


def same(a: pa.Table, b: pa.Table, what: str) -> None:
    """Equal answers (sums in another order differ in the last bits)."""
    x, y = a.to_pandas(), b.to_pandas()
    assert list(x.columns) == list(y.columns) and len(x) == len(y), what
    for c in x.columns:
        if x[c].dtype.kind == "f":
            assert np.allclose(x[c], y[c], rtol=1e-9, equal_nan=True), what
        else:
            assert (x[c] == y[c]).all(), what


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=10000)
    ap.add_argument("--out", type=Path, default=None, help="catalog folder (default: a temporary one, removed)")
    ap.add_argument("--delta", action="store_true", help="also measure Delta Lake (deltalake)")
    ap.add_argument("--delta-calls", type=int, default=1000)
    args = ap.parse_args()

    import duckdb

    from data_catalog import Catalog
    from data_catalog.query import view_sql
    from pipelines.tables import write_call

    work = Path(tempfile.mkdtemp(prefix="bench_catalog_"))
    root = args.out or work / "catalog"
    cat = Catalog(root)
    rng = np.random.default_rng(0)
    figures: dict[str, float] = {}
    print(f"{args.calls} calls x ({SEGMENTS} segments, {WORDS} words, {SEGMENTS} emotion rows) -> {root}", flush=True)
    write_times, t0 = [], time.perf_counter()
    for i in range(args.calls):
        tables = call_tables(i, rng)
        t1 = time.perf_counter()
        write_call(cat, f"{i:016x}", tables)
        write_times.append(time.perf_counter() - t1)
        if (i + 1) % max(1, args.calls // 10) == 0:
            print(f"  wrote {i + 1} calls ({time.perf_counter() - t0:.0f} s)", flush=True)
    figures["write_call_s"] = statistics.median(write_times)
    figures["write_calls_per_s"] = len(write_times) / sum(write_times)
    print(f"write: median {figures['write_call_s'] * 1000:.0f} ms per call (p95 "
          f"{np.percentile(write_times, 95) * 1000:.0f} ms), {figures['write_calls_per_s']:.1f} calls/s, "
          f"{figures['write_calls_per_s'] * (WORDS + 2 * SEGMENTS):,.0f} rows/s", flush=True)
    ids = [f"{i:016x}" for i in np.random.default_rng(1).choice(args.calls, 7, replace=False)]

    def run(sql: str):
        return cat.query(sql, timeout_s=3600, memory_limit="8GB")

    parts_join = queries(run, ids, "per-call parts (before compaction)", figures, "parts_")
    t_compact, res = timed(cat.compact)
    figures["compact_s"] = t_compact
    print(f"compaction: {t_compact:.1f} s (" + "; ".join(r.line() for r in res if r.table in ("words", "calls")) + ")")
    join = queries(run, ids, "compacted catalog", figures, "")
    same(join, parts_join, "compaction changed the analyst join's answer")

    t_rewrite, _ = timed(lambda: write_call(cat, ids[0], call_tables(int(ids[0], 16), np.random.default_rng(9))))
    pending_join = queries(run, ids, "compacted + one call re-written", figures, "pending_")
    figures["rewrite_call_s"] = t_rewrite

    base = work / "baseline"
    base.mkdir()
    views = view_sql(cat)
    con = duckdb.connect(":memory:", config={"threads": 2, "memory_limit": "8GB"})
    for table in ("segments", "emotions", "speakers", "words"):
        con.execute(f"COPY ({views[table]}) TO '{base / table}.parquet' (FORMAT parquet, COMPRESSION zstd)")
    con.close()
    bcon = duckdb.connect(":memory:", config={"threads": 2, "memory_limit": "8GB"})
    for table in ("segments", "emotions", "speakers", "words"):
        bcon.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{base / table}.parquet')")
    base_join = queries(lambda sql: bcon.sql(sql).to_arrow_table(), ids, "baseline: one Parquet file per table",
                        figures, "naive_compacted_")
    same(base_join, pending_join, "the baseline gives another answer")
    # the same files, with speakers read into memory as speechfin's views do for a join: DuckDB's
    # planner then knows speakers.call_id is not unique (on the Parquet file it built a 24M-row
    # intermediate); this is the fair baseline for the ratio
    bcon.execute("DROP VIEW speakers")
    bcon.execute(f"CREATE TABLE speakers AS SELECT * FROM read_parquet('{base / 'speakers'}.parquet')")
    queries(lambda sql: bcon.sql(sql).to_arrow_table(), ids, "baseline, speakers in memory", figures, "compacted_")

    if args.delta:
        delta_candidate(work / "delta", min(args.delta_calls, args.calls), ids, figures)

    print(f"analyst join: {figures['analyst_join_s'] / figures['compacted_analyst_join_s']:.2f}x the baseline "
          f"(target within 2x and under 1 s); one-call lookup {figures['one_call_lookup_s'] * 1000:.1f} ms "
          f"(target under 50 ms); write {figures['write_call_s'] * 1000:.0f} ms per call (target under 0.5 s)")
    for k, v in figures.items():
        print(f"{k}={v:.4f}")
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)


def delta_candidate(path: Path, n: int, ids: list[str], figures: dict[str, float]) -> None:
    """Delta Lake, one table per catalog table: each call replaces its rows (``predicate``)."""
    import duckdb
    from deltalake import DeltaTable, write_deltalake

    from data_catalog.schemas import TABLES
    from data_catalog.store import conform

    rng = np.random.default_rng(0)
    times = []
    for i in range(n):
        tables = call_tables(i, rng)
        t0 = time.perf_counter()
        for name, t in tables.items():
            t = conform(t, TABLES[name])
            target = str(path / name)
            if (path / name / "_delta_log").exists():
                write_deltalake(target, t, mode="overwrite", predicate=f"call_id = '{i:016x}'")
            else:
                write_deltalake(target, t, mode="append")
        times.append(time.perf_counter() - t0)
    figures["delta_write_call_s"] = statistics.median(times)
    figures["delta_write_last100_s"] = statistics.median(times[-100:])
    print(f"delta ({n} calls): median write {figures['delta_write_call_s'] * 1000:.0f} ms per call, "
          f"last 100 calls {figures['delta_write_last100_s'] * 1000:.0f} ms", flush=True)
    t0 = time.perf_counter()
    for name in ("segments", "emotions", "speakers", "words"):
        dt = DeltaTable(str(path / name))
        dt.optimize.compact()
        dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    figures["delta_compact_s"] = time.perf_counter() - t0
    con = duckdb.connect(":memory:", config={"threads": 2})
    datasets = {name: DeltaTable(str(path / name)).to_pyarrow_dataset()
                for name in ("segments", "emotions", "speakers", "words")}
    for name, ds in datasets.items():
        con.register(name, ds)
    ids = [c for c in ids if int(c, 16) < n] or [f"{0:016x}"]
    queries(lambda sql: con.sql(sql).to_arrow_table(), ids, f"delta lake after optimize ({n} calls)", figures,
            "delta_")


if __name__ == "__main__":
    main()
