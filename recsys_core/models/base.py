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


@dataclass(frozen=True)
class Range:
    """A numeric setting's range for tuning (``python -m recsys_core tune``), with why it spans
    what it does. ``log`` samples evenly in orders of magnitude; ``integer`` rounds to whole numbers."""

    low: float
    high: float
    reason: str
    log: bool = False
    integer: bool = False

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and self.low <= value <= self.high


@dataclass(frozen=True)
class Choice:
    """A setting tuned over a few listed values, with why those."""

    options: tuple
    reason: str

    def __contains__(self, value: object) -> bool:
        return value in self.options


# Adam's step size, the one setting every trained model shares: two orders of magnitude around
# the defaults (1e-3 to 6e-3), which sit inside.
LEARNING_RATE = Range(1e-4, 1e-2, "Adam's useful range for these models; every default lies inside", log=True)


@dataclass
class ModelConfig:
    """Base of every model's config dataclass. Besides its settings, a config answers what the
    model needs before it can train, so a scheduler can order a run without knowing the model."""

    # The quick profile (``train --quick``: first runs and demos) as overrides of the defaults.
    QUICK: ClassVar[dict[str, object]] = {}
    # The allowed values of a text setting, for forms: field name -> choices.
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {}
    # What tuning searches (``recsys_core.training.tuning``): setting -> Range or Choice. Every model
    # gets the same number of trials over its own space; a model with none has nothing to tune.
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {}

    def pretrained_from(self) -> tuple[str, ...]:
        """Registry names of the trained models whose weights this model starts from."""
        return ()

    def retriever(self) -> str | None:
        """The trained model whose candidates this one trains and is validated on, if any."""
        return None

    def from_scratch(self) -> ModelConfig:
        """This config without pre-training, for when the models it starts from are not trained."""
        return self

    @classmethod
    def data_defaults(cls, split: Split) -> dict[str, object]:
        """Settings that depend on the data, from its training split's statistics: they replace
        the dataclass defaults, and settings the user or the profile gives replace them."""
        return {}


@dataclass
class TrainableConfig(ModelConfig):
    """Optimisation settings shared by the models that go through the training loop."""

    epochs: int = 100
    # The whole step's batch, whatever the number of processes: data-parallel training (torchrun)
    # gives each of N processes about batch_size / N of its rows, and learning_rate stays as it is.
    batch_size: int = 2048
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10  # epochs without a better validation NDCG@10 before stopping
    # Off by default: at this lab's sizes, bf16 steps on an H200 were never more than 1.2x faster
    # than float32 ones, often slower (docs/benchmarks.md, Training on a GPU against the CPU), and
    # float32 is exact. The CPU's is used only where the CPU computes in
    # bf16 natively (AVX512-BF16, AMX).
    cuda_bf16: bool = False  # bfloat16 autocast on a GPU
    cpu_bf16: bool = False  # bfloat16 autocast on a CPU
    # The quick profile (``train --quick``: first runs and demos) as overrides of these settings;
    # a model's config sets its own, measured against its full profile in docs/benchmarks.md.
    QUICK: ClassVar[dict[str, object]] = {"epochs": 15}
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {"learning_rate": LEARNING_RATE}

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ValueError("epochs, batch_size and patience must be positive")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError("learning_rate must be positive and weight_decay non-negative")


class Recommender(nn.Module):
    """Base of every model. Subclasses set the class attributes and override what applies.

    - closed-form models (``trainable = False``) override :meth:`fit`;
    - torch models (``trainable = True``) override :meth:`batches` and :meth:`loss` and are
      trained by the one loop, ``recsys_core.training.loop.fit``;
    - everyone overrides :meth:`score_all`.
    """

    name: ClassVar[str]
    family: ClassVar[str]  # a label for people (views group models by it); code asks the capabilities below
    paper: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]]
    trainable: ClassVar[bool] = False
    # True for a feature-interaction ranker: it scores given candidates (score_candidates) and
    # serves as a pipeline's second stage; every other model can be a pipeline's retriever.
    is_ranker: ClassVar[bool] = False
    # True when score_with_attention() hands back per-layer, per-head attention weights.
    has_attention: ClassVar[bool] = False
    # True for a model trained to predict the next item of an ordered history (a session's next
    # item): the models a first run trains right after the baselines.
    predicts_next: ClassVar[bool] = False
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
    # Training-batch entries that are not one row per example (negatives the whole batch shares):
    # data-parallel training gives every process all of them and a share of the rest.
    batch_shared: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ModelConfig, n_users: int, n_items: int) -> None:
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

    def score_candidates(self, users: torch.Tensor, history: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Scores (B, C) of each user's candidate items (B, C); a candidate 0 (padding) gets -inf.

        Read off the full catalogue's scores here; a ranker scores only the candidates."""
        scores = self.score_all(users, history).float().gather(1, candidates)
        return scores.masked_fill(candidates == 0, float("-inf"))

    def batch_rows(self, batch: Batch) -> int:
        """Examples in a training batch (the length of its per-example entries)."""
        return len(next(v for k, v in batch.items() if k not in self.batch_shared))

    def loss_terms(self, batch: Batch) -> int:
        """How many terms :meth:`loss` averages over for ``batch``: one per example by default, one
        per target for a model predicting at several positions of a row. Data-parallel training
        weights each process's share of a batch by it, so the shares add up to the whole batch."""
        return self.batch_rows(batch)

    def epoch_work(self, split: Split) -> float:
        """The work of one training epoch on ``split``, in units that cost the same on any data:
        what the cost of training grows with. By default one unit per training interaction (an
        example with a fixed number of negatives); a model whose example also grows with the data
        (a softmax over the catalogue, a row of the user-item matrix, a pass over the graph) says so."""
        return float(len(split.train))

    def validation_candidates(self) -> np.ndarray | None:
        """(n_users + 1, N) candidates per user when the model is validated by reordering them (a
        ranker over its retriever's candidates); None for validation over the whole catalogue."""
        return None

    def score_with_attention(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores and attention weights (B, n_layers, n_heads, T, T) for a model with ``has_attention``."""
        raise NotImplementedError(f"{self.name} has no attention weights")

    def initialise_from(self, **trained: Recommender) -> None:
        """Start from the trained models named by the config's ``pretrained_from()``."""
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

    @classmethod
    def draws_embeddings(cls, kind: str) -> bool:
        """Whether the model has vectors of ``kind`` ("items" or "users") to draw on a map: its
        scoring vectors, or representations it says are its own (an override of the hook)."""
        hook = Recommender.item_embeddings if kind == "items" else Recommender.user_embeddings
        return cls.inner_product or getattr(cls, hook.__name__) is not hook

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
