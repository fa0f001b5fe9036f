"""Voice-tone features of a call as weighted sums of segment tones, and what the classifier
says about each segment (for the measurement-error correction of ``finance.measurement``).

Every voice-tone feature of ``call_features`` is linear in the segment tones:
``feature = sum_s weight[s] * tone[s]`` over the call's scored, non-operator segments, with
duration weights inside the feature's cell (``<role>_<section>_tone``; ``call_tone`` over
all of them) and, for ``tone_change_prepared_to_qa``, the management Q&A weights minus the
management prepared-remarks weights.  ``tone_weights`` gives those weights; ``call_features``
uses them, and so does ``tone_evidence``, which turns each segment's class posterior into
evidence about its true valence group (negative, neutral, positive): the likelihood
``p(group | clip) / prior(group)`` of a calibrated classifier whose training prior is
``prior`` (balanced classes when it was trained with inverse-frequency class weights).
A segment's true-tone value is -1, 0 or +1, so a feature built from true groups is on the
same scale as the measured ``p(pos) - p(neg)``.

No torch here: studies import this module.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from data_catalog.schemas import CALL_ROLE_SECTIONS
from ser_models.features import NEGATIVE, POSITIVE

ROLE_SECTIONS = CALL_ROLE_SECTIONS
MANAGEMENT = ("executive", "chair")
EXCLUDED_ROLES = ("operator",)
TONE_FEATURES = tuple([f"{r}_{s}_tone" for r, s in ROLE_SECTIONS] + ["tone_change_prepared_to_qa", "call_tone"])


def weighted_mean(x: pd.Series, w: pd.Series) -> float:
    """Mean of ``x`` weighted by ``w`` (segment durations) over the rows with a value; NaN if none."""
    ok = x.notna()
    return float(np.average(x[ok], weights=w[ok])) if ok.any() and w[ok].sum() > 0 else np.nan


def tone_weights(scored: pd.DataFrame) -> pd.DataFrame:
    """Weight of each segment in each voice-tone feature of its call (``TONE_FEATURES``).
    ``scored``: non-operator segments with a tone (role, section, w = duration in seconds,
    and call_id when it holds several calls).  A feature whose cell is empty in a call has
    all-zero weights there (NaN in ``call_features``)."""
    w = scored["w"].astype(float)
    key = scored["call_id"] if "call_id" in scored else pd.Series(0, index=scored.index)
    out = pd.DataFrame(0.0, index=scored.index, columns=list(TONE_FEATURES))

    def share(mask: pd.Series) -> pd.Series:
        wm = w.where(mask, 0.0)
        total = wm.groupby(key).transform("sum")
        return (wm / total).where(total > 0, 0.0)

    for r, s in ROLE_SECTIONS:
        out[f"{r}_{s}_tone"] = share((scored["role"] == r) & (scored["section"] == s))
    mgmt = scored["role"].isin(MANAGEMENT)
    qa, prep = share(mgmt & (scored["section"] == "qa")), share(mgmt & (scored["section"] == "prepared"))
    both = (qa.groupby(key).transform("sum") > 0) & (prep.groupby(key).transform("sum") > 0)
    out["tone_change_prepared_to_qa"] = (qa - prep).where(both, 0.0)
    out["call_tone"] = share(pd.Series(True, index=scored.index))
    return out


def class_groups(labels: Sequence[str]) -> np.ndarray:
    """(C,) group index of each class: 0 negative, 1 neutral, 2 positive."""
    return np.array([0 if lab.lower() in NEGATIVE else 2 if lab.lower() in POSITIVE else 1 for lab in labels])


def training_prior(card: dict) -> np.ndarray:
    """(C,) the class prior the checkpoint's posteriors are calibrated for: uniform when it was
    trained with class weights (the shipped recipe), else the training class counts."""
    labels = card["labels"]
    counts = (card.get("corpus") or {}).get("class_counts") or {}
    if (card.get("train") or {}).get("class_weights", False) or not counts:
        return np.full(len(labels), 1 / len(labels))
    c = np.array([float(counts.get(lab, 0)) for lab in labels])
    return c / c.sum()


def tone_evidence(segments: pd.DataFrame, emotions: pd.DataFrame, labels: Sequence[str], prior: np.ndarray,
                  features: Sequence[str]) -> dict:
    """Arrays for ``finance.measurement.SegmentEvidence`` over many calls.

    segments: call_id, segment_id, role, section, start_s, end_s; emotions: call_id,
    segment_id, p_<class>, tone, skip_reason (one SER model).  Segments without posteriors
    (skipped, or missing from ``emotions``) are left out, as ``call_features`` leaves them out.
    Returns call_ids (N,), call_index (S,), likelihood (S, 3), prior (3,), weights (S, K),
    defined (N, K), features (the group values -1, 0, +1 are ``SegmentEvidence``'s default)."""
    unknown = [f for f in features if f not in TONE_FEATURES]
    if unknown:
        raise ValueError(f"{unknown} are not voice-tone features (these are: {', '.join(TONE_FEATURES)})")
    pcols = [f"p_{lab}" for lab in labels]
    df = segments.merge(emotions[["call_id", "segment_id", "tone", "skip_reason", *pcols]],
                        on=["call_id", "segment_id"], how="inner")
    df = df[(df["skip_reason"] == "") & df["tone"].notna() & ~df["role"].isin(EXCLUDED_ROLES)]
    df = df[df[pcols].notna().all(axis=1)].copy()
    df["w"] = df["end_s"] - df["start_s"]
    call_ids = np.array(sorted(segments["call_id"].astype(str).unique()))
    pos = {c: i for i, c in enumerate(call_ids)}
    weights = tone_weights(df)[list(features)]
    call_index = df["call_id"].astype(str).map(pos).to_numpy(int)
    defined = np.zeros((len(call_ids), len(features)), bool)
    np.logical_or.at(defined, call_index, weights.to_numpy() != 0)
    groups = class_groups(labels)
    p = df[pcols].to_numpy(float)
    gpost = np.stack([p[:, groups == g].sum(1) for g in range(3)], 1)
    gprior = np.array([prior[groups == g].sum() for g in range(3)])
    if (gprior <= 0).any():
        raise ValueError(f"labels {list(labels)}: a valence group has no class; MI needs negative, neutral and "
                         f"positive classes")
    return {"call_ids": call_ids, "call_index": call_index, "likelihood": gpost / gprior, "prior": gprior,
            "weights": weights.to_numpy(float), "defined": defined, "features": list(features)}
