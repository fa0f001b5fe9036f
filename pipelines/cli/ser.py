"""`speechfin ser ...` commands. Heavy libraries are imported inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pipelines.exitcodes import ExitCode, fail

app = typer.Typer(help="Train, evaluate and apply speech-emotion (SER) models.", no_args_is_help=True)

CONFIG_HELP = "experiment TOML (default: the embedded recipe ser_models/configs/embedded.toml)"
CORPUS_HELP = "folder with labels.csv (path, speaker, emotion[, text, gender]); overrides [data] corpus"


def _setup(quiet: bool = False):
    import logging

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s")


def _fail(exc: Exception) -> None:
    fail(exc, ExitCode.USAGE)  # bad corpus, checkpoint or config (pipelines.exitcodes)


def _experiment(config: Optional[Path], seed: Optional[int]):
    from dataclasses import replace

    from ser_models.train import load_experiment

    exp = load_experiment(config or Path(__file__).resolve().parents[2] / "ser_models" / "configs" / "embedded.toml")
    return replace(exp, train=replace(exp.train, seed=seed)) if seed is not None else exp


def _speakers(spec: Optional[str]) -> Optional[list[str]]:
    return [s.strip() for s in spec.split(",") if s.strip()] if spec else None


@app.command()
def train(
    out: Path = typer.Option(..., "--out", help="checkpoint folder to write"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help=CORPUS_HELP),
    cv: int = typer.Option(0, "--cv", help="first run k-fold speaker-independent CV and store it in the card"),
    seed: Optional[int] = typer.Option(None, "--seed", help="override [train] seed"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="encoder frame cache (default ~/.cache/speechfin)"),
):
    """Train a SER model (optionally after k-fold CV) and save a checkpoint (safetensors + card.json)."""
    _setup()
    from ser_models.checkpoint import CheckpointError
    from ser_models.corpus import CorpusError
    from ser_models.experiment import train_experiment

    try:
        report = train_experiment(_experiment(config, seed), out, corpus, cv, cache)
    except (CorpusError, CheckpointError, ValueError) as exc:
        _fail(exc)
    typer.echo(report.summary())
    typer.echo(f"wrote {out}")


@app.command("cv")
def cross_validate(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help=CORPUS_HELP),
    folds: int = typer.Option(5, "--folds", "-k", help="number of speaker folds"),
    seed: Optional[int] = typer.Option(None, "--seed", help="override [train] seed"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="encoder frame cache"),
):
    """Speaker-independent k-fold cross-validation (folds split by speaker, never by clip)."""
    _setup()
    from ser_models.corpus import CorpusError
    from ser_models.experiment import cv_experiment

    try:
        result = cv_experiment(_experiment(config, seed), corpus, folds, cache)
    except (CorpusError, ValueError) as exc:
        _fail(exc)
    typer.echo(result.summary())


@app.command("eval")
def evaluate(
    corpus: Path = typer.Option(..., "--corpus", help="folder with labels.csv (audio: path, speaker, emotion; "
                                                      "text: text, label)"),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="checkpoint folder (default: embedded; "
                                              "for a text corpus: the shipped sentiment head)"),
    label_map: Optional[str] = typer.Option(None, "--label-map", help="corpus labels onto the checkpoint's classes, "
                                            "e.g. 'anger=angry,happiness=happy,sadness=sad,fear=fearful'"),
    speakers: Optional[str] = typer.Option(None, "--speakers", help="comma-separated speakers to keep"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="encoder frame cache"),
):
    """UA, WA, macro-F1 and the confusion matrix of a checkpoint on a labelled corpus.

    Only the classes that the corpus and the checkpoint share are scored (the other clips
    are dropped, with a count); UA is the mean recall over the scored classes."""
    _setup()
    from ser_models.checkpoint import CheckpointError
    from ser_models.corpus import CorpusError, is_text_corpus

    try:
        if is_text_corpus(corpus):
            from ser_models.text_heads import evaluate_text_checkpoint

            result = evaluate_text_checkpoint(checkpoint, corpus, label_map=label_map)
        else:
            from ser_models.experiment import evaluate_checkpoint

            result = evaluate_checkpoint(checkpoint, corpus, _speakers(speakers), cache, label_map=label_map)
    except (CorpusError, CheckpointError, ValueError) as exc:
        _fail(exc)
    typer.echo(result.summary())


@app.command()
def predict(
    corpus: Path = typer.Option(..., "--corpus", help="folder with labels.csv (path, speaker; emotion not needed)"),
    out: Path = typer.Option(..., "--out", help="CSV to write, one row per clip"),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="checkpoint folder (default: embedded)"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="encoder frame cache"),
):
    """Score every clip of a folder: class probabilities and every tone column, each speaker's
    clips packed and normalised to that speaker as in the flow."""
    _setup()
    from ser_models.checkpoint import CheckpointError, shipped_text_heads
    from ser_models.corpus import CorpusError
    from ser_models.experiment import predict_corpus
    from ser_models.features import negative_mask

    try:
        df, centering = predict_corpus(checkpoint, corpus, cache, text_heads=shipped_text_heads())
    except (CorpusError, CheckpointError, ValueError) as exc:
        _fail(exc)
    from data_catalog.store import CatalogIOError, atomic_replace

    try:
        atomic_replace(out, lambda tmp: df.to_csv(tmp, index=False))
    except CatalogIOError as exc:
        fail(exc, ExitCode.FAILED)
    pcols = [c for c in df.columns if c.startswith("p_")]
    labels = [c[2:] for c in pcols]
    neg = negative_mask(labels)[df[pcols].to_numpy().argmax(1)]
    typer.echo(f"wrote {out}: {len(df)} clips, {df['speaker'].nunique()} speakers; top class negative "
               f"(sad, angry, fearful, disgust) for {neg.mean():.1%}; mean tone {df['tone'].mean():+.3f} "
               f"(absolute {df['tone_abs'].mean():+.3f})")
    if centering is not None and centering.note():
        typer.echo(centering.note())


@app.command()
def info(checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="checkpoint folder (default: embedded)")):
    """Print a checkpoint's card: labels, encoders, pooling, corpus and licence, metrics."""
    import json

    from ser_models.checkpoint import CheckpointError, read_card

    try:
        card = read_card(checkpoint) if checkpoint else read_card(_embedded())
    except CheckpointError as exc:
        _fail(exc)
    raw = card.raw
    typer.echo(f"{card.model_id}\n  labels: {', '.join(card.labels)}\n  encoders: {raw['encoders']}\n"
               f"  pooling: {raw['pooling']}  fusion: {raw['fusion']}  speaker_norm: {card.config.speaker_norm}\n"
               f"  corpus: {raw['corpus']['name']} "
               f"({raw['corpus']['n_examples']} examples)\n  licence: {raw['corpus']['licence']}\n"
               f"  {raw.get('note', '')}\n  git: {raw['git_commit']}")
    cv = (raw.get("metrics") or {}).get("cv")
    if cv:
        typer.echo(f"  CV: UA={cv['ua_mean']:.1%} WA={cv['wa_mean']:.1%} macro-F1={cv['macro_f1_mean']:.1%} "
                   f"({len(cv['folds'])} speaker folds)")
    typer.echo(json.dumps(raw.get("calibration", {})))


def _embedded() -> Path:
    from ser_models.checkpoint import EMBEDDED

    return EMBEDDED
