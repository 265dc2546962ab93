"""GRU4Rec: a recurrent network over the session, predicting the next item after every step.

Hidasi, Karatzoglou, Baltrunas & Tikk, "Session-based Recommendations with Recurrent Neural
Networks", ICLR 2016; the cross-entropy loss over the catalogue follows Hidasi & Karatzoglou,
"Recurrent Neural Networks with Top-k Gains for Session-based Recommendations", CIKM 2018.
The items of the history are embedded and fed through a GRU; its hidden state after the last item,
h_t, scores item i by <h_t, e_i> with the input item embeddings e (tied, as the paper's embedding
variant allows), so the final hidden state is the query vector of an inner-product search.

Here a user's whole training history plays the role of a session, and the paper's
session-parallel mini-batches become one padded window per row, trained at every position at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from recsys_core.data.sequences import batch_rows, training_windows, trim_padding
from recsys_core.data.split import Split
from recsys_core.models.base import Batch, Choice, Range, Recommender
from recsys_core.models.sequential.base import (
    LONG_HISTORY,
    SEQUENTIAL_SPACE,
    SequentialConfig,
    keep_recent,
    next_item_loss,
    next_item_work,
)


@dataclass
class GRU4RecConfig(SequentialConfig):
    # Quick profile: fewer epochs at twice the rate; sampled softmax, though cheaper, did worse (docs/measurements.md).
    QUICK: ClassVar[dict[str, object]] = {"epochs": 10, "learning_rate": 6e-3}
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {**SEQUENTIAL_SPACE}

    n_layers: int = 1
    dropout: float = 0.2

    @classmethod
    def data_defaults(cls, split: Split) -> dict[str, object]:
        defaults = super().data_defaults(split)
        if defaults["max_len"] == LONG_HISTORY:
            # Batches of 200-item windows carry about four times the targets of 50-item ones, so an
            # epoch is a few dozen low-noise steps: twice the rate reached the same validation
            # NDCG@10 on ml-1m-sas in fewer epochs (docs/measurements.md).
            defaults["learning_rate"] = 2 * cls.learning_rate
        return defaults

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_layers < 1:
            raise ValueError("n_layers must be positive")


class GRU4Rec(Recommender):
    name = "gru4rec"
    family = "sequential"
    paper = "Hidasi et al., Session-based Recommendations with Recurrent Neural Networks, ICLR 2016"
    config_class = GRU4RecConfig
    trainable = True
    reads_history = True
    predicts_next = True
    inner_product = True

    def __init__(self, config: GRU4RecConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        dim = config.embedding_dim
        self.item_embedding = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.gru = nn.GRU(dim, dim, num_layers=config.n_layers, batch_first=True,
                          dropout=config.dropout if config.n_layers > 1 else 0.0)  # fmt: skip
        self.hidden_dropout = nn.Dropout(config.dropout)
        nn.init.normal_(self.item_embedding.weight, std=dim**-0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    @property
    def max_history(self) -> int:
        return self.config.max_len

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        """GRU outputs (B, T, D) for a left-padded (B, T) history, aligned with the input: the
        output at t has read the items up to t. Padding positions get zeros.

        A GRU would change its state on padding, so the rows are shifted to start at their first
        item and packed; the GRU stops at each row's last item.
        """
        length = history.shape[1]
        lengths = (history > 0).sum(dim=1)  # (B,)
        shift = length - lengths  # (B,) leading padding per row
        columns = torch.arange(length, device=history.device)[None, :]  # (1, T)
        right_aligned = history.gather(1, (columns + shift[:, None]) % length)  # (B, T) items first
        x = self.embedding_dropout(self.item_embedding(right_aligned))  # (B, T, D)
        # Packing needs a length of at least 1; an empty history then ends on a zero query vector.
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        output, _ = self.gru(packed)
        output, _ = pad_packed_sequence(output, batch_first=True, total_length=length)  # (B, T, D) items first
        left_aligned = output.gather(1, ((columns - shift[:, None]) % length)[..., None].expand_as(output))
        return self.hidden_dropout(left_aligned)  # (B, T, D)

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
        hidden = self.encode(batch["history"])  # (B, T, D)
        has_target = batch["history"] > 0  # (B, T)
        return next_item_loss(hidden[has_target], batch["target"][has_target], self.item_embedding.weight, self.config)

    # ------------------------------------------------------------------ scoring

    def query_vectors(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.encode(keep_recent(history, self.config.max_len))[:, -1]  # (B, D) after the last item

    def item_vectors(self) -> torch.Tensor:
        return self.item_embedding.weight  # (n+1, D)

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.query_vectors(users, history) @ self.item_vectors().T  # (B, n+1)
