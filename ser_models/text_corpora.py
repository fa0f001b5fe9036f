"""Labelled text corpora for the text heads: Financial PhraseBank, FOMC hawkish/dovish, and
any folder with a ``labels.csv`` (``text,label``).

Every loader returns a :class:`TextCorpus` (texts, integer labels in the order of a label
set, the label names, and where each example came from).  Bad input fails with one line
naming the file and the problem, or is skipped with a printed count:

- empty sentences (blank after stripping): skipped, count printed (``skipped['empty']``);
- sentences not in English (see :func:`not_english`): skipped, count printed
  (``skipped['not_english']``).  The heads read English financial text through an English
  MiniLM; a sentence in another language (or another script) is read by a model that has
  hardly seen such text, and a training label on it only adds noise.  The rule is simple and
  conservative: a sentence is skipped when fewer than half of its letters are Latin script,
  or when it holds more function words of German, French, Spanish, Finnish or Swedish (the
  languages of the corpora's sources: FPB is Finnish company news) than English ones
  (``the, of, and, to, in, ...``), at least one.  Lists, tickers and headlines without
  function words are kept.  On the reference corpora it drops exactly one sentence, the
  German line 2992 of FPB ``Sentences_50Agree.txt`` ("Jeder Beta-Tester erhält kostenlos
  ..."); ``non_english="keep"`` keeps it (the published counts 604 / 2,879 / 1,363);
- labels unknown to the model: error naming the file, the labels and their lines;
- a corpus with no class in common with the model: error naming the file and both label sets.
"""

from __future__ import annotations

import csv
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

FPB_LABELS = ("negative", "neutral", "positive")
FOMC_LABELS = ("dovish", "hawkish", "neutral")          # Shah et al.: 0 dovish, 1 hawkish, 2 neutral
FPB_LICENCE = ("CC BY-NC-SA 3.0 (Malo, Sinha, Korhonen, Wallenius & Takala 2014, Good debt or bad debt: "
               "Detecting semantic orientations in economic texts, JASIST 65(4); Financial PhraseBank v1.0)")
FOMC_LICENCE = ("CC BY-NC 4.0 (Shah, Paturi & Chava, ACL 2023, Trillion Dollar Words: A New Financial "
                "Dataset, Task & Market Analysis; gtfintechlab/fomc-hawkish-dovish)")
FPB_AGREEMENTS = {"50": "Sentences_50Agree.txt", "66": "Sentences_66Agree.txt", "75": "Sentences_75Agree.txt",
                  "all": "Sentences_AllAgree.txt"}
FOMC_SEEDS = (5768, 78516, 944601)

FUNCTION_WORDS = frozenset("""
a an the of and or but to in on at by for from with as into onto over under about after before between
than then that this these those it its is are was were be been being has have had do does did not no
will would shall should can could may might must which who whom whose what when where while if because
so such also more most less our we us you your he she they them their his her there here up down out
""".split())
# function words of other languages of the corpora's sources, none of them an English word
FOREIGN_FUNCTION_WORDS = frozenset("""
der das und ist nicht mit ein eine einer zu den dem des sich auch wird von auf für
le les et est une du pour dans sur pas qui avec cette sont
el los las y que es por con para una del como
ja ei että oli myös kuin mukaan vuoden ovat sekä
och att det som är för med av till inte och har
""".split())


class TextCorpusError(ValueError):
    """A text corpus is unusable; the message names the file and the problem."""


@dataclass
class TextCorpus:
    texts: list[str]
    y: np.ndarray                       # integer labels, indices into ``labels``
    labels: tuple[str, ...]             # the label set (model order)
    ids: list[str]                      # where each example came from ("line 12", "index 487")
    source: str = ""                    # file read
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self) -> dict[str, int]:
        return {lab: int((self.y == i).sum()) for i, lab in enumerate(self.labels)}

    def subset(self, idx) -> "TextCorpus":
        idx = np.asarray(idx, dtype=int)
        return TextCorpus([self.texts[i] for i in idx], self.y[idx], self.labels, [self.ids[i] for i in idx],
                          self.source, dict(self.skipped))


def _is_latin(ch: str) -> bool:
    return "LATIN" in unicodedata.name(ch, "")


def not_english(text: str) -> bool:
    """True for a sentence the heads should not read (the rule of the module docstring):
    under half of its letters Latin script, or more foreign than English function words."""
    letters = [c for c in text if c.isalpha()]
    if letters and sum(_is_latin(c) for c in letters) < 0.5 * len(letters):
        return True
    words = re.findall(r"[^\W\d_]+", text.lower())
    english = sum(w in FUNCTION_WORDS for w in words)
    foreign = sum(w in FOREIGN_FUNCTION_WORDS for w in words)
    return foreign > english


def _few(items: Sequence, n: int = 5) -> str:
    head = ", ".join(str(i) for i in items[:n])
    return head + (f", ... ({len(items)} in all)" if len(items) > n else "")


def _build(path: Path, rows: list[tuple[str, str, str]], labels: Sequence[str],
           label_map: Mapping[str, str] | None = None, quiet: bool = False,
           non_english: str = "skip") -> TextCorpus:
    """rows: (id, text, raw label).  Checks labels, skips empty (and non-English) texts."""
    if non_english not in ("skip", "keep"):
        raise ValueError(f"non_english={non_english!r}: use 'skip' or 'keep'")
    labels = tuple(labels)
    label_map = {str(k).strip().lower(): v for k, v in (label_map or {}).items()}
    names = [label_map.get(r[2].strip().lower(), r[2].strip().lower()) for r in rows]
    if not rows:
        raise TextCorpusError(f"{path}: no rows")
    found = sorted(set(names))
    if not set(found) & set(labels):
        raise TextCorpusError(f"{path}: no class in common with the model: corpus labels {found}, "
                              f"model labels {list(labels)}")
    unknown = sorted(set(found) - set(labels))
    if unknown:
        lines = [r[0] for r, lab in zip(rows, names) if lab in unknown]
        raise TextCorpusError(f"{path}: labels unknown to the model {unknown} ({_few(lines)}); "
                              f"model labels: {', '.join(labels)}")
    keep, empty, foreign = [], [], []
    for i, (rid, text, _) in enumerate(rows):
        t = (text or "").strip()
        if not t:
            empty.append(rid)
        elif non_english == "skip" and not_english(t):
            foreign.append(rid)
        else:
            keep.append(i)
    for what, items in (("empty sentences", empty), ("non-English sentences", foreign)):
        if items and not quiet:
            print(f"{path}: skipped {len(items)} {what} ({_few(items)})", file=sys.stderr)
    if not keep:
        raise TextCorpusError(f"{path}: no usable sentence ({len(empty)} empty, {len(foreign)} not English)")
    index = {lab: i for i, lab in enumerate(labels)}
    return TextCorpus([rows[i][1].strip() for i in keep], np.array([index[names[i]] for i in keep], dtype=int),
                      labels, [rows[i][0] for i in keep], str(path),
                      {"empty": len(empty), "not_english": len(foreign)})


def load_phrasebank(path: str | Path, agreement: str = "50", labels: Sequence[str] = FPB_LABELS,
                    quiet: bool = False, non_english: str = "skip") -> TextCorpus:
    """Financial PhraseBank v1.0 (Malo et al. 2014): ``sentence@label`` lines, ISO-8859-1.

    path: the ``financial_phrasebank`` folder (the file is picked by ``agreement``: "50",
    "66", "75" or "all") or one file.  The 50%-agreement file has 4,846 sentences: 604
    negative, 2,879 neutral, 1,363 positive (duplicate sentences are kept, as published);
    one of them is German (line 2992), skipped unless ``non_english="keep"``.
    """
    path = Path(path)
    if path.is_dir():
        if str(agreement) not in FPB_AGREEMENTS:
            raise TextCorpusError(f"{path}: agreement {agreement!r}; choose one of {', '.join(FPB_AGREEMENTS)}")
        path = path / FPB_AGREEMENTS[str(agreement)]
    if not path.is_file():
        raise TextCorpusError(f"{path}: not found")
    rows, bad = [], []
    for n, line in enumerate(path.read_text(encoding="iso-8859-1").splitlines(), start=1):
        if not line.strip():
            continue
        text, sep, lab = line.rpartition("@")
        if not sep:
            bad.append(n)
            continue
        rows.append((f"line {n}", text, lab))
    if bad:
        raise TextCorpusError(f"{path}: {len(bad)} lines without '@label' (lines {_few(bad)})")
    return _build(path, rows, labels, quiet=quiet, non_english=non_english)


def fomc_file(split_dir: str | Path, seed: int, part: str) -> Path:
    """The combined (meeting minutes + speeches + press conferences) split of Shah et al.:
    ``split_dir`` is their ``test-and-training`` folder (or the corpus root above it)."""
    split_dir = Path(split_dir)
    for cand in (split_dir, split_dir / "training_data" / "test-and-training"):
        if (cand / "training_data").is_dir() and (cand / "test_data").is_dir():
            split_dir = cand
            break
    if part not in ("train", "test"):
        raise TextCorpusError(f"{split_dir}: part {part!r}; choose train or test")
    sub = "training_data" if part == "train" else "test_data"
    return split_dir / sub / f"lab-manual-combine-{part}-{int(seed)}.csv"


def load_fomc(split_dir: str | Path, seed: int, part: str = "train", labels: Sequence[str] = FOMC_LABELS,
              quiet: bool = False, non_english: str = "skip") -> TextCorpus:
    """FOMC hawkish/dovish sentences labelled by humans (Shah et al., ACL 2023), the
    ``lab-manual-combine-{train,test}-{seed}.csv`` split (seeds 5768, 78516, 944601; 1,903
    train and 476 test sentences each).  Labels 0 dovish, 1 hawkish, 2 neutral.  Never the
    ``*_labeled`` files (model predictions)."""
    path = fomc_file(split_dir, seed, part)
    if not path.is_file():
        raise TextCorpusError(f"{path}: not found")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("sentence", "label") if c not in (reader.fieldnames or [])]
        if missing:
            raise TextCorpusError(f"{path}: missing columns {missing} (need sentence, label)")
        raw = list(reader)
    names = dict(enumerate(FOMC_LABELS))
    rows = []
    for n, r in enumerate(raw, start=2):
        lab = r["label"].strip()
        lab = names.get(int(lab), lab) if lab.isdigit() else lab
        rows.append((f"index {r.get('index', '?')} (line {n})", r["sentence"] or "", lab))
    return _build(path, rows, labels, quiet=quiet, non_english=non_english)


def load_text_corpus(root: str | Path, labels: Sequence[str], label_map: Mapping[str, str] | None = None,
                     quiet: bool = False, non_english: str = "skip") -> TextCorpus:
    """Any folder with a ``labels.csv`` holding ``text,label`` columns (other columns are
    ignored).  Labels are matched case-insensitively to the model's ``labels`` after the
    optional ``label_map`` (e.g. ``{"bullish": "positive"}``)."""
    root = Path(root)
    path = root / "labels.csv" if root.is_dir() or not root.suffix else root
    if not path.is_file():
        raise TextCorpusError(f"{path}: not found (a text corpus folder needs labels.csv with text,label)")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            missing = [c for c in ("text", "label") if c not in cols]
            if missing:
                raise TextCorpusError(f"{path}: missing columns {missing} (need text, label)")
            raw = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TextCorpusError(f"{path}: not a readable UTF-8 CSV ({exc})") from exc
    rows = [(f"line {n}", r["text"] or "", r["label"] or "") for n, r in enumerate(raw, start=2)]
    blank = [rid for rid, _, lab in rows if not lab.strip()]
    if blank:
        raise TextCorpusError(f"{path}: {len(blank)} rows without a label ({_few(blank)})")
    return _build(path, rows, labels, label_map, quiet=quiet, non_english=non_english)
