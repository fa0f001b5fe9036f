"""Text heads trained on financial language: sentiment (Financial PhraseBank) and monetary-policy
stance (FOMC hawkish/dovish), with a dictionary baseline each.

Model: ``BimodalSER`` with audio off and MiniLM text frames (all 7 hidden states mixed with
learned weights), MQMHA pooling, MLP head: the pooling family of the voice model.  Trained
with ``ser_models.train`` (``fit`` / ``predict`` / ``cross_validate``) on ``SERData`` whose
inputs are ``{"text": ...}``.  Recipes: ``configs/text_sentiment.toml`` (frozen MiniLM) and
``configs/text_fomc.toml`` (MiniLM with LoRA adapters on its top layers, ``minilm_lora``).

    python -m ser_models.text_heads cv    --config ser_models/configs/text_sentiment.toml
    python -m ser_models.text_heads train --config ser_models/configs/text_fomc.toml --out DIR
    python -m ser_models.text_heads eval  --checkpoint ser_models/checkpoints/text_sentiment --corpus DIR

In the flow (both shipped heads, loaded once)::

    from ser_models.text_heads import score_texts
    probs = score_texts(["Operating profit rose 20%.", "Inflation pressures remain elevated."])
    probs["sentiment"]   # (N, 3): negative, neutral, positive
    probs["fomc"]        # (N, 3): dovish, hawkish, neutral

Dictionary baselines:
- sentiment: Loughran-McDonald (``features.lm_scores``): lm_tone > 0 positive, < 0 negative,
  else neutral.
- FOMC stance: :func:`hawk_dove_score`, a word-list rule in the spirit of Apel & Blix Grimaldi
  (2012, "The Central Bank Sentiment Index", Sveriges Riksbank WP 261) and Tadle (2022, "FOMC
  minutes sentiments and their impact on financial markets", J. Econ. Bus. 118): a
  hawkish/dovish count from (a) policy-action phrases (tighten, raise rates / ease, cut rates,
  accommodation) and (b) a direction word next to an economic noun (rising inflation and
  strong growth are hawkish, falling inflation, weak growth and rising unemployment dovish).
  Written from those papers' lists, not tuned on any split.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from ser_models.metrics import CVResult, EvalResult
from ser_models.text_corpora import (FOMC_LABELS, FOMC_LICENCE, FOMC_SEEDS, FPB_LABELS, FPB_LICENCE, TextCorpus,
                                     TextCorpusError, load_fomc, load_phrasebank, load_text_corpus)

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
CONFIGS = Path(__file__).resolve().parent / "configs"
SHIPPED = {"sentiment": CHECKPOINTS / "text_sentiment", "fomc": CHECKPOINTS / "text_fomc"}

# ----------------------------------------------------------------------------------------
# dictionary baselines


def lm_sentiment(texts: Sequence[str]) -> np.ndarray:
    """Loughran-McDonald rule, FPB label order (0 negative, 1 neutral, 2 positive)."""
    from ser_models.features import lm_scores

    out = []
    for t in texts:
        tone = lm_scores(t)["lm_tone"]
        out.append(2 if tone > 0 else 0 if tone < 0 else 1)      # NaN (no token): neutral
    return np.array(out, dtype=int)


# Apel & Blix Grimaldi (2012) count pairs "direction word + economic noun"; Tadle (2022)
# extends their lists for FOMC text.  A rise of the HAWK_NOUNS, or a fall of the DOVE_NOUNS,
# is hawkish; the reverse is dovish.
UP = ("increase increased increases increasing rise rises rising rose risen higher high elevated "
      "strong stronger strengthen strengthened strengthening robust solid firm firmer firming "
      "accelerate accelerated accelerating acceleration expand expanded expanding expansion "
      "upward upside pressure pressures heightened above tight tighter tightening boom").split()
DOWN = ("decrease decreased decreases decreasing decline declined declines declining fall falls falling fell "
        "lower low weak weaker weakness weakened weakening slow slowed slower slowing slowdown subdued "
        "moderate moderated moderating moderation soft softer softening sluggish downward downside "
        "contraction contracted contracting below muted restrained").split()
HAWK_NOUNS = ("inflation inflationary prices price wages wage costs cost growth economy activity "
              "employment demand spending output production expectations hiring").split()
DOVE_NOUNS = ("unemployment slack jobless unemployed").split()
HAWK_PHRASES = (r"\btighten(s|ed|ing)?\b", r"\b(raise|raising|raised|increase|increasing|increased|hike|hiking)\b"
                r"(\s+\w+){0,4}\s+(rates?|federal funds|target range)",
                r"\b(remov\w*|withdraw\w*|reduc\w*|less)\s+(\w+\s+){0,3}(policy\s+)?accommodat\w*",
                r"\bfirming of (monetary )?policy\b", r"\bpolicy firming\b")
DOVE_PHRASES = (r"\beas(e|es|ed|ing)\b", r"\b(cut|cuts|cutting|lower|lowering|lowered|reduce|reducing|reduced)\b"
                r"(\s+\w+){0,4}\s+(rates?|federal funds|target range)",
                r"\baccommodat(ion|ive)\b", r"\bstimul(us|ate|ative)\b", r"\bdownside risks?\b",
                r"\basset purchases?\b")
WINDOW = 3     # a direction word counts for a noun within this many words on either side


def hawk_dove_score(text: str) -> int:
    """Hawkish minus dovish count of a sentence (> 0 hawkish, < 0 dovish, 0 neutral)."""
    t = (text or "").lower()
    hawk = dove = 0
    spans = []
    for pat in HAWK_PHRASES:
        for m in re.finditer(pat, t):
            hawk += 1
            spans.append(m.span())
    for pat in DOVE_PHRASES:
        for m in re.finditer(pat, t):
            if any(a <= m.start() < b for a, b in spans):     # "removal of accommodation" is hawkish only
                continue
            dove += 1
    words = re.findall(r"[a-z]+", t)
    for i, w in enumerate(words):
        if w not in HAWK_NOUNS and w not in DOVE_NOUNS:
            continue
        near = words[max(0, i - WINDOW): i] + words[i + 1: i + 1 + WINDOW]
        up = any(n in UP for n in near)
        down = any(n in DOWN for n in near)
        if up == down:                 # neither, or both: no direction
            continue
        if (w in HAWK_NOUNS) == up:
            hawk += 1
        else:
            dove += 1
    return hawk - dove


def fomc_dictionary(texts: Sequence[str]) -> np.ndarray:
    """The hawkish/dovish rule in FOMC label order (0 dovish, 1 hawkish, 2 neutral)."""
    s = np.array([hawk_dove_score(t) for t in texts])
    return np.where(s > 0, 1, np.where(s < 0, 0, 2))


def dictionary_baseline(labels: Sequence[str], texts: Sequence[str]) -> tuple[str, np.ndarray] | None:
    """(name, predictions in ``labels`` order) of the dictionary rule for this label set."""
    labels = tuple(labels)
    if set(labels) == set(FPB_LABELS):
        pred, names, name = lm_sentiment(texts), FPB_LABELS, "Loughran-McDonald dictionary"
    elif set(labels) == set(FOMC_LABELS):
        pred, names, name = fomc_dictionary(texts), FOMC_LABELS, "hawkish/dovish word lists"
    else:
        return None
    index = {lab: i for i, lab in enumerate(labels)}
    return name, np.array([index[names[p]] for p in pred], dtype=int)


# ----------------------------------------------------------------------------------------
# recipes


@dataclass
class TextRecipe:
    """A text head recipe (``configs/text_*.toml``): the Experiment plus the data section."""

    exp: object                      # ser_models.train.Experiment
    task: str                        # "phrasebank" | "fomc"
    corpus: str
    agreement: str = "50"
    seed: int = 944601               # FOMC: split seed of the shipped head
    part: str = "train"              # FOMC: "train" (the combine train split of ``seed``)
    folds: int = 5                   # phrasebank: stratified CV folds
    cv_seed: int = 0


def load_recipe(path: str | Path) -> TextRecipe:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    from ser_models.train import experiment_from_dict

    path = Path(path)
    try:
        d = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ValueError(f"{path}: config file not found") from exc
    data = dict(d.get("data", {}))
    extra = {k: data.pop(k) for k in ("task", "agreement", "seed", "part", "folds", "cv_seed") if k in data}
    if extra.get("task") not in ("phrasebank", "fomc"):
        raise ValueError(f"{path}: [data] task must be 'phrasebank' or 'fomc'")
    exp = experiment_from_dict(d | {"data": data}, str(path))
    corpus = data.get("corpus", "")
    if corpus and not Path(corpus).is_absolute():
        corpus = str((ROOT / corpus).resolve()) if not Path(corpus).exists() else corpus
    return TextRecipe(exp, corpus=corpus, **extra)


def recipe_corpus(r: TextRecipe, part: str | None = None, seed: int | None = None) -> TextCorpus:
    if r.task == "phrasebank":
        return load_phrasebank(r.corpus, r.agreement, r.exp.model.labels, quiet=True)
    return load_fomc(r.corpus, seed or r.seed, part or r.part, r.exp.model.labels, quiet=True)


# ----------------------------------------------------------------------------------------
# data, training, evaluation


def _featurizer(config, cache_dir=None):
    from ser_models.train import Featurizer

    return Featurizer(config, cache_dir)


def text_data(corpus: TextCorpus, featurizer, groups: Sequence | None = None):
    """SERData of a text corpus: {"text": cached MiniLM frames} (raw texts for a tuned
    encoder).  ``groups``: the CV group of each sentence (``speakers`` of SERData)."""
    from ser_models.train import SERData

    n = len(corpus)
    x = corpus.texts if featurizer.finetuned("text") else featurizer.encoders["text"].encode(corpus.texts)
    groups = np.asarray(groups if groups is not None else ["all"] * n, dtype=object)
    return SERData({"text": list(x)}, corpus.y, np.full(n, -1), groups)


def model_config(r: TextRecipe):
    """The recipe's ModelConfig with text_dim / text_layers of MiniLM (384, 7 hidden states)."""
    enc = r.exp.model.text
    layers = 7 if enc.layers == "all" else 1 if enc.layers == "last" else len(enc.layers.split(","))
    return replace(r.exp.model, audio=None, text_dim=384, text_layers=layers)


def stratified_groups(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """CV group ("fold1".."foldk") of each example: stratified k folds, shuffled with ``seed``.
    ``train.cross_validate`` then holds out one group per fold."""
    from sklearn.model_selection import StratifiedKFold

    g = np.empty(len(y), dtype=object)
    for i, (_, test) in enumerate(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)):
        g[test] = f"fold{i + 1}"
    return g


@dataclass
class TextEvalResult:
    """A head's metrics on a labelled text corpus, with the dictionary rule beside it."""

    model: EvalResult
    dictionary: EvalResult | None = None
    dictionary_name: str = ""
    seconds: float = 0.0

    def metrics(self) -> dict:
        d = {"accuracy": self.model.wa, "macro_f1": self.model.macro_f1, "ua": self.model.ua,
             "n": int(len(self.model.y_true)), "confusion": self.model.confusion.tolist()}
        if self.dictionary is not None:
            d["dictionary"] = {"name": self.dictionary_name, "accuracy": self.dictionary.wa,
                               "macro_f1": self.dictionary.macro_f1, "ua": self.dictionary.ua}
        return d

    def summary(self) -> str:
        m, dct = self.model, self.dictionary
        lines = [f"{m.title}: n={len(m.y_true)}",
                 f"{'':<30}{'accuracy':>9}{'macro-F1':>10}{'UA':>8}",
                 f"{'text head':<30}{m.wa:>9.1%}{m.macro_f1:>10.1%}{m.ua:>8.1%}"]
        if dct is not None:
            lines.append(f"{self.dictionary_name:<30}{dct.wa:>9.1%}{dct.macro_f1:>10.1%}{dct.ua:>8.1%}")
        lines.append(m.summary().split("\n", 1)[1])
        if dct is not None:
            lines.append(f"{self.dictionary_name}: " + dct.summary().split("\n", 1)[1])
        return "\n".join(lines)


def _with_dictionary(labels, corpus: TextCorpus, result: EvalResult) -> TextEvalResult:
    base = dictionary_baseline(labels, corpus.texts)
    if base is None:
        return TextEvalResult(result)
    name, pred = base
    return TextEvalResult(result, EvalResult(tuple(labels), corpus.y, pred, title=name), name)


@dataclass
class CVReport:
    cv: CVResult
    dictionary: list[EvalResult]            # the rule on each held-out fold
    seconds: float

    def metrics(self) -> dict:
        d = self.cv.metrics()
        d["dictionary"] = {"accuracy_mean": float(np.mean([f.wa for f in self.dictionary])),
                           "macro_f1_mean": float(np.mean([f.macro_f1 for f in self.dictionary])),
                           "folds": [f.metrics() for f in self.dictionary]}
        d["seconds"] = round(self.seconds, 1)
        return d

    def summary(self) -> str:
        cv = self.cv
        lines = [f"{len(cv.folds)}-fold stratified cross-validation",
                 f"{'fold':<8}{'n':>6}{'accuracy':>10}{'macro-F1':>10}{'UA':>8}   dictionary acc / macro-F1"]
        for i, (f, d) in enumerate(zip(cv.folds, self.dictionary)):
            lines.append(f"{i + 1:<8}{len(f.y_true):>6}{f.wa:>10.1%}{f.macro_f1:>10.1%}{f.ua:>8.1%}   "
                         f"{d.wa:.1%} / {d.macro_f1:.1%}")
        lines.append(f"{'mean':<8}{'':>6}{cv.mean('wa'):>10.1%}{cv.mean('macro_f1'):>10.1%}{cv.mean('ua'):>8.1%}   "
                     f"{np.mean([d.wa for d in self.dictionary]):.1%} / "
                     f"{np.mean([d.macro_f1 for d in self.dictionary]):.1%}")
        lines.append(cv.pooled.summary())
        return "\n".join(lines)


def cross_validate_text(r: TextRecipe, corpus: TextCorpus | None = None, k: int | None = None,
                        cache_dir=None, progress: bool = False) -> CVReport:
    """Stratified k-fold CV of a recipe (train.cross_validate on stratified groups)."""
    from ser_models.train import cross_validate

    t0 = time.time()
    corpus = corpus if corpus is not None else recipe_corpus(r)
    k = k or r.folds
    cfg = model_config(r)
    feat = _featurizer(cfg, cache_dir)
    data = text_data(corpus, feat, stratified_groups(corpus.y, k, r.cv_seed))
    cv, _ = cross_validate(cfg, r.exp.train, data, feat, k, progress)
    base = dictionary_baseline(cfg.labels, corpus.texts)[1]
    dict_folds = []
    for i in range(k):
        idx = np.flatnonzero(data.speakers == f"fold{i + 1}")
        dict_folds.append(EvalResult(cfg.labels, corpus.y[idx], base[idx], title=f"dictionary fold {i + 1}"))
    return CVReport(cv, dict_folds, time.time() - t0)


def train_text(r: TextRecipe, corpus: TextCorpus, cache_dir=None, progress: bool = False):
    """(model, featurizer) trained on ``corpus``."""
    from ser_models.train import fit

    cfg = model_config(r)
    feat = _featurizer(cfg, cache_dir)
    model = fit(cfg, r.exp.train, text_data(corpus, feat), feat, progress, desc=r.exp.name)
    return model, feat


def evaluate_model(model, feat, corpus: TextCorpus, title: str = "evaluation") -> TextEvalResult:
    from ser_models.train import predict

    probs, _ = predict(model, text_data(corpus, feat), feat)
    return _with_dictionary(model.config.labels, corpus,
                            EvalResult(model.config.labels, corpus.y, probs.argmax(1), title=title))


def fomc_splits(r: TextRecipe, seeds: Sequence[int] = FOMC_SEEDS, cache_dir=None, progress: bool = False,
                models: dict | None = None) -> dict[int, TextEvalResult]:
    """Shah et al.'s protocol: per seed, train on the combine train split, test on its test
    split.  ``models``: if given, filled with seed -> (model, featurizer)."""
    out = {}
    for s in seeds:
        t0 = time.time()
        train = recipe_corpus(r, "train", s)
        test = recipe_corpus(r, "test", s)
        model, feat = train_text(r, train, cache_dir, progress)
        out[s] = evaluate_model(model, feat, test, title=f"FOMC combine test split, seed {s}")
        out[s].seconds = time.time() - t0
        if models is not None:
            models[s] = (model, feat)
        log.info("seed %d: macro-F1 %.3f (%.0f s)", s, out[s].model.macro_f1, time.time() - t0)
    return out


def train_checkpoint(r: TextRecipe, out_dir: str | Path, metrics: dict | None = None, cache_dir=None,
                     progress: bool = False, trained: tuple | None = None):
    """Train the recipe on its whole corpus (FPB: all sentences; FOMC: the train split of
    ``r.seed``) and write the checkpoint (head + adapter if any) with its card.
    ``trained``: (model, featurizer) already trained on that corpus with this recipe (the
    FOMC split run of ``r.seed``, identical to training again)."""
    from ser_models.checkpoint import NONCOMMERCIAL_NOTE, save_checkpoint

    t0 = time.time()
    corpus = recipe_corpus(r)
    model, feat = trained if trained is not None else train_text(r, corpus, cache_dir, progress)
    fit_eval = evaluate_model(model, feat, corpus, "training fit")
    licence = FPB_LICENCE if r.task == "phrasebank" else FOMC_LICENCE
    what = (f"Financial PhraseBank v1.0, {r.agreement}% agreement" if r.task == "phrasebank"
            else f"FOMC hawkish/dovish, lab-manual-combine-{r.part}-{r.seed}.csv")
    card_extra = {
        "name": r.exp.name,
        "task": "financial_sentiment" if r.task == "phrasebank" else "fomc_stance",
        "corpus": {"path": str(corpus.source), "name": what, "licence": licence, "n_examples": len(corpus),
                   "class_counts": corpus.counts(), "skipped": corpus.skipped},
        "noncommercial": True,
        "note": NONCOMMERCIAL_NOTE,
        "train": asdict(r.exp.train),
        "data": {"task": r.task, "agreement": r.agreement, "seed": r.seed, "part": r.part, "folds": r.folds,
                 "cv_seed": r.cv_seed},
        "metrics": (metrics or {}) | {"train_fit": fit_eval.metrics()},
        "train_seconds": round(time.time() - t0, 1) if trained is None else None,
        "calibration": {"hotspot_threshold": 1.0},
    }
    return save_checkpoint(out_dir, model, r.exp.name, card_extra, feat.encoders)


# ----------------------------------------------------------------------------------------
# scoring with a checkpoint


@lru_cache(maxsize=None)
def _shipped(name: str):
    from ser_models.inference import EmotionScorer

    return EmotionScorer.load(SHIPPED[name])


def score_texts(texts: Sequence[str], heads: Sequence[str] = ("sentiment", "fomc")) -> dict[str, np.ndarray]:
    """Probabilities of each shipped head for ``texts``: {"sentiment": (N, 3) negative/neutral/
    positive, "fomc": (N, 3) dovish/hawkish/neutral}; NaN rows for empty texts.  The heads
    are loaded once per process."""
    return {h: _shipped(h).text_probs(texts) for h in heads}


def load_eval_corpus(corpus: str | Path | TextCorpus, labels: Sequence[str]) -> TextCorpus:
    """A TextCorpus, a labels.csv folder, a Financial PhraseBank folder/file, or an FOMC
    split file (``lab-manual-combine-test-<seed>.csv``)."""
    if isinstance(corpus, TextCorpus):
        return corpus
    p = Path(corpus)
    if (p / "labels.csv").is_file() or p.name == "labels.csv":
        return load_text_corpus(p, labels)
    if (p.is_dir() and (p / "Sentences_50Agree.txt").is_file()) or p.name.startswith("Sentences_"):
        return load_phrasebank(p, labels=labels)
    m = re.fullmatch(r"lab-manual-combine-(train|test)-(\d+)\.csv", p.name)
    if m:
        return load_fomc(p.parents[1], int(m.group(2)), m.group(1), labels)
    raise TextCorpusError(f"{p}: not a text corpus (labels.csv folder, Financial PhraseBank, or an FOMC "
                          f"lab-manual-combine split file)")


def evaluate_text_checkpoint(checkpoint_dir: str | Path | None, corpus_dir: str | Path | TextCorpus,
                             cache_dir=None, label_map: str | None = None) -> TextEvalResult:
    """Metrics of a text head (default: the shipped sentiment head) on a labelled corpus, with
    the dictionary rule of its label set.  ``label_map``: "bullish=positive,..." onto the head's
    labels."""
    from ser_models.experiment import parse_label_map
    from ser_models.inference import EmotionScorer

    head = EmotionScorer.load(checkpoint_dir or SHIPPED["sentiment"], cache_dir, use_cache=True)
    mapping = parse_label_map(label_map, head.labels)
    if isinstance(corpus_dir, TextCorpus):
        corpus = corpus_dir
    elif mapping:
        corpus = load_text_corpus(corpus_dir, head.labels, mapping)
    else:
        corpus = load_eval_corpus(corpus_dir, head.labels)
    probs = head.text_probs(corpus.texts)
    name = corpus_dir.source if isinstance(corpus_dir, TextCorpus) else Path(corpus_dir).name
    res = EvalResult(head.labels, corpus.y, probs.argmax(1), title=f"{head.card.model_id} on {name}")
    return _with_dictionary(head.labels, corpus, res)


# ----------------------------------------------------------------------------------------
# command line


def main(argv=None) -> None:
    import torch

    ap = argparse.ArgumentParser(prog="python -m ser_models.text_heads", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("cv", "train"):
        p = sub.add_parser(name)
        p.add_argument("--config", required=True)
        p.add_argument("--seed", type=int, help="override [train] seed")
        if name == "train":
            p.add_argument("--out", required=True)
            p.add_argument("--no-metrics", action="store_true", help="skip the CV / split evaluation")
    p = sub.add_parser("eval")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--corpus", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    if args.cmd == "eval":
        print(evaluate_text_checkpoint(args.checkpoint, args.corpus).summary())
        return
    r = load_recipe(args.config)
    if args.seed is not None:
        r.exp = replace(r.exp, train=replace(r.exp.train, seed=args.seed))
    metrics, models = {}, {}
    if not getattr(args, "no_metrics", False):
        if r.task == "phrasebank":
            rep = cross_validate_text(r)
            print(rep.summary())
            metrics["cv"] = rep.metrics()
        else:
            res = fomc_splits(r, models=models)
            for s, e in res.items():
                print(e.summary())
            f1 = [e.model.macro_f1 for e in res.values()]
            print(f"mean macro-F1 over seeds {list(res)}: {np.mean(f1):.1%}; dictionary "
                  f"{np.mean([e.dictionary.macro_f1 for e in res.values()]):.1%}")
            metrics["splits"] = {str(s): e.metrics() | {"seconds": round(e.seconds, 1)} for s, e in res.items()}
            metrics["splits_macro_f1_mean"] = float(np.mean(f1))
    if args.cmd == "train":
        card = train_checkpoint(r, args.out, metrics, trained=models.get(r.seed) if r.task == "fomc" else None)
        print(f"wrote {args.out}: {card.model_id}")


if __name__ == "__main__":
    main(sys.argv[1:])
