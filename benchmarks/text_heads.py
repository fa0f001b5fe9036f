"""Text heads on financial language: the two figures and their dictionary baselines.

    .venv/bin/python benchmarks/text_heads.py                    # both tasks (~25 min on one thread)
    .venv/bin/python benchmarks/text_heads.py --tasks fpb        # Financial PhraseBank only (~9 min)
    .venv/bin/python benchmarks/text_heads.py --tasks fomc       # FOMC only
    .venv/bin/python benchmarks/text_heads.py --table            # print the table of the results file
    .venv/bin/python benchmarks/text_heads.py --tasks fomc --validation --fomc-config VARIANT.toml
        # choose a FOMC recipe without the test splits: per seed, train on 80% of its train
        # split, score the held-out 20% (stratified, shuffled with seed 0)
    .venv/bin/python benchmarks/text_heads.py --tasks fomc --members 3 [--validation] [--splits 5768]
        # FOMC: an ensemble of 3 models of the recipe (training seeds 0, 1, 2; probabilities
        # averaged) per split; each member's probabilities are kept in --probs-dir, so the
        # (split, member) runs can be shared between processes and a rerun only combines them

1. Financial PhraseBank v1.0, 50% agreement (4,845 sentences: the 4,846 published minus one
   German sentence), 5-fold stratified CV (folds shuffled with seed 0), recipe
   ``ser_models/configs/text_sentiment.toml``; dictionary: Loughran-McDonald tone sign.
   Figure to reach: accuracy >= 82%, macro-F1 >= 0.78.
2. FOMC hawkish/dovish (Shah et al., ACL 2023), combined split, seeds 5768, 78516, 944601:
   train on ``lab-manual-combine-train-<seed>.csv``, test on ``...-test-<seed>.csv``, recipe
   ``ser_models/configs/text_fomc.toml``; dictionary: ``text_heads.hawk_dove_score``.
   Figure to reach: mean macro-F1 >= 0.62.

Everything runs on one torch thread.  Raw rows go to ``benchmarks/results/text_heads.jsonl``
(appended; the table shows the last row of each (task, model)).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "text_heads.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="fpb,fomc")
    ap.add_argument("--fpb-config", default=str(ROOT / "ser_models" / "configs" / "text_sentiment.toml"))
    ap.add_argument("--fomc-config", default=str(ROOT / "ser_models" / "configs" / "text_fomc.toml"))
    ap.add_argument("--variant", default="", help="name of this row (default: the config's name)")
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--validation", action="store_true",
                    help="FOMC: score 20%% validation slices of the train splits, never the test splits")
    ap.add_argument("--members", type=int, default=0,
                    help="FOMC: score an ensemble of this many models per split (training seeds 0..N-1)")
    ap.add_argument("--splits", default="", help="FOMC with --members: only these split seeds (comma-separated)")
    ap.add_argument("--probs-dir", default=str(ROOT / "benchmarks" / "results" / "fomc_member_probs"),
                    help="FOMC with --members: where each member's probabilities are kept (not committed)")
    ap.add_argument("--member-ids", default="", help="FOMC with --members: train only these members (comma-separated)")
    ap.add_argument("--save-members", default="", help="FOMC with --members: write the shipped split's members here")
    ap.add_argument("--checkpoints", action="store_true",
                    help="also write the shipped checkpoints from these runs (FPB: trained on all sentences "
                         "after the CV; FOMC: the seed-944601 model of the split run)")
    args = ap.parse_args()
    if args.table:
        return print_table(args.results)

    import numpy as np
    import torch

    from ser_models.text_heads import SHIPPED, cross_validate_text, fomc_splits, load_recipe, train_checkpoint

    torch.set_num_threads(1)
    tasks = args.tasks.split(",")
    if "fpb" in tasks:
        r = load_recipe(args.fpb_config)
        rep = cross_validate_text(r)
        print(rep.summary(), flush=True)
        cv = rep.cv
        write(args.results, [
            {"task": "fpb", "model": args.variant or r.exp.name, "protocol": "5-fold stratified CV, 50% agreement",
             "n": int(sum(len(f.y_true) for f in cv.folds)), "accuracy": cv.mean("wa"),
             "macro_f1": cv.mean("macro_f1"), "ua": cv.mean("ua"),
             "folds": [{"accuracy": f.wa, "macro_f1": f.macro_f1} for f in cv.folds], "seconds": round(rep.seconds)},
            {"task": "fpb", "model": "Loughran-McDonald dictionary", "protocol": "same folds",
             "n": int(sum(len(f.y_true) for f in rep.dictionary)),
             "accuracy": float(np.mean([f.wa for f in rep.dictionary])),
             "macro_f1": float(np.mean([f.macro_f1 for f in rep.dictionary])),
             "ua": float(np.mean([f.ua for f in rep.dictionary])),
             "folds": [{"accuracy": f.wa, "macro_f1": f.macro_f1} for f in rep.dictionary]}])
        if args.checkpoints:
            card = train_checkpoint(r, SHIPPED["sentiment"], {"cv": rep.metrics()})
            print(f"wrote {SHIPPED['sentiment']}: {card.model_id} ({card.raw['train_seconds']} s)", flush=True)
    if "fomc" in tasks and args.members:
        splits = [int(x) for x in args.splits.split(",")] if args.splits else None
        return fomc_members(load_recipe(args.fomc_config), args.members, args.validation, args.variant,
                            args.results, Path(args.probs_dir), splits,
                            Path(args.save_members) if args.save_members else None,
                            [int(x) for x in args.member_ids.split(",")] if args.member_ids else None)
    if "fomc" in tasks and args.validation:
        return fomc_validation(load_recipe(args.fomc_config), args.variant, args.results)
    if "fomc" in tasks:
        r = load_recipe(args.fomc_config)
        t0 = time.time()
        models = {}
        res = fomc_splits(r, models=models)
        for e in res.values():
            print(e.summary(), flush=True)
        rows = []
        for name, get in ((args.variant or r.exp.name, lambda e: e.model), (None, lambda e: e.dictionary)):
            per = {str(s): {"accuracy": get(e).wa, "macro_f1": get(e).macro_f1} for s, e in res.items()}
            rows.append({"task": "fomc", "model": name or next(iter(res.values())).dictionary_name,
                         "protocol": "Shah et al. combine splits, mean of 3 seeds",
                         "n": int(len(next(iter(res.values())).model.y_true)),
                         "accuracy": float(np.mean([v["accuracy"] for v in per.values()])),
                         "macro_f1": float(np.mean([v["macro_f1"] for v in per.values()])),
                         "ua": float(np.mean([get(e).ua for e in res.values()])), "seeds": per,
                         **({"seconds": round(time.time() - t0)} if name else {})})
        write(args.results, rows)
        if args.checkpoints:
            metrics = {"splits": {str(s): e.metrics() | {"seconds": round(e.seconds, 1)} for s, e in res.items()},
                       "splits_macro_f1_mean": rows[0]["macro_f1"]}
            card = train_checkpoint(r, SHIPPED["fomc"], metrics, trained=models[r.seed])
            print(f"wrote {SHIPPED['fomc']}: {card.model_id} (seed {r.seed}: {res[r.seed].seconds:.0f} s)", flush=True)
    print_table(args.results)


def fomc_validation(r, variant: str, results: str) -> None:
    """Per split seed: train on 4/5 of the train split, macro-F1 on the other fifth."""
    import numpy as np

    from ser_models.text_heads import FOMC_SEEDS, evaluate_model, recipe_corpus, stratified_groups, train_text

    t0, per = time.time(), {}
    for s in FOMC_SEEDS:
        corpus = recipe_corpus(r, "train", s)
        held = stratified_groups(corpus.y, 5, 0) == "fold1"
        model, feat = train_text(r, corpus.subset(np.flatnonzero(~held)))
        e = evaluate_model(model, feat, corpus.subset(np.flatnonzero(held)), f"validation slice of train split {s}")
        per[str(s)] = {"accuracy": e.model.wa, "macro_f1": e.model.macro_f1, "ua": e.model.ua}
        print(f"seed {s}: validation macro-F1 {e.model.macro_f1:.3f} ({time.time() - t0:.0f} s)", flush=True)
    write(results, [{"task": "fomc-validation", "model": variant or r.exp.name,
                     "protocol": "20% slice of each combine train split (stratified, seed 0)",
                     "n": int(held.sum()), "accuracy": float(np.mean([v["accuracy"] for v in per.values()])),
                     "macro_f1": float(np.mean([v["macro_f1"] for v in per.values()])), "ua": float(np.mean([v["ua"] for v in per.values()])),
                     "seeds": per, "seconds": round(time.time() - t0)}])
    print_table(results)


def fomc_members(r, members: int, validation: bool, variant: str, results: str, probs_dir: Path,
                 splits: list[int] | None, save_dir: Path | None = None, only: list[int] | None = None) -> None:
    """Ensemble of ``members`` models of recipe ``r`` per split (training seeds 0..members-1),
    scored on the validation slices (``validation``) or on Shah et al.'s test splits.

    Each member's probabilities are saved as ``probs_dir/<mode>-<recipe>-<split>-m<seed>.npy``
    and reused; the row is written when every split has all its members.  ``save_dir``: also
    write each member trained on the shipped split (``r.seed``) there as a checkpoint."""
    from dataclasses import replace

    import numpy as np

    from ser_models.metrics import EvalResult
    from ser_models.text_corpora import FOMC_SEEDS
    from ser_models.text_heads import recipe_corpus, stratified_groups, text_data, train_text
    from ser_models.train import predict

    mode = "validation" if validation else "test"
    probs_dir.mkdir(parents=True, exist_ok=True)
    t0, per = time.time(), {}
    for s in FOMC_SEEDS:
        train = recipe_corpus(r, "train", s)
        if validation:
            held = stratified_groups(train.y, 5, 0) == "fold1"
            train, test = train.subset(np.flatnonzero(~held)), train.subset(np.flatnonzero(held))
        else:
            test = recipe_corpus(r, "test", s)
        probs = []
        for m in range(members):
            f = probs_dir / f"{mode}-{r.exp.name}-{s}-m{m}.npy"
            if not f.exists() and (splits is None or s in splits) and (only is None or m in only):
                rm = replace(r, exp=replace(r.exp, train=replace(r.exp.train, seed=m)))
                model, feat = train_text(rm, train)
                p, _ = predict(model, text_data(test, feat), feat)
                np.save(f, np.asarray(p, np.float32))
                if save_dir is not None and not validation and s == r.seed:  # the shipped split's members
                    from ser_models.text_heads import train_checkpoint
                    train_checkpoint(rm, save_dir / f"m{m}", {"ensemble_member": m}, trained=(model, feat))
                print(f"{mode} split {s}, member {m}: macro-F1 "
                      f"{EvalResult(model.config.labels, test.y, p.argmax(1)).macro_f1:.3f} "
                      f"({time.time() - t0:.0f} s)", flush=True)
            if f.exists():
                probs.append(np.load(f))
        if len(probs) == members:
            labels = tuple(r.exp.model.labels)
            single = [EvalResult(labels, test.y, p.argmax(1)) for p in probs]
            ens = EvalResult(labels, test.y, np.mean(probs, axis=0).argmax(1))
            per[str(s)] = {"accuracy": ens.wa, "macro_f1": ens.macro_f1, "ua": ens.ua,
                           "members_macro_f1": [e.macro_f1 for e in single]}
            print(f"{mode} split {s}: ensemble of {members} macro-F1 {ens.macro_f1:.3f} "
                  f"(members {' '.join(f'{e.macro_f1:.3f}' for e in single)})", flush=True)
    if len(per) < len(FOMC_SEEDS):
        return print(f"{len(per)} of {len(FOMC_SEEDS)} splits have all {members} members; no row written")
    protocol = ("20% slice of each combine train split (stratified, seed 0)" if validation
                else "Shah et al. combine splits, mean of 3 seeds")
    write(results, [{"task": "fomc-validation" if validation else "fomc",
                     "model": variant or f"{r.exp.name} ensemble of {members}", "protocol": protocol,
                     "n": int(len(test.y)), "accuracy": float(np.mean([v["accuracy"] for v in per.values()])),
                     "macro_f1": float(np.mean([v["macro_f1"] for v in per.values()])),
                     "ua": float(np.mean([v["ua"] for v in per.values()])), "seeds": per,
                     "seconds": round(time.time() - t0)}])
    print_table(results)


def write(path, rows) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def print_table(path) -> None:
    rows = {}
    for line in Path(path).read_text().splitlines():
        row = json.loads(line)
        rows[(row["task"], row["model"])] = row
    target = {"fpb": "acc >= 82%, macro-F1 >= 0.78", "fomc": "macro-F1 >= 0.62"}
    print(f"\n{'task':<16}{'model':<40}{'accuracy':>9}{'macro-F1':>10}{'UA':>8}   per fold / seed (macro-F1)")
    for (task, model), r in rows.items():
        per = r.get("folds") or list((r.get("seeds") or {}).values())
        print(f"{task:<16}{model[:39]:<40}{r['accuracy']:>9.1%}{r['macro_f1']:>10.3f}{r['ua']:>8.1%}   "
              + " ".join(f"{p['macro_f1']:.3f}" for p in per))
    print("targets: " + "; ".join(f"{k}: {v}" for k, v in target.items()))


if __name__ == "__main__":
    main()
