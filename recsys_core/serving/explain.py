"""Comparing and explaining models' lists: overlap between models, "because you watched" reasons,
and what-if edits of a history. Pure functions over ids, vectors and weights; the pages render them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recsys_core.data.dataset import Dataset
from recsys_core.data.split import Split
from recsys_core.models.base import Recommender
from recsys_core.serving.pipeline import recommend_pipeline
from recsys_core.serving.recommend import Answer, Request, recommend, session_attention

# --------------------------------------------------------------------------- overlap between lists


def jaccard(a: list, b: list) -> float:
    """|A ∩ B| / |A ∪ B| of two lists read as sets; 1.0 for two empty lists."""
    left, right = set(a), set(b)
    union = left | right
    return len(left & right) / len(union) if union else 1.0


def rank_biased_overlap(a: list, b: list, p: float = 0.9) -> float:
    """Extrapolated rank-biased overlap (Webber, Moffat & Zobel, TOIS 2010, eq. 32) of two
    rankings: agreement at every depth d, weighted by p^(d-1), so the top matters most.
    1.0 for identical lists, 0.0 for disjoint ones; lists of unequal length use the shorter depth."""
    if not 0 < p < 1:
        raise ValueError("p must be in (0, 1)")
    depth = min(len(a), len(b))
    if depth == 0:
        return 1.0 if len(a) == len(b) else 0.0
    seen_a, seen_b, overlap, total = set(), set(), 0, 0.0
    for d in range(1, depth + 1):
        x, y = a[d - 1], b[d - 1]
        if x == y:
            overlap += 1
        else:
            overlap += (x in seen_b) + (y in seen_a)
        seen_a.add(x)
        seen_b.add(y)
        total += overlap / d * p**d
    return float(overlap / depth * p**depth + (1 - p) / p * total)


def overlap_matrix(lists: dict[str, list], measure: str = "jaccard", p: float = 0.9) -> pd.DataFrame:
    """Square frame of pairwise overlaps between named lists (``jaccard`` or ``rbo``)."""
    if measure not in ("jaccard", "rbo"):
        raise ValueError("measure must be 'jaccard' or 'rbo'")
    names = list(lists)
    values = np.ones((len(names), len(names)))
    for i, first in enumerate(names):
        for j, second in enumerate(names[:i]):
            a, b = lists[first], lists[second]
            values[i, j] = values[j, i] = jaccard(a, b) if measure == "jaccard" else rank_biased_overlap(a, b, p)
    return pd.DataFrame(values, index=names, columns=names)


def compare_lists(lists: dict[str, list[str]]) -> pd.DataFrame:
    """Several models' lists in long form, one row per model and rank: the item and in how many of
    the lists it appears (``shared by``, 1 when only this model has it), for a side-by-side view."""
    counts: dict[str, int] = {}
    for items in lists.values():
        for item in set(items):
            counts[item] = counts.get(item, 0) + 1
    rows = [{"model": model, "rank": rank, "item": item, "shared by": counts[item]}
            for model, items in lists.items() for rank, item in enumerate(items, start=1)]  # fmt: skip
    return pd.DataFrame(rows, columns=["model", "rank", "item", "shared by"])


# --------------------------------------------------------------------------- every model at once


def recommend_each(
    models: dict[str, Recommender], dataset: Dataset, split: Split, request: Request
) -> dict[str, Answer | str]:
    """Each model's answer to the same request; a model that fails gets its error message instead,
    so one broken model never hides the others."""
    answers: dict[str, Answer | str] = {}
    for name, model in models.items():
        try:
            answers[name] = recommend(model, dataset, split, request)
        except Exception as error:  # any model failure is shown in that model's own column
            answers[name] = f"{name} could not answer: {type(error).__name__}: {error}"
    return answers


def pipeline_each(
    retriever: Recommender, rankers: dict[str, Recommender], dataset: Dataset, split: Split, request: Request
) -> dict[str, Answer | str]:
    """Each ranker's answer as the second stage over ``retriever``'s candidates (model name
    ``retriever+ranker`` in the answer); a failure gets its message, as in :func:`recommend_each`."""
    answers: dict[str, Answer | str] = {}
    for name, ranker in rankers.items():
        try:
            answers[name] = recommend_pipeline(retriever, ranker, dataset, split, request).answer
        except Exception as error:  # shown in that ranker's own column
            answers[name] = f"{retriever.name}+{name} could not answer: {type(error).__name__}: {error}"
    return answers


def answer_each(
    models: dict[str, Recommender], dataset: Dataset, split: Split, request: Request, retriever: Recommender | None
) -> dict[str, Answer | str]:
    """Each model's answer to the same request: with a ``retriever``, the rankers reorder its
    candidates (:func:`pipeline_each`); every other model, and every ranker without one, answers alone."""
    staged = {name: model for name, model in models.items() if retriever is not None and model.is_ranker}
    alone = {name: model for name, model in models.items() if name not in staged}
    answers = recommend_each(alone, dataset, split, request)
    return answers | (pipeline_each(retriever, staged, dataset, split, request) if staged else {})


def usual_retriever(rankers: list[Recommender], retrievers: list[str]) -> str | None:
    """The retriever among ``retrievers`` that most of ``rankers`` were trained over (the first of
    them on a tie), so each ranker keeps the candidates it learned from; None when none was."""
    trained_over = [ranker.config.retriever() for ranker in rankers]
    return max((name for name in retrievers if name in trained_over), key=trained_over.count, default=None)


# --------------------------------------------------------------------------- because you watched


@dataclass
class ReasonVectors:
    """Unit-length item vectors that reasons are computed from, and what they are."""

    # (n_items + 1, D) rows L2-normalised, row 0 padding: dense (a model's vectors) or sparse (each
    # item's column of the training matrix: dense, that would be items x users floats).
    vectors: np.ndarray | sp.csr_matrix
    source: str  # "the model's item vectors" or "co-watching in the training data"

    def cosine(self, rows: list[int], columns: list[int]) -> np.ndarray:
        """(len(rows), len(columns)) cosine similarities of two lists of items."""
        similarity = self.vectors[rows] @ self.vectors[columns].T
        return similarity.toarray() if sp.issparse(similarity) else similarity


def reason_vectors(model: Recommender, split: Split) -> ReasonVectors:
    """The model's own item vectors where it has them; otherwise each item's column of the
    training matrix (who watched it), so similar means watched by the same people."""
    try:
        with torch.no_grad():
            vectors = model.item_vectors().detach().float().cpu().numpy()
    except NotImplementedError:
        watched = split.train_matrix.T.tocsr().astype(np.float32)  # (n_items + 1, n_users + 1), sparse
        norms = np.sqrt(np.asarray(watched.multiply(watched).sum(axis=1))).ravel()
        scaled = sp.diags(1.0 / np.maximum(norms, 1e-12)).astype(np.float32) @ watched
        return ReasonVectors(scaled.tocsr(), "co-watching in the training data")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return ReasonVectors(vectors / np.maximum(norms, 1e-12), f"{model.name}'s item vectors")


def because_you_watched(
    vectors: ReasonVectors,
    history: list[int],
    recommended: list[int],
    n: int = 2,
    weights: np.ndarray | None = None,
) -> list[list[int]]:
    """For each recommended item, the (at most ``n``) history items most similar to it by cosine,
    each similarity multiplied by that history item's weight (e.g. the attention it received);
    only positive evidence counts, so a list may be empty."""
    unique = list(dict.fromkeys(i for i in history if i))
    if not unique or not recommended:
        return [[] for _ in recommended]
    weight = np.ones(len(unique)) if weights is None else _weights_per_item(history, weights, unique)
    similarity = vectors.cosine(recommended, unique)  # (R, H)
    evidence = similarity * weight[None, :]
    reasons = []
    for row in evidence:
        order = np.argsort(-row, kind="stable")[:n]
        reasons.append([unique[j] for j in order if row[j] > 0])
    return reasons


def _weights_per_item(history: list[int], weights: np.ndarray, unique: list[int]) -> np.ndarray:
    """Sum the per-position weights of a history (aligned to its most recent positions) per item."""
    per_item = dict.fromkeys(unique, 0.0)
    aligned = history[-len(weights) :] if len(weights) else []
    for item, w in zip(aligned, weights[-len(aligned) :] if aligned else [], strict=True):
        if item:
            per_item[item] += float(w)
    return np.array([per_item[i] for i in unique])


def final_attention(weights: np.ndarray, n_history: int) -> np.ndarray:
    """How the position that predicts the next item spreads its attention over the last
    ``n_history`` history positions, averaged over layers and heads: (n_history,).

    ``weights`` is (n_layers, n_heads, T, T) as :func:`recsys_core.serving.recommend.session_attention`
    returns it; the predicting position is the last row (BERT4Rec's appended [mask], or SASRec's
    most recent item)."""
    last = weights[:, :, -1, :].mean(axis=(0, 1))  # (T,)
    return last[:n_history] if weights.shape[-1] > n_history else last


def explain_items(
    model: Recommender, vectors: ReasonVectors, dataset: Dataset, history: list[int], items: list[str], n: int = 2
) -> tuple[list[str], str]:
    """A short reason per recommended item (external ids): the titles of its nearest history
    items, and a phrase saying how they were chosen. Models with attention weigh each history item by
    the attention the predicting position gives it."""
    if not model.personalised:
        return ["popular with everyone"] * len(items), f"{model.name} gives every user the same list"
    weights, source = None, f"the nearest history items by {vectors.source}"
    known = [i for i in history if i]
    if model.has_attention and known:
        view = session_attention(model, dataset, [str(dataset.item_ids[i]) for i in known])
        kept = len(view.items) - view.items.count("[mask]")
        weights = final_attention(view.weights, kept)
        source = f"the history items {model.name} attends to most, weighted by similarity of its item vectors"
    recommended = [dataset.item_index(i) for i in items]
    reasons = because_you_watched(vectors, known, recommended, n, weights)
    return [" · ".join(dataset.titles(r)) if r else "—" for r in reasons], source


# --------------------------------------------------------------------------- what-if


def without_position(history: list[str], position: int) -> list[str]:
    """The history with one position removed (the same item elsewhere stays)."""
    if not 0 <= position < len(history):
        raise IndexError(f"position {position} is outside a history of {len(history)} items")
    return history[:position] + history[position + 1 :]


def rank_changes(before: list[str], after: list[str]) -> pd.DataFrame:
    """How a top-K list moved after an edit: per item (in either list) its rank before and after
    (NaN when absent) and what happened: ``new``, ``gone``, ``up``, ``down`` or ``same``."""
    items = list(dict.fromkeys([*after, *before]))
    rank_before = {item: r for r, item in enumerate(before, start=1)}
    rank_after = {item: r for r, item in enumerate(after, start=1)}
    rows = []
    for item in items:
        b, a = rank_before.get(item), rank_after.get(item)
        if b is None:
            change = "new"
        elif a is None:
            change = "gone"
        else:
            change = "up" if a < b else "down" if a > b else "same"
        rows.append({"item": item, "rank before": b, "rank after": a, "change": change})
    return pd.DataFrame(rows, columns=["item", "rank before", "rank after", "change"])
