"""FFM: field-aware factorization machines.

Juan et al., "Field-aware Factorization Machines for CTR Prediction", RecSys 2016. In an FM a
feature has one latent vector for all its partners; in an FFM it has one per *field* of the
partner, so how a user interacts with a genre need not be how they interact with a year:

    y(x) = w_0 + sum_i w_i x_i + sum_{i<j} <v_{i, f_j}, v_{j, f_i}> x_i x_j

That costs F times the parameters and O(F^2 k) per row (no FM shortcut), so k is kept small
(the paper uses 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from recsys_core.data.features import SideFeatures
from recsys_core.models.base import Choice, Range
from recsys_core.models.rankers.base import RANKER_SPACE, FieldInput, Ranker, RankerConfig


@dataclass
class FFMConfig(RankerConfig):
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {
        **RANKER_SPACE,
        "embedding_dim": Choice((2, 4, 8), "per field pair: the FFM paper found 4 enough and little gained above"),
    }
    embedding_dim: int = 4


class FFM(Ranker):
    name = "ffm"
    paper = "Juan, Zhuang, Chin, Lin, Field-aware Factorization Machines for CTR Prediction, RecSys 2016"
    config_class = FFMConfig

    def __init__(self, config: FFMConfig, n_users: int, n_items: int, features: SideFeatures) -> None:
        super().__init__(config, n_users, n_items, features)
        self.bias = nn.Parameter(torch.zeros(()))
        self.weights = self.embedding(1)
        n_fields = self.weights.n_fields
        self.factors = self.embedding(n_fields * config.embedding_dim)  # v_{i, f} for every partner field f
        self.register_buffer("upper", torch.triu(torch.ones(n_fields, n_fields, dtype=torch.bool), 1), persistent=False)

    def logit(self, x: FieldInput) -> torch.Tensor:
        v = self.factors(x)  # (N, F, F * k)
        n, f, _ = v.shape
        v = v.view(n, f, f, -1)  # v[:, i, j] = field i's vector for partner field j
        pairs = (v * v.transpose(1, 2)).sum(dim=-1)  # (N, F, F): <v_{i, f_j}, v_{j, f_i}>
        return self.bias + self.weights(x).sum(dim=(1, 2)) + pairs[:, self.upper].sum(dim=1)
