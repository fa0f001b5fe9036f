"""Question-answer pairs of a hand-built call, checked against hand-computed numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_models.qa import COLUMNS, NON_ANSWER_PHRASES, QAConfig, QAStatus, find_non_answers, qa_pairs

NAN = np.nan

# segment_id, speaker, role, section, start_s, end_s, text
SEGMENTS = [
    (0, "S0", "operator", "prepared", 0.0, 10.0, "Good morning and welcome to the call."),
    (1, "S1", "executive", "prepared", 10.0, 40.0, "Revenue grew strongly this quarter."),
    (2, "S2", "executive", "prepared", 40.0, 70.0, "Margins expanded by two points."),
    (3, "S1", "executive", "prepared", 70.0, 80.0, "We remain confident."),
    (4, "S0", "operator", "qa", 80.0, 85.0, "We will now take questions. First, Ann."),
    (5, "S3", "analyst", "qa", 85.0, 95.0, "Can you talk about demand in Europe?"),
    (6, "S1", "executive", "qa", 96.0, 116.0, "Demand in Europe was solid across all segments."),
    (7, "S2", "executive", "qa", 116.0, 126.0, "Pricing held up well too."),
    (8, "S1", "executive", "qa", 126.5, 130.0, "Thanks for the question."),
    (9, "S0", "operator", "qa", 130.0, 133.0, "Next question from Bob. Please go ahead, Bob."),
    (10, "S4", "analyst", "qa", 133.0, 140.0, "What is your margin outlook for next year?"),
    (11, "S5", "unknown", "qa", 140.0, 141.0, "Mm-hmm."),
    (12, "S4", "analyst", "qa", 141.0, 146.0, "And how about pricing?"),
    (13, "S2", "executive", "qa", 147.0, 160.0, "We don\u2019t provide guidance on margins, but pricing is firm."),
    (14, "S0", "operator", "qa", 160.0, 163.0, "Our last question comes from Cara."),
    (15, "S6", "journalist", "qa", 163.0, 170.0, "Will you cut jobs?"),
]
# segment_id, tone, text_tone, fused_tone, skip_reason (segment 15 has no row at all)
EMOTIONS = [
    (0, 0.0, 0.0, 0.0, ""), (1, 0.1, 0.4, 0.25, ""), (2, NAN, NAN, NAN, "silent"), (3, 0.3, 0.2, 0.25, ""),
    (4, 0.0, 0.0, 0.0, ""), (5, -0.2, 0.1, -0.05, ""), (6, 0.2, 0.5, 0.35, ""), (7, -0.4, NAN, -0.4, ""),
    (8, 0.6, 0.0, 0.3, ""), (9, 0.0, 0.0, 0.0, ""), (10, 0.5, -0.3, 0.1, ""), (11, 0.9, 0.9, 0.9, ""),
    (12, -0.5, 0.3, -0.1, ""), (13, -0.1, -0.6, -0.35, ""), (14, 0.0, 0.0, 0.0, ""),
]
SPEAKERS = [("S0", "operator", "", ""), ("S1", "executive", "Jane Doe", "v1"), ("S2", "executive", "John Roe", "v2"),
            ("S3", "analyst", "Ann Lee", "v3"), ("S4", "analyst", "Bob Ray", ""), ("S5", "unknown", "", ""),
            ("S6", "journalist", "Cara Wu", "v6")]


def frames(segments=SEGMENTS, emotions=EMOTIONS, speakers=SPEAKERS):
    seg = pd.DataFrame(segments, columns=["segment_id", "speaker", "role", "section", "start_s", "end_s", "text"])
    emo = pd.DataFrame(emotions, columns=["segment_id", "tone", "text_tone", "fused_tone", "skip_reason"])
    spk = pd.DataFrame(speakers, columns=["speaker", "role", "name", "voice_id"])
    return seg, emo, spk


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    seg, emo, spk = frames()
    shuffled = seg.sample(frac=1.0, random_state=3)          # input order must not matter
    return qa_pairs(shuffled, emo.sample(frac=1.0, random_state=4), spk)


def test_columns_and_dtypes(pairs):
    assert list(pairs.columns) == list(COLUMNS)
    assert {c: str(t) for c, t in pairs.dtypes.items()} == COLUMNS
    assert len(pairs) == 3
    assert pairs["pair_id"].tolist() == [0, 1, 2]


def test_first_pair_ceo_and_cfo_answer(pairs):
    r = pairs.iloc[0]
    assert (r.asker_speaker, r.asker_role, r.asker_name, r.asker_voice_id) == ("S3", "analyst", "Ann Lee", "v3")
    # CEO answers 20 + 3.5 s, CFO 10 s
    assert (r.answerer_speaker, r.answerer_role, r.answerer_name, r.answerer_voice_id) == \
        ("S1", "executive", "Jane Doe", "v1")
    assert (r.answerers, r.n_answerers) == ("S1|S2", 2)
    assert (r.q_start_s, r.q_end_s, r.a_start_s, r.a_end_s) == (85.0, 95.0, 96.0, 130.0)
    assert r.latency_s == pytest.approx(1.0)
    assert r.answer_s == pytest.approx(33.5)
    assert r.answer_words == 8 + 5 + 4
    assert (r.q_voice_tone, r.q_text_tone, r.q_fused_tone) == pytest.approx((-0.2, 0.1, -0.05))
    assert r.a_voice_tone == pytest.approx((20 * 0.2 + 10 * -0.4 + 3.5 * 0.6) / 33.5)
    assert r.a_text_tone == pytest.approx((20 * 0.5 + 3.5 * 0.0) / 23.5)        # segment 7 has no text tone
    assert r.a_fused_tone == pytest.approx((20 * 0.35 + 10 * -0.4 + 3.5 * 0.3) / 33.5)
    ceo_prepared = (30 * 0.1 + 10 * 0.3) / 40
    assert r.answer_tone_change == pytest.approx(2.1 / 33.5 - ceo_prepared)
    assert (r.non_answer, r.non_answer_phrases, r.non_answer_categories) == (False, "", "")
    assert (r.answered, r.status) == (True, "answered")


def test_second_pair_two_turn_question_and_non_answer(pairs):
    r = pairs.iloc[1]
    # Bob's two turns around an 'unknown' interjection are one question; the interjection is in neither part
    assert (r.asker_speaker, r.asker_name, r.asker_voice_id) == ("S4", "Bob Ray", "")
    assert (r.q_start_s, r.q_end_s) == (133.0, 146.0)
    assert r.q_voice_tone == pytest.approx((7 * 0.5 + 5 * -0.5) / 12)
    assert r.q_text_tone == pytest.approx((7 * -0.3 + 5 * 0.3) / 12)
    assert r.q_fused_tone == pytest.approx((7 * 0.1 + 5 * -0.1) / 12)
    assert (r.answerer_speaker, r.answerer_name, r.answerers, r.n_answerers) == ("S2", "John Roe", "S2", 1)
    assert (r.a_start_s, r.a_end_s, r.latency_s, r.answer_s, r.answer_words) == (147.0, 160.0, 1.0, 13.0, 10)
    assert (r.a_voice_tone, r.a_text_tone, r.a_fused_tone) == pytest.approx((-0.1, -0.6, -0.35))
    assert np.isnan(r.answer_tone_change)                 # the CFO's prepared remarks were not scored
    assert (r.non_answer, r.non_answer_phrases, r.non_answer_categories) == \
        (True, "we don't provide guidance", "refusal")
    assert (r.answered, r.status) == (True, "answered")


def test_last_question_unanswered_at_end_of_call(pairs):
    r = pairs.iloc[2]
    assert (r.asker_speaker, r.asker_role, r.asker_name, r.asker_voice_id) == ("S6", "journalist", "Cara Wu", "v6")
    assert (r.q_start_s, r.q_end_s) == (163.0, 170.0)
    assert (r.answerer_speaker, r.answerer_role, r.answerer_name, r.answerer_voice_id) == ("", "", "", "")
    assert (r.answerers, r.n_answerers, r.answer_s, r.answer_words) == ("", 0, 0.0, 0)
    for c in ["a_start_s", "a_end_s", "latency_s", "q_voice_tone", "q_text_tone", "q_fused_tone", "a_voice_tone",
              "a_text_tone", "a_fused_tone", "answer_tone_change"]:
        assert np.isnan(r[c]), c                          # segment 15 has no emotions row
    assert (r.non_answer, r.answered, r.status) == (False, False, QAStatus.UNANSWERED_END_OF_CALL.value)


def test_unanswered_before_next_question_or_operator_and_follow_ups():
    seg, _, spk = frames()
    rows = [(0, "S0", "operator", "qa", 0, 2, "Questions please."),
            (1, "S3", "analyst", "qa", 2, 5, "First question?"),
            (2, "S4", "analyst", "qa", 5, 8, "Second question?"),
            (3, "S1", "executive", "qa", 8, 12, "Answer to the second."),
            (4, "S4", "analyst", "qa", 12, 14, "A follow-up?"),
            (5, "S5", "unknown", "qa", 14, 15, "Hm."),
            (6, "S2", "executive", "qa", 15, 18, "Answer to the follow-up."),
            (7, "S3", "analyst", "qa", 18, 20, "Another one?"),
            (8, "S0", "operator", "qa", 20, 21, "Next caller."),
            (9, "S1", "executive", "qa", 21, 25, "Let me add something."),   # no open question
            ]
    seg = pd.DataFrame(rows, columns=seg.columns)
    emo = pd.DataFrame([(i, 0.1 * i, 0.0, 0.0, "") for i in range(10)],
                       columns=["segment_id", "tone", "text_tone", "fused_tone", "skip_reason"])
    out = qa_pairs(seg, emo, spk)
    assert out["asker_speaker"].tolist() == ["S3", "S4", "S4", "S3"]
    assert out["status"].tolist() == ["unanswered", "answered", "answered", "unanswered"]
    assert out["answered"].tolist() == [False, True, True, False]
    assert out["answerers"].tolist() == ["", "S1", "S2", ""]
    assert out["latency_s"].iloc[2] == pytest.approx(1.0)      # the unknown turn is skipped over
    assert out["a_voice_tone"].iloc[2] == pytest.approx(0.6)
    assert out["answer_s"].tolist() == [0.0, 4.0, 3.0, 0.0]


def test_no_questions_gives_empty_frame_with_columns():
    seg, emo, spk = frames()
    only_prepared = seg[seg["section"] == "prepared"]
    management_qa = seg[seg["role"].isin(["operator", "executive"])]
    for s in (only_prepared, management_qa, seg.iloc[:0]):
        out = qa_pairs(s, emo, spk)
        assert out.empty
        assert list(out.columns) == list(COLUMNS)
        assert {c: str(t) for c, t in out.dtypes.items()} == COLUMNS


def test_overlapping_answer_gives_negative_latency():
    seg, _, spk = frames()
    seg = pd.DataFrame([(0, "S3", "analyst", "qa", 0.0, 10.0, "Question?"),
                        (1, "S1", "executive", "qa", 8.0, 20.0, "Sure, answer.")], columns=seg.columns)
    emo = pd.DataFrame([(0, 0.2, NAN, NAN, ""), (1, -0.3, NAN, NAN, "")],
                       columns=["segment_id", "tone", "text_tone", "fused_tone", "skip_reason"])
    r = qa_pairs(seg, emo, spk).iloc[0]
    assert r.latency_s == pytest.approx(-2.0)
    assert (r.status, r.answer_s, r.q_voice_tone, r.a_voice_tone) == ("answered", 12.0, 0.2, -0.3)
    assert np.isnan(r.a_text_tone) and np.isnan(r.a_fused_tone)


def test_missing_and_skipped_emotions_give_nan_tones():
    seg, emo, spk = frames()
    emo = emo[~emo["segment_id"].isin([5, 6])].copy()                       # no row for the question nor 6
    emo.loc[emo["segment_id"] == 8, "skip_reason"] = "too_short"            # stale numbers must be ignored
    r = qa_pairs(seg, emo, spk).iloc[0]
    assert np.isnan(r.q_voice_tone) and np.isnan(r.q_text_tone) and np.isnan(r.q_fused_tone)
    assert (r.a_voice_tone, r.a_fused_tone) == pytest.approx((-0.4, -0.4))  # only segment 7 left
    assert np.isnan(r.a_text_tone)
    assert r.answer_s == pytest.approx(33.5)                                # answer time is not scored time
    empty = qa_pairs(seg, emo.iloc[:0], spk)
    assert empty[[c for c in COLUMNS if c.endswith("_tone")]].isna().all().all()
    assert len(empty) == 3


@pytest.mark.parametrize("text", ["We don\u2019t provide guidance.", "we don\u2018t provide guidance",
                                  "WE DO NOT PROVIDE GUIDANCE", "we  don't\n provide   guidance",
                                  "we don`t provide guidance"])
def test_apostrophe_and_spacing_variants(text):
    assert find_non_answers(text) == (["we don't provide guidance"], ["refusal"])
    seg, _, spk = frames()
    seg = pd.DataFrame([(0, "S3", "analyst", "qa", 0.0, 1.0, "Guidance?"),
                        (1, "S2", "executive", "qa", 1.0, 2.0, text)], columns=seg.columns)
    r = qa_pairs(seg, pd.DataFrame(columns=["segment_id", "tone", "text_tone", "fused_tone", "skip_reason"]), spk)
    assert (r["non_answer"].iat[0], r["non_answer_phrases"].iat[0]) == (True, "we don't provide guidance")


def test_phrase_matching_categories_and_word_boundaries():
    assert find_non_answers("We provide guidance every quarter.") == ([], [])
    assert find_non_answers("We are not going to commentate on the match.") == ([], [])
    assert find_non_answers("We aren\u2019t going to comment on that.") == (["not going to comment"], ["refusal"])
    assert find_non_answers("We will not comment; we'll talk about that later.") == (
        ["won't comment", "talk about that later"], ["refusal", "deferral"])
    assert find_non_answers("Honestly, it\u2019s HARD to say.") == (["hard to say"], ["inability"])
    assert find_non_answers("We're going to get back to yours.") == ([], [])
    assert find_non_answers("A nonoffline mode; not going to commentators.") == ([], [])
    assert find_non_answers("We cannot comment. It's too early to tell.") == (
        ["can't comment", "too early to tell"], ["refusal", "inability"])
    assert find_non_answers("Let\u2019s take that offline; we\u2019ll get back to you.") == (
        ["offline", "get back to you"], ["deferral"])
    assert {c for _, c in NON_ANSWER_PHRASES} == {"refusal", "inability", "deferral"}


def test_config_roles_and_phrases():
    seg, emo, spk = frames()
    cfg = QAConfig(asker_roles=("analyst",), non_answer_phrases=(("pricing is firm", "custom"),))
    out = qa_pairs(seg, emo, spk, cfg)
    assert out["asker_speaker"].tolist() == ["S3", "S4"]                    # journalists no longer ask
    assert out["non_answer_categories"].tolist() == ["", "custom"]
    assert out["status"].tolist() == ["answered", "answered"]


# --------------------------------------------------------------------------- the demo's reference turns

DEMO_REFERENCE = Path(__file__).resolve().parents[2] / "pipelines" / "demo_archive" / "reference"
# read off the reference transcripts by hand: (question start, answered?, answer start)
DEMO_QUESTIONS = {
    "fomc_press_conference_20130619": [(51.255, True, 53.703), (57.739, False, None), (64.216, True, 79.541),
                                       (103.186, True, 114.588), (128.410, True, 140.868)],
}


def test_pairs_of_a_real_press_conference_transcript():
    """The reference turns of a demo press conference (real FOMC text; a journalist who
    introduces himself, is answered, then asks again without an answer)."""
    import sys

    sys.path.insert(0, str(DEMO_REFERENCE.parents[2] / "benchmarks"))
    from qa_pairs_demo import reference_pairs

    for stem, want in DEMO_QUESTIONS.items():
        got = reference_pairs(DEMO_REFERENCE / f"{stem}.stm")
        assert len(got) == len(want)
        for row, (q0, answered, a0) in zip(got.itertuples(), want):
            assert row.q_start_s == pytest.approx(q0) and row.answered == answered
            assert row.answerer_role == ("chair" if answered else "")
            if answered:
                assert row.a_start_s == pytest.approx(a0)
                assert row.latency_s == pytest.approx(a0 - row.q_end_s)
