"""The call report: one recording's speakers, emotion trajectories, extremes, hotspots, text
tone beside voice tone, and the card of the SER checkpoint that scored it.

    data = load_call(catalog, call_id)        # CallData: the call's catalog rows (one SER model)
    ctx = call_context(data)                  # figures and table rows for templates/call.html.j2

Everything shown is read from the catalog (tables ``calls, speakers, segments, words,
emotions, trajectories, call_features``); the only arithmetic is for display: the class
probabilities are smoothed in time with the same Gaussian kernel as ``tone_smooth``
(``ser_models.features.kernel_smooth``), and per-speaker means are duration-weighted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from data_catalog import Catalog
from reports.common import Figure, ReportError, clock, has_part, is_missing, new_figure, read_part, to_figure
from ser_models.cards import find_card

CALL_PARTS = ("calls", "speakers", "segments", "words", "emotions", "trajectories", "call_features")
SECTION_COLORS = {"prepared": "#dfe8f5", "qa": "#fbe9d6"}
SECTION_NAMES = {"prepared": "prepared remarks", "qa": "Q&A"}
CLASS_COLORS = {"neutral": "#b0b0b0", "calm": "#9fd4a3", "happy": "#f2c94c", "surprised": "#f2994a",
                "sad": "#5b8dd6", "fearful": "#9b6fc3", "angry": "#d64545", "disgust": "#8c6d46"}
EXCLUDED_ROLES = ("operator",)   # as in the call features: operators' speech is not the firm's or the Fed's
SMOOTH_BANDWIDTH_S = 30.0        # the trajectories' tone_smooth bandwidth (ser_models.calls.EmotionConfig)
TEXT_BANDWIDTH_S = 60.0          # dictionary tone is sparse: a wider kernel for the text-vs-voice panel
MAX_GAP_S = 120.0                # a trajectory line is broken where the speaker is silent for longer
N_EXTREMES = 10
MAX_HOTSPOTS = 25
MAX_PANELS = 6


@dataclass
class CallData:
    """The catalog rows of one call, for one SER model (``model_id`` '' when not scored)."""

    call: dict
    speakers: pd.DataFrame
    segments: pd.DataFrame       # with the speaker's role
    words: pd.DataFrame
    emotions: pd.DataFrame       # rows of model_id only
    trajectories: pd.DataFrame   # rows of model_id only
    features: dict               # the call_features row of model_id ({} if none)
    model_id: str
    labels: list[str]
    other_models: list[str] = field(default_factory=list)
    card: dict | None = None
    card_path: str = ""

    @property
    def call_id(self) -> str:
        return self.call["call_id"]

    @cached_property
    def scored(self) -> pd.DataFrame:
        """Scored segments with their times, speaker, role, section and text (operators left out)."""
        df = self.segments.merge(self.emotions.drop(columns=["call_id"], errors="ignore"), on="segment_id")
        df = df[(df["skip_reason"].fillna("") == "") & df["tone"].notna() & ~df["role"].isin(EXCLUDED_ROLES)]
        words = (df["lm_positive"] + df["lm_negative"]) > 0   # lm_tone is 0, not missing, without tone words
        return df.assign(duration_s=df["end_s"] - df["start_s"], t_s=(df["start_s"] + df["end_s"]) / 2,
                         lm_text_tone=df["lm_tone"].where(words))

    @property
    def end_s(self) -> float:
        return max(self.call["duration_s"] or 0, self.segments["end_s"].max() if len(self.segments) else 0)

    @property
    def time_unit(self) -> tuple[float, str]:
        """Seconds for a call shorter than three minutes, else minutes: (divisor, axis label)."""
        return (1.0, "seconds into the call") if self.end_s < 180 else (60.0, "minutes into the call")


def _pick_model(emotions: pd.DataFrame, call_id: str, model_id: str | None) -> tuple[str, list[str]]:
    models = sorted(emotions["model_id"].dropna().astype(str).unique()) if len(emotions) else []
    if model_id is not None:
        if model_id not in models:
            raise ReportError(f"call {call_id}: no emotions of model {model_id!r} in the catalog "
                              f"(models: {', '.join(models) or 'none'})")
        return model_id, [m for m in models if m != model_id]
    if not models:
        return "", []
    shipped = [m for m in models if find_card(m)[0] is not None]
    chosen = shipped[-1] if shipped else models[-1]
    return chosen, [m for m in models if m != chosen]


def load_call(catalog: Catalog, call_id: str, model_id: str | None = None) -> CallData:
    """Read the call's rows; an unknown ``call_id`` is an error naming the catalog."""
    if not has_part(catalog, "calls", call_id):
        ids = catalog.keys("calls")
        near = [k for k in ids if k.startswith(str(call_id)[:6])] if call_id else []
        hint = f"; did you mean {near[0]}?" if len(near) == 1 else f" ({len(ids)} calls in the catalog)"
        raise ReportError(f"{catalog.root}: unknown call_id {call_id!r}, not in table 'calls'{hint}")
    call = catalog.read("calls", call_id).to_pylist()[0]
    speakers = read_part(catalog, "speakers", call_id)
    segments = read_part(catalog, "segments", call_id).sort_values("start_s", kind="stable")
    roles = dict(zip(speakers["speaker"], speakers["role"]))
    segments = segments.assign(role=segments["speaker"].map(roles).fillna("unknown")).reset_index(drop=True)
    emotions = read_part(catalog, "emotions", call_id)
    chosen, others = _pick_model(emotions, call_id, model_id)
    emotions = emotions[emotions["model_id"] == chosen].reset_index(drop=True)
    traj = read_part(catalog, "trajectories", call_id)
    traj = traj[traj["model_id"] == chosen].reset_index(drop=True)
    feats = read_part(catalog, "call_features", call_id)
    feats = feats[feats["model_id"] == chosen]
    labels = [c[2:] for c in emotions.columns if c.startswith("p_") and emotions[c].notna().any()]
    card, card_path = find_card(chosen) if chosen else (None, "")
    if card and card.get("labels"):
        labels = [lab for lab in card["labels"] if lab in labels] + [lab for lab in labels if lab not in card["labels"]]
    return CallData(call, speakers, segments, read_part(catalog, "words", call_id), emotions, traj,
                    feats.iloc[0].to_dict() if len(feats) else {}, chosen, labels, others, card, card_path)


# -- display helpers ---------------------------------------------------------------------------------


def section_spans(segments: pd.DataFrame) -> list[tuple[str, float, float]]:
    """Consecutive runs of one section: (section, start, start of the next run or end of the call)."""
    spans: list[list] = []
    for row in segments.itertuples(index=False):
        if spans and spans[-1][0] == row.section:
            spans[-1][2] = max(spans[-1][2], row.end_s)
        else:
            if spans:
                spans[-1][2] = row.start_s
            spans.append([row.section, row.start_s, row.end_s])
    return [tuple(s) for s in spans]


def _shade(ax, spans, k: float) -> None:
    for sec, a, b in spans:
        ax.axvspan(a / k, b / k, color=SECTION_COLORS.get(sec, "#eeeeee"), lw=0, zorder=0)


def _speaker_label(data: CallData, speaker: str) -> str:
    row = data.speakers[data.speakers["speaker"] == speaker]
    if row.empty:
        return speaker
    name, role = row.iloc[0]["name"], row.iloc[0]["role"]
    return f"{name or speaker} ({role})"


def _speaker_order(data: CallData) -> list[str]:
    sp = data.speakers[~data.speakers["role"].isin(EXCLUDED_ROLES)]
    return list(sp.sort_values("talk_time_s", ascending=False)["speaker"])


def hotspot_threshold(data: CallData) -> float | None:
    cal = (data.card or {}).get("calibration", {})
    return float(cal["hotspot_threshold"]) if "hotspot_threshold" in cal else None


def _norm(word: str) -> str:
    return re.sub(r"[^\w']+", "", str(word).lower())


def hotspots(data: CallData) -> tuple[pd.DataFrame, float | None]:
    """Scored segments whose attention_top15_share reaches the card's hotspot threshold, with the
    times of their top words (from the words table); the top ``MAX_HOTSPOTS`` by share."""
    sc = data.scored
    thr = hotspot_threshold(data)
    if sc.empty or sc["attention_top15_share"].isna().all():
        return sc.iloc[0:0], thr
    hot = sc[sc["attention_top15_share"] >= thr] if thr is not None else sc.nlargest(N_EXTREMES, "attention_top15_share")
    hot = hot.sort_values("attention_top15_share", ascending=False)
    words = data.words.assign(key=data.words["word"].map(_norm))
    out = []
    for row in hot.itertuples(index=False):
        w = words[words["segment_id"] == row.segment_id]
        found = []
        for tw in [t for t in str(row.top_words or "").split("|") if t]:
            hit = w[w["key"] == _norm(tw)]
            found.append((tw, float(hit["start_s"].iloc[0]) if len(hit) else None))
        out.append({**row._asdict(), "word_times": found})
    return pd.DataFrame(out), thr


def extremes(data: CallData, n: int = N_EXTREMES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``n`` most negative and ``n`` most positive scored segments by voice tone."""
    sc = data.scored.sort_values(["tone", "segment_id"])
    k_neg = n if len(sc) >= 2 * n else (len(sc) + 1) // 2      # few segments: the lower and the upper half
    neg = sc.head(k_neg)
    pos = sc.iloc[k_neg:].sort_values(["tone", "segment_id"], ascending=[False, True])
    return neg, pos.head(n)


def _wmean(x: pd.Series, w: pd.Series) -> float:
    ok = x.notna() & w.notna()
    return float(np.average(x[ok], weights=w[ok])) if ok.any() and w[ok].sum() > 0 else float("nan")


def speaker_rows(data: CallData) -> list[dict]:
    sc = data.scored
    total = float(data.speakers["talk_time_s"].sum()) or 1.0
    rows = []
    for r in data.speakers.sort_values("talk_time_s", ascending=False).itertuples(index=False):
        mine = sc[sc["speaker"] == r.speaker]
        rows.append({"speaker": r.speaker, "role": r.role, "name": r.name or "", "voice_id": r.voice_id or "",
                     "talk_time_s": r.talk_time_s, "share": r.talk_time_s / total, "n_segments": r.n_segments,
                     "n_scored": len(mine), "voice_tone": _wmean(mine["tone"], mine["duration_s"]) if len(mine) else None,
                     "text_tone": float(mine["lm_text_tone"].mean()) if mine["lm_text_tone"].notna().any() else None,
                     "n_text": int(mine["lm_text_tone"].notna().sum())})
    return rows


def segment_rows(df: pd.DataFrame, data: CallData, max_chars: int = 240) -> list[dict]:
    rows = []
    for r in df.itertuples(index=False):
        probs = {lab: getattr(r, f"p_{lab}", np.nan) for lab in data.labels}
        top = max(probs, key=lambda k: -1 if is_missing(probs[k]) else probs[k]) if probs else ""
        text = str(r.text or "")
        rows.append({"segment_id": r.segment_id, "start_s": r.start_s, "end_s": r.end_s,
                     "speaker": _speaker_label(data, r.speaker), "section": SECTION_NAMES.get(r.section, r.section),
                     "tone": r.tone, "lm_tone": getattr(r, "lm_text_tone", r.lm_tone), "top_class": top, "top_p": probs.get(top),
                     "share": getattr(r, "attention_top15_share", None),
                     "text": text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…",
                     "word_times": getattr(r, "word_times", [])})
    return rows


def feature_tables(features: dict) -> tuple[list[dict], list[tuple[str, object]]]:
    """Role x section cells (tone, share of negative speech) and the other call features."""
    cells: dict[tuple[str, str], dict] = {}
    rest = []
    for k, v in features.items():
        m = re.fullmatch(r"([a-z]+)_(prepared|qa)_(tone|neg_share)", k)
        if m:
            cells.setdefault((m[1], m[2]), {"role": m[1], "section": SECTION_NAMES[m[2]]})[m[3]] = v
        elif k not in ("call_id", "model_id"):
            integral = k.startswith("n_") and not is_missing(v) and float(v).is_integer()
            rest.append((k, int(v) if integral else v))
    grid = [c for c in cells.values() if not (is_missing(c.get("tone")) and is_missing(c.get("neg_share")))]
    return grid, rest


# -- figures -----------------------------------------------------------------------------------------


def _runs(t: np.ndarray, max_gap: float) -> list[slice]:
    """Index ranges of ``t`` (sorted) without a gap wider than ``max_gap``: a speaker's trajectory
    is not drawn across the minutes in which the speaker is silent."""
    cuts = np.flatnonzero(np.diff(t) > max_gap) + 1
    edges = [0, *cuts.tolist(), len(t)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _speaker_colors(speakers: list[str]) -> dict[str, str]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {s: matplotlib.colors.to_hex(cmap(i % 10)) for i, s in enumerate(speakers)}


def _section_legend(ax, spans) -> None:
    from matplotlib.patches import Patch

    present = list(dict.fromkeys(s for s, _, _ in spans))
    handles = [Patch(color=SECTION_COLORS.get(s, "#eeeeee"), label=SECTION_NAMES.get(s, s)) for s in present]
    ax.add_artist(ax.legend(handles=handles, loc="lower left", fontsize=7, frameon=False, ncols=len(handles)))


def fig_tone(data: CallData, hot: pd.DataFrame) -> Figure:
    """Voice tone per speaker over the call: segments (dots), smoothed trajectory (line), hotspots."""
    spans = section_spans(data.segments)
    order = _speaker_order(data)
    colors = _speaker_colors(order)
    k, xlabel = data.time_unit
    fig = new_figure(10, 3.8)
    ax = fig.add_subplot()
    _shade(ax, spans, k)
    tr = data.trajectories
    for spk in order:
        g = tr[tr["speaker"] == spk].sort_values("t_s")
        if g.empty:
            continue
        ax.scatter(g["t_s"] / k, g["tone"], s=7, color=colors[spk], alpha=0.3, lw=0)
        for i, run in enumerate(_runs(g["t_s"].to_numpy(), MAX_GAP_S)):
            ax.plot(g["t_s"].iloc[run] / k, g["tone_smooth"].iloc[run], color=colors[spk], lw=1.8,
                    marker="_" if run.stop - run.start == 1 else None, label=None if i else _speaker_label(data, spk))
    if len(hot):
        ax.scatter(hot["t_s"] / k, np.full(len(hot), 1.04), marker="v", s=22, color="#8b0000", clip_on=False,
                   label="attention hotspot", zorder=5)
    ax.axhline(0, color="#555555", lw=0.6)
    ax.set(xlim=(0, data.end_s / k), ylim=(-1.05, 1.1), xlabel=xlabel, ylabel="voice tone (pos − neg) / (pos + neg)")
    _section_legend(ax, spans)
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1), fontsize=7, frameon=False)
    return to_figure(fig, "fig-tone", "Voice tone by speaker",
                     f"Segment tone (dots) and its smoothed trajectory (lines; Gaussian kernel, {SMOOTH_BANDWIDTH_S:.0f} s, "
                     f"column tone_smooth) for each speaker; shading marks the prepared remarks and the Q&A; "
                     f"triangles mark attention hotspots. Operators are left out. Model {data.model_id}.")


def fig_probs(data: CallData) -> Figure:
    """Smoothed class probabilities per speaker (the speakers with the most talk time)."""
    from ser_models.features import kernel_smooth

    spans = section_spans(data.segments)
    order = [s for s in _speaker_order(data) if (data.trajectories["speaker"] == s).any()]
    shown, rest = order[:MAX_PANELS], order[MAX_PANELS:]
    fig = new_figure(10, 0.6 + 1.45 * max(1, len(shown)))
    axes = fig.subplots(max(1, len(shown)), 1, sharex=True, squeeze=False)[:, 0]
    dur = dict(zip(data.segments["segment_id"], data.segments["end_s"] - data.segments["start_s"]))
    cols = [f"p_{lab}" for lab in data.labels]
    k, xlabel = data.time_unit
    for ax, spk in zip(axes, shown):
        g = data.trajectories[data.trajectories["speaker"] == spk].sort_values("t_s")
        w = g["segment_id"].map(dur).fillna(1.0).to_numpy()
        sm = np.vstack([kernel_smooth(g["t_s"], g[c], w, SMOOTH_BANDWIDTH_S) for c in cols])   # (C, N)
        sm = sm / np.where(sm.sum(0) > 0, sm.sum(0), 1.0)
        t, half = g["t_s"].to_numpy(), w / 2
        for i, run in enumerate(_runs(t, MAX_GAP_S)):
            # from the start of the run's first segment to the end of its last one
            tt = np.r_[t[run][0] - half[run][0], t[run], t[run][-1] + half[run][-1]] / k
            pp = np.c_[sm[:, run][:, :1], sm[:, run], sm[:, run][:, -1:]]
            ax.stackplot(tt, pp, colors=[CLASS_COLORS.get(lab, None) for lab in data.labels],
                         labels=data.labels if i == 0 else (), alpha=0.95, lw=0)
        _shade(ax, spans, k)
        ax.set(ylim=(0, 1), xlim=(0, data.end_s / k), ylabel="p")
        ax.set_title(_speaker_label(data, spk), fontsize=8, loc="left")
    axes[0].legend(loc="lower left", bbox_to_anchor=(0, 1.12), ncols=len(data.labels), fontsize=7, frameon=False)
    axes[-1].set_xlabel(xlabel)
    more = f" Not shown (less talk time): {', '.join(_speaker_label(data, s) for s in rest)}." if rest else ""
    return to_figure(fig, "fig-probs", "Emotion class probabilities by speaker",
                     f"Class probabilities of model {data.model_id} over each speaker's segments, smoothed with the "
                     f"same {SMOOTH_BANDWIDTH_S:.0f} s Gaussian kernel (weights = segment duration) and stacked; "
                     f"background shading marks the call's sections.{more}")


def fig_text_voice(data: CallData) -> Figure:
    """Text (Loughran-McDonald) tone beside voice tone: over the call, and per segment."""
    from ser_models.features import kernel_smooth

    sc = data.scored.sort_values("t_s")
    spans = section_spans(data.segments)
    k, xlabel = data.time_unit
    fig = new_figure(10, 3.4)
    a, b = fig.subplots(1, 2, width_ratios=[2.2, 1])
    _shade(a, spans, k)
    t, w = sc["t_s"].to_numpy(), sc["duration_s"].to_numpy()
    a.plot(t / k, kernel_smooth(t, sc["tone"], w, TEXT_BANDWIDTH_S), color="#1f4e8c", lw=1.8, label="voice tone")
    if sc["lm_text_tone"].notna().any():
        a.plot(t / k, kernel_smooth(t, sc["lm_text_tone"], w, TEXT_BANDWIDTH_S), color="#c0392b", lw=1.8,
               ls="--", label="text tone (Loughran-McDonald)")
    a.axhline(0, color="#555555", lw=0.6)
    a.set(ylim=(-1.05, 1.05), xlabel=xlabel, ylabel="tone", xlim=(0, data.end_s / k))
    a.legend(loc="upper right", fontsize=7, frameon=False)
    ok = sc[sc["lm_text_tone"].notna()]
    roles = sorted(ok["role"].unique())
    colors = _speaker_colors(roles)
    for role in roles:
        g = ok[ok["role"] == role]
        b.scatter(g["lm_text_tone"], g["tone"], s=9, alpha=0.6, lw=0, color=colors[role], label=role)
    b.plot([-1, 1], [-1, 1], color="#999999", lw=0.7, ls=":")
    b.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), xlabel="text tone (segment)", ylabel="voice tone (segment)")
    if roles:
        b.legend(fontsize=7, frameon=False, loc="lower right")
    return to_figure(fig, "fig-text-voice", "Over the call and per segment",
                     f"Left: voice tone and Loughran-McDonald dictionary tone of the non-operator segments, each "
                     f"smoothed with a {TEXT_BANDWIDTH_S:.0f} s Gaussian kernel (segments without positive or negative "
                     f"dictionary words are left out of the text line). Right: one dot per segment with such words "
                     f"({len(ok)} of {len(sc)} scored segments).")


# -- context -----------------------------------------------------------------------------------------


def card_rows(card: dict | None) -> list[tuple[str, str]]:
    if not card:
        return []
    corpus = card.get("corpus", {})
    metrics = card.get("metrics", {}) or {}
    fit = {k: v for k, v in (metrics.get("train_fit") or {}).items()}
    cv = metrics.get("cv")
    rows = [("model id", card.get("model_id", "")), ("name", card.get("name", "")),
            ("labels", ", ".join(card.get("labels", []))),
            ("encoders", ", ".join(f"{k}: {v}" for k, v in (card.get("encoders") or {}).items())),
            ("pooling / fusion", f"{card.get('pooling', '')} / {card.get('fusion', '')}"),
            ("training corpus", f"{corpus.get('name', '')}: {corpus.get('n_examples', '')} examples, "
                                f"{len(corpus.get('speakers', []))} speakers"),
            ("cross-validation", json.dumps(cv) if cv else "not recorded in the card"),
            ("fit on training data", ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                               for k, v in fit.items()) or "–"),
            ("hotspot threshold", str(card.get("calibration", {}).get("hotspot_threshold", "–"))),
            ("weights sha256", card.get("weights_sha256", "")), ("git commit", card.get("git_commit", "")),
            ("created", card.get("created_at", ""))]
    return [(k, str(v)) for k, v in rows]


def call_context(data: CallData) -> dict:
    c = data.call
    hot, thr = hotspots(data)
    neg, pos = extremes(data)
    grid, rest = feature_tables(data.features)
    scored = not data.emotions.empty and not data.scored.empty
    figures = [fig_tone(data, hot), fig_probs(data), fig_text_voice(data)] if scored and len(data.trajectories) else []
    n_skipped = int((data.emotions["skip_reason"].fillna("") != "").sum()) if len(data.emotions) else 0
    when = pd.Timestamp(c["event_time"]).strftime("%Y-%m-%d %H:%M UTC") if c.get("event_time") is not None else ""
    meta = [("call id", c["call_id"]), ("event type", c["event_type"]), ("entity", c["entity"]), ("event time", when),
            ("duration", clock(c["duration_s"])), ("language", c["language"]), ("source", c["source_uri"]),
            ("processed", pd.Timestamp(c["processed_at"]).strftime("%Y-%m-%d %H:%M UTC") if c.get("processed_at") else ""),
            ("pipeline version / profile", f"{c['pipeline_version']} / {c['profile']}"),
            ("SER model", data.model_id or "not scored"),
            ("segments", f"{len(data.segments)} ({len(data.emotions) - n_skipped} scored, {n_skipped} skipped)"
                         if len(data.emotions) else str(len(data.segments)))]
    if data.other_models:
        meta.append(("other SER models in the catalog", ", ".join(data.other_models)))
    card = data.card or {}
    licence = (card.get("corpus") or {}).get("licence", "")
    return {
        "title": c.get("title") or f"{c['entity']} {c['event_type'].replace('_', ' ')}, {when[:10]}",
        "call": c, "meta": meta, "speakers": speaker_rows(data), "scored": scored, "figures": {f.id: f for f in figures},
        "negative": segment_rows(neg, data), "positive": segment_rows(pos, data),
        "hotspots": segment_rows(hot.head(MAX_HOTSPOTS), data, max_chars=140), "n_hot": len(hot), "hotspot_threshold": thr,
        "n_hotspots": data.features.get("n_hotspots"), "feature_grid": grid, "features": rest,
        "model_id": data.model_id, "card": card_rows(data.card), "card_path": data.card_path,
        "licence": licence, "card_note": card.get("note", ""), "noncommercial": bool(card.get("noncommercial")),
        "labels": data.labels, "n_extremes": N_EXTREMES, "max_hotspots": MAX_HOTSPOTS,
        "call_tone": data.features.get("call_tone"), "call_lm_tone": data.features.get("lm_tone"),
    }
