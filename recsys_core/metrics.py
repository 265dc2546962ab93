"""Metrics as pure functions: per-user ranking metrics, beyond-accuracy measures, labelled-row
scores, and the statistics that compare them (confidence intervals, paired tests). No I/O, no models.

Ranks are 0-based. Ties are broken by the lower internal item id wherever a rank is computed
(``recsys_core.tensors``), so a metric and the list a user sees always agree.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

KS = (10, 20)
ACCURACY_METRICS = tuple(f"{m}@{k}" for k in KS for m in ("HR", "NDCG", "MRR"))
BEYOND_ACCURACY = ("popularity@10", "diversity@10", "novelty@10")
HEADLINE = "NDCG@10"

def hit_rate(ranks: np.ndarray, k: int) -> np.ndarray:
    """1 where the held-out item is in the top k. With one held-out item, HR@K equals Recall@K."""
    return (np.asarray(ranks) < k).astype(np.float64)


def ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    """1 / log2(rank + 2) inside the top k; the ideal DCG of a single relevant item is 1."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)


def mrr(ranks: np.ndarray, k: int) -> np.ndarray:
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks < k, 1.0 / (ranks + 1.0), 0.0)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random positive outscores a random negative (ties
    count half), from the Mann-Whitney rank-sum statistic."""
    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs at least one positive and one negative row")
    ranks = stats.rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean binary cross-entropy of logits, computed stably (no sigmoid then log)."""
    labels = np.asarray(labels, dtype=np.float64)
    logits = np.asarray(logits, dtype=np.float64)
    return float(np.mean(np.logaddexp(0.0, logits) - labels * logits))


def catalogue_coverage(top_items: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one user's list."""
    return len(np.unique(top_items[top_items > 0])) / n_items


def popularity_percentile(top_items: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """Per user, the mean popularity percentile (0 = least, 100 = most popular) of their list."""
    real = popularity[1:]
    percentile = np.zeros_like(popularity, dtype=np.float64)
    percentile[1:] = 100.0 * stats.rankdata(real, method="average") / len(real)
    return percentile[top_items].mean(axis=1)


def intra_list_diversity(top_items: np.ndarray, genres: np.ndarray) -> np.ndarray:
    """Per user, the mean pairwise genre distance (1 - cosine of multi-hot genre vectors).

    Items without genres count as unlike everything else.
    """
    vectors = genres[top_items]  # (U, K, G)
    norms = np.linalg.norm(vectors, axis=2, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    similarity = unit @ unit.transpose(0, 2, 1)  # (U, K, K)
    k = top_items.shape[1]
    pairs = k * (k - 1)
    if pairs == 0:
        return np.zeros(len(top_items))
    off_diagonal = similarity.sum(axis=(1, 2)) - np.trace(similarity, axis1=1, axis2=2)
    return 1.0 - off_diagonal / pairs


def novelty(top_items: np.ndarray, popularity: np.ndarray, n_users: int) -> np.ndarray:
    """Per user, the mean self-information -log2 p(i) of their list, p(i) from training (+1 smoothed)."""
    probability = (popularity + 1.0) / (n_users + 1.0)
    return (-np.log2(probability))[top_items].mean(axis=1)


def ranking_metrics(rank: np.ndarray) -> dict[str, np.ndarray]:
    """Per-user HR, NDCG and MRR at every K in ``KS`` from 0-based ranks of the held-out item."""
    metrics = {}
    for k in KS:
        metrics[f"HR@{k}"] = hit_rate(rank, k)
        metrics[f"NDCG@{k}"] = ndcg(rank, k)
        metrics[f"MRR@{k}"] = mrr(rank, k)
    return metrics


def list_metrics(
    top_items: np.ndarray, popularity: np.ndarray, genres: np.ndarray, n_users: int
) -> dict[str, np.ndarray]:
    """Per-user beyond-accuracy metrics of top-10 lists (``BEYOND_ACCURACY``)."""
    return {
        "popularity@10": popularity_percentile(top_items, popularity),
        "diversity@10": intra_list_diversity(top_items, genres),
        "novelty@10": novelty(top_items, popularity, n_users),
    }


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and its normal-approximation confidence interval (fine at hundreds of users)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean()) if len(values) else float("nan")
    if len(values) < 2:
        return mean, mean, mean
    half = stats.norm.ppf(0.5 + confidence / 2) * values.std(ddof=1) / np.sqrt(len(values))
    return mean, mean - half, mean + half


# Resampled indices drawn per block, so memory stays near 64 MiB whatever the number of users
# (10,000 resamples of 138k users would be 11 GB at once); the draws, and so the result, are the
# same as in one block.
BOOTSTRAP_BLOCK = 2**23


def bootstrap_means(values: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    """(n_bootstrap,) means of ``values`` resampled with replacement, seeded."""
    rng = np.random.default_rng(seed)
    n = len(values)
    per_block = max(1, BOOTSTRAP_BLOCK // max(n, 1))
    means = [values[rng.integers(0, n, size=(min(per_block, n_bootstrap - start), n))].mean(axis=1)
             for start in range(0, n_bootstrap, per_block)]  # fmt: skip
    return np.concatenate(means)


def paired_test(a: np.ndarray, b: np.ndarray, n_bootstrap: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Compare two models on the same users: paired t-test, Wilcoxon signed-rank, bootstrap CI.

    ``a`` and ``b`` are per-user values in the same user order; the difference is ``a - b``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("paired_test needs two per-user arrays of the same length")
    diff = a - b
    if np.allclose(diff, 0):
        t_p = wilcoxon_p = 1.0
    else:
        t_p = float(stats.ttest_rel(a, b).pvalue)
        wilcoxon_p = float(stats.wilcoxon(a, b, zero_method="wilcox").pvalue)
    low, high = np.percentile(bootstrap_means(diff, n_bootstrap, seed), [2.5, 97.5])
    return {
        "mean_difference": float(diff.mean()),
        "t_test_p": t_p,
        "wilcoxon_p": wilcoxon_p,
        "bootstrap_ci_low": float(low),
        "bootstrap_ci_high": float(high),
        "n_users": len(diff),
    }


# --------------------------------------------------------------------------- model evaluation
