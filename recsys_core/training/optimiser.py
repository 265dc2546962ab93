"""The optimiser of every torch model: Adam, with embedding tables updated a row at a time.

A batch of matrix factorisation touches a few thousand rows of its user and item tables. Dense Adam
still writes every row of both tables at every step (the gradient, two moments and the weight),
so a step's cost grows with the catalogue and the user base, not with the batch: BPR's and GMF's
seconds per training example grew faster than their work from ml-100k to ml-1m-sas, and far
faster on a synthetic 100k-item catalogue (docs/benchmarks.md, "The lab at ten times the data").
A table built with ``nn.Embedding(..., sparse=True)`` hands back a sparse gradient (the rows the
batch used), and ``SparseAdam`` updates only those rows: the "lazy Adam" of large-scale embedding
training. Its moments of a row advance only when the row is used, which is
what keeps the step proportional to the batch; rows unseen in a step keep their weights exactly.

Models opt in by building their tables sparse; everything else keeps dense Adam.
"""

from __future__ import annotations

import torch
from torch import nn


class Optimiser:
    """Adam over the dense parameters and SparseAdam over sparse embedding tables, stepped together."""

    def __init__(self, model: nn.Module, learning_rate: float, weight_decay: float = 0.0) -> None:
        sparse = {id(m.weight): m.weight for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse}
        dense = [p for p in model.parameters() if id(p) not in sparse and p.requires_grad]
        if sparse and weight_decay:
            # Decaying every row at every step is exactly the dense work the sparse tables avoid.
            raise ValueError(
                f"{type(model).__name__} trains sparse embedding tables, which take no weight_decay: "
                "regularise them with the model's own l2 (on the rows of each batch)"
            )
        self.parts: list[torch.optim.Optimizer] = []
        if dense:
            self.parts.append(torch.optim.Adam(dense, lr=learning_rate, weight_decay=weight_decay))
        if sparse:
            self.parts.append(torch.optim.SparseAdam([p for p in sparse.values() if p.requires_grad], lr=learning_rate))

    def zero_grad(self) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=True)

    def step(self) -> None:
        for part in self.parts:
            part.step()
