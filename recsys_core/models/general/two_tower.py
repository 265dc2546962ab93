"""Two-tower retrieval: a user tower and an item tower meeting in one normalised vector space.

The user tower follows Covington et al., "Deep Neural Networks for YouTube Recommendations",
RecSys 2016: the user id, demographics and the pooled embeddings of the most recent items are
concatenated and passed through ReLU layers. The item tower embeds the item id, its genres and
its release year. Both outputs are L2-normalised and the score is their cosine.

Training is a sampled softmax over the other positives of the batch (Yi et al., "Sampling-Bias-
Corrected Neural Modeling for Large Corpus Item Recommendations", RecSys 2019):

    logit(u, i) = <u, v_i> / tau - log Q(i)

Popular items appear in more batches, so they would be pushed down more often than they deserve;
subtracting log Q(i) (the expected count of i among the batch's candidates) corrects that bias.
The temperature tau is learned through its logarithm so it stays positive. Optionally, uniformly
drawn items join the candidates (Yang et al., "Mixed Negative Sampling", WWW 2020) so rarely seen
items get negatives too. Each training example's history is what the user saw *before* it,
never after, and the user id is sometimes dropped so the tower also serves users it never saw.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_core.data.features import SideFeatures
from recsys_core.data.sequences import prefix_histories
from recsys_core.data.split import Split
from recsys_core.models.base import LEARNING_RATE, Batch, Choice, Range, Recommender, TrainableConfig
from recsys_core.models.layers import mlp


@dataclass
class TwoTowerConfig(TrainableConfig):
    # Quick profile: fewer epochs; the towers are close to their best early on (docs/measurements.md).
    QUICK: ClassVar[dict[str, object]] = {"epochs": 8}
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {
        "learning_rate": LEARNING_RATE,
        "initial_temperature": Range(0.02, 0.2, "the softmax temperature's start (it is then learned): sharp to soft",
                                     log=True),
        "dropout": Range(0.0, 0.5, "none to half of the towers' units"),
        "user_id_dropout": Range(0.0, 0.5, "share of examples without the user id, which trains the cold path"),
    }

    embedding_dim: int = 64  # the shared output space
    id_dim: int = 64
    feature_dim: int = 16  # each side feature's embedding
    hidden: tuple[int, ...] = (128,)
    history_len: int = 20  # most recent items pooled into the user tower
    dropout: float = 0.1
    user_id_dropout: float = 0.2  # share of examples trained without the user id (cold users)
    initial_temperature: float = 0.05
    logq_correction: bool = True
    random_negatives: int = 0  # uniformly drawn extra candidates per batch (mixed negative sampling)
    epochs: int = 100
    batch_size: int = 1024
    learning_rate: float = 1e-3
    patience: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        self.hidden = tuple(self.hidden)
        if min(self.embedding_dim, self.id_dim, self.feature_dim, self.history_len, *self.hidden) < 1:
            raise ValueError("dimensions and history_len must be positive")
        if not 0 <= self.dropout < 1 or not 0 <= self.user_id_dropout < 1:
            raise ValueError("dropout and user_id_dropout must be in [0, 1)")
        if self.initial_temperature <= 0 or self.random_negatives < 0:
            raise ValueError("initial_temperature must be positive, random_negatives non-negative")


class TwoTower(Recommender):
    name = "two_tower"
    family = "retrieval"
    paper = ("Covington et al., Deep Neural Networks for YouTube Recommendations, RecSys 2016; Yi et al., "
             "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item Recommendations, RecSys 2019")  # fmt: skip
    config_class = TwoTowerConfig
    trainable = True
    reads_history = True
    inner_product = True
    needs_features = True

    # The uniform negatives are shared by the whole batch: under data parallelism every process
    # scores all of them, with its share of the rows, whose positives are each other's in-batch
    # negatives (a row sees 1/N of the batch's positives as negatives with N processes).
    batch_shared = ("negative",)

    def __init__(self, config: TwoTowerConfig, n_users: int, n_items: int, features: SideFeatures) -> None:
        super().__init__(config, n_users, n_items)
        users, items = features.users, features.items
        # Side features travel with the weights, so a loaded model needs no feature pipeline.
        self.register_buffer("age_bucket", torch.from_numpy(users.age_bucket))
        self.register_buffer("gender", torch.from_numpy(users.gender))
        self.register_buffer("occupation", torch.from_numpy(users.occupation))
        self.register_buffer("genres", torch.from_numpy(items.genres))
        self.register_buffer("year_bucket", torch.from_numpy(items.year_bucket))
        self.register_buffer("log_q", torch.zeros(n_items + 1))  # log sampling probability, set in training

        f = config.feature_dim
        self.user_id = nn.Embedding(n_users + 1, config.id_dim, padding_idx=0)
        self.age_embedding = nn.Embedding(users.vocabularies["age_bucket"], f)
        self.gender_embedding = nn.Embedding(users.vocabularies["gender"], f)
        self.occupation_embedding = nn.Embedding(users.vocabularies["occupation"], f)
        self.history_embedding = nn.Embedding(n_items + 1, config.id_dim, padding_idx=0)
        user_input = 2 * config.id_dim + 3 * f
        self.user_tower = nn.Sequential(
            mlp((user_input, *config.hidden), config.dropout), nn.Linear(config.hidden[-1], config.embedding_dim)
        )

        self.item_id = nn.Embedding(n_items + 1, config.id_dim, padding_idx=0)
        self.genre_projection = nn.Linear(items.genres.shape[1], f, bias=False)
        self.year_embedding = nn.Embedding(items.vocabularies["year_bucket"], f)
        self.item_tower = nn.Sequential(
            mlp((config.id_dim + 2 * f, *config.hidden), config.dropout),
            nn.Linear(config.hidden[-1], config.embedding_dim),
        )
        self.log_temperature = nn.Parameter(torch.tensor(math.log(config.initial_temperature)))
        for embedding in (self.user_id, self.history_embedding, self.item_id):
            nn.init.normal_(embedding.weight, std=0.01)
            with torch.no_grad():
                embedding.weight[0].zero_()
        self._examples: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ towers

    def encode_users(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """(B,) users and (B, L) left-padded histories -> (B, D) unit vectors."""
        recent = history[:, -self.config.history_len :]
        mask = (recent > 0).float()[..., None]  # (B, L, 1)
        pooled = (self.history_embedding(recent) * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, id_dim)
        x = torch.cat([
            self.user_id(users), pooled, self.age_embedding(self.age_bucket[users]),
            self.gender_embedding(self.gender[users]), self.occupation_embedding(self.occupation[users]),
        ], dim=-1)  # fmt: skip
        return F.normalize(self.user_tower(x), dim=-1)

    def encode_items(self, items: torch.Tensor) -> torch.Tensor:
        """(N,) item ids -> (N, D) unit vectors."""
        x = torch.cat([self.item_id(items), self.genre_projection(self.genres[items]),
                       self.year_embedding(self.year_bucket[items])], dim=-1)  # fmt: skip
        return F.normalize(self.item_tower(x), dim=-1)

    # ------------------------------------------------------------------ training

    def _training_examples(self, split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every training interaction with the user's ``history_len`` previous items, left-padded."""
        users = split.train["user"].to_numpy()
        items = split.train["item"].to_numpy()
        return users, items, prefix_histories(users, items, self.config.history_len)

    def batches(self, split: Split, rng: np.random.Generator) -> Iterator[Batch]:
        if self._examples is None:
            self._examples = self._training_examples(split)
            popularity = split.item_popularity + 1.0  # +1: items never seen in training still get a finite log Q
            with torch.no_grad():
                self.log_q.copy_(torch.from_numpy(np.log(popularity / popularity.sum())))
        users, items, history = self._examples
        order = rng.permutation(len(users))
        drop = rng.random(len(users)) < self.config.user_id_dropout
        for start in range(0, len(order), self.config.batch_size):
            index = order[start : start + self.config.batch_size]
            batch = {
                # A dropped user becomes the unknown user 0: no id, no demographics, history only.
                "user": torch.from_numpy(np.where(drop[index], 0, users[index])),
                "item": torch.from_numpy(items[index]),
                "history": torch.from_numpy(history[index]),
            }
            if self.config.random_negatives:
                batch["negative"] = torch.from_numpy(rng.integers(1, self.n_items + 1, self.config.random_negatives))
            yield batch

    def loss(self, batch: Batch) -> torch.Tensor:
        u = self.encode_users(batch["user"], batch["history"])  # (B, D)
        candidates = batch["item"]
        if "negative" in batch:
            candidates = torch.cat([candidates, batch["negative"]])
        v = self.encode_items(candidates)  # (C, D)
        logits = u @ v.T / self.log_temperature.exp()  # (B, C)
        if self.config.logq_correction:
            # Expected count of each candidate: in-batch positives follow Q, extra negatives are uniform.
            expected = len(batch["item"]) * self.log_q.exp()[candidates]
            if "negative" in batch:
                expected = expected + len(batch["negative"]) / self.n_items
            logits = logits - expected.log()[None, :]
        # Another row's positive that is this row's own item is not a negative (an accidental hit).
        same_item = batch["item"][:, None] == candidates[None, :]
        own = torch.zeros_like(same_item)
        own[:, : len(batch["item"])] = torch.eye(len(batch["item"]), dtype=torch.bool, device=own.device)
        logits = logits.masked_fill(same_item & ~own, float("-inf"))
        return F.cross_entropy(logits, torch.arange(len(batch["item"]), device=logits.device))

    # ------------------------------------------------------------------ serving

    def query_vectors(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.encode_users(users, history)

    def item_vectors(self) -> torch.Tensor:
        return self.encode_items(torch.arange(self.n_items + 1, device=self.item_id.weight.device))

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.query_vectors(users, history) @ self.item_vectors().T  # (B, n+1)
