"""Report generation time: a call with 500 segments (target < 10 s) and a study with 1,000 events
(target < 20 s), each as HTML and as PDF, from a synthetic catalog (tests/reports/reports_synth.py).

    .venv/bin/python benchmarks/bench_reports.py [--segments 500] [--events 1000] [--repeat 3]

The study tables are written by the finance engine (``run_study``) before the clock starts.
Each time is the best of ``--repeat`` renders in one process (after a first render that pays
the imports, reported separately as "cold"), so other work on a shared machine disturbs the
ratio as little as possible.  Prints seconds, the ratio to the target and the peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reports"))

from data_catalog import Catalog  # noqa: E402
from reports_synth import synthetic_call, synthetic_study  # noqa: E402

TARGETS = {"call": 10.0, "study": 20.0}


def timed(fn, repeat: int) -> tuple[float, float]:
    """(cold, best warm) seconds of ``fn()``."""
    t0 = time.perf_counter()
    fn()
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t0)
    return cold, min(warm)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", type=int, default=500)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from finance.studies import run_study
    from reports import render_call_report, render_study_report

    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        tmp = Path(tmp)
        cat = Catalog(tmp / "catalog")
        t0 = time.perf_counter()
        synth = synthetic_call(cat, n_segments=args.segments)
        spec = synthetic_study(cat, tmp / "spec", n_events=args.events)
        run_study(spec, cat)
        print(f"setup: call with {args.segments} segments, study with {args.events} events "
              f"({time.perf_counter() - t0:.1f} s, not timed)")
        rows = []
        for kind, subject, render in (("call", synth.call_id, render_call_report),
                                      ("study", spec.stem, render_study_report)):
            for fmt in ("html", "pdf"):
                out = tmp / f"{kind}.{fmt}"
                cold, best = timed(lambda: render(cat, subject, out), args.repeat)
                rows.append((kind, fmt, cold, best, out.stat().st_size))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'report':<8}{'format':<8}{'cold s':>8}{'best s':>8}{'target s':>10}{'best/target':>13}{'size KB':>9}")
    for kind, fmt, cold, best, size in rows:
        print(f"{kind:<8}{fmt:<8}{cold:>8.2f}{best:>8.2f}{TARGETS[kind]:>10.0f}{best / TARGETS[kind]:>13.3f}"
              f"{size / 1024:>9.0f}")
    worst = max(max(cold, best) / TARGETS[kind] for kind, _, cold, best, _ in rows)
    print(f"peak RSS {peak_mb:.0f} MB; slowest render (cold or warm) at {worst:.2f} of its target: "
          f"{'met' if worst < 1 else 'MISSED'}")


if __name__ == "__main__":
    main()
