"""DLRM: dense features through a bottom MLP, categorical ones through embeddings, dot interactions.

Naumov et al., "Deep Learning Recommendation Model for Personalization and Recommendation
Systems", 2019. Dense inputs (here the item's genre vector and the user's genre affinity) pass a
bottom MLP into the embedding space; every categorical field has its embedding; the explicit
interactions are the dot products of every pair of these vectors (second order only, as in an FM,
but between learned vectors). The dot products and the bottom output go through a top MLP:

    z = [b; v_1; ...; v_m],  y = top([b, <z_i, z_j> for i < j])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from recsys_core.data.features import SideFeatures
from recsys_core.models.base import Choice, Range
from recsys_core.models.layers import mlp
from recsys_core.models.rankers.base import BAG_FIELDS, DEEP_DROPOUT, RANKER_SPACE, FieldInput, Ranker, RankerConfig


@dataclass
class DLRMConfig(RankerConfig):
    # Quick profile: a third epoch, cheap for DLRM, brings it level with its full profile (docs/measurements.md).
    QUICK: ClassVar[dict[str, object]] = {**RankerConfig.QUICK, "epochs": 3}
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {**RANKER_SPACE, "dropout": DEEP_DROPOUT}
    bottom: tuple[int, ...] = (64,)
    top: tuple[int, ...] = (128, 64)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        self.bottom, self.top = tuple(self.bottom), tuple(self.top)


class DLRM(Ranker):
    name = "dlrm"
    paper = "Naumov et al., Deep Learning Recommendation Model for Personalization and Recommendation Systems, 2019"
    config_class = DLRMConfig

    def __init__(self, config: DLRMConfig, n_users: int, n_items: int, features: SideFeatures) -> None:
        super().__init__(config, n_users, n_items, features)
        k = config.embedding_dim
        # The categorical fields (the genre bags go through the bottom MLP).
        self.embeddings = self.embedding(k, tuple(f for f in self.fields if f not in BAG_FIELDS))
        self.bottom = nn.Sequential(mlp((2 * self.n_genres, *config.bottom), config.dropout),
                                    nn.Linear(config.bottom[-1], k), nn.ReLU())  # fmt: skip
        vectors = self.embeddings.n_fields + 1
        self.register_buffer("pairs", torch.triu_indices(vectors, vectors, 1), persistent=False)
        top_input = k + self.pairs.shape[1]
        self.top = nn.Sequential(mlp((top_input, *config.top), config.dropout), nn.Linear(config.top[-1], 1))

    def logit(self, x: FieldInput) -> torch.Tensor:
        dense = self.bottom(x.bags.flatten(1))  # (N, k)
        z = torch.cat([dense[:, None, :], self.embeddings(x)], dim=1)  # (N, m + 1, k)
        dots = z @ z.transpose(1, 2)  # (N, m + 1, m + 1)
        interactions = dots[:, self.pairs[0], self.pairs[1]]  # i < j
        return self.top(torch.cat([dense, interactions], dim=1)).squeeze(-1)
