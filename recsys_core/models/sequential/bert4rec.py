"""BERT4Rec: a bidirectional Transformer trained to fill in masked items of the sequence.

Sun et al., "BERT4Rec: Sequential Recommendation with Bidirectional Encoder Representations from
Transformer", CIKM 2019.
Training (the Cloze task): a share ``mask_ratio`` of each sequence's items is replaced by a
[mask] token, and the model predicts the original items at the masked positions from both sides
of the sequence. Inference: the [mask] token is appended after the history, and the hidden state
at that position scores every item by an inner product with the item embeddings (shared with the
input, as in the paper), so it is the query vector of an inner-product search.

As in our SASRec, the blocks are pre-norm and the loss is cross-entropy over the whole catalogue
at the masked positions; the paper's extra output projection and item bias are left out so that
the scores stay a plain inner product of the final hidden state and the item embeddings.
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
class BERT4RecConfig(AttentionConfig):
    # Quick profile: twice the items masked, so each epoch teaches more; Cloze still trails full (docs/measurements.md).
    QUICK: ClassVar[dict[str, object]] = {"epochs": 15, "learning_rate": 5e-3, "mask_ratio": 0.4}
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {
        **SEQUENTIAL_SPACE,
        "mask_ratio": Range(0.1, 0.6, "rho: the paper's best on MovieLens was 0.2, larger ones did worse there"),
    }

    n_heads: int = 2
    mask_ratio: float = 0.2  # the paper's rho: share of items hidden per training sequence
    dropout: float = 0.2
    # Learning from a fifth of the positions, it climbs more slowly and unevenly than SASRec, and on
    # ml-1m-sas it sat at popularity's level for seven epochs first: patience 5 would have stopped it
    # there (docs/benchmarks.md, the patience replay of "The lab at ten times the data").
    patience: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError("mask_ratio must be in (0, 1)")


def bert4rec_block(config: BERT4RecConfig) -> TransformerBlock:
    """Bidirectional self-attention, then a GELU feed-forward network 4x as wide, as in BERT
    (which drops out each sub-layer's output, as this block does, and the attention weights, which
    this block leaves to ``attention_dropout``; not the wide hidden layer: there, dropout would slow
    training markedly; docs/measurements.md)."""
    dim = config.embedding_dim
    return TransformerBlock(
        dim,
        config.n_heads,
        config.dropout,
        config.attention_dropout,
        lambda: nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)),
    )


class BERT4Rec(Recommender):
    name = "bert4rec"
    family = "sequential"
    has_attention = True
    paper = "Sun et al., BERT4Rec: Sequential Recommendation with Bidirectional Encoder Representations from Transformer, CIKM 2019"  # noqa: E501
    config_class = BERT4RecConfig
    trainable = True
    reads_history = True
    predicts_next = True
    inner_product = True

    def __init__(self, config: BERT4RecConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        dim = config.embedding_dim
        self.mask_token = n_items + 1  # after the catalogue, so item ids keep their meaning
        self.item_embedding = nn.Embedding(n_items + 2, dim, padding_idx=0)
        # Position p counts back from the end of the input (p = max_len - 1 is the [mask] at inference).
        self.position_embedding = nn.Embedding(config.max_len, dim)
        self.embedding_norm = nn.LayerNorm(dim)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(bert4rec_block(config) for _ in range(config.n_layers))
        self.final_norm = nn.LayerNorm(dim)
        for embedding in (self.item_embedding, self.position_embedding):
            nn.init.normal_(embedding.weight, std=dim**-0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    @property
    def max_history(self) -> int:
        return self.config.max_len - 1  # one place is the appended [mask]

    # ------------------------------------------------------------------ the network

    def encode(
        self, tokens: torch.Tensor, need_weights: bool = False, last_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Hidden states (B, T, D) for left-padded (B, T) tokens (items or [mask]), T <= max_len,
        or with ``last_only`` the last position's, (B, 1, D); with ``need_weights`` the attention
        weights (B, n_layers, n_heads, T, T)."""
        length = tokens.shape[1]
        positions = torch.arange(self.config.max_len - length, self.config.max_len, device=tokens.device)  # (T,)
        x = self.item_embedding(tokens) + self.position_embedding(positions)  # (B, T, D)
        x = self.embedding_dropout(self.embedding_norm(x))
        real = tokens > 0  # (B, T)
        # Every position sees every real position, both ways; a padding query sees itself only,
        # so that its softmax row is never empty (its output is never used).
        allowed = real[:, None, :] | torch.eye(length, dtype=torch.bool, device=tokens.device)  # (B, T, T)
        allowed = allowed[:, None, :, :]  # (B, 1, T, T)
        x, weights = run_blocks(self.blocks, x, allowed, need_weights, last_only)
        return self.final_norm(x), weights  # (B, T or 1, D), (B, n_layers, H, T, T)

    def with_mask_token(self, history: torch.Tensor) -> torch.Tensor:
        """The most recent ``max_len - 1`` items of a left-padded history, then [mask]: (B, T + 1)."""
        history = keep_recent(history, self.config.max_len - 1)
        mask = torch.full((history.shape[0], 1), self.mask_token, dtype=history.dtype, device=history.device)
        return torch.cat([history, mask], dim=1)

    # ------------------------------------------------------------------ training

    def batches(self, split: Split, rng: np.random.Generator) -> Iterator[Batch]:
        windows = training_windows(split.train_sequences, self.config.max_len, rng, self.config.windowing)
        real = windows > 0
        masked = real & (rng.random(windows.shape) < self.config.mask_ratio)
        # A sequence with nothing masked teaches nothing; hide its last item, which is also the
        # position the model fills at inference.
        nothing = ~masked.any(axis=1)
        masked[nothing, -1] = True
        tokens = np.where(masked, self.mask_token, windows)
        labels = np.where(masked, windows, 0)
        for rows in batch_rows(windows, self.config.batch_size, rng, self.config.batching):
            batch_tokens = trim_padding(tokens[rows])  # (B, T)
            batch_labels = labels[rows, -batch_tokens.shape[1] :]  # (B, T)
            yield {"tokens": torch.from_numpy(batch_tokens), "labels": torch.from_numpy(batch_labels)}

    def epoch_work(self, split: Split) -> float:
        return next_item_work(split, self.config, self.n_items)

    def loss_terms(self, batch: Batch) -> int:
        return int((batch["labels"] > 0).sum())  # the positions the loss predicts at

    def loss(self, batch: Batch) -> torch.Tensor:
        hidden, _ = self.encode(batch["tokens"])  # (B, T, D)
        masked = batch["labels"] > 0  # (B, T)
        return next_item_loss(hidden[masked], batch["labels"][masked], self.item_vectors(), self.config)

    # ------------------------------------------------------------------ scoring

    def query_vectors(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.encode(self.with_mask_token(history), last_only=True)
        return hidden[:, -1]  # (B, D): the state at the appended [mask]

    def item_vectors(self) -> torch.Tensor:
        return self.item_embedding.weight[: self.n_items + 1]  # (n+1, D), without the [mask] row

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.query_vectors(users, history) @ self.item_vectors().T  # (B, n+1)

    def score_with_attention(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (B, n_items + 1) and attention weights (B, n_layers, n_heads, T, T) for a
        left-padded (B, L) history, where T = min(L, max_len - 1) + 1: the most recent items and
        the appended [mask] (the last row is what the prediction reads)."""
        hidden, weights = self.encode(self.with_mask_token(history), need_weights=True)
        return hidden[:, -1] @ self.item_vectors().T, weights
