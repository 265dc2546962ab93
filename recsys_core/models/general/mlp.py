"""MLP: the neural half of Neural Collaborative Filtering.

He et al., "Neural Collaborative Filtering", WWW 2017, section 3.3. User and item embeddings are
concatenated and passed through a tower of ReLU layers, each half the width of the one before,
so the network can learn interactions a dot product cannot express:

    z_1 = [p_u ; q_i],  z_l = ReLU(W_l z_{l-1} + b_l),  y_ui = sigmoid(h^T z_L)

Trained pointwise with binary cross-entropy on observed pairs plus sampled unobserved ones. The
score is not an inner product, so scoring the catalogue runs the tower on every (user, item) pair.
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
from recsys_core.models.layers import mlp


@dataclass
class MLPConfig(TrainableConfig):
    # Quick profile: fewer epochs only; fewer negatives or a faster rate did worse in as long (docs/measurements.md).
    QUICK: ClassVar[dict[str, object]] = {"epochs": 12}
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {
        "learning_rate": LEARNING_RATE,
        "embedding_dim": Choice((16, 32, 64), "per side: half to twice the default"),
        "n_negatives": Range(1, 10, "the NCF paper tried 1-10 sampled negatives per positive", integer=True),
        "dropout": Range(0.0, 0.5, "none to half of the tower's units"),
    }

    embedding_dim: int = 32  # per side; the tower's input is twice this
    layers: tuple[int, ...] = (64, 32, 16)  # the paper's halving tower
    dropout: float = 0.1
    n_negatives: int = 4
    l2: float = 1e-5
    epochs: int = 100
    batch_size: int = 1024  # the tower needs more, smaller steps than GMF to start learning
    learning_rate: float = 2e-3
    patience: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        self.layers = tuple(self.layers)  # JSON gives a list back
        if self.embedding_dim < 1 or not self.layers or min(self.layers) < 1 or not 0 <= self.dropout < 1:
            raise ValueError("embedding_dim and layer sizes must be positive, dropout in [0, 1)")


class MLP(Recommender):
    name = "mlp"
    family = "NCF"
    paper = "He et al., Neural Collaborative Filtering, WWW 2017 (MLP)"
    config_class = MLPConfig
    trainable = True
    cold_start_fallback = "unknown user: the mean of the history's item embeddings stands in for p_u"

    def __init__(self, config: MLPConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        self.user_embedding = nn.Embedding(n_users + 1, config.embedding_dim, padding_idx=0)
        self.item_embedding = nn.Embedding(n_items + 1, config.embedding_dim, padding_idx=0)
        self.tower = mlp((2 * config.embedding_dim, *config.layers), config.dropout)
        self.h = nn.Linear(config.layers[-1], 1)
        nn.init.normal_(self.user_embedding.weight, std=0.01)
        nn.init.normal_(self.item_embedding.weight, std=0.01)
        with torch.no_grad():
            self.user_embedding.weight[0].zero_()
            self.item_embedding.weight[0].zero_()

    def batches(self, split: Split, rng: np.random.Generator) -> Iterator[Batch]:
        return pointwise_batches(split, self.config.n_negatives, self.config.batch_size, rng)

    def forward(self, p_u: torch.Tensor, q_i: torch.Tensor) -> torch.Tensor:
        """Logits from user and item embeddings with matching leading shapes (..., D) -> (...)."""
        return self.h(self.tower(torch.cat([p_u, q_i], dim=-1))).squeeze(-1)

    def loss(self, batch: Batch) -> torch.Tensor:
        p_u, q_i = self.user_embedding(batch["user"]), self.item_embedding(batch["item"])
        regulariser = self.config.l2 * (p_u.pow(2).sum(-1) + q_i.pow(2).sum(-1)).mean()
        return F.binary_cross_entropy_with_logits(self(p_u, q_i), batch["label"]) + regulariser

    def item_embeddings(self) -> torch.Tensor:
        return self.item_embedding.weight  # q_i

    def user_embeddings(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.user_embedding(users)  # p_u

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        items = self.item_embedding.weight  # (n+1, D)
        p_u = self.user_embedding(users)  # (B, D)
        unknown = users == 0
        if unknown.any():
            p_u = torch.where(unknown[:, None], mean_history_vectors(history, items), p_u)
        return self.h(score_pairs(self.tower, p_u, items)).squeeze(-1)  # (B, n+1)


def score_pairs(tower: nn.Sequential, p_u: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The tower's output for every (user, item) pair, (B, n, width), from (B, D) users and (n, D) items.

    The first layer is linear, so W [p_u ; q_i] = W_u p_u + W_i q_i: each half is computed once
    rather than once per pair, which makes scoring the whole catalogue several times faster.
    """
    first = tower[0]
    w_u, w_i = first.weight[:, : p_u.shape[1]], first.weight[:, p_u.shape[1] :]
    pre_activation = (p_u @ w_u.T)[:, None, :] + (q @ w_i.T + first.bias)[None, :, :]  # (B, n, width)
    return tower[1:](pre_activation)
