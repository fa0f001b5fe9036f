"""Emotion of a whole recording: per-segment scores, per-speaker trajectories, call features.

Input frames (pandas):
  segments: segment_id, speaker, role, section ('prepared'|'qa'), start_s, end_s, text
  words:    segment_id, word, start_s, end_s   (may be empty)

``score_segments`` encodes the recording's audio once (in 30 s windows) and slices the
frames of each segment; segments longer than ``max_window_s`` are cut into equal windows
scored separately and aggregated (probabilities weighted by window duration, attention
concatenated with the same weights).  Documented skips (row kept, emotion columns NaN,
``skip_reason`` set): ``too_short`` (< ``min_duration_s``), ``silent`` (RMS below
``silence_dbfs``), ``outside_audio`` (the segment starts after the end of the audio).
An empty transcript is scored on audio alone (a text branch sees no token and pools to
zeros) and has NaN dictionary tone.

Columns of ``emotions`` (one row per segment): segment_id, p_<class> for each class of the
checkpoint, tone, arousal, valence (see ``ser_models.features``), attention_top15_share
(share of the audio attention mass on the top 15% of the segment's frames),
top_words (the three words with the most attention mass, '|'-separated, via word
timestamps), lm_positive, lm_negative, lm_uncertainty, lm_tone (Loughran-McDonald),
n_windows, skip_reason ('' when scored).

``trajectories``: per speaker, one row per scored segment at its midpoint t_s, with tone,
p_<class> and tone_smooth: a Gaussian-kernel (Nadaraya-Watson) smoother in time over that
speaker's segments, bandwidth ``smooth_bandwidth_s`` (30 s), weights = segment duration.

``call_features``: one row per call (see ``CALL_FEATURE_DOCS``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data_catalog.schemas import CALL_ABNORMAL_COLUMNS
from ser_models.call_tone import EXCLUDED_ROLES, ROLE_SECTIONS, TONE_FEATURES, tone_weights, weighted_mean
from ser_models.encoders import frame_times, slice_frames
from ser_models.features import (arousal_valence, fused_tone, kernel_smooth, lm_scores, negative_mask, stance,
                                 tone, top_share, top_words)
from ser_models.inference import EmotionScorer

log = logging.getLogger(__name__)

LM_COLUMNS = ("lm_positive", "lm_negative", "lm_uncertainty", "lm_tone")

CALL_FEATURE_DOCS = {
    "call_id": "sha256 of the audio bytes, first 16 hex characters",
    "model_id": "SER checkpoint id (name + weights hash)",
    **{f"{r}_{s}_tone": f"duration-weighted mean segment tone of {r} speakers in the {s} section "
                        f"(NaN if absent)" for r, s in ROLE_SECTIONS},
    **{f"{r}_{s}_neg_share": f"share of {r} speech time in the {s} section whose most likely class is "
                             f"negative (sad, angry, fearful, disgust) (NaN if absent)" for r, s in ROLE_SECTIONS},
    "tone_change_prepared_to_qa": "management (executive + chair) duration-weighted mean tone in Q&A minus "
                                  "in prepared remarks (NaN unless both present)",
    "tone_volatility": "duration-weighted standard deviation of segment tone over all non-operator segments",
    "min_smoothed_tone": "minimum of tone_smooth over the trajectories of non-operator speakers",
    "n_hotspots": "number of non-operator segments whose attention_top15_share is at least the checkpoint's "
                  "hotspot threshold (the 90th percentile of that statistic on its training clips)",
    "lm_positive": "Loughran-McDonald positive words / tokens, all non-operator text of the call",
    "lm_negative": "Loughran-McDonald negative words / tokens, all non-operator text",
    "lm_uncertainty": "Loughran-McDonald uncertainty words / tokens, all non-operator text",
    "lm_tone": "(positive - negative) / (positive + negative) word counts, all non-operator text",
    "call_tone": "duration-weighted mean voice tone (speaker-relative) of all non-operator segments",
    "call_tone_abs": "duration-weighted mean absolute voice tone (tone_abs: against the population baseline) of all "
                     "non-operator segments",
    "call_text_tone": "duration-weighted mean text tone (financial-sentiment head) of all non-operator segments",
    "call_fused_tone": "duration-weighted mean fused tone (voice and text, equal weights) of all non-operator segments",
    "chair_hawkish": "duration-weighted mean hawkish score (p(hawkish) - p(dovish), FOMC head) of the chair's "
                     "segments (press conferences; NaN otherwise)",
    "n_segments_scored": "segments with emotion scores",
    "n_segments_skipped": "segments skipped (too short, silent, outside the audio)",
    "scored_speech_s": "seconds of speech scored",
    **{c: f"talk-time-weighted mean over the call's {c.split('_')[0]} persons of their {c.split('_', 2)[2].replace('_', ' ')} "
          f"z-score against their own earlier calls (ser_models/people.py; NaN until the catalog-wide baseline step "
          f"has run, and for persons without a baseline)" for c in CALL_ABNORMAL_COLUMNS},
    "n_persons_with_baseline": "persons of the call with an abnormal (baseline-relative) tone",
}


@dataclass
class EmotionConfig:
    min_duration_s: float = 0.3
    silence_dbfs: float = -55.0      # RMS level below which a segment is silent
    max_window_s: float = 20.0
    smooth_bandwidth_s: float = 30.0
    top_fraction: float = 0.15
    n_top_words: int = 3


def rms_dbfs(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20)) if len(x) else -np.inf


def _windows(a: float, b: float, max_len: float) -> list[tuple[float, float]]:
    n = max(1, int(np.ceil((b - a) / max_len - 1e-9)))
    edges = np.linspace(a, b, n + 1)
    return list(zip(edges[:-1], edges[1:]))


def skip_reason(samples: np.ndarray, start_s: float, end_s: float, cfg: EmotionConfig, sample_rate: int) -> str:
    """'' for a segment to score, else why it is skipped (outside_audio, too_short, silent)."""
    duration = len(samples) / sample_rate
    end_s = min(end_s, duration)
    if start_s >= duration:
        return "outside_audio"
    if end_s - start_s < cfg.min_duration_s:
        return "too_short"
    if rms_dbfs(samples[int(start_s * sample_rate): int(end_s * sample_rate)]) < cfg.silence_dbfs:
        return "silent"
    return ""


def score_segments(scorer: EmotionScorer, samples: np.ndarray, segments: pd.DataFrame,
                   words: pd.DataFrame | None = None, cfg: EmotionConfig = EmotionConfig(),
                   sample_rate: int = 16_000, hawkish: bool = False) -> pd.DataFrame:
    """The ``emotions`` rows of one recording (without call_id/model_id).  ``hawkish``: score
    the FOMC stance head too (press conferences)."""
    t0 = time.time()
    duration = len(samples) / sample_rate
    words = words if words is not None and len(words) else pd.DataFrame(columns=["segment_id", "word", "start_s", "end_s"])
    by_seg = {k: list(zip(g["word"], g["start_s"], g["end_s"])) for k, g in words.groupby("segment_id")}
    labels, enc = scorer.labels, scorer.audio_encoder
    skip = {r.segment_id: skip_reason(samples, float(r.start_s), float(r.end_s), cfg, sample_rate)
            for r in segments.itertuples(index=False)}
    # windows of the scored segments: (segment_id, start_s, end_s, text)
    windows = []
    for r in segments.itertuples(index=False):
        if skip[r.segment_id]:
            continue
        spans = _windows(float(r.start_s), min(float(r.end_s), duration), cfg.max_window_s)
        for wa, wb in spans:
            in_win = [w for w, s, e in by_seg.get(r.segment_id, []) if wa <= (s + e) / 2 < wb]
            windows.append((r.segment_id, wa, wb, " ".join(in_win) if len(spans) > 1 and in_win else str(r.text or ""),
                            r.speaker))
    frames = None
    if enc is not None:
        call_frames = scorer.encode_recording(samples) if windows else None   # the call, once, in 30 s windows
        frames = [slice_frames(call_frames, enc.hop_s, wa, wb) for _, wa, wb, *_ in windows]
    scores = scorer.score_frames(frames, [w[3] for w in windows], speakers=[w[4] for w in windows])
    owner = np.array([w[0] for w in windows])
    rows = [_segment_row(r, skip[r.segment_id], np.flatnonzero(owner == r.segment_id), windows, scores,
                         by_seg.get(r.segment_id, []), labels, enc.hop_s if enc else 0.0, cfg)
            for r in segments.itertuples(index=False)]
    skipped = pd.Series([v for v in skip.values() if v])
    log.info("scored %d segments (%d windows) in %.1f s; skipped %d (%s)", len(segments) - len(skipped), len(windows),
             time.time() - t0, len(skipped), ", ".join(f"{k}: {v}" for k, v in skipped.value_counts().items()) or "none")
    out = pd.DataFrame(rows, columns=list(rows[0]) if rows else ["segment_id", "tone"])
    out = out.assign(**text_columns(scorer, segments["text"].tolist(), hawkish))
    out["fused_tone"] = fused_tone(out["tone"].to_numpy(float), out["text_tone"].to_numpy(float))
    cols = (["segment_id"] + [f"p_{lab}" for lab in labels] + ["tone", "tone_abs", "norm_basis", "text_tone", "hawkish",
            "fused_tone", "arousal", "valence", "attention_top15_share", "top_words", *LM_COLUMNS, "n_windows",
            "skip_reason"])
    return out.reindex(columns=cols)


def text_columns(scorer: EmotionScorer, texts: list, hawkish: bool) -> dict[str, np.ndarray]:
    """text_tone (sentiment head: p(positive) - p(negative)) and hawkish (FOMC head:
    p(hawkish) - p(dovish), only if ``hawkish``) of each segment's text; NaN without a head
    or a text."""
    n = len(texts)
    out = {"text_tone": np.full(n, np.nan), "hawkish": np.full(n, np.nan)}
    heads = {k: h for k, h in scorer.text_heads.items() if k != "fomc" or hawkish}
    if not heads or not n:
        return out
    probs = {name: head.text_probs(texts) for name, head in heads.items()}
    if "sentiment" in probs:
        out["text_tone"] = tone(probs["sentiment"], heads["sentiment"].labels)
    if "fomc" in probs:
        out["hawkish"] = stance(probs["fomc"], heads["fomc"].labels)
    return out


def _segment_row(r, skip: str, sel: np.ndarray, windows: list, scores, words: list,
                 labels, hop_s: float, cfg: EmotionConfig) -> dict:
    """One ``emotions`` row from the segment's windows ``sel`` (probabilities weighted by
    window duration; attention concatenated with the same weights)."""
    out = {"segment_id": r.segment_id, **lm_scores(str(r.text or "")), "skip_reason": skip, "n_windows": len(sel),
           "top_words": "", "attention_top15_share": np.nan, "norm_basis": ""}
    if skip:
        return out | {f"p_{lab}": np.nan for lab in labels} | {"tone": np.nan, "tone_abs": np.nan, "arousal": np.nan,
                                                              "valence": np.nan}
    att = scores.attention
    length = np.array([windows[i][2] - windows[i][1] for i in sel])
    share = length / length.sum()
    p = (scores.probs[sel] * share[:, None]).sum(0)
    p_abs = (scores.probs_abs[sel] * share[:, None]).sum(0)
    ar, va = arousal_valence(p, labels)
    out |= {f"p_{lab}": float(v) for lab, v in zip(labels, p)}
    out |= {"tone": float(tone(p, labels)[0]), "tone_abs": float(tone(p_abs, labels)[0]),
            "norm_basis": scores.basis[sel[0]], "arousal": float(ar[0]), "valence": float(va[0])}
    if att and att[sel[0]] is not None:
        w = np.concatenate([att[i] * s for i, s in zip(sel, share)])
        t = np.concatenate([windows[i][1] + frame_times(len(att[i]), hop_s) for i in sel])
        out["attention_top15_share"] = top_share(w, cfg.top_fraction)
        out["top_words"] = "|".join(top_words(w, t, words, cfg.n_top_words))
    return out


def trajectories(emotions: pd.DataFrame, segments: pd.DataFrame, labels, bandwidth_s: float = 30.0) -> pd.DataFrame:
    """Per-speaker time series of the scored segments, with a smoothed tone."""
    df = segments[["segment_id", "speaker", "start_s", "end_s"]].merge(emotions, on="segment_id")
    df = df[df["skip_reason"] == ""].copy()
    df["t_s"] = (df["start_s"] + df["end_s"]) / 2
    df["duration_s"] = df["end_s"] - df["start_s"]
    df = df.sort_values(["speaker", "t_s"])
    df["tone_smooth"] = np.nan
    for _, g in df.groupby("speaker"):
        df.loc[g.index, "tone_smooth"] = kernel_smooth(g["t_s"], g["tone"], g["duration_s"], bandwidth_s)
    cols = ["speaker", "segment_id", "t_s", "tone", "tone_smooth"] + [f"p_{lab}" for lab in labels]
    return df[cols].reset_index(drop=True)


def call_features(emotions: pd.DataFrame, segments: pd.DataFrame, traj: pd.DataFrame, labels,
                  hotspot_threshold: float) -> dict[str, float]:
    """One row of finance features (without call_id/model_id); columns in CALL_FEATURE_DOCS."""
    df = segments[["segment_id", "speaker", "role", "section", "start_s", "end_s", "text"]].merge(emotions, on="segment_id")
    df["w"] = df["end_s"] - df["start_s"]
    df = df[~df["role"].isin(EXCLUDED_ROLES)]
    scored = df[df["skip_reason"] == ""]
    neg = negative_mask(labels)
    pcols = [f"p_{lab}" for lab in labels]
    is_neg = pd.Series(neg[scored[pcols].to_numpy().argmax(1)] if len(scored) else [], index=scored.index, dtype=float)
    toned = scored[scored["tone"].notna()]
    weights = tone_weights(toned)
    out: dict[str, float] = {f: float(weights[f] @ toned["tone"]) if weights[f].abs().sum() > 0 else np.nan
                             for f in TONE_FEATURES}
    for r, s in ROLE_SECTIONS:
        g = scored[(scored["role"] == r) & (scored["section"] == s)]
        out[f"{r}_{s}_neg_share"] = weighted_mean(is_neg[g.index], g["w"])
    mean = out["call_tone"]
    ok = scored["tone"].notna()
    out["tone_volatility"] = (float(np.sqrt(np.average((scored["tone"][ok] - mean) ** 2, weights=scored["w"][ok])))
                              if ok.sum() > 1 else np.nan)
    keep = traj[traj["speaker"].isin(df["speaker"])]["tone_smooth"]
    out["min_smoothed_tone"] = float(keep.min()) if keep.notna().any() else np.nan
    out["n_hotspots"] = int((scored["attention_top15_share"] >= hotspot_threshold).sum())
    out |= lm_scores(" ".join(df["text"].fillna("").astype(str)))
    out["call_tone_abs"] = weighted_mean(df["tone_abs"], df["w"]) if "tone_abs" in df else np.nan
    out["call_text_tone"] = weighted_mean(df["text_tone"], df["w"]) if "text_tone" in df else np.nan
    out["call_fused_tone"] = weighted_mean(df["fused_tone"], df["w"]) if "fused_tone" in df else np.nan
    chair = df[df["role"] == "chair"]
    out["chair_hawkish"] = weighted_mean(chair["hawkish"], chair["w"]) if "hawkish" in df else np.nan
    out["n_segments_scored"] = int(len(scored))
    out["n_segments_skipped"] = int((emotions["skip_reason"] != "").sum())
    out["scored_speech_s"] = float(scored["w"].sum())
    out |= {c: np.nan for c in CALL_ABNORMAL_COLUMNS} | {"n_persons_with_baseline": 0}   # filled by the baseline step
    return {k: out[k] for k in CALL_FEATURE_DOCS if k in out}
