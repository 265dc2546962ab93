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

from recsys_core.data.sequences import BATCHINGS, WINDOWINGS
from recsys_core.data.split import Split
from recsys_core.models.base import LEARNING_RATE, Choice, Range, TrainableConfig

LOSSES = ("softmax", "sampled_softmax", "bce")
SHORT_HISTORY, LONG_HISTORY, LONG_HISTORY_MEAN = 50, 200, 150
# Catalogues larger than this train with the sampled softmax. The full softmax is the stronger loss
# (Klenitskiy & Vasilev, RecSys 2023) and costs a catalogue's scores per target: SASRec trained 8,241
# interactions/s at 10k items, 1,610 at 100k and 112 at 1M on this machine (docs/benchmarks.md, the
# synthetic sizes), so MovieLens-1M (3.4k items) and -20M (27k) keep it and a 100k-item shop does not.
FULL_SOFTMAX_MAX_ITEMS = 50_000
# What tuning searches for every sequential model; each adds its own. The history length and batching
# stay with the data (data_defaults): they set the cost as much as the quality.
SEQUENTIAL_SPACE: dict[str, Range | Choice] = {
    "learning_rate": LEARNING_RATE,
    "embedding_dim": Choice((32, 64, 128), "d: half to twice the default (the SASRec paper used 50)"),
    "dropout": Range(0.0, 0.5, "none to the SASRec paper's 0.5 for its sparser datasets"),
}


@dataclass
class SequentialConfig(TrainableConfig):
    """What the three sequential models have in common; each model's config adds its own."""

    # The options of the string settings, for forms.
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"loss": LOSSES, "windowing": WINDOWINGS, "batching": BATCHINGS}

    # Items read per history, the most recent ones; trained models take theirs from the data (data_defaults).
    max_len: int = 50
    embedding_dim: int = 64
    dropout: float = 0.2
    # "softmax": cross-entropy over the whole catalogue (exact; trained models use it up to
    # FULL_SOFTMAX_MAX_ITEMS items, data_defaults);
    # "sampled_softmax": over the target and n_negatives items drawn uniformly per batch, for
    # catalogues too large to score in full at every position (the default above that size);
    # "bce": the SASRec paper's loss, binary cross-entropy of the target against one uniformly
    # drawn negative per position (kept for comparison: it ranks the full catalogue far worse).
    loss: str = "softmax"
    n_negatives: int = 256
    windowing: str = "sliding"  # how histories longer than max_len are cut (data/sequences.py)
    batch_size: int = 128  # windows (sequences) per step, not interactions; on average with "by_length"
    # Which windows share a batch (data/sequences.py, batch_rows); trained models take theirs from the data.
    batching: str = "random"
    epochs: int = 200
    learning_rate: float = 3e-3
    patience: int = 7  # validation NDCG@10 over a small user base is noisy from epoch to epoch (docs/measurements.md)
    # Off: on this project's CPU (native bf16, 2 cores) bf16 steps were no faster than float32 at the
    # shapes of ml-100k and ml-1m-sas, sometimes slower (docs/benchmarks.md, bf16 autocast); float32 is exact.
    cpu_bf16: bool = False

    @classmethod
    def data_defaults(cls, split: Split) -> dict[str, object]:
        max_len = history_length(split)
        # Long windows over histories of every length are largely padding in random batches (44% of the
        # positions on ml-1m-sas): there, batches by length trained faster at the same validation
        # NDCG@10. At 50 items the saving was small and validation no better, so short windows keep
        # random batches (docs/measurements.md, "batching").
        loss = "softmax" if split.n_items <= FULL_SOFTMAX_MAX_ITEMS else "sampled_softmax"
        return {"max_len": max_len, "batching": "by_length" if max_len == LONG_HISTORY else "random", "loss": loss}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_len < 2 or self.embedding_dim < 1 or self.n_negatives < 1:
            raise ValueError("max_len must be at least 2; embedding_dim and n_negatives positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, not {self.loss!r}")
        if self.batching not in BATCHINGS:
            raise ValueError(f"batching must be one of {BATCHINGS}, not {self.batching!r}")
        if self.windowing not in WINDOWINGS:
            raise ValueError(f"windowing must be one of {WINDOWINGS}, not {self.windowing!r}")


@dataclass
class AttentionConfig(SequentialConfig):
    """What SASRec and BERT4Rec add: their stack of Transformer blocks."""

    n_layers: int = 2  # Transformer blocks
    n_heads: int = 1  # attention heads per block
    # Both papers' code applies it at `dropout`. Off by default: on a CPU it forces attention off
    # PyTorch's fused kernel onto one that materialises and samples a (T, T) mask per sequence, a
    # sixth of SASRec's step and half of BERT4Rec's at T = 200, and validation did not need it
    # (docs/measurements.md, "attention dropout").
    attention_dropout: float = 0.0  # dropout on the attention weights

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_layers < 1 or self.n_heads < 1:
            raise ValueError("n_layers and n_heads must be positive")
        if not 0.0 <= self.attention_dropout < 1.0:
            raise ValueError("attention_dropout must be in [0, 1)")


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
        # Padding (row 0) is never a class.
        return FullSoftmaxCrossEntropy.apply(hidden, item_weight[1:], targets - 1)
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


class FullSoftmaxCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``targets`` (N,) under softmax(hidden @ weight.T), computed a block of
    rows at a time, without ever holding the (N, n_items) logits.

    The plain ``F.cross_entropy(hidden @ weight.T, targets)`` writes and re-reads that matrix about
    five times (logits, log-softmax, the one-hot gradient, its backward), and at ml-1m-sas's shapes
    (14k targets x 3,416 items per batch) those passes over memory, not the matrix products, were
    most of a SASRec step on this VM's host one day, and cost little on another (docs/benchmarks.md,
    the training step). Here each block's logits stay in cache: the loss and both gradients (softmax
    minus one-hot, times the other operand) are finished while the block is hot, and only the (N, D)
    and (n_items, D) gradients are kept for the backward pass. The same idea as
    the fused linear cross-entropy of Liger-Kernel and Apple's "Cut Your Losses" (Wijmans et al.,
    2024); the result equals the plain one to float32 rounding (tests/test_sequential.py).
    Memory is bounded too, which a million-item catalogue needs.
    """

    # Logits per block: a few MB on a CPU, where staying in cache is the point; far more on a GPU,
    # where bandwidth is plentiful and each block costs kernel launches.
    BLOCK_ELEMENTS: ClassVar[dict[str, int]] = {"cpu": 2**19, "cuda": 2**27}

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        n_rows, n_items = hidden.shape[0], weight.shape[0]
        budget = FullSoftmaxCrossEntropy.BLOCK_ELEMENTS.get(hidden.device.type, 2**24)
        rows = max(32, budget // max(n_items, 1))
        want_hidden, want_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        with torch.autocast(hidden.device.type, enabled=False):  # exact float32, whatever the caller's autocast
            h_all, w = hidden.float(), weight.float()
            grad_hidden = torch.empty_like(h_all) if want_hidden else None
            grad_weight = torch.zeros_like(w) if want_weight else None
            total = torch.zeros((), dtype=torch.float64, device=hidden.device)
            for start in range(0, n_rows, rows):
                h, t = h_all[start : start + rows], targets[start : start + rows]
                logits = h @ w.T  # (r, n_items)
                log_z = torch.logsumexp(logits, dim=1)  # (r,)
                total += (log_z - logits.gather(1, t[:, None]).squeeze(1)).sum(dtype=torch.float64)
                # d loss / d logits = softmax - one-hot (the 1/N comes at the end), in place.
                probs = logits.sub_(log_z[:, None]).exp_()
                probs[torch.arange(len(t), device=t.device), t] -= 1.0
                if grad_hidden is not None:
                    torch.mm(probs, w, out=grad_hidden[start : start + rows])
                if grad_weight is not None:
                    grad_weight.addmm_(probs.T, h)
        scale = 1.0 / max(n_rows, 1)
        ctx.grads = (
            None if grad_hidden is None else (grad_hidden * scale).to(hidden.dtype),
            None if grad_weight is None else (grad_weight * scale).to(weight.dtype),
        )
        return (total * scale).float()

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_hidden, grad_weight = ctx.grads
        del ctx.grads  # the graph is freed after backward; so should these be
        return (
            None if grad_hidden is None else grad_hidden * grad_loss,
            None if grad_weight is None else grad_weight * grad_loss,
            None,
        )


def next_item_work(split: Split, config: SequentialConfig, n_items: int) -> float:
    """One epoch of next-item training: every training item is a target once (data/sequences.py),
    scored against the whole catalogue with the softmax loss, against the sampled items otherwise."""
    scored = {"softmax": n_items, "sampled_softmax": 1 + config.n_negatives, "bce": 2}[config.loss]
    return float(len(split.train)) * scored


def keep_recent(history: torch.Tensor, n: int) -> torch.Tensor:
    """The last ``n`` columns of a left-padded (B, L) history: its most recent items."""
    return history[:, -n:] if history.shape[1] > n else history
