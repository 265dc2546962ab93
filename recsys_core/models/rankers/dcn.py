"""DCN-v2: deep & cross network with full-rank cross layers.

Wang et al., "DCN V2: Improved Deep & Cross Network and Practical Lessons for Web-scale Learning
to Rank Systems", WWW 2021. A cross layer multiplies the input x_0 element-wise with a linear map
of the previous layer, so layer l holds feature interactions up to degree l + 1 explicitly:

    x_{l+1} = x_0 * (W_l x_l + b_l) + x_l

(The original DCN of Wang et al. 2017 used a rank-one W_l = w_l x_l^T, which v2 shows is too
weak.) The cross stack and a deep network read the same flattened field embeddings in parallel;
their outputs are concatenated into the final logit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from recsys_core.data.features import SideFeatures
from recsys_core.models.base import Choice, Range
from recsys_core.models.layers import mlp
from recsys_core.models.rankers.base import RANKER_SPACE, FieldInput, Ranker, RankerConfig


@dataclass
class DCNConfig(RankerConfig):
    # Quick profile: the cross layers need a third epoch, at a gentler rate than other rankers' (docs/measurements.md).
    QUICK: ClassVar[dict[str, object]] = {**RankerConfig.QUICK, "epochs": 3, "learning_rate": 6e-3}
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {
        **RANKER_SPACE,
        "cross_layers": Range(1, 6, "the DCN paper's 1-6 cross layers", integer=True),
    }

    cross_layers: int = 3
    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.2
    # Cross layers start near the identity: validation can stay flat for the first epochs, so
    # learn faster and wait longer (on planted data, a shorter patience stopped some seeds before
    # they had learned; docs/measurements.md).
    learning_rate: float = 2e-3
    patience: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        self.hidden = tuple(self.hidden)
        if self.cross_layers < 1:
            raise ValueError("cross_layers must be positive")


class DCN(Ranker):
    name = "dcn"
    paper = (
        "Wang et al., DCN V2: Improved Deep & Cross Network, WWW 2021 "
        "(after Wang et al., Deep & Cross Network, ADKDD 2017)"
    )
    config_class = DCNConfig

    def __init__(self, config: DCNConfig, n_users: int, n_items: int, features: SideFeatures) -> None:
        super().__init__(config, n_users, n_items, features)
        self.embeddings = self.embedding(config.embedding_dim)
        width = self.embeddings.n_fields * config.embedding_dim
        self.cross = nn.ModuleList(nn.Linear(width, width) for _ in range(config.cross_layers))  # W_l, b_l
        self.deep = mlp((width, *config.hidden), config.dropout)
        self.output = nn.Linear(width + config.hidden[-1], 1)

    def logit(self, x: FieldInput) -> torch.Tensor:
        x0 = self.embeddings(x).flatten(1)  # (N, F * k)
        xl = x0
        for layer in self.cross:
            xl = x0 * layer(xl) + xl
        return self.output(torch.cat([xl, self.deep(x0)], dim=1)).squeeze(-1)
