"""CDAE: Collaborative Denoising Auto-Encoder.

Wu et al., "Collaborative Denoising Auto-Encoders for Top-N Recommender Systems", WSDM 2016.
A user's interaction row y_u is corrupted by dropout (each observed item dropped with probability
q, survivors scaled by 1 / (1 - q)), encoded together with a per-user node V_u, and decoded back
to a score for every item:

    z_u = sigmoid(W^T y~_u + V_u + b),   y^_ui = sigmoid(W'_i^T z_u + b'_i)

The loss is binary cross-entropy over the whole row, observed and unobserved items alike: a loss
over observed items only (as some tutorials write) is minimised by predicting 1 everywhere.
At inference the row is not corrupted; an unknown user has V_u = 0 and is served from the
history alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_core.data.sampling import user_row_batches
from recsys_core.data.split import Split
from recsys_core.models.base import LEARNING_RATE, Batch, Choice, Range, Recommender, TrainableConfig, multi_hot


@dataclass
class CDAEConfig(TrainableConfig):
    # Quick profile: a larger learning rate lands close to the full profile in far fewer epochs (docs/measurements.md).
    QUICK: ClassVar[dict[str, object]] = {"epochs": 80, "learning_rate": 5e-3, "patience": 10}
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {
        "learning_rate": LEARNING_RATE,
        "hidden_dim": Choice((50, 100, 200, 400), "hidden units: a quarter to twice the default"),
        "corruption": Range(0.0, 0.8, "q: from no corruption to most of each input dropped"),
    }

    hidden_dim: int = 200
    corruption: float = 0.5  # q, the input dropout ratio
    epochs: int = 500
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 30

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hidden_dim < 1 or not 0 <= self.corruption < 1:
            raise ValueError("hidden_dim must be positive and corruption in [0, 1)")


class CDAE(Recommender):
    name = "cdae"
    family = "autoencoders"
    paper = "Wu et al., Collaborative Denoising Auto-Encoders for Top-N Recommender Systems, WSDM 2016"
    config_class = CDAEConfig
    trainable = True
    reads_history = True

    def __init__(self, config: CDAEConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        self.user_node = nn.Embedding(n_users + 1, config.hidden_dim, padding_idx=0)  # V_u
        self.encoder = nn.Linear(n_items + 1, config.hidden_dim)  # W, b
        self.decoder = nn.Linear(config.hidden_dim, n_items + 1)  # W', b'
        nn.init.normal_(self.user_node.weight, std=0.01)
        with torch.no_grad():
            self.user_node.weight[0].zero_()

    def batches(self, split: Split, rng: np.random.Generator) -> Iterator[Batch]:
        return user_row_batches(split, self.config.batch_size, rng)

    def forward(self, users: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Logits over the catalogue, (B, n_items + 1), from (B,) users and (B, n_items + 1) rows."""
        corrupted = F.dropout(rows, p=self.config.corruption, training=self.training)
        z_u = torch.sigmoid(self.encoder(corrupted) + self.user_node(users))  # (B, H)
        return self.decoder(z_u)

    def epoch_work(self, split: Split) -> float:
        return float(split.n_users) * self.n_items  # every user's row over the whole catalogue

    def loss(self, batch: Batch) -> torch.Tensor:
        rows = batch["row"][:, 1:]
        logits = self(batch["user"], batch["row"])[:, 1:]
        return F.binary_cross_entropy_with_logits(logits, rows, reduction="none").sum(-1).mean()

    def item_embeddings(self) -> torch.Tensor:
        return self.decoder.weight  # row i of W': the output vector that z_u is scored against

    def user_embeddings(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        rows = multi_hot(history, self.n_items)
        return torch.sigmoid(self.encoder(rows) + self.user_node(users))  # z_u, without corruption

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self(users, multi_hot(history, self.n_items))
