"""EASE: Embarrassingly Shallow Autoencoder.

Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019. An item-item weight
matrix B with a zero diagonal, learnt in closed form by ridge regression of each item's column on
all the others:

    P = (X^T X + lambda I)^-1,    B_ij = -P_ij / P_jj  (i != j),    B_jj = 0,

and a user's scores are x_u B, so any history can be scored. The regularisation lambda is chosen
on validation NDCG@10.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from recsys_core.data.split import Split
from recsys_core.models.base import Choice, ModelConfig, Range, Recommender, Validator, multi_hot

LAMBDA_GRID = (10.0, 25.0, 50.0, 100.0, 200.0, 350.0, 500.0, 750.0, 1000.0, 2000.0)
MAX_ITEMS = 30_000  # B is dense: n_items^2 floats


@dataclass
class EASEConfig(ModelConfig):
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {
        "l2": Range(1.0, 10_000.0, "lambda: the paper's best were 200-1,000 on its three datasets; this spans far "
                    "beyond both ends", log=True),
    }
    l2: float = 0.0  # lambda; 0 = choose on validation from LAMBDA_GRID

    def __post_init__(self) -> None:
        if self.l2 < 0:
            raise ValueError("l2 must be >= 0 (0 = tune on validation)")


class EASE(Recommender):
    name = "ease"
    family = "baselines"
    paper = "Steck, Embarrassingly Shallow Autoencoders for Sparse Data, WWW 2019"
    config_class = EASEConfig
    reads_history = True

    def __init__(self, config: EASEConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        if n_items > MAX_ITEMS:
            raise ValueError(f"EASE keeps a dense {n_items}x{n_items} matrix; the limit is {MAX_ITEMS} items")
        self.register_buffer("B", torch.zeros(n_items + 1, n_items + 1))

    def fit(self, split: Split, validate: Validator) -> list[dict[str, float]]:
        matrix = split.train_matrix.astype(np.float64)
        gram = torch.from_numpy((matrix.T @ matrix).toarray())  # (n+1, n+1)
        grid = (self.config.l2,) if self.config.l2 > 0 else LAMBDA_GRID
        log, best = [], (-1.0, None)
        for l2 in grid:
            self.B = self._closed_form(gram, l2)
            score = validate(self)
            log.append({"l2": l2, "valid NDCG@10": score})
            if score > best[0]:
                best = (score, l2)
        self.config = EASEConfig(l2=best[1])
        self.B = self._closed_form(gram, best[1])
        return log

    @staticmethod
    def _closed_form(gram: torch.Tensor, l2: float) -> torch.Tensor:
        regularised = gram + l2 * torch.eye(gram.shape[0], dtype=gram.dtype)
        precision = torch.linalg.inv(regularised)
        weights = -precision / torch.diag(precision)[None, :]
        weights.fill_diagonal_(0.0)
        return weights.float().contiguous()  # as saved, so reloaded scores are bit-identical

    def item_embeddings(self) -> torch.Tensor:
        return self.B.T  # item j as column j of B: how much each history item raises its score

    def item_similarity(self, items: torch.Tensor) -> torch.Tensor:
        return self.B[items]  # B[i, j]: how much having i raises j

    def score_all(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return multi_hot(history, self.n_items) @ self.B  # (B, n+1)
