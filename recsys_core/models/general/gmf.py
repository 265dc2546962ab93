"""GMF: Generalized Matrix Factorization, the linear half of Neural Collaborative Filtering.

He et al., "Neural Collaborative Filtering", WWW 2017, section 3.2. The interaction of user u and
item i is the element-wise product of their embeddings, weighted by a learned vector h:

    y_ui = sigmoid(h^T (p_u * q_i) + b)

With h = 1 this is plain matrix factorisation; learning h lets dimensions matter differently.
Trained pointwise with binary cross-entropy on each observed pair plus sampled unobserved ones.
Since h^T (p_u * q_i) = (h * p_u)^T q_i, the score is an inner product: FAISS can retrieve with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_core.data.sampling import pointwise_batches
from recsys_core.data.split import Split
from recsys_core.models.base import (
    LEARNING_RATE,
    Batch,
    Choice,
    Range,
    Recommender,
    TrainableConfig,
    mean_history_vectors,
)


@dataclass
class GMFConfig(TrainableConfig):
    # Quick profile: GMF is near its best well before the full profile stops (docs/measurements.md).
    QUICK: ClassVar[dict[str, object]] = {"epochs": 15}
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {
        "learning_rate": LEARNING_RATE,
        "embedding_dim": Choice((16, 32, 64, 128), "the NCF paper's predictive factors 8-64, and twice the default"),
        "n_negatives": Range(1, 10, "the NCF paper tried 1-10 sampled negatives per positive", integer=True),
        "l2": Range(1e-7, 1e-3, "from almost none to enough to shrink rare users' vectors to zero", log=True),
    }

    embedding_dim: int = 64
    n_negatives: int = 4  # sampled unobserved items per observed pair (the paper's best ratio)
    l2: float = 1e-5  # on the embeddings of each batch
    epochs: int = 100
    batch_size: int = 4096
    learning_rate: float = 2e-3
    patience: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.embedding_dim < 1 or self.n_negatives < 1 or self.l2 < 0:
            raise ValueError("embedding_dim and n_negatives must be positive, l2 non-negative")


class GMF(Recommender):
    name = "gmf"
    family = "NCF"
    paper = "He et al., Neural Collaborative Filtering, WWW 2017 (GMF)"
    config_class = GMFConfig
    trainable = True
    inner_product = True
    cold_start_fallback = "unknown user: the mean of the history's item embeddings stands in for p_u"

    def __init__(self, config: GMFConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        # Sparse tables: a step updates only the rows of its batch (recsys_core/training/optimiser.py).
        self.user_embedding = nn.Embedding(n_users + 1, config.embedding_dim, padding_idx=0, sparse=True)  # p_u
        self.item_embedding = nn.Embedding(n_items + 1, config.embedding_dim, padding_idx=0, sparse=True)  # q_i
        self.h = nn.Parameter(torch.ones(config.embedding_dim))
        self.bias = nn.Parameter(torch.zeros(1))
        nn.init.normal_(self.user_embedding.weight, std=0.01)
        nn.init.normal_(self.item_embedding.weight, std=0.01)
        with torch.no_grad():
            self.user_embedding.weight[0].zero_()
            self.item_embedding.weight[0].zero_()

    def batches(self, split: Split, rng: np.random.Generator) -> Iterator[Batch]:
        return pointwise_batches(split, self.config.n_negatives, self.config.batch_size, rng)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits of (user, item) pairs, (B,)."""
        phi = self.user_embedding(users) * self.item_embedding(items)  # (B, D)
        return phi @ self.h + self.bias

    def loss(self, batch: Batch) -> torch.Tensor:
        p_u, q_i = self.user_embedding(batch["user"]), self.item_embedding(batch["item"])
        logits = (p_u * q_i) @ self.h + self.bias  # (B,)
        regulariser = self.config.l2 * (p_u.pow(2).sum(-1) + q_i.pow(2).sum(-1)).mean()
        return F.binary_cross_entropy_with_logits(logits, batch["label"]) + regulariser

    def query_vectors(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        p_u = self.user_embedding(users)  # (B, D)
        unknown = users == 0
        if unknown.any():
            p_u = torch.where(unknown[:, None], mean_history_vectors(history, self.item_vectors()), p_u)
        return p_u * self.h  # (B, D)

    def item_vectors(self) -> torch.Tensor:
        return self.item_embedding.weight  # (n+1, D)

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.query_vectors(users, history) @ self.item_vectors().T + self.bias  # (B, n+1)
