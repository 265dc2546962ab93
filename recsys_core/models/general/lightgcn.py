"""LightGCN: graph convolution stripped to neighbourhood aggregation, for collaborative filtering.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for Recommendation",
SIGIR 2020. The only trainable parameters are the layer-0 embeddings E^(0) of users and items.
Each layer averages neighbours over the user-item graph with symmetric normalisation, with no
feature transform and no non-linearity (the paper shows both hurt collaborative filtering):

    E^(k+1) = D^-1/2 A D^-1/2 E^(k),   E = mean(E^(0), ..., E^(K)),   y_ui = e_u^T e_i

trained with BPR and L2 on the layer-0 embeddings of the batch. Propagation is a torch.sparse
matrix product over the training graph. After training the propagated vectors are kept as
buffers, so a loaded model scores without the graph.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recsys_core.data.sampling import triplet_batches
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


@dataclass
class LightGCNConfig(TrainableConfig):
    # Quick profile: a larger learning rate nears the full profile in a fraction of its epochs (docs/measurements.md).
    QUICK: ClassVar[dict[str, object]] = {"epochs": 20, "learning_rate": 2e-2}
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {
        "learning_rate": LEARNING_RATE,
        "n_layers": Range(1, 4, "K: the paper's 1-4 propagation layers", integer=True),
        "l2": Range(1e-6, 1e-2, "the paper searched 1e-6 to 1e-2", log=True),
    }

    embedding_dim: int = 64
    n_layers: int = 3  # K
    l2: float = 1e-4  # on the layer-0 embeddings of each batch
    epochs: int = 400
    # Every step propagates the whole graph, so fewer, larger steps train much faster per second;
    # the larger learning rate keeps the number of epochs about the same (tuned on validation).
    batch_size: int = 4096
    learning_rate: float = 5e-3
    patience: int = 20

    @classmethod
    def data_defaults(cls, split: Split) -> dict[str, object]:
        """A batch that grows with the data beyond ml-100k's (its 98k training pairs take 24 steps of
        4,096): an epoch costs steps times the graph, so with a fixed batch it would grow with the
        square of the data (10x the pairs, 100x the time); with a fixed number of steps, linearly.

        The learning rate follows the batch by the square-root rule (Krizhevsky, "One weird trick",
        2014; Hoffer et al., NeurIPS 2017): a batch k times larger averages k times more pairs, so its
        gradient's noise shrinks by sqrt(k), and a step sqrt(k) longer keeps the same progress per
        pair. With the ml-100k rate kept, the same 24 steps an epoch on ml-1m-sas learnt so slowly
        that a full run was still improving after an hour (docs/measurements.md)."""
        batch_size = max(cls.batch_size, math.ceil(len(split.train) / STEPS_PER_EPOCH))
        if batch_size == cls.batch_size:
            return {"batch_size": batch_size}
        return {"batch_size": batch_size, "learning_rate": cls.learning_rate * math.sqrt(batch_size / cls.batch_size)}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.embedding_dim < 1 or self.n_layers < 0 or self.l2 < 0:
            raise ValueError("embedding_dim must be positive, n_layers and l2 non-negative")


STEPS_PER_EPOCH = 24


def normalised_adjacency(split: Split) -> torch.Tensor:
    """D^-1/2 A D^-1/2 of the bipartite graph over n_users + 1 user rows then n_items + 1 item
    rows (padding rows included, isolated), as a sparse COO tensor."""
    r = split.train_matrix  # (U+1, I+1), binary
    a = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    degree = np.asarray(a.sum(axis=1)).ravel()
    inverse_sqrt = np.zeros_like(degree)
    inverse_sqrt[degree > 0] = degree[degree > 0] ** -0.5
    a = (sp.diags(inverse_sqrt) @ a @ sp.diags(inverse_sqrt)).tocoo().astype(np.float32)
    indices = torch.from_numpy(np.vstack([a.row, a.col]).astype(np.int64))
    return torch.sparse_coo_tensor(indices, torch.from_numpy(a.data), a.shape, check_invariants=False).coalesce()


class LightGCN(Recommender):
    name = "lightgcn"
    family = "graph"
    paper = "He et al., LightGCN: Simplifying and Powering Graph Convolution Network for Recommendation, SIGIR 2020"
    config_class = LightGCNConfig
    trainable = True
    inner_product = True
    cold_start_fallback = "unknown user: the mean of the history's propagated item vectors stands in for e_u"

    def __init__(self, config: LightGCNConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        self.user_embedding = nn.Embedding(n_users + 1, config.embedding_dim)  # E^(0), users
        self.item_embedding = nn.Embedding(n_items + 1, config.embedding_dim)  # E^(0), items
        nn.init.normal_(self.user_embedding.weight, std=0.1)
        nn.init.normal_(self.item_embedding.weight, std=0.1)
        # The propagated E, refreshed whenever the model is switched to eval with its graph at hand.
        self.register_buffer("user_vectors", torch.zeros(n_users + 1, config.embedding_dim))
        self.register_buffer("propagated_items", torch.zeros(n_items + 1, config.embedding_dim))
        self._graph: torch.Tensor | None = None

    def attach_graph(self, split: Split) -> None:
        if self._graph is None:
            self._graph = normalised_adjacency(split).to(self.user_embedding.weight.device)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer-mean embeddings (users, items) over the attached graph."""
        e = torch.cat([self.user_embedding.weight, self.item_embedding.weight])  # (U+1 + I+1, D)
        if self._graph.device != e.device:
            # The graph is no buffer (a sparse tensor kept out of the artifact: it is rebuilt from the
            # split), so .to() leaves it behind: it follows the weights here, to a GPU and back.
            self._graph = self._graph.to(e.device)
        layers = [e]
        # In float32 under any autocast: CUDA has no bf16 sparse product, and a bandwidth-bound
        # product gains nothing from it.
        with torch.autocast(e.device.type, enabled=False):
            for _ in range(self.config.n_layers):
                e = torch.sparse.mm(self._graph, e)
                layers.append(e)
        mean = torch.stack(layers).mean(dim=0)
        return mean[: self.n_users + 1], mean[self.n_users + 1 :]

    def train(self, mode: bool = True) -> LightGCN:
        super().train(mode)
        if not mode and self._graph is not None:
            with torch.no_grad():
                users, items = self.propagate()
                self.user_vectors.copy_(users)
                self.propagated_items.copy_(items)
        return self

    def batches(self, split: Split, rng: np.random.Generator) -> Iterator[Batch]:
        self.attach_graph(split)
        return triplet_batches(split, self.config.batch_size, rng)

    def epoch_work(self, split: Split) -> float:
        # Every step propagates the whole graph: steps per epoch times the graph's edges.
        steps = math.ceil(len(split.train) / self.config.batch_size)
        return float(steps) * 2 * len(split.train)

    def loss(self, batch: Batch) -> torch.Tensor:
        users, items = self.propagate()
        e_u, e_i, e_j = users[batch["user"]], items[batch["positive"]], items[batch["negative"]]  # (B, D)
        x_uij = (e_u * e_i).sum(-1) - (e_u * e_j).sum(-1)
        ego = [self.user_embedding(batch["user"]), self.item_embedding(batch["positive"]),
               self.item_embedding(batch["negative"])]  # fmt: skip
        regulariser = self.config.l2 * sum(e.pow(2).sum(-1) for e in ego).mean() / 2
        return -F.logsigmoid(x_uij).mean() + regulariser

    def query_vectors(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        e_u = self.user_vectors[users]  # (B, D)
        unknown = users == 0
        if unknown.any():
            e_u = torch.where(unknown[:, None], mean_history_vectors(history, self.item_vectors()), e_u)
        return e_u

    def item_vectors(self) -> torch.Tensor:
        return self.propagated_items  # (n+1, D)

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.query_vectors(users, history) @ self.item_vectors().T  # (B, n+1)
