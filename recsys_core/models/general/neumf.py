"""NeuMF: Neural Matrix Factorization, GMF and MLP fused under one output layer.

He et al., "Neural Collaborative Filtering", WWW 2017, section 3.4. The two halves keep separate
embeddings (sharing them would force one embedding size on both and limit the fusion):

    phi_GMF = p_u^G * q_i^G,   phi_MLP = tower([p_u^M ; q_i^M]),
    y_ui = sigmoid(h^T [phi_GMF ; phi_MLP])

By default (``pretrained = True``) both halves start from trained ``gmf`` and ``mlp`` models and
the output weights are h = [alpha h_GMF ; (1 - alpha) h_MLP], the paper's pre-training scheme.
"""

from __future__ import annotations

import dataclasses
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
from recsys_core.models.general.gmf import GMF
from recsys_core.models.general.mlp import MLP, score_pairs
from recsys_core.models.layers import mlp


@dataclass
class NeuMFConfig(TrainableConfig):
    # Quick profile: pre-trained from GMF and MLP, NeuMF is at its best after an epoch or two (docs/measurements.md).
    QUICK: ClassVar[dict[str, object]] = {"epochs": 2}
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {
        "learning_rate": LEARNING_RATE,
        "alpha": Range(0.1, 0.9, "the GMF half's weight in the pre-trained output layer, around the paper's 0.5"),
        "n_negatives": Range(1, 10, "the NCF paper tried 1-10 sampled negatives per positive", integer=True),
        "dropout": Range(0.0, 0.5, "none to half of the tower's units"),
    }

    gmf_dim: int = 64
    mlp_dim: int = 32
    layers: tuple[int, ...] = (64, 32, 16)
    dropout: float = 0.1
    n_negatives: int = 4
    l2: float = 1e-5
    # Start from the trained gmf and mlp of the same dataset when they exist (the paper's scheme;
    # validation NDCG@10 prefers it to training from scratch, see docs/benchmarks.md, General models).
    pretrained: bool = True
    alpha: float = 0.5  # weight of the GMF half in the pre-trained output layer
    epochs: int = 100
    batch_size: int = 4096
    learning_rate: float = 2e-3
    patience: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        self.layers = tuple(self.layers)
        if min(self.gmf_dim, self.mlp_dim, *self.layers) < 1 or not 0 <= self.dropout < 1:
            raise ValueError("dimensions must be positive, dropout in [0, 1)")
        if not 0 <= self.alpha <= 1:
            raise ValueError("alpha must be in [0, 1]")

    def pretrained_from(self) -> tuple[str, ...]:
        return ("gmf", "mlp") if self.pretrained else ()

    def from_scratch(self) -> NeuMFConfig:
        return dataclasses.replace(self, pretrained=False)


class NeuMF(Recommender):
    name = "neumf"
    family = "NCF"
    paper = "He et al., Neural Collaborative Filtering, WWW 2017 (NeuMF)"
    config_class = NeuMFConfig
    trainable = True
    cold_start_fallback = "unknown user: the mean of the history's item embeddings stands in for p_u"

    def __init__(self, config: NeuMFConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        self.gmf_user = nn.Embedding(n_users + 1, config.gmf_dim, padding_idx=0)
        self.gmf_item = nn.Embedding(n_items + 1, config.gmf_dim, padding_idx=0)
        self.mlp_user = nn.Embedding(n_users + 1, config.mlp_dim, padding_idx=0)
        self.mlp_item = nn.Embedding(n_items + 1, config.mlp_dim, padding_idx=0)
        self.tower = mlp((2 * config.mlp_dim, *config.layers), config.dropout)
        self.h = nn.Linear(config.gmf_dim + config.layers[-1], 1)
        for embedding in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            nn.init.normal_(embedding.weight, std=0.01)
            with torch.no_grad():
                embedding.weight[0].zero_()

    def initialise_from(self, gmf: GMF, mlp: MLP) -> None:
        """The paper's pre-training: copy both halves, blend their output weights by alpha."""
        if gmf.config.embedding_dim != self.config.gmf_dim or mlp.config.embedding_dim != self.config.mlp_dim:
            raise ValueError("pre-trained gmf/mlp embedding sizes differ from this NeuMF's gmf_dim/mlp_dim")
        if tuple(mlp.config.layers) != self.config.layers:
            raise ValueError("pre-trained mlp has different layers from this NeuMF")
        alpha = self.config.alpha
        with torch.no_grad():
            self.gmf_user.weight.copy_(gmf.user_embedding.weight)
            self.gmf_item.weight.copy_(gmf.item_embedding.weight)
            self.mlp_user.weight.copy_(mlp.user_embedding.weight)
            self.mlp_item.weight.copy_(mlp.item_embedding.weight)
            self.tower.load_state_dict(mlp.tower.state_dict())
            self.h.weight.copy_(torch.cat([alpha * gmf.h, (1 - alpha) * mlp.h.weight[0]])[None, :])
            self.h.bias.copy_(alpha * gmf.bias + (1 - alpha) * mlp.h.bias)

    def batches(self, split: Split, rng: np.random.Generator) -> Iterator[Batch]:
        return pointwise_batches(split, self.config.n_negatives, self.config.batch_size, rng)

    def loss(self, batch: Batch) -> torch.Tensor:
        users, items = batch["user"], batch["item"]
        vectors = [self.gmf_user(users), self.gmf_item(items), self.mlp_user(users), self.mlp_item(items)]
        phi = torch.cat([vectors[0] * vectors[1], self.tower(torch.cat(vectors[2:], dim=-1))], dim=-1)
        regulariser = self.config.l2 * sum(v.pow(2).sum(-1) for v in vectors).mean()
        return F.binary_cross_entropy_with_logits(self.h(phi).squeeze(-1), batch["label"]) + regulariser

    def item_embeddings(self) -> torch.Tensor:
        return torch.cat([self.gmf_item.weight, self.mlp_item.weight], dim=1)  # both halves of the item

    def user_embeddings(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.gmf_user(users), self.mlp_user(users)], dim=1)

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        gmf_items, mlp_items = self.gmf_item.weight, self.mlp_item.weight  # (n+1, Dg), (n+1, Dm)
        gmf_u, mlp_u = self.gmf_user(users), self.mlp_user(users)  # (B, Dg), (B, Dm)
        unknown = users == 0
        if unknown.any():
            gmf_u = torch.where(unknown[:, None], mean_history_vectors(history, gmf_items), gmf_u)
            mlp_u = torch.where(unknown[:, None], mean_history_vectors(history, mlp_items), mlp_u)
        h_gmf, h_mlp = self.h.weight[0, : self.config.gmf_dim], self.h.weight[0, self.config.gmf_dim :]
        gmf_part = (gmf_u * h_gmf) @ gmf_items.T  # (B, n+1)
        mlp_part = score_pairs(self.tower, mlp_u, mlp_items) @ h_mlp  # (B, n+1)
        return gmf_part + mlp_part + self.h.bias
