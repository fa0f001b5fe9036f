"""Label-shift adaptation of the voice model's class prior (Saerens et al. 2002), measured.

RAVDESS is balanced by design (and the recipe's class weights train for a uniform prior); a
call is mostly neutral speech.  The calibrated posteriors of the fold models assume the
training prior, so a call's class prior can be re-estimated without labels by EM
(``ser_models.calibration.adapt_prior``) and the posteriors re-weighted with it.  This script
measures that on the probabilities that ``ser_validity.py --save-probs`` keeps (the five fold
models of one training seed, temperature fitted on their out-of-fold probabilities):

- held-out actors as they are (balanced: EM should change little), per actor;
- held-out actors drawn to a *shifted* prior, per actor, 40 clips with replacement, 200 draws
  per fold: "call-like" (neutral 0.3, calm 0.3, happy 0.1, surprised 0.05, each negative class
  0.0625) and "negative" (neutral 0.1, calm 0.1, happy 0.1, surprised 0.1, each negative class
  0.15).  Scored against the labels: accuracy, NLL, the error of the mean tone (against the
  tone of the true labels: +1 positive, -1 negative, 0 neutral/calm) and of the share of
  negative top classes (against the true negative share);
- the earnings-call clips, per call (one speaker each), as the plausibility check.

Rule, fixed before the first run (2026-12-07): the EM is adopted at inference only if, for
each training seed measured, the unshifted UA drops by at most 0.5 points, the per-class tone
targets stay met, and on both shifted priors accuracy and NLL improve and both errors shrink;
and the earnings calls get no more negative.  The pseudo-count is fixed in advance at C (the
number of classes) clips, spread as the source prior.

    .venv/bin/python benchmarks/ser_validity.py --variant shipped --seed 0 --save-probs /tmp/s0.npz
    .venv/bin/python benchmarks/prior_shift.py /tmp/s0.npz [/tmp/s1.npz ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHIFTS = {
    "call-like": {"neutral": 0.3, "calm": 0.3, "happy": 0.1, "surprised": 0.05},
    "negative": {"neutral": 0.1, "calm": 0.1, "happy": 0.1, "surprised": 0.1},
}
DRAW = 40       # clips per actor and draw
DRAWS = 200     # draws per fold and shift


def target_prior(labels, given: dict) -> np.ndarray:
    from ser_models.features import negative_mask

    neg = negative_mask(labels)
    rest = (1.0 - sum(given.values())) / neg.sum()
    return np.array([given.get(lab, rest if neg[i] else 0.0) for i, lab in enumerate(labels)])


def per_speaker(probs: np.ndarray, speakers: np.ndarray, adapt) -> np.ndarray:
    out = probs.copy()
    for g in np.unique(speakers):
        sel = speakers == g
        out[sel] = adapt(probs[sel])
    return out


def measure(path: str, labels, pseudo: float) -> dict:
    from ser_models.calibration import adapt_prior, apply_temperature, fit_temperature, nll
    from ser_models.corpus import speaker_folds
    from ser_models.experiment import tone_by_class
    from ser_models.features import negative_mask, tone
    from ser_models.metrics import EvalResult
    from ser_validity import call_figures, load_probs

    d = load_probs(path)
    y, speakers = d["y"], d["speakers"]
    T = fit_temperature(d["m0_oof"], y).temperature
    oof = apply_temperature(d["m0_oof"], T)
    neg = negative_mask(labels)
    truth_tone = tone(np.eye(len(labels)), labels)           # (C,) +1 / -1 / 0 per class
    em = lambda p: adapt_prior(p, None, pseudo).probs        # noqa: E731
    folds = speaker_folds(speakers, 5)
    res = {"file": path, "temperature": T, "mean_oof_posterior": oof.mean(0).round(3).tolist()}
    for name, p in (("none", oof), ("em", per_speaker(oof, speakers, em))):
        res[name] = {"ua": float(np.mean([EvalResult(labels, y[f], p[f].argmax(1)).ua for f in folds])),
                     "nll": nll(p, y), "tone_by_class": tone_by_class(p, y, labels)}
    rng = np.random.default_rng(0)
    for shift, given in SHIFTS.items():
        pi = target_prior(labels, given)
        draws = {"none": [], "em": []}      # per draw: accuracy, NLL, tone error, negative-share error
        for g in np.unique(speakers):
            idx = np.flatnonzero(speakers == g)
            by_class = [idx[y[idx] == c] for c in range(len(labels))]
            if any(len(b) == 0 for b, w in zip(by_class, pi) if w > 0):
                continue                                     # (not in RAVDESS: every actor has every class)
            for _ in range(DRAWS // 4):
                cls = rng.choice(len(labels), size=DRAW, p=pi)
                pick = np.array([rng.choice(by_class[c]) for c in cls])
                for name, p in (("none", oof[pick]), ("em", em(oof[pick]))):
                    draws[name].append((float((p.argmax(1) == y[pick]).mean()), nll(p, y[pick]),
                                        abs(float(tone(p, labels).mean() - truth_tone[y[pick]].mean())),
                                        abs(float(neg[p.argmax(1)].mean() - neg[y[pick]].mean()))))
        res[shift] = {name: dict(zip(("accuracy", "nll", "tone_error", "negative_share_error"),
                                     np.mean(v, axis=0).tolist())) for name, v in draws.items()}
    calls, earn = d["call_names"], d["m0_earn"]     # the fold models' call probabilities, (folds, N, C)
    res["earnings"] = {"none": call_figures(earn, T, calls, labels),     # per call (one speaker each)
                       "em": call_figures([per_speaker(apply_temperature(p, T), calls, em) for p in earn],
                                             1.0, calls, labels)}
    return res


def report(r: dict, labels) -> None:
    print(f"\n{r['file']}: temperature {r['temperature']:.2f}; mean out-of-fold posterior "
          + " ".join(f"{lab} {v:.3f}" for lab, v in zip(labels, r["mean_oof_posterior"])))
    for name in ("none", "em"):
        t = r[name]["tone_by_class"]
        print(f"  unshifted, {name:4s}: UA {r[name]['ua']:.1%}, NLL {r[name]['nll']:.3f}, tone neutral / calm / happy "
              f"/ sad / angry {t['neutral']:+.2f} / {t['calm']:+.2f} / {t['happy']:+.2f} / {t['sad']:+.2f} / {t['angry']:+.2f}")
    for shift in SHIFTS:
        for name in ("none", "em"):
            s = r[shift][name]
            print(f"  {shift:9s}, {name:4s}: accuracy {s['accuracy']:.1%}, NLL {s['nll']:.3f}, "
                  f"tone error {s['tone_error']:.3f}, negative-share error {s['negative_share_error']:.3f}")
    for name in ("none", "em"):
        print(f"  earnings, {name:4s}: " + "; ".join(f"{c} negative top {v['neg_top_share']:.0%}, tone {v['mean_tone']:+.2f}"
                                                   for c, v in r["earnings"][name].items() if c != "all"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("probs", nargs="+", help="ser_validity.py --save-probs files")
    ap.add_argument("--config", default=str(ROOT / "ser_models" / "configs" / "embedded.toml"))
    ap.add_argument("--pseudo-count", type=float, default=0.0, help="the Dirichlet's weight in clips (default: the "
                    "number of classes, fixed before the first run; other values are a sensitivity check)")
    args = ap.parse_args()
    from ser_models.train import load_experiment

    labels = list(load_experiment(args.config).model.labels)
    for path in args.probs:
        report(measure(path, labels, pseudo=args.pseudo_count or float(len(labels))), labels)


if __name__ == "__main__":
    main()
