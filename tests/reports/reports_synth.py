"""Synthetic catalogs for the report tests and benchmark (fixed seeds, realistic shapes).

``synthetic_call``: one earnings call with 500 segments (operator, two executives, four
analysts; prepared remarks then Q&A), words, emotions of the shipped SER checkpoint (some
segments skipped), trajectories and call features.  ``synthetic_study``: 1,000 earnings
calls of 50 tickers with call features, a price file on the XNYS calendar with a planted
effect of executive Q&A tone on the day-0 return, and a study spec; the finance engine
(``run_study``) then writes the study tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data_catalog import Catalog
from data_catalog.schemas import CALL_ABNORMAL_COLUMNS, CALL_ROLE_SECTIONS, TABLES

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "ser_models" / "checkpoints" / "embedded" / "card.json"
VOCAB = ("revenue margin quarter guidance growth strong improve demand customers pricing costs decline loss weak "
         "uncertain risk headwinds volatility confident record outlook inventory supply capital expect believe "
         "question thank operator next line please analyst segment cash flow dividend").split()
SPEAKERS = [("S0", "operator", "Operator"), ("S1", "executive", "Jane Roe"), ("S2", "executive", "John Doe"),
            ("S3", "analyst", "A. Analyst"), ("S4", "analyst", "B. Analyst"), ("S5", "analyst", "C. Analyst"),
            ("S6", "analyst", "D. Analyst")]


def shipped_card() -> dict:
    return json.loads(CARD.read_text())


@dataclass
class SynthCall:
    call_id: str
    model_id: str
    labels: list[str]
    threshold: float
    n_segments: int


def _script(n: int, rng) -> list[tuple[str, str]]:
    """(speaker, section) of each segment: operator intro, executives' remarks, then Q&A rounds."""
    n_prep = int(n * 0.35)
    out = [("S0", "prepared")] * 2
    while len(out) < n_prep:
        out.append(("S1" if (len(out) // 12) % 2 == 0 else "S2", "prepared"))
    analysts = ["S3", "S4", "S5", "S6"]
    k = 0
    while len(out) < n:
        out.append(("S0", "qa"))
        out += [(analysts[k % 4], "qa")] * int(rng.integers(1, 3))
        out += [("S1" if rng.random() < 0.5 else "S2", "qa")] * int(rng.integers(2, 7))
        k += 1
    return out[:n]


def synthetic_call(catalog: Catalog, call_id: str = "5a1e5f0c0ffee000", n_segments: int = 500, seed: int = 0,
                   model_id: str | None = None) -> SynthCall:
    from ser_models.features import arousal_valence, kernel_smooth, tone

    rng = np.random.default_rng(seed)
    card = shipped_card()
    labels, model_id = list(card["labels"]), model_id or card["model_id"]
    thr = float(card["calibration"]["hotspot_threshold"])
    script = _script(n_segments, rng)
    role = {s: r for s, r, _ in SPEAKERS}
    seg_rows, word_rows, emo_rows = [], [], []
    t = 1.0
    for i, (spk, sec) in enumerate(script):
        dur = 0.2 if i % 97 == 50 else float(rng.uniform(2.0, 14.0))  # a few too short to score
        words = list(rng.choice(VOCAB, size=max(2, int(dur * 2.4))))
        text = " ".join(words).capitalize() + "."
        seg_rows.append(dict(call_id=call_id, segment_id=i, speaker=spk, start_s=round(t, 2), end_s=round(t + dur, 2),
                             section=sec, text=text, asr_confidence=float(rng.uniform(0.6, 0.99))))
        step = dur / len(words)
        word_rows += [dict(call_id=call_id, segment_id=i, word=w, start_s=round(t + j * step, 2),
                           end_s=round(t + (j + 0.8) * step, 2), score=0.9) for j, w in enumerate(words)]
        # executives turn more negative in the Q&A, the CFO (S2) most
        mood = {"S1": 0.6, "S2": -0.2}.get(spk, 0.0) - (0.9 if sec == "qa" and role[spk] == "executive" else 0.0)
        alpha = np.ones(len(labels)) * 1.5
        for j, lab in enumerate(labels):
            if lab in ("happy", "surprised", "calm"):
                alpha[j] *= np.exp(mood)
            elif lab in ("sad", "angry", "fearful", "disgust"):
                alpha[j] *= np.exp(-mood)
        p = rng.dirichlet(alpha)
        pos, neg = sum(w in ("strong", "improve", "growth", "record", "confident") for w in words), \
            sum(w in ("decline", "loss", "weak", "headwinds") for w in words)
        row = dict(call_id=call_id, segment_id=i, model_id=model_id, **{f"p_{lab}": float(v) for lab, v in zip(labels, p)})
        if dur < 0.3:
            row.update({f"p_{lab}": np.nan for lab in labels})
            row.update(tone=np.nan, tone_abs=np.nan, norm_basis="", arousal=np.nan, valence=np.nan,
                       attention_top15_share=np.nan, top_words="", n_windows=0, skip_reason="too_short")
        else:
            ar, va = arousal_valence(p[None], labels)
            t = float(tone(p[None], labels)[0])
            row.update(tone=t, tone_abs=float(np.clip(t - 0.2, -1, 1)), norm_basis="speaker", arousal=float(ar[0]),
                       valence=float(va[0]),
                       attention_top15_share=float(np.clip(thr + 0.1 * rng.normal(), 0.15, 1.0)), top_words="|".join(rng.choice(words, 3, replace=False)),
                       n_windows=int(np.ceil(dur / 20)), skip_reason="")
        row.update(lm_positive=pos / len(words), lm_negative=neg / len(words), lm_uncertainty=0.0,
                   lm_tone=(pos - neg) / (pos + neg) if pos + neg else np.nan)
        row.update(text_tone=float(np.tanh(pos - neg)), hawkish=np.nan)
        row.update(fused_tone=float(np.nanmean([row["tone"], row["text_tone"]])) if not np.isnan(row["tone"])
                   else row["text_tone"])
        emo_rows.append(row)
        t += dur + float(rng.uniform(0.1, 1.2))
    seg, emo = pd.DataFrame(seg_rows), pd.DataFrame(emo_rows)
    df = seg.merge(emo, on=["call_id", "segment_id"])
    df["w"] = df["end_s"] - df["start_s"]
    df["t_s"] = (df["start_s"] + df["end_s"]) / 2
    df["role"] = df["speaker"].map(role)
    sc = df[df["skip_reason"] == ""]
    traj = []
    for spk, g in sc.sort_values("t_s").groupby("speaker"):
        g = g.assign(tone_smooth=kernel_smooth(g["t_s"], g["tone"], g["w"], 30.0))
        traj.append(g[["call_id", "model_id", "speaker", "segment_id", "t_s", "tone", "tone_smooth"]
                      + [f"p_{lab}" for lab in labels]])
    traj = pd.concat(traj, ignore_index=True)
    nonop = sc[sc["role"] != "operator"]
    wmean = lambda g: float(np.average(g["tone"], weights=g["w"])) if len(g) else np.nan  # noqa: E731
    feats = {"call_id": call_id, "model_id": model_id}
    for r, s in CALL_ROLE_SECTIONS:
        g = nonop[(nonop["role"] == r) & (nonop["section"] == s)]
        feats[f"{r}_{s}_tone"] = wmean(g)
        feats[f"{r}_{s}_neg_share"] = float(rng.uniform(0, 0.6)) if len(g) else np.nan
    mg = nonop[nonop["role"] == "executive"]
    feats.update(tone_change_prepared_to_qa=wmean(mg[mg["section"] == "qa"]) - wmean(mg[mg["section"] == "prepared"]),
                 tone_volatility=float(nonop["tone"].std()), min_smoothed_tone=float(traj["tone_smooth"].min()),
                 n_hotspots=int((nonop["attention_top15_share"] >= thr).sum()), lm_positive=0.031, lm_negative=0.018,
                 lm_uncertainty=0.004, lm_tone=0.265, call_tone=wmean(nonop), call_tone_abs=wmean(nonop) - 0.2,
                 call_text_tone=0.1, call_fused_tone=wmean(nonop) / 2 + 0.05, chair_hawkish=np.nan, n_segments_scored=len(sc),
                 n_segments_skipped=int((emo["skip_reason"] != "").sum()), scored_speech_s=float(sc["w"].sum()),
                 **{c: np.nan for c in CALL_ABNORMAL_COLUMNS}, n_persons_with_baseline=0)
    talk = seg.assign(w=seg["end_s"] - seg["start_s"]).groupby("speaker")["w"].agg(["sum", "count"])
    speakers = [dict(call_id=call_id, speaker=s, role=r, name=nm, voice_id=f"v_{call_id[:10]}_{s}",
                     talk_time_s=float(talk.loc[s, "sum"]), n_segments=int(talk.loc[s, "count"]))
                for s, r, nm in SPEAKERS if s in talk.index]
    catalog.write("speakers", call_id, speakers)
    catalog.write("segments", call_id, seg)
    catalog.write("words", call_id, pd.DataFrame(word_rows))
    catalog.write("emotions", call_id, emo)
    catalog.write("trajectories", call_id, traj)
    catalog.write("call_features", call_id, [feats])
    catalog.write("calls", call_id, [dict(
        call_id=call_id, event_type="earnings_call", entity="ACME", event_time=pd.Timestamp("2018-06-01 12:00", tz="UTC"),
        language="en", duration_s=round(t, 3), source_uri=f"/archive/{call_id}.wav", title="ACME Q1 2018 earnings call",
        processed_at=pd.Timestamp("2024-05-01 06:00", tz="UTC"), pipeline_version="0.1.0", profile="embedded")])
    return SynthCall(call_id, model_id, labels, thr, n_segments)


# -- study -------------------------------------------------------------------------------------------

SPEC = """# synthetic earnings-call study for the report tests
name = "synthetic_earnings"
title = "Synthetic earnings calls: day-0 returns on executive Q&A tone"

[sample]
event_type = "earnings_call"

[prices]
source = "file"
path = "prices.parquet"
calendar = "XNYS"

[model]
expected = "market"
market = "MKT"
estimation = [-250, -30]
min_estimation_obs = 100
windows = [[0, 0], [0, 1], [2, 10]]

[[regressions]]
name = "car_0_1"
outcome = "car"
window = [0, 1]
regressors = ["executive_qa_tone", "tone_change_prepared_to_qa"]
cov = "HC1"

[[regressions]]
name = "volatility_0_1"
outcome = "abnormal_volatility"
window = [0, 1]
regressors = ["executive_qa_tone"]
cov = "cluster:ticker"

[[regressions]]
name = "negative_car_logit"
formula = "car_negative ~ executive_qa_tone"
window = [0, 1]
family = "logit"
cov = "HC1"
"""


def _feature_row(call_id: str, model_id: str, rng) -> dict:
    row = {c: np.nan for c in TABLES["call_features"].columns}
    row.update(call_id=call_id, model_id=model_id)
    for r, s in CALL_ROLE_SECTIONS:
        if r in ("executive", "analyst"):
            row[f"{r}_{s}_tone"] = float(np.clip(rng.normal(0.1, 0.35), -1, 1))
            row[f"{r}_{s}_neg_share"] = float(rng.uniform(0, 0.5))
    row.update(tone_change_prepared_to_qa=row["executive_qa_tone"] - row["executive_prepared_tone"],
               tone_volatility=float(rng.uniform(0.1, 0.5)), min_smoothed_tone=float(rng.uniform(-1, 0)),
               n_hotspots=int(rng.integers(0, 40)), lm_positive=0.02, lm_negative=0.01, lm_uncertainty=0.005,
               lm_tone=float(rng.uniform(-1, 1)), call_tone=float(rng.normal(0, 0.3)), n_segments_scored=400,
               n_segments_skipped=3, scored_speech_s=2800.0, n_persons_with_baseline=0)
    return row


def synthetic_study(catalog: Catalog, folder: Path, n_events: int = 1000, n_tickers: int = 50, seed: int = 0,
                    effect: float = 0.02) -> Path:
    """Write calls, call features, a price file and a spec; return the spec path (not yet run).

    Day-0 returns carry ``effect`` x executive_qa_tone; three events have an unknown ticker and
    two come too early for an estimation window, so the study drops five events."""
    from finance.calendars import get_calendar

    rng = np.random.default_rng(seed)
    sessions = pd.DatetimeIndex(get_calendar("XNYS").between("2009-01-02", "2016-12-30"))
    tickers = [f"T{i:02d}" for i in range(n_tickers)]
    model_id = shipped_card()["model_id"]
    day0 = rng.integers(300, len(sessions) - 20, n_events)
    day0[:2] = [40, 60]                                      # too early: fewer than 100 estimation days
    who = [tickers[i] for i in rng.integers(0, n_tickers, n_events)]
    who[2:5] = ["ZZZZ"] * 3                                  # not in the price file
    feats = [_feature_row(f"{seed:02d}{i:014x}", model_id, rng) for i in range(n_events)]
    mkt = rng.normal(3e-4, 0.01, len(sessions))
    rets = {"MKT": mkt}
    for tk in tickers:
        rets[tk] = 1e-4 + rng.uniform(0.6, 1.4) * mkt + rng.normal(0, 0.015, len(sessions))
    for i in range(n_events):
        if who[i] in rets:
            rets[who[i]][day0[i]] += effect * feats[i]["executive_qa_tone"]
    frames = [pd.DataFrame({"ticker": tk, "date": sessions, "adj_close": 50 * np.cumprod(1 + r),
                            "close": 50 * np.cumprod(1 + r), "volume": rng.lognormal(13, 0.3, len(sessions))})
              for tk, r in rets.items()]
    folder.mkdir(parents=True, exist_ok=True)
    pd.concat(frames, ignore_index=True).to_parquet(folder / "prices.parquet")
    for i, f in enumerate(feats):
        cid = f["call_id"]
        when = pd.Timestamp(sessions[day0[i]]) + pd.Timedelta(hours=15)   # 15:00 UTC: during the session
        catalog.write("calls", cid, [dict(
            call_id=cid, event_type="earnings_call", entity=who[i], event_time=when.tz_localize("UTC"), language="en",
            duration_s=3600.0, source_uri=f"/archive/{cid}.wav", title=f"{who[i]} call {i}",
            processed_at=pd.Timestamp("2024-05-01", tz="UTC"), pipeline_version="0.1.0", profile="embedded")])
        catalog.write("call_features", cid, [f])
    spec = folder / "synthetic_earnings.toml"
    spec.write_text(SPEC)
    return spec
