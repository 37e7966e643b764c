"""The statistics against figures computed by hand (and Newcombe's 1998 published examples)."""
import math

import pytest

from analytics import stats
from analytics.reports import _variant_figures


def test_two_proportion_z_test_matches_the_hand_computation():
    # 60/500 = 0.12 vs 40/500 = 0.08. Pooled p = 100/1000 = 0.1;
    # SE = sqrt(0.1 * 0.9 * (1/500 + 1/500)) = sqrt(0.09 * 0.004) = sqrt(0.00036) = 0.0189737;
    # z = 0.04 / 0.0189737 = 2.10819; two-sided p = 2 * (1 - Φ(2.10819)) = 2 * (1 - 0.982497) = 0.035006.
    test = stats.two_proportion_z_test(60, 500, 40, 500)
    assert test.z == pytest.approx(2.10819, abs=1e-5)
    assert test.p_value == pytest.approx(0.035006, abs=1e-5)
    assert test.significant and test.confidence == pytest.approx(0.964994, abs=1e-5)


def test_a_small_difference_is_not_significant():
    # 50/500 vs 45/500: pooled 0.095, SE = sqrt(0.095 * 0.905 * 0.004) = 0.0185445, z = 0.01 / 0.0185445 = 0.53924,
    # p = 2 * (1 - Φ(0.53924)) = 0.58973.
    test = stats.two_proportion_z_test(50, 500, 45, 500)
    assert test.p_value == pytest.approx(0.58973, abs=1e-4)
    assert not test.significant


def test_no_trials_or_no_variation_gives_no_test():
    assert stats.two_proportion_z_test(0, 0, 3, 10) is None
    assert stats.two_proportion_z_test(0, 10, 0, 10) is None  # pooled rate 0: the rates are identical
    assert stats.rate(3, 0) is None


def test_wilson_interval_matches_newcombes_example():
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", 81/263: 0.2553 to 0.3662.
    low, high = stats.wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), "Interval estimation for the difference between independent proportions", method 10,
    # 56/70 - 48/80 = 0.2000: 0.0524 to 0.3339.
    low, high = stats.newcombe_interval(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_newcombe_interval_by_hand_for_a_lift():
    # 30/100 vs 10/100. Wilson 95 % (z = 1.959964, z² = 3.841459):
    #   30/100: centre = (0.3 + 3.841459/200) / (1 + 3.841459/100) = 0.319207 / 1.038415 = 0.307398;
    #           half = 1.959964 * sqrt(0.21/100 + 3.841459/40000) / 1.038415 = 1.959964 * 0.046859 / 1.038415
    #                = 0.088446 -> (0.218952, 0.395844)
    #   10/100: centre = (0.1 + 0.019207) / 1.038415 = 0.114799;
    #           half = 1.959964 * sqrt(0.0009 + 0.0000960) / 1.038415 = 1.959964 * 0.031560 / 1.038415 = 0.059567
    #           -> (0.055232, 0.174366)
    # low  = 0.2 - sqrt((0.3 - 0.218952)² + (0.174366 - 0.1)²) = 0.2 - sqrt(0.006569 + 0.005530) = 0.2 - 0.109995
    # high = 0.2 + sqrt((0.395844 - 0.3)² + (0.1 - 0.055232)²) = 0.2 + sqrt(0.009186 + 0.002004) = 0.2 + 0.105784
    low, high = stats.newcombe_interval(30, 100, 10, 100)
    assert low == pytest.approx(0.090005, abs=2e-5)
    assert high == pytest.approx(0.305784, abs=2e-5)
    lift = stats.lift(100, 30, 100, 10)
    assert lift["lift"] == pytest.approx(0.2) and lift["relative_lift"] == pytest.approx(2.0)
    assert (lift["ci_low"], lift["ci_high"]) == (low, high)
    assert lift["significant"]


def test_probability_to_beat_is_a_half_for_equal_results_and_grows_with_the_difference():
    assert stats.probability_to_beat(40, 500, 40, 500) == pytest.approx(0.5)
    # Beta(61, 441) vs Beta(41, 461): means 61/502 = 0.121514 and 41/502 = 0.081673;
    # variances 61·441 / (502²·503) = 2.12223e-4 and 41·461 / (502²·503) = 1.49111e-4;
    # P = Φ(0.039841 / sqrt(3.61334e-4)) = Φ(0.039841 / 0.0190088) = Φ(2.09592) = 0.98196.
    assert stats.probability_to_beat(60, 500, 40, 500) == pytest.approx(0.98196, abs=1e-4)


def variant(label, sent, clicked):
    return {"label": label, "sent": sent, "clicked": clicked, "converted": 0}


def test_a_variant_is_labelled_the_winner_only_when_it_beats_every_other_significantly():
    rows = _variant_figures([variant("A", 500, 40), variant("B", 500, 60)], "click_rate")
    a, b = rows
    assert a["confidence"] is None and not a["is_winner_label"]
    assert b["confidence"] == pytest.approx(0.964994, abs=1e-5) and b["significant"] and b["is_winner_label"]

    rows = _variant_figures([variant("A", 500, 45), variant("B", 500, 50)], "click_rate")
    assert not any(row["is_winner_label"] for row in rows)
    assert not rows[1]["significant"] and math.isclose(rows[1]["confidence"], 1 - 0.58973, abs_tol=1e-4)


def test_a_third_variant_close_to_the_best_takes_the_winner_label_away():
    rows = _variant_figures([variant("A", 500, 40), variant("B", 500, 60), variant("C", 500, 58)], "click_rate")
    assert not any(row["is_winner_label"] for row in rows)
