"""Per-person tone baselines, checked against an independent loop over a seeded synthetic catalog."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from ser_models.people import BaselineConfig, BaselineStatus, baselines, call_abnormal, person_id, person_tones

MEASURES = ("voice", "text", "fused")
NAN = np.nan
T0 = pd.Timestamp("2019-01-15 13:00", tz="UTC")


# --------------------------------------------------------------------------- synthetic catalog

@dataclass
class Person:
    role: str
    variants: tuple[str, ...]          # spellings of the name in transcripts ('' : no name)
    voice_id: str
    expected_id: str                   # written by hand ('' : anonymous, call-local)


@dataclass
class Catalog:
    segments: list = field(default_factory=list)
    emotions: list = field(default_factory=list)
    speakers: list = field(default_factory=list)
    calls: list = field(default_factory=list)
    truth: dict = field(default_factory=dict)   # (call_id, person_id) -> dict(role, time, segs=[(w, v, t, f)])


def people() -> dict[str, list[Person]]:
    analysts = [Person("analyst", ("Sean O'Brien", "SEAN O\u2019BRIEN", "sean  obrien"), "", "name:sean obrien"),
                Person("analyst", ("", ), "va1", "voice:va1"),
                Person("analyst", ("Mia Chen", "Mia Chen."), "va2", "name:mia chen"),
                Person("analyst", ("",), "", "")]
    return {
        "ACME": [Person("executive", ("Jane Doe", " JANE  DOE ", "jane doe"), "vj", "name:jane doe"),
                 Person("executive", ("",), "vx1", "voice:vx1"),
                 Person("executive", ("Raj Patel", "Raj Patel,"), "", "name:raj patel"), *analysts],
        "BOLT": [Person("executive", ("Luis Gomez", "Luis  Gomez"), "vl", "name:luis gomez"),
                 Person("executive", ("",), "vx2", "voice:vx2"), *analysts],
        "CBANK": [Person("chair", ("Ada King", "ADA KING"), "vc", "name:ada king"),
                  Person("journalist", ("Tom Hall",), "", "name:tom hall"),
                  Person("journalist", ("",), "vjt", "voice:vjt")],
    }


def event_time(firm: str, quarter: int) -> pd.Timestamp:
    """ACME and BOLT share the timestamp in even quarters (shared analysts: same-time calls)."""
    offset = {"ACME": 0, "BOLT": 0 if quarter % 2 == 0 else 3, "CBANK": 30}[firm]
    return T0 + pd.Timedelta(days=91 * quarter + offset, hours=quarter % 5)


def add_speaker(cat: Catalog, rng: np.random.Generator, call_id: str, speaker: str, p: Person, clock: list) -> None:
    name = p.variants[rng.integers(len(p.variants))]
    cat.speakers.append((call_id, speaker, p.role, name, p.voice_id))
    pid = p.expected_id or f"call:{call_id}:{speaker}"
    truth = cat.truth.setdefault((call_id, pid), {"role": p.role, "segs": []})
    no_text = rng.random() < 0.2                              # e.g. no transcript for this speaker
    for _ in range(rng.integers(1, 4)):
        seg_id = len(cat.segments)
        w = float(rng.uniform(3, 60))
        cat.segments.append((call_id, seg_id, speaker, clock[0], clock[0] + w))
        clock[0] += w + 0.5
        if rng.random() < 0.12:
            cat.emotions.append((call_id, seg_id, NAN, NAN, NAN, "too_short"))
            continue
        if rng.random() < 0.04:
            continue                                      # no emotions row at all
        v, t, f = (float(x) for x in rng.uniform(-1, 1, 3))
        t = NAN if no_text or rng.random() < 0.2 else t
        f = NAN if rng.random() < 0.1 else f
        cat.emotions.append((call_id, seg_id, v, t, f, ""))
        truth["segs"].append((w, v, t, f))


def catalog(seed: int = 7) -> Catalog:
    rng = np.random.default_rng(seed)
    cat = Catalog()
    for firm, pool in people().items():
        for q in range(12):
            call_id = f"{firm}-q{q:02d}"
            cat.calls.append((call_id, event_time(firm, q), firm))
            clock = [0.0]
            cat.speakers.append((call_id, "SPK_OP", "operator", "Operator", ""))
            cat.segments.append((call_id, len(cat.segments), "SPK_OP", 0.0, 5.0))
            cat.emotions.append((call_id, cat.segments[-1][1], 0.5, 0.5, 0.5, ""))
            chosen = rng.choice(len(pool), size=rng.integers(2, min(4, len(pool)) + 1), replace=False)
            for k, i in enumerate(sorted(chosen)):
                add_speaker(cat, rng, call_id, f"SPK_{k}", pool[i], clock)
                if pool[i].expected_id.startswith("name:") and rng.random() < 0.15:
                    add_speaker(cat, rng, call_id, f"SPK_{k}b", pool[i], clock)   # diarization split
    return cat


def frames(cat: Catalog) -> tuple[pd.DataFrame, ...]:
    return (pd.DataFrame(cat.segments, columns=["call_id", "segment_id", "speaker", "start_s", "end_s"]),
            pd.DataFrame(cat.emotions, columns=["call_id", "segment_id", "tone", "text_tone", "fused_tone",
                                                "skip_reason"]),
            pd.DataFrame(cat.speakers, columns=["call_id", "speaker", "role", "name", "voice_id"]),
            pd.DataFrame(cat.calls, columns=["call_id", "event_time", "entity"]))


# --------------------------------------------------------------------------- independent computations

def expected_tones(cat: Catalog) -> list[dict]:
    times = {c: t for c, t, _ in cat.calls}
    rows = []
    for (call_id, pid), info in cat.truth.items():
        row = {"call_id": call_id, "person_id": pid, "role": info["role"], "event_time": times[call_id],
               "talk_s": sum(s[0] for s in info["segs"])}
        for j, m in enumerate(MEASURES, start=1):
            pairs = [(s[0], s[j]) for s in info["segs"] if not math.isnan(s[j])]
            den = sum(w for w, _ in pairs)
            row[f"{m}_tone"] = sum(w * x for w, x in pairs) / den if den > 0 else NAN
        rows.append(row)
    return rows


def expected_baseline(rows: list[dict], row: dict, measure: str, cfg: BaselineConfig) -> dict:
    earlier = []
    for other in rows:
        if other["person_id"] != row["person_id"] or math.isnan(other[f"{measure}_tone"]):
            continue
        age = row["event_time"] - other["event_time"]
        if pd.Timedelta(0) < age <= pd.Timedelta(days=cfg.window_days):
            earlier.append(other)
    earlier.sort(key=lambda o: (o["event_time"], o["call_id"]))
    values = [o[f"{measure}_tone"] for o in earlier][-cfg.max_calls:] if earlier else []
    mean = statistics.fmean(values) if values else NAN
    sd = statistics.stdev(values) if len(values) >= 2 else NAN
    if not values:
        status = "first_call"
    elif len(values) < cfg.min_prior_calls:
        status = "too_few_calls"
    elif math.isnan(sd) or sd == 0:
        status = "zero_spread"
    else:
        status = "ok"
    z = (row[f"{measure}_tone"] - mean) / sd if status == "ok" else NAN
    return {"n": len(values), "mean": mean, "sd": sd, "z": z, "status": status}


OUT = {"voice": ("n_prior_calls", "voice_base_mean", "voice_base_sd", "abnormal_voice_tone", "baseline_status"),
       "text": ("n_prior_text_calls", "text_base_mean", "text_base_sd", "abnormal_text_tone", "text_baseline_status"),
       "fused": ("n_prior_fused_calls", "fused_base_mean", "fused_base_sd", "abnormal_fused_tone",
                 "fused_baseline_status")}


# --------------------------------------------------------------------------- tests on the catalog

@pytest.fixture(scope="module")
def cat() -> Catalog:
    return catalog()


@pytest.fixture(scope="module")
def tones(cat) -> pd.DataFrame:
    return person_tones(*frames(cat))


def test_person_tones_match_independent_computation(cat, tones):
    exp = pd.DataFrame(expected_tones(cat)).sort_values(["call_id", "person_id"]).reset_index(drop=True)
    got = tones.sort_values(["call_id", "person_id"]).reset_index(drop=True)
    assert got[["call_id", "person_id", "role"]].equals(exp[["call_id", "person_id", "role"]].astype(object))
    assert (got["event_time"] == exp["event_time"]).all()
    for c in ["talk_s", "voice_tone", "text_tone", "fused_tone"]:
        np.testing.assert_allclose(got[c], exp[c], rtol=1e-12, err_msg=c)
    assert not got["person_id"].str.contains("SPK_OP").any() and "operator" not in set(got["role"])
    assert (got.loc[got["person_id"].str.startswith("call:"), "name"] == "").all()
    # diarization splits happened and were pooled into one row
    assert got["speaker"].str.contains("|", regex=False).any()
    # the shared analyst is linked across firms and spellings
    assert got.loc[got["person_id"] == "name:sean obrien", "call_id"].str[:4].nunique() == 2


@pytest.mark.parametrize("cfg", [BaselineConfig(), BaselineConfig(window_days=400, max_calls=3),
                                 BaselineConfig(min_prior_calls=4, max_calls=5)],
                         ids=["default", "short-window", "strict"])
def test_baselines_match_independent_loop(cat, tones, cfg):
    rows = expected_tones(cat)
    got = baselines(tones, cfg)
    assert len(got) == len(tones)
    assert got[["call_id", "person_id"]].equals(tones[["call_id", "person_id"]])      # row order kept
    got = got.set_index(["call_id", "person_id"])
    for m, (n_col, mean_col, sd_col, z_col, status_col) in OUT.items():
        exp = pd.DataFrame([{"call_id": r["call_id"], "person_id": r["person_id"], **expected_baseline(rows, r, m, cfg)}
                            for r in rows]).set_index(["call_id", "person_id"]).loc[got.index]
        assert got[n_col].tolist() == exp["n"].tolist(), m
        assert got[status_col].tolist() == exp["status"].tolist(), m
        for g, e in ((mean_col, "mean"), (sd_col, "sd"), (z_col, "z")):
            np.testing.assert_allclose(got[g], exp[e], rtol=1e-12, atol=1e-12, err_msg=g)
    assert {"first_call", "too_few_calls", "ok"} <= set(got["baseline_status"])
    assert got["abnormal_voice_tone"].notna().sum() > 20
    assert (got["baseline_status"] != got["text_baseline_status"]).any()     # NaN text tones change the counts


def test_call_abnormal_on_catalog_matches_loop(tones):
    b = baselines(tones)
    out = call_abnormal(b).set_index("call_id")
    assert sorted(out.index) == sorted(tones["call_id"].unique())
    for call_id, g in b.groupby("call_id"):
        ex = g[(g["role"] == "executive") & g["abnormal_voice_tone"].notna()]
        want = (ex["abnormal_voice_tone"] * ex["talk_s"]).sum() / ex["talk_s"].sum() if len(ex) else NAN
        np.testing.assert_allclose(out.at[call_id, "executive_abnormal_tone"], want, rtol=1e-12)


# --------------------------------------------------------------------------- small hand-built cases

def tone_frame(rows: list[tuple]) -> pd.DataFrame:
    """rows: (call_id, person_id, role, day, talk_s, voice, text, fused)"""
    df = pd.DataFrame(rows, columns=["call_id", "person_id", "role", "day", "talk_s", "voice_tone", "text_tone",
                                     "fused_tone"])
    df["event_time"] = T0 + pd.to_timedelta(df.pop("day"), unit="D")
    return df


def test_first_call_too_few_and_zero_spread():
    df = tone_frame([("c1", "p", "executive", 0, 10, 0.2, 0.1, 0.3),
                     ("c2", "p", "executive", 90, 10, 0.4, 0.1, 0.3),
                     ("c3", "p", "executive", 180, 10, 0.6, 0.1, 0.3),
                     ("c4", "p", "executive", 270, 10, 0.9, 0.1, 0.5)]).sample(frac=1.0, random_state=1)
    b = baselines(df).set_index("call_id").sort_index()
    first = b.loc["c1"]
    assert (first.baseline_status, first.n_prior_calls) == (BaselineStatus.FIRST_CALL.value, 0)
    assert first[["voice_base_mean", "voice_base_sd", "abnormal_voice_tone", "text_base_mean",
                  "abnormal_fused_tone"]].isna().all()
    second = b.loc["c2"]
    assert (second.baseline_status, second.n_prior_calls, second.voice_base_mean) == ("too_few_calls", 1, 0.2)
    assert np.isnan(second.voice_base_sd) and np.isnan(second.abnormal_voice_tone)
    fourth = b.loc["c4"]
    assert fourth.baseline_status == "ok"
    assert fourth.voice_base_mean == pytest.approx(0.4) and fourth.voice_base_sd == pytest.approx(0.2)
    assert fourth.abnormal_voice_tone == pytest.approx((0.9 - 0.4) / 0.2)
    # identical prior text and fused tones: zero spread, mean kept, no z
    assert (fourth.text_baseline_status, fourth.text_base_sd, fourth.text_base_mean) == ("zero_spread", 0.0, 0.1)
    assert np.isnan(fourth.abnormal_text_tone) and fourth.fused_baseline_status == "zero_spread"


def test_same_timestamp_calls_are_not_each_others_prior():
    df = tone_frame([("a0", "p", "analyst", 0, 5, 0.1, NAN, NAN), ("a1", "p", "analyst", 50, 5, 0.3, NAN, NAN),
                     ("x", "p", "analyst", 100, 5, 0.9, NAN, NAN), ("y", "p", "analyst", 100, 5, -0.9, NAN, NAN)])
    b = baselines(df).set_index("call_id")
    for c in ("x", "y"):
        assert (b.at[c, "n_prior_calls"], b.at[c, "baseline_status"]) == (2, "ok")
        assert b.at[c, "voice_base_mean"] == pytest.approx(0.2)
    assert b.at["x", "abnormal_voice_tone"] == pytest.approx((0.9 - 0.2) / np.std([0.1, 0.3], ddof=1))
    assert (b["text_baseline_status"] == "first_call").all()      # NaN text tones are never prior calls


def test_window_cut_off_max_calls_and_nan_priors():
    days = [0, 205, 300, 600, 1300]                   # 1300 - 1095 = 205: inclusive
    df = tone_frame([(f"c{d}", "p", "executive", d, 5, 0.1 * i, 0.1 * i if d != 300 else NAN, NAN)
                     for i, d in enumerate(days)])
    b = baselines(df).set_index("call_id")
    assert b.at["c1300", "n_prior_calls"] == 3                    # c205, c300, c600
    assert b.at["c1300", "voice_base_mean"] == pytest.approx(0.2)
    assert b.at["c1300", "n_prior_text_calls"] == 2               # c300 has no text tone
    assert b.at["c1300", "text_base_mean"] == pytest.approx((0.1 + 0.3) / 2)
    short = baselines(df, BaselineConfig(window_days=1094)).set_index("call_id")
    assert short.at["c1300", "n_prior_calls"] == 2
    last2 = baselines(df, BaselineConfig(max_calls=2)).set_index("call_id")
    assert last2.at["c1300", "voice_base_mean"] == pytest.approx((0.2 + 0.3) / 2)
    many = tone_frame([(f"c{d}", "p", "executive", d, 5, float(d % 7), NAN, NAN) for d in range(0, 110, 10)])
    b = baselines(many).set_index("call_id")
    assert b.at["c100", "n_prior_calls"] == 8
    assert b.at["c100", "voice_base_mean"] == pytest.approx(np.mean([d % 7 for d in range(20, 100, 10)]))


def test_duplicate_rows_rejected_and_config_checked():
    df = tone_frame([("c1", "p", "executive", 0, 5, 0.1, 0.1, 0.1)] * 2)
    with pytest.raises(ValueError):
        baselines(df)
    with pytest.raises(ValueError):
        BaselineConfig(min_prior_calls=9, max_calls=8)


def test_person_ids_and_pooled_speakers():
    assert person_id("c", "S1", " Dr. Jane  O\u2019Neil ", "v") == "name:dr jane oneil"
    assert person_id("c", "S1", "", "v9") == "voice:v9"
    assert person_id("c", "S1", None, None) == "call:c:S1"
    seg = pd.DataFrame([("c", 0, "S1", 0.0, 10.0), ("c", 1, "S2", 10.0, 40.0), ("c", 2, "S3", 40.0, 45.0),
                        ("c", 3, "OP", 45.0, 50.0)], columns=["call_id", "segment_id", "speaker", "start_s", "end_s"])
    emo = pd.DataFrame([("c", 0, 0.2, 0.0, 1.0, ""), ("c", 1, 0.6, NAN, 0.0, ""), ("c", 2, NAN, NAN, NAN, "silent"),
                        ("c", 3, 0.9, 0.9, 0.9, "")],
                       columns=["call_id", "segment_id", "tone", "text_tone", "fused_tone", "skip_reason"])
    spk = pd.DataFrame([("c", "S1", "executive", "Jane Doe", "v1"), ("c", "S2", "executive", "jane doe.", "v2"),
                        ("c", "S3", "analyst", "", ""), ("c", "OP", "operator", "", "")],
                       columns=["call_id", "speaker", "role", "name", "voice_id"])
    calls = pd.DataFrame({"call_id": ["c"], "event_time": [T0], "entity": ["ACME"]})
    t = person_tones(seg, emo, spk, calls).set_index("person_id")
    assert sorted(t.index) == ["call:c:S3", "name:jane doe"]
    jane = t.loc["name:jane doe"]
    assert (jane["speaker"], jane["voice_id"], jane["name"], jane["talk_s"]) == ("S1|S2", "v2", "jane doe.", 40.0)
    assert (jane.voice_tone, jane.text_tone, jane.fused_tone) == pytest.approx(((2 + 18) / 40, 0.0, 10 / 40))
    anon = t.loc["call:c:S3"]
    assert anon.talk_s == 0.0 and np.isnan(anon.voice_tone)
    assert str(t["event_time"].dtype) == "datetime64[ns, UTC]"


def test_call_abnormal_hand_computed():
    b = pd.DataFrame({
        "call_id": ["c1"] * 5 + ["c2"],
        "role": ["executive", "executive", "analyst", "chair", "executive", "executive"],
        "talk_s": [30.0, 10.0, 5.0, 20.0, 0.0, 8.0],
        "abnormal_voice_tone": [1.0, -1.0, 2.0, NAN, 5.0, NAN],
        "abnormal_text_tone": [NAN, 0.5, NAN, -0.4, NAN, NAN],
        "abnormal_fused_tone": [NAN] * 6})
    out = call_abnormal(b).set_index("call_id")
    assert list(out.columns) == ["executive_abnormal_tone", "executive_abnormal_text_tone", "chair_abnormal_tone",
                                 "chair_abnormal_text_tone", "analyst_abnormal_tone", "n_persons_with_baseline"]
    c1 = out.loc["c1"]
    assert c1.executive_abnormal_tone == pytest.approx((30 * 1.0 + 10 * -1.0) / 40)   # talk_s 0 left out
    assert c1.executive_abnormal_text_tone == pytest.approx(0.5)
    assert np.isnan(c1.chair_abnormal_tone) and c1.chair_abnormal_text_tone == pytest.approx(-0.4)
    assert c1.analyst_abnormal_tone == pytest.approx(2.0)
    assert c1.n_persons_with_baseline == 5
    assert out.loc["c2"].drop("n_persons_with_baseline").isna().all() and out.at["c2", "n_persons_with_baseline"] == 0
