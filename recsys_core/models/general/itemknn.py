"""Item-based k-nearest-neighbour collaborative filtering.

Sarwar et al., "Item-Based Collaborative Filtering Recommendation Algorithms", WWW 2001.
Item similarity is the cosine between item columns of the training matrix, shrunk towards 0 for
items with little co-occurrence (Koren 2008); each item keeps its k most similar items. A user's
score for item j is the sum of j's similarities to the items in the user's history, so any
history, including one of an unknown user, can be scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from recsys_core.data.split import Split
from recsys_core.models.base import Choice, ModelConfig, Range, Recommender, Validator, multi_hot

K_GRID = (10, 20, 50, 100, 200, 400)
SHRINK_GRID = (0.0, 10.0, 50.0)


@dataclass
class ItemKNNConfig(ModelConfig):
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {
        "k": Range(5, 500, "neighbours per item, from a tight neighbourhood to a third of ml-100k's items", log=True,
                   integer=True),
        "shrink": Range(0.0, 200.0, "discounts similarities resting on few co-occurrences; 0 = plain cosine"),
    }
    k: int = 0  # neighbours per item; 0 = choose on validation from K_GRID
    shrink: float = -1.0  # similarity shrinkage; negative = choose on validation from SHRINK_GRID

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError("k must be >= 0 (0 = tune on validation)")


class ItemKNN(Recommender):
    name = "itemknn"
    family = "baselines"
    paper = "Sarwar et al., Item-Based Collaborative Filtering Recommendation Algorithms, WWW 2001"
    config_class = ItemKNNConfig
    reads_history = True

    def __init__(self, config: ItemKNNConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        width = max(config.k, 1)
        # neighbours[j] are the items most similar to j, weights[j] their similarities.
        self.register_buffer("neighbours", torch.zeros(n_items + 1, width, dtype=torch.long))
        self.register_buffer("weights", torch.zeros(n_items + 1, width))
        self._similarity: torch.Tensor | None = None

    def fit(self, split: Split, validate: Validator) -> list[dict[str, float]]:
        ks = (self.config.k,) if self.config.k > 0 else K_GRID
        shrinks = (self.config.shrink,) if self.config.shrink >= 0 else SHRINK_GRID
        matrix = split.train_matrix.astype(np.float32)
        co_counts = (matrix.T @ matrix).toarray()  # (n+1, n+1) co-occurrence counts
        norms = np.sqrt(np.diag(co_counts))
        log, best = [], (-1.0, None, None)
        for shrink in shrinks:
            similarity = self._cosine(co_counts, norms, shrink)
            for k in ks:
                self._set_neighbours(similarity, min(k, self.n_items))
                score = validate(self)
                log.append({"k": k, "shrink": shrink, "valid NDCG@10": score})
                if score > best[0]:
                    best = (score, k, shrink)
        _, k, shrink = best
        self.config = ItemKNNConfig(k=min(k, self.n_items), shrink=shrink)
        self._set_neighbours(self._cosine(co_counts, norms, shrink), self.config.k)
        return log

    @staticmethod
    def _cosine(co_counts: np.ndarray, norms: np.ndarray, shrink: float) -> np.ndarray:
        similarity = co_counts / (np.outer(norms, norms) + shrink + 1e-12)
        np.fill_diagonal(similarity, 0.0)
        return similarity

    def _set_neighbours(self, similarity: np.ndarray, k: int) -> None:
        sim = torch.from_numpy(similarity.astype(np.float32))
        weights, neighbours = torch.topk(sim, k, dim=0)  # column j: the k items most like j
        self.neighbours = neighbours.T.contiguous()  # (n+1, k)
        self.weights = weights.T.contiguous()
        self._similarity = None

    def _similarity_matrix(self) -> torch.Tensor:
        """Sparse (n+1, n+1) matrix S with S[i, j] = sim(i, j) for i among j's neighbours."""
        if self._similarity is None or self._similarity.device != self.weights.device:
            n = self.n_items + 1
            columns = torch.arange(n, device=self.weights.device).repeat_interleave(self.neighbours.shape[1])
            indices = torch.stack([self.neighbours.reshape(-1), columns])
            self._similarity = torch.sparse_coo_tensor(
                indices, self.weights.reshape(-1), (n, n), check_invariants=False
            ).coalesce()
        return self._similarity

    def item_embeddings(self) -> torch.Tensor:
        return self._similarity_matrix().to_dense().T  # item j as its column of neighbour similarities

    def item_similarity(self, items: torch.Tensor) -> torch.Tensor:
        return self._similarity_matrix().to_dense()[items]  # S[i, j] = sim(i, j) where i is among j's neighbours

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        rows = multi_hot(history, self.n_items)  # (B, n+1)
        return torch.sparse.mm(self._similarity_matrix().t(), rows.t()).t()  # (B, n+1)
