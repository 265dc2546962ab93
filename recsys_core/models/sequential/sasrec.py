"""SASRec: self-attentive sequential recommendation.

Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018.
The history's item embeddings plus learned position embeddings go through ``n_layers`` blocks of
causal self-attention and a point-wise feed-forward network; the hidden state at position t,
F_t, scores item i by <F_t, M_i> with the same item embedding matrix M as the input (shared
embeddings, as in the paper). Training predicts the next item at every position at once.

Two departures from the paper, both following Klenitskiy & Vasilev, "Turning Dross Into Gold Loss:
is BERT4Rec really better than SASRec?", RecSys 2023: the loss is cross-entropy over the full
catalogue instead of binary cross-entropy with one sampled negative, and the blocks are pre-norm
(LayerNorm before each sub-layer, one more at the end), which trains stably without warm-up.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from recsys_core.data.sequences import batch_rows, training_windows, trim_padding
from recsys_core.data.split import Split
from recsys_core.models.base import Batch, Choice, Range, Recommender
from recsys_core.models.layers import TransformerBlock, run_blocks
from recsys_core.models.sequential.base import (
    SEQUENTIAL_SPACE,
    AttentionConfig,
    keep_recent,
    next_item_loss,
    next_item_work,
)


@dataclass
class SASRecConfig(AttentionConfig):
    # Quick profile: fewer epochs at twice the rate; sampled softmax, though cheaper, did worse (docs/measurements.md).
    QUICK: ClassVar[dict[str, object]] = {"epochs": 12, "learning_rate": 6e-3}
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {
        **SEQUENTIAL_SPACE,
        "n_layers": Range(1, 3, "attention blocks: the paper's 2, and one either side", integer=True),
    }

    dropout: float = 0.2


def sasrec_block(config: SASRecConfig) -> TransformerBlock:
    """Causal self-attention (the mask comes from the caller), then the paper's feed-forward
    network, which keeps the width at d (two d x d layers with a ReLU between)."""
    dim = config.embedding_dim
    return TransformerBlock(
        dim, config.n_heads, config.dropout, config.attention_dropout,
        lambda: nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(dim, dim)),
    )  # fmt: skip


class SASRec(Recommender):
    name = "sasrec"
    family = "sequential"
    has_attention = True
    paper = "Kang & McAuley, Self-Attentive Sequential Recommendation, ICDM 2018"
    config_class = SASRecConfig
    trainable = True
    reads_history = True
    predicts_next = True
    inner_product = True

    def __init__(self, config: SASRecConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        dim = config.embedding_dim
        self.item_embedding = nn.Embedding(n_items + 1, dim, padding_idx=0)
        # Position p counts back from the most recent item (p = max_len - 1 is the last one).
        self.position_embedding = nn.Embedding(config.max_len, dim)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(sasrec_block(config) for _ in range(config.n_layers))
        self.final_norm = nn.LayerNorm(dim)
        for embedding in (self.item_embedding, self.position_embedding):
            nn.init.normal_(embedding.weight, std=dim**-0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    @property
    def max_history(self) -> int:
        return self.config.max_len

    # ------------------------------------------------------------------ the network

    def encode(
        self, history: torch.Tensor, need_weights: bool = False, last_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Hidden states (B, T, D) for a left-padded (B, T) history, T <= max_len, or with
        ``last_only`` the last position's, (B, 1, D); with ``need_weights`` the attention weights
        (B, n_layers, n_heads, T, T)."""
        length = history.shape[1]
        positions = torch.arange(self.config.max_len - length, self.config.max_len, device=history.device)  # (T,)
        # Scaling by sqrt(d) keeps item identity dominant over position, as in the paper's code.
        x = self.item_embedding(history) * self.config.embedding_dim**0.5 + self.position_embedding(positions)
        x = self.embedding_dropout(x)  # (B, T, D)
        real = history > 0  # (B, T)
        causal = torch.ones(length, length, dtype=torch.bool, device=history.device).tril()  # (T, T)
        # A query attends to earlier real items; a padding query to itself only, so that its
        # softmax row is never empty (its output is never used).
        allowed = causal & real[:, None, :] | torch.eye(length, dtype=torch.bool, device=history.device)
        allowed = allowed[:, None, :, :]  # (B, 1, T, T)
        x, weights = run_blocks(self.blocks, x, allowed, need_weights, last_only)
        return self.final_norm(x), weights  # (B, T or 1, D), (B, n_layers, H, T, T)

    # ------------------------------------------------------------------ training

    def batches(self, split: Split, rng: np.random.Generator) -> Iterator[Batch]:
        windows = training_windows(split.train_sequences, self.config.max_len + 1, rng, self.config.windowing)
        for rows in batch_rows(windows, self.config.batch_size, rng, self.config.batching):
            window = torch.from_numpy(trim_padding(windows[rows]))  # (B, T + 1)
            yield {"history": window[:, :-1], "target": window[:, 1:]}

    def epoch_work(self, split: Split) -> float:
        return next_item_work(split, self.config, self.n_items)

    def loss_terms(self, batch: Batch) -> int:
        return int((batch["history"] > 0).sum())  # the positions the loss predicts at

    def loss(self, batch: Batch) -> torch.Tensor:
        hidden, _ = self.encode(batch["history"])  # (B, T, D)
        # A position predicts the next item only when it holds an item itself.
        has_target = batch["history"] > 0  # (B, T)
        return next_item_loss(hidden[has_target], batch["target"][has_target], self.item_embedding.weight, self.config)

    # ------------------------------------------------------------------ scoring

    def query_vectors(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.encode(keep_recent(history, self.config.max_len), last_only=True)
        return hidden[:, -1]  # (B, D): the state after the most recent item

    def item_vectors(self) -> torch.Tensor:
        return self.item_embedding.weight  # (n+1, D)

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.query_vectors(users, history) @ self.item_vectors().T  # (B, n+1)

    def score_with_attention(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (B, n_items + 1) and attention weights (B, n_layers, n_heads, T, T) for a
        left-padded (B, L) history, where T = min(L, max_len): the most recent items are read.

        Row t of a head's matrix is how position t spreads its attention over positions <= t;
        rows of padding positions are not meaningful.
        """
        hidden, weights = self.encode(keep_recent(history, self.config.max_len), need_weights=True)
        return hidden[:, -1] @ self.item_vectors().T, weights
