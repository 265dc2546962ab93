"""Wide & Deep: a linear model over raw and crossed features, trained jointly with a deep network.

Cheng et al., "Wide & Deep Learning for Recommender Systems", DLRS 2016. The wide part memorises
feature co-occurrences through cross-product transformations, here the paper's own kind:

    (last item watched x candidate item)    like the paper's (installed app x impression app)
    (gender | age | occupation x genre)     which audiences click which genres

The deep part generalises through dense embeddings of every field. The two logits are summed and
trained together with one loss (the paper trains the wide part with FTRL; here Adam trains both).
The item-pair cross is hashed into ``cross_buckets`` weights, as crossed columns usually are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from recsys_core.data.features import SideFeatures
from recsys_core.models.base import Choice, Range
from recsys_core.models.layers import mlp
from recsys_core.models.rankers.base import DEEP_DROPOUT, RANKER_SPACE, SINGLE_FIELDS, FieldInput, Ranker, RankerConfig

DEMOGRAPHICS = ("age", "gender", "occupation")
_HASH_MULTIPLIER = 1_000_003  # a prime, so (last, item) pairs spread over the buckets


@dataclass
class WideDeepConfig(RankerConfig):
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {**RANKER_SPACE, "dropout": DEEP_DROPOUT}
    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.2
    cross_buckets: int = 2**18
    # The wide part's many near-zero weights leave validation flat for the first epochs: learn
    # faster and wait longer before stopping (on planted data it then learns; docs/measurements.md).
    learning_rate: float = 3e-3
    patience: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        self.hidden = tuple(self.hidden)
        if self.cross_buckets < 1:
            raise ValueError("cross_buckets must be positive")


class WideDeep(Ranker):
    name = "wide_deep"
    paper = "Cheng et al., Wide & Deep Learning for Recommender Systems, DLRS 2016"
    config_class = WideDeepConfig

    def __init__(self, config: WideDeepConfig, n_users: int, n_items: int, features: SideFeatures) -> None:
        super().__init__(config, n_users, n_items, features)
        self.bias = nn.Parameter(torch.zeros(()))
        self.wide_raw = self.embedding(1)
        self.wide_item_pairs = nn.Embedding(config.cross_buckets, 1)
        self.wide_demographic_genre = nn.ParameterList(
            [nn.Parameter(torch.zeros(self.cardinalities[d], self.n_genres)) for d in DEMOGRAPHICS]
        )
        nn.init.zeros_(self.wide_item_pairs.weight)
        self.embeddings = self.embedding(config.embedding_dim)
        width = self.embeddings.n_fields * config.embedding_dim
        self.deep = nn.Sequential(mlp((width, *config.hidden), config.dropout), nn.Linear(config.hidden[-1], 1))
        self._columns = {name: SINGLE_FIELDS.index(name) for name in ("item", "last_item", *DEMOGRAPHICS)}

    def logit(self, x: FieldInput) -> torch.Tensor:
        column = self._columns
        pair = x.codes[:, column["last_item"]] * _HASH_MULTIPLIER + x.codes[:, column["item"]]
        wide = self.wide_raw(x).sum(dim=(1, 2)) + self.wide_item_pairs(pair % self.config.cross_buckets).squeeze(-1)
        genres = x.bags[:, 0]  # the item's genres, (N, G)
        for name, weights in zip(DEMOGRAPHICS, self.wide_demographic_genre, strict=True):
            wide = wide + (weights[x.codes[:, column[name]]] * genres).sum(dim=1)
        deep = self.deep(self.embeddings(x).flatten(1)).squeeze(-1)
        return self.bias + wide + deep
