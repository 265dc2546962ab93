"""BPR-MF: matrix factorisation trained with Bayesian Personalised Ranking.

Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009.
Score x_ui = <p_u, q_i>. For a user u, an item i they interacted with and an item j they did not,
BPR maximises ln sigmoid(x_ui - x_uj) with L2 regularisation on the embeddings involved.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_core.data.sampling import triplet_batches
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
class BPRConfig(TrainableConfig):
    # Quick profile: a faster rate nears full in far fewer epochs; faster still stopped early (docs/measurements.md).
    QUICK: ClassVar[dict[str, object]] = {"epochs": 80, "learning_rate": 2e-3, "patience": 10}
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {
        "learning_rate": LEARNING_RATE,
        "embedding_dim": Choice((32, 64, 128), "factors: half to twice the default"),
        "l2": Range(1e-7, 1e-3, "from almost none to enough to shrink rare users' vectors to zero", log=True),
    }

    embedding_dim: int = 64
    l2: float = 1e-5  # on the embeddings of each batch, as in the paper
    init_std: float = 0.01  # small initial vectors: larger ones (0.1) converge to a worse optimum here
    epochs: int = 300
    batch_size: int = 2048
    learning_rate: float = 1e-3
    patience: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.embedding_dim < 1 or self.l2 < 0:
            raise ValueError("embedding_dim must be positive and l2 non-negative")


class BPR(Recommender):
    name = "bpr"
    family = "matrix factorization"
    paper = "Rendle et al., BPR: Bayesian Personalized Ranking from Implicit Feedback, UAI 2009"
    config_class = BPRConfig
    trainable = True
    inner_product = True
    cold_start_fallback = "unknown user: scored with the mean of the history's item vectors"

    def __init__(self, config: BPRConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        # Sparse tables: a step updates only the rows of its batch (recsys_core/training/optimiser.py).
        self.user_embedding = nn.Embedding(n_users + 1, config.embedding_dim, padding_idx=0, sparse=True)
        self.item_embedding = nn.Embedding(n_items + 1, config.embedding_dim, padding_idx=0, sparse=True)
        nn.init.normal_(self.user_embedding.weight, std=config.init_std)
        nn.init.normal_(self.item_embedding.weight, std=config.init_std)
        with torch.no_grad():
            self.user_embedding.weight[0].zero_()
            self.item_embedding.weight[0].zero_()

    def batches(self, split: Split, rng: np.random.Generator) -> Iterator[Batch]:
        return triplet_batches(split, self.config.batch_size, rng)

    def loss(self, batch: Batch) -> torch.Tensor:
        p_u = self.user_embedding(batch["user"])  # (B, D)
        q_i = self.item_embedding(batch["positive"])  # (B, D)
        q_j = self.item_embedding(batch["negative"])  # (B, D)
        x_uij = (p_u * q_i).sum(-1) - (p_u * q_j).sum(-1)  # (B,)
        regulariser = self.config.l2 * (p_u.pow(2).sum(-1) + q_i.pow(2).sum(-1) + q_j.pow(2).sum(-1))
        return (-F.logsigmoid(x_uij) + regulariser).mean()

    def query_vectors(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        p_u = self.user_embedding(users)  # (B, D)
        unknown = users == 0
        if unknown.any():
            p_u = torch.where(unknown[:, None], mean_history_vectors(history, self.item_vectors()), p_u)
        return p_u

    def item_vectors(self) -> torch.Tensor:
        return self.item_embedding.weight  # (n+1, D)

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.query_vectors(users, history) @ self.item_vectors().T  # (B, n+1)
