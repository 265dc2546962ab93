"""The top-K protocol (SPEC section 3): full-catalogue ranking of every evaluated user's held-out
item, per-user metrics with confidence intervals, and the same metrics for ranked lists that stop
at N items (a two-stage pipeline's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from recsys_core.data import load_dataset, temporal_leave_last_out
from recsys_core.data.features import item_features
from recsys_core.data.split import PROTOCOL, Split
from recsys_core.metrics import (
    ACCURACY_METRICS,
    BEYOND_ACCURACY,
    catalogue_coverage,
    list_metrics,
    mean_ci,
    ranking_metrics,
)
from recsys_core.models.base import Recommender
from recsys_core.results import Estimate, TopKResult
from recsys_core.store.artifacts import ArtifactError, load_artifact, read_manifest
from recsys_core.tensors import mask_history, pad_histories, rank_of_targets, top_k, users_per_batch


@dataclass
class Evaluation:
    """Per-user metrics of one model on one stage ("valid" or "test") of the split."""

    stage: str
    per_user: pd.DataFrame  # one row per evaluated user: user, rank, metrics
    coverage_at_10: float

    def result(self) -> TopKResult:
        """Means with 95% CIs, coverage, and the protocol label that goes wherever they are shown."""
        estimates = {}
        for column in (*ACCURACY_METRICS, *BEYOND_ACCURACY):
            mean, low, high = mean_ci(self.per_user[column].to_numpy())
            estimates[column] = Estimate(mean, low, high)
        return TopKResult(self.stage, PROTOCOL, len(self.per_user), self.coverage_at_10, estimates)

    def summary(self) -> dict[str, object]:
        """:meth:`result` as the store and the command line write it."""
        return self.result().to_json()

    @property
    def ndcg_at_10(self) -> float:
        return float(self.per_user["NDCG@10"].mean())


@torch.no_grad()
def evaluate_model(
    model: Recommender,
    split: Split,
    stage: str = "test",
    genres: np.ndarray | None = None,
    batch_size: int | None = None,
    accuracy_only: bool = False,
    users: np.ndarray | None = None,
) -> Evaluation:
    """Full-catalogue ranking of every evaluated user's held-out item for ``stage``.

    The model reads the stage's input history (train for validation, train+validation for test)
    and the same items are excluded from its ranking. Users are scored ``batch_size`` at a time,
    by default as many as keep a batch's scores within bounds (:func:`users_per_batch`). ``users``
    evaluates a sample of the stage's users instead of all of them (a benchmark at a large size).
    """
    model.eval()
    device = model.device
    users = split.evaluated_users(stage) if users is None else users
    targets = split.targets(stage)
    inputs = split.input_sequences(stage)
    batch_size = batch_size or users_per_batch(model.n_items)
    # An inner-product model's item vectors are the same for every batch: computed once (a two-tower
    # model's score_all runs its item tower over the whole catalogue at every call, and at a million
    # items a batch is 16 users).
    item_vectors = model.item_vectors().T if model.inner_product else None
    ranks, tops = [], []
    for start in range(0, len(users), batch_size):
        batch_users = users[start : start + batch_size]
        history = pad_histories([inputs[u] for u in batch_users], device)
        user_tensor = torch.from_numpy(batch_users).to(device)
        if item_vectors is None:
            scores = model.score_all(user_tensor, history)
        else:
            scores = model.query_vectors(user_tensor, history) @ item_vectors
        scores = mask_history(scores.float(), history)
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
    per_user = pd.DataFrame({"user": users, "rank": rank, **ranking_metrics(rank)})
    coverage = float("nan")
    if top is not None:
        genres = genres if genres is not None else np.zeros((split.n_items + 1, 1), dtype=np.float32)
        for name, values in list_metrics(top, split.item_popularity, genres, split.n_users).items():
            per_user[name] = values
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
