"""Most-popular baseline: every user gets the items with the most training interactions.

Not a straw man: under full ranking on MovieLens-100K it is a real bar (docs/benchmarks.md,
Baselines), and a deep model that does not beat it clearly has learnt nothing personal.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recsys_core.data.split import Split
from recsys_core.models.base import ModelConfig, Recommender, Validator


@dataclass
class PopConfig(ModelConfig):
    pass


class Pop(Recommender):
    name = "pop"
    family = "baselines"
    paper = "Popularity baseline (e.g. Cremonesi et al., RecSys 2010)"
    config_class = PopConfig
    personalised = False

    def __init__(self, config: PopConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        self.register_buffer("popularity", torch.zeros(n_items + 1))

    def fit(self, split: Split, validate: Validator) -> list[dict[str, float]]:
        self.popularity = torch.as_tensor(split.item_popularity, dtype=torch.float32)
        return [{"valid NDCG@10": validate(self)}]

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.popularity.expand(len(users), -1)  # (B, n_items + 1)
