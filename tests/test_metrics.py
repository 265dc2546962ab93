import numpy as np
import pytest
import torch
from scipy import stats

from recsys_core.metrics import (
    catalogue_coverage,
    hit_rate,
    intra_list_diversity,
    mean_ci,
    mrr,
    ndcg,
    novelty,
    paired_test,
    popularity_percentile,
)
from recsys_core.tensors import SCORES_PER_BATCH, mask_history, pad_histories, rank_of_targets, top_k, users_per_batch

RANKS = np.array([0, 1, 9, 10, 25])


def test_accuracy_metrics_match_hand_computed_values():
    assert hit_rate(RANKS, 10).tolist() == [1, 1, 1, 0, 0]
    assert hit_rate(RANKS, 20).mean() == pytest.approx(4 / 5)
    expected_ndcg = [1.0, 1 / np.log2(3), 1 / np.log2(11), 0.0, 0.0]
    assert ndcg(RANKS, 10) == pytest.approx(expected_ndcg)
    assert ndcg(RANKS, 20)[3] == pytest.approx(1 / np.log2(12))
    assert mrr(RANKS, 10) == pytest.approx([1.0, 0.5, 0.1, 0.0, 0.0])
    assert mrr(RANKS, 20)[3] == pytest.approx(1 / 11)


def test_rank_breaks_ties_towards_lower_item_id_like_top_k():
    scores = torch.tensor([[-np.inf, 1.0, 3.0, 3.0, 0.5]])
    assert rank_of_targets(scores, torch.tensor([3])).item() == 1  # item 2 ties and has the lower id
    assert rank_of_targets(scores, torch.tensor([2])).item() == 0
    items, values = top_k(scores, 3)
    assert items.tolist() == [[2, 3, 1]]
    assert values.tolist() == [[3.0, 3.0, 1.0]]


@pytest.mark.parametrize("kind", ["distinct", "many ties", "mostly masked", "NaN"])
def test_top_k_of_a_large_catalogue_equals_the_first_k_of_a_stable_sort(kind):
    # Past 64 x k items top_k sorts only the items at or above the k-th best value: same answer.
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(32, 5000, generator=generator)
    if kind == "many ties":
        scores = torch.randint(0, 7, (32, 5000), generator=generator).float()
    elif kind == "mostly masked":
        scores[:, :4990] = -np.inf  # only 10 items left: the k-th best of k = 20 is -inf
        scores[3] = -np.inf
    elif kind == "NaN":
        scores[5, 100] = float("nan")
    for k in (1, 10, 20):
        values, order = torch.sort(scores, dim=1, descending=True, stable=True)
        items, best = top_k(scores, k)
        assert torch.equal(items, order[:, :k]) and torch.equal(best.nan_to_num(), values[:, :k].nan_to_num())


def test_users_per_batch_keeps_a_batchs_scores_bounded_at_a_million_items():
    assert users_per_batch(1682) == 512 and users_per_batch(1_000_000) == 16 and users_per_batch(10**9) == 1
    assert users_per_batch(1_000_000) * 1_000_001 <= SCORES_PER_BATCH


def test_mask_history_excludes_history_and_padding():
    history = pad_histories([np.array([2, 4]), np.array([], dtype=np.int64)])
    assert history.tolist() == [[2, 4], [0, 0]]
    masked = mask_history(torch.ones(2, 5), history)
    assert torch.isinf(masked[0, [0, 2, 4]]).all() and torch.isfinite(masked[0, [1, 3]]).all()
    assert torch.isinf(masked[1, 0]) and torch.isfinite(masked[1, 1:]).all()


def test_beyond_accuracy_metrics_match_hand_computed_values():
    top = np.array([[1, 2], [1, 3]])
    assert catalogue_coverage(top, n_items=4) == pytest.approx(3 / 4)

    popularity = np.array([0.0, 10.0, 5.0, 1.0, 0.0])  # index 0 is padding
    # percentiles among the 4 real items: ranks 4, 3, 2, 1 -> 100, 75, 50, 25
    assert popularity_percentile(top, popularity) == pytest.approx([(100 + 75) / 2, (100 + 50) / 2])

    genres = np.array([[0, 0], [1, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float32)
    # identical genres -> distance 0; disjoint -> 1
    assert intra_list_diversity(top, genres) == pytest.approx([0.0, 1.0])

    n_users = 9
    expected = [(-np.log2(11 / 10) - np.log2(6 / 10)) / 2, (-np.log2(11 / 10) - np.log2(2 / 10)) / 2]
    assert novelty(top, popularity, n_users) == pytest.approx(expected)


def test_mean_ci_is_the_normal_interval():
    values = np.array([0.0, 1.0, 0.0, 1.0])
    mean, low, high = mean_ci(values)
    half = 1.959964 * values.std(ddof=1) / 2
    assert (mean, low, high) == pytest.approx((0.5, 0.5 - half, 0.5 + half), rel=1e-5)


def test_paired_test_agrees_with_scipy_and_brackets_the_difference():
    rng = np.random.default_rng(1)
    a = rng.random(200)
    b = a - 0.05 + rng.normal(0, 0.05, 200)
    result = paired_test(a, b)
    assert result["t_test_p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert result["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert result["bootstrap_ci_low"] < result["mean_difference"] < result["bootstrap_ci_high"]
    assert result["t_test_p"] < 1e-6


def test_paired_test_of_identical_models_is_not_significant():
    a = np.array([0.0, 1.0, 0.5])
    result = paired_test(a, a.copy())
    assert result["t_test_p"] == 1.0 and result["wilcoxon_p"] == 1.0 and result["mean_difference"] == 0.0
    with pytest.raises(ValueError):
        paired_test(a, a[:2])
