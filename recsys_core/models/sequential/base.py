"""Pieces that ``gru4rec``, ``sasrec`` and ``bert4rec`` share: their configuration, the next-item
softmax loss and history cropping (the Transformer block of the two attention models is in
``recsys_core/models/layers.py``).

Histories arrive left-padded (0 = padding, most recent item in the last column); the models keep
that layout throughout, so position embeddings count from the most recent item backwards and the
same history gives the same scores whatever padding its batch needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from recsys_core.data.sequences import WINDOWINGS
from recsys_core.data.split import Split
from recsys_core.models.base import TrainableConfig

LOSSES = ("softmax", "sampled_softmax", "bce")
SHORT_HISTORY, LONG_HISTORY, LONG_HISTORY_MEAN = 50, 200, 150


@dataclass
class SequentialConfig(TrainableConfig):
    """What the three sequential models have in common; each model's config adds its own."""

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"loss": LOSSES, "windowing": WINDOWINGS}  # for forms

    # Items read per history, the most recent ones; trained models take theirs from the data (data_defaults).
    max_len: int = 50
    embedding_dim: int = 64
    dropout: float = 0.2
    # "softmax": cross-entropy over the whole catalogue (exact, the default at this catalogue size);
    # "sampled_softmax": over the target and n_negatives items drawn uniformly per batch, for
    # catalogues too large to score in full at every position;
    # "bce": the SASRec paper's loss, binary cross-entropy of the target against one uniformly
    # drawn negative per position (kept for comparison: it ranks the full catalogue far worse).
    loss: str = "softmax"
    n_negatives: int = 256
    windowing: str = "sliding"  # how histories longer than max_len are cut (data/sequences.py)
    batch_size: int = 128  # windows (sequences) per step, not interactions
    epochs: int = 200
    learning_rate: float = 3e-3
    patience: int = 7  # validation NDCG@10 over a small user base is noisy from epoch to epoch (docs/measurements.md)
    # Off: on this project's CPU (native bf16, 2 cores) bf16 steps were no faster than float32 at the
    # shapes of ml-100k and ml-1m-sas, sometimes slower (docs/benchmarks.md, bf16 autocast); float32 is exact.
    cpu_bf16: bool = False

    @classmethod
    def data_defaults(cls, split: Split) -> dict[str, object]:
        return {"max_len": history_length(split)}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_len < 2 or self.embedding_dim < 1 or self.n_negatives < 1:
            raise ValueError("max_len must be at least 2; embedding_dim and n_negatives positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, not {self.loss!r}")
        if self.windowing not in WINDOWINGS:
            raise ValueError(f"windowing must be one of {WINDOWINGS}, not {self.windowing!r}")


def history_length(split: Split) -> int:
    """The history length a sequential model reads on this data: 200 when users' mean training
    history is longer than 150 items, 50 otherwise.

    These are the SASRec paper's two settings, sized "roughly proportional to the mean number of
    actions per user": 200 on MovieLens-1M (mean 161 here), 50 on shorter histories. MovieLens-100K
    (mean 104) stays at 50: a 150-item window there gave the same validation NDCG@10 (docs/
    measurements.md) for 2.5 times the training time. A longer window costs attention time, not
    targets: each training item is still a target once per epoch (data/sequences.py).
    """
    lengths = [len(s) for s in split.train_sequences if len(s)]
    mean = sum(lengths) / max(len(lengths), 1)
    return LONG_HISTORY if mean > LONG_HISTORY_MEAN else SHORT_HISTORY


def next_item_loss(
    hidden: torch.Tensor, targets: torch.Tensor, item_weight: torch.Tensor, config: SequentialConfig
) -> torch.Tensor:
    """Cross-entropy of each target item given the hidden state that predicts it.

    ``hidden`` (N, D) holds only the positions that have a target, ``targets`` (N,) item ids in
    1..n_items, ``item_weight`` (n_items + 1, D) the output item embeddings (row 0 = padding).
    """
    if config.loss == "softmax":
        logits = hidden @ item_weight[1:].T  # (N, n_items); padding is never a class
        return F.cross_entropy(logits.float(), targets - 1)
    n_items = item_weight.shape[0] - 1
    if config.loss == "bce":
        negatives = torch.randint(1, n_items + 1, targets.shape, device=hidden.device)  # (N,)
        positive = (hidden * item_weight[targets]).sum(-1).float()  # (N,)
        negative = (hidden * item_weight[negatives]).sum(-1).float()  # (N,)
        return F.binary_cross_entropy_with_logits(
            torch.cat([positive, negative]), torch.cat([torch.ones_like(positive), torch.zeros_like(negative)])
        )
    # One set of negatives for the whole batch keeps it to one matrix product. Uniform sampling
    # makes the logQ correction a constant, so none is needed; a negative that happens to be the
    # row's own target is masked rather than counted against it.
    negatives = torch.randint(1, n_items + 1, (config.n_negatives,), device=hidden.device)  # (S,)
    positive = (hidden * item_weight[targets]).sum(-1, keepdim=True)  # (N, 1)
    negative = hidden @ item_weight[negatives].T  # (N, S)
    negative = negative.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([positive, negative], dim=1).float()  # (N, 1 + S)
    return F.cross_entropy(logits, torch.zeros_like(targets))


def next_item_work(split: Split, config: SequentialConfig, n_items: int) -> float:
    """One epoch of next-item training: every training item is a target once (data/sequences.py),
    scored against the whole catalogue with the softmax loss, against the sampled items otherwise."""
    scored = {"softmax": n_items, "sampled_softmax": 1 + config.n_negatives, "bce": 2}[config.loss]
    return float(len(split.train)) * scored


def keep_recent(history: torch.Tensor, n: int) -> torch.Tensor:
    """The last ``n`` columns of a left-padded (B, L) history: its most recent items."""
    return history[:, -n:] if history.shape[1] > n else history
