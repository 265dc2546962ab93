"""The interface every model shares (after RecBole's three questions: a training loss, and scores
over the whole catalogue for a batch of users and their histories).

Every model is an ``nn.Module``, closed-form ones too (their matrices are buffers), so saving,
loading and moving to a device are the same for all. A model is rebuilt from its config dataclass
and its tensors alone; nothing else is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from recsys_core.data.split import Split

Batch = dict[str, torch.Tensor]
Validator = Callable[["Recommender"], float]


@dataclass
class TrainableConfig:
    """Optimisation settings shared by the models that go through the training loop."""

    epochs: int = 100
    batch_size: int = 2048
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10  # epochs without a better validation NDCG@10 before stopping
    # bfloat16 autocast is always on with CUDA; on a CPU only when asked for and the CPU computes in
    # bf16 natively (AVX512-BF16, AMX), where matrix products run about twice as fast.
    cpu_bf16: bool = False
    # The quick profile (``train --quick``: first runs and demos) as overrides of these settings;
    # a model's config sets its own, measured against its full profile in docs/benchmarks.md.
    QUICK: ClassVar[dict[str, object]] = {"epochs": 15}

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ValueError("epochs, batch_size and patience must be positive")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError("learning_rate must be positive and weight_decay non-negative")


class Recommender(nn.Module):
    """Base of every model. Subclasses set the class attributes and override what applies.

    - closed-form models (``trainable = False``) override :meth:`fit`;
    - torch models (``trainable = True``) override :meth:`batches` and :meth:`loss` and are
      trained by ``recsys_core.train``;
    - everyone overrides :meth:`score_all`.
    """

    name: ClassVar[str]
    family: ClassVar[str]
    paper: ClassVar[str]
    config_class: ClassVar[type]
    trainable: ClassVar[bool] = False
    # True when scores are a function of the history, so an unknown user with a history is
    # served by the model's own math rather than by a fallback.
    reads_history: ClassVar[bool] = False
    # False for a model that gives every user the same list (popularity): nothing in a history explains it.
    personalised: ClassVar[bool] = True
    # What the model does for an unknown user who brings a history, when it cannot read one.
    cold_start_fallback: ClassVar[str | None] = None
    # True when score_all(u, h) == query_vectors(u, h) @ item_vectors().T (up to a per-row
    # constant), so FAISS inner-product search over item_vectors() returns the model's own top-K.
    inner_product: ClassVar[bool] = False
    # True for models built with side features (user demographics, item genres and year): their
    # constructor takes ``features`` and keeps the lookup tables as buffers, saved with the weights.
    needs_features: ClassVar[bool] = False
    # Models whose trained weights this one can start from when its config says ``pretrained``
    # (NeuMF from GMF and MLP); ``initialise_from`` receives them by registry name.
    pretrained_from: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: object, n_users: int, n_items: int) -> None:
        super().__init__()
        self.config = config
        self.n_users = n_users
        self.n_items = n_items

    def fit(self, split: Split, validate: Validator) -> list[dict[str, float]]:
        """Closed-form fit; returns the tuning log (one dict per setting tried on validation)."""
        raise NotImplementedError(f"{self.name} is trained by the training loop, not fit()")

    def batches(self, split: Split, rng: np.random.Generator) -> Iterator[Batch]:
        """One epoch of training batches, in an order fixed by ``rng``."""
        raise NotImplementedError(f"{self.name} has no training batches")

    def loss(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} has no training loss")

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """Scores of every item, (B, n_items + 1), for users (B,) and left-padded histories (B, L).

        ``users`` holds 0 for a user the model has never seen. Column 0 (padding) is ignored.
        """
        raise NotImplementedError

    def initialise_from(self, **trained: Recommender) -> None:
        raise NotImplementedError(f"{self.name} cannot start from other models")

    def query_vectors(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """(B, D) vectors whose inner product with :meth:`item_vectors` gives the scores."""
        raise NotImplementedError(f"{self.name} does not score by an inner product")

    def item_vectors(self) -> torch.Tensor:
        """(n_items + 1, D) item vectors the model scores with; row 0 is padding."""
        raise NotImplementedError(f"{self.name} does not score by an inner product")

    def item_embeddings(self) -> torch.Tensor:
        """(n_items + 1, D) the model's learned item representations, drawn on embedding maps; by
        default the vectors it scores with. Models that score otherwise say what theirs are."""
        return self.item_vectors()

    def user_embeddings(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """(B, D) user representations for embedding maps; by default the query vectors."""
        return self.query_vectors(users, history)

    def item_similarity(self, items: torch.Tensor) -> torch.Tensor:
        """(len(items), n_items + 1): how alike the model finds each of ``items`` and every item.

        The inner product for a model that scores by one (the similarity its retrieval uses), the
        cosine of :meth:`item_embeddings` otherwise; item-item models use their own weights.
        """
        vectors = self.item_embeddings()
        if not self.inner_product:
            vectors = F.normalize(vectors, dim=1)
        return vectors[items] @ vectors.T

    @property
    def max_history(self) -> int | None:
        """How many of the most recent history items the model reads; None when it reads them all."""
        return None

    @property
    def device(self) -> torch.device:
        tensor = next(iter(self.parameters()), None)
        if tensor is None:
            tensor = next(iter(self.buffers()))
        return tensor.device


def multi_hot(history: torch.Tensor, n_items: int) -> torch.Tensor:
    """(B, L) padded item ids -> (B, n_items + 1) 0/1 rows; the padding column stays 0."""
    rows = torch.zeros(history.shape[0], n_items + 1, device=history.device)
    rows.scatter_(1, history, 1.0)
    rows[:, 0] = 0.0
    return rows


def mean_history_vectors(history: torch.Tensor, item_vectors: torch.Tensor) -> torch.Tensor:
    """Mean of the history's item vectors per row (B, D); zero for an empty history.

    The documented cold-start fallback for models with a user vector but no fold-in.
    """
    mask = (history > 0).float()  # (B, L)
    summed = (item_vectors[history] * mask[..., None]).sum(dim=1)  # (B, D)
    return summed / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
