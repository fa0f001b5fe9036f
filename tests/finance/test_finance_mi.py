"""Measurement error of the emotion regressors: Rubin's rules, the imputation sampler on a
simulation with a known truth, the features built from segment posteriors, and the study,
CLI and bad-input paths."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from data_catalog import TABLES
from data_catalog.store import Catalog
from finance.errors import RegressionError, SpecError
from finance.measurement import MIConfig, SegmentEvidence, impute, mi_regression, rubin
from finance.mi_simulation import confusion, simulate
from finance.studies import SPEC_DIR, run_study
from pipelines.cli import study as cli_study
from pipelines.study_inputs import CatalogEvidence
from ser_models.call_tone import TONE_FEATURES, tone_evidence
from test_finance_study import FOMC, add_calls

LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
VALENCE = np.array([0, 0, 1, -1, -1, -1, -1, 1])


def test_rubin_against_the_formulas():
    rng = np.random.default_rng(3)
    q, u = rng.normal(1, 0.2, (7, 3)), rng.uniform(0.01, 0.05, (7, 3))
    got = rubin(q, u, df_complete=40)
    for j in range(3):
        m = 7
        qbar = sum(q[i, j] for i in range(m)) / m
        ubar = sum(u[i, j] for i in range(m)) / m
        b = sum((q[i, j] - qbar) ** 2 for i in range(m)) / (m - 1)
        t = ubar + (1 + 1 / m) * b
        lam = (1 + 1 / m) * b / t
        v_old = (m - 1) / lam ** 2
        v_obs = (40 + 1) / (40 + 3) * 40 * (1 - lam)
        v = v_old * v_obs / (v_old + v_obs)
        r = (1 + 1 / m) * b / ubar
        assert got["estimate"][j] == pytest.approx(qbar, rel=1e-12)
        assert got["std_error"][j] == pytest.approx(np.sqrt(t), rel=1e-12)
        assert got["df"][j] == pytest.approx(v, rel=1e-10)
        assert got["fmi"][j] == pytest.approx((r + 2 / (v + 3)) / (r + 1), rel=1e-10)
        assert got["p_value"][j] == pytest.approx(2 * stats.t.sf(abs(qbar / np.sqrt(t)), v), rel=1e-9)


def test_mi_recovers_a_known_slope_that_ols_on_the_measured_tone_misses():
    """30 simulated studies (150 calls, 15-60 segments, a classifier with UA 76%): the MI
    interval covers the true slope about 95% of the time, the naive one almost never."""
    conf = confusion(0.76)
    naive, mi, cover_mi, cover_naive = [], [], 0, 0
    reps = 30
    for rep in range(reps):
        s = simulate(conf, n_calls=150, seed=100 + rep)
        res = mi_regression(s.frame, "car ~ call_tone", s.evidence, "HC1", MIConfig(m=10, burn_in=40, thin=3, seed=rep))
        c = res.coefficients.set_index("term").loc["call_tone"]
        half = stats.t.ppf(0.975, c.df) * c.std_error
        cover_mi += abs(c.estimate - s.beta) <= half
        cover_naive += abs(c.naive_estimate - s.beta) <= 1.96 * c.naive_std_error
        naive.append(c.naive_estimate / s.beta)
        mi.append(c.estimate / s.beta)
    assert abs(np.mean(mi) - 1) < 0.08, np.mean(mi)
    assert np.mean(naive) > 1.2, np.mean(naive)          # posterior means shrink each segment: OLS overshoots
    assert cover_mi >= 24, cover_mi                        # expected 28.5 of 30
    assert cover_naive <= 6, cover_naive


def test_certain_posteriors_make_mi_equal_to_ols():
    """One-hot posteriors carry no measurement error: every imputation is the measured tone."""
    s = simulate(np.eye(8), n_calls=60, seed=5)
    res = mi_regression(s.frame, "car ~ call_tone", s.evidence, "HC1", MIConfig(m=4, burn_in=5, thin=1))
    np.testing.assert_allclose(res.estimates, res.estimates[[0] * 4], rtol=1e-10)
    np.testing.assert_allclose(res.coefficients["estimate"], res.coefficients["naive_estimate"], rtol=1e-10)
    np.testing.assert_allclose(res.coefficients[["between", "riv"]].to_numpy(), 0, atol=1e-20)
    c = res.coefficients   # no between-imputation variance: the FMI is the small-sample term 2 / (df + 3) only
    np.testing.assert_allclose(c["fmi"], 2 / (c["df"] + 3), rtol=1e-12)


def test_imputation_survives_a_draw_that_makes_the_design_singular():
    """Every segment certainly neutral: each draw of the call tone is 0 in every call, so the
    sampler's design [1, tone] is singular and its coefficient covariance only semi-definite
    (a Cholesky draw raised here, and the study lost its MI correction). The draws are the
    measured features."""
    s = simulate(np.eye(8), n_calls=40, seed=5)
    lik = np.zeros_like(s.evidence.likelihood)
    lik[:, 1] = 1.0
    ev = dataclasses.replace(s.evidence, likelihood=lik)
    n = len(ev.call_ids)
    draws = impute(ev, s.frame["car"].to_numpy(), np.ones((n, 1)), np.ones(n, bool), MIConfig(m=3, burn_in=2, thin=1))
    assert len(draws) == 3
    for d in draws:
        np.testing.assert_array_equal(d, ev.measured())


def test_mi_bad_input():
    s = simulate(confusion(0.76), n_calls=30, seed=1)
    with pytest.raises(RegressionError, match="m >= 2"):
        MIConfig(m=1)
    with pytest.raises(RegressionError, match="plain linear term"):
        mi_regression(s.frame, "car ~ I(call_tone ** 2)", s.evidence, "HC1", MIConfig(m=2, burn_in=1))
    frame = pd.concat([s.frame, s.frame.iloc[:1].assign(call_id="nowhere")], ignore_index=True)
    with pytest.raises(RegressionError, match="no segment posteriors"):
        mi_regression(frame, "car ~ call_tone", s.evidence, "HC1", MIConfig(m=2, burn_in=1))


# -- features from segment posteriors, as the catalog holds them ------------------------------------------


def _call_rows(call_id: str, rng, n: int, skip_every: int = 0, chair: bool = True):
    """segments (with roles), speakers and emotions of one synthetic call."""
    roles = ["operator"] + ["chair" if chair else "executive"] * 3 + ["journalist"]
    seg, emo = [], []
    t = 0.0
    for i in range(n):
        role = roles[i % len(roles)]
        dur = float(rng.uniform(1, 15))
        section = "prepared" if i < n // 3 else "qa"
        seg.append({"call_id": call_id, "segment_id": i, "speaker": f"SPEAKER_{roles.index(role)}", "role": role,
                    "start_s": t, "end_s": t + dur, "section": section, "text": "words", "asr_confidence": 0.9})
        p = rng.dirichlet(np.full(8, 0.7))
        skipped = bool(skip_every and i % skip_every == 0)
        emo.append({"call_id": call_id, "segment_id": i, "model_id": "ser-test", "skip_reason": "too_short" if skipped else "",
                    **{f"p_{lab}": (np.nan if skipped else float(v)) for lab, v in zip(LABELS, p)},
                    "tone": np.nan if skipped else float(p @ VALENCE)})
        t += dur + 0.2
    return pd.DataFrame(seg), pd.DataFrame(emo)


def test_measured_features_are_the_call_features():
    """The evidence's posterior-mean features are exactly what call_features computes."""
    from ser_models.calls import call_features

    rng = np.random.default_rng(0)
    segs, emos, expect = [], [], []
    for k in range(3):
        seg, emo = _call_rows(f"c{k}", rng, 25 + k, skip_every=4 if k == 1 else 0, chair=k != 2)
        e = emo.assign(tone_abs=np.nan, text_tone=np.nan, fused_tone=np.nan, hawkish=np.nan,
                       attention_top15_share=np.nan)
        traj = pd.DataFrame({"speaker": [], "tone_smooth": []})
        expect.append(call_features(e.drop(columns=["call_id"]), seg.drop(columns=["call_id"]), traj, LABELS, 1.0))
        segs.append(seg)
        emos.append(emo)
    arrays = tone_evidence(pd.concat(segs), pd.concat(emos), LABELS, np.full(8, 1 / 8), list(TONE_FEATURES))
    ev = SegmentEvidence(**arrays)
    got = ev.measured()
    for i, feats in enumerate(expect):
        for k, f in enumerate(TONE_FEATURES):
            if np.isnan(feats[f]):
                assert np.isnan(got[i, k]), (i, f)
            else:
                assert got[i, k] == pytest.approx(feats[f], rel=1e-9, abs=1e-12), (i, f)
    assert ev.likelihood.shape[1] == 3 and ev.prior == pytest.approx([0.5, 0.25, 0.25])


def _mi_catalog(path, n=len(FOMC), seed=0) -> Catalog:
    """FOMC press conferences with segments, speakers, emotions and call_features that agree."""
    from ser_models.calls import call_features

    cat = Catalog(path)
    rng = np.random.default_rng(seed)
    rows, feats = [], {}
    for i, d in enumerate(FOMC[:n]):
        cid = f"fomc{i:03d}"
        seg, emo = _call_rows(cid, rng, 30)
        rows.append((cid, "press_conference", "FOMC", pd.Timestamp(f"{d} 14:30", tz="America/New_York").tz_convert("UTC")))
        full = emo.assign(**{c: None for c in TABLES["emotions"].columns if c not in emo.columns})
        cat.write("segments", cid, seg.drop(columns=["role"]))
        spk = seg.groupby("speaker", as_index=False).agg(role=("role", "first"))
        cat.write("speakers", cid, spk.assign(call_id=cid, name="", voice_id="", talk_time_s=1.0, n_segments=1))
        cat.write("emotions", cid, full)
        e = full.drop(columns=["call_id"]).astype({"tone_abs": float, "text_tone": float, "fused_tone": float,
                                                   "hawkish": float, "attention_top15_share": float})
        feats[cid] = {k: v for k, v in call_features(e, seg.drop(columns=["call_id"]),
                                                     pd.DataFrame({"speaker": [], "tone_smooth": []}), LABELS,
                                                     1.0).items() if k.endswith("_tone")}
    add_calls(cat, rows, feats)
    return cat


MI_SPEC = (SPEC_DIR / "press_conferences.toml").read_text() + '\n[uncertainty]\nmethod = "mi"\nm = 6\n'


def test_study_with_mi_writes_naive_and_corrected_side_by_side(tmp_path):
    cat = _mi_catalog(tmp_path / "catalog")
    spec = tmp_path / "mi.toml"
    spec.write_text(MI_SPEC)
    res = run_study(spec, cat, evidence=CatalogEvidence(cat))
    r = cat.read("study_results", "press_conferences").to_pandas()
    for name, reg in res.regressions.items():
        mi = res.corrected[name]
        assert mi.imputed == ["chair_qa_tone", "chair_prepared_tone"]
        naive = r[(r["kind"] == "regression") & (r["group"] == name)].set_index("name")
        corr = r[(r["kind"] == "regression_mi") & (r["group"] == name)].set_index("name")
        fmi = r[(r["kind"] == "regression_mi_fmi") & (r["group"] == name)].set_index("name")
        np.testing.assert_allclose(naive.loc[corr.index, "estimate"], mi.coefficients.set_index("term")["naive_estimate"])
        np.testing.assert_allclose(corr["estimate"], mi.estimates.mean(0), rtol=1e-12)
        assert (fmi["estimate"].between(0, 1)).all()
        assert mi.m == 6 and len(mi.estimates) == 6
    from reports.study import corrected_rows, load_study

    rows = corrected_rows(load_study(cat, "press_conferences"))
    assert {x["term"] for x in rows if x["imputed"]} == {"chair_qa_tone", "chair_prepared_tone"}


@pytest.mark.parametrize("edit, message", [
    ('\n[uncertainty]\nmethod = "mi"\nm = 1\n', "m >= 2"),
    ('\n[uncertainty]\nmethod = "bootstrap"\n', "use 'none' or 'mi'"),
    ('\n[uncertainty]\nmethod = "mi"\nfeatures = ["lm_tone"]\n', "not emotion features"),
    ('\n[uncertainty]\nmethod = "mi"\nfeatures = ["executive_qa_tone"]\n', "not regressors of any OLS regression"),
])
def test_bad_uncertainty_specs_fail_clearly(tmp_path, edit, message):
    cat = _mi_catalog(tmp_path / "catalog", n=3)
    spec = tmp_path / "bad.toml"
    spec.write_text((SPEC_DIR / "press_conferences.toml").read_text() + edit)
    with pytest.raises(SpecError, match=message):
        run_study(spec, cat, evidence=CatalogEvidence(cat))


def test_regress_command_with_mi(tmp_path):
    cat = _mi_catalog(tmp_path / "catalog", n=12, seed=2)
    feats = cat.read("call_features").to_pandas()
    data = pd.DataFrame({"event_id": feats["call_id"], "call_id": feats["call_id"],
                         "car": 0.01 * feats["chair_qa_tone"] + np.random.default_rng(1).normal(0, 0.01, len(feats)),
                         "size": np.arange(len(feats), dtype=float)})
    data.to_csv(tmp_path / "data.csv", index=False)
    run = CliRunner().invoke
    args = ["regress", "--data", str(tmp_path / "data.csv"), "--formula", "car ~ chair_qa_tone", "--out",
            str(tmp_path / "out"), "--catalog", str(tmp_path / "catalog")]
    r = run(cli_study.app, args + ["--uncertainty", "mi:4"])
    assert r.exit_code == 0, r.output
    out = pd.read_csv(tmp_path / "out" / "mi_coefficients.csv").set_index("term")
    plain = pd.read_csv(tmp_path / "out" / "coefficients.csv").set_index("term")
    np.testing.assert_allclose(out["naive_estimate"], plain["estimate"])
    assert out.loc["chair_qa_tone", "fmi"] > 0
    r = run(cli_study.app, args + ["--uncertainty", "mi:1"])
    assert r.exit_code == 2 and "M >= 2" in r.output
    r = run(cli_study.app, args[:-2] + ["--uncertainty", "mi:4"])
    assert r.exit_code == 2 and "needs --catalog" in r.output
    r = run(cli_study.app, [*args[:4], "car ~ chair_qa_tone + size", *args[5:], "--uncertainty", "mi:4"])
    assert r.exit_code == 0, r.output       # size is kept as it is; only the voice tone is imputed
    out = pd.read_csv(tmp_path / "out" / "mi_coefficients.csv").set_index("term")
    assert out.loc["size", "fmi"] < out.loc["chair_qa_tone", "fmi"]
    r = run(cli_study.app, [*args[:4], "car ~ size", *args[5:], "--uncertainty", "mi:4"])
    assert r.exit_code == 2 and "no regressor is a voice-tone feature" in r.output
