"""The research designs through the catalog: the catalog-wide baseline step, and study
features aggregated from qa_pairs, each against an independent pandas computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_catalog import TABLES
from data_catalog.store import Catalog
from finance.errors import SpecError
from finance.studies import SPEC_DIR, load_spec, qa_features
from pipelines.baselines import update_baselines
from test_finance_study import add_calls

T0 = pd.Timestamp("2016-01-20 21:00", tz="UTC")


def _write_call(cat: Catalog, cid: str, when: pd.Timestamp, people: list[tuple[str, str, str, str]], rng) -> None:
    """people: (speaker, role, name, voice_id); 6 segments each, random tones; the calls part last."""
    seg, emo = [], []
    t = 0.0
    for k in range(6):
        for spk, _, _, _ in people:
            d = float(rng.uniform(1, 10))
            sid = len(seg)
            seg.append({"call_id": cid, "segment_id": sid, "speaker": spk, "start_s": t, "end_s": t + d,
                        "section": "prepared" if k < 2 else "qa", "text": "x", "asr_confidence": 1.0})
            emo.append({"call_id": cid, "segment_id": sid, "model_id": "ser-test", "tone": float(rng.uniform(-1, 1)),
                        "text_tone": float(rng.uniform(-1, 1)), "fused_tone": float(rng.uniform(-1, 1)),
                        "skip_reason": ""})
            t += d
    emo = pd.DataFrame(emo)
    cat.write("segments", cid, pd.DataFrame(seg))
    cat.write("emotions", cid, emo.assign(**{c: None for c in TABLES["emotions"].columns if c not in emo}))
    cat.write("speakers", cid, pd.DataFrame([{"call_id": cid, "speaker": s, "role": r, "name": n, "voice_id": v,
                                              "talk_time_s": 1.0, "n_segments": 6} for s, r, n, v in people]))
    feats = {c: np.nan for c in ("chair_qa_tone",)}
    add_calls(cat, [(cid, "earnings_call", "ACME", when)], {cid: feats})


def _independent(cat: Catalog) -> pd.DataFrame:
    """Per (call, person): duration-weighted voice tone, then mean/sd of the person's strictly earlier
    calls within 1095 days (last 8), z-score; written as a plain loop."""
    seg = cat.read("segments").to_pandas().merge(cat.read("emotions").to_pandas(), on=["call_id", "segment_id"])
    spk = cat.read("speakers").to_pandas()
    calls = cat.read("calls").to_pandas()
    seg = seg.merge(spk, on=["call_id", "speaker"]).merge(calls[["call_id", "event_time"]], on="call_id")
    seg = seg[seg["role"] != "operator"]
    seg["pid"] = np.where(seg["name"] != "", "name:" + seg["name"].str.lower(), "voice:" + seg["voice_id"])
    seg["w"] = seg["end_s"] - seg["start_s"]
    rows = []
    for (cid, pid), g in seg.groupby(["call_id", "pid"]):
        rows.append({"call_id": cid, "person_id": pid, "role": g["role"].iloc[0], "t": g["event_time"].iloc[0],
                     "tone": float((g["w"] * g["tone"]).sum() / g["w"].sum()), "talk": float(g["w"].sum())})
    per = pd.DataFrame(rows)
    z = []
    for r in per.itertuples():
        prior = per[(per["person_id"] == r.person_id) & (per["t"] < r.t) & (per["t"] >= r.t - pd.Timedelta(days=1095))]
        prior = prior.sort_values("t").tail(8)
        z.append((r.tone - prior["tone"].mean()) / prior["tone"].std(ddof=1) if len(prior) >= 2 else np.nan)
    return per.assign(z=z)


def test_baseline_step_writes_speaker_baselines_and_call_features(tmp_path):
    cat = Catalog(tmp_path / "catalog")
    rng = np.random.default_rng(7)
    people = [("SPEAKER_00", "executive", "Jane Doe", "vj"), ("SPEAKER_01", "executive", "", "vcfo"),
              ("SPEAKER_02", "analyst", "", "va"), ("SPEAKER_03", "operator", "", "vo")]
    for q in range(5):
        _write_call(cat, f"c{q}", T0 + pd.Timedelta(days=91 * q), people, rng)
    first = update_baselines(cat)
    assert first.calls == 5 and first.persons == 3
    got = cat.read("speaker_baselines").to_pandas()
    want = _independent(cat)
    m = want.merge(got, on=["call_id", "person_id"], validate="1:1")
    assert len(m) == len(want) == 15
    np.testing.assert_allclose(m["voice_tone"], m["tone"], rtol=1e-12)
    np.testing.assert_allclose(m["abnormal_voice_tone"].fillna(99), m["z"].fillna(99), rtol=1e-10)
    assert set(m.loc[m["call_id"] == "c0", "baseline_status"]) == {"first_call"}
    assert set(m.loc[m["call_id"] == "c1", "baseline_status"]) == {"too_few_calls"}
    feats = cat.read("call_features").to_pandas().set_index("call_id")
    for cid, g in m.groupby("call_id"):
        ex = g[(g["role_x"] == "executive") & g["z"].notna()]
        want_exec = np.average(ex["z"], weights=ex["talk"]) if len(ex) else np.nan
        assert feats.loc[cid, "executive_abnormal_tone"] == pytest.approx(want_exec, nan_ok=True, rel=1e-10)
        an = g[(g["role_x"] == "analyst") & g["z"].notna()]
        assert feats.loc[cid, "analyst_abnormal_tone"] == pytest.approx(an["z"].mean() if len(an) else np.nan,
                                                                        nan_ok=True, rel=1e-10)
    assert update_baselines(cat).parts_written == 0          # nothing changed: nothing rewritten
    # a call inserted in the past changes the baselines of the same people's later calls
    _write_call(cat, "c_early", T0 - pd.Timedelta(days=91), people, rng)
    again = update_baselines(cat)
    assert again.parts_written > 0
    got = cat.read("speaker_baselines").to_pandas()
    assert set(got.loc[got["call_id"] == "c1", "baseline_status"]) == {"ok"}


QA_COLUMNS = TABLES["qa_pairs"].columns


def _pairs(cid: str, rows: list[dict]) -> pd.DataFrame:
    base = {c: None for c in QA_COLUMNS}
    return pd.DataFrame([base | {"call_id": cid, "model_id": "m1", "pair_id": i, "n_answerers": 1, "answer_words": 10,
                                 "answered": True, "non_answer": False, "status": "answered"} | r
                         for i, r in enumerate(rows)])


def test_study_features_from_qa_pairs(tmp_path):
    cat = Catalog(tmp_path / "catalog")
    rng = np.random.default_rng(3)
    ids = [f"c{i}" for i in range(4)]
    for i, cid in enumerate(ids):
        n = 0 if i == 3 else 5 + i        # the last call has no questions
        rows = [{"answerer_role": "chair" if k % 3 else "executive", "q_fused_tone": float(rng.uniform(-1, 1)),
                 "a_fused_tone": float(rng.uniform(-1, 1)), "non_answer": bool(k % 2)} for k in range(n)]
        cat.write("qa_pairs", cid, _pairs(cid, rows) if rows else TABLES["qa_pairs"].schema.empty_table())
        add_calls(cat, [(cid, "press_conference", "FOMC", T0 + pd.Timedelta(days=i))], {cid: {}})
    spec = load_spec(SPEC_DIR / "research_designs.toml")
    got = qa_features(spec, cat, pd.Series(ids)).set_index("call_id")
    pairs = cat.read("qa_pairs").to_pandas()
    for cid in ids:
        p = pairs[(pairs["call_id"] == cid) & (pairs["answerer_role"] == "chair")]
        if p.empty:
            assert np.isnan(got.loc[cid, "chair_answer_tone_negative_q"]) and np.isnan(got.loc[cid, "chair_non_answer_share"])
            continue
        k = max(1, int(np.floor(0.34 * len(p))))
        want = p.nsmallest(k, "q_fused_tone")["a_fused_tone"].mean()
        assert got.loc[cid, "chair_answer_tone_negative_q"] == pytest.approx(want, rel=1e-12)
        assert got.loc[cid, "chair_non_answer_share"] == pytest.approx(p["non_answer"].mean(), rel=1e-12)


def test_bad_qa_feature_specs(tmp_path):
    text = (SPEC_DIR / "research_designs.toml").read_text()
    with pytest.raises(SpecError, match="agg 'avg'"):
        load_spec(_toml(tmp_path, text.replace('agg = "mean"', 'agg = "avg"')))
    with pytest.raises(SpecError, match="share 0"):
        load_spec(_toml(tmp_path, text.replace("share = 0.34", "share = 0")))
    cat = Catalog(tmp_path / "catalog")
    spec = load_spec(_toml(tmp_path, text.replace('value = "a_fused_tone"', 'value = "answer_mood"')))
    with pytest.raises(SpecError, match="'answer_mood' is not a qa_pairs column"):
        qa_features(spec, cat, pd.Series(["c0"]))


def _toml(tmp_path, text: str):
    p = tmp_path / "spec.toml"
    p.write_text(text)
    return p
