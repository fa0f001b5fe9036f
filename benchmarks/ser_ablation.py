"""SER ablation on RAVDESS: pooling methods, modalities and the linear-probe baseline, all
on the same 5 speaker-independent folds (actors 01-04, 05-08, ..., 17-20).

    .venv/bin/python benchmarks/ser_ablation.py                 # full table (~3 h on one process)
    .venv/bin/python benchmarks/ser_ablation.py --epochs 5      # quick look
    .venv/bin/python benchmarks/ser_ablation.py --rtf           # emotion-stage real-time factor only

Training runs on one thread, so on 2 cores the rows can be split over two processes that
append to one results file; the last one to finish prints the whole table (or ``--table``):

    .venv/bin/python benchmarks/ser_ablation.py --rows probe,modality --results abl.jsonl &
    .venv/bin/python benchmarks/ser_ablation.py --rows pooling --results abl.jsonl      # ~1.5 h, caches included

Every model row starts from the embedded recipe (ser_models/configs/embedded.toml) and
changes one thing.  Encoder frames come from the on-disk cache (computed once).  Rows:

  linear probe (clip alone)   tiny.en frames of each clip encoded alone, mean+std, logistic
                              regression: the baseline quoted in issue 3 (UA 70.2%)
  linear probe (in windows)   the same on the frames the flow sees (clips packed in 30 s windows)
  eGeMAPS functionals probe   the 88 eGeMAPSv02 functionals, logistic regression (issue: 47.3%)
  pooling=<m>, audio          BimodalSER audio branch with pooling m
  text / audio+text           MiniLM token frames (MQMHA), alone and concatenated with audio
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(ROOT / ".." / "shared" / "data" / "ravdess"))
    ap.add_argument("--config", default=str(ROOT / "ser_models" / "configs" / "embedded.toml"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=0, help="override the recipe's epochs (0 = keep)")
    ap.add_argument("--rows", default="probe,pooling,modality", help="comma-separated groups to run")
    ap.add_argument("--pooling", default="mean,stats,asp,mha,mqmha", help="pooling rows to run")
    ap.add_argument("--results", help="append each row to this JSONL file; the table covers all its rows")
    ap.add_argument("--table", action="store_true", help="only print the table of --results")
    ap.add_argument("--rtf", action="store_true", help="only measure the emotion stage's real-time factor")
    args = ap.parse_args()
    if args.rtf:
        return measure_rtf()
    if args.table:
        return print_table(read_rows(args.results))

    import torch

    from ser_models.baseline import linear_probe_cv, probe_cv
    from ser_models.corpus import load_corpus
    from ser_models.encoders import EncoderConfig, build_encoder
    from ser_models.experiment import prepare
    from ser_models.train import Featurizer, cross_validate, load_experiment

    torch.set_num_threads(1)
    exp = load_experiment(args.config)
    tc = replace(exp.train, epochs=args.epochs or exp.train.epochs)
    corpus = load_corpus(args.corpus, exp.model.labels)
    groups = args.rows.split(",")
    rows = []

    def report(name, cv, seconds):
        row = {"model": name, "seconds": round(seconds, 1), "folds": args.folds,
               **{f"{m}_{s}": float(getattr(cv, s)(m)) for m in ("ua", "wa", "macro_f1") for s in ("mean", "std")},
               "ua_folds": [float(f.ua) for f in cv.folds]}               # for paired comparisons of rows
        rows.append(row)
        print(f"{name:<34} UA={cv.mean('ua'):.1%} (sd {cv.std('ua'):.1%})  WA={cv.mean('wa'):.1%}  "
              f"macro-F1={cv.mean('macro_f1'):.1%}  [{seconds:.0f} s]", flush=True)
        if args.results:
            with open(args.results, "a") as f:
                f.write(json.dumps(row) + "\n")

    if "probe" in groups:
        for name, enc_cfg in [("linear probe (clip alone)", EncoderConfig("whisper_ct2", pack_s=0.0)),
                              ("linear probe (in 30 s windows)", EncoderConfig("whisper_ct2", pack_s=30.0))]:
            t0 = time.time()
            fz = Featurizer(replace(exp.model, audio=enc_cfg), encoders={"audio": build_encoder(enc_cfg)})
            frames = fz.prepare(corpus, progress=True).inputs["audio"]
            report(name, linear_probe_cv(frames, corpus.y, corpus.speakers, corpus.labels, args.folds), time.time() - t0)
        t0 = time.time()
        report("eGeMAPS functionals probe", probe_cv(egemaps_functionals(corpus.audio()), corpus.y, corpus.speakers,
                                                     corpus.labels, args.folds), time.time() - t0)

    def run(name, model_cfg, train_cfg):
        t0 = time.time()
        e, fz, data, _ = prepare(replace(exp, model=model_cfg, train=train_cfg), args.corpus)
        cv, _ = cross_validate(e.model, e.train, data, fz, args.folds, progress=False)
        report(name, cv, time.time() - t0)

    if "pooling" in groups:
        for pooling in args.pooling.split(","):
            run(f"pooling={pooling}, audio", replace(exp.model, pooling=pooling), tc)
    if "modality" in groups:
        text = EncoderConfig("minilm")
        run("MQMHA, text only (MiniLM)", replace(exp.model, audio=None, text=text), replace(tc, packings=1))
        run("MQMHA, audio + text (concat)", replace(exp.model, text=text), tc)

    print_table(read_rows(args.results) if args.results else rows)


ORDER = ("linear probe", "eGeMAPS", "pooling=mean", "pooling=stats", "pooling=asp", "pooling=mha", "pooling=mqmha",
         "MQMHA, text", "MQMHA, audio")


def read_rows(path: str) -> list[dict]:
    """The rows of a results file, the last run of each model only."""
    rows = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["model"]] = row
    return list(rows.values())


def print_table(rows: list[dict]) -> None:
    """Markdown table of UA (mean ± sd over folds), WA and macro-F1, in a fixed row order."""
    rank = {name: i for i, name in enumerate(ORDER)}
    rows = sorted(rows, key=lambda r: next((i for p, i in rank.items() if r["model"].startswith(p)), len(rank)))
    print("\n| model | UA | WA | macro-F1 |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['ua_mean']:.1%} ± {r['ua_std']:.1%} | {r['wa_mean']:.1%} | {r['macro_f1_mean']:.1%} |")
    base = next((r for r in rows if r["model"].startswith("pooling=mqmha") and "ua_folds" in r), None)
    paired = [r for r in rows if "ua_folds" in r and r is not base]
    if base and paired:  # the folds are the same, so rows are compared fold by fold
        print("\nUA per fold, and paired against MQMHA (the shipped recipe):")
        for r in [base] + paired:
            d = np.array(r["ua_folds"]) - np.array(base["ua_folds"])
            folds = " ".join(f"{u:.1%}" for u in r["ua_folds"])
            vs = "" if r is base else (f"   diff {d.mean():+.1%} (sd {d.std(ddof=1):.1%}), "
                                       f"better on {int((d > 0).sum())}/{len(d)} folds")
            print(f"  {r['model']:<24} {folds}{vs}")


def egemaps_functionals(waves) -> np.ndarray:
    """(N, 88) eGeMAPSv02 functionals of each clip (opensmile)."""
    import opensmile
    from tqdm import tqdm

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    return np.stack([smile.process_signal(w, 16000).to_numpy()[0] for w in tqdm(waves, desc="eGeMAPS")])


def measure_rtf(minutes: float = 10.0) -> None:
    """Emotion stage on a synthetic call of RAVDESS clips (~``minutes`` long, 5 s segments):
    wall time / audio duration, models already loaded (as in the flow)."""
    import sys

    sys.path[:0] = [str(ROOT / "tests" / "ser_models"), str(ROOT / "tests")]
    from ser_helpers import fake_call

    from pipelines.speech.emotion import load_emotion_scorer, score_call_emotions
    from pipelines.types import Audio, Segment

    audio, segments, speakers, _ = fake_call()
    n_rep = int(np.ceil(minutes * 60 / audio.duration_s))
    samples = np.tile(audio.samples, n_rep)
    segs = [Segment(i * len(segments) + s.segment_id, s.speaker, s.start_s + i * audio.duration_s,
                    s.end_s + i * audio.duration_s, s.text, s.asr_confidence, s.section, s.words)
            for i in range(n_rep) for s in segments]
    long = Audio(audio.path, samples, audio.sample_rate, "0" * 64)
    t0 = time.time()
    scorer = load_emotion_scorer()
    scorer.audio_encoder.ensure_loaded()
    load_s = time.time() - t0
    score_call_emotions(long, segs[:8], speakers, scorer=scorer)          # warm: text encoder loaded
    t0 = time.time()
    out = score_call_emotions(long, segs, speakers, scorer=scorer)
    wall = time.time() - t0
    print(f"emotion stage: {len(segs)} segments, audio {long.duration_s / 60:.1f} min, wall {wall:.1f} s "
          f"(model load {load_s:.1f} s, once per archive): real-time factor {wall / long.duration_s:.4f}")
    print(out.summary())
    # what each part costs, against baselines run in this process on the same call
    import ser_models.speaker_norm as sn

    base = {}
    t0 = time.time()
    scorer.encode_recording(long.samples)
    base["encoding the call alone"] = time.time() - t0
    defaults = sn.iterative_centering.__defaults__
    sn.iterative_centering.__defaults__ = (0,)
    t0 = time.time()
    score_call_emotions(long, segs, speakers, scorer=scorer)
    base["no IFN iterations"] = time.time() - t0
    sn.iterative_centering.__defaults__ = defaults
    heads, scorer.text_heads = scorer.text_heads, {}
    t0 = time.time()
    score_call_emotions(long, segs, speakers, scorer=scorer)
    base["no text heads"] = time.time() - t0
    scorer.text_heads = heads
    for name, s in base.items():
        print(f"  {name}: {s:.1f} s; the full stage takes {wall / s:.2f}x that")


if __name__ == "__main__":
    main()
