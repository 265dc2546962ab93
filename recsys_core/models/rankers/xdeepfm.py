"""xDeepFM: a compressed interaction network (CIN) beside a linear part and a deep network.

Lian et al., "xDeepFM: Combining Explicit and Implicit Feature Interactions for Recommender
Systems", KDD 2018. The CIN builds interactions at the level of whole field vectors (vector-wise,
unlike DCN's bit-wise crosses). With X^0 the (m, D) field embeddings, feature map h of layer k is

    X^k_{h,*} = sum_{i, j} W^{k,h}_{ij} (X^{k-1}_{i,*} o X^0_{j,*})

(o the Hadamard product): an outer product along the field axes compressed by H_k filters, like a
1x1 convolution. Each layer's maps are sum-pooled over D; the pooled vectors of all layers feed
the output with the linear and deep logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from recsys_core.data.features import SideFeatures
from recsys_core.models.base import Choice, Range
from recsys_core.models.layers import mlp
from recsys_core.models.rankers.base import DEEP_DROPOUT, RANKER_SPACE, FieldInput, Ranker, RankerConfig

CIN_BLOCK = 1024


@dataclass
class XDeepFMConfig(RankerConfig):
    # Quick profile: halve the CIN, the costliest part of any ranker, and train more gently (docs/measurements.md).
    QUICK: ClassVar[dict[str, object]] = {**RankerConfig.QUICK, "cin_layers": (8, 8), "learning_rate": 6e-3}
    SEARCH_SPACE: ClassVar[dict[str, Range | Choice]] = {**RANKER_SPACE, "dropout": DEEP_DROPOUT}
    cin_layers: tuple[int, ...] = (16, 16)  # H_k, feature maps per CIN layer (the cost grows with H_k * H_{k-1})
    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.2
    learning_rate: float = 2e-3  # the CIN learns slowly at 1e-3 (on planted data; docs/measurements.md)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.cin_layers, self.hidden = tuple(self.cin_layers), tuple(self.hidden)
        if not self.cin_layers or min(self.cin_layers) < 1:
            raise ValueError("cin_layers needs at least one positive width")


class XDeepFM(Ranker):
    name = "xdeepfm"
    paper = (
        "Lian et al., xDeepFM: Combining Explicit and Implicit Feature Interactions for Recommender Systems, KDD 2018"
    )
    config_class = XDeepFMConfig

    def __init__(self, config: XDeepFMConfig, n_users: int, n_items: int, features: SideFeatures) -> None:
        super().__init__(config, n_users, n_items, features)
        self.bias = nn.Parameter(torch.zeros(()))
        self.weights = self.embedding(1)
        self.embeddings = self.embedding(config.embedding_dim)
        m = self.embeddings.n_fields
        widths = (m, *config.cin_layers)
        # W^k as (H_k, H_{k-1} * m): one 1x1 convolution per layer.
        self.cin = nn.ModuleList(
            nn.Linear(widths[k] * m, widths[k + 1], bias=False) for k in range(len(config.cin_layers))
        )
        self.cin_output = nn.Linear(sum(config.cin_layers), 1, bias=False)
        self.deep = nn.Sequential(mlp((m * config.embedding_dim, *config.hidden), config.dropout),
                                  nn.Linear(config.hidden[-1], 1))  # fmt: skip

    def logit(self, x: FieldInput) -> torch.Tensor:
        x0 = self.embeddings(x)  # (N, m, D)
        # The outer products of a block of CIN_BLOCK rows stay in cache, so scoring a catalogue (up to
        # MAX_ROWS_PER_PASS rows a pass) is faster in blocks than in one piece (docs/measurements.md).
        cin = torch.cat([self.compressed_interactions(block) for block in x0.split(CIN_BLOCK)])
        deep = self.deep(x0.flatten(1)).squeeze(-1)
        return self.bias + self.weights(x).sum(dim=(1, 2)) + cin + deep

    def compressed_interactions(self, x0: torch.Tensor) -> torch.Tensor:
        """(N,) the CIN's logit. The embedding axis D comes first, so every layer is one matrix
        product over contiguous (N, D, H_{k-1} * m) outer products, with no transposed copies."""
        x0 = x0.transpose(1, 2)  # (N, D, m)
        xk, pooled = x0, []
        for layer in self.cin:
            z = (xk[:, :, :, None] * x0[:, :, None, :]).flatten(2)  # (N, D, H_{k-1} * m), index h * m + j
            xk = layer(z)  # (N, D, H_k)
            pooled.append(xk.sum(dim=1))  # sum-pooling over D
        return self.cin_output(torch.cat(pooled, dim=1)).squeeze(-1)
