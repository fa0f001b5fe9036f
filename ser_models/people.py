"""Per-person tone baselines across calls: how unusual is a person's tone on this call?

Mayew & Venkatachalam (2012) measure a manager's vocal affect against the same manager's own
earlier calls; this module does that for every named (or voice-identified) speaker.

``person_tones(segments, emotions, speakers, calls)``: one row per (call_id, person_id).
  Inputs: segments (call_id, segment_id, speaker, start_s, end_s); emotions (call_id,
  segment_id, tone, text_tone, fused_tone, skip_reason); speakers (call_id, speaker, role, name,
  voice_id); calls (call_id, event_time (UTC), entity).  Operators are left out; segments of a
  call missing from ``calls`` are dropped (logged).  A segment is scored when its emotions row
  has skip_reason '' (no row: not scored).
  person_id: "name:" + ``normalise_name(name)`` when that is non-empty, else "voice:" + voice_id,
  else "call:<call_id>:<speaker>" (never linked to another call).  Two diarized speakers of one
  call with the same person_id are one person: their segments are pooled (so the tones are
  talk-time weighted over both), speaker is their labels '|'-joined (sorted), and role, name
  and voice_id are those of the speaker with the most scored talk.
  Columns: call_id, entity, event_time, person_id, speaker, role, name, voice_id,
  talk_s (scored speech seconds), voice_tone, text_tone, fused_tone (duration-weighted means of
  tone / text_tone / fused_tone over the person's scored segments with a value; NaN if none).

``baselines(tones, config)``: the rows of ``tones`` (one per (call_id, person_id), else
  ValueError), in the same order, plus for each measure m of voice, text and fused:
  the person's prior calls for m are their calls with a strictly earlier event_time (a call at the
  same time is not prior), at most ``window_days`` days earlier (inclusive), with a non-NaN m
  tone (a call with NaN m is not counted for m), keeping the last ``max_calls`` (by event_time,
  then call_id).  Over those calls, equal weight per call:
    <m>_base_mean, <m>_base_sd (ddof=1; exactly 0 when all values are equal),
    abnormal_<m>_tone = (<m>_tone - mean) / sd (mean and sd exact when all values are equal).
  Counts and statuses: n_prior_calls / baseline_status (voice), n_prior_text_calls /
  text_baseline_status, n_prior_fused_calls / fused_baseline_status.  Status
  (``BaselineStatus``): 'first_call' (no prior call: mean, sd and z NaN), 'too_few_calls'
  (fewer than ``min_prior_calls``: z NaN, mean (and sd if n >= 2) kept), 'zero_spread' (sd 0 or
  NaN: z NaN), else 'ok' (z NaN only if the call's own tone is NaN).

``call_abnormal(baselines_frame)``: one row per call_id: executive_abnormal_tone,
  executive_abnormal_text_tone, chair_abnormal_tone, chair_abnormal_text_tone,
  analyst_abnormal_tone (talk_s-weighted mean of abnormal_voice_tone / abnormal_text_tone over the
  role's persons with a non-NaN value and talk_s > 0; NaN if none), n_persons_with_baseline
  (persons with a non-NaN abnormal voice, text or fused tone).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from enum import Enum

import numpy as np
import pandas as pd

from data_catalog.schemas import CALL_ABNORMAL_COLUMNS

log = logging.getLogger(__name__)

OPERATOR = "operator"
TONES = {"voice": "tone", "text": "text_tone", "fused": "fused_tone"}       # measure -> emotions column
KEY = ["call_id", "person_id"]
TONE_COLUMNS = {"call_id": "object", "entity": "object", "event_time": "datetime64[ns, UTC]",
                "person_id": "object", "speaker": "object", "role": "object", "name": "object",
                "voice_id": "object", "talk_s": "float64", "voice_tone": "float64", "text_tone": "float64",
                "fused_tone": "float64"}
CALL_ABNORMAL = dict(zip(CALL_ABNORMAL_COLUMNS, (("executive", "abnormal_voice_tone"), ("executive", "abnormal_text_tone"),
                                               ("chair", "abnormal_voice_tone"), ("chair", "abnormal_text_tone"),
                                               ("analyst", "abnormal_voice_tone"))))


class BaselineStatus(str, Enum):
    OK = "ok"
    FIRST_CALL = "first_call"
    TOO_FEW_CALLS = "too_few_calls"
    ZERO_SPREAD = "zero_spread"


@dataclass(frozen=True)
class BaselineConfig:
    window_days: float = 1095.0
    max_calls: int = 8
    min_prior_calls: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.min_prior_calls <= self.max_calls:
            raise ValueError(f"need 1 <= min_prior_calls <= max_calls, got {self.min_prior_calls}, {self.max_calls}")


def measure_columns(measure: str) -> dict[str, str]:
    """Output column names of one measure (voice, text, fused) of ``baselines``."""
    tag = "" if measure == "voice" else f"{measure}_"
    return {"n": f"n_prior_{tag}calls", "mean": f"{measure}_base_mean", "sd": f"{measure}_base_sd",
            "z": f"abnormal_{measure}_tone", "status": f"{tag}baseline_status"}


def normalise_name(name: object) -> str:
    """Lowercase, punctuation removed, whitespace collapsed ('' for a missing name)."""
    if name is None or (isinstance(name, float) and np.isnan(name)):
        return ""
    text = re.sub(r"[^\w\s]|_", "", unicodedata.normalize("NFKC", str(name)).casefold())
    return " ".join(text.split())


def person_id(call_id: str, speaker: str, name: object, voice_id: object) -> str:
    norm = normalise_name(name)
    voice = "" if voice_id is None or pd.isna(voice_id) else str(voice_id).strip()
    return f"name:{norm}" if norm else f"voice:{voice}" if voice else f"call:{call_id}:{speaker}"


def _segment_frame(segments: pd.DataFrame, emotions: pd.DataFrame, speakers: pd.DataFrame) -> pd.DataFrame:
    emo = emotions.reindex(columns=["call_id", "segment_id", "skip_reason", *TONES.values()]).copy()
    emo["skip_reason"] = emo["skip_reason"].fillna("").astype(str)
    df = segments[["call_id", "segment_id", "speaker", "start_s", "end_s"]].merge(
        emo, on=["call_id", "segment_id"], how="left")
    sp = speakers.reindex(columns=["call_id", "speaker", "role", "name", "voice_id"]).drop_duplicates(["call_id", "speaker"])
    sp["person_id"] = [person_id(c, s, n, v) for c, s, n, v in           # once per speaker, not per segment
                       zip(sp["call_id"], sp["speaker"], sp["name"], sp["voice_id"])]
    df = df.merge(sp, on=["call_id", "speaker"], how="left")
    missing = df["person_id"].isna()
    if missing.any():   # a segment of a speaker not in ``speakers``
        df.loc[missing, "person_id"] = "call:" + df.loc[missing, "call_id"].astype(str) + ":" + \
            df.loc[missing, "speaker"].astype(str)
    df[["name", "voice_id"]] = df[["name", "voice_id"]].fillna("").astype(str)
    df["role"] = df["role"].fillna("unknown").astype(str)
    df = df[df["role"] != OPERATOR].copy()
    df["w"] = (df["end_s"] - df["start_s"]).astype(float).where(df["skip_reason"].eq(""), 0.0).clip(lower=0.0)
    return df


def _wmean(df: pd.DataFrame, column: str) -> pd.Series:
    """Per (call_id, person_id): sum(w x) / sum(w) over rows with a value and w > 0."""
    ok = df[column].notna() & (df["w"] > 0)
    w = df["w"].where(ok, 0.0)
    parts = pd.DataFrame({"wx": (w * df[column].where(ok, 0.0)), "w": w, "call_id": df["call_id"],
                          "person_id": df["person_id"]}).groupby(KEY, sort=False)[["wx", "w"]].sum()
    return (parts["wx"] / parts["w"]).where(parts["w"] > 0)


def _identity(df: pd.DataFrame) -> pd.DataFrame:
    """Per (call_id, person_id): speakers '|'-joined; role, name, voice_id of the top speaker."""
    talk = df.groupby([*KEY, "speaker"], sort=False).agg(talk=("w", "sum"), role=("role", "first"),
                                                         name=("name", "first"), voice_id=("voice_id", "first"))
    talk = talk.reset_index().sort_values([*KEY, "talk", "speaker"], ascending=[True, True, False, True],
                                          kind="mergesort")
    top = talk.groupby(KEY, sort=False)[["role", "name", "voice_id"]].first()
    top["speaker"] = talk.groupby(KEY, sort=False)["speaker"].agg(lambda s: "|".join(sorted(map(str, s))))
    return top


def person_tones(segments: pd.DataFrame, emotions: pd.DataFrame, speakers: pd.DataFrame,
                 calls: pd.DataFrame) -> pd.DataFrame:
    """One row per (call_id, person_id) with the person's talk time and mean tones in that call."""
    df = _segment_frame(segments, emotions, speakers)
    known = df["call_id"].isin(calls["call_id"])
    if not known.all():
        log.warning("%d segment(s) of %d call(s) missing from calls dropped", int((~known).sum()),
                    df.loc[~known, "call_id"].nunique())
        df = df[known]
    out = _identity(df)
    out["talk_s"] = df.groupby(KEY, sort=False)["w"].sum()
    for measure, column in TONES.items():
        out[f"{measure}_tone"] = _wmean(df, column)
    meta = calls[["call_id", "event_time", "entity"]].drop_duplicates("call_id")
    out = out.reset_index().merge(meta, on="call_id", how="left")
    out["event_time"] = pd.to_datetime(out["event_time"], utc=True)
    out = out.sort_values(["event_time", "call_id", "person_id"], kind="mergesort").reset_index(drop=True)
    return out.reindex(columns=list(TONE_COLUMNS)).astype(TONE_COLUMNS)


def _prior_stats(values: np.ndarray, cfg: BaselineConfig) -> tuple[int, float, float, BaselineStatus]:
    n = len(values)
    if n == 0:
        return 0, np.nan, np.nan, BaselineStatus.FIRST_CALL
    same = values.min() == values.max()
    mean = float(values[0]) if same else float(np.mean(values))
    sd = np.nan if n < 2 else 0.0 if same else float(np.std(values, ddof=1))
    if n < cfg.min_prior_calls:
        return n, mean, sd, BaselineStatus.TOO_FEW_CALLS
    if np.isnan(sd) or sd == 0:
        return n, mean, sd, BaselineStatus.ZERO_SPREAD
    return n, mean, sd, BaselineStatus.OK


def _person_baselines(g: pd.DataFrame, cfg: BaselineConfig) -> dict[str, list]:
    """Baseline columns for one person's rows, sorted by event_time then call_id."""
    t = g["event_time"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
    window = np.timedelta64(int(round(cfg.window_days * 86400e9)), "ns")
    out: dict[str, list] = {}
    for measure in TONES:
        cols = measure_columns(measure)
        x = g[f"{measure}_tone"].to_numpy(float)
        for k in range(len(g)):
            prior = (t < t[k]) & (t >= t[k] - window) & ~np.isnan(x)
            n, mean, sd, status = _prior_stats(x[prior][-cfg.max_calls:], cfg)
            z = (x[k] - mean) / sd if status is BaselineStatus.OK else np.nan
            for key, value in zip(("n", "mean", "sd", "z", "status"), (n, mean, sd, z, status.value)):
                out.setdefault(cols[key], []).append(value)
    return out


def baselines(tones: pd.DataFrame, config: BaselineConfig = BaselineConfig()) -> pd.DataFrame:
    """``tones`` (one row per (call_id, person_id)) with each person's prior-call baseline and abnormal
    tones added (rules and columns: module docstring)."""
    if tones.duplicated(KEY).any():
        raise ValueError("tones must have one row per (call_id, person_id); see person_tones")
    names = [c for m in TONES for c in measure_columns(m).values()]
    df = tones.drop(columns=names, errors="ignore").reset_index(drop=True)
    df["event_time"] = pd.to_datetime(df["event_time"], utc=True)
    order = df.sort_values(["person_id", "event_time", "call_id"], kind="mergesort")
    parts = []
    for _, g in order.groupby("person_id", sort=False):
        parts.append(pd.DataFrame(_person_baselines(g, config), index=g.index, columns=names))
    extra = pd.concat(parts) if parts else pd.DataFrame(columns=names, index=df.index[:0])
    for m in TONES:
        cols = measure_columns(m)
        extra = extra.astype({cols["n"]: "int64", cols["mean"]: "float64", cols["sd"]: "float64",
                              cols["z"]: "float64", cols["status"]: "object"})
    return df.join(extra.reindex(columns=names))


def call_abnormal(baselines_frame: pd.DataFrame) -> pd.DataFrame:
    """One row per call_id: talk-weighted abnormal tones by role (columns: module docstring)."""
    b = baselines_frame
    zs = [measure_columns(m)["z"] for m in TONES]
    out = pd.DataFrame({"call_id": np.sort(b["call_id"].unique())}) if len(b) else pd.DataFrame({"call_id": []})
    for column, (role, z) in CALL_ABNORMAL.items():
        ok = (b["role"] == role) & b[z].notna() & (b["talk_s"] > 0)
        w = b["talk_s"].where(ok, 0.0)
        sums = pd.DataFrame({"wz": w * b[z].where(ok, 0.0), "w": w, "call_id": b["call_id"]}).groupby("call_id")[["wz", "w"]].sum()
        out[column] = out["call_id"].map((sums["wz"] / sums["w"]).where(sums["w"] > 0))
    n = b[zs].notna().any(axis=1).groupby(b["call_id"]).sum()
    out["n_persons_with_baseline"] = out["call_id"].map(n).fillna(0)
    dtypes = {"call_id": "object", **{c: "float64" for c in CALL_ABNORMAL}, "n_persons_with_baseline": "int64"}
    return out.astype(dtypes)
