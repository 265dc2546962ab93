"""Metrics as pure functions, full-ranking evaluation of a model on the split, and paired tests.

Ranks are 0-based. Ties are broken by the lower internal item id, both here and in every list the
lab shows, so a metric and the list a user sees always agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats

from recsys_core.artifacts import ArtifactError, load_artifact, read_manifest
from recsys_core.data import load_dataset, temporal_leave_last_out
from recsys_core.data.features import item_features
from recsys_core.data.split import PROTOCOL, Split
from recsys_core.models.base import Recommender

KS = (10, 20)
ACCURACY_METRICS = tuple(f"{m}@{k}" for k in KS for m in ("HR", "NDCG", "MRR"))
BEYOND_ACCURACY = ("popularity@10", "diversity@10", "novelty@10")
HEADLINE = "NDCG@10"


# --------------------------------------------------------------------------- pure metrics


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


def rank_of_targets(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each row's target among its scores; ties go to the lower item id."""
    target_scores = scores.gather(1, targets[:, None])  # (B, 1)
    ids = torch.arange(scores.shape[1], device=scores.device)[None, :]
    ahead = (scores > target_scores) | ((scores == target_scores) & (ids < targets[:, None]))
    return ahead.sum(dim=1)


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best items per row, ties to the lower item id (a stable descending sort)."""
    k = min(k, scores.shape[1])
    values, indices = torch.sort(scores, dim=1, descending=True, stable=True)
    return indices[:, :k], values[:, :k]


def mask_history(scores: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    """Scores with padding (item 0) and every item of the (padded) history set to -inf."""
    masked = scores.clone()
    masked.scatter_(1, history, float("-inf"))
    masked[:, 0] = float("-inf")
    return masked


def pad_histories(sequences: list[np.ndarray], device: torch.device | str = "cpu") -> torch.Tensor:
    """Left-padded (B, L) LongTensor, most recent item last; L >= 1 so empty histories work."""
    length = max(1, max((len(s) for s in sequences), default=0))
    padded = np.zeros((len(sequences), length), dtype=np.int64)
    for row, seq in enumerate(sequences):
        if len(seq):
            padded[row, -len(seq) :] = seq
    return torch.from_numpy(padded).to(device)


# --------------------------------------------------------------------------- summaries and tests


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and its normal-approximation confidence interval (fine at hundreds of users)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean()) if len(values) else float("nan")
    if len(values) < 2:
        return mean, mean, mean
    half = stats.norm.ppf(0.5 + confidence / 2) * values.std(ddof=1) / np.sqrt(len(values))
    return mean, mean - half, mean + half


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
    rng = np.random.default_rng(seed)
    resampled = diff[rng.integers(0, len(diff), size=(n_bootstrap, len(diff)))].mean(axis=1)
    low, high = np.percentile(resampled, [2.5, 97.5])
    return {
        "mean_difference": float(diff.mean()),
        "t_test_p": t_p,
        "wilcoxon_p": wilcoxon_p,
        "bootstrap_ci_low": float(low),
        "bootstrap_ci_high": float(high),
        "n_users": len(diff),
    }


# --------------------------------------------------------------------------- model evaluation


@dataclass
class Evaluation:
    """Per-user metrics of one model on one stage ("valid" or "test") of the split."""

    stage: str
    per_user: pd.DataFrame  # one row per evaluated user: user, rank, metrics
    coverage_at_10: float

    def summary(self) -> dict[str, object]:
        """Means with 95% CIs, coverage, and the protocol label that goes wherever they are shown."""
        metrics: dict[str, object] = {}
        for column in (*ACCURACY_METRICS, *BEYOND_ACCURACY):
            mean, low, high = mean_ci(self.per_user[column].to_numpy())
            metrics[column] = mean
            metrics[f"{column} CI"] = [low, high]
        metrics["coverage@10"] = self.coverage_at_10
        metrics["users"] = len(self.per_user)
        metrics["stage"] = self.stage
        metrics["protocol"] = PROTOCOL
        return metrics

    @property
    def ndcg_at_10(self) -> float:
        return float(self.per_user["NDCG@10"].mean())


@torch.no_grad()
def evaluate_model(
    model: Recommender,
    split: Split,
    stage: str = "test",
    genres: np.ndarray | None = None,
    batch_size: int = 512,
    accuracy_only: bool = False,
) -> Evaluation:
    """Full-catalogue ranking of every evaluated user's held-out item for ``stage``.

    The model reads the stage's input history (train for validation, train+validation for test)
    and the same items are excluded from its ranking.
    """
    model.eval()
    device = model.device
    users = split.evaluated_users(stage)
    targets = split.targets(stage)
    inputs = split.input_sequences(stage)
    ranks, tops = [], []
    for start in range(0, len(users), batch_size):
        batch_users = users[start : start + batch_size]
        history = pad_histories([inputs[u] for u in batch_users], device)
        user_tensor = torch.from_numpy(batch_users).to(device)
        scores = mask_history(model.score_all(user_tensor, history).float(), history)
        target_tensor = torch.from_numpy(targets[batch_users]).to(device)
        ranks.append(rank_of_targets(scores, target_tensor).cpu().numpy())
        if not accuracy_only:
            tops.append(top_k(scores, 10)[0].cpu().numpy())
    rank = np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)
    top = None if accuracy_only else (np.concatenate(tops) if tops else np.zeros((0, 10), dtype=np.int64))
    return evaluation_from_ranks(split, stage, users, rank, top, genres)


def evaluate_lists(
    split: Split, stage: str, users: np.ndarray, lists: np.ndarray, genres: np.ndarray | None = None
) -> Evaluation:
    """The same metrics for ranked lists (U, N) that stop at N items, such as a two-stage pipeline's.

    A held-out item missing from its user's list counts as ranked after all of it (rank N), so
    every metric at K <= N equals what the full ranking would give.
    """
    targets = split.targets(stage)[users]
    found = lists == targets[:, None]
    rank = np.where(found.any(axis=1), found.argmax(axis=1), lists.shape[1])
    top = lists[:, :10] if lists.shape[1] >= 10 else None
    return evaluation_from_ranks(split, stage, users, rank, top, genres)


def evaluation_from_ranks(
    split: Split,
    stage: str,
    users: np.ndarray,
    rank: np.ndarray,
    top: np.ndarray | None,
    genres: np.ndarray | None = None,
) -> Evaluation:
    """Per-user accuracy metrics from 0-based ranks, and beyond-accuracy ones from top-10 lists."""
    per_user = pd.DataFrame({"user": users, "rank": rank})
    for k in KS:
        per_user[f"HR@{k}"] = hit_rate(rank, k)
        per_user[f"NDCG@{k}"] = ndcg(rank, k)
        per_user[f"MRR@{k}"] = mrr(rank, k)
    coverage = float("nan")
    if top is not None:
        popularity = split.item_popularity
        genres = genres if genres is not None else np.zeros((split.n_items + 1, 1), dtype=np.float32)
        per_user["popularity@10"] = popularity_percentile(top, popularity)
        per_user["diversity@10"] = intra_list_diversity(top, genres)
        per_user["novelty@10"] = novelty(top, popularity, split.n_users)
        coverage = catalogue_coverage(top, split.n_items)
    return Evaluation(stage, per_user, coverage)


def evaluate_models(dataset_name: str, models: list[str] | None = None) -> dict[str, dict]:
    """Fresh test evaluation of stored models (not just the stored numbers).

    Returns ``{model: summary}``; a model that cannot be loaded gets ``{"error": message}``.
    """
    dataset = load_dataset(dataset_name)
    split = temporal_leave_last_out(dataset)
    genres = item_features(dataset, split.item_popularity).genres
    names = models or sorted(read_manifest(dataset.name)["models"])
    results: dict[str, dict] = {}
    for name in names:
        try:
            artifact = load_artifact(dataset, name)
        except ArtifactError as error:
            results[name] = {"error": str(error)}
            continue
        results[name] = evaluate_model(artifact.model, split, "test", genres).summary()
    return results
