"""The A/B simulator and the paired comparison: scipy's p-values, the sample-size formula, power at
the planned size, planted effects, identical arms and edge cases."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from recsys_core.protocols.abtest import (
    ABDesign,
    align_users,
    analyse_ab,
    compare_paired,
    power_two_means,
    power_two_proportions,
    sample_size_two_means,
    sample_size_two_proportions,
    simulate_ab,
)


def planted(n: int = 1000, control_rate: float = 0.2, treatment_rate: float = 0.35, seed: int = 0):
    """Per-user 0/1 hits of two models on the same users, the treatment clearly better."""
    rng = np.random.default_rng(seed)
    return (rng.random(n) < control_rate).astype(float), (rng.random(n) < treatment_rate).astype(float)


def fleiss(p1: float, p2: float, alpha: float, power: float, fraction: float) -> tuple[int, int]:
    """The two-proportion sample size (pooled null variance, allocation r = n2 / n1), written out afresh."""
    r = fraction / (1 - fraction)
    za, zb = stats.norm.isf(alpha / 2), stats.norm.isf(1 - power)
    p_bar = (p1 + r * p2) / (1 + r)
    numerator = za * math.sqrt(p_bar * (1 - p_bar) * (r + 1) / r) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2) / r)
    n1 = numerator**2 / (p1 - p2) ** 2
    return math.ceil(n1), math.ceil(r * n1)


@pytest.mark.parametrize("binary", [True, False])
def test_p_values_are_scipys_on_the_same_arrays(binary):
    control, treatment = planted()
    if not binary:
        rng = np.random.default_rng(1)
        control, treatment = control * rng.random(1000), treatment * rng.random(1000)
    result = simulate_ab(control, treatment, ABDesign(n_users=1500, treatment_fraction=0.3, seed=4))
    y_c, y_t = result.control_outcomes, result.treatment_outcomes
    assert (len(y_c), len(y_t)) == (1050, 450) == (result.n_control, result.n_treatment)
    assert result.binary is binary
    assert result.welch_p == stats.ttest_ind(y_t, y_c, equal_var=False).pvalue
    assert result.mann_whitney_p == stats.mannwhitneyu(y_t, y_c, alternative="two-sided").pvalue
    assert result.control_rate == pytest.approx(y_c.mean()) and result.treatment_rate == pytest.approx(y_t.mean())
    se = math.sqrt(y_c.var(ddof=1) / len(y_c) + y_t.var(ddof=1) / len(y_t))
    assert result.absolute_ci == pytest.approx(
        (result.absolute_lift - 1.959964 * se, result.absolute_lift + 1.959964 * se)
    )
    low, high = result.relative_ci
    assert result.relative_lift == pytest.approx(y_t.mean() / y_c.mean() - 1)
    assert low < result.relative_lift < high


def test_outcomes_are_each_arms_own_values_of_drawn_users():
    control = np.arange(10, dtype=float)
    treatment = control + 100
    result = simulate_ab(control, treatment, ABDesign(n_users=200, seed=2))
    assert set(result.control_outcomes) <= set(control) and set(result.treatment_outcomes) <= set(treatment)
    again = simulate_ab(control, treatment, ABDesign(n_users=200, seed=2))
    assert np.array_equal(again.treatment_outcomes, result.treatment_outcomes)  # the seed fixes the draw


@pytest.mark.parametrize(
    ("p1", "p2", "alpha", "power", "fraction"),
    [(0.2, 0.22, 0.05, 0.8, 0.5), (0.1, 0.15, 0.01, 0.9, 0.5), (0.5, 0.45, 0.1, 0.8, 0.5), (0.2, 0.25, 0.05, 0.8, 0.2)],
)
def test_sample_size_matches_the_two_proportion_formula(p1, p2, alpha, power, fraction):
    size = sample_size_two_proportions(p1, p2, alpha, power, fraction)
    assert (size.control, size.treatment) == fleiss(p1, p2, alpha, power, fraction)
    if fraction == 0.5:
        assert size.control == size.treatment
    else:
        assert size.treatment == pytest.approx(size.control * fraction / (1 - fraction), abs=1)


def test_a_textbook_figure():
    # 10% -> 15%, alpha 0.05 two-sided, 80% power: about 686 per group (Fleiss' formula without the
    # continuity correction, as in most online calculators).
    assert sample_size_two_proportions(0.10, 0.15).control == 686


@pytest.mark.parametrize("fraction", [0.5, 0.25])
def test_power_is_the_target_at_the_required_size(fraction):
    p1, p2 = 0.2, 0.26
    size = sample_size_two_proportions(p1, p2, 0.05, 0.8, fraction)
    assert power_two_proportions(p1, p2, size.control, size.treatment) == pytest.approx(0.8, abs=0.005)
    # Monte Carlo: the pooled two-proportion z-test at that size rejects about 80% of the time.
    rng = np.random.default_rng(7)
    runs = 4000
    x1 = rng.binomial(size.control, p1, runs)
    x2 = rng.binomial(size.treatment, p2, runs)
    q1, q2 = x1 / size.control, x2 / size.treatment
    pooled = (x1 + x2) / (size.control + size.treatment)
    z = (q2 - q1) / np.sqrt(pooled * (1 - pooled) * (1 / size.control + 1 / size.treatment))
    assert np.mean(np.abs(z) > stats.norm.isf(0.025)) == pytest.approx(0.8, abs=0.03)


def test_sample_size_for_a_continuous_proxy():
    size = sample_size_two_means(0.01, 0.2, 0.2, 0.05, 0.8, 0.5)
    expected = math.ceil((stats.norm.isf(0.025) + stats.norm.isf(0.2)) ** 2 * 2 * 0.04 / 0.0001)
    assert size.control == size.treatment == expected
    uneven = sample_size_two_means(0.01, 0.2, 0.3, 0.05, 0.9, 0.4)
    assert power_two_means(0.01, 0.2, 0.3, uneven.control, uneven.treatment) == pytest.approx(0.9, abs=0.005)


def test_a_clearly_better_treatment_is_significant():
    control, treatment = planted()
    result = simulate_ab(control, treatment, ABDesign(n_users=4000), names=("pop", "sasrec"))
    assert result.welch_p < 0.01 and result.mann_whitney_p < 0.01
    assert result.significant and result.tone == "success" and result.power > 0.99
    assert result.absolute_ci[0] > 0 and result.relative_ci[0] > 0
    assert "sasrec" in result.verdict and "raised the hit rate" in result.verdict
    assert "is statistically significant" in result.verdict and "not statistically" not in result.verdict
    assert result.required is not None and f"{result.required.control:,} users per arm" in result.verdict
    assert "nan" not in result.verdict.lower()


def test_a_worse_treatment_is_a_warning():
    control, treatment = planted()
    result = simulate_ab(treatment, control, ABDesign(n_users=4000))
    assert result.significant and result.tone == "warning" and "lowered" in result.verdict


def test_identical_arms_are_not_significant():
    control, _ = planted()
    result = simulate_ab(control, control, ABDesign(n_users=2000, seed=1), names=("sasrec", "sasrec"))
    assert not result.significant and result.tone == "info"
    assert "not statistically significant" in result.verdict and "A/A test" in result.verdict
    assert "nan" not in result.verdict.lower()


def test_a_small_real_difference_is_not_significant_and_the_verdict_gives_the_size_needed():
    control, treatment = planted(n=2000, control_rate=0.20, treatment_rate=0.21, seed=3)
    result = simulate_ab(control, treatment, ABDesign(n_users=1000, seed=0))
    assert not result.significant
    assert result.required_for_observed is not None
    assert f"{result.required_for_observed.control:,}" in result.verdict
    assert "To detect a lift this size reliably (80% power)" in result.verdict


@pytest.mark.parametrize(
    ("control", "treatment", "welch_p"),
    [(np.zeros(50), np.zeros(50), 1.0), (np.ones(50), np.ones(50), 1.0), (np.zeros(50), np.ones(50), 0.0)],
    ids=["never", "always", "never-always"],
)
def test_rates_of_zero_and_one_give_clear_results(control, treatment, welch_p):
    result = analyse_ab(control, treatment, ABDesign(n_users=100))
    assert result.welch_p == welch_p and 0 <= result.mann_whitney_p <= 1
    assert 0 <= result.power <= 1
    for number in (result.absolute_lift, *result.absolute_ci, result.welch_p, result.mann_whitney_p, result.power):
        assert math.isfinite(number)
    assert "nan" not in result.verdict.lower() and "inf" not in result.verdict.lower()
    if control.mean() == 0:
        assert result.relative_lift is None and "relative lift is undefined" in result.verdict
        assert result.required is None
    else:
        assert "not possible" in result.verdict  # +5% of 100% is not a rate


def test_a_relative_lift_never_falls_below_minus_100_percent():
    result = analyse_ab(np.array([0.0, 0.0, 0.0, 1.0]), np.zeros(6))
    assert result.relative_lift == -1.0 and result.relative_ci[0] == -1.0
    assert result.tone == "info" and "lowered the hit rate (HR@10) from 25.0% to 0.0%" in result.verdict


def test_small_arms_are_flagged_and_too_small_ones_refused():
    control, treatment = planted()
    result = simulate_ab(control, treatment, ABDesign(n_users=20))
    assert "rough" in result.verdict
    with pytest.raises(ValueError, match="fewer than 2 users"):
        ABDesign(n_users=3)
    with pytest.raises(ValueError, match="fewer than 2 users"):
        ABDesign(n_users=20, treatment_fraction=0.05)


@pytest.mark.parametrize(
    "settings",
    [{"treatment_fraction": 0.0}, {"treatment_fraction": 1.0}, {"alpha": 0.0}, {"alpha": float("nan")},
     {"power": 1.0}, {"mde": 0.0}, {"mde": -1.0}, {"n_users": 100.5}],
)  # fmt: skip
def test_bad_designs_are_clear_value_errors(settings):
    with pytest.raises(ValueError):
        ABDesign(**settings)


def test_bad_inputs_are_clear_value_errors():
    with pytest.raises(ValueError, match="same users"):
        simulate_ab(np.zeros(5), np.zeros(6))
    with pytest.raises(ValueError, match="no evaluated users"):
        simulate_ab(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="missing or infinite"):
        simulate_ab(np.array([0.0, np.nan]), np.zeros(2))
    with pytest.raises(ValueError, match="zero difference"):
        sample_size_two_proportions(0.2, 0.2)
    with pytest.raises(ValueError, match="between 0 and 1"):
        sample_size_two_proportions(0.8, 1.2)


def per_user(users, values, metric="NDCG@10") -> pd.DataFrame:
    return pd.DataFrame({"user": users, metric: values})


def test_users_are_aligned_by_id_not_by_row():
    a = per_user([3, 1, 2], [0.3, 0.1, 0.2])
    b = per_user([1, 2, 3, 4], [0.0, 0.1, 0.2, 0.9])
    x, y = align_users(a, b, "NDCG@10")
    assert np.allclose(x - y, 0.1)
    with pytest.raises(ValueError, match="share no evaluated user"):
        align_users(a, per_user([7], [0.0]), "NDCG@10")
    with pytest.raises(ValueError, match="columns"):
        align_users(a, b, "HR@10")


def test_paired_comparison_reuses_the_paired_test_and_says_what_it_means():
    rng = np.random.default_rng(0)
    base = rng.random(500)
    better = per_user(np.arange(500), base + 0.05 + 0.01 * rng.standard_normal(500))
    worse = per_user(np.arange(500)[::-1], base[::-1])
    comparison = compare_paired(better, worse, "NDCG@10", ("sasrec", "pop"))
    assert comparison.mean_difference == pytest.approx(0.05, abs=0.005)
    assert comparison.significant and comparison.t_test_p < 0.001 and comparison.ci_low > 0
    assert "sasrec's mean NDCG@10 is" in comparison.sentence and "higher than pop's" in comparison.sentence
    assert "statistically significant" in comparison.sentence
    same = compare_paired(worse, worse, "NDCG@10", ("pop", "pop"))
    assert not same.significant and same.t_test_p == 1.0 and "nothing to test" in same.sentence
    noise = per_user(np.arange(500), base + 0.001 * rng.standard_normal(500))
    unclear = compare_paired(noise, per_user(np.arange(500), base), "NDCG@10", ("a", "b"))
    assert not unclear.significant or "disagree" in unclear.sentence
