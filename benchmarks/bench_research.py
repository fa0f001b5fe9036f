"""Research designs (issue 14): the measurement-error correction on a simulation with a known
truth, and the cost of baselines and MI on a 1,000-call catalog.

    .venv/bin/python benchmarks/bench_research.py                 # everything (~15 min on one core)
    .venv/bin/python benchmarks/bench_research.py --reps 40       # a quicker coverage run
    .venv/bin/python benchmarks/bench_research.py --skip-coverage # costs only

1. Coverage (``finance.mi_simulation``): ``reps`` simulated studies of 200 calls, 15-60
   segments each, true slope beta = 0.05, segments seen through an 8-class confusion with
   the shipped checkpoint's cross-validated UA (76%) and RAVDESS's usual error pattern (and,
   with ``--ua``, other accuracies).  For each: OLS on the measured call tone (posterior
   means, what ``call_features`` holds), OLS on the hard-label tone (argmax classes), and MI
   (M imputations, Rubin's rules).  Prints the mean estimate / beta and the share of 95%
   intervals that cover beta.
2. Cost on 1,000 calls x 300 segments (a one-hour call has about 300 segments):
   ``ser_models.people.person_tones`` + ``baselines`` on 1,000 calls of 50 firms (4 persons
   each, 20 quarters), and ``mi_regression`` with M = 50 on ``call_tone``.  The baseline
   computation is timed against a same-process pandas group-by of the same rows (the ratio
   is what to compare across machines).
Ends with name=value lines.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402


def coverage(ua: float, reps: int, m: int, n_calls: int) -> dict:
    from finance.measurement import MIConfig, mi_regression
    from finance.mi_simulation import confusion, simulate
    from finance.regress import fit_regression

    conf = confusion(ua)
    rows = []
    t0 = time.perf_counter()
    for rep in range(reps):
        s = simulate(conf, n_calls=n_calls, seed=10_000 + rep)
        # hard labels: the argmax class of each segment's posterior
        ev = s.evidence
        post = ev.likelihood * ev.prior
        hard = np.zeros(len(ev.call_ids))
        np.add.at(hard, ev.call_index, ev.weights[:, 0] * (post.argmax(1) - 1.0))
        frame = s.frame.assign(hard_tone=hard)
        r = mi_regression(frame, "car ~ call_tone", ev, "HC1", MIConfig(m=m, seed=rep))
        c = r.coefficients.set_index("term").loc["call_tone"]
        h = fit_regression(frame, "car ~ hard_tone", "HC1").coefficients.set_index("term").loc["hard_tone"]
        q = stats.t.ppf(0.975, c.df)
        qn = stats.t.ppf(0.975, r.nobs - 2)
        rows.append({"mi": c.estimate, "mi_cover": abs(c.estimate - s.beta) <= q * c.std_error, "fmi": c.fmi,
                     "naive": c.naive_estimate, "naive_cover": abs(c.naive_estimate - s.beta) <= qn * c.naive_std_error,
                     "hard": h.estimate, "hard_cover": abs(h.estimate - s.beta) <= qn * h.std_error, "beta": s.beta})
        if (rep + 1) % 20 == 0:
            print(f"  ua {ua:.2f}: {rep + 1}/{reps} studies ({time.perf_counter() - t0:.0f} s)", flush=True)
    df = pd.DataFrame(rows)
    return {"ua": ua, "reps": reps, "m": m, "n_calls": n_calls,
            "naive_ratio": float((df["naive"] / df["beta"]).mean()), "naive_cover": float(df["naive_cover"].mean()),
            "hard_ratio": float((df["hard"] / df["beta"]).mean()), "hard_cover": float(df["hard_cover"].mean()),
            "mi_ratio": float((df["mi"] / df["beta"]).mean()), "mi_cover": float(df["mi_cover"].mean()),
            "mi_sd_ratio": float((df["mi"] / df["beta"]).std()), "fmi": float(df["fmi"].mean()),
            "seconds": time.perf_counter() - t0}


def synthetic_catalog_frames(n_calls: int = 1000, n_segments: int = 300, seed: int = 0):
    """Frames as the catalog holds them: 50 firms x 20 quarters, 4 persons per call (CEO, CFO
    named; two analysts by voice id), 300 segments per call."""
    rng = np.random.default_rng(seed)
    firms = n_calls // 20
    calls, segs, emos, spks = [], [], [], []
    for f in range(firms):
        for q in range(20):
            cid = f"f{f:03d}q{q:02d}"
            calls.append({"call_id": cid, "entity": f"F{f}", "event_time": pd.Timestamp("2015-01-20", tz="UTC")
                          + pd.Timedelta(days=91 * q)})
            people = [("SPEAKER_00", "executive", f"CEO {f}", ""), ("SPEAKER_01", "executive", f"CFO {f}", ""),
                      ("SPEAKER_02", "analyst", "", f"v_an{rng.integers(0, 200)}"),
                      ("SPEAKER_03", "analyst", "", f"v_an{rng.integers(0, 200)}")]
            spks += [{"call_id": cid, "speaker": s, "role": r, "name": n, "voice_id": v} for s, r, n, v in people]
            spk = rng.integers(0, 4, n_segments)
            start = np.cumsum(rng.uniform(2, 20, n_segments))
            segs.append(pd.DataFrame({"call_id": cid, "segment_id": np.arange(n_segments),
                                      "speaker": [people[i][0] for i in spk], "start_s": start,
                                      "end_s": start + rng.uniform(1, 15, n_segments),
                                      "role": [people[i][1] for i in spk],
                                      "section": np.where(np.arange(n_segments) < n_segments // 3, "prepared", "qa")}))
            p = rng.dirichlet(np.full(8, 0.7), n_segments)
            emos.append(pd.DataFrame({"call_id": cid, "segment_id": np.arange(n_segments), "skip_reason": "",
                                      "tone": p[:, [2, 7]].sum(1) - p[:, 3:7].sum(1),
                                      "text_tone": rng.uniform(-1, 1, n_segments), "fused_tone": rng.uniform(-1, 1, n_segments),
                                      **{f"p_{lab}": p[:, i] for i, lab in enumerate(
                                          ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"])}}))
    return pd.DataFrame(calls), pd.concat(segs, ignore_index=True), pd.concat(emos, ignore_index=True), pd.DataFrame(spks)


def costs(n_calls: int, m: int) -> dict:
    from finance.measurement import MIConfig, SegmentEvidence, mi_regression
    from ser_models.call_tone import tone_evidence
    from ser_models.people import baselines, call_abnormal, person_tones

    calls, segs, emos, spks = synthetic_catalog_frames(n_calls)
    t0 = time.perf_counter()
    tones = person_tones(segs, emos, spks, calls)
    base = baselines(tones)
    call_abnormal(base)
    t_base = time.perf_counter() - t0
    t0 = time.perf_counter()
    d = segs.merge(emos, on=["call_id", "segment_id"])
    d["w"] = d["end_s"] - d["start_s"]
    d["wt"] = d["w"] * d["tone"]
    d.groupby(["call_id", "speaker"])[["w", "wt"]].sum()
    t_pandas = time.perf_counter() - t0
    labels = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    t0 = time.perf_counter()
    ev = SegmentEvidence(**tone_evidence(segs, emos, labels, np.full(8, 1 / 8), ["call_tone"]))
    t_ev = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"call_id": ev.call_ids, "call_tone": ev.measured()[:, 0]})
    frame["car"] = 0.05 * frame["call_tone"] + rng.normal(0, 0.02, len(frame))
    t0 = time.perf_counter()
    mi_regression(frame, "car ~ call_tone", ev, "HC1", MIConfig(m=m))
    t_mi = time.perf_counter() - t0
    return {"calls": n_calls, "segments": len(segs), "person_calls": len(tones), "baselines_s": t_base,
            "pandas_groupby_s": t_pandas, "evidence_s": t_ev, "mi_s": t_mi, "m": m}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--m", type=int, default=20, help="imputations per simulated study")
    ap.add_argument("--ua", default="0.76", help="comma-separated UAs of the simulated classifier")
    ap.add_argument("--calls", type=int, default=200, help="calls per simulated study")
    ap.add_argument("--skip-coverage", action="store_true")
    args = ap.parse_args()
    figures = {}
    if not args.skip_coverage:
        for ua in [float(x) for x in args.ua.split(",")]:
            r = coverage(ua, args.reps, args.m, args.calls)
            print(f"UA {ua:.2f}, {r['reps']} studies of {r['n_calls']} calls, M = {r['m']}:\n"
                  f"  OLS on the measured tone (posterior means): mean estimate / beta {r['naive_ratio']:.3f}, "
                  f"95% CI covers beta {r['naive_cover']:.1%}\n"
                  f"  OLS on the hard-label tone (argmax classes): mean estimate / beta {r['hard_ratio']:.3f}, "
                  f"covers {r['hard_cover']:.1%}\n"
                  f"  MI (Rubin's rules): mean estimate / beta {r['mi_ratio']:.3f} (sd {r['mi_sd_ratio']:.3f}), "
                  f"covers {r['mi_cover']:.1%}, mean FMI {r['fmi']:.2f}  ({r['seconds']:.0f} s)", flush=True)
            tag = f"ua{int(round(ua * 100))}"
            figures |= {f"{tag}_naive_ratio": r["naive_ratio"], f"{tag}_naive_cover": r["naive_cover"],
                        f"{tag}_hard_ratio": r["hard_ratio"], f"{tag}_hard_cover": r["hard_cover"],
                        f"{tag}_mi_ratio": r["mi_ratio"], f"{tag}_mi_cover": r["mi_cover"]}
    c = costs(1000, 50)
    print(f"1,000 calls x 300 segments ({c['segments']:,} segments, {c['person_calls']:,} person-calls): baselines "
          f"{c['baselines_s']:.2f} s ({c['baselines_s'] / c['pandas_groupby_s']:.1f}x one pandas group-by of the same "
          f"rows, {c['pandas_groupby_s']:.2f} s); segment evidence {c['evidence_s']:.2f} s; MI with M = {c['m']} "
          f"{c['mi_s']:.1f} s", flush=True)
    figures |= {"baselines_s": c["baselines_s"], "baselines_vs_groupby": c["baselines_s"] / c["pandas_groupby_s"],
                "evidence_s": c["evidence_s"], "mi_m50_s": c["mi_s"]}
    for k, v in figures.items():
        print(f"{k}={v:.4f}")


if __name__ == "__main__":
    main()
