"""The flow's emotion stage on a fake call made of real RAVDESS clips (embedded checkpoint)."""

import math

import numpy as np
import pandas as pd
import pytest

from data_catalog import Catalog
from pipelines.speech.emotion import load_emotion_scorer, score_call_emotions
from pipelines.types import Audio
from ser_models.calls import CALL_FEATURE_DOCS, EmotionConfig
from ser_models.features import lm_scores

from ser_helpers import fake_call
from shared_data import needs_shared

pytestmark = needs_shared

NEG = ("sad", "angry", "fearful", "disgust")


@pytest.fixture(scope="module")
def scorer():
    return load_emotion_scorer()


@pytest.fixture(scope="module")
def call(scorer):
    audio, segments, speakers, truth = fake_call()
    return audio, segments, speakers, truth, score_call_emotions(audio, segments, speakers, scorer=scorer)


def test_emotions_rows_skips_and_probabilities(call, scorer):
    audio, segments, _, truth, out = call
    e = out.emotions.set_index("segment_id")
    assert list(e.index) == [s.segment_id for s in segments]
    assert (e["call_id"] == audio.call_id).all() and (e["model_id"] == scorer.model_id).all()
    assert e["skip_reason"].to_dict() == {i: (t if t in ("too_short", "silent") else "") for i, t in truth.items()}
    pcols = [f"p_{lab}" for lab in scorer.labels]
    scored = e[e["skip_reason"] == ""]
    assert np.allclose(scored[pcols].sum(axis=1), 1.0, atol=1e-6)
    assert e.loc[e["skip_reason"] != "", pcols + ["tone", "tone_abs", "arousal", "valence"]].isna().all().all()
    # tone from the stored probabilities, computed here independently: p(pos) - p(neg)
    pos = scored["p_happy"] + scored["p_surprised"]
    neg = scored[[f"p_{c}" for c in NEG]].sum(axis=1)
    assert np.allclose(scored["tone"], pos - neg)
    assert scored["tone"].between(-1, 1).all() and scored["arousal"].between(-1, 1).all()
    assert scored["tone_abs"].between(-1, 1).all()
    # speaker-relative scores: the executive (35 s of speech) against his own mean frame; the
    # analyst and the operator (under 8 s each) against the checkpoint's population centre
    basis = scored.assign(spk=[s.speaker for s in segments if s.segment_id in scored.index]).groupby("spk")["norm_basis"]
    assert basis.unique().to_dict() == {"SPK_EXEC": ["speaker"], "SPK_ANA": ["population"], "SPK_OP": ["population"]}
    # population-normalised speakers: relative and absolute are the same score
    pop = scored[scored["norm_basis"] == "population"]
    assert np.allclose(pop["tone"], pop["tone_abs"], atol=1e-6)
    # the 27 s segment is cut into two windows of at most 20 s, the others are one window
    assert e.loc[4, "n_windows"] == 2 and (scored.drop(index=4)["n_windows"] == 1).all()


def test_attention_statistics_and_top_words(call):
    _, segments, _, _, out = call
    e = out.emotions.set_index("segment_id")
    scored = e[e["skip_reason"] == ""]
    assert scored["attention_top15_share"].between(0.15, 1.0).all()
    for s in segments:
        if e.loc[s.segment_id, "skip_reason"] or not s.words:
            continue
        top = e.loc[s.segment_id, "top_words"].split("|")
        assert 1 <= len(top) <= 3 and set(top) <= {w.word for w in s.words}
    assert e.loc[7, "top_words"] == ""            # empty transcript: no words to point at


def test_dictionary_tone_and_empty_transcript(call):
    _, segments, _, _, out = call
    e = out.emotions.set_index("segment_id")
    for s in segments:
        expected = lm_scores(s.text)
        for k, v in expected.items():
            assert (math.isnan(v) and math.isnan(e.loc[s.segment_id, k])) or e.loc[s.segment_id, k] == pytest.approx(v)
    assert e.loc[7, "skip_reason"] == "" and np.isnan(e.loc[7, "lm_tone"])   # scored on audio alone


def test_clip_segments_are_recognised(call):
    """Single-clip segments are RAVDESS training clips: the model, trained on clips packed
    into call-like windows, recognises them inside the call.  Two of the five come from
    speakers with under 8 s of speech, scored against the population baseline rather than
    their own (less exact: the true class is then at least second)."""
    _, _, _, truth, out = call
    e = out.emotions.set_index("segment_id")
    labels = [c[2:] for c in e.columns if c.startswith("p_")]
    clips = [i for i, t in truth.items() if t in labels]
    ranked = {i: [labels[j] for j in np.argsort(-e.loc[i, [f"p_{c}" for c in labels]].to_numpy(float))] for i in clips}
    assert sum(ranked[i][0] == truth[i] for i in clips) >= 3, ranked
    assert all(truth[i] in ranked[i][:2] for i in clips), ranked


def test_trajectories_smooth_per_speaker(call):
    _, segments, _, _, out = call
    tr = out.trajectories
    e = out.emotions.set_index("segment_id")
    assert sorted(tr["segment_id"]) == sorted(e.index[e["skip_reason"] == ""])
    by_id = {s.segment_id: s for s in segments}
    for spk, g in tr.groupby("speaker"):
        t = g["t_s"].to_numpy()
        assert (np.diff(t) > 0).all()
        w = np.array([by_id[i].end_s - by_id[i].start_s for i in g["segment_id"]])
        k = np.exp(-0.5 * ((t[:, None] - t[None, :]) / 30.0) ** 2) * w[None, :]
        assert np.allclose(g["tone_smooth"], k @ g["tone"].to_numpy() / k.sum(1))
        assert all(by_id[i].speaker == spk for i in g["segment_id"])


def test_call_features(call, scorer):
    _, segments, speakers, _, out = call
    f = out.call_features.iloc[0]
    assert list(out.call_features.columns) == list(CALL_FEATURE_DOCS)
    e = out.emotions.set_index("segment_id")
    roles = {s.speaker: s.role for s in speakers}
    seg = pd.DataFrame([dict(id=s.segment_id, role=roles[s.speaker], section=s.section,
                             w=s.end_s - s.start_s, tone=e.loc[s.segment_id, "tone"]) for s in segments])
    seg = seg[seg["tone"].notna()]

    def wmean(d):
        return float(np.average(d["tone"], weights=d["w"])) if len(d) else float("nan")

    exec_qa = seg[(seg.role == "executive") & (seg.section == "qa")]
    exec_prep = seg[(seg.role == "executive") & (seg.section == "prepared")]
    assert f["executive_qa_tone"] == pytest.approx(wmean(exec_qa))
    assert f["executive_prepared_tone"] == pytest.approx(wmean(exec_prep))
    assert f["analyst_qa_tone"] == pytest.approx(wmean(seg[seg.role == "analyst"]))
    assert f["tone_change_prepared_to_qa"] == pytest.approx(wmean(exec_qa) - wmean(exec_prep))
    for col in ("chair_prepared_tone", "chair_qa_tone", "journalist_qa_tone", "chair_qa_neg_share"):
        assert np.isnan(f[col])
    non_op = seg[seg.role != "operator"]
    assert f["call_tone"] == pytest.approx(wmean(non_op))
    assert f["tone_volatility"] == pytest.approx(
        np.sqrt(np.average((non_op["tone"] - wmean(non_op)) ** 2, weights=non_op["w"])))
    pcols = [f"p_{lab}" for lab in scorer.labels]
    top = {i: scorer.labels[int(np.argmax(e.loc[i, pcols].to_numpy(float)))] for i in exec_qa["id"]}
    neg_w = sum(r.w for r in exec_qa.itertuples() if top[r.id] in NEG)
    assert f["executive_qa_neg_share"] == pytest.approx(neg_w / exec_qa["w"].sum())
    assert f["n_hotspots"] == int((e.loc[non_op["id"], "attention_top15_share"] >= scorer.card.hotspot_threshold).sum())
    assert f["min_smoothed_tone"] == pytest.approx(
        out.trajectories[out.trajectories.speaker != "SPK_OP"]["tone_smooth"].min())
    text = " ".join(s.text for s in segments if roles[s.speaker] != "operator")
    assert f["lm_tone"] == pytest.approx(lm_scores(text)["lm_tone"])
    assert f["n_segments_scored"] == 5 and f["n_segments_skipped"] == 2
    assert "call tone" in out.summary()


def test_outputs_fit_the_catalog(call, tmp_path):
    audio, _, _, _, out = call
    cat = Catalog(tmp_path / "catalog")
    for table, frame in out.tables().items():
        assert list(frame.columns[:2]) == ["call_id", "model_id"]
        cat.write(table, audio.call_id, frame)
        back = cat.read(table, audio.call_id).to_pandas()
        assert len(back) == len(frame) and set(back.columns) == set(frame.columns)
    e = cat.read("emotions", audio.call_id).to_pandas()
    assert np.allclose(e["tone"].to_numpy(), out.emotions["tone"].to_numpy(), equal_nan=True)
    cat.write("calls", audio.call_id, [{"call_id": audio.call_id, "event_type": "earnings_call", "entity": "X",
                                        "event_time": None, "language": "en", "duration_s": 1.0, "source_uri": "",
                                        "title": "", "processed_at": None, "pipeline_version": "", "profile": ""}])
    cat.refresh_views()  # views show complete calls only: those with a calls part
    q = cat.query("SELECT executive_qa_tone FROM call_features").column(0).to_pylist()
    assert q[0] == pytest.approx(out.call_features["executive_qa_tone"].iloc[0])


def test_bad_sample_rate_is_an_error_naming_the_file(scorer):
    audio, segments, speakers, _ = fake_call()
    bad = Audio(audio.path, audio.samples, 44_100, audio.sha256)
    with pytest.raises(ValueError, match=r"fake_call\.wav: sample rate 44100 Hz, the emotion stage needs 16000 Hz"):
        score_call_emotions(bad, segments, speakers, scorer=scorer)


def test_segment_outside_the_audio_and_no_segments(scorer):
    audio, segments, speakers, _ = fake_call()
    late = segments[1]
    late.start_s, late.end_s = audio.duration_s + 1, audio.duration_s + 3
    out = score_call_emotions(audio, segments[:2], speakers, scorer=scorer, config=EmotionConfig())
    assert out.emotions["skip_reason"].tolist() == ["", "outside_audio"]
    empty = score_call_emotions(audio, [], speakers, scorer=scorer)
    assert len(empty.emotions) == 0 and len(empty.call_features) == 1
    assert empty.call_features["n_segments_scored"].iloc[0] == 0


def test_recording_frames_mix_layers_chunk_by_chunk(scorer):
    """encode_recording = the encoder's 30 s windows, layers mixed with the model's weights."""
    import torch

    audio, *_ = fake_call()
    x = audio.samples[: 40 * 16000]                       # two windows: 30 s + 10 s
    frames = scorer.encode_recording(x)
    raw = scorer.audio_encoder.encode([x])[0]             # (T, D) or (L, T, D), concatenated windows
    if raw.ndim == 3:
        w = torch.softmax(scorer.model.branches["audio"].mix.logits.detach(), 0).numpy()
        raw = np.einsum("ltd,l->td", raw, w)
    assert frames.shape == raw.shape == (2000, scorer.model.config.audio_dim)
    assert frames.dtype == np.float16                     # held for the whole call: half the memory
    assert np.allclose(frames.astype(np.float32), raw, rtol=2e-3, atol=1e-3)   # float16 rounding only


def test_text_heads_beside_the_voice(call, scorer):
    """text_tone from the shipped financial-sentiment head, fused_tone the mean of voice and
    text tone; the FOMC stance only for press conferences."""
    from ser_models.inference import EmotionScorer
    from ser_models.checkpoint import shipped_text_heads

    audio, segments, speakers, _, out = call
    e = out.emotions.set_index("segment_id")
    heads = shipped_text_heads()
    assert "sentiment" in heads and set(scorer.text_heads) == set(heads)
    assert out.model_id == "+".join([scorer.card.model_id] + [h.card.model_id for h in scorer.text_heads.values()])
    sentiment = EmotionScorer.load(heads["sentiment"])                  # the head on its own
    texts = [s.text for s in segments]
    p = sentiment.score_frames(None, texts).probs
    lab = list(sentiment.labels)
    expect = p[:, lab.index("positive")] - p[:, lab.index("negative")]
    for s, t in zip(segments, expect):
        if s.text.strip():
            assert e.loc[s.segment_id, "text_tone"] == pytest.approx(t, abs=1e-6)
        else:
            assert np.isnan(e.loc[s.segment_id, "text_tone"])
    both = e["tone"].notna() & e["text_tone"].notna()
    assert np.allclose(e.loc[both, "fused_tone"], (e.loc[both, "tone"] + e.loc[both, "text_tone"]) / 2)
    only_text = e["tone"].isna() & e["text_tone"].notna()                 # skipped audio: text alone
    assert only_text.any() and np.allclose(e.loc[only_text, "fused_tone"], e.loc[only_text, "text_tone"])
    assert e["hawkish"].isna().all()                                       # an earnings call: no FOMC stance
    if "fomc" in heads:
        pc = score_call_emotions(audio, segments, speakers, scorer=scorer, event_type="press_conference")
        h = pc.emotions.set_index("segment_id")
        assert h.loc[[s.segment_id for s in segments if s.text.strip()], "hawkish"].between(-1, 1).all()
