"""DeepFM: an FM and a deep network sharing one embedding layer.

Guo et al., "DeepFM: A Factorization-Machine based Neural Network for CTR Prediction", IJCAI 2017.
The FM component models first- and second-order interactions; the deep component, a feed-forward
network over the concatenated field embeddings, models higher orders. Unlike Wide & Deep, both read
the same embeddings and need no hand-made cross features:

    y = sigmoid(y_FM + y_DNN)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from recsys_core.data.features import SideFeatures
from recsys_core.models.base import Choice, Range
from recsys_core.models.layers import mlp
from recsys_core.models.rankers.base import (
    DEEP_DROPOUT,
    RANKER_SPACE,
    FieldInput,
    Ranker,
    RankerConfig,
    pairwise_interactions,
)


@dataclass
class DeepFMConfig(RankerConfig):
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {**RANKER_SPACE, "dropout": DEEP_DROPOUT}
    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        self.hidden = tuple(self.hidden)


class DeepFM(Ranker):
    name = "deepfm"
    paper = "Guo, Tang, Ye, Li, He, DeepFM: A Factorization-Machine based Neural Network for CTR Prediction, IJCAI 2017"
    config_class = DeepFMConfig

    def __init__(self, config: DeepFMConfig, n_users: int, n_items: int, features: SideFeatures) -> None:
        super().__init__(config, n_users, n_items, features)
        self.bias = nn.Parameter(torch.zeros(()))
        self.weights = self.embedding(1)
        self.factors = self.embedding(config.embedding_dim)  # shared by the FM and the deep part
        width = self.factors.n_fields * config.embedding_dim
        self.deep = nn.Sequential(mlp((width, *config.hidden), config.dropout), nn.Linear(config.hidden[-1], 1))

    def logit(self, x: FieldInput) -> torch.Tensor:
        v = self.factors(x)  # (N, F, k)
        y_fm = self.bias + self.weights(x).sum(dim=(1, 2)) + pairwise_interactions(v)
        return y_fm + self.deep(v.flatten(1)).squeeze(-1)
