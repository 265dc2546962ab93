"""The two-stage pipeline on the top-K protocol: the funnel's candidate recall@N, the retriever's
own list and the ranker's order of the same candidates, each with the protocol's metrics; and the
blend of the two stages' orders, chosen on validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recsys_core.data import load_dataset, temporal_leave_last_out
from recsys_core.data.features import item_features
from recsys_core.data.split import Split
from recsys_core.models.base import Recommender
from recsys_core.protocols.topk import Evaluation, evaluate_lists
from recsys_core.results import FunnelResult
from recsys_core.serving.pipeline import (
    BLEND_GRID,
    DEFAULT_CANDIDATES,
    PipelineError,
    blend_for,
    candidate_lists,
    candidate_scores,
    load_pipeline,
    order_by,
    rerank_lists,
)
from recsys_core.serving.retriever import ItemIndex
from recsys_core.store.artifacts import ArtifactError


@dataclass
class PipelineEvaluation:
    """The funnel on one stage of the split, per user: what retrieval found, and what ranking made
    of it (the retriever's list and the final one, each with the protocol's per-user metrics)."""

    retriever: Evaluation  # the retriever's own list (the candidates in its order)
    final: Evaluation  # the ranker's order of the same candidates
    candidate_recall: float  # share of held-out items among the N candidates (recall@N)
    n_candidates: int

    @property
    def stage(self) -> str:
        return self.final.stage

    def result(self, retriever_model: str | None = None) -> FunnelResult:
        return FunnelResult(self.stage, self.n_candidates, self.candidate_recall, self.retriever.result(),
                            self.final.result(), retriever_model)  # fmt: skip

    def summary(self) -> dict[str, object]:
        return self.result().to_json()


def evaluate_pipeline(
    retriever: Recommender,
    ranker: Recommender | None,
    split: Split,
    stage: str = "test",
    n_candidates: int = DEFAULT_CANDIDATES,
    genres: np.ndarray | None = None,
    index: ItemIndex | None = None,
    candidates: tuple[np.ndarray, np.ndarray] | None = None,
    blend: float | None = None,
) -> PipelineEvaluation:
    """The funnel metrics of retriever -> ranker on ``stage``; pass ``candidates`` (from
    :func:`candidate_lists`) to reuse one retrieval for several rankers, and ``blend`` to override
    the tuned weight of the retriever's order (0: the ranker alone)."""
    if candidates is None:
        candidates = candidate_lists(retriever, split, stage, n_candidates, index)
    users, lists = candidates
    targets = split.targets(stage)[users]
    recall = float((lists == targets[:, None]).any(axis=1).mean()) if len(users) else float("nan")
    retrieved = evaluate_lists(split, stage, users, lists, genres)
    final = retrieved
    if ranker is not None:
        blend = blend_for(retriever, ranker) if blend is None else blend
        final = evaluate_lists(split, stage, users, rerank_lists(ranker, split, stage, users, lists, blend), genres)
    return PipelineEvaluation(retrieved, final, recall, lists.shape[1])


def tune_blend(
    ranker: Recommender, split: Split, pool: np.ndarray, grid: tuple[float, ...] = BLEND_GRID
) -> tuple[float, dict[float, float]]:
    """The blend with the best validation NDCG@10 over the pool's candidates (ties: the smaller
    blend, so the ranker keeps the most say), and the NDCG@10 of every blend tried. The ranker
    scores the candidates once; only their order changes with the blend."""
    users = split.evaluated_users("valid")
    lists = pool[users]
    scores = candidate_scores(ranker, split, "valid", users, lists)
    tried = {}
    for blend in grid:
        ranked = order_by(torch.from_numpy(lists), scores, blend)[0].numpy()
        tried[blend] = evaluate_lists(split, "valid", users, ranked).ndcg_at_10
    best = max(grid, key=lambda b: (tried[b], -b))
    return best, tried


def evaluate_pipelines(dataset_name: str, names: list[str], n_candidates: int = DEFAULT_CANDIDATES) -> dict[str, dict]:
    """Fresh test evaluation of ``RETRIEVER+RANKER`` pipelines: ``{name: final summary + recall@N}``;
    a pipeline whose models cannot be loaded gets ``{"error": message}``."""
    dataset = load_dataset(dataset_name)
    split = temporal_leave_last_out(dataset)
    genres = item_features(dataset, split.item_popularity).genres
    results: dict[str, dict] = {}
    for name in names:
        try:
            retriever, ranker = load_pipeline(dataset, name)
        except (ArtifactError, PipelineError) as error:
            results[name] = {"error": str(error)}
            continue
        funnel = evaluate_pipeline(retriever, ranker, split, "test", n_candidates, genres)
        results[name] = {**funnel.final.summary(), f"recall@{funnel.n_candidates}": funnel.candidate_recall}
    return results
