"""FM: factorization machines over the ranking fields.

Rendle, "Factorization Machines", ICDM 2010. Every feature i has a weight w_i and a latent vector
v_i of size k; the model is a linear model plus every pairwise interaction, factorised:

    y(x) = w_0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j

The pairwise sum looks quadratic in the number of fields n but equals
0.5 * sum_f [(sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2], which costs O(kn) (see
``ranking.pairwise_interactions``). A feature seen with few others still gets a useful v_i from
all the pairs it does appear in, which is why FMs work on sparse data where a full second-order
model cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from recsys_core.data.features import SideFeatures
from recsys_core.models.base import Choice, Range
from recsys_core.models.rankers.base import RANKER_SPACE, FieldInput, Ranker, RankerConfig, pairwise_interactions


@dataclass
class FMConfig(RankerConfig):
    # Quick profile: a third epoch; a higher learning rate instead did worse (docs/measurements.md).
    QUICK: ClassVar[dict[str, object]] = {**RankerConfig.QUICK, "epochs": 3}
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {**RANKER_SPACE}


class FM(Ranker):
    name = "fm"
    paper = "Rendle, Factorization Machines, ICDM 2010"
    config_class = FMConfig

    def __init__(self, config: FMConfig, n_users: int, n_items: int, features: SideFeatures) -> None:
        super().__init__(config, n_users, n_items, features)
        self.bias = nn.Parameter(torch.zeros(()))
        self.weights = self.embedding(1)  # w_i
        self.factors = self.embedding(config.embedding_dim)  # v_i

    def logit(self, x: FieldInput) -> torch.Tensor:
        return self.bias + self.weights(x).sum(dim=(1, 2)) + pairwise_interactions(self.factors(x))
